/* stop_on_signal.h: SIGINT and SIGTERM as a callback on the loop, for the
 * examples. The signal handler only writes a byte to a socket pair; the other
 * end is a transport of the loop (aios_connect_accepted_socket), so the
 * callback runs as ordinary loop code. SIGPIPE is ignored: a peer that goes
 * away is an error code, not a signal. */
#ifndef STOP_ON_SIGNAL_H
#define STOP_ON_SIGNAL_H

#include <aio_swift.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static int stop_pipe_[2] = {-1, -1};
static void (*stop_callback_)(void *arg);
static void *stop_arg_;

static void stop_signal_handler_(int signum) {
  char byte = (char)signum;
  ssize_t ignored = write(stop_pipe_[1], &byte, 1);
  (void)ignored;
}

static void stop_data_(aios_transport_t *t, const void *data, size_t length, void *arg) {
  (void)data;
  (void)length;
  (void)arg;
  aios_transport_close(t);
  if (stop_callback_) stop_callback_(stop_arg_);
  stop_callback_ = NULL;
}

/* Calls `callback(arg)` on the loop's thread at the first SIGINT or SIGTERM.
 * @return 0 or a negative status. */
static inline int stop_on_signal(aios_loop_t *loop, void (*callback)(void *arg), void *arg) {
  aios_protocol_t protocol;
  aios_future_t *connected = NULL;
  struct sigaction action;
  int rc;
  if (socketpair(AF_UNIX, SOCK_STREAM, 0, stop_pipe_) != 0) return -1;
  memset(&protocol, 0, sizeof protocol);
  protocol.size = sizeof protocol;
  protocol.data_received = stop_data_;
  rc = aios_connect_accepted_socket(loop, &protocol, stop_pipe_[0], &connected);
  if (rc != 0) return rc;
  aios_future_unref(connected); /* the transport lives while it is open */
  stop_callback_ = callback;
  stop_arg_ = arg;
  memset(&action, 0, sizeof action);
  action.sa_handler = stop_signal_handler_;
  sigaction(SIGINT, &action, NULL);
  sigaction(SIGTERM, &action, NULL);
  signal(SIGPIPE, SIG_IGN);
  return 0;
}

/* A `stop` for serve_until_signal: asyncio's server.close() and
 * server.close_clients(). */
static inline void close_server_and_clients(void *server) {
  aios_server_close((aios_server_t *)server);
  aios_server_close_clients((aios_server_t *)server);
}

/* The examples' main loop: waits for the server that `future` (from
 * aios_create_server or aios_start_server) gives, prints `banner` (if not
 * NULL), serves until SIGINT or SIGTERM calls `stop(server)`, then waits
 * until the server is closed and its last client gone, and closes the loop.
 * Takes over `future` and `loop`. @return 0 or a negative status. */
static inline int serve_until_signal(aios_loop_t *loop, aios_future_t *future, void (*stop)(void *server),
                              const char *banner) {
  aios_server_t *server = NULL;
  aios_destructor_fn destructor = NULL;
  int rc = aios_loop_run_until_complete(loop, future);
  if (rc == 0) rc = aios_future_take_result(future, (void **)&server, &destructor);
  aios_future_unref(future);
  if (rc == 0) rc = stop_on_signal(loop, stop, server);
  if (rc == 0 && banner != NULL) {
    printf("%s\n", banner);
    fflush(stdout);
  }
  if (rc == 0) rc = aios_server_wait_closed(server, &future);
  if (rc == 0) {
    rc = aios_loop_run_until_complete(loop, future);
    aios_future_unref(future);
  }
  aios_server_unref(server);
  aios_loop_close(loop);
  aios_loop_unref(loop);
  return rc;
}

#endif
