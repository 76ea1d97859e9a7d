/* echo_load: the load generator of the echo benchmark (bench/py/echo_bench.py).
 * It drives the server with epoll directly, so that what it measures is the
 * server and not a second event loop.
 *
 *   echo_load HOST PORT CONNECTIONS SIZE SECONDS [WARMUP_SECONDS]
 *
 * Opens CONNECTIONS TCP connections (TCP_NODELAY) to HOST:PORT, an IPv4
 * address. Each keeps exactly one message of SIZE bytes in flight: send it,
 * wait until SIZE bytes came back (checked byte for byte), send the next.
 * WARMUP_SECONDS (default 0.5) are not counted; then SECONDS are. Prints
 *
 *   # warm-up done                    when the counted part starts
 *   echo MSGS SECONDS conns=C size=S msgs_per_s=R p50_us=A p99_us=B max_us=M
 *
 * where MSGS are the round trips completed in the counted SECONDS and the
 * latencies are those of their round trips (first byte sent to last byte
 * back, CLOCK_MONOTONIC). With ECHO_LOAD_HOLD set in the environment it then
 * keeps the connections open until its stdin ends.
 *
 *   echo_load --idle HOST PORT COUNT [HOLD_SECONDS]
 *
 * Opens COUNT connections and has each echo one byte, so that the server has
 * accepted and read every one of them, then prints
 *
 *   idle OPENED SECONDS requested=COUNT
 *
 * and holds them, idle, until its stdin ends or HOLD_SECONDS (default 60)
 * have passed. It raises its soft RLIMIT_NOFILE to the hard limit first; when
 * it cannot open COUNT connections it keeps those it could and says why on
 * stderr.
 *
 * Exit status: 0; 1 when the server refuses, resets or closes a connection,
 * or echoes other bytes than it was sent; 64 for a bad command line.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_EVENTS 256

/* Idle mode keeps at most this many connections waiting for their echo:
 * the server's accept queue (asyncio's default backlog is 100) then never
 * overflows, which would stall connect() for a SYN retransmit (1 s). */
#define IDLE_WINDOW 64

/* Idle mode gives up opening more when no echo came back for this long. */
#define IDLE_STALL_NS (5 * 1000000000ull)

static struct sockaddr_in g_addr;
static const char *g_where; /* "HOST:PORT", for messages */

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fputs("echo_load: ", stderr);
  vfprintf(stderr, fmt, ap);
  fputc('\n', stderr);
  va_end(ap);
  exit(1);
}

static void usage(void) {
  fputs("usage: echo_load HOST PORT CONNECTIONS SIZE SECONDS [WARMUP_SECONDS]\n"
        "       echo_load --idle HOST PORT COUNT [HOLD_SECONDS]\n", stderr);
  exit(64);
}

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static long arg_long(const char *s, long lo, long hi) {
  char *end = NULL;
  errno = 0;
  long v = strtol(s, &end, 10);
  if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi) usage();
  return v;
}

static double arg_seconds(const char *s) {
  char *end = NULL;
  double v = strtod(s, &end);
  if (end == s || *end != '\0' || !(v >= 0) || v > 86400) usage();
  return v;
}

static void set_address(const char *host, const char *port) {
  static char where[64];
  g_addr.sin_family = AF_INET;
  g_addr.sin_port = htons((uint16_t)arg_long(port, 1, 65535));
  if (inet_pton(AF_INET, host, &g_addr.sin_addr) != 1) {
    fprintf(stderr, "echo_load: HOST must be an IPv4 address, not '%s'\n", host);
    exit(64);
  }
  snprintf(where, sizeof where, "%s:%s", host, port);
  g_where = where;
}

/* Raises the soft limit on open files to the hard one; returns the limit. */
static long raise_nofile(void) {
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return -1;
  if (rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0) getrlimit(RLIMIT_NOFILE, &rl);
  }
  return rl.rlim_cur == RLIM_INFINITY ? -1 : (long)rl.rlim_cur;
}

/* A blocking connect, then TCP_NODELAY and O_NONBLOCK. Returns the socket,
 * or -1 with errno set when socket() or connect() failed. */
static int open_connection(void) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  /* No signal handler is installed, so connect is never interrupted. */
  if (connect(fd, (struct sockaddr *)&g_addr, sizeof g_addr) != 0) {
    int e = errno;
    close(fd);
    errno = e;
    return -1;
  }
  int one = 1;
  if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0 ||
      fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK) != 0)
    die("setting up a socket: %s", strerror(errno));
  return fd;
}

/* Why a connection ended, for the message: the pending socket error if any. */
static const char *socket_error(int fd, int fallback) {
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0 || err == 0) err = fallback;
  return err ? strerror(err) : "closed by the server";
}

static void epoll_set(int ep, int op, int fd, uint32_t events, void *ptr) {
  struct epoll_event ev = {.events = events, .data.ptr = ptr};
  if (epoll_ctl(ep, op, fd, &ev) != 0) die("epoll_ctl: %s", strerror(errno));
}

/* ------------------------------------------------------------ histogram */

/* Round-trip times in nanoseconds, log-linear: below 64 one bucket per
 * value, above 64 buckets per power of two. Every value is within 1/64
 * (1.6%) of its bucket, and the histogram has a fixed size however long
 * the run. */
#define SUB_BITS 6
#define SUB (1u << SUB_BITS)
#define BUCKETS ((64 - SUB_BITS + 1) * SUB)

static uint64_t g_hist[BUCKETS];
static uint64_t g_hist_count;
static uint64_t g_hist_max;

static unsigned bucket_of(uint64_t v) {
  if (v < SUB) return (unsigned)v;
  unsigned e = 63u - (unsigned)__builtin_clzll(v); /* floor(log2 v) >= SUB_BITS */
  return (e - SUB_BITS + 1) * SUB + (unsigned)((v >> (e - SUB_BITS)) & (SUB - 1));
}

static void hist_add(uint64_t v) {
  g_hist[bucket_of(v)]++;
  g_hist_count++;
  if (v > g_hist_max) g_hist_max = v;
}

/* The q-quantile in nanoseconds: the middle of the bucket that holds it. */
static double hist_quantile(double q) {
  if (g_hist_count == 0) return 0;
  uint64_t rank = (uint64_t)(q * (double)g_hist_count + 0.999999);
  if (rank < 1) rank = 1;
  uint64_t seen = 0;
  for (unsigned i = 0; i < BUCKETS; i++) {
    seen += g_hist[i];
    if (seen < rank) continue;
    if (i < SUB) return i;
    unsigned g = i / SUB, s = i % SUB;
    double low = (double)((uint64_t)(SUB + s) << (g - 1)), width = (double)(1ull << (g - 1));
    return low + (width - 1) / 2;
  }
  return (double)g_hist_max;
}

/* ------------------------------------------------------------ echo mode */

struct conn {
  int fd;
  int want_out;          /* EPOLLOUT is on: the send buffer was full */
  uint32_t index, seq;
  size_t sent, got;      /* bytes of the current message sent, and echoed back */
  uint64_t t0;           /* when its first byte was sent */
  unsigned char *msg;    /* the current message (each connection its own) */
};

static size_t g_size;
static unsigned char *g_rbuf; /* one receive buffer: a single thread reads */
static int g_ep;

static void conn_fail(struct conn *c, const char *what, int err) {
  die("connection %u to %s: %s: %s", c->index, g_where, what, socket_error(c->fd, err));
}

/* Sends what is left of the current message; asks for EPOLLOUT when the
 * socket takes only part of it (a partial write), and drops it when done. */
static void conn_send(struct conn *c) {
  while (c->sent < g_size) {
    ssize_t n = send(c->fd, c->msg + c->sent, g_size - c->sent, MSG_NOSIGNAL);
    if (n > 0) {
      c->sent += (size_t)n;
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (!c->want_out) epoll_set(g_ep, EPOLL_CTL_MOD, c->fd, EPOLLIN | EPOLLOUT, c);
      c->want_out = 1;
      return;
    } else {
      conn_fail(c, "send", errno);
    }
  }
  if (c->want_out) epoll_set(g_ep, EPOLL_CTL_MOD, c->fd, EPOLLIN, c);
  c->want_out = 0;
}

/* Starts the next message: its first 8 bytes carry the connection and a
 * sequence number, so an echo from another connection or an old message
 * does not compare equal. */
static void conn_start(struct conn *c, uint64_t now) {
  uint32_t stamp[2] = {c->index, ++c->seq};
  memcpy(c->msg, stamp, g_size < sizeof stamp ? g_size : sizeof stamp);
  c->sent = c->got = 0;
  c->t0 = now;
  conn_send(c);
}

/* Reads what the server echoed. Returns 1 when the message is complete. */
static int conn_receive(struct conn *c) {
  while (c->got < g_size) {
    /* One byte more than is due, to notice a server that sends too much. */
    size_t due = g_size - c->got;
    ssize_t n = recv(c->fd, g_rbuf, due + 1, 0);
    if (n > 0) {
      if ((size_t)n > due || c->got + (size_t)n > c->sent)
        die("connection %u to %s: the server sent more than it was sent", c->index, g_where);
      if (memcmp(g_rbuf, c->msg + c->got, (size_t)n) != 0)
        die("connection %u to %s: the echo differs from the message at byte %zu of %zu",
            c->index, g_where, c->got, g_size);
      c->got += (size_t)n;
    } else if (n == 0) {
      die("connection %u to %s: closed by the server in the middle of a message", c->index, g_where);
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return 0;
    } else {
      conn_fail(c, "recv", errno);
    }
  }
  return 1;
}

static int run_echo(long nconn, size_t size, double seconds, double warmup) {
  g_size = size;
  g_rbuf = malloc(size + 1);
  struct conn *conns = calloc((size_t)nconn, sizeof *conns);
  if (g_rbuf == NULL || conns == NULL) die("out of memory");
  long limit = raise_nofile();
  if (limit > 0 && nconn + 8 > limit)
    die("%ld connections need more open files than RLIMIT_NOFILE (%ld) allows", nconn, limit);
  g_ep = epoll_create1(EPOLL_CLOEXEC);
  if (g_ep < 0) die("epoll_create1: %s", strerror(errno));

  for (long i = 0; i < nconn; i++) {
    struct conn *c = &conns[i];
    c->index = (uint32_t)i;
    c->msg = malloc(size);
    if (c->msg == NULL) die("out of memory");
    for (size_t j = 0; j < size; j++) c->msg[j] = (unsigned char)(j * 31 + (size_t)i);
    c->fd = open_connection();
    if (c->fd < 0) die("connect to %s: %s (connection %ld of %ld)", g_where, strerror(errno), i + 1, nconn);
    epoll_set(g_ep, EPOLL_CTL_ADD, c->fd, EPOLLIN, c);
  }

  uint64_t start = now_ns();
  uint64_t warm_end = start + (uint64_t)(warmup * 1e9);
  uint64_t end = warm_end + (uint64_t)(seconds * 1e9);
  for (long i = 0; i < nconn; i++) conn_start(&conns[i], start);

  int counting = 0;
  uint64_t msgs = 0;
  struct epoll_event evs[MAX_EVENTS];
  for (;;) {
    uint64_t now = now_ns();
    if (!counting && now >= warm_end) {
      counting = 1;
      /* The harness samples the server's CPU time when it reads this. */
      printf("# warm-up done\n");
      fflush(stdout);
    }
    if (now >= end) break;
    uint64_t next = counting ? end : warm_end;
    int timeout_ms = (int)((next - now + 999999) / 1000000);
    int n = epoll_wait(g_ep, evs, MAX_EVENTS, timeout_ms);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait: %s", strerror(errno));
    }
    for (int k = 0; k < n; k++) {
      struct conn *c = evs[k].data.ptr;
      uint32_t e = evs[k].events;
      /* Read first: a reset still leaves what arrived before it readable. */
      if ((e & (EPOLLIN | EPOLLHUP | EPOLLERR)) && conn_receive(c)) {
        uint64_t t1 = now_ns();
        if (t1 >= end) continue; /* past the end: counted neither way, not restarted */
        if (t1 >= warm_end) {
          hist_add(t1 - c->t0);
          msgs++;
        }
        conn_start(c, t1);
        continue;
      }
      if (e & EPOLLERR) conn_fail(c, "error", 0);
      if ((e & EPOLLOUT) && c->want_out) conn_send(c);
    }
  }
  /* The counted round trips are those that ended in [warm_end, end). */
  double elapsed = (double)(end - warm_end) / 1e9;
  printf("echo %llu %.6f conns=%ld size=%zu msgs_per_s=%.1f p50_us=%.2f p99_us=%.2f max_us=%.2f\n",
         (unsigned long long)msgs, elapsed, nconn, size, elapsed > 0 ? (double)msgs / elapsed : 0.0,
         hist_quantile(0.50) / 1e3, hist_quantile(0.99) / 1e3, (double)g_hist_max / 1e3);
  fflush(stdout);
  /* ECHO_LOAD_HOLD: the connections stay open until stdin ends, so that a
   * harness can read the server's counters before the closes cost it. */
  if (getenv("ECHO_LOAD_HOLD") != NULL) {
    char b[256];
    for (;;) {
      ssize_t n = read(0, b, sizeof b);
      if (n == 0 || (n < 0 && errno != EINTR)) break;
    }
  }
  for (long i = 0; i < nconn; i++) {
    close(conns[i].fd);
    free(conns[i].msg);
  }
  free(conns);
  free(g_rbuf);
  close(g_ep);
  return 0;
}

/* ------------------------------------------------------------ idle mode */

/* Idle mode keeps only the descriptors: a connection waits for its echo
 * while it is in the epoll set, and is idle once taken out of it. */
static int run_idle(long requested, double hold) {
  long count = requested, limit = raise_nofile();
  /* Keep a few descriptors for stdio, epoll and the next socket. */
  if (limit > 0 && count > limit - 8) {
    fprintf(stderr, "echo_load: RLIMIT_NOFILE is %ld: at most %ld connections, not %ld\n",
            limit, limit - 8, count);
    count = limit - 8;
  }
  int ep = epoll_create1(EPOLL_CLOEXEC);
  if (ep < 0) die("epoll_create1: %s", strerror(errno));
  int *fds = malloc((size_t)count * sizeof *fds);
  if (fds == NULL) die("out of memory");

  long opened = 0, waiting = 0, confirmed = 0;
  const char *stop_why = NULL;
  uint64_t start = now_ns(), last_progress = start;
  struct epoll_event evs[MAX_EVENTS];
  for (;;) {
    while (stop_why == NULL && opened < count && waiting < IDLE_WINDOW) {
      int fd = open_connection();
      if (fd < 0) {
        if (errno == ECONNREFUSED || errno == ECONNRESET)
          die("connect to %s: %s (after %ld connections)", g_where, strerror(errno), opened);
        /* Out of descriptors, ports or buffers: keep what we have. */
        stop_why = strerror(errno);
        break;
      }
      ssize_t n;
      do n = send(fd, "x", 1, MSG_NOSIGNAL);
      while (n < 0 && errno == EINTR);
      if (n != 1) die("connection %ld to %s: send: %s", opened, g_where, socket_error(fd, errno));
      struct epoll_event ev = {.events = EPOLLIN, .data.fd = fd};
      if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev) != 0) die("epoll_ctl: %s", strerror(errno));
      fds[opened++] = fd;
      waiting++;
    }
    if (confirmed == opened) break;
    int n = epoll_wait(ep, evs, MAX_EVENTS, 100);
    if (n < 0) {
      if (errno == EINTR) continue;
      die("epoll_wait: %s", strerror(errno));
    }
    uint64_t now = now_ns();
    for (int k = 0; k < n; k++) {
      int fd = evs[k].data.fd;
      char b[2];
      ssize_t r = recv(fd, b, sizeof b, 0);
      if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
      if (r != 1 || b[0] != 'x')
        die("an idle connection to %s: %s", g_where,
            r == 0 ? "closed by the server" : r < 0 ? socket_error(fd, errno) : "unexpected echo");
      /* Echoed: the server holds this one. Nothing more is expected on it. */
      epoll_set(ep, EPOLL_CTL_DEL, fd, 0, NULL);
      waiting--;
      confirmed++;
      last_progress = now;
    }
    if (now - last_progress > IDLE_STALL_NS) {
      /* The server stopped answering (its own descriptor limit, say): the
       * connections it never echoed are not counted. */
      fprintf(stderr, "echo_load: no echo for %.0f s with %ld connections waiting: keeping %ld\n",
              IDLE_STALL_NS / 1e9, waiting, confirmed);
      if (stop_why == NULL) stop_why = "the server stopped echoing";
      break;
    }
  }
  double seconds = (double)(now_ns() - start) / 1e9;
  if (confirmed < requested)
    fprintf(stderr, "echo_load: opened %ld of %ld idle connections (%s)\n", confirmed, requested,
            stop_why ? stop_why : "RLIMIT_NOFILE");
  printf("idle %ld %.6f requested=%ld\n", confirmed, seconds, requested);
  fflush(stdout);

  /* Hold them until stdin ends (the harness closes it once it has read the
   * server's memory) or the time is up. */
  uint64_t until = now_ns() + (uint64_t)(hold * 1e9);
  for (;;) {
    uint64_t now = now_ns();
    if (now >= until) break;
    struct pollfd p = {.fd = 0, .events = POLLIN};
    int rc = poll(&p, 1, (int)((until - now + 999999) / 1000000));
    if (rc < 0 && errno == EINTR) continue;
    if (rc <= 0) break;
    char b[256];
    if (read(0, b, sizeof b) <= 0) break;
  }
  for (long i = 0; i < opened; i++) close(fds[i]);
  free(fds);
  close(ep);
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "--idle") == 0) {
    if (argc < 5 || argc > 6) usage();
    set_address(argv[2], argv[3]);
    return run_idle(arg_long(argv[4], 1, 10000000), argc > 5 ? arg_seconds(argv[5]) : 60);
  }
  if (argc < 6 || argc > 7) usage();
  set_address(argv[1], argv[2]);
  long nconn = arg_long(argv[3], 1, 1000000);
  size_t size = (size_t)arg_long(argv[4], 1, 64L << 20);
  double seconds = arg_seconds(argv[5]);
  double warmup = argc > 6 ? arg_seconds(argv[6]) : 0.5;
  if (seconds <= 0) usage();
  return run_echo(nconn, size, seconds, warmup);
}
