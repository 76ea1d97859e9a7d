/*
 * test_locks.c: asyncio's synchronization primitives (Lock, Event, Condition,
 * Semaphore, BoundedSemaphore, Barrier) driven by C tasks. The cases are
 * CPython's Lib/test/test_asyncio/test_locks.py ported to step functions,
 * plus the cancellation races asyncio guards against. Orders are asserted
 * exactly, with the event log of test_util.h.
 *
 * Most tests are driven from outside the loop, one iteration at a time
 * (run_once), which is what CPython's tests do with `await asyncio.sleep(0)`
 * in the test coroutine; some run a main task under aios_run.
 */
#include "test_util.h"

#include <stdint.h>

#include "test_worker.h"

/* ------------------------------------------------------------------------ */
/* begin/act adapters                                                         */

static int b_lock_acquire(void *o, aios_future_t **out) {
  return aios_lock_acquire((aios_lock_t *)o, out);
}
static int a_lock_release(void *o) { return aios_lock_release((aios_lock_t *)o); }
static int a_lock_locked(void *o) { return aios_lock_locked((aios_lock_t *)o); }

static int b_event_wait(void *o, aios_future_t **out) {
  return aios_event_wait((aios_event_t *)o, out);
}

static int b_cond_acquire(void *o, aios_future_t **out) {
  return aios_condition_acquire((aios_condition_t *)o, out);
}
static int b_cond_wait(void *o, aios_future_t **out) {
  return aios_condition_wait((aios_condition_t *)o, out);
}
static int a_cond_release(void *o) { return aios_condition_release((aios_condition_t *)o); }

static int b_sem_acquire(void *o, aios_future_t **out) {
  return aios_semaphore_acquire((aios_semaphore_t *)o, out);
}
static int a_sem_release(void *o) { return aios_semaphore_release((aios_semaphore_t *)o); }
static int a_sem_locked(void *o) { return aios_semaphore_locked((aios_semaphore_t *)o); }

static int b_barrier_wait(void *o, aios_future_t **out) {
  return aios_barrier_wait((aios_barrier_t *)o, out);
}
static int b_barrier_reset(void *o, aios_future_t **out) {
  return aios_barrier_reset((aios_barrier_t *)o, out);
}

/* on_outcome: record whether the condition (ctx) is locked. */
static void seen_cond_locked(worker_t *w, int status) {
  (void)status;
  w->seen = aios_condition_locked((aios_condition_t *)w->ctx);
  w->seen_count++;
}

/* ------------------------------------------------------------------------ */
/* Object helpers                                                             */

static aios_lock_t *new_lock(aios_loop_t *loop) {
  aios_lock_t *lock = NULL;
  long before = live_count(AIOS_OBJECT_PRIMITIVE);
  CHECK_EQ(aios_lock_new(loop, &lock), 0);
  CHECK(lock != NULL);
  CHECK_EQ(live_count(AIOS_OBJECT_PRIMITIVE), before + 1);
  CHECK_EQ(aios_lock_locked(lock), 0);
  return lock;
}

/* acquire() that must not wait. */
static void lock_acquire_now(aios_lock_t *lock) {
  aios_future_t *f = NULL;
  {
    int rc_ = aios_lock_acquire(lock, &f);
    check_done_now(rc_, f);
  }
  CHECK_EQ(aios_lock_locked(lock), 1);
}

static void cond_acquire_now(aios_condition_t *cond) {
  aios_future_t *f = NULL;
  {
    int rc_ = aios_condition_acquire(cond, &f);
    check_done_now(rc_, f);
  }
  CHECK_EQ(aios_condition_locked(cond), 1);
}

static void sem_acquire_now(aios_semaphore_t *sem) {
  aios_future_t *f = NULL;
  {
    int rc_ = aios_semaphore_acquire(sem, &f);
    check_done_now(rc_, f);
  }
}

/* ======================================================================== */
/* Lock                                                                       */

/* A free lock is taken at once: the future is already done. Releasing an
 * unlocked lock is asyncio's RuntimeError. (test_release_not_acquired,
 * test_release_no_waiters) */
static void test_lock_acquire_free_and_release_unlocked(void) {
  aios_loop_t *loop = make_loop();
  aios_lock_t *lock = new_lock(loop);
  aios_future_t *f = NULL;

  CHECK_EQ(aios_lock_release(lock), AIOS_ENOTACQUIRED);
  CHECK_EQ(aios_lock_acquire(lock, &f), 0);
  CHECK(f != NULL);
  CHECK_EQ(aios_future_done(f), 1);
  CHECK_EQ(aios_future_cancelled(f), 0);
  CHECK_EQ(aios_future_result(f, NULL), 0);
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(aios_lock_locked(lock), 1);
  CHECK_EQ(aios_lock_release(lock), 0);
  CHECK_EQ(aios_lock_locked(lock), 0);
  CHECK_EQ(aios_lock_release(lock), AIOS_ENOTACQUIRED);
  CHECK_EQ(aios_lock_locked(lock), 0);
  CHECK_EQ(aios_lock_unref(lock), 0);
  close_loop(loop);
}

/* test_acquire: waiters get the lock in FIFO order, one per release. */
static void test_lock_fifo(void) {
  aios_loop_t *loop = make_loop();
  aios_lock_t *lock = new_lock(loop);
  worker_t t1 = {.name = "1", .ops = {WAIT(b_lock_acquire, lock, ""), END()}};
  worker_t t2 = {.name = "2", .ops = {WAIT(b_lock_acquire, lock, ""), END()}};
  worker_t t3 = {.name = "3", .ops = {WAIT(b_lock_acquire, lock, ""), END()}};

  lock_acquire_now(lock);
  spawn(loop, &t1);
  spawn(loop, &t2);
  run_once(loop);
  CHECK_LOG("");

  CHECK_EQ(aios_lock_release(lock), 0);
  run_once(loop);
  CHECK_LOG("1");

  run_once(loop);
  CHECK_LOG("1");

  spawn(loop, &t3);
  CHECK_EQ(aios_lock_release(lock), 0);
  run_once(loop);
  CHECK_LOG("1 2");

  CHECK_EQ(aios_lock_release(lock), 0);
  run_once(loop);
  CHECK_LOG("1 2 3");

  CHECK_EQ(t1.immediate, 0);
  CHECK_EQ(t3.immediate, 0);
  finish_worker(&t1, 0);
  finish_worker(&t2, 0);
  finish_worker(&t3, 0);
  CHECK_EQ(aios_lock_locked(lock), 1);
  CHECK_EQ(aios_lock_release(lock), 0);
  CHECK_EQ(aios_lock_unref(lock), 0);
  close_loop(loop);
}

/* Fairness: once released, a lock with a waiter that has not run yet is
 * not free for a newcomer, who queues behind it. */
static void test_lock_released_lock_is_not_stolen(void) {
  aios_loop_t *loop = make_loop();
  aios_lock_t *lock = new_lock(loop);
  aios_future_t *f2 = NULL, *f3 = NULL;

  lock_acquire_now(lock);
  CHECK_EQ(aios_lock_acquire(lock, &f2), 0);
  CHECK_EQ(aios_future_done(f2), 0);
  CHECK_EQ(aios_lock_release(lock), 0);
  CHECK_EQ(aios_lock_locked(lock), 0); /* the waiter takes it when it runs */
  CHECK_EQ(aios_future_done(f2), 0);
  CHECK_EQ(aios_lock_acquire(lock, &f3), 0);
  CHECK_EQ(aios_future_done(f3), 0); /* it queues behind f2 */
  run_once(loop);
  CHECK_EQ(aios_future_done(f2), 1);
  CHECK_EQ(aios_future_result(f2, NULL), 0);
  CHECK_EQ(aios_lock_locked(lock), 1);
  CHECK_EQ(aios_future_done(f3), 0);
  CHECK_EQ(aios_lock_release(lock), 0);
  run_once(loop);
  CHECK_EQ(aios_future_done(f3), 1);
  CHECK_EQ(aios_future_result(f3, NULL), 0);
  CHECK_EQ(aios_lock_locked(lock), 1);
  CHECK_EQ(aios_lock_release(lock), 0);
  CHECK_EQ(aios_future_unref(f2), 0);
  CHECK_EQ(aios_future_unref(f3), 0);
  CHECK_EQ(aios_lock_unref(lock), 0);
  close_loop(loop);
}

/* test_acquire_cancel, and the next waiter: a waiter cancelled while
 * waiting never holds the lock; the next one gets it on release. */
static void test_lock_cancelled_waiter_never_holds(void) {
  aios_loop_t *loop = make_loop();
  aios_lock_t *lock = new_lock(loop);
  worker_t b = {.name = "B", .ops = {WAIT(b_lock_acquire, lock, ".acq"), END()}};
  worker_t c = {.name = "C", .ops = {WAIT(b_lock_acquire, lock, ".acq"), ACT(a_lock_release, lock, 0, ".rel"), END()}};

  lock_acquire_now(lock);
  spawn(loop, &b);
  spawn(loop, &c);
  run_once(loop);
  call_soon(loop, cancel_worker_cb, &b);
  CHECK_EQ(run_worker(loop, &b), AIOS_ECANCELLED);
  CHECK_LOG("B!ECANCELLED");
  CHECK_EQ(aios_lock_locked(lock), 1); /* still the test's */
  CHECK_EQ(is_done(&c), 0);
  run_once(loop);
  CHECK_EQ(is_done(&c), 0);

  CHECK_EQ(aios_lock_release(lock), 0);
  CHECK_EQ(run_worker(loop, &c), 0);
  CHECK_LOG("B!ECANCELLED C.acq C.rel");
  CHECK_EQ(aios_lock_locked(lock), 0);
  finish_worker(&b, AIOS_ECANCELLED);
  finish_worker(&c, 0);
  CHECK_EQ(aios_lock_unref(lock), 0);
  close_loop(loop);
}

/* Cancelling the acquire future itself (no task): it ends cancelled and
 * the lock passes to the next future. */
static void test_lock_cancel_acquire_future(void) {
  aios_loop_t *loop = make_loop();
  aios_lock_t *lock = new_lock(loop);
  aios_future_t *f1 = NULL, *f2 = NULL;

  lock_acquire_now(lock);
  CHECK_EQ(aios_lock_acquire(lock, &f1), 0);
  CHECK_EQ(aios_lock_acquire(lock, &f2), 0);
  CHECK_EQ(aios_future_cancel(f1, "no more"), 1);
  CHECK_EQ(aios_lock_release(lock), 0);
  run_iterations(loop, 2);
  CHECK_EQ(aios_future_cancelled(f1), 1);
  CHECK_EQ(aios_future_done(f2), 1);
  CHECK_EQ(aios_future_result(f2, NULL), 0);
  CHECK_EQ(aios_lock_locked(lock), 1);
  CHECK_EQ(aios_lock_release(lock), 0);
  CHECK_EQ(aios_lock_locked(lock), 0);
  CHECK_EQ(aios_future_unref(f1), 0);
  CHECK_EQ(aios_future_unref(f2), 0);
  CHECK_EQ(aios_lock_unref(lock), 0);
  close_loop(loop);
}

/* test_cancel_race: A holds the lock and waits on `fa`; B and C wait for
 * the lock. Together: fa is resolved (A then releases) and B is cancelled.
 * C must get the lock, not be forgotten behind B's cancelled waiter. */
typedef struct race_s {
  aios_future_t *fa;
  worker_t *b;
} race_t;

static void resolve_fa_and_cancel_b(void *arg) {
  race_t *r = (race_t *)arg;
  CHECK_EQ(aios_future_set_result(r->fa, NULL, NULL), 0);
  CHECK_EQ(aios_task_cancel(r->b->task, NULL), 1);
}

static void test_lock_cancel_race(void) {
  aios_loop_t *loop = make_loop();
  aios_lock_t *lock = new_lock(loop);
  aios_future_t *fa = NULL;
  race_t race;
  worker_t a, b, c;

  CHECK_EQ(aios_future_new(loop, &fa), 0);
  {
    worker_t wa = {.name = "A", .ops = {WAIT(b_lock_acquire, lock, ".acq"), AWAIT(fa, NULL),
                         ACT(a_lock_release, lock, 0, ".rel"), END()}};
    worker_t wb = {.name = "B", .ops = {WAIT(b_lock_acquire, lock, ".acq"),
                         ACT(a_lock_release, lock, 0, ".rel"), END()}};
    worker_t wc = {.name = "C", .ops = {WAIT(b_lock_acquire, lock, ".acq"),
                         ACT(a_lock_release, lock, 0, ".rel"), END()}};
    a = wa;
    b = wb;
    c = wc;
  }
  spawn(loop, &a);
  run_once(loop);
  CHECK_EQ(aios_lock_locked(lock), 1);
  spawn(loop, &b);
  run_once(loop);
  spawn(loop, &c);
  run_once(loop);
  CHECK_LOG("A.acq");

  race.fa = fa;
  race.b = &b;
  resolve_fa_and_cancel_b(&race);
  run_once(loop);
  CHECK_EQ(aios_lock_locked(lock), 0);
  CHECK_EQ(is_done(&a), 1);
  CHECK_EQ(is_done(&b), 1);
  CHECK_EQ(aios_future_cancelled(tf(&b)), 1);
  CHECK_LOG("A.acq A.rel B!ECANCELLED");

  CHECK_EQ(run_worker(loop, &c), 0);
  CHECK_LOG("A.acq A.rel B!ECANCELLED C.acq C.rel");
  CHECK_EQ(aios_lock_locked(lock), 0);
  finish_worker(&a, 0);
  finish_worker(&b, AIOS_ECANCELLED);
  finish_worker(&c, 0);
  CHECK_EQ(aios_future_unref(fa), 0);
  CHECK_EQ(aios_lock_unref(lock), 0);
  close_loop(loop);
}

/* The cancel race in a single callback, both ways round: the holder's
 * release and B's cancellation. Either way C gets the lock, B ends
 * cancelled without ever holding it, the lock ends unlocked once C is
 * through. Release-then-cancel is a waiter cancelled after it was woken:
 * the wake-up must not be lost (test_finished_waiter_cancelled). */
typedef struct two_s {
  aios_lock_t *lock;
  worker_t *b;
  int release_first;
} two_t;

static void release_and_cancel_cb(void *arg) {
  two_t *t = (two_t *)arg;
  if (t->release_first)
    CHECK_EQ(aios_lock_release(t->lock), 0);
  CHECK_EQ(aios_task_cancel(t->b->task, NULL), 1);
  if (!t->release_first)
    CHECK_EQ(aios_lock_release(t->lock), 0);
}

static void lock_release_cancel_same_callback(int release_first) {
  aios_loop_t *loop = make_loop();
  aios_lock_t *lock = new_lock(loop);
  worker_t a = {.name = "A", .ops = {WAIT(b_lock_acquire, lock, ".acq"), END()}};
  worker_t b = {.name = "B", .ops = {WAIT(b_lock_acquire, lock, ".acq"), ACT(a_lock_release, lock, 0, ".rel"), END()}};
  worker_t c = {.name = "C", .ops = {WAIT(b_lock_acquire, lock, ".acq"), ACT(a_lock_release, lock, 0, ".rel"), END()}};
  two_t two;

  spawn(loop, &a);
  spawn(loop, &b);
  spawn(loop, &c);
  CHECK_EQ(run_worker(loop, &a), 0); /* A holds the lock (and keeps it) */
  run_once(loop);
  CHECK_LOG("A.acq");
  CHECK_EQ(is_done(&b), 0);
  CHECK_EQ(is_done(&c), 0);

  two.lock = lock;
  two.b = &b;
  two.release_first = release_first;
  call_soon(loop, release_and_cancel_cb, &two);
  CHECK_EQ(run_worker(loop, &c), 0);
  CHECK_LOG("A.acq B!ECANCELLED C.acq C.rel");
  CHECK_EQ(is_done(&b), 1);
  CHECK_EQ(aios_lock_locked(lock), 0);
  finish_worker(&a, 0);
  finish_worker(&b, AIOS_ECANCELLED);
  finish_worker(&c, 0);
  CHECK_EQ(aios_lock_unref(lock), 0);
  close_loop(loop);
}

static void test_lock_cancel_then_release_same_callback(void) {
  lock_release_cancel_same_callback(0);
}

static void test_lock_release_then_cancel_same_callback(void) {
  lock_release_cancel_same_callback(1);
}

/* test_cancel_release_race (bpo-32734): three waiters; in one callback the
 * first is cancelled and the lock released: exactly one more acquires. */
static void test_lock_cancel_release_race(void) {
  aios_loop_t *loop = make_loop();
  aios_lock_t *lock = new_lock(loop);
  worker_t t1 = {.name = "t1", .ops = {WAIT(b_lock_acquire, lock, ".acq"), END()}};
  worker_t t2 = {.name = "t2", .ops = {WAIT(b_lock_acquire, lock, ".acq"), END()}};
  worker_t t3 = {.name = "t3", .ops = {WAIT(b_lock_acquire, lock, ".acq"), END()}};
  two_t two;

  lock_acquire_now(lock);
  spawn(loop, &t1);
  spawn(loop, &t2);
  spawn(loop, &t3);
  run_once(loop);
  two.lock = lock;
  two.b = &t1;
  two.release_first = 0;
  call_soon(loop, release_and_cancel_cb, &two);
  CHECK_EQ(run_worker(loop, &t1), AIOS_ECANCELLED);
  run_once(loop);
  CHECK_LOG("t1!ECANCELLED t2.acq");
  CHECK_EQ(is_done(&t2), 1);
  CHECK_EQ(is_done(&t3), 0);
  CHECK_EQ(aios_lock_locked(lock), 1);

  CHECK_EQ(aios_task_cancel(t3.task, NULL), 1);
  run_once(loop);
  CHECK_EQ(aios_future_cancelled(tf(&t3)), 1);
  CHECK_LOG("t1!ECANCELLED t2.acq t3!ECANCELLED");
  CHECK_EQ(aios_lock_locked(lock), 1); /* t2's */
  finish_worker(&t1, AIOS_ECANCELLED);
  finish_worker(&t2, 0);
  finish_worker(&t3, AIOS_ECANCELLED);
  CHECK_EQ(aios_lock_release(lock), 0);
  CHECK_EQ(aios_lock_unref(lock), 0);
  close_loop(loop);
}

/* test_finished_waiter_cancelled, as CPython orders it: cancel B, release,
 * while C's task has not started yet: C takes the lock at once. */
static void test_lock_finished_waiter_cancelled(void) {
  aios_loop_t *loop = make_loop();
  aios_lock_t *lock = new_lock(loop);
  worker_t b = {.name = "B", .ops = {WAIT(b_lock_acquire, lock, ".acq"), END()}};
  worker_t c = {.name = "C", .ops = {WAIT(b_lock_acquire, lock, ".acq"), END()}};

  lock_acquire_now(lock);
  spawn(loop, &b);
  run_once(loop);
  spawn(loop, &c);
  CHECK_EQ(aios_task_cancel(b.task, NULL), 1);
  CHECK_EQ(aios_lock_release(lock), 0);
  run_once(loop);
  CHECK_EQ(aios_lock_locked(lock), 1);
  CHECK_EQ(aios_future_cancelled(tf(&b)), 1);
  CHECK_EQ(run_worker(loop, &c), 0);
  CHECK_LOG("C.acq B!ECANCELLED");
  CHECK_EQ(c.immediate, 1);
  finish_worker(&b, AIOS_ECANCELLED);
  finish_worker(&c, 0);
  CHECK_EQ(aios_lock_release(lock), 0);
  CHECK_EQ(aios_lock_unref(lock), 0);
  close_loop(loop);
}

/* test_acquire under aios_run: the main task drives, with sleep(0). */
typedef struct lock_main_s {
  int state;
  aios_lock_t *lock;
  worker_t t[3];
} lock_main_t;

static int lock_main_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  lock_main_t *m = (lock_main_t *)arg;
  aios_loop_t *loop = NULL;
  int i;
  (void)awaited;
  CHECK_EQ(aios_get_running_loop(&loop), 0);
  switch (m->state++) {
  case 0:
    CHECK_EQ(aios_lock_new(loop, &m->lock), 0);
    lock_acquire_now(m->lock);
    for (i = 0; i < 3; i++) {
      worker_t w = {.name = NULL, .ops = {WAIT(b_lock_acquire, m->lock, ""), END()}};
      w.name = i == 0 ? "1" : i == 1 ? "2" : "3";
      m->t[i] = w;
    }
    spawn(loop, &m->t[0]);
    spawn(loop, &m->t[1]);
    break;
  case 1:
    CHECK_LOG("");
    CHECK_EQ(aios_lock_release(m->lock), 0);
    break;
  case 2:
    CHECK_LOG("1");
    break;
  case 3:
    CHECK_LOG("1");
    spawn(loop, &m->t[2]);
    CHECK_EQ(aios_lock_release(m->lock), 0);
    break;
  case 4:
    CHECK_LOG("1 2");
    CHECK_EQ(aios_lock_release(m->lock), 0);
    break;
  case 5:
    CHECK_LOG("1 2 3");
    for (i = 0; i < 3; i++)
      finish_worker(&m->t[i], 0);
    CHECK_EQ(aios_lock_release(m->lock), 0);
    CHECK_EQ(aios_lock_unref(m->lock), 0);
    CHECK_EQ(aios_loop_unref(loop), 0);
    return aios_task_return(task, NULL, NULL);
  default:
    CHECK(!"stepped too often");
  }
  CHECK_EQ(aios_loop_unref(loop), 0);
  return await_sleep(task, 0);
}

static void test_lock_fifo_under_run(void) {
  lock_main_t m;
  memset(&m, 0, sizeof m);
  CHECK_EQ(aios_run(lock_main_step, &m, NULL, NULL), 0);
  CHECK_EQ(m.state, 6);
}

/* ======================================================================== */
/* Event                                                                      */

static aios_event_t *new_event(aios_loop_t *loop) {
  aios_event_t *ev = NULL;
  CHECK_EQ(aios_event_new(loop, &ev), 0);
  CHECK(ev != NULL);
  CHECK_EQ(aios_event_is_set(ev), 0);
  return ev;
}

/* test_wait: set wakes every waiter; a task that starts after set does not
 * wait at all, so it is first. */
static void test_event_set_wakes_all(void) {
  aios_loop_t *loop = make_loop();
  aios_event_t *ev = new_event(loop);
  worker_t t1 = {.name = "1", .ops = {WAIT(b_event_wait, ev, ""), END()}};
  worker_t t2 = {.name = "2", .ops = {WAIT(b_event_wait, ev, ""), END()}};
  worker_t t3 = {.name = "3", .ops = {WAIT(b_event_wait, ev, ""), END()}};

  spawn(loop, &t1);
  spawn(loop, &t2);
  run_once(loop);
  CHECK_LOG("");
  spawn(loop, &t3);
  CHECK_EQ(aios_event_set(ev), 0);
  CHECK_EQ(aios_event_is_set(ev), 1);
  run_once(loop);
  CHECK_LOG("3 1 2");
  CHECK_EQ(t3.immediate, 1);
  CHECK_EQ(t1.immediate, 0);
  finish_worker(&t1, 0);
  finish_worker(&t2, 0);
  finish_worker(&t3, 0);
  CHECK_EQ(aios_event_unref(ev), 0);
  close_loop(loop);
}

/* test_wait_on_set, test_clear. */
static void test_event_wait_on_set_and_clear(void) {
  aios_loop_t *loop = make_loop();
  aios_event_t *ev = new_event(loop);
  aios_future_t *f = NULL;

  CHECK_EQ(aios_event_set(ev), 0);
  CHECK_EQ(aios_event_is_set(ev), 1);
  CHECK_EQ(aios_event_wait(ev, &f), 0);
  check_done_now(0, f);
  CHECK_EQ(aios_event_set(ev), 0); /* again: no-op */
  CHECK_EQ(aios_event_clear(ev), 0);
  CHECK_EQ(aios_event_is_set(ev), 0);
  CHECK_EQ(aios_event_clear(ev), 0);
  CHECK_EQ(aios_event_is_set(ev), 0);
  CHECK_EQ(aios_event_wait(ev, &f), 0);
  CHECK_EQ(aios_future_done(f), 0);
  run_once(loop);
  CHECK_EQ(aios_future_done(f), 0);
  CHECK_EQ(aios_event_set(ev), 0);
  run_once(loop);
  CHECK_EQ(aios_future_done(f), 1);
  CHECK_EQ(aios_future_result(f, NULL), 0);
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(aios_event_unref(ev), 0);
  close_loop(loop);
}

/* test_clear_with_waiters: a set then clear still wakes the waiter that
 * was there (its wake-up was given); set twice wakes it once. */
static void test_event_clear_with_waiters(void) {
  aios_loop_t *loop = make_loop();
  aios_event_t *ev = new_event(loop);
  worker_t t = {.name = "1", .ops = {WAIT(b_event_wait, ev, ""), END()}};

  spawn(loop, &t);
  run_once(loop);
  CHECK_LOG("");
  CHECK_EQ(aios_event_set(ev), 0);
  CHECK_EQ(aios_event_clear(ev), 0);
  CHECK_EQ(aios_event_is_set(ev), 0);
  CHECK_EQ(aios_event_set(ev), 0);
  CHECK_EQ(aios_event_set(ev), 0);
  run_once(loop);
  CHECK_LOG("1");
  CHECK_EQ(t.steps, 2);
  finish_worker(&t, 0);
  CHECK_EQ(aios_event_unref(ev), 0);
  close_loop(loop);
}

/* test_wait_cancel, plus: a cancelled waiter does not keep the others from
 * being woken, and is not woken itself. */
static void test_event_cancelled_waiter(void) {
  aios_loop_t *loop = make_loop();
  aios_event_t *ev = new_event(loop);
  worker_t t1 = {.name = "1", .ops = {WAIT(b_event_wait, ev, ""), END()}};
  worker_t t2 = {.name = "2", .ops = {WAIT(b_event_wait, ev, ""), END()}};
  worker_t t3 = {.name = "3", .ops = {WAIT(b_event_wait, ev, ""), END()}};

  spawn(loop, &t1);
  spawn(loop, &t2);
  spawn(loop, &t3);
  run_once(loop);
  call_soon(loop, cancel_worker_cb, &t2);
  CHECK_EQ(run_worker(loop, &t2), AIOS_ECANCELLED);
  CHECK_LOG("2!ECANCELLED");
  CHECK_EQ(is_done(&t1), 0);
  CHECK_EQ(is_done(&t3), 0);
  CHECK_EQ(aios_event_is_set(ev), 0);
  CHECK_EQ(aios_event_set(ev), 0);
  run_once(loop);
  CHECK_LOG("2!ECANCELLED 1 3");
  finish_worker(&t1, 0);
  finish_worker(&t2, AIOS_ECANCELLED);
  finish_worker(&t3, 0);
  CHECK_EQ(aios_event_unref(ev), 0);
  close_loop(loop);
}

/* An event woken then cancelled in the same callback ends cancelled (the
 * task has a cancellation pending), others are woken as usual. */
static void set_and_cancel_cb(void *arg) {
  worker_t *w = (worker_t *)arg;
  CHECK_EQ(aios_event_set((aios_event_t *)w->ctx), 0);
  CHECK_EQ(aios_task_cancel(w->task, NULL), 1);
}

static void test_event_set_then_cancel_same_callback(void) {
  aios_loop_t *loop = make_loop();
  aios_event_t *ev = new_event(loop);
  worker_t t1 = {.name = "1", .ops = {WAIT(b_event_wait, ev, ""), END()}};
  worker_t t2 = {.name = "2", .ops = {WAIT(b_event_wait, ev, ""), END()}};

  t1.ctx = ev;
  spawn(loop, &t1);
  spawn(loop, &t2);
  run_once(loop);
  call_soon(loop, set_and_cancel_cb, &t1);
  CHECK_EQ(run_worker(loop, &t2), 0);
  CHECK_EQ(run_worker(loop, &t1), AIOS_ECANCELLED);
  CHECK_LOG("1!ECANCELLED 2");
  finish_worker(&t1, AIOS_ECANCELLED);
  finish_worker(&t2, 0);
  CHECK_EQ(aios_event_unref(ev), 0);
  close_loop(loop);
}

/* ======================================================================== */
/* Condition                                                                  */

static aios_condition_t *new_cond(aios_loop_t *loop, aios_lock_t *lock) {
  aios_condition_t *cond = NULL;
  CHECK_EQ(aios_condition_new(loop, lock, &cond), 0);
  CHECK(cond != NULL);
  return cond;
}

/* test_wait_unacquired, test_notify_unacquired, test_notify_all_unacquired,
 * test_wait_for_unacquired. */
static int pred_true(void *arg) {
  (void)arg;
  return 1;
}
static int pred_false(void *arg) {
  (void)arg;
  return 0;
}

static void test_condition_unacquired(void) {
  aios_loop_t *loop = make_loop();
  aios_condition_t *cond = new_cond(loop, NULL);
  aios_future_t *f = NULL;

  CHECK_EQ(aios_condition_locked(cond), 0);
  CHECK_EQ(aios_condition_wait(cond, &f), AIOS_ENOTACQUIRED);
  CHECK(f == NULL);
  CHECK_EQ(aios_condition_notify(cond, 1), AIOS_ENOTACQUIRED);
  CHECK_EQ(aios_condition_notify_all(cond), AIOS_ENOTACQUIRED);
  CHECK_EQ(aios_condition_release(cond), AIOS_ENOTACQUIRED);
  /* A predicate that holds at once needs no lock. */
  CHECK_EQ(aios_condition_wait_for(cond, pred_true, NULL, &f), 0);
  check_done_now(0, f);
  f = NULL;
  CHECK_EQ(aios_condition_wait_for(cond, pred_false, NULL, &f), AIOS_ENOTACQUIRED);
  CHECK(f == NULL);
  CHECK_EQ(aios_condition_locked(cond), 0);

  /* With the lock: notify with no waiter is fine; acquire is its lock's. */
  cond_acquire_now(cond);
  CHECK_EQ(aios_condition_notify(cond, 1), 0);
  CHECK_EQ(aios_condition_notify_all(cond), 0);
  CHECK_EQ(aios_condition_release(cond), 0);
  CHECK_EQ(aios_condition_locked(cond), 0);
  CHECK_EQ(aios_condition_unref(cond), 0);
  close_loop(loop);
}

/* test_wait: notify wakes in FIFO order; each woken waiter still needs the
 * lock, so it proceeds only when the lock is released. */
static void test_condition_wait_notify_fifo(void) {
  aios_loop_t *loop = make_loop();
  aios_condition_t *cond = new_cond(loop, NULL);
  worker_t t1 = {.name = "1", .ops = {WAIT(b_cond_acquire, cond, NULL), WAIT(b_cond_wait, cond, ""), END()}};
  worker_t t2 = {.name = "2", .ops = {WAIT(b_cond_acquire, cond, NULL), WAIT(b_cond_wait, cond, ""), END()}};
  worker_t t3 = {.name = "3", .ops = {WAIT(b_cond_acquire, cond, NULL), WAIT(b_cond_wait, cond, ""), END()}};

  spawn(loop, &t1);
  spawn(loop, &t2);
  spawn(loop, &t3);
  run_once(loop);
  CHECK_LOG("");
  CHECK_EQ(aios_condition_locked(cond), 0);

  cond_acquire_now(cond);
  CHECK_EQ(aios_condition_notify(cond, 1), 0);
  run_once(loop);
  CHECK_LOG("");
  CHECK_EQ(aios_condition_locked(cond), 1);

  CHECK_EQ(aios_condition_release(cond), 0);
  run_once(loop);
  CHECK_LOG("1");
  CHECK_EQ(aios_condition_locked(cond), 1);

  CHECK_EQ(aios_condition_notify(cond, 2), 0);
  run_once(loop);
  CHECK_LOG("1");
  CHECK_EQ(aios_condition_locked(cond), 1);

  CHECK_EQ(aios_condition_release(cond), 0);
  run_once(loop);
  CHECK_LOG("1 2");
  CHECK_EQ(aios_condition_locked(cond), 1);

  CHECK_EQ(aios_condition_release(cond), 0);
  run_once(loop);
  CHECK_LOG("1 2 3");
  CHECK_EQ(aios_condition_locked(cond), 1);

  finish_worker(&t1, 0);
  finish_worker(&t2, 0);
  finish_worker(&t3, 0);
  CHECK_EQ(aios_condition_release(cond), 0);
  CHECK_EQ(aios_condition_unref(cond), 0);
  close_loop(loop);
}

/* test_notify: notify(1) wakes one, notify(1) + notify(2048) the rest. */
static void test_condition_notify(void) {
  aios_loop_t *loop = make_loop();
  aios_condition_t *cond = new_cond(loop, NULL);
  worker_t t[3];
  int i;

  for (i = 0; i < 3; i++) {
    worker_t w = {.name = NULL, .ops = {WAIT(b_cond_acquire, cond, NULL), WAIT(b_cond_wait, cond, ""),
                         ACT(a_cond_release, cond, 0, NULL), END()}};
    w.name = i == 0 ? "1" : i == 1 ? "2" : "3";
    t[i] = w;
    spawn(loop, &t[i]);
  }
  run_once(loop);
  CHECK_LOG("");

  cond_acquire_now(cond);
  CHECK_EQ(aios_condition_notify(cond, 1), 0);
  CHECK_EQ(aios_condition_release(cond), 0);
  run_once(loop);
  CHECK_LOG("1");

  cond_acquire_now(cond);
  CHECK_EQ(aios_condition_notify(cond, 1), 0);
  CHECK_EQ(aios_condition_notify(cond, 2048), 0);
  CHECK_EQ(aios_condition_release(cond), 0);
  run_once(loop);
  CHECK_LOG("1 2 3");
  for (i = 0; i < 3; i++)
    finish_worker(&t[i], 0);
  CHECK_EQ(aios_condition_locked(cond), 0);
  CHECK_EQ(aios_condition_unref(cond), 0);
  close_loop(loop);
}

/* test_notify_all. */
static void test_condition_notify_all(void) {
  aios_loop_t *loop = make_loop();
  aios_condition_t *cond = new_cond(loop, NULL);
  worker_t t1 = {.name = "1", .ops = {WAIT(b_cond_acquire, cond, NULL), WAIT(b_cond_wait, cond, ""),
                       ACT(a_cond_release, cond, 0, NULL), END()}};
  worker_t t2 = {.name = "2", .ops = {WAIT(b_cond_acquire, cond, NULL), WAIT(b_cond_wait, cond, ""),
                       ACT(a_cond_release, cond, 0, NULL), END()}};

  spawn(loop, &t1);
  spawn(loop, &t2);
  run_once(loop);
  CHECK_LOG("");
  cond_acquire_now(cond);
  CHECK_EQ(aios_condition_notify_all(cond), 0);
  CHECK_EQ(aios_condition_release(cond), 0);
  run_once(loop);
  CHECK_LOG("1 2");
  finish_worker(&t1, 0);
  finish_worker(&t2, 0);
  CHECK_EQ(aios_condition_locked(cond), 0);
  CHECK_EQ(aios_condition_unref(cond), 0);
  close_loop(loop);
}

/* test_wait_cancel: a wait cancelled while waiting re-acquires the lock
 * before it ends cancelled. */
static void test_condition_wait_cancel(void) {
  aios_loop_t *loop = make_loop();
  aios_condition_t *cond = new_cond(loop, NULL);
  worker_t w = {.name = "W", .ops = {WAIT(b_cond_wait, cond, ".woke"), END()}};

  w.on_outcome = seen_cond_locked;
  w.ctx = cond;
  cond_acquire_now(cond);
  spawn(loop, &w);
  call_soon(loop, cancel_worker_cb, &w);
  CHECK_EQ(run_worker(loop, &w), AIOS_ECANCELLED);
  CHECK_LOG("W!ECANCELLED");
  CHECK_EQ(w.seen_count, 1);
  CHECK_EQ(w.seen, 1);
  CHECK_EQ(aios_condition_locked(cond), 1);
  finish_worker(&w, AIOS_ECANCELLED);
  CHECK_EQ(aios_condition_release(cond), 0);
  CHECK_EQ(aios_condition_unref(cond), 0);
  close_loop(loop);
}

/* The same with the lock contested: the cancelled waiter cannot end until
 * the holder releases, and when its step sees the cancellation it holds
 * the lock. */
static void test_condition_wait_cancel_reacquires_contested(void) {
  aios_loop_t *loop = make_loop();
  aios_condition_t *cond = new_cond(loop, NULL);
  worker_t w = {.name = "W", .ops = {WAIT(b_cond_acquire, cond, ".acq"), WAIT(b_cond_wait, cond, ".woke"), END()}};

  w.on_outcome = seen_cond_locked;
  w.ctx = cond;
  spawn(loop, &w);
  run_once(loop);
  CHECK_LOG("W.acq");
  CHECK_EQ(aios_condition_locked(cond), 0); /* released by the wait */
  cond_acquire_now(cond);
  CHECK_EQ(aios_task_cancel(w.task, "stop"), 1);
  run_iterations(loop, 3);
  CHECK_EQ(is_done(&w), 0); /* blocked re-acquiring the lock */
  CHECK_EQ(w.seen_count, 1); /* only the acquire so far */
  CHECK_EQ(aios_condition_release(cond), 0);
  CHECK_EQ(run_worker(loop, &w), AIOS_ECANCELLED);
  CHECK_EQ(w.seen_count, 2);
  CHECK_EQ(w.seen, 1);
  CHECK_LOG("W.acq W!ECANCELLED");
  CHECK_EQ(aios_condition_locked(cond), 1);
  finish_worker(&w, AIOS_ECANCELLED);
  CHECK_EQ(aios_condition_release(cond), 0);
  CHECK_EQ(aios_condition_unref(cond), 0);
  close_loop(loop);
}

/* test_wait_cancel_contested: notified, then (in later callbacks) cancelled
 * while re-acquiring and the lock released. asyncio 3.13's wait() catches
 * the cancellation of its re-acquire, retries, then re-raises: the task
 * ends cancelled, holding the lock. */
static void cond_release_cb(void *arg) {
  CHECK_EQ(aios_condition_release((aios_condition_t *)arg), 0);
}

static void test_condition_wait_cancel_contested(void) {
  aios_loop_t *loop = make_loop();
  aios_condition_t *cond = new_cond(loop, NULL);
  worker_t w = {.name = "W", .ops = {WAIT(b_cond_wait, cond, ".woke"), END()}};

  w.on_outcome = seen_cond_locked;
  w.ctx = cond;
  cond_acquire_now(cond);
  spawn(loop, &w);
  run_once(loop);
  CHECK_EQ(aios_condition_locked(cond), 0);
  cond_acquire_now(cond);
  CHECK_EQ(aios_condition_notify(cond, 1), 0);
  call_soon(loop, cancel_worker_cb, &w);
  call_soon(loop, cond_release_cb, cond);
  CHECK_EQ(run_worker(loop, &w), AIOS_ECANCELLED);
  CHECK_EQ(w.seen, 1);
  CHECK_EQ(aios_condition_locked(cond), 1);
  finish_worker(&w, AIOS_ECANCELLED);
  CHECK_EQ(aios_condition_release(cond), 0);
  CHECK_EQ(aios_condition_unref(cond), 0);
  close_loop(loop);
}

/* test_wait_cancel_after_notify (bpo-32841): `async with cond: await
 * cond.wait()`, notified, then cancelled while it waits for the lock. */
static void test_condition_wait_cancel_after_notify(void) {
  aios_loop_t *loop = make_loop();
  aios_condition_t *cond = new_cond(loop, NULL);
  worker_t w = {.name = "W", .ops = {WAIT(b_cond_acquire, cond, NULL), LOG(".in"), WAIT(b_cond_wait, cond, ".woke"),
                      ACT(a_cond_release, cond, 0, NULL), END()}};

  w.finally_ = a_cond_release; /* the `async with` */
  w.finally_obj = cond;
  w.on_outcome = seen_cond_locked;
  w.ctx = cond;
  spawn(loop, &w);
  run_once(loop);
  cond_acquire_now(cond);
  CHECK_EQ(aios_condition_notify(cond, 1), 0);
  run_once(loop); /* to acquire() */
  CHECK_EQ(aios_task_cancel(w.task, NULL), 1);
  run_once(loop); /* the cancellation arrives */
  CHECK_EQ(is_done(&w), 0);
  CHECK_EQ(aios_condition_release(cond), 0);
  run_once(loop);
  CHECK_EQ(is_done(&w), 1);
  CHECK_EQ(aios_future_cancelled(tf(&w)), 1);
  CHECK_LOG("W.in W!ECANCELLED");
  CHECK_EQ(w.seen, 1);
  CHECK_EQ(aios_condition_locked(cond), 0); /* released by the `finally` */
  finish_worker(&w, AIOS_ECANCELLED);
  CHECK_EQ(aios_condition_unref(cond), 0);
  close_loop(loop);
}

/* wait_for with a predicate function (test_wait_for). */
typedef struct waitfor_s {
  aios_condition_t *cond;
  int flag;  /* the predicate's answer */
  int calls; /* how often it was asked */
  int locked_at_call;
} waitfor_t;

static int flag_pred(void *arg) {
  waitfor_t *p = (waitfor_t *)arg;
  p->calls++;
  p->locked_at_call = aios_condition_locked(p->cond);
  return p->flag;
}

static int b_cond_wait_for(void *o, aios_future_t **out) {
  waitfor_t *p = (waitfor_t *)o;
  return aios_condition_wait_for(p->cond, flag_pred, p, out);
}

static void test_condition_wait_for(void) {
  aios_loop_t *loop = make_loop();
  waitfor_t p;
  worker_t t;

  memset(&p, 0, sizeof p);
  p.cond = new_cond(loop, NULL);
  {
    worker_t w = {.name = "1", .ops = {WAIT(b_cond_acquire, p.cond, NULL), WAIT(b_cond_wait_for, &p, ""),
                        ACT(a_cond_release, p.cond, 0, NULL), END()}};
    t = w;
  }
  spawn(loop, &t);
  run_once(loop);
  CHECK_LOG("");
  CHECK_EQ(p.calls, 1);
  CHECK_EQ(p.locked_at_call, 1);

  cond_acquire_now(p.cond);
  CHECK_EQ(aios_condition_notify(p.cond, 1), 0);
  CHECK_EQ(aios_condition_release(p.cond), 0);
  run_once(loop);
  CHECK_LOG("");
  CHECK_EQ(p.calls, 2);
  CHECK_EQ(p.locked_at_call, 1); /* checked with the lock held */
  CHECK_EQ(aios_condition_locked(p.cond), 0); /* waiting again */

  p.flag = 1;
  cond_acquire_now(p.cond);
  CHECK_EQ(aios_condition_notify(p.cond, 1), 0);
  CHECK_EQ(aios_condition_release(p.cond), 0);
  run_once(loop);
  CHECK_LOG("1");
  CHECK_EQ(p.calls, 3);
  CHECK_EQ(p.locked_at_call, 1);
  finish_worker(&t, 0);
  CHECK_EQ(aios_condition_locked(p.cond), 0);
  CHECK_EQ(aios_condition_unref(p.cond), 0);
  close_loop(loop);
}

/* A predicate that answers a negative status fails the wait with it, with
 * the lock held again (CPython: the predicate raising after wait()). */
static int failing_pred(void *arg) {
  waitfor_t *p = (waitfor_t *)arg;
  p->calls++;
  p->locked_at_call = aios_condition_locked(p->cond);
  return p->calls >= 2 ? AIOS_ETIMEOUT : 0;
}

static int b_cond_wait_for_failing(void *o, aios_future_t **out) {
  waitfor_t *p = (waitfor_t *)o;
  return aios_condition_wait_for(p->cond, failing_pred, p, out);
}

static void test_condition_wait_for_predicate_error(void) {
  aios_loop_t *loop = make_loop();
  waitfor_t p;
  worker_t t;

  memset(&p, 0, sizeof p);
  p.cond = new_cond(loop, NULL);
  {
    worker_t w = {.name = "W", .ops = {WAIT(b_cond_acquire, p.cond, NULL), WAIT(b_cond_wait_for_failing, &p, ".ok"),
                        END()}};
    t = w;
  }
  t.on_outcome = seen_cond_locked;
  t.ctx = p.cond;
  t.finally_ = a_cond_release;
  t.finally_obj = p.cond;
  spawn(loop, &t);
  run_once(loop);
  cond_acquire_now(p.cond);
  CHECK_EQ(aios_condition_notify(p.cond, 1), 0);
  CHECK_EQ(aios_condition_release(p.cond), 0);
  CHECK_EQ(run_worker(loop, &t), AIOS_ETIMEOUT);
  CHECK_LOG("W!ETIMEOUT");
  CHECK_EQ(p.calls, 2);
  CHECK_EQ(t.seen, 1);
  CHECK_EQ(aios_condition_locked(p.cond), 0);
  finish_worker(&t, AIOS_ETIMEOUT);

  /* Failing at once: the call refuses, or hands back a failed future. */
  p.calls = 1;
  cond_acquire_now(p.cond);
  {
    aios_future_t *f = NULL;
    int rc = aios_condition_wait_for(p.cond, failing_pred, &p, &f);
    if (rc == 0) {
      CHECK(f != NULL);
      CHECK_EQ(aios_future_done(f), 1);
      CHECK_EQ(aios_future_result(f, NULL), AIOS_ETIMEOUT);
      CHECK_EQ(aios_future_unref(f), 0);
    } else {
      CHECK_EQ(rc, AIOS_ETIMEOUT);
      CHECK(f == NULL);
    }
  }
  CHECK_EQ(aios_condition_locked(p.cond), 1);
  CHECK_EQ(aios_condition_release(p.cond), 0);
  CHECK_EQ(aios_condition_unref(p.cond), 0);
  close_loop(loop);
}

/* test_explicit_lock: a condition over a given lock shares its state. */
static void test_condition_explicit_lock(void) {
  aios_loop_t *loop = make_loop();
  aios_lock_t *lock = new_lock(loop);
  aios_condition_t *cond = new_cond(loop, lock);

  CHECK_EQ(aios_condition_locked(cond), 0);
  cond_acquire_now(cond);
  CHECK_EQ(aios_lock_locked(lock), 1);
  CHECK_EQ(aios_condition_release(cond), 0);
  CHECK_EQ(aios_lock_locked(lock), 0);
  CHECK_EQ(aios_condition_locked(cond), 0);
  lock_acquire_now(lock);
  CHECK_EQ(aios_condition_locked(cond), 1);
  CHECK_EQ(aios_lock_release(lock), 0);
  CHECK_EQ(aios_condition_locked(cond), 0);

  /* The condition keeps the lock alive. */
  CHECK_EQ(aios_lock_ref(lock), 0);
  CHECK_EQ(aios_lock_unref(lock), 0);
  CHECK_EQ(aios_condition_unref(cond), 0);
  CHECK_EQ(aios_lock_unref(lock), 0);
  close_loop(loop);
}

/* A waiter on a condition over a given lock, notified by a holder of the
 * *lock*, proceeds once the lock is released. */
static void test_condition_explicit_lock_waiter(void) {
  aios_loop_t *loop = make_loop();
  aios_lock_t *lock = new_lock(loop);
  aios_condition_t *cond = new_cond(loop, lock);
  worker_t w = {.name = "W", .ops = {WAIT(b_cond_acquire, cond, ".acq"), WAIT(b_cond_wait, cond, ".woke"),
                      ACT(a_lock_locked, lock, 1, NULL), ACT(a_lock_release, lock, 0, ".rel"), END()}};

  spawn(loop, &w);
  run_once(loop);
  CHECK_EQ(aios_lock_locked(lock), 0);
  lock_acquire_now(lock);
  CHECK_EQ(aios_condition_notify(cond, 1), 0);
  run_iterations(loop, 2);
  CHECK_EQ(is_done(&w), 0); /* woken, waiting for the lock */
  CHECK_EQ(aios_lock_release(lock), 0);
  CHECK_EQ(run_worker(loop, &w), 0);
  CHECK_LOG("W.acq W.woke W.rel");
  CHECK_EQ(aios_lock_locked(lock), 0);
  finish_worker(&w, 0);

  /* The condition keeps the lock alive. */
  CHECK_EQ(aios_lock_unref(lock), 0);
  cond_acquire_now(cond);
  CHECK_EQ(aios_condition_release(cond), 0);
  CHECK_EQ(aios_condition_unref(cond), 0);
  close_loop(loop);
}

/* A condition over a lock of another loop is refused. */
static void test_condition_lock_of_other_loop(void) {
  aios_loop_t *loop = make_loop();
  aios_loop_t *other = make_loop();
  aios_lock_t *lock = new_lock(other);
  aios_condition_t *cond = NULL;

  CHECK(aios_condition_new(loop, lock, &cond) < 0);
  CHECK(cond == NULL);
  CHECK_EQ(aios_lock_unref(lock), 0);
  close_loop(other);
  close_loop(loop);
}

/* test_cancelled_wakeup / test_cancelled_wakeup_relock: a consumer woken by
 * notify(1) and cancelled (before it runs, or while it re-acquires the
 * lock) passes its notification on: the other consumer takes the item. */
typedef struct consumer_s {
  const char *name;
  aios_condition_t *cond;
  int *state;
  int phase;
  int consumed;
} consumer_t;

static int state_nonzero(void *arg) { return *(int *)arg != 0; }

static int consumer_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  consumer_t *c = (consumer_t *)arg;
  aios_future_t *f = NULL;
  int rc;
  char word[64];

  if (c->phase == 0) {
    CHECK(awaited == NULL);
    CHECK_EQ(aios_condition_acquire(c->cond, &f), 0);
    c->phase = 1;
    if (!aios_future_done(f)) {
      rc = aios_task_await(task, f);
      CHECK_EQ(aios_future_unref(f), 0);
      return rc;
    }
    awaited = f;
  }
  if (c->phase == 1) {
    rc = aios_future_result(awaited, NULL);
    if (f)
      CHECK_EQ(aios_future_unref(f), 0);
    f = NULL;
    if (rc < 0)
      return rc; /* never held the lock */
    c->phase = 2;
    awaited = NULL;
  }
  for (;;) {
    if (awaited == NULL) {
      /* while True: await cond.wait_for(lambda: state != 0) */
      CHECK_EQ(aios_condition_wait_for(c->cond, state_nonzero, c->state, &f), 0);
      if (!aios_future_done(f)) {
        rc = aios_task_await(task, f);
        CHECK_EQ(aios_future_unref(f), 0);
        return rc;
      }
      awaited = f;
    }
    rc = aios_future_result(awaited, NULL);
    if (f)
      CHECK_EQ(aios_future_unref(f), 0);
    f = NULL;
    awaited = NULL;
    CHECK_EQ(aios_condition_locked(c->cond), 1); /* always re-acquired */
    if (rc < 0) {
      snprintf(word, sizeof word, "%s!%s", c->name, aios_err_name(rc) + 5);
      log_event(word);
      CHECK_EQ(aios_condition_release(c->cond), 0); /* async with */
      return rc;
    }
    if (*c->state < 0) {
      snprintf(word, sizeof word, "%s.exit", c->name);
      log_event(word);
      CHECK_EQ(aios_condition_release(c->cond), 0);
      return aios_task_return(task, NULL, NULL);
    }
    *c->state -= 1;
    c->consumed++;
    snprintf(word, sizeof word, "%s.took", c->name);
    log_event(word);
  }
}

static void condition_cancelled_wakeup(int relock) {
  aios_loop_t *loop = make_loop();
  aios_condition_t *cond = new_cond(loop, NULL);
  int state = 0;
  consumer_t c[2];
  aios_task_t *t[2];
  int i;

  for (i = 0; i < 2; i++) {
    memset(&c[i], 0, sizeof c[i]);
    c[i].name = i == 0 ? "c0" : "c1";
    c[i].cond = cond;
    c[i].state = &state;
    CHECK_EQ(aios_task_new(loop, consumer_step, &c[i], NULL, &t[i]), 0);
  }
  run_once(loop);
  CHECK_EQ(aios_condition_locked(cond), 0);

  cond_acquire_now(cond);
  state += 1;
  CHECK_EQ(aios_condition_notify(cond, 1), 0);
  if (relock)
    run_once(loop); /* c0 wakes up and waits for the lock */
  CHECK_EQ(aios_task_cancel(t[0], NULL), 1);
  /* The test's wait_for(state == 0) with a 10 ms timeout: let go of the
   * lock for a while (here: 20 iterations, no timer), take it back. */
  CHECK_EQ(aios_condition_release(cond), 0);
  run_iterations(loop, 20);
  cond_acquire_now(cond);
  CHECK_EQ(state, 0);
  CHECK_EQ(aios_future_cancelled(aios_task_as_future(t[0])), 1);
  CHECK_EQ(c[1].consumed, 1);
  CHECK_LOG("c0!ECANCELLED c1.took");

  state = -1;
  CHECK_EQ(aios_condition_notify_all(cond), 0);
  CHECK_EQ(aios_condition_release(cond), 0);
  CHECK_EQ(run_bounded(loop, aios_task_as_future(t[1])), 0);
  CHECK_LOG("c0!ECANCELLED c1.took c1.exit");
  CHECK_EQ(aios_condition_locked(cond), 0);
  for (i = 0; i < 2; i++)
    CHECK_EQ(aios_task_unref(t[i]), 0);
  CHECK_EQ(aios_condition_unref(cond), 0);
  close_loop(loop);
}

static void test_condition_cancelled_wakeup(void) { condition_cancelled_wakeup(0); }
static void test_condition_cancelled_wakeup_relock(void) { condition_cancelled_wakeup(1); }

/* ======================================================================== */
/* Semaphore and BoundedSemaphore                                             */

static aios_semaphore_t *new_sem(aios_loop_t *loop, unsigned value, int bounded) {
  aios_semaphore_t *sem = NULL;
  CHECK_EQ(aios_semaphore_new(loop, value, bounded, &sem), 0);
  CHECK(sem != NULL);
  CHECK_EQ(aios_semaphore_locked(sem), value == 0);
  return sem;
}

/* test_initial_value_zero, test_release_no_waiters, value permits. */
static void test_semaphore_value_and_locked(void) {
  aios_loop_t *loop = make_loop();
  aios_semaphore_t *zero = new_sem(loop, 0, 0);
  aios_semaphore_t *sem = new_sem(loop, 2, 0);
  aios_future_t *f = NULL;

  CHECK_EQ(aios_semaphore_locked(zero), 1);
  CHECK_EQ(aios_semaphore_release(zero), 0); /* unbounded: may go above */
  CHECK_EQ(aios_semaphore_locked(zero), 0);
  CHECK_EQ(aios_semaphore_release(zero), 0);
  sem_acquire_now(zero);
  sem_acquire_now(zero);
  CHECK_EQ(aios_semaphore_locked(zero), 1);

  sem_acquire_now(sem);
  CHECK_EQ(aios_semaphore_locked(sem), 0);
  sem_acquire_now(sem);
  CHECK_EQ(aios_semaphore_locked(sem), 1);
  CHECK_EQ(aios_semaphore_acquire(sem, &f), 0);
  CHECK_EQ(aios_future_done(f), 0);
  CHECK_EQ(aios_semaphore_release(sem), 0);
  CHECK_EQ(aios_semaphore_locked(sem), 1); /* the permit went to the waiter */
  run_once(loop);
  CHECK_EQ(aios_future_done(f), 1);
  CHECK_EQ(aios_future_result(f, NULL), 0);
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(aios_semaphore_release(sem), 0);
  CHECK_EQ(aios_semaphore_release(sem), 0);
  CHECK_EQ(aios_semaphore_locked(sem), 0);
  CHECK_EQ(aios_semaphore_unref(zero), 0);
  CHECK_EQ(aios_semaphore_unref(sem), 0);
  close_loop(loop);
}

/* test_release_not_acquired, and a bounded semaphore's bound. */
static void test_bounded_semaphore(void) {
  aios_loop_t *loop = make_loop();
  aios_semaphore_t *one = new_sem(loop, 1, 1);
  aios_semaphore_t *two = new_sem(loop, 2, 1);
  aios_semaphore_t *zero = new_sem(loop, 0, 1);

  CHECK_EQ(aios_semaphore_release(one), AIOS_ERELEASED);
  sem_acquire_now(one);
  CHECK_EQ(aios_semaphore_locked(one), 1);
  CHECK_EQ(aios_semaphore_release(one), 0);
  CHECK_EQ(aios_semaphore_release(one), AIOS_ERELEASED);
  CHECK_EQ(aios_semaphore_locked(one), 0);

  sem_acquire_now(two);
  sem_acquire_now(two);
  CHECK_EQ(aios_semaphore_release(two), 0);
  CHECK_EQ(aios_semaphore_release(two), 0);
  CHECK_EQ(aios_semaphore_release(two), AIOS_ERELEASED);
  sem_acquire_now(two);
  CHECK_EQ(aios_semaphore_release(two), 0);
  CHECK_EQ(aios_semaphore_release(two), AIOS_ERELEASED);

  CHECK_EQ(aios_semaphore_release(zero), AIOS_ERELEASED);
  CHECK_EQ(aios_semaphore_locked(zero), 1);
  CHECK_EQ(aios_semaphore_unref(one), 0);
  CHECK_EQ(aios_semaphore_unref(two), 0);
  CHECK_EQ(aios_semaphore_unref(zero), 0);
  close_loop(loop);
}

/* test_acquire: Semaphore(3), two taken, three tasks: one gets the last
 * permit; two releases let two more through, in FIFO order, ahead of a
 * task that arrives meanwhile. */
static void test_semaphore_acquire(void) {
  aios_loop_t *loop = make_loop();
  aios_semaphore_t *sem = new_sem(loop, 3, 0);
  worker_t t[4];
  int i;

  sem_acquire_now(sem);
  sem_acquire_now(sem);
  CHECK_EQ(aios_semaphore_locked(sem), 0);
  for (i = 0; i < 4; i++) {
    worker_t w = {.name = NULL, .ops = {WAIT(b_sem_acquire, sem, ""), END()}};
    w.name = i == 0 ? "1" : i == 1 ? "2" : i == 2 ? "3" : "4";
    t[i] = w;
  }
  spawn(loop, &t[0]);
  spawn(loop, &t[1]);
  spawn(loop, &t[2]);
  run_once(loop);
  CHECK_LOG("1");
  CHECK_EQ(aios_semaphore_locked(sem), 1);

  spawn(loop, &t[3]);
  CHECK_EQ(aios_semaphore_release(sem), 0);
  CHECK_EQ(aios_semaphore_release(sem), 0);
  CHECK_EQ(aios_semaphore_locked(sem), 1);
  run_once(loop);
  CHECK_LOG("1 2 3");
  CHECK_EQ(aios_semaphore_locked(sem), 1);
  CHECK_EQ(is_done(&t[3]), 0);

  CHECK_EQ(aios_semaphore_release(sem), 0);
  CHECK_EQ(run_worker(loop, &t[3]), 0);
  CHECK_LOG("1 2 3 4");
  for (i = 0; i < 4; i++)
    finish_worker(&t[i], 0);
  CHECK_EQ(aios_semaphore_locked(sem), 1);
  CHECK_EQ(aios_semaphore_unref(sem), 0);
  close_loop(loop);
}

/* test_acquire_cancel. */
static void test_semaphore_acquire_cancel(void) {
  aios_loop_t *loop = make_loop();
  aios_semaphore_t *sem = new_sem(loop, 1, 0);
  worker_t w = {.name = "W", .ops = {WAIT(b_sem_acquire, sem, ".acq"), END()}};

  sem_acquire_now(sem);
  spawn(loop, &w);
  call_soon(loop, cancel_worker_cb, &w);
  CHECK_EQ(run_worker(loop, &w), AIOS_ECANCELLED);
  CHECK_LOG("W!ECANCELLED");
  CHECK_EQ(aios_semaphore_locked(sem), 1);
  CHECK_EQ(aios_semaphore_release(sem), 0);
  CHECK_EQ(aios_semaphore_locked(sem), 0); /* no waiter left behind */
  sem_acquire_now(sem);
  finish_worker(&w, AIOS_ECANCELLED);
  CHECK_EQ(aios_semaphore_unref(sem), 0);
  close_loop(loop);
}

/* test_acquire_cancel_before_awoken: two cancelled waiters do not take the
 * one permit released: the third does, the fourth still waits. */
static void test_semaphore_cancel_before_awoken(void) {
  aios_loop_t *loop = make_loop();
  aios_semaphore_t *sem = new_sem(loop, 0, 0);
  worker_t t[4];
  int i;

  for (i = 0; i < 4; i++) {
    worker_t w = {.name = NULL, .ops = {WAIT(b_sem_acquire, sem, ".acq"), END()}};
    w.name = i == 0 ? "t1" : i == 1 ? "t2" : i == 2 ? "t3" : "t4";
    t[i] = w;
    spawn(loop, &t[i]);
  }
  run_once(loop);
  CHECK_EQ(aios_task_cancel(t[0].task, NULL), 1);
  CHECK_EQ(aios_task_cancel(t[1].task, NULL), 1);
  CHECK_EQ(aios_semaphore_release(sem), 0);
  run_iterations(loop, 2);
  CHECK_EQ(is_done(&t[2]), 1);
  CHECK_EQ(is_done(&t[3]), 0);
  CHECK_LOG("t1!ECANCELLED t2!ECANCELLED t3.acq");

  CHECK_EQ(aios_task_cancel(t[3].task, NULL), 1);
  run_once(loop);
  CHECK_LOG("t1!ECANCELLED t2!ECANCELLED t3.acq t4!ECANCELLED");
  finish_worker(&t[0], AIOS_ECANCELLED);
  finish_worker(&t[1], AIOS_ECANCELLED);
  finish_worker(&t[2], 0);
  finish_worker(&t[3], AIOS_ECANCELLED);
  CHECK_EQ(aios_semaphore_locked(sem), 1);
  CHECK_EQ(aios_semaphore_unref(sem), 0);
  close_loop(loop);
}

/* test_acquire_hang: a cancelled first waiter does not strand the second. */
static void test_semaphore_acquire_hang(void) {
  aios_loop_t *loop = make_loop();
  aios_semaphore_t *sem = new_sem(loop, 0, 0);
  worker_t t1 = {.name = "t1", .ops = {WAIT(b_sem_acquire, sem, ".acq"), END()}};
  worker_t t2 = {.name = "t2", .ops = {WAIT(b_sem_acquire, sem, ".acq"), END()}};

  spawn(loop, &t1);
  spawn(loop, &t2);
  run_once(loop);
  CHECK_EQ(aios_task_cancel(t1.task, NULL), 1);
  CHECK_EQ(aios_semaphore_release(sem), 0);
  run_iterations(loop, 2);
  CHECK_EQ(aios_semaphore_locked(sem), 1);
  CHECK_EQ(is_done(&t2), 1);
  CHECK_LOG("t1!ECANCELLED t2.acq");
  finish_worker(&t1, AIOS_ECANCELLED);
  finish_worker(&t2, 0);
  CHECK_EQ(aios_semaphore_unref(sem), 0);
  close_loop(loop);
}

/* A woken waiter cancelled before it runs (release then cancel in one
 * callback) gives its permit to the next waiter: no starvation. */
typedef struct sem_cancel_s {
  aios_semaphore_t *sem;
  worker_t *w;
} sem_cancel_t;

static void sem_release_then_cancel_cb(void *arg) {
  sem_cancel_t *s = (sem_cancel_t *)arg;
  CHECK_EQ(aios_semaphore_release(s->sem), 0);
  CHECK_EQ(aios_task_cancel(s->w->task, NULL), 1);
}

static void test_semaphore_woken_waiter_cancelled(void) {
  aios_loop_t *loop = make_loop();
  aios_semaphore_t *sem = new_sem(loop, 0, 0);
  worker_t t1 = {.name = "t1", .ops = {WAIT(b_sem_acquire, sem, ".acq"), END()}};
  worker_t t2 = {.name = "t2", .ops = {WAIT(b_sem_acquire, sem, ".acq"), END()}};
  sem_cancel_t sc;

  spawn(loop, &t1);
  spawn(loop, &t2);
  run_once(loop);
  sc.sem = sem;
  sc.w = &t1;
  call_soon(loop, sem_release_then_cancel_cb, &sc);
  CHECK_EQ(run_worker(loop, &t2), 0);
  CHECK_LOG("t1!ECANCELLED t2.acq");
  CHECK_EQ(aios_future_cancelled(tf(&t1)), 1);
  CHECK_EQ(aios_semaphore_locked(sem), 1); /* value 0: the permit is t2's */
  CHECK_EQ(aios_semaphore_release(sem), 0);
  CHECK_EQ(aios_semaphore_locked(sem), 0); /* exactly one permit back */
  sem_acquire_now(sem);
  CHECK_EQ(aios_semaphore_locked(sem), 1);
  finish_worker(&t1, AIOS_ECANCELLED);
  finish_worker(&t2, 0);
  CHECK_EQ(aios_semaphore_unref(sem), 0);
  close_loop(loop);
}

/* The same on a BoundedSemaphore: the permit of the cancelled waiter is not
 * counted twice (a release above the bound would be refused). */
static void test_bounded_semaphore_woken_waiter_cancelled(void) {
  aios_loop_t *loop = make_loop();
  aios_semaphore_t *sem = new_sem(loop, 1, 1);
  worker_t t1 = {.name = "t1", .ops = {WAIT(b_sem_acquire, sem, ".acq"), END()}};
  worker_t t2 = {.name = "t2", .ops = {WAIT(b_sem_acquire, sem, ".acq"), END()}};
  sem_cancel_t sc;

  sem_acquire_now(sem);
  spawn(loop, &t1);
  spawn(loop, &t2);
  run_once(loop);
  sc.sem = sem;
  sc.w = &t1;
  call_soon(loop, sem_release_then_cancel_cb, &sc);
  CHECK_EQ(run_worker(loop, &t2), 0);
  CHECK_LOG("t1!ECANCELLED t2.acq");
  CHECK_EQ(aios_semaphore_locked(sem), 1);
  CHECK_EQ(aios_semaphore_release(sem), 0); /* t2's permit */
  CHECK_EQ(aios_semaphore_release(sem), AIOS_ERELEASED);
  finish_worker(&t1, AIOS_ECANCELLED);
  finish_worker(&t2, 0);
  CHECK_EQ(aios_semaphore_unref(sem), 0);
  close_loop(loop);
}

/* test_acquire_no_hang: c1 holds the semaphore over a sleep(0), releases,
 * then cancels c2 (woken by that release): the permit is not lost. */
static int a_cancel_worker(void *o) {
  return aios_task_cancel(((worker_t *)o)->task, NULL);
}

static void test_semaphore_acquire_no_hang(void) {
  aios_loop_t *loop = make_loop();
  aios_semaphore_t *sem = new_sem(loop, 1, 0);
  worker_t c2 = {.name = "c2", .ops = {WAIT(b_sem_acquire, sem, ".acq"), LOG(".bad"), END()}};
  worker_t c1 = {.name = "c1", .ops = {WAIT(b_sem_acquire, sem, ".acq"), YIELD(), ACT(a_sem_release, sem, 0, ".rel"),
                        ACT(a_cancel_worker, &c2, 1, ".cancel"), END()}};

  spawn(loop, &c1);
  spawn(loop, &c2);
  CHECK_EQ(run_worker(loop, &c1), 0);
  CHECK_EQ(run_worker(loop, &c2), AIOS_ECANCELLED);
  CHECK_LOG("c1.acq c1.rel c1.cancel c2!ECANCELLED");
  CHECK_EQ(aios_semaphore_locked(sem), 0);
  sem_acquire_now(sem);
  finish_worker(&c1, 0);
  finish_worker(&c2, AIOS_ECANCELLED);
  CHECK_EQ(aios_semaphore_unref(sem), 0);
  close_loop(loop);
}

/* test_acquire_fifo_order: each task acquires twice, holding over a sleep. */
static void test_semaphore_fifo_order(void) {
  aios_loop_t *loop = make_loop();
  aios_semaphore_t *sem = new_sem(loop, 1, 0);
  worker_t t[3];
  int i;

  for (i = 0; i < 3; i++) {
    worker_t w = {.name = NULL, .ops = {WAIT(b_sem_acquire, sem, "_1"), SLEEP(0.01), ACT(a_sem_release, sem, 0, NULL),
                         WAIT(b_sem_acquire, sem, "_2"), SLEEP(0.01), ACT(a_sem_release, sem, 0, NULL),
                         END()}};
    w.name = i == 0 ? "c1" : i == 1 ? "c2" : "c3";
    t[i] = w;
    spawn(loop, &t[i]);
  }
  CHECK_EQ(run_worker(loop, &t[2]), 0);
  CHECK_LOG("c1_1 c2_1 c3_1 c1_2 c2_2 c3_2");
  for (i = 0; i < 3; i++)
    finish_worker(&t[i], 0);
  CHECK_EQ(aios_semaphore_locked(sem), 0);
  CHECK_EQ(aios_semaphore_unref(sem), 0);
  close_loop(loop);
}

/* The holder of a semaphore sleeps 10 ms; meanwhile another task's step
 * runs for 30 ms, so the holder's timer is overdue when the loop next
 * waits. The holder must still wake up, release, and let the other in
 * (the same as test_acquire_fifo_order on a slow machine or under
 * valgrind, made deterministic). */
static int a_busy_30ms(void *o) {
  (void)o;
  test_busy_wait(0.03);
  return 0;
}

static void test_semaphore_holder_sleep_overdue(void) {
  aios_loop_t *loop = make_loop();
  aios_semaphore_t *sem = new_sem(loop, 1, 0);
  worker_t c1 = {.name = "c1", .ops = {WAIT(b_sem_acquire, sem, ".acq"), SLEEP(0.01),
                                       ACT(a_sem_release, sem, 0, ".rel"), END()}};
  worker_t c2 = {.name = "c2", .ops = {ACT(a_busy_30ms, NULL, 0, ".busy"), WAIT(b_sem_acquire, sem, ".acq"),
                                       ACT(a_sem_release, sem, 0, ".rel"), END()}};

  spawn(loop, &c1);
  spawn(loop, &c2);
  CHECK_EQ(run_worker(loop, &c2), 0);
  CHECK_LOG("c1.acq c2.busy c1.rel c2.acq c2.rel");
  finish_worker(&c1, 0);
  finish_worker(&c2, 0);
  CHECK_EQ(aios_semaphore_locked(sem), 0);
  CHECK_EQ(aios_semaphore_unref(sem), 0);
  close_loop(loop);
}

/* test_acquire_fifo_order_2. */
static void test_semaphore_fifo_order_2(void) {
  aios_loop_t *loop = make_loop();
  aios_semaphore_t *sem = new_sem(loop, 1, 0);
  worker_t t1 = {.name = "1", .ops = {WAIT(b_sem_acquire, sem, ""), END()}};
  worker_t t2 = {.name = "2", .ops = {WAIT(b_sem_acquire, sem, ""), ACT(a_sem_release, sem, 0, NULL),
                       WAIT(b_sem_acquire, sem, NULL), LOG("+4"), END()}};
  worker_t t3 = {.name = "3", .ops = {WAIT(b_sem_acquire, sem, ""), END()}};

  spawn(loop, &t1);
  spawn(loop, &t2);
  spawn(loop, &t3);
  run_once(loop);
  CHECK_EQ(aios_semaphore_release(sem), 0);
  CHECK_EQ(aios_semaphore_release(sem), 0);
  CHECK_EQ(run_worker(loop, &t2), 0);
  CHECK_EQ(run_worker(loop, &t3), 0);
  CHECK_LOG("1 2 3 2+4");
  finish_worker(&t1, 0);
  finish_worker(&t2, 0);
  finish_worker(&t3, 0);
  CHECK_EQ(aios_semaphore_unref(sem), 0);
  close_loop(loop);
}

/* test_acquire_fifo_order_3: a cancelled first waiter is skipped. */
static void test_semaphore_fifo_order_3(void) {
  aios_loop_t *loop = make_loop();
  aios_semaphore_t *sem = new_sem(loop, 0, 0);
  worker_t t[3];
  int i;

  for (i = 0; i < 3; i++) {
    worker_t w = {.name = NULL, .ops = {WAIT(b_sem_acquire, sem, ""), END()}};
    w.name = i == 0 ? "1" : i == 1 ? "2" : "3";
    t[i] = w;
    spawn(loop, &t[i]);
  }
  run_once(loop);
  CHECK_EQ(aios_task_cancel(t[0].task, NULL), 1);
  run_once(loop);
  CHECK_EQ(aios_semaphore_release(sem), 0);
  CHECK_EQ(aios_semaphore_release(sem), 0);
  CHECK_EQ(run_worker(loop, &t[2]), 0);
  CHECK_LOG("1!ECANCELLED 2 3");
  finish_worker(&t[0], AIOS_ECANCELLED);
  finish_worker(&t[1], 0);
  finish_worker(&t[2], 0);
  CHECK_EQ(aios_semaphore_unref(sem), 0);
  close_loop(loop);
}

/* test_acquire_fifo_order_4: a successful acquire wakes every waiter the
 * permits allow (they had to queue behind it); a task created meanwhile
 * comes after them. */
typedef struct spawner_s {
  aios_loop_t *loop;
  worker_t *w;
} spawner_t;

static int a_spawn(void *o) {
  spawner_t *s = (spawner_t *)o;
  spawn(s->loop, s->w);
  return 0;
}

static void test_semaphore_fifo_order_4(void) {
  aios_loop_t *loop = make_loop();
  aios_semaphore_t *sem = new_sem(loop, 0, 0);
  worker_t t4 = {.name = "4", .ops = {LOG(""), END()}};
  spawner_t sp;
  worker_t t1 = {.name = "1", .ops = {WAIT(b_sem_acquire, sem, NULL), ACT(a_spawn, &sp, 0, NULL), LOG(""), END()}};
  worker_t t2 = {.name = "2", .ops = {ACT(a_sem_release, sem, 0, NULL), ACT(a_sem_release, sem, 0, NULL),
                       ACT(a_sem_release, sem, 0, NULL), ACT(a_sem_locked, sem, 1, NULL),
                       WAIT(b_sem_acquire, sem, ""), END()}};
  worker_t t3 = {.name = "3", .ops = {WAIT(b_sem_acquire, sem, NULL), ACT(a_sem_locked, sem, 1, NULL), LOG(""), END()}};

  sp.loop = loop;
  sp.w = &t4;
  spawn(loop, &t1);
  spawn(loop, &t2);
  spawn(loop, &t3);
  run_once(loop);
  CHECK_EQ(aios_semaphore_locked(sem), 1);
  run_once(loop);
  CHECK_EQ(run_worker(loop, &t1), 0);
  CHECK_EQ(run_worker(loop, &t2), 0);
  CHECK_EQ(run_worker(loop, &t3), 0);
  CHECK(t4.task != NULL);
  CHECK_EQ(run_worker(loop, &t4), 0);
  CHECK_LOG("1 2 3 4");
  finish_worker(&t1, 0);
  finish_worker(&t2, 0);
  finish_worker(&t3, 0);
  finish_worker(&t4, 0);
  CHECK_EQ(aios_semaphore_unref(sem), 0);
  close_loop(loop);
}

/* ======================================================================== */
/* Barrier                                                                    */

static aios_barrier_t *new_barrier(aios_loop_t *loop, unsigned parties) {
  aios_barrier_t *b = NULL;
  CHECK_EQ(aios_barrier_new(loop, parties, &b), 0);
  CHECK(b != NULL);
  CHECK_EQ(aios_barrier_parties(b), (int)parties);
  CHECK_EQ(aios_barrier_n_waiting(b), 0);
  CHECK_EQ(aios_barrier_broken(b), 0);
  return b;
}

static const char *const NAMES[] = {"t0", "t1", "t2", "t3", "t4", "t5", "t6", "t7"};

/* test_barrier_parties. */
static void test_barrier_parties(void) {
  aios_loop_t *loop = make_loop();
  aios_barrier_t *b = NULL;
  CHECK_EQ(aios_barrier_new(loop, 0, &b), AIOS_EINVAL);
  CHECK(b == NULL);
  b = new_barrier(loop, 5);
  CHECK_EQ(aios_barrier_unref(b), 0);
  close_loop(loop);
}

/* test_filling_one_task, test_filling_one_task_twice: one party passes at
 * once, with index 0. */
static void test_barrier_one_party(void) {
  aios_loop_t *loop = make_loop();
  aios_barrier_t *b = new_barrier(loop, 1);
  aios_future_t *f = NULL;
  void *v = (void *)1;
  int i;

  for (i = 0; i < 2; i++) {
    CHECK_EQ(aios_barrier_wait(b, &f), 0);
    CHECK_EQ(aios_future_done(f), 1);
    CHECK_EQ(aios_future_result(f, &v), 0);
    CHECK_EQ((intptr_t)v, 0);
    CHECK_EQ(aios_future_unref(f), 0);
    CHECK_EQ(aios_barrier_n_waiting(b), 0);
    CHECK_EQ(aios_barrier_broken(b), 0);
  }
  CHECK_EQ(aios_barrier_unref(b), 0);
  close_loop(loop);
}

/* test_filling_task_by_task: n_waiting counts arrivals; the parties get
 * the distinct indexes 0..n-1, in arrival order. */
static void test_barrier_filling_task_by_task(void) {
  aios_loop_t *loop = make_loop();
  aios_barrier_t *b = new_barrier(loop, 3);
  worker_t t[3];
  int i;

  for (i = 0; i < 3; i++) {
    worker_t w = {.name = NULL, .ops = {WAIT_SHOW(b_barrier_wait, b, "="), END()}};
    w.name = NAMES[i];
    t[i] = w;
  }
  spawn(loop, &t[0]);
  run_once(loop);
  CHECK_EQ(aios_barrier_n_waiting(b), 1);
  spawn(loop, &t[1]);
  run_once(loop);
  CHECK_EQ(aios_barrier_n_waiting(b), 2);
  CHECK_LOG("");
  spawn(loop, &t[2]);
  run_once(loop);
  CHECK_EQ(run_worker(loop, &t[0]), 0);
  CHECK_EQ(run_worker(loop, &t[1]), 0);
  CHECK_LOG("t2=2 t0=0 t1=1");
  CHECK_EQ(t[2].immediate, 1); /* the last arrival does not wait */
  for (i = 0; i < 3; i++)
    finish_worker_value(&t[i], i);
  CHECK_EQ(aios_barrier_n_waiting(b), 0);
  CHECK_EQ(aios_barrier_broken(b), 0);
  CHECK_EQ(aios_barrier_unref(b), 0);
  close_loop(loop);
}

/* test_filling_tasks_wait_twice / check_return_value: five tasks pass the
 * barrier twice; nobody passes the second time before all passed the first. */
static void test_barrier_wait_twice(void) {
  aios_loop_t *loop = make_loop();
  aios_barrier_t *b = new_barrier(loop, 5);
  worker_t t[5];
  static const intptr_t second[5] = {2, 3, 4, 0, 1}; /* CPython 3.13's */
  int i;

  for (i = 0; i < 5; i++) {
    worker_t w = {.name = NULL, .ops = {WAIT(b_barrier_wait, b, ".a"), WAIT(b_barrier_wait, b, ".b"), END()}};
    w.name = NAMES[i];
    t[i] = w;
    spawn(loop, &t[i]);
  }
  for (i = 0; i < 5; i++)
    CHECK_EQ(run_worker(loop, &t[i]), 0);
  CHECK_LOG("t4.a t0.a t1.a t2.a t3.a t2.b t3.b t4.b t0.b t1.b");
  for (i = 0; i < 5; i++)
    finish_worker_value(&t[i], second[i]);
  CHECK_EQ(aios_barrier_n_waiting(b), 0);
  CHECK_EQ(aios_barrier_broken(b), 0);
  CHECK_EQ(aios_barrier_unref(b), 0);
  close_loop(loop);
}

/* test_filling_tasks_cancel_one: a cancelled waiter leaves the count. */
static void test_barrier_cancel_one(void) {
  aios_loop_t *loop = make_loop();
  aios_barrier_t *b = new_barrier(loop, 3);
  worker_t t[4];
  int i;

  for (i = 0; i < 4; i++) {
    worker_t w = {.name = NULL, .ops = {WAIT_SHOW(b_barrier_wait, b, "="), END()}};
    w.name = NAMES[i + 1];
    t[i] = w;
  }
  spawn(loop, &t[0]);
  run_once(loop);
  CHECK_EQ(aios_barrier_n_waiting(b), 1);
  spawn(loop, &t[1]);
  run_once(loop);
  CHECK_EQ(aios_barrier_n_waiting(b), 2);
  CHECK_EQ(aios_task_cancel(t[0].task, NULL), 1);
  run_once(loop);
  CHECK_EQ(aios_barrier_n_waiting(b), 1);
  CHECK_EQ(run_worker(loop, &t[0]), AIOS_ECANCELLED);
  spawn(loop, &t[2]);
  run_once(loop);
  CHECK_EQ(aios_barrier_n_waiting(b), 2);
  spawn(loop, &t[3]);
  for (i = 1; i < 4; i++)
    CHECK_EQ(run_worker(loop, &t[i]), 0);
  /* Indexes are the count at arrival, as in CPython: t1 left, so t3
   * arrives at the count t2 had. */
  CHECK_LOG("t1!ECANCELLED t4=2 t2=1 t3=1");
  finish_worker(&t[0], AIOS_ECANCELLED);
  finish_worker_value(&t[1], 1);
  finish_worker_value(&t[2], 1);
  finish_worker_value(&t[3], 2);
  CHECK_EQ(aios_barrier_n_waiting(b), 0);
  CHECK_EQ(aios_barrier_broken(b), 0);
  CHECK_EQ(aios_barrier_unref(b), 0);
  close_loop(loop);
}

/* test_reset_barrier: reset of an empty barrier. */
static void test_barrier_reset_empty(void) {
  aios_loop_t *loop = make_loop();
  aios_barrier_t *b = new_barrier(loop, 1);
  aios_future_t *f = NULL;

  CHECK_EQ(aios_barrier_reset(b, &f), 0);
  CHECK(f != NULL);
  CHECK_EQ(run_bounded(loop, f), 0);
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(aios_barrier_n_waiting(b), 0);
  CHECK_EQ(aios_barrier_broken(b), 0);
  CHECK_EQ(aios_barrier_unref(b), 0);
  close_loop(loop);
}

/* test_reset_barrier_while_tasks_waiting: the waiters fail with
 * AIOS_EBROKENBARRIER; the barrier is usable again afterwards. */
static void test_barrier_reset_while_waiting(void) {
  aios_loop_t *loop = make_loop();
  aios_barrier_t *b = new_barrier(loop, 5);
  worker_t t[4], r = {.name = "R", .ops = {WAIT(b_barrier_reset, NULL, ".reset"), END()}};
  worker_t again[5];
  int i;

  r.ops[0].obj = b;
  for (i = 0; i < 4; i++) {
    worker_t w = {.name = NULL, .ops = {WAIT_CATCH(b_barrier_wait, b, ".passed"), END()}};
    w.name = NAMES[i];
    t[i] = w;
    spawn(loop, &t[i]);
  }
  run_once(loop);
  CHECK_EQ(aios_barrier_n_waiting(b), 4);
  spawn(loop, &r);
  for (i = 0; i < 4; i++)
    CHECK_EQ(run_worker(loop, &t[i]), 0);
  CHECK_EQ(run_worker(loop, &r), 0);
  CHECK_LOG("R.reset t0!EBROKENBARRIER t1!EBROKENBARRIER t2!EBROKENBARRIER t3!EBROKENBARRIER");
  for (i = 0; i < 4; i++) {
    CHECK_EQ(t[i].status, AIOS_EBROKENBARRIER);
    finish_worker(&t[i], 0);
  }
  finish_worker(&r, 0);
  CHECK_EQ(aios_barrier_n_waiting(b), 0);
  CHECK_EQ(aios_barrier_broken(b), 0);

  /* A full round passes again. */
  log_reset();
  for (i = 0; i < 5; i++) {
    worker_t w = {.name = NULL, .ops = {WAIT_SHOW(b_barrier_wait, b, "="), END()}};
    w.name = NAMES[i];
    again[i] = w;
    spawn(loop, &again[i]);
  }
  for (i = 0; i < 5; i++)
    CHECK_EQ(run_worker(loop, &again[i]), 0);
  CHECK_LOG("t4=4 t0=0 t1=1 t2=2 t3=3");
  for (i = 0; i < 5; i++)
    finish_worker_value(&again[i], i);
  CHECK_EQ(aios_barrier_n_waiting(b), 0);
  CHECK_EQ(aios_barrier_broken(b), 0);
  CHECK_EQ(aios_barrier_unref(b), 0);
  close_loop(loop);
}

/* test_reset_barrier_while_tasks_waiting_and_waiting_again: the reset
 * waiters wait again, and a fifth task completes the new round. */
static void test_barrier_reset_then_wait_again(void) {
  aios_loop_t *loop = make_loop();
  aios_barrier_t *b = new_barrier(loop, 5);
  worker_t t[4], last = {.name = "t4", .ops = {WAIT_SHOW(b_barrier_wait, NULL, ".b="), END()}};
  worker_t r = {.name = "R", .ops = {WAIT(b_barrier_reset, NULL, NULL), END()}};
  static const intptr_t second[4] = {2, 3, 4, 0}; /* CPython 3.13's */
  int i;

  last.ops[0].obj = b;
  r.ops[0].obj = b;
  for (i = 0; i < 4; i++) {
    worker_t w = {.name = NULL, .ops = {WAIT_CATCH(b_barrier_wait, b, ".a"), WAIT_SHOW(b_barrier_wait, b, ".b="), END()}};
    w.name = NAMES[i];
    t[i] = w;
    spawn(loop, &t[i]);
  }
  run_once(loop);
  spawn(loop, &r);
  run_once(loop);
  CHECK_EQ(is_done(&r), 1);
  CHECK_EQ(r.immediate, 1);
  spawn(loop, &last);
  for (i = 0; i < 4; i++)
    CHECK_EQ(run_worker(loop, &t[i]), 0);
  CHECK_EQ(run_worker(loop, &last), 0);
  CHECK_LOG("t0!EBROKENBARRIER t1!EBROKENBARRIER t2!EBROKENBARRIER t3!EBROKENBARRIER "
            "t2.b=4 t3.b=0 t4.b=1 t0.b=2 t1.b=3");
  for (i = 0; i < 4; i++)
    finish_worker_value(&t[i], second[i]);
  finish_worker_value(&last, 1);
  finish_worker(&r, 0);
  CHECK_EQ(aios_barrier_n_waiting(b), 0);
  CHECK_EQ(aios_barrier_broken(b), 0);
  CHECK_EQ(aios_barrier_unref(b), 0);
  close_loop(loop);
}

/* test_abort_barrier, plus waiters: abort breaks the barrier for good:
 * waiters fail, later waits fail at once, broken() is 1. */
static void test_barrier_abort(void) {
  aios_loop_t *loop = make_loop();
  aios_barrier_t *b = new_barrier(loop, 3);
  worker_t t[2], late = {.name = "late", .ops = {WAIT(b_barrier_wait, NULL, ".passed"), END()}};
  aios_future_t *f = NULL;
  int i;

  late.ops[0].obj = b;
  for (i = 0; i < 2; i++) {
    worker_t w = {.name = NULL, .ops = {WAIT(b_barrier_wait, b, ".passed"), END()}};
    w.name = NAMES[i];
    t[i] = w;
    spawn(loop, &t[i]);
  }
  run_once(loop);
  CHECK_EQ(aios_barrier_n_waiting(b), 2);
  CHECK_EQ(aios_barrier_abort(b, &f), 0);
  CHECK_EQ(run_bounded(loop, f), 0);
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(aios_barrier_broken(b), 1);
  for (i = 0; i < 2; i++)
    CHECK_EQ(run_worker(loop, &t[i]), AIOS_EBROKENBARRIER);
  CHECK_EQ(aios_barrier_n_waiting(b), 0);
  CHECK_LOG("t0!EBROKENBARRIER t1!EBROKENBARRIER");

  spawn(loop, &late);
  CHECK_EQ(run_worker(loop, &late), AIOS_EBROKENBARRIER);
  CHECK_EQ(late.immediate, 1);
  CHECK_LOG("t0!EBROKENBARRIER t1!EBROKENBARRIER late!EBROKENBARRIER");
  CHECK_EQ(aios_barrier_wait(b, &f), 0);
  CHECK_EQ(aios_future_done(f), 1);
  CHECK_EQ(aios_future_result(f, NULL), AIOS_EBROKENBARRIER);
  {
    aios_error_t *err = NULL;
    CHECK_EQ(aios_future_error(f, &err), 0);
    CHECK_EQ(aios_error_code(err), AIOS_EBROKENBARRIER);
    CHECK_EQ(aios_error_kind(err), AIOS_ERROR_BROKEN_BARRIER);
    CHECK_EQ(aios_error_unref(err), 0);
  }
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(aios_barrier_broken(b), 1);
  CHECK_EQ(aios_barrier_n_waiting(b), 0);
  for (i = 0; i < 2; i++)
    finish_worker(&t[i], AIOS_EBROKENBARRIER);
  finish_worker(&late, AIOS_EBROKENBARRIER);
  CHECK_EQ(aios_barrier_unref(b), 0);
  close_loop(loop);
}

/* test_abort_barrier_when_exception_then_resetting, simplified: an aborted
 * barrier that is reset with nobody in it works again. */
static void test_barrier_abort_then_reset(void) {
  aios_loop_t *loop = make_loop();
  aios_barrier_t *b = new_barrier(loop, 2);
  aios_future_t *f = NULL;
  worker_t t[2];
  int i;

  CHECK_EQ(aios_barrier_abort(b, &f), 0);
  CHECK_EQ(run_bounded(loop, f), 0);
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(aios_barrier_broken(b), 1);
  CHECK_EQ(aios_barrier_reset(b, &f), 0);
  CHECK_EQ(run_bounded(loop, f), 0);
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(aios_barrier_broken(b), 0);
  for (i = 0; i < 2; i++) {
    worker_t w = {.name = NULL, .ops = {WAIT_SHOW(b_barrier_wait, b, "="), END()}};
    w.name = NAMES[i];
    t[i] = w;
    spawn(loop, &t[i]);
  }
  for (i = 0; i < 2; i++)
    CHECK_EQ(run_worker(loop, &t[i]), 0);
  CHECK_LOG("t1=1 t0=0");
  finish_worker_value(&t[0], 0);
  finish_worker_value(&t[1], 1);
  CHECK_EQ(aios_barrier_unref(b), 0);
  close_loop(loop);
}

/* test_abort_barrier_when_tasks_half_draining_half_blocking and
 * test_reset_barrier_while_tasks_draining need per-task decisions: a
 * small custom task. Five tasks wait; the 3rd, 4th and 5th to get through
 * (count > 2) abort, the others wait again and fail. */
typedef struct drain_s {
  aios_barrier_t *b;
  int count;
  int results1; /* broken on the first wait */
  int results2; /* broken on the second wait */
} drain_t;

typedef struct drainer_s {
  drain_t *d;
  int phase;
} drainer_t;

static int drainer_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  drainer_t *me = (drainer_t *)arg;
  drain_t *d = me->d;
  aios_future_t *held = NULL; /* a future that was done at once */
  int rc, result = 1;

  for (;;) {
    aios_future_t *next = NULL;
    switch (me->phase) {
    case 0: /* await barrier.wait() */
      CHECK_EQ(aios_barrier_wait(d->b, &next), 0);
      me->phase = 1;
      break;
    case 1:
      rc = aios_future_result(awaited, NULL);
      if (rc == AIOS_EBROKENBARRIER) {
        d->results1++; /* caught: tasks waiting to drain */
        result = 0;
        break;
      }
      CHECK_EQ(rc, 0);
      d->count++;
      if (d->count > 2) {
        CHECK_EQ(aios_barrier_abort(d->b, &next), 0);
        me->phase = 3;
      } else {
        CHECK_EQ(aios_barrier_wait(d->b, &next), 0);
        me->phase = 2;
      }
      break;
    case 2:
      CHECK_EQ(aios_future_result(awaited, NULL), AIOS_EBROKENBARRIER);
      d->results2++; /* caught: blocked tasks (already drained) */
      result = 0;
      break;
    case 3:
      CHECK_EQ(aios_future_result(awaited, NULL), 0);
      result = 0;
      break;
    default:
      CHECK(!"bad phase");
    }
    if (held)
      CHECK_EQ(aios_future_unref(held), 0);
    held = NULL;
    if (result == 0)
      return aios_task_return(task, NULL, NULL);
    if (aios_future_done(next) == 1) {
      /* Goes on at once, as a coroutine would. */
      held = next;
      awaited = next;
      continue;
    }
    rc = aios_task_await(task, next);
    CHECK_EQ(aios_future_unref(next), 0);
    return rc;
  }
}

static void test_barrier_abort_half_draining_half_blocking(void) {
  aios_loop_t *loop = make_loop();
  drain_t d;
  drainer_t me[5];
  aios_task_t *t[5];
  int i;

  memset(&d, 0, sizeof d);
  d.b = new_barrier(loop, 5);
  for (i = 0; i < 5; i++) {
    me[i].d = &d;
    me[i].phase = 0;
    CHECK_EQ(aios_task_new(loop, drainer_step, &me[i], NULL, &t[i]), 0);
  }
  for (i = 0; i < 5; i++)
    CHECK_EQ(run_bounded(loop, aios_task_as_future(t[i])), 0);
  CHECK_EQ(aios_barrier_broken(d.b), 1);
  CHECK_EQ(d.results1, 2);
  CHECK_EQ(d.results2, 2);
  CHECK_EQ(aios_barrier_n_waiting(d.b), 0);
  for (i = 0; i < 5; i++)
    CHECK_EQ(aios_task_unref(t[i]), 0);
  CHECK_EQ(aios_barrier_unref(d.b), 0);
  close_loop(loop);
}

/* ======================================================================== */
/* Lifetime                                                                   */

/* Every primitive counts as a live PRIMITIVE object until its last
 * reference goes, and a reference may outlive the loop's closing. */
static void test_primitives_live_objects(void) {
  long p0 = live_count(AIOS_OBJECT_PRIMITIVE);
  aios_loop_t *loop = make_loop();
  aios_lock_t *lock = new_lock(loop);
  aios_event_t *ev = new_event(loop);
  aios_condition_t *cond = new_cond(loop, NULL);
  aios_semaphore_t *sem = new_sem(loop, 1, 0);
  aios_barrier_t *b = new_barrier(loop, 2);

  CHECK(live_count(AIOS_OBJECT_PRIMITIVE) >= p0 + 5);
  CHECK_EQ(aios_lock_ref(lock), 0);
  CHECK_EQ(aios_lock_unref(lock), 0);
  CHECK_EQ(aios_lock_locked(lock), 0);
  CHECK_EQ(aios_lock_unref(lock), 0);
  CHECK_EQ(aios_lock_locked(lock), AIOS_EBADHANDLE);
  CHECK_EQ(aios_event_unref(ev), 0);
  CHECK_EQ(aios_semaphore_unref(sem), 0);
  close_loop(loop);
  CHECK_EQ(aios_condition_unref(cond), 0);
  CHECK_EQ(aios_barrier_unref(b), 0);
  CHECK_EQ(live_count(AIOS_OBJECT_PRIMITIVE), p0);
}

/* Waiters left pending when everything is dropped: the test drops its
 * references to the lock and the pending acquire, closes the loop: every
 * object must still be freed (no reference cycle between a lock, its
 * waiters and their operations). */
static void test_lock_dropped_with_pending_waiter(void) {
  aios_loop_t *loop = make_loop();
  aios_lock_t *lock = new_lock(loop);
  aios_future_t *f = NULL;

  lock_acquire_now(lock);
  CHECK_EQ(aios_lock_acquire(lock, &f), 0);
  CHECK_EQ(aios_future_done(f), 0);
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(aios_lock_unref(lock), 0);
  close_loop(loop);
}

TEST_MAIN(TEST_ENTRY(test_lock_acquire_free_and_release_unlocked),
          TEST_ENTRY(test_lock_fifo),
          TEST_ENTRY(test_lock_released_lock_is_not_stolen),
          TEST_ENTRY(test_lock_cancelled_waiter_never_holds),
          TEST_ENTRY(test_lock_cancel_acquire_future),
          TEST_ENTRY(test_lock_cancel_race),
          TEST_ENTRY(test_lock_cancel_then_release_same_callback),
          TEST_ENTRY(test_lock_release_then_cancel_same_callback),
          TEST_ENTRY(test_lock_cancel_release_race),
          TEST_ENTRY(test_lock_finished_waiter_cancelled),
          TEST_ENTRY(test_lock_fifo_under_run),
          TEST_ENTRY(test_event_set_wakes_all),
          TEST_ENTRY(test_event_wait_on_set_and_clear),
          TEST_ENTRY(test_event_clear_with_waiters),
          TEST_ENTRY(test_event_cancelled_waiter),
          TEST_ENTRY(test_event_set_then_cancel_same_callback),
          TEST_ENTRY(test_condition_unacquired),
          TEST_ENTRY(test_condition_wait_notify_fifo),
          TEST_ENTRY(test_condition_notify),
          TEST_ENTRY(test_condition_notify_all),
          TEST_ENTRY(test_condition_wait_cancel),
          TEST_ENTRY(test_condition_wait_cancel_reacquires_contested),
          TEST_ENTRY(test_condition_wait_cancel_contested),
          TEST_ENTRY(test_condition_wait_cancel_after_notify),
          TEST_ENTRY(test_condition_wait_for),
          TEST_ENTRY(test_condition_wait_for_predicate_error),
          TEST_ENTRY(test_condition_explicit_lock),
          TEST_ENTRY(test_condition_explicit_lock_waiter),
          TEST_ENTRY(test_condition_lock_of_other_loop),
          TEST_ENTRY(test_condition_cancelled_wakeup),
          TEST_ENTRY(test_condition_cancelled_wakeup_relock),
          TEST_ENTRY(test_semaphore_value_and_locked),
          TEST_ENTRY(test_bounded_semaphore),
          TEST_ENTRY(test_semaphore_acquire),
          TEST_ENTRY(test_semaphore_acquire_cancel),
          TEST_ENTRY(test_semaphore_cancel_before_awoken),
          TEST_ENTRY(test_semaphore_acquire_hang),
          TEST_ENTRY(test_semaphore_woken_waiter_cancelled),
          TEST_ENTRY(test_bounded_semaphore_woken_waiter_cancelled),
          TEST_ENTRY(test_semaphore_acquire_no_hang),
          TEST_ENTRY(test_semaphore_fifo_order),
          TEST_ENTRY(test_semaphore_holder_sleep_overdue),
          TEST_ENTRY(test_semaphore_fifo_order_2),
          TEST_ENTRY(test_semaphore_fifo_order_3),
          TEST_ENTRY(test_semaphore_fifo_order_4),
          TEST_ENTRY(test_barrier_parties),
          TEST_ENTRY(test_barrier_one_party),
          TEST_ENTRY(test_barrier_filling_task_by_task),
          TEST_ENTRY(test_barrier_wait_twice),
          TEST_ENTRY(test_barrier_cancel_one),
          TEST_ENTRY(test_barrier_reset_empty),
          TEST_ENTRY(test_barrier_reset_while_waiting),
          TEST_ENTRY(test_barrier_reset_then_wait_again),
          TEST_ENTRY(test_barrier_abort),
          TEST_ENTRY(test_barrier_abort_then_reset),
          TEST_ENTRY(test_barrier_abort_half_draining_half_blocking),
          TEST_ENTRY(test_primitives_live_objects),
          TEST_ENTRY(test_lock_dropped_with_pending_waiter))
