/*
 * test_server.c: asyncio's Server through the C ABI (start_serving,
 * serve_forever, wait_closed, close_clients and abort_clients, a Unix
 * server's socket file), and the stream cases of a server and its clients.
 * Behavioural cases from CPython 3.13's test_server.py and test_streams.py,
 * on real sockets (127.0.0.1, Unix sockets in a temp dir).
 */
#define _GNU_SOURCE
#include <stddef.h>
#include "test_util.h"
#include "test_net.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

/* ------------------------------------------------------------------------ */
/* Helpers                                                                    */

static aios_bytes_t *await_bytes(aios_loop_t *loop, aios_future_t *future) {
  void *value = NULL;
  aios_destructor_fn destructor = NULL;
  CHECK_EQ(aios_loop_run_until_complete(loop, future), 0);
  CHECK_EQ(aios_future_take_result(future, &value, &destructor), 0);
  CHECK(value != NULL);
  CHECK(destructor == aios_bytes_free);
  CHECK_EQ(aios_future_unref(future), 0);
  return (aios_bytes_t *)value;
}

#define CHECK_BYTES(bytes, text)                                               \
  do {                                                                         \
    CHECK_EQ((bytes)->length, strlen(text));                                   \
    CHECK(memcmp((bytes)->data, (text), strlen(text)) == 0);                   \
  } while (0)

static aios_stream_t *open_client(aios_loop_t *loop, int port, size_t limit) {
  aios_future_t *f = NULL;
  CHECK_EQ(aios_open_connection(loop, "127.0.0.1", port, limit, NULL, &f), 0);
  return (aios_stream_t *)await_value(loop, f);
}

/* Closes a client stream and waits until its connection is gone. */
static void close_client(aios_loop_t *loop, aios_stream_t *client) {
  aios_future_t *f = NULL;
  CHECK_EQ(aios_stream_close(client), 0);
  CHECK_EQ(aios_stream_wait_closed(client, &f), 0);
  CHECK_EQ(await_status(loop, f), 0);
  CHECK_EQ(aios_stream_unref(client), 0);
}

static void check_no_exceptions(const exc_record_t *record) {
  if (record->calls != 0) fprintf(stderr, "exception handler: %s (%s)\n", record->message, record->error_message);
  CHECK_EQ(record->calls, 0);
}

/* A fresh directory for Unix sockets, removed at the end of the test. */
typedef struct unix_dir_s {
  char dir[64];
  char path[108];
} unix_dir_t;

static void unix_dir_make(unix_dir_t *u) {
  strcpy(u->dir, "/tmp/aios-server-XXXXXX");
  CHECK(mkdtemp(u->dir) != NULL);
  snprintf(u->path, sizeof u->path, "%s/s.sock", u->dir);
}

static void unix_dir_remove(unix_dir_t *u) {
  unlink(u->path);
  CHECK_EQ(rmdir(u->dir), 0);
}

/* A Unix stream socket bound to `path` (not listening). */
static int bound_unix_socket(const char *path) {
  struct sockaddr_un address;
  int fd = socket(AF_UNIX, SOCK_STREAM, 0);
  CHECK(fd >= 0);
  memset(&address, 0, sizeof address);
  address.sun_family = AF_UNIX;
  strcpy(address.sun_path, path);
  CHECK_EQ(bind(fd, (struct sockaddr *)&address, sizeof address), 0);
  return fd;
}

static ino_t inode_of(const char *path) {
  struct stat info;
  CHECK_EQ(stat(path, &info), 0);
  return info.st_ino;
}

/* ------------------------------------------------------------------------ */
/* Stream servers whose connections are tasks, after test_server.py's       */
/* `serve` coroutines.                                                       */

typedef enum serve_mode_e {
  SERVE_READ_ALL,    /* read() to EOF; finally close and wait_closed */
  SERVE_ECHO_LINE,   /* readline, write it back, drain, close, wait_closed */
  SERVE_LINE_CANCEL, /* readline, cancel serve_forever, write "1", close, wait_closed */
  SERVE_RESPOND,     /* read a request to "\r\n\r\n", answer, close, wait_closed */
  SERVE_HOLD,        /* hand the stream to the test; wait_closed */
  SERVE_CANCEL_SELF, /* close, cancel its own task, return */
  SERVE_READ_FOREVER /* read() to EOF, without closing when cancelled */
} serve_mode_t;

typedef struct server_ctx_s {
  aios_loop_t *loop;
  serve_mode_t mode;
  int own_task;          /* the callback starts its own task and returns NULL */
  int keep_task;         /* keep a reference to the last connection's task */
  aios_future_t *forever; /* borrowed: what SERVE_LINE_CANCEL cancels */
  aios_stream_t *held;   /* SERVE_HOLD: one reference */
  aios_task_t *task;     /* keep_task: one reference */
  size_t line_length;    /* of the last line read */
  int connections, finished, cancelled;
} server_ctx_t;

typedef struct conn_s {
  server_ctx_t *ctx;
  aios_stream_t *stream;
  int phase;
} conn_t;

static void conn_free(void *arg) {
  conn_t *c = (conn_t *)arg;
  aios_stream_unref(c->stream);
  free(c);
}

/* The awaited read's bytes, or NULL when it failed (its error retrieved). */
static aios_bytes_t *taken_bytes(aios_future_t *awaited) {
  void *value = NULL;
  aios_destructor_fn destructor = NULL;
  if (aios_future_take_result(awaited, &value, &destructor) != 0) return NULL;
  return (aios_bytes_t *)value;
}

static int await_closed(aios_task_t *task, conn_t *c) {
  aios_future_t *next = NULL;
  int rc;
  CHECK_EQ(aios_stream_close(c->stream), 0);
  if ((rc = aios_stream_wait_closed(c->stream, &next)) != 0) return rc;
  return aios_task_await_owned(task, next);
}

static int finish(aios_task_t *task, conn_t *c) {
  c->ctx->finished++;
  return aios_task_return(task, NULL, NULL);
}

static int serve_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  conn_t *c = (conn_t *)arg;
  server_ctx_t *ctx = c->ctx;
  aios_future_t *next = NULL;
  aios_bytes_t *b;
  int rc;
  if (awaited != NULL && aios_future_cancelled(awaited) == 1) {
    ctx->cancelled++;
    return AIOS_ECANCELLED;
  }
  switch (ctx->mode) {
    case SERVE_READ_ALL:
    case SERVE_READ_FOREVER:
      if (c->phase == 0) {
        c->phase = 1;
        if ((rc = aios_stream_read(c->stream, -1, &next)) != 0) return rc;
        return aios_task_await_owned(task, next);
      }
      if (c->phase == 1) {
        aios_bytes_free(taken_bytes(awaited));
        if (ctx->mode == SERVE_READ_FOREVER) return finish(task, c);
        c->phase = 2;
        return await_closed(task, c);
      }
      return finish(task, c);
    case SERVE_ECHO_LINE:
      if (c->phase == 0) {
        c->phase = 1;
        if ((rc = aios_stream_readline(c->stream, &next)) != 0) return rc;
        return aios_task_await_owned(task, next);
      }
      if (c->phase == 1) {
        c->phase = 2;
        b = taken_bytes(awaited);
        CHECK(b != NULL);
        rc = aios_stream_write(c->stream, b->data, b->length);
        aios_bytes_free(b);
        if (rc != 0) return rc;
        if ((rc = aios_stream_drain(c->stream, &next)) != 0) return rc;
        return aios_task_await_owned(task, next);
      }
      if (c->phase == 2) {
        if ((rc = aios_future_result(awaited, NULL)) != 0) return rc;
        c->phase = 3;
        return await_closed(task, c);
      }
      return finish(task, c);
    case SERVE_LINE_CANCEL:
      if (c->phase == 0) {
        c->phase = 1;
        if ((rc = aios_stream_readline(c->stream, &next)) != 0) return rc;
        return aios_task_await_owned(task, next);
      }
      if (c->phase == 1) {
        c->phase = 2;
        b = taken_bytes(awaited);
        CHECK(b != NULL);
        ctx->line_length = b->length;
        aios_bytes_free(b);
        CHECK_EQ(aios_future_cancel(ctx->forever, NULL), 1);
        CHECK_EQ(aios_stream_write(c->stream, "1", 1), 0);
        return await_closed(task, c);
      }
      return finish(task, c);
    case SERVE_RESPOND:
      if (c->phase == 0) {
        aios_buf_t end = {"\r\n\r\n", 4};
        c->phase = 1;
        if ((rc = aios_stream_readuntil(c->stream, &end, 1, &next)) != 0) return rc;
        return aios_task_await_owned(task, next);
      }
      if (c->phase == 1) {
        static const char answer[] = "HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nTest message";
        c->phase = 2;
        b = taken_bytes(awaited);
        CHECK(b != NULL);
        ctx->line_length = b->length;
        aios_bytes_free(b);
        CHECK_EQ(aios_stream_write(c->stream, answer, strlen(answer)), 0);
        return await_closed(task, c);
      }
      return finish(task, c);
    case SERVE_HOLD:
      if (c->phase == 0) {
        c->phase = 1;
        CHECK_EQ(aios_stream_ref(c->stream), 0);
        ctx->held = c->stream;
        if ((rc = aios_stream_wait_closed(c->stream, &next)) != 0) return rc;
        return aios_task_await_owned(task, next);
      }
      (void)aios_future_result(awaited, NULL);
      return finish(task, c);
    case SERVE_CANCEL_SELF:
      /* test_unhandled_cancel's handle_echo: writer.close(), then
       * current_task().cancel() and return: the task ends cancelled. */
      CHECK_EQ(aios_stream_close(c->stream), 0);
      CHECK_EQ(aios_task_cancel(task, NULL), 1);
      return finish(task, c);
  }
  return AIOS_EINVAL;
}

static aios_task_t *serve_connected(aios_stream_t *stream, void *arg) {
  server_ctx_t *ctx = (server_ctx_t *)arg;
  conn_t *c = (conn_t *)calloc(1, sizeof *c);
  aios_task_options_t options;
  aios_task_t *task = NULL;
  CHECK(c != NULL);
  CHECK_EQ(aios_stream_ref(stream), 0);
  c->stream = stream;
  c->ctx = ctx;
  ctx->connections++;
  memset(&options, 0, sizeof options);
  options.size = sizeof options;
  options.arg_destructor = conn_free;
  CHECK_EQ(aios_task_new(ctx->loop, serve_step, c, &options, &task), 0);
  if (ctx->keep_task) {
    aios_task_unref(ctx->task);
    CHECK_EQ(aios_task_ref(task), 0);
    ctx->task = task;
  }
  if (ctx->own_task) {
    /* test_start_server's handle_client_callback: create_task and return. */
    CHECK_EQ(aios_task_unref(task), 0);
    return NULL;
  }
  return task;
}

static void ctx_init(server_ctx_t *ctx, aios_loop_t *loop, serve_mode_t mode) {
  memset(ctx, 0, sizeof *ctx);
  ctx->loop = loop;
  ctx->mode = mode;
}

static void ctx_release(server_ctx_t *ctx) {
  CHECK_EQ(aios_stream_unref(ctx->held), 0);
  CHECK_EQ(aios_task_unref(ctx->task), 0);
  ctx->held = NULL;
  ctx->task = NULL;
}

static aios_server_options_t server_options(int start_serving) {
  aios_server_options_t options;
  memset(&options, 0, sizeof options);
  options.size = sizeof options;
  options.start_serving = start_serving;
  return options;
}

static aios_server_t *start_tcp(server_ctx_t *ctx, const aios_server_options_t *options) {
  aios_future_t *f = NULL;
  CHECK_EQ(aios_start_server(ctx->loop, serve_connected, ctx, NULL, "127.0.0.1", 0, 0, options, &f), 0);
  return (aios_server_t *)await_value(ctx->loop, f);
}

static aios_server_t *start_unix(server_ctx_t *ctx, const char *path, const aios_server_options_t *options) {
  aios_future_t *f = NULL;
  CHECK_EQ(aios_start_unix_server(ctx->loop, serve_connected, ctx, NULL, path, 0, options, &f), 0);
  return (aios_server_t *)await_value(ctx->loop, f);
}

/* ------------------------------------------------------------------------ */
/* test_server.py                                                             */

/* The client of test_start_server_1: sends a 5 KiB line, reads the "1"
 * the server answers before it closes. */
static void send_hello_read_one(aios_loop_t *loop, aios_stream_t *client) {
  static char hello[5 * 1024 + 1];
  aios_future_t *f = NULL;
  aios_bytes_t *b;
  memset(hello, '1', sizeof hello - 1);
  hello[sizeof hello - 1] = '\n';
  CHECK_EQ(aios_stream_write(client, hello, sizeof hello), 0);
  CHECK_EQ(aios_stream_readexactly(client, 1, &f), 0);
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "1");
  aios_bytes_free(b);
  CHECK_EQ(aios_stream_read(client, -1, &f), 0);
  b = await_bytes(loop, f);
  CHECK_EQ(b->length, 0); /* the server closed after its "1" */
  aios_bytes_free(b);
}

/* After serve_forever was cancelled: the server is closed for good. */
static void check_closed_for_good(aios_loop_t *loop, aios_server_t *server, aios_future_t *forever) {
  aios_future_t *f = NULL;
  struct sockaddr_storage address;
  unsigned int length = sizeof address;
  CHECK_EQ(await_status(loop, forever), AIOS_ECANCELLED);
  CHECK_EQ(aios_server_socket_count(server), 0);
  CHECK_EQ(aios_server_get_sockname(server, 0, &address, &length), AIOS_EINVAL);
  CHECK_EQ(aios_server_is_serving(server), 0);
  /* asyncio: RuntimeError "is closed". */
  CHECK_EQ(aios_server_serve_forever(server, &f), AIOS_EINVALIDSTATE);
  CHECK_EQ(aios_server_start_serving(server), AIOS_EINVALIDSTATE);
}

static void test_start_server_1(void) {
  /* start_serving=False; serve_forever in the main task; the client
   * callback cancels it; then the server is closed. */
  aios_loop_t *loop = make_loop();
  server_ctx_t ctx;
  aios_server_options_t options = server_options(-1);
  aios_server_t *server;
  aios_stream_t *client;
  aios_future_t *forever = NULL;
  exc_record_t record;
  memset(&record, 0, sizeof record);
  CHECK_EQ(aios_loop_set_exception_handler(loop, exc_recorder, &record), 0);
  ctx_init(&ctx, loop, SERVE_LINE_CANCEL);
  server = start_tcp(&ctx, &options);
  CHECK_EQ(aios_server_is_serving(server), 0);
  CHECK_EQ(aios_server_serve_forever(server, &forever), 0);
  ctx.forever = forever;
  CHECK_EQ(aios_server_is_serving(server), 1);
  client = open_client(loop, server_port_at(server, 0), 0);
  send_hello_read_one(loop, client);
  CHECK_EQ(ctx.line_length, 5 * 1024 + 1);
  check_closed_for_good(loop, server, forever);
  close_client(loop, client);
  close_server(loop, server);
  CHECK_EQ(ctx.finished, 1);
  check_no_exceptions(&record);
  close_loop(loop);
}

static void test_start_unix_server_1(void) {
  /* The same on a Unix socket, with start_serving before serve_forever. */
  aios_loop_t *loop = make_loop();
  server_ctx_t ctx;
  aios_server_options_t options = server_options(-1);
  aios_server_t *server;
  aios_stream_t *client;
  aios_future_t *forever = NULL, *f = NULL;
  unix_dir_t dir;
  unix_dir_make(&dir);
  ctx_init(&ctx, loop, SERVE_LINE_CANCEL);
  server = start_unix(&ctx, dir.path, &options);
  CHECK_EQ(aios_server_is_serving(server), 0);
  CHECK_EQ(aios_server_start_serving(server), 0);
  CHECK_EQ(aios_server_is_serving(server), 1);
  CHECK_EQ(aios_server_start_serving(server), 0); /* a no-op when serving */
  CHECK_EQ(aios_server_serve_forever(server, &forever), 0);
  ctx.forever = forever;
  CHECK_EQ(aios_open_unix_connection(loop, dir.path, 0, &f), 0);
  client = (aios_stream_t *)await_value(loop, f);
  send_hello_read_one(loop, client);
  check_closed_for_good(loop, server, forever);
  CHECK(access(dir.path, F_OK) != 0);
  close_client(loop, client);
  close_server(loop, server);
  CHECK_EQ(ctx.finished, 1);
  unix_dir_remove(&dir);
  close_loop(loop);
}

static void test_wait_closed_basic(void) {
  /* wait_closed is done only once the server is closed and its last
   * connection gone, in either order (3.12.1). */
  aios_loop_t *loop = make_loop();
  server_ctx_t ctx;
  aios_server_t *server;
  aios_stream_t *client;
  aios_future_t *w1 = NULL, *w2 = NULL, *w3 = NULL, *w4 = NULL;
  ctx_init(&ctx, loop, SERVE_READ_ALL);
  server = start_tcp(&ctx, NULL);
  /* No connection, not closed: waits. */
  CHECK_EQ(aios_server_wait_closed(server, &w1), 0);
  tick(loop);
  CHECK_EQ(aios_future_done(w1), 0);
  /* A connection, not closed: waits. */
  client = open_client(loop, server_port_at(server, 0), 0);
  tick_until(loop, &ctx.connections, 1);
  CHECK_EQ(aios_server_wait_closed(server, &w2), 0);
  tick(loop);
  CHECK_EQ(aios_future_done(w1), 0);
  CHECK_EQ(aios_future_done(w2), 0);
  /* A connection, closed: waits. */
  CHECK_EQ(aios_server_close(server), 0);
  tick(loop);
  CHECK_EQ(aios_server_wait_closed(server, &w3), 0);
  tick(loop);
  CHECK_EQ(aios_future_done(w1), 0);
  CHECK_EQ(aios_future_done(w2), 0);
  CHECK_EQ(aios_future_done(w3), 0);
  /* The client goes; the server's task sees EOF and closes its side. */
  close_client(loop, client);
  CHECK_EQ(await_status(loop, w1), 0);
  CHECK_EQ(await_status(loop, w2), 0);
  CHECK_EQ(await_status(loop, w3), 0);
  /* Closed and no connection: done at once. */
  CHECK_EQ(aios_server_wait_closed(server, &w4), 0);
  CHECK_EQ(aios_future_done(w4), 1);
  CHECK_EQ(await_status(loop, w4), 0);
  tick_until(loop, &ctx.finished, 1);
  CHECK_EQ(aios_server_unref(server), 0);
  close_loop(loop);
}

static void server_close_cb(void *arg) { CHECK_EQ(aios_server_close((aios_server_t *)arg), 0); }
static void stream_close_cb(void *arg) { CHECK_EQ(aios_stream_close((aios_stream_t *)arg), 0); }

static void test_wait_closed_race(void) {
  /* 3.12.0's regression: the server and its last client close in the
   * same iteration. */
  aios_loop_t *loop = make_loop();
  server_ctx_t ctx;
  aios_server_t *server;
  aios_stream_t *client;
  aios_future_t *waiting = NULL, *closed = NULL;
  ctx_init(&ctx, loop, SERVE_READ_ALL);
  server = start_tcp(&ctx, NULL);
  CHECK_EQ(aios_server_wait_closed(server, &waiting), 0);
  tick(loop);
  CHECK_EQ(aios_future_done(waiting), 0);
  client = open_client(loop, server_port_at(server, 0), 0);
  CHECK_EQ(aios_loop_call_soon(loop, server_close_cb, server, NULL, NULL), 0);
  CHECK_EQ(aios_loop_call_soon(loop, stream_close_cb, client, NULL, NULL), 0);
  CHECK_EQ(aios_server_wait_closed(server, &closed), 0);
  CHECK_EQ(await_status(loop, closed), 0);
  CHECK_EQ(aios_future_done(waiting), 1);
  CHECK_EQ(await_status(loop, waiting), 0);
  CHECK_EQ(ctx.connections, ctx.finished);
  close_client(loop, client);
  CHECK_EQ(aios_server_unref(server), 0);
  close_loop(loop);
}

static void test_close_clients(void) {
  aios_loop_t *loop = make_loop();
  server_ctx_t ctx;
  aios_server_t *server;
  aios_stream_t *client;
  aios_future_t *waiting = NULL;
  aios_bytes_t *b;
  aios_future_t *f = NULL;
  ctx_init(&ctx, loop, SERVE_READ_ALL);
  server = start_tcp(&ctx, NULL);
  client = open_client(loop, server_port_at(server, 0), 0);
  tick_until(loop, &ctx.connections, 1);
  CHECK_EQ(aios_server_wait_closed(server, &waiting), 0);
  run_once(loop);
  CHECK_EQ(aios_future_done(waiting), 0);
  CHECK_EQ(aios_server_close(server), 0);
  CHECK_EQ(aios_server_close_clients(server), 0);
  /* asyncio: done after two sleep(0)s. */
  run_once(loop);
  run_once(loop);
  CHECK_EQ(aios_future_done(waiting), 1);
  CHECK_EQ(await_status(loop, waiting), 0);
  /* The client sees the server's side close. */
  CHECK_EQ(aios_stream_read(client, -1, &f), 0);
  b = await_bytes(loop, f);
  CHECK_EQ(b->length, 0);
  aios_bytes_free(b);
  close_client(loop, client);
  tick_until(loop, &ctx.finished, 1);
  CHECK_EQ(aios_server_unref(server), 0);
  close_loop(loop);
}

static int socket_buffer(int fd, int name) {
  int value = 0;
  socklen_t size = sizeof value;
  CHECK_EQ(getsockopt(fd, SOL_SOCKET, name, &value, &size), 0);
  return value;
}

static void test_abort_clients(void) {
  /* A server connection whose writes cannot be sent (the client reads
   * nothing): close_clients waits for its buffer, abort_clients drops it
   * and wait_closed is done. */
  aios_loop_t *loop = make_loop();
  server_ctx_t ctx;
  aios_server_t *server;
  aios_stream_t *client;
  aios_transport_t *s_transport = NULL, *c_transport = NULL;
  aios_future_t *waiting = NULL;
  static char block[1 << 18];
  int s_fd, c_fd, size = 65536, c_bufsize, s_bufsize, i;
  double end;
  ctx_init(&ctx, loop, SERVE_HOLD);
  server = start_tcp(&ctx, NULL);
  client = open_client(loop, server_port_at(server, 0), 4096);
  tick_until(loop, &ctx.connections, 1);
  for (end = test_now() + 5; ctx.held == NULL; tick(loop)) CHECK(test_now() < end);
  CHECK_EQ(aios_stream_get_transport(ctx.held, &s_transport), 0);
  CHECK_EQ(aios_stream_get_transport(client, &c_transport), 0);
  s_fd = aios_transport_get_fd(s_transport);
  c_fd = aios_transport_get_fd(c_transport);
  CHECK_EQ(setsockopt(s_fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
  CHECK_EQ(setsockopt(c_fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size), 0);
  /* More than twice the client's limit pauses its reading. */
  memset(block, 'a', sizeof block);
  for (i = 0; i < 3; i++) CHECK_EQ(aios_stream_write(ctx.held, block, 4096), 0);
  for (end = test_now() + 5; aios_transport_is_reading(c_transport); tick(loop)) CHECK(test_now() < end);
  /* Then fill the kernel's buffers until the server's own buffer holds some. */
  c_bufsize = socket_buffer(c_fd, SO_RCVBUF);
  s_bufsize = socket_buffer(s_fd, SO_SNDBUF);
  CHECK(c_bufsize <= (int)sizeof block && s_bufsize <= (int)sizeof block);
  for (i = 0; i < 10; i++) {
    CHECK_EQ(aios_stream_write(ctx.held, block, (size_t)c_bufsize), 0);
    CHECK_EQ(aios_stream_write(ctx.held, block, (size_t)s_bufsize), 0);
    if (aios_transport_get_write_buffer_size(s_transport) > 0) break;
  }
  CHECK(aios_transport_get_write_buffer_size(s_transport) > 0);
  CHECK_EQ(aios_server_wait_closed(server, &waiting), 0);
  run_once(loop);
  CHECK_EQ(aios_future_done(waiting), 0);
  CHECK_EQ(aios_server_close(server), 0);
  /* Closing waits for a buffer that cannot drain. */
  CHECK_EQ(aios_server_close_clients(server), 0);
  for (i = 0; i < 5; i++) tick(loop);
  CHECK_EQ(aios_future_done(waiting), 0);
  CHECK(aios_transport_get_write_buffer_size(s_transport) > 0);
  /* asyncio: done after two sleep(0)s. */
  CHECK_EQ(aios_server_abort_clients(server), 0);
  run_once(loop);
  run_once(loop);
  CHECK_EQ(aios_future_done(waiting), 1);
  CHECK_EQ(await_status(loop, waiting), 0);
  CHECK_EQ(aios_transport_get_write_buffer_size(s_transport), 0);
  tick_until(loop, &ctx.finished, 1);
  CHECK_EQ(aios_transport_abort(c_transport), 0);
  CHECK_EQ(aios_transport_unref(c_transport), 0);
  CHECK_EQ(aios_transport_unref(s_transport), 0);
  close_client(loop, client);
  ctx_release(&ctx);
  CHECK_EQ(aios_server_unref(server), 0);
  close_loop(loop);
}

/* UnixServerCleanupTests: when close removes the socket file. */

/* A connection's stream is not closed when dropped (asyncio's writer
 * closes when collected): this callback closes it. */
static aios_task_t *close_connected(aios_stream_t *stream, void *arg) {
  (void)arg;
  CHECK_EQ(aios_stream_close(stream), 0);
  return NULL;
}

static aios_server_t *start_unix_nothing(aios_loop_t *loop, const char *path, int sock) {
  aios_server_options_t options = server_options(0);
  aios_future_t *f = NULL;
  if (sock >= 0) {
    options.has_sock = 1;
    options.sock = sock;
  }
  CHECK_EQ(aios_start_unix_server(loop, close_connected, NULL, NULL, sock >= 0 ? NULL : path, 0, &options, &f), 0);
  return (aios_server_t *)await_value(loop, f);
}

static void test_unix_server_addr_cleanup(void) {
  aios_loop_t *loop = make_loop();
  aios_server_t *server;
  unix_dir_t dir;
  unix_dir_make(&dir);
  server = start_unix_nothing(loop, dir.path, -1);
  CHECK_EQ(access(dir.path, F_OK), 0);
  CHECK_EQ(aios_server_close(server), 0);
  CHECK(access(dir.path, F_OK) != 0); /* removed by close itself */
  close_server(loop, server);
  unix_dir_remove(&dir);
  close_loop(loop);
}

static void test_unix_server_cleanup_prevented(void) {
  /* asyncio 3.13's cleanup_socket=False: the file stays; an options struct
   * of the size before keep_socket_file still works (the field reads 0). */
  aios_loop_t *loop = make_loop();
  aios_server_options_t options = server_options(0);
  aios_future_t *f = NULL;
  aios_server_t *server;
  unix_dir_t dir;
  unix_dir_make(&dir);
  options.keep_socket_file = 1;
  CHECK_EQ(aios_start_unix_server(loop, close_connected, NULL, NULL, dir.path, 0, &options, &f), 0);
  server = (aios_server_t *)await_value(loop, f);
  close_server(loop, server);
  CHECK_EQ(access(dir.path, F_OK), 0);
  unlink(dir.path);
  options.size = offsetof(aios_server_options_t, keep_socket_file);
  options.keep_socket_file = 1; /* beyond the size: not read */
  CHECK_EQ(aios_start_unix_server(loop, close_connected, NULL, NULL, dir.path, 0, &options, &f), 0);
  server = (aios_server_t *)await_value(loop, f);
  close_server(loop, server);
  CHECK(access(dir.path, F_OK) != 0);
  options.size = offsetof(aios_server_options_t, keep_socket_file) - 1;
  CHECK_EQ(aios_start_unix_server(loop, close_connected, NULL, NULL, dir.path, 0, &options, &f), AIOS_EINVAL);
  unix_dir_remove(&dir);
  close_loop(loop);
}

static void test_unix_server_sock_cleanup(void) {
  /* A socket the caller bound (sock=): its file is removed too. */
  aios_loop_t *loop = make_loop();
  aios_server_t *server;
  unix_dir_t dir;
  aios_future_t *f = NULL;
  aios_stream_t *client;
  int sock;
  unix_dir_make(&dir);
  sock = bound_unix_socket(dir.path);
  server = start_unix_nothing(loop, NULL, sock);
  CHECK_EQ(aios_server_is_serving(server), 1);
  /* The server listens on it. */
  CHECK_EQ(aios_open_unix_connection(loop, dir.path, 0, &f), 0);
  client = (aios_stream_t *)await_value(loop, f);
  close_client(loop, client);
  CHECK_EQ(aios_server_close(server), 0);
  CHECK(access(dir.path, F_OK) != 0);
  close_server(loop, server);
  unix_dir_remove(&dir);
  close_loop(loop);
}

static void test_unix_server_cleanup_gone(void) {
  /* Someone else removed the file first: close is quiet. */
  aios_loop_t *loop = make_loop();
  aios_server_t *server;
  unix_dir_t dir;
  exc_record_t record;
  memset(&record, 0, sizeof record);
  CHECK_EQ(aios_loop_set_exception_handler(loop, exc_recorder, &record), 0);
  unix_dir_make(&dir);
  server = start_unix_nothing(loop, NULL, bound_unix_socket(dir.path));
  CHECK_EQ(unlink(dir.path), 0);
  CHECK_EQ(aios_server_close(server), 0);
  CHECK(access(dir.path, F_OK) != 0);
  close_server(loop, server);
  check_no_exceptions(&record);
  unix_dir_remove(&dir);
  close_loop(loop);
}

static void test_unix_server_cleanup_replaced(void) {
  /* Someone else replaced the file with their own socket: it stays. */
  aios_loop_t *loop = make_loop();
  aios_server_t *server;
  unix_dir_t dir;
  ino_t theirs;
  int other;
  unix_dir_make(&dir);
  server = start_unix_nothing(loop, dir.path, -1);
  CHECK_EQ(unlink(dir.path), 0);
  other = bound_unix_socket(dir.path);
  theirs = inode_of(dir.path);
  CHECK_EQ(aios_server_close(server), 0);
  CHECK_EQ(access(dir.path, F_OK), 0);
  CHECK_EQ(inode_of(dir.path), theirs);
  close_server(loop, server);
  close(other);
  unix_dir_remove(&dir);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Server states (base_events.Server)                                         */

static void test_wait_closed_never_started(void) {
  /* A server that never served: wait_closed waits for close all the same. */
  aios_loop_t *loop = make_loop();
  server_ctx_t ctx;
  aios_server_options_t options = server_options(-1);
  aios_server_t *server;
  aios_future_t *waiting = NULL, *again = NULL;
  int i;
  ctx_init(&ctx, loop, SERVE_READ_ALL);
  server = start_tcp(&ctx, &options);
  CHECK_EQ(aios_server_is_serving(server), 0);
  CHECK_EQ(aios_server_wait_closed(server, &waiting), 0);
  for (i = 0; i < 3; i++) tick(loop);
  CHECK_EQ(aios_future_done(waiting), 0);
  CHECK_EQ(aios_server_close(server), 0);
  CHECK_EQ(await_status(loop, waiting), 0);
  CHECK_EQ(aios_server_wait_closed(server, &again), 0);
  CHECK_EQ(aios_future_done(again), 1);
  CHECK_EQ(await_status(loop, again), 0);
  CHECK_EQ(ctx.connections, 0);
  CHECK_EQ(aios_server_unref(server), 0);
  close_loop(loop);
}

static void test_not_listening_until_start_serving(void) {
  /* start_serving=False binds but does not listen (asyncio calls listen()
   * in _start_serving): a connection is refused until start_serving. */
  aios_loop_t *loop = make_loop();
  server_ctx_t ctx;
  aios_server_options_t options = server_options(-1);
  aios_server_t *server;
  aios_stream_t *client;
  aios_future_t *f = NULL;
  aios_error_t *error;
  aios_bytes_t *b;
  int port;
  ctx_init(&ctx, loop, SERVE_ECHO_LINE);
  server = start_tcp(&ctx, &options);
  CHECK_EQ(aios_server_is_serving(server), 0);
  CHECK_EQ(aios_server_socket_count(server), 1); /* the sockets are there */
  port = server_port_at(server, 0);
  CHECK(port > 0);
  CHECK_EQ(aios_open_connection(loop, "127.0.0.1", port, 0, NULL, &f), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), -ECONNREFUSED);
  CHECK_EQ(aios_error_unref(error), 0);
  CHECK_EQ(aios_server_start_serving(server), 0);
  CHECK_EQ(aios_server_is_serving(server), 1);
  client = open_client(loop, port, 0);
  CHECK_EQ(aios_stream_write(client, "late\n", 5), 0);
  CHECK_EQ(aios_stream_readline(client, &f), 0);
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "late\n");
  aios_bytes_free(b);
  close_client(loop, client);
  close_server(loop, server);
  CHECK_EQ(ctx.finished, 1);
  close_loop(loop);
}

static void test_close_cancels_serve_forever(void) {
  /* Server.close cancels the serve_forever future at once; serve_forever
   * while one is pending, or once closed, is a RuntimeError. */
  aios_loop_t *loop = make_loop();
  server_ctx_t ctx;
  aios_server_t *server;
  aios_future_t *forever = NULL, *f = NULL;
  ctx_init(&ctx, loop, SERVE_READ_ALL);
  server = start_tcp(&ctx, NULL);
  CHECK_EQ(aios_server_serve_forever(server, &forever), 0);
  CHECK_EQ(aios_server_serve_forever(server, &f), AIOS_EINVALIDSTATE);
  tick(loop);
  CHECK_EQ(aios_future_done(forever), 0);
  CHECK_EQ(aios_server_close(server), 0);
  CHECK_EQ(aios_future_cancelled(forever), 1);
  CHECK_EQ(await_status(loop, forever), AIOS_ECANCELLED);
  CHECK_EQ(aios_server_serve_forever(server, &f), AIOS_EINVALIDSTATE);
  close_server(loop, server);
  close_loop(loop);
}

static void test_cancel_serve_forever_keeps_connections(void) {
  /* Cancelling serve_forever closes the server, not its connections: they
   * are served on, and wait_closed waits for them. */
  aios_loop_t *loop = make_loop();
  server_ctx_t ctx;
  aios_server_t *server;
  aios_stream_t *client;
  aios_future_t *forever = NULL, *waiting = NULL, *f = NULL;
  aios_error_t *error;
  aios_bytes_t *b;
  int port;
  ctx_init(&ctx, loop, SERVE_ECHO_LINE);
  server = start_tcp(&ctx, NULL);
  port = server_port_at(server, 0);
  CHECK_EQ(aios_server_serve_forever(server, &forever), 0);
  client = open_client(loop, port, 0);
  tick_until(loop, &ctx.connections, 1);
  CHECK_EQ(aios_future_cancel(forever, NULL), 1);
  CHECK_EQ(await_status(loop, forever), AIOS_ECANCELLED);
  CHECK_EQ(aios_server_is_serving(server), 0);
  CHECK_EQ(aios_server_socket_count(server), 0);
  CHECK_EQ(aios_server_wait_closed(server, &waiting), 0);
  tick(loop);
  CHECK_EQ(aios_future_done(waiting), 0);
  /* No new connection... */
  CHECK_EQ(aios_open_connection(loop, "127.0.0.1", port, 0, NULL, &f), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), -ECONNREFUSED);
  CHECK_EQ(aios_error_unref(error), 0);
  /* ...but the open one is still served. */
  CHECK_EQ(aios_stream_write(client, "still\n", 6), 0);
  CHECK_EQ(aios_stream_readline(client, &f), 0);
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "still\n");
  aios_bytes_free(b);
  CHECK_EQ(await_status(loop, waiting), 0);
  CHECK_EQ(ctx.finished, 1);
  close_client(loop, client);
  CHECK_EQ(aios_server_unref(server), 0);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* test_streams.py: servers and their clients                                */

static void echo_hello(aios_loop_t *loop, aios_stream_t *client) {
  aios_future_t *f = NULL;
  aios_bytes_t *b;
  CHECK_EQ(aios_stream_write(client, "hello world!\n", 13), 0);
  CHECK_EQ(aios_stream_readline(client, &f), 0);
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "hello world!\n");
  aios_bytes_free(b);
  close_client(loop, client);
}

static void test_start_server(void) {
  /* The handler as the task the callback returns, on a listening socket
   * the caller made (sock=); then as a task the callback starts itself. */
  aios_loop_t *loop = make_loop();
  exc_record_t record;
  server_ctx_t ctx;
  aios_server_options_t options = server_options(0);
  aios_server_t *server;
  aios_future_t *f = NULL;
  int sock, port, own;
  memset(&record, 0, sizeof record);
  CHECK_EQ(aios_loop_set_exception_handler(loop, exc_recorder, &record), 0);
  port = loopback_port(&sock, 8);
  for (own = 0; own < 2; own++) {
    ctx_init(&ctx, loop, SERVE_ECHO_LINE);
    ctx.own_task = own;
    if (own) {
      CHECK_EQ(aios_start_server(loop, serve_connected, &ctx, NULL, "127.0.0.1", 0, 0, NULL, &f), 0);
    } else {
      options.has_sock = 1;
      options.sock = sock;
      CHECK_EQ(aios_start_server(loop, serve_connected, &ctx, NULL, NULL, 0, 0, &options, &f), 0);
    }
    server = (aios_server_t *)await_value(loop, f);
    CHECK_EQ(aios_server_socket_count(server), 1);
    if (!own) CHECK_EQ(server_port_at(server, 0), port);
    echo_hello(loop, open_client(loop, server_port_at(server, 0), 0));
    close_server(loop, server);
    CHECK_EQ(ctx.finished, 1);
  }
  check_no_exceptions(&record);
  close_loop(loop);
}

static void test_start_unix_server(void) {
  aios_loop_t *loop = make_loop();
  exc_record_t record;
  server_ctx_t ctx;
  aios_server_t *server;
  aios_future_t *f = NULL;
  unix_dir_t dir;
  int own;
  memset(&record, 0, sizeof record);
  CHECK_EQ(aios_loop_set_exception_handler(loop, exc_recorder, &record), 0);
  unix_dir_make(&dir);
  for (own = 0; own < 2; own++) {
    ctx_init(&ctx, loop, SERVE_ECHO_LINE);
    ctx.own_task = own;
    server = start_unix(&ctx, dir.path, NULL);
    CHECK_EQ(aios_open_unix_connection(loop, dir.path, 0, &f), 0);
    echo_hello(loop, (aios_stream_t *)await_value(loop, f));
    close_server(loop, server);
    CHECK_EQ(ctx.finished, 1);
  }
  check_no_exceptions(&record);
  unix_dir_remove(&dir);
  close_loop(loop);
}

static void test_open_unix_connection_errors(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = NULL;
  aios_error_t *error;
  unix_dir_t dir;
  int stale;
  unix_dir_make(&dir);
  CHECK_EQ(aios_open_unix_connection(loop, dir.path, 0, &f), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), -ENOENT);
  CHECK_EQ(aios_error_unref(error), 0);
  /* A socket file nothing listens on. */
  stale = bound_unix_socket(dir.path);
  CHECK_EQ(aios_open_unix_connection(loop, dir.path, 0, &f), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), -ECONNREFUSED);
  CHECK_EQ(aios_error_unref(error), 0);
  close(stale);
  CHECK_EQ(aios_open_unix_connection(loop, NULL, 0, &f), AIOS_EINVAL);
  unix_dir_remove(&dir);
  close_loop(loop);
}

/* Sends test_streams.py's request to a SERVE_RESPOND server; gives the
 * answer's first line. */
static aios_stream_t *request(aios_loop_t *loop, int port) {
  aios_stream_t *client = open_client(loop, port, 0);
  aios_future_t *f = NULL;
  aios_bytes_t *b;
  CHECK_EQ(aios_stream_write(client, "GET / HTTP/1.0\r\n\r\n", 18), 0);
  CHECK_EQ(aios_stream_readline(client, &f), 0);
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "HTTP/1.0 200 OK\r\n");
  aios_bytes_free(b);
  return client;
}

static void test_wait_closed_on_close(void) {
  /* test_wait_closed_on_close, _with_unread_data, and
   * test_async_writer_api_exception_after_close. */
  aios_loop_t *loop = make_loop();
  exc_record_t record;
  server_ctx_t ctx;
  aios_server_t *server;
  aios_stream_t *client;
  aios_future_t *f = NULL;
  aios_error_t *error;
  aios_bytes_t *b;
  int port;
  memset(&record, 0, sizeof record);
  CHECK_EQ(aios_loop_set_exception_handler(loop, exc_recorder, &record), 0);
  ctx_init(&ctx, loop, SERVE_RESPOND);
  server = start_tcp(&ctx, NULL);
  port = server_port_at(server, 0);
  /* All read, then closed. */
  client = request(loop, port);
  CHECK_EQ(aios_stream_read(client, -1, &f), 0);
  b = await_bytes(loop, f);
  CHECK(b->length >= 16 && memcmp(b->data + b->length - 16, "\r\n\r\nTest message", 16) == 0);
  aios_bytes_free(b);
  CHECK_EQ(aios_stream_is_closing(client), 0);
  CHECK_EQ(aios_stream_close(client), 0);
  CHECK_EQ(aios_stream_is_closing(client), 1);
  /* After close, a write is ignored and drain raises ConnectionResetError. */
  CHECK_EQ(aios_stream_write(client, "data", 4), 0);
  CHECK_EQ(aios_stream_drain(client, &f), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), -ECONNRESET);
  CHECK_EQ(aios_error_unref(error), 0);
  CHECK_EQ(aios_stream_wait_closed(client, &f), 0);
  CHECK_EQ(await_status(loop, f), 0);
  CHECK_EQ(aios_stream_unref(client), 0);
  /* Closed with the rest of the answer unread. */
  client = request(loop, port);
  CHECK_EQ(aios_stream_close(client), 0);
  CHECK_EQ(aios_stream_wait_closed(client, &f), 0);
  CHECK_EQ(await_status(loop, f), 0);
  CHECK_EQ(aios_stream_unref(client), 0);
  close_server(loop, server);
  CHECK_EQ(ctx.finished, 2);
  CHECK_EQ(ctx.line_length, 18);
  check_no_exceptions(&record);
  close_loop(loop);
}

static void test_eof_feed_when_closing_writer(void) {
  /* bpo-35065: closing the writer feeds EOF to its reader. */
  aios_loop_t *loop = make_loop();
  exc_record_t record;
  server_ctx_t ctx;
  aios_server_t *server;
  aios_stream_t *client;
  aios_future_t *f = NULL;
  aios_bytes_t *b;
  memset(&record, 0, sizeof record);
  CHECK_EQ(aios_loop_set_exception_handler(loop, exc_recorder, &record), 0);
  ctx_init(&ctx, loop, SERVE_READ_ALL);
  server = start_tcp(&ctx, NULL);
  client = open_client(loop, server_port_at(server, 0), 0);
  CHECK_EQ(aios_stream_at_eof(client), 0);
  CHECK_EQ(aios_stream_close(client), 0);
  CHECK_EQ(aios_stream_wait_closed(client, &f), 0);
  CHECK_EQ(await_status(loop, f), 0);
  CHECK_EQ(aios_stream_at_eof(client), 1);
  CHECK_EQ(aios_stream_read(client, -1, &f), 0);
  b = await_bytes(loop, f);
  CHECK_EQ(b->length, 0);
  aios_bytes_free(b);
  CHECK_EQ(aios_stream_unref(client), 0);
  close_server(loop, server);
  check_no_exceptions(&record);
  close_loop(loop);
}

static void test_drain_raises(void) {
  /* bpo-25441: the peer accepts and closes at once; writing and draining
   * in a loop must end with the connection's error, not spin. */
  aios_loop_t *loop = make_loop();
  exc_record_t record;
  aios_stream_t *client;
  aios_error_t *error = NULL;
  struct sockaddr_in address;
  socklen_t length = sizeof address;
  int listener = socket(AF_INET, SOCK_STREAM, 0), peer, i, code;
  memset(&record, 0, sizeof record);
  CHECK_EQ(aios_loop_set_exception_handler(loop, exc_recorder, &record), 0);
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_EQ(bind(listener, (struct sockaddr *)&address, sizeof address), 0);
  CHECK_EQ(listen(listener, 1), 0);
  CHECK_EQ(getsockname(listener, (struct sockaddr *)&address, &length), 0);
  client = open_client(loop, ntohs(address.sin_port), 0);
  peer = accept(listener, NULL, NULL);
  CHECK(peer >= 0);
  close(peer);
  for (i = 0; i < 10000 && error == NULL; i++) {
    aios_future_t *f = NULL;
    CHECK_EQ(aios_stream_write(client, "foo\n", 4), 0);
    CHECK_EQ(aios_stream_drain(client, &f), 0);
    if (aios_loop_run_until_complete(loop, f) != 0) CHECK_EQ(aios_future_error(f, &error), 0);
    CHECK_EQ(aios_future_unref(f), 0);
  }
  CHECK(error != NULL);
  code = aios_error_code(error);
  CHECK(code == -ECONNRESET || code == -EPIPE || code == -ECONNABORTED);
  CHECK_EQ(aios_error_unref(error), 0);
  CHECK_EQ(aios_stream_unref(client), 0);
  close(listener);
  check_no_exceptions(&record);
  close_loop(loop);
}

/* A server connection that reads nothing until told to. */
static aios_transport_t *stalled;

static void stall_made(aios_transport_t *t, void *arg) {
  (void)arg;
  CHECK_EQ(aios_transport_pause_reading(t), 0);
  CHECK_EQ(aios_transport_ref(t), 0);
  stalled = t;
}

static int stall_factory(void *arg, aios_protocol_t *protocol) {
  protocol->arg = arg;
  protocol->connection_made = stall_made;
  return 0;
}

static void test_multiple_drain(void) {
  /* gh-74116: every drain waiting on a paused writer is woken at resume. */
  aios_loop_t *loop = make_loop();
  aios_future_t *f = NULL, *drains[10];
  aios_server_t *server;
  aios_stream_t *client;
  static char block[1 << 16];
  int i;
  CHECK_EQ(aios_create_server(loop, stall_factory, NULL, NULL, "127.0.0.1", 0, NULL, &f), 0);
  server = (aios_server_t *)await_value(loop, f);
  client = open_client(loop, server_port_at(server, 0), 0);
  for (i = 0; i < 500 && stalled == NULL; i++) tick(loop);
  CHECK(stalled != NULL);
  drains[0] = NULL;
  for (i = 0; i < 400; i++) {
    CHECK_EQ(aios_stream_write(client, block, sizeof block), 0);
    CHECK_EQ(aios_stream_drain(client, &drains[0]), 0);
    if (!aios_future_done(drains[0])) break;
    CHECK_EQ(await_status(loop, drains[0]), 0);
    drains[0] = NULL;
  }
  CHECK(drains[0] != NULL);
  for (i = 1; i < 10; i++) CHECK_EQ(aios_stream_drain(client, &drains[i]), 0);
  tick(loop);
  for (i = 0; i < 10; i++) CHECK_EQ(aios_future_done(drains[i]), 0);
  CHECK_EQ(aios_transport_resume_reading(stalled), 0);
  for (i = 0; i < 10; i++) CHECK_EQ(await_status(loop, drains[i]), 0);
  CHECK_EQ(aios_transport_close(stalled), 0);
  CHECK_EQ(aios_transport_unref(stalled), 0);
  stalled = NULL;
  close_client(loop, client);
  close_server(loop, server);
  close_loop(loop);
}

static void test_unhandled_cancel(void) {
  /* A client task that closes its writer and cancels itself: no report. */
  aios_loop_t *loop = make_loop();
  exc_record_t record;
  server_ctx_t ctx;
  aios_server_options_t options = server_options(-1);
  aios_server_t *server;
  aios_stream_t *client;
  aios_future_t *f = NULL;
  memset(&record, 0, sizeof record);
  CHECK_EQ(aios_loop_set_exception_handler(loop, exc_recorder, &record), 0);
  ctx_init(&ctx, loop, SERVE_CANCEL_SELF);
  ctx.keep_task = 1;
  server = start_tcp(&ctx, &options);
  CHECK_EQ(aios_server_start_serving(server), 0);
  client = open_client(loop, server_port_at(server, 0), 0);
  CHECK_EQ(aios_stream_write(client, "test msg", 8), 0);
  CHECK_EQ(aios_stream_drain(client, &f), 0);
  CHECK_EQ(await_status(loop, f), 0);
  close_client(loop, client);
  close_server(loop, server);
  CHECK(ctx.task != NULL);
  CHECK_EQ(aios_future_cancelled(aios_task_as_future(ctx.task)), 1);
  ctx_release(&ctx);
  check_no_exceptions(&record);
  close_loop(loop);
}

static void test_cancelled_client_task_closes(void) {
  /* asyncio 3.13: a client_connected_cb task that ends cancelled closes
   * its transport, without a report. */
  aios_loop_t *loop = make_loop();
  exc_record_t record;
  server_ctx_t ctx;
  aios_server_t *server;
  aios_stream_t *client;
  aios_future_t *f = NULL;
  aios_bytes_t *b;
  double end;
  memset(&record, 0, sizeof record);
  CHECK_EQ(aios_loop_set_exception_handler(loop, exc_recorder, &record), 0);
  ctx_init(&ctx, loop, SERVE_READ_FOREVER);
  ctx.keep_task = 1;
  server = start_tcp(&ctx, NULL);
  client = open_client(loop, server_port_at(server, 0), 0);
  tick_until(loop, &ctx.connections, 1);
  tick(loop);
  CHECK_EQ(aios_task_cancel(ctx.task, NULL), 1);
  CHECK_EQ(aios_stream_read(client, -1, &f), 0);
  for (end = test_now() + 5; !aios_future_done(f); tick(loop)) CHECK(test_now() < end);
  b = await_bytes(loop, f);
  CHECK_EQ(b->length, 0); /* the server's side was closed */
  aios_bytes_free(b);
  CHECK_EQ(ctx.cancelled, 1);
  CHECK_EQ(ctx.finished, 0);
  CHECK_EQ(aios_future_cancelled(aios_task_as_future(ctx.task)), 1);
  close_client(loop, client);
  close_server(loop, server);
  ctx_release(&ctx);
  check_no_exceptions(&record);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* test_streams.py: readers fed by hand                                      */

static aios_stream_t *hand_fed(aios_loop_t *loop, size_t limit) {
  aios_stream_t *s = NULL;
  CHECK_EQ(aios_stream_new(loop, limit, &s), 0);
  return s;
}

static void feed(aios_stream_t *s, const char *text) {
  CHECK_EQ(aios_stream_feed_data(s, text, strlen(text)), 0);
}

/* Feeds its pieces, then EOF, from a call_soon callback (the CPython
 * tests' `cb`). */
typedef struct feeder_s {
  aios_stream_t *stream;
  const char *pieces[4];
} feeder_t;

static void feeder_cb(void *arg) {
  feeder_t *feeder = (feeder_t *)arg;
  int i;
  for (i = 0; i < 4 && feeder->pieces[i] != NULL; i++) feed(feeder->stream, feeder->pieces[i]);
  CHECK_EQ(aios_stream_feed_eof(feeder->stream), 0);
}

/* What is left in a reader at EOF. */
static void check_rest(aios_loop_t *loop, aios_stream_t *s, const char *expected) {
  aios_future_t *f = NULL;
  aios_bytes_t *b;
  CHECK_EQ(aios_stream_read(s, -1, &f), 0);
  b = await_bytes(loop, f);
  CHECK_BYTES(b, expected);
  aios_bytes_free(b);
}

static void test_at_eof_and_readline_eof(void) {
  /* test_at_eof, test_readline_eof, test_readline_empty_eof. */
  aios_loop_t *loop = make_loop();
  aios_stream_t *s = hand_fed(loop, 0);
  aios_future_t *f = NULL;
  aios_bytes_t *b;
  CHECK_EQ(aios_stream_at_eof(s), 0);
  feed(s, "some data\n");
  CHECK_EQ(aios_stream_at_eof(s), 0);
  CHECK_EQ(aios_stream_readline(s, &f), 0);
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "some data\n");
  aios_bytes_free(b);
  CHECK_EQ(aios_stream_at_eof(s), 0);
  feed(s, "some data");
  CHECK_EQ(aios_stream_feed_eof(s), 0);
  CHECK_EQ(aios_stream_at_eof(s), 0); /* EOF, but bytes left */
  CHECK_EQ(aios_stream_readline(s, &f), 0);
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "some data");
  aios_bytes_free(b);
  CHECK_EQ(aios_stream_at_eof(s), 1);
  CHECK_EQ(aios_stream_unref(s), 0);
  s = hand_fed(loop, 0);
  CHECK_EQ(aios_stream_feed_eof(s), 0);
  CHECK_EQ(aios_stream_readline(s, &f), 0);
  b = await_bytes(loop, f);
  CHECK_EQ(b->length, 0);
  aios_bytes_free(b);
  CHECK_EQ(aios_stream_unref(s), 0);
  close_loop(loop);
}

static void test_readexactly_zero_and_eof(void) {
  /* test_readexactly_zero_or_less, test_readexactly, test_readexactly_eof. */
  static const char DATA[] = "line1\nline2\nline3\n";
  aios_loop_t *loop = make_loop();
  aios_stream_t *s = hand_fed(loop, 0);
  aios_future_t *f = NULL;
  aios_error_t *error;
  aios_bytes_t *b;
  feeder_t feeder;
  const void *partial = NULL;
  size_t length = 0;
  long long expected = 0;
  feed(s, DATA);
  CHECK_EQ(aios_stream_readexactly(s, 0, &f), 0);
  CHECK_EQ(aios_future_done(f), 1);
  b = await_bytes(loop, f);
  CHECK_EQ(b->length, 0);
  aios_bytes_free(b);
  /* Twice the data asked, three times fed: one is left. */
  CHECK_EQ(aios_stream_readexactly(s, 2 * strlen(DATA), &f), 0);
  CHECK_EQ(aios_future_done(f), 0);
  feed(s, DATA);
  feed(s, DATA);
  b = await_bytes(loop, f);
  CHECK_EQ(b->length, 2 * strlen(DATA));
  CHECK(memcmp(b->data, DATA, strlen(DATA)) == 0);
  CHECK(memcmp(b->data + strlen(DATA), DATA, strlen(DATA)) == 0);
  aios_bytes_free(b);
  /* EOF first: IncompleteReadError with what was there. */
  CHECK_EQ(aios_stream_readexactly(s, 2 * strlen(DATA), &f), 0);
  memset(&feeder, 0, sizeof feeder);
  feeder.stream = s;
  CHECK_EQ(aios_loop_call_soon(loop, feeder_cb, &feeder, NULL, NULL), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), AIOS_EINCOMPLETE);
  CHECK_EQ(aios_error_kind(error), AIOS_ERROR_INCOMPLETE_READ);
  CHECK_STR_EQ(aios_error_message(error), "18 bytes read on a total of 36 expected bytes");
  CHECK_EQ(aios_error_partial(error, &partial, &length, &expected), 0);
  CHECK_EQ(length, strlen(DATA));
  CHECK(memcmp(partial, DATA, length) == 0);
  CHECK_EQ(expected, 36);
  CHECK_EQ(aios_error_unref(error), 0);
  CHECK_EQ(aios_stream_at_eof(s), 1);
  CHECK_EQ(aios_stream_unref(s), 0);
  close_loop(loop);
}

static void test_readuntil_eof(void) {
  aios_loop_t *loop = make_loop();
  aios_stream_t *s = hand_fed(loop, 0);
  aios_future_t *f = NULL;
  aios_error_t *error;
  aios_buf_t sep = {"AAA", 3};
  const void *partial = NULL;
  size_t length = 0;
  long long expected = 0;
  feed(s, "some dataAA");
  CHECK_EQ(aios_stream_feed_eof(s), 0);
  CHECK_EQ(aios_stream_readuntil(s, &sep, 1, &f), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), AIOS_EINCOMPLETE);
  CHECK(strstr(aios_error_message(error), "undefined expected bytes") != NULL);
  CHECK_EQ(aios_error_partial(error, &partial, &length, &expected), 0);
  CHECK_EQ(length, 11);
  CHECK(memcmp(partial, "some dataAA", 11) == 0);
  CHECK_EQ(expected, -1);
  CHECK_EQ(aios_error_unref(error), 0);
  CHECK_EQ(aios_stream_at_eof(s), 1); /* the buffer was emptied */
  CHECK_EQ(aios_stream_unref(s), 0);
  close_loop(loop);
}

static void test_readline_limit_waiting(void) {
  /* test_readline_limit: the data comes after readline waits. */
  aios_loop_t *loop = make_loop();
  aios_stream_t *s = hand_fed(loop, 7);
  aios_future_t *f = NULL;
  aios_error_t *error;
  aios_bytes_t *b;
  feeder_t feeder;
  memset(&feeder, 0, sizeof feeder);
  feeder.stream = s;
  feeder.pieces[0] = "chunk1";
  feeder.pieces[1] = "chunk2";
  feeder.pieces[2] = "chunk3\n";
  CHECK_EQ(aios_stream_readline(s, &f), 0);
  CHECK_EQ(aios_loop_call_soon(loop, feeder_cb, &feeder, NULL, NULL), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), AIOS_ELIMIT);
  CHECK_EQ(aios_error_unref(error), 0);
  check_rest(loop, s, ""); /* the one line was dropped */
  CHECK_EQ(aios_stream_unref(s), 0);

  s = hand_fed(loop, 7);
  feeder.stream = s;
  feeder.pieces[1] = "chunk2\n";
  CHECK_EQ(aios_stream_readline(s, &f), 0);
  CHECK_EQ(aios_loop_call_soon(loop, feeder_cb, &feeder, NULL, NULL), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), AIOS_ELIMIT);
  CHECK_EQ(aios_error_unref(error), 0);
  check_rest(loop, s, "chunk3\n");
  CHECK_EQ(aios_stream_unref(s), 0);

  /* The limit is strict: a line of exactly `limit` bytes and "\n" passes. */
  s = hand_fed(loop, 7);
  feed(s, "1234567\n");
  CHECK_EQ(aios_stream_readline(s, &f), 0);
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "1234567\n");
  aios_bytes_free(b);
  CHECK_EQ(aios_stream_unref(s), 0);
  close_loop(loop);
}

int main(int argc, char **argv) {
  static const test_entry_t tests[] = {
      TEST_ENTRY(test_start_server_1),
      TEST_ENTRY(test_start_unix_server_1),
      TEST_ENTRY(test_wait_closed_basic),
      TEST_ENTRY(test_wait_closed_race),
      TEST_ENTRY(test_close_clients),
      TEST_ENTRY(test_abort_clients),
      TEST_ENTRY(test_unix_server_addr_cleanup),
      TEST_ENTRY(test_unix_server_sock_cleanup),
      TEST_ENTRY(test_unix_server_cleanup_prevented),
      TEST_ENTRY(test_unix_server_cleanup_gone),
      TEST_ENTRY(test_unix_server_cleanup_replaced),
      TEST_ENTRY(test_wait_closed_never_started),
      TEST_ENTRY(test_not_listening_until_start_serving),
      TEST_ENTRY(test_close_cancels_serve_forever),
      TEST_ENTRY(test_cancel_serve_forever_keeps_connections),
      TEST_ENTRY(test_start_server),
      TEST_ENTRY(test_start_unix_server),
      TEST_ENTRY(test_open_unix_connection_errors),
      TEST_ENTRY(test_wait_closed_on_close),
      TEST_ENTRY(test_eof_feed_when_closing_writer),
      TEST_ENTRY(test_drain_raises),
      TEST_ENTRY(test_multiple_drain),
      TEST_ENTRY(test_unhandled_cancel),
      TEST_ENTRY(test_cancelled_client_task_closes),
      TEST_ENTRY(test_at_eof_and_readline_eof),
      TEST_ENTRY(test_readexactly_zero_and_eof),
      TEST_ENTRY(test_readuntil_eof),
      TEST_ENTRY(test_readline_limit_waiting),
  };
  return run_tests(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
