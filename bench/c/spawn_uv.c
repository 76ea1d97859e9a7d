/* spawn_uv: raw libuv's child processes, the physical reference of the
 * subprocess benchmark (bench/py/subprocess_bench.py).
 *
 *   bench/bin/spawn_uv spawn N INFLIGHT [-- PROGRAM ARGS...]
 *   bench/bin/spawn_uv cat BYTES [create|pipe2] [-- PROGRAM ARGS...]
 *
 * spawn: N children of PROGRAM (default /bin/true), at most INFLIGHT at once:
 *   uv_spawn with fds 0-2 inherited, the exit callback checks status 0 and
 *   closes the handle, and the close callback starts the next child.
 * cat: one child of PROGRAM (default /bin/cat) with its stdin and stdout on
 *   pipes; BYTES go to its stdin in 64 KiB uv_writes of one static buffer,
 *   more queued while less than 64 KiB waits to be written (asyncio's
 *   high-water mark), while uv_read_start reads its stdout into one static
 *   64 KiB buffer. create (the default) is UV_CREATE_PIPE (with libuv 1.44
 *   the child's stdin is then one end of a socketpair, its stdout a pipe);
 *   pipe2 makes pipe2(2) pipes, handed to the child with UV_INHERIT_FD and
 *   opened with uv_pipe_open, the kernel objects libaio-swift and asyncio use.
 *   Checked: the bytes read are the bytes written, the exit status is 0.
 *
 * One untimed warm-up round first (cat: min(BYTES, 64 MiB)), then one timed.
 * Prints: spawn N SECONDS inflight=K self_cpu=S child_cpu=S
 *         cat BYTES SECONDS pipes=P self_cpu=S child_cpu=S
 * where self_cpu is the process's user+system time over the timed round
 * (getrusage RUSAGE_SELF) and child_cpu its reaped children's (RUSAGE_CHILDREN).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#define CHUNK (64 * 1024)
#define HIGH_WATER (64 * 1024)
#define WARMUP_BYTES (64LL * 1024 * 1024)

static uv_loop_t *g_loop;
static char **g_argv; /* the child's argv */

static void fail(const char *what, int rc) {
  fprintf(stderr, "spawn_uv: %s: %s (%s)\n", what, uv_strerror(rc), uv_err_name(rc));
  exit(2);
}

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static double cpu_of(int who) {
  struct rusage ru;
  getrusage(who, &ru);
  return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 + (double)ru.ru_stime.tv_sec +
         (double)ru.ru_stime.tv_usec * 1e-6;
}

static long long count_arg(const char *s) {
  char *end = NULL;
  errno = 0;
  long long v = strtoll(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v <= 0) {
    fprintf(stderr, "spawn_uv: bad count '%s'\n", s);
    exit(64);
  }
  return v;
}

/* ------------------------------------------------------------------ spawn */

static long g_total, g_started, g_finished;

static void start_child(void);

static void on_child_closed(uv_handle_t *h) {
  free(h);
  g_finished++;
  if (g_started < g_total) start_child();
}

static void on_child_exit(uv_process_t *p, int64_t status, int signal) {
  if (status != 0 || signal != 0) {
    fprintf(stderr, "spawn_uv: child exited with status %lld, signal %d\n", (long long)status, signal);
    exit(3);
  }
  uv_close((uv_handle_t *)p, on_child_closed);
}

static void start_child(void) {
  uv_stdio_container_t stdio[3];
  for (int fd = 0; fd < 3; fd++) {
    stdio[fd].flags = UV_INHERIT_FD;
    stdio[fd].data.fd = fd;
  }
  uv_process_options_t options;
  memset(&options, 0, sizeof options);
  options.exit_cb = on_child_exit;
  options.file = g_argv[0];
  options.args = g_argv;
  options.stdio_count = 3;
  options.stdio = stdio;
  uv_process_t *p = malloc(sizeof *p);
  if (p == NULL) fail("malloc", UV_ENOMEM);
  int rc = uv_spawn(g_loop, p, &options);
  if (rc != 0) fail("uv_spawn", rc);
  g_started++;
}

static void spawn_round(long n, long inflight) {
  g_total = n;
  g_started = g_finished = 0;
  for (long i = 0; i < inflight && g_started < n; i++) start_child();
  int rc = uv_run(g_loop, UV_RUN_DEFAULT);
  if (rc < 0) fail("uv_run", rc);
  if (g_finished != n) {
    fprintf(stderr, "spawn_uv: %ld children finished, expected %ld\n", g_finished, n);
    exit(3);
  }
}

/* -------------------------------------------------------------------- cat */

static char g_out[CHUNK]; /* every write sends it */
static char g_in[CHUNK];  /* every read lands in it */

static struct {
  uv_process_t proc;
  uv_pipe_t in, out; /* the child's stdin (we write) and stdout (we read) */
  long long total, queued, written, received;
  int exited, closed;
} g_cat;

static void on_cat_closed(uv_handle_t *h) {
  (void)h;
  g_cat.closed++;
}

static void pump(void);

/* A write in flight and how many bytes it carries. */
typedef struct {
  uv_write_t req;
  unsigned length;
} write_t;

static void on_written(uv_write_t *req, int status) {
  write_t *w = (write_t *)req;
  if (status < 0) fail("write to the child's stdin", status);
  g_cat.written += w->length;
  free(w);
  pump();
}

/* Queues writes while less than HIGH_WATER is waiting; closes stdin once
 * every byte was written. */
static void pump(void) {
  while (g_cat.queued < g_cat.total && uv_stream_get_write_queue_size((uv_stream_t *)&g_cat.in) < HIGH_WATER) {
    long long left = g_cat.total - g_cat.queued;
    write_t *w = malloc(sizeof *w);
    if (w == NULL) fail("malloc", UV_ENOMEM);
    w->length = left < CHUNK ? (unsigned)left : CHUNK;
    uv_buf_t buf = uv_buf_init(g_out, w->length);
    int rc = uv_write(&w->req, (uv_stream_t *)&g_cat.in, &buf, 1, on_written);
    if (rc != 0) fail("uv_write", rc);
    g_cat.queued += w->length;
  }
  if (g_cat.written == g_cat.total && !uv_is_closing((uv_handle_t *)&g_cat.in))
    uv_close((uv_handle_t *)&g_cat.in, on_cat_closed);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(g_in, sizeof g_in);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  (void)buf;
  if (nread > 0) {
    g_cat.received += nread;
  } else if (nread == UV_EOF) {
    uv_close((uv_handle_t *)s, on_cat_closed);
  } else if (nread < 0) {
    fail("read from the child's stdout", (int)nread);
  }
}

static void on_cat_exit(uv_process_t *p, int64_t status, int signal) {
  if (status != 0 || signal != 0) {
    fprintf(stderr, "spawn_uv: cat exited with status %lld, signal %d\n", (long long)status, signal);
    exit(3);
  }
  g_cat.exited = 1;
  uv_close((uv_handle_t *)p, on_cat_closed);
}

static void cat_round(long long bytes, int use_pipe2) {
  memset(&g_cat, 0, sizeof g_cat);
  g_cat.total = bytes;
  int rc;
  if ((rc = uv_pipe_init(g_loop, &g_cat.in, 0)) != 0) fail("uv_pipe_init", rc);
  if ((rc = uv_pipe_init(g_loop, &g_cat.out, 0)) != 0) fail("uv_pipe_init", rc);
  uv_stdio_container_t stdio[3];
  int in_fds[2] = {-1, -1}, out_fds[2] = {-1, -1};
  if (use_pipe2) {
    if (pipe2(in_fds, O_CLOEXEC) != 0 || pipe2(out_fds, O_CLOEXEC) != 0) fail("pipe2", -errno);
    stdio[0].flags = UV_INHERIT_FD;
    stdio[0].data.fd = in_fds[0];
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = out_fds[1];
  } else {
    /* The flags are the child's view: it reads its stdin, writes its stdout. */
    stdio[0].flags = UV_CREATE_PIPE | UV_READABLE_PIPE;
    stdio[0].data.stream = (uv_stream_t *)&g_cat.in;
    stdio[1].flags = UV_CREATE_PIPE | UV_WRITABLE_PIPE;
    stdio[1].data.stream = (uv_stream_t *)&g_cat.out;
  }
  stdio[2].flags = UV_INHERIT_FD;
  stdio[2].data.fd = 2;
  uv_process_options_t options;
  memset(&options, 0, sizeof options);
  options.exit_cb = on_cat_exit;
  options.file = g_argv[0];
  options.args = g_argv;
  options.stdio_count = 3;
  options.stdio = stdio;
  if ((rc = uv_spawn(g_loop, &g_cat.proc, &options)) != 0) fail("uv_spawn", rc);
  if (use_pipe2) {
    close(in_fds[0]);
    close(out_fds[1]);
    if ((rc = uv_pipe_open(&g_cat.in, in_fds[1])) != 0) fail("uv_pipe_open", rc);
    if ((rc = uv_pipe_open(&g_cat.out, out_fds[0])) != 0) fail("uv_pipe_open", rc);
  }
  if ((rc = uv_read_start((uv_stream_t *)&g_cat.out, on_alloc, on_read)) != 0) fail("uv_read_start", rc);
  pump();
  if ((rc = uv_run(g_loop, UV_RUN_DEFAULT)) < 0) fail("uv_run", rc);
  if (g_cat.closed != 3 || !g_cat.exited) {
    fprintf(stderr, "spawn_uv: the loop ended with %d of 3 handles closed\n", g_cat.closed);
    exit(3);
  }
  if (g_cat.received != bytes) {
    fprintf(stderr, "spawn_uv: received %lld bytes, sent %lld\n", g_cat.received, bytes);
    exit(3);
  }
}

/* ------------------------------------------------------------------- main */

static char *g_true_argv[] = {"/bin/true", NULL};
static char *g_cat_argv[] = {"/bin/cat", NULL};

int main(int argc, char **argv) {
  int dash = argc;
  for (int i = 1; i < argc; i++)
    if (strcmp(argv[i], "--") == 0) {
      dash = i;
      break;
    }
  if (dash < 3 || (strcmp(argv[1], "spawn") != 0 && strcmp(argv[1], "cat") != 0)) {
    fprintf(stderr, "usage: spawn_uv spawn N INFLIGHT [-- PROGRAM ARGS...]\n"
                    "       spawn_uv cat BYTES [create|pipe2] [-- PROGRAM ARGS...]\n");
    return 64;
  }
  int is_spawn = strcmp(argv[1], "spawn") == 0;
  g_argv = dash + 1 < argc ? argv + dash + 1 : is_spawn ? g_true_argv : g_cat_argv;
  g_loop = uv_default_loop();
  double t0, t1, self0, self1, kids0, kids1;
  if (is_spawn) {
    long n = (long)count_arg(argv[2]);
    long inflight = dash > 3 ? (long)count_arg(argv[3]) : 1;
    spawn_round(n, inflight);
    self0 = cpu_of(RUSAGE_SELF), kids0 = cpu_of(RUSAGE_CHILDREN), t0 = now();
    spawn_round(n, inflight);
    t1 = now(), self1 = cpu_of(RUSAGE_SELF), kids1 = cpu_of(RUSAGE_CHILDREN);
    printf("spawn %ld %.6f inflight=%ld self_cpu=%.6f child_cpu=%.6f\n", n, t1 - t0, inflight, self1 - self0,
           kids1 - kids0);
  } else {
    long long bytes = count_arg(argv[2]);
    const char *kind = dash > 3 ? argv[3] : "create";
    int use_pipe2 = strcmp(kind, "pipe2") == 0;
    if (!use_pipe2 && strcmp(kind, "create") != 0) {
      fprintf(stderr, "spawn_uv: pipes are create or pipe2, not '%s'\n", kind);
      return 64;
    }
    cat_round(bytes < WARMUP_BYTES ? bytes : WARMUP_BYTES, use_pipe2);
    self0 = cpu_of(RUSAGE_SELF), kids0 = cpu_of(RUSAGE_CHILDREN), t0 = now();
    cat_round(bytes, use_pipe2);
    t1 = now(), self1 = cpu_of(RUSAGE_SELF), kids1 = cpu_of(RUSAGE_CHILDREN);
    printf("cat %lld %.6f pipes=%s self_cpu=%.6f child_cpu=%.6f\n", bytes, t1 - t0, kind, self1 - self0,
           kids1 - kids0);
  }
  int rc = uv_loop_close(g_loop);
  if (rc != 0) fail("uv_loop_close", rc);
  return 0;
}
