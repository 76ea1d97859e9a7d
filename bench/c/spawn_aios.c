/* spawn_aios: child processes through libaio-swift's C API, the subject of
 * the subprocess benchmark (bench/py/subprocess_bench.py; raw libuv's
 * counterpart is bench/c/spawn_uv.c).
 *
 *   bench/bin/spawn_aios spawn N INFLIGHT process|protocol [-- PROGRAM ARGS...]
 *   bench/bin/spawn_aios cat BYTES process|protocol [-- PROGRAM ARGS...]
 *
 * spawn: N children of PROGRAM (default /bin/true), INFLIGHT at a time, fds
 *   0-2 inherited (a zeroed aios_spawn_options_t: NULL).
 *   process: INFLIGHT tasks, each in turn `p = await create_subprocess_exec();
 *     assert await p.wait() == 0` until N were started (asyncio's code).
 *   protocol: aios_subprocess_exec with a protocol whose connection_lost
 *     counts the child and starts the next one; the call's future is dropped
 *     at once (nothing needs the transport).
 * cat: one child of PROGRAM (default /bin/cat), stdin and stdout on pipes
 *   (with -socketpairs after the API's name: on socket pairs, as raw libuv's
 *   UV_CREATE_PIPE makes them);
 *   BYTES go in while its output is read, both at once.
 *   process: a writer task does `stdin.write(64 KiB); await stdin.drain()`
 *     until BYTES went, then stdin.close(); a reader task does
 *     `await stdout.read(65536)` until EOF; then `await p.wait()`.
 *   protocol: aios_subprocess_exec; connection_made starts writing 64 KiB
 *     chunks (aios_transport_write_nocopy, from one static buffer, as raw
 *     libuv's uv_write does) to the stdin pipe transport until
 *     pause_writing, resume_writing goes on, and the last chunk closes the
 *     pipe; pipe_data_received counts; connection_lost ends it.
 *   Checked: the bytes read are the bytes written, the returncode is 0.
 *
 * A step that gets a future already done goes on in the same step (as
 * `await` on a coroutine that does not block does not suspend). Each run is
 * a main task on an aios_runner: one untimed warm-up run (cat:
 * min(BYTES, 64 MiB)), then one timed on the same loop.
 * Prints: spawn N SECONDS inflight=K api=A self_cpu=S child_cpu=S leaks=L
 *         cat BYTES SECONDS api=A self_cpu=S child_cpu=S leaks=L
 * self_cpu and child_cpu as in spawn_uv.c (getrusage RUSAGE_SELF and
 * RUSAGE_CHILDREN over the timed run); leaks counts the object types whose
 * aios_live_objects differ from the start once everything was released.
 */
#include "bench_util.h" /* first: it defines _GNU_SOURCE */

#include <string.h>
#include <sys/resource.h>

#define CHUNK (64 * 1024)
#define WARMUP_BYTES (64LL * 1024 * 1024)

static aios_loop_t *g_loop;
static const char *g_program;
static const char *const *g_args; /* after argv[0]; NULL-terminated */
static int g_protocol_api;        /* 0: Process and streams, 1: protocol */
static int g_socket_pairs;        /* cat: the child's pipes as socket pairs (aios_spawn_options_t.socket_pairs) */

static double cpu_of(int who) {
  struct rusage ru;
  getrusage(who, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
         (double)ru.ru_stime.tv_usec * 1e-6;
}

/* Exits with the error of a future that failed, its message included. */
static void check_future(aios_future_t *f, const char *what) {
  int rc = aios_future_result(f, NULL);
  if (rc == 0) return;
  aios_error_t *error = NULL;
  const char *message = NULL;
  if (aios_future_error(f, &error) == 0 && error != NULL) message = aios_error_message(error);
  fprintf(stderr, "spawn_aios: %s failed: %d %s (%s)\n", what, rc, aios_err_name(rc),
          message != NULL ? message : aios_strerror(rc));
  exit(2);
}

/* The result of a done future, moved out of it (checked). */
static void *take(aios_future_t *f, const char *what) {
  void *value = NULL;
  check_future(f, what);
  BENCH_CHECK(aios_future_take_result(f, &value, NULL));
  return value;
}

/* ------------------------------------------------------- spawn, Process */

static long g_total, g_started, g_finished;

enum { W_IDLE, W_SPAWNING, W_WAITING };

typedef struct worker {
  int state;
  aios_process_t *process;
} worker_t;

/* while started < total: p = await create_subprocess_exec(); assert await p.wait() == 0 */
static int worker_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  worker_t *w = arg;
  aios_future_t *f = awaited; /* borrowed when awaited, ours when done at once */
  int owned = 0;
  for (;;) {
    if (f != NULL) {
      if (w->state == W_SPAWNING) {
        w->process = take(f, "aios_create_subprocess_exec");
        if (owned) aios_future_unref(f);
        BENCH_CHECK(aios_process_wait(w->process, &f));
        owned = 1;
        w->state = W_WAITING;
      } else {
        check_future(f, "aios_process_wait");
        intptr_t code = (intptr_t)result_of(f);
        BENCH_EXPECT(code == 0, "returncode %ld", (long)code);
        if (owned) aios_future_unref(f);
        BENCH_CHECK(aios_process_unref(w->process));
        w->process = NULL;
        g_finished++;
        f = NULL;
        w->state = W_IDLE;
      }
    }
    if (f == NULL) {
      if (g_started == g_total) return aios_task_return(task, NULL, NULL);
      g_started++;
      BENCH_CHECK(aios_create_subprocess_exec(g_loop, g_program, g_args, NULL, &f));
      owned = 1;
      w->state = W_SPAWNING;
    }
    if (!is_done(f)) return aios_task_await_owned(task, f);
  }
}

typedef struct spawn_main {
  long inflight;
  int state, next;
  aios_task_t **tasks;
  worker_t *workers;
  aios_future_t *all_done; /* protocol: set by the last connection_lost */
} spawn_main_t;

/* ------------------------------------------------------ spawn, protocol */

static void start_child(void);

static void spawn_lost(aios_subprocess_t *subprocess, aios_error_t *error, void *arg) {
  spawn_main_t *m = arg;
  int code = -1;
  BENCH_EXPECT(error == NULL, "connection_lost with %s", aios_error_message(error));
  BENCH_EXPECT(aios_subprocess_get_returncode(subprocess, &code) == 1 && code == 0, "returncode %d", code);
  g_finished++;
  if (g_started < g_total) start_child();
  else if (g_finished == g_total) BENCH_CHECK(aios_future_set_result(m->all_done, NULL, NULL));
}

static aios_subprocess_protocol_t g_spawn_protocol;

static void start_child(void) {
  aios_future_t *f = NULL;
  g_started++;
  BENCH_CHECK(aios_subprocess_exec(g_loop, &g_spawn_protocol, g_program, g_args, NULL, &f));
  BENCH_CHECK(aios_future_unref(f));
}

/* Starts INFLIGHT workers (or children) and awaits them. */
static int spawn_main_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  spawn_main_t *m = arg;
  if (awaited == NULL) {
    g_started = g_finished = 0;
    if (g_protocol_api) {
      BENCH_CHECK(aios_future_new(g_loop, &m->all_done));
      memset(&g_spawn_protocol, 0, sizeof g_spawn_protocol);
      g_spawn_protocol.size = sizeof g_spawn_protocol;
      g_spawn_protocol.arg = m;
      g_spawn_protocol.connection_lost = spawn_lost;
      for (long i = 0; i < m->inflight && g_started < g_total; i++) start_child();
      return aios_task_await(task, m->all_done);
    }
    for (long i = 0; i < m->inflight; i++) {
      m->workers[i].state = W_IDLE;
      BENCH_CHECK(aios_task_new(g_loop, worker_step, &m->workers[i], NULL, &m->tasks[i]));
    }
    m->next = 0;
  } else {
    check_future(awaited, "a worker");
    if (g_protocol_api) {
      BENCH_CHECK(aios_future_unref(m->all_done));
      m->all_done = NULL;
      goto done;
    }
    BENCH_CHECK(aios_task_unref(m->tasks[m->next]));
    m->next++;
  }
  if (m->next < m->inflight) return aios_task_await(task, aios_task_as_future(m->tasks[m->next]));
done:
  BENCH_EXPECT(g_finished == g_total, "%ld children finished, expected %ld", g_finished, g_total);
  return aios_task_return(task, NULL, NULL);
}

/* ------------------------------------------------------------- cat, both */

static unsigned char g_chunk[CHUNK];

typedef struct cat {
  long long total, sent, received;
  int state;
  aios_process_t *process;
  aios_stream_t *in, *out;
  aios_task_t *writer, *reader;
  /* protocol */
  aios_transport_t *pipe_in;
  int paused, close_scheduled;
  aios_future_t *all_done;
} cat_t;

static size_t next_length(const cat_t *c) {
  long long left = c->total - c->sent;
  return left < CHUNK ? (size_t)left : CHUNK;
}

/* for each chunk: stdin.write(chunk); await stdin.drain()  -- then stdin.close() */
static int writer_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  cat_t *c = arg;
  if (awaited != NULL) check_future(awaited, "aios_stream_drain");
  while (c->sent < c->total) {
    size_t n = next_length(c);
    aios_future_t *f = NULL;
    BENCH_CHECK(aios_stream_write(c->in, g_chunk, n));
    c->sent += (long long)n;
    BENCH_CHECK(aios_stream_drain(c->in, &f));
    if (!is_done(f)) return aios_task_await_owned(task, f);
    check_future(f, "aios_stream_drain");
    BENCH_CHECK(aios_future_unref(f));
  }
  BENCH_CHECK(aios_stream_close(c->in));
  return aios_task_return(task, NULL, NULL);
}

/* while (b = await stdout.read(65536)): received += len(b) */
static int reader_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  cat_t *c = arg;
  aios_future_t *f = awaited;
  int owned = 0;
  for (;;) {
    if (f != NULL) {
      aios_bytes_t *b = take(f, "aios_stream_read");
      if (owned) BENCH_CHECK(aios_future_unref(f));
      size_t n = b->length;
      aios_bytes_free(b);
      if (n == 0) return aios_task_return(task, NULL, NULL);
      c->received += (long long)n;
    }
    BENCH_CHECK(aios_stream_read(c->out, CHUNK, &f));
    owned = 1;
    if (!is_done(f)) return aios_task_await_owned(task, f);
  }
}

static void cat_pump(cat_t *c) {
  while (!c->paused && c->sent < c->total) {
    size_t n = next_length(c);
    /* pause_writing runs inside this call when the buffer goes above 64 KiB.
     * The chunk is static: what the pipe does not take is sent from it,
     * as raw libuv's uv_write sends from the caller's memory. */
    BENCH_CHECK(aios_transport_write_nocopy(c->pipe_in, g_chunk, n, NULL, NULL));
    c->sent += (long long)n;
  }
  if (c->sent == c->total && !c->close_scheduled) {
    c->close_scheduled = 1;
    BENCH_CHECK(aios_transport_close(c->pipe_in));
  }
}

static void cat_made(aios_subprocess_t *subprocess, void *arg) {
  cat_t *c = arg;
  BENCH_CHECK(aios_subprocess_get_pipe_transport(subprocess, 0, &c->pipe_in));
  /* raw libuv's writer refills whenever less than 64 KiB waits: the same
   * policy here (asyncio's default low-water mark is a quarter of the high). */
  BENCH_CHECK(aios_transport_set_write_buffer_limits(c->pipe_in, 64 * 1024, 64 * 1024));
  cat_pump(c);
}

static void cat_data(aios_subprocess_t *subprocess, int fd, const void *data, size_t length, void *arg) {
  (void)subprocess, (void)data;
  cat_t *c = arg;
  BENCH_EXPECT(fd == 1, "data on fd %d", fd);
  c->received += (long long)length;
}

static void cat_pipe_lost(aios_subprocess_t *subprocess, int fd, aios_error_t *error, void *arg) {
  (void)subprocess, (void)arg;
  BENCH_EXPECT(error == NULL, "pipe %d lost with %s", fd, aios_error_message(error));
}

static void cat_pause(aios_subprocess_t *subprocess, void *arg) {
  (void)subprocess;
  ((cat_t *)arg)->paused = 1;
}

static void cat_resume(aios_subprocess_t *subprocess, void *arg) {
  (void)subprocess;
  cat_t *c = arg;
  c->paused = 0;
  cat_pump(c);
}

static void cat_lost(aios_subprocess_t *subprocess, aios_error_t *error, void *arg) {
  cat_t *c = arg;
  int code = -1;
  BENCH_EXPECT(error == NULL, "connection_lost with %s", aios_error_message(error));
  BENCH_EXPECT(aios_subprocess_get_returncode(subprocess, &code) == 1 && code == 0, "returncode %d", code);
  BENCH_CHECK(aios_transport_unref(c->pipe_in));
  c->pipe_in = NULL;
  BENCH_CHECK(aios_future_set_result(c->all_done, NULL, NULL));
}

enum { C_START, C_SPAWNED, C_WROTE, C_READ, C_WAITED };

static int cat_main_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  cat_t *c = arg;
  aios_future_t *f = NULL;
  aios_spawn_options_t options;
  memset(&options, 0, sizeof options);
  options.size = sizeof options;
  options.stdin_mode = AIOS_CHILD_PIPE;
  options.stdout_mode = AIOS_CHILD_PIPE;
  options.socket_pairs = g_socket_pairs;
  if (awaited == NULL) {
    c->sent = c->received = 0;
    c->paused = c->close_scheduled = 0;
    if (g_protocol_api) {
      aios_subprocess_protocol_t protocol;
      memset(&protocol, 0, sizeof protocol);
      protocol.size = sizeof protocol;
      protocol.arg = c;
      protocol.connection_made = cat_made;
      protocol.pipe_data_received = cat_data;
      protocol.pipe_connection_lost = cat_pipe_lost;
      protocol.connection_lost = cat_lost;
      protocol.pause_writing = cat_pause;
      protocol.resume_writing = cat_resume;
      BENCH_CHECK(aios_future_new(g_loop, &c->all_done));
      BENCH_CHECK(aios_subprocess_exec(g_loop, &protocol, g_program, g_args, &options, &f));
      BENCH_CHECK(aios_future_unref(f));
      c->state = C_WAITED;
      return aios_task_await(task, c->all_done);
    }
    BENCH_CHECK(aios_create_subprocess_exec(g_loop, g_program, g_args, &options, &f));
    c->state = C_SPAWNED;
    return aios_task_await_owned(task, f);
  }
  switch (c->state) {
  case C_SPAWNED:
    c->process = take(awaited, "aios_create_subprocess_exec");
    BENCH_CHECK(aios_process_get_stream(c->process, 0, &c->in));
    BENCH_CHECK(aios_process_get_stream(c->process, 1, &c->out));
    BENCH_CHECK(aios_task_new(g_loop, writer_step, c, NULL, &c->writer));
    BENCH_CHECK(aios_task_new(g_loop, reader_step, c, NULL, &c->reader));
    c->state = C_WROTE;
    return aios_task_await(task, aios_task_as_future(c->writer));
  case C_WROTE:
    check_future(awaited, "the writer");
    c->state = C_READ;
    return aios_task_await(task, aios_task_as_future(c->reader));
  case C_READ:
    check_future(awaited, "the reader");
    BENCH_CHECK(aios_process_wait(c->process, &f));
    c->state = C_WAITED;
    return aios_task_await_owned(task, f);
  case C_WAITED:
  default:
    check_future(awaited, g_protocol_api ? "the subprocess" : "aios_process_wait");
    if (g_protocol_api) {
      BENCH_CHECK(aios_future_unref(c->all_done));
      c->all_done = NULL;
    } else {
      intptr_t code = (intptr_t)result_of(awaited);
      BENCH_EXPECT(code == 0, "returncode %ld", (long)code);
      BENCH_CHECK(aios_task_unref(c->writer));
      BENCH_CHECK(aios_task_unref(c->reader));
      BENCH_CHECK(aios_stream_unref(c->in));
      BENCH_CHECK(aios_stream_unref(c->out));
      BENCH_CHECK(aios_process_unref(c->process));
      c->writer = c->reader = NULL;
      c->in = c->out = NULL;
      c->process = NULL;
    }
    BENCH_EXPECT(c->sent == c->total, "sent %lld bytes of %lld", c->sent, c->total);
    BENCH_EXPECT(c->received == c->total, "received %lld bytes, sent %lld", c->received, c->total);
    return aios_task_return(task, NULL, NULL);
  }
}

/* ------------------------------------------------------------------ main */

static const char *const g_no_args[] = {NULL};

static void usage(void) {
  fprintf(stderr, "usage: spawn_aios spawn N INFLIGHT process|protocol [-- PROGRAM ARGS...]\n"
                  "       spawn_aios cat BYTES process|protocol[-socketpairs] [-- PROGRAM ARGS...]\n");
  exit(64);
}

int main(int argc, char **argv) {
  int dash = argc;
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--") == 0) {
      dash = i;
      break;
    }
  if (dash < 4) usage();
  int is_spawn = strcmp(argv[1], "spawn") == 0;
  if (!is_spawn && strcmp(argv[1], "cat") != 0) usage();
  const char *api = argv[dash - 1];
  if (!is_spawn && strstr(api, "-socketpairs") != NULL) g_socket_pairs = 1;
  if (strncmp(api, "protocol", 8) == 0) g_protocol_api = 1;
  else if (strncmp(api, "process", 7) != 0) usage();
  if (is_spawn && dash != 5) usage();
  if (!is_spawn && dash != 4) usage();
  if (dash + 1 < argc) {
    g_program = argv[dash + 1];
    g_args = (const char *const *)argv + dash + 2;
  } else {
    g_program = is_spawn ? "/bin/true" : "/bin/cat";
    g_args = g_no_args;
  }

  long before[BENCH_TYPES];
  bench_snapshot_live(before);
  aios_runner_t *runner = NULL;
  BENCH_CHECK(aios_runner_new(&runner));
  BENCH_CHECK(aios_runner_get_loop(runner, &g_loop));
  double t0, t1, self0, self1, kids0, kids1;
  if (is_spawn) {
    spawn_main_t m;
    memset(&m, 0, sizeof m);
    g_total = bench_arg(argc, argv, 2, 300);
    m.inflight = bench_arg(argc, argv, 3, 1);
    m.tasks = calloc((size_t)m.inflight, sizeof *m.tasks);
    m.workers = calloc((size_t)m.inflight, sizeof *m.workers);
    BENCH_EXPECT(m.tasks != NULL && m.workers != NULL, "out of memory");
    run_main(runner, spawn_main_step, &m);
    self0 = cpu_of(RUSAGE_SELF), kids0 = cpu_of(RUSAGE_CHILDREN), t0 = bench_now();
    run_main(runner, spawn_main_step, &m);
    t1 = bench_now(), self1 = cpu_of(RUSAGE_SELF), kids1 = cpu_of(RUSAGE_CHILDREN);
    free(m.tasks);
    free(m.workers);
    BENCH_CHECK(aios_loop_unref(g_loop));
    BENCH_CHECK(aios_runner_close(runner));
    BENCH_CHECK(aios_runner_unref(runner));
    printf("spawn %ld %.6f inflight=%ld api=%s self_cpu=%.6f child_cpu=%.6f leaks=%d\n", g_total, t1 - t0,
           m.inflight, api, self1 - self0, kids1 - kids0, bench_check_live(before));
  } else {
    cat_t c;
    memset(&c, 0, sizeof c);
    memset(g_chunk, 'x', sizeof g_chunk);
    long long bytes = bench_arg(argc, argv, 2, 1LL << 30);
    c.total = bytes < WARMUP_BYTES ? bytes : WARMUP_BYTES;
    run_main(runner, cat_main_step, &c);
    c.total = bytes;
    self0 = cpu_of(RUSAGE_SELF), kids0 = cpu_of(RUSAGE_CHILDREN), t0 = bench_now();
    run_main(runner, cat_main_step, &c);
    t1 = bench_now(), self1 = cpu_of(RUSAGE_SELF), kids1 = cpu_of(RUSAGE_CHILDREN);
    BENCH_CHECK(aios_loop_unref(g_loop));
    BENCH_CHECK(aios_runner_close(runner));
    BENCH_CHECK(aios_runner_unref(runner));
    printf("cat %lld %.6f api=%s self_cpu=%.6f child_cpu=%.6f leaks=%d\n", bytes, t1 - t0, api, self1 - self0,
           kids1 - kids0, bench_check_live(before));
  }
  return 0;
}
