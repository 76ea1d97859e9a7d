/*
 * test_task.c: tasks (asyncio.Task) driven by C step functions: awaiting,
 * returning, failing, cancellation (requests, catching, uncancel), eager
 * start, names, current/all tasks, and the exact interleaving of yields.
 */
#include "test_util.h"

/* The loop of a task, borrowed: every test here holds a reference to its
 * loop, so the pointer stays valid after this function drops its own. */
static aios_loop_t *task_loop(aios_task_t *task) {
  aios_loop_t *loop = NULL;
  CHECK_EQ(aios_future_get_loop(aios_task_as_future(task), &loop), 0);
  CHECK(loop != NULL);
  CHECK_EQ(aios_loop_unref(loop), 0);
  return loop;
}

/* From a step: await aios_sleep(delay) with `value` as its result. With
 * `keep`, the step keeps its reference to the sleep in *keep, so that the
 * next step can check `awaited` is that very future (a pointer names the
 * same object only while the caller holds a reference to it); drop_kept()
 * releases it then. */
static int await_sleep(aios_task_t *task, double delay, void *value,
                       aios_future_t **keep) {
  aios_future_t *f = NULL;
  int rc;
  CHECK_EQ(aios_sleep(task_loop(task), delay, value, NULL, &f), 0);
  CHECK(f != NULL);
  rc = aios_task_await(task, f);
  CHECK_EQ(rc, AIOS_STEP_AWAIT);
  if (keep)
    *keep = f;
  else
    CHECK_EQ(aios_future_unref(f), 0);
  return rc;
}

static void drop_kept(aios_future_t **kept) {
  CHECK_EQ(aios_future_unref(*kept), 0);
  *kept = NULL;
}

static aios_task_t *new_task(aios_loop_t *loop, aios_step_fn step, void *arg) {
  aios_task_t *t = NULL;
  CHECK_EQ(aios_task_new(loop, step, arg, NULL, &t), 0);
  CHECK(t != NULL);
  CHECK(aios_task_as_future(t) != NULL);
  return t;
}

static double loop_now(aios_loop_t *loop) {
  double t = 0;
  CHECK_EQ(aios_loop_time(loop, &t), 0);
  return t;
}

/* The message of the error of a done future (cancelled or failed). */
static void check_error_message(aios_future_t *f, int kind, const char *message) {
  aios_error_t *err = NULL;
  CHECK_EQ(aios_future_error(f, &err), 0);
  CHECK(err != NULL);
  CHECK_EQ(aios_error_kind(err), kind);
  CHECK_STR_EQ(aios_error_message(err), message);
  CHECK_EQ(aios_error_unref(err), 0);
}

/* ------------------------------------------------------------------------ */
/* A state machine awaiting two sleeps                                        */

typedef struct sm_s {
  int state;
  int steps;
  int v1, v2;
  int answer_freed; /* the result; its destructor counts here */
  aios_future_t *awaiting;
  double t0;
} sm_t;

static int sm_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  sm_t *s = (sm_t *)arg;
  void *value = NULL;

  s->steps++;
  CHECK_EQ(aios_future_done(aios_task_as_future(task)), 0);
  switch (s->state) {
  case 0:
    CHECK(awaited == NULL);
    s->t0 = loop_now(task_loop(task));
    s->state = 1;
    return await_sleep(task, 0.01, &s->v1, &s->awaiting);
  case 1:
    CHECK_PTR_EQ(awaited, s->awaiting);
    drop_kept(&s->awaiting);
    CHECK_EQ(aios_future_done(awaited), 1);
    CHECK_EQ(aios_future_result(awaited, &value), 0);
    CHECK_PTR_EQ(value, &s->v1);
    s->state = 2;
    return await_sleep(task, 0.02, &s->v2, &s->awaiting);
  case 2:
    CHECK_PTR_EQ(awaited, s->awaiting);
    drop_kept(&s->awaiting);
    CHECK_EQ(aios_future_result(awaited, &value), 0);
    CHECK_PTR_EQ(value, &s->v2);
    CHECK(loop_now(task_loop(task)) - s->t0 >= 0.028);
    s->state = 3;
    {
      int rc = aios_task_return(task, &s->answer_freed, count_destructor);
      CHECK_EQ(rc, AIOS_STEP_DONE);
      return rc;
    }
  default:
    CHECK(!"stepped after returning");
    return AIOS_EINVAL;
  }
}

static void test_state_machine_sleeps_and_returns(void) {
  aios_loop_t *loop = make_loop();
  long tasks0 = live_count(AIOS_OBJECT_TASK), futures0 = live_count(AIOS_OBJECT_FUTURE);
  aios_task_t *t;
  sm_t s;
  void *value = NULL;

  memset(&s, 0, sizeof s);
  t = new_task(loop, sm_step, &s);
  CHECK_EQ(live_count(AIOS_OBJECT_TASK), tasks0 + 1);
  CHECK_EQ(live_count(AIOS_OBJECT_FUTURE), futures0); /* a task is not counted as a future */
  /* Scheduled, not run inside aios_task_new. */
  CHECK_EQ(s.steps, 0);
  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(t)), 0);
  CHECK_EQ(s.steps, 3);
  CHECK_EQ(aios_future_done(aios_task_as_future(t)), 1);
  CHECK_EQ(aios_future_cancelled(aios_task_as_future(t)), 0);
  CHECK_EQ(aios_future_result(aios_task_as_future(t), &value), 0);
  CHECK_PTR_EQ(value, &s.answer_freed);
  CHECK_EQ(s.answer_freed, 0);
  CHECK_EQ(aios_task_unref(t), 0);
  CHECK_EQ(s.answer_freed, 1);
  CHECK_EQ(live_count(AIOS_OBJECT_TASK), tasks0);
  close_loop(loop);
}

/* asyncio keeps a running task alive (the loop holds it): dropping every
 * reference right after creating it does not stop it. */
static void test_unreferenced_task_runs_to_completion(void) {
  aios_loop_t *loop = make_loop();
  long tasks0 = live_count(AIOS_OBJECT_TASK);
  aios_task_t *t;
  sm_t s;

  memset(&s, 0, sizeof s);
  t = new_task(loop, sm_step, &s);
  /* The loop stops once the task is done, however long its sleeps take on
   * a slow machine; the registration holds no reference to the task. */
  CHECK_EQ(aios_future_add_done_callback(aios_task_as_future(t), stop_loop_done_cb, loop, NULL), 0);
  CHECK_EQ(aios_task_unref(t), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_EQ(s.steps, 3);
  CHECK_EQ(s.answer_freed, 1);
  CHECK_EQ(live_count(AIOS_OBJECT_TASK), tasks0);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Failing                                                                    */

static int fail_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  aios_error_t *err = NULL;
  int rc;
  (void)awaited;
  CHECK_EQ(aios_error_new(*(int *)arg, "step failed", &err), 0);
  rc = aios_task_fail(task, err);
  CHECK_EQ(rc, AIOS_STEP_DONE);
  CHECK_EQ(aios_error_unref(err), 0);
  return rc;
}

static void test_task_fail(void) {
  aios_loop_t *loop = make_loop();
  int code = AIOS_ETIMEOUT;
  aios_task_t *t = new_task(loop, fail_step, &code);

  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(t)), AIOS_ETIMEOUT);
  CHECK_EQ(aios_future_cancelled(aios_task_as_future(t)), 0);
  CHECK_EQ(aios_future_result(aios_task_as_future(t), NULL), AIOS_ETIMEOUT);
  check_error_message(aios_task_as_future(t), AIOS_ERROR_TIMEOUT, "step failed");
  CHECK_EQ(aios_task_unref(t), 0);
  close_loop(loop);
}

/* A CANCELLED error given to aios_task_fail finishes the task cancelled. */
static void test_task_fail_cancelled_error(void) {
  aios_loop_t *loop = make_loop();
  int code = AIOS_ECANCELLED;
  aios_task_t *t = new_task(loop, fail_step, &code);

  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(t)), AIOS_ECANCELLED);
  CHECK_EQ(aios_future_cancelled(aios_task_as_future(t)), 1);
  CHECK_EQ(aios_task_unref(t), 0);
  close_loop(loop);
}

static int return_code_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  (void)task;
  (void)awaited;
  return *(int *)arg;
}

/* A negative return fails the task with that code; a value that is neither
 * a status nor AWAIT/DONE is AIOS_ESTEP. */
static void test_step_returning_code_fails_task(void) {
  aios_loop_t *loop = make_loop();
  int reset = -ECONNRESET, bogus = 42;
  aios_task_t *t1 = new_task(loop, return_code_step, &reset);
  aios_task_t *t2 = new_task(loop, return_code_step, &bogus);
  aios_error_t *err = NULL;

  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(t1)), -ECONNRESET);
  CHECK_EQ(aios_future_error(aios_task_as_future(t1), &err), 0);
  CHECK_EQ(aios_error_code(err), -ECONNRESET);
  CHECK_EQ(aios_error_kind(err), AIOS_ERROR_OS);
  CHECK_EQ(aios_error_os_errno(err), ECONNRESET);
  CHECK_EQ(aios_error_unref(err), 0);
  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(t2)), AIOS_ESTEP);
  CHECK_EQ(aios_task_unref(t1), 0);
  CHECK_EQ(aios_task_unref(t2), 0);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Cancellation                                                               */

typedef struct cx_s {
  int steps;
  int catch_it;           /* catch the cancellation and go on */
  int cancelling_seen;    /* aios_task_cancelling in the cancelled step */
  int uncancel_rc;
  int uncancel_again_rc;
  int awaited_cancelled;
  int awaited_is_the_sleep;
  char awaited_message[128];
  aios_future_t *awaiting;
  aios_future_t *plain;   /* a future to await instead of a sleep */
  int result;
  double started;
} cx_t;

static int cx_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  cx_t *s = (cx_t *)arg;
  s->steps++;
  if (s->steps == 1) {
    CHECK(awaited == NULL);
    s->started = loop_now(task_loop(task));
    if (s->plain) {
      s->awaiting = s->plain;
      return aios_task_await(task, s->plain);
    }
    return await_sleep(task, 10.0, NULL, &s->awaiting);
  }
  if (s->steps == 2) {
    aios_error_t *err = NULL;
    CHECK(awaited != NULL);
    s->awaited_is_the_sleep = awaited == s->awaiting;
    if (!s->plain)
      drop_kept(&s->awaiting);
    s->awaited_cancelled = aios_future_cancelled(awaited);
    if (s->awaited_cancelled == 1) {
      CHECK_EQ(aios_future_result(awaited, NULL), AIOS_ECANCELLED);
      CHECK_EQ(aios_future_error(awaited, &err), 0);
      CHECK_EQ(aios_error_kind(err), AIOS_ERROR_CANCELLED);
      if (aios_error_message(err))
        snprintf(s->awaited_message, sizeof s->awaited_message, "%s",
                 aios_error_message(err));
      CHECK_EQ(aios_error_unref(err), 0);
    }
    s->cancelling_seen = aios_task_cancelling(task);
    if (!s->catch_it)
      return AIOS_ECANCELLED;
    /* asyncio: except CancelledError: task.uncancel(); go on. */
    s->uncancel_rc = aios_task_uncancel(task);
    s->uncancel_again_rc = aios_task_uncancel(task);
    return await_sleep(task, 0.01, NULL, NULL);
  }
  CHECK_EQ(s->steps, 3);
  CHECK(awaited != NULL);
  CHECK_EQ(aios_future_cancelled(awaited), 0);
  return aios_task_return(task, &s->result, NULL);
}

typedef struct canceller_s {
  aios_task_t *task;
  const char *message;
  int times;       /* how many cancel requests */
  int uncancels;   /* then how many uncancels */
  int rcs[4];
  int cancelling[4];
  int uncancel_rcs[4];
} canceller_t;

static void canceller_cb(void *arg) {
  canceller_t *c = (canceller_t *)arg;
  int i;
  for (i = 0; i < c->times; i++) {
    c->rcs[i] = aios_task_cancel(c->task, c->message);
    c->cancelling[i] = aios_task_cancelling(c->task);
  }
  for (i = 0; i < c->uncancels; i++)
    c->uncancel_rcs[i] = aios_task_uncancel(c->task);
}

/* asyncio: cancel() while the task awaits a sleep cancels the sleep (and its
 * timer); the task sees the cancelled future; letting the cancellation
 * propagate finishes the task cancelled, carrying the message. */
static void test_cancel_while_sleeping(void) {
  aios_loop_t *loop = make_loop();
  cx_t s;
  canceller_t c;
  aios_task_t *t;

  memset(&s, 0, sizeof s);
  memset(&c, 0, sizeof c);
  t = new_task(loop, cx_step, &s);
  c.task = t;
  c.message = "stop it";
  c.times = 1;
  CHECK_EQ(aios_loop_call_later(loop, 0.02, canceller_cb, &c, NULL, NULL), 0);
  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(t)), AIOS_ECANCELLED);
  CHECK_EQ(c.rcs[0], 1);
  CHECK_EQ(c.cancelling[0], 1);
  CHECK_EQ(s.steps, 2);
  CHECK_EQ(s.awaited_is_the_sleep, 1);
  CHECK_EQ(s.awaited_cancelled, 1);
  CHECK_STR_EQ(s.awaited_message, "stop it");
  CHECK_EQ(s.cancelling_seen, 1);
  CHECK(loop_now(loop) - s.started < 5.0);
  CHECK_EQ(aios_future_cancelled(aios_task_as_future(t)), 1);
  CHECK_EQ(aios_future_result(aios_task_as_future(t), NULL), AIOS_ECANCELLED);
  /* (The task's own error message is not checked: the step ended it by
   * returning AIOS_ECANCELLED, which carries no message, and CPython gives
   * the message only to the first retrieval.) */
  /* Done: cancel is refused now. */
  CHECK_EQ(aios_task_cancel(t, NULL), 0);
  CHECK_EQ(aios_task_unref(t), 0);
  close_loop(loop);
}

/* A task that catches its cancellation (uncancel, go on) ends with its own
 * result, not cancelled. */
static void test_task_catches_cancellation(void) {
  aios_loop_t *loop = make_loop();
  cx_t s;
  canceller_t c;
  aios_task_t *t;
  void *value = NULL;

  memset(&s, 0, sizeof s);
  memset(&c, 0, sizeof c);
  s.catch_it = 1;
  t = new_task(loop, cx_step, &s);
  c.task = t;
  c.message = "please";
  c.times = 1;
  CHECK_EQ(aios_loop_call_later(loop, 0.02, canceller_cb, &c, NULL, NULL), 0);
  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(t)), 0);
  CHECK_EQ(s.steps, 3);
  CHECK_EQ(s.awaited_cancelled, 1);
  CHECK_EQ(s.cancelling_seen, 1);
  CHECK_EQ(s.uncancel_rc, 0);
  CHECK_EQ(s.uncancel_again_rc, 0); /* never below zero */
  CHECK_EQ(aios_task_cancelling(t), 0);
  CHECK_EQ(aios_future_cancelled(aios_task_as_future(t)), 0);
  CHECK_EQ(aios_future_result(aios_task_as_future(t), &value), 0);
  CHECK_PTR_EQ(value, &s.result);
  CHECK_EQ(aios_task_unref(t), 0);
  close_loop(loop);
}

/* asyncio 3.11+: each cancel() adds a request (and returns True while the
 * task is not done); uncancel() takes one back. The cancellation is
 * delivered once. */
static void test_cancelling_counts_requests(void) {
  aios_loop_t *loop = make_loop();
  cx_t s;
  canceller_t c;
  aios_task_t *t;

  memset(&s, 0, sizeof s);
  memset(&c, 0, sizeof c);
  s.catch_it = 1;
  t = new_task(loop, cx_step, &s);
  CHECK_EQ(aios_task_cancelling(t), 0);
  c.task = t;
  c.times = 3;
  c.uncancels = 2;
  CHECK_EQ(aios_loop_call_later(loop, 0.02, canceller_cb, &c, NULL, NULL), 0);
  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(t)), 0);
  CHECK_EQ(c.rcs[0], 1);
  CHECK_EQ(c.rcs[1], 1);
  CHECK_EQ(c.rcs[2], 1);
  CHECK_EQ(c.cancelling[0], 1);
  CHECK_EQ(c.cancelling[1], 2);
  CHECK_EQ(c.cancelling[2], 3);
  CHECK_EQ(c.uncancel_rcs[0], 2);
  CHECK_EQ(c.uncancel_rcs[1], 1);
  CHECK_EQ(s.cancelling_seen, 1);
  CHECK_EQ(s.uncancel_rc, 0);
  CHECK_EQ(s.steps, 3);
  CHECK_EQ(aios_task_cancelling(t), 0);
  CHECK_EQ(aios_future_cancelled(aios_task_as_future(t)), 0);
  CHECK_EQ(aios_task_unref(t), 0);
  close_loop(loop);
}

static int g_never_stepped_calls;

static int never_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  (void)task;
  (void)awaited;
  (void)arg;
  g_never_stepped_calls++;
  return AIOS_ECANCELLED;
}

/* asyncio: a task cancelled before it started never runs its body. Its
 * argument is still destroyed once, when the task is freed. */
static void test_cancel_before_first_step(void) {
  aios_loop_t *loop = make_loop();
  aios_task_options_t opts;
  aios_task_t *t = NULL;
  int arg_freed = 0;

  memset(&opts, 0, sizeof opts);
  opts.size = sizeof opts;
  opts.arg_destructor = count_destructor;
  g_never_stepped_calls = 0;
  CHECK_EQ(aios_task_new(loop, never_step, &arg_freed, &opts, &t), 0);
  CHECK_EQ(aios_task_cancel(t, "early"), 1);
  CHECK_EQ(aios_task_cancelling(t), 1);
  CHECK_EQ(aios_future_done(aios_task_as_future(t)), 0);
  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(t)), AIOS_ECANCELLED);
  CHECK_EQ(g_never_stepped_calls, 0);
  CHECK_EQ(aios_future_cancelled(aios_task_as_future(t)), 1);
  check_error_message(aios_task_as_future(t), AIOS_ERROR_CANCELLED, "early");
  CHECK_EQ(arg_freed, 0);
  CHECK_EQ(aios_task_unref(t), 0);
  CHECK_EQ(arg_freed, 1);
  close_loop(loop);
}

/* A future that is a task gives its task back; one that is not, NULL, and
 * so does a freed handle. */
static void test_future_as_task(void) {
  aios_loop_t *loop = make_loop();
  aios_task_t *t = NULL;
  aios_future_t *plain = NULL, *as_future;
  CHECK_EQ(aios_task_new(loop, never_step, NULL, NULL, &t), 0);
  as_future = aios_task_as_future(t);
  CHECK(aios_future_as_task(as_future) == t);
  CHECK_EQ(aios_future_new(loop, &plain), 0);
  CHECK(aios_future_as_task(plain) == NULL);
  CHECK(aios_future_as_task(NULL) == NULL);
  CHECK_EQ(aios_task_cancel(t, NULL), 1);
  CHECK_EQ(aios_loop_run_until_complete(loop, as_future), AIOS_ECANCELLED);
  CHECK_EQ(aios_task_unref(t), 0);
  CHECK(aios_future_as_task(as_future) == NULL);
  CHECK_EQ(aios_future_unref(plain), 0);
  close_loop(loop);
}

typedef struct late_s {
  aios_future_t *plain;
  aios_task_t *task;
  int value;
  int cancel_rc;
} late_t;

static void finish_then_cancel_cb(void *arg) {
  late_t *l = (late_t *)arg;
  CHECK_EQ(aios_future_set_result(l->plain, &l->value, NULL), 0);
  l->cancel_rc = aios_task_cancel(l->task, "late cancel");
}

/* The awaited future finished, then cancel() came before the task stepped:
 * the step gets a fresh cancelled future, and the awaited one keeps its
 * result. */
static void test_cancel_after_awaited_done_before_step(void) {
  aios_loop_t *loop = make_loop();
  cx_t s;
  late_t l;
  aios_task_t *t;

  memset(&s, 0, sizeof s);
  memset(&l, 0, sizeof l);
  CHECK_EQ(aios_future_new(loop, &l.plain), 0);
  s.plain = l.plain;
  t = new_task(loop, cx_step, &s);
  l.task = t;
  /* Runs right after the task's first step, in the same iteration. */
  CHECK_EQ(aios_loop_call_soon(loop, finish_then_cancel_cb, &l, NULL, NULL), 0);
  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(t)), AIOS_ECANCELLED);
  CHECK_EQ(l.cancel_rc, 1);
  CHECK_EQ(s.steps, 2);
  CHECK_EQ(s.awaited_is_the_sleep, 0);
  CHECK_EQ(s.awaited_cancelled, 1);
  CHECK_STR_EQ(s.awaited_message, "late cancel");
  CHECK_EQ(aios_future_cancelled(l.plain), 0);
  CHECK_EQ(aios_future_result(l.plain, NULL), 0);
  CHECK_EQ(aios_future_cancelled(aios_task_as_future(t)), 1);
  CHECK_EQ(aios_task_unref(t), 0);
  CHECK_EQ(aios_future_unref(l.plain), 0);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Eager tasks                                                                */

typedef struct eager_s {
  int steps;
  int current_was_self;
  int immediate;         /* return at once */
  int result;
} eager_t;

static int eager_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  eager_t *e = (eager_t *)arg;
  aios_task_t *cur = NULL;
  e->steps++;
  CHECK_EQ(aios_current_task(task_loop(task), &cur), 0);
  e->current_was_self = cur == task;
  CHECK_EQ(aios_task_unref(cur), 0);
  if (e->immediate || e->steps > 1) {
    if (e->steps > 1)
      CHECK(awaited != NULL);
    return aios_task_return(task, &e->result, NULL);
  }
  return await_sleep(task, 0.01, NULL, NULL);
}

typedef struct eager_cb_s {
  aios_loop_t *loop;
  eager_t slow, quick;
  aios_task_t *slow_task, *quick_task;
  int slow_steps_after_new, slow_done_after_new;
  int quick_steps_after_new, quick_done_after_new, quick_result_rc;
  void *quick_value;
  aios_task_t *current_after;
} eager_cb_t;

static void eager_cb(void *arg) {
  eager_cb_t *c = (eager_cb_t *)arg;
  aios_task_options_t opts;

  memset(&opts, 0, sizeof opts);
  opts.size = sizeof opts;
  opts.eager = 1;
  CHECK_EQ(aios_task_new(c->loop, eager_step, &c->slow, &opts, &c->slow_task), 0);
  c->slow_steps_after_new = c->slow.steps;
  c->slow_done_after_new = aios_future_done(aios_task_as_future(c->slow_task));
  CHECK_EQ(aios_task_new(c->loop, eager_step, &c->quick, &opts, &c->quick_task), 0);
  c->quick_steps_after_new = c->quick.steps;
  c->quick_done_after_new = aios_future_done(aios_task_as_future(c->quick_task));
  c->quick_result_rc = aios_future_result(aios_task_as_future(c->quick_task), &c->quick_value);
  /* Back in a plain callback: no current task. */
  CHECK_EQ(aios_current_task(c->loop, &c->current_after), 0);
  CHECK_EQ(aios_loop_stop(c->loop), 0);
}

/* asyncio's eager_start: the first step runs inside task creation (here from
 * a callback of the running loop), as the current task; a task finishing
 * there is returned done. */
static void test_eager_task(void) {
  aios_loop_t *loop = make_loop();
  eager_cb_t c;

  memset(&c, 0, sizeof c);
  c.loop = loop;
  c.quick.immediate = 1;
  CHECK_EQ(aios_loop_call_soon(loop, eager_cb, &c, NULL, NULL), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_EQ(c.slow_steps_after_new, 1);
  CHECK_EQ(c.slow_done_after_new, 0);
  CHECK_EQ(c.slow.current_was_self, 1);
  CHECK_EQ(c.quick_steps_after_new, 1);
  CHECK_EQ(c.quick_done_after_new, 1);
  CHECK_EQ(c.quick_result_rc, 0);
  CHECK_PTR_EQ(c.quick_value, &c.quick.result);
  CHECK_EQ(c.quick.current_was_self, 1);
  CHECK(c.current_after == NULL);
  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(c.slow_task)), 0);
  CHECK_EQ(c.slow.steps, 2);
  CHECK_EQ(c.quick.steps, 1);
  CHECK_EQ(aios_task_unref(c.slow_task), 0);
  CHECK_EQ(aios_task_unref(c.quick_task), 0);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Names, current task, all tasks                                            */

static int parse_task_number(const char *name) {
  char *end = NULL;
  long n;
  CHECK(name != NULL);
  CHECK(strncmp(name, "Task-", 5) == 0);
  n = strtol(name + 5, &end, 10);
  CHECK(end != name + 5 && *end == '\0');
  CHECK(n > 0);
  return (int)n;
}

/* Runs a cancelled task to its end and drops it. */
static void finish_cancelled(aios_loop_t *loop, aios_task_t *t) {
  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(t)), AIOS_ECANCELLED);
  CHECK_EQ(aios_future_cancelled(aios_task_as_future(t)), 1);
  CHECK_EQ(aios_task_unref(t), 0);
}

/* Awaits the future passed as arg (which never completes) until cancelled. */
static int park_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  if (awaited == NULL)
    return aios_task_await(task, (aios_future_t *)arg);
  CHECK_EQ(aios_future_cancelled(awaited), 1);
  return AIOS_ECANCELLED;
}

static void test_task_names(void) {
  aios_loop_t *loop = make_loop();
  aios_task_options_t opts;
  aios_task_t *t1, *t2, *t3 = NULL;
  char name[] = "custom";
  int n1, n2;

  t1 = new_task(loop, never_step, NULL);
  t2 = new_task(loop, never_step, NULL);
  n1 = parse_task_number(aios_task_get_name(t1));
  n2 = parse_task_number(aios_task_get_name(t2));
  CHECK_EQ(n2, n1 + 1);

  CHECK_EQ(aios_task_set_name(t1, "worker"), 0);
  CHECK_STR_EQ(aios_task_get_name(t1), "worker");
  CHECK_EQ(aios_task_set_name(t1, "worker-2"), 0);
  CHECK_STR_EQ(aios_task_get_name(t1), "worker-2");

  memset(&opts, 0, sizeof opts);
  opts.size = sizeof opts;
  opts.name = name;
  CHECK_EQ(aios_task_new(loop, never_step, NULL, &opts, &t3), 0);
  name[0] = 'X'; /* the name was copied */
  CHECK_STR_EQ(aios_task_get_name(t3), "custom");

  g_never_stepped_calls = 0;
  CHECK_EQ(aios_task_cancel(t1, NULL), 1);
  CHECK_EQ(aios_task_cancel(t2, NULL), 1);
  CHECK_EQ(aios_task_cancel(t3, NULL), 1);
  finish_cancelled(loop, t1);
  finish_cancelled(loop, t2);
  finish_cancelled(loop, t3);
  CHECK_EQ(g_never_stepped_calls, 0);
  close_loop(loop);
}

typedef struct cur_s {
  aios_task_t *seen;
  int steps;
} cur_t;

static int current_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  cur_t *c = (cur_t *)arg;
  (void)awaited;
  c->steps++;
  CHECK_EQ(aios_current_task(task_loop(task), &c->seen), 0);
  CHECK_PTR_EQ(c->seen, task);
  CHECK_EQ(aios_task_unref(c->seen), 0);
  if (c->steps < 2)
    return aios_task_await(task, NULL);
  return aios_task_return(task, NULL, NULL);
}

static void record_current_cb(void *arg) {
  aios_task_t **out = (aios_task_t **)arg;
  aios_loop_t *loop = NULL;
  CHECK_EQ(aios_get_running_loop(&loop), 0);
  CHECK_EQ(aios_current_task(loop, out), 0);
  CHECK_EQ(aios_loop_unref(loop), 0);
}

static void test_current_task(void) {
  aios_loop_t *loop = make_loop();
  aios_task_t *cur = (aios_task_t *)&cur; /* must be overwritten */
  aios_task_t *in_cb = (aios_task_t *)&cur;
  aios_task_t *t;
  cur_t c;

  memset(&c, 0, sizeof c);
  CHECK_EQ(aios_current_task(loop, &cur), 0);
  CHECK(cur == NULL);
  t = new_task(loop, current_step, &c);
  CHECK_EQ(aios_loop_call_soon(loop, record_current_cb, &in_cb, NULL, NULL), 0);
  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(t)), 0);
  CHECK_EQ(c.steps, 2);
  CHECK(in_cb == NULL);
  cur = (aios_task_t *)&cur;
  CHECK_EQ(aios_current_task(loop, &cur), 0);
  CHECK(cur == NULL);
  CHECK_EQ(aios_task_unref(t), 0);
  close_loop(loop);
}

static void test_all_tasks(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *never[3];
  aios_task_t *t[3], *got[2] = {NULL, NULL};
  int i, j;

  CHECK_EQ(aios_all_tasks(loop, NULL, 0), 0);
  /* One future each: cancelling a task cancels the future it awaits. */
  for (i = 0; i < 3; i++) {
    CHECK_EQ(aios_future_new(loop, &never[i]), 0);
    t[i] = new_task(loop, park_step, never[i]);
  }
  /* Not started yet, but not done: counted. */
  CHECK_EQ(aios_all_tasks(loop, NULL, 0), 3);
  /* Fills up to capacity, returns the total. */
  CHECK_EQ(aios_all_tasks(loop, got, 2), 3);
  for (i = 0; i < 2; i++) {
    int found = 0;
    for (j = 0; j < 3; j++)
      found += got[i] == t[j];
    CHECK_EQ(found, 1);
  }
  CHECK(got[0] != got[1]);
  CHECK_EQ(aios_task_unref(got[0]), 0);
  CHECK_EQ(aios_task_unref(got[1]), 0);
  /* Started and waiting: still counted. */
  run_once(loop);
  CHECK_EQ(aios_all_tasks(loop, NULL, 0), 3);
  /* Done tasks are not. */
  CHECK_EQ(aios_task_cancel(t[1], NULL), 1);
  finish_cancelled(loop, t[1]);
  CHECK_EQ(aios_all_tasks(loop, NULL, 0), 2);
  CHECK_EQ(aios_future_cancelled(never[1]), 1);
  CHECK_EQ(aios_future_done(never[0]), 0);
  CHECK_EQ(aios_task_cancel(t[0], NULL), 1);
  CHECK_EQ(aios_task_cancel(t[2], NULL), 1);
  finish_cancelled(loop, t[0]);
  finish_cancelled(loop, t[2]);
  CHECK_EQ(aios_all_tasks(loop, NULL, 0), 0);
  for (i = 0; i < 3; i++)
    CHECK_EQ(aios_future_unref(never[i]), 0);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Yielding: exactly one iteration                                           */

typedef struct yielder_s {
  const char *name;
  int steps;
  int bare; /* bare yield instead of aios_sleep(0) */
  aios_future_t *awaiting;
  int value;
} yielder_t;

static int yielder_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  yielder_t *y = (yielder_t *)arg;
  char word[32];

  snprintf(word, sizeof word, "%s%d", y->name, y->steps);
  log_event(word);
  if (y->steps > 0) {
    if (y->bare) {
      CHECK(awaited == NULL);
    } else {
      void *v = NULL;
      CHECK_PTR_EQ(awaited, y->awaiting);
      drop_kept(&y->awaiting);
      CHECK_EQ(aios_future_result(awaited, &v), 0);
      CHECK_PTR_EQ(v, &y->value);
    }
  }
  if (++y->steps == 3)
    return aios_task_return(task, NULL, NULL);
  if (y->bare)
    return aios_task_await(task, NULL);
  {
    aios_future_t *f = NULL;
    int rc;
    CHECK_EQ(aios_sleep(task_loop(task), 0, &y->value, NULL, &f), 0);
    /* delay 0: already done. */
    CHECK_EQ(aios_future_done(f), 1);
    y->awaiting = f; /* kept until the next step */
    rc = aios_task_await(task, f);
    CHECK_EQ(rc, AIOS_STEP_AWAIT);
    return rc;
  }
}

static aios_loop_t *g_chain_loop;
static int g_chain_n;

static void chain_cb(void *arg) {
  char word[16];
  (void)arg;
  snprintf(word, sizeof word, "C%d", g_chain_n);
  log_event(word);
  if (++g_chain_n < 3)
    CHECK_EQ(aios_loop_call_soon(g_chain_loop, chain_cb, NULL, NULL, NULL), 0);
  else
    CHECK_EQ(aios_loop_stop(g_chain_loop), 0);
}

/* asyncio: `await asyncio.sleep(0)` (or a bare yield) gives way for exactly
 * one loop iteration, so two tasks and a call_soon chain interleave step by
 * step: A0 B0 C0 A1 B1 C1 A2 B2 C2. */
static void check_interleaving(int bare) {
  aios_loop_t *loop = make_loop();
  yielder_t a, b;
  aios_task_t *ta, *tb;

  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  a.name = "A";
  b.name = "B";
  a.bare = b.bare = bare;
  g_chain_loop = loop;
  g_chain_n = 0;
  ta = new_task(loop, yielder_step, &a);
  tb = new_task(loop, yielder_step, &b);
  CHECK_EQ(aios_loop_call_soon(loop, chain_cb, NULL, NULL, NULL), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_LOG("A0 B0 C0 A1 B1 C1 A2 B2 C2");
  CHECK_EQ(aios_future_done(aios_task_as_future(ta)), 1);
  CHECK_EQ(aios_future_done(aios_task_as_future(tb)), 1);
  CHECK_EQ(aios_task_unref(ta), 0);
  CHECK_EQ(aios_task_unref(tb), 0);
  close_loop(loop);
}

static void test_sleep0_yields_one_iteration(void) { check_interleaving(0); }

static void test_bare_yield_yields_one_iteration(void) { check_interleaving(1); }

/* ------------------------------------------------------------------------ */
/* Awaiting other things                                                      */

typedef struct awaiter_s {
  aios_future_t *target;
  int await_rc;
  int steps;
  void *got;
} awaiter_t;

static int await_target_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  awaiter_t *w = (awaiter_t *)arg;
  w->steps++;
  if (w->steps == 1) {
    w->await_rc = aios_task_await(task, w->target);
    return w->await_rc;
  }
  CHECK_PTR_EQ(awaited, w->target);
  CHECK_EQ(aios_future_result(awaited, &w->got), 0);
  return aios_task_return(task, w->got, NULL);
}

/* asyncio: "Task got Future attached to a different loop". */
static void test_await_future_of_other_loop(void) {
  aios_loop_t *loop = make_loop(), *other = make_loop();
  aios_future_t *foreign = NULL;
  awaiter_t w;
  aios_task_t *t;

  memset(&w, 0, sizeof w);
  CHECK_EQ(aios_future_new(other, &foreign), 0);
  w.target = foreign;
  t = new_task(loop, await_target_step, &w);
  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(t)), AIOS_EWRONGLOOP);
  CHECK_EQ(w.await_rc, AIOS_EWRONGLOOP);
  CHECK_EQ(w.steps, 1);
  CHECK_EQ(aios_future_done(foreign), 0);
  CHECK_EQ(aios_task_unref(t), 0);
  CHECK_EQ(aios_future_unref(foreign), 0);
  close_loop(other);
  close_loop(loop);
}

/* asyncio: "Task cannot await on itself". */
static void test_await_itself(void) {
  aios_loop_t *loop = make_loop();
  awaiter_t w;
  aios_task_t *t;

  memset(&w, 0, sizeof w);
  t = new_task(loop, await_target_step, &w);
  w.target = aios_task_as_future(t);
  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(t)), AIOS_EINVAL);
  CHECK_EQ(w.await_rc, AIOS_EINVAL);
  CHECK_EQ(aios_task_unref(t), 0);
  close_loop(loop);
}

/* A task awaits another task and gets its result. */
static void test_await_another_task(void) {
  aios_loop_t *loop = make_loop();
  sm_t s;
  awaiter_t w;
  aios_task_t *inner, *outer;

  memset(&s, 0, sizeof s);
  memset(&w, 0, sizeof w);
  inner = new_task(loop, sm_step, &s);
  w.target = aios_task_as_future(inner);
  outer = new_task(loop, await_target_step, &w);
  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(outer)), 0);
  CHECK_EQ(w.await_rc, AIOS_STEP_AWAIT);
  CHECK_EQ(w.steps, 2);
  CHECK_PTR_EQ(w.got, &s.answer_freed);
  CHECK_EQ(aios_task_unref(outer), 0);
  CHECK_EQ(aios_task_unref(inner), 0);
  CHECK_EQ(s.answer_freed, 1);
  close_loop(loop);
}

/* A step that awaits a future and drops its own reference gets the same
 * pointer back as `awaited`: the task's reference is held through it, and
 * dropped once that step is over. A step that awaits and then fails drops
 * it at once. */
typedef struct dropper_s {
  aios_future_t *awaited_ptr;
  int steps;
  int fail_after_await;
  void *got;
} dropper_t;

static int drop_awaited_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  dropper_t *d = (dropper_t *)arg;
  aios_loop_t *loop = NULL;
  d->steps++;
  if (d->steps == 1) {
    CHECK_EQ(aios_get_running_loop(&loop), 0);
    CHECK_EQ(aios_sleep(loop, 0.001, &d->steps, NULL, &d->awaited_ptr), 0);
    CHECK_EQ(aios_loop_unref(loop), 0);
    int rc = aios_task_await(task, d->awaited_ptr);
    CHECK_EQ(rc, AIOS_STEP_AWAIT);
    CHECK_EQ(aios_future_unref(d->awaited_ptr), 0);
    /* Still named by the task's reference. */
    CHECK_EQ(aios_future_done(d->awaited_ptr), 0);
    return d->fail_after_await ? AIOS_EINVAL : rc;
  }
  CHECK_PTR_EQ(awaited, d->awaited_ptr);
  CHECK_EQ(aios_future_result(awaited, &d->got), 0);
  return aios_task_return(task, NULL, NULL);
}

static void test_awaited_comes_back_under_the_same_pointer(void) {
  aios_loop_t *loop = make_loop();
  for (int fail = 0; fail < 2; fail++) {
    dropper_t d;
    memset(&d, 0, sizeof d);
    d.fail_after_await = fail;
    aios_task_t *t = new_task(loop, drop_awaited_step, &d);
    CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(t)), fail ? AIOS_EINVAL : 0);
    CHECK_EQ(d.steps, fail ? 1 : 2);
    if (!fail) CHECK_PTR_EQ(d.got, &d.steps);
    /* The task's reference is gone with the step: the pointer is dead. */
    CHECK_EQ(aios_future_done(d.awaited_ptr), AIOS_EBADHANDLE);
    CHECK_EQ(aios_task_unref(t), 0);
  }
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Unretrieved task errors                                                    */

/* asyncio: "Task exception was never retrieved", reported when the task is
 * freed. One extra iteration is allowed in case the report is scheduled. */
static void test_task_unretrieved_error_reported(void) {
  aios_loop_t *loop = make_loop();
  int code = -EPIPE;
  exc_record_t r;
  aios_task_t *t;

  memset(&r, 0, sizeof r);
  CHECK_EQ(aios_loop_set_exception_handler(loop, exc_recorder, &r), 0);
  t = new_task(loop, fail_step, &code);
  /* Run without run_until_complete, which would retrieve the error. */
  CHECK_EQ(aios_future_add_done_callback(aios_task_as_future(t), stop_loop_done_cb, loop, NULL), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_EQ(aios_future_done(aios_task_as_future(t)), 1);
  CHECK_EQ(r.calls, 0);
  CHECK_EQ(aios_task_unref(t), 0);
  if (r.calls == 0)
    run_once(loop);
  CHECK_EQ(r.calls, 1);
  CHECK_EQ(r.had_message, 1);
  CHECK_EQ(r.had_error, 1);
  CHECK_EQ(r.error_code, -EPIPE);
  CHECK_STR_EQ(r.error_message, "step failed");
  close_loop(loop);
}

/* Retrieved by run_until_complete: nothing to report. */
static void test_task_retrieved_error_not_reported(void) {
  aios_loop_t *loop = make_loop();
  int code = -EPIPE;
  exc_record_t r;
  aios_task_t *t;

  memset(&r, 0, sizeof r);
  CHECK_EQ(aios_loop_set_exception_handler(loop, exc_recorder, &r), 0);
  t = new_task(loop, fail_step, &code);
  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(t)), -EPIPE);
  CHECK_EQ(aios_task_unref(t), 0);
  run_once(loop);
  CHECK_EQ(r.calls, 0);
  close_loop(loop);
}

TEST_MAIN(TEST_ENTRY(test_state_machine_sleeps_and_returns),
          TEST_ENTRY(test_unreferenced_task_runs_to_completion),
          TEST_ENTRY(test_task_fail),
          TEST_ENTRY(test_task_fail_cancelled_error),
          TEST_ENTRY(test_step_returning_code_fails_task),
          TEST_ENTRY(test_cancel_while_sleeping),
          TEST_ENTRY(test_task_catches_cancellation),
          TEST_ENTRY(test_cancelling_counts_requests),
          TEST_ENTRY(test_cancel_before_first_step),
          TEST_ENTRY(test_future_as_task),
          TEST_ENTRY(test_cancel_after_awaited_done_before_step),
          TEST_ENTRY(test_eager_task),
          TEST_ENTRY(test_task_names),
          TEST_ENTRY(test_current_task),
          TEST_ENTRY(test_all_tasks),
          TEST_ENTRY(test_sleep0_yields_one_iteration),
          TEST_ENTRY(test_bare_yield_yields_one_iteration),
          TEST_ENTRY(test_await_future_of_other_loop),
          TEST_ENTRY(test_await_itself),
          TEST_ENTRY(test_await_another_task),
          TEST_ENTRY(test_awaited_comes_back_under_the_same_pointer),
          TEST_ENTRY(test_task_unretrieved_error_reported),
          TEST_ENTRY(test_task_retrieved_error_not_reported))
