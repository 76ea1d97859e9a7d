/* udp_uv: the UDP ping-pong benchmark's raw libuv echo server (the physical
 * reference) and its load client (bench/py/udp_bench.py).
 *
 *   udp_uv server [PORT]
 *
 * Binds a uv_udp_t to 127.0.0.1:PORT (0, the default: the kernel's pick),
 * prints `port P`, and sends every datagram back to its sender: first with
 * uv_udp_try_send, and only when that cannot send at once a copy is queued
 * with uv_udp_send. Reads go into one static buffer. At SIGTERM or SIGINT it
 * closes every handle and the loop and prints `served S errors=E` (datagrams
 * echoed, failed sends and receives); exit status 1 when E > 0.
 *
 *   udp_uv client PORT SECONDS WARMUP_SECONDS SERVER_PID [TIMEOUT_MS]
 *
 * The load client, no libuv: one blocking UDP socket connected to
 * 127.0.0.1:PORT, exactly one 64-byte datagram in flight. It sends one,
 * waits for its echo, checks it byte for byte, sends the next. The round
 * trips of the first WARMUP_SECONDS are not counted; those of the next
 * SECONDS (N of them, the last one finished past the mark) are, and it prints
 *
 *   udp N SECONDS rtt_per_s=R p50_us= p99_us= max_us= server_cpu=S
 *       client_cpu=C other_cpus=O lost=L late=K sent=D
 *
 * server_cpu: utime + stime of SERVER_PID (/proc/PID/stat) over the counted
 * part, in seconds; client_cpu: its own; other_cpus: the CPUs the rest of
 * the machine kept busy meanwhile (/proc/stat). A datagram whose echo does
 * not come within TIMEOUT_MS (default 200) is sent again and counted in
 * `lost`; an echo of an earlier datagram that comes after its resend is
 * dropped and counted in `late` (both over the warm-up and counted part);
 * `sent` is every datagram sent, warm-up and resends included. Latencies
 * are first send to echo received (CLOCK_MONOTONIC), exact: every counted
 * round trip is kept and sorted.
 *
 * Exit status 1: a wrong echo (size or bytes), the server refused (ICMP
 * port unreachable) or did not answer 25 resends of one datagram in a row;
 * 64: a bad command line.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <uv.h>

#define SIZE 64
#define MAX_RESENDS 25

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("udp_uv: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static long parse_long(const char *s, long lo, long hi) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) {
    fprintf(stderr, "udp_uv: bad number '%s'\n", s);
    exit(64);
  }
  return v;
}

/* ------------------------------------------------------------------ server */

/* libuv calls alloc_cb, reads, and calls recv_cb before it reads again, and
 * recv_cb keeps nothing of the buffer past its return: one buffer will do. */
static char g_buf[64 * 1024];
static uv_loop_t *g_loop;
static uv_udp_t g_udp;
static uv_signal_t g_sigterm, g_sigint;
static unsigned long long g_served, g_errors;

/* A queued send owns the copy of the datagram. */
typedef struct {
  uv_udp_send_t req;
  char data[];
} pending_send_t;

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
  (void)h;
  (void)suggested;
  *buf = uv_buf_init(g_buf, sizeof g_buf);
}

static void on_sent(uv_udp_send_t *req, int status) {
  if (status < 0 && status != UV_ECANCELED) {
    fprintf(stderr, "udp_uv: uv_udp_send: %s\n", uv_strerror(status));
    g_errors++;
  }
  free(req);
}

static void on_recv(uv_udp_t *h, ssize_t nread, const uv_buf_t *buf, const struct sockaddr *addr,
                    unsigned flags) {
  (void)flags;
  if (nread < 0) {
    fprintf(stderr, "udp_uv: receive: %s\n", uv_strerror((int)nread));
    g_errors++;
    return;
  }
  if (addr == NULL) return; /* nothing more to read */
  uv_buf_t out = uv_buf_init(buf->base, (unsigned)nread);
  int rc = uv_udp_try_send(h, &out, 1, addr);
  if (rc >= 0) {
    g_served++;
    return;
  }
  if (rc != UV_EAGAIN) {
    fprintf(stderr, "udp_uv: uv_udp_try_send: %s\n", uv_strerror(rc));
    g_errors++;
    return;
  }
  pending_send_t *p = malloc(sizeof *p + (size_t)nread);
  if (p == NULL) die("malloc failed");
  memcpy(p->data, buf->base, (size_t)nread);
  out = uv_buf_init(p->data, (unsigned)nread);
  if ((rc = uv_udp_send(&p->req, h, &out, 1, addr, on_sent)) < 0) {
    /* When uv_udp_send fails it never calls on_sent. */
    fprintf(stderr, "udp_uv: uv_udp_send: %s\n", uv_strerror(rc));
    free(p);
    g_errors++;
    return;
  }
  g_served++;
}

static void close_walk(uv_handle_t *h, void *arg) {
  (void)arg;
  if (!uv_is_closing(h)) uv_close(h, NULL);
}

static void on_signal(uv_signal_t *sig, int signum) {
  (void)sig;
  (void)signum;
  uv_walk(g_loop, close_walk, NULL);
}

static int server(int argc, char **argv) {
  int port = argc > 2 ? (int)parse_long(argv[2], 0, 65535) : 0;
  struct sockaddr_in addr;
  struct sockaddr_storage bound;
  int len = sizeof bound, rc;
  g_loop = uv_default_loop();
  if ((rc = uv_ip4_addr("127.0.0.1", port, &addr)) < 0) die("uv_ip4_addr: %s", uv_strerror(rc));
  if ((rc = uv_udp_init(g_loop, &g_udp)) < 0) die("uv_udp_init: %s", uv_strerror(rc));
  if ((rc = uv_udp_bind(&g_udp, (const struct sockaddr *)&addr, 0)) < 0) die("uv_udp_bind: %s", uv_strerror(rc));
  if ((rc = uv_udp_getsockname(&g_udp, (struct sockaddr *)&bound, &len)) < 0)
    die("uv_udp_getsockname: %s", uv_strerror(rc));
  if ((rc = uv_udp_recv_start(&g_udp, on_alloc, on_recv)) < 0) die("uv_udp_recv_start: %s", uv_strerror(rc));
  if ((rc = uv_signal_init(g_loop, &g_sigterm)) < 0 || (rc = uv_signal_start(&g_sigterm, on_signal, SIGTERM)) < 0 ||
      (rc = uv_signal_init(g_loop, &g_sigint)) < 0 || (rc = uv_signal_start(&g_sigint, on_signal, SIGINT)) < 0)
    die("uv_signal_start: %s", uv_strerror(rc));
  printf("port %d\n", ntohs(((struct sockaddr_in *)&bound)->sin_port));
  fflush(stdout);
  uv_run(g_loop, UV_RUN_DEFAULT);
  /* Every handle is closed by now: a loop that does not close leaked one. */
  if ((rc = uv_loop_close(g_loop)) < 0) die("uv_loop_close: %s", uv_strerror(rc));
  printf("served %llu errors=%llu\n", g_served, g_errors);
  return g_errors ? 1 : 0;
}

/* ------------------------------------------------------------------ client */

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* utime + stime of a process in clock ticks; -1 when it is gone. */
static long long proc_ticks(const char *pid) {
  char path[64], buf[1024];
  snprintf(path, sizeof path, "/proc/%s/stat", pid);
  FILE *f = fopen(path, "r");
  if (f == NULL) return -1;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  /* The name, in parentheses, may hold spaces: fields are counted after it. */
  char *p = strrchr(buf, ')');
  unsigned long long ut, st;
  if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2) return -1;
  return (long long)(ut + st);
}

/* Ticks all CPUs spent busy: /proc/stat's user .. steal less idle and iowait. */
static long long busy_ticks(void) {
  unsigned long long v[8] = {0};
  FILE *f = fopen("/proc/stat", "r");
  if (f == NULL) return -1;
  int got = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5],
                   &v[6], &v[7]);
  fclose(f);
  if (got != 8) return -1;
  return (long long)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]);
}

static double self_cpu(void) {
  struct rusage r;
  getrusage(RUSAGE_SELF, &r);
  return (double)r.ru_utime.tv_sec + (double)r.ru_stime.tv_sec + (r.ru_utime.tv_usec + r.ru_stime.tv_usec) * 1e-6;
}

typedef struct {
  int fd;
  uint64_t seq; /* of the next datagram, unique across warm-up and counted part */
  unsigned long long lost, late, sent;
} client_t;

/* Each datagram carries its number, then bytes that depend on it. */
static void fill(unsigned char *b, uint64_t seq) {
  memcpy(b, &seq, sizeof seq);
  for (int i = (int)sizeof seq; i < SIZE; i++) b[i] = (unsigned char)(seq * 31u + (unsigned)i);
}

static void send_one(client_t *c, const unsigned char *b) {
  ssize_t n = send(c->fd, b, SIZE, 0);
  if (n != SIZE) die("send: %s", n < 0 ? strerror(errno) : "short send");
  c->sent++;
}

/* One round trip; its time in ns. */
static uint64_t round_trip(client_t *c) {
  unsigned char out[SIZE], in[2048], want[SIZE];
  uint64_t seq = c->seq++;
  int resends = 0;
  fill(out, seq);
  uint64_t t0 = now_ns();
  send_one(c, out);
  for (;;) {
    ssize_t n = recv(c->fd, in, sizeof in, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) {
        if (++resends > MAX_RESENDS)
          die("no echo of datagram %llu after %d resends", (unsigned long long)seq, MAX_RESENDS);
        c->lost++;
        send_one(c, out);
        continue;
      }
      die("recv: %s%s", strerror(errno), errno == ECONNREFUSED ? " (nothing listens on the port)" : "");
    }
    if (n == SIZE && memcmp(in, out, SIZE) == 0) return now_ns() - t0;
    /* The echo of an earlier datagram, sent twice, is not an error. */
    uint64_t got = 0;
    if (n == SIZE) memcpy(&got, in, sizeof got);
    if (n == SIZE && got < seq) {
      fill(want, got);
      if (memcmp(in, want, SIZE) == 0) {
        c->late++;
        continue;
      }
    }
    int at = 0;
    while (at < SIZE && at < n && in[at] == out[at]) at++;
    die("wrong echo of datagram %llu: %zd bytes (sent %d), first difference at byte %d", (unsigned long long)seq,
        n, SIZE, at);
  }
}

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

static double parse_seconds(const char *s) {
  char *end = NULL;
  errno = 0;
  double v = strtod(s, &end);
  if (errno != 0 || end == s || *end != '\0' || !(v >= 0 && v <= 3600)) {
    fprintf(stderr, "udp_uv: bad duration '%s'\n", s);
    exit(64);
  }
  return v;
}

static int client(int argc, char **argv) {
  if (argc < 6 || argc > 7) {
    fputs("usage: udp_uv client PORT SECONDS WARMUP_SECONDS SERVER_PID [TIMEOUT_MS]\n", stderr);
    return 64;
  }
  int port = (int)parse_long(argv[2], 1, 65535);
  uint64_t counted_ns = (uint64_t)(parse_seconds(argv[3]) * 1e9), warmup_ns = (uint64_t)(parse_seconds(argv[4]) * 1e9);
  const char *pid = argv[5];
  parse_long(pid, 1, 1L << 30);
  long timeout_ms = argc > 6 ? parse_long(argv[6], 1, 60000) : 200;
  double tck = (double)sysconf(_SC_CLK_TCK);

  client_t c = {.fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0)};
  if (c.fd < 0) die("socket: %s", strerror(errno));
  struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
  to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  /* Connected: only the server's datagrams are received, and its absence
   * shows as ECONNREFUSED. */
  if (connect(c.fd, (struct sockaddr *)&to, sizeof to) != 0) die("connect: %s", strerror(errno));
  struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
  if (setsockopt(c.fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv) != 0) die("SO_RCVTIMEO: %s", strerror(errno));
  size_t cap = 1 << 16, n = 0;
  uint64_t *lat = malloc(cap * sizeof *lat);
  if (lat == NULL) die("malloc failed");

  for (uint64_t end = now_ns() + warmup_ns; now_ns() < end;) round_trip(&c);
  long long srv0 = proc_ticks(pid), busy0 = busy_ticks();
  double cli0 = self_cpu();
  uint64_t t0 = now_ns(), t1 = t0;
  do {
    if (n == cap) {
      cap *= 2;
      if ((lat = realloc(lat, cap * sizeof *lat)) == NULL) die("realloc failed");
    }
    lat[n++] = round_trip(&c);
    t1 = now_ns();
  } while (t1 - t0 < counted_ns);
  long long srv1 = proc_ticks(pid), busy1 = busy_ticks();
  double cli1 = self_cpu();
  if (srv0 < 0 || srv1 < 0) die("cannot read /proc/%s/stat", pid);

  double seconds = (double)(t1 - t0) * 1e-9;
  double server_cpu = (double)(srv1 - srv0) / tck, client_cpu = cli1 - cli0;
  double other = busy0 < 0 || busy1 < 0 ? 0 : ((double)(busy1 - busy0) / tck - server_cpu - client_cpu) / seconds;
  qsort(lat, n, sizeof *lat, cmp_u64);
  printf("udp %zu %.6f rtt_per_s=%.1f p50_us=%.2f p99_us=%.2f max_us=%.2f server_cpu=%.4f client_cpu=%.4f"
         " other_cpus=%.3f lost=%llu late=%llu sent=%llu\n",
         n, seconds, (double)n / seconds, lat[(n - 1) / 2] / 1e3, lat[(size_t)((double)(n - 1) * 0.99)] / 1e3,
         lat[n - 1] / 1e3, server_cpu, client_cpu, other < 0 ? 0 : other, c.lost, c.late, c.sent);
  free(lat);
  close(c.fd);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "server") == 0) return server(argc, argv);
  if (argc >= 2 && strcmp(argv[1], "client") == 0) return client(argc, argv);
  fputs("usage: udp_uv server [PORT]\n"
        "       udp_uv client PORT SECONDS WARMUP_SECONDS SERVER_PID [TIMEOUT_MS]\n", stderr);
  return 64;
}
