/*
 * test_bad_input.c: a bad argument is an error code, never a crash: NULL
 * objects, freed objects (AIOS_EBADHANDLE), calls from the wrong thread
 * (AIOS_EWRONGTHREAD); status descriptions; the version.
 */
#include "test_util.h"

static int g_called;

static void never_cb(void *arg) {
  (void)arg;
  g_called++;
}

static void never_done_cb(aios_future_t *f, void *arg) {
  (void)f;
  (void)arg;
  g_called++;
}

static int never_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  (void)task;
  (void)awaited;
  (void)arg;
  g_called++;
  return AIOS_EINVAL;
}

static void never_handler(aios_loop_t *loop, const aios_exception_context_t *context,
                          void *arg) {
  (void)loop;
  (void)context;
  (void)arg;
  g_called++;
}

#define CHECK_NEG(expr) CHECK((expr) < 0)

/* ------------------------------------------------------------------------ */
/* NULL                                                                       */

static void test_null_errors(void) {
  aios_error_t *err = NULL;
  int freed = 0;

  CHECK_NEG(aios_error_new(AIOS_EINVAL, "x", NULL));
  CHECK_NEG(aios_error_new_user("x", &freed, count_destructor, NULL));
  CHECK_EQ(freed, 0); /* on failure the caller still owns data */
  /* A valid code is negative too: NULL must give AIOS_EINVAL exactly, as
   * every NULL argument does. */
  CHECK_EQ(aios_error_code(NULL), AIOS_EINVAL);
  CHECK_NEG(aios_error_kind(NULL));
  CHECK_NEG(aios_error_os_errno(NULL));
  CHECK(aios_error_message(NULL) == NULL);
  CHECK(aios_error_user_data(NULL) == NULL);
  CHECK_NEG(aios_error_ref(NULL));
  CHECK_EQ(aios_error_unref(NULL), 0); /* unref accepts NULL */
  CHECK(err == NULL);
}

static void test_null_loop(void) {
  aios_loop_t *loop = make_loop();
  aios_handle_t *h = NULL;
  aios_future_t *f = NULL;
  double d = 0;

  g_called = 0;
  CHECK_NEG(aios_loop_new(NULL));
  CHECK_NEG(aios_loop_ref(NULL));
  CHECK_EQ(aios_loop_unref(NULL), 0);
  CHECK_NEG(aios_loop_run_forever(NULL));
  CHECK_NEG(aios_loop_run_until_complete(NULL, NULL));
  CHECK_NEG(aios_loop_run_until_complete(loop, NULL));
  CHECK_EQ(aios_future_new(loop, &f), 0);
  CHECK_NEG(aios_loop_run_until_complete(NULL, f));
  CHECK_NEG(aios_loop_stop(NULL));
  CHECK_NEG(aios_loop_close(NULL));
  CHECK_NEG(aios_loop_is_running(NULL));
  CHECK_NEG(aios_loop_is_closed(NULL));
  CHECK_NEG(aios_loop_time(NULL, &d));
  CHECK_NEG(aios_loop_time(loop, NULL));
  CHECK_NEG(aios_loop_call_soon(NULL, never_cb, NULL, NULL, &h));
  CHECK_NEG(aios_loop_call_soon(loop, NULL, NULL, NULL, &h));
  CHECK_NEG(aios_loop_call_soon_threadsafe(NULL, never_cb, NULL, NULL, &h));
  CHECK_EQ(aios_loop_call_soon_threadsafe(loop, NULL, NULL, NULL, &h), AIOS_EINVAL);
  CHECK_NEG(aios_loop_call_later(NULL, 0.0, never_cb, NULL, NULL, &h));
  CHECK_NEG(aios_loop_call_later(loop, 0.0, NULL, NULL, NULL, &h));
  CHECK_NEG(aios_loop_call_at(NULL, 0.0, never_cb, NULL, NULL, &h));
  CHECK_NEG(aios_loop_call_at(loop, 0.0, NULL, NULL, NULL, &h));
  CHECK(h == NULL);
  CHECK_NEG(aios_get_running_loop(NULL));
  CHECK_NEG(aios_loop_set_exception_handler(NULL, never_handler, NULL));
  CHECK_NEG(aios_loop_call_exception_handler(NULL, "m", NULL));
  CHECK_NEG(aios_loop_set_debug(NULL, 1));
  CHECK_NEG(aios_loop_get_debug(NULL));
  CHECK_NEG(aios_loop_set_slow_callback_duration(NULL, 0.1));
  /* Nothing was scheduled by the failed calls. */
  run_once(loop);
  CHECK_EQ(g_called, 0);
  CHECK_EQ(aios_future_unref(f), 0);
  close_loop(loop);
}

static void test_null_handle(void) {
  aios_loop_t *loop = make_loop();
  aios_handle_t *h = NULL;
  double d = 0;

  CHECK_NEG(aios_handle_cancel(NULL));
  CHECK_NEG(aios_handle_cancelled(NULL));
  CHECK_NEG(aios_handle_when(NULL, &d));
  CHECK_NEG(aios_handle_ref(NULL));
  CHECK_EQ(aios_handle_unref(NULL), 0);
  CHECK_EQ(aios_loop_call_later(loop, 1.0, never_cb, NULL, NULL, &h), 0);
  CHECK_NEG(aios_handle_when(h, NULL));
  CHECK_EQ(aios_handle_cancel(h), 0);
  CHECK_EQ(aios_handle_unref(h), 0);
  close_loop(loop);
}

static void test_null_future(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = NULL, *done = NULL, *s = NULL;
  aios_error_t *err = NULL;
  aios_loop_t *l = NULL;
  void *v = NULL;
  int freed = 0;

  g_called = 0;
  CHECK_NEG(aios_future_new(NULL, &f));
  CHECK(f == NULL);
  CHECK_NEG(aios_future_new(loop, NULL));
  CHECK_EQ(aios_future_new(loop, &f), 0);
  CHECK_EQ(aios_future_new(loop, &done), 0);
  CHECK_EQ(aios_future_set_result(done, NULL, NULL), 0);
  CHECK_EQ(aios_error_new(AIOS_ETIMEOUT, NULL, &err), 0);

  CHECK_NEG(aios_future_set_result(NULL, &freed, count_destructor));
  CHECK_EQ(freed, 0);
  CHECK_NEG(aios_future_set_error(NULL, err));
  CHECK_NEG(aios_future_set_error(f, NULL));
  CHECK_EQ(aios_future_done(f), 0);
  CHECK_NEG(aios_future_cancel(NULL, "m"));
  CHECK_NEG(aios_future_done(NULL));
  CHECK_NEG(aios_future_cancelled(NULL));
  CHECK_NEG(aios_future_result(NULL, &v));
  CHECK_NEG(aios_future_error(NULL, &err));
  CHECK_NEG(aios_future_error(done, NULL));
  CHECK_NEG(aios_future_add_done_callback(NULL, never_done_cb, NULL, NULL));
  CHECK_NEG(aios_future_add_done_callback(f, NULL, NULL, NULL));
  CHECK_NEG(aios_future_remove_done_callback(NULL, never_done_cb, NULL));
  CHECK_NEG(aios_future_get_loop(NULL, &l));
  CHECK_NEG(aios_future_get_loop(f, NULL));
  CHECK(l == NULL);
  CHECK_NEG(aios_future_ref(NULL));
  CHECK_EQ(aios_future_unref(NULL), 0);
  CHECK_NEG(aios_sleep(NULL, 0.0, &freed, count_destructor, &s));
  CHECK_EQ(freed, 0); /* on failure the caller still owns value */
  CHECK(s == NULL);

  /* The failed add_done_callback registered nothing. */
  CHECK_EQ(aios_future_set_result(f, NULL, NULL), 0);
  run_once(loop);
  CHECK_EQ(g_called, 0);
  CHECK_EQ(aios_error_unref(err), 0);
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(aios_future_unref(done), 0);
  close_loop(loop);
}

static int g_fail_null_rc;

static int fail_with_null_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  (void)awaited;
  (void)arg;
  g_fail_null_rc = aios_task_fail(task, NULL);
  CHECK_NEG(g_fail_null_rc);
  CHECK_NEG(aios_task_await(NULL, NULL));
  return g_fail_null_rc;
}

static void test_null_task(void) {
  aios_loop_t *loop = make_loop();
  aios_task_t *t = NULL, *cur = NULL;
  aios_task_options_t opts;
  aios_error_t *err = NULL;
  int arg_freed = 0, value_freed = 0;

  g_called = 0;
  memset(&opts, 0, sizeof opts);
  opts.size = sizeof opts;
  opts.arg_destructor = count_destructor;
  CHECK_NEG(aios_task_new(NULL, never_step, &arg_freed, &opts, &t));
  CHECK_NEG(aios_task_new(loop, NULL, &arg_freed, &opts, &t));
  CHECK(t == NULL);
  CHECK(aios_task_as_future(NULL) == NULL);
  CHECK_NEG(aios_task_await(NULL, NULL));
  CHECK_NEG(aios_task_return(NULL, &value_freed, count_destructor));
  CHECK_EQ(aios_error_new(AIOS_ETIMEOUT, NULL, &err), 0);
  CHECK_NEG(aios_task_fail(NULL, err));
  CHECK_EQ(aios_error_unref(err), 0);
  CHECK_NEG(aios_task_cancel(NULL, "m"));
  CHECK_NEG(aios_task_cancelling(NULL));
  CHECK_NEG(aios_task_uncancel(NULL));
  CHECK(aios_task_get_name(NULL) == NULL);
  CHECK_NEG(aios_task_set_name(NULL, "x"));
  CHECK_NEG(aios_current_task(NULL, &cur));
  CHECK_NEG(aios_current_task(loop, NULL));
  CHECK_NEG(aios_all_tasks(NULL, NULL, 0));
  CHECK_NEG(aios_all_tasks(loop, NULL, 4));
  CHECK_NEG(aios_task_ref(NULL));
  CHECK_EQ(aios_task_unref(NULL), 0);
  run_once(loop);
  CHECK_EQ(g_called, 0);
  /* A failed aios_task_new leaves arg untouched. */
  CHECK_EQ(arg_freed, 0);
  CHECK_EQ(value_freed, 0);

  /* aios_task_fail(task, NULL) from a step: an error, which the step may
   * return to fail the task. */
  CHECK_EQ(aios_task_new(loop, fail_with_null_step, NULL, NULL, &t), 0);
  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(t)), g_fail_null_rc);
  CHECK_EQ(aios_task_unref(t), 0);
  close_loop(loop);
}

static void test_null_run_and_runner(void) {
  aios_runner_t *r = NULL;
  aios_loop_t *l = NULL;

  g_called = 0;
  CHECK_NEG(aios_run(NULL, NULL, NULL, NULL));
  CHECK_NEG(aios_runner_new(NULL));
  CHECK_NEG(aios_runner_run(NULL, never_step, NULL, NULL, NULL));
  CHECK_NEG(aios_runner_get_loop(NULL, &l));
  CHECK_NEG(aios_runner_close(NULL));
  CHECK_NEG(aios_runner_ref(NULL));
  CHECK_EQ(aios_runner_unref(NULL), 0);
  CHECK_EQ(aios_runner_new(&r), 0);
  CHECK_NEG(aios_runner_run(r, NULL, NULL, NULL, NULL));
  CHECK_NEG(aios_runner_get_loop(r, NULL));
  CHECK_EQ(aios_runner_unref(r), 0);
  CHECK_EQ(g_called, 0);
  CHECK(l == NULL);
}

static void test_live_objects_bad_type(void) {
  int t;
  for (t = AIOS_OBJECT_LOOP; t <= AIOS_OBJECT_RUNNER; t++)
    CHECK(aios_live_objects(t) >= 0);
  CHECK_EQ(aios_live_objects(-1), AIOS_EINVAL);
  CHECK_EQ(aios_live_objects(1000), AIOS_EINVAL);
}

/* ------------------------------------------------------------------------ */
/* Freed objects: AIOS_EBADHANDLE                                             */

static void test_freed_future(void) {
  aios_loop_t *loop = make_loop();
  long futures0 = live_count(AIOS_OBJECT_FUTURE);
  aios_future_t *f = NULL;

  CHECK_EQ(aios_future_new(loop, &f), 0);
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(live_count(AIOS_OBJECT_FUTURE), futures0);
  CHECK_EQ(aios_future_done(f), AIOS_EBADHANDLE);
  CHECK_EQ(aios_future_set_result(f, NULL, NULL), AIOS_EBADHANDLE);
  CHECK_EQ(aios_future_cancel(f, NULL), AIOS_EBADHANDLE);
  CHECK_EQ(aios_future_result(f, NULL), AIOS_EBADHANDLE);
  CHECK_EQ(aios_future_ref(f), AIOS_EBADHANDLE);
  CHECK_EQ(aios_future_unref(f), AIOS_EBADHANDLE);
  close_loop(loop);
}

static void test_freed_task(void) {
  aios_loop_t *loop = make_loop();
  long tasks0 = live_count(AIOS_OBJECT_TASK);
  aios_task_t *t = NULL;

  CHECK_EQ(aios_task_new(loop, never_step, NULL, NULL, &t), 0);
  CHECK_EQ(aios_task_cancel(t, NULL), 1);
  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(t)), AIOS_ECANCELLED);
  CHECK_EQ(aios_task_unref(t), 0);
  CHECK_EQ(live_count(AIOS_OBJECT_TASK), tasks0);
  CHECK_EQ(aios_task_cancel(t, NULL), AIOS_EBADHANDLE);
  CHECK_EQ(aios_task_cancelling(t), AIOS_EBADHANDLE);
  CHECK_EQ(aios_future_done(aios_task_as_future(t)), AIOS_EBADHANDLE);
  CHECK(aios_task_get_name(t) == NULL);
  CHECK_EQ(aios_task_ref(t), AIOS_EBADHANDLE);
  CHECK_EQ(aios_task_unref(t), AIOS_EBADHANDLE);
  close_loop(loop);
}

static void test_freed_loop(void) {
  long loops0 = live_count(AIOS_OBJECT_LOOP);
  aios_loop_t *loop = make_loop();
  double d;

  g_called = 0;
  CHECK_EQ(aios_loop_unref(loop), 0);
  CHECK_EQ(live_count(AIOS_OBJECT_LOOP), loops0);
  CHECK_EQ(aios_loop_is_closed(loop), AIOS_EBADHANDLE);
  CHECK_EQ(aios_loop_is_running(loop), AIOS_EBADHANDLE);
  CHECK_EQ(aios_loop_time(loop, &d), AIOS_EBADHANDLE);
  CHECK_EQ(aios_loop_call_soon(loop, never_cb, NULL, NULL, NULL), AIOS_EBADHANDLE);
  CHECK_EQ(aios_loop_call_soon_threadsafe(loop, never_cb, NULL, NULL, NULL), AIOS_EBADHANDLE);
  CHECK_EQ(aios_loop_run_forever(loop), AIOS_EBADHANDLE);
  CHECK_EQ(aios_loop_close(loop), AIOS_EBADHANDLE);
  CHECK_EQ(aios_loop_ref(loop), AIOS_EBADHANDLE);
  CHECK_EQ(aios_loop_unref(loop), AIOS_EBADHANDLE);
  CHECK_EQ(g_called, 0);
}

static void test_freed_handle(void) {
  aios_loop_t *loop = make_loop();
  long handles0 = live_count(AIOS_OBJECT_HANDLE);
  aios_handle_t *h = NULL;
  double d;

  g_called = 0;
  CHECK_EQ(aios_loop_call_later(loop, 10.0, never_cb, NULL, NULL, &h), 0);
  /* Closing the loop drops its reference; ours is the last. */
  CHECK_EQ(aios_loop_close(loop), 0);
  CHECK_EQ(aios_handle_unref(h), 0);
  CHECK_EQ(live_count(AIOS_OBJECT_HANDLE), handles0);
  CHECK_EQ(aios_handle_cancelled(h), AIOS_EBADHANDLE);
  CHECK_EQ(aios_handle_cancel(h), AIOS_EBADHANDLE);
  CHECK_EQ(aios_handle_when(h, &d), AIOS_EBADHANDLE);
  CHECK_EQ(aios_handle_ref(h), AIOS_EBADHANDLE);
  CHECK_EQ(aios_handle_unref(h), AIOS_EBADHANDLE);
  CHECK_EQ(g_called, 0);
  CHECK_EQ(aios_loop_unref(loop), 0);
}

/* A handle kept after its loop was closed and freed still answers: the
 * handle keeps what it needs of the loop alive. */
static void test_handle_outlives_its_loop(void) {
  aios_loop_t *loop = make_loop();
  long loops0 = live_count(AIOS_OBJECT_LOOP) - 1;
  aios_handle_t *h = NULL;
  double d = 0;

  g_called = 0;
  CHECK_EQ(aios_loop_call_later(loop, 10.0, never_cb, NULL, NULL, &h), 0);
  CHECK_EQ(aios_loop_close(loop), 0);
  CHECK_EQ(aios_loop_unref(loop), 0);
  CHECK_EQ(aios_handle_cancelled(h), 1); /* closing dropped the timer */
  CHECK_EQ(aios_handle_cancel(h), 0);     /* harmless, as in asyncio */
  CHECK_EQ(aios_handle_when(h, &d), 0);
  CHECK(d > 0);
  CHECK_EQ(aios_handle_unref(h), 0);
  CHECK_EQ(live_count(AIOS_OBJECT_LOOP), loops0);
  CHECK_EQ(g_called, 0);
}

static void test_freed_error(void) {
  long errors0 = live_count(AIOS_OBJECT_ERROR);
  aios_error_t *err = NULL;

  CHECK_EQ(aios_error_new(AIOS_EINVAL, "gone", &err), 0);
  CHECK_EQ(aios_error_unref(err), 0);
  CHECK_EQ(live_count(AIOS_OBJECT_ERROR), errors0);
  CHECK_EQ(aios_error_code(err), AIOS_EBADHANDLE);
  CHECK_EQ(aios_error_kind(err), AIOS_EBADHANDLE);
  CHECK_EQ(aios_error_os_errno(err), AIOS_EBADHANDLE);
  CHECK(aios_error_message(err) == NULL);
  CHECK(aios_error_user_data(err) == NULL);
  CHECK_EQ(aios_error_ref(err), AIOS_EBADHANDLE);
  CHECK_EQ(aios_error_unref(err), AIOS_EBADHANDLE);
}

static void test_freed_runner(void) {
  long runners0 = live_count(AIOS_OBJECT_RUNNER);
  aios_runner_t *r = NULL;

  g_called = 0;
  CHECK_EQ(aios_runner_new(&r), 0);
  CHECK_EQ(aios_runner_unref(r), 0);
  CHECK_EQ(live_count(AIOS_OBJECT_RUNNER), runners0);
  CHECK_EQ(aios_runner_close(r), AIOS_EBADHANDLE);
  CHECK_EQ(aios_runner_run(r, never_step, NULL, NULL, NULL), AIOS_EBADHANDLE);
  CHECK_EQ(aios_runner_unref(r), AIOS_EBADHANDLE);
  CHECK_EQ(g_called, 0);
}

/* ------------------------------------------------------------------------ */
/* Wrong thread                                                               */

typedef struct wt_s {
  aios_loop_t *loop;
  aios_future_t *future;
  aios_handle_t *handle;
  aios_task_t *task;
  pthread_t main_thread;
  /* results, filled by the thread */
  int call_soon, call_later, call_at, run_forever, run_until_complete, stop,
      close, time, set_debug, get_debug, set_handler, call_handler,
      future_new, set_result, future_done, future_cancel, add_done,
      sleep, handle_cancel, handle_cancelled, task_new, task_cancel,
      task_cancelling, current_task, all_tasks, set_name;
  /* calls that any thread may make */
  int is_running, is_closed, ref, unref, threadsafe, get_running,
      error_new, error_code, error_unref, future_ref, future_unref,
      handle_ref, handle_unref, task_ref, task_unref;
  int threadsafe_ran_on_main;
  aios_future_t *made_future;
  aios_task_t *made_task;
  int value_freed;
} wt_t;

static void on_main_cb(void *arg) {
  wt_t *w = (wt_t *)arg;
  w->threadsafe_ran_on_main = pthread_equal(pthread_self(), w->main_thread) != 0;
}

static void *wrong_thread(void *arg) {
  wt_t *w = (wt_t *)arg;
  aios_loop_t *running = NULL;
  aios_error_t *err = NULL;
  aios_future_t *s = NULL;
  aios_task_t *cur = NULL;
  double d;

  w->call_soon = aios_loop_call_soon(w->loop, never_cb, NULL, NULL, NULL);
  w->call_later = aios_loop_call_later(w->loop, 0.0, never_cb, NULL, NULL, NULL);
  w->call_at = aios_loop_call_at(w->loop, 0.0, never_cb, NULL, NULL, NULL);
  w->run_forever = aios_loop_run_forever(w->loop);
  w->run_until_complete = aios_loop_run_until_complete(w->loop, w->future);
  w->stop = aios_loop_stop(w->loop);
  w->close = aios_loop_close(w->loop);
  w->time = aios_loop_time(w->loop, &d);
  w->set_debug = aios_loop_set_debug(w->loop, 1);
  w->get_debug = aios_loop_get_debug(w->loop);
  w->set_handler = aios_loop_set_exception_handler(w->loop, never_handler, NULL);
  w->call_handler = aios_loop_call_exception_handler(w->loop, "m", NULL);
  w->future_new = aios_future_new(w->loop, &w->made_future);
  w->set_result = aios_future_set_result(w->future, &w->value_freed, count_destructor);
  w->future_done = aios_future_done(w->future);
  w->future_cancel = aios_future_cancel(w->future, NULL);
  w->add_done = aios_future_add_done_callback(w->future, never_done_cb, NULL, NULL);
  w->sleep = aios_sleep(w->loop, 0.0, &w->value_freed, count_destructor, &s);
  w->handle_cancel = aios_handle_cancel(w->handle);
  w->handle_cancelled = aios_handle_cancelled(w->handle);
  w->task_new = aios_task_new(w->loop, never_step, NULL, NULL, &w->made_task);
  w->task_cancel = aios_task_cancel(w->task, NULL);
  w->task_cancelling = aios_task_cancelling(w->task);
  w->current_task = aios_current_task(w->loop, &cur);
  w->all_tasks = aios_all_tasks(w->loop, NULL, 0);
  w->set_name = aios_task_set_name(w->task, "renamed");

  /* Allowed from any thread. */
  w->is_running = aios_loop_is_running(w->loop);
  w->is_closed = aios_loop_is_closed(w->loop);
  w->ref = aios_loop_ref(w->loop);
  w->unref = aios_loop_unref(w->loop);
  w->future_ref = aios_future_ref(w->future);
  w->future_unref = aios_future_unref(w->future);
  w->handle_ref = aios_handle_ref(w->handle);
  w->handle_unref = aios_handle_unref(w->handle);
  w->task_ref = aios_task_ref(w->task);
  w->task_unref = aios_task_unref(w->task);
  w->get_running = aios_get_running_loop(&running);
  w->error_new = aios_error_new(-ETIMEDOUT, "from a thread", &err);
  w->error_code = aios_error_code(err);
  w->error_unref = aios_error_unref(err);
  w->threadsafe = aios_loop_call_soon_threadsafe(w->loop, on_main_cb, w, NULL, NULL);
  if (s)
    aios_future_unref(s);
  if (cur)
    aios_task_unref(cur);
  if (running)
    aios_loop_unref(running);
  return NULL;
}

/* A loop belongs to the thread that made it: another thread gets
 * AIOS_EWRONGTHREAD from everything but *_threadsafe, ref/unref and the
 * "any thread" functions. */
static void test_wrong_thread(void) {
  aios_loop_t *loop = make_loop();
  pthread_t th;
  wt_t w;

  g_called = 0;
  memset(&w, 0, sizeof w);
  w.loop = loop;
  w.main_thread = pthread_self();
  CHECK_EQ(aios_future_new(loop, &w.future), 0);
  CHECK_EQ(aios_loop_call_later(loop, 30.0, never_cb, NULL, NULL, &w.handle), 0);
  CHECK_EQ(aios_task_new(loop, never_step, NULL, NULL, &w.task), 0);
  CHECK_EQ(pthread_create(&th, NULL, wrong_thread, &w), 0);
  CHECK_EQ(pthread_join(th, NULL), 0);

  CHECK_EQ(w.call_soon, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.call_later, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.call_at, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.run_forever, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.run_until_complete, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.stop, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.close, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.time, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.set_debug, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.get_debug, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.set_handler, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.call_handler, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.future_new, AIOS_EWRONGTHREAD);
  CHECK(w.made_future == NULL);
  CHECK_EQ(w.set_result, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.value_freed, 0);
  CHECK_EQ(w.future_done, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.future_cancel, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.add_done, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.sleep, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.handle_cancel, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.handle_cancelled, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.task_new, AIOS_EWRONGTHREAD);
  CHECK(w.made_task == NULL);
  CHECK_EQ(w.task_cancel, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.task_cancelling, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.current_task, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.all_tasks, AIOS_EWRONGTHREAD);
  CHECK_EQ(w.set_name, AIOS_EWRONGTHREAD);

  CHECK_EQ(w.is_running, 0);
  CHECK_EQ(w.is_closed, 0);
  CHECK_EQ(w.ref, 0);
  CHECK_EQ(w.unref, 0);
  CHECK_EQ(w.future_ref, 0);
  CHECK_EQ(w.future_unref, 0);
  CHECK_EQ(w.handle_ref, 0);
  CHECK_EQ(w.handle_unref, 0);
  CHECK_EQ(w.task_ref, 0);
  CHECK_EQ(w.task_unref, 0);
  CHECK_EQ(w.get_running, AIOS_ENOLOOP);
  CHECK_EQ(w.error_new, 0);
  CHECK_EQ(w.error_code, -ETIMEDOUT);
  CHECK_EQ(w.error_unref, 0);
  CHECK_EQ(w.threadsafe, 0);

  /* Nothing changed on the loop's side. */
  CHECK_EQ(aios_loop_is_closed(loop), 0);
  CHECK_EQ(aios_loop_get_debug(loop), 0);
  CHECK_EQ(aios_future_done(w.future), 0);
  CHECK_EQ(aios_handle_cancelled(w.handle), 0);
  CHECK_EQ(aios_task_cancelling(w.task), 0);
  CHECK(aios_task_get_name(w.task) != NULL);
  CHECK(strcmp(aios_task_get_name(w.task), "renamed") != 0);
  /* Cancelled before it steps: never_step must not run. */
  CHECK_EQ(aios_task_cancel(w.task, NULL), 1);
  /* The threadsafe call runs here, on the loop's thread. */
  run_once(loop);
  CHECK_EQ(w.threadsafe_ran_on_main, 1);
  CHECK_EQ(g_called, 0);

  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(w.task)), AIOS_ECANCELLED);
  CHECK_EQ(g_called, 0);
  CHECK_EQ(aios_task_unref(w.task), 0);
  CHECK_EQ(aios_handle_cancel(w.handle), 0);
  CHECK_EQ(aios_handle_unref(w.handle), 0);
  CHECK_EQ(aios_future_unref(w.future), 0);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Status descriptions and version                                            */

static void check_code(int code, const char *name, const char *msg) {
  const char *s = aios_strerror(code);
  const char *n = aios_err_name(code);
  CHECK(s != NULL);
  CHECK(n != NULL);
  CHECK_STR_EQ(s, msg);
  CHECK_STR_EQ(n, name);
}

static void test_strerror_and_names(void) {
  const char *s, *n;
  int errnos[] = {-ECONNRESET, -EPIPE, -ENOENT, -EAGAIN};
  size_t i;

#define CHECK_CODE_(name, value, msg)                                          \
  CHECK_EQ(AIOS_##name, value);                                                \
  check_code(AIOS_##name, "AIOS_" #name, msg);
  AIOS_ERRNO_MAP(CHECK_CODE_)
#undef CHECK_CODE_

  CHECK_STR_EQ(aios_err_name(-ECONNRESET), "ECONNRESET");
  CHECK_STR_EQ(aios_err_name(-EPIPE), "EPIPE");
  for (i = 0; i < sizeof errnos / sizeof errnos[0]; i++) {
    s = aios_strerror(errnos[i]);
    CHECK(s != NULL && s[0] != '\0');
  }
  /* A code that means nothing. */
  s = aios_strerror(-2999999);
  n = aios_err_name(-2999999);
  CHECK(s != NULL && s[0] != '\0');
  CHECK(n != NULL && n[0] != '\0');
  s = aios_strerror(12345);
  n = aios_err_name(12345);
  CHECK(s != NULL);
  CHECK(n != NULL);
  CHECK(aios_strerror(0) != NULL);
  CHECK(aios_err_name(0) != NULL);
}

static void *strerror_thread(void *arg) {
  int *ok = (int *)arg;
  *ok = aios_strerror(AIOS_ECLOSED) != NULL &&
        strcmp(aios_err_name(AIOS_ECLOSED), "AIOS_ECLOSED") == 0 &&
        aios_version() == AIOS_VERSION_HEX;
  return NULL;
}

static void test_version(void) {
  char expected[64];
  pthread_t th;
  int ok = 0;

  CHECK_EQ(aios_version(), AIOS_VERSION_HEX);
  CHECK_EQ(AIOS_VERSION_HEX, (AIOS_VERSION_MAJOR << 16) | (AIOS_VERSION_MINOR << 8) |
                                 AIOS_VERSION_PATCH);
  snprintf(expected, sizeof expected, "%d.%d.%d", AIOS_VERSION_MAJOR,
           AIOS_VERSION_MINOR, AIOS_VERSION_PATCH);
  CHECK_STR_EQ(aios_version_string(), expected);
  /* Any thread. */
  CHECK_EQ(pthread_create(&th, NULL, strerror_thread, &ok), 0);
  CHECK_EQ(pthread_join(th, NULL), 0);
  CHECK_EQ(ok, 1);
}

TEST_MAIN(TEST_ENTRY(test_null_errors),
          TEST_ENTRY(test_null_loop),
          TEST_ENTRY(test_null_handle),
          TEST_ENTRY(test_null_future),
          TEST_ENTRY(test_null_task),
          TEST_ENTRY(test_null_run_and_runner),
          TEST_ENTRY(test_live_objects_bad_type),
          TEST_ENTRY(test_freed_future),
          TEST_ENTRY(test_freed_task),
          TEST_ENTRY(test_freed_loop),
          TEST_ENTRY(test_freed_handle),
          TEST_ENTRY(test_handle_outlives_its_loop),
          TEST_ENTRY(test_freed_error),
          TEST_ENTRY(test_freed_runner),
          TEST_ENTRY(test_wrong_thread),
          TEST_ENTRY(test_strerror_and_names),
          TEST_ENTRY(test_version))
