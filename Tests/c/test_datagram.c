/*
 * test_datagram.c: datagram endpoints (UDP on 127.0.0.1 and ::1, Unix
 * datagram sockets in a temp dir) and descriptor watchers, on real sockets.
 */
#define _GNU_SOURCE
#include "test_util.h"
#include "test_net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/un.h>
#include <unistd.h>

typedef struct {
  aios_loop_t *loop;
  aios_datagram_t *datagram;
  int echo, received, errors, last_error, lost, destroyed, stop_after;
  char last[64];
  struct sockaddr_storage from;
  unsigned int from_length;
} endpoint_t;

static void ep_made(aios_datagram_t *d, void *arg) { ((endpoint_t *)arg)->datagram = d; }
static void ep_received(aios_datagram_t *d, const void *data, size_t length, const void *address,
                        unsigned int address_length, void *arg) {
  endpoint_t *e = arg;
  e->received++;
  snprintf(e->last, sizeof e->last, "%.*s", (int)length, (const char *)data);
  memcpy(&e->from, address, address_length < sizeof e->from ? address_length : sizeof e->from);
  e->from_length = address_length;
  if (e->echo) CHECK_EQ(aios_datagram_sendto(d, data, length, address, address_length), 0);
  if (e->stop_after && e->received == e->stop_after) CHECK_EQ(aios_loop_stop(e->loop), 0);
}
static void ep_error(aios_datagram_t *d, aios_error_t *error, void *arg) {
  endpoint_t *e = arg;
  (void)d;
  e->errors++;
  e->last_error = aios_error_code(error);
  CHECK_EQ(aios_loop_stop(e->loop), 0);
}
static void ep_lost(aios_datagram_t *d, aios_error_t *error, void *arg) {
  (void)d;
  CHECK(error == NULL);
  ((endpoint_t *)arg)->lost++;
}
static void ep_destroy(void *arg) { ((endpoint_t *)arg)->destroyed++; }

static aios_datagram_protocol_t ep_protocol(endpoint_t *e, aios_loop_t *loop) {
  aios_datagram_protocol_t p;
  memset(e, 0, sizeof *e);
  e->loop = loop;
  memset(&p, 0, sizeof p);
  p.size = sizeof p;
  p.arg = e;
  p.connection_made = ep_made;
  p.datagram_received = ep_received;
  p.error_received = ep_error;
  p.connection_lost = ep_lost;
  p.destroy = ep_destroy;
  return p;
}

static int datagram_port(aios_datagram_t *d) {
  struct sockaddr_storage address;
  unsigned int length = sizeof address;
  CHECK_EQ(aios_datagram_get_sockname(d, &address, &length), 0);
  if (address.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&address)->sin_port);
  return ntohs(((struct sockaddr_in6 *)&address)->sin6_port);
}

static aios_datagram_t *endpoint(aios_loop_t *loop, const aios_datagram_protocol_t *p, const char *local_host,
                                 int local_port, const char *remote_host, int remote_port) {
  aios_future_t *future = NULL;
  CHECK_EQ(aios_create_datagram_endpoint(loop, p, local_host, local_port, remote_host, remote_port, NULL, &future), 0);
  return (aios_datagram_t *)await_value(loop, future);
}

static void close_endpoint(aios_loop_t *loop, aios_datagram_t *d, endpoint_t *e) {
  int i;
  CHECK_EQ(aios_datagram_close(d), 0);
  for (i = 0; i < 10 && e->lost == 0; i++) run_once(loop);
  CHECK_EQ(e->lost, 1);
  CHECK_EQ(e->destroyed, 1);
  CHECK_EQ(aios_datagram_unref(d), 0);
}

static void round_trip(const char *host) {
  aios_loop_t *loop = make_loop();
  endpoint_t server, client;
  aios_datagram_protocol_t sp = ep_protocol(&server, loop), cp = ep_protocol(&client, loop);
  aios_datagram_t *s, *c;
  server.echo = 1;
  s = endpoint(loop, &sp, host, 0, NULL, -1);
  c = endpoint(loop, &cp, NULL, -1, host, datagram_port(s));
  client.stop_after = 1;
  CHECK_EQ(aios_datagram_sendto(c, "ping", 4, NULL, 0), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_STR_EQ(client.last, "ping");
  CHECK_EQ(server.received, 1);
  CHECK_EQ(aios_datagram_sendto(c, "x", 1, &server.from, server.from_length), AIOS_EINVAL); /* another address */
  close_endpoint(loop, c, &client);
  close_endpoint(loop, s, &server);
  close_loop(loop);
}

static void test_udp_round_trip(void) { round_trip("127.0.0.1"); }

static void test_udp_ipv6(void) {
  if (!has_ipv6()) {
    printf("# skipped: no IPv6 on this machine\n");
    return;
  }
  round_trip("::1");
}

static void test_unix_datagrams(void) {
  aios_loop_t *loop = make_loop();
  char dir[] = "/tmp/aios-dgram-XXXXXX", server_path[64], client_path[64];
  endpoint_t server, client;
  aios_datagram_protocol_t sp = ep_protocol(&server, loop), cp = ep_protocol(&client, loop);
  aios_future_t *future = NULL;
  aios_datagram_t *s, *c;
  CHECK(mkdtemp(dir) != NULL);
  snprintf(server_path, sizeof server_path, "%s/server", dir);
  snprintf(client_path, sizeof client_path, "%s/client", dir);
  server.echo = 1;
  CHECK_EQ(aios_create_unix_datagram_endpoint(loop, &sp, server_path, NULL, &future), 0);
  s = (aios_datagram_t *)await_value(loop, future);
  CHECK_EQ(aios_create_unix_datagram_endpoint(loop, &cp, client_path, server_path, &future), 0);
  c = (aios_datagram_t *)await_value(loop, future);
  client.stop_after = 1;
  CHECK_EQ(aios_datagram_sendto(c, "unix", 4, NULL, 0), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_STR_EQ(client.last, "unix");
  CHECK_STR_EQ(((struct sockaddr_un *)&server.from)->sun_path, client_path);
  close_endpoint(loop, c, &client);
  close_endpoint(loop, s, &server);
  unlink(server_path);
  unlink(client_path);
  rmdir(dir);
  close_loop(loop);
}

static void test_icmp_error_and_broadcast(void) {
  aios_loop_t *loop = make_loop();
  endpoint_t probe, client, plain;
  aios_datagram_protocol_t pp = ep_protocol(&probe, loop), cp = ep_protocol(&client, loop),
                           bp = ep_protocol(&plain, loop);
  aios_datagram_t *p, *c, *b;
  struct sockaddr_in everyone;
  int port;
  /* A port nothing listens on. */
  p = endpoint(loop, &pp, "127.0.0.1", 0, NULL, -1);
  port = datagram_port(p);
  close_endpoint(loop, p, &probe);
  c = endpoint(loop, &cp, NULL, -1, "127.0.0.1", port);
  CHECK_EQ(aios_datagram_sendto(c, "anyone?", 7, NULL, 0), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_EQ(client.last_error, -ECONNREFUSED);
  CHECK_EQ(aios_datagram_is_closing(c), 0);
  close_endpoint(loop, c, &client);
  /* Broadcast without allow_broadcast: EACCES through error_received. */
  b = endpoint(loop, &bp, "0.0.0.0", 0, NULL, -1);
  memset(&everyone, 0, sizeof everyone);
  everyone.sin_family = AF_INET;
  everyone.sin_port = htons(9);
  everyone.sin_addr.s_addr = htonl(INADDR_BROADCAST);
  CHECK_EQ(aios_datagram_sendto(b, "all", 3, &everyone, sizeof everyone), 0);
  CHECK_EQ(plain.last_error, -EACCES);
  CHECK_EQ(aios_datagram_sendto(b, "x", 1, NULL, 0), -EDESTADDRREQ);
  close_endpoint(loop, b, &plain);
  close_loop(loop);
}

static void test_many_datagrams_and_bad_arguments(void) {
  aios_loop_t *loop = make_loop();
  endpoint_t server, client;
  aios_datagram_protocol_t sp = ep_protocol(&server, loop), cp = ep_protocol(&client, loop);
  aios_datagram_t *s, *c;
  aios_future_t *future = NULL;
  aios_datagram_options_t options;
  int i;
  s = endpoint(loop, &sp, "127.0.0.1", 0, NULL, -1);
  c = endpoint(loop, &cp, NULL, -1, "127.0.0.1", datagram_port(s));
  server.stop_after = 100;
  for (i = 0; i < 100; i++) CHECK_EQ(aios_datagram_sendto(c, "d", 1, NULL, 0), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_EQ(server.received, 100);
  CHECK(aios_datagram_get_fd(c) >= 0);
  close_endpoint(loop, c, &client);
  CHECK_EQ(aios_datagram_get_fd(c), AIOS_EBADHANDLE);
  close_endpoint(loop, s, &server);
  /* Bad arguments: the protocol's argument stays the caller's. */
  cp = ep_protocol(&client, loop);
  CHECK_EQ(aios_create_datagram_endpoint(loop, &cp, NULL, -1, NULL, -1, NULL, &future), AIOS_EINVAL);
  CHECK_EQ(aios_create_datagram_endpoint(loop, &cp, "127.0.0.1", 70000, NULL, -1, NULL, &future), AIOS_EINVAL);
  memset(&options, 0, sizeof options);
  options.size = 4;
  CHECK_EQ(aios_create_datagram_endpoint(loop, &cp, "127.0.0.1", 0, NULL, -1, &options, &future), AIOS_EINVAL);
  CHECK_EQ(aios_create_datagram_endpoint(loop, NULL, "127.0.0.1", 0, NULL, -1, NULL, &future), AIOS_EINVAL);
  CHECK_EQ(aios_datagram_from_socket(loop, &cp, -1, &future), -EBADF);
  {
    int stream = socket(AF_INET, SOCK_STREAM, 0);
    CHECK_EQ(aios_datagram_from_socket(loop, &cp, stream, &future), AIOS_EINVAL);
    close(stream);
  }
  CHECK_EQ(client.destroyed, 0);
  close_loop(loop);
}

static int reads, writes, destroyed_args;
static int watched_fd;
static void on_readable(void *arg) {
  char byte;
  (void)arg;
  reads++;
  CHECK_EQ(read(watched_fd, &byte, 1), 1);
}
static void on_writable(void *arg) {
  writes++;
  CHECK_EQ(aios_loop_remove_writer((aios_loop_t *)arg, watched_fd), 1); /* from its own callback */
}
static void count_destroy(void *arg) {
  (void)arg;
  destroyed_args++;
}

static void test_watchers(void) {
  aios_loop_t *loop = make_loop();
  int pair[2], other[2], file, i;
  endpoint_t e;
  aios_datagram_protocol_t p = ep_protocol(&e, loop);
  aios_datagram_t *d;
  reads = writes = destroyed_args = 0;
  CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, pair), 0);
  watched_fd = pair[0];
  CHECK_EQ(aios_loop_add_reader(loop, pair[0], on_readable, NULL, count_destroy), 0);
  CHECK_EQ(aios_loop_add_reader(loop, pair[0], on_readable, NULL, count_destroy), 0); /* replaces */
  CHECK_EQ(destroyed_args, 1);
  CHECK_EQ(write(pair[1], "ab", 2), 2);
  for (i = 0; i < 5; i++) run_once(loop);
  CHECK_EQ(reads, 2);
  CHECK_EQ(aios_loop_add_writer(loop, pair[0], on_writable, loop, count_destroy), 0);
  for (i = 0; i < 3; i++) run_once(loop);
  CHECK_EQ(writes, 1);
  CHECK_EQ(destroyed_args, 2);
  CHECK_EQ(aios_loop_remove_writer(loop, pair[0]), 0);
  CHECK_EQ(aios_loop_remove_reader(loop, pair[0]), 1);
  CHECK_EQ(destroyed_args, 3);
  CHECK_EQ(aios_loop_remove_reader(loop, pair[0]), 0);
  /* Errors. */
  CHECK_EQ(aios_loop_add_reader(loop, pair[0], NULL, NULL, NULL), AIOS_EINVAL);
  CHECK_EQ(aios_loop_add_reader(loop, -1, on_readable, NULL, count_destroy), -EBADF);
  file = open("/etc/hostname", O_RDONLY);
  CHECK_EQ(aios_loop_add_reader(loop, file, on_readable, NULL, count_destroy), -EPERM);
  close(file);
  CHECK_EQ(destroyed_args, 3);
  d = endpoint(loop, &p, "127.0.0.1", 0, NULL, -1);
  CHECK_EQ(aios_loop_add_reader(loop, aios_datagram_get_fd(d), on_readable, NULL, NULL), AIOS_EINVAL);
  close_endpoint(loop, d, &e);
  /* Closed under its watcher: survived, and its argument goes. */
  CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, other), 0);
  CHECK_EQ(aios_loop_add_reader(loop, other[0], on_readable, NULL, count_destroy), 0);
  close(other[0]);
  close(other[1]);
  for (i = 0; i < 3; i++) run_once(loop);
  aios_loop_remove_reader(loop, other[0]);
  CHECK_EQ(destroyed_args, 4);
  /* One left for the loop's close. */
  CHECK_EQ(aios_loop_add_reader(loop, pair[0], on_readable, NULL, count_destroy), 0);
  close_loop(loop);
  CHECK_EQ(destroyed_args, 5);
  close(pair[0]);
  close(pair[1]);
}

int main(int argc, char **argv) {
  static const test_entry_t tests[] = {
      TEST_ENTRY(test_udp_round_trip),
      TEST_ENTRY(test_udp_ipv6),
      TEST_ENTRY(test_unix_datagrams),
      TEST_ENTRY(test_icmp_error_and_broadcast),
      TEST_ENTRY(test_many_datagrams_and_bad_arguments),
      TEST_ENTRY(test_watchers),
  };
  return run_tests(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
