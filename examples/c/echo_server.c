/* echo_server.c: `echo_server PORT` echoes every connection on
 * 127.0.0.1:PORT with the streams API (asyncio's start_server, one task per
 * connection) until SIGINT or SIGTERM, then closes the server and its
 * clients and exits.
 * Build: cc echo_server.c $(pkg-config --cflags --libs aio-swift) */
#define _POSIX_C_SOURCE 200809L
#include <aio_swift.h>
#include <stdio.h>
#include <stdlib.h>

#include "stop_on_signal.h"

/* One connection: read what came, write it back, drain, again, until EOF. */
typedef struct connection {
  aios_stream_t *stream;
  int draining;
} connection_t;

static void connection_free(void *arg) {
  connection_t *c = arg;
  aios_stream_unref(c->stream);
  free(c);
}

static int connection_step(aios_task_t *task, aios_future_t *awaited, void *arg) {
  connection_t *c = arg;
  aios_future_t *next = NULL;
  int rc;
  if (awaited != NULL && !c->draining) {
    void *value = NULL;
    aios_destructor_fn destructor = NULL;
    aios_bytes_t *bytes;
    if ((rc = aios_future_take_result(awaited, &value, &destructor)) != 0) return rc;
    bytes = value;
    if (bytes->length == 0) { /* EOF */
      aios_bytes_free(bytes);
      aios_stream_close(c->stream);
      return aios_task_return(task, NULL, NULL);
    }
    rc = aios_stream_write(c->stream, bytes->data, bytes->length);
    aios_bytes_free(bytes);
    if (rc != 0) return rc;
    /* drain is done at once unless the peer reads slower than we write. */
    if ((rc = aios_stream_drain(c->stream, &next)) != 0) return rc;
    c->draining = 1;
    return aios_task_await_owned(task, next);
  }
  if (awaited != NULL && (rc = aios_future_result(awaited, NULL)) != 0) return rc;
  c->draining = 0;
  if ((rc = aios_stream_read(c->stream, 65536, &next)) != 0) return rc;
  return aios_task_await_owned(task, next);
}

static aios_task_t *client_connected(aios_stream_t *stream, void *arg) {
  aios_loop_t *loop = arg;
  connection_t *c = calloc(1, sizeof *c);
  aios_task_options_t options = {sizeof options, NULL, 0, connection_free, NULL, NULL};
  aios_task_t *task = NULL;
  if (c == NULL) return NULL;
  aios_stream_ref(stream);
  c->stream = stream;
  if (aios_task_new(loop, connection_step, c, &options, &task) != 0) return NULL;
  return task;
}

int main(int argc, char **argv) {
  aios_loop_t *loop = NULL;
  aios_future_t *future = NULL;
  char banner[64];
  int port = argc > 1 ? atoi(argv[1]) : 8888, rc;
  if ((rc = aios_loop_new(&loop)) != 0) goto fail;
  rc = aios_start_server(loop, client_connected, loop, NULL, "127.0.0.1", port, 0, NULL, &future);
  if (rc != 0) goto fail;
  snprintf(banner, sizeof banner, "echo_server: serving on 127.0.0.1:%d", port);
  if ((rc = serve_until_signal(loop, future, close_server_and_clients, banner)) != 0) goto fail;
  printf("echo_server: closed\n");
  return 0;
fail:
  fprintf(stderr, "echo_server: %s\n", aios_strerror(rc));
  return 1;
}
