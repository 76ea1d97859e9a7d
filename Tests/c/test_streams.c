/*
 * test_streams.c: asyncio's StreamReader and StreamWriter through the C
 * ABI: readers fed by hand under random chunking, and streams over real
 * sockets (echo servers whose connections are tasks, flow control, resets,
 * 1,000 connections at once). Behavioural cases from CPython's
 * test_streams.py.
 */
#define _GNU_SOURCE
#include "test_util.h"
#include "test_net.h"

#include <netinet/in.h>
#include <sys/resource.h>
#include <sys/socket.h>

/* ------------------------------------------------------------------------ */
/* Helpers                                                                    */

static aios_bytes_t *take_bytes(aios_future_t *future) {
  void *value = NULL;
  aios_destructor_fn destructor = NULL;
  CHECK_EQ(aios_future_take_result(future, &value, &destructor), 0);
  CHECK(value != NULL);
  CHECK(destructor == aios_bytes_free);
  return (aios_bytes_t *)value;
}

/* Runs until `future` is done and gives its bytes (the caller frees them). */
static aios_bytes_t *await_bytes(aios_loop_t *loop, aios_future_t *future) {
  aios_bytes_t *bytes;
  CHECK_EQ(aios_loop_run_until_complete(loop, future), 0);
  bytes = take_bytes(future);
  CHECK_EQ(aios_future_unref(future), 0);
  return bytes;
}

#define CHECK_BYTES(bytes, text)                                               \
  do {                                                                         \
    CHECK_EQ((bytes)->length, strlen(text));                                   \
    CHECK(memcmp((bytes)->data, (text), strlen(text)) == 0);                   \
    CHECK_EQ((bytes)->data[(bytes)->length], 0);                               \
  } while (0)

static aios_stream_t *hand_fed(aios_loop_t *loop, size_t limit) {
  aios_stream_t *s = NULL;
  CHECK_EQ(aios_stream_new(loop, limit, &s), 0);
  return s;
}

static void feed(aios_stream_t *s, const char *text) {
  CHECK_EQ(aios_stream_feed_data(s, text, strlen(text)), 0);
}

/* ------------------------------------------------------------------------ */
/* Readers fed by hand                                                        */

static void test_read_and_read_to_eof(void) {
  aios_loop_t *loop = make_loop();
  aios_stream_t *s = hand_fed(loop, 0);
  aios_future_t *f = NULL;
  aios_bytes_t *b;
  feed(s, "line1\nline2\n");
  CHECK_EQ(aios_stream_read(s, 3, &f), 0);
  CHECK_EQ(aios_future_done(f), 1); /* the buffer answered at once */
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "lin");
  aios_bytes_free(b);
  CHECK_EQ(aios_stream_read(s, 0, &f), 0);
  b = await_bytes(loop, f);
  CHECK_EQ(b->length, 0);
  aios_bytes_free(b);
  /* read(-1) waits for EOF. */
  CHECK_EQ(aios_stream_read(s, -1, &f), 0);
  run_once(loop);
  CHECK_EQ(aios_future_done(f), 0);
  feed(s, "tail");
  CHECK_EQ(aios_stream_feed_eof(s), 0);
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "e1\nline2\ntail");
  aios_bytes_free(b);
  CHECK_EQ(aios_stream_at_eof(s), 1);
  /* At EOF a read gives empty bytes; feeding is refused. */
  CHECK_EQ(aios_stream_read(s, 10, &f), 0);
  b = await_bytes(loop, f);
  CHECK_EQ(b->length, 0);
  aios_bytes_free(b);
  CHECK_EQ(aios_stream_feed_data(s, "x", 1), AIOS_EINVALIDSTATE);
  CHECK_EQ(aios_stream_feed_eof(s), AIOS_EINVALIDSTATE);
  /* A reader fed by hand has no writer. */
  CHECK_EQ(aios_stream_write(s, "x", 1), AIOS_EINVALIDSTATE);
  CHECK_EQ(aios_stream_drain(s, &f), AIOS_EINVALIDSTATE);
  CHECK_EQ(aios_stream_unref(s), 0);
  close_loop(loop);
}

static void test_readline(void) {
  aios_loop_t *loop = make_loop();
  aios_stream_t *s = hand_fed(loop, 0);
  aios_future_t *f = NULL;
  aios_bytes_t *b;
  CHECK_EQ(aios_stream_readline(s, &f), 0);
  feed(s, "chunk1 ");
  feed(s, "chunk2 ");
  run_once(loop);
  CHECK_EQ(aios_future_done(f), 0);
  feed(s, "chunk3\nchunk4");
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "chunk1 chunk2 chunk3\n");
  aios_bytes_free(b);
  CHECK_EQ(aios_stream_feed_eof(s), 0);
  CHECK_EQ(aios_stream_readline(s, &f), 0);
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "chunk4"); /* what is left at EOF */
  aios_bytes_free(b);
  CHECK_EQ(aios_stream_unref(s), 0);
  close_loop(loop);
}

static void test_readline_limit(void) {
  /* test_streams.py's test_readline_limit: a line over the limit is
   * dropped and the read fails with LimitOverrunError. */
  aios_loop_t *loop = make_loop();
  aios_stream_t *s = hand_fed(loop, 7);
  aios_future_t *f = NULL;
  aios_error_t *error;
  aios_bytes_t *b;
  feed(s, "12345678\n89\n");
  CHECK_EQ(aios_stream_readline(s, &f), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), AIOS_ELIMIT);
  CHECK_EQ(aios_error_kind(error), AIOS_ERROR_LIMIT_OVERRUN);
  CHECK_EQ(aios_error_unref(error), 0);
  CHECK_EQ(aios_stream_readline(s, &f), 0);
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "89\n");
  aios_bytes_free(b);
  /* A line without newline past the limit. */
  feed(s, "12345678");
  CHECK_EQ(aios_stream_readline(s, &f), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), AIOS_ELIMIT);
  CHECK_EQ(aios_error_unref(error), 0);
  CHECK_EQ(aios_stream_unref(s), 0);
  close_loop(loop);
}

static void test_readexactly_incomplete(void) {
  aios_loop_t *loop = make_loop();
  aios_stream_t *s = hand_fed(loop, 0);
  aios_future_t *f = NULL;
  aios_error_t *error;
  aios_bytes_t *b;
  const void *partial = NULL;
  size_t length = 0;
  long long expected = 0;
  feed(s, "chunk");
  CHECK_EQ(aios_stream_readexactly(s, 3, &f), 0);
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "chu");
  aios_bytes_free(b);
  CHECK_EQ(aios_stream_readexactly(s, 10, &f), 0);
  run_once(loop);
  CHECK_EQ(aios_future_done(f), 0);
  CHECK_EQ(aios_stream_feed_eof(s), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), AIOS_EINCOMPLETE);
  CHECK_EQ(aios_error_partial(error, &partial, &length, &expected), 0);
  CHECK_EQ(length, 2);
  CHECK(memcmp(partial, "nk", 2) == 0);
  CHECK_EQ(expected, 10);
  CHECK_EQ(aios_error_consumed(error), AIOS_EINVAL);
  CHECK_EQ(aios_error_unref(error), 0);
  CHECK_EQ(aios_stream_unref(s), 0);
  close_loop(loop);
}

static void test_readuntil_separators(void) {
  aios_loop_t *loop = make_loop();
  aios_stream_t *s = hand_fed(loop, 0);
  aios_future_t *f = NULL;
  aios_bytes_t *b;
  aios_error_t *error;
  aios_buf_t seps[2] = {{"\r\n", 2}, {"\n", 1}};
  aios_buf_t empty = {"", 0};
  const void *partial = NULL;
  size_t length = 0;
  long long expected = 0;
  feed(s, "a\r\nbb\ncc");
  CHECK_EQ(aios_stream_readuntil(s, seps, 2, &f), 0);
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "a\r\n");
  aios_bytes_free(b);
  CHECK_EQ(aios_stream_readuntil(s, seps, 2, &f), 0);
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "bb\n");
  aios_bytes_free(b);
  /* The separator that ends first wins (3.13). */
  feed(s, "x|yy||");
  seps[0].base = "||";
  seps[0].length = 2;
  seps[1].base = "y|";
  seps[1].length = 2;
  CHECK_EQ(aios_stream_readuntil(s, seps, 2, &f), 0);
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "ccx|yy|");
  aios_bytes_free(b);
  /* Bad separators. */
  CHECK_EQ(aios_stream_readuntil(s, seps, 0, &f), AIOS_EINVAL);
  CHECK_EQ(aios_stream_readuntil(s, &empty, 1, &f), AIOS_EINVAL);
  CHECK_EQ(aios_stream_readuntil(s, NULL, 1, &f), AIOS_EINVAL);
  /* EOF first: IncompleteReadError with no expected count. */
  CHECK_EQ(aios_stream_feed_eof(s), 0);
  CHECK_EQ(aios_stream_readuntil(s, seps, 1, &f), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), AIOS_EINCOMPLETE);
  CHECK_EQ(aios_error_partial(error, &partial, &length, &expected), 0);
  CHECK_EQ(length, 1);
  CHECK_EQ(expected, -1);
  CHECK_EQ(aios_error_unref(error), 0);
  CHECK_EQ(aios_stream_unref(s), 0);
  close_loop(loop);
}

static void test_readuntil_limit_overrun(void) {
  /* test_readuntil_limit_found_sep: the data stays; consumed says where. */
  aios_loop_t *loop = make_loop();
  aios_stream_t *s = hand_fed(loop, 3);
  aios_future_t *f = NULL;
  aios_error_t *error;
  aios_bytes_t *b;
  aios_buf_t sep = {"AAA", 3};
  feed(s, "some dataAA");
  CHECK_EQ(aios_stream_readuntil(s, &sep, 1, &f), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), AIOS_ELIMIT);
  CHECK_EQ(aios_error_consumed(error), 9);
  CHECK_EQ(aios_error_unref(error), 0);
  feed(s, "A");
  CHECK_EQ(aios_stream_readuntil(s, &sep, 1, &f), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), AIOS_ELIMIT);
  CHECK_EQ(aios_error_consumed(error), 9); /* found, but past the limit */
  CHECK_EQ(aios_error_unref(error), 0);
  CHECK_EQ(aios_stream_read(s, 100, &f), 0);
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "some dataAAA");
  aios_bytes_free(b);
  CHECK_EQ(aios_stream_unref(s), 0);
  close_loop(loop);
}

static void test_cancelled_read_loses_nothing(void) {
  aios_loop_t *loop = make_loop();
  aios_stream_t *s = hand_fed(loop, 0);
  aios_future_t *f = NULL, *g = NULL;
  aios_bytes_t *b;
  CHECK_EQ(aios_stream_readexactly(s, 6, &f), 0);
  /* One reader at a time. */
  CHECK_EQ(aios_stream_readline(s, &g), AIOS_EINVALIDSTATE);
  feed(s, "abc");
  run_once(loop);
  CHECK_EQ(aios_future_cancel(f, NULL), 1);
  CHECK_EQ(await_status(loop, f), AIOS_ECANCELLED);
  feed(s, "def");
  CHECK_EQ(aios_stream_readexactly(s, 6, &f), 0);
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "abcdef");
  aios_bytes_free(b);
  CHECK_EQ(aios_stream_unref(s), 0);
  close_loop(loop);
}


/* Cases of CPython's test_streams.py, on readers fed by hand. */

static aios_bytes_t *readuntil_now(aios_loop_t *loop, aios_stream_t *s, const char *sep) {
  aios_buf_t b = {sep, strlen(sep)};
  aios_future_t *f = NULL;
  CHECK_EQ(aios_stream_readuntil(s, &b, 1, &f), 0);
  return await_bytes(loop, f);
}

static void check_rest(aios_loop_t *loop, aios_stream_t *s, const char *expected) {
  /* What is left in the buffer, read without waiting. */
  aios_future_t *f = NULL;
  aios_bytes_t *b;
  CHECK_EQ(aios_stream_feed_eof(s), 0);
  CHECK_EQ(aios_stream_read(s, -1, &f), 0);
  b = await_bytes(loop, f);
  CHECK_BYTES(b, expected);
  aios_bytes_free(b);
}

static void test_cpython_readline_limit_with_existing_data(void) {
  aios_loop_t *loop = make_loop();
  aios_stream_t *s = hand_fed(loop, 3);
  aios_future_t *f = NULL;
  aios_error_t *error;
  feed(s, "li");
  feed(s, "ne1\nline2\n");
  CHECK_EQ(aios_stream_readline(s, &f), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), AIOS_ELIMIT);
  CHECK_EQ(aios_error_unref(error), 0);
  check_rest(loop, s, "line2\n");
  CHECK_EQ(aios_stream_unref(s), 0);
  s = hand_fed(loop, 3);
  feed(s, "li");
  feed(s, "ne1");
  feed(s, "li");
  CHECK_EQ(aios_stream_readline(s, &f), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), AIOS_ELIMIT);
  CHECK_EQ(aios_error_unref(error), 0);
  check_rest(loop, s, "");
  CHECK_EQ(aios_stream_unref(s), 0);
  close_loop(loop);
}

static void test_cpython_readuntil_multi_separator_limit(void) {
  aios_loop_t *loop = make_loop();
  aios_stream_t *s = hand_fed(loop, 3);
  aios_future_t *f = NULL;
  aios_error_t *error;
  aios_buf_t seps[2] = {{"A", 1}, {"ome dataA", 9}};
  feed(s, "some dataA");
  CHECK_EQ(aios_stream_readuntil(s, seps, 2, &f), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), AIOS_ELIMIT);
  CHECK(strstr(aios_error_message(error), "is found") != NULL);
  CHECK_EQ(aios_error_unref(error), 0);
  check_rest(loop, s, "some dataA");
  CHECK_EQ(aios_stream_unref(s), 0);
  close_loop(loop);
}

static void test_cpython_readuntil_multi_separator_negative_offset(void) {
  aios_loop_t *loop = make_loop();
  aios_stream_t *s = hand_fed(loop, 0);
  aios_future_t *f = NULL;
  aios_bytes_t *b;
  aios_buf_t seps[2] = {{"A", 1}, {"long sep", 8}};
  feed(s, "data");
  CHECK_EQ(aios_stream_readuntil(s, seps, 2, &f), 0);
  run_once(loop);
  feed(s, "Z");
  run_once(loop);
  feed(s, "Aaaa");
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "dataZA");
  aios_bytes_free(b);
  check_rest(loop, s, "aaa");
  CHECK_EQ(aios_stream_unref(s), 0);
  close_loop(loop);
}

static void test_cpython_readexactly_limit_and_multi_chunks(void) {
  aios_loop_t *loop = make_loop();
  aios_stream_t *s = hand_fed(loop, 3);
  aios_future_t *f = NULL;
  aios_bytes_t *b;
  feed(s, "chunk");
  CHECK_EQ(aios_stream_readexactly(s, 5, &f), 0);
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "chunk");
  aios_bytes_free(b);
  CHECK_EQ(aios_stream_unref(s), 0);
  s = hand_fed(loop, 0);
  feed(s, "QWEaa");
  feed(s, "XYaa");
  feed(s, "a");
  b = readuntil_now(loop, s, "aaa");
  CHECK_BYTES(b, "QWEaaXYaaa");
  aios_bytes_free(b);
  feed(s, "QWEaa");
  feed(s, "XYa");
  feed(s, "aa");
  b = readuntil_now(loop, s, "aaa");
  CHECK_BYTES(b, "QWEaaXYaaa");
  aios_bytes_free(b);
  feed(s, "XXX");
  feed(s, "a");
  feed(s, "a");
  feed(s, "a");
  b = readuntil_now(loop, s, "aaa");
  CHECK_BYTES(b, "XXXaaa");
  aios_bytes_free(b);
  check_rest(loop, s, "");
  CHECK_EQ(aios_stream_unref(s), 0);
  close_loop(loop);
}

/* A small deterministic generator, so that every seed replays. */
static unsigned next_random(unsigned *state) {
  *state = *state * 1103515245u + 12345u;
  return (*state >> 16) & 0x7fff;
}

static void test_random_chunks(void) {
  /* Lines and exact reads against a reference, with the data arriving in
   * random chunk sizes, for many seeds. */
  unsigned seed;
  for (seed = 1; seed <= 40; seed++) {
    aios_loop_t *loop = make_loop();
    aios_stream_t *s = hand_fed(loop, 1 << 12);
    char text[4096];
    size_t length = 0, fed = 0, consumed = 0;
    unsigned state = seed;
    int i;
    for (i = 0; length < sizeof text - 64; i++) {
      int n = (int)(next_random(&state) % 40), j;
      for (j = 0; j < n; j++) text[length++] = (char)('a' + next_random(&state) % 26);
      text[length++] = '\n';
    }
    while (consumed < length) {
      aios_future_t *f = NULL;
      aios_bytes_t *b;
      int kind = (int)(next_random(&state) % 3);
      size_t want = 1 + next_random(&state) % 50;
      if (kind == 0) CHECK_EQ(aios_stream_readline(s, &f), 0);
      else if (kind == 1) CHECK_EQ(aios_stream_readexactly(s, want, &f), 0);
      else CHECK_EQ(aios_stream_read(s, (long long)want, &f), 0);
      while (!aios_future_done(f)) {
        size_t chunk = 1 + next_random(&state) % 17;
        if (fed < length) {
          if (chunk > length - fed) chunk = length - fed;
          CHECK_EQ(aios_stream_feed_data(s, text + fed, chunk), 0);
          fed += chunk;
        } else {
          CHECK_EQ(aios_stream_feed_eof(s), 0);
        }
        run_once(loop);
      }
      if (aios_loop_run_until_complete(loop, f) == AIOS_EINCOMPLETE) {
        aios_error_t *error = NULL;
        const void *partial = NULL;
        size_t got = 0;
        CHECK_EQ(aios_future_error(f, &error), 0);
        CHECK_EQ(aios_error_partial(error, &partial, &got, NULL), 0);
        CHECK(consumed + got == length);
        CHECK(memcmp(partial, text + consumed, got) == 0);
        consumed += got;
        CHECK_EQ(aios_error_unref(error), 0);
        CHECK_EQ(aios_future_unref(f), 0);
        break;
      }
      b = take_bytes(f);
      CHECK_EQ(aios_future_unref(f), 0);
      CHECK(consumed + b->length <= length);
      CHECK(memcmp(b->data, text + consumed, b->length) == 0);
      if (kind == 0) CHECK(b->data[b->length - 1] == '\n' || consumed + b->length == length);
      if (kind == 1) CHECK_EQ(b->length, want);
      consumed += b->length;
      aios_bytes_free(b);
    }
    CHECK_EQ(consumed, length);
    CHECK_EQ(aios_stream_unref(s), 0);
    close_loop(loop);
  }
}

/* ------------------------------------------------------------------------ */
/* An echo server whose connections are tasks                                */

typedef struct connection_s {
  aios_stream_t *stream;
  int phase; /* 0: reading a line, 1: draining */
  int *served;
} connection_t;

static void connection_free(void *arg) {
  connection_t *c = (connection_t *)arg;
  aios_stream_unref(c->stream);
  free(c);
}

/* readline, then write it back and drain, until EOF; then close. */
static int echo_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  connection_t *c = (connection_t *)arg;
  aios_future_t *next = NULL;
  int rc;
  if (awaited != NULL && c->phase == 0) {
    void *value = NULL;
    aios_destructor_fn destructor = NULL;
    aios_bytes_t *line;
    rc = aios_future_take_result(awaited, &value, &destructor);
    if (rc != 0) return rc;
    line = (aios_bytes_t *)value;
    if (line->length == 0) {
      aios_bytes_free(line);
      aios_stream_close(c->stream);
      ++*c->served;
      return aios_task_return(task, NULL, NULL);
    }
    rc = aios_stream_write(c->stream, line->data, line->length);
    aios_bytes_free(line);
    if (rc != 0) return rc;
    c->phase = 1;
    if ((rc = aios_stream_drain(c->stream, &next)) != 0) return rc;
    return aios_task_await_owned(task, next);
  }
  if (awaited != NULL && (rc = aios_future_result(awaited, NULL)) != 0) return rc;
  c->phase = 0;
  if ((rc = aios_stream_readline(c->stream, &next)) != 0) return rc;
  return aios_task_await_owned(task, next);
}

static aios_task_t *echo_connected(aios_stream_t *stream, void *arg) {
  connection_t *c = (connection_t *)calloc(1, sizeof *c);
  aios_loop_t *loop = NULL;
  aios_transport_t *transport = NULL;
  aios_task_options_t options;
  aios_task_t *task = NULL;
  CHECK_EQ(aios_stream_ref(stream), 0);
  c->stream = stream;
  c->served = (int *)arg;
  CHECK_EQ(aios_stream_get_transport(stream, &transport), 0);
  CHECK_EQ(aios_transport_get_loop(transport, &loop), 0);
  CHECK_EQ(aios_transport_unref(transport), 0);
  memset(&options, 0, sizeof options);
  options.size = sizeof options;
  options.arg_destructor = connection_free;
  CHECK_EQ(aios_task_new(loop, echo_step, c, &options, &task), 0);
  CHECK_EQ(aios_loop_unref(loop), 0);
  return task;
}

static aios_server_t *start_echo(aios_loop_t *loop, int *served) {
  aios_future_t *f = NULL;
  CHECK_EQ(aios_start_server(loop, echo_connected, served, NULL, "127.0.0.1", 0, 0, NULL, &f), 0);
  return (aios_server_t *)await_value(loop, f);
}

static aios_stream_t *open_client(aios_loop_t *loop, int port) {
  aios_future_t *f = NULL;
  CHECK_EQ(aios_open_connection(loop, "127.0.0.1", port, 0, NULL, &f), 0);
  return (aios_stream_t *)await_value(loop, f);
}

static void test_stream_echo(void) {
  aios_loop_t *loop = make_loop();
  int served = 0;
  aios_server_t *server = start_echo(loop, &served);
  aios_stream_t *client = open_client(loop, server_port_at(server, 0));
  aios_future_t *f = NULL;
  aios_bytes_t *b;
  aios_buf_t pieces[2] = {{"two ", 4}, {"pieces\n", 7}};
  CHECK_EQ(aios_stream_write(client, "hello\n", 6), 0);
  CHECK_EQ(aios_stream_drain(client, &f), 0);
  CHECK_EQ(aios_future_done(f), 1); /* nothing to wait for */
  CHECK_EQ(await_status(loop, f), 0);
  CHECK_EQ(aios_stream_readline(client, &f), 0);
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "hello\n");
  aios_bytes_free(b);
  CHECK_EQ(aios_stream_writev(client, pieces, 2), 0);
  CHECK_EQ(aios_stream_readline(client, &f), 0);
  b = await_bytes(loop, f);
  CHECK_BYTES(b, "two pieces\n");
  aios_bytes_free(b);
  /* EOF from the client ends the server's task, which closes. */
  CHECK_EQ(aios_stream_can_write_eof(client), 1);
  CHECK_EQ(aios_stream_write_eof(client), 0);
  CHECK_EQ(aios_stream_read(client, -1, &f), 0);
  b = await_bytes(loop, f);
  CHECK_EQ(b->length, 0);
  aios_bytes_free(b);
  CHECK_EQ(aios_stream_at_eof(client), 1);
  CHECK_EQ(aios_stream_close(client), 0);
  CHECK_EQ(aios_stream_is_closing(client), 1);
  CHECK_EQ(aios_stream_wait_closed(client, &f), 0);
  CHECK_EQ(await_status(loop, f), 0);
  CHECK_EQ(served, 1);
  CHECK_EQ(aios_stream_unref(client), 0);
  close_server(loop, server);
  close_loop(loop);
}

static void test_many_connections(void) {
  /* 1,000 connections open at once, each echoing a line. */
  int N = getenv("AIOS_TEST_CONNECTIONS") ? atoi(getenv("AIOS_TEST_CONNECTIONS")) : 1000;
  aios_loop_t *loop;
  aios_server_t *server;
  aios_stream_t **clients;
  aios_future_t **reads, *f = NULL;
  aios_server_options_t options;
  struct rlimit limit;
  int served = 0, i, port;
  CHECK_EQ(getrlimit(RLIMIT_NOFILE, &limit), 0);
  if (limit.rlim_max < (rlim_t)(2 * N + 100)) {
    printf("skipped: RLIMIT_NOFILE's hard limit is %lu\n", (unsigned long)limit.rlim_max);
    return;
  }
  if (limit.rlim_cur < (rlim_t)(2 * N + 100)) {
    limit.rlim_cur = 2 * N + 100;
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &limit), 0);
  }
  loop = make_loop();
  /* A backlog for all of them: connects that find the accept queue full
   * have their SYNs dropped and retried only after 1, 3, 7... seconds. */
  memset(&options, 0, sizeof options);
  options.size = sizeof options;
  options.backlog = N;
  CHECK_EQ(aios_start_server(loop, echo_connected, &served, NULL, "127.0.0.1", 0, 0, &options, &f), 0);
  server = (aios_server_t *)await_value(loop, f);
  port = server_port_at(server, 0);
  clients = (aios_stream_t **)calloc(N, sizeof *clients);
  reads = (aios_future_t **)calloc(N, sizeof *reads);
  for (i = 0; i < N; i++) {
    aios_future_t *f = NULL;
    CHECK_EQ(aios_open_connection(loop, "127.0.0.1", port, 0, NULL, &f), 0);
    reads[i] = f;
  }
  for (i = 0; i < N; i++) {
    char line[32];
    clients[i] = (aios_stream_t *)await_value(loop, reads[i]);
    snprintf(line, sizeof line, "client %d\n", i);
    CHECK_EQ(aios_stream_write(clients[i], line, strlen(line)), 0);
    CHECK_EQ(aios_stream_readline(clients[i], &reads[i]), 0);
  }
  for (i = 0; i < N; i++) {
    char line[32];
    aios_bytes_t *b = await_bytes(loop, reads[i]);
    snprintf(line, sizeof line, "client %d\n", i);
    CHECK_BYTES(b, line);
    aios_bytes_free(b);
    CHECK_EQ(aios_stream_write_eof(clients[i]), 0);
  }
  for (i = 0; i < N; i++) CHECK_EQ(aios_stream_read(clients[i], -1, &reads[i]), 0);
  for (i = 0; i < N; i++) {
    aios_future_t *f = NULL;
    aios_bytes_t *b = await_bytes(loop, reads[i]);
    CHECK_EQ(b->length, 0); /* the server closed after our EOF */
    aios_bytes_free(b);
    CHECK_EQ(aios_stream_close(clients[i]), 0);
    CHECK_EQ(aios_stream_wait_closed(clients[i], &f), 0);
    CHECK_EQ(await_status(loop, f), 0);
    CHECK_EQ(aios_stream_unref(clients[i]), 0);
  }
  CHECK_EQ(served, N);
  free(clients);
  free(reads);
  close_server(loop, server);
  close_loop(loop);
}

/* A server that writes `total` bytes and closes, to test the reader's
 * flow control against a reader that does not read. */
typedef struct sender_s {
  size_t total;
} sender_t;

static void sender_made(aios_transport_t *t, void *arg) {
  static char block[1 << 16];
  sender_t *s = (sender_t *)arg;
  size_t sent;
  memset(block, 'z', sizeof block);
  for (sent = 0; sent < s->total; sent += sizeof block) CHECK_EQ(aios_transport_write(t, block, sizeof block), 0);
  CHECK_EQ(aios_transport_close(t), 0);
}

static int sender_factory(void *arg, aios_protocol_t *protocol) {
  protocol->arg = arg;
  protocol->connection_made = sender_made;
  return 0;
}

static void test_reader_flow_control(void) {
  aios_loop_t *loop = make_loop();
  sender_t sender = {1 << 22};
  aios_future_t *f = NULL;
  aios_server_t *server;
  aios_stream_t *client;
  aios_transport_t *transport = NULL;
  aios_bytes_t *b;
  CHECK_EQ(aios_create_server(loop, sender_factory, &sender, NULL, "127.0.0.1", 0, NULL, &f), 0);
  server = (aios_server_t *)await_value(loop, f);
  CHECK_EQ(aios_open_connection(loop, "127.0.0.1", server_port_at(server, 0), 1024, NULL, &f), 0);
  client = (aios_stream_t *)await_value(loop, f);
  CHECK_EQ(aios_stream_get_transport(client, &transport), 0);
  /* Nobody reads: the reader pauses its transport above twice its limit. */
  TICK_UNTIL(loop, aios_transport_is_reading(transport) == 0);
  CHECK_EQ(aios_transport_is_reading(transport), 0);
  /* Reading it all resumes it, and everything arrives. */
  CHECK_EQ(aios_stream_read(client, -1, &f), 0);
  b = await_bytes(loop, f);
  CHECK_EQ(b->length, sender.total);
  aios_bytes_free(b);
  CHECK_EQ(aios_transport_unref(transport), 0);
  CHECK_EQ(aios_stream_close(client), 0);
  CHECK_EQ(aios_stream_unref(client), 0);
  close_server(loop, server);
  close_loop(loop);
}

/* A server that never reads, to fill the writer's buffer. */
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

static void test_drain_waits_and_connection_lost(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = NULL, *drain = NULL;
  aios_server_t *server;
  aios_stream_t *client;
  aios_error_t *error;
  static char block[1 << 16];
  int i;
  CHECK_EQ(aios_create_server(loop, stall_factory, NULL, NULL, "127.0.0.1", 0, NULL, &f), 0);
  server = (aios_server_t *)await_value(loop, f);
  client = open_client(loop, server_port_at(server, 0));
  TICK_UNTIL(loop, stalled != NULL);
  CHECK(stalled != NULL);
  for (i = 0; i < 400; i++) {
    CHECK_EQ(aios_stream_write(client, block, sizeof block), 0);
    CHECK_EQ(aios_stream_drain(client, &drain), 0);
    if (!aios_future_done(drain)) break;
    CHECK_EQ(await_status(loop, drain), 0);
    drain = NULL;
  }
  CHECK(drain != NULL);
  run_once(loop);
  CHECK_EQ(aios_future_done(drain), 0);
  /* The peer goes away while the writer waits in drain. */
  CHECK_EQ(aios_transport_abort(stalled), 0);
  CHECK_EQ(aios_transport_unref(stalled), 0);
  stalled = NULL;
  error = await_error(loop, drain);
  CHECK(aios_error_code(error) == -ECONNRESET || aios_error_code(error) == -EPIPE);
  CHECK_EQ(aios_error_unref(error), 0);
  /* Once the connection is lost, drain fails at once and reads fail too. */
  CHECK_EQ(aios_stream_drain(client, &f), 0);
  error = await_error(loop, f);
  CHECK(aios_error_code(error) < 0);
  CHECK_EQ(aios_error_unref(error), 0);
  CHECK_EQ(aios_stream_write(client, "x", 1), 0); /* ignored */
  CHECK_EQ(aios_stream_unref(client), 0);
  close_server(loop, server);
  close_loop(loop);
}

static void test_reset_during_read(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = NULL;
  aios_server_t *server;
  aios_stream_t *client;
  aios_error_t *error;
  CHECK_EQ(aios_create_server(loop, stall_factory, NULL, NULL, "127.0.0.1", 0, NULL, &f), 0);
  server = (aios_server_t *)await_value(loop, f);
  client = open_client(loop, server_port_at(server, 0));
  TICK_UNTIL(loop, stalled != NULL);
  CHECK_EQ(aios_stream_readexactly(client, 10, &f), 0);
  run_once(loop);
  CHECK_EQ(aios_transport_write(stalled, "12345", 5), 0);
  CHECK_EQ(aios_transport_abort(stalled), 0);
  CHECK_EQ(aios_transport_unref(stalled), 0);
  stalled = NULL;
  error = await_error(loop, f);
  /* A close from the peer is EOF (incomplete read) or a reset. */
  CHECK(aios_error_code(error) == AIOS_EINCOMPLETE || aios_error_code(error) == -ECONNRESET);
  CHECK_EQ(aios_error_unref(error), 0);
  CHECK_EQ(aios_stream_unref(client), 0);
  close_server(loop, server);
  close_loop(loop);
}

static aios_task_t *failing_connected(aios_stream_t *stream, void *arg);

static int failing_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  (void)task;
  (void)awaited;
  (void)arg;
  return -EPROTO;
}

static aios_task_t *failing_connected(aios_stream_t *stream, void *arg) {
  aios_transport_t *transport = NULL;
  aios_loop_t *loop = NULL;
  aios_task_t *task = NULL;
  (void)arg;
  CHECK_EQ(aios_stream_get_transport(stream, &transport), 0);
  CHECK_EQ(aios_transport_get_loop(transport, &loop), 0);
  CHECK_EQ(aios_transport_unref(transport), 0);
  CHECK_EQ(aios_task_new(loop, failing_step, NULL, NULL, &task), 0);
  CHECK_EQ(aios_loop_unref(loop), 0);
  return task;
}

static void test_client_task_failure_closes(void) {
  /* A client task that fails: its error goes to the exception handler and
   * the connection is closed, as asyncio's start_server does. */
  aios_loop_t *loop = make_loop();
  exc_record_t record;
  aios_future_t *f = NULL;
  aios_server_t *server;
  aios_stream_t *client;
  aios_bytes_t *b;
  memset(&record, 0, sizeof record);
  CHECK_EQ(aios_loop_set_exception_handler(loop, exc_recorder, &record), 0);
  CHECK_EQ(aios_start_server(loop, failing_connected, NULL, NULL, "127.0.0.1", 0, 0, NULL, &f), 0);
  server = (aios_server_t *)await_value(loop, f);
  client = open_client(loop, server_port_at(server, 0));
  CHECK_EQ(aios_stream_read(client, -1, &f), 0);
  b = await_bytes(loop, f);
  CHECK_EQ(b->length, 0);
  aios_bytes_free(b);
  CHECK_EQ(record.calls, 1);
  CHECK(strstr(record.message, "client_connected_cb") != NULL);
  CHECK_EQ(record.error_code, -EPROTO);
  CHECK_EQ(aios_stream_unref(client), 0);
  close_server(loop, server);
  close_loop(loop);
}

static void test_open_connection_refused(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = NULL;
  aios_error_t *error;
  int fd;
  int port = refusing_port(&fd);
  CHECK_EQ(aios_open_connection(loop, "127.0.0.1", port, 0, NULL, &f), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), -ECONNREFUSED);
  CHECK_EQ(aios_error_unref(error), 0);
  CHECK_EQ(aios_open_connection(loop, "127.0.0.1", 1, (size_t)1 << 40, NULL, &f), AIOS_EINVAL);
  close(fd);
  close_loop(loop);
}

int main(int argc, char **argv) {
  static const test_entry_t tests[] = {
      TEST_ENTRY(test_read_and_read_to_eof),
      TEST_ENTRY(test_readline),
      TEST_ENTRY(test_readline_limit),
      TEST_ENTRY(test_readexactly_incomplete),
      TEST_ENTRY(test_readuntil_separators),
      TEST_ENTRY(test_readuntil_limit_overrun),
      TEST_ENTRY(test_cancelled_read_loses_nothing),
      TEST_ENTRY(test_random_chunks),
      TEST_ENTRY(test_cpython_readline_limit_with_existing_data),
      TEST_ENTRY(test_cpython_readuntil_multi_separator_limit),
      TEST_ENTRY(test_cpython_readuntil_multi_separator_negative_offset),
      TEST_ENTRY(test_cpython_readexactly_limit_and_multi_chunks),
      TEST_ENTRY(test_stream_echo),
      TEST_ENTRY(test_many_connections),
      TEST_ENTRY(test_reader_flow_control),
      TEST_ENTRY(test_drain_waits_and_connection_lost),
      TEST_ENTRY(test_reset_during_read),
      TEST_ENTRY(test_client_task_failure_closes),
      TEST_ENTRY(test_open_connection_refused),
  };
  return run_tests(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
