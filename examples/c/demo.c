/* demo.c: three workers under one main task, driven by step functions.
 * "fast" finishes, "slow" is cancelled by main, "stubborn" is cancelled by a
 * timer (a timeout) and catches it. Build: cc demo.c $(pkg-config --cflags --libs aio-swift) */
#include <aio_swift.h>
#include <stdio.h>
#include <string.h>

typedef struct worker {
  const char *name;
  double delay;
  int state;
} worker_t;

/* await aios_sleep(delay) from a step */
static int await_sleep(aios_task_t *task, double delay) {
  aios_loop_t *loop;
  aios_future_t *sleep;
  int rc = aios_get_running_loop(&loop);
  if (rc < 0) return rc;
  rc = aios_sleep(loop, delay, NULL, NULL, &sleep);
  aios_loop_unref(loop);
  if (rc < 0) return rc;
  rc = aios_task_await(task, sleep);
  aios_future_unref(sleep);
  return rc;
}

static int worker_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  worker_t *w = arg;
  if (w->state++ == 0) {
    printf("%-8s sleeps %.2fs\n", w->name, w->delay);
    return await_sleep(task, w->delay);
  }
  if (aios_future_cancelled(awaited)) {
    aios_error_t *why = NULL;
    aios_future_error(awaited, &why);
    printf("%-8s was cancelled (%s)\n", w->name, aios_error_message(why));
    aios_error_unref(why);
    if (strcmp(w->name, "stubborn") != 0) return AIOS_ECANCELLED; /* let it end the task */
    aios_task_uncancel(task); /* caught: it goes on, as asyncio lets a task */
    return aios_task_return(task, "gave up cleanly", NULL);
  }
  return aios_task_return(task, "finished", NULL);
}

static void cancel_with_timeout(void *task) { aios_task_cancel(task, "timeout after 0.2s"); }

typedef struct main_state {
  worker_t workers[3];
  aios_task_t *tasks[3];
  int next;
} main_state_t;

static int start_workers(main_state_t *m) {
  aios_loop_t *loop;
  int rc = aios_get_running_loop(&loop);
  for (int i = 0; i < 3 && rc == 0; i++)
    rc = aios_task_new(loop, worker_step, &m->workers[i], NULL, &m->tasks[i]);
  if (rc == 0) rc = aios_loop_call_later(loop, 0.2, cancel_with_timeout, m->tasks[2], NULL, NULL);
  aios_loop_unref(loop);
  return rc;
}

static int main_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  main_state_t *m = arg;
  (void)awaited;
  if (m->next == 0) {
    int rc = start_workers(m);
    if (rc < 0) return rc;
    m->next = 1;
    return await_sleep(task, 0.1);
  }
  if (m->next == 1) {
    printf("main     cancels slow\n");
    aios_task_cancel(m->tasks[1], "main changed its mind");
  }
  /* await each worker in turn, then report it */
  if (m->next >= 2) {
    int i = m->next - 2;
    void *value = NULL;
    int rc = aios_future_result(aios_task_as_future(m->tasks[i]), &value);
    printf("main     sees %-8s -> %s\n", m->workers[i].name,
           rc == 0 ? (const char *)value : aios_err_name(rc));
  }
  if (m->next == 4) {
    for (int i = 0; i < 3; i++) aios_task_unref(m->tasks[i]);
    return aios_task_return(task, NULL, NULL);
  }
  return aios_task_await(task, aios_task_as_future(m->tasks[m->next++ - 1]));
}

int main(void) {
  main_state_t m = {{{"fast", 0.05, 0}, {"slow", 1.0, 0}, {"stubborn", 10.0, 0}}, {0}, 0};
  int rc = aios_run(main_step, &m, NULL, NULL);
  printf("aios_run -> %s (libaio-swift %s)\n", aios_err_name(rc), aios_version_string());
  return rc == 0 ? 0 : 1;
}
