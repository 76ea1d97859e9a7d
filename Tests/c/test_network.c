/*
 * test_network.c: name resolution, transports and protocols, servers, on
 * real sockets (127.0.0.1, ::1, Unix sockets in a temp dir).
 */
#define _GNU_SOURCE
#include "test_util.h"
#include "test_net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <netinet/tcp.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/un.h>

/* ------------------------------------------------------------------------ */
/* An echo protocol (server side) and a recording one (client side).         */

typedef struct echo_server_s {
  int connections, lost, eofs;
  int keep_open_on_eof;
} echo_server_t;

static void echo_data(aios_transport_t *t, const void *data, size_t length, void *arg) {
  (void)arg;
  CHECK_EQ(aios_transport_write(t, data, length), 0);
}

static int echo_eof(aios_transport_t *t, void *arg) {
  echo_server_t *server = (echo_server_t *)arg;
  (void)t;
  server->eofs++;
  return server->keep_open_on_eof;
}

static void echo_lost(aios_transport_t *t, aios_error_t *error, void *arg) {
  (void)t;
  (void)error;
  ((echo_server_t *)arg)->lost++;
}

static void echo_made(aios_transport_t *t, void *arg) {
  (void)t;
  ((echo_server_t *)arg)->connections++;
}

static int echo_factory(void *arg, aios_protocol_t *protocol) {
  protocol->arg = arg;
  protocol->connection_made = echo_made;
  protocol->data_received = echo_data;
  protocol->eof_received = echo_eof;
  protocol->connection_lost = echo_lost;
  return 0;
}

typedef struct client_s {
  aios_loop_t *loop;
  aios_future_t *lost_future; /* done when connection_lost runs */
  char received[1 << 16];
  size_t length, total;
  size_t close_after;         /* close once this much came back */
  const char *send;           /* written at connection_made */
  int made, eof, lost, pauses, resumes, destroyed;
  int lost_code;              /* of the error connection_lost got (0: none) */
  int write_eof_at_made;
} client_t;

static void client_made(aios_transport_t *t, void *arg) {
  client_t *c = (client_t *)arg;
  c->made++;
  if (c->send) CHECK_EQ(aios_transport_write(t, c->send, strlen(c->send)), 0);
  if (c->write_eof_at_made) CHECK_EQ(aios_transport_write_eof(t), 0);
}

static void client_data(aios_transport_t *t, const void *data, size_t length, void *arg) {
  client_t *c = (client_t *)arg;
  size_t room = sizeof c->received - c->length;
  /* The first 64 KiB are kept; `total` counts them all. */
  memcpy(c->received + c->length, data, length < room ? length : room);
  c->length += length < room ? length : room;
  c->total += length;
  if (c->close_after && c->length >= c->close_after) CHECK_EQ(aios_transport_close(t), 0);
}

static int client_eof(aios_transport_t *t, void *arg) {
  (void)t;
  ((client_t *)arg)->eof++;
  return 0;
}

static void client_lost(aios_transport_t *t, aios_error_t *error, void *arg) {
  client_t *c = (client_t *)arg;
  (void)t;
  c->lost++;
  c->lost_code = error ? aios_error_code(error) : 0;
  if (c->lost_future) CHECK_EQ(aios_future_set_result(c->lost_future, NULL, NULL), 0);
}

static void client_pause(aios_transport_t *t, void *arg) {
  (void)t;
  ((client_t *)arg)->pauses++;
}

static void client_resume(aios_transport_t *t, void *arg) {
  (void)t;
  ((client_t *)arg)->resumes++;
}

static void client_destroy(void *arg) { ((client_t *)arg)->destroyed++; }

static aios_protocol_t client_protocol(client_t *c) {
  aios_protocol_t p;
  memset(&p, 0, sizeof p);
  p.size = sizeof p;
  p.arg = c;
  p.connection_made = client_made;
  p.data_received = client_data;
  p.eof_received = client_eof;
  p.connection_lost = client_lost;
  p.pause_writing = client_pause;
  p.resume_writing = client_resume;
  p.destroy = client_destroy;
  return p;
}

static void client_init(client_t *c, aios_loop_t *loop) {
  memset(c, 0, sizeof *c);
  c->loop = loop;
  CHECK_EQ(aios_future_new(loop, &c->lost_future), 0);
}

static void client_wait_lost(client_t *c) {
  CHECK_EQ(aios_loop_run_until_complete(c->loop, c->lost_future), 0);
  CHECK_EQ(aios_future_unref(c->lost_future), 0);
  c->lost_future = NULL;
}

static aios_server_t *start_echo(aios_loop_t *loop, echo_server_t *state, const char *host) {
  aios_future_t *f = NULL;
  CHECK_EQ(aios_create_server(loop, echo_factory, state, NULL, host, 0, NULL, &f), 0);
  return (aios_server_t *)await_value(loop, f);
}

static aios_transport_t *connect_client(aios_loop_t *loop, client_t *c, const char *host, int port) {
  aios_protocol_t p = client_protocol(c);
  aios_future_t *f = NULL;
  CHECK_EQ(aios_create_connection(loop, &p, host, port, NULL, &f), 0);
  return (aios_transport_t *)await_value(loop, f);
}

/* Connects, sends `text`, waits for all of it to come back, closes, and
 * checks the echo. */
static void echo_round_trip(aios_loop_t *loop, const char *host, int port, const char *text) {
  client_t c;
  aios_transport_t *t;
  client_init(&c, loop);
  c.send = text;
  c.close_after = strlen(text);
  t = connect_client(loop, &c, host, port);
  client_wait_lost(&c);
  CHECK_EQ(c.length, strlen(text));
  CHECK(memcmp(c.received, text, c.length) == 0);
  CHECK_EQ(c.lost_code, 0);
  CHECK_EQ(aios_transport_unref(t), 0);
}

/* ------------------------------------------------------------------------ */
/* Name resolution                                                            */

static void test_getaddrinfo_localhost(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = NULL;
  aios_addrinfo_list_t *list;
  size_t i;
  int saw_v4 = 0;
  CHECK_EQ(aios_getaddrinfo(loop, "localhost", "80", 0, SOCK_STREAM, 0, 0, &f), 0);
  list = (aios_addrinfo_list_t *)await_value(loop, f);
  CHECK(list != NULL);
  CHECK(list->count >= 1);
  for (i = 0; i < list->count; i++) {
    aios_addrinfo_t *a = &list->items[i];
    CHECK_EQ(a->socktype, SOCK_STREAM);
    if (a->family == AF_INET) {
      struct sockaddr_in *in = (struct sockaddr_in *)&a->address;
      CHECK_EQ(a->length, sizeof(struct sockaddr_in));
      CHECK_EQ(ntohs(in->sin_port), 80);
      CHECK_EQ(ntohl(in->sin_addr.s_addr), INADDR_LOOPBACK);
      saw_v4 = 1;
    }
  }
  CHECK(saw_v4);
  aios_addrinfo_list_free(list);
  close_loop(loop);
}

static void test_getaddrinfo_keeps_scope_id(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = NULL;
  aios_addrinfo_list_t *list;
  struct sockaddr_in6 *in6;
  CHECK_EQ(aios_getaddrinfo(loop, "fe80::1%1", "9", AF_INET6, SOCK_STREAM, 0, AI_NUMERICHOST, &f), 0);
  list = (aios_addrinfo_list_t *)await_value(loop, f);
  CHECK_EQ(list->count, 1);
  in6 = (struct sockaddr_in6 *)&list->items[0].address;
  CHECK_EQ(in6->sin6_scope_id, 1);
  CHECK_EQ(ntohs(in6->sin6_port), 9);
  aios_addrinfo_list_free(list);
  close_loop(loop);
}

static void test_getaddrinfo_errors(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = NULL;
  aios_error_t *error;
  /* A name that cannot exist (RFC 6761's .invalid), numeric-only so that
   * no resolver is asked. */
  CHECK_EQ(aios_getaddrinfo(loop, "no-such-host.invalid", "80", 0, 0, 0, AI_NUMERICHOST, &f), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), AIOS_EAI_NONAME);
  CHECK_EQ(aios_error_kind(error), AIOS_ERROR_GAI);
  CHECK_STR_EQ(aios_err_name(AIOS_EAI_NONAME), "AIOS_EAI_NONAME");
  CHECK_EQ(aios_error_unref(error), 0);
  CHECK_EQ(aios_getaddrinfo(loop, "127.0.0.1", "no-such-service-name", 0, SOCK_STREAM, 0, 0, &f), 0);
  error = await_error(loop, f);
  CHECK(aios_error_code(error) == AIOS_EAI_SERVICE || aios_error_code(error) == AIOS_EAI_NONAME);
  CHECK_EQ(aios_error_unref(error), 0);
  /* Bad arguments. */
  CHECK_EQ(aios_getaddrinfo(loop, NULL, NULL, 0, 0, 0, 0, &f), AIOS_EINVAL);
  CHECK_EQ(aios_getaddrinfo(loop, "localhost", "80", 0, 0, 0, 0, NULL), AIOS_EINVAL);
  CHECK_EQ(aios_getaddrinfo(NULL, "localhost", "80", 0, 0, 0, 0, &f), AIOS_EINVAL);
  close_loop(loop);
}

static void test_getaddrinfo_cancelled(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = NULL;
  CHECK_EQ(aios_getaddrinfo(loop, "localhost", "80", 0, 0, 0, 0, &f), 0);
  CHECK_EQ(aios_future_cancel(f, NULL), 1);
  CHECK_EQ(await_status(loop, f), AIOS_ECANCELLED);
  close_loop(loop);
}

static void test_getnameinfo(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = NULL;
  aios_nameinfo_t *info;
  struct sockaddr_in address;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_port = htons(80);
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_EQ(aios_getnameinfo(loop, &address, sizeof address, NI_NUMERICHOST | NI_NUMERICSERV, &f), 0);
  info = (aios_nameinfo_t *)await_value(loop, f);
  CHECK_STR_EQ(info->host, "127.0.0.1");
  CHECK_STR_EQ(info->service, "80");
  aios_nameinfo_free(info);
  CHECK_EQ(aios_getnameinfo(loop, &address, 3, 0, &f), AIOS_EINVAL);
  CHECK_EQ(aios_getnameinfo(loop, NULL, sizeof address, 0, &f), AIOS_EINVAL);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Transports                                                                 */

static void test_echo_round_trip(void) {
  aios_loop_t *loop = make_loop();
  echo_server_t state = {0, 0, 0, 0};
  aios_server_t *server = start_echo(loop, &state, "127.0.0.1");
  client_t c;
  aios_transport_t *t;
  struct sockaddr_storage peer;
  unsigned int length = sizeof peer;
  client_init(&c, loop);
  c.send = "hello, world";
  c.close_after = strlen(c.send);
  CHECK_EQ(aios_server_socket_count(server), 1);
  CHECK_EQ(aios_server_is_serving(server), 1);
  t = connect_client(loop, &c, "127.0.0.1", server_port_at(server, 0));
  CHECK_EQ(c.made, 1);
  CHECK(aios_transport_get_fd(t) >= 0);
  CHECK_EQ(aios_transport_get_peername(t, &peer, &length), 0);
  CHECK_EQ(length, sizeof(struct sockaddr_in));
  CHECK_EQ(ntohs(((struct sockaddr_in *)&peer)->sin_port), server_port_at(server, 0));
  CHECK_EQ(aios_transport_is_reading(t), 1);
  CHECK_EQ(aios_transport_can_write_eof(t), 1);
  client_wait_lost(&c);
  CHECK_EQ(c.length, strlen(c.send));
  CHECK(memcmp(c.received, c.send, c.length) == 0);
  CHECK_EQ(c.lost, 1);
  CHECK_EQ(c.lost_code, 0);
  CHECK_EQ(c.destroyed, 1);
  /* A closed transport: queries answer, writes are ignored. */
  CHECK_EQ(aios_transport_is_closing(t), 1);
  CHECK_EQ(aios_transport_is_reading(t), 0);
  CHECK_EQ(aios_transport_write(t, "x", 1), 0);
  CHECK_EQ(aios_transport_close(t), 0);
  CHECK_EQ(aios_transport_abort(t), 0);
  CHECK_EQ(aios_transport_get_fd(t), -EBADF);
  CHECK_EQ(aios_transport_get_peername(t, &peer, &length), -ENOTCONN);
  CHECK_EQ(aios_transport_get_write_buffer_size(t), 0);
  CHECK_EQ(aios_transport_unref(t), 0);
  CHECK_EQ(aios_transport_unref(t), AIOS_EBADHANDLE);
  close_server(loop, server);
  CHECK_EQ(state.connections, 1);
  CHECK_EQ(state.lost, 1);
  close_loop(loop);
}

static void test_echo_ipv6(void) {
  aios_loop_t *loop;
  echo_server_t state = {0, 0, 0, 0};
  aios_server_t *server;
  if (!has_ipv6()) {
    printf("skipped: no IPv6 on this machine\n");
    return;
  }
  loop = make_loop();
  server = start_echo(loop, &state, "::1");
  echo_round_trip(loop, "::1", server_port_at(server, 0), "six");
  close_server(loop, server);
  close_loop(loop);
}

static void test_connection_refused(void) {
  aios_loop_t *loop = make_loop();
  client_t c;
  aios_protocol_t p;
  aios_future_t *f = NULL;
  aios_error_t *error;
  int fd;
  int port = refusing_port(&fd);
  client_init(&c, loop);
  p = client_protocol(&c);
  CHECK_EQ(aios_create_connection(loop, &p, "127.0.0.1", port, NULL, &f), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), -ECONNREFUSED);
  CHECK_EQ(aios_error_kind(error), AIOS_ERROR_OS);
  CHECK_EQ(aios_error_os_errno(error), ECONNREFUSED);
  CHECK(strstr(aios_error_message(error), "127.0.0.1") != NULL);
  CHECK_EQ(aios_error_unref(error), 0);
  CHECK_EQ(c.made, 0);
  CHECK_EQ(c.lost, 0);
  CHECK_EQ(c.destroyed, 1); /* the protocol is destroyed without a callback */
  CHECK_EQ(aios_future_unref(c.lost_future), 0);
  close(fd);
  close_loop(loop);
}

static void test_create_connection_bad_arguments(void) {
  aios_loop_t *loop = make_loop();
  client_t c;
  aios_protocol_t p;
  aios_connect_options_t options;
  aios_future_t *f = NULL;
  client_init(&c, loop);
  p = client_protocol(&c);
  CHECK_EQ(aios_create_connection(loop, &p, "127.0.0.1", 70000, NULL, &f), AIOS_EINVAL);
  CHECK_EQ(aios_create_connection(loop, &p, "127.0.0.1", -1, NULL, &f), AIOS_EINVAL);
  CHECK_EQ(aios_create_connection(loop, NULL, "127.0.0.1", 1, NULL, &f), AIOS_EINVAL);
  CHECK_EQ(aios_create_connection(loop, &p, "127.0.0.1", 1, NULL, NULL), AIOS_EINVAL);
  memset(&options, 0, sizeof options);
  options.size = sizeof options;
  options.happy_eyeballs_delay = 0.0 / 0.0;
  CHECK_EQ(aios_create_connection(loop, &p, "127.0.0.1", 1, &options, &f), AIOS_EINVAL);
  options.happy_eyeballs_delay = -1;
  CHECK_EQ(aios_create_connection(loop, &p, "127.0.0.1", 1, &options, &f), AIOS_EINVAL);
  options.happy_eyeballs_delay = 0;
  options.size = 4;
  CHECK_EQ(aios_create_connection(loop, &p, "127.0.0.1", 1, &options, &f), AIOS_EINVAL);
  p.size = 8;
  CHECK_EQ(aios_create_connection(loop, &p, "127.0.0.1", 1, NULL, &f), AIOS_EINVAL);
  CHECK_EQ(aios_create_unix_connection(loop, &p, NULL, &f), AIOS_EINVAL);
  /* Every failed call left the argument with the caller. */
  CHECK_EQ(c.destroyed, 0);
  CHECK_EQ(aios_future_unref(c.lost_future), 0);
  close_loop(loop);
}

static void test_half_close(void) {
  /* The client writes and sends EOF at once; the server keeps its side
   * open on EOF and echoes; the client then sees the data and EOF. */
  aios_loop_t *loop = make_loop();
  echo_server_t state = {0, 0, 0, 0};
  aios_server_t *server;
  client_t c;
  aios_transport_t *t;
  state.keep_open_on_eof = 0;
  server = start_echo(loop, &state, "127.0.0.1");
  client_init(&c, loop);
  c.send = "ping";
  c.write_eof_at_made = 1;
  t = connect_client(loop, &c, "127.0.0.1", server_port_at(server, 0));
  CHECK_EQ(aios_transport_write(t, "more", 4), AIOS_EINVAL); /* after write_eof */
  client_wait_lost(&c);
  CHECK_EQ(c.length, 4);
  CHECK_EQ(c.eof, 1);
  CHECK_EQ(state.eofs, 1);
  CHECK_EQ(aios_transport_unref(t), 0);
  close_server(loop, server);
  close_loop(loop);
}

/* A server that never reads: the client's writes fill the buffers until
 * pause_writing, and resume_writing comes once the server reads again. */
typedef struct slow_server_s {
  aios_transport_t *transport;
  size_t received;
} slow_server_t;

static void slow_made(aios_transport_t *t, void *arg) {
  slow_server_t *s = (slow_server_t *)arg;
  CHECK_EQ(aios_transport_ref(t), 0);
  s->transport = t;
  CHECK_EQ(aios_transport_pause_reading(t), 0);
  CHECK_EQ(aios_transport_is_reading(t), 0);
}

static void slow_data(aios_transport_t *t, const void *data, size_t length, void *arg) {
  (void)t;
  (void)data;
  ((slow_server_t *)arg)->received += length;
}

static int slow_factory(void *arg, aios_protocol_t *protocol) {
  protocol->arg = arg;
  protocol->connection_made = slow_made;
  protocol->data_received = slow_data;
  return 0;
}

static void test_flow_control(void) {
  aios_loop_t *loop = make_loop();
  slow_server_t slow = {NULL, 0};
  aios_future_t *f = NULL;
  aios_server_t *server;
  client_t c;
  aios_transport_t *t;
  static char block[1 << 16];
  size_t low = 0, high = 0, sent = 0;
  int i;
  CHECK_EQ(aios_create_server(loop, slow_factory, &slow, NULL, "127.0.0.1", 0, NULL, &f), 0);
  server = (aios_server_t *)await_value(loop, f);
  client_init(&c, loop);
  t = connect_client(loop, &c, "127.0.0.1", server_port_at(server, 0));
  CHECK_EQ(aios_transport_get_write_buffer_limits(t, &low, &high), 0);
  CHECK_EQ(high, 65536);
  CHECK_EQ(low, 16384);
  memset(block, 'x', sizeof block);
  /* Write until the kernel's buffers are full and ours holds more than
   * the high-water mark. */
  for (i = 0; i < 200 && c.pauses == 0; i++) {
    CHECK_EQ(aios_transport_write(t, block, sizeof block), 0);
    sent += sizeof block;
    run_once(loop);
  }
  CHECK_EQ(c.pauses, 1);
  CHECK(aios_transport_get_write_buffer_size(t) > 65536);
  /* The server reads again: the buffer drains and resume_writing comes. */
  CHECK_EQ(aios_transport_resume_reading(slow.transport), 0);
  for (i = 0; i < 100000 && (c.resumes == 0 || slow.received < sent); i++) run_once(loop);
  CHECK_EQ(c.resumes, 1);
  CHECK_EQ(slow.received, sent);
  CHECK_EQ(aios_transport_get_write_buffer_size(t), 0);
  /* Limits: low > high is refused; a lower high pauses at once. */
  CHECK_EQ(aios_transport_set_write_buffer_limits(t, 10, 20), AIOS_EINVAL);
  CHECK_EQ(aios_transport_set_write_buffer_limits(t, -1, 100), 0);
  CHECK_EQ(aios_transport_get_write_buffer_limits(t, &low, &high), 0);
  CHECK_EQ(high, 400);
  CHECK_EQ(low, 100);
  CHECK_EQ(aios_transport_close(t), 0);
  client_wait_lost(&c);
  CHECK_EQ(aios_transport_unref(t), 0);
  CHECK_EQ(aios_transport_close(slow.transport), 0);
  CHECK_EQ(aios_transport_unref(slow.transport), 0);
  close_server(loop, server);
  close_loop(loop);
}

/* Writes blocks without running the loop until the transport buffers
 * some of them; returns the bytes written. Bounded: 256 blocks. */
static size_t write_until_buffered(aios_transport_t *t, const char *block, size_t size) {
  size_t sent = 0;
  int i;
  for (i = 0; i < 256 && aios_transport_get_write_buffer_size(t) == 0; i++) {
    CHECK_EQ(aios_transport_write(t, block, size), 0);
    sent += size;
  }
  CHECK(aios_transport_get_write_buffer_size(t) > 0);
  return sent;
}

static void test_close_flushes_and_abort_drops(void) {
  aios_loop_t *loop = make_loop();
  slow_server_t slow = {NULL, 0};
  aios_future_t *f = NULL;
  aios_server_t *server;
  client_t c;
  aios_transport_t *t;
  static char block[1 << 20];
  size_t sent;
  int i;
  CHECK_EQ(aios_create_server(loop, slow_factory, &slow, NULL, "127.0.0.1", 0, NULL, &f), 0);
  server = (aios_server_t *)await_value(loop, f);
  client_init(&c, loop);
  t = connect_client(loop, &c, "127.0.0.1", server_port_at(server, 0));
  memset(block, 'y', sizeof block);
  /* Write until the kernel's buffers (which loopback autotuning can grow
   * to several MiB) are full and the rest waits in ours. */
  sent = write_until_buffered(t, block, sizeof block);
  /* close() sends everything before closing. */
  CHECK_EQ(aios_transport_close(t), 0);
  CHECK_EQ(aios_transport_is_closing(t), 1);
  CHECK_EQ(c.lost, 0);
  CHECK_EQ(aios_transport_resume_reading(slow.transport), 0);
  client_wait_lost(&c);
  CHECK_EQ(c.lost_code, 0);
  for (i = 0; i < 100000 && slow.received < sent; i++) run_once(loop);
  CHECK_EQ(slow.received, sent);
  CHECK_EQ(aios_transport_unref(t), 0);
  CHECK_EQ(aios_transport_close(slow.transport), 0);
  CHECK_EQ(aios_transport_unref(slow.transport), 0);

  /* abort() drops what is buffered. */
  slow.transport = NULL;
  slow.received = 0;
  client_init(&c, loop);
  t = connect_client(loop, &c, "127.0.0.1", server_port_at(server, 0));
  sent = write_until_buffered(t, block, sizeof block);
  CHECK_EQ(aios_transport_abort(t), 0);
  client_wait_lost(&c);
  CHECK_EQ(aios_transport_get_write_buffer_size(t), 0);
  CHECK_EQ(aios_transport_resume_reading(slow.transport), 0);
  for (i = 0; i < 100 && slow.received < sent; i++) run_once(loop);
  CHECK(slow.received < sent);
  CHECK_EQ(aios_transport_unref(t), 0);
  CHECK_EQ(aios_transport_close(slow.transport), 0);
  CHECK_EQ(aios_transport_unref(slow.transport), 0);
  close_server(loop, server);
  close_loop(loop);
}

/* A client transport connected to a raw socket, *peer (the caller closes it). */
static aios_transport_t *connect_raw_peer(aios_loop_t *loop, client_t *c, int *peer) {
  int listener;
  int port = loopback_port(&listener, 1);
  aios_transport_t *t;
  client_init(c, loop);
  t = connect_client(loop, c, "127.0.0.1", port);
  *peer = accept(listener, NULL, NULL);
  CHECK(*peer >= 0);
  close(listener);
  return t;
}

/* A close of `fd` after this resets the connection (SO_LINGER 0). */
static void reset_on_close(int fd) {
  struct linger linger = {1, 0};
  CHECK_EQ(setsockopt(fd, SOL_SOCKET, SO_LINGER, &linger, sizeof linger), 0);
}

static void test_peer_reset(void) {
  /* A raw socket peer that closes with SO_LINGER 0 resets the connection. */
  aios_loop_t *loop = make_loop();
  int peer;
  client_t c;
  aios_transport_t *t = connect_raw_peer(loop, &c, &peer);
  reset_on_close(peer);
  CHECK_EQ(write(peer, "abc", 3), 3);
  close(peer);
  client_wait_lost(&c);
  CHECK_EQ(c.lost_code, -ECONNRESET);
  CHECK(c.length <= 3);
  CHECK_EQ(aios_transport_write(t, "x", 1), 0); /* ignored, as asyncio */
  CHECK_EQ(aios_transport_unref(t), 0);
  close_loop(loop);
}

static void test_write_to_reset_peer(void) {
  /* The peer resets before the loop has read anything: the write the
   * socket fails returns 0 and closes the transport at once, and the error
   * connection_lost is to get can be read until it runs. */
  aios_loop_t *loop = make_loop();
  int peer, error = 1;
  struct pollfd watch;
  client_t c;
  aios_transport_t *t = connect_raw_peer(loop, &c, &peer);
  CHECK_EQ(aios_transport_get_error(t, &error), 0);
  CHECK_EQ(error, 0);
  CHECK_EQ(aios_transport_get_error(t, NULL), AIOS_EINVAL);
  reset_on_close(peer);
  close(peer);
  watch.fd = aios_transport_get_fd(t);
  watch.events = POLLIN;
  CHECK_EQ(poll(&watch, 1, 10000), 1); /* the reset has arrived */
  CHECK_EQ(aios_transport_is_closing(t), 0);
  CHECK_EQ(aios_transport_write(t, "x", 1), 0);
  CHECK_EQ(aios_transport_is_closing(t), 1);
  CHECK_EQ(aios_transport_get_error(t, &error), 0);
  CHECK(error == -ECONNRESET || error == -EPIPE);
  client_wait_lost(&c);
  CHECK_EQ(c.lost, 1);
  CHECK_EQ(c.lost_code, error);
  CHECK_EQ(aios_transport_get_error(t, &error), 0);
  CHECK_EQ(error, 0);
  CHECK_EQ(aios_transport_unref(t), 0);
  CHECK_EQ(aios_transport_get_error(t, &error), AIOS_EBADHANDLE);
  close_loop(loop);
}

static void test_connect_accepted_socket(void) {
  aios_loop_t *loop = make_loop();
  int pair[2];
  client_t c;
  aios_protocol_t p;
  aios_future_t *f = NULL;
  aios_transport_t *t;
  char buffer[8];
  CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  client_init(&c, loop);
  c.send = "pair";
  p = client_protocol(&c);
  CHECK_EQ(aios_connect_accepted_socket(loop, &p, pair[0], &f), 0);
  t = (aios_transport_t *)await_value(loop, f);
  CHECK_EQ(c.made, 1);
  CHECK_EQ(read(pair[1], buffer, sizeof buffer), 4);
  CHECK_EQ(write(pair[1], "back", 4), 4);
  close(pair[1]);
  client_wait_lost(&c);
  CHECK_EQ(c.length, 4);
  CHECK_EQ(c.eof, 1);
  CHECK_EQ(aios_transport_unref(t), 0);
  /* Not a socket: refused, and the caller keeps the descriptor. */
  CHECK_EQ(pipe(pair), 0);
  client_init(&c, loop);
  p = client_protocol(&c);
  CHECK(aios_connect_accepted_socket(loop, &p, pair[0], &f) < 0);
  CHECK_EQ(c.destroyed, 0);
  CHECK_EQ(close(pair[0]), 0);
  close(pair[1]);
  CHECK_EQ(aios_future_unref(c.lost_future), 0);
  close_loop(loop);
}

/* A buffered protocol that hands the transport to a plain one from inside
 * get_buffer: the read into its buffer still ends in its buffer_updated, it
 * is destroyed after that, and later bytes go to the new protocol. */
typedef struct {
  char buffer[64];
  size_t updated;
  int destroyed, gets;
  aios_protocol_t next;
  /* The new protocol's. */
  char received[64];
  size_t length;
  int next_destroyed;
} handover_t;

static void handover_data(aios_transport_t *t, const void *data, size_t n, void *arg) {
  handover_t *h = (handover_t *)((char *)arg - offsetof(handover_t, received));
  (void)t;
  if (h->length + n <= sizeof h->received) memcpy(h->received + h->length, data, n);
  h->length += n;
}
static void handover_next_destroy(void *arg) {
  handover_t *h = (handover_t *)((char *)arg - offsetof(handover_t, received));
  h->next_destroyed++;
}
static int handover_get_buffer(aios_transport_t *t, size_t hint, void **buffer, size_t *length, void *arg) {
  handover_t *h = arg;
  (void)hint;
  h->gets++;
  *buffer = h->buffer;
  *length = sizeof h->buffer;
  CHECK_EQ(aios_transport_set_protocol(t, &h->next), 0);
  return 0;
}
static void handover_updated(aios_transport_t *t, size_t n, void *arg) {
  handover_t *h = arg;
  (void)t;
  CHECK_EQ(h->destroyed, 0);
  h->updated += n;
}
static void handover_destroy(void *arg) { ((handover_t *)arg)->destroyed++; }

static void test_set_protocol_from_get_buffer(void) {
  aios_loop_t *loop = make_loop();
  handover_t h;
  aios_protocol_t p;
  aios_future_t *f = NULL;
  aios_transport_t *t;
  int pair[2], i;
  memset(&h, 0, sizeof h);
  memset(&p, 0, sizeof p);
  p.size = sizeof p;
  p.get_buffer = handover_get_buffer;
  p.buffer_updated = handover_updated;
  p.destroy = handover_destroy;
  p.arg = &h;
  h.next.size = sizeof h.next;
  h.next.data_received = handover_data;
  h.next.destroy = handover_next_destroy;
  h.next.arg = h.received;
  CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  CHECK_EQ(aios_connect_accepted_socket(loop, &p, pair[0], &f), 0);
  t = (aios_transport_t *)await_value(loop, f);
  CHECK_EQ(write(pair[1], "ping", 4), 4);
  for (i = 0; i < 1000 && h.updated < 4; i++) run_once(loop);
  CHECK_EQ(h.gets, 1);
  CHECK_EQ(h.updated, 4);
  CHECK(memcmp(h.buffer, "ping", 4) == 0);
  CHECK_EQ(h.destroyed, 1);
  CHECK_EQ(write(pair[1], "more", 4), 4);
  for (i = 0; i < 1000 && h.length < 4; i++) run_once(loop);
  CHECK_EQ(h.length, 4);
  CHECK(memcmp(h.received, "more", 4) == 0);
  CHECK_EQ(h.gets, 1);
  CHECK_EQ(aios_transport_abort(t), 0);
  CHECK_EQ(aios_transport_unref(t), 0);
  close(pair[1]);
  run_once(loop);
  close_loop(loop);
  CHECK_EQ(h.next_destroyed, 1);
}

/* ------------------------------------------------------------------------ */
/* Unix sockets                                                               */

static void temp_socket_path(char *path, size_t size) {
  const char *dir = getenv("TMPDIR");
  snprintf(path, size, "%s/aios-test-%d.sock", dir ? dir : "/tmp", (int)getpid());
}

static void test_unix_echo_and_stale_socket(void) {
  aios_loop_t *loop = make_loop();
  echo_server_t state = {0, 0, 0, 0};
  char path[108];
  aios_future_t *f = NULL;
  aios_server_t *server;
  client_t c;
  aios_protocol_t p;
  aios_transport_t *t;
  struct sockaddr_un address;
  int stale = socket(AF_UNIX, SOCK_STREAM, 0);
  temp_socket_path(path, sizeof path);
  unlink(path);
  /* A socket file left behind by a process gone. */
  memset(&address, 0, sizeof address);
  address.sun_family = AF_UNIX;
  strcpy(address.sun_path, path);
  CHECK_EQ(bind(stale, (struct sockaddr *)&address, sizeof address), 0);
  close(stale);
  CHECK_EQ(aios_create_unix_server(loop, echo_factory, &state, NULL, path, NULL, &f), 0);
  server = (aios_server_t *)await_value(loop, f);
  client_init(&c, loop);
  c.send = "unix";
  c.close_after = 4;
  p = client_protocol(&c);
  CHECK_EQ(aios_create_unix_connection(loop, &p, path, &f), 0);
  t = (aios_transport_t *)await_value(loop, f);
  client_wait_lost(&c);
  CHECK_EQ(c.length, 4);
  CHECK_EQ(aios_transport_unref(t), 0);
  close_server(loop, server);
  /* The server removed its socket file. */
  CHECK(access(path, F_OK) != 0);
  close_loop(loop);
}

static void test_unix_connection_errors(void) {
  aios_loop_t *loop = make_loop();
  client_t c;
  aios_protocol_t p;
  aios_future_t *f = NULL;
  aios_error_t *error;
  char path[200];
  client_init(&c, loop);
  p = client_protocol(&c);
  temp_socket_path(path, sizeof path);
  unlink(path);
  CHECK_EQ(aios_create_unix_connection(loop, &p, path, &f), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), -ENOENT);
  CHECK_EQ(aios_error_unref(error), 0);
  CHECK_EQ(c.destroyed, 1);
  CHECK_EQ(aios_future_unref(c.lost_future), 0);
  client_init(&c, loop);
  p = client_protocol(&c);
  memset(path, 'a', sizeof path - 1);
  path[sizeof path - 1] = '\0';
  CHECK_EQ(aios_create_unix_connection(loop, &p, path, &f), AIOS_EINVAL);
  CHECK_EQ(c.destroyed, 0);
  CHECK_EQ(aios_future_unref(c.lost_future), 0);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Servers                                                                    */

static void test_server_address_in_use(void) {
  aios_loop_t *loop = make_loop();
  echo_server_t state = {0, 0, 0, 0};
  aios_server_t *server = start_echo(loop, &state, "127.0.0.1");
  aios_server_options_t options;
  aios_future_t *f = NULL;
  aios_error_t *error;
  int destroyed = 0;
  memset(&options, 0, sizeof options);
  options.size = sizeof options;
  options.reuse_address = -1;
  CHECK_EQ(aios_create_server(loop, echo_factory, &destroyed, count_destructor, "127.0.0.1",
                              server_port_at(server, 0), &options, &f), 0);
  error = await_error(loop, f);
  CHECK_EQ(aios_error_code(error), -EADDRINUSE);
  CHECK_EQ(aios_error_unref(error), 0);
  CHECK_EQ(destroyed, 1);
  close_server(loop, server);
  close_loop(loop);
}

static void test_server_close_with_clients(void) {
  aios_loop_t *loop = make_loop();
  echo_server_t state = {0, 0, 0, 0};
  aios_server_t *server = start_echo(loop, &state, "127.0.0.1");
  aios_future_t *closed = NULL;
  client_t c1, c2;
  aios_transport_t *t1, *t2;
  int i;
  client_init(&c1, loop);
  client_init(&c2, loop);
  t1 = connect_client(loop, &c1, "127.0.0.1", server_port_at(server, 0));
  t2 = connect_client(loop, &c2, "127.0.0.1", server_port_at(server, 0));
  tick_until(loop, &state.connections, 2);
  CHECK_EQ(state.connections, 2);
  CHECK_EQ(aios_server_close(server), 0);
  CHECK_EQ(aios_server_close(server), 0);
  CHECK_EQ(aios_server_is_serving(server), 0);
  CHECK_EQ(aios_server_socket_count(server), 0);
  CHECK_EQ(aios_server_start_serving(server), AIOS_EINVALIDSTATE);
  /* wait_closed waits for the clients too (asyncio 3.12). */
  CHECK_EQ(aios_server_wait_closed(server, &closed), 0);
  for (i = 0; i < 5; i++) run_once(loop);
  CHECK_EQ(aios_future_done(closed), 0);
  CHECK_EQ(aios_server_close_clients(server), 0);
  CHECK_EQ(await_status(loop, closed), 0);
  client_wait_lost(&c1);
  client_wait_lost(&c2);
  CHECK_EQ(state.lost, 2);
  CHECK_EQ(aios_transport_unref(t1), 0);
  CHECK_EQ(aios_transport_unref(t2), 0);
  CHECK_EQ(aios_server_unref(server), 0);
  close_loop(loop);
}

static void test_server_abort_clients(void) {
  aios_loop_t *loop = make_loop();
  echo_server_t state = {0, 0, 0, 0};
  aios_server_t *server = start_echo(loop, &state, "127.0.0.1");
  client_t c;
  aios_transport_t *t;
  client_init(&c, loop);
  t = connect_client(loop, &c, "127.0.0.1", server_port_at(server, 0));
  tick_until(loop, &state.connections, 1);
  CHECK_EQ(aios_server_abort_clients(server), 0);
  client_wait_lost(&c);
  CHECK_EQ(state.lost, 1);
  CHECK_EQ(aios_transport_unref(t), 0);
  close_server(loop, server);
  close_loop(loop);
}

static void test_server_start_serving_later(void) {
  aios_loop_t *loop = make_loop();
  echo_server_t state = {0, 0, 0, 0};
  aios_server_options_t options;
  aios_future_t *f = NULL, *forever = NULL;
  aios_server_t *server;
  memset(&options, 0, sizeof options);
  options.size = sizeof options;
  options.start_serving = -1;
  CHECK_EQ(aios_create_server(loop, echo_factory, &state, NULL, "127.0.0.1", 0, &options, &f), 0);
  server = (aios_server_t *)await_value(loop, f);
  CHECK_EQ(aios_server_is_serving(server), 0);
  CHECK_EQ(aios_server_serve_forever(server, &forever), 0);
  CHECK_EQ(aios_server_is_serving(server), 1);
  CHECK_EQ(aios_server_serve_forever(server, &f), AIOS_EINVALIDSTATE);
  echo_round_trip(loop, "127.0.0.1", server_port_at(server, 0), "later");
  /* Cancelling serve_forever closes the server. */
  CHECK_EQ(aios_future_cancel(forever, NULL), 1);
  CHECK_EQ(await_status(loop, forever), AIOS_ECANCELLED);
  CHECK_EQ(aios_server_is_serving(server), 0);
  close_server(loop, server);
  close_loop(loop);
}

static int refusing_factory(void *arg, aios_protocol_t *protocol) {
  (void)protocol;
  ++*(int *)arg;
  return -1;
}

static void test_factory_refuses(void) {
  aios_loop_t *loop = make_loop();
  int calls = 0;
  aios_future_t *f = NULL;
  aios_server_t *server;
  client_t c;
  aios_transport_t *t;
  CHECK_EQ(aios_create_server(loop, refusing_factory, &calls, NULL, "127.0.0.1", 0, NULL, &f), 0);
  server = (aios_server_t *)await_value(loop, f);
  client_init(&c, loop);
  t = connect_client(loop, &c, "127.0.0.1", server_port_at(server, 0));
  client_wait_lost(&c);
  CHECK_EQ(calls, 1);
  CHECK_EQ(aios_transport_unref(t), 0);
  close_server(loop, server);
  close_loop(loop);
}

static void test_reuse_port_two_servers(void) {
  aios_loop_t *loop = make_loop();
  echo_server_t a = {0, 0, 0, 0}, b = {0, 0, 0, 0};
  aios_server_options_t options;
  aios_future_t *f = NULL;
  aios_server_t *first, *second;
  int port, i;
  memset(&options, 0, sizeof options);
  options.size = sizeof options;
  options.reuse_port = 1;
  CHECK_EQ(aios_create_server(loop, echo_factory, &a, NULL, "127.0.0.1", 0, &options, &f), 0);
  first = (aios_server_t *)await_value(loop, f);
  port = server_port_at(first, 0);
  CHECK_EQ(aios_create_server(loop, echo_factory, &b, NULL, "127.0.0.1", port, &options, &f), 0);
  second = (aios_server_t *)await_value(loop, f);
  CHECK_EQ(server_port_at(second, 0), port);
  /* The kernel spreads connections over both. */
  for (i = 0; i < 64 && (a.connections == 0 || b.connections == 0); i++) {
    echo_round_trip(loop, "127.0.0.1", port, "r");
  }
  CHECK(a.connections > 0);
  CHECK(b.connections > 0);
  close_server(loop, first);
  close_server(loop, second);
  close_loop(loop);
}

static void test_loop_close_aborts_transports(void) {
  aios_loop_t *loop = make_loop();
  echo_server_t state = {0, 0, 0, 0};
  aios_server_t *server = start_echo(loop, &state, "127.0.0.1");
  client_t c;
  aios_transport_t *t;
  client_init(&c, loop);
  t = connect_client(loop, &c, "127.0.0.1", server_port_at(server, 0));
  tick_until(loop, &state.connections, 1);
  CHECK_EQ(aios_future_unref(c.lost_future), 0);
  c.lost_future = NULL;
  CHECK_EQ(aios_transport_unref(t), 0);
  CHECK_EQ(aios_server_unref(server), 0);
  /* Nothing closed them: the loop's close does, and frees them. */
  close_loop(loop);
  CHECK_EQ(c.lost, 1);
  CHECK_EQ(c.destroyed, 1);
  CHECK_EQ(state.lost, 1);
}


static void test_nodelay_and_sockname(void) {
  aios_loop_t *loop = make_loop();
  echo_server_t state = {0, 0, 0, 0};
  aios_server_t *server = start_echo(loop, &state, "127.0.0.1");
  client_t c;
  aios_transport_t *t;
  int nodelay = 0;
  socklen_t size = sizeof nodelay;
  struct sockaddr_in local;
  unsigned int length = sizeof local;
  client_init(&c, loop);
  t = connect_client(loop, &c, "127.0.0.1", server_port_at(server, 0));
  /* TCP_NODELAY is on, as asyncio sets it. */
  CHECK_EQ(getsockopt(aios_transport_get_fd(t), IPPROTO_TCP, TCP_NODELAY, &nodelay, &size), 0);
  CHECK(nodelay != 0);
  CHECK_EQ(aios_transport_get_sockname(t, &local, &length), 0);
  CHECK_EQ(local.sin_family, AF_INET);
  CHECK_EQ(ntohl(local.sin_addr.s_addr), INADDR_LOOPBACK);
  /* A buffer too small gets the start, and the length it needed. */
  length = 4;
  CHECK_EQ(aios_transport_get_sockname(t, &local, &length), 0);
  CHECK_EQ(length, sizeof local);
  CHECK_EQ(aios_transport_get_sockname(t, NULL, &length), AIOS_EINVAL);
  CHECK_EQ(aios_transport_abort(t), 0);
  client_wait_lost(&c);
  CHECK_EQ(aios_transport_unref(t), 0);
  close_server(loop, server);
  close_loop(loop);
}

static void test_local_address_and_happy_eyeballs(void) {
  aios_loop_t *loop = make_loop();
  echo_server_t state = {0, 0, 0, 0};
  aios_server_t *server = start_echo(loop, &state, "127.0.0.1");
  aios_connect_options_t options;
  aios_protocol_t p;
  aios_future_t *f = NULL;
  client_t c;
  aios_transport_t *t;
  struct sockaddr_in local;
  unsigned int length = sizeof local;
  memset(&options, 0, sizeof options);
  options.size = sizeof options;
  options.local_host = "127.0.0.1";
  options.happy_eyeballs_delay = 0.25;
  client_init(&c, loop);
  c.send = "he";
  c.close_after = 2;
  p = client_protocol(&c);
  CHECK_EQ(aios_create_connection(loop, &p, "localhost", server_port_at(server, 0), &options, &f), 0);
  t = (aios_transport_t *)await_value(loop, f);
  CHECK_EQ(aios_transport_get_sockname(t, &local, &length), 0);
  CHECK_EQ(ntohl(local.sin_addr.s_addr), INADDR_LOOPBACK);
  client_wait_lost(&c);
  CHECK_EQ(c.length, 2);
  CHECK_EQ(aios_transport_unref(t), 0);
  /* A local address of another family than every remote one. */
  options.local_host = "::1";
  if (has_ipv6()) {
    aios_error_t *error;
    client_init(&c, loop);
    p = client_protocol(&c);
    CHECK_EQ(aios_create_connection(loop, &p, "127.0.0.1", server_port_at(server, 0), &options, &f), 0);
    error = await_error(loop, f);
    CHECK(aios_error_code(error) < 0);
    CHECK_EQ(aios_error_unref(error), 0);
    CHECK_EQ(c.destroyed, 1);
    CHECK_EQ(aios_future_unref(c.lost_future), 0);
  }
  close_server(loop, server);
  close_loop(loop);
}

static void test_server_on_several_hosts(void) {
  aios_loop_t *loop;
  echo_server_t state = {0, 0, 0, 0};
  aios_server_options_t options;
  const char *more[] = {"::1"};
  aios_future_t *f = NULL;
  aios_server_t *server;
  if (!has_ipv6()) {
    printf("skipped: no IPv6 on this machine\n");
    return;
  }
  loop = make_loop();
  memset(&options, 0, sizeof options);
  options.size = sizeof options;
  options.hosts = more;
  options.host_count = 1;
  CHECK_EQ(aios_create_server(loop, echo_factory, &state, NULL, "127.0.0.1", 0, &options, &f), 0);
  server = (aios_server_t *)await_value(loop, f);
  CHECK_EQ(aios_server_socket_count(server), 2);
  echo_round_trip(loop, "::1", server_port_at(server, 1), "v6");
  close_server(loop, server);
  close_loop(loop);
}

static void test_accept_emfile_keeps_serving(void) {
  /* With no descriptor left, accept fails with EMFILE. libuv keeps a
   * spare descriptor for this: it accepts and closes what waits, so the
   * peers see their connection end, and the server serves again once
   * descriptors are free (asyncio backs off and retries instead). */
  aios_loop_t *loop = make_loop();
  echo_server_t state = {0, 0, 0, 0};
  aios_server_t *server = start_echo(loop, &state, "127.0.0.1");
  exc_record_t record;
  struct rlimit saved, tight;
  struct sockaddr_in address;
  int fds[3], i, probe;
  memset(&record, 0, sizeof record);
  CHECK_EQ(aios_loop_set_exception_handler(loop, exc_recorder, &record), 0);
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_port = htons((unsigned short)server_port_at(server, 0));
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  for (i = 0; i < 3; i++) fds[i] = socket(AF_INET, SOCK_STREAM, 0);
  /* The lowest free descriptor is the limit: nothing more can be opened. */
  probe = dup(0);
  CHECK(probe >= 0);
  close(probe);
  CHECK_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
  tight = saved;
  tight.rlim_cur = (rlim_t)probe;
  CHECK_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
  for (i = 0; i < 3; i++) CHECK_EQ(connect(fds[i], (struct sockaddr *)&address, sizeof address), 0);
  for (i = 0; i < 3; i++) {
    int tries, ended = 0;
    for (tries = 0; tries < 200 && !ended; tries++) {
      char byte;
      ssize_t n;
      run_once(loop);
      n = recv(fds[i], &byte, 1, MSG_DONTWAIT);
      ended = n == 0 || (n < 0 && errno == ECONNRESET);
    }
    CHECK(ended);
  }
  CHECK_EQ(state.connections, 0);
  CHECK_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
  for (i = 0; i < 3; i++) close(fds[i]);
  CHECK_EQ(aios_server_is_serving(server), 1);
  echo_round_trip(loop, "127.0.0.1", server_port_at(server, 0), "again");
  close_server(loop, server);
  close_loop(loop);
}

/* Two loops on two threads serve one port (SO_REUSEPORT): how an asyncio
 * server uses every core. */
typedef struct port_sharer_s {
  aios_loop_t *loop;
  echo_server_t state;
  int port;
  int ready;
  pthread_mutex_t mutex;
  pthread_cond_t cond;
  aios_server_t *server;
} port_sharer_t;

static void *serve_on_thread(void *arg) {
  port_sharer_t *sharer = (port_sharer_t *)arg;
  aios_server_options_t options;
  aios_future_t *f = NULL;
  memset(&options, 0, sizeof options);
  options.size = sizeof options;
  options.reuse_port = 1;
  sharer->loop = make_loop();
  CHECK_EQ(aios_create_server(sharer->loop, echo_factory, &sharer->state, NULL, "127.0.0.1", sharer->port,
                              &options, &f), 0);
  sharer->server = (aios_server_t *)await_value(sharer->loop, f);
  pthread_mutex_lock(&sharer->mutex);
  sharer->ready = 1;
  pthread_cond_signal(&sharer->cond);
  pthread_mutex_unlock(&sharer->mutex);
  CHECK_EQ(aios_loop_run_forever(sharer->loop), 0); /* until the main thread stops it */
  close_server(sharer->loop, sharer->server);
  close_loop(sharer->loop);
  return NULL;
}

static void stop_from_thread_cb(void *arg) { CHECK_EQ(aios_loop_stop((aios_loop_t *)arg), 0); }

static void test_reuse_port_two_threads(void) {
  aios_loop_t *loop = make_loop();
  echo_server_t mine = {0, 0, 0, 0};
  aios_server_options_t options;
  aios_future_t *f = NULL;
  aios_server_t *server;
  port_sharer_t other;
  pthread_t thread;
  int i;
  memset(&options, 0, sizeof options);
  options.size = sizeof options;
  options.reuse_port = 1;
  CHECK_EQ(aios_create_server(loop, echo_factory, &mine, NULL, "127.0.0.1", 0, &options, &f), 0);
  server = (aios_server_t *)await_value(loop, f);
  memset(&other, 0, sizeof other);
  other.port = server_port_at(server, 0);
  pthread_mutex_init(&other.mutex, NULL);
  pthread_cond_init(&other.cond, NULL);
  /* One connection on this thread first: Swift's runtime makes the
   * metadata of the types on this path at first use, with atomics helgrind
   * cannot follow (see warm_up_runtime). */
  {
    echo_round_trip(loop, "127.0.0.1", other.port, "w");
    for (i = 0; i < 100 && mine.lost == 0; i++) run_once(loop);
    mine.connections = 0;
  }
  CHECK_EQ(pthread_create(&thread, NULL, serve_on_thread, &other), 0);
  pthread_mutex_lock(&other.mutex);
  while (!other.ready) pthread_cond_wait(&other.cond, &other.mutex);
  pthread_mutex_unlock(&other.mutex);
  /* The kernel spreads connections by a hash of their addresses: all 64
   * going to one server would be a 2^-63 chance. The other thread's counts
   * are read only after it is joined. */
  for (i = 0; i < 64; i++) {
    echo_round_trip(loop, "127.0.0.1", other.port, "x");
  }
  CHECK(mine.connections > 0);
  CHECK_EQ(aios_loop_call_soon_threadsafe(other.loop, stop_from_thread_cb, other.loop, NULL, NULL), 0);
  CHECK_EQ(pthread_join(thread, NULL), 0);
  CHECK(other.state.connections > 0);
  pthread_mutex_destroy(&other.mutex);
  pthread_cond_destroy(&other.cond);
  close_server(loop, server);
  close_loop(loop);
}

/* ------------------------------------------------------------------------ */
/* Batched delivery (bindings)                                               */

static unsigned long long next_token;
static int batched_destroyed;

static void count_batched_destroy(void *arg) {
  (void)arg;
  batched_destroyed++;
}

static int batched_factory(void *arg, aios_protocol_t *protocol) {
  (void)arg;
  protocol->batched = 1;
  protocol->token = ++next_token;
  protocol->destroy = count_batched_destroy;
  return 0;
}

/* A server of batched protocols on 127.0.0.1, a client connected to it, and
 * `block` filled with the bytes the client is to send. */
static aios_transport_t *batched_server_and_client(aios_loop_t *loop, aios_server_t **server,
                                                   client_t *c, char *block, size_t size) {
  aios_future_t *f = NULL;
  size_t i;
  batched_destroyed = 0;
  CHECK_EQ(aios_create_server(loop, batched_factory, NULL, NULL, "127.0.0.1", 0, NULL, &f), 0);
  *server = (aios_server_t *)await_value(loop, f);
  client_init(c, loop);
  for (i = 0; i < size; i++) block[i] = (char)('a' + i % 23);
  return connect_client(loop, c, "127.0.0.1", server_port_at(*server, 0));
}

static void test_batched_echo(void) {
  /* A server whose protocols are batched: the test plays the binding,
   * taking each iteration's events in one call and echoing from the arena.
   * Each stream reads at most once per take. */
  aios_loop_t *loop = make_loop();
  aios_server_t *server;
  client_t c;
  aios_transport_t *t;
  static char block[1 << 20];
  int connected = 0, eofs = 0, lost = 0, i;
  size_t echoed = 0;
  next_token = 100;
  t = batched_server_and_client(loop, &server, &c, block, sizeof block);
  CHECK_EQ(aios_transport_write(t, block, sizeof block), 0);
  CHECK_EQ(aios_transport_write_eof(t), 0);
  for (i = 0; i < 100000 && lost == 0; i++) {
    const aios_io_event_t *events = NULL;
    const unsigned char *arena = NULL;
    size_t count = 0, k;
    int data_events = 0;
    run_once(loop);
    CHECK_EQ(aios_loop_take_io_events(loop, &events, &count, &arena), 0);
    CHECK((count == 0) == (events == NULL));
    for (k = 0; k < count; k++) {
      const aios_io_event_t *e = &events[k];
      CHECK_EQ(e->token, 101);
      CHECK(e->transport != NULL);
      switch (e->kind) {
        case AIOS_IO_CONNECTED: connected++; break;
        case AIOS_IO_DATA:
          data_events++;
          CHECK(e->length > 0 && echoed + e->length <= sizeof block);
          CHECK_EQ(((uintptr_t)arena + e->offset) % 64, 0); /* as the header says */
          /* Every byte in order, whether the last take's arena was given
           * back (and so reused) or not. */
          CHECK(memcmp(arena + e->offset, block + echoed, e->length) == 0);
          CHECK_EQ(aios_transport_write(e->transport, arena + e->offset, e->length), 0);
          echoed += e->length;
          break;
        case AIOS_IO_EOF:
          eofs++;
          CHECK_EQ(aios_transport_close(e->transport), 0);
          break;
        case AIOS_IO_LOST:
          CHECK_EQ(e->status, 0);
          lost++;
          break;
        default: break;
      }
    }
    CHECK(data_events <= 1); /* one read per stream per take */
    if (i % 2) {
      CHECK_EQ(aios_loop_release_io_events(loop), 0);
      CHECK_EQ(aios_loop_release_io_events(loop), 0); /* again: nothing */
    }
  }
  CHECK_EQ(connected, 1);
  CHECK_EQ(eofs, 1);
  CHECK_EQ(lost, 1);
  CHECK_EQ(echoed, sizeof block);
  client_wait_lost(&c);
  CHECK_EQ(c.total, sizeof block);
  CHECK_EQ(batched_destroyed, 1);
  CHECK_EQ(aios_transport_unref(t), 0);
  close_server(loop, server);
  /* Bad arguments. */
  {
    const aios_io_event_t *events;
    size_t count;
    CHECK_EQ(aios_loop_take_io_events(loop, NULL, &count, NULL), AIOS_EINVAL);
    CHECK_EQ(aios_loop_take_io_events(NULL, &events, &count, NULL), AIOS_EINVAL);
    CHECK_EQ(aios_loop_release_io_events(NULL), AIOS_EINVAL);
  }
  close_loop(loop);
}

/* The memory a buffer callback lends, by address, with its size. */
enum { MAX_LENT = 8 };
static struct { void *memory; size_t size; int order; } lent_memory[MAX_LENT];
static int lent_calls, lent_refusals;

static void *lend_memory(void *arg, unsigned long long token, size_t size) {
  int k;
  CHECK(arg == &lent_calls);
  CHECK_EQ(token, 201);
  /* The last read's length rounded up to 4 KiB, doubled at most to 256 KiB. */
  CHECK(size >= AIOS_IO_BUFFER_MIN && size % 4096 == 0 && size <= 256 * 1024);
  if (++lent_calls % 5 == 0) {
    lent_refusals++;
    return NULL;                         /* this read goes to the arena */
  }
  for (k = 0; k < MAX_LENT; k++) {
    if (lent_memory[k].memory == NULL) {
      lent_memory[k].memory = malloc(size);
      lent_memory[k].size = size;
      lent_memory[k].order = lent_calls;
      return lent_memory[k].memory;
    }
  }
  CHECK(!"more memory lent at once than there are reads waiting");
  return NULL;
}

/* The size of lent memory, or 0 when it was never lent; memory comes back
 * in the order it was lent. */
static size_t lent_size(void *memory) {
  int k, j;
  for (k = 0; k < MAX_LENT; k++) {
    if (lent_memory[k].memory != memory) continue;
    for (j = 0; j < MAX_LENT; j++)
      if (lent_memory[j].memory != NULL) CHECK(lent_memory[j].order >= lent_memory[k].order);
    return lent_memory[k].size;
  }
  return 0;
}

static void take_back_memory(void *memory) {
  int k;
  for (k = 0; k < MAX_LENT; k++) {
    if (lent_memory[k].memory == memory) {
      free(memory);
      lent_memory[k].memory = NULL;
    }
  }
}

static void test_batched_reads_into_lent_memory(void) {
  /* The binding lends memory for large reads: after a read of at least
   * AIOS_IO_BUFFER_MIN bytes, the next reads go to it and come back as
   * AIOS_IO_DATA_BUFFER events, each memory exactly once; small reads, and
   * those it refuses memory for, stay in the arena. */
  aios_loop_t *loop = make_loop();
  aios_server_t *server;
  client_t c;
  aios_transport_t *t;
  static char block[1 << 20];
  int lost = 0, lent_events = 0, i, k;
  size_t echoed = 0, first = 100;
  next_token = 200;
  lent_calls = lent_refusals = 0;
  memset(lent_memory, 0, sizeof lent_memory);
  CHECK_EQ(aios_loop_set_io_buffer_callback(loop, lend_memory, &lent_calls), 0);
  t = batched_server_and_client(loop, &server, &c, block, sizeof block);
  CHECK_EQ(aios_transport_write(t, block, first), 0);   /* a small read first */
  for (i = 0; i < 100000 && lost == 0; i++) {
    const aios_io_event_t *events = NULL;
    const unsigned char *arena = NULL;
    size_t count = 0;
    run_once(loop);
    CHECK_EQ(aios_loop_take_io_events(loop, &events, &count, &arena), 0);
    for (k = 0; k < (int)count; k++) {
      const aios_io_event_t *e = &events[k];
      const unsigned char *bytes = NULL;
      CHECK_EQ(e->token, 201);
      if (e->kind == AIOS_IO_DATA) {
        bytes = arena + e->offset;
        /* Until a read of AIOS_IO_BUFFER_MIN, nothing is lent. */
        if (echoed == 0) CHECK_EQ(lent_calls, 0);
      }
      else if (e->kind == AIOS_IO_DATA_BUFFER) {
        size_t size = lent_size((void *)(uintptr_t)e->offset);
        CHECK(size > 0);                 /* memory that was lent, back once */
        CHECK(e->length <= size);
        lent_events++;
        if (e->length > 0) bytes = (const unsigned char *)(uintptr_t)e->offset;
      }
      else if (e->kind == AIOS_IO_EOF) {
        CHECK_EQ(aios_transport_close(e->transport), 0);
      }
      else if (e->kind == AIOS_IO_LOST) {
        CHECK_EQ(e->status, 0);
        lost++;
      }
      if (bytes != NULL) {
        CHECK(e->length > 0 && echoed + e->length <= sizeof block);
        CHECK(memcmp(bytes, block + echoed, e->length) == 0);
        CHECK_EQ(aios_transport_write(e->transport, bytes, e->length), 0);
        echoed += e->length;
        if (echoed == first) {
          CHECK_EQ(aios_transport_write(t, block + first, sizeof block - first), 0);
          CHECK_EQ(aios_transport_write_eof(t), 0);
        }
      }
      if (e->kind == AIOS_IO_DATA_BUFFER) take_back_memory((void *)(uintptr_t)e->offset);
    }
  }
  CHECK_EQ(lost, 1);
  CHECK_EQ(echoed, sizeof block);
  CHECK(lent_calls > 0 && lent_events == lent_calls - lent_refusals);
  for (k = 0; k < MAX_LENT; k++) CHECK(lent_memory[k].memory == NULL);
  client_wait_lost(&c);
  CHECK_EQ(c.total, sizeof block);
  CHECK_EQ(batched_destroyed, 1);
  CHECK_EQ(aios_transport_unref(t), 0);
  close_server(loop, server);
  CHECK_EQ(aios_loop_set_io_buffer_callback(loop, NULL, NULL), 0);
  CHECK_EQ(aios_loop_set_io_buffer_callback(NULL, lend_memory, NULL), AIOS_EINVAL);
  close_loop(loop);
}

/* The binding's side of batched delivery driven by the loop itself: the
 * callback aios_loop_set_io_events_callback schedules takes the events, so
 * the loop runs with run_forever (and waits while nothing happens) instead
 * of being stepped. */
typedef struct notified_s {
  aios_loop_t *loop;
  int calls, connected, data_events, eofs, lost, empty_takes;
  size_t echoed;
} notified_t;

static void take_notified(void *arg) {
  notified_t *n = (notified_t *)arg;
  const aios_io_event_t *events = NULL;
  const unsigned char *arena = NULL;
  size_t count = 0, k;
  n->calls++;
  CHECK_EQ(aios_loop_take_io_events(n->loop, &events, &count, &arena), 0);
  if (count == 0) n->empty_takes++;
  for (k = 0; k < count; k++) {
    const aios_io_event_t *e = &events[k];
    switch (e->kind) {
      case AIOS_IO_CONNECTED: n->connected++; break;
      case AIOS_IO_DATA:
        n->data_events++;
        CHECK_EQ(aios_transport_write(e->transport, arena + e->offset, e->length), 0);
        n->echoed += e->length;
        break;
      case AIOS_IO_EOF:
        n->eofs++;
        CHECK_EQ(aios_transport_close(e->transport), 0);
        break;
      case AIOS_IO_LOST: n->lost++; break;
      default: break;
    }
  }
}

static void test_batched_events_callback(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *f = NULL, *idle = NULL;
  aios_server_t *server;
  client_t c;
  aios_transport_t *t;
  notified_t n;
  double started;
  static char block[256 * 1024];
  memset(&n, 0, sizeof n);
  n.loop = loop;
  next_token = 200;
  batched_destroyed = 0;
  CHECK_EQ(aios_loop_set_io_events_callback(NULL, take_notified, &n), AIOS_EINVAL);
  CHECK_EQ(aios_loop_set_io_events_callback(loop, take_notified, &n), 0);
  CHECK_EQ(aios_create_server(loop, batched_factory, NULL, NULL, "127.0.0.1", 0, NULL, &f), 0);
  server = (aios_server_t *)await_value(loop, f);
  CHECK_EQ(n.calls, 0); /* no event, no call */
  client_init(&c, loop);
  t = connect_client(loop, &c, "127.0.0.1", server_port_at(server, 0));
  memset(block, 'n', sizeof block);
  CHECK_EQ(aios_transport_write(t, block, sizeof block), 0);
  CHECK_EQ(aios_transport_write_eof(t), 0);
  client_wait_lost(&c);
  CHECK_EQ(c.total, sizeof block);
  CHECK_EQ(n.connected, 1);
  CHECK_EQ(n.eofs, 1);
  CHECK_EQ(n.lost, 1);
  CHECK_EQ(n.echoed, sizeof block);
  CHECK(n.data_events >= 1);
  CHECK_EQ(n.empty_takes, 0); /* called only when events wait */
  CHECK(n.calls <= n.connected + n.data_events + n.eofs + n.lost);
  /* An idle loop waits: a sleep of 50 ms takes about that long, and the
   * callback does not run meanwhile. */
  n.calls = 0;
  started = test_now();
  CHECK_EQ(aios_sleep(loop, 0.05, NULL, NULL, &idle), 0);
  CHECK_EQ(await_status(loop, idle), 0);
  CHECK(test_now() - started >= 0.045);
  CHECK_EQ(n.calls, 0);
  CHECK_EQ(aios_transport_unref(t), 0);
  close_server(loop, server);
  CHECK_EQ(batched_destroyed, 1);
  CHECK_EQ(aios_loop_set_io_events_callback(loop, NULL, NULL), 0);
  close_loop(loop);
}

/* A Unix socket whose peer wrote its last bytes and closed before the loop
 * polls: libuv reports the hang-up right after the short read, in the same
 * poll. asyncio reads once an iteration and sees the end on the next one,
 * so what data_received scheduled runs before eof_received, and a protocol
 * that paused reading on seeing the bytes gets no end until it resumes. */
typedef struct {
  char order[16];
  size_t n;
  int pause;
  aios_loop_t *loop;
  aios_future_t *lost;
} ending_t;

static void ending_mark(void *arg) {
  ending_t *e = arg;
  e->order[e->n++] = 'X';
}
static void ending_resume(void *arg) {
  aios_transport_t *t = arg;
  CHECK_EQ(aios_transport_resume_reading(t), 0);
}
static void ending_data(aios_transport_t *t, const void *data, size_t n, void *arg) {
  ending_t *e = arg;
  CHECK_EQ(n, 3);
  CHECK(memcmp(data, "bye", 3) == 0);
  e->order[e->n++] = 'D';
  CHECK_EQ(aios_loop_call_soon(e->loop, ending_mark, e, NULL, NULL), 0);
  if (e->pause) {
    CHECK_EQ(aios_transport_pause_reading(t), 0);
    CHECK_EQ(aios_loop_call_later(e->loop, 0.02, ending_resume, t, NULL, NULL), 0);
  }
}
static int ending_eof(aios_transport_t *t, void *arg) {
  ending_t *e = arg;
  (void)t;
  e->order[e->n++] = 'E';
  return 0;
}
static void ending_lost(aios_transport_t *t, aios_error_t *error, void *arg) {
  ending_t *e = arg;
  (void)t;
  CHECK(error == NULL);
  e->order[e->n++] = 'L';
  CHECK_EQ(aios_future_set_result(e->lost, NULL, NULL), 0);
}

static void test_end_comes_an_iteration_after_the_last_bytes(void) {
  int pause;
  for (pause = 0; pause <= 1; pause++) {
    aios_loop_t *loop = make_loop();
    int pair[2];
    ending_t e;
    aios_protocol_t p;
    aios_future_t *f = NULL;
    aios_transport_t *t;
    memset(&e, 0, sizeof e);
    e.pause = pause;
    e.loop = loop;
    CHECK_EQ(aios_future_new(loop, &e.lost), 0);
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    memset(&p, 0, sizeof p);
    p.size = sizeof p;
    p.arg = &e;
    p.data_received = ending_data;
    p.eof_received = ending_eof;
    p.connection_lost = ending_lost;
    CHECK_EQ(aios_connect_accepted_socket(loop, &p, pair[0], &f), 0);
    t = (aios_transport_t *)await_value(loop, f);
    CHECK_EQ(write(pair[1], "bye", 3), 3);
    close(pair[1]);
    CHECK_EQ(await_status(loop, e.lost), 0);
    CHECK_EQ(e.n, 4);
    CHECK(memcmp(e.order, "DXEL", 4) == 0);
    CHECK_EQ(aios_transport_unref(t), 0);
    close_loop(loop);
  }
}

/* The same for a batched protocol: the end is never in the take that has
 * the last bytes, and a pause_reading on seeing them holds it back. */
static void test_batched_end_comes_after_the_take_with_the_last_bytes(void) {
  int pause;
  for (pause = 0; pause <= 1; pause++) {
    aios_loop_t *loop = make_loop();
    int pair[2], i, data_take = -1, eof_take = -1, resume_take = -1, lost = 0;
    aios_protocol_t p;
    aios_future_t *f = NULL;
    aios_transport_t *t;
    CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
    memset(&p, 0, sizeof p);
    p.size = sizeof p;
    p.batched = 1;
    p.token = 7;
    CHECK_EQ(aios_connect_accepted_socket(loop, &p, pair[0], &f), 0);
    t = (aios_transport_t *)await_value(loop, f);
    CHECK_EQ(write(pair[1], "bye", 3), 3);
    close(pair[1]);
    for (i = 0; i < 10000 && !lost; i++) {
      const aios_io_event_t *events = NULL;
      const unsigned char *arena = NULL;
      size_t count = 0, k;
      run_once(loop);
      CHECK_EQ(aios_loop_take_io_events(loop, &events, &count, &arena), 0);
      for (k = 0; k < count; k++) {
        const aios_io_event_t *ev = &events[k];
        if (ev->kind == AIOS_IO_DATA) {
          CHECK_EQ(ev->length, 3);
          data_take = i;
          if (pause) CHECK_EQ(aios_transport_pause_reading(ev->transport), 0);
        } else if (ev->kind == AIOS_IO_EOF) {
          eof_take = i;
          CHECK_EQ(aios_transport_close(ev->transport), 0);
        } else if (ev->kind == AIOS_IO_LOST) {
          lost = 1;
        }
      }
      if (pause && data_take >= 0 && resume_take < 0 && i >= data_take + 3) {
        CHECK_EQ(eof_take, -1);
        CHECK_EQ(aios_transport_resume_reading(t), 0);
        resume_take = i;
      }
    }
    CHECK(lost);
    CHECK(data_take >= 0);
    CHECK(eof_take > (pause ? resume_take : data_take));
    CHECK_EQ(aios_transport_unref(t), 0);
    close_loop(loop);
  }
}

int main(int argc, char **argv) {
  static const test_entry_t tests[] = {
      TEST_ENTRY(test_getaddrinfo_localhost),
      TEST_ENTRY(test_getaddrinfo_keeps_scope_id),
      TEST_ENTRY(test_getaddrinfo_errors),
      TEST_ENTRY(test_getaddrinfo_cancelled),
      TEST_ENTRY(test_getnameinfo),
      TEST_ENTRY(test_echo_round_trip),
      TEST_ENTRY(test_echo_ipv6),
      TEST_ENTRY(test_connection_refused),
      TEST_ENTRY(test_create_connection_bad_arguments),
      TEST_ENTRY(test_half_close),
      TEST_ENTRY(test_flow_control),
      TEST_ENTRY(test_close_flushes_and_abort_drops),
      TEST_ENTRY(test_peer_reset),
      TEST_ENTRY(test_write_to_reset_peer),
      TEST_ENTRY(test_connect_accepted_socket),
      TEST_ENTRY(test_set_protocol_from_get_buffer),
      TEST_ENTRY(test_unix_echo_and_stale_socket),
      TEST_ENTRY(test_unix_connection_errors),
      TEST_ENTRY(test_server_address_in_use),
      TEST_ENTRY(test_server_close_with_clients),
      TEST_ENTRY(test_server_abort_clients),
      TEST_ENTRY(test_server_start_serving_later),
      TEST_ENTRY(test_factory_refuses),
      TEST_ENTRY(test_reuse_port_two_servers),
      TEST_ENTRY(test_loop_close_aborts_transports),
      TEST_ENTRY(test_nodelay_and_sockname),
      TEST_ENTRY(test_local_address_and_happy_eyeballs),
      TEST_ENTRY(test_server_on_several_hosts),
      TEST_ENTRY(test_accept_emfile_keeps_serving),
      TEST_ENTRY(test_batched_echo),
      TEST_ENTRY(test_batched_events_callback),
      TEST_ENTRY(test_batched_reads_into_lent_memory),
      TEST_ENTRY(test_end_comes_an_iteration_after_the_last_bytes),
      TEST_ENTRY(test_batched_end_comes_after_the_take_with_the_last_bytes),
      TEST_ENTRY(test_reuse_port_two_threads),
  };
  return run_tests(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
