/*
 * test_sockets.c: the socket operations (asyncio's sock_* methods) and
 * sendfile, on real sockets: Unix socket pairs, TCP and UDP on 127.0.0.1
 * and ::1, and a 100 MB file in a temp dir.
 */
#define _GNU_SOURCE
#include "test_util.h"
#include "test_net.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

/* A socket pair: [0] non-blocking, for the loop; [1] blocking, the peer.
 * Its buffers are pinned, so tests that must fill them do not depend on
 * the host's net.core.wmem_default. */
static void make_pair(int fds[2]) {
  int size = 65536;
  CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds), 0);
  CHECK_EQ(fcntl(fds[0], F_SETFL, fcntl(fds[0], F_GETFL) | O_NONBLOCK), 0);
  CHECK_EQ(setsockopt(fds[0], SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
  CHECK_EQ(setsockopt(fds[1], SOL_SOCKET, SO_SNDBUF, &size, sizeof size), 0);
}

static void close_pair(int fds[2]) {
  close(fds[0]);
  close(fds[1]);
}

/* Takes a bytes result: its text (the caller frees the bytes). */
static aios_bytes_t *await_bytes(aios_loop_t *loop, aios_future_t *future) {
  return (aios_bytes_t *)await_value(loop, future);
}

static long await_count(aios_loop_t *loop, aios_future_t *future) {
  return (long)(intptr_t)await_value(loop, future);
}

static void test_recv_waits_and_reads_in_order(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *first = NULL, *second = NULL, *third = NULL, *rest = NULL;
  aios_bytes_t *a, *b, *c, *d;
  int fds[2];
  make_pair(fds);
  /* Three readers wait on one socket: each is served in turn. */
  CHECK_EQ(aios_sock_recv(loop, fds[0], 1, &first), 0);
  CHECK_EQ(aios_sock_recv(loop, fds[0], 2, &second), 0);
  CHECK_EQ(aios_sock_recv(loop, fds[0], 100, &third), 0);
  run_once(loop);
  CHECK_EQ(aios_future_done(first), 0);
  CHECK_EQ(write(fds[1], "abcdef", 6), 6);
  a = await_bytes(loop, first);
  b = await_bytes(loop, second);
  c = await_bytes(loop, third);
  CHECK_STR_EQ((const char *)a->data, "a");
  CHECK_STR_EQ((const char *)b->data, "bc");
  CHECK_STR_EQ((const char *)c->data, "def");
  CHECK_EQ(c->length, 3);
  /* Data already there: read at once, without an iteration. */
  CHECK_EQ(write(fds[1], "xyz", 3), 3);
  CHECK_EQ(aios_sock_recv(loop, fds[0], 2, &rest), 0);
  CHECK_EQ(aios_future_done(rest), 1);
  d = await_bytes(loop, rest);
  CHECK_STR_EQ((const char *)d->data, "xy");
  aios_bytes_free(a);
  aios_bytes_free(b);
  aios_bytes_free(c);
  aios_bytes_free(d);
  /* EOF: empty bytes. */
  CHECK_EQ(aios_sock_recv(loop, fds[0], 10, &rest), 0);
  d = await_bytes(loop, rest);
  CHECK_STR_EQ((const char *)d->data, "z");
  aios_bytes_free(d);
  CHECK_EQ(shutdown(fds[1], SHUT_WR), 0);
  CHECK_EQ(aios_sock_recv(loop, fds[0], 10, &rest), 0);
  d = await_bytes(loop, rest);
  CHECK_EQ(d->length, 0);
  aios_bytes_free(d);
  close_pair(fds);
  close_loop(loop);
}

static void test_cancelled_read_loses_nothing(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *cancelled = NULL, *next = NULL, *kept = NULL;
  aios_bytes_t *bytes;
  char buffer[16];
  int fds[2];
  make_pair(fds);
  CHECK_EQ(aios_sock_recv_into(loop, fds[0], buffer, sizeof buffer, &cancelled), 0);
  CHECK_EQ(aios_sock_recv(loop, fds[0], 16, &kept), 0);
  run_once(loop);
  /* The first is cancelled before data comes: the second gets it all, and
   * the cancelled one never writes its buffer. */
  memset(buffer, '-', sizeof buffer);
  CHECK_EQ(aios_future_cancel(cancelled, NULL), 1);
  CHECK_EQ(write(fds[1], "hello", 5), 5);
  bytes = await_bytes(loop, kept);
  CHECK_STR_EQ((const char *)bytes->data, "hello");
  CHECK_EQ(buffer[0], '-');
  aios_bytes_free(bytes);
  CHECK_EQ(aios_future_cancelled(cancelled), 1);
  CHECK_EQ(aios_future_unref(cancelled), 0);
  /* Still usable. */
  CHECK_EQ(write(fds[1], "again", 5), 5);
  CHECK_EQ(aios_sock_recv_into(loop, fds[0], buffer, 3, &next), 0);
  CHECK_EQ(await_count(loop, next), 3);
  CHECK(memcmp(buffer, "aga", 3) == 0);
  close_pair(fds);
  close_loop(loop);
}

static void datagrams(int family, const char *host) {
  aios_loop_t *loop = make_loop();
  aios_future_t *future = NULL;
  aios_received_t *received;
  struct sockaddr_storage address, client_address;
  socklen_t length = sizeof address, client_length = sizeof client_address;
  char buffer[8];
  int server = socket(family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  int client = socket(family, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  memset(&address, 0, sizeof address);
  address.ss_family = (sa_family_t)family;
  if (family == AF_INET) {
    CHECK_EQ(inet_pton(AF_INET, host, &((struct sockaddr_in *)&address)->sin_addr), 1);
    length = sizeof(struct sockaddr_in);
  } else {
    CHECK_EQ(inet_pton(AF_INET6, host, &((struct sockaddr_in6 *)&address)->sin6_addr), 1);
    length = sizeof(struct sockaddr_in6);
  }
  CHECK_EQ(bind(server, (struct sockaddr *)&address, length), 0);
  CHECK_EQ(bind(client, (struct sockaddr *)&address, length), 0);
  CHECK_EQ(getsockname(server, (struct sockaddr *)&address, &length), 0);
  CHECK_EQ(getsockname(client, (struct sockaddr *)&client_address, &client_length), 0);
  /* recvfrom waits; sendto sends one datagram. */
  CHECK_EQ(aios_sock_recvfrom(loop, server, 100, &future), 0);
  run_once(loop);
  {
    aios_future_t *sent = NULL;
    CHECK_EQ(aios_sock_sendto(loop, client, "ping", 4, &address, length, &sent), 0);
    CHECK_EQ(await_count(loop, sent), 4);
  }
  received = (aios_received_t *)await_value(loop, future);
  CHECK_EQ(received->length, 4);
  CHECK_STR_EQ((const char *)received->data, "ping");
  CHECK_EQ(received->address_length, client_length);
  CHECK(memcmp(received->address, &client_address, client_length) == 0);
  aios_received_free(received);
  /* recvfrom_into a buffer smaller than the datagram: the rest is dropped,
   * as recvfrom(2) drops it. */
  CHECK_EQ(sendto(client, "datagram", 8, 0, (struct sockaddr *)&address, length), 8);
  CHECK_EQ(aios_sock_recvfrom_into(loop, server, buffer, 4, &future), 0);
  received = (aios_received_t *)await_value(loop, future);
  CHECK_EQ(received->length, 4);
  CHECK_PTR_EQ(received->data, (unsigned char *)buffer);
  CHECK(memcmp(buffer, "data", 4) == 0);
  CHECK_EQ(received->address_length, client_length);
  aios_received_free(received);
  /* A bad address. */
  CHECK_EQ(aios_sock_sendto(loop, client, "x", 1, &address, 1, &future), AIOS_EINVAL);
  close(server);
  close(client);
  close_loop(loop);
}

static void test_datagrams_ipv4(void) { datagrams(AF_INET, "127.0.0.1"); }

static void test_datagrams_ipv6(void) {
  if (!has_ipv6()) {
    printf("# skipped: no IPv6 on this machine\n");
    return;
  }
  datagrams(AF_INET6, "::1");
}

/* Reads a blocking descriptor to EOF on a thread: the count and a checksum. */
/* Fletcher's checksum: it sees the order of the bytes, cheaply. */
typedef struct {
  unsigned long long a, b;
} sum_t;

static void checksum(sum_t *sum, const unsigned char *data, size_t length) {
  size_t i;
  for (i = 0; i < length; i++) {
    sum->a += data[i];
    sum->b += sum->a;
  }
}

static int same_sum(sum_t x, sum_t y) { return x.a == y.a && x.b == y.b; }

typedef struct {
  int fd;
  size_t total;
  sum_t sum;
  double delay; /* seconds to wait before reading */
} drain_t;

static void *drain(void *arg) {
  drain_t *d = arg;
  static __thread unsigned char buffer[256 * 1024];
  ssize_t n;
  if (d->delay > 0) test_sleep(d->delay);
  while ((n = read(d->fd, buffer, sizeof buffer)) > 0) {
    checksum(&d->sum, buffer, (size_t)n);
    d->total += (size_t)n;
  }
  return NULL;
}

static void test_sendall_and_its_cancellation(void) {
  aios_loop_t *loop = make_loop();
  enum { SIZE = 8 << 20 };
  unsigned char *data = malloc(SIZE);
  aios_future_t *sent = NULL, *cancelled = NULL;
  aios_error_t *error = NULL;
  drain_t d;
  sum_t expected;
  pthread_t thread;
  long long went;
  size_t i;
  int fds[2];
  for (i = 0; i < SIZE; i++) data[i] = (unsigned char)(i * 7 + (i >> 12));
  /* All of it to a peer that reads late; the data is copied, so it may change. */
  make_pair(fds);
  memset(&d, 0, sizeof d);
  d.fd = fds[1];
  d.delay = 0.05;
  CHECK_EQ(pthread_create(&thread, NULL, drain, &d), 0);
  CHECK_EQ(aios_sock_sendall(loop, fds[0], data, SIZE, &sent), 0);
  CHECK_EQ(aios_future_done(sent), 0);
  CHECK_EQ(await_count(loop, sent), SIZE);
  CHECK_EQ(shutdown(fds[0], SHUT_WR), 0);
  CHECK_EQ(pthread_join(thread, NULL), 0);
  CHECK_EQ(d.total, SIZE);
  memset(&expected, 0, sizeof expected);
  checksum(&expected, data, SIZE);
  CHECK(same_sum(d.sum, expected));
  close_pair(fds);
  /* Nothing reads: cancelled, it says how much went out, and that is what
   * the peer then finds. */
  make_pair(fds);
  CHECK_EQ(aios_sock_sendall(loop, fds[0], data, SIZE, &cancelled), 0);
  run_once(loop);
  CHECK_EQ(aios_future_cancel(cancelled, "enough"), 1);
  CHECK_EQ(aios_future_error(cancelled, &error), 0);
  CHECK_EQ(aios_error_code(error), AIOS_ECANCELLED);
  CHECK_STR_EQ(aios_error_message(error), "enough");
  went = aios_error_bytes_sent(error);
  CHECK(went > 0 && went < SIZE);
  CHECK_EQ(aios_error_unref(error), 0);
  CHECK_EQ(aios_future_unref(cancelled), 0);
  run_once(loop);
  CHECK_EQ(shutdown(fds[0], SHUT_WR), 0);
  memset(&d, 0, sizeof d);
  d.fd = fds[1];
  drain(&d);
  CHECK_EQ((long long)d.total, went);
  memset(&expected, 0, sizeof expected);
  checksum(&expected, data, (size_t)went);
  CHECK(same_sum(d.sum, expected));
  /* Nothing to send: done at once. An error that is not a cancelled send. */
  CHECK_EQ(aios_sock_sendall(loop, fds[0], NULL, 0, &sent), 0);
  CHECK_EQ(aios_future_done(sent), 1);
  CHECK_EQ(await_count(loop, sent), 0);
  CHECK_EQ(aios_error_new(AIOS_ECANCELLED, NULL, &error), 0);
  CHECK_EQ(aios_error_bytes_sent(error), AIOS_EINVAL);
  CHECK_EQ(aios_error_unref(error), 0);
  /* A peer that went away. */
  close(fds[1]);
  CHECK_EQ(aios_sock_sendall(loop, fds[0], data, 16, &sent), 0);
  CHECK_EQ(await_status(loop, sent), -EPIPE);
  close(fds[0]);
  free(data);
  close_loop(loop);
}

static int listener(int family, struct sockaddr_storage *address, socklen_t *length) {
  int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  memset(address, 0, sizeof *address);
  address->ss_family = (sa_family_t)family;
  if (family == AF_INET) {
    ((struct sockaddr_in *)address)->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    *length = sizeof(struct sockaddr_in);
  } else {
    ((struct sockaddr_in6 *)address)->sin6_addr = in6addr_loopback;
    *length = sizeof(struct sockaddr_in6);
  }
  CHECK_EQ(bind(fd, (struct sockaddr *)address, *length), 0);
  CHECK_EQ(listen(fd, 8), 0);
  CHECK_EQ(getsockname(fd, (struct sockaddr *)address, length), 0);
  return fd;
}

static void connect_and_accept(int family) {
  aios_loop_t *loop = make_loop();
  struct sockaddr_storage address, peer;
  socklen_t length, peer_length = sizeof peer;
  aios_future_t *accepting = NULL, *connecting = NULL;
  void *value = NULL;
  aios_destructor_fn destructor = NULL;
  int server = listener(family, &address, &length);
  int client = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  int accepted;
  CHECK_EQ(aios_sock_accept(loop, server, &accepting), 0);
  run_once(loop);
  CHECK_EQ(aios_future_done(accepting), 0);
  CHECK_EQ(aios_sock_connect(loop, client, &address, length, &connecting), 0);
  CHECK_EQ(await_status(loop, connecting), 0);
  CHECK_EQ(aios_loop_run_until_complete(loop, accepting), 0);
  CHECK_EQ(aios_future_take_result(accepting, &value, &destructor), 0);
  CHECK_EQ(aios_future_unref(accepting), 0);
  accepted = (int)(intptr_t)value;
  CHECK(accepted > 2);
  CHECK(fcntl(accepted, F_GETFL) & O_NONBLOCK);
  CHECK(fcntl(accepted, F_GETFD) & FD_CLOEXEC);
  CHECK_EQ(getpeername(accepted, (struct sockaddr *)&peer, &peer_length), 0);
  CHECK_EQ(write(client, "hi", 2), 2);
  {
    aios_future_t *reading = NULL;
    aios_bytes_t *bytes;
    CHECK_EQ(aios_sock_recv(loop, accepted, 8, &reading), 0);
    bytes = await_bytes(loop, reading);
    CHECK_STR_EQ((const char *)bytes->data, "hi");
    aios_bytes_free(bytes);
  }
  close(accepted);
  close(client);
  /* An accepted connection nobody takes is closed with its future. */
  client = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
  CHECK_EQ(connect(client, (struct sockaddr *)&address, length), 0);
  CHECK_EQ(aios_sock_accept(loop, server, &accepting), 0);
  CHECK_EQ(aios_loop_run_until_complete(loop, accepting), 0);
  CHECK_EQ(aios_future_unref(accepting), 0);
  {
    char byte;
    CHECK_EQ(read(client, &byte, 1), 0); /* EOF: the server side is closed */
  }
  close(client);
  close(server);
  close_loop(loop);
}

static void test_connect_and_accept_ipv4(void) { connect_and_accept(AF_INET); }

static void test_connect_and_accept_ipv6(void) {
  if (!has_ipv6()) {
    printf("# skipped: no IPv6 on this machine\n");
    return;
  }
  connect_and_accept(AF_INET6);
}

static void test_connect_refused(void) {
  aios_loop_t *loop = make_loop();
  struct sockaddr_in address;
  aios_future_t *connecting = NULL;
  aios_error_t *error;
  int bound, client = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons((unsigned short)refusing_port(&bound));
  CHECK_EQ(aios_sock_connect(loop, client, &address, sizeof address, &connecting), 0);
  error = await_error(loop, connecting);
  CHECK_EQ(aios_error_code(error), -ECONNREFUSED);
  CHECK_EQ(aios_error_unref(error), 0);
  close(bound);
  close(client);
  close_loop(loop);
}

static void on_readable(void *arg) { (void)arg; }

static void test_bad_sockets(void) {
  live_counts_t start = live_snapshot();
  aios_loop_t *loop = make_loop();
  aios_future_t *future = NULL, *waiting = NULL;
  aios_transport_t *transport;
  aios_protocol_t protocol;
  char buffer[4];
  int fds[2], blocking[2], other[2];
  make_pair(fds);
  CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM, 0, blocking), 0);
  CHECK_EQ(aios_sock_recv(loop, blocking[0], 4, &future), AIOS_EINVAL); /* a blocking socket */
  CHECK_EQ(aios_sock_recv(loop, -1, 4, &future), -EBADF);
  CHECK_EQ(aios_sock_recv(loop, 1 << 30, 4, &future), -EBADF);
  CHECK_EQ(aios_sock_recv(loop, fds[0], 4, NULL), AIOS_EINVAL);
  CHECK_EQ(aios_sock_recv(NULL, fds[0], 4, &future), AIOS_EINVAL);
  CHECK_EQ(aios_sock_recv(loop, fds[0], (size_t)-1, &future), AIOS_EINVAL);
  CHECK_EQ(aios_sock_recv_into(loop, fds[0], NULL, 4, &future), AIOS_EINVAL);
  CHECK_EQ(aios_sock_sendall(loop, fds[0], NULL, 4, &future), AIOS_EINVAL);
  CHECK_EQ(aios_sock_connect(loop, fds[0], NULL, 0, &future), AIOS_EINVAL);
  CHECK_EQ(aios_sock_sendfile(loop, fds[0], 0, 0, 0, 1, &future), AIOS_EINVAL); /* count 0 */
  CHECK_EQ(aios_sock_sendfile(loop, fds[0], 0, -1, -1, 1, &future), AIOS_EINVAL); /* offset -1 */
  CHECK_EQ(aios_sock_sendfile(loop, fds[0], 0, 0, -1, 7, &future), AIOS_EINVAL); /* fallback 7 */
  {
    /* A descriptor that is no socket is no SOCK_STREAM socket. */
    int pipe_fds[2];
    CHECK_EQ(pipe2(pipe_fds, O_NONBLOCK), 0);
    CHECK_EQ(aios_sock_sendfile(loop, pipe_fds[1], 0, 0, -1, 1, &future), AIOS_EINVAL);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
  }
  /* A huge read allocates what the socket holds, not what is asked for. */
  CHECK_EQ(write(fds[1], "big", 3), 3);
  CHECK_EQ(aios_sock_recv(loop, fds[0], (size_t)1 << 40, &future), 0);
  {
    aios_bytes_t *bytes = await_bytes(loop, future);
    CHECK_EQ(bytes->length, 3);
    aios_bytes_free(bytes);
  }
  /* A transport's socket is refused. */
  CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, other), 0);
  memset(&protocol, 0, sizeof protocol);
  protocol.size = sizeof protocol;
  CHECK_EQ(aios_connect_accepted_socket(loop, &protocol, other[0], &future), 0);
  transport = (aios_transport_t *)await_value(loop, future);
  CHECK_EQ(aios_sock_recv(loop, other[0], 4, &future), AIOS_EINVAL);
  CHECK_EQ(aios_transport_close(transport), 0);
  run_once(loop);
  CHECK_EQ(aios_transport_unref(transport), 0);
  close(other[1]);
  /* Closed while an operation waits: it fails with -EBADF. */
  CHECK_EQ(aios_sock_recv_into(loop, fds[0], buffer, sizeof buffer, &waiting), 0);
  close(fds[0]);
  close(fds[1]);
  make_pair(fds); /* the same numbers, other sockets */
  CHECK_EQ(write(fds[1], "x", 1), 1);
  CHECK_EQ(aios_loop_add_reader(loop, fds[0], on_readable, NULL, NULL), 0);
  CHECK_EQ(await_status(loop, waiting), -EBADF);
  CHECK_EQ(aios_loop_remove_reader(loop, fds[0]), 1);
  /* The loop closed under a waiting operation: it fails. */
  CHECK_EQ(aios_sock_recv(loop, fds[0], 4, &future), 0);
  {
    aios_bytes_t *bytes = await_bytes(loop, future);
    CHECK_STR_EQ((const char *)bytes->data, "x");
    aios_bytes_free(bytes);
  }
  CHECK_EQ(aios_sock_recv(loop, fds[0], 4, &waiting), 0);
  CHECK_EQ(aios_loop_close(loop), 0);
  CHECK_EQ(aios_future_done(waiting), 1);
  CHECK_EQ(aios_future_result(waiting, NULL), AIOS_ECLOSED);
  CHECK_EQ(aios_future_unref(waiting), 0);
  CHECK_EQ(aios_sock_recv(loop, fds[0], 4, &future), AIOS_ECLOSED);
  CHECK_EQ(aios_loop_unref(loop), 0);
  close_pair(fds);
  close_pair(blocking);
  CHECK_LIVE_BACK_TO(&start);
}

/* sendfile */

/* The file the issue names is 100 MB; the other cases need less. Under
 * valgrind, whose every checked byte costs tens of instructions, 8 MiB take
 * the same paths (many sendfile calls, many fallback reads) in seconds. */
enum { FILE_SIZE = 16 << 20 };
#define BIG_FILE (under_valgrind() ? 8 << 20 : 100 << 20)

/* A temp file of `size` patterned bytes (unlinked: it goes with its
 * descriptor). */
static int patterned_file(size_t size) {
  char path[] = "/tmp/aios-sendfile-XXXXXX";
  static unsigned char block[1 << 20];
  int fd = mkstemp(path);
  size_t at, i;
  CHECK(fd >= 0);
  CHECK_EQ(unlink(path), 0);
  for (at = 0; at < size; at += sizeof block) {
    for (i = 0; i < sizeof block; i++) block[i] = (unsigned char)((at + i) * 2654435761u >> 13);
    CHECK_EQ(write(fd, block, sizeof block), (ssize_t)sizeof block);
  }
  return fd;
}

/* Adds `count` bytes of the file from `offset` to *sum. */
static void file_checksum(sum_t *sum, int fd, off_t offset, size_t count) {
  static unsigned char block[1 << 16];
  size_t done = 0;
  while (done < count) {
    size_t want = count - done < sizeof block ? count - done : sizeof block;
    ssize_t n = pread(fd, block, want, offset + (off_t)done);
    CHECK(n > 0);
    checksum(sum, block, (size_t)n);
    done += (size_t)n;
  }
}

static sum_t file_sum(int fd, off_t offset, size_t count) {
  sum_t sum = {0, 0};
  file_checksum(&sum, fd, offset, count);
  return sum;
}

/* Sends `count` bytes of `file` from `offset` over a socket pair with
 * aios_sock_sendfile; the peer reads on a thread. */
static void sock_sendfile_case(aios_loop_t *loop, int file, long long offset, long long count, int fallback,
                               size_t expected_total) {
  sum_t expected_sum = file_sum(file, (off_t)offset, expected_total);
  aios_future_t *sending = NULL;
  drain_t d;
  pthread_t thread;
  int fds[2];
  make_pair(fds);
  memset(&d, 0, sizeof d);
  d.fd = fds[1];
  CHECK_EQ(pthread_create(&thread, NULL, drain, &d), 0);
  CHECK_EQ(lseek(file, 12345, SEEK_SET), 12345); /* the offset argument counts, not this */
  CHECK_EQ(aios_sock_sendfile(loop, fds[0], file, offset, count, fallback, &sending), 0);
  CHECK_EQ(await_count(loop, sending), (long)expected_total);
  CHECK_EQ(shutdown(fds[0], SHUT_WR), 0);
  CHECK_EQ(pthread_join(thread, NULL), 0);
  CHECK_EQ(d.total, expected_total);
  CHECK(same_sum(d.sum, expected_sum));
  /* The file's offset is left after the last byte sent. */
  CHECK_EQ(lseek(file, 0, SEEK_CUR), (off_t)(offset + (long long)expected_total));
  close_pair(fds);
}

static void test_sock_sendfile_native_and_fallback(void) {
  aios_loop_t *loop = make_loop();
  int file = patterned_file(BIG_FILE);
  sock_sendfile_case(loop, file, 0, -1, AIOS_SENDFILE_FALLBACK_REFUSED, BIG_FILE);
  sock_sendfile_case(loop, file, 0, -1, AIOS_SENDFILE_FALLBACK_ALWAYS, BIG_FILE);
  /* A part of it, both ways. */
  sock_sendfile_case(loop, file, 1000, 300000, AIOS_SENDFILE_FALLBACK_ALLOWED, 300000);
  sock_sendfile_case(loop, file, 1000, 300000, AIOS_SENDFILE_FALLBACK_ALWAYS, 300000);
  /* Past the end: what there is. */
  sock_sendfile_case(loop, file, BIG_FILE - 10, 100, AIOS_SENDFILE_FALLBACK_ALLOWED, 10);
  close(file);
  close_loop(loop);
}

static void test_sock_sendfile_errors_and_cancel(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *sending = NULL;
  aios_error_t *error;
  long long went;
  int file = patterned_file(FILE_SIZE), fds[2], pipe_fds[2], udp;
  drain_t d;
  make_pair(fds);
  /* Not a regular file: refused without the fallback, read with it. */
  CHECK_EQ(pipe(pipe_fds), 0);
  CHECK_EQ(aios_sock_sendfile(loop, fds[0], pipe_fds[0], 0, -1, AIOS_SENDFILE_FALLBACK_REFUSED, &sending),
           AIOS_ENOSENDFILE);
  CHECK_EQ(aios_sock_sendfile(loop, fds[0], pipe_fds[0], 0, -1, AIOS_SENDFILE_FALLBACK_ALLOWED, &sending), 0);
  CHECK_EQ(await_status(loop, sending), -ESPIPE); /* the fallback reads at an offset */
  close(pipe_fds[0]);
  close(pipe_fds[1]);
  /* Not a stream socket. */
  udp = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
  CHECK_EQ(aios_sock_sendfile(loop, udp, file, 0, -1, AIOS_SENDFILE_FALLBACK_ALLOWED, &sending), AIOS_EINVAL);
  close(udp);
  CHECK_EQ(aios_sock_sendfile(loop, fds[0], -1, 0, -1, AIOS_SENDFILE_FALLBACK_ALLOWED, &sending), -EBADF);
  /* Cancelled: how much went, and the file's offset after it. */
  CHECK_EQ(aios_sock_sendfile(loop, fds[0], file, 100, -1, AIOS_SENDFILE_FALLBACK_REFUSED, &sending), 0);
  run_once(loop);
  CHECK_EQ(aios_future_cancel(sending, NULL), 1);
  CHECK_EQ(aios_future_error(sending, &error), 0);
  went = aios_error_bytes_sent(error);
  CHECK(went > 0 && went < FILE_SIZE);
  CHECK_EQ(aios_error_unref(error), 0);
  CHECK_EQ(aios_future_unref(sending), 0);
  CHECK_EQ(lseek(file, 0, SEEK_CUR), (off_t)(100 + went));
  CHECK_EQ(shutdown(fds[0], SHUT_WR), 0);
  memset(&d, 0, sizeof d);
  d.fd = fds[1];
  drain(&d);
  CHECK_EQ((long long)d.total, went);
  CHECK(same_sum(d.sum, file_sum(file, 100, (size_t)went)));
  close_pair(fds);
  /* The peer goes away in the middle. */
  make_pair(fds);
  CHECK_EQ(aios_sock_sendfile(loop, fds[0], file, 0, -1, AIOS_SENDFILE_FALLBACK_REFUSED, &sending), 0);
  run_once(loop);
  close(fds[1]);
  CHECK_EQ(await_status(loop, sending), -EPIPE);
  close(fds[0]);
  close(file);
  close_loop(loop);
}

typedef struct {
  aios_transport_t *transport;
  int lost;
} sf_conn_t;

static void sf_made(aios_transport_t *t, void *arg) { ((sf_conn_t *)arg)->transport = t; }
static void sf_lost(aios_transport_t *t, aios_error_t *e, void *arg) {
  (void)t;
  (void)e;
  ((sf_conn_t *)arg)->lost++;
}

static aios_transport_t *pair_transport(aios_loop_t *loop, int fd, sf_conn_t *conn) {
  aios_protocol_t protocol;
  aios_future_t *future = NULL;
  memset(&protocol, 0, sizeof protocol);
  memset(conn, 0, sizeof *conn);
  protocol.size = sizeof protocol;
  protocol.arg = conn;
  protocol.connection_made = sf_made;
  protocol.connection_lost = sf_lost;
  CHECK_EQ(aios_connect_accepted_socket(loop, &protocol, fd, &future), 0);
  return (aios_transport_t *)await_value(loop, future);
}

static void transport_sendfile(int fallback) {
  aios_loop_t *loop = make_loop();
  aios_future_t *sending = NULL, *second = NULL;
  aios_transport_t *transport;
  sf_conn_t conn;
  sum_t expected = {0, 0};
  int file = patterned_file(FILE_SIZE), fds[2];
  drain_t d;
  pthread_t thread;
  CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  CHECK_EQ(fcntl(fds[1], F_SETFL, 0), 0);
  transport = pair_transport(loop, fds[0], &conn);
  memset(&d, 0, sizeof d);
  d.fd = fds[1];
  d.delay = 0.05; /* what is written first waits in the buffer */
  CHECK_EQ(pthread_create(&thread, NULL, drain, &d), 0);
  {
    static char head[1 << 20];
    memset(head, 'h', sizeof head);
    CHECK_EQ(aios_transport_write(transport, head, sizeof head), 0);
    CHECK(aios_transport_get_write_buffer_size(transport) > 0);
    checksum(&expected, (unsigned char *)head, sizeof head);
  }
  CHECK_EQ(aios_transport_sendfile(transport, file, 0, -1, fallback, &sending), 0);
  CHECK_EQ(aios_transport_write(transport, "x", 1), AIOS_EINVAL); /* refused while it runs */
  CHECK_EQ(aios_transport_sendfile(transport, file, 0, -1, fallback, &second), AIOS_EINVAL);
  CHECK_EQ(await_count(loop, sending), FILE_SIZE);
  file_checksum(&expected, file, 0, FILE_SIZE);
  CHECK_EQ(aios_transport_write(transport, "tail", 4), 0);
  checksum(&expected, (const unsigned char *)"tail", 4);
  CHECK_EQ(aios_transport_close(transport), 0);
  while (conn.lost == 0) run_once(loop);
  CHECK_EQ(pthread_join(thread, NULL), 0);
  CHECK_EQ(d.total, (1 << 20) + FILE_SIZE + 4);
  CHECK(same_sum(d.sum, expected));
  CHECK_EQ(lseek(file, 0, SEEK_CUR), FILE_SIZE);
  CHECK_EQ(aios_transport_unref(transport), 0);
  close(fds[1]);
  close(file);
  close_loop(loop);
}

static void test_transport_sendfile_native(void) { transport_sendfile(AIOS_SENDFILE_FALLBACK_REFUSED); }
static void test_transport_sendfile_fallback(void) { transport_sendfile(AIOS_SENDFILE_FALLBACK_ALWAYS); }

static void test_transport_closed_during_sendfile(void) {
  aios_loop_t *loop = make_loop();
  aios_future_t *sending = NULL;
  aios_transport_t *transport;
  sf_conn_t conn;
  int file = patterned_file(FILE_SIZE), fds[2];
  char byte;
  CHECK_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, fds), 0);
  transport = pair_transport(loop, fds[0], &conn);
  CHECK_EQ(aios_transport_sendfile(transport, file, 0, -1, AIOS_SENDFILE_FALLBACK_ALLOWED, &sending), 0);
  run_once(loop);
  CHECK_EQ(aios_future_done(sending), 0);
  CHECK_EQ(aios_transport_close(transport), 0);
  CHECK_EQ(await_status(loop, sending), -ENOTCONN);
  while (conn.lost == 0) run_once(loop);
  /* The socket is really closed: the peer reads to EOF. */
  CHECK_EQ(fcntl(fds[1], F_SETFL, 0), 0);
  while (read(fds[1], &byte, 1) == 1) {
  }
  CHECK_EQ(read(fds[1], &byte, 1), 0);
  /* A closing transport is refused. */
  CHECK_EQ(aios_transport_sendfile(transport, file, 0, -1, AIOS_SENDFILE_FALLBACK_ALLOWED, &sending), AIOS_EINVAL);
  CHECK_EQ(aios_transport_unref(transport), 0);
  close(fds[1]);
  close(file);
  close_loop(loop);
}

int main(int argc, char **argv) {
  static const test_entry_t tests[] = {
      TEST_ENTRY(test_recv_waits_and_reads_in_order),
      TEST_ENTRY(test_cancelled_read_loses_nothing),
      TEST_ENTRY(test_datagrams_ipv4),
      TEST_ENTRY(test_datagrams_ipv6),
      TEST_ENTRY(test_sendall_and_its_cancellation),
      TEST_ENTRY(test_connect_and_accept_ipv4),
      TEST_ENTRY(test_connect_and_accept_ipv6),
      TEST_ENTRY(test_connect_refused),
      TEST_ENTRY(test_bad_sockets),
      TEST_ENTRY(test_sock_sendfile_native_and_fallback),
      TEST_ENTRY(test_sock_sendfile_errors_and_cancel),
      TEST_ENTRY(test_transport_sendfile_native),
      TEST_ENTRY(test_transport_sendfile_fallback),
      TEST_ENTRY(test_transport_closed_during_sendfile),
  };
  return run_tests(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
