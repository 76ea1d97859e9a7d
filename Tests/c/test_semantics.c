/*
 * test_semantics.c: cases where CPython's asyncio and the C ABI once
 * differed, each checked against what CPython 3.13 does with the same
 * program; and the everyday calls of a C task (fire-and-forget tasks, the
 * borrowed loop, awaiting a future the step made, relative timeouts).
 */
#include "test_util.h"

#include <math.h>
#include <stdint.h>

/* A step that logs what it awaited, then ends with that status. */
typedef struct waiter_s {
  aios_future_t *target; /* awaited on the first step (borrowed) */
  int steps;
  int status;            /* the awaited future's status */
  int cancelled;         /* aios_future_cancelled(awaited) */
  char message[64];      /* the awaited future's error message */
} waiter_t;

static int waiter_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  waiter_t *w = arg;
  aios_error_t *error = NULL;
  if (w->steps++ == 0) return aios_task_await(task, w->target);
  w->status = aios_future_result(awaited, NULL);
  w->cancelled = aios_future_cancelled(awaited);
  if (aios_future_error(awaited, &error) == 0 && error) {
    snprintf(w->message, sizeof w->message, "%s", aios_error_message(error));
    aios_error_unref(error);
  }
  return w->status == 0 ? aios_task_return(task, NULL, NULL) : w->status;
}

static void run_loop_until(aios_loop_t *loop, aios_future_t *f) {
  int rc = aios_loop_run_until_complete(loop, f);
  (void)rc;
  CHECK_EQ(aios_future_done(f), 1);
}

/* ------------------------------------------------------------------------ */
/* Cancellation messages                                                      */

/* cancel("first") then cancel("second") on a task awaiting a future: the
 * first message is what the task sees (CPython 3.13: "first"). */
static void test_first_cancel_message_wins(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *never = NULL;
  aios_task_t *task = NULL;
  waiter_t w;
  memset(&w, 0, sizeof w);
  CHECK_EQ(aios_future_new(loop, &never), 0);
  w.target = never;
  CHECK_EQ(aios_task_new(loop, waiter_step, &w, NULL, &task), 0);
  run_once(loop);
  CHECK_EQ(aios_task_cancel(task, "first"), 1);
  CHECK_EQ(aios_task_cancel(task, "second"), 1);
  CHECK_EQ(aios_task_cancelling(task), 2);
  run_loop_until(loop, aios_task_as_future(task));
  CHECK_EQ(w.status, AIOS_ECANCELLED);
  CHECK_STR_EQ(w.message, "first");
  CHECK_EQ(aios_task_unref(task), 0);
  CHECK_EQ(aios_future_unref(never), 0);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* gather                                                                     */

/* A gather whose child is cancelled is not cancelled itself: it fails with
 * the child's CancelledError (CPython: cancelled() is False, result()
 * raises CancelledError). */
static void test_gather_of_cancelled_child_fails_with_cancelled_error(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *a = NULL, *b = NULL, *kids[2], *g = NULL;
  aios_error_t *error = NULL;
  CHECK_EQ(aios_future_new(loop, &a), 0);
  CHECK_EQ(aios_future_new(loop, &b), 0);
  kids[0] = a;
  kids[1] = b;
  CHECK_EQ(aios_gather(loop, kids, 2, 0, &g), 0);
  CHECK_EQ(aios_future_cancel(a, "child"), 1);
  run_loop_until(loop, g);
  CHECK_EQ(aios_future_cancelled(g), 0);
  CHECK_EQ(aios_future_result(g, NULL), AIOS_ECANCELLED);
  CHECK_EQ(aios_future_error(g, &error), 0);
  CHECK_EQ(aios_error_kind(error), AIOS_ERROR_CANCELLED);
  CHECK_STR_EQ(aios_error_message(error), "child");
  CHECK_EQ(aios_error_unref(error), 0);
  CHECK_EQ(aios_future_cancel(b, NULL), 1);
  run_once(loop);
  CHECK_EQ(aios_future_unref(g), 0);
  CHECK_EQ(aios_future_unref(a), 0);
  CHECK_EQ(aios_future_unref(b), 0);
  close_loop(loop);
}

/* Cancelling the gather itself: the same outcome, and a task awaiting it
 * ends cancelled. */
static void test_cancelled_gather_fails_with_cancelled_error(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *a = NULL, *g = NULL;
  aios_task_t *task = NULL;
  waiter_t w;
  memset(&w, 0, sizeof w);
  CHECK_EQ(aios_future_new(loop, &a), 0);
  CHECK_EQ(aios_gather(loop, &a, 1, 1, &g), 0);
  w.target = g;
  CHECK_EQ(aios_task_new(loop, waiter_step, &w, NULL, &task), 0);
  run_once(loop);
  CHECK_EQ(aios_future_cancel(g, "outer"), 1);
  run_loop_until(loop, aios_task_as_future(task));
  CHECK_EQ(w.cancelled, 0);
  CHECK_EQ(w.status, AIOS_ECANCELLED);
  CHECK_STR_EQ(w.message, "outer");
  CHECK_EQ(aios_future_cancelled(aios_task_as_future(task)), 1);
  CHECK_EQ(aios_future_cancelled(a), 1);
  CHECK_EQ(aios_task_unref(task), 0);
  CHECK_EQ(aios_future_unref(g), 0);
  CHECK_EQ(aios_future_unref(a), 0);
  close_loop(loop);
}

/* After a gather failed, a later child's error is the gather's to retrieve,
 * even once nobody holds the gather: nothing reaches the handler. */
static void test_gather_retrieves_late_errors(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *a = NULL, *b = NULL, *kids[2], *g = NULL;
  aios_error_t *boom = NULL;
  exc_record_t record;
  memset(&record, 0, sizeof record);
  CHECK_EQ(aios_loop_set_exception_handler(loop, exc_recorder, &record), 0);
  CHECK_EQ(aios_error_new(-ECONNRESET, NULL, &boom), 0);
  CHECK_EQ(aios_future_new(loop, &a), 0);
  CHECK_EQ(aios_future_new(loop, &b), 0);
  kids[0] = a;
  kids[1] = b;
  CHECK_EQ(aios_gather(loop, kids, 2, 0, &g), 0);
  CHECK_EQ(aios_future_set_error(a, boom), 0);
  run_loop_until(loop, g);
  CHECK_EQ(aios_future_result(g, NULL), -ECONNRESET);
  CHECK_EQ(aios_future_unref(g), 0); /* nobody holds the gather now */
  CHECK_EQ(aios_future_set_error(b, boom), 0);
  run_once(loop);
  CHECK_EQ(aios_future_unref(a), 0);
  CHECK_EQ(aios_future_unref(b), 0);
  run_once(loop);
  CHECK_EQ(record.calls, 0);
  CHECK_EQ(aios_error_unref(boom), 0);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* call_soon_threadsafe on the loop's thread                                  */

static void log_word_cb(void *arg) { log_event((const char *)arg); }

/* One queue, as CPython's: call_soon and call_soon_threadsafe from the
 * loop's thread run in the order they were made. */
static void test_threadsafe_keeps_fifo_with_call_soon(void) {
  aios_loop_t *loop = make_loop();
  aios_handle_t *h = NULL;
  CHECK_EQ(aios_loop_call_soon(loop, log_word_cb, "a", NULL, NULL), 0);
  CHECK_EQ(aios_loop_call_soon_threadsafe(loop, log_word_cb, "b", NULL, NULL), 0);
  CHECK_EQ(aios_loop_call_soon(loop, log_word_cb, "c", NULL, NULL), 0);
  CHECK_EQ(aios_loop_call_soon_threadsafe(loop, log_word_cb, "d", NULL, &h), 0);
  CHECK_EQ(aios_loop_call_soon(loop, log_word_cb, "e", NULL, NULL), 0);
  run_once(loop);
  CHECK_LOG("a b c d e");
  CHECK_EQ(aios_handle_unref(h), 0);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Task groups: the body's error goes in with its message and data            */

typedef struct grouped_s {
  int steps;
  int mode;                 /* 0: body fails; 1: nested group fails; 2: cancelled */
  aios_task_group_t *group, *inner;
  aios_future_t *never;
  int status;
  int size;
  int member_code;
  int member_size;          /* of a nested group error */
  char member_message[64];
  void *member_data;
  char cancel_message[64];
} grouped_t;

static int failing_child(aios_task_t *task, aios_future_t *awaited, void *arg) {
  aios_error_t *e = NULL;
  int rc;
  (void)awaited;
  (void)arg;
  CHECK_EQ(aios_error_new(-EPIPE, "inner child", &e), 0);
  rc = aios_task_fail(task, e);
  aios_error_unref(e);
  return rc;
}

static int sleeper_child(aios_task_t *task, aios_future_t *awaited, void *arg) {
  aios_future_t *nap = NULL;
  (void)arg;
  if (awaited == NULL) {
    CHECK_EQ(aios_sleep(aios_task_get_loop(task), 30, NULL, NULL, &nap), 0);
    return aios_task_await_owned(task, nap);
  }
  return aios_future_result(awaited, NULL);
}

static int grouped_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  grouped_t *g = arg;
  aios_loop_t *loop = aios_task_get_loop(task);
  aios_future_t *exiting = NULL;
  aios_error_t *error = NULL;
  g->steps++;
  if (g->steps == 1) {
    CHECK_EQ(aios_task_group_new(loop, &g->group), 0);
    CHECK_EQ(aios_task_group_enter(g->group, task), 0);
    CHECK_EQ(aios_task_group_create_task(g->group, sleeper_child, NULL, NULL, NULL), 0);
    if (g->mode == 1) {
      /* async with inner: a child of it fails */
      CHECK_EQ(aios_task_group_new(loop, &g->inner), 0);
      CHECK_EQ(aios_task_group_enter(g->inner, task), 0);
      CHECK_EQ(aios_task_group_create_task(g->inner, failing_child, NULL, NULL, NULL), 0);
      CHECK_EQ(aios_task_group_exit(g->inner, NULL, &exiting), 0);
      return aios_task_await_owned(task, exiting);
    }
    if (g->mode == 2) return aios_task_await(task, g->never);
    /* mode 0: the body raises at once */
    return aios_task_await(task, NULL);
  }
  if (g->steps == 2) {
    if (g->mode == 0) {
      CHECK_EQ(aios_error_new_user("body failed", &g->member_data, NULL, &error), 0);
    } else {
      CHECK_EQ(aios_future_error(awaited, &error), 0);
      CHECK(error != NULL);
    }
    CHECK_EQ(aios_task_group_exit(g->group, error, &exiting), 0);
    aios_error_unref(error);
    return aios_task_await_owned(task, exiting);
  }
  g->status = aios_future_result(awaited, NULL);
  CHECK_EQ(aios_future_error(awaited, &error), 0);
  if (error && aios_error_kind(error) == AIOS_ERROR_CANCELLED) {
    snprintf(g->cancel_message, sizeof g->cancel_message, "%s", aios_error_message(error));
  } else if (error) {
    aios_error_t *member = NULL;
    g->size = aios_error_group_size(error);
    CHECK_EQ(aios_error_group_get(error, 0, &member), 0);
    g->member_code = aios_error_code(member);
    g->member_size = aios_error_group_size(member);
    snprintf(g->member_message, sizeof g->member_message, "%s", aios_error_message(member));
    g->member_data = aios_error_user_data(member);
    aios_error_unref(member);
  }
  aios_error_unref(error);
  aios_task_group_unref(g->group);
  aios_task_group_unref(g->inner);
  return g->status == 0 ? aios_task_return(task, NULL, NULL) : g->status;
}

static void test_group_exit_keeps_the_body_error(void) {
  aios_loop_t *loop = make_loop();
  aios_task_t *task = NULL;
  grouped_t g;
  memset(&g, 0, sizeof g);
  CHECK_EQ(aios_task_new(loop, grouped_step, &g, NULL, &task), 0);
  run_loop_until(loop, aios_task_as_future(task));
  CHECK_EQ(g.status, AIOS_EGROUP);
  CHECK_EQ(g.size, 1);
  CHECK_EQ(g.member_code, AIOS_EUSER);
  CHECK_STR_EQ(g.member_message, "body failed");
  CHECK_PTR_EQ(g.member_data, &g.member_data);
  CHECK_EQ(aios_task_unref(task), 0);
  close_loop(loop);
}

/* Nested groups: the outer group's error holds the inner group's whole. */
static void test_nested_group_error_keeps_its_members(void) {
  aios_loop_t *loop = make_loop();
  aios_task_t *task = NULL;
  grouped_t g;
  memset(&g, 0, sizeof g);
  g.mode = 1;
  CHECK_EQ(aios_task_new(loop, grouped_step, &g, NULL, &task), 0);
  run_loop_until(loop, aios_task_as_future(task));
  CHECK_EQ(g.status, AIOS_EGROUP);
  CHECK_EQ(g.size, 1);
  CHECK_EQ(g.member_code, AIOS_EGROUP);
  CHECK_EQ(g.member_size, 1);
  CHECK_EQ(aios_task_unref(task), 0);
  close_loop(loop);
}

/* A parent cancelled in the body: the group re-raises its message. */
static void test_group_reraises_the_cancel_message(void) {
  aios_loop_t *loop = make_loop();
  aios_task_t *task = NULL;
  grouped_t g;
  memset(&g, 0, sizeof g);
  g.mode = 2;
  CHECK_EQ(aios_future_new(loop, &g.never), 0);
  CHECK_EQ(aios_task_new(loop, grouped_step, &g, NULL, &task), 0);
  run_once(loop);
  CHECK_EQ(aios_task_cancel(task, "shutting down"), 1);
  run_loop_until(loop, aios_task_as_future(task));
  CHECK_EQ(g.status, AIOS_ECANCELLED);
  CHECK_STR_EQ(g.cancel_message, "shutting down");
  CHECK_EQ(aios_future_cancelled(aios_task_as_future(task)), 1);
  CHECK_EQ(aios_task_unref(task), 0);
  CHECK_EQ(aios_future_unref(g.never), 0);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* The everyday shape of a C task                                             */

static int g_fire_steps;

static int fire_and_forget(aios_task_t *task, aios_future_t *awaited, void *arg) {
  aios_future_t *nap = NULL;
  (void)arg;
  if (g_fire_steps++ == 0) {
    /* the loop, borrowed; a future the step made, handed over */
    CHECK_EQ(aios_sleep(aios_task_get_loop(task), 0.001, NULL, NULL, &nap), 0);
    return aios_task_await_owned(task, nap);
  }
  CHECK_EQ(aios_future_result(awaited, NULL), 0);
  if (arg) CHECK_EQ(aios_loop_stop(aios_task_get_loop(task)), 0);
  return aios_task_return(task, NULL, NULL);
}

/* A task nobody holds runs to its end, and is freed then. */
static void test_task_without_out_runs_to_its_end(void) {
  aios_loop_t *loop = make_loop();
  g_fire_steps = 0;
  CHECK_EQ(aios_task_new(loop, fire_and_forget, "stop", NULL, NULL), 0);
  CHECK_EQ(aios_live_objects(AIOS_OBJECT_TASK), 1);
  CHECK_EQ(aios_loop_run_forever(loop), 0); /* until its last step */
  CHECK_EQ(g_fire_steps, 2);
  run_once(loop);
  CHECK_EQ(aios_live_objects(AIOS_OBJECT_TASK), 0);
  close_loop(loop);
}

/* aios_task_get_loop names the loop the caller holds; a bad task is NULL. */
static void test_task_get_loop(void) {
  aios_loop_t *loop = make_loop();
  aios_task_t *task = NULL;
  g_fire_steps = 0;
  CHECK_EQ(aios_task_new(loop, fire_and_forget, NULL, NULL, &task), 0);
  CHECK_PTR_EQ(aios_task_get_loop(task), loop);
  CHECK(aios_task_get_loop(NULL) == NULL);
  CHECK(aios_task_get_loop((aios_task_t *)loop) == NULL);
  run_loop_until(loop, aios_task_as_future(task));
  CHECK_EQ(aios_task_unref(task), 0);
  CHECK(aios_task_get_loop(task) == NULL);
  close_loop(loop);
}

/* Inside asyncio.run, whose loop C never named, the borrowed loop works. */
static int run_main_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  aios_future_t *nap = NULL;
  int *steps = arg;
  if ((*steps)++ == 0) {
    aios_loop_t *loop = aios_task_get_loop(task);
    CHECK(loop != NULL);
    CHECK_EQ(aios_sleep(loop, 0, NULL, NULL, &nap), 0);
    return aios_task_await_owned(task, nap);
  }
  CHECK_EQ(aios_future_result(awaited, NULL), 0);
  return aios_task_return(task, NULL, NULL);
}

static void test_task_get_loop_inside_run(void) {
  int steps = 0;
  CHECK_EQ(aios_run(run_main_step, &steps, NULL, NULL), 0);
  CHECK_EQ(steps, 2);
}

/* aios_task_await_owned takes the reference even when it refuses. */
static void test_await_owned_outside_a_step(void) {
  aios_loop_t *loop = make_loop();
  aios_task_t *task = NULL;
  aios_future_t *f = NULL;
  g_fire_steps = 0;
  CHECK_EQ(aios_task_new(loop, fire_and_forget, NULL, NULL, &task), 0);
  CHECK_EQ(aios_future_new(loop, &f), 0);
  CHECK_EQ(aios_task_await_owned(task, f), AIOS_EINVAL); /* not its step */
  CHECK_EQ(aios_future_done(f), AIOS_EBADHANDLE);         /* reference gone */
  run_loop_until(loop, aios_task_as_future(task));
  CHECK_EQ(aios_task_unref(task), 0);
  close_loop(loop);
}

/* asyncio.timeout(delay): a deadline `delay` from now. */
static void test_relative_timeout(void) {
  aios_loop_t *loop = make_loop();
  aios_timeout_t *t = NULL, *never = NULL;
  double now = 0, when = 0;
  CHECK_EQ(aios_loop_time(loop, &now), 0);
  CHECK_EQ(aios_timeout(loop, 5.0, &t), 0);
  CHECK_EQ(aios_timeout_when(t, &when), 0);
  CHECK(when >= now + 5.0 && when < now + 6.0);
  CHECK_EQ(aios_timeout(loop, INFINITY, &never), 0);
  CHECK_EQ(aios_timeout_when(never, &when), 0);
  CHECK(isinf(when));
  CHECK_EQ(aios_timeout(loop, NAN, &never), AIOS_EINVAL);
  CHECK_EQ(aios_timeout_unref(t), 0);
  CHECK_EQ(aios_timeout_unref(never), 0);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Argument destructors                                                       */

static int g_ran;
static void ran_cb(void *arg) {
  (void)arg;
  g_ran++;
}

static void ran_done_cb(aios_future_t *future, void *arg) {
  (void)future;
  (void)arg;
  g_ran++;
}

/* Once whatever happens: after the run, on cancel, with the closing loop;
 * never when the call fails (the caller keeps the argument). */
static void test_callback_argument_destructors(void) {
  aios_loop_t *loop = make_loop();
  aios_handle_t *h = NULL, *t = NULL;
  int ran_arg = 0, cancelled_arg = 0, timer_arg = 0, closed_arg = 0, failed_arg = 0;
  int later_arg = 0, at_arg = 0;
  g_ran = 0;
  CHECK_EQ(aios_loop_call_soon(loop, ran_cb, &ran_arg, count_destructor, NULL), 0);
  CHECK_EQ(aios_loop_call_soon(loop, ran_cb, &cancelled_arg, count_destructor, &h), 0);
  CHECK_EQ(aios_loop_call_later(loop, 0, ran_cb, &later_arg, count_destructor, NULL), 0);
  CHECK_EQ(aios_loop_call_at(loop, 1e9, ran_cb, &at_arg, count_destructor, &t), 0);
  CHECK_EQ(aios_loop_call_later(loop, 60, ran_cb, &timer_arg, count_destructor, NULL), 0);
  CHECK_EQ(aios_loop_call_soon_threadsafe(loop, ran_cb, &closed_arg, count_destructor, NULL), 0);
  CHECK_EQ(aios_loop_call_soon(loop, NULL, &failed_arg, count_destructor, NULL), AIOS_EINVAL);
  CHECK_EQ(aios_loop_call_later(loop, NAN, ran_cb, &failed_arg, count_destructor, NULL), AIOS_EINVAL);
  CHECK_EQ(aios_handle_cancel(h), 0);
  CHECK_EQ(cancelled_arg, 1);
  CHECK_EQ(aios_handle_cancel(t), 0);
  CHECK_EQ(at_arg, 1);
  CHECK_EQ(ran_arg, 0);
  run_once(loop); /* soon, threadsafe */
  run_once(loop); /* the due timer */
  CHECK_EQ(g_ran, 3);
  CHECK_EQ(ran_arg, 1);
  CHECK_EQ(later_arg, 1);
  CHECK_EQ(closed_arg, 1);
  CHECK_EQ(timer_arg, 0);
  CHECK_EQ(aios_handle_unref(h), 0);
  CHECK_EQ(aios_handle_unref(t), 0);
  close_loop(loop);
  CHECK_EQ(timer_arg, 1);
  CHECK_EQ(cancelled_arg, 1);
  CHECK_EQ(at_arg, 1);
  CHECK_EQ(failed_arg, 0);
}

static void *threadsafe_owned_main(void *arg) {
  aios_loop_t **loop = arg;
  static int queued;
  aios_handle_t *h = NULL;
  CHECK_EQ(aios_loop_call_soon_threadsafe(loop[0], ran_cb, &queued, count_destructor, &h), 0);
  CHECK_EQ(aios_handle_unref(h), 0);
  CHECK_EQ(aios_loop_call_soon_threadsafe(loop[0], ran_cb, &queued, count_destructor, NULL), 0);
  return &queued;
}

/* From another thread, the destructors run on the loop's thread: twice
 * here, once per call, when the loop closes without running them. */
static void test_threadsafe_argument_destructors(void) {
  aios_loop_t *loop = make_loop();
  pthread_t thread;
  void *queued = NULL;
  g_ran = 0;
  CHECK_EQ(pthread_create(&thread, NULL, threadsafe_owned_main, &loop), 0);
  CHECK_EQ(pthread_join(thread, &queued), 0);
  CHECK_EQ(*(int *)queued, 0);
  close_loop(loop);
  CHECK_EQ(*(int *)queued, 2);
  CHECK_EQ(g_ran, 0);
}

/* A done callback's argument: after the run, on removal, with the future. */
static void test_done_callback_argument_destructors(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = NULL, *g = NULL;
  int ran_arg = 0, removed_arg = 0, freed_arg = 0;
  g_ran = 0;
  CHECK_EQ(aios_future_new(loop, &f), 0);
  CHECK_EQ(aios_future_new(loop, &g), 0);
  CHECK_EQ(aios_future_add_done_callback(f, ran_done_cb, &ran_arg, count_destructor), 0);
  CHECK_EQ(aios_future_add_done_callback(f, ran_done_cb, &removed_arg, count_destructor), 0);
  CHECK_EQ(aios_future_add_done_callback(g, ran_done_cb, &freed_arg, count_destructor), 0);
  CHECK_EQ(aios_future_add_done_callback(f, NULL, &freed_arg, count_destructor), AIOS_EINVAL);
  CHECK_EQ(aios_future_remove_done_callback(f, ran_done_cb, &removed_arg), 1);
  CHECK_EQ(removed_arg, 1);
  CHECK_EQ(aios_future_set_result(f, NULL, NULL), 0);
  run_once(loop);
  CHECK_EQ(g_ran, 1);
  CHECK_EQ(ran_arg, 1);
  CHECK_EQ(freed_arg, 0);
  CHECK_EQ(aios_future_unref(g), 0);
  CHECK_EQ(freed_arg, 1);
  CHECK_EQ(aios_future_unref(f), 0);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* What bindings need: exception contexts, a task factory, task contexts     */

static int failing_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  (void)task;
  (void)awaited;
  (void)arg;
  return -ECONNRESET;
}

/* An error never retrieved reaches the handler (the future is gone by
 * then, so the context names none). */
static void test_exception_context_of_an_unretrieved_error(void) {
  aios_loop_t *loop = make_loop();
  aios_task_t *task = NULL;
  exc_record_t record;
  memset(&record, 0, sizeof record);
  CHECK_EQ(aios_loop_set_exception_handler(loop, exc_recorder, &record), 0);
  CHECK_EQ(aios_task_new(loop, failing_step, NULL, NULL, &task), 0);
  run_once(loop);
  CHECK_EQ(aios_task_unref(task), 0); /* freed: its error was never read */
  CHECK_EQ(record.calls, 1);
  CHECK_EQ(record.error_code, -ECONNRESET);
  CHECK_STR_EQ(record.message, "Task exception was never retrieved");
  close_loop(loop);
}

static int fail_when_cancelled(aios_task_t *task, aios_future_t *awaited, void *arg) {
  if (awaited == NULL) return aios_task_await(task, (aios_future_t *)arg);
  return -EPIPE; /* catches the shutdown's cancellation, fails instead */
}

static int spawn_and_return(aios_task_t *task, aios_future_t *awaited, void *arg) {
  (void)awaited;
  CHECK_EQ(aios_task_new(aios_task_get_loop(task), fail_when_cancelled, arg, NULL, NULL), 0);
  return aios_task_return(task, NULL, NULL);
}

/* A task that fails during the runner's shutdown: the context names it, as
 * asyncio's names the task. */
static void test_exception_context_names_the_task(void) {
  aios_runner_t *runner = NULL;
  aios_loop_t *loop = NULL;
  aios_future_t *never = NULL;
  exc_record_t record;
  memset(&record, 0, sizeof record);
  CHECK_EQ(aios_runner_new(&runner), 0);
  CHECK_EQ(aios_runner_get_loop(runner, &loop), 0);
  CHECK_EQ(aios_loop_set_exception_handler(loop, exc_recorder, &record), 0);
  CHECK_EQ(aios_future_new(loop, &never), 0);
  CHECK_EQ(aios_runner_run(runner, spawn_and_return, never, NULL, NULL), 0);
  CHECK_EQ(aios_runner_close(runner), 0);
  CHECK_EQ(record.calls, 1);
  CHECK_EQ(record.error_code, -EPIPE);
  CHECK_EQ(record.had_task, 1);
  CHECK_EQ(record.had_future, 1);
  CHECK_EQ(aios_future_unref(never), 0);
  CHECK_EQ(aios_loop_unref(loop), 0);
  CHECK_EQ(aios_runner_unref(runner), 0);
}

/* A report made through the C ABI carries what it was given. */
static void test_exception_context_of_a_report(void) {
  aios_loop_t *loop = make_loop();
  exc_record_t record;
  memset(&record, 0, sizeof record);
  CHECK_EQ(aios_loop_set_exception_handler(loop, exc_recorder, &record), 0);
  CHECK_EQ(aios_loop_call_exception_handler(loop, "reported", NULL), 0);
  CHECK_EQ(record.calls, 1);
  CHECK_EQ(record.had_future + record.had_task + record.had_handle, 0);
  CHECK_STR_EQ(record.message, "reported");
  close_loop(loop);
}

typedef struct factory_s {
  int calls;
  int fail;          /* return this status instead of a task */
  int no_task;       /* return 0 with no task */
  int wrapped_steps; /* steps through the factory's wrapper */
  aios_step_fn inner;
} factory_t;

static factory_t *g_factory;

static int wrapped_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  g_factory->wrapped_steps++;
  return g_factory->inner(task, awaited, arg);
}

static int test_factory(aios_loop_t *loop, aios_step_fn step, void *arg,
                        const aios_task_options_t *options, void *factory_arg,
                        aios_task_t **out) {
  factory_t *f = factory_arg;
  aios_task_options_t named;
  (void)options;
  f->calls++;
  if (f->fail) return f->fail;
  if (f->no_task) return 0;
  f->inner = step;
  memset(&named, 0, sizeof named);
  named.size = sizeof named;
  named.name = "made-by-factory";
  return aios_task_create(loop, wrapped_step, arg, &named, out);
}

static int return_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  (void)awaited;
  (void)arg;
  return aios_task_return(task, NULL, NULL);
}

static void test_task_factory(void) {
  aios_loop_t *loop = make_loop();
  aios_task_t *task = NULL, *direct = NULL;
  aios_task_factory_fn got = NULL;
  void *got_arg = NULL;
  factory_t f;
  int arg_freed = 0;
  aios_task_options_t with_destructor;
  memset(&f, 0, sizeof f);
  g_factory = &f;
  CHECK_EQ(aios_loop_get_task_factory(loop, &got, &got_arg), 0);
  CHECK(got == NULL);
  CHECK_EQ(aios_loop_set_task_factory(loop, test_factory, &f), 0);
  CHECK_EQ(aios_loop_get_task_factory(loop, &got, &got_arg), 0);
  CHECK(got == test_factory && got_arg == &f);
  CHECK_EQ(aios_task_new(loop, return_step, NULL, NULL, &task), 0);
  CHECK_STR_EQ(aios_task_get_name(task), "made-by-factory");
  CHECK_EQ(aios_task_create(loop, return_step, NULL, NULL, &direct), 0); /* no factory */
  CHECK_EQ(aios_task_new(loop, return_step, NULL, NULL, NULL), 0);       /* fire and forget */
  CHECK_EQ(f.calls, 2);
  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(task)), 0);
  run_once(loop);
  CHECK_EQ(f.wrapped_steps, 2);
  /* A factory that fails, or makes nothing: the call fails, arg is the caller's. */
  memset(&with_destructor, 0, sizeof with_destructor);
  with_destructor.size = sizeof with_destructor;
  with_destructor.arg_destructor = count_destructor;
  f.fail = -EMFILE;
  CHECK_EQ(aios_task_new(loop, return_step, &arg_freed, &with_destructor, NULL), -EMFILE);
  f.fail = 0;
  f.no_task = 1;
  CHECK_EQ(aios_task_new(loop, return_step, &arg_freed, &with_destructor, NULL), AIOS_EINVAL);
  CHECK_EQ(arg_freed, 0);
  CHECK_EQ(aios_loop_set_task_factory(loop, NULL, NULL), 0);
  CHECK_EQ(aios_task_unref(task), 0);
  CHECK_EQ(aios_task_unref(direct), 0);
  close_loop(loop);
}

typedef struct group_factory_s {
  int steps;
  aios_task_group_t *group;
} group_factory_t;

static int group_parent_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  group_factory_t *g = arg;
  aios_future_t *exiting = NULL;
  (void)awaited;
  if (g->steps++ == 0) {
    CHECK_EQ(aios_task_group_new(aios_task_get_loop(task), &g->group), 0);
    CHECK_EQ(aios_task_group_enter(g->group, task), 0);
    CHECK_EQ(aios_task_group_create_task(g->group, return_step, NULL, NULL, NULL), 0);
    CHECK_EQ(aios_task_group_exit(g->group, NULL, &exiting), 0);
    return aios_task_await_owned(task, exiting);
  }
  CHECK_EQ(aios_future_result(awaited, NULL), 0);
  aios_task_group_unref(g->group);
  return aios_task_return(task, NULL, NULL);
}

/* TaskGroup.create_task goes through loop.create_task, so the factory. */
static void test_task_group_uses_the_factory(void) {
  aios_loop_t *loop = make_loop();
  aios_task_t *parent = NULL;
  group_factory_t g;
  factory_t f;
  memset(&g, 0, sizeof g);
  memset(&f, 0, sizeof f);
  g_factory = &f;
  CHECK_EQ(aios_task_create(loop, group_parent_step, &g, NULL, &parent), 0);
  CHECK_EQ(aios_loop_set_task_factory(loop, test_factory, &f), 0);
  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(parent)), 0);
  CHECK_EQ(f.calls, 1);
  CHECK_EQ(f.wrapped_steps, 1);
  CHECK_EQ(aios_task_unref(parent), 0);
  close_loop(loop);
}

/* A task's context pointer, freed with the task. */
static void test_task_context(void) {
  aios_loop_t *loop = make_loop();
  aios_task_t *task = NULL;
  aios_task_options_t options;
  int context = 0;
  memset(&options, 0, sizeof options);
  options.size = sizeof options;
  options.context = &context;
  options.context_destructor = count_destructor;
  CHECK_EQ(aios_task_new(loop, return_step, NULL, &options, &task), 0);
  CHECK_PTR_EQ(aios_task_get_context(task), &context);
  CHECK(aios_task_get_context(NULL) == NULL);
  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(task)), 0);
  CHECK_EQ(context, 0);
  CHECK_EQ(aios_task_unref(task), 0);
  CHECK_EQ(context, 1);
  close_loop(loop);
}

TEST_MAIN(TEST_ENTRY(test_exception_context_of_an_unretrieved_error),
          TEST_ENTRY(test_exception_context_names_the_task),
          TEST_ENTRY(test_exception_context_of_a_report),
          TEST_ENTRY(test_task_factory),
          TEST_ENTRY(test_task_group_uses_the_factory),
          TEST_ENTRY(test_task_context),
          TEST_ENTRY(test_callback_argument_destructors),
          TEST_ENTRY(test_threadsafe_argument_destructors),
          TEST_ENTRY(test_done_callback_argument_destructors),
          TEST_ENTRY(test_first_cancel_message_wins),
          TEST_ENTRY(test_gather_of_cancelled_child_fails_with_cancelled_error),
          TEST_ENTRY(test_cancelled_gather_fails_with_cancelled_error),
          TEST_ENTRY(test_gather_retrieves_late_errors),
          TEST_ENTRY(test_threadsafe_keeps_fifo_with_call_soon),
          TEST_ENTRY(test_group_exit_keeps_the_body_error),
          TEST_ENTRY(test_nested_group_error_keeps_its_members),
          TEST_ENTRY(test_group_reraises_the_cancel_message),
          TEST_ENTRY(test_task_without_out_runs_to_its_end),
          TEST_ENTRY(test_task_get_loop),
          TEST_ENTRY(test_task_get_loop_inside_run),
          TEST_ENTRY(test_await_owned_outside_a_step),
          TEST_ENTRY(test_relative_timeout))
