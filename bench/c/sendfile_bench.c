/* sendfile_bench: the sendfile benchmark's programs (bench/py/sendfile_bench.py).
 *
 *   sendfile_bench sink                  listens on 127.0.0.1 (a port of the
 *                                        kernel's), prints `port P`, reads one
 *                                        connection to EOF, prints `received N`
 *   sendfile_bench HOW FILE PORT         sends FILE to 127.0.0.1:PORT, then
 *                                        prints `sent N seconds S cpu C`
 *
 * HOW is one of
 *   raw        sendfile(2) in a loop on a blocking socket: the reference
 *   sock       aios_sock_sendfile on a non-blocking socket (the kernel's sendfile)
 *   transport  aios_transport_sendfile through a transport
 *   fallback   aios_sock_sendfile with AIOS_SENDFILE_FALLBACK_ALWAYS (reads and writes)
 *
 * S is the wall time from connected to sent; C is the sender's CPU time
 * (user + system) over the same span. Exit status 1 when a call failed or
 * fewer bytes went than the file has.
 */
#include "bench_util.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static void die(const char *what) {
  perror(what);
  exit(1);
}

static double cpu_seconds(void) {
  struct rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return (double)usage.ru_utime.tv_sec + usage.ru_utime.tv_usec * 1e-6 + (double)usage.ru_stime.tv_sec +
         usage.ru_stime.tv_usec * 1e-6;
}

static int sink(void) {
  static char buffer[1 << 20];
  struct sockaddr_in address;
  socklen_t length = sizeof address;
  unsigned long long total = 0;
  ssize_t n;
  int listener = socket(AF_INET, SOCK_STREAM, 0), fd;
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(listener, (struct sockaddr *)&address, sizeof address) != 0 || listen(listener, 1) != 0) die("sink: bind");
  getsockname(listener, (struct sockaddr *)&address, &length);
  printf("port %d\n", ntohs(address.sin_port));
  fflush(stdout);
  fd = accept(listener, NULL, NULL);
  if (fd < 0) die("sink: accept");
  while ((n = read(fd, buffer, sizeof buffer)) > 0) total += (unsigned long long)n;
  if (n < 0) die("sink: read");
  printf("received %llu\n", total);
  return 0;
}

static void fail(const char *what, int rc) {
  fprintf(stderr, "sendfile_bench: %s: %s (%s)\n", what, aios_strerror(rc), aios_err_name(rc));
  exit(1);
}

/* Runs the loop until `future` is done; its count. */
static long long await_count(aios_loop_t *loop, aios_future_t *future) {
  void *value = NULL;
  int rc = aios_loop_run_until_complete(loop, future);
  if (rc != 0) fail("sendfile", rc);
  aios_future_result(future, &value);
  aios_future_unref(future);
  return (long long)(intptr_t)value;
}

static long long send_raw(int fd, int file, long long size) {
  off_t offset = 0;
  while (offset < size) {
    ssize_t n = sendfile(fd, file, &offset, (size_t)(size - offset));
    if (n <= 0) die("sendfile");
  }
  return offset;
}

static long long send_aios(aios_loop_t *loop, const char *how, int fd, int file) {
  aios_future_t *future = NULL;
  long long sent;
  if (fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0) die("fcntl");
  if (strcmp(how, "transport") == 0) {
    aios_protocol_t protocol;
    aios_transport_t *transport;
    void *value = NULL;
    memset(&protocol, 0, sizeof protocol);
    protocol.size = sizeof protocol;
    BENCH_CHECK(aios_connect_accepted_socket(loop, &protocol, fd, &future));
    BENCH_CHECK(aios_loop_run_until_complete(loop, future));
    BENCH_CHECK(aios_future_take_result(future, &value, NULL));
    aios_future_unref(future);
    transport = value;
    BENCH_CHECK(aios_transport_sendfile(transport, file, 0, -1, AIOS_SENDFILE_FALLBACK_REFUSED, &future));
    sent = await_count(loop, future);
    BENCH_CHECK(aios_transport_close(transport));
    aios_loop_stop(loop);
    BENCH_CHECK(aios_loop_run_forever(loop));
    aios_transport_unref(transport);
  } else {
    int fallback = strcmp(how, "fallback") == 0 ? AIOS_SENDFILE_FALLBACK_ALWAYS : AIOS_SENDFILE_FALLBACK_REFUSED;
    BENCH_CHECK(aios_sock_sendfile(loop, fd, file, 0, -1, fallback, &future));
    sent = await_count(loop, future);
    close(fd);
  }
  return sent;
}

int main(int argc, char **argv) {
  struct sockaddr_in address;
  struct stat info;
  aios_loop_t *loop = NULL;
  double start, cpu;
  long long sent;
  int fd, file;
  if (argc == 2 && strcmp(argv[1], "sink") == 0) return sink();
  if (argc != 4) {
    fprintf(stderr, "usage: sendfile_bench sink | sendfile_bench raw|sock|transport|fallback FILE PORT\n");
    return 2;
  }
  file = open(argv[2], O_RDONLY);
  if (file < 0 || fstat(file, &info) != 0) die(argv[2]);
  fd = socket(AF_INET, SOCK_STREAM, 0);
  memset(&address, 0, sizeof address);
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = htons((unsigned short)atoi(argv[3]));
  if (connect(fd, (struct sockaddr *)&address, sizeof address) != 0) die("connect");
  if (strcmp(argv[1], "raw") != 0) BENCH_CHECK(aios_loop_new(&loop));
  start = bench_now();
  cpu = cpu_seconds();
  if (strcmp(argv[1], "raw") == 0) {
    sent = send_raw(fd, file, (long long)info.st_size);
    close(fd);
  } else {
    sent = send_aios(loop, argv[1], fd, file);
  }
  printf("sent %lld seconds %.6f cpu %.6f\n", sent, bench_now() - start, cpu_seconds() - cpu);
  if (loop) {
    BENCH_CHECK(aios_loop_close(loop));
    aios_loop_unref(loop);
  }
  return sent == (long long)info.st_size ? 0 : 1;
}
