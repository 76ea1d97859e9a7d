/* stop_on_signal.h: SIGINT and SIGTERM as a callback on the loop, for the
 * examples (asyncio's loop.add_signal_handler). */
#ifndef STOP_ON_SIGNAL_H
#define STOP_ON_SIGNAL_H

#include <aio_swift.h>
#include <signal.h>
#include <stdio.h>

static void (*stop_callback_)(void *arg);

/* Runs once, at the first of the two signals. */
static void stop_now_(void *arg) {
  void (*callback)(void *arg) = stop_callback_;
  stop_callback_ = NULL;
  if (callback) callback(arg);
}

/* Calls `callback(arg)` on the loop's thread at the first SIGINT or SIGTERM.
 * @return 0 or a negative status. */
static inline int stop_on_signal(aios_loop_t *loop, void (*callback)(void *arg), void *arg) {
  int rc;
  stop_callback_ = callback;
  rc = aios_loop_add_signal_handler(loop, SIGINT, stop_now_, arg, NULL);
  if (rc == 0) rc = aios_loop_add_signal_handler(loop, SIGTERM, stop_now_, arg, NULL);
  return rc;
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
