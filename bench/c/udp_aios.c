/* udp_aios: the UDP ping-pong benchmark's server on the C datagram API
 * (bench/py/udp_bench.py): aios_create_datagram_endpoint with a protocol
 * whose datagram_received sends the datagram back to its sender with
 * aios_datagram_sendto.
 *
 *   udp_aios [PORT]
 *
 * Binds 127.0.0.1:PORT (0, the default: the kernel's pick), prints `port P`,
 * serves until SIGTERM or SIGINT, then closes the endpoint and the loop and
 * prints `served S errors=E leaks=L`: datagrams echoed, failed calls and
 * error_received calls, and object types of the library with more live
 * objects at the end than before the loop was made. Exit status 1 when a
 * call failed or E > 0.
 */
#include "bench_util.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

#include "../../examples/c/stop_on_signal.h"

typedef struct {
  aios_loop_t *loop;
  aios_datagram_t *datagram;
  unsigned long long served, errors;
} echo_t;

static void echo_received(aios_datagram_t *d, const void *data, size_t length, const void *address,
                          unsigned int address_length, void *arg) {
  echo_t *e = arg;
  int rc = aios_datagram_sendto(d, data, length, address, address_length);
  if (rc < 0) {
    fprintf(stderr, "udp_aios: aios_datagram_sendto: %s (%s)\n", aios_strerror(rc), aios_err_name(rc));
    e->errors++;
    return;
  }
  e->served++;
}

static void echo_error(aios_datagram_t *d, aios_error_t *error, void *arg) {
  (void)d;
  fprintf(stderr, "udp_aios: error_received: %s\n", aios_error_message(error));
  ((echo_t *)arg)->errors++;
}

static void echo_lost(aios_datagram_t *d, aios_error_t *error, void *arg) {
  echo_t *e = arg;
  (void)d;
  if (error != NULL) {
    fprintf(stderr, "udp_aios: connection_lost: %s\n", aios_error_message(error));
    e->errors++;
  }
  aios_loop_stop(e->loop);
}

static void stop(void *arg) {
  echo_t *e = arg;
  int rc = aios_datagram_close(e->datagram);
  if (rc < 0) {
    fprintf(stderr, "udp_aios: aios_datagram_close: %s\n", aios_strerror(rc));
    e->errors++;
    aios_loop_stop(e->loop);
  }
}

static void fail(const char *what, int rc) {
  fprintf(stderr, "udp_aios: %s: %s (%s)\n", what, aios_strerror(rc), aios_err_name(rc));
  exit(1);
}

int main(int argc, char **argv) {
  static echo_t e;
  long before[BENCH_TYPES];
  aios_datagram_protocol_t protocol;
  aios_datagram_options_t options;
  aios_future_t *future = NULL;
  struct sockaddr_in bound;
  unsigned int length = sizeof bound;
  int port = argc > 1 ? atoi(argv[1]) : 0, rc;

  bench_snapshot_live(before);
  if ((rc = aios_loop_new(&e.loop)) < 0) fail("aios_loop_new", rc);
  memset(&protocol, 0, sizeof protocol);
  protocol.size = sizeof protocol;
  protocol.arg = &e;
  protocol.datagram_received = echo_received;
  protocol.error_received = echo_error;
  protocol.connection_lost = echo_lost;
  memset(&options, 0, sizeof options);
  options.size = sizeof options;
  options.family = AF_INET;
  rc = aios_create_datagram_endpoint(e.loop, &protocol, "127.0.0.1", port, NULL, -1, &options, &future);
  if (rc < 0) fail("aios_create_datagram_endpoint", rc);
  if ((rc = aios_loop_run_until_complete(e.loop, future)) != 0) {
    aios_error_t *error = NULL;
    if (aios_future_error(future, &error) == 0 && error != NULL)
      fprintf(stderr, "udp_aios: create_datagram_endpoint: %s\n", aios_error_message(error));
    fail("create_datagram_endpoint", rc);
  }
  /* The future's result holds one reference to the endpoint: it is ours now. */
  if ((rc = aios_future_take_result(future, (void **)&e.datagram, NULL)) < 0) fail("aios_future_take_result", rc);
  if ((rc = aios_future_unref(future)) < 0) fail("aios_future_unref", rc);
  if ((rc = aios_datagram_get_sockname(e.datagram, &bound, &length)) < 0) fail("aios_datagram_get_sockname", rc);
  if ((rc = stop_on_signal(e.loop, stop, &e)) < 0) fail("stop_on_signal", rc);
  printf("port %d\n", ntohs(bound.sin_port));
  fflush(stdout);

  if ((rc = aios_loop_run_forever(e.loop)) < 0) fail("aios_loop_run_forever", rc);
  if ((rc = aios_datagram_unref(e.datagram)) < 0) fail("aios_datagram_unref", rc);
  if ((rc = aios_loop_close(e.loop)) < 0) fail("aios_loop_close", rc);
  if ((rc = aios_loop_unref(e.loop)) < 0) fail("aios_loop_unref", rc);
  int leaks = bench_check_live(before);
  printf("served %llu errors=%llu leaks=%d\n", e.served, e.errors, leaks);
  return e.errors ? 1 : 0;
}
