/* echo_aios_transport.c: the echo benchmark's server on the C transport
 * API: a protocol whose data_received writes the bytes back (the transport
 * tries the socket at once and copies only what it did not take).
 * `echo_aios_transport PORT` serves 127.0.0.1:PORT until SIGTERM. */
#define _POSIX_C_SOURCE 200809L
#include <aio_swift.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../examples/c/stop_on_signal.h"

static void echo_data(aios_transport_t *t, const void *data, size_t length, void *arg) {
  (void)arg;
  aios_transport_write(t, data, length);
}

static int echo_factory(void *arg, aios_protocol_t *protocol) {
  (void)arg;
  protocol->data_received = echo_data;
  return 0;
}

static void stop(void *arg) {
  aios_server_close(arg);
  aios_server_abort_clients(arg);
}

int main(int argc, char **argv) {
  aios_loop_t *loop = NULL;
  aios_future_t *future = NULL;
  int rc;
  if (argc < 2) {
    fprintf(stderr, "usage: echo_aios_transport PORT\n");
    return 2;
  }
  if ((rc = aios_loop_new(&loop)) != 0) goto fail;
  rc = aios_create_server(loop, echo_factory, NULL, NULL, "127.0.0.1", atoi(argv[argc - 1]), NULL, &future);
  if (rc != 0) goto fail;
  if ((rc = serve_until_signal(loop, future, stop, NULL)) != 0) goto fail;
  return 0;
fail:
  fprintf(stderr, "echo_aios_transport: %s\n", aios_strerror(rc));
  return 1;
}
