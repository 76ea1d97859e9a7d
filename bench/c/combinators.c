/* combinators: gather, TaskGroup, wait_for and to_thread, driven by C step tasks.
 *
 *   bench/bin/combinators gather N
 *   bench/bin/combinators taskgroup N
 *   bench/bin/combinators wait_for N
 *   bench/bin/combinators to_thread N [CALLERS]
 *
 * Each benchmark is a main task run on an aios_runner (asyncio's
 * loop.run_until_complete(main())): one untimed warm-up run of the same size,
 * then a timed one on the same loop. The steps are the C translation of the
 * coroutines in bench/py/combinators.py, await for await: a call that hands
 * back a future already done goes on in the same step; one that is not done
 * is awaited.
 *
 * gather: N tasks (aios_task_new, a step that returns at once with its index
 *   + 1), one aios_gather over all of them, awaited by main. Timed: creating
 *   the tasks and the gather, running them to completion, reading every
 *   child's result and dropping the references. Checked: the gather ends with
 *   a result, every child ran exactly one step and holds its own value, no
 *   task but main is left pending.
 * taskgroup: aios_task_group_new, _enter(main), N x _create_task (a step that
 *   returns at once; no task reference is kept, as asyncio's tg.create_task
 *   result is dropped), _exit(group, 0) and await its future. Timed: all of
 *   it. Checked: the exit future ends with a result, every child ran exactly
 *   one step, no task but main is left pending.
 * wait_for: one future, done before the clock starts (result 42); N times
 *   aios_wait_for(fut, 10.0, &w) and await w. Checked: each w ends with a
 *   result and fut's value is 42; counts the w that were done at once
 *   (immediate=, normally 0: w is a task whose first step is scheduled).
 * to_thread: CALLERS tasks (default 1), each calling aios_to_thread(loop, fn,
 *   i) and awaiting the future one call after the other, N calls in all; fn
 *   hands i back. Timed: creating the callers and running them to completion.
 *   Checked: every future ends with its own i, fn ran N times, never on the
 *   loop's thread.
 *
 * Prints: gather N SECONDS per_task_ns=X leaks=L
 *         taskgroup N SECONDS per_task_ns=X leaks=L
 *         wait_for N SECONDS immediate=K per_call_ns=X leaks=L
 *         to_thread N SECONDS callers=C per_roundtrip_ns=X leaks=L
 * A failing library call or a violated check exits non-zero with a message.
 */
#include "bench_util.h" /* first: it defines _GNU_SOURCE */

#include <pthread.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ common */

static aios_loop_t *g_loop; /* the runner's loop */


/* Checks that the only task of the loop not done is the caller (main). */
static void expect_only_main_pending(void) {
  int pending = aios_all_tasks(g_loop, NULL, 0);
  BENCH_CHECK(pending);
  BENCH_EXPECT(pending == 1, "%d tasks besides main are still pending", pending - 1);
}

/* aios_live_objects for every type, primitives and queues included. */

/* The trivial children of gather and taskgroup: one step, returning `arg`. */
static long g_steps;     /* child steps run */
static long g_bad_steps; /* child steps that got an awaited future */

static int noop_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  if (awaited != NULL) g_bad_steps++;
  g_steps++;
  return aios_task_return(task, arg, NULL);
}

/* ------------------------------------------------------------------ gather */

typedef struct gather_main {
  long n;
  int started;
  double t0, t1;
  aios_task_t **tasks;
  aios_future_t **futures;
} gather_main_t;

/* await asyncio.gather(*[asyncio.create_task(noop()) for _ in range(n)]) */
static int gather_main_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  gather_main_t *m = arg;
  if (!m->started) {
    m->started = 1;
    g_steps = g_bad_steps = 0;
    m->t0 = bench_now();
    for (long i = 0; i < m->n; i++) {
      BENCH_CHECK(aios_task_new(g_loop, noop_step, ITEM(i), NULL, &m->tasks[i]));
      m->futures[i] = aios_task_as_future(m->tasks[i]);
    }
    aios_future_t *outer;
    BENCH_CHECK(aios_gather(g_loop, m->futures, (size_t)m->n, 0, &outer));
    BENCH_EXPECT(!is_done(outer), "the gather of %ld tasks not yet run is already done", m->n);
    return await_and_drop(task, outer);
  }
  BENCH_EXPECT(awaited != NULL, "main resumed without the gather");
  (void)result_of(awaited);
  for (long i = 0; i < m->n; i++) {
    aios_future_t *f = aios_task_as_future(m->tasks[i]);
    BENCH_EXPECT(is_done(f) == 1, "task %ld not done once the gather is", i);
    void *v = result_of(f);
    BENCH_EXPECT(v == ITEM(i), "task %ld holds the result %ld", i, (long)(intptr_t)v - 1);
    BENCH_CHECK(aios_task_unref(m->tasks[i]));
  }
  m->t1 = bench_now();
  BENCH_EXPECT(g_steps == m->n, "%ld child steps for %ld tasks", g_steps, m->n);
  BENCH_EXPECT(g_bad_steps == 0, "%ld child steps got an awaited future", g_bad_steps);
  expect_only_main_pending();
  return aios_task_return(task, NULL, NULL);
}

static double gather(aios_runner_t *runner, long n) {
  gather_main_t m;
  aios_task_t **tasks = malloc((size_t)n * sizeof *tasks);
  aios_future_t **futures = malloc((size_t)n * sizeof *futures);
  if (tasks == NULL || futures == NULL) {
    perror("malloc");
    exit(1);
  }
  for (int round = 0; round < 2; round++) { /* 0: untimed warm-up */
    memset(&m, 0, sizeof m);
    m.n = n;
    m.tasks = tasks;
    m.futures = futures;
    run_main(runner, gather_main_step, &m);
  }
  free(tasks);
  free(futures);
  return m.t1 - m.t0;
}

/* --------------------------------------------------------------- taskgroup */

typedef struct taskgroup_main {
  long n;
  int started;
  double t0, t1;
  aios_task_group_t *group;
} taskgroup_main_t;

/* async with asyncio.TaskGroup() as tg: for _ in range(n): tg.create_task(noop()) */
static int taskgroup_main_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  taskgroup_main_t *m = arg;
  aios_future_t *exited;
  if (!m->started) {
    m->started = 1;
    g_steps = g_bad_steps = 0;
    m->t0 = bench_now();
    BENCH_CHECK(aios_task_group_new(g_loop, &m->group));
    BENCH_CHECK(aios_task_group_enter(m->group, task));
    for (long i = 0; i < m->n; i++)
      BENCH_CHECK(aios_task_group_create_task(m->group, noop_step, NULL, NULL, NULL));
    BENCH_EXPECT(g_steps == 0, "%ld children ran inside create_task", g_steps);
    BENCH_CHECK(aios_task_group_exit(m->group, NULL, &exited));
    if (!is_done(exited)) return await_and_drop(task, exited);
    /* done at once: go on in this step (not expected with tasks pending) */
    (void)result_of(exited);
    BENCH_CHECK(aios_future_unref(exited));
  } else {
    BENCH_EXPECT(awaited != NULL, "main resumed without the group's exit");
    (void)result_of(awaited);
  }
  BENCH_CHECK(aios_task_group_unref(m->group));
  m->group = NULL;
  m->t1 = bench_now();
  BENCH_EXPECT(g_steps == m->n, "%ld child steps for %ld tasks", g_steps, m->n);
  BENCH_EXPECT(g_bad_steps == 0, "%ld child steps got an awaited future", g_bad_steps);
  expect_only_main_pending();
  return aios_task_return(task, NULL, NULL);
}

static double taskgroup(aios_runner_t *runner, long n) {
  taskgroup_main_t m;
  for (int round = 0; round < 2; round++) { /* 0: untimed warm-up */
    memset(&m, 0, sizeof m);
    m.n = n;
    run_main(runner, taskgroup_main_step, &m);
  }
  return m.t1 - m.t0;
}

/* ---------------------------------------------------------------- wait_for */

#define WAIT_FOR_VALUE ((void *)(intptr_t)42)

typedef struct wait_for_main {
  long n, i, immediate;
  int state;
  double t0, t1;
  aios_future_t *fut; /* done before the clock starts */
} wait_for_main_t;

/* Checks one finished wait_for: it ended with a result, fut still holds 42. */
static void check_waited(wait_for_main_t *m, aios_future_t *w) {
  int rc = aios_future_result(w, NULL);
  BENCH_EXPECT(rc == 0, "wait_for %ld finished with %d %s (%s)", m->i, rc, aios_err_name(rc),
               aios_strerror(rc));
  void *v = result_of(m->fut);
  BENCH_EXPECT(v == WAIT_FOR_VALUE, "wait_for %ld: the future holds %ld", m->i, (long)(intptr_t)v);
}

/* fut = loop.create_future(); fut.set_result(42)
 * for _ in range(n): assert await asyncio.wait_for(fut, 10) == 42 */
static int wait_for_main_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  wait_for_main_t *m = arg;
  aios_future_t *w;
  if (m->state == 0) {
    m->state = 1;
    BENCH_CHECK(aios_future_new(g_loop, &m->fut));
    BENCH_CHECK(aios_future_set_result(m->fut, WAIT_FOR_VALUE, NULL));
    m->t0 = bench_now();
  } else {
    BENCH_EXPECT(awaited != NULL, "main resumed without its wait_for");
    check_waited(m, awaited);
    m->i++;
  }
  while (m->i < m->n) {
    BENCH_CHECK(aios_wait_for(m->fut, 10.0, &w));
    if (!is_done(w)) return await_and_drop(task, w);
    m->immediate++;
    check_waited(m, w);
    BENCH_CHECK(aios_future_unref(w));
    m->i++;
  }
  m->t1 = bench_now();
  BENCH_CHECK(aios_future_unref(m->fut));
  m->fut = NULL;
  expect_only_main_pending();
  return aios_task_return(task, NULL, NULL);
}

static double wait_for(aios_runner_t *runner, long n, long *immediate) {
  wait_for_main_t m;
  for (int round = 0; round < 2; round++) { /* 0: untimed warm-up */
    memset(&m, 0, sizeof m);
    m.n = n;
    run_main(runner, wait_for_main_step, &m);
    BENCH_EXPECT(m.i == n, "%ld of %ld wait_for calls", m.i, n);
  }
  *immediate = m.immediate;
  return m.t1 - m.t0;
}

/* --------------------------------------------------------------- to_thread */

static pthread_t g_loop_thread;
static long g_fn_calls;           /* fn calls (atomic: on the workers) */
static long g_fn_on_loop_thread;  /* of which on the loop's thread (atomic) */

/* def work(i): return i */
static int thread_fn(void *arg, void **result) {
  __atomic_fetch_add(&g_fn_calls, 1, __ATOMIC_RELAXED);
  if (pthread_equal(pthread_self(), g_loop_thread)) __atomic_fetch_add(&g_fn_on_loop_thread, 1, __ATOMIC_RELAXED);
  *result = arg;
  return 0;
}

typedef struct thread_caller {
  long first, count, done;
} thread_caller_t;

/* for i in range(first, first + count): assert await asyncio.to_thread(work, i) == i */
static int thread_caller_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  thread_caller_t *c = arg;
  aios_future_t *f;
  void *v;
  if (awaited != NULL) {
    v = result_of(awaited);
    goto got;
  }
  while (c->done < c->count) {
    BENCH_CHECK(aios_to_thread(g_loop, thread_fn, ITEM(c->first + c->done), NULL, &f));
    if (!is_done(f)) return await_and_drop(task, f);
    v = result_of(f);
    BENCH_CHECK(aios_future_unref(f));
  got:
    BENCH_EXPECT(v == ITEM(c->first + c->done), "to_thread(%ld) gave %ld", c->first + c->done,
                 (long)(intptr_t)v - 1);
    c->done++;
  }
  return aios_task_return(task, (void *)(intptr_t)c->done, NULL);
}

typedef struct thread_main {
  long n, callers, next;
  int started;
  double t0, t1;
  thread_caller_t *state;
  aios_task_t **tasks;
} thread_main_t;

static int thread_main_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  thread_main_t *m = arg;
  if (!m->started) {
    m->started = 1;
    m->t0 = bench_now();
    /* n calls split over the callers, the first ones taking the remainder */
    long share = m->n / m->callers, extra = m->n % m->callers, first = 0;
    for (long c = 0; c < m->callers; c++) {
      long count = share + (c < extra);
      m->state[c] = (thread_caller_t){first, count, 0};
      first += count;
      BENCH_CHECK(aios_task_new(g_loop, thread_caller_step, &m->state[c], NULL, &m->tasks[c]));
    }
  } else {
    /* for t in callers: await t */
    void *v = result_of(awaited);
    BENCH_EXPECT(v == (void *)(intptr_t)m->state[m->next].count, "caller %ld made %ld calls", m->next,
                 (long)(intptr_t)v);
    m->next++;
  }
  if (m->next < m->callers) {
    BENCH_CHECK(aios_task_await(task, aios_task_as_future(m->tasks[m->next])));
    return AIOS_STEP_AWAIT;
  }
  m->t1 = bench_now();
  for (long c = 0; c < m->callers; c++) BENCH_CHECK(aios_task_unref(m->tasks[c]));
  expect_only_main_pending();
  return aios_task_return(task, NULL, NULL);
}

static double to_thread(aios_runner_t *runner, long n, long callers) {
  thread_main_t m;
  BENCH_EXPECT(callers <= n, "%ld callers for %ld calls", callers, n);
  thread_caller_t *state = malloc((size_t)callers * sizeof *state);
  aios_task_t **tasks = malloc((size_t)callers * sizeof *tasks);
  if (state == NULL || tasks == NULL) {
    perror("malloc");
    exit(1);
  }
  g_loop_thread = pthread_self();
  for (int round = 0; round < 2; round++) { /* 0: untimed warm-up (starts the pool) */
    memset(&m, 0, sizeof m);
    m.n = n;
    m.callers = callers;
    m.state = state;
    m.tasks = tasks;
    __atomic_store_n(&g_fn_calls, 0, __ATOMIC_RELAXED);
    run_main(runner, thread_main_step, &m);
    long calls = __atomic_load_n(&g_fn_calls, __ATOMIC_RELAXED);
    BENCH_EXPECT(calls == n, "fn ran %ld times for %ld calls", calls, n);
  }
  long on_loop = __atomic_load_n(&g_fn_on_loop_thread, __ATOMIC_RELAXED);
  BENCH_EXPECT(on_loop == 0, "fn ran %ld times on the loop's thread", on_loop);
  free(state);
  free(tasks);
  return m.t1 - m.t0;
}

/* -------------------------------------------------------------------- main */

static void usage(const char *argv0) {
  fprintf(stderr, "usage: %s gather N | taskgroup N | wait_for N | to_thread N [CALLERS]\n", argv0);
  exit(64);
}

int main(int argc, char **argv) {
  if (argc < 2) usage(argv[0]);
  const char *name = argv[1];
  long live[BENCH_TYPES];
  bench_snapshot_live(live);

  aios_runner_t *runner;
  BENCH_CHECK(aios_runner_new(&runner));
  BENCH_CHECK(aios_runner_get_loop(runner, &g_loop));

  char line[256];
  if (strcmp(name, "gather") == 0) {
    long n = bench_arg(argc, argv, 2, 100000);
    double secs = gather(runner, n);
    snprintf(line, sizeof line, "gather %ld %.6f per_task_ns=%.1f", n, secs, secs / (double)n * 1e9);
  } else if (strcmp(name, "taskgroup") == 0) {
    long n = bench_arg(argc, argv, 2, 100000);
    double secs = taskgroup(runner, n);
    snprintf(line, sizeof line, "taskgroup %ld %.6f per_task_ns=%.1f", n, secs, secs / (double)n * 1e9);
  } else if (strcmp(name, "wait_for") == 0) {
    long n = bench_arg(argc, argv, 2, 100000), immediate = 0;
    double secs = wait_for(runner, n, &immediate);
    snprintf(line, sizeof line, "wait_for %ld %.6f immediate=%ld per_call_ns=%.1f", n, secs, immediate,
             secs / (double)n * 1e9);
  } else if (strcmp(name, "to_thread") == 0) {
    long n = bench_arg(argc, argv, 2, 10000), callers = bench_arg(argc, argv, 3, 1);
    double secs = to_thread(runner, n, callers);
    snprintf(line, sizeof line, "to_thread %ld %.6f callers=%ld per_roundtrip_ns=%.1f", n, secs, callers,
             secs / (double)n * 1e9);
  } else {
    usage(argv[0]);
  }

  BENCH_CHECK(aios_runner_close(runner));
  BENCH_CHECK(aios_loop_unref(g_loop));
  BENCH_CHECK(aios_runner_unref(runner));
  int leaks = bench_check_live(live);
  printf("%s leaks=%d\n", line, leaks);
  return 0;
}
