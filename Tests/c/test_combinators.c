/* Combinators from C: asyncio.timeout_at scopes entered and left by a step
 * function, wait_for, gather and shield. CPython's Lib/asyncio/timeouts.py
 * and tasks.py are the reference. */
#include "test_util.h"
#include "test_main.h"

#include <math.h>
#include <semaphore.h>
#include <stdlib.h>
#include <string.h>
#include <stdint.h>

/* The loop of the current aios_run, one reference held for the run (a
 * pointer is valid only while a reference through it is held). */


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
    CHECK_EQ(aios_timeout_at(running_loop(), loop_now() + s->delay, &s->scope), 0);
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
  CHECK_EQ(aios_timeout_at(running_loop(), INFINITY, &s->scope), 0);
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
  CHECK_EQ(aios_timeout_at(running_loop(), NAN, &t), AIOS_EINVAL);
  CHECK_EQ(aios_timeout_at(running_loop(), INFINITY, &t), 0);
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

/* ------------------------------------------------------------------------ */
/* gather and shield                                                          */

/* A child: sleeps `delay`, then returns `value` or fails with `code`. */
typedef struct child {
  double delay;
  intptr_t value;
  int code;
  int step;
} child_t;

static int child_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  child_t *c = arg;
  if (c->step++ == 0) return await_sleep(task, c->delay);
  if (aios_future_cancelled(awaited)) return AIOS_ECANCELLED;
  if (c->code) return c->code;
  return aios_task_return(task, (void *)c->value, NULL);
}

/* main: start the children, gather them (cancelling the gather at once when
 * `cancel_gather`), await it; then await every child before finishing. */
typedef struct gathering {
  child_t children[3];
  size_t count;
  int return_exceptions, cancel_gather;
  int step, status, pending_at_gather_end;
  intptr_t results[3];
  int child_status[3];
  aios_task_t *tasks[3];
} gathering_t;

static int gathering_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  gathering_t *g = arg;
  size_t i;
  if (g->step == 0) {
    aios_future_t *futures[3] = {NULL, NULL, NULL}, *outer = NULL;
    for (i = 0; i < g->count; i++) {
      CHECK_EQ(aios_task_new(running_loop(), child_step, &g->children[i], NULL, &g->tasks[i]), 0);
      futures[i] = aios_task_as_future(g->tasks[i]);
    }
    CHECK_EQ(aios_gather(running_loop(), futures, g->count, g->return_exceptions, &outer), 0);
    if (g->cancel_gather) CHECK_EQ(aios_future_cancel(outer, "stop"), 1);
    g->step = 1;
    int rc = aios_task_await(task, outer);
    CHECK_EQ(aios_future_unref(outer), 0);
    return rc;
  }
  if (g->step == 1) {
    g->status = status_of(awaited);
    for (i = 0; i < g->count; i++)
      if (aios_future_done(aios_task_as_future(g->tasks[i])) == 0) g->pending_at_gather_end++;
  }
  /* Await the children still running, one per step. */
  for (i = 0; i < g->count; i++) {
    if (aios_future_done(aios_task_as_future(g->tasks[i])) == 0) {
      g->step = 2;
      return aios_task_await(task, aios_task_as_future(g->tasks[i]));
    }
  }
  for (i = 0; i < g->count; i++) {
    void *value = NULL;
    g->child_status[i] = aios_future_result(aios_task_as_future(g->tasks[i]), &value);
    g->results[i] = (intptr_t)value;
    CHECK_EQ(aios_task_unref(g->tasks[i]), 0);
  }
  return aios_task_return(task, NULL, NULL);
}

static void test_gather_waits_for_all(void) {
  gathering_t g = {.children = {{.delay = 0.3, .value = 1}, {.delay = 0, .value = 2}, {.delay = 0.15, .value = 3}},
                   .count = 3};
  CHECK_EQ(run_main(gathering_step, &g), 0);
  CHECK_EQ(g.status, 0);
  CHECK_EQ(g.pending_at_gather_end, 0);
  CHECK_EQ(g.results[0], 1);
  CHECK_EQ(g.results[1], 2);
  CHECK_EQ(g.results[2], 3);
}

/* The first error ends the gather at once; the other children go on. */
static void test_gather_first_error(void) {
  gathering_t g = {.children = {{.delay = 0.001, .code = -ECONNRESET}, {.delay = 0.5, .value = 2}}, .count = 2};
  CHECK_EQ(run_main(gathering_step, &g), 0);
  CHECK_EQ(g.status, -ECONNRESET);
  CHECK_EQ(g.pending_at_gather_end, 1);
  CHECK_EQ(g.child_status[1], 0);
  CHECK_EQ(g.results[1], 2);
}

static void test_gather_return_exceptions(void) {
  gathering_t g = {.children = {{.delay = 0.001, .code = -ECONNRESET}, {.delay = 0.01, .value = 2}},
                   .count = 2, .return_exceptions = 1};
  CHECK_EQ(run_main(gathering_step, &g), 0);
  CHECK_EQ(g.status, 0);
  CHECK_EQ(g.pending_at_gather_end, 0);
  CHECK_EQ(g.child_status[0], -ECONNRESET);
  CHECK_EQ(g.results[1], 2);
}

/* Cancelling the gather cancels every child; it ends cancelled even with
 * return_exceptions. */
static void test_gather_cancel(void) {
  gathering_t g = {.children = {{.delay = 10}, {.delay = 10}}, .count = 2, .return_exceptions = 1,
                   .cancel_gather = 1};
  CHECK_EQ(run_main(gathering_step, &g), 0);
  CHECK_EQ(g.status, AIOS_ECANCELLED);
  CHECK_EQ(g.child_status[0], AIOS_ECANCELLED);
  CHECK_EQ(g.child_status[1], AIOS_ECANCELLED);
}

static void test_gather_empty_and_bad_arguments(void) {
  aios_loop_t *loop = make_loop(), *other = make_loop();
  aios_future_t *f = NULL, *g = NULL, *outer = NULL;
  aios_future_t *list[2];
  CHECK_EQ(aios_gather(loop, NULL, 0, 0, &outer), 0);
  CHECK_EQ(aios_future_done(outer), 1);
  CHECK_EQ(aios_future_result(outer, NULL), 0);
  CHECK_EQ(aios_future_unref(outer), 0);
  CHECK_EQ(aios_future_new(loop, &f), 0);
  CHECK_EQ(aios_future_new(other, &g), 0);
  list[0] = f;
  list[1] = NULL;
  CHECK_EQ(aios_gather(loop, list, 2, 0, &outer), AIOS_EINVAL);
  list[1] = g;
  CHECK_EQ(aios_gather(loop, list, 2, 0, &outer), AIOS_EWRONGLOOP);
  CHECK_EQ(aios_gather(loop, NULL, 1, 0, &outer), AIOS_EINVAL);
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(aios_future_unref(g), 0);
  close_loop(other);
  close_loop(loop);
}

/* shield: cancelling the outer leaves the inner running; its result is not
 * lost, and an outer that was not cancelled lends it. */
typedef struct shielding {
  child_t inner_child;
  int cancel_outer;
  int step, outer_status, inner_status;
  intptr_t outer_value, inner_value;
  aios_task_t *inner;
  aios_future_t *outer;
} shielding_t;

static int shielding_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  shielding_t *s = arg;
  void *value = NULL;
  switch (s->step++) {
    case 0:
      CHECK_EQ(aios_task_new(running_loop(), child_step, &s->inner_child, NULL, &s->inner), 0);
      CHECK_EQ(aios_shield(aios_task_as_future(s->inner), &s->outer), 0);
      if (s->cancel_outer) CHECK_EQ(aios_future_cancel(s->outer, NULL), 1);
      return aios_task_await(task, s->outer);
    case 1:
      s->outer_status = aios_future_result(awaited, &value);
      s->outer_value = (intptr_t)value;
      return aios_task_await(task, aios_task_as_future(s->inner));
    default:
      s->inner_status = aios_future_result(awaited, &value);
      s->inner_value = (intptr_t)value;
      CHECK_EQ(aios_future_unref(s->outer), 0);
      CHECK_EQ(aios_task_unref(s->inner), 0);
      return aios_task_return(task, NULL, NULL);
  }
}

static void test_shield_cancelled_outer_keeps_inner(void) {
  shielding_t s = {.inner_child = {.delay = 0.01, .value = 5}, .cancel_outer = 1};
  CHECK_EQ(run_main(shielding_step, &s), 0);
  CHECK_EQ(s.outer_status, AIOS_ECANCELLED);
  CHECK_EQ(s.inner_status, 0);
  CHECK_EQ(s.inner_value, 5);
}

static void test_shield_follows_inner(void) {
  shielding_t s = {.inner_child = {.delay = 0.001, .value = 6}};
  CHECK_EQ(run_main(shielding_step, &s), 0);
  CHECK_EQ(s.outer_status, 0);
  CHECK_EQ(s.outer_value, 6);
  CHECK_EQ(s.inner_value, 6);
}

/* wait: FIRST_COMPLETED returns at the first; a timeout cancels nothing. */
typedef struct waiting {
  child_t children[2];
  double timeout;
  int return_when;
  int step, status, done[2];
  aios_task_t *tasks[2];
} waiting_t;

static int waiting_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  waiting_t *w = arg;
  int i;
  if (w->step == 0) {
    aios_future_t *futures[2], *outer = NULL;
    for (i = 0; i < 2; i++) {
      CHECK_EQ(aios_task_new(running_loop(), child_step, &w->children[i], NULL, &w->tasks[i]), 0);
      futures[i] = aios_task_as_future(w->tasks[i]);
    }
    CHECK_EQ(aios_wait(running_loop(), futures, 2, w->timeout, w->return_when, &outer), 0);
    w->step = 1;
    int rc = aios_task_await(task, outer);
    CHECK_EQ(aios_future_unref(outer), 0);
    return rc;
  }
  if (w->step == 1) {
    w->status = status_of(awaited);
    for (i = 0; i < 2; i++) {
      w->done[i] = aios_future_done(aios_task_as_future(w->tasks[i]));
      if (!w->done[i]) CHECK_EQ(aios_task_cancel(w->tasks[i], NULL), 1); /* tidy up */
    }
    w->step = 2;
  }
  for (i = 0; i < 2; i++)
    if (aios_future_done(aios_task_as_future(w->tasks[i])) == 0)
      return aios_task_await(task, aios_task_as_future(w->tasks[i]));
  for (i = 0; i < 2; i++) {
    aios_future_result(aios_task_as_future(w->tasks[i]), NULL); /* retrieve */
    CHECK_EQ(aios_task_unref(w->tasks[i]), 0);
  }
  return aios_task_return(task, NULL, NULL);
}

static void test_wait_first_completed(void) {
  waiting_t w = {.children = {{.delay = 10}, {.delay = 0.001, .value = 1}}, .timeout = INFINITY,
                 .return_when = AIOS_FIRST_COMPLETED};
  CHECK_EQ(run_main(waiting_step, &w), 0);
  CHECK_EQ(w.status, 0);
  CHECK_EQ(w.done[0], 0);
  CHECK_EQ(w.done[1], 1);
}

static void test_wait_first_exception(void) {
  waiting_t w = {.children = {{.delay = 10}, {.delay = 0.001, .code = -EPIPE}}, .timeout = INFINITY,
                 .return_when = AIOS_FIRST_EXCEPTION};
  CHECK_EQ(run_main(waiting_step, &w), 0);
  CHECK_EQ(w.done[0], 0);
  CHECK_EQ(w.done[1], 1);
}

static void test_wait_all_completed(void) {
  waiting_t w = {.children = {{.delay = 0.01, .value = 1}, {.delay = 0.001, .value = 2}}, .timeout = INFINITY,
                 .return_when = AIOS_ALL_COMPLETED};
  CHECK_EQ(run_main(waiting_step, &w), 0);
  CHECK_EQ(w.done[0], 1);
  CHECK_EQ(w.done[1], 1);
}

static void test_wait_timeout_cancels_nothing(void) {
  waiting_t w = {.children = {{.delay = 10}, {.delay = 10}}, .timeout = 0.01,
                 .return_when = AIOS_ALL_COMPLETED};
  CHECK_EQ(run_main(waiting_step, &w), 0);
  CHECK_EQ(w.status, 0);
  CHECK_EQ(w.done[0], 0);
  CHECK_EQ(w.done[1], 0);
}

static void test_wait_bad_arguments(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = NULL, *out = NULL;
  CHECK_EQ(aios_future_new(loop, &f), 0);
  CHECK_EQ(aios_wait(loop, NULL, 0, INFINITY, AIOS_ALL_COMPLETED, &out), AIOS_EINVAL);
  CHECK_EQ(aios_wait(loop, &f, 1, INFINITY, 0, &out), AIOS_EINVAL);
  CHECK_EQ(aios_wait(loop, &f, 1, NAN, AIOS_ALL_COMPLETED, &out), AIOS_EINVAL);
  CHECK(out == NULL);
  CHECK_EQ(aios_future_unref(f), 0);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* to_thread                                                                  */

static int g_freed;
static void count_free(void *value) {
  g_freed++;
  free(value);
}

/* A worker: waits until the loop posts `gate` (so it can only finish if
 * the loop runs while it blocks), then returns a string or `code`. */
typedef struct work {
  sem_t *gate;
  int code;
} work_t;

static int worker_fn(void *arg, void **result) {
  work_t *w = arg;
  if (w->gate != NULL) sem_wait(w->gate);
  if (w->code) return w->code;
  *result = malloc(8);
  strcpy(*result, "done");
  return 0;
}

static void post_gate_cb(void *arg) {
  int i;
  for (i = 0; i < 4; i++) sem_post((sem_t *)arg);
}

typedef struct threading {
  work_t work[4];
  size_t count;
  int cancel_first;
  int step, status[4];
  char text[4][8];
  aios_future_t *futures[4];
  sem_t gate;
} threading_t;

static int threading_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  threading_t *t = arg;
  size_t i;
  (void)awaited;
  if (t->step == 0) {
    for (i = 0; i < t->count; i++)
      CHECK_EQ(aios_to_thread(running_loop(), worker_fn, &t->work[i], count_free, &t->futures[i]), 0);
    /* The workers block until this loop callback runs. */
    CHECK_EQ(aios_loop_call_later(running_loop(), 0.001, post_gate_cb, &t->gate, NULL, NULL), 0);
    if (t->cancel_first) CHECK_EQ(aios_future_cancel(t->futures[0], NULL), 1);
    t->step = 1;
  }
  for (i = 0; i < t->count; i++)
    if (aios_future_done(t->futures[i]) == 0) return aios_task_await(task, t->futures[i]);
  for (i = 0; i < t->count; i++) {
    void *value = NULL;
    t->status[i] = aios_future_result(t->futures[i], &value);
    if (value != NULL) strcpy(t->text[i], value);
    CHECK_EQ(aios_future_unref(t->futures[i]), 0);
  }
  return aios_task_return(task, NULL, NULL);
}

/* Four workers block at once; the loop runs on and releases them. */
static void test_to_thread_results_while_the_loop_runs(void) {
  threading_t t = {.count = 4};
  size_t i;
  CHECK_EQ(sem_init(&t.gate, 0, 0), 0);
  for (i = 0; i < 4; i++) t.work[i].gate = &t.gate;
  g_freed = 0;
  CHECK_EQ(run_main(threading_step, &t), 0);
  for (i = 0; i < 4; i++) {
    CHECK_EQ(t.status[i], 0);
    CHECK_STR_EQ(t.text[i], "done");
  }
  CHECK_EQ(g_freed, 4); /* each result freed once, with its future */
  sem_destroy(&t.gate);
}

static void test_to_thread_error(void) {
  threading_t t = {.count = 1, .work = {{.code = -EIO}}};
  CHECK_EQ(sem_init(&t.gate, 0, 0), 0);
  CHECK_EQ(run_main(threading_step, &t), 0);
  CHECK_EQ(t.status[0], -EIO);
  sem_destroy(&t.gate);
}

/* A cancelled future does not stop the work; its result is freed once when
 * it arrives (closing the loop waits for it). */
static void test_to_thread_cancelled(void) {
  threading_t t = {.count = 2, .cancel_first = 1};
  CHECK_EQ(sem_init(&t.gate, 0, 0), 0);
  t.work[0].gate = t.work[1].gate = &t.gate;
  g_freed = 0;
  CHECK_EQ(run_main(threading_step, &t), 0);
  CHECK_EQ(t.status[0], AIOS_ECANCELLED);
  CHECK_EQ(t.status[1], 0);
  CHECK_EQ(g_freed, 2);
  sem_destroy(&t.gate);
}

static void test_thread_pool_size(void) {
  CHECK_EQ(aios_set_thread_pool_size(0), AIOS_EINVAL);
  CHECK_EQ(aios_set_thread_pool_size(8), 0); /* before any work */
  test_to_thread_error();
  CHECK_EQ(aios_set_thread_pool_size(8), AIOS_EBUSY);
}

/* ------------------------------------------------------------------------ */
/* Task groups                                                                */

typedef struct grouping {
  child_t children[3];
  size_t count;
  int step, status, group_size, first_code, cancelled_children, late_create, cancelling_after;
  int no_handles; /* create the children without taking their handles */
  aios_task_group_t *group;
  aios_task_t *tasks[3];
} grouping_t;

static int grouping_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  grouping_t *g = arg;
  size_t i;
  if (g->step++ == 0) {
    aios_future_t *exiting = NULL;
    CHECK_EQ(aios_task_group_new(running_loop(), &g->group), 0);
    CHECK_EQ(aios_task_group_enter(g->group, task), 0);
    for (i = 0; i < g->count; i++)
      CHECK_EQ(aios_task_group_create_task(g->group, child_step, &g->children[i], NULL,
                                           g->no_handles ? NULL : &g->tasks[i]), 0);
    CHECK_EQ(aios_task_group_exit(g->group, NULL, &exiting), 0);
    int rc = aios_task_await(task, exiting);
    CHECK_EQ(aios_future_unref(exiting), 0);
    return rc;
  }
  g->status = status_of(awaited);
  if (g->status == AIOS_EGROUP) {
    aios_error_t *error = NULL, *first = NULL;
    CHECK_EQ(aios_future_error(awaited, &error), 0);
    g->group_size = aios_error_group_size(error);
    CHECK_EQ(aios_error_group_get(error, 0, &first), 0);
    g->first_code = aios_error_code(first);
    CHECK_EQ(aios_error_group_get(error, 5, &first), AIOS_EINVAL);
    CHECK_EQ(aios_error_unref(first), 0);
    CHECK_EQ(aios_error_unref(error), 0);
  }
  g->cancelling_after = aios_task_cancelling(task);
  g->late_create = aios_task_group_create_task(g->group, child_step, &g->children[0], NULL, NULL);
  for (i = 0; i < g->count && !g->no_handles; i++) {
    CHECK_EQ(aios_future_done(aios_task_as_future(g->tasks[i])), 1);
    if (aios_future_cancelled(aios_task_as_future(g->tasks[i]))) g->cancelled_children++;
    aios_future_result(aios_task_as_future(g->tasks[i]), NULL);
    CHECK_EQ(aios_task_unref(g->tasks[i]), 0);
  }
  CHECK_EQ(aios_task_group_unref(g->group), 0);
  return aios_task_return(task, NULL, NULL);
}

static void test_task_group_waits_for_all(void) {
  grouping_t g = {.children = {{.delay = 0.01, .value = 1}, {.delay = 0.001, .value = 2}, {.delay = 0, .value = 3}},
                  .count = 3};
  CHECK_EQ(run_main(grouping_step, &g), 0);
  CHECK_EQ(g.status, 0);
  CHECK_EQ(g.cancelled_children, 0);
  CHECK_EQ(g.late_create, AIOS_EINVALIDSTATE); /* the group is finished */
}

/* The first failure cancels the sibling and the parent's wait; the errors
 * come out as one AIOS_EGROUP error, and the group's own cancel request on
 * the parent is taken back. */
static void test_task_group_failure(void) {
  grouping_t g = {.children = {{.delay = 10}, {.delay = 0.001, .code = -ECONNRESET}}, .count = 2};
  CHECK_EQ(run_main(grouping_step, &g), 0);
  CHECK_EQ(g.status, AIOS_EGROUP);
  CHECK_EQ(g.group_size, 1);
  CHECK_EQ(g.first_code, -ECONNRESET);
  CHECK_EQ(g.cancelled_children, 1);
  CHECK_EQ(g.cancelling_after, 0);
}

/* Children made without handing out their handles run and go away with
 * the group (the run checks that no task is left alive). */
static void test_task_group_children_without_handles(void) {
  grouping_t g = {.children = {{.delay = 0.001, .value = 1}, {.delay = 0, .value = 2}}, .count = 2, .no_handles = 1};
  CHECK_EQ(run_main(grouping_step, &g), 0);
  CHECK_EQ(g.status, 0);
  CHECK_EQ(g.children[0].step, 2);
  CHECK_EQ(g.children[1].step, 2);
  CHECK_EQ(aios_live_objects(AIOS_OBJECT_TASK), 0);
}

static void test_task_group_misuse(void) {
  aios_loop_t *loop = make_loop();
  aios_task_group_t *group = NULL;
  aios_future_t *f = NULL;
  aios_error_t *plain = NULL;
  CHECK_EQ(aios_task_group_new(loop, &group), 0);
  CHECK_EQ(aios_task_group_create_task(group, child_step, NULL, NULL, NULL), AIOS_EINVALIDSTATE);
  CHECK_EQ(aios_task_group_exit(group, NULL, &f), AIOS_EINVALIDSTATE);
  CHECK_EQ(aios_task_group_enter(group, NULL), AIOS_EINVAL);
  CHECK_EQ(aios_error_new(-EIO, NULL, &plain), 0);
  CHECK_EQ(aios_error_group_size(plain), 0);
  CHECK_EQ(aios_error_unref(plain), 0);
  CHECK_EQ(aios_task_group_unref(group), 0);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* as_completed                                                               */

typedef struct completing {
  child_t children[3];
  size_t count;
  double timeout;
  int step, order[4], statuses[4], handed, exhausted;
  aios_task_t *tasks[3];
  aios_as_completed_t *iterator;
} completing_t;

static int completing_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  completing_t *c = arg;
  size_t i;
  if (c->step++ == 0) {
    aios_future_t *futures[3];
    for (i = 0; i < c->count; i++) {
      CHECK_EQ(aios_task_new(running_loop(), child_step, &c->children[i], NULL, &c->tasks[i]), 0);
      futures[i] = aios_task_as_future(c->tasks[i]);
    }
    CHECK_EQ(aios_as_completed_new(running_loop(), futures, c->count, c->timeout, &c->iterator), 0);
  } else if (!c->exhausted) {
    void *value = NULL;
    c->statuses[c->handed] = aios_future_result(awaited, &value);
    c->order[c->handed++] = (int)(intptr_t)value;
  }
  if (!c->exhausted) {
    aios_future_t *next = NULL;
    int rc = aios_as_completed_next(c->iterator, &next);
    if (rc == 0) {
      rc = aios_task_await(task, next);
      CHECK_EQ(aios_future_unref(next), 0);
      return rc;
    }
    CHECK_EQ(rc, 1);
    CHECK(next == NULL);
    c->exhausted = 1;
    CHECK_EQ(aios_as_completed_unref(c->iterator), 0);
    for (i = 0; i < c->count; i++)
      if (aios_future_done(aios_task_as_future(c->tasks[i])) == 0) CHECK_EQ(aios_task_cancel(c->tasks[i], NULL), 1);
  }
  for (i = 0; i < c->count; i++)
    if (aios_future_done(aios_task_as_future(c->tasks[i])) == 0)
      return aios_task_await(task, aios_task_as_future(c->tasks[i]));
  for (i = 0; i < c->count; i++) {
    aios_future_result(aios_task_as_future(c->tasks[i]), NULL);
    CHECK_EQ(aios_task_unref(c->tasks[i]), 0);
  }
  return aios_task_return(task, NULL, NULL);
}

static void test_as_completed_order(void) {
  completing_t c = {.children = {{.delay = 0.3, .value = 1}, {.delay = 0, .value = 2}, {.delay = 0.15, .value = 3}},
                    .count = 3, .timeout = INFINITY};
  CHECK_EQ(run_main(completing_step, &c), 0);
  CHECK_EQ(c.handed, 3);
  CHECK_EQ(c.order[0], 1); /* indexes into the array, in finishing order */
  CHECK_EQ(c.order[1], 2);
  CHECK_EQ(c.order[2], 0);
}

/* After the timeout the remaining next futures fail with AIOS_ETIMEOUT. */
static void test_as_completed_timeout(void) {
  completing_t c = {.children = {{.delay = 0, .value = 1}, {.delay = 10}}, .count = 2, .timeout = 0.5};
  CHECK_EQ(run_main(completing_step, &c), 0);
  CHECK_EQ(c.handed, 2);
  CHECK_EQ(c.statuses[0], 0);
  CHECK_EQ(c.order[0], 0);
  CHECK_EQ(c.statuses[1], AIOS_ETIMEOUT);
}

static void test_as_completed_bad_arguments(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = NULL, *twice[2];
  aios_as_completed_t *it = NULL;
  CHECK_EQ(aios_future_new(loop, &f), 0);
  twice[0] = twice[1] = f;
  CHECK_EQ(aios_as_completed_new(loop, twice, 2, INFINITY, &it), AIOS_EINVAL);
  CHECK_EQ(aios_as_completed_new(loop, &f, 1, NAN, &it), AIOS_EINVAL);
  CHECK(it == NULL);
  CHECK_EQ(aios_as_completed_next(NULL, &f), AIOS_EINVAL);
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
          TEST_ENTRY(test_wait_for_bad_arguments),
          TEST_ENTRY(test_gather_waits_for_all),
          TEST_ENTRY(test_gather_first_error),
          TEST_ENTRY(test_gather_return_exceptions),
          TEST_ENTRY(test_gather_cancel),
          TEST_ENTRY(test_gather_empty_and_bad_arguments),
          TEST_ENTRY(test_shield_cancelled_outer_keeps_inner),
          TEST_ENTRY(test_shield_follows_inner),
          TEST_ENTRY(test_wait_first_completed),
          TEST_ENTRY(test_wait_first_exception),
          TEST_ENTRY(test_wait_all_completed),
          TEST_ENTRY(test_wait_timeout_cancels_nothing),
          TEST_ENTRY(test_wait_bad_arguments),
          TEST_ENTRY(test_to_thread_results_while_the_loop_runs),
          TEST_ENTRY(test_to_thread_error),
          TEST_ENTRY(test_to_thread_cancelled),
          TEST_ENTRY(test_thread_pool_size),
          TEST_ENTRY(test_task_group_waits_for_all),
          TEST_ENTRY(test_task_group_failure),
          TEST_ENTRY(test_task_group_children_without_handles),
          TEST_ENTRY(test_task_group_misuse),
          TEST_ENTRY(test_as_completed_order),
          TEST_ENTRY(test_as_completed_timeout),
          TEST_ENTRY(test_as_completed_bad_arguments))
