/*
 * test_run.c: aios_run (asyncio.run) and the Runner (asyncio.Runner).
 */
#include "test_util.h"

#include <netdb.h>
#include <sys/socket.h>

/* A reference to the running loop; the caller drops it. (A pointer is only
 * good while the caller holds a reference: these tests never keep one they
 * gave up.) */
static aios_loop_t *running_loop(void) {
  aios_loop_t *loop = NULL;
  CHECK_EQ(aios_get_running_loop(&loop), 0);
  CHECK(loop != NULL);
  return loop;
}

/* ------------------------------------------------------------------------ */
/* aios_run                                                                   */

typedef struct main_s {
  int steps;
  int answer;            /* the result; its destructor counts here */
  aios_loop_t *loop;     /* a reference to the loop main ran on */
  aios_task_t *self;
} main_t;

static int answer_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  main_t *m = (main_t *)arg;
  aios_task_t *cur = NULL;
  m->steps++;
  if (m->steps == 1) {
    CHECK(awaited == NULL);
    CHECK_EQ(aios_get_running_loop(&m->loop), 0);
    CHECK_EQ(aios_loop_is_running(m->loop), 1);
    CHECK_EQ(aios_current_task(m->loop, &cur), 0);
    CHECK_PTR_EQ(cur, task);
    CHECK_EQ(aios_task_unref(cur), 0);
    CHECK_EQ(aios_task_ref(task), 0);
    m->self = task; /* a reference, dropped by the test */
    {
      aios_future_t *f = NULL;
      int rc;
      CHECK_EQ(aios_sleep(m->loop, 0.01, NULL, NULL, &f), 0);
      rc = aios_task_await(task, f);
      CHECK_EQ(aios_future_unref(f), 0);
      return rc;
    }
  }
  return aios_task_return(task, &m->answer, count_destructor);
}

/* asyncio.run returns main's result; the loop it made is closed after. */
static void test_run_returns_result(void) {
  main_t m;
  aios_task_t *t = NULL;
  void *value = NULL;
  aios_loop_t *out = NULL;

  memset(&m, 0, sizeof m);
  CHECK_EQ(aios_run(answer_step, &m, NULL, &t), 0);
  CHECK_EQ(m.steps, 2);
  CHECK_PTR_EQ(t, m.self);
  CHECK_EQ(aios_future_done(aios_task_as_future(t)), 1);
  CHECK_EQ(aios_future_result(aios_task_as_future(t), &value), 0);
  CHECK_PTR_EQ(value, &m.answer);
  CHECK_EQ(m.answer, 0);
  CHECK_EQ(aios_loop_is_closed(m.loop), 1);
  CHECK_EQ(aios_loop_is_running(m.loop), 0);
  CHECK_EQ(aios_get_running_loop(&out), AIOS_ENOLOOP);
  CHECK_EQ(aios_task_unref(t), 0);
  CHECK_EQ(m.answer, 0);
  CHECK_EQ(aios_task_unref(m.self), 0);
  CHECK_EQ(m.answer, 1);
  CHECK_EQ(aios_loop_unref(m.loop), 0);
}

/* Without `out` the result is freed by the time aios_run returns. */
static void test_run_without_out(void) {
  main_t m;

  memset(&m, 0, sizeof m);
  CHECK_EQ(aios_run(answer_step, &m, NULL, NULL), 0);
  CHECK_EQ(m.steps, 2);
  CHECK_EQ(m.answer, 0); /* the test still holds the task */
  CHECK_EQ(aios_task_unref(m.self), 0);
  CHECK_EQ(m.answer, 1);
  CHECK_EQ(aios_loop_is_closed(m.loop), 1);
  CHECK_EQ(aios_loop_unref(m.loop), 0);
}

typedef struct failer_s {
  exc_record_t reports;
  int code;
} failer_t;

static int failing_main(aios_task_t *task, aios_future_t *awaited, void *arg) {
  failer_t *f = (failer_t *)arg;
  aios_loop_t *loop = running_loop();
  (void)task;
  (void)awaited;
  CHECK_EQ(aios_loop_set_exception_handler(loop, exc_recorder, &f->reports), 0);
  CHECK_EQ(aios_loop_unref(loop), 0);
  return f->code;
}

/* asyncio.run raises main's exception: here its status is returned, and the
 * error counts as retrieved (nothing reported). */
static void test_run_returns_error_status(void) {
  failer_t f;
  aios_task_t *t = NULL;
  aios_error_t *err = NULL;

  memset(&f, 0, sizeof f);
  f.code = -ECONNREFUSED;
  CHECK_EQ(aios_run(failing_main, &f, NULL, &t), -ECONNREFUSED);
  CHECK_EQ(aios_future_error(aios_task_as_future(t), &err), 0);
  CHECK_EQ(aios_error_code(err), -ECONNREFUSED);
  CHECK_EQ(aios_error_kind(err), AIOS_ERROR_OS);
  CHECK_EQ(aios_error_unref(err), 0);
  CHECK_EQ(aios_task_unref(t), 0);
  CHECK_EQ(f.reports.calls, 0);

  memset(&f, 0, sizeof f);
  f.code = AIOS_ETIMEOUT;
  CHECK_EQ(aios_run(failing_main, &f, NULL, NULL), AIOS_ETIMEOUT);
  CHECK_EQ(f.reports.calls, 0);
}

static int self_cancelling_main(aios_task_t *task, aios_future_t *awaited, void *arg) {
  int *steps = (int *)arg;
  (*steps)++;
  if (*steps == 1) {
    /* Cancel while running: delivered at the next step. */
    CHECK_EQ(aios_task_cancel(task, "self"), 1);
    return aios_task_await(task, NULL);
  }
  CHECK(awaited != NULL);
  CHECK_EQ(aios_future_cancelled(awaited), 1);
  return AIOS_ECANCELLED;
}

static void test_run_cancelled_main(void) {
  int steps = 0;
  aios_task_t *t = NULL;

  CHECK_EQ(aios_run(self_cancelling_main, &steps, NULL, &t), AIOS_ECANCELLED);
  CHECK_EQ(steps, 2);
  CHECK_EQ(aios_future_cancelled(aios_task_as_future(t)), 1);
  CHECK_EQ(aios_task_unref(t), 0);
}

/* Options reach the main task: its name. */
static void test_run_options(void) {
  main_t m;
  aios_task_options_t opts;
  aios_task_t *t = NULL;

  memset(&m, 0, sizeof m);
  memset(&opts, 0, sizeof opts);
  opts.size = sizeof opts;
  opts.name = "main";
  CHECK_EQ(aios_run(answer_step, &m, &opts, &t), 0);
  CHECK_STR_EQ(aios_task_get_name(t), "main");
  CHECK_EQ(aios_task_unref(t), 0);
  CHECK_EQ(aios_task_unref(m.self), 0);
  CHECK_EQ(aios_loop_unref(m.loop), 0);
}

/* ------------------------------------------------------------------------ */
/* Leftover tasks                                                             */

typedef struct child_s {
  int steps;
  int saw_cancel;
  int arg_freed;
} child_t;

static int sleeping_child(aios_task_t *task, aios_future_t *awaited, void *arg) {
  child_t *c = (child_t *)arg;
  c->steps++;
  if (c->steps == 1) {
    aios_loop_t *loop = running_loop();
    aios_future_t *f = NULL;
    int rc;
    CHECK_EQ(aios_sleep(loop, 30.0, NULL, NULL, &f), 0);
    CHECK_EQ(aios_loop_unref(loop), 0);
    rc = aios_task_await(task, f);
    CHECK_EQ(aios_future_unref(f), 0);
    return rc;
  }
  CHECK(awaited != NULL);
  c->saw_cancel = aios_future_cancelled(awaited) == 1;
  return AIOS_ECANCELLED;
}

typedef struct parent_s {
  int steps;
  child_t started;      /* started, awaiting a long sleep */
  child_t late;         /* created in main's last step */
  aios_task_t *started_task, *late_task;
  int all_tasks_at_end;
} parent_t;

static int parent_main(aios_task_t *task, aios_future_t *awaited, void *arg) {
  parent_t *p = (parent_t *)arg;
  aios_loop_t *loop = running_loop();
  (void)awaited;
  p->steps++;
  if (p->steps == 1) {
    CHECK_EQ(aios_task_new(loop, sleeping_child, &p->started, NULL,
                           &p->started_task), 0);
    CHECK_EQ(aios_loop_unref(loop), 0);
    /* Let the child take its first step. */
    return aios_task_await(task, NULL);
  }
  CHECK_EQ(p->started.steps, 1);
  CHECK_EQ(aios_task_new(loop, sleeping_child, &p->late, NULL, &p->late_task), 0);
  p->all_tasks_at_end = aios_all_tasks(loop, NULL, 0);
  CHECK_EQ(aios_loop_unref(loop), 0);
  return aios_task_return(task, NULL, NULL);
}

/* asyncio.run: when main is done, the tasks still pending are cancelled and
 * awaited before it returns; each sees the cancellation at its await. A task
 * made in main's last step still takes its first step before the loop stops:
 * its step was scheduled (call_soon) before run_until_complete's stop
 * callback, which main's completion schedules. */
static void test_run_cancels_leftover_tasks(void) {
  parent_t p;
  double t0 = test_now();

  memset(&p, 0, sizeof p);
  CHECK_EQ(aios_run(parent_main, &p, NULL, NULL), 0);
  CHECK(test_now() - t0 < 20.0);
  CHECK_EQ(p.steps, 2);
  CHECK_EQ(p.all_tasks_at_end, 3);
  CHECK_EQ(p.started.steps, 2);
  CHECK_EQ(p.started.saw_cancel, 1);
  CHECK_EQ(p.late.steps, 2);
  CHECK_EQ(p.late.saw_cancel, 1);
  CHECK_EQ(aios_future_cancelled(aios_task_as_future(p.started_task)), 1);
  CHECK_EQ(aios_future_cancelled(aios_task_as_future(p.late_task)), 1);
  CHECK_EQ(aios_task_unref(p.started_task), 0);
  CHECK_EQ(aios_task_unref(p.late_task), 0);
}

/* ------------------------------------------------------------------------ */
/* Running inside a running loop                                              */

static int g_inner_steps;

static int inner_main(aios_task_t *task, aios_future_t *awaited, void *arg) {
  (void)awaited;
  (void)arg;
  g_inner_steps++;
  return aios_task_return(task, NULL, NULL);
}

static void run_inside_cb(void *arg) {
  int *rc = (int *)arg;
  aios_task_t *t = NULL;
  *rc = aios_run(inner_main, NULL, NULL, &t);
  CHECK(t == NULL);
  {
    aios_loop_t *loop = running_loop();
    CHECK_EQ(aios_loop_stop(loop), 0);
    CHECK_EQ(aios_loop_unref(loop), 0);
  }
}

static int nested_run_main(aios_task_t *task, aios_future_t *awaited, void *arg) {
  (void)awaited;
  *(int *)arg = aios_run(inner_main, NULL, NULL, NULL);
  return aios_task_return(task, NULL, NULL);
}

/* asyncio.run() cannot be called from a running event loop. */
static void test_run_inside_running_loop(void) {
  aios_loop_t *loop = make_loop();
  int rc = 0, nested_rc = 0;

  g_inner_steps = 0;
  CHECK_EQ(aios_loop_call_soon(loop, run_inside_cb, &rc, NULL, NULL), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_EQ(rc, AIOS_ERUNNING);
  close_loop(loop);

  CHECK_EQ(aios_run(nested_run_main, &nested_rc, NULL, NULL), 0);
  CHECK_EQ(nested_rc, AIOS_ERUNNING);
  CHECK_EQ(g_inner_steps, 0);
}

/* ------------------------------------------------------------------------ */
/* Runner                                                                     */

typedef struct seen_loop_s {
  aios_loop_t *loop; /* a reference, dropped by the test */
  int steps;
  int value;
} seen_loop_t;

static int record_loop_main(aios_task_t *task, aios_future_t *awaited, void *arg) {
  seen_loop_t *s = (seen_loop_t *)arg;
  (void)awaited;
  s->steps++;
  s->loop = running_loop();
  return aios_task_return(task, &s->value, NULL);
}

static void test_runner_two_runs_one_loop(void) {
  aios_runner_t *r = NULL;
  aios_loop_t *loop = NULL;
  seen_loop_t a, b, after_close;
  aios_task_t *t = NULL;
  void *value = NULL;

  memset(&a, 0, sizeof a);
  memset(&b, 0, sizeof b);
  memset(&after_close, 0, sizeof after_close);
  CHECK_EQ(aios_runner_new(&r), 0);
  CHECK_EQ(aios_runner_run(r, record_loop_main, &a, NULL, &t), 0);
  CHECK_EQ(aios_future_result(aios_task_as_future(t), &value), 0);
  CHECK_PTR_EQ(value, &a.value);
  CHECK_EQ(aios_task_unref(t), 0);
  CHECK_EQ(aios_runner_run(r, record_loop_main, &b, NULL, NULL), 0);
  CHECK_EQ(a.steps, 1);
  CHECK_EQ(b.steps, 1);
  CHECK(a.loop != NULL);
  CHECK_PTR_EQ(a.loop, b.loop);
  CHECK_EQ(aios_runner_get_loop(r, &loop), 0);
  CHECK_PTR_EQ(loop, a.loop);
  /* Between runs: not running, not closed. */
  CHECK_EQ(aios_loop_is_running(loop), 0);
  CHECK_EQ(aios_loop_is_closed(loop), 0);

  CHECK_EQ(aios_runner_close(r), 0);
  CHECK_EQ(aios_loop_is_closed(loop), 1);
  /* Closing twice is a no-op. */
  CHECK_EQ(aios_runner_close(r), 0);
  /* A closed runner runs nothing. */
  CHECK(aios_runner_run(r, record_loop_main, &after_close, NULL, NULL) < 0);
  CHECK_EQ(after_close.steps, 0);
  CHECK_EQ(aios_loop_unref(loop), 0);
  CHECK_EQ(aios_loop_unref(a.loop), 0);
  CHECK_EQ(aios_loop_unref(b.loop), 0);
  CHECK_EQ(aios_runner_ref(r), 0);
  CHECK_EQ(aios_runner_unref(r), 0);
  CHECK_EQ(aios_runner_unref(r), 0);
}

/* The runner's loop exists before the first run (created on first use). */
static void test_runner_get_loop_before_run(void) {
  aios_runner_t *r = NULL;
  aios_loop_t *loop = NULL;
  seen_loop_t a;

  memset(&a, 0, sizeof a);
  CHECK_EQ(aios_runner_new(&r), 0);
  CHECK_EQ(aios_runner_get_loop(r, &loop), 0);
  CHECK(loop != NULL);
  CHECK_EQ(aios_loop_is_closed(loop), 0);
  CHECK_EQ(aios_runner_run(r, record_loop_main, &a, NULL, NULL), 0);
  CHECK_PTR_EQ(a.loop, loop);
  CHECK_EQ(aios_runner_close(r), 0);
  CHECK_EQ(aios_loop_unref(a.loop), 0);
  CHECK_EQ(aios_loop_unref(loop), 0);
  CHECK_EQ(aios_runner_unref(r), 0);
}

/* Dropping the last reference closes the runner and its loop. */
static void test_runner_unref_closes(void) {
  aios_runner_t *r = NULL;
  aios_loop_t *loop = NULL;
  seen_loop_t a;
  long runners0 = live_count(AIOS_OBJECT_RUNNER);

  memset(&a, 0, sizeof a);
  CHECK_EQ(aios_runner_new(&r), 0);
  CHECK_EQ(live_count(AIOS_OBJECT_RUNNER), runners0 + 1);
  CHECK_EQ(aios_runner_run(r, record_loop_main, &a, NULL, NULL), 0);
  CHECK_EQ(aios_runner_get_loop(r, &loop), 0);
  CHECK_PTR_EQ(loop, a.loop);
  CHECK_EQ(aios_loop_unref(a.loop), 0);
  CHECK_EQ(aios_runner_unref(r), 0);
  CHECK_EQ(live_count(AIOS_OBJECT_RUNNER), runners0);
  CHECK_EQ(aios_loop_is_closed(loop), 1);
  CHECK_EQ(aios_loop_unref(loop), 0);
}

typedef struct let_go_s {
  aios_runner_t *runner;
  aios_future_t *lookup;
} let_go_t;

/* Drops the last reference to the runner whose loop runs it, with a lookup
 * of that loop still on libuv's threads. */
static int let_go_main(aios_task_t *task, aios_future_t *awaited, void *arg) {
  let_go_t *g = (let_go_t *)arg;
  aios_loop_t *loop = running_loop();
  (void)awaited;
  CHECK_EQ(aios_getaddrinfo(loop, "127.0.0.1", "80", 0, SOCK_STREAM, 0, AI_NUMERICHOST | AI_NUMERICSERV,
                            &g->lookup), 0);
  CHECK_EQ(aios_runner_unref(g->runner), 0);
  g->runner = NULL;
  CHECK_EQ(aios_loop_is_closed(loop), 0);
  CHECK_EQ(aios_loop_unref(loop), 0);
  return aios_task_return(task, NULL, NULL);
}

/* A runner let go while its loop runs (from one of its tasks) closes that
 * loop once it stops: nothing else would, and the pending lookup would keep
 * the loop alive for ever. */
static void test_runner_let_go_while_its_loop_runs(void) {
  let_go_t g;
  aios_loop_t *loop = NULL;
  aios_task_t *t = NULL;
  long runners0 = live_count(AIOS_OBJECT_RUNNER);

  memset(&g, 0, sizeof g);
  CHECK_EQ(aios_runner_new(&g.runner), 0);
  CHECK_EQ(aios_runner_get_loop(g.runner, &loop), 0);
  CHECK_EQ(aios_task_new(loop, let_go_main, &g, NULL, &t), 0);
  CHECK_EQ(aios_loop_run_until_complete(loop, aios_task_as_future(t)), 0);
  CHECK(g.runner == NULL);
  CHECK_EQ(live_count(AIOS_OBJECT_RUNNER), runners0);
  CHECK_EQ(aios_loop_is_closed(loop), 1);
  /* The close waited for the lookup to come back. */
  CHECK_EQ(aios_future_done(g.lookup), 1);
  CHECK_EQ(aios_future_unref(g.lookup), 0);
  CHECK_EQ(aios_task_unref(t), 0);
  CHECK_EQ(aios_loop_unref(loop), 0);
}

typedef struct leave_child_s {
  child_t child;
  aios_task_t *child_task;
  int steps;
} leave_child_t;

static int leave_child_main(aios_task_t *task, aios_future_t *awaited, void *arg) {
  leave_child_t *l = (leave_child_t *)arg;
  (void)awaited;
  l->steps++;
  if (l->steps == 1) {
    aios_loop_t *loop = running_loop();
    CHECK_EQ(aios_task_new(loop, sleeping_child, &l->child, NULL, &l->child_task), 0);
    CHECK_EQ(aios_loop_unref(loop), 0);
    return aios_task_await(task, NULL);
  }
  return aios_task_return(task, NULL, NULL);
}

/* Runner.close cancels and awaits what is left: by the time it returns, the
 * leftover task has seen its cancellation. */
static void test_runner_close_cancels_leftovers(void) {
  aios_runner_t *r = NULL;
  leave_child_t l;

  memset(&l, 0, sizeof l);
  CHECK_EQ(aios_runner_new(&r), 0);
  CHECK_EQ(aios_runner_run(r, leave_child_main, &l, NULL, NULL), 0);
  CHECK_EQ(l.child.steps >= 1, 1);
  CHECK_EQ(aios_runner_close(r), 0);
  CHECK_EQ(l.child.steps, 2);
  CHECK_EQ(l.child.saw_cancel, 1);
  CHECK_EQ(aios_future_cancelled(aios_task_as_future(l.child_task)), 1);
  CHECK_EQ(aios_task_unref(l.child_task), 0);
  CHECK_EQ(aios_runner_unref(r), 0);
}

static void runner_inside_cb(void *arg) {
  int *rc = (int *)arg;
  aios_runner_t *r = NULL;
  seen_loop_t a;
  memset(&a, 0, sizeof a);
  CHECK_EQ(aios_runner_new(&r), 0);
  *rc = aios_runner_run(r, record_loop_main, &a, NULL, NULL);
  CHECK_EQ(a.steps, 0);
  CHECK_EQ(aios_runner_unref(r), 0);
  {
    aios_loop_t *loop = running_loop();
    CHECK_EQ(aios_loop_stop(loop), 0);
    CHECK_EQ(aios_loop_unref(loop), 0);
  }
}

/* Runner.run() cannot be called from a running event loop. */
static void test_runner_run_inside_running_loop(void) {
  aios_loop_t *loop = make_loop();
  int rc = 0;

  CHECK_EQ(aios_loop_call_soon(loop, runner_inside_cb, &rc, NULL, NULL), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_EQ(rc, AIOS_ERUNNING);
  close_loop(loop);
}

TEST_MAIN(TEST_ENTRY(test_run_returns_result),
          TEST_ENTRY(test_run_without_out),
          TEST_ENTRY(test_run_returns_error_status),
          TEST_ENTRY(test_run_cancelled_main),
          TEST_ENTRY(test_run_options),
          TEST_ENTRY(test_run_cancels_leftover_tasks),
          TEST_ENTRY(test_run_inside_running_loop),
          TEST_ENTRY(test_runner_two_runs_one_loop),
          TEST_ENTRY(test_runner_get_loop_before_run),
          TEST_ENTRY(test_runner_unref_closes),
          TEST_ENTRY(test_runner_let_go_while_its_loop_runs),
          TEST_ENTRY(test_runner_close_cancels_leftovers),
          TEST_ENTRY(test_runner_run_inside_running_loop))
