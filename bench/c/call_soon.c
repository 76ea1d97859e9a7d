/* call_soon: N callbacks through aios_loop_call_soon (no handle asked for).
 *
 *   bench/bin/call_soon N [plain|chained]
 *
 * plain (default): N callbacks are scheduled up front; each increments a
 * counter and the N-th stops the loop. chained: the first callback is
 * scheduled and each one schedules the next, the N-th stops the loop.
 * The timed region covers scheduling and running all N callbacks (loop made
 * before, closed after); an untimed warm-up round of the same size on the
 * same loop runs first.
 *
 * Prints: call_soon N SECONDS mode=plain per_call_ns=X leaks=L
 *    (or: call_soon_chained N SECONDS mode=chained ...)
 */
#include "bench_util.h"

#include <string.h>

static aios_loop_t *g_loop;
static long g_count;
static long g_target;
static int g_status; /* first failure inside a callback */

static void note(int rc) {
  if (rc < 0 && g_status == 0) g_status = rc;
}

static void plain_cb(void *arg) {
  (void)arg;
  if (++g_count == g_target) note(aios_loop_stop(g_loop));
}

static void chained_cb(void *arg) {
  if (++g_count == g_target) {
    note(aios_loop_stop(g_loop));
  } else {
    int rc = aios_loop_call_soon(g_loop, chained_cb, arg, NULL, NULL);
    if (rc < 0) {
      note(rc);
      note(aios_loop_stop(g_loop));
    }
  }
}

int main(int argc, char **argv) {
  long n = bench_arg(argc, argv, 1, 1000000);
  int chained = 0;
  if (argc > 2) {
    if (strcmp(argv[2], "chained") == 0) chained = 1;
    else if (strcmp(argv[2], "plain") != 0) {
      fprintf(stderr, "usage: %s N [plain|chained]\n", argv[0]);
      return 64;
    }
  }
  long live[BENCH_TYPES];
  bench_snapshot_live(live);
  BENCH_CHECK(aios_loop_new(&g_loop));
  /* Round 0 is an untimed warm-up of the same size (the loop's ready queue
   * grows to its size once); round 1 is timed. */
  double secs = 0.0;
  for (int round = 0; round < 2; round++) {
    g_count = 0;
    g_target = n;
    double t0 = bench_now();
    if (chained) {
      BENCH_CHECK(aios_loop_call_soon(g_loop, chained_cb, NULL, NULL, NULL));
    } else {
      for (long i = 0; i < n; i++) BENCH_CHECK(aios_loop_call_soon(g_loop, plain_cb, NULL, NULL, NULL));
    }
    BENCH_CHECK(aios_loop_run_forever(g_loop));
    secs = bench_now() - t0;
    BENCH_CHECK(g_status);
    BENCH_EXPECT(g_count == n, "ran %ld callbacks of %ld", g_count, n);
  }
  BENCH_CHECK(aios_loop_close(g_loop));
  BENCH_CHECK(aios_loop_unref(g_loop));
  int leaks = bench_check_live(live);

  printf("%s %ld %.6f mode=%s per_call_ns=%.1f leaks=%d\n", chained ? "call_soon_chained" : "call_soon",
         n, secs, chained ? "chained" : "plain", secs / (double)n * 1e9, leaks);
  return 0;
}
