/*
 * test_main.h: for C tests whose tasks run under aios_run (test_combinators.c,
 * test_condition.c). Include it after test_util.h.
 */
#ifndef AIOS_TEST_MAIN_H
#define AIOS_TEST_MAIN_H

#include "test_util.h"

/* For tests whose tasks run under aios_run: running_loop() is the running
 * loop (one reference, taken on first use), run_main() runs a main task and
 * drops that reference, loop_now() is the loop's clock. */
static aios_loop_t *test_run_loop_;

static inline aios_loop_t *running_loop(void) {
  if (test_run_loop_ == NULL) CHECK_EQ(aios_get_running_loop(&test_run_loop_), 0);
  return test_run_loop_;
}

static inline int run_main(aios_step_fn step, void *arg) {
  int rc = aios_run(step, arg, NULL, NULL);
  CHECK_EQ(aios_loop_unref(test_run_loop_), 0);
  test_run_loop_ = NULL;
  return rc;
}

static inline double loop_now(void) {
  double now = 0;
  CHECK_EQ(aios_loop_time(running_loop(), &now), 0);
  return now;
}

#endif /* AIOS_TEST_MAIN_H */
