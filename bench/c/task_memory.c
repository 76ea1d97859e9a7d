/* task_memory: the memory a pending task costs.
 *
 *   bench/bin/task_memory N
 *
 * Creates N tasks that all await one shared future that never completes
 * (made with aios_future_new), runs the loop until every task has taken its
 * first step and is suspended on it, and measures the growth of
 *  - glibc's heap in use (mallinfo2: uordblks + hblkhd), and
 *  - the resident set (/proc/self/statm),
 * divided by N. The array that holds the task references is allocated (and
 * touched) before the first measurement, so it is not counted.
 * Then every task is cancelled, the loop runs until all of them have
 * finished as cancelled, and everything is released.
 *
 * Prints: task_memory N SECONDS heap_bytes_per_task=X rss_bytes_per_task=Y
 *         cancel_seconds=Z leaks=L
 * (SECONDS is the time to create N tasks and run them to their first await.)
 */
#include "bench_util.h" /* first: it defines _GNU_SOURCE */

#include <malloc.h>
#include <string.h>
#include <unistd.h>

static aios_loop_t *g_loop;
static aios_future_t *g_never; /* the shared future nobody completes */
static long g_first_steps;
static long g_finished;
static long g_target;
static long g_bad_wakeups; /* second steps whose awaited future is not cancelled */
static int g_status;

static void note(int rc) {
  if (rc < 0 && g_status == 0) g_status = rc;
}

static int waiter_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  (void)arg;
  if (awaited == NULL) {
    /* First step: suspend on the shared pending future. */
    if (++g_first_steps == g_target) note(aios_loop_stop(g_loop));
    return aios_task_await(task, g_never);
  }
  /* Only a cancellation can wake us: finish as cancelled. */
  if (aios_future_cancelled(awaited) != 1) g_bad_wakeups++;
  if (++g_finished == g_target) note(aios_loop_stop(g_loop));
  return AIOS_ECANCELLED;
}

static size_t heap_in_use(void) {
  struct mallinfo2 mi = mallinfo2();
  return mi.uordblks + mi.hblkhd;
}

static long rss_bytes(void) {
  long size = 0, resident = 0;
  FILE *f = fopen("/proc/self/statm", "r");
  if (f == NULL) return -1;
  if (fscanf(f, "%ld %ld", &size, &resident) != 2) resident = -1;
  fclose(f);
  return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

int main(int argc, char **argv) {
  long n = bench_arg(argc, argv, 1, 100000);
  long live[BENCH_TYPES];
  bench_snapshot_live(live);

  aios_task_t **tasks = malloc((size_t)n * sizeof *tasks);
  if (tasks == NULL) {
    perror("malloc");
    return 1;
  }
  memset(tasks, 0, (size_t)n * sizeof *tasks);
  BENCH_CHECK(aios_loop_new(&g_loop));
  BENCH_CHECK(aios_future_new(g_loop, &g_never));

  /* Warm up: one task through its first await and cancellation, so that
   * one-time allocations of the library (caches, the loop's first ready
   * queue) are not charged to the measured tasks. */
  {
    aios_task_t *t;
    g_target = 1;
    g_first_steps = g_finished = 0;
    aios_future_t *warm;
    BENCH_CHECK(aios_future_new(g_loop, &warm));
    aios_future_t *saved = g_never;
    g_never = warm;
    BENCH_CHECK(aios_task_new(g_loop, waiter_step, NULL, NULL, &t));
    BENCH_CHECK(aios_loop_run_forever(g_loop));
    BENCH_EXPECT(g_first_steps == 1, "warm-up task took %ld first steps", g_first_steps);
    g_target = -1; /* no stop from the step: run_until_complete stops the loop */
    BENCH_CHECK(aios_task_cancel(t, NULL));
    int rc = aios_loop_run_until_complete(g_loop, aios_task_as_future(t));
    BENCH_EXPECT(rc == AIOS_ECANCELLED, "warm-up task ended with %d (%s), expected AIOS_ECANCELLED",
                 rc, aios_err_name(rc));
    BENCH_CHECK(aios_task_unref(t));
    BENCH_CHECK(aios_future_unref(warm));
    g_never = saved;
  }

  g_target = n;
  g_first_steps = g_finished = 0;
  malloc_trim(0);
  size_t heap0 = heap_in_use();
  long rss0 = rss_bytes();

  double t0 = bench_now();
  for (long i = 0; i < n; i++) BENCH_CHECK(aios_task_new(g_loop, waiter_step, NULL, NULL, &tasks[i]));
  BENCH_CHECK(aios_loop_run_forever(g_loop));
  double t1 = bench_now();
  BENCH_CHECK(g_status);
  BENCH_EXPECT(g_first_steps == n, "%ld of %ld tasks reached their await", g_first_steps, n);

  size_t heap1 = heap_in_use();
  long rss1 = rss_bytes();

  /* Everything still pending, as it should be. */
  BENCH_EXPECT(aios_future_done(g_never) == 0, "the shared future is done");
  long done_early = 0;
  for (long i = 0; i < n; i++)
    if (aios_future_done(aios_task_as_future(tasks[i])) != 0) done_early++;
  BENCH_EXPECT(done_early == 0, "%ld pending tasks report done", done_early);
  int all = aios_all_tasks(g_loop, NULL, 0);
  BENCH_EXPECT(all == n, "aios_all_tasks counts %d pending tasks, expected %ld", all, n);

  /* Cancel them all and run until each has finished. */
  double c0 = bench_now();
  for (long i = 0; i < n; i++) {
    int rc = aios_task_cancel(tasks[i], NULL);
    BENCH_EXPECT(rc == 1, "aios_task_cancel(task %ld) returned %d (%s), expected 1", i, rc,
                 aios_err_name(rc));
  }
  BENCH_CHECK(aios_loop_run_forever(g_loop));
  double c1 = bench_now();
  BENCH_CHECK(g_status);
  BENCH_EXPECT(g_finished == n, "%ld of %ld tasks finished after the cancel", g_finished, n);
  BENCH_EXPECT(g_bad_wakeups == 0, "%ld tasks woke with an awaited future that is not cancelled",
               g_bad_wakeups);
  long not_cancelled = 0;
  for (long i = 0; i < n; i++) {
    aios_future_t *f = aios_task_as_future(tasks[i]);
    if (aios_future_done(f) != 1 || aios_future_cancelled(f) != 1) not_cancelled++;
  }
  BENCH_EXPECT(not_cancelled == 0, "%ld tasks are not done and cancelled", not_cancelled);

  for (long i = 0; i < n; i++) BENCH_CHECK(aios_task_unref(tasks[i]));
  BENCH_CHECK(aios_future_unref(g_never));
  BENCH_CHECK(aios_loop_close(g_loop));
  BENCH_CHECK(aios_loop_unref(g_loop));
  free(tasks);
  int leaks = bench_check_live(live);

  double heap_per = ((double)heap1 - (double)heap0) / (double)n;
  double rss_per = (rss0 < 0 || rss1 < 0) ? -1.0 : ((double)rss1 - (double)rss0) / (double)n;
  printf("task_memory %ld %.6f heap_bytes_per_task=%.1f rss_bytes_per_task=%.1f cancel_seconds=%.6f "
         "leaks=%d\n",
         n, t1 - t0, heap_per, rss_per, c1 - c0, leaks);
  return 0;
}
