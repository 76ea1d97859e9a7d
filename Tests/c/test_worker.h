/*
 * test_worker.h: workers for the C tests of the synchronization primitives
 * and queues (test_locks.c, test_queues.c): a C task that runs a small
 * program of operations and logs their outcomes to the event log of
 * test_util.h, and the helpers that run and finish such tasks.
 *
 * Include it after test_util.h. Everything here is `static inline`, as in
 * test_util.h, so a helper a file does not use is no warning.
 */
#ifndef AIOS_TEST_WORKER_H
#define AIOS_TEST_WORKER_H

#include "test_util.h"

#include <stdint.h>

/* ------------------------------------------------------------------------ */
/* Workers: a task running a small program of operations                    */
/*
 * A worker is a C task whose step function runs `ops` in order, the way a
 * coroutine runs its statements: OP_WAIT calls a function that hands back a
 * future (aios_lock_acquire, aios_condition_wait, ...) and awaits it unless
 * it is already done (a coroutine does not suspend when asyncio's fast path
 * returns at once); OP_ACT calls a function and checks its status; OP_AWAIT
 * awaits a given future; OP_YIELD is `await asyncio.sleep(0)`; OP_SLEEP
 * sleeps. Each op that succeeds logs "<name><word>" (when word is not NULL),
 * with the result value appended when `show` is set; a wait that fails logs
 * "<name>!<error name without AIOS_>", and then ends the task with that
 * status (a cancellation ends it cancelled) unless `catch_` is set, which is
 * a `try: ... except: pass` around the op.
 */

enum { OP_END = 0, OP_WAIT, OP_ACT, OP_AWAIT, OP_YIELD, OP_SLEEP };

typedef int (*begin_fn)(void *obj, aios_future_t **out);
typedef int (*act_fn)(void *obj);

typedef struct op_s {
  int kind;
  begin_fn begin;        /* OP_WAIT */
  act_fn act;            /* OP_ACT (NULL: only log) */
  void *obj;             /* the argument of begin or act */
  aios_future_t *future; /* OP_AWAIT (borrowed from the test) */
  double delay;          /* OP_SLEEP */
  int expect;            /* OP_WAIT: what begin returns; OP_ACT: what act returns */
  int catch_;            /* a failed wait is logged and the program goes on */
  int show;              /* log the result value after the word: 1 as an integer,
                            * above 1 with WORKER_SHOW_VALUE */
  const char *word;      /* logged as "<name><word>" on success */
} op_t;

#define WAIT(fn, o, w) { OP_WAIT, (fn), NULL, (o), NULL, 0, 0, 0, 0, (w) }
#define WAIT_CATCH(fn, o, w) { OP_WAIT, (fn), NULL, (o), NULL, 0, 0, 1, 0, (w) }
#define WAIT_SHOW(fn, o, w) { OP_WAIT, (fn), NULL, (o), NULL, 0, 0, 0, 1, (w) }
#define WAIT_SHOW_CATCH(fn, o, w) { OP_WAIT, (fn), NULL, (o), NULL, 0, 0, 1, 1, (w) }
#define WAIT_FAILS(fn, o, code, w) { OP_WAIT, (fn), NULL, (o), NULL, 0, (code), 0, 0, (w) }
#define ACT(fn, o, expect, w) { OP_ACT, NULL, (fn), (o), NULL, 0, (expect), 0, 0, (w) }
#define LOG(w) { OP_ACT, NULL, NULL, NULL, NULL, 0, 0, 0, 0, (w) }
#define AWAIT(f, w) { OP_AWAIT, NULL, NULL, NULL, (f), 0, 0, 0, 0, (w) }
#define YIELD() { OP_YIELD, NULL, NULL, NULL, NULL, 0, 0, 0, 0, NULL }
#define SLEEP(d) { OP_SLEEP, NULL, NULL, NULL, NULL, (d), 0, 0, 0, NULL }
#define END() { OP_END, NULL, NULL, NULL, NULL, 0, 0, 0, 0, NULL }

#define MAX_OPS 16

typedef struct worker_s worker_t;
struct worker_s {
  const char *name;
  op_t ops[MAX_OPS];
  /* Called with the status of each finished wait, before it is logged. */
  void (*on_outcome)(worker_t *w, int status);
  void *ctx;     /* for on_outcome and finally_ */
  /* Run when the task ends with a failure (a `finally:` clause). */
  act_fn finally_;
  void *finally_obj;
  /* State */
  int pc;        /* the next op */
  int awaiting;  /* 1 + the index of the op whose future is awaited; 0: none */
  int steps;
  int status;    /* the outcome of the last wait */
  int immediate; /* the last OP_WAIT's future was already done */
  int seen;      /* what on_outcome recorded */
  int seen_count;
  void *value;   /* the result of the last wait; owned when dtor != NULL */
  aios_destructor_fn dtor;
  aios_task_t *task;
};

/* From a step: await aios_sleep(delay). */
static inline int await_sleep(aios_task_t *task, double delay) {
  aios_loop_t *loop = NULL;
  aios_future_t *f = NULL;
  int rc;
  CHECK_EQ(aios_future_get_loop(aios_task_as_future(task), &loop), 0);
  CHECK_EQ(aios_sleep(loop, delay, NULL, NULL, &f), 0);
  CHECK_EQ(aios_loop_unref(loop), 0);
  rc = aios_task_await(task, f);
  CHECK_EQ(rc, AIOS_STEP_AWAIT);
  CHECK_EQ(aios_future_unref(f), 0);
  return rc;
}

static inline void worker_drop_value(worker_t *w) {
  if (w->dtor)
    w->dtor(w->value);
  w->value = NULL;
  w->dtor = NULL;
}

/* How a result value is shown for a `show` mode above 1 (mode 1 shows it as
 * an integer): writes the text that follows the word to buf. A file that
 * uses such modes defines WORKER_SHOW_VALUE as the name of a function of this
 * type before including this header. */
typedef void (*worker_show_fn)(int show, void *value, char *buf, size_t size);

#ifdef WORKER_SHOW_VALUE
static const worker_show_fn worker_show_value_ = WORKER_SHOW_VALUE;
#else
static const worker_show_fn worker_show_value_ = NULL;
#endif

static inline void worker_log(worker_t *w, const char *word, int show, void *value) {
  char buf[128];
  if (show > 1 && worker_show_value_ != NULL) {
    char text[64];
    worker_show_value_(show, value, text, sizeof text);
    snprintf(buf, sizeof buf, "%s%s%s", w->name, word, text);
  } else if (show)
    snprintf(buf, sizeof buf, "%s%s%ld", w->name, word, (long)(intptr_t)value);
  else
    snprintf(buf, sizeof buf, "%s%s", w->name, word);
  log_event(buf);
}

static inline void worker_log_error(worker_t *w, int status) {
  char buf[128];
  const char *name = aios_err_name(status);
  CHECK(name != NULL);
  if (strncmp(name, "AIOS_", 5) == 0)
    name += 5;
  snprintf(buf, sizeof buf, "%s!%s", w->name, name);
  log_event(buf);
}

/* The outcome of a finished wait. @return 1 to go on, 0 to end the task
 * with w->status. */
static inline int worker_outcome(aios_task_t *task, worker_t *w, const op_t *op,
                          aios_future_t *f) {
  void *value = NULL;
  aios_destructor_fn dtor = NULL;
  int rc = 0;
  if (f != NULL) {
    CHECK_EQ(aios_future_done(f), 1);
    rc = aios_future_take_result(f, &value, &dtor);
  }
  w->status = rc;
  if (w->on_outcome)
    w->on_outcome(w, rc);
  if (rc == 0) {
    worker_drop_value(w);
    w->value = value;
    w->dtor = dtor;
    if (op->word)
      worker_log(w, op->word, op->show, value);
    return 1;
  }
  worker_log_error(w, rc);
  if (op->catch_) {
    if (rc == AIOS_ECANCELLED && aios_task_cancelling(task) > 0)
      aios_task_uncancel(task);
    return 1;
  }
  return 0;
}

static inline int worker_end_failed(worker_t *w) {
  worker_drop_value(w);
  if (w->finally_)
    CHECK_EQ(w->finally_(w->finally_obj), 0);
  return w->status;
}

static inline int worker_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  worker_t *w = (worker_t *)arg;
  int rc;

  w->steps++;
  if (w->awaiting) {
    const op_t *op = &w->ops[w->awaiting - 1];
    w->awaiting = 0;
    if (!worker_outcome(task, w, op, awaited))
      return worker_end_failed(w);
  } else if (awaited != NULL) {
    /* A cancellation that arrived before the first step ran an op. */
    w->status = aios_future_result(awaited, NULL);
    worker_log_error(w, w->status);
    return worker_end_failed(w);
  }
  for (;;) {
    const op_t *op;
    CHECK(w->pc < MAX_OPS);
    op = &w->ops[w->pc++];
    switch (op->kind) {
    case OP_END: {
      void *value = w->value;
      aios_destructor_fn dtor = w->dtor;
      w->value = NULL;
      w->dtor = NULL;
      rc = aios_task_return(task, value, dtor);
      CHECK_EQ(rc, AIOS_STEP_DONE);
      return rc;
    }
    case OP_WAIT: {
      aios_future_t *f = NULL;
      rc = op->begin(op->obj, &f);
      CHECK_EQ(rc, op->expect);
      if (rc < 0) {
        /* The expected refusal: no future. */
        CHECK(f == NULL);
        worker_log_error(w, rc);
        break;
      }
      CHECK(f != NULL);
      if (aios_future_done(f) == 1) {
        /* asyncio's fast path: the coroutine goes on without suspending. */
        int ok;
        w->immediate = 1;
        ok = worker_outcome(task, w, op, f);
        CHECK_EQ(aios_future_unref(f), 0);
        if (!ok)
          return worker_end_failed(w);
        break;
      }
      w->immediate = 0;
      rc = aios_task_await(task, f);
      CHECK_EQ(rc, AIOS_STEP_AWAIT);
      CHECK_EQ(aios_future_unref(f), 0);
      w->awaiting = w->pc;
      return rc;
    }
    case OP_ACT:
      if (op->act) {
        rc = op->act(op->obj);
        CHECK_EQ(rc, op->expect);
      }
      if (op->word)
        worker_log(w, op->word, 0, NULL);
      break;
    case OP_AWAIT:
      rc = aios_task_await(task, op->future);
      CHECK_EQ(rc, AIOS_STEP_AWAIT);
      w->awaiting = w->pc;
      return rc;
    case OP_YIELD:
      rc = aios_task_await(task, NULL);
      CHECK_EQ(rc, AIOS_STEP_AWAIT);
      w->awaiting = w->pc;
      return rc;
    case OP_SLEEP:
      rc = await_sleep(task, op->delay);
      w->awaiting = w->pc;
      return rc;
    default:
      CHECK(!"bad op");
    }
  }
}

static inline aios_task_t *spawn(aios_loop_t *loop, worker_t *w) {
  aios_task_options_t options;
  memset(&options, 0, sizeof options);
  options.size = sizeof options;
  options.name = w->name;
  CHECK(w->task == NULL);
  CHECK_EQ(aios_task_new(loop, worker_step, w, &options, &w->task), 0);
  CHECK(w->task != NULL);
  return w->task;
}

static inline aios_future_t *tf(worker_t *w) { return aios_task_as_future(w->task); }

static inline int is_done(worker_t *w) { return aios_future_done(tf(w)); }

/* A watchdog thread: stops the loop (with call_soon_threadsafe, which
 * wakes a loop blocked in its poll, whatever its timers do) unless told to
 * quit first. */
typedef struct watchdog_s {
  aios_loop_t *loop;
  double seconds;
  int quit;
  int fired;
  pthread_mutex_t mutex;
  pthread_cond_t cond;
  pthread_t thread;
} watchdog_t;

static inline void *watchdog_main(void *arg) {
  watchdog_t *wd = (watchdog_t *)arg;
  struct timespec until;
  clock_gettime(CLOCK_REALTIME, &until);
  until.tv_sec += (time_t)wd->seconds;
  pthread_mutex_lock(&wd->mutex);
  while (!wd->quit) {
    if (pthread_cond_timedwait(&wd->cond, &wd->mutex, &until) == ETIMEDOUT)
      break;
  }
  if (!wd->quit) {
    wd->fired = 1;
    CHECK_EQ(aios_loop_call_soon_threadsafe(wd->loop, stop_loop_cb, wd->loop, NULL, NULL), 0);
  }
  pthread_mutex_unlock(&wd->mutex);
  return NULL;
}

/* Runs the loop until `f` is done; returns its status, or
 * AIOS_EINVALIDSTATE if it is not done within 5 seconds (a hang is then a
 * failed check rather than the watchdog alarm's kill). */
static inline int run_bounded(aios_loop_t *loop, aios_future_t *f) {
  watchdog_t wd;
  int rc;
  memset(&wd, 0, sizeof wd);
  wd.loop = loop;
  wd.seconds = 5;
  CHECK_EQ(pthread_mutex_init(&wd.mutex, NULL), 0);
  CHECK_EQ(pthread_cond_init(&wd.cond, NULL), 0);
  CHECK_EQ(pthread_create(&wd.thread, NULL, watchdog_main, &wd), 0);
  rc = aios_loop_run_until_complete(loop, f);
  pthread_mutex_lock(&wd.mutex);
  wd.quit = 1;
  pthread_cond_signal(&wd.cond);
  pthread_mutex_unlock(&wd.mutex);
  CHECK_EQ(pthread_join(wd.thread, NULL), 0);
  pthread_cond_destroy(&wd.cond);
  pthread_mutex_destroy(&wd.mutex);
  if (wd.fired)
    fprintf(stderr, "run_bounded: not done after %g s\n", wd.seconds);
  return rc;
}

/* Runs the loop until the worker's task is done; returns its status. */
static inline int run_worker(aios_loop_t *loop, worker_t *w) { return run_bounded(loop, tf(w)); }

/* Checks the worker's task is done with `status` (0: a result; the result
 * value is then `value`) and drops the test's reference to it. */
static inline void finish_worker(worker_t *w, int status) {
  CHECK_EQ(aios_future_done(tf(w)), 1);
  CHECK_EQ(aios_future_result(tf(w), NULL), status);
  CHECK_EQ(aios_future_cancelled(tf(w)), status == AIOS_ECANCELLED);
  CHECK_EQ(aios_task_unref(w->task), 0);
  w->task = NULL;
}

static inline void finish_worker_value(worker_t *w, intptr_t value) {
  void *v = NULL;
  CHECK_EQ(aios_future_done(tf(w)), 1);
  CHECK_EQ(aios_future_result(tf(w), &v), 0);
  CHECK_EQ((intptr_t)v, value);
  finish_worker(w, 0);
}

static inline void run_iterations(aios_loop_t *loop, int n) {
  while (n-- > 0)
    run_once(loop);
}

static inline void call_soon(aios_loop_t *loop, aios_callback_fn cb, void *arg) {
  CHECK_EQ(aios_loop_call_soon(loop, cb, arg, NULL, NULL), 0);
}

/* A callback: cancel the task of the worker passed as arg. */
static inline void cancel_worker_cb(void *arg) {
  CHECK_EQ(aios_task_cancel(((worker_t *)arg)->task, NULL), 1);
}

/* A future that is done, with result 0, at once; dropped. */
static inline void check_done_now(int rc, aios_future_t *f) {
  CHECK_EQ(rc, 0);
  CHECK(f != NULL);
  CHECK_EQ(aios_future_done(f), 1);
  CHECK_EQ(aios_future_result(f, NULL), 0);
  CHECK_EQ(aios_future_unref(f), 0);
}

#endif /* AIOS_TEST_WORKER_H */
