/*
 * test_net.h: helpers of the network C tests (test_network.c,
 * test_streams.c). Include it after test_util.h.
 */
#ifndef AIOS_TEST_NET_H
#define AIOS_TEST_NET_H

#include "test_util.h"

#include <netinet/in.h>
#include <sys/socket.h>

/* Runs the loop until `future` is done, then takes its result (the caller
 * owns it) and drops the future. */
static inline void *await_value(aios_loop_t *loop, aios_future_t *future) {
  void *value = NULL;
  aios_destructor_fn destructor = NULL;
  CHECK_EQ(aios_loop_run_until_complete(loop, future), 0);
  CHECK_EQ(aios_future_take_result(future, &value, &destructor), 0);
  CHECK_EQ(aios_future_unref(future), 0);
  return value;
}

/* Runs the loop until `future` is done; returns its status code. */
static inline int await_status(aios_loop_t *loop, aios_future_t *future) {
  int rc = aios_loop_run_until_complete(loop, future);
  CHECK_EQ(aios_future_unref(future), 0);
  return rc;
}

/* One iteration that may wait up to a millisecond for I/O. */
static inline void tick(aios_loop_t *loop) {
  aios_future_t *f = NULL;
  CHECK_EQ(aios_sleep(loop, 0.001, NULL, NULL, &f), 0);
  CHECK_EQ(await_status(loop, f), 0);
}

/* Ticks until `condition` holds, for at most 10 seconds: bounded by time,
 * not by a count of iterations, which a slow machine can run through
 * before the kernel has done its part. */
#define TICK_UNTIL(loop, condition)                                            \
  do {                                                                         \
    double tick_end_ = test_now() + 10;                                        \
    while (!(condition)) {                                                     \
      CHECK(test_now() < tick_end_);                                           \
      tick(loop);                                                              \
    }                                                                          \
  } while (0)

/* Ticks until *counter reaches `value`. */
static inline void tick_until(aios_loop_t *loop, const int *counter, int value) {
  TICK_UNTIL(loop, *counter >= value);
}

/* Runs the loop until `future` fails, and gives its error. */
static inline aios_error_t *await_error(aios_loop_t *loop, aios_future_t *future) {
  aios_error_t *error = NULL;
  CHECK(aios_loop_run_until_complete(loop, future) != 0);
  CHECK_EQ(aios_future_error(future, &error), 0);
  CHECK(error != NULL);
  CHECK_EQ(aios_future_unref(future), 0);
  return error;
}

/* The port of a server's `index`th socket. */
static inline int server_port_at(aios_server_t *server, size_t index) {
  struct sockaddr_storage address;
  unsigned int length = sizeof address;
  CHECK_EQ(aios_server_get_sockname(server, index, &address, &length), 0);
  if (address.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&address)->sin_port);
  CHECK_EQ(address.ss_family, AF_INET6);
  return ntohs(((struct sockaddr_in6 *)&address)->sin6_port);
}

/* Closes a server, waits until it is closed, drops the reference. */
static inline void close_server(aios_loop_t *loop, aios_server_t *server) {
  aios_future_t *closed = NULL;
  CHECK_EQ(aios_server_close(server), 0);
  CHECK_EQ(aios_server_wait_closed(server, &closed), 0);
  CHECK_EQ(await_status(loop, closed), 0);
  CHECK_EQ(aios_server_unref(server), 0);
}

/* A socket bound on 127.0.0.1 in *fd, listening with `backlog` when it is
 * positive; its port. The caller closes *fd. */
static inline int loopback_port(int *fd, int backlog) {
  struct sockaddr_in address;
  socklen_t length = sizeof address;
  *fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  CHECK_EQ(bind(*fd, (struct sockaddr *)&address, sizeof address), 0);
  if (backlog > 0)
    CHECK_EQ(listen(*fd, backlog), 0);
  CHECK_EQ(getsockname(*fd, (struct sockaddr *)&address, &length), 0);
  return ntohs(address.sin_port);
}

/* A port on 127.0.0.1 that is bound but does not listen: connecting to it
 * is refused. The caller closes *fd. */
static inline int refusing_port(int *fd) { return loopback_port(fd, 0); }

/* Whether the machine can bind ::1. */
static inline int has_ipv6(void) {
  int fd = socket(AF_INET6, SOCK_STREAM, 0);
  struct sockaddr_in6 address;
  int ok;
  if (fd < 0) return 0;
  memset(&address, 0, sizeof address);
  address.sin6_family = AF_INET6;
  address.sin6_addr = in6addr_loopback;
  ok = bind(fd, (struct sockaddr *)&address, sizeof address) == 0;
  close(fd);
  return ok;
}

#endif /* AIOS_TEST_NET_H */
