/*
 * test_threads.c: the thread rules of the C ABI under real threads.
 *
 * Objects belong to their loop's thread. Other threads may take and drop
 * references, call the *_threadsafe functions and use error objects; any
 * other call is refused with AIOS_EWRONGTHREAD before it touches the object.
 * An object whose last reference is dropped on another thread is released
 * by its own thread (the loop is woken for it), so its destructors run
 * there. Each test runs the loop on the main thread while worker threads
 * do their part at the same time.
 */
#include "test_util.h"

#include <stdint.h>

static pthread_t g_main;

/* Flags and counters shared by the test's threads, behind a mutex (race
 * detectors such as helgrind follow mutexes, not compiler atomics). */
static pthread_mutex_t g_shared = PTHREAD_MUTEX_INITIALIZER;

static long shared_get(const volatile long *p) {
  long v;
  pthread_mutex_lock(&g_shared);
  v = *p;
  pthread_mutex_unlock(&g_shared);
  return v;
}

static void shared_add(volatile long *p, long n) {
  pthread_mutex_lock(&g_shared);
  *p += n;
  pthread_mutex_unlock(&g_shared);
}

static pthread_t start_thread(void *(*fn)(void *), void *arg) {
  pthread_t th;
  CHECK_EQ(pthread_create(&th, NULL, fn, arg), 0);
  return th;
}

/* ------------------------------------------------------------------------ */
/* A last reference dropped on another thread                               */

typedef struct freed_record_s {
  int calls;
  int on_main;
  aios_loop_t *stop; /* stopped by the destructor when not NULL */
} freed_record_t;

static void record_free(void *value) {
  freed_record_t *r = (freed_record_t *)value;
  r->calls++;
  r->on_main += pthread_equal(pthread_self(), g_main) != 0;
  if (r->stop != NULL) CHECK_EQ(aios_loop_stop(r->stop), 0);
}

typedef struct dropper_s {
  aios_future_t *future;
  aios_queue_t *queue;
  aios_lock_t *lock;
  aios_task_t *task;
  int rc[4];
} dropper_t;

static void *drop_after_a_while(void *arg) {
  dropper_t *d = (dropper_t *)arg;
  test_sleep(0.05); /* the loop waits in its poll by now */
  d->rc[0] = aios_queue_unref(d->queue);
  d->rc[1] = aios_lock_unref(d->lock);
  d->rc[2] = aios_task_unref(d->task);
  d->rc[3] = aios_future_unref(d->future); /* its destructor stops the loop */
  return NULL;
}

static int return_at_once(aios_task_t *task, aios_future_t *awaited, void *arg) {
  (void)awaited;
  (void)arg;
  return aios_task_return(task, NULL, NULL);
}

/* The loop waits with nothing to do; another thread drops the last
 * references to a future, a queue holding an item, a lock and a finished
 * task. The loop wakes, and every destructor runs once on its thread. */
static void test_last_unref_on_another_thread_wakes_the_loop(void) {
  aios_loop_t *loop = make_loop();
  freed_record_t result = {0, 0, loop}, item = {0, 0, NULL};
  dropper_t d;
  pthread_t th;

  memset(&d, 0, sizeof d);
  CHECK_EQ(aios_future_new(loop, &d.future), 0);
  CHECK_EQ(aios_future_set_result(d.future, &result, record_free), 0);
  CHECK_EQ(aios_queue_new(loop, AIOS_QUEUE_FIFO, 0, &d.queue), 0);
  CHECK_EQ(aios_queue_put_nowait(d.queue, &item, record_free, 0), 0);
  CHECK_EQ(aios_lock_new(loop, &d.lock), 0);
  CHECK_EQ(aios_task_new(loop, return_at_once, NULL, NULL, &d.task), 0);
  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(d.task)), 0);

  th = start_thread(drop_after_a_while, &d);
  CHECK_EQ(aios_loop_run_forever(loop), 0); /* until the future's destructor */
  CHECK_EQ(pthread_join(th, NULL), 0);
  for (int i = 0; i < 4; i++) CHECK_EQ(d.rc[i], 0);
  CHECK_EQ(result.calls, 1);
  CHECK_EQ(result.on_main, 1);
  CHECK_EQ(item.calls, 1);
  CHECK_EQ(item.on_main, 1);
  CHECK_EQ(aios_live_objects(AIOS_OBJECT_QUEUE), 0);
  CHECK_EQ(aios_live_objects(AIOS_OBJECT_PRIMITIVE), 0);
  CHECK_EQ(aios_live_objects(AIOS_OBJECT_FUTURE), 0);
  CHECK_EQ(aios_live_objects(AIOS_OBJECT_TASK), 0);
  close_loop(loop);
}

static void *drop_loop(void *arg) {
  CHECK_EQ(aios_loop_unref((aios_loop_t *)arg), 0);
  return NULL;
}

/* A closed loop whose last reference goes on another thread is freed by
 * its own thread at its next unref. */
static void test_closed_loop_dropped_elsewhere_is_freed_by_its_thread(void) {
  aios_loop_t *loop = make_loop();
  aios_error_t *err = NULL;
  pthread_t th;

  CHECK_EQ(aios_loop_close(loop), 0);
  th = start_thread(drop_loop, loop);
  CHECK_EQ(pthread_join(th, NULL), 0);
  CHECK_EQ(aios_live_objects(AIOS_OBJECT_LOOP), 1); /* waits for this thread */
  CHECK_EQ(aios_error_new(AIOS_EINVAL, NULL, &err), 0);
  CHECK_EQ(aios_error_unref(err), 0);
  CHECK_EQ(aios_live_objects(AIOS_OBJECT_LOOP), 0);
}

/* ------------------------------------------------------------------------ */
/* Calls from the wrong thread                                               */

typedef struct intruder_s {
  aios_loop_t *loop;
  aios_future_t *future;
  aios_lock_t *lock;
  aios_queue_t *queue;
  aios_task_t *task;
  volatile long stop;
  volatile long rounds;
  int failures;
} intruder_t;

#define EXPECT_WRONG_THREAD(call)                                              \
  do {                                                                         \
    if ((call) != AIOS_EWRONGTHREAD) t->failures++;                            \
  } while (0)

static void *intrude(void *arg) {
  intruder_t *t = (intruder_t *)arg;
  while (!shared_get(&t->stop)) {
    aios_future_t *f = NULL;
    void *value = NULL;
    double now = 0;
    EXPECT_WRONG_THREAD(aios_future_done(t->future));
    EXPECT_WRONG_THREAD(aios_future_result(t->future, &value));
    EXPECT_WRONG_THREAD(aios_future_set_result(t->future, NULL, NULL));
    EXPECT_WRONG_THREAD(aios_future_cancel(t->future, NULL));
    EXPECT_WRONG_THREAD(aios_lock_locked(t->lock));
    EXPECT_WRONG_THREAD(aios_lock_acquire(t->lock, &f));
    EXPECT_WRONG_THREAD(aios_queue_qsize(t->queue));
    EXPECT_WRONG_THREAD(aios_queue_put_nowait(t->queue, NULL, NULL, 0));
    EXPECT_WRONG_THREAD(aios_task_cancel(t->task, NULL));
    EXPECT_WRONG_THREAD(aios_loop_time(t->loop, &now));
    EXPECT_WRONG_THREAD(aios_loop_call_soon(t->loop, log_cb, NULL, NULL, NULL));
    EXPECT_WRONG_THREAD(aios_future_new(t->loop, &f));
    if (f != NULL || value != NULL) t->failures++;
    /* References and the any-thread queries are allowed. */
    if (aios_future_ref(t->future) != 0 || aios_future_unref(t->future) != 0) t->failures++;
    if (aios_loop_is_closed(t->loop) != 0) t->failures++;
    shared_add(&t->rounds, 1);
  }
  return NULL;
}

typedef struct churn_s {
  aios_loop_t *loop;
  intruder_t *intruder;
} churn_t;

/* The loop's own work meanwhile: futures made, resolved and dropped, until
 * the other thread has tried its calls a few hundred times. */
static void churn_cb(void *arg) {
  churn_t *c = (churn_t *)arg;
  aios_future_t *f = NULL;
  CHECK_EQ(aios_future_new(c->loop, &f), 0);
  CHECK_EQ(aios_future_set_result(f, NULL, NULL), 0);
  CHECK_EQ(aios_future_unref(f), 0);
  if (shared_get(&c->intruder->rounds) < 300) {
    CHECK_EQ(aios_loop_call_soon(c->loop, churn_cb, c, NULL, NULL), 0);
  } else {
    CHECK_EQ(aios_loop_stop(c->loop), 0);
  }
}

static void test_wrong_thread_calls_are_refused(void) {
  aios_loop_t *loop = make_loop();
  intruder_t t;
  churn_t churn = {loop, &t};
  pthread_t th;

  memset(&t, 0, sizeof t);
  t.loop = loop;
  CHECK_EQ(aios_future_new(loop, &t.future), 0);
  CHECK_EQ(aios_lock_new(loop, &t.lock), 0);
  CHECK_EQ(aios_queue_new(loop, AIOS_QUEUE_FIFO, 0, &t.queue), 0);
  CHECK_EQ(aios_task_new(loop, return_at_once, NULL, NULL, &t.task), 0);
  th = start_thread(intrude, &t);
  CHECK_EQ(aios_loop_call_soon(loop, churn_cb, &churn, NULL, NULL), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  shared_add(&t.stop, 1);
  CHECK_EQ(pthread_join(th, NULL), 0);
  CHECK(t.rounds >= 300);
  CHECK_EQ(t.failures, 0);
  /* Nothing the other thread tried took effect. */
  CHECK_EQ(aios_future_done(t.future), 0);
  CHECK_EQ(aios_lock_locked(t.lock), 0);
  CHECK_EQ(aios_queue_qsize(t.queue), 0);
  CHECK_EQ(aios_future_done(aios_task_as_future(t.task)), 1);
  CHECK_EQ(aios_future_unref(t.future), 0);
  CHECK_EQ(aios_lock_unref(t.lock), 0);
  CHECK_EQ(aios_queue_unref(t.queue), 0);
  CHECK_EQ(aios_task_unref(t.task), 0);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* call_soon_threadsafe with handles, from several threads                  */

enum { TS_THREADS = 4, TS_CALLS = 500 };

typedef struct ts_state_s {
  aios_loop_t *loop;
  long called; /* on the loop's thread only */
  int off_main;
  volatile long failures;
} ts_state_t;

static void ts_called(void *arg) {
  ts_state_t *s = (ts_state_t *)arg;
  s->off_main += pthread_equal(pthread_self(), g_main) == 0;
  if (++s->called == TS_THREADS * TS_CALLS) CHECK_EQ(aios_loop_stop(s->loop), 0);
}

static void *ts_caller(void *arg) {
  ts_state_t *s = (ts_state_t *)arg;
  for (int i = 0; i < TS_CALLS; i++) {
    aios_handle_t *h = NULL;
    if (aios_loop_call_soon_threadsafe(s->loop, ts_called, s, NULL, i % 3 ? &h : NULL) != 0) {
      shared_add(&s->failures, 1);
      continue;
    }
    /* Dropped here, before or after the callback ran on the loop. */
    if (h != NULL && aios_handle_unref(h) != 0) shared_add(&s->failures, 1);
  }
  return NULL;
}

static void test_call_soon_threadsafe_from_many_threads(void) {
  aios_loop_t *loop = make_loop();
  ts_state_t s = {loop, 0, 0, 0};
  pthread_t th[TS_THREADS];
  aios_handle_t *late = NULL;

  for (int i = 0; i < TS_THREADS; i++) th[i] = start_thread(ts_caller, &s);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  for (int i = 0; i < TS_THREADS; i++) CHECK_EQ(pthread_join(th[i], NULL), 0);
  run_once(loop); /* handles dropped on the callers after the last call */
  CHECK_EQ(s.failures, 0);
  CHECK_EQ(s.called, TS_THREADS * TS_CALLS);
  CHECK_EQ(s.off_main, 0);
  CHECK_EQ(aios_live_objects(AIOS_OBJECT_HANDLE), 0);

  /* Once the loop is closed the call fails and hands out nothing. */
  CHECK_EQ(aios_loop_close(loop), 0);
  CHECK_EQ(aios_loop_call_soon_threadsafe(loop, ts_called, &s, NULL, &late), AIOS_ECLOSED);
  CHECK(late == NULL);
  CHECK_EQ(aios_live_objects(AIOS_OBJECT_HANDLE), 0);
  CHECK_EQ(aios_loop_unref(loop), 0);
}

/* ------------------------------------------------------------------------ */
/* Errors travel between threads                                             */

enum { ERR_ROUNDS = 300 };

static volatile long g_user_frees;

static void free_user(void *value) {
  free(value);
  shared_add(&g_user_frees, 1);
}

typedef struct err_state_s {
  aios_loop_t *loop;
  aios_error_t *inbox[ERR_ROUNDS];  /* made on the worker, failed into a future */
  aios_error_t *outbox[ERR_ROUNDS]; /* read back from the future, for the worker */
  volatile long posted;             /* outbox entries ready */
  long handled;
  int failures;
} err_state_t;

typedef struct err_msg_s {
  err_state_t *s;
  int index;
} err_msg_t;

static err_msg_t g_msgs[ERR_ROUNDS];

/* On the loop: fail a future with the worker's error, read it back. */
static void fail_future_cb(void *arg) {
  err_msg_t *m = (err_msg_t *)arg;
  err_state_t *s = m->s;
  aios_future_t *f = NULL;
  aios_error_t *back = NULL;
  CHECK_EQ(aios_future_new(s->loop, &f), 0);
  CHECK_EQ(aios_future_set_error(f, s->inbox[m->index]), 0);
  CHECK_EQ(aios_future_error(f, &back), 0);
  /* A user error comes back as the very object it was. */
  CHECK_PTR_EQ(back, s->inbox[m->index]);
  CHECK_EQ(aios_error_unref(s->inbox[m->index]), 0);
  CHECK_EQ(aios_future_unref(f), 0); /* the future's hold on it goes */
  s->outbox[m->index] = back;
  shared_add(&s->posted, 1);
  if (++s->handled == ERR_ROUNDS) CHECK_EQ(aios_loop_stop(s->loop), 0);
}

static void *error_worker(void *arg) {
  err_state_t *s = (err_state_t *)arg;
  int read = 0;
  for (int i = 0; i < ERR_ROUNDS; i++) {
    int *data = (int *)malloc(sizeof *data);
    CHECK(data != NULL);
    *data = i;
    CHECK_EQ(aios_error_new_user("from a worker", data, free_user, &s->inbox[i]), 0);
    g_msgs[i] = (err_msg_t){s, i};
    CHECK_EQ(aios_loop_call_soon_threadsafe(s->loop, fail_future_cb, &g_msgs[i], NULL, NULL), 0);
    /* Read and drop what the loop sent back so far. */
    for (long ready = shared_get(&s->posted); read < ready; read++) {
      aios_error_t *e = s->outbox[read];
      if (aios_error_kind(e) != AIOS_ERROR_USER || *(int *)aios_error_user_data(e) != read ||
          strcmp(aios_error_message(e), "from a worker") != 0)
        s->failures++;
      CHECK_EQ(aios_error_unref(e), 0);
    }
  }
  while (read < ERR_ROUNDS) {
    if (shared_get(&s->posted) > read) {
      aios_error_t *e = s->outbox[read];
      if (*(int *)aios_error_user_data(e) != read) s->failures++;
      CHECK_EQ(aios_error_unref(e), 0);
      read++;
    } else {
      test_sleep(0.001); /* let the loop's thread run (valgrind runs one thread at a time) */
    }
  }
  return NULL;
}

static void test_errors_between_threads(void) {
  aios_loop_t *loop = make_loop();
  static err_state_t s;
  pthread_t th;

  memset(&s, 0, sizeof s);
  s.loop = loop;
  g_user_frees = 0;
  th = start_thread(error_worker, &s);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_EQ(pthread_join(th, NULL), 0);
  CHECK_EQ(s.failures, 0);
  /* Each error was freed once, with its data, by whoever dropped it last. */
  CHECK_EQ(shared_get(&g_user_frees), ERR_ROUNDS);
  CHECK_EQ(aios_live_objects(AIOS_OBJECT_ERROR), 0);
  close_loop(loop);
}


/* CPython's one ready queue: a call_soon_threadsafe another thread made
 * first runs before a call_soon the loop's thread makes after it. */
static void *threadsafe_first_thread(void *arg) {
  CHECK_EQ(aios_loop_call_soon_threadsafe((aios_loop_t *)arg, log_cb, "threadsafe", NULL, NULL), 0);
  return NULL;
}

static void test_threadsafe_call_keeps_its_place_before_call_soon(void) {
  aios_loop_t *loop = make_loop();
  pthread_t thread;
  CHECK_EQ(pthread_create(&thread, NULL, threadsafe_first_thread, loop), 0);
  CHECK_EQ(pthread_join(thread, NULL), 0);
  CHECK_EQ(aios_loop_call_soon(loop, log_cb, "soon", NULL, NULL), 0);
  run_once(loop);
  run_once(loop);
  CHECK_LOG("threadsafe soon");
  close_loop(loop);
}

int main(int argc, char **argv) {
  static const test_entry_t tests[] = {
      TEST_ENTRY(test_last_unref_on_another_thread_wakes_the_loop),
      TEST_ENTRY(test_closed_loop_dropped_elsewhere_is_freed_by_its_thread),
      TEST_ENTRY(test_wrong_thread_calls_are_refused),
      TEST_ENTRY(test_call_soon_threadsafe_from_many_threads),
      TEST_ENTRY(test_errors_between_threads),
      TEST_ENTRY(test_threadsafe_call_keeps_its_place_before_call_soon),
  };
  g_main = pthread_self();
  return run_tests(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
