/* sync: the synchronization primitives and queues, driven by C step tasks.
 *
 *   bench/bin/sync queue_pingpong N
 *   bench/bin/sync lock_contention TASKS ITERS
 *   bench/bin/sync event_fanout TASKS ROUNDS
 *
 * Each benchmark is a main task run on an aios_runner (asyncio's
 * loop.run_until_complete(main())): one untimed warm-up run, then a timed
 * one on the same loop. The steps are the C translation of the coroutines in
 * bench/py/sync.py, await for await: a call that hands back a future that is
 * already done goes on in the same step (as `await` on a coroutine that does
 * not block does not suspend); one that is not done is awaited.
 *
 * queue_pingpong: tasks ping and pong, two unbounded FIFO queues. N times,
 *   ping puts i on q1 and gets the reply from q2; pong gets from q1 and puts
 *   what it got on q2. Timed: creating the queues and the two tasks, running
 *   both to completion. Every reply is checked to be the value sent.
 * lock_contention: TASKS tasks share one Lock; each does ITERS times
 *   `acquire; yield one iteration (a bare aios_task_await(task, NULL), which
 *   is asyncio.sleep(0)); release`, asyncio's
 *   `async with lock: await asyncio.sleep(0)`. The lock is held across the
 *   yield, so the other tasks queue on it: almost every acquire waits and is
 *   handed the lock by a release (FIFO). Timed: creating the lock and the
 *   tasks, running all to completion. Checked: no two tasks hold the lock at
 *   once, every task ran ITERS critical sections, the lock ends unlocked.
 * event_fanout: each round creates an Event and TASKS tasks that await its
 *   wait(); once all of them wait, main sets it and awaits a second Event that
 *   the last woken task sets. Timed: from set() to main resuming, summed over
 *   the rounds (n = TASKS * ROUNDS wake-ups). Checked: every task waited,
 *   woke, and finished with its result.
 *
 * Prints: queue_pingpong N SECONDS per_roundtrip_ns=X leaks=L
 *         lock_contention TASKS*ITERS SECONDS tasks=T iters=I waited=W per_op_ns=X leaks=L
 *         event_fanout TASKS*ROUNDS SECONDS tasks=T rounds=R setup_seconds=S per_wakeup_ns=X leaks=L
 * A failing library call or a violated check exits non-zero with a message.
 */
#include "bench_util.h" /* first: it defines _GNU_SOURCE */

#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ common */

static aios_loop_t *g_loop; /* the runner's loop */


/* aios_live_objects for every type, primitives and queues included. */

/* ---------------------------------------------------------- queue_pingpong */

enum { PP_START, PP_AWAIT_PUT, PP_AWAIT_GET };

typedef struct pingpong_side {
  aios_queue_t *in, *out;
  long n, i;
  int state;
} pingpong_side_t;

/* ping: for i in range(n): await q1.put(i); assert await q2.get() == i */
static int ping_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  pingpong_side_t *p = arg;
  aios_future_t *f;
  void *reply;
  switch (p->state) {
  case PP_AWAIT_PUT:
    (void)result_of(awaited);
    goto get;
  case PP_AWAIT_GET:
    reply = result_of(awaited);
    goto got;
  default:
    break;
  }
  while (p->i < p->n) {
    BENCH_CHECK(aios_queue_put(p->out, ITEM(p->i), NULL, 0, &f));
    if (!is_done(f)) {
      p->state = PP_AWAIT_PUT;
      return await_and_drop(task, f);
    }
    (void)result_of(f);
    BENCH_CHECK(aios_future_unref(f));
  get:
    BENCH_CHECK(aios_queue_get(p->in, &f));
    if (!is_done(f)) {
      p->state = PP_AWAIT_GET;
      return await_and_drop(task, f);
    }
    reply = result_of(f);
    BENCH_CHECK(aios_future_unref(f));
  got:
    BENCH_EXPECT(reply == ITEM(p->i), "ping %ld got the reply %ld", p->i, (long)(intptr_t)reply - 1);
    p->i++;
  }
  return aios_task_return(task, (void *)(intptr_t)p->i, NULL);
}

/* pong: for _ in range(n): await q2.put(await q1.get()) */
static int pong_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  pingpong_side_t *p = arg;
  aios_future_t *f;
  void *item;
  switch (p->state) {
  case PP_AWAIT_GET:
    item = result_of(awaited);
    goto got;
  case PP_AWAIT_PUT:
    (void)result_of(awaited);
    goto next;
  default:
    break;
  }
  while (p->i < p->n) {
    BENCH_CHECK(aios_queue_get(p->in, &f));
    if (!is_done(f)) {
      p->state = PP_AWAIT_GET;
      return await_and_drop(task, f);
    }
    item = result_of(f);
    BENCH_CHECK(aios_future_unref(f));
  got:
    BENCH_EXPECT(item == ITEM(p->i), "pong %ld got %ld", p->i, (long)(intptr_t)item - 1);
    BENCH_CHECK(aios_queue_put(p->out, item, NULL, 0, &f));
    if (!is_done(f)) {
      p->state = PP_AWAIT_PUT;
      return await_and_drop(task, f);
    }
    (void)result_of(f);
    BENCH_CHECK(aios_future_unref(f));
  next:
    p->i++;
  }
  return aios_task_return(task, (void *)(intptr_t)p->i, NULL);
}

typedef struct pingpong_main {
  long n;
  int state;
  double t0, t1;
  aios_queue_t *q1, *q2;
  pingpong_side_t ping, pong;
  aios_task_t *ping_task, *pong_task;
} pingpong_main_t;

static int pingpong_main_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  pingpong_main_t *m = arg;
  switch (m->state++) {
  case 0:
    m->t0 = bench_now();
    BENCH_CHECK(aios_queue_new(g_loop, AIOS_QUEUE_FIFO, 0, &m->q1));
    BENCH_CHECK(aios_queue_new(g_loop, AIOS_QUEUE_FIFO, 0, &m->q2));
    m->ping = (pingpong_side_t){m->q2, m->q1, m->n, 0, PP_START};
    m->pong = (pingpong_side_t){m->q1, m->q2, m->n, 0, PP_START};
    BENCH_CHECK(aios_task_new(g_loop, ping_step, &m->ping, NULL, &m->ping_task));
    BENCH_CHECK(aios_task_new(g_loop, pong_step, &m->pong, NULL, &m->pong_task));
    BENCH_CHECK(aios_task_await(task, aios_task_as_future(m->ping_task)));
    return AIOS_STEP_AWAIT;
  case 1:
    BENCH_EXPECT(result_of(awaited) == (void *)(intptr_t)m->n, "ping finished with a wrong count");
    BENCH_CHECK(aios_task_await(task, aios_task_as_future(m->pong_task)));
    return AIOS_STEP_AWAIT;
  default:
    BENCH_EXPECT(result_of(awaited) == (void *)(intptr_t)m->n, "pong finished with a wrong count");
    m->t1 = bench_now();
    BENCH_EXPECT(m->ping.i == m->n && m->pong.i == m->n, "round trips: ping %ld, pong %ld of %ld",
                 m->ping.i, m->pong.i, m->n);
    long left1 = aios_queue_qsize(m->q1), left2 = aios_queue_qsize(m->q2);
    BENCH_EXPECT(left1 == 0 && left2 == 0, "queues hold %ld and %ld items at the end", left1, left2);
    BENCH_CHECK(aios_task_unref(m->ping_task));
    BENCH_CHECK(aios_task_unref(m->pong_task));
    BENCH_CHECK(aios_queue_unref(m->q1));
    BENCH_CHECK(aios_queue_unref(m->q2));
    return aios_task_return(task, NULL, NULL);
  }
}

static double queue_pingpong(aios_runner_t *runner, long n) {
  pingpong_main_t m;
  for (int round = 0; round < 2; round++) { /* 0: untimed warm-up */
    memset(&m, 0, sizeof m);
    m.n = n;
    run_main(runner, pingpong_main_step, &m);
  }
  return m.t1 - m.t0;
}

/* --------------------------------------------------------- lock_contention */

enum { LK_START, LK_AWAIT_ACQUIRE, LK_AWAIT_YIELD };

typedef struct lock_worker {
  long id, iters, done;
  int state;
} lock_worker_t;

static aios_lock_t *g_lock;
static long g_holder = -1; /* id of the worker inside the critical section */
static long g_sections;    /* critical sections run */
static long g_waited;      /* acquires that had to wait */

static void enter(lock_worker_t *w) {
  BENCH_EXPECT(g_holder == -1, "worker %ld acquired the lock while worker %ld holds it", w->id, g_holder);
  int locked = aios_lock_locked(g_lock);
  BENCH_CHECK(locked);
  BENCH_EXPECT(locked == 1, "worker %ld acquired the lock but aios_lock_locked says %d", w->id, locked);
  g_holder = w->id;
}

/* for _ in range(iters): async with lock: await asyncio.sleep(0) */
static int lock_worker_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  lock_worker_t *w = arg;
  aios_future_t *f;
  switch (w->state) {
  case LK_AWAIT_ACQUIRE:
    (void)result_of(awaited);
    goto held;
  case LK_AWAIT_YIELD:
    BENCH_EXPECT(awaited == NULL, "a bare yield resumed with a future");
    goto release;
  default:
    break;
  }
  while (w->done < w->iters) {
    BENCH_CHECK(aios_lock_acquire(g_lock, &f));
    if (!is_done(f)) {
      g_waited++;
      w->state = LK_AWAIT_ACQUIRE;
      return await_and_drop(task, f);
    }
    (void)result_of(f);
    BENCH_CHECK(aios_future_unref(f));
  held:
    enter(w);
    w->state = LK_AWAIT_YIELD;
    { /* await asyncio.sleep(0): one bare yield */
      int rc = aios_task_await(task, NULL);
      BENCH_CHECK(rc);
      return rc;
    }
  release:
    BENCH_EXPECT(g_holder == w->id, "worker %ld releases a lock held by %ld", w->id, g_holder);
    g_holder = -1;
    BENCH_CHECK(aios_lock_release(g_lock));
    g_sections++;
    w->done++;
  }
  return aios_task_return(task, (void *)(intptr_t)w->done, NULL);
}

typedef struct lock_main {
  long tasks, iters, next;
  int started;
  double t0, t1;
  lock_worker_t *workers;
  aios_task_t **handles;
} lock_main_t;

static int lock_main_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  lock_main_t *m = arg;
  if (!m->started) {
    m->started = 1;
    m->t0 = bench_now();
    BENCH_CHECK(aios_lock_new(g_loop, &g_lock));
    for (long i = 0; i < m->tasks; i++) {
      m->workers[i] = (lock_worker_t){i, m->iters, 0, LK_START};
      BENCH_CHECK(aios_task_new(g_loop, lock_worker_step, &m->workers[i], NULL, &m->handles[i]));
    }
  } else {
    /* for t in tasks: await t */
    BENCH_EXPECT(result_of(awaited) == (void *)(intptr_t)m->iters, "worker %ld finished with a wrong count",
                 m->next);
    m->next++;
  }
  if (m->next < m->tasks) {
    BENCH_CHECK(aios_task_await(task, aios_task_as_future(m->handles[m->next])));
    return AIOS_STEP_AWAIT;
  }
  m->t1 = bench_now();
  BENCH_EXPECT(g_sections == m->tasks * m->iters, "%ld critical sections, expected %ld", g_sections,
               m->tasks * m->iters);
  BENCH_EXPECT(g_holder == -1, "worker %ld still inside at the end", g_holder);
  int locked = aios_lock_locked(g_lock);
  BENCH_CHECK(locked);
  BENCH_EXPECT(locked == 0, "the lock is still locked at the end");
  for (long i = 0; i < m->tasks; i++) BENCH_CHECK(aios_task_unref(m->handles[i]));
  BENCH_CHECK(aios_lock_unref(g_lock));
  g_lock = NULL;
  return aios_task_return(task, NULL, NULL);
}

static double lock_contention(aios_runner_t *runner, long tasks, long iters, long *waited) {
  lock_main_t m;
  lock_worker_t *workers = malloc((size_t)tasks * sizeof *workers);
  aios_task_t **handles = malloc((size_t)tasks * sizeof *handles);
  if (workers == NULL || handles == NULL) {
    perror("malloc");
    exit(1);
  }
  for (int round = 0; round < 2; round++) { /* 0: untimed warm-up */
    memset(&m, 0, sizeof m);
    m.tasks = tasks;
    m.iters = iters;
    m.workers = workers;
    m.handles = handles;
    g_holder = -1;
    g_sections = g_waited = 0;
    run_main(runner, lock_main_step, &m);
  }
  free(workers);
  free(handles);
  *waited = g_waited;
  return m.t1 - m.t0;
}

/* ------------------------------------------------------------ event_fanout */

static aios_event_t *g_event;    /* what the waiters wait for */
static aios_event_t *g_all_done; /* set by the last waiter to finish */
static long g_fanout_n;
static long g_started, g_waiting, g_finished;

/* await event.wait(); the last one to finish sets all_done */
static int fanout_waiter_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  (void)arg;
  if (awaited == NULL) {
    aios_future_t *f;
    g_started++;
    BENCH_CHECK(aios_event_wait(g_event, &f));
    if (!is_done(f)) {
      g_waiting++;
      return await_and_drop(task, f);
    }
    (void)result_of(f);
    BENCH_CHECK(aios_future_unref(f));
  } else {
    (void)result_of(awaited);
  }
  if (++g_finished == g_fanout_n) BENCH_CHECK(aios_event_set(g_all_done));
  return aios_task_return(task, NULL, NULL);
}

enum { FO_START, FO_STARTING, FO_AWAIT_DONE };

typedef struct fanout_main {
  long tasks, rounds, round;
  int state;
  double setup_t0, t0, timed, setup;
  aios_task_t **handles;
} fanout_main_t;

static int fanout_main_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  fanout_main_t *m = arg;
  aios_future_t *f;
  for (;;) {
    switch (m->state) {
    case FO_START:
      if (m->round == m->rounds) return aios_task_return(task, NULL, NULL);
      m->setup_t0 = bench_now();
      g_fanout_n = m->tasks;
      g_started = g_waiting = g_finished = 0;
      BENCH_CHECK(aios_event_new(g_loop, &g_event));
      BENCH_CHECK(aios_event_new(g_loop, &g_all_done));
      for (long i = 0; i < m->tasks; i++)
        BENCH_CHECK(aios_task_new(g_loop, fanout_waiter_step, NULL, NULL, &m->handles[i]));
      m->state = FO_STARTING;
      /* fallthrough */
    case FO_STARTING:
      /* while started < n: await asyncio.sleep(0) */
      if (g_started < m->tasks) {
        int rc = aios_task_await(task, NULL);
        BENCH_CHECK(rc);
        return rc;
      }
      BENCH_EXPECT(g_waiting == m->tasks, "%ld of %ld tasks wait on the event", g_waiting, m->tasks);
      BENCH_EXPECT(g_finished == 0, "%ld tasks finished before the event was set", g_finished);
      m->setup += bench_now() - m->setup_t0;
      m->t0 = bench_now();
      BENCH_CHECK(aios_event_set(g_event));
      BENCH_CHECK(aios_event_wait(g_all_done, &f));
      /* set() only schedules the wake-ups: no waiter has run yet */
      BENCH_EXPECT(!is_done(f), "all_done is set right after set()");
      m->state = FO_AWAIT_DONE;
      return await_and_drop(task, f);
    case FO_AWAIT_DONE:
      (void)result_of(awaited);
      m->timed += bench_now() - m->t0;
      BENCH_EXPECT(g_finished == m->tasks, "%ld of %ld tasks woke up", g_finished, m->tasks);
      for (long i = 0; i < m->tasks; i++) {
        aios_future_t *t = aios_task_as_future(m->handles[i]);
        BENCH_EXPECT(is_done(t) == 1, "task %ld not done once all woke", i);
        (void)result_of(t);
        BENCH_CHECK(aios_task_unref(m->handles[i]));
      }
      BENCH_CHECK(aios_event_unref(g_event));
      BENCH_CHECK(aios_event_unref(g_all_done));
      g_event = g_all_done = NULL;
      m->round++;
      m->state = FO_START;
      break;
    }
  }
}

static double event_fanout(aios_runner_t *runner, long tasks, long rounds, double *setup) {
  fanout_main_t m;
  aios_task_t **handles = malloc((size_t)tasks * sizeof *handles);
  if (handles == NULL) {
    perror("malloc");
    exit(1);
  }
  for (int timed = 0; timed < 2; timed++) { /* 0: one untimed warm-up round */
    memset(&m, 0, sizeof m);
    m.tasks = tasks;
    m.rounds = timed ? rounds : 1;
    m.handles = handles;
    run_main(runner, fanout_main_step, &m);
    BENCH_EXPECT(m.round == m.rounds, "ran %ld of %ld rounds", m.round, m.rounds);
  }
  free(handles);
  *setup = m.setup;
  return m.timed;
}

/* -------------------------------------------------------------------- main */

static void usage(const char *argv0) {
  fprintf(stderr,
          "usage: %s queue_pingpong N | lock_contention TASKS ITERS | event_fanout TASKS ROUNDS\n",
          argv0);
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
  if (strcmp(name, "queue_pingpong") == 0) {
    long n = bench_arg(argc, argv, 2, 100000);
    double secs = queue_pingpong(runner, n);
    snprintf(line, sizeof line, "queue_pingpong %ld %.6f per_roundtrip_ns=%.1f", n, secs,
             secs / (double)n * 1e9);
  } else if (strcmp(name, "lock_contention") == 0) {
    long tasks = bench_arg(argc, argv, 2, 100), iters = bench_arg(argc, argv, 3, 1000), waited = 0;
    double secs = lock_contention(runner, tasks, iters, &waited);
    long n = tasks * iters;
    snprintf(line, sizeof line, "lock_contention %ld %.6f tasks=%ld iters=%ld waited=%ld per_op_ns=%.1f", n,
             secs, tasks, iters, waited, secs / (double)n * 1e9);
  } else if (strcmp(name, "event_fanout") == 0) {
    long tasks = bench_arg(argc, argv, 2, 10000), rounds = bench_arg(argc, argv, 3, 10);
    double setup = 0.0;
    double secs = event_fanout(runner, tasks, rounds, &setup);
    long n = tasks * rounds;
    snprintf(line, sizeof line,
             "event_fanout %ld %.6f tasks=%ld rounds=%ld setup_seconds=%.6f per_wakeup_ns=%.1f", n, secs,
             tasks, rounds, setup, secs / (double)n * 1e9);
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
