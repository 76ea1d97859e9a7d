/*
 * test_hardening.c: inputs a hostile caller would try, each of which once
 * crashed the process or leaked: times far off or not numbers, sizes that
 * do not fit, await cycles, callbacks that drop the last reference to the
 * object calling them, counters driven past their range, and loops left
 * with work that can never finish.
 */
#include "test_util.h"

#include <float.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>

static int g_called;

static void count_cb(void *arg) {
  (void)arg;
  g_called++;
}

/* Runs `loop` until `future` is done, under a watchdog the test framework
 * sets (a hang is a failure). */
static int run_until(aios_loop_t *loop, aios_future_t *future) {
  return aios_loop_run_until_complete(loop, future);
}

/* ------------------------------------------------------------------------ */
/* Times                                                                      */

static void stop_cb(void *arg) { CHECK_EQ(aios_loop_stop((aios_loop_t *)arg), 0); }

static void *stop_soon_main(void *arg) {
  test_sleep(0.005);
  CHECK_EQ(aios_loop_call_soon_threadsafe((aios_loop_t *)arg, stop_cb, arg, NULL, NULL), 0);
  return NULL;
}

/* Runs the loop until another thread stops it, 5 ms from now: the loop
 * blocks in its poll with its wake-up timer armed for its earliest
 * deadline. */
static void run_until_stopped_from_a_thread(aios_loop_t *loop) {
  pthread_t thread;
  CHECK_EQ(pthread_create(&thread, NULL, stop_soon_main, loop), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_EQ(pthread_join(thread, NULL), 0);
}

/* A deadline beyond what libuv can wait for is only "not before the
 * others": scheduling it works, the loop waits with it as its earliest
 * deadline, and goes on running what is due. */
static void test_far_deadlines_do_not_trap(void) {
  static const double delays[] = {1e300, 2e16, 1e19, DBL_MAX, INFINITY};
  size_t i;
  g_called = 0;
  for (i = 0; i < 5; i++) {
    aios_loop_t *loop = make_loop();
    aios_handle_t *handle = NULL, *at_max = NULL;
    double when = 0;
    CHECK_EQ(aios_loop_call_later(loop, delays[i], count_cb, NULL, NULL, &handle), 0);
    run_until_stopped_from_a_thread(loop);
    CHECK_EQ(aios_loop_call_at(loop, DBL_MAX, count_cb, NULL, NULL, &at_max), 0);
    run_until_stopped_from_a_thread(loop);
    CHECK_EQ(g_called, 0);
    CHECK_EQ(aios_handle_when(handle, &when), 0);
    CHECK(when > 1e15);
    CHECK_EQ(aios_handle_unref(handle), 0);
    CHECK_EQ(aios_handle_unref(at_max), 0);
    close_loop(loop);
  }
}

/* A deadline at -infinity is due at once, as any deadline in the past: the
 * loop must not wait for it as if it never came. */
static void test_minus_infinity_is_due_at_once(void) {
  aios_loop_t *loop = make_loop();
  aios_handle_t *at = NULL;
  g_called = 0;
  CHECK_EQ(aios_loop_call_later(loop, -INFINITY, stop_cb, loop, NULL, NULL), 0);
  CHECK_EQ(aios_loop_call_at(loop, -INFINITY, count_cb, NULL, NULL, &at), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_EQ(g_called, 1);
  CHECK_EQ(aios_handle_unref(at), 0);
  close_loop(loop);
}

/* sleep(INFINITY) once another timer has fired: never due, never a trap. */
static void test_infinite_sleep_after_a_timer(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *first = NULL, *never = NULL;
  CHECK_EQ(aios_sleep(loop, 0.001, NULL, NULL, &first), 0);
  CHECK_EQ(run_until(loop, first), 0);
  CHECK_EQ(aios_sleep(loop, INFINITY, NULL, NULL, &never), 0);
  run_until_stopped_from_a_thread(loop);
  CHECK_EQ(aios_future_done(never), 0);
  CHECK_EQ(aios_future_cancel(never, NULL), 1);
  run_once(loop);
  CHECK_EQ(aios_future_unref(first), 0);
  CHECK_EQ(aios_future_unref(never), 0);
  close_loop(loop);
}

/* Every call that takes a time refuses NaN, and nothing is left behind. */
static void test_nan_times_are_refused(void) {
  aios_loop_t *loop = make_loop();
  aios_handle_t *h = NULL;
  aios_future_t *f = NULL, *pending = NULL, *w = NULL;
  aios_timeout_t *t = NULL;
  aios_as_completed_t *ac = NULL;
  int freed = 0;
  g_called = 0;
  CHECK_EQ(aios_loop_call_later(loop, NAN, count_cb, NULL, NULL, &h), AIOS_EINVAL);
  CHECK_EQ(aios_loop_call_at(loop, NAN, count_cb, NULL, NULL, &h), AIOS_EINVAL);
  CHECK_EQ(aios_loop_call_later(loop, NAN, count_cb, NULL, NULL, NULL), AIOS_EINVAL);
  CHECK(h == NULL);
  CHECK_EQ(aios_sleep(loop, NAN, &freed, count_destructor, &f), AIOS_EINVAL);
  CHECK_EQ(freed, 0); /* on failure the caller keeps the value */
  CHECK(f == NULL);
  CHECK_EQ(aios_timeout_at(loop, NAN, &t), AIOS_EINVAL);
  CHECK_EQ(aios_loop_set_slow_callback_duration(loop, NAN), AIOS_EINVAL);
  CHECK_EQ(aios_future_new(loop, &pending), 0);
  CHECK_EQ(aios_wait(loop, &pending, 1, NAN, AIOS_ALL_COMPLETED, &w), AIOS_EINVAL);
  CHECK_EQ(aios_as_completed_new(loop, &pending, 1, NAN, &ac), AIOS_EINVAL);
  CHECK_EQ(aios_wait_for(pending, NAN, &w), AIOS_EINVAL);
  CHECK(w == NULL && ac == NULL && t == NULL);
  run_once(loop);
  CHECK_EQ(g_called, 0);
  CHECK_EQ(aios_future_unref(pending), 0);
  close_loop(loop);
}

/* The combinators' timeouts take far-off values too. */
static void test_far_timeouts_of_combinators(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *pending = NULL, *w = NULL, *wf = NULL, *soon = NULL;
  aios_as_completed_t *ac = NULL;
  aios_timeout_t *t = NULL;
  CHECK_EQ(aios_future_new(loop, &pending), 0);
  CHECK_EQ(aios_wait(loop, &pending, 1, 1e300, AIOS_ALL_COMPLETED, &w), 0);
  CHECK_EQ(aios_as_completed_new(loop, &pending, 1, 2e16, &ac), 0);
  CHECK_EQ(aios_wait_for(pending, DBL_MAX, &wf), 0);
  CHECK_EQ(aios_timeout_at(loop, 1e300, &t), 0);
  run_until_stopped_from_a_thread(loop);
  CHECK_EQ(aios_sleep(loop, 0.001, NULL, NULL, &soon), 0);
  CHECK_EQ(run_until(loop, soon), 0);
  CHECK_EQ(aios_future_done(w), 0);
  CHECK_EQ(aios_future_done(wf), 0);
  CHECK_EQ(aios_future_set_result(pending, NULL, NULL), 0);
  CHECK_EQ(run_until(loop, wf), 0);
  CHECK_EQ(run_until(loop, w), 0);
  CHECK_EQ(aios_as_completed_unref(ac), 0);
  CHECK_EQ(aios_timeout_unref(t), 0);
  CHECK_EQ(aios_future_unref(w), 0);
  CHECK_EQ(aios_future_unref(wf), 0);
  CHECK_EQ(aios_future_unref(soon), 0);
  CHECK_EQ(aios_future_unref(pending), 0);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Sizes and counters                                                         */

static int idle_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  (void)awaited;
  (void)arg;
  return aios_task_return(task, NULL, NULL);
}

/* A capacity that does not fit a signed size is only a large buffer. */
static void test_all_tasks_huge_capacity(void) {
  aios_loop_t *loop = make_loop();
  aios_task_t *task = NULL, *got[2] = {NULL, NULL};
  CHECK_EQ(aios_task_new(loop, idle_step, NULL, NULL, &task), 0);
  CHECK_EQ(aios_all_tasks(loop, got, SIZE_MAX), 1);
  CHECK_PTR_EQ(got[0], task);
  CHECK_EQ(aios_task_unref(got[0]), 0);
  CHECK_EQ(aios_all_tasks(loop, got, (size_t)1 << 63), 1);
  CHECK_EQ(aios_task_unref(got[0]), 0);
  CHECK_EQ(aios_all_tasks(loop, NULL, SIZE_MAX), AIOS_EINVAL);
  CHECK_EQ(run_until(loop, aios_task_as_future(task)), 0);
  CHECK_EQ(aios_task_unref(task), 0);
  close_loop(loop);
}

/* Counts and indexes that do not fit are refused. */
static void test_sizes_out_of_range(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = NULL, *g = NULL;
  aios_barrier_t *b = NULL;
  aios_error_t *e = NULL, *member = NULL;
  CHECK_EQ(aios_barrier_new(loop, UINT_MAX, &b), AIOS_EINVAL);
  CHECK_EQ(aios_barrier_new(loop, (unsigned)INT_MAX + 1u, &b), AIOS_EINVAL);
  CHECK(b == NULL);
  CHECK_EQ(aios_barrier_new(loop, INT_MAX, &b), 0);
  CHECK_EQ(aios_barrier_parties(b), INT_MAX);
  CHECK_EQ(aios_barrier_unref(b), 0);
  CHECK_EQ(aios_future_new(loop, &f), 0);
  CHECK_EQ(aios_gather(loop, &f, SIZE_MAX, 0, &g), AIOS_EINVAL);
  CHECK_EQ(aios_gather(loop, &f, (size_t)1 << 63, 0, &g), AIOS_EINVAL);
  CHECK(g == NULL);
  CHECK_EQ(aios_error_new(AIOS_EINVAL, NULL, &e), 0);
  CHECK_EQ(aios_error_group_get(e, SIZE_MAX, &member), AIOS_EINVAL);
  CHECK(member == NULL);
  CHECK_EQ(aios_error_unref(e), 0);
  CHECK_EQ(aios_future_unref(f), 0);
  close_loop(loop);
}

static int wait_forever_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  aios_future_t *never = arg;
  if (awaited == NULL) return aios_task_await(task, never);
  return aios_future_cancelled(awaited) ? AIOS_ECANCELLED : aios_task_return(task, NULL, NULL);
}

/* Cancelling one task more often than an int counts saturates the count.
 * 2^31 calls take half a minute natively, hours under valgrind: `make test`
 * runs this one natively (AIOS_TEST_LONG=1). */
static void test_cancel_count_saturates(void) {
  aios_loop_t *loop;
  aios_future_t *never = NULL;
  aios_task_t *task = NULL;
  long long i;
  if (under_valgrind() || getenv("AIOS_TEST_LONG") == NULL) {
    printf("# skipped: runs natively with AIOS_TEST_LONG=1\n");
    return;
  }
  loop = make_loop();
  CHECK_EQ(aios_future_new(loop, &never), 0);
  CHECK_EQ(aios_task_new(loop, wait_forever_step, never, NULL, &task), 0);
  run_once(loop); /* the task awaits `never` */
  CHECK_EQ(aios_future_cancel(never, NULL), 1);
  /* The cancelled waiter stays: later requests only count. */
  for (i = 0; i < ((long long)1 << 31) + 5; i++) aios_task_cancel(task, NULL);
  CHECK_EQ(aios_task_cancelling(task), INT_MAX);
  CHECK_EQ(aios_task_uncancel(task), INT_MAX - 1);
  CHECK_EQ(run_until(loop, aios_task_as_future(task)), AIOS_ECANCELLED);
  CHECK_EQ(aios_task_unref(task), 0);
  CHECK_EQ(aios_future_unref(never), 0);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Await cycles                                                               */

typedef struct cycle_s {
  aios_future_t *target; /* what the task awaits (NULL: a gather of itself) */
  int cancelled;          /* the step saw the cancellation */
} cycle_t;

static int cycle_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  cycle_t *c = arg;
  if (awaited == NULL) {
    aios_future_t *self = aios_task_as_future(task), *gathered = NULL;
    aios_loop_t *loop = NULL;
    int rc;
    if (c->target) return aios_task_await(task, c->target);
    CHECK_EQ(aios_future_get_loop(self, &loop), 0);
    CHECK_EQ(aios_gather(loop, &self, 1, 0, &gathered), 0);
    aios_loop_unref(loop);
    rc = aios_task_await(task, gathered);
    aios_future_unref(gathered);
    return rc;
  }
  c->cancelled = aios_future_cancelled(awaited);
  return AIOS_ECANCELLED;
}

/* A task that awaits a gather of its own future: cancelling it ends it
 * cancelled instead of recursing through gather and task for ever. */
static void test_cancel_task_awaiting_gather_of_itself(void) {
  aios_loop_t *loop = make_loop();
  cycle_t c = {NULL, 0};
  aios_task_t *task = NULL;
  CHECK_EQ(aios_task_new(loop, cycle_step, &c, NULL, &task), 0);
  run_once(loop);
  CHECK_EQ(aios_task_cancel(task, "stop"), 1);
  CHECK_EQ(run_until(loop, aios_task_as_future(task)), AIOS_ECANCELLED);
  CHECK_EQ(c.cancelled, 1);
  CHECK_EQ(aios_future_cancelled(aios_task_as_future(task)), 1);
  run_once(loop); /* the gather takes its child's end */
  CHECK_EQ(aios_task_unref(task), 0);
  close_loop(loop);
}

/* Two tasks that await each other both end cancelled. */
static void test_cancel_tasks_awaiting_each_other(void) {
  aios_loop_t *loop = make_loop();
  cycle_t a = {NULL, 0}, b = {NULL, 0};
  aios_task_t *ta = NULL, *tb = NULL;
  CHECK_EQ(aios_task_new(loop, cycle_step, &a, NULL, &ta), 0);
  CHECK_EQ(aios_task_new(loop, cycle_step, &b, NULL, &tb), 0);
  a.target = aios_task_as_future(tb);
  b.target = aios_task_as_future(ta);
  run_once(loop);
  CHECK_EQ(aios_task_cancel(ta, NULL), 1);
  CHECK_EQ(run_until(loop, aios_task_as_future(ta)), AIOS_ECANCELLED);
  CHECK_EQ(aios_future_cancelled(aios_task_as_future(tb)), 1);
  CHECK_EQ(a.cancelled, 1);
  CHECK_EQ(b.cancelled, 1);
  CHECK_EQ(aios_task_unref(ta), 0);
  CHECK_EQ(aios_task_unref(tb), 0);
  close_loop(loop);
}

/* asyncio.run's shutdown cancels every task, the cycle's too. */
static int run_cycle_main(aios_task_t *task, aios_future_t *awaited, void *arg) {
  cycle_t *c = arg;
  (void)awaited;
  if (c->target == NULL) {
    aios_loop_t *loop = NULL;
    aios_task_t *child = NULL;
    static cycle_t child_cycle = {NULL, 0};
    CHECK_EQ(aios_future_get_loop(aios_task_as_future(task), &loop), 0);
    CHECK_EQ(aios_task_new(loop, cycle_step, &child_cycle, NULL, &child), 0);
    aios_loop_unref(loop);
    c->target = aios_task_as_future(child);
    aios_task_unref(child);
    return aios_task_await(task, NULL); /* let the child start */
  }
  return aios_task_return(task, NULL, NULL);
}

static void test_run_shutdown_ends_a_cycle(void) {
  cycle_t c = {NULL, 0};
  CHECK_EQ(aios_run(run_cycle_main, &c, NULL, NULL), 0);
}

/* ------------------------------------------------------------------------ */
/* User code that drops the last reference to what calls it                   */

static int drop_condition_predicate(void *arg) {
  aios_condition_t **condition = arg;
  aios_condition_unref(*condition);
  *condition = NULL;
  return 0;
}

static void test_predicate_drops_the_condition(void) {
  aios_loop_t *loop = make_loop();
  aios_condition_t *condition = NULL;
  aios_future_t *acquired = NULL, *waiting = NULL;
  CHECK_EQ(aios_condition_new(loop, NULL, &condition), 0);
  CHECK_EQ(aios_condition_acquire(condition, &acquired), 0);
  CHECK_EQ(aios_future_done(acquired), 1);
  CHECK_EQ(aios_condition_wait_for(condition, drop_condition_predicate, &condition, &waiting), 0);
  CHECK(condition == NULL);
  run_once(loop);
  /* The condition went with its last reference: its waiter failed. */
  CHECK_EQ(aios_future_done(waiting), 1);
  CHECK(aios_future_result(waiting, NULL) < 0);
  CHECK_EQ(aios_future_unref(waiting), 0);
  CHECK_EQ(aios_future_unref(acquired), 0);
  close_loop(loop);
}

static void drop_queue_destructor(void *arg) {
  aios_queue_t **queue = arg;
  if (*queue) {
    aios_queue_t *q = *queue;
    *queue = NULL;
    aios_queue_unref(q);
  }
}

static void test_item_destructor_drops_the_queue(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *queue = NULL;
  CHECK_EQ(aios_queue_new(loop, AIOS_QUEUE_FIFO, 0, &queue), 0);
  CHECK_EQ(aios_queue_put_nowait(queue, &queue, drop_queue_destructor, 0), 0);
  CHECK_EQ(aios_queue_shutdown(queue, 1), 0);
  CHECK(queue == NULL);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Loops left with work                                                       */

/* Closing a loop while a task awaits a future that never finishes frees the
 * loop, the task and the future once the caller lets go of them. */
static void test_close_with_a_task_waiting_forever(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *never = NULL;
  aios_task_t *task = NULL;
  CHECK_EQ(aios_future_new(loop, &never), 0);
  CHECK_EQ(aios_task_new(loop, wait_forever_step, never, NULL, &task), 0);
  run_once(loop);
  CHECK_EQ(aios_future_done(aios_task_as_future(task)), 0);
  close_loop(loop);
  CHECK_EQ(aios_task_unref(task), 0);
  CHECK_EQ(aios_future_unref(never), 0);
}

/* The same with a gather in between, and a Swift-free C chain of futures. */
static void test_close_with_a_task_waiting_on_a_gather(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *never = NULL, *gathered = NULL;
  aios_task_t *task = NULL;
  CHECK_EQ(aios_future_new(loop, &never), 0);
  CHECK_EQ(aios_gather(loop, &never, 1, 0, &gathered), 0);
  CHECK_EQ(aios_task_new(loop, wait_forever_step, gathered, NULL, &task), 0);
  run_once(loop);
  CHECK_EQ(aios_future_unref(gathered), 0);
  CHECK_EQ(aios_future_unref(never), 0);
  close_loop(loop);
  CHECK_EQ(aios_task_unref(task), 0);
}

static void drop_loop_cb(void *arg) {
  aios_loop_t *loop = arg;
  CHECK_EQ(aios_loop_stop(loop), 0);
  CHECK_EQ(aios_loop_unref(loop), 0);
}

/* The last reference dropped from one of the loop's own callbacks, with a
 * timer pending: the loop closes once it stops running. */
static void test_last_unref_inside_a_callback(void) {
  int i;
  for (i = 0; i < 3; i++) {
    aios_loop_t *loop = make_loop();
    aios_handle_t *timer = NULL;
    CHECK_EQ(aios_loop_call_later(loop, 60, count_cb, NULL, NULL, &timer), 0);
    CHECK_EQ(aios_handle_unref(timer), 0);
    CHECK_EQ(aios_loop_call_soon(loop, drop_loop_cb, loop, NULL, NULL), 0);
    CHECK_EQ(aios_loop_run_forever(loop), 0);
    /* the framework checks the loop is gone */
  }
}

static void *threadsafe_with_handle(void *arg) {
  aios_loop_t *loop = arg;
  aios_handle_t *handle = NULL;
  CHECK_EQ(aios_loop_call_soon_threadsafe(loop, count_cb, NULL, NULL, &handle), 0);
  CHECK_EQ(aios_handle_unref(handle), 0);
  return NULL;
}

/* call_soon_threadsafe with a handle: once the handle is dropped, the
 * owner's last unref closes and frees the loop. */
static void test_threadsafe_handle_keeps_no_loop(void) {
  int i;
  for (i = 0; i < 3; i++) {
    aios_loop_t *loop = make_loop();
    aios_handle_t *handle = NULL;
    pthread_t thread;
    g_called = 0;
    CHECK_EQ(aios_loop_call_soon_threadsafe(loop, count_cb, NULL, NULL, &handle), 0);
    CHECK_EQ(pthread_create(&thread, NULL, threadsafe_with_handle, loop), 0);
    CHECK_EQ(pthread_join(thread, NULL), 0);
    if (i == 0) {
      run_once(loop);
      CHECK_EQ(g_called, 2);
    }
    /* Unrun (i > 0), the calls go with the loop; dropped before the loop
     * (i == 2), the handle does not keep it. */
    if (i == 2) CHECK_EQ(aios_loop_unref(loop), 0);
    CHECK_EQ(aios_handle_unref(handle), 0);
    if (i != 2) CHECK_EQ(aios_loop_unref(loop), 0);
  }
}

static void *threadsafe_then_drop_loop(void *arg) {
  aios_loop_t *loop = arg;
  aios_handle_t *handle = NULL;
  CHECK_EQ(aios_loop_call_soon_threadsafe(loop, count_cb, NULL, NULL, &handle), 0);
  CHECK_EQ(aios_handle_unref(handle), 0);
  CHECK_EQ(aios_loop_unref(loop), 0); /* the last reference but the handle's */
  return NULL;
}

/* The owner lets go first, another thread last: only the threadsafe
 * handle's reference is left, and the loop's own thread closes it at its
 * next unref. */
static void test_threadsafe_handle_outlives_every_user(void) {
  aios_loop_t *loop = make_loop();
  aios_error_t *e = NULL;
  pthread_t thread;
  CHECK_EQ(aios_loop_ref(loop), 0); /* the thread's */
  CHECK_EQ(aios_loop_unref(loop), 0); /* the owner's: the thread's is left */
  CHECK_EQ(pthread_create(&thread, NULL, threadsafe_then_drop_loop, loop), 0);
  CHECK_EQ(pthread_join(thread, NULL), 0);
  CHECK_EQ(aios_error_new(AIOS_EINVAL, NULL, &e), 0);
  CHECK_EQ(aios_error_unref(e), 0); /* the owner thread's next unref */
  CHECK_EQ(aios_live_objects(AIOS_OBJECT_LOOP), 0);
}

/* Closing a loop while an aios_wait, an aios_wait_for or a task group's
 * exit is pending: each is freed with its last user. */
static void test_close_with_combinators_pending(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *never = NULL, *w = NULL, *wf = NULL;
  CHECK_EQ(aios_future_new(loop, &never), 0);
  CHECK_EQ(aios_wait(loop, &never, 1, 60, AIOS_ALL_COMPLETED, &w), 0);
  CHECK_EQ(aios_wait_for(never, 60, &wf), 0);
  run_once(loop); /* wait_for's task awaits `never` */
  close_loop(loop);
  CHECK_EQ(aios_future_unref(w), 0);
  CHECK_EQ(aios_future_unref(wf), 0);
  CHECK_EQ(aios_future_unref(never), 0);
}

typedef struct group_left_s {
  aios_task_group_t *group;
  aios_future_t *never;
} group_left_t;

static int group_left_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  group_left_t *g = arg;
  aios_future_t *exiting = NULL;
  (void)awaited;
  CHECK_EQ(aios_task_group_new(aios_task_get_loop(task), &g->group), 0);
  CHECK_EQ(aios_task_group_enter(g->group, task), 0);
  CHECK_EQ(aios_task_group_create_task(g->group, wait_forever_step, g->never, NULL, NULL), 0);
  CHECK_EQ(aios_task_group_exit(g->group, NULL, &exiting), 0);
  return aios_task_await_owned(task, exiting);
}

static void test_close_with_a_group_exit_pending(void) {
  aios_loop_t *loop = make_loop();
  aios_task_t *task = NULL;
  aios_future_t *late = NULL;
  group_left_t g = {NULL, NULL};
  CHECK_EQ(aios_future_new(loop, &g.never), 0);
  CHECK_EQ(aios_task_new(loop, group_left_step, &g, NULL, &task), 0);
  run_once(loop);
  run_once(loop);
  close_loop(loop);
  /* Exiting on a closed loop is refused. */
  CHECK_EQ(aios_task_group_exit(g.group, NULL, &late), AIOS_ECLOSED);
  CHECK_EQ(aios_task_group_unref(g.group), 0);
  CHECK_EQ(aios_task_unref(task), 0);
  CHECK_EQ(aios_future_unref(g.never), 0);
}

/* A shield given a result by its user, then its inner one: each frees its
 * own value once. */
static void test_set_result_on_a_shield(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *inner = NULL, *outer = NULL;
  int outer_value = 0, inner_value = 0;
  CHECK_EQ(aios_future_new(loop, &inner), 0);
  CHECK_EQ(aios_shield(inner, &outer), 0);
  CHECK_EQ(aios_future_set_result(outer, &outer_value, count_destructor), 0);
  CHECK_EQ(aios_future_set_result(inner, &inner_value, count_destructor), 0);
  run_once(loop);
  run_once(loop);
  CHECK_EQ(aios_future_unref(outer), 0);
  CHECK_EQ(aios_future_unref(inner), 0);
  run_once(loop);
  CHECK_EQ(outer_value, 1);
  CHECK_EQ(inner_value, 1);
  close_loop(loop);
}

/* A shield lends its inner future's value: once that value is taken out
 * of the inner future (and freed by its taker), the shield gives NULL, never
 * the freed pointer. */
static void test_a_shield_never_lends_a_taken_value(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *inner = NULL, *outer = NULL;
  int *value = malloc(sizeof *value);
  void *got = NULL, *taken = NULL;
  aios_destructor_fn destructor = NULL;
  CHECK(value != NULL);
  *value = 7;
  CHECK_EQ(aios_future_new(loop, &inner), 0);
  CHECK_EQ(aios_shield(inner, &outer), 0);
  CHECK_EQ(aios_future_set_result(inner, value, free), 0);
  run_once(loop);
  run_once(loop);
  CHECK_EQ(aios_future_done(outer), 1);
  CHECK_EQ(aios_future_result(outer, &got), 0);
  CHECK(got == value);
  CHECK_EQ(aios_future_take_result(inner, &taken, &destructor), 0);
  CHECK(taken == value && destructor == free);
  destructor(taken);
  got = value;
  CHECK_EQ(aios_future_result(outer, &got), 0);
  CHECK(got == NULL);
  CHECK_EQ(aios_future_unref(outer), 0);
  CHECK_EQ(aios_future_unref(inner), 0);
  close_loop(loop);
}

/* wait_for on a done future of a closed loop leaks nothing. */
static void test_wait_for_done_future_of_closed_loop(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *done = NULL, *w = NULL;
  int rc;
  CHECK_EQ(aios_future_new(loop, &done), 0);
  CHECK_EQ(aios_future_set_result(done, NULL, NULL), 0);
  CHECK_EQ(aios_loop_close(loop), 0);
  rc = aios_wait_for(done, 1.0, &w);
  CHECK(rc == 0 || rc == AIOS_ECLOSED);
  aios_future_unref(w);
  CHECK_EQ(aios_future_unref(done), 0);
  CHECK_EQ(aios_loop_unref(loop), 0);
}

/* ------------------------------------------------------------------------ */
/* Outcomes only the library sets                                             */

/* A task's outcome comes from its step, an acquire's from its lock: setting
 * either from outside is refused (asyncio: "Task does not support
 * set_result"), and the lock goes on working. */
static void test_set_result_refused_on_tasks_and_operations(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *never = NULL, *first = NULL, *second = NULL, *third = NULL;
  aios_task_t *task = NULL;
  aios_lock_t *lock = NULL;
  aios_error_t *e = NULL;
  CHECK_EQ(aios_future_new(loop, &never), 0);
  CHECK_EQ(aios_task_new(loop, wait_forever_step, never, NULL, &task), 0);
  CHECK_EQ(aios_error_new(-EPIPE, NULL, &e), 0);
  CHECK_EQ(aios_future_set_result(aios_task_as_future(task), NULL, NULL), AIOS_EINVAL);
  CHECK_EQ(aios_future_set_error(aios_task_as_future(task), e), AIOS_EINVAL);
  CHECK_EQ(aios_lock_new(loop, &lock), 0);
  CHECK_EQ(aios_lock_acquire(lock, &first), 0);
  CHECK_EQ(aios_lock_acquire(lock, &second), 0); /* waits */
  CHECK_EQ(aios_future_set_result(second, NULL, NULL), AIOS_EINVAL);
  CHECK_EQ(aios_future_set_error(second, e), AIOS_EINVAL);
  CHECK_EQ(aios_lock_release(lock), 0);
  CHECK_EQ(run_until(loop, second), 0); /* the waiter got the lock */
  CHECK_EQ(aios_lock_locked(lock), 1);
  CHECK_EQ(aios_lock_release(lock), 0);
  CHECK_EQ(aios_lock_acquire(lock, &third), 0);
  CHECK_EQ(aios_future_done(third), 1);
  CHECK_EQ(aios_lock_release(lock), 0);
  CHECK_EQ(aios_task_cancel(task, NULL), 1);
  CHECK_EQ(run_until(loop, aios_task_as_future(task)), AIOS_ECANCELLED);
  aios_future_unref(first);
  aios_future_unref(second);
  aios_future_unref(third);
  aios_lock_unref(lock);
  aios_error_unref(e);
  aios_task_unref(task);
  aios_future_unref(never);
  close_loop(loop);
}

/* A sleep owns its value from the start: a result set over it frees it once. */
static void test_set_result_on_a_sleep_frees_its_value(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *nap = NULL;
  int value = 0, replacement = 0;
  void *got = NULL;
  CHECK_EQ(aios_sleep(loop, 10, &value, count_destructor, &nap), 0);
  CHECK_EQ(aios_future_set_result(nap, &replacement, count_destructor), 0);
  CHECK_EQ(value, 1);
  CHECK_EQ(aios_future_result(nap, &got), 0);
  CHECK_PTR_EQ(got, &replacement);
  CHECK_EQ(aios_future_unref(nap), 0);
  run_once(loop); /* its done callback cancels the timer, which held it */
  CHECK_EQ(replacement, 1);
  CHECK_EQ(value, 1);
  close_loop(loop);
}

static int bad_factory(aios_loop_t *loop, aios_step_fn step, void *arg,
                       const aios_task_options_t *options, void *factory_arg,
                       aios_task_t **out) {
  int rc = aios_task_create(loop, step, arg, options, out);
  (void)factory_arg;
  return rc == 0 ? *(int *)factory_arg : rc;
}

/* A factory that makes a task but reports an error (or a positive status):
 * the task it made is released, the call fails. */
static void test_task_factory_error_with_a_task(void) {
  aios_loop_t *loop = make_loop();
  int status = -EMFILE;
  CHECK_EQ(aios_loop_set_task_factory(loop, bad_factory, &status), 0);
  CHECK_EQ(aios_task_new(loop, idle_step, NULL, NULL, NULL), -EMFILE);
  status = 7;
  CHECK_EQ(aios_task_new(loop, idle_step, NULL, NULL, NULL), AIOS_EINVAL);
  run_once(loop); /* the made tasks ran and are gone */
  close_loop(loop);
}

/* Closing a runner from inside its own run is refused, and cancels nothing. */
static int close_runner_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  aios_runner_t *runner = arg;
  aios_future_t *never = NULL;
  aios_task_t *child = NULL;
  (void)awaited;
  CHECK_EQ(aios_future_new(aios_task_get_loop(task), &never), 0);
  CHECK_EQ(aios_task_new(aios_task_get_loop(task), wait_forever_step, never, NULL, &child), 0);
  CHECK_EQ(aios_runner_close(runner), AIOS_ERUNNING);
  CHECK_EQ(aios_task_cancelling(child), 0);
  CHECK_EQ(aios_task_cancel(child, NULL), 1);
  aios_task_unref(child);
  aios_future_unref(never);
  return aios_task_return(task, NULL, NULL);
}

static void test_runner_close_inside_its_run(void) {
  aios_runner_t *runner = NULL;
  CHECK_EQ(aios_runner_new(&runner), 0);
  CHECK_EQ(aios_runner_run(runner, close_runner_step, runner, NULL, NULL), 0);
  CHECK_EQ(aios_runner_close(runner), 0);
  CHECK_EQ(aios_runner_unref(runner), 0);
}

TEST_MAIN(TEST_ENTRY(test_minus_infinity_is_due_at_once),
          TEST_ENTRY(test_set_result_refused_on_tasks_and_operations),
          TEST_ENTRY(test_set_result_on_a_sleep_frees_its_value),
          TEST_ENTRY(test_task_factory_error_with_a_task),
          TEST_ENTRY(test_runner_close_inside_its_run),
          TEST_ENTRY(test_far_deadlines_do_not_trap),
          TEST_ENTRY(test_infinite_sleep_after_a_timer),
          TEST_ENTRY(test_nan_times_are_refused),
          TEST_ENTRY(test_far_timeouts_of_combinators),
          TEST_ENTRY(test_all_tasks_huge_capacity),
          TEST_ENTRY(test_sizes_out_of_range),
          TEST_ENTRY(test_cancel_count_saturates),
          TEST_ENTRY(test_cancel_task_awaiting_gather_of_itself),
          TEST_ENTRY(test_cancel_tasks_awaiting_each_other),
          TEST_ENTRY(test_run_shutdown_ends_a_cycle),
          TEST_ENTRY(test_predicate_drops_the_condition),
          TEST_ENTRY(test_item_destructor_drops_the_queue),
          TEST_ENTRY(test_close_with_a_task_waiting_forever),
          TEST_ENTRY(test_close_with_a_task_waiting_on_a_gather),
          TEST_ENTRY(test_last_unref_inside_a_callback),
          TEST_ENTRY(test_threadsafe_handle_keeps_no_loop),
          TEST_ENTRY(test_threadsafe_handle_outlives_every_user),
          TEST_ENTRY(test_close_with_combinators_pending),
          TEST_ENTRY(test_close_with_a_group_exit_pending),
          TEST_ENTRY(test_set_result_on_a_shield),
          TEST_ENTRY(test_a_shield_never_lends_a_taken_value),
          TEST_ENTRY(test_wait_for_done_future_of_closed_loop))
