/* chat_server.c: `chat_server PORT`, a line-based chat on 127.0.0.1:PORT:
 * every line a client sends goes to all the others. Transports and
 * protocols, no streams: each client is a protocol that splits its bytes
 * into lines. Stops on SIGINT or SIGTERM.
 * Build: cc chat_server.c $(pkg-config --cflags --libs aio-swift) */
#define _POSIX_C_SOURCE 200809L
#include <aio_swift.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "stop_on_signal.h"

enum { MAX_CLIENTS = 1024, MAX_LINE = 4096 };

typedef struct client {
  aios_transport_t *transport; /* our reference, from connection_made on */
  char line[MAX_LINE];
  size_t length;
} client_t;

static client_t *clients[MAX_CLIENTS];

static void broadcast(client_t *from, const char *line, size_t length) {
  int i;
  for (i = 0; i < MAX_CLIENTS; i++) {
    /* A slow reader's buffer grows; asyncio's chat examples do the same. */
    if (clients[i] != NULL && clients[i] != from) aios_transport_write(clients[i]->transport, line, length);
  }
}

static void chat_made(aios_transport_t *t, void *arg) {
  client_t *c = arg;
  int i;
  aios_transport_ref(t);
  c->transport = t;
  for (i = 0; i < MAX_CLIENTS && clients[i] != NULL; i++) {}
  if (i == MAX_CLIENTS) {
    aios_transport_write(t, "chat is full\n", 13);
    aios_transport_close(t);
    return;
  }
  clients[i] = c;
}

static void chat_data(aios_transport_t *t, const void *data, size_t length, void *arg) {
  client_t *c = arg;
  const char *bytes = data;
  size_t i;
  (void)t;
  for (i = 0; i < length; i++) {
    if (c->length < MAX_LINE) c->line[c->length++] = bytes[i];
    if (bytes[i] == '\n' || c->length == MAX_LINE) {
      broadcast(c, c->line, c->length);
      c->length = 0;
    }
  }
}

static void chat_lost(aios_transport_t *t, aios_error_t *error, void *arg) {
  client_t *c = arg;
  int i;
  (void)t;
  (void)error;
  for (i = 0; i < MAX_CLIENTS; i++)
    if (clients[i] == c) clients[i] = NULL;
}

static void chat_destroy(void *arg) {
  client_t *c = arg;
  aios_transport_unref(c->transport);
  free(c);
}

static int chat_factory(void *arg, aios_protocol_t *protocol) {
  client_t *c = calloc(1, sizeof *c);
  (void)arg;
  if (c == NULL) return -1;
  protocol->arg = c;
  protocol->connection_made = chat_made;
  protocol->data_received = chat_data;
  protocol->connection_lost = chat_lost;
  protocol->destroy = chat_destroy;
  return 0;
}

int main(int argc, char **argv) {
  aios_loop_t *loop = NULL;
  aios_future_t *future = NULL;
  char banner[64];
  int port = argc > 1 ? atoi(argv[1]) : 8889, rc;
  if ((rc = aios_loop_new(&loop)) != 0) goto fail;
  rc = aios_create_server(loop, chat_factory, NULL, NULL, "127.0.0.1", port, NULL, &future);
  if (rc != 0) goto fail;
  snprintf(banner, sizeof banner, "chat_server: serving on 127.0.0.1:%d", port);
  if ((rc = serve_until_signal(loop, future, close_server_and_clients, banner)) != 0) goto fail;
  return 0;
fail:
  fprintf(stderr, "chat_server: %s\n", aios_strerror(rc));
  return 1;
}
