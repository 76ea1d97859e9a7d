/*
 * test_loop.c: the event loop (asyncio.BaseEventLoop): lifetime, running and
 * stopping, call_soon/call_later/call_at ordering, handles, threads, the
 * exception handler and debug mode.
 */
#include "test_util.h"

/* ------------------------------------------------------------------------ */
/* Lifetime                                                                   */

static void test_loop_new_close_unref(void) {
  aios_loop_t *loop = make_loop();
  long loops = live_count(AIOS_OBJECT_LOOP);

  CHECK(loops >= 1);
  CHECK_EQ(aios_loop_is_closed(loop), 0);
  CHECK_EQ(aios_loop_is_running(loop), 0);
  CHECK_EQ(aios_loop_close(loop), 0);
  CHECK_EQ(aios_loop_is_closed(loop), 1);
  CHECK_EQ(aios_loop_is_running(loop), 0);
  /* Closing a closed loop is a no-op. */
  CHECK_EQ(aios_loop_close(loop), 0);
  CHECK_EQ(aios_loop_is_closed(loop), 1);
  CHECK_EQ(live_count(AIOS_OBJECT_LOOP), loops);
  CHECK_EQ(aios_loop_unref(loop), 0);
  CHECK_EQ(live_count(AIOS_OBJECT_LOOP), loops - 1);
}

/* Dropping the last reference of an open loop closes and frees it; a second
 * reference keeps it alive and open. */
static void test_loop_unref_closes(void) {
  long loops0 = live_count(AIOS_OBJECT_LOOP);
  aios_loop_t *loop = make_loop();
  int calls = 0;

  CHECK_EQ(aios_loop_ref(loop), 0);
  CHECK_EQ(aios_loop_unref(loop), 0);
  CHECK_EQ(live_count(AIOS_OBJECT_LOOP), loops0 + 1);
  CHECK_EQ(aios_loop_is_closed(loop), 0);
  /* A pending callback is dropped with the loop, never called. */
  CHECK_EQ(aios_loop_call_soon(loop, count_destructor, &calls, NULL, NULL), 0);
  CHECK_EQ(aios_loop_unref(loop), 0);
  CHECK_EQ(live_count(AIOS_OBJECT_LOOP), loops0);
  CHECK_EQ(calls, 0);
}

/* ------------------------------------------------------------------------ */
/* run_forever and stop                                                       */

typedef struct run_state_s {
  aios_loop_t *loop;
  int calls;
  int was_running;
} run_state_t;

static void record_running_and_stop(void *arg) {
  run_state_t *s = (run_state_t *)arg;
  s->calls++;
  s->was_running = aios_loop_is_running(s->loop);
  CHECK_EQ(aios_loop_stop(s->loop), 0);
}

static void test_run_forever_stop_from_callback(void) {
  aios_loop_t *loop = make_loop();
  run_state_t s;

  memset(&s, 0, sizeof s);
  s.loop = loop;
  CHECK_EQ(aios_loop_call_soon(loop, record_running_and_stop, &s, NULL, NULL), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_EQ(s.calls, 1);
  CHECK_EQ(s.was_running, 1);
  CHECK_EQ(aios_loop_is_running(loop), 0);
  CHECK_EQ(aios_loop_is_closed(loop), 0);
  /* The loop can run again. */
  CHECK_EQ(aios_loop_call_soon(loop, record_running_and_stop, &s, NULL, NULL), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_EQ(s.calls, 2);
  close_loop(loop);
}

static aios_loop_t *g_loop;

static void log_a_schedule_c(void *arg) {
  (void)arg;
  log_event("a");
  CHECK_EQ(aios_loop_call_soon(g_loop, log_cb, "c", NULL, NULL), 0);
}

/* asyncio: stop() before run_forever() makes it run one iteration: the
 * callbacks ready at its start run, the ones they schedule wait for the next
 * run. */
static void test_stop_before_run_runs_one_iteration(void) {
  aios_loop_t *loop = make_loop();

  g_loop = loop;
  CHECK_EQ(aios_loop_call_soon(loop, log_a_schedule_c, NULL, NULL, NULL), 0);
  CHECK_EQ(aios_loop_call_soon(loop, log_cb, "b", NULL, NULL), 0);
  CHECK_EQ(aios_loop_stop(loop), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_LOG("a b");
  CHECK_EQ(aios_loop_is_running(loop), 0);
  /* The stop was consumed: the next stop+run runs "c" (one more iteration). */
  run_once(loop);
  CHECK_LOG("a b c");
  close_loop(loop);
}

static void test_call_soon_fifo(void) {
  static const char *const words[] = {"1", "2", "3", "4", "5", "6", "7", "8"};
  aios_loop_t *loop = make_loop();
  size_t i;

  for (i = 0; i < sizeof words / sizeof words[0]; i++)
    CHECK_EQ(aios_loop_call_soon(loop, log_cb, (void *)words[i], NULL, NULL), 0);
  CHECK_EQ(aios_loop_call_soon(loop, stop_loop_cb, loop, NULL, NULL), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_LOG("1 2 3 4 5 6 7 8");
  close_loop(loop);
}

static void log_b_and_stop(void *arg) {
  (void)arg;
  log_event("b");
  CHECK_EQ(aios_loop_stop(g_loop), 0);
}

/* A callback scheduled by a callback runs on the next iteration: "b" stops
 * the loop after the current iteration, so "c" (scheduled by "a") must not
 * have run yet when run_forever returns. */
static void test_call_soon_from_callback_runs_next_iteration(void) {
  aios_loop_t *loop = make_loop();

  g_loop = loop;
  CHECK_EQ(aios_loop_call_soon(loop, log_a_schedule_c, NULL, NULL, NULL), 0);
  CHECK_EQ(aios_loop_call_soon(loop, log_b_and_stop, NULL, NULL, NULL), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_LOG("a b");
  run_once(loop);
  CHECK_LOG("a b c");
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Timers                                                                     */

typedef struct timer_rec_s {
  const char *word;
  aios_handle_t *handle;
  double fired_at; /* loop time when it ran */
} timer_rec_t;

static void timer_cb(void *arg) {
  timer_rec_t *r = (timer_rec_t *)arg;
  CHECK_EQ(aios_loop_time(g_loop, &r->fired_at), 0);
  log_event(r->word);
}

/* Timers run in order of deadline; timers with the same deadline in the
 * order they were scheduled; none runs before its deadline. The call_later
 * deadlines depend on when each call was made (under valgrind the calls may
 * be many milliseconds apart), so the expected order is computed from
 * aios_handle_when; the call_at ties are exact. */
static void test_timers_order_by_deadline_then_scheduling(void) {
  aios_loop_t *loop = make_loop();
  timer_rec_t r[8];
  double now = 0, when[7], end;
  int order[7], i, j;
  char expected[256];

  g_loop = loop;
  memset(r, 0, sizeof r);
  r[0].word = "t30";
  r[1].word = "t10";
  r[2].word = "t20";
  r[3].word = "x1";
  r[4].word = "x2";
  r[5].word = "x3";
  r[6].word = "y40";
  r[7].word = "soon";
  CHECK_EQ(aios_loop_time(loop, &now), 0);
  /* Scheduled in index order. */
  CHECK_EQ(aios_loop_call_later(loop, 0.03, timer_cb, &r[0], NULL, &r[0].handle), 0);
  CHECK_EQ(aios_loop_call_later(loop, 0.01, timer_cb, &r[1], NULL, &r[1].handle), 0);
  CHECK_EQ(aios_loop_call_later(loop, 0.02, timer_cb, &r[2], NULL, &r[2].handle), 0);
  /* Three timers at exactly the same loop time. */
  CHECK_EQ(aios_loop_call_at(loop, now + 0.05, timer_cb, &r[3], NULL, &r[3].handle), 0);
  CHECK_EQ(aios_loop_call_at(loop, now + 0.05, timer_cb, &r[4], NULL, &r[4].handle), 0);
  CHECK_EQ(aios_loop_call_at(loop, now + 0.05, timer_cb, &r[5], NULL, &r[5].handle), 0);
  CHECK_EQ(aios_loop_call_at(loop, now + 0.04, timer_cb, &r[6], NULL, &r[6].handle), 0);
  CHECK_EQ(aios_loop_call_soon(loop, timer_cb, &r[7], NULL, &r[7].handle), 0);
  CHECK_EQ(aios_loop_call_at(loop, now + 0.2, stop_loop_cb, loop, NULL, NULL), 0);

  /* Expected: "soon" (ready callbacks run before timers), then the timers
   * by deadline, ties in scheduling (index) order: an insertion sort. */
  for (i = 0; i < 7; i++) {
    CHECK_EQ(aios_handle_when(r[i].handle, &when[i]), 0);
    for (j = i; j > 0 && when[order[j - 1]] > when[i]; j--)
      order[j] = order[j - 1];
    order[j] = i;
  }
  strcpy(expected, "soon");
  for (i = 0; i < 7; i++) {
    strcat(expected, " ");
    strcat(expected, r[order[i]].word);
  }
  /* What holds whatever the timing: */
  CHECK(when[1] < when[2]);                       /* t10 before t20 */
  CHECK(when[3] == when[4] && when[4] == when[5]); /* exact ties */
  CHECK(strstr(expected, "x1 x2 x3") != NULL);

  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_LOG(expected);
  for (i = 0; i < 7; i++) {
    /* Never early (a 1 ms allowance for clock resolution, as asyncio's
     * _clock_resolution). */
    CHECK(r[i].fired_at >= when[i] - 0.001);
  }
  CHECK_EQ(aios_loop_time(loop, &end), 0);
  CHECK(end - now >= 0.199);
  for (i = 0; i < 8; i++)
    CHECK_EQ(aios_handle_unref(r[i].handle), 0);
  close_loop(loop);
}

/* call_later with delay <= 0 runs at the next iteration's timers. */
static void test_call_later_zero_and_negative(void) {
  aios_loop_t *loop = make_loop();

  CHECK_EQ(aios_loop_call_later(loop, 0, log_cb, "zero", NULL, NULL), 0);
  CHECK_EQ(aios_loop_call_later(loop, -5, log_cb, "neg", NULL, NULL), 0);
  CHECK_EQ(aios_loop_call_later(loop, 0.02, stop_loop_cb, loop, NULL, NULL), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  /* -5 has the earlier deadline. */
  CHECK_LOG("neg zero");
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Handles                                                                    */

static void test_handle_cancel(void) {
  aios_loop_t *loop = make_loop();
  aios_handle_t *h1 = NULL, *h2 = NULL, *h3 = NULL, *t1 = NULL;

  CHECK_EQ(aios_loop_call_soon(loop, log_cb, "one", NULL, &h1), 0);
  CHECK_EQ(aios_loop_call_soon(loop, log_cb, "two", NULL, &h2), 0);
  CHECK_EQ(aios_loop_call_later(loop, 0.001, log_cb, "timer", NULL, &t1), 0);
  CHECK(h1 != NULL && h2 != NULL && t1 != NULL);
  CHECK_EQ(aios_handle_cancelled(h1), 0);
  CHECK_EQ(aios_handle_cancel(h1), 0);
  CHECK_EQ(aios_handle_cancelled(h1), 1);
  /* Cancelling twice is a no-op. */
  CHECK_EQ(aios_handle_cancel(h1), 0);
  CHECK_EQ(aios_handle_cancelled(h1), 1);
  CHECK_EQ(aios_handle_cancel(t1), 0);
  CHECK_EQ(aios_handle_cancelled(t1), 1);
  CHECK_EQ(aios_loop_call_later(loop, 0.03, stop_loop_cb, loop, NULL, NULL), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_LOG("two");
  CHECK_EQ(aios_handle_cancelled(h2), 0);
  /* Cancelling after the callback ran is a no-op too. */
  CHECK_EQ(aios_handle_cancel(h2), 0);

  /* A dropped handle still runs its callback. */
  CHECK_EQ(aios_loop_call_soon(loop, log_cb, "three", NULL, &h3), 0);
  CHECK_EQ(aios_handle_unref(h3), 0);
  run_once(loop);
  CHECK_LOG("two three");

  CHECK_EQ(aios_handle_unref(h1), 0);
  CHECK_EQ(aios_handle_unref(h2), 0);
  CHECK_EQ(aios_handle_unref(t1), 0);
  close_loop(loop);
}

static void test_handle_when(void) {
  aios_loop_t *loop = make_loop();
  aios_handle_t *at = NULL, *later = NULL, *soon = NULL;
  double now = 0, before = 0, after = 0, when = -1;

  CHECK_EQ(aios_loop_time(loop, &now), 0);
  CHECK_EQ(aios_loop_call_at(loop, now + 5.0, stop_loop_cb, loop, NULL, &at), 0);
  CHECK_EQ(aios_handle_when(at, &when), 0);
  CHECK_NEAR(when, now + 5.0, 1e-9);

  CHECK_EQ(aios_loop_time(loop, &before), 0);
  CHECK_EQ(aios_loop_call_later(loop, 2.5, stop_loop_cb, loop, NULL, &later), 0);
  CHECK_EQ(aios_loop_time(loop, &after), 0);
  CHECK_EQ(aios_handle_when(later, &when), 0);
  CHECK(when >= before + 2.5 - 1e-9);
  CHECK(when <= after + 2.5 + 1e-9);

  /* A call_soon handle has no deadline. */
  CHECK_EQ(aios_loop_call_soon(loop, stop_loop_cb, loop, NULL, &soon), 0);
  CHECK_EQ(aios_handle_when(soon, &when), AIOS_EINVAL);

  CHECK_EQ(aios_handle_cancel(at), 0);
  CHECK_EQ(aios_handle_cancel(later), 0);
  CHECK_EQ(aios_handle_cancel(soon), 0);
  CHECK_EQ(aios_handle_unref(at), 0);
  CHECK_EQ(aios_handle_unref(later), 0);
  CHECK_EQ(aios_handle_unref(soon), 0);
  close_loop(loop);
}

/* asyncio's loop.time() is time.monotonic(): it advances by itself, also
 * while the loop is not running. */
static void test_loop_time_monotonic(void) {
  aios_loop_t *loop = make_loop();
  double t0 = 0, t1 = 0, t2 = 0;
  int i;

  CHECK_EQ(aios_loop_time(loop, &t0), 0);
  CHECK(t0 >= 0);
  t1 = t0;
  for (i = 0; i < 1000; i++) {
    CHECK_EQ(aios_loop_time(loop, &t2), 0);
    CHECK(t2 >= t1);
    t1 = t2;
  }
  test_sleep(0.03);
  CHECK_EQ(aios_loop_time(loop, &t2), 0);
  CHECK(t2 - t0 >= 0.025);
  CHECK(t2 - t0 < 10.0);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Threads                                                                    */

typedef struct ts_state_s {
  aios_loop_t *loop;
  pthread_t main_thread;
  int saw_running;       /* the thread saw the loop running */
  int call_rc;           /* call_soon_threadsafe's status */
  int get_running_rc;    /* aios_get_running_loop in the thread */
  int called;            /* the callback ran */
  int called_on_main;    /* ... on the loop's thread */
  volatile int called_after_request; /* request was made before the callback */
  volatile int requested;
} ts_state_t;

static void ts_stop_cb(void *arg) {
  ts_state_t *s = (ts_state_t *)arg;
  s->called++;
  s->called_on_main = pthread_equal(pthread_self(), s->main_thread) != 0;
  s->called_after_request = s->requested;
  CHECK_EQ(aios_loop_stop(s->loop), 0);
}

static void *ts_thread(void *arg) {
  ts_state_t *s = (ts_state_t *)arg;
  aios_loop_t *other = NULL;
  double deadline = test_now() + 20.0;

  while (aios_loop_is_running(s->loop) != 1 && test_now() < deadline)
    test_sleep(0.005);
  s->saw_running = aios_loop_is_running(s->loop) == 1;
  /* Let the loop settle into its wait for I/O. */
  test_sleep(0.05);
  s->get_running_rc = aios_get_running_loop(&other);
  if (other)
    aios_loop_unref(other);
  s->requested = 1;
  s->call_rc = aios_loop_call_soon_threadsafe(s->loop, ts_stop_cb, s, NULL, NULL);
  return NULL;
}

/* A loop with nothing to do blocks in run_forever (it does not return); a
 * call_soon_threadsafe from another thread wakes it and its callback runs on
 * the loop's thread. */
static void test_call_soon_threadsafe_wakes_loop(void) {
  aios_loop_t *loop = make_loop();
  ts_state_t s;
  pthread_t th;

  memset(&s, 0, sizeof s);
  s.loop = loop;
  s.main_thread = pthread_self();
  CHECK_EQ(pthread_create(&th, NULL, ts_thread, &s), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_EQ(pthread_join(th, NULL), 0);
  CHECK_EQ(s.saw_running, 1);
  CHECK_EQ(s.call_rc, 0);
  CHECK_EQ(s.get_running_rc, AIOS_ENOLOOP);
  CHECK_EQ(s.called, 1);
  CHECK_EQ(s.called_on_main, 1);
  CHECK_EQ(s.called_after_request, 1);
  close_loop(loop);
}

static void *own_loop_thread(void *arg) {
  int *ok = (int *)arg;
  aios_loop_t *loop = NULL;
  int calls = 0;
  if (aios_loop_new(&loop) != 0)
    return NULL;
  if (aios_loop_call_soon(loop, count_destructor, &calls, NULL, NULL) == 0 &&
      aios_loop_call_soon(loop, stop_loop_cb, loop, NULL, NULL) == 0 &&
      aios_loop_run_forever(loop) == 0 && calls == 1 && aios_loop_close(loop) == 0)
    *ok = 1;
  aios_loop_unref(loop);
  return NULL;
}

/* One loop per thread: a second thread runs its own loop. */
static void test_loop_per_thread(void) {
  aios_loop_t *loop = make_loop();
  pthread_t th;
  int ok = 0;

  CHECK_EQ(pthread_create(&th, NULL, own_loop_thread, &ok), 0);
  CHECK_EQ(pthread_join(th, NULL), 0);
  CHECK_EQ(ok, 1);
  close_loop(loop);
}

/* Handles are taken and given back on many threads at once: each thread
 * makes futures on its own loop, while all of them share error objects and
 * drop references to them. No handle may name another thread's object, a
 * dropped handle must be dead, and every object must be freed. */
enum { HT_THREADS = 4, HT_ROUNDS = 300, HT_BATCH = 16 };

typedef struct handle_thread_s {
  aios_error_t *shared;
  int ok;
} handle_thread_t;

static void *handle_thread(void *arg) {
  handle_thread_t *t = (handle_thread_t *)arg;
  aios_loop_t *loop = NULL;
  aios_future_t *futures[HT_BATCH];
  if (aios_loop_new(&loop) != 0) return NULL;
  int ok = 1;
  for (int round = 0; round < HT_ROUNDS && ok; round++) {
    for (int i = 0; i < HT_BATCH; i++) {
      if (aios_future_new(loop, &futures[i]) != 0) ok = 0;
      else if (aios_future_set_result(futures[i], (void *)(intptr_t)(round * HT_BATCH + i + 1), NULL) != 0) ok = 0;
    }
    /* Another reference to the shared error, dropped at once. */
    if (aios_error_ref(t->shared) != 0 || aios_error_unref(t->shared) != 0) ok = 0;
    for (int i = 0; i < HT_BATCH && ok; i++) {
      void *value = NULL;
      if (aios_future_result(futures[i], &value) != 0 || value != (void *)(intptr_t)(round * HT_BATCH + i + 1))
        ok = 0;
    }
    for (int i = 0; i < HT_BATCH; i++) {
      if (aios_future_unref(futures[i]) != 0) ok = 0;
      /* Dead now, unless another thread's new object took the slot with
       * the same generation, which the generation forbids. */
      if (aios_future_done(futures[i]) != AIOS_EBADHANDLE) ok = 0;
    }
  }
  if (aios_loop_close(loop) != 0) ok = 0;
  aios_loop_unref(loop);
  t->ok = ok;
  return NULL;
}

static void test_handles_across_threads(void) {
  handle_thread_t threads[HT_THREADS];
  pthread_t ids[HT_THREADS];
  aios_error_t *shared = NULL;
  CHECK_EQ(aios_error_new(AIOS_ETIMEOUT, "shared", &shared), 0);
  for (int i = 0; i < HT_THREADS; i++) {
    threads[i].shared = shared;
    threads[i].ok = 0;
    CHECK_EQ(pthread_create(&ids[i], NULL, handle_thread, &threads[i]), 0);
  }
  for (int i = 0; i < HT_THREADS; i++) CHECK_EQ(pthread_join(ids[i], NULL), 0);
  for (int i = 0; i < HT_THREADS; i++) CHECK_EQ(threads[i].ok, 1);
  CHECK_EQ(aios_error_code(shared), AIOS_ETIMEOUT);
  CHECK_EQ(aios_error_unref(shared), 0);
}

/* ------------------------------------------------------------------------ */
/* Running-loop rules                                                         */

typedef struct inside_state_s {
  aios_loop_t *loop;
  aios_loop_t *other;
  int get_running_rc;
  aios_loop_t *running;
  int nested_run_rc;
  int nested_other_rc;
  int nested_ruc_rc;
  int close_rc;
  int is_running;
  int is_closed;
} inside_state_t;

static void inside_cb(void *arg) {
  inside_state_t *s = (inside_state_t *)arg;
  aios_future_t *f = NULL;

  s->get_running_rc = aios_get_running_loop(&s->running);
  s->nested_run_rc = aios_loop_run_forever(s->loop);
  /* Another loop cannot run on this thread either. */
  s->nested_other_rc = aios_loop_run_forever(s->other);
  CHECK_EQ(aios_future_new(s->loop, &f), 0);
  s->nested_ruc_rc = aios_loop_run_until_complete(s->loop, f);
  CHECK_EQ(aios_future_unref(f), 0);
  s->close_rc = aios_loop_close(s->loop);
  s->is_running = aios_loop_is_running(s->loop);
  s->is_closed = aios_loop_is_closed(s->loop);
  CHECK_EQ(aios_loop_stop(s->loop), 0);
}

static void test_running_loop_rules(void) {
  aios_loop_t *loop = make_loop();
  aios_loop_t *other = make_loop();
  aios_loop_t *out = NULL;
  inside_state_t s;

  /* No loop runs on this thread. */
  CHECK_EQ(aios_get_running_loop(&out), AIOS_ENOLOOP);
  CHECK(out == NULL);

  memset(&s, 0, sizeof s);
  s.loop = loop;
  s.other = other;
  CHECK_EQ(aios_loop_call_soon(loop, inside_cb, &s, NULL, NULL), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_EQ(s.get_running_rc, 0);
  CHECK_PTR_EQ(s.running, loop);
  CHECK_EQ(s.nested_run_rc, AIOS_ERUNNING);
  CHECK_EQ(s.nested_other_rc, AIOS_ERUNNING);
  CHECK_EQ(s.nested_ruc_rc, AIOS_ERUNNING);
  CHECK_EQ(s.close_rc, AIOS_ERUNNING);
  CHECK_EQ(s.is_running, 1);
  CHECK_EQ(s.is_closed, 0);
  CHECK_EQ(aios_loop_unref(s.running), 0);

  /* After the run: no running loop again, loop still open. */
  CHECK_EQ(aios_get_running_loop(&out), AIOS_ENOLOOP);
  CHECK_EQ(aios_loop_is_running(loop), 0);
  CHECK_EQ(aios_loop_is_closed(loop), 0);
  close_loop(other);
  close_loop(loop);
}

static void set_flag_cb(void *arg) { *(int *)arg = 1; }

/* What a child forked from a running loop's callback can do: it runs no
 * loop, and a loop it makes runs (0), else the step that failed. */
static int forked_child_status(void) {
  aios_loop_t *out = NULL, *mine = NULL;
  int ran = 0;
  if (aios_get_running_loop(&out) != AIOS_ENOLOOP) return 1;
  if (aios_loop_new(&mine) != 0) return 2;
  if (aios_loop_call_soon(mine, set_flag_cb, &ran, NULL, NULL) != 0) return 3;
  if (aios_loop_stop(mine) != 0) return 4;
  if (aios_loop_run_forever(mine) != 0) return 5;
  if (!ran) return 6;
  if (aios_loop_close(mine) != 0 || aios_loop_unref(mine) != 0) return 7;
  return 0;
}

static void fork_cb(void *arg) {
  pid_t *child = (pid_t *)arg;
  *child = fork();
  if (*child == 0) _exit(forked_child_status());
}

/* The parent's running loop is not the forked child's (asyncio resets its
 * running loop in a child too): the child can make a loop and run it. */
static void test_forked_child_runs_a_loop_of_its_own(void) {
  aios_loop_t *loop = make_loop();
  pid_t child = -1;
  int status = 0;

  CHECK_EQ(aios_loop_call_soon(loop, fork_cb, &child, NULL, NULL), 0);
  CHECK_EQ(aios_loop_stop(loop), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK(child > 0);
  CHECK_EQ(waitpid(child, &status, 0), child);
  CHECK(WIFEXITED(status));
  CHECK_EQ(WEXITSTATUS(status), 0);
  close_loop(loop);
}

static void test_closed_loop_refuses_work(void) {
  aios_loop_t *loop = make_loop();
  aios_handle_t *h = NULL;
  int calls = 0;

  CHECK_EQ(aios_loop_close(loop), 0);
  CHECK_EQ(aios_loop_close(loop), 0);
  CHECK_EQ(aios_loop_call_soon(loop, count_destructor, &calls, NULL, &h), AIOS_ECLOSED);
  CHECK(h == NULL);
  CHECK_EQ(aios_loop_call_later(loop, 0.01, count_destructor, &calls, NULL, NULL), AIOS_ECLOSED);
  CHECK_EQ(aios_loop_call_at(loop, 0.0, count_destructor, &calls, NULL, NULL), AIOS_ECLOSED);
  CHECK_EQ(aios_loop_call_soon_threadsafe(loop, count_destructor, &calls, NULL, NULL), AIOS_ECLOSED);
  CHECK_EQ(aios_loop_run_forever(loop), AIOS_ECLOSED);
  CHECK_EQ(calls, 0);
  CHECK_EQ(aios_loop_unref(loop), 0);
}

/* close() drops pending callbacks and timers: they are never called. */
static void test_close_drops_pending(void) {
  aios_loop_t *loop = make_loop();
  aios_handle_t *h = NULL;
  int calls = 0;

  CHECK_EQ(aios_loop_call_soon(loop, count_destructor, &calls, NULL, NULL), 0);
  CHECK_EQ(aios_loop_call_later(loop, 0.001, count_destructor, &calls, NULL, &h), 0);
  CHECK_EQ(aios_loop_close(loop), 0);
  CHECK_EQ(calls, 0);
  CHECK_EQ(aios_handle_unref(h), 0);
  CHECK_EQ(aios_loop_unref(loop), 0);
  CHECK_EQ(calls, 0);
}

/* ------------------------------------------------------------------------ */
/* Exception handler and debug mode                                          */

static int g_user_data_freed;

static void report_cb(void *arg) {
  exc_record_t *r = (exc_record_t *)arg;
  aios_error_t *err = NULL;
  static int payload = 7;

  CHECK_EQ(aios_error_new_user("user boom", &payload, count_destructor, &err), 0);
  CHECK_EQ(aios_loop_call_exception_handler(g_loop, "callback failed", err), 0);
  /* Delivered at once, as asyncio's call_exception_handler. */
  CHECK_EQ(r->calls, 1);
  CHECK_EQ(aios_error_unref(err), 0);
  CHECK_EQ(aios_loop_call_exception_handler(g_loop, "no error here", NULL), 0);
  CHECK_EQ(r->calls, 2);
  CHECK_EQ(aios_loop_stop(g_loop), 0);
  g_user_data_freed = payload - 7;
}

static void test_call_exception_handler_custom(void) {
  aios_loop_t *loop = make_loop();
  exc_record_t r;
  exc_record_t first;

  memset(&r, 0, sizeof r);
  g_loop = loop;
  CHECK_EQ(aios_loop_set_exception_handler(loop, exc_recorder, &r), 0);
  CHECK_EQ(aios_loop_call_soon(loop, report_cb, &r, NULL, NULL), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_EQ(r.calls, 2);
  CHECK_PTR_EQ(r.loop, loop);
  CHECK_EQ(r.had_message, 1);
  CHECK_STR_EQ(r.message, "no error here");
  CHECK_EQ(r.had_error, 0);
  /* The user error's payload destructor ran once, when it was freed. */
  CHECK_EQ(g_user_data_freed, 1);

  /* An error report, outside a run, inspected in the handler. */
  memset(&first, 0, sizeof first);
  CHECK_EQ(aios_loop_set_exception_handler(loop, exc_recorder, &first), 0);
  {
    aios_error_t *err = NULL;
    CHECK_EQ(aios_error_new(-ECONNRESET, "peer went away", &err), 0);
    CHECK_EQ(aios_loop_call_exception_handler(loop, "callback failed", err), 0);
    CHECK_EQ(aios_error_unref(err), 0);
  }
  CHECK_EQ(first.calls, 1);
  CHECK_STR_EQ(first.message, "callback failed");
  CHECK_EQ(first.had_error, 1);
  CHECK_EQ(first.error_code, -ECONNRESET);
  CHECK_EQ(first.error_kind, AIOS_ERROR_OS);
  CHECK_STR_EQ(first.error_message, "peer went away");
  close_loop(loop);
}

static int g_user_seen_data;

static void user_err_handler(aios_loop_t *loop, const aios_exception_context_t *context,
                             void *arg) {
  aios_error_t *error = context->error;
  (void)loop;
  (*(int *)arg)++;
  CHECK(error != NULL);
  CHECK_EQ(aios_error_kind(error), AIOS_ERROR_USER);
  CHECK_EQ(aios_error_code(error), AIOS_EUSER);
  CHECK_STR_EQ(aios_error_message(error), "user boom");
  g_user_seen_data = *(int *)aios_error_user_data(error);
}

static void user_report_cb(void *arg) {
  aios_error_t *err = NULL;
  (void)arg;
  CHECK_EQ(aios_error_new_user("user boom", &g_user_seen_data, NULL, &err), 0);
  g_user_seen_data = 42;
  CHECK_EQ(aios_loop_call_exception_handler(g_loop, "callback raised", err), 0);
  CHECK_EQ(aios_error_unref(err), 0);
  CHECK_EQ(aios_loop_stop(g_loop), 0);
}

/* A binding's exception (a user error with data) reaches the handler as the
 * same object: kind USER, its message and its data. */
static void test_call_exception_handler_user_error(void) {
  aios_loop_t *loop = make_loop();
  int calls = 0;

  g_loop = loop;
  CHECK_EQ(aios_loop_set_exception_handler(loop, user_err_handler, &calls), 0);
  CHECK_EQ(aios_loop_call_soon(loop, user_report_cb, NULL, NULL, NULL), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_EQ(calls, 1);
  CHECK_EQ(g_user_seen_data, 42);
  close_loop(loop);
}

static void busy_50ms_cb(void *arg) {
  (void)arg;
  test_busy_wait(0.05);
}

static int count_slow_reports(int debug) {
  aios_loop_t *loop = make_loop();
  exc_record_t r;

  memset(&r, 0, sizeof r);
  CHECK_EQ(aios_loop_set_exception_handler(loop, exc_recorder, &r), 0);
  CHECK_EQ(aios_loop_set_debug(loop, debug), 0);
  CHECK_EQ(aios_loop_get_debug(loop), debug);
  CHECK_EQ(aios_loop_set_slow_callback_duration(loop, 0.01), 0);
  CHECK_EQ(aios_loop_call_soon(loop, busy_50ms_cb, NULL, NULL, NULL), 0);
  run_once(loop);
  if (debug)
    CHECK_EQ(r.had_message, 1);
  close_loop(loop);
  return r.calls;
}

/* asyncio debug mode: a callback slower than slow_callback_duration is
 * reported (here, to the exception handler); without debug it is not. */
static void test_debug_slow_callback_reported(void) {
  CHECK_EQ(count_slow_reports(1), 1);
  CHECK_EQ(count_slow_reports(0), 0);
}

/* ------------------------------------------------------------------------ */
/* The iteration callback                                                     */

typedef struct {
  aios_loop_t *loop;
  int waits[16];
  int calls;
  int on_wait; /* what to do the first time the loop would wait: */
  int acted;
} iter_state_t;

enum { ON_WAIT_NOTHING, ON_WAIT_CALL_SOON_STOP, ON_WAIT_STOP, ON_WAIT_TIMER_STOP, ON_WAIT_CLEAR };

static void iter_record(void *arg, int waits) {
  iter_state_t *s = (iter_state_t *)arg;
  aios_loop_t *running = NULL;
  CHECK_EQ(aios_get_running_loop(&running), 0);
  CHECK_PTR_EQ(running, s->loop);
  aios_loop_unref(running);
  if (s->calls < 16) s->waits[s->calls] = waits;
  s->calls++;
  if (!waits || s->acted) return;
  s->acted = 1;
  switch (s->on_wait) {
  case ON_WAIT_CALL_SOON_STOP:
    CHECK_EQ(aios_loop_call_soon(s->loop, stop_loop_cb, s->loop, NULL, NULL), 0);
    break;
  case ON_WAIT_STOP: CHECK_EQ(aios_loop_stop(s->loop), 0); break;
  case ON_WAIT_TIMER_STOP:
    CHECK_EQ(aios_loop_call_later(s->loop, 0.01, stop_loop_cb, s->loop, NULL, NULL), 0);
    break;
  case ON_WAIT_CLEAR:
    CHECK_EQ(aios_loop_set_iteration_callback(s->loop, NULL, NULL), 0);
    CHECK_EQ(aios_loop_call_soon(s->loop, stop_loop_cb, s->loop, NULL, NULL), 0);
    break;
  default: break;
  }
}

/* The callback runs as each iteration starts: waits is 0 with callbacks
 * ready, 1 when the poll may block (here until a timer far off; the
 * callback, told so, schedules the stop). */
static void test_iteration_callback_tells_waits(void) {
  iter_state_t s;
  memset(&s, 0, sizeof s);
  s.loop = make_loop();
  s.on_wait = ON_WAIT_CALL_SOON_STOP;
  CHECK_EQ(aios_loop_set_iteration_callback(s.loop, iter_record, &s), 0);
  CHECK_EQ(aios_loop_call_soon(s.loop, log_cb, "soon", NULL, NULL), 0);
  CHECK_EQ(aios_loop_call_later(s.loop, 3600.0, log_cb, "never", NULL, NULL), 0);
  log_reset();
  CHECK_EQ(aios_loop_run_forever(s.loop), 0);
  CHECK_LOG("soon");
  CHECK_EQ(s.calls, 2);
  CHECK_EQ(s.waits[0], 0);
  CHECK_EQ(s.waits[1], 1);
  close_loop(s.loop);
}

/* What the callback does when told the loop would wait counts in that
 * iteration: a callback it schedules, a stop or a timer keep the poll from
 * blocking forever on a loop with nothing else to do. */
static void test_iteration_callback_acts_before_the_wait(void) {
  static const int actions[] = {ON_WAIT_CALL_SOON_STOP, ON_WAIT_STOP, ON_WAIT_TIMER_STOP, ON_WAIT_CLEAR};
  size_t k;
  for (k = 0; k < sizeof actions / sizeof actions[0]; k++) {
    iter_state_t s;
    memset(&s, 0, sizeof s);
    s.loop = make_loop();
    s.on_wait = actions[k];
    CHECK_EQ(aios_loop_set_iteration_callback(s.loop, iter_record, &s), 0);
    CHECK_EQ(aios_loop_run_forever(s.loop), 0);
    CHECK_EQ(s.acted, 1);
    CHECK_EQ(s.waits[0], 1);
    if (actions[k] == ON_WAIT_CLEAR) CHECK_EQ(s.calls, 1);
    else CHECK(s.calls >= 1);
    /* Run again: the callback (unless cleared) goes on being called. */
    s.calls = 0;
    CHECK_EQ(aios_loop_call_soon(s.loop, stop_loop_cb, s.loop, NULL, NULL), 0);
    CHECK_EQ(aios_loop_run_forever(s.loop), 0);
    CHECK_EQ(s.calls, actions[k] == ON_WAIT_CLEAR ? 0 : 1);
    close_loop(s.loop);
  }
}

/* NULL stops it, closing forgets it; a NULL or closed loop is refused. */
static void test_iteration_callback_bad_input(void) {
  iter_state_t s;
  memset(&s, 0, sizeof s);
  s.loop = make_loop();
  CHECK_EQ(aios_loop_set_iteration_callback(NULL, iter_record, &s), AIOS_EINVAL);
  CHECK_EQ(aios_loop_set_iteration_callback(NULL, NULL, NULL), AIOS_EINVAL);
  CHECK_EQ(aios_loop_set_iteration_callback(s.loop, iter_record, &s), 0);
  CHECK_EQ(aios_loop_set_iteration_callback(s.loop, NULL, &s), 0);
  CHECK_EQ(aios_loop_call_soon(s.loop, stop_loop_cb, s.loop, NULL, NULL), 0);
  CHECK_EQ(aios_loop_run_forever(s.loop), 0);
  CHECK_EQ(s.calls, 0);
  CHECK_EQ(aios_loop_set_iteration_callback(s.loop, iter_record, &s), 0);
  CHECK_EQ(aios_loop_close(s.loop), 0);
  CHECK_EQ(aios_loop_set_iteration_callback(s.loop, iter_record, &s), AIOS_ECLOSED);
  CHECK_EQ(aios_loop_run_forever(s.loop), AIOS_ECLOSED);
  CHECK_EQ(s.calls, 0);
  CHECK_EQ(aios_loop_unref(s.loop), 0);
}

TEST_MAIN(TEST_ENTRY(test_loop_new_close_unref),
          TEST_ENTRY(test_loop_unref_closes),
          TEST_ENTRY(test_run_forever_stop_from_callback),
          TEST_ENTRY(test_stop_before_run_runs_one_iteration),
          TEST_ENTRY(test_call_soon_fifo),
          TEST_ENTRY(test_call_soon_from_callback_runs_next_iteration),
          TEST_ENTRY(test_timers_order_by_deadline_then_scheduling),
          TEST_ENTRY(test_call_later_zero_and_negative),
          TEST_ENTRY(test_handle_cancel),
          TEST_ENTRY(test_handle_when),
          TEST_ENTRY(test_loop_time_monotonic),
          TEST_ENTRY(test_call_soon_threadsafe_wakes_loop),
          TEST_ENTRY(test_loop_per_thread),
          TEST_ENTRY(test_handles_across_threads),
          TEST_ENTRY(test_running_loop_rules),
          TEST_ENTRY(test_forked_child_runs_a_loop_of_its_own),
          TEST_ENTRY(test_closed_loop_refuses_work),
          TEST_ENTRY(test_close_drops_pending),
          TEST_ENTRY(test_call_exception_handler_custom),
          TEST_ENTRY(test_call_exception_handler_user_error),
          TEST_ENTRY(test_debug_slow_callback_reported),
          TEST_ENTRY(test_iteration_callback_tells_waits),
          TEST_ENTRY(test_iteration_callback_acts_before_the_wait),
          TEST_ENTRY(test_iteration_callback_bad_input))
