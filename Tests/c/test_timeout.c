/* Timeouts from C: asyncio.timeout_at scopes entered and left by a step
 * function, and wait_for. CPython's Lib/asyncio/timeouts.py and tasks.py
 * (wait_for) are the reference. */
#include "test_util.h"

#include <math.h>

/* The loop of the current aios_run, one reference held for the run (a
 * pointer is valid only while a reference through it is held). */
static aios_loop_t *g_loop;

static aios_loop_t *running_loop(void) {
  if (g_loop == NULL) CHECK_EQ(aios_get_running_loop(&g_loop), 0);
  return g_loop;
}

/* aios_run, then drop the run's loop reference. */
static int run_main(aios_step_fn step, void *arg) {
  int rc = aios_run(step, arg, NULL, NULL);
  CHECK_EQ(aios_loop_unref(g_loop), 0);
  g_loop = NULL;
  return rc;
}

static double loop_now(void) {
  double now = 0;
  CHECK_EQ(aios_loop_time(running_loop(), &now), 0);
  return now;
}

/* Awaits aios_sleep(delay) from a step. */
static int await_sleep(aios_task_t *task, double delay) {
  aios_future_t *nap = NULL;
  CHECK_EQ(aios_sleep(running_loop(), delay, NULL, NULL, &nap), 0);
  int rc = aios_task_await(task, nap);
  CHECK_EQ(aios_future_unref(nap), 0);
  return rc;
}

/* The status an awaited future ended with: 0, its error's code, or
 * AIOS_ECANCELLED. */
static int status_of(aios_future_t *awaited) { return aios_future_result(awaited, NULL); }

/* A scope around one await: step 0 enters a scope with deadline
 * now + `delay` and awaits a sleep of `sleep`; step 1 leaves it with the
 * sleep's status and returns what the exit said. */
typedef struct scoped {
  double delay, sleep;
  int self_cancel; /* a newer cancel request inside the scope */
  int step;
  aios_timeout_t *scope;
  int exit_status, expired, cancelling_after;
} scoped_t;

static int scoped_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  scoped_t *s = arg;
  if (s->step++ == 0) {
    CHECK_EQ(aios_timeout_new(running_loop(), loop_now() + s->delay, &s->scope), 0);
    CHECK_EQ(aios_timeout_enter(s->scope, task), 0);
    if (s->self_cancel) CHECK_EQ(aios_task_cancel(task, NULL), 1);
    return await_sleep(task, s->sleep);
  }
  s->exit_status = aios_timeout_exit(s->scope, status_of(awaited));
  s->expired = aios_timeout_expired(s->scope);
  s->cancelling_after = aios_task_cancelling(task);
  if (s->cancelling_after > 0) aios_task_uncancel(task);
  CHECK_EQ(aios_timeout_unref(s->scope), 0);
  return aios_task_return(task, NULL, NULL);
}

static void run_scoped(scoped_t *s) { CHECK_EQ(run_main(scoped_step, s), 0); }

/* The deadline cancels the body; the exit turns it into AIOS_ETIMEOUT and
 * takes the scope's cancel request back. */
static void test_deadline_is_a_timeout(void) {
  scoped_t s = {.delay = 0.01, .sleep = 10};
  double start = test_now();
  run_scoped(&s);
  CHECK_EQ(s.exit_status, AIOS_ETIMEOUT);
  CHECK_EQ(s.expired, 1);
  CHECK_EQ(s.cancelling_after, 0);
  CHECK(test_now() - start < 5);
}

static void test_scope_that_does_not_expire(void) {
  scoped_t s = {.delay = 10, .sleep = 0.001};
  run_scoped(&s);
  CHECK_EQ(s.exit_status, 0);
  CHECK_EQ(s.expired, 0);
}

/* The deadline passes, but a newer cancel request came too: the exit does
 * not claim the cancellation (CPython: uncancel() > cancelling at entry). */
static void test_newer_cancel_wins(void) {
  scoped_t s = {.delay = -1, .sleep = 10, .self_cancel = 1};
  run_scoped(&s);
  CHECK_EQ(s.exit_status, AIOS_ECANCELLED);
  CHECK_EQ(s.expired, 1);
  CHECK_EQ(s.cancelling_after, 1);
}

/* A body failing with its own error keeps it. */
static int failing_scope_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  scoped_t *s = arg;
  (void)awaited;
  CHECK_EQ(aios_timeout_new(running_loop(), INFINITY, &s->scope), 0);
  CHECK_EQ(aios_timeout_enter(s->scope, task), 0);
  s->exit_status = aios_timeout_exit(s->scope, -ECONNRESET);
  CHECK_EQ(aios_timeout_unref(s->scope), 0);
  return aios_task_return(task, NULL, NULL);
}

static void test_other_errors_pass_through(void) {
  scoped_t s = {0};
  CHECK_EQ(run_main(failing_scope_step, &s), 0);
  CHECK_EQ(s.exit_status, -ECONNRESET);
}

/* Misuse: reschedule or exit before entering, entering twice, NaN, NULL. */
static int misuse_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  aios_timeout_t *t = NULL;
  double when = 0;
  (void)awaited;
  (void)arg;
  CHECK_EQ(aios_timeout_new(running_loop(), NAN, &t), AIOS_EINVAL);
  CHECK_EQ(aios_timeout_new(running_loop(), INFINITY, &t), 0);
  CHECK_EQ(aios_timeout_when(t, &when), 0);
  CHECK(isinf(when));
  CHECK_EQ(aios_timeout_reschedule(t, 1.0), AIOS_EINVALIDSTATE);
  CHECK_EQ(aios_timeout_exit(t, 0), AIOS_EINVALIDSTATE);
  CHECK_EQ(aios_timeout_enter(t, task), 0);
  CHECK_EQ(aios_timeout_enter(t, task), AIOS_EINVALIDSTATE);
  CHECK_EQ(aios_timeout_reschedule(t, loop_now() + 100), 0);
  CHECK_EQ(aios_timeout_when(t, &when), 0);
  CHECK(when > loop_now() + 50);
  CHECK_EQ(aios_timeout_expired(t), 0);
  CHECK_EQ(aios_timeout_exit(t, 0), 0);
  CHECK_EQ(aios_timeout_exit(t, 0), AIOS_EINVALIDSTATE);
  CHECK_EQ(aios_timeout_enter(NULL, task), AIOS_EINVAL);
  CHECK_EQ(aios_timeout_unref(t), 0);
  CHECK_EQ(aios_timeout_expired(t), AIOS_EBADHANDLE);
  return aios_task_return(task, NULL, NULL);
}

static void test_misuse(void) { CHECK_EQ(run_main(misuse_step, NULL), 0); }

/* ------------------------------------------------------------------------ */
/* wait_for                                                                   */

/* An inner task sleeping `sleep`, returning 42; when cancelled it takes one
 * more iteration to clean up, then ends cancelled. */
typedef struct inner {
  double sleep;
  int step, cleaned_up;
} inner_t;

static int inner_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  inner_t *in = arg;
  switch (in->step++) {
    case 0: return await_sleep(task, in->sleep);
    case 1:
      if (aios_future_cancelled(awaited)) return aios_task_await(task, NULL); /* cleanup */
      return aios_task_return(task, (void *)42, NULL);
    default:
      in->cleaned_up = 1;
      return AIOS_ECANCELLED;
  }
}

typedef struct outer {
  inner_t inner;
  double timeout;
  int step, status, inner_cancelled;
  void *inner_value;
  aios_task_t *inner_task;
} outer_t;

static int outer_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  outer_t *o = arg;
  if (o->step++ == 0) {
    aios_future_t *waiting = NULL;
    CHECK_EQ(aios_task_new(running_loop(), inner_step, &o->inner, NULL, &o->inner_task), 0);
    CHECK_EQ(aios_wait_for(aios_task_as_future(o->inner_task), o->timeout, &waiting), 0);
    int rc = aios_task_await(task, waiting);
    CHECK_EQ(aios_future_unref(waiting), 0);
    return rc;
  }
  o->status = status_of(awaited);
  o->inner_cancelled = aios_future_cancelled(aios_task_as_future(o->inner_task));
  aios_future_result(aios_task_as_future(o->inner_task), &o->inner_value);
  CHECK_EQ(aios_task_unref(o->inner_task), 0);
  return aios_task_return(task, NULL, NULL);
}

/* On timeout, wait_for cancels the task and waits for it to finish
 * cancelling, then fails with AIOS_ETIMEOUT. */
static void test_wait_for_timeout(void) {
  outer_t o = {.inner = {.sleep = 10}, .timeout = 0.01};
  CHECK_EQ(run_main(outer_step, &o), 0);
  CHECK_EQ(o.status, AIOS_ETIMEOUT);
  CHECK_EQ(o.inner_cancelled, 1);
  CHECK_EQ(o.inner.cleaned_up, 1);
}

static void test_wait_for_result_in_time(void) {
  outer_t o = {.inner = {.sleep = 0.001}, .timeout = 10};
  CHECK_EQ(run_main(outer_step, &o), 0);
  CHECK_EQ(o.status, 0);
  CHECK_PTR_EQ(o.inner_value, (void *)42);
}

static void test_wait_for_forever(void) {
  outer_t o = {.inner = {.sleep = 0.001}, .timeout = INFINITY};
  CHECK_EQ(run_main(outer_step, &o), 0);
  CHECK_EQ(o.status, 0);
  CHECK_PTR_EQ(o.inner_value, (void *)42);
}

/* timeout <= 0 still takes a result that is already there. */
static int zero_timeout_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  int *state = arg;
  if ((*state)++ == 0) {
    aios_future_t *done = NULL, *waiting = NULL;
    CHECK_EQ(aios_sleep(running_loop(), 0, (void *)7, NULL, &done), 0);
    CHECK_EQ(aios_wait_for(done, 0, &waiting), 0);
    int rc = aios_task_await(task, waiting);
    CHECK_EQ(aios_future_unref(waiting), 0);
    CHECK_EQ(aios_future_unref(done), 0);
    return rc;
  }
  *state = 100 + status_of(awaited);
  return aios_task_return(task, NULL, NULL);
}

static void test_wait_for_zero_takes_a_done_result(void) {
  int state = 0;
  CHECK_EQ(run_main(zero_timeout_step, &state), 0);
  CHECK_EQ(state, 100);
}

static void test_wait_for_bad_arguments(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = NULL, *w = NULL;
  CHECK_EQ(aios_future_new(loop, &f), 0);
  CHECK_EQ(aios_wait_for(NULL, 1, &w), AIOS_EINVAL);
  CHECK_EQ(aios_wait_for(f, NAN, &w), AIOS_EINVAL);
  CHECK_EQ(aios_wait_for(f, 1, NULL), AIOS_EINVAL);
  CHECK(w == NULL);
  CHECK_EQ(aios_future_unref(f), 0);
  close_loop(loop);
}

TEST_MAIN(TEST_ENTRY(test_deadline_is_a_timeout),
          TEST_ENTRY(test_scope_that_does_not_expire),
          TEST_ENTRY(test_newer_cancel_wins),
          TEST_ENTRY(test_other_errors_pass_through),
          TEST_ENTRY(test_misuse),
          TEST_ENTRY(test_wait_for_timeout),
          TEST_ENTRY(test_wait_for_result_in_time),
          TEST_ENTRY(test_wait_for_forever),
          TEST_ENTRY(test_wait_for_zero_takes_a_done_result),
          TEST_ENTRY(test_wait_for_bad_arguments))
