/* echo_uv: the raw libuv echo server, the physical reference of the echo
 * benchmark (bench/py/echo_bench.py): what libuv alone costs per message.
 *
 *   bench/bin/echo_uv PORT
 *
 * Listens on 127.0.0.1:PORT and writes back whatever a connection sends.
 * Reads go into one buffer reused by every read of the loop (alloc_cb hands
 * out the same one each time); a write first goes through uv_try_write, and
 * only the bytes it did not take are copied and queued with uv_write.
 * Serves until SIGTERM or SIGINT, then closes every handle and the loop.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <uv.h>

/* The loop's one read buffer. libuv calls alloc_cb, reads, then calls
 * read_cb before it reads again, and read_cb keeps nothing of the buffer
 * past its return, so one buffer serves every connection. */
static char g_buf[64 * 1024];

static uv_loop_t *g_loop;
static uv_tcp_t g_server;
static uv_signal_t g_sigterm, g_sigint;

/* A queued write owns the copy of the bytes uv_try_write did not take. */
typedef struct {
  uv_write_t req;
  char data[];
} pending_write_t;

static void fail(const char *what, int rc) {
  fprintf(stderr, "echo_uv: %s: %s (%s)\n", what, uv_strerror(rc), uv_err_name(rc));
  exit(1);
}

static void on_close_free(uv_handle_t *h) { free(h); }

static void close_client(uv_stream_t *s) {
  if (!uv_is_closing((uv_handle_t *)s)) uv_close((uv_handle_t *)s, on_close_free);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(g_buf, sizeof g_buf);
}

static void on_write(uv_write_t *req, int status) {
  /* A failed write (the peer reset) ends the connection. */
  if (status < 0 && status != UV_ECANCELED) close_client(req->handle);
  free(req);
}

static void on_read(uv_stream_t *s, ssize_t nread, const uv_buf_t *buf) {
  if (nread == 0) return; /* EAGAIN: nothing read */
  if (nread < 0) {        /* UV_EOF or an error */
    close_client(s);
    return;
  }
  /* uv_try_write returns UV_EAGAIN while earlier writes are queued, so the
   * bytes cannot overtake what is already waiting to go out. */
  uv_buf_t out = uv_buf_init(buf->base, (unsigned)nread);
  int done = uv_try_write(s, &out, 1);
  if (done == UV_EAGAIN) done = 0;
  if (done < 0) {
    close_client(s);
    return;
  }
  if (done == nread) return;
  size_t rest = (size_t)nread - (size_t)done;
  pending_write_t *w = malloc(sizeof *w + rest);
  if (w == NULL) fail("malloc", UV_ENOMEM);
  memcpy(w->data, buf->base + done, rest);
  out = uv_buf_init(w->data, (unsigned)rest);
  int rc = uv_write(&w->req, s, &out, 1, on_write);
  if (rc < 0) {
    /* When uv_write fails it never calls on_write. */
    free(w);
    close_client(s);
  }
}

static void on_connection(uv_stream_t *server, int status) {
  if (status < 0) {
    fprintf(stderr, "echo_uv: accept: %s\n", uv_strerror(status));
    return;
  }
  uv_tcp_t *client = malloc(sizeof *client);
  if (client == NULL) fail("malloc", UV_ENOMEM);
  int rc = uv_tcp_init(g_loop, client);
  if (rc < 0) fail("uv_tcp_init", rc);
  if ((rc = uv_accept(server, (uv_stream_t *)client)) < 0 ||
      (rc = uv_tcp_nodelay(client, 1)) < 0 ||
      (rc = uv_read_start((uv_stream_t *)client, on_alloc, on_read)) < 0) {
    fprintf(stderr, "echo_uv: setting up a connection: %s\n", uv_strerror(rc));
    close_client((uv_stream_t *)client);
  }
}

static void close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (uv_is_closing(h)) return;
  /* Clients are malloc'ed; the listener and the signals are static. */
  uv_close(h, (h == (uv_handle_t *)&g_server || h == (uv_handle_t *)&g_sigterm ||
               h == (uv_handle_t *)&g_sigint) ? NULL : on_close_free);
}

static void on_signal(uv_signal_t *sig, int signum) {
  (void)sig;
  (void)signum;
  /* Closing every handle lets uv_run return once their callbacks ran. */
  uv_walk(g_loop, close_walk, NULL);
}

int main(int argc, char **argv) {
  char *end = NULL;
  long port = argc == 2 ? strtol(argv[1], &end, 10) : 0;
  if (argc != 2 || *end != '\0' || port < 1 || port > 65535) {
    fprintf(stderr, "usage: echo_uv PORT\n");
    return 64;
  }
  /* A write to a connection the client reset must fail with EPIPE, not
   * kill the server: libuv does not ignore SIGPIPE for us. */
  signal(SIGPIPE, SIG_IGN);
  g_loop = uv_default_loop();
  struct sockaddr_in addr;
  int rc;
  if ((rc = uv_ip4_addr("127.0.0.1", (int)port, &addr)) < 0) fail("uv_ip4_addr", rc);
  if ((rc = uv_tcp_init(g_loop, &g_server)) < 0) fail("uv_tcp_init", rc);
  if ((rc = uv_tcp_bind(&g_server, (const struct sockaddr *)&addr, 0)) < 0) fail("bind", rc);
  /* The Python servers are given the same backlog. */
  if ((rc = uv_listen((uv_stream_t *)&g_server, 1024, on_connection)) < 0) fail("listen", rc);
  if ((rc = uv_signal_init(g_loop, &g_sigterm)) < 0 ||
      (rc = uv_signal_start(&g_sigterm, on_signal, SIGTERM)) < 0 ||
      (rc = uv_signal_init(g_loop, &g_sigint)) < 0 ||
      (rc = uv_signal_start(&g_sigint, on_signal, SIGINT)) < 0)
    fail("uv_signal_start", rc);

  uv_run(g_loop, UV_RUN_DEFAULT);
  /* Every handle is closed by now: a loop that does not close leaked one. */
  rc = uv_loop_close(g_loop);
  if (rc < 0) fail("uv_loop_close", rc);
  return 0;
}
