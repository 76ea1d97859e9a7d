/*
 * test_queues.c: asyncio's queues (Queue, LifoQueue, PriorityQueue) driven
 * by C tasks: CPython's Lib/test/test_asyncio/test_queues.py ported to step
 * functions, plus the ownership rules of the C API (a queue owns an item
 * from a successful put on, get hands it on, whatever is left is freed
 * exactly once). Orders are asserted exactly with the event log of
 * test_util.h.
 */
#include "test_util.h"

#include <stdint.h>

/* Items whose destructor counts its calls, per item and in total. */
typedef struct item_s {
  int id;
  int frees;
} item_t;

static int total_frees;

static void item_free(void *p) {
  ((item_t *)p)->frees++;
  total_frees++;
}

static void items_init(item_t *items, int n) {
  int i;
  for (i = 0; i < n; i++) {
    items[i].id = i;
    items[i].frees = 0;
  }
}

/* Workers (test_worker.h) log a result with `show` 2 as an item_t, by its
 * id (-1 for none): WAIT_ITEM. */
static void show_item(int show, void *value, char *buf, size_t size) {
  (void)show;
  snprintf(buf, size, "%d", value ? ((item_t *)value)->id : -1);
}

#define WORKER_SHOW_VALUE show_item
#include "test_worker.h"

#define WAIT_ITEM(fn, o, w) { OP_WAIT, (fn), NULL, (o), NULL, 0, 0, 0, 2, (w) }

/* ------------------------------------------------------------------------ */
/* begin/act adapters                                                         */

/* The argument of a put: which queue, what value. */
typedef struct put_s {
  aios_queue_t *q;
  void *value;
  aios_destructor_fn dtor;
  long long priority;
} put_t;

static int b_q_get(void *o, aios_future_t **out) { return aios_queue_get((aios_queue_t *)o, out); }
static int b_q_put(void *o, aios_future_t **out) {
  put_t *p = (put_t *)o;
  return aios_queue_put(p->q, p->value, p->dtor, p->priority, out);
}
static int b_q_join(void *o, aios_future_t **out) { return aios_queue_join((aios_queue_t *)o, out); }

static put_t int_put(aios_queue_t *q, intptr_t v) {
  put_t p;
  p.q = q;
  p.value = (void *)v;
  p.dtor = NULL;
  p.priority = 0;
  return p;
}

static put_t item_put(aios_queue_t *q, item_t *item, long long priority) {
  put_t p;
  p.q = q;
  p.value = item;
  p.dtor = item_free;
  p.priority = priority;
  return p;
}

/* ------------------------------------------------------------------------ */
/* Queue helpers                                                              */

static aios_queue_t *new_queue(aios_loop_t *loop, int kind, long maxsize) {
  aios_queue_t *q = NULL;
  long before = live_count(AIOS_OBJECT_QUEUE);
  CHECK_EQ(aios_queue_new(loop, kind, maxsize, &q), 0);
  CHECK(q != NULL);
  CHECK_EQ(live_count(AIOS_OBJECT_QUEUE), before + 1);
  CHECK_EQ(aios_queue_maxsize(q), maxsize);
  CHECK_EQ(aios_queue_qsize(q), 0);
  CHECK_EQ(aios_queue_empty(q), 1);
  CHECK_EQ(aios_queue_full(q), 0);
  return q;
}

static void put_int_nowait(aios_queue_t *q, intptr_t v) {
  CHECK_EQ(aios_queue_put_nowait(q, (void *)v, NULL, 0), 0);
}

/* get_nowait of an integer item. */
static intptr_t get_int_nowait(aios_queue_t *q) {
  void *v = (void *)-1;
  aios_destructor_fn d = item_free;
  CHECK_EQ(aios_queue_get_nowait(q, &v, &d), 0);
  CHECK(d == NULL);
  return (intptr_t)v;
}

/* put() that must not wait. */
static void put_now(aios_queue_t *q, void *v, aios_destructor_fn d, long long priority) {
  aios_future_t *f = NULL;
  int rc = aios_queue_put(q, v, d, priority, &f);
  check_done_now(rc, f);
}

/* get() that must not wait: the value, moved out of the future. */
static void *get_now(aios_queue_t *q, aios_destructor_fn *dtor) {
  aios_future_t *f = NULL;
  void *v = NULL;
  aios_destructor_fn d = NULL;
  CHECK_EQ(aios_queue_get(q, &f), 0);
  CHECK(f != NULL);
  CHECK_EQ(aios_future_done(f), 1);
  CHECK_EQ(aios_future_take_result(f, &v, &d), 0);
  CHECK_EQ(aios_future_unref(f), 0);
  if (dtor)
    *dtor = d;
  else
    CHECK(d == NULL);
  return v;
}

static void check_queue_shut_down(aios_queue_t *q) {
  aios_future_t *f = NULL;
  void *v = NULL;
  int dummy = 0;
  /* A waiting call reports QueueShutDown through its future, as awaiting
   * put() raises it; the call itself succeeded, so the queue had the value
   * and freed it. */
  CHECK_EQ(aios_queue_put(q, &dummy, count_destructor, 0, &f), 0);
  CHECK_EQ(aios_future_done(f), 1);
  CHECK_EQ(aios_future_result(f, NULL), AIOS_EQUEUESHUTDOWN);
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(dummy, 1);
  /* put_nowait refuses at once, and the caller keeps the value. */
  CHECK_EQ(aios_queue_put_nowait(q, &dummy, count_destructor, 0), AIOS_EQUEUESHUTDOWN);
  CHECK_EQ(dummy, 1);
  if (aios_queue_empty(q) == 1) {
    f = NULL;
    CHECK_EQ(aios_queue_get(q, &f), 0);
    CHECK_EQ(aios_future_done(f), 1);
    CHECK_EQ(aios_future_result(f, NULL), AIOS_EQUEUESHUTDOWN);
    CHECK_EQ(aios_future_unref(f), 0);
    CHECK_EQ(aios_queue_get_nowait(q, &v, NULL), AIOS_EQUEUESHUTDOWN);
  }
}

/* ======================================================================== */
/* Basics and order                                                           */

/* test_empty, test_full, sizes, bad arguments. */
static void test_queue_basics(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, AIOS_QUEUE_FIFO, 0);
  aios_queue_t *q1 = new_queue(loop, AIOS_QUEUE_FIFO, 1);
  aios_queue_t *bad = NULL;
  int i;

  CHECK_EQ(aios_queue_new(loop, 3, 0, &bad), AIOS_EINVAL);
  CHECK(bad == NULL);
  CHECK_EQ(aios_queue_new(loop, -1, 0, &bad), AIOS_EINVAL);
  CHECK(bad == NULL);

  put_now(q, (void *)1, NULL, 0);
  CHECK_EQ(aios_queue_empty(q), 0);
  CHECK_EQ(aios_queue_qsize(q), 1);
  CHECK_EQ((intptr_t)get_now(q, NULL), 1);
  CHECK_EQ(aios_queue_empty(q), 1);
  for (i = 0; i < 100; i++)
    put_int_nowait(q, i);
  CHECK_EQ(aios_queue_full(q), 0); /* unbounded */
  CHECK_EQ(aios_queue_qsize(q), 100);

  put_now(q1, (void *)1, NULL, 0);
  CHECK_EQ(aios_queue_full(q1), 1);
  CHECK_EQ(aios_queue_qsize(q1), 1);
  CHECK_EQ(aios_queue_unref(q), 0);
  CHECK_EQ(aios_queue_unref(q1), 0);
  close_loop(loop);
}

/* test_order for Queue, LifoQueue and PriorityQueue. */
static void check_order(int kind, const intptr_t *expected) {
  static const intptr_t in[3] = {1, 3, 2};
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, kind, 0);
  int i;

  for (i = 0; i < 3; i++)
    put_now(q, (void *)in[i], NULL, in[i]);
  for (i = 0; i < 3; i++)
    CHECK_EQ((intptr_t)get_now(q, NULL), expected[i]);
  CHECK_EQ(aios_queue_empty(q), 1);
  CHECK_EQ(aios_queue_unref(q), 0);
  close_loop(loop);
}

static void test_queue_order_fifo(void) {
  static const intptr_t out[3] = {1, 3, 2};
  check_order(AIOS_QUEUE_FIFO, out);
}

static void test_queue_order_lifo(void) {
  static const intptr_t out[3] = {2, 3, 1};
  check_order(AIOS_QUEUE_LIFO, out);
}

static void test_queue_order_priority(void) {
  static const intptr_t out[3] = {1, 2, 3};
  check_order(AIOS_QUEUE_PRIORITY, out);
}

/* The priority is ignored by FIFO and LIFO queues. */
static void test_queue_priority_ignored_by_fifo_and_lifo(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *fifo = new_queue(loop, AIOS_QUEUE_FIFO, 0);
  aios_queue_t *lifo = new_queue(loop, AIOS_QUEUE_LIFO, 0);
  static const long long prio[4] = {5, -1, 9, 0};
  int i;

  for (i = 0; i < 4; i++) {
    CHECK_EQ(aios_queue_put_nowait(fifo, (void *)(intptr_t)i, NULL, prio[i]), 0);
    CHECK_EQ(aios_queue_put_nowait(lifo, (void *)(intptr_t)i, NULL, prio[i]), 0);
  }
  for (i = 0; i < 4; i++) {
    CHECK_EQ(get_int_nowait(fifo), i);
    CHECK_EQ(get_int_nowait(lifo), 3 - i);
  }
  CHECK_EQ(aios_queue_unref(fifo), 0);
  CHECK_EQ(aios_queue_unref(lifo), 0);
  close_loop(loop);
}

/* Smallest priority first; equal priorities leave in arrival order (a
 * stable heap), with negative and large priorities too. */
static void test_queue_priority_ties_in_arrival_order(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, AIOS_QUEUE_PRIORITY, 0);
  enum { N = 60 };
  long long prio[N];
  int taken[N];
  int i, j, n = 0;

  for (i = 0; i < N; i++) {
    /* a scrambled mix of a few priorities */
    static const long long levels[5] = {3, -7, 3, 1LL << 40, 0};
    prio[i] = levels[(i * 7 + i / 3) % 5];
    CHECK_EQ(aios_queue_put_nowait(q, (void *)(intptr_t)i, NULL, prio[i]), 0);
    /* take some out on the way, as a heap sees it */
    if (i % 9 == 8) {
      intptr_t v = get_int_nowait(q);
      taken[n++] = (int)v;
      /* nothing left in the queue may come before v */
      for (j = 0; j < i; j++) {
        int k, gone = 0;
        for (k = 0; k < n; k++)
          gone |= taken[k] == j;
        if (!gone)
          CHECK(prio[j] > prio[v] || (prio[j] == prio[v] && j > v));
      }
    }
  }
  {
    intptr_t last = -1;
    while (aios_queue_empty(q) == 0) {
      intptr_t v = get_int_nowait(q);
      if (last >= 0)
        CHECK(prio[last] < prio[v] || (prio[last] == prio[v] && last < v));
      last = v;
      n++;
    }
  }
  CHECK_EQ(n, N);

  /* The simple case, spelled out: (5,a) (1,b) (5,c) (1,d) (3,e) (5,f). */
  {
    static const long long p[6] = {5, 1, 5, 1, 3, 5};
    static const intptr_t order[6] = {1, 3, 4, 0, 2, 5};
    for (i = 0; i < 6; i++)
      CHECK_EQ(aios_queue_put_nowait(q, (void *)(intptr_t)i, NULL, p[i]), 0);
    for (i = 0; i < 6; i++)
      CHECK_EQ((intptr_t)get_now(q, NULL), order[i]);
  }
  CHECK_EQ(aios_queue_unref(q), 0);
  close_loop(loop);
}

/* test_maxsize: a put into a full queue waits until a get makes room. */
static void test_queue_maxsize_blocks_put(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, AIOS_QUEUE_FIFO, 2);
  put_t p0 = int_put(q, 0), p1 = int_put(q, 1), p2 = int_put(q, 2);
  worker_t w = {.name = "p", .ops = {WAIT(b_q_put, &p0, "+0"), WAIT(b_q_put, &p1, "+1"),
                                     WAIT(b_q_put, &p2, "+2"), END()}};

  CHECK_EQ(aios_queue_maxsize(q), 2);
  spawn(loop, &w);
  run_iterations(loop, 2);
  CHECK_LOG("p+0 p+1"); /* blocked on the third */
  CHECK_EQ(aios_queue_full(q), 1);
  CHECK_EQ((intptr_t)get_now(q, NULL), 0);
  CHECK_EQ(aios_queue_full(q), 0);
  run_once(loop);
  CHECK_LOG("p+0 p+1 p+2");
  CHECK_EQ(aios_queue_full(q), 1);
  CHECK_EQ((intptr_t)get_now(q, NULL), 1);
  CHECK_EQ((intptr_t)get_now(q, NULL), 2);
  finish_worker(&w, 0);
  CHECK_EQ(aios_queue_unref(q), 0);
  close_loop(loop);
}

/* ======================================================================== */
/* Ownership                                                                  */

/* test_nonblocking_put_exception: put_nowait on a full queue is
 * AIOS_EQUEUEFULL and the caller keeps the value; get_nowait on an empty
 * one is AIOS_EQUEUEEMPTY (test_nonblocking_get_exception). */
static void test_queue_nowait_full_and_empty(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, AIOS_QUEUE_FIFO, 1);
  item_t it[2];
  void *v = (void *)&it[1];
  aios_destructor_fn d = item_free;

  items_init(it, 2);
  CHECK_EQ(aios_queue_get_nowait(q, &v, &d), AIOS_EQUEUEEMPTY);
  CHECK_PTR_EQ(v, &it[1]); /* untouched */
  CHECK(d == item_free);
  CHECK_EQ(aios_queue_put_nowait(q, &it[0], item_free, 0), 0);
  CHECK_EQ(aios_queue_put_nowait(q, &it[1], item_free, 0), AIOS_EQUEUEFULL);
  CHECK_EQ(it[1].frees, 0); /* still the caller's */
  CHECK_EQ(aios_queue_qsize(q), 1);
  CHECK_EQ(aios_queue_get_nowait(q, &v, &d), 0);
  CHECK_PTR_EQ(v, &it[0]);
  CHECK(d == item_free);
  CHECK_EQ(it[0].frees, 0); /* now the caller's */
  CHECK_EQ(aios_queue_get_nowait(q, &v, NULL), AIOS_EQUEUEEMPTY);
  CHECK_EQ(aios_queue_unref(q), 0);
  close_loop(loop);
  CHECK_EQ(it[0].frees, 0);
  CHECK_EQ(it[1].frees, 0);
}

/* get() hands the item to its future: aios_future_take_result moves it
 * out (the future then frees nothing); an item nobody takes is freed with
 * the future, once. */
static void test_queue_get_future_owns_item(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, AIOS_QUEUE_FIFO, 0);
  item_t it[3];
  aios_future_t *f = NULL;
  void *v = NULL;
  aios_destructor_fn d = NULL;

  items_init(it, 3);
  put_now(q, &it[0], item_free, 0);
  put_now(q, &it[1], item_free, 0);
  CHECK_EQ(aios_queue_qsize(q), 2);

  v = get_now(q, &d);
  CHECK_PTR_EQ(v, &it[0]);
  CHECK(d == item_free);
  CHECK_EQ(it[0].frees, 0);
  d(v);
  CHECK_EQ(it[0].frees, 1);

  CHECK_EQ(aios_queue_get(q, &f), 0);
  CHECK_EQ(aios_future_done(f), 1);
  CHECK_EQ(aios_future_result(f, &v), 0); /* lent */
  CHECK_PTR_EQ(v, &it[1]);
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(it[1].frees, 1);

  /* A get() that had to wait owns the item the same way. */
  CHECK_EQ(aios_queue_get(q, &f), 0);
  CHECK_EQ(aios_future_done(f), 0);
  CHECK_EQ(aios_queue_put_nowait(q, &it[2], item_free, 0), 0);
  run_once(loop);
  CHECK_EQ(aios_future_done(f), 1);
  CHECK_EQ(aios_future_take_result(f, &v, &d), 0);
  CHECK_PTR_EQ(v, &it[2]);
  CHECK(d == item_free);
  CHECK_EQ(aios_future_take_result(f, &v, &d), 0); /* taken: nothing left */
  CHECK(v == NULL);
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(it[2].frees, 0);
  item_free(&it[2]);
  CHECK_EQ(aios_queue_unref(q), 0);
  close_loop(loop);
  CHECK_EQ(it[0].frees, 1);
  CHECK_EQ(it[1].frees, 1);
  CHECK_EQ(it[2].frees, 1);
}

/* Freeing a queue that still holds items calls each destructor exactly
 * once, whether the loop is open or already closed. */
static void queue_freed_with_items(int close_first) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, close_first ? AIOS_QUEUE_PRIORITY : AIOS_QUEUE_FIFO, 0);
  item_t it[5];
  int i;

  items_init(it, 5);
  total_frees = 0;
  for (i = 0; i < 5; i++)
    CHECK_EQ(aios_queue_put_nowait(q, &it[i], item_free, 5 - i), 0);
  {
    aios_destructor_fn d = NULL;
    void *v = get_now(q, &d);
    CHECK_PTR_EQ(v, &it[close_first ? 4 : 0]); /* priority 1, or first in */
    d(v);
  }
  CHECK_EQ(total_frees, 1);
  CHECK_EQ(aios_queue_ref(q), 0);
  CHECK_EQ(aios_queue_unref(q), 0);
  CHECK_EQ(total_frees, 1);
  if (close_first)
    close_loop(loop);
  CHECK_EQ(aios_queue_unref(q), 0);
  CHECK_EQ(total_frees, 5);
  for (i = 0; i < 5; i++)
    CHECK_EQ(it[i].frees, 1);
  if (!close_first)
    close_loop(loop);
  CHECK_EQ(total_frees, 5);
}

static void test_queue_freed_with_items(void) { queue_freed_with_items(0); }
static void test_queue_freed_with_items_after_loop_closed(void) { queue_freed_with_items(1); }

/* ======================================================================== */
/* Get                                                                        */

/* test_blocking_get_wait / test_put_with_waiting_getters: a getter that
 * waits gets the item put later. */
static void put_nowait_cb(void *arg) {
  put_t *p = (put_t *)arg;
  CHECK_EQ(aios_queue_put_nowait(p->q, p->value, p->dtor, p->priority), 0);
}

static void test_queue_blocking_get(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, AIOS_QUEUE_FIFO, 0);
  worker_t g = {.name = "g", .ops = {LOG(".start"), WAIT_SHOW(b_q_get, q, "="), END()}};
  put_t p = int_put(q, 1);

  spawn(loop, &g);
  run_once(loop);
  CHECK_LOG("g.start");
  CHECK_EQ(is_done(&g), 0);
  call_soon(loop, put_nowait_cb, &p);
  CHECK_EQ(run_worker(loop, &g), 0);
  CHECK_LOG("g.start g=1");
  CHECK_EQ(g.immediate, 0);
  finish_worker_value(&g, 1);
  CHECK_EQ(aios_queue_empty(q), 1);
  CHECK_EQ(aios_queue_unref(q), 0);
  close_loop(loop);
}

/* test_get_cancelled_race: a cancelled getter does not take the item. */
static void test_queue_get_cancelled_race(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, AIOS_QUEUE_FIFO, 0);
  worker_t t1 = {.name = "t1", .ops = {WAIT_SHOW(b_q_get, q, "="), END()}};
  worker_t t2 = {.name = "t2", .ops = {WAIT_SHOW(b_q_get, q, "="), END()}};

  spawn(loop, &t1);
  spawn(loop, &t2);
  run_once(loop);
  CHECK_EQ(aios_task_cancel(t1.task, NULL), 1);
  run_once(loop);
  CHECK_EQ(is_done(&t1), 1);
  put_now(q, (void *)'a', NULL, 0);
  run_once(loop);
  CHECK_EQ(run_worker(loop, &t2), 0);
  CHECK_LOG("t1!ECANCELLED t2=97");
  finish_worker(&t1, AIOS_ECANCELLED);
  finish_worker_value(&t2, 'a');
  CHECK_EQ(aios_queue_unref(q), 0);
  close_loop(loop);
}

/* test_get_cancel_drop_one_pending_reader: a reader woken by a put and
 * cancelled before it runs loses no item: the next reader gets 1, not 2. */
static void test_queue_get_cancel_drop_one_pending_reader(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, AIOS_QUEUE_FIFO, 0);
  item_t it[3];
  worker_t r1 = {.name = "r1", .ops = {WAIT_ITEM(b_q_get, q, "="), END()}};
  worker_t r2 = {.name = "r2", .ops = {WAIT_ITEM(b_q_get, q, "="), END()}};
  void *v = NULL;

  items_init(it, 3);
  total_frees = 0;
  spawn(loop, &r1);
  run_once(loop);
  CHECK_EQ(aios_queue_put_nowait(q, &it[1], item_free, 0), 0);
  CHECK_EQ(aios_queue_put_nowait(q, &it[2], item_free, 0), 0);
  CHECK_EQ(aios_task_cancel(r1.task, NULL), 1);
  CHECK_EQ(run_worker(loop, &r1), AIOS_ECANCELLED);
  CHECK_EQ(total_frees, 0); /* nothing was dropped */
  CHECK_EQ(aios_queue_qsize(q), 2);
  spawn(loop, &r2);
  CHECK_EQ(run_worker(loop, &r2), 0);
  CHECK_LOG("r1!ECANCELLED r2=1");
  CHECK_EQ(aios_future_result(tf(&r2), &v), 0);
  CHECK_PTR_EQ(v, &it[1]);
  finish_worker(&r1, AIOS_ECANCELLED);
  finish_worker(&r2, 0); /* the task's result owned it */
  CHECK_EQ(it[1].frees, 1);
  CHECK_EQ(aios_queue_qsize(q), 1);
  CHECK_EQ(aios_queue_unref(q), 0); /* frees item 2 */
  close_loop(loop);
  CHECK_EQ(it[2].frees, 1);
  CHECK_EQ(total_frees, 2);
}

/* test_get_cancel_drop_many_pending_readers: reader1 is woken by put 1,
 * reader2 by put 2, reader1 is cancelled: its wake-up passes to reader3. */
static void test_queue_get_cancel_drop_many_pending_readers(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, AIOS_QUEUE_FIFO, 0);
  worker_t r[3];
  int i;

  for (i = 0; i < 3; i++) {
    worker_t w = {.name = NULL, .ops = {WAIT_SHOW(b_q_get, q, "="), END()}};
    w.name = i == 0 ? "r1" : i == 1 ? "r2" : "r3";
    r[i] = w;
    spawn(loop, &r[i]);
  }
  run_once(loop);
  put_int_nowait(q, 1);
  put_int_nowait(q, 2);
  CHECK_EQ(aios_task_cancel(r[0].task, NULL), 1);
  CHECK_EQ(run_worker(loop, &r[0]), AIOS_ECANCELLED);
  CHECK_EQ(run_worker(loop, &r[2]), 0);
  CHECK_EQ(run_worker(loop, &r[1]), 0);
  CHECK_LOG("r1!ECANCELLED r2=1 r3=2");
  finish_worker(&r[0], AIOS_ECANCELLED);
  finish_worker_value(&r[1], 1);
  finish_worker_value(&r[2], 2);
  CHECK_EQ(aios_queue_empty(q), 1);
  CHECK_EQ(aios_queue_unref(q), 0);
  close_loop(loop);
}

/* The same without tasks: a get future cancelled after the put woke it
 * passes the item to the next get future. */
static void test_queue_cancel_woken_get_future(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, AIOS_QUEUE_FIFO, 0);
  aios_future_t *g1 = NULL, *g2 = NULL;
  void *v = NULL;

  CHECK_EQ(aios_queue_get(q, &g1), 0);
  CHECK_EQ(aios_queue_get(q, &g2), 0);
  put_int_nowait(q, 7);
  CHECK_EQ(aios_future_cancel(g1, NULL), 1);
  run_iterations(loop, 2);
  CHECK_EQ(aios_future_cancelled(g1), 1);
  CHECK_EQ(aios_future_done(g2), 1);
  CHECK_EQ(aios_future_result(g2, &v), 0);
  CHECK_EQ((intptr_t)v, 7);
  CHECK_EQ(aios_queue_empty(q), 1);
  CHECK_EQ(aios_future_unref(g1), 0);
  CHECK_EQ(aios_future_unref(g2), 0);
  CHECK_EQ(aios_queue_unref(q), 0);
  close_loop(loop);
}

/* test_get_with_waiting_putters: gets free room for blocked putters. */
static void test_queue_get_with_waiting_putters(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, AIOS_QUEUE_FIFO, 1);
  put_t pa = int_put(q, 'a'), pb = int_put(q, 'b');
  worker_t a = {.name = "a", .ops = {WAIT(b_q_put, &pa, ".put"), END()}};
  worker_t b = {.name = "b", .ops = {WAIT(b_q_put, &pb, ".put"), END()}};
  worker_t g = {.name = "g", .ops = {WAIT_SHOW(b_q_get, q, "="), WAIT_SHOW(b_q_get, q, "="), END()}};

  spawn(loop, &a);
  spawn(loop, &b);
  spawn(loop, &g);
  CHECK_EQ(run_worker(loop, &g), 0);
  CHECK_EQ(run_worker(loop, &b), 0);
  CHECK_LOG("a.put g=97 b.put g=98");
  finish_worker(&a, 0);
  finish_worker(&b, 0);
  finish_worker_value(&g, 'b');
  CHECK_EQ(aios_queue_unref(q), 0);
  close_loop(loop);
}

/* ======================================================================== */
/* Put                                                                        */

/* test_put_cancel_drop: a blocked put cancelled after a get made room (it
 * was woken) does not put its item, which the queue frees; a new put goes
 * through. */
static void test_queue_put_cancel_drop(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, AIOS_QUEUE_FIFO, 1);
  item_t it[3];
  put_t p2, p2b;
  worker_t w1, w2;
  void *v = NULL;
  aios_destructor_fn d = NULL;

  items_init(it, 3);
  total_frees = 0;
  p2 = item_put(q, &it[1], 0);
  p2b = item_put(q, &it[2], 0);
  {
    worker_t a = {.name = "w", .ops = {WAIT(b_q_put, &p2, ".put"), END()}};
    worker_t b = {.name = "w2", .ops = {WAIT(b_q_put, &p2b, ".put"), END()}};
    w1 = a;
    w2 = b;
  }
  CHECK_EQ(aios_queue_put_nowait(q, &it[0], item_free, 0), 0);
  spawn(loop, &w1);
  run_once(loop);
  CHECK_EQ(aios_queue_get_nowait(q, &v, &d), 0);
  CHECK_PTR_EQ(v, &it[0]);
  d(v);
  CHECK_EQ(aios_task_cancel(w1.task, NULL), 1);
  CHECK_EQ(run_worker(loop, &w1), AIOS_ECANCELLED);
  CHECK_EQ(it[1].frees, 1); /* the queue owned it and dropped it */
  CHECK_EQ(aios_queue_qsize(q), 0);
  spawn(loop, &w2);
  CHECK_EQ(run_worker(loop, &w2), 0);
  CHECK_LOG("w!ECANCELLED w2.put");
  CHECK_EQ(aios_queue_get_nowait(q, &v, &d), 0);
  CHECK_PTR_EQ(v, &it[2]);
  d(v);
  CHECK_EQ(aios_queue_qsize(q), 0);
  finish_worker(&w1, AIOS_ECANCELLED);
  finish_worker(&w2, 0);
  CHECK_EQ(aios_queue_unref(q), 0);
  close_loop(loop);
  CHECK_EQ(total_frees, 3);
  CHECK_EQ(it[0].frees + it[1].frees + it[2].frees, 3);
}

/* test_put_cancelled_race: a cancelled blocked put does not take the room
 * meant for the one before it. */
static void test_queue_put_cancelled_race(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, AIOS_QUEUE_FIFO, 1);
  put_t pa = int_put(q, 'a'), pb = int_put(q, 'b'), pc = int_put(q, 'X');
  worker_t a = {.name = "a", .ops = {WAIT(b_q_put, &pa, ".put"), END()}};
  worker_t b = {.name = "b", .ops = {WAIT(b_q_put, &pb, ".put"), END()}};
  worker_t c = {.name = "c", .ops = {WAIT(b_q_put, &pc, ".put"), END()}};

  spawn(loop, &a);
  spawn(loop, &b);
  spawn(loop, &c);
  run_once(loop);
  CHECK_EQ(is_done(&a), 1);
  CHECK_EQ(is_done(&b), 0);
  CHECK_EQ(aios_task_cancel(c.task, NULL), 1);
  run_once(loop);
  CHECK_EQ(is_done(&c), 1);
  CHECK_EQ(get_int_nowait(q), 'a');
  run_once(loop);
  CHECK_EQ(get_int_nowait(q), 'b');
  CHECK_EQ(run_worker(loop, &b), 0);
  CHECK_LOG("a.put c!ECANCELLED b.put");
  CHECK_EQ(aios_queue_empty(q), 1);
  finish_worker(&a, 0);
  finish_worker(&b, 0);
  finish_worker(&c, AIOS_ECANCELLED);
  CHECK_EQ(aios_queue_unref(q), 0);
  close_loop(loop);
}

/* test_cancelled_puts_not_being_held_in_self_putters, and the put future
 * cancelled directly: its item is freed, once; the queue is unchanged. */
static void test_queue_cancel_blocked_put_future(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, AIOS_QUEUE_LIFO, 1);
  item_t it[2];
  aios_future_t *f = NULL;

  items_init(it, 2);
  total_frees = 0;
  CHECK_EQ(aios_queue_put_nowait(q, &it[0], item_free, 0), 0);
  CHECK_EQ(aios_queue_put(q, &it[1], item_free, 0, &f), 0);
  CHECK_EQ(aios_future_done(f), 0);
  CHECK_EQ(aios_future_cancel(f, NULL), 1);
  run_once(loop);
  CHECK_EQ(aios_future_cancelled(f), 1);
  CHECK_EQ(it[1].frees, 1);
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(aios_queue_qsize(q), 1);
  /* No putter is left behind to be woken: a get just makes room. */
  {
    aios_destructor_fn d = NULL;
    void *v = get_now(q, &d);
    CHECK_PTR_EQ(v, &it[0]);
    d(v);
  }
  CHECK_EQ(aios_queue_qsize(q), 0);
  run_once(loop);
  CHECK_EQ(aios_queue_qsize(q), 0);
  CHECK_EQ(aios_queue_unref(q), 0);
  close_loop(loop);
  CHECK_EQ(total_frees, 2);
}

/* ======================================================================== */
/* task_done and join                                                         */

/* test_task_done_underflow, test_join_empty_queue. */
static void test_queue_task_done_underflow_and_join_empty(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, AIOS_QUEUE_FIFO, 0);
  aios_future_t *f = NULL;
  int rc;

  CHECK_EQ(aios_queue_task_done(q), AIOS_ERELEASED);
  rc = aios_queue_join(q, &f);
  check_done_now(rc, f);
  rc = aios_queue_join(q, &f);
  check_done_now(rc, f);
  put_int_nowait(q, 1);
  CHECK_EQ(get_int_nowait(q), 1);
  CHECK_EQ(aios_queue_task_done(q), 0);
  CHECK_EQ(aios_queue_task_done(q), AIOS_ERELEASED);
  rc = aios_queue_join(q, &f);
  check_done_now(rc, f);
  CHECK_EQ(aios_queue_unref(q), 0);
  close_loop(loop);
}

/* join's future is done only after every task_done, not after the gets. */
static void test_queue_join_waits_for_every_task_done(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, AIOS_QUEUE_FIFO, 0);
  aios_future_t *j1 = NULL, *j2 = NULL;
  int i;

  for (i = 0; i < 3; i++)
    put_int_nowait(q, i);
  CHECK_EQ(aios_queue_join(q, &j1), 0);
  CHECK_EQ(aios_future_done(j1), 0);
  for (i = 0; i < 3; i++)
    CHECK_EQ(get_int_nowait(q), i);
  run_once(loop);
  CHECK_EQ(aios_future_done(j1), 0); /* empty, but not done with */
  CHECK_EQ(aios_queue_task_done(q), 0);
  CHECK_EQ(aios_queue_task_done(q), 0);
  run_once(loop);
  CHECK_EQ(aios_future_done(j1), 0);
  CHECK_EQ(aios_queue_join(q, &j2), 0);
  CHECK_EQ(aios_future_done(j2), 0);
  CHECK_EQ(aios_queue_task_done(q), 0);
  run_once(loop);
  CHECK_EQ(aios_future_done(j1), 1);
  CHECK_EQ(aios_future_result(j1, NULL), 0);
  CHECK_EQ(aios_future_done(j2), 1);
  CHECK_EQ(aios_future_result(j2, NULL), 0);
  CHECK_EQ(aios_queue_task_done(q), AIOS_ERELEASED);
  CHECK_EQ(aios_future_unref(j1), 0);
  CHECK_EQ(aios_future_unref(j2), 0);
  CHECK_EQ(aios_queue_unref(q), 0);
  close_loop(loop);
}

/* test_task_done: two workers process 100 items, calling task_done after
 * each; join returns once all are processed. For each kind of queue. */
typedef struct pool_s {
  aios_queue_t *q;
  int running;
  long accumulator;
  int processed;
} pool_t;

typedef struct pworker_s {
  pool_t *pool;
  int waiting;
} pworker_t;

static int pool_worker_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  pworker_t *me = (pworker_t *)arg;
  pool_t *p = me->pool;
  aios_future_t *held = NULL;
  int rc;

  for (;;) {
    if (me->waiting) {
      void *v = NULL;
      me->waiting = 0;
      rc = aios_future_result(awaited, &v);
      if (held)
        CHECK_EQ(aios_future_unref(held), 0);
      held = NULL;
      if (rc < 0)
        return rc;
      p->accumulator += (long)(intptr_t)v;
      p->processed++;
      CHECK_EQ(aios_queue_task_done(p->q), 0);
    }
    if (!p->running)
      return aios_task_return(task, NULL, NULL);
    CHECK_EQ(aios_queue_get(p->q, &held), 0);
    me->waiting = 1;
    if (aios_future_done(held) == 1) {
      awaited = held;
      continue;
    }
    rc = aios_task_await(task, held);
    CHECK_EQ(aios_future_unref(held), 0);
    return rc;
  }
}

static void queue_task_done(int kind) {
  aios_loop_t *loop = make_loop();
  pool_t p;
  pworker_t w[2];
  aios_task_t *t[2];
  aios_future_t *join = NULL;
  int i;

  memset(&p, 0, sizeof p);
  p.q = new_queue(loop, kind, 0);
  p.running = 1;
  for (i = 0; i < 100; i++)
    CHECK_EQ(aios_queue_put_nowait(p.q, (void *)(intptr_t)i, NULL, 100 - i), 0);
  for (i = 0; i < 2; i++) {
    w[i].pool = &p;
    w[i].waiting = 0;
    CHECK_EQ(aios_task_new(loop, pool_worker_step, &w[i], NULL, &t[i]), 0);
  }
  CHECK_EQ(aios_queue_join(p.q, &join), 0);
  CHECK_EQ(aios_future_done(join), 0);
  CHECK_EQ(run_bounded(loop, join), 0);
  CHECK_EQ(p.accumulator, 99 * 100 / 2);
  CHECK_EQ(p.processed, 100);
  CHECK_EQ(aios_future_unref(join), 0);

  p.running = 0;
  for (i = 0; i < 2; i++)
    put_int_nowait(p.q, 0);
  for (i = 0; i < 2; i++) {
    CHECK_EQ(run_bounded(loop, aios_task_as_future(t[i])), 0);
    CHECK_EQ(aios_task_unref(t[i]), 0);
  }
  CHECK_EQ(p.processed, 102);
  CHECK_EQ(aios_queue_empty(p.q), 1);
  CHECK_EQ(aios_queue_unref(p.q), 0);
  close_loop(loop);
}

static void test_queue_task_done_fifo(void) { queue_task_done(AIOS_QUEUE_FIFO); }
static void test_queue_task_done_lifo(void) { queue_task_done(AIOS_QUEUE_LIFO); }
static void test_queue_task_done_priority(void) { queue_task_done(AIOS_QUEUE_PRIORITY); }

/* ======================================================================== */
/* Shutdown                                                                   */

/* test_shutdown_empty: a pending get fails once the queue is shut down;
 * join is done; puts and gets fail. */
static void queue_shutdown_empty(int kind) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, kind, 0);
  worker_t g = {.name = "g", .ops = {WAIT_SHOW(b_q_get, q, "="), END()}};
  aios_future_t *f = NULL;
  int rc;

  spawn(loop, &g);
  run_once(loop);
  CHECK_EQ(aios_queue_shutdown(q, 0), 0);
  CHECK_EQ(aios_queue_qsize(q), 0);
  rc = aios_queue_join(q, &f);
  check_done_now(rc, f);
  run_once(loop);
  CHECK_EQ(is_done(&g), 1);
  CHECK_LOG("g!EQUEUESHUTDOWN");
  finish_worker(&g, AIOS_EQUEUESHUTDOWN);
  check_queue_shut_down(q);
  CHECK_EQ(aios_queue_shutdown(q, 0), 0); /* again: no-op */
  CHECK_EQ(aios_queue_unref(q), 0);
  close_loop(loop);
}

static void test_queue_shutdown_empty(void) { queue_shutdown_empty(AIOS_QUEUE_FIFO); }
static void test_queue_shutdown_empty_lifo(void) { queue_shutdown_empty(AIOS_QUEUE_LIFO); }
static void test_queue_shutdown_empty_priority(void) { queue_shutdown_empty(AIOS_QUEUE_PRIORITY); }

/* test_shutdown_nonempty: the blocked put fails (its item is freed), gets
 * drain the queue then fail, join waits for task_done. */
static void queue_shutdown_nonempty(int kind) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, kind, 1);
  item_t it[2];
  put_t p = item_put(q, &it[1], 0);
  worker_t jw = {.name = "join", .ops = {WAIT(b_q_join, q, ".done"), END()}};
  worker_t pw = {.name = "put", .ops = {WAIT(b_q_put, &p, ".done"), END()}};
  void *v = NULL;
  aios_destructor_fn d = NULL;

  items_init(it, 2);
  total_frees = 0;
  CHECK_EQ(aios_queue_put_nowait(q, &it[0], item_free, 0), 0);
  spawn(loop, &jw);
  spawn(loop, &pw);
  run_once(loop);
  CHECK_EQ(is_done(&pw), 0);
  CHECK_EQ(aios_queue_shutdown(q, 0), 0);
  CHECK_EQ(aios_queue_qsize(q), 1);
  CHECK_EQ(it[0].frees, 0); /* not immediate: items stay */
  run_once(loop);
  CHECK_EQ(is_done(&pw), 1);
  CHECK_LOG("put!EQUEUESHUTDOWN");
  CHECK_EQ(it[1].frees, 1); /* the failed put's item, freed by the queue */
  finish_worker(&pw, AIOS_EQUEUESHUTDOWN);

  v = get_now(q, &d); /* a get still drains */
  CHECK_PTR_EQ(v, &it[0]);
  d(v);
  run_once(loop);
  CHECK_EQ(is_done(&jw), 0);
  check_queue_shut_down(q);

  CHECK_EQ(aios_queue_task_done(q), 0);
  run_once(loop);
  CHECK_EQ(is_done(&jw), 1);
  CHECK_LOG("put!EQUEUESHUTDOWN join.done");
  finish_worker(&jw, 0);
  CHECK_EQ(aios_queue_task_done(q), AIOS_ERELEASED);
  CHECK_EQ(aios_queue_unref(q), 0);
  close_loop(loop);
  CHECK_EQ(total_frees, 2);
}

static void test_queue_shutdown_nonempty(void) { queue_shutdown_nonempty(AIOS_QUEUE_FIFO); }
static void test_queue_shutdown_nonempty_lifo(void) { queue_shutdown_nonempty(AIOS_QUEUE_LIFO); }
static void test_queue_shutdown_nonempty_priority(void) { queue_shutdown_nonempty(AIOS_QUEUE_PRIORITY); }

/* test_shutdown_immediate: the items are freed at once, each exactly once;
 * join is done; puts and gets fail. */
static void test_queue_shutdown_immediate(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, AIOS_QUEUE_PRIORITY, 0);
  worker_t jw = {.name = "join", .ops = {WAIT(b_q_join, q, ".done"), END()}};
  item_t it[4];
  int i;

  items_init(it, 4);
  total_frees = 0;
  for (i = 0; i < 4; i++)
    CHECK_EQ(aios_queue_put_nowait(q, &it[i], item_free, i % 2), 0);
  spawn(loop, &jw);
  run_once(loop);
  CHECK_EQ(is_done(&jw), 0);
  CHECK_EQ(aios_queue_shutdown(q, 1), 0);
  CHECK_EQ(aios_queue_qsize(q), 0);
  CHECK_EQ(total_frees, 4);
  for (i = 0; i < 4; i++)
    CHECK_EQ(it[i].frees, 1);
  run_once(loop);
  CHECK_EQ(is_done(&jw), 1);
  CHECK_LOG("join.done");
  finish_worker(&jw, 0);
  check_queue_shut_down(q);
  CHECK_EQ(aios_queue_task_done(q), AIOS_ERELEASED);
  CHECK_EQ(aios_queue_shutdown(q, 1), 0);
  CHECK_EQ(aios_queue_unref(q), 0);
  close_loop(loop);
  CHECK_EQ(total_frees, 4);
}

/* test_shutdown_immediate_with_unfinished: an item taken but not marked
 * done keeps join waiting. */
static void test_queue_shutdown_immediate_with_unfinished(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, AIOS_QUEUE_FIFO, 0);
  worker_t jw = {.name = "join", .ops = {WAIT(b_q_join, q, ".done"), END()}};
  item_t it[2];

  items_init(it, 2);
  total_frees = 0;
  CHECK_EQ(aios_queue_put_nowait(q, &it[0], item_free, 0), 0);
  CHECK_EQ(aios_queue_put_nowait(q, &it[1], item_free, 0), 0);
  spawn(loop, &jw);
  {
    aios_destructor_fn d = NULL;
    void *v = get_now(q, &d);
    CHECK_PTR_EQ(v, &it[0]);
    d(v);
  }
  CHECK_EQ(aios_queue_shutdown(q, 1), 0);
  CHECK_EQ(aios_queue_qsize(q), 0);
  CHECK_EQ(it[1].frees, 1);
  run_once(loop);
  CHECK_EQ(is_done(&jw), 0);
  check_queue_shut_down(q);
  CHECK_EQ(aios_queue_task_done(q), 0);
  CHECK_EQ(aios_queue_task_done(q), AIOS_ERELEASED);
  run_once(loop);
  CHECK_EQ(is_done(&jw), 1);
  finish_worker(&jw, 0);
  CHECK_EQ(aios_queue_unref(q), 0);
  close_loop(loop);
  CHECK_EQ(total_frees, 2);
}

/* Shutdown wakes every blocked getter (they fail), in FIFO order. */
static void test_queue_shutdown_wakes_getters(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, AIOS_QUEUE_FIFO, 0);
  worker_t g[3];
  int i, immediate;

  for (immediate = 0; immediate < 2; immediate++) {
    aios_queue_t *qq = immediate ? new_queue(loop, AIOS_QUEUE_LIFO, 0) : q;
    log_reset();
    for (i = 0; i < 3; i++) {
      worker_t w = {.name = NULL, .ops = {WAIT_SHOW(b_q_get, qq, "="), END()}};
      w.name = i == 0 ? "g1" : i == 1 ? "g2" : "g3";
      g[i] = w;
      spawn(loop, &g[i]);
    }
    run_once(loop);
    CHECK_EQ(aios_queue_shutdown(qq, immediate), 0);
    for (i = 0; i < 3; i++)
      CHECK_EQ(run_worker(loop, &g[i]), AIOS_EQUEUESHUTDOWN);
    CHECK_LOG("g1!EQUEUESHUTDOWN g2!EQUEUESHUTDOWN g3!EQUEUESHUTDOWN");
    for (i = 0; i < 3; i++)
      finish_worker(&g[i], AIOS_EQUEUESHUTDOWN);
    if (immediate)
      CHECK_EQ(aios_queue_unref(qq), 0);
  }
  CHECK_EQ(aios_queue_unref(q), 0);
  close_loop(loop);
}

/* Immediate shutdown of a full queue with blocked putters: the items in the
 * queue are freed at once; each putter fails and its item is freed, once. */
static void test_queue_shutdown_immediate_wakes_putters(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, AIOS_QUEUE_FIFO, 2);
  item_t it[4];
  put_t p2, p3;
  worker_t w2, w3;

  items_init(it, 4);
  total_frees = 0;
  p2 = item_put(q, &it[2], 0);
  p3 = item_put(q, &it[3], 0);
  {
    worker_t a = {.name = "p2", .ops = {WAIT(b_q_put, &p2, ".put"), END()}};
    worker_t b = {.name = "p3", .ops = {WAIT(b_q_put, &p3, ".put"), END()}};
    w2 = a;
    w3 = b;
  }
  CHECK_EQ(aios_queue_put_nowait(q, &it[0], item_free, 0), 0);
  CHECK_EQ(aios_queue_put_nowait(q, &it[1], item_free, 0), 0);
  spawn(loop, &w2);
  spawn(loop, &w3);
  run_once(loop);
  CHECK_EQ(is_done(&w2), 0);
  CHECK_EQ(is_done(&w3), 0);
  CHECK_EQ(aios_queue_shutdown(q, 1), 0);
  CHECK_EQ(it[0].frees, 1);
  CHECK_EQ(it[1].frees, 1);
  CHECK_EQ(run_worker(loop, &w2), AIOS_EQUEUESHUTDOWN);
  CHECK_EQ(run_worker(loop, &w3), AIOS_EQUEUESHUTDOWN);
  CHECK_LOG("p2!EQUEUESHUTDOWN p3!EQUEUESHUTDOWN");
  CHECK_EQ(aios_queue_qsize(q), 0);
  CHECK_EQ(it[2].frees, 1);
  CHECK_EQ(it[3].frees, 1);
  finish_worker(&w2, AIOS_EQUEUESHUTDOWN);
  finish_worker(&w3, AIOS_EQUEUESHUTDOWN);
  CHECK_EQ(aios_queue_unref(q), 0);
  close_loop(loop);
  CHECK_EQ(total_frees, 4);
}

/* ======================================================================== */
/* Lifetime                                                                   */

/* A queue dropped while a get() is still pending, then the loop closed:
 * every object must still be freed (no reference cycle between a queue,
 * its getters and their operations). */
static void test_queue_dropped_with_pending_get(void) {
  aios_loop_t *loop = make_loop();
  aios_queue_t *q = new_queue(loop, AIOS_QUEUE_FIFO, 0);
  aios_future_t *f = NULL;

  CHECK_EQ(aios_queue_get(q, &f), 0);
  CHECK_EQ(aios_future_done(f), 0);
  CHECK_EQ(aios_future_unref(f), 0);
  CHECK_EQ(aios_queue_unref(q), 0);
  close_loop(loop);
}

TEST_MAIN(TEST_ENTRY(test_queue_basics),
          TEST_ENTRY(test_queue_order_fifo),
          TEST_ENTRY(test_queue_order_lifo),
          TEST_ENTRY(test_queue_order_priority),
          TEST_ENTRY(test_queue_priority_ignored_by_fifo_and_lifo),
          TEST_ENTRY(test_queue_priority_ties_in_arrival_order),
          TEST_ENTRY(test_queue_maxsize_blocks_put),
          TEST_ENTRY(test_queue_nowait_full_and_empty),
          TEST_ENTRY(test_queue_get_future_owns_item),
          TEST_ENTRY(test_queue_freed_with_items),
          TEST_ENTRY(test_queue_freed_with_items_after_loop_closed),
          TEST_ENTRY(test_queue_blocking_get),
          TEST_ENTRY(test_queue_get_cancelled_race),
          TEST_ENTRY(test_queue_get_cancel_drop_one_pending_reader),
          TEST_ENTRY(test_queue_get_cancel_drop_many_pending_readers),
          TEST_ENTRY(test_queue_cancel_woken_get_future),
          TEST_ENTRY(test_queue_get_with_waiting_putters),
          TEST_ENTRY(test_queue_put_cancel_drop),
          TEST_ENTRY(test_queue_put_cancelled_race),
          TEST_ENTRY(test_queue_cancel_blocked_put_future),
          TEST_ENTRY(test_queue_task_done_underflow_and_join_empty),
          TEST_ENTRY(test_queue_join_waits_for_every_task_done),
          TEST_ENTRY(test_queue_task_done_fifo),
          TEST_ENTRY(test_queue_task_done_lifo),
          TEST_ENTRY(test_queue_task_done_priority),
          TEST_ENTRY(test_queue_shutdown_empty),
          TEST_ENTRY(test_queue_shutdown_empty_lifo),
          TEST_ENTRY(test_queue_shutdown_empty_priority),
          TEST_ENTRY(test_queue_shutdown_nonempty),
          TEST_ENTRY(test_queue_shutdown_nonempty_lifo),
          TEST_ENTRY(test_queue_shutdown_nonempty_priority),
          TEST_ENTRY(test_queue_shutdown_immediate),
          TEST_ENTRY(test_queue_shutdown_immediate_with_unfinished),
          TEST_ENTRY(test_queue_shutdown_wakes_getters),
          TEST_ENTRY(test_queue_shutdown_immediate_wakes_putters),
          TEST_ENTRY(test_queue_dropped_with_pending_get))
