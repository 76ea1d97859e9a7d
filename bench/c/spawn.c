/* spawn: spawn-and-complete of trivial C tasks.
 *
 *   bench/bin/spawn N [ROUNDS]
 *
 * Each round creates N tasks with aios_task_new (default options: the first
 * step is scheduled with call_soon) whose step returns at once through
 * aios_task_return. The step counts completions and the one that completes
 * the N-th task stops the loop; the round then runs the loop with
 * aios_loop_run_forever and drops every task reference. ROUNDS (default 1)
 * repeats this on the same loop, so a small N can be timed over a long
 * enough run: the per-task cost at batch size N is what the scaling table
 * compares.
 *
 * The timed region covers creating, running and releasing all the tasks of
 * all rounds (the loop is made before and closed after it), like the Python
 * reference's run_until_complete(gather(*[create_task(noop()) ...])). One
 * untimed warm-up round of the same size runs before it.
 *
 * Prints: spawn TOTAL SECONDS batch=N rounds=R per_task_ns=X leaks=L
 */
#include "bench_util.h"

static aios_loop_t *g_loop;
static long g_completed;
static long g_target;
static long g_bad_steps;   /* steps called with an awaited future */
static int g_stop_status;  /* first failure of aios_loop_stop in a step */

static int spawn_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  (void)arg;
  if (awaited != NULL) g_bad_steps++;
  if (++g_completed == g_target) {
    int rc = aios_loop_stop(g_loop);
    if (rc < 0 && g_stop_status == 0) g_stop_status = rc;
  }
  return aios_task_return(task, NULL, NULL);
}

int main(int argc, char **argv) {
  long n = bench_arg(argc, argv, 1, 1000000);
  long rounds = bench_arg(argc, argv, 2, 1);
  long live[BENCH_TYPES];
  bench_snapshot_live(live);

  aios_task_t **tasks = malloc((size_t)n * sizeof *tasks);
  if (tasks == NULL) {
    perror("malloc");
    return 1;
  }
  BENCH_CHECK(aios_loop_new(&g_loop));

  /* One untimed round first (r = -1), so every batch size is timed in the
   * same steady state: the allocator and the loop's queues have already
   * grown to the batch's size once. */
  double t0 = 0.0;
  for (long r = -1; r < rounds; r++) {
    if (r == 0) t0 = bench_now();
    g_completed = 0;
    g_target = n;
    for (long i = 0; i < n; i++) BENCH_CHECK(aios_task_new(g_loop, spawn_step, NULL, NULL, &tasks[i]));
    BENCH_CHECK(aios_loop_run_forever(g_loop));
    BENCH_EXPECT(g_completed == n, "round %ld completed %ld of %ld tasks", r, g_completed, n);
    for (long i = 0; i < n; i++) BENCH_CHECK(aios_task_unref(tasks[i]));
  }
  double t1 = bench_now();

  BENCH_CHECK(g_stop_status);
  BENCH_EXPECT(g_bad_steps == 0, "%ld steps got an awaited future", g_bad_steps);

  /* Outside the timed region: one more small round whose tasks are checked
   * one by one (done, with a NULL result), so a fast but wrong library shows. */
  long check = n < 1000 ? n : 1000;
  g_completed = 0;
  g_target = check;
  for (long i = 0; i < check; i++) BENCH_CHECK(aios_task_new(g_loop, spawn_step, NULL, NULL, &tasks[i]));
  BENCH_CHECK(aios_loop_run_forever(g_loop));
  BENCH_EXPECT(g_completed == check, "check round completed %ld of %ld", g_completed, check);
  for (long i = 0; i < check; i++) {
    aios_future_t *f = aios_task_as_future(tasks[i]);
    void *value = (void *)1;
    BENCH_EXPECT(aios_future_done(f) == 1, "task %ld not done after its step returned", i);
    int rc = aios_future_result(f, &value);
    BENCH_EXPECT(rc == 0 && value == NULL, "task %ld result: status %d (%s), value %p", i, rc,
                 aios_err_name(rc), value);
    BENCH_CHECK(aios_task_unref(tasks[i]));
  }

  BENCH_CHECK(aios_loop_close(g_loop));
  BENCH_CHECK(aios_loop_unref(g_loop));
  free(tasks);
  int leaks = bench_check_live(live);

  double secs = t1 - t0;
  long total = n * rounds;
  printf("spawn %ld %.6f batch=%ld rounds=%ld per_task_ns=%.1f leaks=%d\n", total, secs, n, rounds,
         secs / (double)total * 1e9, leaks);
  return 0;
}
