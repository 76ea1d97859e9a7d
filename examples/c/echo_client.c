/* echo_client.c: `echo_client PORT [MESSAGE...]` sends each message as a
 * line to the echo server on 127.0.0.1:PORT, prints what comes back, then
 * sends EOF and waits for the server to close.
 * Build: cc echo_client.c $(pkg-config --cflags --libs aio-swift) */
#include <aio_swift.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct client {
  aios_loop_t *loop;
  int port, argc, next, state;
  char **argv;
  aios_stream_t *stream;
} client_t;

enum { CONNECTING, READING_LINE, READING_EOF, CLOSING };

/* A task, asyncio style: await open_connection, then write/readline per
 * message, then write_eof, read to EOF, close, wait_closed. */
static int client_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  client_t *c = arg;
  aios_future_t *next = NULL;
  void *value = NULL;
  aios_destructor_fn destructor = NULL;
  int rc;
  if (awaited == NULL) {
    if ((rc = aios_get_running_loop(&c->loop)) != 0) return rc;
    rc = aios_open_connection(c->loop, "127.0.0.1", c->port, 0, NULL, &next);
    return rc != 0 ? rc : aios_task_await_owned(task, next);
  }
  if (c->state == CLOSING) return aios_task_return(task, NULL, NULL);
  if ((rc = aios_future_take_result(awaited, &value, &destructor)) != 0) return rc;
  if (c->state == CONNECTING) {
    c->stream = value;
  } else {
    aios_bytes_t *reply = value;
    if (c->state == READING_LINE) printf("echo_client: got %.*s", (int)reply->length, (char *)reply->data);
    aios_bytes_free(reply);
    if (c->state == READING_EOF) {
      aios_stream_close(c->stream);
      c->state = CLOSING;
      if ((rc = aios_stream_wait_closed(c->stream, &next)) != 0) return rc;
      return aios_task_await_owned(task, next);
    }
  }
  if (c->next < c->argc) {
    const char *message = c->argv[c->next++];
    aios_buf_t line[2] = {{message, strlen(message)}, {"\n", 1}};
    if ((rc = aios_stream_writev(c->stream, line, 2)) != 0) return rc;
    c->state = READING_LINE;
    if ((rc = aios_stream_readline(c->stream, &next)) != 0) return rc;
    return aios_task_await_owned(task, next);
  }
  aios_stream_write_eof(c->stream);
  c->state = READING_EOF;
  if ((rc = aios_stream_read(c->stream, -1, &next)) != 0) return rc;
  return aios_task_await_owned(task, next);
}

static void client_free(void *arg) {
  client_t *c = arg;
  aios_stream_unref(c->stream);
  aios_loop_unref(c->loop);
}

int main(int argc, char **argv) {
  static char *hello[] = {"hello", "world"};
  client_t c;
  aios_task_options_t options = {sizeof options, "echo_client", 0, client_free, NULL, NULL};
  int rc;
  memset(&c, 0, sizeof c);
  c.port = argc > 1 ? atoi(argv[1]) : 8888;
  c.argc = argc > 2 ? argc - 2 : 2;
  c.argv = argc > 2 ? argv + 2 : hello;
  /* asyncio.run(main()): a loop of its own for the task, closed after. */
  rc = aios_run(client_step, &c, &options, NULL);
  if (rc != 0) goto fail;
  return 0;
fail:
  fprintf(stderr, "echo_client: %s\n", aios_strerror(rc));
  return 1;
}
