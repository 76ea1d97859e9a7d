/*
 * test_future.c: futures (asyncio.Future): results and their destructors,
 * errors, cancellation, done callbacks, unretrieved errors.
 */
#include "test_util.h"

static aios_future_t *new_future(aios_loop_t *loop) {
  aios_future_t *f = NULL;
  CHECK_EQ(aios_future_new(loop, &f), 0);
  CHECK(f != NULL);
  return f;
}

/* ------------------------------------------------------------------------ */
/* Results                                                                    */

static void test_result_and_destructor_once(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = new_future(loop);
  aios_loop_t *floop = NULL;
  int value = 5, freed = 0;
  void *out = NULL;

  CHECK_EQ(aios_future_done(f), 0);
  CHECK_EQ(aios_future_cancelled(f), 0);
  CHECK_EQ(aios_future_get_loop(f, &floop), 0);
  CHECK_PTR_EQ(floop, loop);
  CHECK_EQ(aios_loop_unref(floop), 0);

  CHECK_EQ(aios_future_set_result(f, &freed, count_destructor), 0);
  CHECK_EQ(aios_future_done(f), 1);
  CHECK_EQ(aios_future_cancelled(f), 0);
  CHECK_EQ(aios_future_result(f, &out), 0);
  CHECK_PTR_EQ(out, &freed);
  /* The value is borrowed: reading it twice, or with a NULL out, is fine. */
  CHECK_EQ(aios_future_result(f, NULL), 0);
  CHECK_EQ(aios_future_result(f, &out), 0);
  CHECK_PTR_EQ(out, &freed);
  {
    aios_error_t *err = (aios_error_t *)&value; /* must be overwritten */
    CHECK_EQ(aios_future_error(f, &err), 0);
    CHECK(err == NULL);
  }
  /* Owned by the future until it is freed; an extra ref delays it. */
  CHECK_EQ(freed, 0);
  CHECK_EQ(aios_future_ref(f), 0);
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(freed, 0);
  /* Closing the loop does not free the future's value either. */
  CHECK_EQ(aios_loop_close(loop), 0);
  CHECK_EQ(freed, 0);
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(freed, 1);
  CHECK_EQ(aios_loop_unref(loop), 0);
  CHECK_EQ(freed, 1);
}

/* A value without a destructor is simply left alone. */
static void test_result_null_destructor(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = new_future(loop);
  void *out = NULL;

  CHECK_EQ(aios_future_set_result(f, NULL, NULL), 0);
  CHECK_EQ(aios_future_result(f, &out), 0);
  CHECK(out == NULL);
  CHECK_EQ(aios_future_unref(f), 0);
  close_loop(loop);
}

/* asyncio: set_result on a done future raises InvalidStateError; here the
 * caller keeps its value (its destructor is not called) and the first result
 * stays. */
static void test_set_twice_invalid_state(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = new_future(loop);
  aios_error_t *err = NULL;
  int first = 0, second = 0;
  void *out = NULL;

  CHECK_EQ(aios_future_set_result(f, &first, count_destructor), 0);
  CHECK_EQ(aios_future_set_result(f, &second, count_destructor), AIOS_EINVALIDSTATE);
  CHECK_EQ(aios_error_new(AIOS_ETIMEOUT, NULL, &err), 0);
  CHECK_EQ(aios_future_set_error(f, err), AIOS_EINVALIDSTATE);
  CHECK_EQ(aios_error_unref(err), 0);
  CHECK_EQ(aios_future_result(f, &out), 0);
  CHECK_PTR_EQ(out, &first);
  CHECK_EQ(first, 0);
  CHECK_EQ(second, 0);
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(first, 1);
  CHECK_EQ(second, 0);
  close_loop(loop);
}

static void test_result_before_done(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = new_future(loop);
  aios_error_t *err = NULL;
  void *out = &out;

  CHECK_EQ(aios_future_result(f, &out), AIOS_EINVALIDSTATE);
  CHECK_EQ(aios_future_error(f, &err), AIOS_EINVALIDSTATE);
  CHECK(err == NULL);
  CHECK_EQ(aios_future_done(f), 0);
  CHECK_EQ(aios_future_unref(f), 0);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Cancellation                                                               */

static void test_cancel_with_message(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = new_future(loop);
  aios_error_t *err = NULL;
  void *out = NULL;

  CHECK_EQ(aios_future_cancel(f, "no longer needed"), 1);
  CHECK_EQ(aios_future_cancelled(f), 1);
  CHECK_EQ(aios_future_done(f), 1);
  CHECK_EQ(aios_future_result(f, &out), AIOS_ECANCELLED);
  CHECK_EQ(aios_future_error(f, &err), 0);
  CHECK(err != NULL);
  CHECK_EQ(aios_error_kind(err), AIOS_ERROR_CANCELLED);
  CHECK_EQ(aios_error_code(err), AIOS_ECANCELLED);
  CHECK_STR_EQ(aios_error_message(err), "no longer needed");
  CHECK_EQ(aios_error_unref(err), 0);
  /* Cancelling again, or setting a result now, changes nothing. */
  CHECK_EQ(aios_future_cancel(f, "again"), 0);
  CHECK_EQ(aios_future_set_result(f, NULL, NULL), AIOS_EINVALIDSTATE);
  CHECK_EQ(aios_future_error(f, &err), 0);
  CHECK_STR_EQ(aios_error_message(err), "no longer needed");
  CHECK_EQ(aios_error_unref(err), 0);
  CHECK_EQ(aios_future_unref(f), 0);
  close_loop(loop);
}

static void test_cancel_done_future_returns_0(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = new_future(loop);
  int freed = 0;

  CHECK_EQ(aios_future_set_result(f, &freed, count_destructor), 0);
  CHECK_EQ(aios_future_cancel(f, "late"), 0);
  CHECK_EQ(aios_future_cancel(f, NULL), 0);
  CHECK_EQ(aios_future_cancelled(f), 0);
  CHECK_EQ(aios_future_result(f, NULL), 0);
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(freed, 1);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Errors                                                                     */

static void test_set_error_then_result(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = new_future(loop);
  aios_error_t *err = NULL, *got = NULL;
  long errors0;

  CHECK_EQ(aios_error_new(-ECONNRESET, "peer reset", &err), 0);
  errors0 = live_count(AIOS_OBJECT_ERROR);
  CHECK_EQ(aios_future_set_error(f, err), 0);
  /* The future keeps the error itself (code, message, data), not our
   * object: dropping ours frees it, and the error stays readable below. */
  CHECK_EQ(aios_error_unref(err), 0);
  CHECK_EQ(live_count(AIOS_OBJECT_ERROR), errors0 - 1);
  CHECK_EQ(aios_future_done(f), 1);
  CHECK_EQ(aios_future_cancelled(f), 0);
  CHECK_EQ(aios_future_result(f, NULL), -ECONNRESET);
  CHECK_EQ(aios_future_error(f, &got), 0);
  CHECK(got != NULL);
  CHECK_EQ(aios_error_code(got), -ECONNRESET);
  CHECK_EQ(aios_error_kind(got), AIOS_ERROR_OS);
  CHECK_EQ(aios_error_os_errno(got), ECONNRESET);
  CHECK_STR_EQ(aios_error_message(got), "peer reset");
  CHECK_EQ(aios_error_unref(got), 0);
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(live_count(AIOS_OBJECT_ERROR), errors0 - 1);
  close_loop(loop);
}

/* The error kinds follow the codes: TimeoutError, and a user error with its
 * data. */
static void test_set_error_kinds(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f1 = new_future(loop), *f2 = new_future(loop);
  aios_error_t *err = NULL, *got = NULL;
  int data = 0;

  CHECK_EQ(aios_error_new(AIOS_ETIMEOUT, "too slow", &err), 0);
  CHECK_EQ(aios_future_set_error(f1, err), 0);
  CHECK_EQ(aios_error_unref(err), 0);
  CHECK_EQ(aios_future_result(f1, NULL), AIOS_ETIMEOUT);
  CHECK_EQ(aios_future_error(f1, &got), 0);
  CHECK_EQ(aios_error_kind(got), AIOS_ERROR_TIMEOUT);
  CHECK_EQ(aios_error_os_errno(got), 0);
  CHECK_STR_EQ(aios_error_message(got), "too slow");
  CHECK_EQ(aios_error_unref(got), 0);

  CHECK_EQ(aios_error_new_user("from python", &data, count_destructor, &err), 0);
  CHECK_EQ(aios_future_set_error(f2, err), 0);
  CHECK_EQ(aios_error_unref(err), 0);
  CHECK_EQ(data, 0);
  CHECK_EQ(aios_future_result(f2, NULL), AIOS_EUSER);
  CHECK_EQ(aios_future_error(f2, &got), 0);
  CHECK_EQ(aios_error_kind(got), AIOS_ERROR_USER);
  CHECK_PTR_EQ(aios_error_user_data(got), &data);
  CHECK_EQ(aios_error_unref(got), 0);
  CHECK_EQ(data, 0);
  /* The user data's destructor runs once, when the error is freed. */
  CHECK_EQ(aios_future_unref(f2), 0);
  CHECK_EQ(data, 1);
  CHECK_EQ(aios_future_unref(f1), 0);
  close_loop(loop);
}

/* Errors made with a NULL message get the code's default message. */
static void test_error_default_message(void) {
  aios_error_t *err = NULL;

  CHECK_EQ(aios_error_new(AIOS_EQUEUEFULL, NULL, &err), 0);
  CHECK(aios_error_message(err) != NULL);
  CHECK_EQ(aios_error_kind(err), AIOS_ERROR_QUEUE_FULL);
  CHECK_EQ(aios_error_code(err), AIOS_EQUEUEFULL);
  CHECK_EQ(aios_error_ref(err), 0);
  CHECK_EQ(aios_error_unref(err), 0);
  CHECK_EQ(aios_error_unref(err), 0);
}

/* asyncio: set_exception(CancelledError()) raises TypeError; cancel() is the
 * way. The future stays pending. */
static void test_set_error_cancelled_refused(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = new_future(loop);
  aios_error_t *err = NULL;

  CHECK_EQ(aios_error_new(AIOS_ECANCELLED, "nope", &err), 0);
  CHECK_EQ(aios_error_kind(err), AIOS_ERROR_CANCELLED);
  CHECK_EQ(aios_future_set_error(f, err), AIOS_EINVAL);
  CHECK_EQ(aios_future_done(f), 0);
  CHECK_EQ(aios_error_unref(err), 0);
  CHECK_EQ(aios_future_unref(f), 0);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Done callbacks                                                             */

typedef struct done_rec_s {
  const char *word;
  aios_future_t *expected;
  int calls;
} done_rec_t;

static void done_cb(aios_future_t *future, void *arg) {
  done_rec_t *r = (done_rec_t *)arg;
  /* The same pointer, while the test holds its reference. */
  if (r->expected)
    CHECK_PTR_EQ(future, r->expected);
  CHECK_EQ(aios_future_done(future), 1);
  r->calls++;
  log_event(r->word);
}

static void other_done_cb(aios_future_t *future, void *arg) {
  done_rec_t *r = (done_rec_t *)arg;
  (void)future;
  r->calls++;
  log_event("other");
}

/* asyncio: done callbacks are scheduled with call_soon, never run inline,
 * in the order they were added. */
static void test_done_callbacks_not_inline_in_order(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = new_future(loop);
  done_rec_t a = {"a", NULL, 0}, b = {"b", NULL, 0}, c = {"c", NULL, 0};
  done_rec_t late = {"late", NULL, 0};

  a.expected = b.expected = c.expected = late.expected = f;
  CHECK_EQ(aios_future_add_done_callback(f, done_cb, &a, NULL), 0);
  CHECK_EQ(aios_future_add_done_callback(f, done_cb, &b, NULL), 0);
  CHECK_EQ(aios_future_add_done_callback(f, done_cb, &c, NULL), 0);
  CHECK_EQ(aios_future_set_result(f, NULL, NULL), 0);
  CHECK_LOG("");
  run_once(loop);
  CHECK_LOG("a b c");

  /* Added to a done future: scheduled, not called inside add. */
  CHECK_EQ(aios_future_add_done_callback(f, done_cb, &late, NULL), 0);
  CHECK_LOG("a b c");
  run_once(loop);
  CHECK_LOG("a b c late");
  run_once(loop);
  CHECK_EQ(a.calls + b.calls + c.calls + late.calls, 4);
  CHECK_EQ(aios_future_unref(f), 0);
  close_loop(loop);
}

/* Done callbacks are scheduled behind what is already ready (call_soon). */
static void test_done_callbacks_after_ready_callbacks(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = new_future(loop);
  done_rec_t a = {"done", NULL, 0};

  a.expected = f;
  CHECK_EQ(aios_future_add_done_callback(f, done_cb, &a, NULL), 0);
  CHECK_EQ(aios_loop_call_soon(loop, log_cb, "soon1", NULL, NULL), 0);
  CHECK_EQ(aios_future_cancel(f, NULL), 1);
  CHECK_EQ(aios_loop_call_soon(loop, log_cb, "soon2", NULL, NULL), 0);
  run_once(loop);
  CHECK_LOG("soon1 done soon2");
  CHECK_EQ(aios_future_unref(f), 0);
  close_loop(loop);
}

static void test_remove_done_callback(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = new_future(loop);
  done_rec_t a = {"a", NULL, 0}, b = {"b", NULL, 0};

  a.expected = b.expected = f;
  CHECK_EQ(aios_future_add_done_callback(f, done_cb, &a, NULL), 0);
  CHECK_EQ(aios_future_add_done_callback(f, done_cb, &b, NULL), 0);
  CHECK_EQ(aios_future_add_done_callback(f, done_cb, &a, NULL), 0);
  CHECK_EQ(aios_future_add_done_callback(f, other_done_cb, &a, NULL), 0);
  CHECK_EQ(aios_future_add_done_callback(f, done_cb, &a, NULL), 0);
  /* Removes every (done_cb, &a), and only those. */
  CHECK_EQ(aios_future_remove_done_callback(f, done_cb, &a), 3);
  CHECK_EQ(aios_future_remove_done_callback(f, done_cb, &a), 0);
  CHECK_EQ(aios_future_remove_done_callback(f, other_done_cb, &b), 0);
  CHECK_EQ(aios_future_set_result(f, NULL, NULL), 0);
  run_once(loop);
  CHECK_LOG("b other");
  CHECK_EQ(a.calls, 1);
  CHECK_EQ(b.calls, 1);
  CHECK_EQ(aios_future_unref(f), 0);
  close_loop(loop);
}

/* A done callback keeps the future alive until it has run, even when the
 * caller drops its reference at once. (The callback gets a valid future;
 * the test's pointer is not compared: it gave up its reference.) */
static void test_done_callback_outlives_caller_reference(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = new_future(loop);
  done_rec_t a = {"a", NULL, 0};
  int freed = 0;

  CHECK_EQ(aios_future_add_done_callback(f, done_cb, &a, NULL), 0);
  CHECK_EQ(aios_future_set_result(f, &freed, count_destructor), 0);
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(freed, 0);
  run_once(loop);
  CHECK_LOG("a");
  CHECK_EQ(freed, 1);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* run_until_complete                                                         */

static void set_result_cb(void *arg) {
  CHECK_EQ(aios_future_set_result((aios_future_t *)arg, NULL, NULL), 0);
}

static void test_run_until_complete(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *ok = new_future(loop), *never = new_future(loop);
  aios_future_t *cancelled = new_future(loop);

  CHECK_EQ(aios_loop_call_later(loop, 0.01, set_result_cb, ok, NULL, NULL), 0);
  CHECK_EQ(aios_loop_run_until_complete(loop, ok), 0);
  CHECK_EQ(aios_future_done(ok), 1);
  CHECK_EQ(aios_loop_is_running(loop), 0);

  CHECK_EQ(aios_future_cancel(cancelled, NULL), 1);
  CHECK_EQ(aios_loop_run_until_complete(loop, cancelled), AIOS_ECANCELLED);

  /* Stopped before the future is done: RuntimeError in asyncio. */
  CHECK_EQ(aios_loop_call_soon(loop, stop_loop_cb, loop, NULL, NULL), 0);
  CHECK_EQ(aios_loop_run_until_complete(loop, never), AIOS_EINVALIDSTATE);
  CHECK_EQ(aios_future_done(never), 0);

  CHECK_EQ(aios_future_unref(ok), 0);
  CHECK_EQ(aios_future_unref(never), 0);
  CHECK_EQ(aios_future_unref(cancelled), 0);
  close_loop(loop);
}

static void test_run_until_complete_wrong_loop(void) {
  aios_loop_t *loop = make_loop(), *other = make_loop();
  aios_future_t *f = new_future(other);

  CHECK_EQ(aios_loop_run_until_complete(loop, f), AIOS_EWRONGLOOP);
  CHECK_EQ(aios_future_unref(f), 0);
  close_loop(other);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Unretrieved errors                                                         */

/* Frees a failed future, after an optional retrieval, and counts the
 * exception handler's reports ("Future exception was never retrieved").
 * asyncio reports from __del__ at once; one more loop iteration is allowed
 * in case the report is scheduled. */
enum { RETRIEVE_NONE, RETRIEVE_RESULT, RETRIEVE_ERROR, CANCEL_INSTEAD };

static int reports_when_freed(int how, exc_record_t *r) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = new_future(loop);
  aios_error_t *err = NULL;

  memset(r, 0, sizeof *r);
  CHECK_EQ(aios_loop_set_exception_handler(loop, exc_recorder, r), 0);
  if (how == CANCEL_INSTEAD) {
    CHECK_EQ(aios_future_cancel(f, "bye"), 1);
  } else {
    CHECK_EQ(aios_error_new(-EPIPE, "broken pipe here", &err), 0);
    CHECK_EQ(aios_future_set_error(f, err), 0);
    CHECK_EQ(aios_error_unref(err), 0);
  }
  if (how == RETRIEVE_RESULT)
    CHECK_EQ(aios_future_result(f, NULL), -EPIPE);
  if (how == RETRIEVE_ERROR) {
    CHECK_EQ(aios_future_error(f, &err), 0);
    CHECK_EQ(aios_error_unref(err), 0);
  }
  CHECK_EQ(r->calls, 0);
  CHECK_EQ(aios_future_unref(f), 0);
  if (r->calls == 0)
    run_once(loop);
  close_loop(loop);
  return r->calls;
}

static void test_unretrieved_error_reported(void) {
  exc_record_t r;

  CHECK_EQ(reports_when_freed(RETRIEVE_NONE, &r), 1);
  CHECK_EQ(r.had_message, 1);
  CHECK_EQ(r.had_error, 1);
  CHECK_EQ(r.error_code, -EPIPE);
  CHECK_EQ(r.error_kind, AIOS_ERROR_OS);
  CHECK_STR_EQ(r.error_message, "broken pipe here");
}

static void test_retrieved_error_not_reported(void) {
  exc_record_t r;

  CHECK_EQ(reports_when_freed(RETRIEVE_RESULT, &r), 0);
  CHECK_EQ(reports_when_freed(RETRIEVE_ERROR, &r), 0);
  /* A cancelled future is not an error to report. */
  CHECK_EQ(reports_when_freed(CANCEL_INSTEAD, &r), 0);
}

TEST_MAIN(TEST_ENTRY(test_result_and_destructor_once),
          TEST_ENTRY(test_result_null_destructor),
          TEST_ENTRY(test_set_twice_invalid_state),
          TEST_ENTRY(test_result_before_done),
          TEST_ENTRY(test_cancel_with_message),
          TEST_ENTRY(test_cancel_done_future_returns_0),
          TEST_ENTRY(test_set_error_then_result),
          TEST_ENTRY(test_set_error_kinds),
          TEST_ENTRY(test_error_default_message),
          TEST_ENTRY(test_set_error_cancelled_refused),
          TEST_ENTRY(test_done_callbacks_not_inline_in_order),
          TEST_ENTRY(test_done_callbacks_after_ready_callbacks),
          TEST_ENTRY(test_remove_done_callback),
          TEST_ENTRY(test_done_callback_outlives_caller_reference),
          TEST_ENTRY(test_run_until_complete),
          TEST_ENTRY(test_run_until_complete_wrong_loop),
          TEST_ENTRY(test_unretrieved_error_reported),
          TEST_ENTRY(test_retrieved_error_not_reported))
