/* bench_util.h: helpers shared by the C benchmarks in bench/c/.
 * Each benchmark prints one machine-readable line `name n seconds key=value...`
 * on stdout; diagnostics go to stderr. A library call that fails is reported
 * with its status name and the benchmark exits non-zero: the numbers of a
 * misbehaving library are not printed. */
#ifndef BENCH_UTIL_H
#define BENCH_UTIL_H

/* Include this header before any system header. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <aio_swift.h>
#include <stdint.h>

/* The monotonic clock in seconds. */
static inline double bench_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Aborts the benchmark when a library call returns a negative status. */
#define BENCH_CHECK(expr)                                                     \
  do {                                                                        \
    int bench_rc_ = (int)(expr);                                              \
    if (bench_rc_ < 0) {                                                      \
      fprintf(stderr, "%s:%d: %s failed: %d %s (%s)\n", __FILE__, __LINE__,   \
              #expr, bench_rc_, aios_err_name(bench_rc_),                     \
              aios_strerror(bench_rc_));                                      \
      exit(2);                                                                \
    }                                                                         \
  } while (0)

/* Reports a violated expectation about the library's behaviour and exits. */
#define BENCH_EXPECT(cond, ...)                                               \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "%s:%d: expectation failed: %s: ", __FILE__, __LINE__,  \
              #cond);                                                         \
      fprintf(stderr, __VA_ARGS__);                                           \
      fputc('\n', stderr);                                                    \
      exit(3);                                                                \
    }                                                                         \
  } while (0)

/* A positive count from argv[i], or `dflt` when absent. */
static inline long bench_arg(int argc, char **argv, int i, long dflt) {
  if (argc <= i) return dflt;
  char *end = NULL;
  errno = 0;
  long v = strtol(argv[i], &end, 10);
  if (errno != 0 || end == argv[i] || *end != '\0' || v <= 0) {
    fprintf(stderr, "%s: bad count '%s'\n", argv[0], argv[i]);
    exit(64);
  }
  return v;
}

/* Object types counted by aios_live_objects: every one it knows. */
#define BENCH_TYPES 16

/* Warns when objects of the library outlive the benchmark that made them:
 * every benchmark releases all it holds, so the counts must be back at the
 * values they had at the start. */
static inline int bench_check_live(const long before[BENCH_TYPES]) {
  static const char *names[] = {"loop", "handle", "future", "task", "error", "runner", "primitive", "queue"};
  int leaks = 0;
  for (int t = 0; t < BENCH_TYPES && before[t] >= 0; t++) {
    long now = aios_live_objects(t);
    if (now != before[t]) {
      fprintf(stderr, "warning: live %s objects %ld at start, %ld at end\n",
              t < (int)(sizeof names / sizeof *names) ? names[t] : "other", before[t], now);
      leaks++;
    }
  }
  return leaks;
}

/* The counts of every type the library knows (-1 past the last). */
static inline void bench_snapshot_live(long out[BENCH_TYPES]) {
  for (int t = 0; t < BENCH_TYPES; t++) out[t] = aios_live_objects(t) < 0 ? -1 : aios_live_objects(t);
}

/* ---------------------------------------------------- helpers for C steps */

/* A non-NULL value for the index i (values carry no destructor). */
#define ITEM(i) ((void *)(intptr_t)((i) + 1))

/* 1 if the future is done, 0 if not; a negative status aborts. */
static inline int is_done(aios_future_t *f) {
  int rc = aios_future_done(f);
  BENCH_CHECK(rc);
  return rc;
}

/* `return await f` from a step: the task keeps its own reference to f. */
static inline int await_and_drop(aios_task_t *task, aios_future_t *f) {
  int rc = aios_task_await(task, f);
  BENCH_CHECK(rc);
  BENCH_CHECK(aios_future_unref(f));
  return rc;
}

/* The result of a done future (borrowed from it); a failure aborts. */
static inline void *result_of(aios_future_t *f) {
  void *v = NULL;
  int rc = aios_future_result(f, &v);
  BENCH_EXPECT(rc == 0, "future finished with %d %s (%s)", rc, aios_err_name(rc), aios_strerror(rc));
  return v;
}


/* Runs `main_step` once on the runner and checks it finished with a result. */
static inline void run_main(aios_runner_t *runner, aios_step_fn main_step, void *arg) {
  aios_task_t *task = NULL;
  int rc = aios_runner_run(runner, main_step, arg, NULL, &task);
  BENCH_CHECK(rc);
  BENCH_EXPECT(task != NULL, "aios_runner_run gave no task");
  BENCH_EXPECT(is_done(aios_task_as_future(task)) == 1, "main task not done after aios_runner_run");
  BENCH_CHECK(aios_task_unref(task));
}

#endif /* BENCH_UTIL_H */
