/*
 * fuzz_api.c: a structured libFuzzer target over the whole C ABI of
 * libaio-swift (include/aio_swift.h).
 *
 * The input is a program: each op byte picks a function of the header, the
 * bytes after it pick object slots and arguments (good ones, wrong-type,
 * stale, NULL and forged handles, odd numbers). Callbacks of every kind
 * (scheduled callbacks, done callbacks, C task steps, predicates, exception
 * handlers, destructors) run sub-programs captured from the input, so the
 * library is re-entered from inside itself; a second thread takes and drops
 * references and calls the *_threadsafe functions. The network's ops make
 * real sockets on 127.0.0.1 and in a temp dir (lookups only of numeric names),
 * transports, servers and streams, with protocol tables, protocol factories
 * and client callbacks whose callbacks run sub-programs too, and hold the
 * far end of socket pairs to play the peer. Pipe transports and streams go
 * over real pipes, datagram endpoints over UDP and Unix datagram sockets,
 * descriptor watchers over pairs, pipes and files, the socket operations
 * (sock_recv .. sock_accept, sendfile) over sockets the harness keeps and
 * a file in the temp dir, signal handlers catch the signals the harness
 * raises, and
 * a few cheap children per input (true, exit N, cat, printf, a sleep killed
 * at once) run under subprocess protocols whose callbacks run sub-programs
 * too, or as processes with streams. After each input every reference is
 * released and every loop closed, then the oracles are checked: each
 * destructor ran exactly once, every protocol lived as asyncio's do,
 * aios_live_objects() is back at its baseline, and so are the descriptors
 * open; every child is reaped, every signal's disposition restored.
 * See Tests/fuzz/README.md for the encoding.
 *
 * Each bug the harness met has a switch point below (BUG_*). The fixed ones
 * are on, so the fuzzer reaches what once broke; -DFUZZ_AVOID_BUGS steers
 * clear of them all again (to bisect a new finding). The open ones are off
 * (the harness steers clear of them) unless -DFUZZ_OPEN_BUGS.
 */
#define _GNU_SOURCE
#include <aio_swift.h>

#include <errno.h>
#include <float.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <dirent.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>

/* Switch points for the bugs the harness met: on, the fuzzer reaches the
 * inputs that once broke (all of them are fixed); -DFUZZ_AVOID_BUGS turns
 * them off, -DFUZZ_BUG_<NAME> then turns one back on. */
#if defined(FUZZ_AVOID_BUGS)
#define FUZZ_BUG_ALL 0
#else
#define FUZZ_BUG_ALL 1
#endif
/* From the issue: */
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_FAR_TIMERS)
#define BUG_FAR_TIMERS 1 /* a far timer deadline traps when the loop arms its timer */
#else
#define BUG_FAR_TIMERS 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_ALL_TASKS_CAPACITY)
#define BUG_ALL_TASKS_CAPACITY 1 /* aios_all_tasks with capacity >= 2^63 traps */
#else
#define BUG_ALL_TASKS_CAPACITY 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_AWAIT_CYCLES)
#define BUG_AWAIT_CYCLES 1 /* a cancelled await cycle overflows the stack */
#else
#define BUG_AWAIT_CYCLES 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_PREDICATE_DROPS_CONDITION)
#define BUG_PREDICATE_DROPS_CONDITION 1 /* use after free in aios_condition_wait_for */
#else
#define BUG_PREDICATE_DROPS_CONDITION 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_BARRIER_UINT_MAX)
#define BUG_BARRIER_UINT_MAX 1 /* aios_barrier_new(loop, UINT_MAX) */
#else
#define BUG_BARRIER_UINT_MAX 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_CLOSE_WITH_WAITING_TASKS)
#define BUG_CLOSE_WITH_WAITING_TASKS 1 /* leak: a loop closed while a task waits for ever */
#else
#define BUG_CLOSE_WITH_WAITING_TASKS 0
#endif
/* Not a bug left but a limit of the harness: with it on, a callback may
 * drop a running loop's last reference, and then nothing can stop a
 * run_forever with no stop scheduled (the watchdog needs the loop). The
 * library's side (the loop closes once it stops) is in test_hardening.c. */
#if defined(FUZZ_BUG_LAST_LOOP_REF_IN_CALLBACK)
#define BUG_LAST_LOOP_REF_IN_CALLBACK 1 /* leak: a loop's last reference dropped in its callback */
#else
#define BUG_LAST_LOOP_REF_IN_CALLBACK 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_THREADSAFE_OUT_HANDLE)
#define BUG_THREADSAFE_OUT_HANDLE 1 /* leak: call_soon_threadsafe with an `out` handle */
#else
#define BUG_THREADSAFE_OUT_HANDLE 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_WAIT_FOR_CLOSED_LOOP)
#define BUG_WAIT_FOR_CLOSED_LOOP 1 /* leak: wait_for on a done future of a closed loop */
#else
#define BUG_WAIT_FOR_CLOSED_LOOP 0
#endif
/* Found by this harness (Tests/fuzz/findings/): */
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_SET_RESULT_ON_TASK)
#define BUG_SET_RESULT_ON_TASK 1 /* findings/set-result-on-task */
#else
#define BUG_SET_RESULT_ON_TASK 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_SET_RESULT_ON_SLEEP)
#define BUG_SET_RESULT_ON_SLEEP 1 /* findings/set-result-on-sleep */
#else
#define BUG_SET_RESULT_ON_SLEEP 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_MINUS_INFINITY_TIMER)
#define BUG_MINUS_INFINITY_TIMER 1 /* findings/minus-infinity-timer */
#else
#define BUG_MINUS_INFINITY_TIMER 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_SET_RESULT_ON_SHIELD)
#define BUG_SET_RESULT_ON_SHIELD 1 /* findings/set-result-on-shield */
#else
#define BUG_SET_RESULT_ON_SHIELD 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_GROUP_EXIT_AT_CLOSE)
#define BUG_GROUP_EXIT_AT_CLOSE 1 /* findings/group-exit-pending-at-close */
#else
#define BUG_GROUP_EXIT_AT_CLOSE 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_WAIT_LEAK)
#define BUG_WAIT_LEAK 1 /* findings/wait-pending-at-close */
#else
#define BUG_WAIT_LEAK 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_WAIT_CANCEL_AFTER_CLOSE)
#define BUG_WAIT_CANCEL_AFTER_CLOSE 1 /* findings/wait-cancel-after-close */
#else
#define BUG_WAIT_CANCEL_AFTER_CLOSE 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_SENDFILE_NOT_A_SOCKET)
#define BUG_SENDFILE_NOT_A_SOCKET 1 /* findings/sock-sendfile-not-a-socket */
#else
#define BUG_SENDFILE_NOT_A_SOCKET 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_SHIELD_LENDS_TAKEN_VALUE)
#define BUG_SHIELD_LENDS_TAKEN_VALUE 1 /* findings/shield-lends-taken-value */
#else
#define BUG_SHIELD_LENDS_TAKEN_VALUE 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_SET_PROTOCOL_IN_GET_BUFFER)
#define BUG_SET_PROTOCOL_IN_GET_BUFFER 1 /* findings/set-protocol-in-get-buffer */
#else
#define BUG_SET_PROTOCOL_IN_GET_BUFFER 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_SET_PROTOCOL_ON_SUBPROCESS_PIPE)
#define BUG_SET_PROTOCOL_ON_SUBPROCESS_PIPE 1 /* findings/set-protocol-on-subprocess-pipe */
#else
#define BUG_SET_PROTOCOL_ON_SUBPROCESS_PIPE 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_LOOKUP_PENDING_AT_LAST_UNREF)
#define BUG_LOOKUP_PENDING_AT_LAST_UNREF 1 /* findings/lookup-pending-at-last-unref */
#else
#define BUG_LOOKUP_PENDING_AT_LAST_UNREF 0
#endif
/* Open bugs (found, not fixed yet) go here, off unless asked for, so that
 * fuzzing finds something new meanwhile:
 *   #if defined(FUZZ_OPEN_BUGS) || defined(FUZZ_BUG_<NAME>)
 * and move up to the others with their fix. fuzz_stream_reader.c has the
 * same switches for what it meets too. */
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_READEXACTLY_HUGE)
#define BUG_READEXACTLY_HUGE 1 /* findings/readexactly-size-max */
#else
#define BUG_READEXACTLY_HUGE 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_READ_PENDING_AT_CLOSE)
#define BUG_READ_PENDING_AT_CLOSE 1 /* findings/stream-read-pending-at-close */
#else
#define BUG_READ_PENDING_AT_CLOSE 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_CONNECT_PENDING_AT_CLOSE)
#define BUG_CONNECT_PENDING_AT_CLOSE 1 /* findings/connection-pending-at-close */
#else
#define BUG_CONNECT_PENDING_AT_CLOSE 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_SERVER_PENDING_AT_CLOSE)
#define BUG_SERVER_PENDING_AT_CLOSE 1 /* findings/server-pending-at-close, unix-server-pending-at-close */
#else
#define BUG_SERVER_PENDING_AT_CLOSE 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_ACCEPTED_PENDING_AT_CLOSE)
#define BUG_ACCEPTED_PENDING_AT_CLOSE 1 /* findings/accepted-socket-pending-at-close */
#else
#define BUG_ACCEPTED_PENDING_AT_CLOSE 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_GET_BUFFER_REENTRY)
#define BUG_GET_BUFFER_REENTRY 1 /* findings/get-buffer-pause-reading */
#else
#define BUG_GET_BUFFER_REENTRY 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_SET_PROTOCOL_ON_STREAM)
#define BUG_SET_PROTOCOL_ON_STREAM 1 /* findings/set-protocol-on-stream-transport */
#else
#define BUG_SET_PROTOCOL_ON_STREAM 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_DGRAM_PENDING_AT_CLOSE)
#define BUG_DGRAM_PENDING_AT_CLOSE 1 /* findings/datagram-endpoint-pending-at-close */
#else
#define BUG_DGRAM_PENDING_AT_CLOSE 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_CLIENT_TASK_OF_CLOSED_LOOP)
#define BUG_CLIENT_TASK_OF_CLOSED_LOOP 1 /* findings/client-task-of-closed-loop */
#else
#define BUG_CLIENT_TASK_OF_CLOSED_LOOP 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_WRITE_LIMITS_OVERFLOW)
#define BUG_WRITE_LIMITS_OVERFLOW 1 /* findings/write-buffer-limits-overflow */
#else
#define BUG_WRITE_LIMITS_OVERFLOW 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_SIGPIPE)
#define BUG_SIGPIPE 1 /* findings/transport-write-sigpipe */
#else
#define BUG_SIGPIPE 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_BUFFER_COUNT_HUGE)
#define BUG_BUFFER_COUNT_HUGE 1 /* findings/writev-count-size-max */
#else
#define BUG_BUFFER_COUNT_HUGE 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_SUBPROCESS_EXIT_AT_CLOSE)
#define BUG_SUBPROCESS_EXIT_AT_CLOSE 1 /* findings/subprocess-exit-pending-at-close */
#else
#define BUG_SUBPROCESS_EXIT_AT_CLOSE 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_PASS_FDS_COUNT_HUGE)
#define BUG_PASS_FDS_COUNT_HUGE 1 /* findings/pass-fds-count-size-max */
#else
#define BUG_PASS_FDS_COUNT_HUGE 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_PASS_FD_INT_MAX)
#define BUG_PASS_FD_INT_MAX 1 /* findings/pass-fd-int-max-blocks */
#else
#define BUG_PASS_FD_INT_MAX 0
#endif
#if FUZZ_BUG_ALL || defined(FUZZ_BUG_NEGATIVE_PASS_FD)
#define BUG_NEGATIVE_PASS_FD 1 /* findings/negative-pass-fd */
#else
#define BUG_NEGATIVE_PASS_FD 0
#endif

/* ------------------------------------------------------------------------ */
/* Limits: every input is bounded in work and in time.                        */

#define FUZZ_MAX_INPUT 8192      /* bytes of an input looked at */
#define MAX_TOP_OPS 256     /* ops of the top-level program */
#define MAX_TOTAL_OPS 2048  /* ops of all programs of one input, callbacks included */
#define MAX_DEPTH 3         /* nesting of re-entrant callbacks */
#define MAX_THREAD_OPS 64   /* ops of the second thread's program */
#define NSLOTS 32
#define NSTALE 32
#define NKEEP 8192
#define NVALUES 2048
#define NCLOSURES 2048
#define NDEPS 4096
#define TASKBUF 8192        /* larger than the tasks one input can make */
#define MAX_ARRAY 8         /* futures passed to gather, wait, as_completed */
#define WATCH_PERIOD 0.0005 /* seconds between two watchdog checks */
#define DEADLINE_NS 5000000ULL /* a run older than 5 ms winds down */

#define ATOMIC_ADD(p, n) __atomic_add_fetch((p), (n), __ATOMIC_SEQ_CST)
#define ATOMIC_LOAD(p) __atomic_load_n((p), __ATOMIC_SEQ_CST)
#define ATOMIC_STORE(p, v) __atomic_store_n((p), (v), __ATOMIC_SEQ_CST)

static int g_verbose; /* FUZZ_VERBOSE=1: trace the ops */
#define TRACE(...)                                                             \
  do {                                                                         \
    if (g_verbose) {                                                           \
      fprintf(stderr, "%*s", 2 * g_depth, "");                                 \
      fprintf(stderr, __VA_ARGS__);                                            \
      fputc('\n', stderr);                                                     \
    }                                                                          \
  } while (0)

static void die(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void die(const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "\nfuzz_api: ORACLE FAILED: ");
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
  fflush(stderr);
  abort();
}

static pthread_t g_main_thread;
static int on_main(void) { return pthread_equal(pthread_self(), g_main_thread) != 0; }

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ------------------------------------------------------------------------ */
/* Input reader                                                                */

typedef struct reader_s {
  const uint8_t *p;
  size_t n, pos;
} reader_t;

static uint8_t g_input[FUZZ_MAX_INPUT]; /* the input being run (programs are slices of it) */

static uint8_t rd8(reader_t *r) { return r->pos < r->n ? r->p[r->pos++] : 0; }
static int at_end(const reader_t *r) { return r->pos >= r->n; }
/* The next `len` bytes as a program of their own; the parent skips them. */
static reader_t sub_reader(reader_t *r, size_t len) {
  reader_t s;
  size_t left = r->n - r->pos;
  if (len > left) len = left;
  s.p = r->p + r->pos;
  s.n = len;
  s.pos = 0;
  r->pos += len;
  return s;
}

/* ------------------------------------------------------------------------ */
/* Object types and their ref/unref functions                                 */

enum {
  T_NONE = 0, T_LOOP, T_HANDLE, T_FUTURE, T_TASK, T_ERROR, T_LOCK, T_EVENT,
  T_COND, T_SEM, T_BARRIER, T_QUEUE, T_TIMEOUT, T_GROUP, T_RUNNER, T_ASCOMP,
  T_TRANSPORT, T_SERVER, T_STREAM, T_SUBPROCESS, T_PROCESS, T_DATAGRAM,
  T_COUNT
};
/* REF and UNREF_WRONG pick among the types before datagrams, so that old
 * inputs decode as they did; DGRAM_OP refs and unrefs datagrams. */
#define T_COUNT_BEFORE_DATAGRAM T_DATAGRAM
/* The types before the network's: the second thread picks among these as
 * it did before they came (so that old inputs decode as they did), and
 * checks the network's on top. */
#define T_COUNT_BEFORE_NETWORK T_TRANSPORT
static const char *const type_names[T_COUNT] = {
  "none", "loop", "handle", "future", "task", "error", "lock", "event",
  "condition", "semaphore", "barrier", "queue", "timeout", "task_group",
  "runner", "as_completed", "transport", "server", "stream", "subprocess", "process", "datagram"};

static int obj_ref(int type, void *p) {
  switch (type) {
  case T_LOOP: return aios_loop_ref((aios_loop_t *)p);
  case T_HANDLE: return aios_handle_ref((aios_handle_t *)p);
  case T_FUTURE: return aios_future_ref((aios_future_t *)p);
  case T_TASK: return aios_task_ref((aios_task_t *)p);
  case T_ERROR: return aios_error_ref((aios_error_t *)p);
  case T_LOCK: return aios_lock_ref((aios_lock_t *)p);
  case T_EVENT: return aios_event_ref((aios_event_t *)p);
  case T_COND: return aios_condition_ref((aios_condition_t *)p);
  case T_SEM: return aios_semaphore_ref((aios_semaphore_t *)p);
  case T_BARRIER: return aios_barrier_ref((aios_barrier_t *)p);
  case T_QUEUE: return aios_queue_ref((aios_queue_t *)p);
  case T_TIMEOUT: return aios_timeout_ref((aios_timeout_t *)p);
  case T_GROUP: return aios_task_group_ref((aios_task_group_t *)p);
  case T_RUNNER: return aios_runner_ref((aios_runner_t *)p);
  case T_ASCOMP: return aios_as_completed_ref((aios_as_completed_t *)p);
  case T_TRANSPORT: return aios_transport_ref((aios_transport_t *)p);
  case T_SERVER: return aios_server_ref((aios_server_t *)p);
  case T_STREAM: return aios_stream_ref((aios_stream_t *)p);
  case T_SUBPROCESS: return aios_subprocess_ref((aios_subprocess_t *)p);
  case T_PROCESS: return aios_process_ref((aios_process_t *)p);
  case T_DATAGRAM: return aios_datagram_ref((aios_datagram_t *)p);
  default: return AIOS_EINVAL;
  }
}

static int obj_unref(int type, void *p) {
  switch (type) {
  case T_LOOP: return aios_loop_unref((aios_loop_t *)p);
  case T_HANDLE: return aios_handle_unref((aios_handle_t *)p);
  case T_FUTURE: return aios_future_unref((aios_future_t *)p);
  case T_TASK: return aios_task_unref((aios_task_t *)p);
  case T_ERROR: return aios_error_unref((aios_error_t *)p);
  case T_LOCK: return aios_lock_unref((aios_lock_t *)p);
  case T_EVENT: return aios_event_unref((aios_event_t *)p);
  case T_COND: return aios_condition_unref((aios_condition_t *)p);
  case T_SEM: return aios_semaphore_unref((aios_semaphore_t *)p);
  case T_BARRIER: return aios_barrier_unref((aios_barrier_t *)p);
  case T_QUEUE: return aios_queue_unref((aios_queue_t *)p);
  case T_TIMEOUT: return aios_timeout_unref((aios_timeout_t *)p);
  case T_GROUP: return aios_task_group_unref((aios_task_group_t *)p);
  case T_RUNNER: return aios_runner_unref((aios_runner_t *)p);
  case T_ASCOMP: return aios_as_completed_unref((aios_as_completed_t *)p);
  case T_TRANSPORT: return aios_transport_unref((aios_transport_t *)p);
  case T_SERVER: return aios_server_unref((aios_server_t *)p);
  case T_STREAM: return aios_stream_unref((aios_stream_t *)p);
  case T_SUBPROCESS: return aios_subprocess_unref((aios_subprocess_t *)p);
  case T_PROCESS: return aios_process_unref((aios_process_t *)p);
  case T_DATAGRAM: return aios_datagram_unref((aios_datagram_t *)p);
  default: return AIOS_EINVAL;
  }
}

/* ------------------------------------------------------------------------ */
/* Closures: callback arguments carrying a sub-program of the input          */

enum { K_CALLBACK = 1, K_DONE, K_STEP, K_PRED, K_HANDLER, K_DTOR, K_WORK, K_FACTORY,
       K_PROTO, K_PFACTORY, K_CLIENT, K_SPROTO, K_SIGNAL, K_DPROTO, K_WATCH, K_IOEV,
       K_ITER };
/* A protocol's life (K_PROTO closures), which its callbacks must follow. */
enum { P_NEW = 0, P_MADE, P_LOST, P_REPLACED };
/* Ownership of something handed to the library (a value, a task's arg). */
enum { O_NONE = 0, O_PENDING, O_LIB, O_HARN, O_TAKEN, O_RESERVED };
#define CLOSURE_MAGIC 0xc105u
#define C_MAIN 1 /* the main task of aios_run / aios_runner_run */

typedef struct closure_s {
  uint32_t magic;
  int kind;
  reader_t prog;              /* consumed across calls (a step goes on) */
  int calls;
  int flags;
  int own;                    /* as a task's arg with arg_destructor */
  int has_dtor;
  int dcount;                 /* arg destructor calls, atomic */
  struct closure_s *on_free;  /* program the arg destructor runs */
  void *self;                 /* object the callback belongs to */
  int self_type;
  int dep;                    /* its task's dependency record, or -1 */
  void *awaiting;             /* what its task awaits now */
  int calls_made;             /* times the second thread scheduled it */
  /* A protocol (K_PROTO): */
  int pstate;                 /* P_* */
  unsigned pflags;            /* PF_*: the callbacks its table has */
  int via_set;                /* installed by set_protocol, not connection_made */
  int handover;               /* replaced from its own get_buffer: one buffer_updated is still its */
  int paused, eofs;
  size_t glen;                /* bytes get_buffer gave last */
  unsigned char gbuf[64];     /* get_buffer's memory */
  int batched;                /* its events come from aios_loop_take_io_events */
  /* A subprocess protocol (K_SPROTO), sharing pstate, pflags, paused: */
  int child;                  /* its spawn's plan, or -1 */
  unsigned sp_pipes, sp_lost; /* fds with a pipe; those whose pipe_connection_lost ran */
  int sp_exited;
  size_t sp_bytes[3];         /* received per fd */
  /* A signal handler (K_SIGNAL): */
  int sig;
  /* A descriptor watcher (K_WATCH), sharing pstate (P_REPLACED once
   * removed or replaced while its descriptor named the same file): */
  int wfd, wreading;
  /* A datagram protocol (K_DPROTO), sharing pstate, pflags, paused: */
  int dlost;
} closure_t;

static closure_t g_closures[NCLOSURES];
static int g_nclosures;

static closure_t *closure_new(int kind, reader_t prog) {
  closure_t *c;
  if (g_nclosures >= NCLOSURES) return NULL;
  c = &g_closures[g_nclosures++];
  memset(c, 0, sizeof *c);
  c->magic = CLOSURE_MAGIC;
  c->kind = kind;
  c->prog = prog;
  c->dep = -1;
  c->child = -1;
  return c;
}

/* A closure whose program is the next bytes: a length byte, then that many. */
static closure_t *capture(reader_t *r, int kind) {
  size_t len = rd8(r) % 48;
  return closure_new(kind, sub_reader(r, len));
}

static closure_t *as_closure(void *p) {
  uintptr_t a = (uintptr_t)p, base = (uintptr_t)g_closures;
  if (a < base || a >= base + sizeof g_closures) return NULL;
  if ((a - base) % sizeof(closure_t) != 0) return NULL;
  if (((closure_t *)p)->magic != CLOSURE_MAGIC) return NULL;
  return (closure_t *)p;
}

/* A closure is handed over with a destructor at most once: true if it
 * may be now (it is then pending until closure_commit). */
static int closure_offer(closure_t *c) {
  if (c == NULL || ATOMIC_LOAD(&c->own) != O_NONE) return 0;
  c->has_dtor = 1;
  ATOMIC_STORE(&c->own, O_PENDING);
  return 1;
}

static void closure_commit(closure_t *c, int accepted) {
  if (c == NULL || ATOMIC_LOAD(&c->own) != O_PENDING) return;
  if (accepted) {
    ATOMIC_STORE(&c->own, O_LIB);
  } else {
    if (ATOMIC_LOAD(&c->dcount) != 0)
      die("a call that failed ran the arg destructor (closure %d)", (int)(c - g_closures));
    ATOMIC_STORE(&c->own, O_HARN);
  }
}

static void value_dtor(void *p);
static void closure_dtor(void *p);

/* ------------------------------------------------------------------------ */
/* Tracked values: results, queue items, user error data                     */

#define VALUE_MAGIC 0x7a1u
typedef struct value_s {
  uint32_t magic;
  int state;     /* O_* */
  int has_dtor;  /* given with value_dtor */
  int dcount;    /* destructor calls, atomic */
  closure_t *on_free;
} value_t;

static value_t g_values[NVALUES];
static int g_nvalues;

static value_t *value_new(void) {
  value_t *v;
  if (g_nvalues >= NVALUES) return NULL;
  v = &g_values[g_nvalues++];
  memset(v, 0, sizeof *v);
  v->magic = VALUE_MAGIC;
  return v;
}

static value_t *as_value(const void *p) {
  uintptr_t a = (uintptr_t)p, base = (uintptr_t)g_values;
  if (a < base || a >= base + sizeof g_values) return NULL;
  if ((a - base) % sizeof(value_t) != 0) return NULL;
  if (((const value_t *)p)->magic != VALUE_MAGIC) return NULL;
  return (value_t *)p;
}

static void value_commit(value_t *v, int accepted) {
  if (v == NULL) return;
  /* Taken already: a callback the call ran (a destructor, say) moved it
   * out before the call returned. */
  if (ATOMIC_LOAD(&v->state) == O_TAKEN) {
    if (!accepted) die("a call that failed handed out the value it was given (value %d)", (int)(v - g_values));
    return;
  }
  if (accepted) {
    ATOMIC_STORE(&v->state, O_LIB);
  } else {
    if (ATOMIC_LOAD(&v->dcount) != 0)
      die("a call that failed (so the caller keeps the value) ran its destructor (value %d)",
          (int)(v - g_values));
    ATOMIC_STORE(&v->state, O_HARN);
  }
}

/* to_thread results, made by workers: each freed exactly once. */
#define NWORK_RESULTS 2048
typedef struct work_result_s { int freed; } work_result_t;
static work_result_t g_work_results[NWORK_RESULTS];
static int g_work_results_made;

static work_result_t *as_work_result(const void *p) {
  uintptr_t a = (uintptr_t)p, base = (uintptr_t)g_work_results;
  if (a < base || a >= base + sizeof(work_result_t) * (size_t)ATOMIC_LOAD(&g_work_results_made)) return NULL;
  if ((a - base) % sizeof(work_result_t) != 0) return NULL;
  return (work_result_t *)p;
}

static void work_result_dtor(void *p) {
  work_result_t *w;
  if (p == NULL) return; /* a failed work: the library frees "nothing" */
  w = as_work_result(p);
  if (w == NULL) die("to_thread result destructor got %p, not a result", p);
  if (ATOMIC_ADD(&w->freed, 1) > 1) die("to_thread result %d freed twice", (int)(w - g_work_results));
}

/* ------------------------------------------------------------------------ */
/* Harness state of one input                                                 */

typedef struct slot_s {
  int type;
  void *p;
} slot_t;

enum { F_TOP = 0, F_CALLBACK, F_DONE, F_STEP, F_PRED, F_HANDLER, F_DTOR, F_FACTORY,
       F_PROTO, F_PFACTORY, F_CLIENT, F_SPROTO, F_SIGNAL, F_DPROTO, F_WATCH, F_IOEV,
       F_ITER };
/* What a callback got, borrowed for its call: ops may name it ("ctx"). */
typedef struct frame_s {
  int kind;
  aios_task_t *task;
  aios_future_t *future;
  aios_loop_t *loop;
  aios_error_t *error;
  aios_handle_t *handle;
  aios_transport_t *transport; /* a protocol callback's */
  aios_stream_t *stream;       /* a stream server's client callback's */
  aios_subprocess_t *subprocess; /* a subprocess protocol callback's */
  aios_datagram_t *datagram;   /* a datagram protocol callback's */
  closure_t *closure;
  void *self;
  int self_type;
} frame_t;

static slot_t g_slots[NSLOTS];
static slot_t g_keep[NKEEP]; /* references whose release waits for the teardown */
static int g_nkeep;
static slot_t g_stale[NSTALE]; /* handles whose last harness reference is gone */
static int g_nstale;
static frame_t g_frames[MAX_DEPTH + 2];
static int g_depth;
static int g_budget;
static int g_teardown;
static int g_wind_down;   /* finish everything: programs stop, steps return */
static int g_in_run;      /* a run of ours is on the stack */
static uint64_t g_run_id, g_run_start, g_watch_armed;
static int g_run_kind;
static int g_run_sets_handler;
static aios_loop_t *g_watch_loop;
static int g_watch_owns_ref;
static unsigned g_input_gen;
static aios_task_t *g_taskbuf[TASKBUF];
#define N_OBJECT_TYPES 12 /* AIOS_OBJECT_LOOP .. AIOS_OBJECT_SUBPROCESS */
static long g_baseline[N_OBJECT_TYPES];

enum { RUN_DIRECT = 1, RUN_RUNNER };

static frame_t *cur(void) { return &g_frames[g_depth]; }

static int can_run_programs(void) {
  return on_main() && !g_teardown && !g_wind_down && g_budget > 0 && g_depth < MAX_DEPTH;
}

static frame_t *push_frame(int kind) {
  frame_t *f;
  g_depth++;
  f = &g_frames[g_depth];
  memset(f, 0, sizeof *f);
  f->kind = kind;
  return f;
}
static void pop_frame(void) { g_depth--; }

static int holders(const void *p) {
  int i, n = 0;
  for (i = 0; i < NSLOTS; i++) n += g_slots[i].p == p;
  for (i = 0; i < g_nkeep; i++) n += g_keep[i].p == p;
  return n;
}

static void keep_push(int type, void *p) {
  if (g_nkeep >= NKEEP) die("harness limit: keep list full");
  g_keep[g_nkeep].type = type;
  g_keep[g_nkeep].p = p;
  g_nkeep++;
}

static void stale_push(int type, void *p) {
  g_stale[g_nstale % NSTALE].type = type;
  g_stale[g_nstale % NSTALE].p = p;
  g_nstale++;
}

static void slot_put(int type, void *p) {
  int i;
  if (p == NULL) return;
  for (i = 0; i < NSLOTS; i++) {
    if (g_slots[i].p == NULL) {
      g_slots[i].type = type;
      g_slots[i].p = p;
      return;
    }
  }
  keep_push(type, p);
}

/* ------------------------------------------------------------------------ */
/* Dependencies between futures and tasks, to stay clear of await cycles    */
/* (BUG_AWAIT_CYCLES: a cancelled cycle overflows the stack).                 */

enum { D_PLAIN = 1, D_TASK, D_DERIVED };
typedef struct dep_s {
  void *value;          /* the handle it is known by (may change for tasks) */
  int kind;
  closure_t *task;      /* D_TASK */
  int unknown;          /* D_DERIVED over something we do not know */
  int nchild;
  int child[MAX_ARRAY * 2];
  unsigned mark;
} dep_t;
static dep_t g_deps[NDEPS];
static int g_ndeps;
static unsigned g_mark;

static int dep_add(void *value, int kind) {
  dep_t *d;
  if (g_ndeps >= NDEPS) return -1;
  d = &g_deps[g_ndeps];
  memset(d, 0, sizeof *d);
  d->value = value;
  d->kind = kind;
  return g_ndeps++;
}

static int dep_find(const void *value) {
  int i;
  if (value == NULL) return -1;
  for (i = g_ndeps - 1; i >= 0; i--)
    if (g_deps[i].value == value) return i;
  return -1;
}

static void dep_child(int d, int child) {
  if (d < 0) return;
  if (child < 0 || g_deps[d].nchild >= (int)(sizeof g_deps[d].child / sizeof(int))) {
    g_deps[d].unknown = 1;
    return;
  }
  g_deps[d].child[g_deps[d].nchild++] = child;
}

static int dep_derived(void *value, void *const *children, size_t n) {
  size_t i;
  int d = dep_add(value, D_DERIVED);
  for (i = 0; i < n; i++) dep_child(d, dep_find(children[i]));
  return d;
}

/* Whether waiting on record `i` may end up waiting on the task of `target`
 * (or on something unknown: then assume it does). */
static int dep_reaches(int i, const closure_t *target, int *budget) {
  dep_t *d;
  int k;
  if (i < 0 || --*budget <= 0) return 1;
  d = &g_deps[i];
  if (d->mark == g_mark) return 0;
  d->mark = g_mark;
  switch (d->kind) {
  case D_PLAIN: return 0;
  case D_TASK:
    if (d->task == NULL || d->task == target) return 1;
    return d->task->awaiting != NULL && dep_reaches(dep_find(d->task->awaiting), target, budget);
  default:
    if (d->unknown) return 1;
    for (k = 0; k < d->nchild; k++)
      if (dep_reaches(d->child[k], target, budget)) return 1;
    return 0;
  }
}

static int await_is_safe(const closure_t *task, const void *future) {
  int budget = 100000;
  if (BUG_AWAIT_CYCLES || future == NULL) return 1;
  if (task == NULL) return 0;
  g_mark++;
  return !dep_reaches(dep_find(future), task, &budget);
}

/* ------------------------------------------------------------------------ */
/* Arguments                                                                  */

enum { PK_SLOT, PK_NULL, PK_STALE, PK_FORGED, PK_CTX };

static void *ctx_obj(int type) {
  int d;
  for (d = g_depth; d > 0; d--) {
    frame_t *f = &g_frames[d];
    switch (type) {
    case T_TASK: if (f->task) return f->task; break;
    case T_FUTURE:
      if (f->future) return f->future;
      if (f->task) return aios_task_as_future(f->task);
      break;
    case T_LOOP: if (f->loop) return f->loop; break;
    case T_ERROR: if (f->error) return f->error; break;
    case T_HANDLE: if (f->handle) return f->handle; break;
    case T_TRANSPORT: if (f->transport) return f->transport; break;
    case T_STREAM: if (f->stream) return f->stream; break;
    case T_SUBPROCESS: if (f->subprocess) return f->subprocess; break;
    case T_DATAGRAM: if (f->datagram) return f->datagram; break;
    default: break;
    }
    if (f->self && f->self_type == type) return f->self;
  }
  return NULL;
}

/* A pointer that names no live object: it must always be refused. */
static void *forge(reader_t *r) {
  uint8_t b = rd8(r);
  uint64_t live = 0;
  int i, k = b >> 3;
  for (i = 0; i < NSLOTS; i++) {
    slot_t *s = &g_slots[(k + i) % NSLOTS];
    if (s->p) { live = (uint64_t)(uintptr_t)s->p; break; }
  }
  switch (b & 7) {
  case 0: return (void *)(uintptr_t)(1 + k);                    /* small integers: generation 0 */
  case 1: return (void *)(uintptr_t)UINTPTR_MAX;
  case 2: return (void *)(uintptr_t)0xdeadbeefdeadbeefULL;
  case 3: return live ? (void *)(uintptr_t)(live ^ (1ULL << 63)) : (void *)(uintptr_t)7; /* generation never reached */
  case 4: /* a live slot index under a generation it had before: dead for good */
    return live >> 32 ? (void *)(uintptr_t)(live - (1ULL << 32)) : (void *)(uintptr_t)3;
  case 5: return (void *)g_slots;                               /* a real address */
  case 6: return (void *)(uintptr_t)(0x8000000000000000ULL | ((uint64_t)k << 32) | (uint64_t)(b * 3u + 1u));
  default: return (void *)(uintptr_t)((live & 0xffffffff00000000ULL) | 0x00ffffffULL); /* an index never used */
  }
}

/* Which call made a future (by handle value; no references held), for the
 * guards of bugs that depend on it. */
enum { FK_NONE = 0, FK_SLEEP, FK_SHIELD, FK_GROUP, FK_GROUP_LOOP, FK_LOOP_NEW, FK_STREAM_TRANSPORT,
       FK_SUBPROCESS_PIPE };
#define NMADE 1024
static struct { const void *p; int kind; } g_made[NMADE];
static int g_nmade;
static void made_by(const void *p, int kind) {
  if (p && g_nmade < NMADE) { g_made[g_nmade].p = p; g_made[g_nmade].kind = kind; g_nmade++; }
}
/* Futures a shield follows (BUG_SHIELD_LENDS_TAKEN_VALUE). */
static const void *g_shielded[NMADE];
static int g_nshielded;
static int is_shielded(const void *p) {
  int i;
  for (i = 0; p && i < g_nshielded; i++)
    if (g_shielded[i] == p) return 1;
  return 0;
}

static int made_kind(const void *p) {
  int i;
  for (i = g_nmade - 1; p && i >= 0; i--)
    if (g_made[i].p == p) return g_made[i].kind;
  return FK_NONE;
}

/* Whether the loop a task group was made on is open (its handle alive and
 * the loop not closed). */
static int group_loop_open(const void *group) {
  int i;
  for (i = g_nmade - 2; group && i >= 0; i--)
    if (g_made[i].p == group && g_made[i].kind == FK_GROUP && g_made[i + 1].kind == FK_GROUP_LOOP)
      return aios_loop_is_closed((const aios_loop_t *)g_made[i + 1].p) == 0;
  return 0;
}

/* Whether `p` names a live task (any future function accepts one). */
static int is_task(void *p) { return p != NULL && aios_task_cancelling((aios_task_t *)p) >= 0; }

static int type_matches(int have, int want) {
  return have == want || (want == T_FUTURE && have == T_TASK);
}

static void *pick_obj_(reader_t *r, int type, int *how);
static const char *const how_names[] = {"slot", "NULL", "stale", "forged", "ctx"};
static void *pick_obj(reader_t *r, int type, int *how) {
  int dummy;
  void *p;
  if (how == NULL) how = &dummy;
  p = pick_obj_(r, type, how);
  TRACE("  %s %p (%s)", type_names[type], p, how_names[*how]);
  return p;
}

/* An object argument of type `type`: mostly one of ours of that type, else
 * of another type, NULL, stale, forged, or what the callback got. */
static void *pick_obj_(reader_t *r, int type, int *how) {
  uint8_t b = rd8(r);
  int mode = b & 15, start = b >> 4, k, dummy;
  void *ctx;
  if (how == NULL) how = &dummy;
  *how = PK_SLOT;
  if (mode < 10) {
    ctx = ctx_obj(type);
    if (ctx && (mode & 1) && g_depth > 0) { *how = PK_CTX; return ctx; }
    for (k = 0; k < NSLOTS; k++) {
      slot_t *s = &g_slots[(start * 2 + k) % NSLOTS];
      if (s->p && type_matches(s->type, type))
        return s->type == T_TASK && type == T_FUTURE ? (void *)aios_task_as_future((aios_task_t *)s->p) : s->p;
    }
    *how = PK_NULL;
    return NULL;
  }
  if (mode < 12) { /* whatever sits in a slot, likely of another type */
    slot_t *s = &g_slots[(start * 2 + mode) % NSLOTS];
    if (s->p) return s->p;
    *how = PK_NULL;
    return NULL;
  }
  if (mode == 12) { *how = PK_NULL; return NULL; }
  if (mode == 13) {
    if (g_nstale > 0) {
      void *p = g_stale[start % (g_nstale < NSTALE ? g_nstale : NSTALE)].p;
      *how = holders(p) ? PK_SLOT : PK_STALE;
      return p;
    }
    *how = PK_NULL;
    return NULL;
  }
  if (mode == 14) { *how = PK_FORGED; return forge(r); }
  ctx = ctx_obj(type);
  *how = ctx ? PK_CTX : PK_NULL;
  return ctx;
}

static int pick_slot_index(reader_t *r) { return rd8(r) % NSLOTS; }

/* Times in seconds: mostly tiny (real sleeps stay under about 1 ms), else
 * the odd numbers the library must take without trapping. */
static const double odd_doubles[] = {
  0.0, -0.0, -1.0, NAN, INFINITY, -INFINITY, DBL_MAX, -DBL_MAX, 1e300, -1e300,
  2e16, 9.3e15, 1e9, 5e-324, DBL_MIN, DBL_EPSILON, 1e-300, (double)INT_MAX,
  (double)UINT_MAX, 9.2233720368547758e18, 1.8446744073709552e19, 4.5e15,
  31536000.0, -NAN, 0.1, 1e-9, -2e16, 1e18};
#define N_ODD_DOUBLES (sizeof odd_doubles / sizeof odd_doubles[0])

static double pick_double_(reader_t *r) {
  uint8_t b = rd8(r);
  if (b < 200) return (double)(b % 11) * 0.0001 - (b % 7 == 0 ? 0.0003 : 0.0);
  return odd_doubles[(b - 200) % N_ODD_DOUBLES];
}
static double pick_double(reader_t *r) {
  double d = pick_double_(r);
  TRACE("  double %g", d);
  return d;
}

/* BUG_FAR_TIMERS: a timer deadline far in the future traps when the loop
 * arms its wake-up timer (call_later(1e300), call_at(DBL_MAX),
 * call_later(2e16), the same through sleep, wait, as_completed and wait_for
 * timeouts, and sleep(INFINITY) after another timer fired). Off: far
 * deadlines become 1e9 s. */
static double clamp_delay(double d, int infinity_traps) {
  if (!BUG_FAR_TIMERS && isfinite(d) && d > 1e9) return 1e9;
  if (!BUG_FAR_TIMERS && infinity_traps && isinf(d) && d > 0) return 1e9;
  /* BUG_MINUS_INFINITY_TIMER (findings/minus-infinity-timer): a deadline of
   * -INFINITY stops the loop from arming its wake-up timer: every other
   * timer stalls and the loop blocks for ever. */
  if (!BUG_MINUS_INFINITY_TIMER && isinf(d) && d < 0) return -1e9;
  return d;
}

static double pick_delay(reader_t *r, int infinity_traps) {
  return clamp_delay(pick_double(r), infinity_traps);
}

/* An absolute loop time: now plus a delay, or an odd number. */
static double pick_when(reader_t *r, aios_loop_t *loop) {
  uint8_t b = rd8(r);
  double now = 0, d;
  if (loop) aios_loop_time(loop, &now);
  if (b < 200) return now + (double)(b % 11) * 0.0001 - 0.0002;
  d = odd_doubles[(b - 200) % N_ODD_DOUBLES];
  TRACE("  when %g", d);
  if (!BUG_FAR_TIMERS && isfinite(d) && d > now + 1e9) d = now + 1e9;
  if (!BUG_MINUS_INFINITY_TIMER && isinf(d) && d < 0) d = -1e9; /* as in clamp_delay */
  return d;
}

static int pick_int(reader_t *r) {
  static const int t[] = {0, 1, 2, 3, -1, -2, INT_MAX, INT_MIN, 100, 7, 4, 5, 16, -100, INT_MAX - 1, 1 << 20};
  return t[rd8(r) % (sizeof t / sizeof t[0])];
}
static unsigned pick_uint(reader_t *r) {
  static const unsigned t[] = {0, 1, 2, 3, 4, 5, UINT_MAX, INT_MAX, (unsigned)INT_MAX + 1u, 1024, 1025, 100, UINT_MAX - 1};
  return t[rd8(r) % (sizeof t / sizeof t[0])];
}
static long pick_long(reader_t *r) {
  static const long t[] = {0, 1, 2, 3, -1, LONG_MAX, LONG_MIN, 100, 5, INT_MAX, (long)INT_MAX + 1};
  return t[rd8(r) % (sizeof t / sizeof t[0])];
}
static long long pick_llong(reader_t *r) {
  static const long long t[] = {0, 1, -1, 2, LLONG_MAX, LLONG_MIN, 42, 7, -7, 3};
  return t[rd8(r) % (sizeof t / sizeof t[0])];
}
static size_t pick_size(reader_t *r) {
  static const size_t t[] = {0, 1, 2, 3, 4, 8, 1, 2, SIZE_MAX, SIZE_MAX / 2, (size_t)1 << 63, (size_t)1 << 31, 16, 64};
  return t[rd8(r) % (sizeof t / sizeof t[0])];
}
static int pick_code(reader_t *r) {
  static const int t[] = {
    AIOS_EINVAL, AIOS_EBADHANDLE, AIOS_ECLOSED, AIOS_EWRONGTHREAD, AIOS_ERUNNING, AIOS_ENOLOOP,
    AIOS_EWRONGLOOP, AIOS_EBUSY, AIOS_ENOMEM, AIOS_ENOTIMPL, AIOS_ESTEP, AIOS_ENOTACQUIRED,
    AIOS_ERELEASED, AIOS_ECANCELLED, AIOS_ETIMEOUT, AIOS_EINVALIDSTATE, AIOS_EINCOMPLETE,
    AIOS_ELIMIT, AIOS_EBROKENBARRIER, AIOS_EQUEUEEMPTY, AIOS_EQUEUEFULL, AIOS_EQUEUESHUTDOWN,
    AIOS_EUSER, AIOS_EGROUP, 0, 1, -EPIPE, -ECONNRESET, -1, INT_MIN, INT_MAX, -3000, -3031,
    -4095, -ENOMEM, 3000, -3019, -EAGAIN};
  return t[rd8(r) % (sizeof t / sizeof t[0])];
}

static char g_long_string[3000];
static const char *pick_str(reader_t *r) {
  switch (rd8(r) % 8) {
  case 0: return NULL;
  case 1: return "";
  case 2: return "x";
  case 3: return "fuzz name";
  case 4: return g_long_string;
  case 5: return "\xff\xfe\xc0\x80 bad utf-8";
  case 6: return "%s%n%x%p";
  default: return "m";
  }
}

/* A value for a result or an item: tracked with our destructor (sometimes
 * one that runs a program when freed), tracked without one, NULL or a
 * plain integer. */
static value_t *pick_value(reader_t *r, void **ptr, aios_destructor_fn *dtor) {
  uint8_t b = rd8(r);
  value_t *v;
  *ptr = NULL;
  *dtor = NULL;
  if ((b & 7) == 6) return NULL;
  if ((b & 7) == 7) { *ptr = (void *)(uintptr_t)(b >> 3); return NULL; }
  v = value_new();
  if (v == NULL) return NULL;
  v->has_dtor = (b & 7) != 5;
  if ((b & 0x18) == 0x18) v->on_free = capture(r, K_DTOR);
  v->state = O_PENDING;
  *ptr = v;
  *dtor = v->has_dtor ? value_dtor : NULL;
  return v;
}

/* ------------------------------------------------------------------------ */
/* Forward declarations                                                       */

static int run_program(reader_t *prog);
static void cb_sched(void *arg);
static void cb_done(aios_future_t *future, void *arg);
static void cb_done_other(aios_future_t *future, void *arg);
static int step_fn(aios_task_t *task, aios_future_t *awaited, void *arg);
static int pred_fn(void *arg);
static void exc_handler(aios_loop_t *loop, const aios_exception_context_t *context, void *arg);
static int work_fn(void *arg, void **result);
static void release_value(int type, void *p);
static void drain_loop(aios_loop_t *loop);
static void drain_children(aios_loop_t *loop);
static int spawned_on(const aios_loop_t *loop);
static void watchdog_cb(void *arg);
static void count_callback(int kind);
static void finish_waits(void);
static int is_wait(const void *p);
static int wait_cancel_is_guarded(void *f);
static int pending_exits(aios_loop_t *loop);
static int pending_guarded(aios_loop_t *loop);
static void cancel_before_close(aios_loop_t *loop);
static void cb_stop(void *arg);
static int take_library_value(void *value, aios_destructor_fn dtor, const char *what);
static void harvest(void);
static void sock_teardown(void);
static void record_dport(aios_datagram_t *d);
static void sock_fd_closing(int k);
static int sock_file_busy(int k);
static void sock_check_all(void);
static int sock_take_op(void *f, uint8_t b);
static void sock_cancelled(void *f, int rc);


/* Takes over a value the library handed out with its destructor (take_result,
 * get_nowait): the caller frees it now, as a user would. */
static void take_over(void *value, aios_destructor_fn dtor, const char *what) {
  value_t *v = as_value(value);
  if (dtor == NULL) return; /* lent, or given without destructor */
  if (dtor == value_dtor) {
    if (v == NULL) die("%s handed out our destructor with %p, a value never given", what, value);
    /* Pending: the call that hands it over has not returned yet. */
    if (ATOMIC_LOAD(&v->state) != O_LIB && ATOMIC_LOAD(&v->state) != O_PENDING)
      die("%s handed out value %d, which the library does not own (state %d)", what,
          (int)(v - g_values), v->state);
    ATOMIC_STORE(&v->state, O_TAKEN);
    value_dtor(value);
    return;
  }
  if (dtor == work_result_dtor || dtor == closure_dtor) { dtor(value); return; }
  /* The library's own results: bytes, address lists, objects. */
  if (take_library_value(value, dtor, what)) return;
  die("%s handed out destructor %p, which the harness never gave", what, (void *)(uintptr_t)dtor);
}

/* A value lent by the library (future_result): it must still be alive. */
static void check_lent(void *value, const char *what) {
  value_t *v = as_value(value);
  if (v && ATOMIC_LOAD(&v->dcount) != 0)
    die("%s lent value %d, which was already freed", what, (int)(v - g_values));
}

static void check_string(const char *s) {
  if (s) (void)strlen(s); /* ASan checks the bytes are live */
}

/* Query results for a forged handle must be errors. */
static void expect_refused(int how, long rc, const char *what) {
  if (how == PK_FORGED && rc >= 0) die("%s accepted a forged handle (%ld)", what, rc);
}

/* ------------------------------------------------------------------------ */
/* Task options                                                               */

typedef struct options_buf_s {
  aios_task_options_t o;
  char pad[16]; /* room for a caller whose struct is newer than ours */
} options_buf_t;

/* Task options for closure `c` (NULL, or of several sizes); marks the
 * closure pending when the library is to free it. */
/* Whether an options struct of `size` bytes covers `field` (the library
 * reads only those). */
#define OPTIONS_COVER(size, field)                                             \
  ((size) >= offsetof(aios_task_options_t, field) + sizeof(((aios_task_options_t *)0)->field))

/* Task options for closure `c` (NULL, or of several sizes, with a context
 * value in *context): marks what the library is to free as pending; the
 * caller commits both once it knows whether the task was made. */
static aios_task_options_t *pick_options(reader_t *r, options_buf_t *buf, closure_t *c, value_t **context) {
  static const size_t sizes[] = {sizeof(aios_task_options_t), sizeof(aios_task_options_t), 0,
                                 sizeof(aios_task_options_t) + 8, 8, 16, 24, 1,
                                 offsetof(aios_task_options_t, context),
                                 offsetof(aios_task_options_t, context_destructor),
                                 sizeof(aios_task_options_t), sizeof(aios_task_options_t)};
  uint8_t b = rd8(r);
  size_t size;
  *context = NULL;
  memset(buf, 0, sizeof *buf);
  if ((b & 3) == 0) return NULL;
  size = sizes[rd8(r) % (sizeof sizes / sizeof sizes[0])];
  buf->o.size = size;
  buf->o.name = pick_str(r);
  buf->o.eager = (b & 0x20) ? ((b & 0x40) ? -1 : 1) : 0;
  if (c && !(b & 0x80)) {
    buf->o.arg_destructor = closure_dtor;
    if (OPTIONS_COVER(size, arg_destructor)) closure_offer(c);
  }
  if (b & 0x10) {
    *context = pick_value(r, &buf->o.context, &buf->o.context_destructor);
    /* Not covered: never read, never freed; set anyway to catch a read. */
    if (*context && !OPTIONS_COVER(size, context_destructor)) (*context)->has_dtor = 0;
  }
  return &buf->o;
}

/* ------------------------------------------------------------------------ */
/* Runs: bounded by a watchdog timer                                          */

static int cancel_all_tasks(aios_loop_t *loop) {
  int n = aios_all_tasks(loop, g_taskbuf, TASKBUF), i, m;
  aios_task_t **copy;
  if (n <= 0) return n;
  if (n > TASKBUF) die("harness limit: more than %d tasks", TASKBUF);
  /* A copy: the unrefs below may run programs that use g_taskbuf. */
  m = n;
  copy = (aios_task_t **)malloc(sizeof *copy * (size_t)m);
  memcpy(copy, g_taskbuf, sizeof *copy * (size_t)m);
  for (i = 0; i < m; i++) {
    aios_task_cancel(copy[i], NULL);
    aios_task_unref(copy[i]);
  }
  free(copy);
  return n;
}

/* The watchdog runs every WATCH_PERIOD on the loop being run. Past the
 * deadline it winds down (programs stop, every task is cancelled, so every
 * step returns); for a loop we run ourselves it then stops the loop. */
static void watchdog_cb(void *arg) {
  uint64_t elapsed;
  if ((uint64_t)(uintptr_t)arg != g_run_id || !g_in_run || g_watch_loop == NULL) return;
  elapsed = now_ns() - g_run_start;
  if (elapsed > DEADLINE_NS) {
    g_wind_down = 1;
    cancel_all_tasks(g_watch_loop);
  }
  if ((elapsed > 2 * DEADLINE_NS && g_run_kind == RUN_DIRECT) || elapsed > 100 * DEADLINE_NS)
    aios_loop_stop(g_watch_loop);
  aios_loop_call_later(g_watch_loop, WATCH_PERIOD, watchdog_cb, arg, NULL, NULL);
}

/* `owned`: the caller hands us one reference to the loop for the run. */
static void arm_watchdog(aios_loop_t *loop, int owned) {
  g_watch_armed = g_run_id;
  g_watch_loop = loop;
  g_watch_owns_ref = owned;
  aios_loop_call_later(loop, WATCH_PERIOD, watchdog_cb, (void *)(uintptr_t)g_run_id, NULL, NULL);
}

/* Called from every callback: a run that made its own loop (aios_run, a
 * runner) gets its watchdog from the first callback that runs in it. */
static void maybe_arm_watchdog(void) {
  aios_loop_t *loop = NULL;
  if (!g_in_run || g_watch_armed == g_run_id || !on_main()) return;
  g_watch_armed = g_run_id; /* even when the next call fails: try once */
  if (aios_get_running_loop(&loop) != 0 || loop == NULL) return;
  /* A loop aios_run made: quiet, the default handler prints. */
  if (g_run_sets_handler) aios_loop_set_exception_handler(loop, exc_handler, NULL);
  arm_watchdog(loop, 1);
}

/* Runs nest: a destructor that runs once a loop has stopped, still inside
 * aios_loop_run_until_complete, may run a loop of its own. Each run saves
 * the state of the one it is nested in. */
typedef struct run_state_s {
  int in_run, kind, sets_handler, owns_ref, wind_down;
  uint64_t id, start, armed;
  aios_loop_t *loop;
} run_state_t;
static run_state_t g_run_stack[8];
static int g_run_depth;
static uint64_t g_run_counter;

/* Whether a loop runs on this thread now: then every run must be refused. */
static int loop_running_here(void) {
  aios_loop_t *l = NULL;
  if (aios_get_running_loop(&l) != 0) return 0;
  aios_loop_unref(l);
  return 1;
}

static void begin_run(aios_loop_t *loop, int kind) {
  run_state_t *saved;
  if (g_run_depth >= (int)(sizeof g_run_stack / sizeof g_run_stack[0])) die("harness limit: runs nested too deep");
  saved = &g_run_stack[g_run_depth++];
  saved->in_run = g_in_run;
  saved->kind = g_run_kind;
  saved->sets_handler = g_run_sets_handler;
  saved->owns_ref = g_watch_owns_ref;
  saved->wind_down = g_wind_down;
  saved->id = g_run_id;
  saved->start = g_run_start;
  saved->armed = g_watch_armed;
  saved->loop = g_watch_loop;
  g_in_run = 1;
  g_run_id = ++g_run_counter;
  g_run_kind = kind;
  g_run_sets_handler = 0;
  g_run_start = now_ns();
  g_watch_loop = NULL;
  g_watch_owns_ref = 0;
  g_watch_armed = 0;
  if (loop) {
    /* Our own reference keeps the loop alive for the watchdog. Not with
     * BUG_LAST_LOOP_REF_IN_CALLBACK: then a callback may drop the loop's
     * last reference. */
    int owned = !BUG_LAST_LOOP_REF_IN_CALLBACK && aios_loop_ref(loop) == 0;
    arm_watchdog(loop, owned);
  }
}

static void end_run(void) {
  aios_loop_t *loop = g_watch_loop;
  int owned = g_watch_owns_ref;
  run_state_t *saved = &g_run_stack[--g_run_depth];
  g_in_run = saved->in_run;
  g_run_kind = saved->kind;
  g_run_sets_handler = saved->sets_handler;
  g_watch_owns_ref = saved->owns_ref;
  if (!g_teardown) g_wind_down = saved->wind_down;
  g_run_id = saved->id;
  g_run_start = saved->start;
  g_watch_armed = saved->armed;
  g_watch_loop = saved->loop;
  if (loop && owned) release_value(T_LOOP, loop);
}

/* Finish every task of a loop (they are cancelled until they are done), so
 * that closing it leaves no task waiting for ever (BUG_CLOSE_WITH_WAITING_TASKS). */
static void drain_loop(aios_loop_t *loop) {
  int saved = g_wind_down, round;
  if (g_in_run || !on_main() || aios_loop_is_closed(loop) != 0) return;
  finish_waits();
  cancel_before_close(loop);
  g_wind_down = 1;
  for (round = 0; round < 32; round++) {
    if (cancel_all_tasks(loop) <= 0 && pending_exits(loop) == 0) break;
    begin_run(NULL, RUN_DIRECT);
    g_watch_armed = g_run_id; /* no watchdog: one iteration */
    /* A server's creation may wait on the resolver's threads: a short wait. */
    if (pending_guarded(loop) > 0) aios_loop_call_later(loop, 0.0002, cb_stop, loop, NULL, NULL);
    else aios_loop_stop(loop);
    aios_loop_run_forever(loop);
    end_run();
  }
  drain_children(loop);
  g_wind_down = saved;
}

/* BUG_WAIT_LEAK (findings/wait-pending-at-close): an aios_wait
 * future still waiting when its loop closes (or is dropped) leaks the loop
 * and three futures; so does one finished by aios_future_set_result or
 * _set_error instead of by its futures. Off: we keep every wait future,
 * never finish one ourselves, and cancel the pending ones before any loop
 * closes (cancelling the wait itself frees all). */
#define NWAITS 512
static aios_future_t *g_waits[NWAITS];
static int g_nwaits;

static void remember_wait(aios_future_t *w) {
  if (BUG_WAIT_LEAK || w == NULL) return;
  if (g_nwaits >= NWAITS || aios_future_ref(w) != 0) die("harness limit: too many waits");
  g_waits[g_nwaits++] = w;
}

/* BUG_GROUP_EXIT_AT_CLOSE (findings/group-exit-pending-at-close): a loop
 * closed while an aios_task_group_exit future is pending (the group had a
 * task, even one already done) leaks the loop, the group, its tasks and
 * futures. Off: we keep every exit future, and a loop is closed only once
 * its exit futures are done (drain_loop runs it until they are). */
static aios_future_t *g_exits[NWAITS];
static int g_nexits;

static void remember_exit(aios_future_t *f) {
  if (BUG_GROUP_EXIT_AT_CLOSE || f == NULL) return;
  if (g_nexits >= NWAITS || aios_future_ref(f) != 0) die("harness limit: too many group exits");
  g_exits[g_nexits++] = f;
}

static int pending_on(aios_future_t *const *list, int n, aios_loop_t *loop) {
  int i, pending = 0;
  for (i = 0; i < n; i++) {
    aios_loop_t *fl = NULL;
    if (aios_future_done(list[i]) != 0) continue;
    if (aios_future_get_loop(list[i], &fl) == 0) {
      pending += fl == loop;
      aios_loop_unref(fl);
    }
  }
  return pending;
}

/* Pending exit and wait futures of `loop` (a cancelled wait finishes at
 * the loop's next iteration). */
static int pending_exits(aios_loop_t *loop) {
  return pending_on(g_exits, g_nexits, loop) + pending_on(g_waits, g_nwaits, loop) + pending_guarded(loop);
}

static int is_wait(const void *p) {
  int i;
  for (i = 0; p && i < g_nwaits; i++)
    if (g_waits[i] == p) return 1;
  return 0;
}

/* BUG_WAIT_CANCEL_AFTER_CLOSE (findings/wait-cancel-after-close): an
 * aios_wait future cancelled once, cancelled again after its loop closed:
 * SIGSEGV in Operation.cancel. Off: a wait of a closed loop is never
 * cancelled. */
static int wait_cancel_is_guarded(void *f) {
  aios_loop_t *fl = NULL;
  int closed;
  if (BUG_WAIT_CANCEL_AFTER_CLOSE || !is_wait(f)) return 0;
  closed = aios_future_get_loop((aios_future_t *)f, &fl) == 0 && aios_loop_is_closed(fl) == 1;
  if (fl) slot_put(T_LOOP, fl); /* released as ours are */
  if (closed) TRACE("  (skipped: BUG_WAIT_CANCEL_AFTER_CLOSE)");
  return closed;
}

/* Network calls still pending when their loop closes, which the library
 * does not survive (open bugs):
 *  - BUG_READ_PENDING_AT_CLOSE (findings/stream-read-pending-at-close): a
 *    stream read waiting for data leaks the loop, the read's future and
 *    the reader's waiter;
 *  - BUG_CONNECT_PENDING_AT_CLOSE (findings/connection-pending-at-close): a
 *    connection (aios_create_connection, _unix_connection, aios_open_*)
 *    whose peer listens, not yet seen by the loop, makes aios_loop_close
 *    block for ever;
 *  - BUG_SERVER_PENDING_AT_CLOSE (findings/server-pending-at-close,
 *    unix-server-pending-at-close): a server's creation (aios_create_server,
 *    aios_start_server) makes aios_loop_close block for ever; a Unix one
 *    leaks the loop, the server and its future.
 * A future cancelled first does not. Off: we keep these futures and cancel
 * the pending ones before their loop closes (all of them when we do not
 * know which loop: a runner's, aios_run's). */
static aios_future_t *g_doomed[NWAITS];
static int g_ndoomed;

static void cancel_before_close_later(aios_future_t *f, int bug) {
  if (bug || f == NULL || g_ndoomed >= NWAITS || aios_future_ref(f) != 0) return;
  g_doomed[g_ndoomed++] = f;
}

/* `loop`: the loop about to close, NULL for any. */
static void cancel_before_close(aios_loop_t *loop) {
  int i;
  for (i = 0; i < g_ndoomed; i++) {
    aios_loop_t *fl = NULL;
    int mine;
    if (aios_future_done(g_doomed[i]) != 0) continue;
    mine = loop == NULL || (aios_future_get_loop(g_doomed[i], &fl) == 0 && fl == loop);
    if (fl) aios_loop_unref(fl);
    if (!mine) continue;
    TRACE("  (cancelling %p before its loop closes: BUG_*_PENDING_AT_CLOSE)", (void *)g_doomed[i]);
    aios_future_cancel(g_doomed[i], NULL);
  }
}

/* BUG_ACCEPTED_PENDING_AT_CLOSE (findings/accepted-socket-pending-at-close):
 * a loop closed before the iteration in which aios_connect_accepted_socket's
 * connection is made (even with its future cancelled) leaks the loop, the
 * socket and libuv's descriptors, and never destroys the protocol. Off: the
 * call goes only to loops that LOOP_NEW made (which the harness alone
 * closes), and such a loop runs that iteration before it closes
 * (pending_exits, drain_loop). */
typedef struct guarded_s {
  aios_future_t *future;
  aios_loop_t *loop; /* borrowed, compared only */
  int stepped;       /* the iteration after the call ran */
} guarded_t;
static guarded_t g_guarded[NWAITS];
static int g_nguarded;

/* Runs after what the call scheduled at once (call_soon is in order). */
static void guarded_stepped(void *arg) { ((guarded_t *)arg)->stepped = 1; }

static void remember_guarded(aios_loop_t *loop, aios_future_t *f, int bug) {
  guarded_t *g;
  if (bug || f == NULL || g_nguarded >= NWAITS || aios_future_ref(f) != 0) return;
  /* Held till the teardown: the loop keeps this handle (compared above),
   * and closes only when the harness closes it. */
  if (aios_loop_ref(loop) == 0) keep_push(T_LOOP, loop);
  g = &g_guarded[g_nguarded++];
  g->future = f;
  g->loop = loop;
  g->stepped = aios_loop_call_soon(loop, guarded_stepped, g, NULL, NULL) != 0;
}

/* Such futures of `loop` still pending, or whose next iteration has not run
 * (a cancelled one still has its callback to run). */
static int pending_guarded(aios_loop_t *loop) {
  int i, n = 0;
  for (i = 0; i < g_nguarded; i++)
    n += g_guarded[i].loop == loop && (!g_guarded[i].stepped || aios_future_done(g_guarded[i].future) == 0);
  return n;
}

/* Whether such a call may go to `loop`: one the harness closes itself, or
 * one the call refuses (not a live loop). */
static int guarded_loop_ok(void *loop, int bug) {
  if (bug || aios_loop_is_closed((aios_loop_t *)loop) != 0 || made_kind(loop) == FK_LOOP_NEW) return 1;
  TRACE("  (skipped: not a loop of ours, BUG_ACCEPTED_PENDING_AT_CLOSE)");
  return 0;
}

static void finish_waits(void) {
  int i;
  for (i = 0; i < g_nwaits; i++) {
    if (aios_future_done(g_waits[i]) == 0 && !wait_cancel_is_guarded(g_waits[i])) {
      TRACE("  (cancelling wait %p)", (void *)g_waits[i]);
      aios_future_cancel(g_waits[i], NULL);
    }
  }
}

static int loop_has_tasks(aios_loop_t *loop) { return aios_all_tasks(loop, NULL, 0) > 0; }

/* A loop may be closed now without leaving a task waiting for ever. */
static int close_is_safe(aios_loop_t *loop) {
  if (BUG_CLOSE_WITH_WAITING_TASKS) return 1;
  if (aios_loop_is_closed(loop) != 0) return 1;
  finish_waits();
  if (g_depth == 0 && !g_in_run) {
    drain_loop(loop);
    return 1;
  }
  return !loop_has_tasks(loop) && pending_exits(loop) == 0;
}

/* ------------------------------------------------------------------------ */
/* Releasing references                                                       */

/* Whether an active predicate belongs to condition `p` (BUG_PREDICATE_DROPS_CONDITION: a
 * predicate that drops the last reference to its condition is a use after
 * free). */
static int in_predicate_of(const void *p) {
  int d;
  for (d = g_depth; d > 0; d--)
    if (g_frames[d].kind == F_PRED && g_frames[d].self == p) return 1;
  return 0;
}

/* Drops one harness reference, with the guards that keep known bugs away. */
static void release_value(int type, void *p) {
  int last = holders(p) == 0;
  if (p == NULL) return;
  if (last && type == T_LOOP && aios_loop_is_closed((aios_loop_t *)p) == 0) {
    /* The last loop reference dropped inside a callback (a timer pending),
     * or a loop closed (by its last unref) while a task waits for ever. */
    if (!BUG_LAST_LOOP_REF_IN_CALLBACK && (g_depth > 0 || g_in_run)) { keep_push(type, p); return; }
    if (!BUG_CLOSE_WITH_WAITING_TASKS) {
      if (g_depth > 0 || g_in_run) { keep_push(type, p); return; }
      drain_loop((aios_loop_t *)p);
    }
  }
  if (last && type == T_COND && !BUG_PREDICATE_DROPS_CONDITION && in_predicate_of(p)) { keep_push(type, p); return; }
  /* The last reference closes the loop (BUG_*_PENDING_AT_CLOSE), or the
   * runner's. */
  if (last && type == T_LOOP) cancel_before_close((aios_loop_t *)p);
  if (last && type == T_RUNNER) cancel_before_close(NULL);
  if (last && type == T_RUNNER) finish_waits();
  if (last && type == T_RUNNER && !loop_running_here()) {
    /* Dropping the last reference closes the runner: it runs its loop. */
    int saved = g_wind_down;
    g_wind_down = 1;
    begin_run(NULL, RUN_RUNNER);
    obj_unref(type, p);
    end_run();
    g_wind_down = saved;
  } else {
    obj_unref(type, p);
  }
  if (holders(p) == 0) stale_push(type, p);
}

static void drop_slot(int i) {
  slot_t s = g_slots[i];
  if (s.p == NULL) return;
  g_slots[i].p = NULL;
  g_slots[i].type = T_NONE;
  release_value(s.type, s.p);
}

/* Drops every slot holding `p`: a callback letting go of its own object. */
static void drop_all_of(const void *p) {
  int i;
  if (p == NULL) return;
  for (i = 0; i < NSLOTS; i++)
    if (g_slots[i].p == p) drop_slot(i);
}

/* ------------------------------------------------------------------------ */
/* Callbacks                                                                  */

static closure_t *check_closure(void *arg, int kind, const char *what) {
  closure_t *c;
  if (arg == NULL) return NULL;
  c = as_closure(arg);
  if (c == NULL) die("%s got arg %p, which the harness never gave", what, arg);
  if (kind && c->kind != kind) die("%s got a closure of kind %d", what, c->kind);
  if (ATOMIC_LOAD(&c->dcount) != 0) die("%s called after its arg destructor ran", what);
  return c;
}

static void cb_sched(void *arg) {
  closure_t *c = check_closure(arg, K_CALLBACK, "scheduled callback");
  frame_t *f;
  count_callback(F_CALLBACK);
  maybe_arm_watchdog();
  if (c == NULL) return;
  c->calls++;
  if (!can_run_programs()) return;
  f = push_frame(F_CALLBACK);
  f->closure = c;
  f->self = c->self;
  f->self_type = c->self_type;
  TRACE("callback %d {", (int)(c - g_closures));
  run_program(&c->prog);
  TRACE("}");
  pop_frame();
}

static void cb_stop(void *arg) {
  maybe_arm_watchdog();
  aios_loop_stop((aios_loop_t *)arg);
}

static void cb_done_common(aios_future_t *future, void *arg, const char *what) {
  closure_t *c = check_closure(arg, K_DONE, what);
  frame_t *f;
  int done;
  count_callback(F_DONE);
  maybe_arm_watchdog();
  done = aios_future_done(future);
  if (done != 1) die("%s called for a future that is not done (%d)", what, done);
  if (c == NULL) return;
  c->calls++;
  if (!can_run_programs()) return;
  f = push_frame(F_DONE);
  f->future = future;
  f->closure = c;
  f->self = c->self;
  f->self_type = c->self_type;
  TRACE("done callback %d {", (int)(c - g_closures));
  run_program(&c->prog);
  TRACE("}");
  pop_frame();
}

static void cb_done(aios_future_t *future, void *arg) { cb_done_common(future, arg, "done callback"); }
static void cb_done_other(aios_future_t *future, void *arg) { cb_done_common(future, arg, "other done callback"); }

#define NO_TERM INT_MIN /* an op that does not end a step */

static int step_fn(aios_task_t *task, aios_future_t *awaited, void *arg) {
  closure_t *c = check_closure(arg, K_STEP, "step");
  frame_t *f;
  int rc = NO_TERM;
  count_callback(F_STEP);
  maybe_arm_watchdog();
  if (!on_main()) die("a step ran on another thread");
  if (awaited && aios_future_done(awaited) != 1) die("a step got an awaited future that is not done");
  if (c) {
    c->calls++;
    c->awaiting = NULL;
    /* Learn the task's handle: the cycle check finds it by it. */
    if (c->dep < 0) {
      c->dep = dep_add(task, D_TASK);
      if (c->dep >= 0) g_deps[c->dep].task = c;
    } else {
      g_deps[c->dep].value = task;
    }
  }
  if (c && can_run_programs()) {
    f = push_frame(F_STEP);
    f->task = task;
    f->future = awaited;
    f->closure = c;
    f->self = task;
    f->self_type = T_TASK;
    TRACE("step %d awaited=%p {", (int)(c - g_closures), (void *)awaited);
    rc = run_program(&c->prog);
    TRACE("} -> %d", rc);
    pop_frame();
  }
  if (rc == NO_TERM) rc = aios_task_return(task, NULL, NULL);
  if (c && (c->flags & C_MAIN) && rc != AIOS_STEP_AWAIT) {
    g_wind_down = 1; /* aios_run's cleanup: the other tasks finish */
    finish_waits(); /* and the loop closes */
    cancel_before_close(NULL);
  }
  return rc;
}

static int pred_fn(void *arg) {
  closure_t *c = check_closure(arg, K_PRED, "predicate");
  frame_t *f;
  uint8_t b;
  int result;
  count_callback(F_PRED);
  maybe_arm_watchdog();
  if (c == NULL) return 1;
  c->calls++;
  if (!can_run_programs() || at_end(&c->prog)) return 1;
  b = rd8(&c->prog);
  result = (b & 3) == 0 ? 0 : (b & 3) == 3 ? pick_code(&c->prog) : 1;
  f = push_frame(F_PRED);
  f->closure = c;
  f->self = c->self;
  f->self_type = T_COND;
  TRACE("predicate %d {", (int)(c - g_closures));
  {
    /* A few ops each call: the predicate is called after every notify. */
    reader_t part = sub_reader(&c->prog, (b >> 2) & 15);
    run_program(&part);
  }
  TRACE("} -> %d", result);
  pop_frame();
  return result;
}

/* The context's fields, read only as far as its size says. */
#define CTX_FIELD(ctx, field)                                                  \
  ((ctx) && (ctx)->size >= offsetof(aios_exception_context_t, field) + sizeof((ctx)->field) \
       ? (ctx)->field : NULL)

static void exc_handler(aios_loop_t *loop, const aios_exception_context_t *context, void *arg) {
  closure_t *c;
  frame_t *f;
  const char *message = CTX_FIELD(context, message);
  aios_error_t *error = CTX_FIELD(context, error);
  aios_future_t *future = CTX_FIELD(context, future);
  aios_task_t *task = CTX_FIELD(context, task);
  aios_handle_t *handle = CTX_FIELD(context, handle);
  if (context == NULL) die("an exception handler got no context");
  if (on_main()) count_callback(F_HANDLER);
  check_string(message);
  if (error) {
    (void)aios_error_code(error);
    check_string(aios_error_message(error));
  }
  /* Borrowed for the call: they must be alive. */
  if (future && aios_future_done(future) < 0) die("exception context: a dead future %p", (void *)future);
  if (task && aios_task_cancelling(task) < 0) die("exception context: a dead task %p", (void *)task);
  if (handle && aios_handle_cancelled(handle) < 0) die("exception context: a dead handle %p", (void *)handle);
  if (!on_main()) die("an exception handler ran on another thread");
  c = check_closure(arg, K_HANDLER, "exception handler");
  maybe_arm_watchdog();
  if (c == NULL) return;
  c->calls++;
  if (!can_run_programs()) return;
  f = push_frame(F_HANDLER);
  f->loop = loop;
  f->error = error;
  f->future = future;
  f->task = task;
  f->handle = handle;
  f->closure = c;
  f->self = loop;
  f->self_type = T_LOOP;
  TRACE("exception handler %d (%s) {", (int)(c - g_closures), message ? message : "-");
  {
    reader_t part = sub_reader(&c->prog, rd8(&c->prog) % 16);
    run_program(&part);
  }
  TRACE("}");
  pop_frame();
}

/* A loop's task factory (aios_loop_set_task_factory): runs a few ops, then
 * makes the task as asked (aios_task_create), or misbehaves in one of the
 * ways the header says are refused. Misbehaving, it never touches `arg`,
 * which the failed creating call leaves to its caller. */
static int task_factory(aios_loop_t *loop, aios_step_fn step, void *arg,
                        const aios_task_options_t *options, void *factory_arg, aios_task_t **out) {
  closure_t *c = check_closure(factory_arg, K_FACTORY, "task factory"), *fresh;
  frame_t *f;
  int mode = 0, i;
  count_callback(F_FACTORY);
  maybe_arm_watchdog();
  if (!on_main()) die("a task factory ran on another thread");
  if (out == NULL) die("a task factory got no out");
  if (c && can_run_programs() && !at_end(&c->prog)) {
    uint8_t b = rd8(&c->prog);
    reader_t part = sub_reader(&c->prog, (b >> 3) & 15);
    c->calls++;
    mode = b & 7;
    f = push_frame(F_FACTORY);
    f->loop = loop;
    f->closure = c;
    TRACE("task factory %d mode %d {", (int)(c - g_closures), mode);
    run_program(&part);
    TRACE("}");
    pop_frame();
  }
  switch (mode) {
  case 1: return AIOS_EUSER;           /* fails: no task */
  case 2: return 0;                    /* says it worked, made none */
  case 3: return 5;                    /* a positive status */
  case 4:                              /* a task of another loop */
    for (i = 0; i < NSLOTS; i++) {
      if (g_slots[i].type == T_LOOP && g_slots[i].p != loop && (fresh = closure_new(K_STEP, sub_reader(&c->prog, 0)))) {
        aios_task_create((aios_loop_t *)g_slots[i].p, step_fn, fresh, NULL, out);
        return 0;
      }
    }
    return aios_task_create(loop, step, arg, options, out);
  case 5:                              /* a task, then a failure: the task is released */
    fresh = closure_new(K_STEP, sub_reader(&c->prog, 0));
    if (fresh && aios_task_create(loop, step_fn, fresh, NULL, out) != 0) *out = NULL;
    return AIOS_EUSER;
  default:
    return aios_task_create(loop, step, arg, options, out);
  }
}

static void run_dtor_program(closure_t *c) {
  frame_t *f;
  if (on_main()) count_callback(F_DTOR);
  if (c == NULL || !can_run_programs()) return;
  f = push_frame(F_DTOR);
  f->closure = c;
  TRACE("destructor program %d {", (int)(c - g_closures));
  run_program(&c->prog);
  TRACE("}");
  pop_frame();
}

static void value_dtor(void *p) {
  value_t *v = as_value(p);
  int state, n;
  if (v == NULL) die("value destructor called with %p, a value the harness never gave", p);
  state = ATOMIC_LOAD(&v->state);
  n = ATOMIC_ADD(&v->dcount, 1);
  if (n > 1) die("destructor ran twice for value %d", (int)(v - g_values));
  if (state != O_LIB && state != O_PENDING && state != O_TAKEN)
    die("destructor ran for value %d, which the library does not own (state %d)", (int)(v - g_values), state);
  if (!v->has_dtor && state != O_TAKEN) die("destructor ran for value %d, given without one", (int)(v - g_values));
  run_dtor_program(v->on_free);
}

static void closure_dtor(void *p) {
  closure_t *c = as_closure(p);
  int n;
  if (c == NULL) die("arg destructor called with %p, an arg the harness never gave", p);
  n = ATOMIC_ADD(&c->dcount, 1);
  if (n > 1) die("arg destructor ran twice (closure %d)", (int)(c - g_closures));
  if (!c->has_dtor || (ATOMIC_LOAD(&c->own) != O_LIB && ATOMIC_LOAD(&c->own) != O_PENDING))
    die("arg destructor ran for closure %d, which the library does not own (state %d)",
        (int)(c - g_closures), c->own);
  if (!on_main()) die("arg destructor of closure %d ran off the loop's thread", (int)(c - g_closures));
  TRACE("(arg destructor of closure %d)", (int)(c - g_closures));
  run_dtor_program(c->on_free);
}

/* ------------------------------------------------------------------------ */
/* to_thread work                                                             */

/* Records outlive an input (a worker may start late), so they are not
 * reset with it: the generation tells a late worker to do nothing. */
#define NWORK 1024
typedef struct work_s {
  unsigned gen;
  int mode;
  aios_loop_t *loop;
  closure_t *closure;
} work_t;
static work_t g_work[NWORK];
static unsigned g_nwork;
static long g_work_started, g_work_finished;

static int work_fn(void *arg, void **result) {
  work_t *w = (work_t *)arg;
  int rc = 0;
  ATOMIC_ADD(&g_work_started, 1);
  if (on_main()) die("to_thread work ran on the loop's thread");
  if (w == NULL || ATOMIC_LOAD(&w->gen) != ATOMIC_LOAD(&g_input_gen)) {
    ATOMIC_ADD(&g_work_finished, 1);
    return AIOS_ECANCELLED;
  }
  switch (w->mode % 6) {
  case 1: rc = AIOS_EUSER; break; /* fails, no result */
  case 2: rc = -EPIPE; /* fails, but sets a result anyway */ /* fall through */
  case 0: {
    int i = ATOMIC_ADD(&g_work_results_made, 1) - 1;
    if (i >= NWORK_RESULTS) die("harness limit: to_thread results");
    *result = &g_work_results[i];
    break;
  }
  case 3: /* the only loop call a worker may make */
    aios_loop_call_soon_threadsafe(w->loop, cb_sched, w->closure, NULL, NULL);
    break;
  case 4: {
    struct timespec ts = {0, 100000};
    nanosleep(&ts, NULL);
    break;
  }
  default: /* a wrong handle: refused */
    if (aios_loop_call_soon_threadsafe((aios_loop_t *)(uintptr_t)0xdeadbeefdeadbeefULL, cb_sched, NULL, NULL, NULL) == 0)
      die("call_soon_threadsafe accepted a forged loop");
    break;
  }
  ATOMIC_ADD(&g_work_finished, 1);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* The second thread                                                          */

typedef struct held_s {
  int type;
  void *p;
  int refs;
  int is_task; /* a task, whatever slot type it came from */
} held_t;

typedef struct thread_ctx_s {
  pthread_t th;
  int active;
  reader_t prog;
  held_t held[8];
  int nheld;
  closure_t *cls[4];
  value_t *vals[4];
  int nvals;
} thread_ctx_t;
static thread_ctx_t g_thr;

static void expect_wrong_thread(long rc, const char *what) {
  if (rc != AIOS_EWRONGTHREAD)
    die("%s from another thread returned %ld (%s), not AIOS_EWRONGTHREAD", what, rc,
        aios_err_name((int)rc));
}

static value_t *thread_value(thread_ctx_t *t) {
  value_t *v;
  if (t->nvals >= 4) return NULL;
  v = t->vals[t->nvals++];
  if (v == NULL) return NULL;
  v->has_dtor = 1;
  ATOMIC_STORE(&v->state, O_PENDING);
  return v;
}

/* A call a thread that does not own the object may not make. */
static void thread_wrong_call(thread_ctx_t *t, held_t *h, uint8_t b) {
  aios_future_t *f = NULL;
  double d = 0;
  int rc = 0;
  value_t *v;
  switch (h->type) {
  case T_LOOP: {
    aios_loop_t *l = (aios_loop_t *)h->p;
    switch (b % 8) {
    case 0: rc = aios_loop_stop(l); break;
    case 1: rc = aios_loop_run_forever(l); break;
    case 2: rc = aios_loop_close(l); break;
    case 3: rc = aios_loop_call_soon(l, cb_sched, NULL, NULL, NULL); break;
    case 4: rc = aios_loop_time(l, &d); break;
    case 5: rc = aios_future_new(l, &f); break;
    case 6: rc = aios_loop_set_debug(l, 1); break;
    default: rc = aios_loop_call_later(l, 0.0, cb_sched, NULL, NULL, NULL); break;
    }
    expect_wrong_thread(rc, "a loop call");
    /* The loop's signal, pipe and child calls, on top (no byte of their
     * own, so that old inputs decode as they did). A spawn from here must
     * not fork. */
    if (b & 8) {
      expect_wrong_thread(aios_loop_add_signal_handler(l, SIGUSR1, cb_sched, NULL, NULL), "aios_loop_add_signal_handler");
      expect_wrong_thread(aios_loop_remove_signal_handler(l, SIGUSR2), "aios_loop_remove_signal_handler");
    }
    if (b & 16) {
      expect_wrong_thread(aios_create_subprocess_exec(l, "/bin/true", NULL, NULL, &f), "aios_create_subprocess_exec");
      expect_wrong_thread(aios_subprocess_shell(l, NULL, "exit 1", NULL, &f), "aios_subprocess_shell");
      expect_wrong_thread(aios_connect_read_pipe(l, NULL, -1, &f), "aios_connect_read_pipe");
      expect_wrong_thread(aios_open_write_pipe(l, -1, &f), "aios_open_write_pipe");
    }
    if (b & 32) {
      expect_wrong_thread(aios_loop_add_reader(l, 0, cb_sched, NULL, NULL), "aios_loop_add_reader");
      expect_wrong_thread(aios_loop_add_writer(l, 1, cb_sched, NULL, NULL), "aios_loop_add_writer");
      expect_wrong_thread(aios_loop_remove_reader(l, 0), "aios_loop_remove_reader");
      expect_wrong_thread(aios_loop_remove_writer(l, 1), "aios_loop_remove_writer");
      expect_wrong_thread(aios_datagram_from_socket(l, NULL, -1, &f), "aios_datagram_from_socket");
    }
    if (b & 64) { /* the socket operations: refused before the descriptor is looked at */
      static const struct sockaddr_in to = {AF_INET, 0, {0}, {0}};
      unsigned char scratch[8];
      expect_wrong_thread(aios_sock_recv(l, -1, 1, &f), "aios_sock_recv");
      expect_wrong_thread(aios_sock_recv_into(l, -1, scratch, sizeof scratch, &f), "aios_sock_recv_into");
      expect_wrong_thread(aios_sock_recvfrom(l, -1, 1, &f), "aios_sock_recvfrom");
      expect_wrong_thread(aios_sock_recvfrom_into(l, -1, scratch, sizeof scratch, &f), "aios_sock_recvfrom_into");
      expect_wrong_thread(aios_sock_sendall(l, -1, "x", 1, &f), "aios_sock_sendall");
      expect_wrong_thread(aios_sock_sendto(l, -1, "x", 1, &to, sizeof to, &f), "aios_sock_sendto");
      expect_wrong_thread(aios_sock_connect(l, -1, &to, sizeof to, &f), "aios_sock_connect");
      expect_wrong_thread(aios_sock_accept(l, -1, &f), "aios_sock_accept");
      expect_wrong_thread(aios_sock_sendfile(l, -1, -1, 0, -1, AIOS_SENDFILE_FALLBACK_ALLOWED, &f), "aios_sock_sendfile");
    }
    break;
  }
  case T_FUTURE: case T_TASK: {
    aios_future_t *fu = h->type == T_TASK ? aios_task_as_future((aios_task_t *)h->p) : (aios_future_t *)h->p;
    switch (b % 6) {
    case 0: rc = aios_future_cancel(fu, NULL); break;
    case 1: rc = aios_future_done(fu); break;
    case 2:
      v = thread_value(t);
      rc = aios_future_set_result(fu, v, v ? value_dtor : NULL);
      value_commit(v, rc == 0);
      break;
    case 3: rc = aios_future_add_done_callback(fu, cb_done, NULL, NULL); break;
    case 4: rc = h->type == T_TASK ? aios_task_cancel((aios_task_t *)h->p, "x") : aios_future_cancelled(fu); break;
    default:
      if (h->type == T_TASK) {
        if (aios_task_get_name((aios_task_t *)h->p) != NULL) die("aios_task_get_name from another thread gave a name");
        rc = AIOS_EWRONGTHREAD;
      } else {
        rc = aios_future_result(fu, NULL);
      }
      break;
    }
    expect_wrong_thread(rc, "a future call");
    break;
  }
  case T_HANDLE: expect_wrong_thread(aios_handle_cancel((aios_handle_t *)h->p), "aios_handle_cancel"); break;
  case T_LOCK:
    rc = (b & 1) ? aios_lock_release((aios_lock_t *)h->p) : aios_lock_acquire((aios_lock_t *)h->p, &f);
    expect_wrong_thread(rc, "a lock call");
    break;
  case T_EVENT: expect_wrong_thread(aios_event_set((aios_event_t *)h->p), "aios_event_set"); break;
  case T_COND: expect_wrong_thread(aios_condition_notify_all((aios_condition_t *)h->p), "aios_condition_notify_all"); break;
  case T_SEM: expect_wrong_thread(aios_semaphore_release((aios_semaphore_t *)h->p), "aios_semaphore_release"); break;
  case T_BARRIER: expect_wrong_thread(aios_barrier_parties((aios_barrier_t *)h->p), "aios_barrier_parties"); break;
  case T_QUEUE:
    if (b & 1) {
      expect_wrong_thread(aios_queue_qsize((aios_queue_t *)h->p), "aios_queue_qsize");
    } else {
      v = thread_value(t);
      rc = aios_queue_put_nowait((aios_queue_t *)h->p, v, v ? value_dtor : NULL, 0);
      value_commit(v, rc == 0);
      expect_wrong_thread(rc, "aios_queue_put_nowait");
    }
    break;
  case T_TIMEOUT: expect_wrong_thread(aios_timeout_expired((aios_timeout_t *)h->p), "aios_timeout_expired"); break;
  case T_GROUP:
    expect_wrong_thread(aios_task_group_create_task((aios_task_group_t *)h->p, step_fn, NULL, NULL, NULL),
                        "aios_task_group_create_task");
    break;
  case T_RUNNER: expect_wrong_thread(aios_runner_close((aios_runner_t *)h->p), "aios_runner_close"); break;
  case T_ASCOMP:
    expect_wrong_thread(aios_as_completed_next((aios_as_completed_t *)h->p, &f), "aios_as_completed_next");
    break;
  case T_ERROR: /* any thread may */
    (void)aios_error_code((aios_error_t *)h->p);
    check_string(aios_error_message((aios_error_t *)h->p));
    (void)aios_error_partial((aios_error_t *)h->p, NULL, NULL, NULL);
    (void)aios_error_consumed((aios_error_t *)h->p);
    if (aios_error_bytes_sent((aios_error_t *)h->p) >= 0 && aios_error_kind((aios_error_t *)h->p) != AIOS_ERROR_CANCELLED)
      die("aios_error_bytes_sent from another thread gave a count for an error not CANCELLED");
    break;
  case T_TRANSPORT: {
    aios_transport_t *tr = (aios_transport_t *)h->p;
    long long n;
    switch (b % 5) {
    case 0: rc = aios_transport_write(tr, "x", 1); break;
    case 1: rc = aios_transport_close(tr); break;
    case 2: rc = aios_transport_is_closing(tr); break;
    case 3: rc = aios_transport_get_fd(tr); break;
    default:
      n = aios_transport_get_write_buffer_size(tr);
      rc = n < INT_MIN ? INT_MIN : (int)n;
      break;
    }
    expect_wrong_thread(rc, "a transport call");
    if (b & 0x40)
      expect_wrong_thread(aios_transport_sendfile(tr, -1, 0, -1, AIOS_SENDFILE_FALLBACK_ALLOWED, &f), "aios_transport_sendfile");
    break;
  }
  case T_DATAGRAM: {
    aios_datagram_t *dg = (aios_datagram_t *)h->p;
    aios_loop_t *lp = NULL;
    switch (b % 5) {
    case 0: rc = aios_datagram_sendto(dg, "x", 1, NULL, 0); break;
    case 1: rc = aios_datagram_close(dg); break;
    case 2: rc = aios_datagram_is_closing(dg); break;
    case 3: rc = aios_datagram_get_fd(dg); break;
    default: rc = aios_datagram_get_loop(dg, &lp); break;
    }
    expect_wrong_thread(rc, "a datagram call");
    if (lp) die("a refused datagram call from another thread handed out a loop");
    break;
  }
  case T_SERVER: {
    aios_server_t *sv = (aios_server_t *)h->p;
    switch (b % 4) {
    case 0: rc = aios_server_close(sv); break;
    case 1: rc = aios_server_is_serving(sv); break;
    case 2: rc = aios_server_socket_count(sv); break;
    default: rc = aios_server_wait_closed(sv, &f); break;
    }
    expect_wrong_thread(rc, "a server call");
    break;
  }
  case T_STREAM: {
    aios_stream_t *st = (aios_stream_t *)h->p;
    switch (b % 4) {
    case 0: rc = aios_stream_read(st, 1, &f); break;
    case 1: rc = aios_stream_feed_data(st, "x", 1); break;
    case 2: rc = aios_stream_at_eof(st); break;
    default: rc = aios_stream_write(st, "x", 1); break;
    }
    expect_wrong_thread(rc, "a stream call");
    break;
  }
  case T_SUBPROCESS: {
    aios_subprocess_t *sp = (aios_subprocess_t *)h->p;
    aios_transport_t *tr = NULL;
    aios_loop_t *lp = NULL;
    int code = 0;
    switch (b % 7) {
    case 0: rc = aios_subprocess_get_pid(sp); break;
    case 1: rc = aios_subprocess_kill(sp); break;
    case 2: rc = aios_subprocess_close(sp); break;
    case 3: rc = aios_subprocess_get_returncode(sp, &code); break;
    case 4: rc = aios_subprocess_get_pipe_transport(sp, 1, &tr); break;
    case 5: rc = aios_subprocess_send_signal(sp, SIGTERM); break;
    default: rc = aios_subprocess_get_loop(sp, &lp); break;
    }
    expect_wrong_thread(rc, "a subprocess call");
    if (tr || lp) die("a refused subprocess call from another thread handed out an object");
    break;
  }
  case T_PROCESS: {
    aios_process_t *pr = (aios_process_t *)h->p;
    aios_subprocess_t *sp = NULL;
    aios_stream_t *st = NULL;
    switch (b % 4) {
    case 0: rc = aios_process_wait(pr, &f); break;
    case 1: rc = aios_process_communicate(pr, "x", 1, &f); break;
    case 2: rc = aios_process_get_stream(pr, 1, &st); break;
    default: rc = aios_process_get_subprocess(pr, &sp); break;
    }
    expect_wrong_thread(rc, "a process call");
    if (sp || st) die("a refused process call from another thread handed out an object");
    break;
  }
  default: break;
  }
  if (f != NULL) die("a refused call from another thread handed out a future");
}

/* A closure given with its destructor is used that once only (it is freed
 * after its call); one used without is never given one. */
static closure_t *thread_closure(thread_ctx_t *t, uint8_t b) {
  closure_t *c = t->cls[b & 3];
  if (c && ATOMIC_LOAD(&c->own) != O_NONE) return NULL;
  if (c) ATOMIC_ADD(&c->calls_made, 1);
  return c;
}

static void thread_op(thread_ctx_t *t) {
  reader_t *r = &t->prog;
  uint8_t op = rd8(r), b = rd8(r);
  held_t *h = t->nheld ? &t->held[b % t->nheld] : NULL;
  aios_error_t *e = NULL;
  aios_loop_t *l = NULL;
  aios_handle_t *hd = NULL;
  int rc;
  switch (op % 11) {
  case 0: /* drop a reference: maybe the last, then the owner frees it */
    if (h && h->refs > 0 && obj_unref(h->type, h->p) == 0) h->refs--;
    break;
  case 1:
    if (h && h->refs > 0 && obj_ref(h->type, h->p) == 0) h->refs++;
    break;
  case 2: /* call_soon_threadsafe on whatever we hold: refused unless a loop */
    if (h) {
      closure_t *c = thread_closure(t, b);
      int with_dtor = c && (b & 4) && ATOMIC_LOAD(&c->calls_made) == 1 && closure_offer(c);
      rc = aios_loop_call_soon_threadsafe((aios_loop_t *)h->p, cb_sched, c, with_dtor ? closure_dtor : NULL, NULL);
      if (with_dtor) closure_commit(c, rc == 0);
      if (rc == 0 && h->type != T_LOOP) die("call_soon_threadsafe accepted a %s", type_names[h->type]);
    }
    break;
  case 3: /* BUG_THREADSAFE_OUT_HANDLE: call_soon_threadsafe with an `out` handle */
    if (BUG_THREADSAFE_OUT_HANDLE && h && h->type == T_LOOP &&
        aios_loop_call_soon_threadsafe((aios_loop_t *)h->p, cb_sched, thread_closure(t, b), NULL, &hd) == 0 && hd) {
      double w;
      expect_wrong_thread(aios_handle_cancel(hd), "aios_handle_cancel");
      expect_wrong_thread(aios_handle_cancelled(hd), "aios_handle_cancelled");
      expect_wrong_thread(aios_handle_when(hd, &w), "aios_handle_when");
      aios_handle_unref(hd);
    }
    break;
  case 4:
    if (h && h->refs > 0) thread_wrong_call(t, h, rd8(r));
    break;
  case 5: { /* errors belong to no thread */
    value_t *v = (b & 1) ? thread_value(t) : NULL;
    if (v) {
      rc = aios_error_new_user(pick_str(r), v, value_dtor, &e);
      value_commit(v, rc == 0);
    } else {
      rc = aios_error_new(pick_code(r), pick_str(r), &e);
    }
    if (rc == 0) {
      aios_error_t *child = NULL;
      (void)aios_error_code(e);
      (void)aios_error_kind(e);
      (void)aios_error_os_errno(e);
      check_string(aios_error_message(e));
      if (aios_error_user_data(e) != (void *)v && v) die("aios_error_user_data lost the data");
      (void)aios_error_group_size(e);
      if (aios_error_group_get(e, 0, &child) == 0) aios_error_unref(child);
      aios_error_unref(e);
    }
    break;
  }
  case 6:
    if (h && h->type == T_LOOP && h->refs > 0) {
      (void)aios_loop_is_running((aios_loop_t *)h->p);
      (void)aios_loop_is_closed((aios_loop_t *)h->p);
    }
    rc = aios_get_running_loop(&l);
    if (rc != AIOS_ENOLOOP) die("aios_get_running_loop on a thread without a loop returned %d", rc);
    break;
  case 7: {
    struct timespec ts = {0, 20000L * (b % 5)};
    nanosleep(&ts, NULL);
    break;
  }
  case 8:
    check_string(aios_strerror(pick_code(r)));
    check_string(aios_err_name(pick_code(r)));
    check_string(aios_version_string());
    (void)aios_version();
    (void)aios_live_objects((aios_object_type_t)(b % 9));
    break;
  case 9: { /* forged handles from here too */
    void *p = (void *)(uintptr_t)(0x8000000000000000ULL | b);
    int type;
    if (obj_ref(1 + b % (T_COUNT_BEFORE_NETWORK - 1), p) == 0) die("a ref from another thread accepted a forged handle");
    if (obj_unref(1 + b % (T_COUNT_BEFORE_NETWORK - 1), p) == 0) die("an unref from another thread accepted a forged handle");
    for (type = T_COUNT_BEFORE_NETWORK; type < T_COUNT; type++) {
      if (obj_ref(type, p) == 0) die("%s_ref from another thread accepted a forged handle", type_names[type]);
      if (obj_unref(type, p) == 0) die("%s_unref from another thread accepted a forged handle", type_names[type]);
    }
    break;
  }
  default: /* a wrong-type ref: refused, or (a task as a future) balanced */
    if (h && h->refs > 0) {
      int other = 1 + rd8(r) % (T_COUNT_BEFORE_NETWORK - 1), type;
      if (other != h->type && obj_ref(other, h->p) == 0) {
        if (!(h->is_task && (other == T_FUTURE || other == T_TASK)))
          die("%s_ref accepted a %s", type_names[other], type_names[h->type]);
        obj_unref(other, h->p);
      }
      for (type = T_COUNT_BEFORE_NETWORK; type < T_COUNT; type++)
        if (type != h->type && obj_ref(type, h->p) == 0) die("%s_ref accepted a %s", type_names[type], type_names[h->type]);
    }
    break;
  }
}

static void *thread_main(void *arg) {
  thread_ctx_t *t = (thread_ctx_t *)arg;
  int ops = 0, i;
  while (!at_end(&t->prog) && ops++ < MAX_THREAD_OPS) thread_op(t);
  for (i = 0; i < t->nheld; i++)
    while (t->held[i].refs > 0 && obj_unref(t->held[i].type, t->held[i].p) == 0) t->held[i].refs--;
  return NULL;
}

static void thread_join(void) {
  if (!g_thr.active) return;
  pthread_join(g_thr.th, NULL);
  g_thr.active = 0;
}

static void thread_start(reader_t *r) {
  int n, i;
  thread_join();
  memset(&g_thr, 0, sizeof g_thr);
  n = rd8(r) % 7;
  for (i = 0; i < n; i++) {
    slot_t *s = &g_slots[pick_slot_index(r)];
    if (s->p == NULL || obj_ref(s->type, s->p) != 0) continue;
    /* BUG_CLOSE_WITH_WAITING_TASKS: the thread must not drop a loop's (or
     * runner's) last reference: its close would leave tasks waiting. */
    if ((s->type == T_LOOP || s->type == T_RUNNER) && !BUG_CLOSE_WITH_WAITING_TASKS &&
        obj_ref(s->type, s->p) == 0)
      keep_push(s->type, s->p);
    g_thr.held[g_thr.nheld].type = s->type;
    g_thr.held[g_thr.nheld].p = s->p;
    g_thr.held[g_thr.nheld].refs = 1;
    g_thr.held[g_thr.nheld].is_task = (s->type == T_FUTURE || s->type == T_TASK) && is_task(s->p);
    g_thr.nheld++;
  }
  for (i = 0; i < 4; i++) g_thr.cls[i] = capture(r, K_CALLBACK);
  for (i = 0; i < 4; i++) {
    g_thr.vals[i] = value_new();
    if (g_thr.vals[i]) g_thr.vals[i]->state = O_RESERVED;
  }
  g_thr.prog = sub_reader(r, rd8(r) % 64);
  TRACE("thread start: %d objects, %zu bytes", g_thr.nheld, g_thr.prog.n);
  if (pthread_create(&g_thr.th, NULL, thread_main, &g_thr) != 0) {
    /* No thread (its oracles would not hold here): give the references back. */
    for (i = 0; i < g_thr.nheld; i++) obj_unref(g_thr.held[i].type, g_thr.held[i].p);
    return;
  }
  g_thr.active = 1;
}

/* ------------------------------------------------------------------------ */
/* The network: descriptors, protocols, servers, streams                     */

/* Real sockets only on 127.0.0.1 and in a temp dir; names are resolved only
 * with AI_NUMERICHOST (or are numeric), so nothing waits on DNS. Every input
 * makes at most NET_CAP sockets (connections, servers, pairs) and NET_LOOKUPS
 * lookups. */
#define NET_CAP 12
#define NET_LOOKUPS 24
#define NFDS 64
#define NNETF 256
#define NPORTS 8

/* For the whole process: a temp dir for Unix sockets, a port that refuses. */
static char g_dir[80];
static char g_paths[4][128];    /* where Unix servers listen */
static char g_path_file[128];   /* a regular file */
static char g_path_nodir[160];  /* in a directory that does not exist */
static char g_path_harn[128];   /* the harness's own listening Unix socket */
static int g_refusing_fd = -1, g_refusing_port = 9;
static int g_fd_baseline = -1;
static unsigned char g_wbuf[(1 << 20) + 8]; /* what writes send (and a feed from an offset up to 7) */
static const char *g_many_hosts[1100];

/* Descriptors the harness made in this input: its own until a call that
 * takes one succeeds. */
enum { FD_FREE = 0, FD_HARN, FD_GIVEN };
typedef struct fdrec_s {
  int fd, state;
  int peer;          /* the end kept of a pair whose other end was given */
  int unix_listener; /* bound at g_path_harn */
  int is_pipe;       /* a pipe's end: read and write, not recv and send */
  int clean;         /* a socket the socket ops made: every byte it gets is g_wbuf's */
  int sf_uses;       /* sendfile calls given it as their file */
} fdrec_t;
static fdrec_t g_fds[NFDS];
static int g_nfds;
static int g_net_made, g_net_lookups;
static int g_ports[NPORTS], g_nports;
/* Futures of lookups, connections and servers, to take their results; the
 * new ones' kinds (NK_*), whose results have oracles of their own. */
static aios_future_t *g_netf[NNETF];
static struct { int kind, plan, seen; } g_netk[NNETF];
static int g_nnetf;

static int fd_add(int fd, int peer) {
  if (fd < 0) return -1;
  if (g_nfds >= NFDS) {
    close(fd);
    return -1;
  }
  g_fds[g_nfds].fd = fd;
  g_fds[g_nfds].state = FD_HARN;
  g_fds[g_nfds].peer = peer;
  g_fds[g_nfds].unix_listener = 0;
  g_fds[g_nfds].is_pipe = 0;
  g_fds[g_nfds].clean = 0;
  g_fds[g_nfds].sf_uses = 0;
  return g_nfds++;
}

/* One more socket for this input, if the cap allows it. */
static int net_budget(void) {
  if (g_net_made >= NET_CAP) {
    TRACE("  (skipped: %d sockets made)", g_net_made);
    return 0;
  }
  g_net_made++;
  return 1;
}

static int lookup_budget(void) {
  if (g_net_lookups >= NET_LOOKUPS) {
    TRACE("  (skipped: %d lookups made)", g_net_lookups);
    return 0;
  }
  g_net_lookups++;
  return 1;
}

/* The descriptor a call was given: the callee's once the call worked; a
 * call that failed must have left it open. */
static void fd_given(int idx, int accepted, const char *what) {
  if (idx < 0) return;
  if (accepted) {
    g_fds[idx].state = FD_GIVEN;
  } else if (fcntl(g_fds[idx].fd, F_GETFD) == -1) {
    die("%s failed but closed the descriptor %d its caller keeps", what, g_fds[idx].fd);
  }
}

static int tcp_socket_bound(int listening) {
  struct sockaddr_in a;
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  memset(&a, 0, sizeof a);
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || (listening && listen(fd, 8) != 0)) {
    close(fd);
    return -1;
  }
  return fd;
}

static int unix_listener(void) {
  struct sockaddr_un a;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  memset(&a, 0, sizeof a);
  a.sun_family = AF_UNIX;
  snprintf(a.sun_path, sizeof a.sun_path, "%s", g_path_harn);
  unlink(g_path_harn);
  if (bind(fd, (struct sockaddr *)&a, sizeof a) != 0 || listen(fd, 8) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

/* A connected TCP pair on 127.0.0.1: *peer is the end the harness keeps. */
static int tcp_pair(int *peer) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  int lfd = tcp_socket_bound(1), c, s;
  *peer = -1;
  if (lfd < 0) return -1;
  c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (c < 0 || getsockname(lfd, (struct sockaddr *)&a, &len) != 0 || connect(c, (struct sockaddr *)&a, len) != 0) {
    if (c >= 0) close(c);
    close(lfd);
    return -1;
  }
  s = accept4(lfd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
  close(lfd);
  if (s < 0) {
    close(c);
    return -1;
  }
  fcntl(c, F_SETFL, fcntl(c, F_GETFL) | O_NONBLOCK);
  *peer = s;
  return c;
}

static void record_port(aios_server_t *sv) {
  int n = aios_server_socket_count(sv), i;
  for (i = 0; i < n && i < 2; i++) {
    struct sockaddr_storage a;
    unsigned int len = sizeof a;
    if (aios_server_get_sockname(sv, (size_t)i, &a, &len) == 0 && a.ss_family == AF_INET) {
      g_ports[g_nports % NPORTS] = ntohs(((struct sockaddr_in *)&a)->sin_port);
      g_nports++;
    }
  }
}

static int pick_port(reader_t *r, int server) {
  uint8_t b = rd8(r);
  int n = g_nports < NPORTS ? g_nports : NPORTS;
  switch (b % 12) {
  case 0: case 1: case 2: case 3: case 4:
    if (n) return g_ports[(b >> 4) % n];
    return server ? 0 : g_refusing_port;
  case 5: return server ? g_refusing_port : 0; /* in use; or refused */
  case 6: return -1;
  case 7: return 65536;
  case 8: return (b & 0x80) ? INT_MAX : INT_MIN;
  case 9: return 65535;
  default: return server ? 0 : g_refusing_port;
  }
}

/* A host for a connection or a server. Without options the resolver's
 * flags are 0, so only 127.0.0.1; with options AI_NUMERICHOST is forced
 * and whatever is not 127.0.0.1 fails to resolve (NULL, "", every
 * interface, become 127.0.0.1 for a server; ::1 gets AF_INET). */
static const char *pick_host(reader_t *r, int have_options, int *family, int server) {
  static const char *const hosts[] = {"127.0.0.1", "127.0.0.1", "127.0.0.1", "127.0.0.1", "127.1", "0x7f000001",
                                      NULL, "", "::1", "localhost", "no-such-host.invalid", "1.2.3.4.5",
                                      "127.0.0.1 ", "%s%n", NULL};
  int i = rd8(r) % (int)(sizeof hosts / sizeof hosts[0]);
  const char *h = i == (int)(sizeof hosts / sizeof hosts[0]) - 1 ? g_long_string : hosts[i];
  if (i < 6) return h;
  if (!have_options) return "127.0.0.1";
  if (h == NULL || h[0] == '\0') {
    if (server) return "127.0.0.1";
    *family = AF_INET;
    return h;
  }
  if (strcmp(h, "::1") == 0) *family = AF_INET;
  return h;
}

static const char *pick_unix_path(reader_t *r) {
  uint8_t b = rd8(r);
  switch (b % 11) {
  case 0: case 1: case 2: case 3: case 4: case 5: return g_paths[(b >> 4) % 4];
  case 6: return g_path_nodir;
  case 7: return g_path_file;
  case 8: return g_long_string; /* too long for a sockaddr_un */
  case 9: return "";
  default: return NULL;
  }
}

static size_t pick_wsize(reader_t *r) {
  static const size_t t[] = {0, 1, 2, 7, 100, 4096, 65536, 1 << 20, 5, 1, 300};
  return t[rd8(r) % (sizeof t / sizeof t[0])];
}

/* The limit of a stream's reader. */
static size_t pick_limit(reader_t *r) {
  static const size_t t[] = {0, 0, 1, 2, 7, 100, 65536, SIZE_MAX, (size_t)1 << 40, INT_MAX, (size_t)INT_MAX + 1};
  return t[rd8(r) % (sizeof t / sizeof t[0])];
}

/* ---- Results of network futures ---- */

static void check_bytes(const aios_bytes_t *b, const char *what) {
  size_t i;
  unsigned sum = 0;
  if (b == NULL) die("%s gave NULL bytes", what);
  if (b->data == NULL) die("%s gave bytes with no data", what);
  for (i = 0; i < b->length; i++) sum += b->data[i];
  if (b->data[b->length] != 0) die("%s gave bytes not NUL-terminated", what);
  (void)sum;
}

static void check_addrinfo(const aios_addrinfo_list_t *list, const char *what) {
  size_t i;
  if (list == NULL) die("%s gave a NULL address list", what);
  if (list->count > 4096 || (list->count && list->items == NULL)) die("%s gave %zu addresses", what, list->count);
  for (i = 0; i < list->count; i++) {
    const aios_addrinfo_t *a = &list->items[i];
    if (a->length > sizeof a->address.bytes) die("%s gave an address of %u bytes", what, a->length);
    if (a->family != AF_INET && a->family != AF_INET6 && a->family != AF_UNIX)
      die("%s gave an address of family %d", what, a->family);
    if (a->length >= 2 && ((const struct sockaddr *)a->address.bytes)->sa_family != a->family)
      die("%s gave an address whose family is not its entry's", what);
    check_string(a->canonname);
  }
}

/* The library's own results, taken with their destructors: bytes, address
 * lists, names; or one reference to an object (a transport, a server, a
 * stream), which goes into a slot. 0 if it is none of these. */
static int take_library_value(void *value, aios_destructor_fn dtor, const char *what) {
  int type;
  if (dtor == aios_bytes_free) {
    check_bytes((const aios_bytes_t *)value, what);
    aios_bytes_free(value);
    return 1;
  }
  if (dtor == aios_addrinfo_list_free) {
    check_addrinfo((const aios_addrinfo_list_t *)value, what);
    aios_addrinfo_list_free(value);
    return 1;
  }
  if (dtor == aios_nameinfo_free) {
    const aios_nameinfo_t *n = (const aios_nameinfo_t *)value;
    if (n == NULL || n->host == NULL || n->service == NULL) die("%s gave an incomplete name", what);
    check_string(n->host);
    check_string(n->service);
    aios_nameinfo_free(value);
    return 1;
  }
  if (dtor == aios_output_free) {
    const aios_output_t *o = (const aios_output_t *)value;
    if (o == NULL) die("%s gave a NULL output", what);
    if (o->out) check_bytes(o->out, what);
    if (o->err) check_bytes(o->err, what);
    aios_output_free(value);
    return 1;
  }
  for (type = T_TRANSPORT; type <= T_DATAGRAM; type++) {
    if (value && obj_ref(type, value) == 0) {
      obj_unref(type, value);
      if (type == T_SERVER) record_port((aios_server_t *)value);
      if (type == T_DATAGRAM) record_dport((aios_datagram_t *)value);
      slot_put(type, value);
      return 1;
    }
  }
  return 0;
}

enum { NK_NONE = 0, NK_SPAWN, NK_PROCESS, NK_WAIT, NK_COMMUNICATE, NK_READ_PIPE };

static void remember_net_as(aios_future_t *f, int kind, int plan) {
  if (f == NULL || g_nnetf >= NNETF || aios_future_ref(f) != 0) return;
  g_netk[g_nnetf].kind = kind;
  g_netk[g_nnetf].plan = plan;
  g_netk[g_nnetf].seen = 0;
  g_netf[g_nnetf++] = f;
}
static void remember_net(aios_future_t *f) { remember_net_as(f, NK_NONE, -1); }

static void note_result(int i, void *value);

/* A result about to be taken out of `f` (TAKE_RESULT): its oracles first. */
static void note_future(aios_future_t *f) {
  int i;
  void *v = NULL;
  for (i = 0; f && i < g_nnetf; i++)
    if (g_netf[i] == f && aios_future_done(f) == 1 && aios_future_result(f, &v) == 0) note_result(i, v);
}

/* Takes the result of every network future that has one. */
static void harvest(void) {
  int i;
  sock_check_all();
  for (i = 0; i < g_nnetf; i++) {
    void *v = NULL;
    aios_destructor_fn d = NULL;
    if (aios_future_done(g_netf[i]) != 1 || aios_future_result(g_netf[i], &v) != 0) continue;
    note_result(i, v); /* a returncode of 0 is NULL */
    if (v == NULL) continue;
    if (!BUG_SHIELD_LENDS_TAKEN_VALUE && is_shielded(g_netf[i])) continue;
    if (aios_future_take_result(g_netf[i], &v, &d) == 0 && v) take_over(v, d, "a network future");
  }
}

/* Runs `loop` until `f` is done (the watchdog bounds it), when no loop
 * runs here; then takes the results. */
static void settle(aios_loop_t *loop, aios_future_t *f) {
  if (loop && f && on_main() && !loop_running_here() && aios_loop_is_closed(loop) == 0) {
    TRACE("  (running until %p is done)", (void *)f);
    begin_run(loop, RUN_DIRECT);
    aios_loop_run_until_complete(loop, f);
    end_run();
  }
  harvest();
}

/* ---- Protocols whose callbacks run programs ---- */

enum { PF_MADE = 1, PF_DATA = 2, PF_EOF = 4, PF_LOST = 8, PF_FLOW = 16, PF_BUFFERED = 32, PF_UPDATED = 64,
       PF_DESTROY = 128 };

/* Which callbacks a table has: mostly all, buffered half the time, rarely
 * get_buffer without buffer_updated (refused). */
static unsigned proto_flags(uint8_t b) {
  unsigned f = 0;
  if (!(b & 1)) f |= PF_MADE;
  if (!(b & 2)) f |= PF_DATA;
  if (!(b & 4)) f |= PF_EOF;
  if (!(b & 8)) f |= PF_LOST;
  if (!(b & 16)) f |= PF_FLOW;
  if (b & 32) f |= PF_BUFFERED;
  if ((b & 0x62) != 0x62) f |= PF_UPDATED;
  if (!(b & 128)) f |= PF_DESTROY;
  return f;
}

static unsigned char g_nullproto_buf[64]; /* get_buffer's memory for a protocol with no arg */
static int g_in_get_buffer;               /* a get_buffer's program runs */
static closure_t *g_get_buffer_owner;     /* the protocol whose get_buffer that is */

static int pidx(const closure_t *c) { return c ? (int)(c - g_closures) : -1; }

/* Every callback: its arg, the transport it lends, the protocol's life. */
static closure_t *proto_enter(void *arg, aios_transport_t *t, const char *what, int need_made) {
  closure_t *c = check_closure(arg, K_PROTO, what);
  if (!on_main()) die("%s ran off the loop's thread", what);
  if (t == NULL || aios_transport_is_closing(t) < 0) die("%s got a dead transport %p", what, (void *)t);
  count_callback(F_PROTO);
  maybe_arm_watchdog();
  TRACE("(%s, protocol %d)", what, pidx(c));
  if (c == NULL) return NULL;
  if (c->batched) die("%s called on a batched protocol (protocol %d)", what, pidx(c));
  if (c->pstate == P_LOST) die("%s after connection_lost (protocol %d)", what, pidx(c));
  /* set_protocol from a protocol's own get_buffer takes effect after the
   * read into its buffer: that read's buffer_updated is still its. */
  if (c->pstate == P_REPLACED && c->handover && strcmp(what, "buffer_updated") == 0) {
    c->handover = 0;
    return c;
  }
  if (c->pstate == P_REPLACED) die("%s of a protocol that set_protocol replaced (protocol %d)", what, pidx(c));
  /* Without connection_made, the first callback says it is made. */
  if (need_made && c->pstate == P_NEW && !(c->pflags & PF_MADE)) c->pstate = P_MADE;
  if (need_made && c->pstate != P_MADE) die("%s before connection_made (protocol %d)", what, pidx(c));
  return c;
}

static void proto_program(closure_t *c, aios_transport_t *t, aios_error_t *error, const char *what) {
  frame_t *f;
  if (c == NULL) return;
  c->calls++;
  if (!can_run_programs() || at_end(&c->prog)) return;
  f = push_frame(F_PROTO);
  f->transport = t;
  f->error = error;
  f->closure = c;
  f->self = t;
  f->self_type = T_TRANSPORT;
  TRACE("%s %d {", what, pidx(c));
  {
    reader_t part = sub_reader(&c->prog, rd8(&c->prog) % 16);
    run_program(&part);
  }
  TRACE("}");
  pop_frame();
}

static void proto_made(aios_transport_t *t, void *arg) {
  closure_t *c = proto_enter(arg, t, "connection_made", 0);
  if (c && c->pstate != P_NEW) die("connection_made twice (protocol %d)", pidx(c));
  if (c) c->pstate = P_MADE;
  proto_program(c, t, NULL, "connection_made");
}

static void proto_data(aios_transport_t *t, const void *data, size_t length, void *arg) {
  closure_t *c = proto_enter(arg, t, "data_received", 1);
  size_t i;
  unsigned sum = 0;
  if (data == NULL || length == 0) die("data_received with %zu bytes at %p", length, data);
  if (c && (c->pflags & PF_BUFFERED)) die("data_received on a buffered protocol (protocol %d)", pidx(c));
  if (c && c->eofs) die("data_received after eof_received (protocol %d)", pidx(c));
  for (i = 0; i < length; i++) sum += ((const unsigned char *)data)[i];
  (void)sum;
  proto_program(c, t, NULL, "data_received");
}

static int proto_eof(aios_transport_t *t, void *arg) {
  closure_t *c = proto_enter(arg, t, "eof_received", 1);
  int keep = 0;
  if (c && c->eofs++) die("eof_received twice (protocol %d)", pidx(c));
  if (c && can_run_programs() && !at_end(&c->prog)) keep = rd8(&c->prog) & 1;
  proto_program(c, t, NULL, "eof_received");
  return keep;
}

static void proto_lost(aios_transport_t *t, aios_error_t *error, void *arg) {
  closure_t *c = proto_enter(arg, t, "connection_lost", 1);
  if (error) {
    int code = aios_error_code(error);
    if (code >= 0) die("connection_lost got an error of code %d", code);
    check_string(aios_error_message(error));
  }
  if (c) c->pstate = P_LOST;
  proto_program(c, t, error, "connection_lost");
}

static void proto_pause(aios_transport_t *t, void *arg) {
  closure_t *c = proto_enter(arg, t, "pause_writing", 1);
  if (c && c->paused) die("pause_writing twice (protocol %d)", pidx(c));
  if (c) c->paused = 1;
  proto_program(c, t, NULL, "pause_writing");
}

static void proto_resume(aios_transport_t *t, void *arg) {
  closure_t *c = proto_enter(arg, t, "resume_writing", 1);
  if (c && !c->paused && !c->via_set) die("resume_writing without pause_writing (protocol %d)", pidx(c));
  if (c) c->paused = 0;
  proto_program(c, t, NULL, "resume_writing");
}

static int proto_get_buffer(aios_transport_t *t, size_t size_hint, void **buffer, size_t *length, void *arg) {
  closure_t *c = proto_enter(arg, t, "get_buffer", 1);
  unsigned char *mem = c ? c->gbuf : g_nullproto_buf;
  int mode = 0;
  (void)size_hint;
  if (buffer == NULL || length == NULL) die("get_buffer got NULL out pointers");
  if (c && !(c->pflags & PF_BUFFERED)) die("get_buffer on a protocol without one (protocol %d)", pidx(c));
  if (c && can_run_programs() && !at_end(&c->prog)) mode = rd8(&c->prog);
  /* BUG_GET_BUFFER_REENTRY (findings/get-buffer-pause-reading): get_buffer
   * runs inside libuv's alloc callback; a pause_reading there makes libuv
   * call a NULL read callback (SIGSEGV), a close or an abort fails libuv's
   * assertion uv__stream_fd(stream) >= 0 in uv__read (SIGABRT). Off: its
   * program decides the answer but runs no ops. */
  if (BUG_GET_BUFFER_REENTRY) {
    closure_t *outer = g_get_buffer_owner;
    g_in_get_buffer++;
    g_get_buffer_owner = c;
    proto_program(c, t, NULL, "get_buffer");
    g_get_buffer_owner = outer;
    g_in_get_buffer--;
  } else if (c) {
    c->calls++;
  }
  if (c) c->glen = 0;
  switch (mode & 7) {
  case 5: /* refuses: the connection is aborted */
    return (mode & 8) ? 7 : (mode & 16) ? -EPROTO : AIOS_EUSER;
  case 6: /* no memory: the same */
    *buffer = NULL;
    *length = 16;
    return 0;
  case 7:
    *buffer = mem;
    *length = 1;
    break;
  default:
    *buffer = mem;
    *length = 1 + (size_t)(mode >> 3) % 64;
    break;
  }
  if (c) c->glen = *length;
  return 0;
}

static void proto_updated(aios_transport_t *t, size_t nbytes, void *arg) {
  closure_t *c = proto_enter(arg, t, "buffer_updated", 1);
  if (c && nbytes > c->glen) die("buffer_updated(%zu) beyond the %zu bytes get_buffer gave (protocol %d)", nbytes,
                                 c->glen, pidx(c));
  if (c) {
    size_t i;
    unsigned sum = 0;
    for (i = 0; i < nbytes; i++) sum += c->gbuf[i];
    (void)sum;
  }
  proto_program(c, t, NULL, "buffer_updated");
}

/* Fills a table with the callbacks `flags` names, for closure c; offers c
 * with destroy when asked (the caller commits it). */
static void fill_protocol(aios_protocol_t *p, closure_t *c, unsigned flags) {
  if (c) c->pflags = flags;
  p->arg = c;
  p->connection_made = (flags & PF_MADE) ? proto_made : NULL;
  p->data_received = (flags & PF_DATA) ? proto_data : NULL;
  p->eof_received = (flags & PF_EOF) ? proto_eof : NULL;
  p->connection_lost = (flags & PF_LOST) ? proto_lost : NULL;
  p->pause_writing = (flags & PF_FLOW) ? proto_pause : NULL;
  p->resume_writing = (flags & PF_FLOW) ? proto_resume : NULL;
  p->get_buffer = (flags & PF_BUFFERED) ? proto_get_buffer : NULL;
  p->buffer_updated = (flags & PF_UPDATED) ? proto_updated : NULL;
  p->destroy = (flags & PF_DESTROY) && closure_offer(c) ? closure_dtor : NULL;
}

typedef struct proto_buf_s {
  aios_protocol_t p;
  char pad[16]; /* room for a caller whose struct is newer */
} proto_buf_t;

/* A protocol table for a call that takes one (NULL, or of odd sizes); its
 * closure, pending when destroy was given, is in *cp. */
/* A batched table (its size byte's high bit): its closure's index in its
 * token, which the events carry back. */
#define TOKEN_BASE 0x1000ULL
static void make_batched(aios_protocol_t *p, closure_t *c) {
  p->batched = 1;
  p->token = c ? TOKEN_BASE + (unsigned long long)pidx(c) : 7;
  /* The first version's size does not reach `batched`: then it is not. */
  if (c) c->batched = p->size >= offsetof(aios_protocol_t, batched) + sizeof p->batched;
}

static aios_protocol_t *pick_protocol(reader_t *r, proto_buf_t *buf, closure_t **cp) {
  static const size_t sizes[] = {sizeof(aios_protocol_t), sizeof(aios_protocol_t), sizeof(aios_protocol_t),
                                 sizeof(aios_protocol_t) + 8, 0, 8, offsetof(aios_protocol_t, destroy),
                                 sizeof(aios_protocol_t) - 1, sizeof(aios_protocol_t), sizeof(aios_protocol_t),
                                 offsetof(aios_protocol_t, batched)};
  uint8_t b = rd8(r), size = rd8(r);
  closure_t *c;
  memset(buf, 0, sizeof *buf);
  *cp = NULL;
  if (size == 0xff) return NULL;
  c = capture(r, K_PROTO);
  buf->p.size = sizes[(size & 0x7f) % (sizeof sizes / sizeof sizes[0])];
  fill_protocol(&buf->p, c, proto_flags(b));
  if (size & 0x80) make_batched(&buf->p, c);
  *cp = c;
  return &buf->p;
}

/* The protocol closure set_protocol replaces, if it is one of ours. */
static closure_t *current_protocol(aios_transport_t *t) {
  proto_buf_t cur;
  memset(&cur, 0, sizeof cur);
  cur.p.size = sizeof cur.p;
  if (aios_transport_get_protocol(t, &cur.p) != 0) return NULL;
  return as_closure(cur.p.arg);
}

/* A server's protocol factory: runs a few ops, then makes a protocol (its
 * own closure, from the factory's program) or refuses the connection. */
static int proto_factory(void *arg, aios_protocol_t *protocol) {
  closure_t *c = check_closure(arg, K_PFACTORY, "protocol factory"), *pc;
  static const reader_t none = {NULL, 0, 0};
  frame_t *f;
  int mode = 0;
  unsigned flags;
  uint8_t fb = 0;
  count_callback(F_PFACTORY);
  maybe_arm_watchdog();
  if (!on_main()) die("a protocol factory ran off the loop's thread");
  if (protocol == NULL || protocol->size < sizeof(aios_protocol_t))
    die("a protocol factory got a table of %zu bytes", protocol ? protocol->size : 0);
  if (c) c->calls++;
  if (c && can_run_programs() && !at_end(&c->prog)) {
    uint8_t b = rd8(&c->prog);
    reader_t part = sub_reader(&c->prog, (b >> 3) & 15);
    mode = b & 7;
    fb = rd8(&c->prog);
    f = push_frame(F_PFACTORY);
    f->closure = c;
    TRACE("protocol factory %d mode %d {", pidx(c), mode);
    run_program(&part);
    TRACE("}");
    pop_frame();
  }
  if (mode == 6) return AIOS_EUSER; /* refused: the connection is closed */
  if (mode == 7) return 1;
  pc = c ? capture(&c->prog, K_PROTO) : closure_new(K_PROTO, none);
  flags = proto_flags(fb);
  /* Tables the library must refuse: whether it then owns the arg is not
   * said, so they get no destroy. */
  if (mode == 5) protocol->size = 8;
  if (mode == 5 || ((flags & PF_BUFFERED) && !(flags & PF_UPDATED))) flags &= ~(unsigned)PF_DESTROY;
  fill_protocol(protocol, pc, flags);
  if (mode == 4) make_batched(protocol, pc); /* the table's size is the library's */
  closure_commit(pc, 1);
  return 0;
}

/* A stream server's client callback: runs a few ops with the stream, then
 * returns a task that serves it (the server takes that reference), NULL,
 * or what is not a task. */
static aios_task_t *client_connected(aios_stream_t *stream, void *arg) {
  closure_t *c = check_closure(arg, K_CLIENT, "client callback"), *tc = NULL;
  aios_loop_t *loop = NULL;
  aios_task_t *t = NULL;
  frame_t *f;
  int mode = 0, i;
  count_callback(F_CLIENT);
  maybe_arm_watchdog();
  if (!on_main()) die("a client callback ran off the loop's thread");
  if (stream == NULL || aios_stream_at_eof(stream) < 0) die("a client callback got a dead stream %p", (void *)stream);
  if (c) c->calls++;
  if (c && can_run_programs() && !at_end(&c->prog)) {
    uint8_t b = rd8(&c->prog);
    reader_t part = sub_reader(&c->prog, (b >> 3) & 15);
    mode = b & 7;
    f = push_frame(F_CLIENT);
    f->stream = stream;
    f->closure = c;
    f->self = stream;
    f->self_type = T_STREAM;
    TRACE("client callback %d mode %d {", pidx(c), mode);
    run_program(&part);
    TRACE("}");
    pop_frame();
  }
  switch (mode) {
  case 3: return NULL;
  case 4: /* one of ours, with a reference for the server */
    for (i = 0; i < NSLOTS; i++) {
      aios_task_t *mine = (aios_task_t *)g_slots[i].p;
      if (mine == NULL || g_slots[i].type != T_TASK) continue;
      /* BUG_CLIENT_TASK_OF_CLOSED_LOOP (findings/client-task-of-closed-loop):
       * the server never drops the reference to a task whose loop is
       * closed (an aios_run's main task): it leaks, with its loop. Off:
       * not those. */
      if (!BUG_CLIENT_TASK_OF_CLOSED_LOOP && (aios_task_get_loop(mine) == NULL || aios_loop_is_closed(aios_task_get_loop(mine)) != 0)) {
        TRACE("  (skipped: BUG_CLIENT_TASK_OF_CLOSED_LOOP)");
        continue;
      }
      if (aios_task_ref(mine) == 0) return mine;
    }
    return NULL;
  case 5: /* not a task: ignored, our reference stays ours */
    for (i = 0; i < NSLOTS; i++)
      if (g_slots[i].p && g_slots[i].type != T_TASK) return (aios_task_t *)g_slots[i].p;
    return NULL;
  case 6: return (aios_task_t *)(uintptr_t)0xdeadbeefdeadbeefULL;
  default: /* a new task whose steps run a program (the stream is its ctx) */
    if (aios_get_running_loop(&loop) != 0) return NULL;
    slot_put(T_LOOP, loop);
    if (c) tc = capture(&c->prog, K_STEP);
    if (tc) {
      tc->self = stream;
      tc->self_type = T_STREAM;
    }
    if (aios_task_new(loop, step_fn, tc, NULL, &t) != 0) return NULL;
    if (tc) {
      tc->dep = dep_add(t, D_TASK);
      if (tc->dep >= 0) g_deps[tc->dep].task = tc;
    }
    return t;
  }
}

/* ---- Options ---- */

typedef struct copts_buf_s {
  aios_connect_options_t o;
  char pad[16];
} copts_buf_t;

static aios_connect_options_t *pick_connect_options(reader_t *r, copts_buf_t *buf) {
  static const size_t sizes[] = {sizeof(aios_connect_options_t), sizeof(aios_connect_options_t),
                                 sizeof(aios_connect_options_t), sizeof(aios_connect_options_t) + 8, 0, 4,
                                 offsetof(aios_connect_options_t, interleave)};
  static const int families[] = {0, 0, AF_INET, AF_INET6, AF_UNIX, -1};
  static const int flags[] = {0, 0, AI_CANONNAME, AI_V4MAPPED | AI_ALL, AI_ADDRCONFIG, AI_PASSIVE, -1};
  static const double delays[] = {0, 0, 0.0001, 0.25, -0.0, NAN, -1, INFINITY, -INFINITY, 1e300, DBL_MAX, 5e-324};
  static const int interleaves[] = {0, 0, 1, 2, -1, INT_MAX, INT_MIN};
  static const char *const local_hosts[] = {NULL, NULL, NULL, "127.0.0.1", "", "no-such-host.invalid", "127.1"};
  uint8_t b = rd8(r);
  int lp;
  memset(buf, 0, sizeof *buf);
  if ((b & 3) == 0) return NULL;
  buf->o.size = sizes[rd8(r) % (sizeof sizes / sizeof sizes[0])];
  buf->o.family = families[rd8(r) % (sizeof families / sizeof families[0])];
  buf->o.flags = flags[rd8(r) % (sizeof flags / sizeof flags[0])] | AI_NUMERICHOST;
  buf->o.local_host = local_hosts[rd8(r) % (sizeof local_hosts / sizeof local_hosts[0])];
  lp = rd8(r) % 6;
  buf->o.local_port = lp < 3 ? 0 : lp == 3 ? g_refusing_port : lp == 4 ? -1 : 65536;
  buf->o.happy_eyeballs_delay = delays[rd8(r) % (sizeof delays / sizeof delays[0])];
  buf->o.interleave = interleaves[rd8(r) % (sizeof interleaves / sizeof interleaves[0])];
  return &buf->o;
}

typedef struct sopts_buf_s {
  aios_server_options_t o;
  char pad[16];
} sopts_buf_t;

/* Server options; a listening socket (asyncio's sock=) the harness made is
 * g_fds[*fd_idx]. */
static aios_server_options_t *pick_server_options(reader_t *r, sopts_buf_t *buf, int unix_server, int *fd_idx) {
  static const size_t sizes[] = {sizeof(aios_server_options_t), sizeof(aios_server_options_t),
                                 sizeof(aios_server_options_t), sizeof(aios_server_options_t) + 8, 0, 8,
                                 offsetof(aios_server_options_t, has_sock)};
  static const int families[] = {0, 0, AF_INET, AF_INET6, AF_UNIX, -1};
  static const int flags[] = {0, 0, AI_CANONNAME, AI_V4MAPPED, -1};
  static const int backlogs[] = {0, 0, 1, 5, -1, INT_MAX, INT_MIN};
  static const int tri[] = {0, 0, 1, -1, 2, INT_MIN};
  static const char *const one[] = {"127.0.0.1"}, *const null_host[] = {NULL},
                           *const two[] = {"no-such-host.invalid", "127.0.0.1"};
  uint8_t b = rd8(r), h, s;
  int fd = -1, peer = -1;
  *fd_idx = -1;
  memset(buf, 0, sizeof *buf);
  if ((b & 3) == 0) return NULL;
  buf->o.size = sizes[rd8(r) % (sizeof sizes / sizeof sizes[0])];
  buf->o.family = families[rd8(r) % (sizeof families / sizeof families[0])];
  buf->o.flags = flags[rd8(r) % (sizeof flags / sizeof flags[0])] | AI_NUMERICHOST;
  buf->o.backlog = backlogs[rd8(r) % (sizeof backlogs / sizeof backlogs[0])];
  buf->o.reuse_address = tri[rd8(r) % 6];
  buf->o.reuse_port = tri[rd8(r) % 6];
  buf->o.start_serving = tri[rd8(r) % 6];
  h = rd8(r);
  switch (h % 8) {
  case 1: buf->o.hosts = one; buf->o.host_count = 1; break;
  case 2: buf->o.hosts = null_host; buf->o.host_count = 1; break;
  case 3: buf->o.hosts = two; buf->o.host_count = 2; break;
  case 4: buf->o.hosts = NULL; buf->o.host_count = 2; break;
  case 5: buf->o.hosts = g_many_hosts; buf->o.host_count = sizeof g_many_hosts / sizeof g_many_hosts[0]; break;
  default: break;
  }
  s = rd8(r);
  switch (s % 10) {
  case 1: case 2: /* a listening socket of the server's kind */
    if (net_budget()) fd = unix_server ? unix_listener() : tcp_socket_bound(1);
    break;
  case 3: /* bound, not listening */
    if (net_budget()) fd = tcp_socket_bound(0);
    break;
  case 4: { /* a pipe */
    int p[2];
    if (pipe2(p, O_CLOEXEC) == 0) {
      fd = p[0];
      fd_add(p[1], 0);
    }
    break;
  }
  case 5: buf->o.has_sock = 1; buf->o.sock = -1; return &buf->o;
  case 6: buf->o.has_sock = 1; buf->o.sock = 1 << 20; return &buf->o;
  case 7: /* of the other kind */
    if (net_budget()) fd = unix_server ? tcp_socket_bound(1) : unix_listener();
    break;
  case 8: /* a connected socket */
    if (net_budget()) {
      fd = tcp_pair(&peer);
      fd_add(peer, 1);
    }
    break;
  default: return &buf->o;
  }
  if (fd >= 0) {
    *fd_idx = fd_add(fd, 0);
    if (*fd_idx >= 0) {
      struct sockaddr_storage a;
      socklen_t len = sizeof a;
      g_fds[*fd_idx].unix_listener = getsockname(fd, (struct sockaddr *)&a, &len) == 0 && a.ss_family == AF_UNIX;
      buf->o.has_sock = 1;
      buf->o.sock = fd;
    }
  }
  return &buf->o;
}

/* A descriptor for connect_accepted_socket: *idx is its record (-1 for
 * none: a number that names nothing). */
static int pick_accepted_fd(reader_t *r, int *idx) {
  int p[2], fd = -1, peer = -1;
  uint8_t b = rd8(r);
  *idx = -1;
  switch (b % 12) {
  case 0: case 1: case 2: case 3: case 4: /* a Unix pair: the harness is the peer */
    if (net_budget() && socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p) == 0) {
      fd = p[0];
      peer = p[1];
    }
    break;
  case 5: /* TCP on 127.0.0.1 */
    if (net_budget()) fd = tcp_pair(&peer);
    break;
  case 6: /* not a socket */
    if (pipe2(p, O_CLOEXEC) == 0) {
      fd = p[0];
      fd_add(p[1], 0);
    }
    break;
  case 7: /* not a stream */
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    break;
  case 8:
    if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, p) == 0) {
      fd = p[0];
      fd_add(p[1], 0);
    }
    break;
  case 9: /* listening, not connected */
    if (net_budget()) fd = tcp_socket_bound(1);
    break;
  case 10: return -1;
  default: return 1 << 20;
  }
  if (peer >= 0) fd_add(peer, 1);
  *idx = fd_add(fd, 0);
  return *idx >= 0 ? fd : -1;
}

/* A socket address for getnameinfo, in buf (128 bytes): its length. */
static unsigned int pick_address(reader_t *r, unsigned char *buf) {
  struct sockaddr_in *in = (struct sockaddr_in *)buf;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)buf;
  struct sockaddr_un *un = (struct sockaddr_un *)buf;
  uint8_t b = rd8(r);
  int n = g_nports < NPORTS ? g_nports : NPORTS;
  memset(buf, 0, 128);
  switch (b % 11) {
  case 0: case 1:
    in->sin_family = AF_INET;
    in->sin_port = htons(n ? g_ports[(b >> 4) % n] : 80);
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sizeof *in;
  case 2:
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(443);
    in6->sin6_addr.s6_addr[15] = 1;
    return sizeof *in6;
  case 3: /* link-local with a scope id */
    in6->sin6_family = AF_INET6;
    in6->sin6_addr.s6_addr[0] = 0xfe;
    in6->sin6_addr.s6_addr[1] = 0x80;
    in6->sin6_addr.s6_addr[15] = 1;
    in6->sin6_scope_id = 1;
    return sizeof *in6;
  case 4:
    un->sun_family = AF_UNIX;
    snprintf(un->sun_path, sizeof un->sun_path, "%s", g_paths[0]);
    return sizeof *un;
  case 5:
    buf[0] = 0xff;
    buf[1] = 0xff;
    return 16;
  case 6:
    in->sin_family = AF_INET;
    return sizeof *in - 1; /* too short */
  case 7: return b & 0x10;  /* 0 */
  case 8: buf[0] = AF_INET; return 1;
  case 9: in->sin_family = AF_INET; return 128;
  default: in->sin_family = AF_INET; return (b & 0x10) ? UINT_MAX : 129;
  }
}

/* ---- Pipes, signals and children ---- */

/* Children: only cheap, bounded programs (true, exit N, cat fed a few
 * bytes, sleep 5 killed at once), CHILD_CAP spawns per input. Each spawn
 * has a plan: what the child runs, the returncode it ends with if left
 * alone, and whether the harness touched it since (a signal, a close, a
 * cancel, its pipes or streams handed out), which voids those expectations. */
#define CHILD_CAP 3
#define NPLANS 8
#define NO_CODE INT_MIN
#define NCHILDREN 64

enum { PG_TRUE, PG_EXIT, PG_SELF_KILL, PG_CAT, PG_SLEEP, PG_PRINTF, PG_NONE };

typedef struct plan_s {
  const aios_loop_t *loop; /* compared only */
  int prog, expect;
  int pipes;        /* bit fd: the options asked for a pipe there */
  int err_to_out;   /* stderr is AIOS_CHILD_STDOUT */
  int pid;          /* 0 until the harness learns it */
  int touched;
  int communicates;
  size_t input_len; /* the communicate's input, from g_wbuf */
} plan_t;
static plan_t g_plans[NPLANS];
static int g_nplans;
static int g_child_base[NCHILDREN], g_nchild_base = -1; /* the children before the first spawn */
static void *g_rpipes[NNETF]; /* read pipes' transports (compared, not held) */
static int g_nrpipes;
static char g_path_fifo[128];
static const char *g_many_env[201];
static int g_many_fds[300];

typedef struct program_s {
  const char *file; /* exec: the program ("@file", "@long": see child_file); shell: the command */
  const char *const *args;
  int prog, expect;
  int cannot_start;
} program_t;

static const char *const args_none[] = {NULL};
static const char *const args_exit[] = {"-c", "exit 3", NULL};
static const char *const args_kill[] = {"-c", "kill -9 $$", NULL};
static const char *const args_dash[] = {"-", NULL};
static const char *const args_sleep[] = {"5", NULL};
static const char *const args_printf[] = {"-c", "printf ab; printf cd >&2", NULL};

static const program_t exec_programs[] = {
  {"/bin/true", NULL, PG_TRUE, 0, 0},
  {"true", args_none, PG_TRUE, 0, 0}, /* searched in PATH */
  {"/bin/sh", args_exit, PG_EXIT, 3, 0},
  {"/bin/sh", args_kill, PG_SELF_KILL, -SIGKILL, 0},
  {"cat", NULL, PG_CAT, NO_CODE, 0},
  {"/bin/cat", args_dash, PG_CAT, NO_CODE, 0},
  {"/bin/sleep", args_sleep, PG_SLEEP, NO_CODE, 0},
  {"/bin/sh", args_printf, PG_PRINTF, NO_CODE, 0},
  {NULL, NULL, PG_NONE, NO_CODE, 1},
  {"", NULL, PG_NONE, NO_CODE, 1},
  {"/nonexistent/aios-fuzz", NULL, PG_NONE, NO_CODE, 1},
  {"aios-fuzz-no-such-program", NULL, PG_NONE, NO_CODE, 1},
  {"/", NULL, PG_NONE, NO_CODE, 1},      /* a directory */
  {"@file", NULL, PG_NONE, NO_CODE, 1},  /* not executable */
  {"@long", NULL, PG_NONE, NO_CODE, 1},  /* a name too long */
  {"/bin/true", args_printf, PG_TRUE, 0, 0},
};
static const program_t shell_programs[] = {
  {"exit 0", NULL, PG_TRUE, 0, 0},
  {"exit 7", NULL, PG_EXIT, 7, 0},
  {"exit 300", NULL, PG_EXIT, 300 & 255, 0},
  {"kill -9 $$", NULL, PG_SELF_KILL, -SIGKILL, 0},
  {"exec cat", NULL, PG_CAT, NO_CODE, 0},
  /* exec: no grandchild is left when the shell is killed */
  {"exec /bin/sleep 5", NULL, PG_SLEEP, NO_CODE, 0},
  {"printf ab; printf cd >&2", NULL, PG_PRINTF, NO_CODE, 0},
  {"", NULL, PG_TRUE, 0, 0},
  {NULL, NULL, PG_NONE, NO_CODE, 1},
};
#define N_EXEC_PROGRAMS (sizeof exec_programs / sizeof exec_programs[0])
#define N_SHELL_PROGRAMS (sizeof shell_programs / sizeof shell_programs[0])

static const char *child_file(const program_t *pg) {
  if (pg->file && strcmp(pg->file, "@file") == 0) return g_path_file;
  if (pg->file && strcmp(pg->file, "@long") == 0) return g_long_string;
  return pg->file;
}

/* The process's children (libFuzzer's symbolizer may be one): -1 when the
 * kernel does not list them. */
static int list_children(int *pids, int cap) {
  DIR *d = opendir("/proc/self/task");
  struct dirent *e;
  int n = 0;
  if (d == NULL) return -1;
  while ((e = readdir(d)) != NULL) {
    char path[300];
    FILE *fp;
    int pid;
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "/proc/self/task/%s/children", e->d_name);
    fp = fopen(path, "re");
    if (fp == NULL) {
      closedir(d);
      return -1;
    }
    while (n < cap && fscanf(fp, "%d", &pid) == 1) pids[n++] = pid;
    fclose(fp);
  }
  closedir(d);
  return n;
}

/* Whether `pid` is a child of ours not reaped yet (running, or a zombie). */
static int unreaped(int pid, int *zombie) {
  char path[64], buf[512], *p;
  FILE *fp;
  int ppid = 0;
  char state = 0;
  *zombie = 0;
  snprintf(path, sizeof path, "/proc/%d/stat", pid);
  fp = fopen(path, "re");
  if (fp == NULL) return 0;
  p = fgets(buf, sizeof buf, fp) ? strrchr(buf, ')') : NULL;
  fclose(fp);
  if (p == NULL || sscanf(p + 1, " %c %d", &state, &ppid) != 2 || ppid != (int)getpid()) return 0;
  *zombie = state == 'Z';
  return 1;
}

static int spawned_on(const aios_loop_t *loop) {
  int i;
  for (i = 0; loop && i < g_nplans; i++)
    if (g_plans[i].loop == loop) return 1;
  return 0;
}

/* BUG_SUBPROCESS_EXIT_AT_CLOSE (findings/subprocess-exit-pending-at-close):
 * a child reaped in an iteration whose connection_lost the same iteration
 * schedules for the next one (it exited before its transport connected, or
 * its last pipe closed in a callback), then the loop closed: the callback is
 * dropped, and the transport and its loop leak. Off: children go only to
 * loops LOOP_NEW made (which the harness alone closes, never inside a
 * callback), and such a loop runs on before it closes until none of its
 * children was reaped for 3 iterations (one still running is killed and
 * reaped by the close itself, which is fine). */
static void drain_children(aios_loop_t *loop) {
  int quiet = 0, k, i, zombie, before = 0, after, zombies;
  if (BUG_SUBPROCESS_EXIT_AT_CLOSE || !spawned_on(loop) || g_in_run || aios_loop_is_closed(loop) != 0) return;
  for (i = 0; i < g_nplans; i++)
    if (g_plans[i].loop == loop && g_plans[i].pid > 0) before += unreaped(g_plans[i].pid, &zombie);
  for (k = 0; k < 16 && quiet < 3; k++) {
    begin_run(NULL, RUN_DIRECT);
    g_watch_armed = g_run_id;
    aios_loop_stop(loop);
    aios_loop_run_forever(loop);
    end_run();
    after = zombies = 0;
    for (i = 0; i < g_nplans; i++) {
      if (g_plans[i].loop != loop || g_plans[i].pid <= 0) continue;
      after += unreaped(g_plans[i].pid, &zombie);
      zombies += zombie;
    }
    quiet = after < before || zombies ? 0 : quiet + 1;
    before = after;
  }
}

/* BUG_SUBPROCESS_EXIT_AT_CLOSE: see drain_children. */
static int child_loop_ok(aios_loop_t *loop) {
  if (BUG_SUBPROCESS_EXIT_AT_CLOSE || aios_loop_is_closed(loop) != 0 || made_kind(loop) == FK_LOOP_NEW) return 1;
  TRACE("  (skipped: not a loop of ours, BUG_SUBPROCESS_EXIT_AT_CLOSE)");
  return 0;
}

/* The child a spawn forked: the one new in the list. */
static int new_child(const int *before, int nb, const int *after, int na) {
  int i, k;
  for (i = 0; i < na; i++) {
    for (k = 0; k < nb && before[k] != after[i]; k++) {}
    if (k == nb) return after[i];
  }
  return 0;
}

static int child_budget(void) {
  if (g_nplans >= CHILD_CAP) {
    TRACE("  (skipped: %d spawns made)", g_nplans);
    return 0;
  }
  if (g_nplans == 0) g_nchild_base = list_children(g_child_base, NCHILDREN);
  return 1;
}

static plan_t *plan_of(int i) { return i >= 0 && i < g_nplans ? &g_plans[i] : NULL; }

static int plan_by_pid(int pid) {
  int i;
  for (i = 0; pid > 0 && i < g_nplans; i++)
    if (g_plans[i].pid == pid) return i;
  return -1;
}

/* The harness acts on the child `pid` names (a live one: the call may
 * work), or on one it cannot tell: then on all of them. */
static void touch_pid(int pid) {
  int i = plan_by_pid(pid);
  if (pid <= 0) return;
  if (i >= 0) {
    g_plans[i].touched = 1;
    return;
  }
  for (i = 0; i < g_nplans; i++) g_plans[i].touched = 1;
}
static void touch_subprocess(aios_subprocess_t *sp) { touch_pid(aios_subprocess_get_pid(sp)); }

/* The plan of a process object, or -1. */
static int process_plan(aios_process_t *pr) {
  aios_subprocess_t *sp = NULL;
  int pid;
  if (aios_process_get_subprocess(pr, &sp) != 0) return -1;
  pid = aios_subprocess_get_pid(sp);
  aios_subprocess_unref(sp);
  return plan_by_pid(pid);
}

/* A spawn's subprocess, first seen: its plan learns the pid; a sleep is
 * killed at once, so that no input waits on one. */
static void child_seen(int plan, aios_subprocess_t *sp) {
  plan_t *pl = plan_of(plan);
  int pid = aios_subprocess_get_pid(sp), rc;
  if (pl == NULL || pid <= 0) return;
  if (pl->pid && pl->pid != pid) die("aios_subprocess_get_pid gave %d; the child forked is %d", pid, pl->pid);
  pl->pid = pid;
  if (pl->prog == PG_SLEEP) {
    rc = aios_subprocess_kill(sp);
    TRACE("  (killing sleep %d: %d)", pid, rc);
    if (rc != 0 && rc != -ESRCH) die("aios_subprocess_kill of a sleep that just started returned %d", rc);
  }
}

static void rpipe_add(void *t) {
  if (t && g_nrpipes < NNETF) g_rpipes[g_nrpipes++] = t;
}
static int is_read_pipe(const void *t) {
  int i;
  for (i = 0; t && i < g_nrpipes; i++)
    if (g_rpipes[i] == t) return 1;
  return 0;
}

/* A future someone set, failed or cancelled from outside: its result is
 * not what its call made (and a spawn's child is killed). */
static void future_meddled(const void *f) {
  int i;
  for (i = 0; f && i < g_nnetf; i++) {
    if (g_netf[i] != f) continue;
    g_netk[i].seen = 1;
    if (plan_of(g_netk[i].plan)) g_plans[g_netk[i].plan].touched = 1;
  }
}

/* The oracles of a result, once: a spawn's object (its pid), a wait's
 * returncode, a communicate's output, a read pipe's transport. */
static void note_result(int i, void *value) {
  plan_t *pl;
  if (g_netk[i].kind == NK_NONE || g_netk[i].seen) return;
  g_netk[i].seen = 1;
  pl = plan_of(g_netk[i].plan);
  switch (g_netk[i].kind) {
  case NK_SPAWN:
    if (aios_subprocess_get_pid((aios_subprocess_t *)value) <= 0) die("a spawn's result %p is no subprocess", value);
    child_seen(g_netk[i].plan, (aios_subprocess_t *)value);
    break;
  case NK_PROCESS: {
    aios_subprocess_t *sp = NULL;
    if (aios_process_get_subprocess((aios_process_t *)value, &sp) != 0) die("a spawn's result %p is no process", value);
    child_seen(g_netk[i].plan, sp);
    aios_subprocess_unref(sp);
    break;
  }
  case NK_WAIT: {
    int code = (int)(intptr_t)value;
    TRACE("  (wait: returncode %d)", code);
    if (code < -64 || code > 255) die("aios_process_wait gave the returncode %d", code);
    if (pl && !pl->touched && pl->expect != NO_CODE && code != pl->expect && code != -SIGKILL)
      die("aios_process_wait gave %d for a child that ends with %d", code, pl->expect);
    break;
  }
  case NK_COMMUNICATE: {
    const aios_output_t *o = (const aios_output_t *)value;
    if (o == NULL) die("aios_process_communicate gave a NULL output");
    if (o->out) check_bytes(o->out, "communicate's stdout");
    if (o->err) check_bytes(o->err, "communicate's stderr");
    TRACE("  (communicate: %zd and %zd bytes)", o->out ? (ssize_t)o->out->length : -1, o->err ? (ssize_t)o->err->length : -1);
    if (pl == NULL) break;
    if ((o->out != NULL) != ((pl->pipes & 2) != 0) || (o->err != NULL) != ((pl->pipes & 4) != 0))
      die("communicate gave stdout %p and stderr %p for pipes %#x", (void *)o->out, (void *)o->err, pl->pipes);
    if (pl->touched || pl->communicates != 1) break;
    if (pl->prog == PG_CAT && (pl->pipes & 3) == 3 &&
        (o->out->length != pl->input_len || memcmp(o->out->data, g_wbuf, pl->input_len) != 0))
      die("cat fed %zu bytes gave back %zu", pl->input_len, o->out->length);
    if (pl->prog == PG_PRINTF && o->out && o->out->length != 2u + (pl->err_to_out ? 2u : 0u))
      die("printf wrote %zu bytes to stdout", o->out->length);
    if (pl->prog == PG_PRINTF && o->err && o->err->length != 2)
      die("printf wrote %zu bytes to stderr", o->err->length);
    if (pl->prog == PG_CAT && o->err && o->err->length != 0) die("cat wrote %zu bytes to stderr", o->err->length);
    break;
  }
  case NK_READ_PIPE:
    rpipe_add(value);
    break;
  default:
    break;
  }
}

/* A closed descriptor number nobody will be handed (they are given lowest
 * first): a number that names nothing at the call and after it. */
static int closed_fd(void) {
  int fd;
  for (fd = 900; fd < 1000; fd++)
    if (fcntl(fd, F_GETFD) == -1 && errno == EBADF) return fd;
  return 999;
}

/* The harness's end of a pipe or pair it gave away: a peer for PEER_OP. */
static int peer_add(int fd, int is_pipe) {
  int idx;
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  idx = fd_add(fd, 1);
  if (idx >= 0) g_fds[idx].is_pipe = is_pipe;
  return idx;
}

/* ---- Spawn options ---- */

typedef struct spawn_buf_s {
  aios_spawn_options_t o;
  char pad[16];
  int pass[1];
  int kept[5]; /* records of the caller's descriptors: the call leaves them open */
  int nkept;
} spawn_buf_t;

/* A descriptor for a child's stream (AIOS_CHILD_FD) or pass_fds: the
 * child's end of a pipe (blocking; the harness keeps the other end as a
 * peer), /dev/null, a socket pair's end; `odd`, numbers that name nothing
 * too. */
static int pick_child_fd(reader_t *r, int child_reads, spawn_buf_t *sb, int odd) {
  int p[2], fd = -1, mine = -1, idx, is_pipe = 0;
  switch (rd8(r) % (odd ? 8 : 5)) {
  case 0: case 1: case 2:
    if (pipe2(p, O_CLOEXEC) != 0) return -1;
    fd = child_reads ? p[0] : p[1];
    mine = child_reads ? p[1] : p[0];
    is_pipe = 1;
    break;
  case 3: fd = open("/dev/null", O_RDWR | O_CLOEXEC); break;
  case 4:
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) != 0) return -1;
    fd = p[0];
    mine = p[1];
    break;
  case 5: return -1;
  case 6: return closed_fd();
  default: return 1 << 20;
  }
  if (mine >= 0) peer_add(mine, is_pipe);
  idx = fd_add(fd, 0);
  if (idx < 0) return -1;
  if (sb->nkept < 5) sb->kept[sb->nkept++] = idx;
  return fd;
}

/* Spawn options: NULL, sound ones (every mode, a cwd, an environment,
 * descriptors kept), or, one time in four, odd ones: sizes too small,
 * modes out of range, STDOUT for stdin or stdout, bad descriptors, a cwd
 * that is not a directory, environments without PATH or with entries that
 * are not NAME=value, process groups that are not, pass_fds negative,
 * closed, beyond the limit, INT_MAX, 257 of them, NULL with a count. */
/* The size of aios_spawn_options_t before socket_pairs, which the library
 * still takes (those callers get pipes). */
#define SPAWN_OPTIONS_OLD_SIZE (offsetof(aios_spawn_options_t, limit) + sizeof(size_t))

static aios_spawn_options_t *pick_spawn_options(reader_t *r, spawn_buf_t *sb) {
  static const size_t sizes[] = {sizeof(aios_spawn_options_t), sizeof(aios_spawn_options_t) + 8, 0, 8,
                                 offsetof(aios_spawn_options_t, limit), sizeof(aios_spawn_options_t) - 1,
                                 SPAWN_OPTIONS_OLD_SIZE};
  static const int modes[] = {AIOS_CHILD_PIPE, AIOS_CHILD_PIPE, AIOS_CHILD_PIPE, AIOS_CHILD_INHERIT,
                              AIOS_CHILD_DEVNULL, AIOS_CHILD_FD, AIOS_CHILD_STDOUT, -1, 5};
  static const char *const env_one[] = {"AIOS_FUZZ=1", NULL}, *const env_none[] = {NULL},
                           *const env_no_path[] = {"PATH=/nonexistent", NULL},
                           *const env_odd[] = {"no equals sign", "=", "%s%n=x", NULL};
  static const int groups[] = {0, 0, -1, 1, INT_MAX, INT_MIN, -2};
  aios_spawn_options_t *o = &sb->o;
  uint8_t b = rd8(r), e, pf, g;
  int odd = (b & 0x0c) == 0x0c;
  memset(sb, 0, sizeof *sb);
  if ((b & 3) == 0) return NULL;
  o->size = odd ? sizes[rd8(r) % (sizeof sizes / sizeof sizes[0])] : sizeof *o + ((b & 0x10) ? 8 : 0);
  /* Socket pairs for the pipes, when the size covers the field. */
  o->socket_pairs = (b & 0x80) != 0;
  o->stdin_mode = modes[rd8(r) % (odd ? 9 : 6)];
  o->stdout_mode = modes[rd8(r) % (odd ? 9 : 6)];
  o->stderr_mode = modes[rd8(r) % (odd ? 9 : 7)];
  if (o->stdin_mode == AIOS_CHILD_FD) o->stdin_fd = pick_child_fd(r, 1, sb, odd);
  if (o->stdout_mode == AIOS_CHILD_FD) o->stdout_fd = pick_child_fd(r, 0, sb, odd);
  if (o->stderr_mode == AIOS_CHILD_FD) o->stderr_fd = pick_child_fd(r, 0, sb, odd);
  e = rd8(r);
  switch (e % (odd ? 8 : 4)) {
  case 3: o->cwd = g_dir; break;
  case 4: o->cwd = "/nonexistent-aios-fuzz"; break;
  case 5: o->cwd = g_path_file; break;
  case 6: o->cwd = ""; break;
  case 7: o->cwd = g_long_string; break;
  default: break;
  }
  switch ((e >> 3) % (odd ? 7 : 4)) {
  case 2: o->env = env_one; break;
  case 3: o->env = env_none; break;
  case 4: o->env = env_no_path; break;
  case 5: o->env = env_odd; break;
  case 6: o->env = g_many_env; break;
  default: break;
  }
  o->env_extend = (e & 0x80) != 0;
  g = rd8(r);
  o->start_new_session = g & 1;
  o->use_process_group = (g & 2) != 0;
  o->process_group = (g >> 2) % 8 == 7 ? (int)getpgrp() : odd ? groups[(g >> 2) % 7] : 0;
  pf = rd8(r);
  switch (pf % (odd ? 10 : 5)) {
  case 2: /* a descriptor of ours, kept in the child */
    sb->pass[0] = pick_child_fd(r, (pf & 0x10) != 0, sb, 0);
    o->pass_fds = sb->pass;
    o->pass_fds_count = 1;
    break;
  case 3: o->pass_fds = g_many_fds; o->pass_fds_count = (pf & 0x10) ? 256 : 2; break;
  case 4: o->pass_fds = g_many_fds; o->pass_fds_count = 0; break;
  case 5: sb->pass[0] = -1; o->pass_fds = sb->pass; o->pass_fds_count = 1; break;
  case 6: sb->pass[0] = closed_fd(); o->pass_fds = sb->pass; o->pass_fds_count = 1; break;
  case 7:
    /* BUG_PASS_FD_INT_MAX (findings/pass-fd-int-max-blocks): the spawn
     * calls fcntl on every number below a kept one (1 << 20: 0.1 s;
     * INT_MAX: minutes, in the call). Off: 1 << 20. */
    sb->pass[0] = (pf & 0x10) && BUG_PASS_FD_INT_MAX ? INT_MAX : 1 << 20;
    o->pass_fds = sb->pass;
    o->pass_fds_count = 1;
    break;
  case 8: o->pass_fds = g_many_fds; o->pass_fds_count = 257; break;
  case 9:
    /* BUG_PASS_FDS_COUNT_HUGE (findings/pass-fds-count-size-max): a count
     * of 2^63 or more traps (SIGILL in spawnOptions: it is a negative Int,
     * which passes the check against 256, then 0..<count). Off: 2^62,
     * refused as too many. */
    o->pass_fds = (pf & 0x10) ? NULL : g_many_fds;
    o->pass_fds_count = (pf & 0x10) ? 2 : BUG_PASS_FDS_COUNT_HUGE ? SIZE_MAX : (size_t)1 << 62;
    break;
  default: break;
  }
  o->limit = odd ? pick_limit(r) : (pf & 0x80) ? 1 : 0;
  /* Signals: reset or restored (both give SIGPIPE, which the harness
   * ignores, its default: a child's outcome stays the plan's); odd ones out
   * of range. */
  {
    static const int odd_signals[] = {3, -1, INT_MAX, AIOS_CHILD_SIGNALS_RESTORE};
    uint8_t sg = rd8(r);
    o->signals = odd ? odd_signals[sg % 4] : sg % 2;
  }
  TRACE("  options: size %zu, modes %d %d %d (fds %d %d %d), cwd %.30s, env %p%s, session %d, group %d/%d, "
        "%zu pass_fds (first %d), signals %d", o->size, o->stdin_mode, o->stdout_mode, o->stderr_mode, o->stdin_fd, o->stdout_fd,
        o->stderr_fd, o->cwd ? o->cwd : "-", (const void *)o->env, o->env_extend ? " (extend)" : "",
        o->start_new_session, o->use_process_group, o->process_group, o->pass_fds_count,
        o->pass_fds && o->pass_fds_count ? o->pass_fds[0] : -1, o->signals);
  return o;
}

/* ---- Subprocess protocols whose callbacks run programs ---- */

enum { SPF_MADE = 1, SPF_DATA = 2, SPF_PIPE_LOST = 4, SPF_EXITED = 8, SPF_LOST = 16, SPF_FLOW = 32,
       SPF_DESTROY = 64 };

typedef struct sproto_buf_s {
  aios_subprocess_protocol_t p;
  char pad[16];
} sproto_buf_t;

/* Connected (by connection_made, or the first callback of a table without
 * one): which fds have a pipe must be what the options asked for. */
static void sproto_connected(closure_t *c, aios_subprocess_t *sp) {
  plan_t *pl = plan_of(c->child);
  int fd;
  c->pstate = P_MADE;
  for (fd = 0; fd < 3; fd++) {
    aios_transport_t *t = NULL;
    if (aios_subprocess_get_pipe_transport(sp, fd, &t) == 0) {
      c->sp_pipes |= 1u << fd;
      aios_transport_unref(t);
    }
  }
  if (pl && (int)c->sp_pipes != pl->pipes)
    die("a child started with pipes %#x where the options asked for %#x (protocol %d)", c->sp_pipes, pl->pipes, pidx(c));
  child_seen(c->child, sp);
}

static closure_t *sproto_enter(void *arg, aios_subprocess_t *sp, const char *what, int need_made) {
  closure_t *c = check_closure(arg, K_SPROTO, what);
  if (!on_main()) die("%s ran off the loop's thread", what);
  if (sp == NULL || aios_subprocess_get_pid(sp) <= 0) die("%s got a dead subprocess %p", what, (void *)sp);
  count_callback(F_SPROTO);
  maybe_arm_watchdog();
  TRACE("(subprocess %s, protocol %d)", what, pidx(c));
  if (c == NULL) return NULL;
  if (c->pstate == P_LOST) die("subprocess %s after connection_lost (protocol %d)", what, pidx(c));
  if (need_made && c->pstate == P_NEW && !(c->pflags & SPF_MADE)) sproto_connected(c, sp);
  if (need_made && c->pstate != P_MADE) die("subprocess %s before connection_made (protocol %d)", what, pidx(c));
  return c;
}

static void sproto_program(closure_t *c, aios_subprocess_t *sp, aios_error_t *error, const char *what) {
  frame_t *f;
  if (c == NULL) return;
  c->calls++;
  if (!can_run_programs() || at_end(&c->prog)) return;
  f = push_frame(F_SPROTO);
  f->subprocess = sp;
  f->error = error;
  f->closure = c;
  f->self = sp;
  f->self_type = T_SUBPROCESS;
  TRACE("subprocess %s %d {", what, pidx(c));
  {
    reader_t part = sub_reader(&c->prog, rd8(&c->prog) % 16);
    run_program(&part);
  }
  TRACE("}");
  pop_frame();
}

static void check_lost_error(aios_error_t *error, const char *what) {
  int code;
  if (error == NULL) return;
  code = aios_error_code(error);
  if (code >= 0) die("%s got an error of code %d", what, code);
  check_string(aios_error_message(error));
}

static void sp_made(aios_subprocess_t *sp, void *arg) {
  closure_t *c = sproto_enter(arg, sp, "connection_made", 0);
  if (c && c->pstate != P_NEW) die("a subprocess's connection_made twice (protocol %d)", pidx(c));
  if (c) sproto_connected(c, sp);
  sproto_program(c, sp, NULL, "connection_made");
}

static void sp_data(aios_subprocess_t *sp, int fd, const void *data, size_t length, void *arg) {
  closure_t *c = sproto_enter(arg, sp, "pipe_data_received", 1);
  size_t i;
  unsigned sum = 0;
  if (fd != 1 && fd != 2) die("pipe_data_received for fd %d", fd);
  if (data == NULL || length == 0) die("pipe_data_received with %zu bytes at %p", length, data);
  for (i = 0; i < length; i++) sum += ((const unsigned char *)data)[i];
  (void)sum;
  if (c && !(c->sp_pipes & (1u << fd))) die("pipe_data_received for fd %d, which has no pipe (protocol %d)", fd, pidx(c));
  if (c && (c->sp_lost & (1u << fd))) die("pipe_data_received for fd %d after its pipe_connection_lost (protocol %d)", fd, pidx(c));
  if (c) c->sp_bytes[fd] += length;
  sproto_program(c, sp, NULL, "pipe_data_received");
}

static void sp_pipe_lost(aios_subprocess_t *sp, int fd, aios_error_t *error, void *arg) {
  closure_t *c = sproto_enter(arg, sp, "pipe_connection_lost", 1);
  if (fd < 0 || fd > 2) die("pipe_connection_lost for fd %d", fd);
  check_lost_error(error, "pipe_connection_lost");
  if (c && !(c->sp_pipes & (1u << fd))) die("pipe_connection_lost for fd %d, which has no pipe (protocol %d)", fd, pidx(c));
  if (c && (c->sp_lost & (1u << fd))) die("pipe_connection_lost twice for fd %d (protocol %d)", fd, pidx(c));
  if (c) c->sp_lost |= 1u << fd;
  sproto_program(c, sp, error, "pipe_connection_lost");
}

static void sp_exited(aios_subprocess_t *sp, void *arg) {
  closure_t *c = sproto_enter(arg, sp, "process_exited", 1);
  int code = 0;
  if (aios_subprocess_get_returncode(sp, &code) != 1) die("process_exited before the returncode is known");
  if (c && c->sp_exited++) die("process_exited twice (protocol %d)", pidx(c));
  sproto_program(c, sp, NULL, "process_exited");
}

static void sp_lost(aios_subprocess_t *sp, aios_error_t *error, void *arg) {
  closure_t *c = sproto_enter(arg, sp, "connection_lost", 1);
  plan_t *pl;
  aios_loop_t *l = NULL;
  int code = 0, rc, open_loop;
  check_lost_error(error, "a subprocess's connection_lost");
  if (aios_subprocess_get_returncode(sp, &code) != 1) die("a subprocess's connection_lost before the child exited");
  /* Reaped: a signal must not reach whatever has the pid now. */
  rc = aios_subprocess_send_signal(sp, 0);
  if (rc != -ESRCH) die("aios_subprocess_send_signal in connection_lost returned %d, not -ESRCH", rc);
  open_loop = aios_subprocess_get_loop(sp, &l) == 0 && aios_loop_is_closed(l) == 0;
  if (l) aios_loop_unref(l);
  if (c) {
    if ((c->pflags & SPF_EXITED) && !c->sp_exited) die("a subprocess's connection_lost before process_exited (protocol %d)", pidx(c));
    if ((c->pflags & SPF_PIPE_LOST) && (c->sp_lost & c->sp_pipes) != c->sp_pipes)
      die("a subprocess's connection_lost with pipes %#x still open (protocol %d)", c->sp_pipes & ~c->sp_lost, pidx(c));
    c->pstate = P_LOST;
    pl = plan_of(c->child);
    if (pl && !pl->touched && pl->expect != NO_CODE && code != pl->expect && code != -SIGKILL)
      die("a child that ends with %d ended with %d (protocol %d)", pl->expect, code, pidx(c));
    /* Left alone on a loop that runs on: every byte it wrote came. */
    if (pl && !pl->touched && open_loop && code == 0 && pl->prog == PG_PRINTF && (c->pflags & SPF_DATA)) {
      size_t out = (pl->pipes & 2) ? 2u + (pl->err_to_out ? 2u : 0u) : 0u, err = (pl->pipes & 4) ? 2u : 0u;
      if (c->sp_bytes[1] != out || c->sp_bytes[2] != err)
        die("printf's bytes: %zu on stdout, %zu on stderr; expected %zu and %zu (protocol %d)", c->sp_bytes[1],
            c->sp_bytes[2], out, err, pidx(c));
    }
  }
  sproto_program(c, sp, error, "connection_lost");
}

static void sp_pause(aios_subprocess_t *sp, void *arg) {
  closure_t *c = sproto_enter(arg, sp, "pause_writing", 1);
  if (c && c->paused) die("a subprocess's pause_writing twice (protocol %d)", pidx(c));
  if (c) c->paused = 1;
  sproto_program(c, sp, NULL, "pause_writing");
}

static void sp_resume(aios_subprocess_t *sp, void *arg) {
  closure_t *c = sproto_enter(arg, sp, "resume_writing", 1);
  if (c && !c->paused) die("a subprocess's resume_writing without pause_writing (protocol %d)", pidx(c));
  if (c) c->paused = 0;
  sproto_program(c, sp, NULL, "resume_writing");
}

/* A subprocess protocol table (NULL, or of odd sizes), mostly with every
 * callback; its closure, pending when destroy was given, is in *cp. */
static aios_subprocess_protocol_t *pick_sprotocol(reader_t *r, sproto_buf_t *buf, closure_t **cp) {
  static const size_t sizes[] = {sizeof(aios_subprocess_protocol_t), sizeof(aios_subprocess_protocol_t),
                                 sizeof(aios_subprocess_protocol_t), sizeof(aios_subprocess_protocol_t) + 8, 0, 8,
                                 offsetof(aios_subprocess_protocol_t, destroy),
                                 sizeof(aios_subprocess_protocol_t) - 1};
  uint8_t b = rd8(r), size = rd8(r);
  unsigned flags = 0;
  closure_t *c;
  memset(buf, 0, sizeof *buf);
  *cp = NULL;
  if (size == 0xff) return NULL;
  c = capture(r, K_SPROTO);
  if (!(b & 1)) flags |= SPF_MADE;
  if (!(b & 2)) flags |= SPF_DATA;
  if (!(b & 4)) flags |= SPF_PIPE_LOST;
  if (!(b & 8)) flags |= SPF_EXITED;
  if (!(b & 16)) flags |= SPF_LOST;
  if (!(b & 32)) flags |= SPF_FLOW;
  if (!(b & 64)) flags |= SPF_DESTROY;
  if (c) c->pflags = flags;
  buf->p.size = sizes[size % (sizeof sizes / sizeof sizes[0])];
  buf->p.arg = c;
  buf->p.connection_made = (flags & SPF_MADE) ? sp_made : NULL;
  buf->p.pipe_data_received = (flags & SPF_DATA) ? sp_data : NULL;
  buf->p.pipe_connection_lost = (flags & SPF_PIPE_LOST) ? sp_pipe_lost : NULL;
  buf->p.process_exited = (flags & SPF_EXITED) ? sp_exited : NULL;
  buf->p.connection_lost = (flags & SPF_LOST) ? sp_lost : NULL;
  buf->p.pause_writing = (flags & SPF_FLOW) ? sp_pause : NULL;
  buf->p.resume_writing = (flags & SPF_FLOW) ? sp_resume : NULL;
  buf->p.destroy = (flags & SPF_DESTROY) && closure_offer(c) ? closure_dtor : NULL;
  TRACE("  subprocess protocol %d: size %zu, callbacks %#x", pidx(c), buf->p.size, flags);
  *cp = c;
  return &buf->p;
}

/* ---- Signal handlers ---- */

/* Signals of the harness's: SIGUSR1 and SIGUSR2 (libFuzzer's handlers
 * taken off at the first input), and signals whose default is to be
 * ignored; never one libFuzzer or ASan needs (SEGV, INT, ALRM, ...). The
 * others are refused. */
static const int g_signals[] = {SIGUSR1, SIGUSR2, SIGUSR1, SIGUSR2, SIGUSR1, SIGUSR2, SIGCHLD, SIGWINCH, SIGPIPE, 64,
                                0, 65, -1, SIGKILL, SIGSTOP, 32, 33, INT_MAX, INT_MIN};
#define N_SIGNALS (sizeof g_signals / sizeof g_signals[0])
static const int g_watched_signals[] = {SIGUSR1, SIGUSR2, SIGCHLD, SIGWINCH, SIGPIPE, 64};
#define N_WATCHED (sizeof g_watched_signals / sizeof g_watched_signals[0])
static void *g_sig_initial[N_WATCHED];

static int signal_refused(int s) { return s < 1 || s > 64 || s == SIGKILL || s == SIGSTOP || s == 32 || s == 33; }

static void *disposition(int s) {
  struct sigaction sa;
  if (sigaction(s, NULL, &sa) != 0) return NULL;
  return (sa.sa_flags & SA_SIGINFO) ? (void *)(uintptr_t)sa.sa_sigaction : (void *)(uintptr_t)sa.sa_handler;
}

/* raise(s) kills nothing: a handler catches it, or it is ignored. */
static int raise_is_safe(int s) {
  void *d = disposition(s);
  if (s == SIGCHLD || s == SIGWINCH) return 1;
  return d != (void *)(uintptr_t)SIG_DFL;
}

/* A signal handler: it may remove itself (its arg is destroyed then,
 * once), then runs a few ops. */
static void sig_cb(void *arg) {
  closure_t *c = check_closure(arg, K_SIGNAL, "signal handler");
  aios_loop_t *l = NULL;
  frame_t *f;
  uint8_t b;
  count_callback(F_SIGNAL);
  maybe_arm_watchdog();
  if (!on_main()) die("a signal handler ran off the loop's thread");
  if (c == NULL) return;
  c->calls++;
  if (!can_run_programs() || at_end(&c->prog)) return;
  b = rd8(&c->prog);
  if ((b & 1) && aios_get_running_loop(&l) == 0) {
    int rc = aios_loop_remove_signal_handler(l, c->sig);
    TRACE("signal handler %d removes itself (%d) -> %d", pidx(c), c->sig, rc);
    if (rc != 1) die("a signal handler removing its own handler got %d", rc);
    aios_loop_unref(l);
  }
  f = push_frame(F_SIGNAL);
  f->closure = c;
  f->self = c->self;
  f->self_type = c->self_type;
  TRACE("signal handler %d (%d) {", pidx(c), c->sig);
  {
    reader_t part = sub_reader(&c->prog, (b >> 1) & 15);
    run_program(&part);
  }
  TRACE("}");
  pop_frame();
}

/* ---- Datagram endpoints ---- */

enum { DPF_MADE = 1, DPF_RECV = 2, DPF_ERR = 4, DPF_LOST = 8, DPF_FLOW = 16, DPF_DESTROY = 32, DPF_ECHO = 64 };

/* Unix datagram paths: where endpoints bind, and the harness's own socket,
 * which never reads (sends to it fill up: EAGAIN, then pause_writing). */
static char g_dpaths[3][128];
static char g_dpath_harn[128];
static int g_dgram_harn = -1;
/* Ports datagram endpoints of this input are bound to (IPv4, IPv6). */
static int g_dports[NPORTS], g_ndports;
static int g_dports6[NPORTS], g_ndports6;

static void record_dport(aios_datagram_t *d) {
  struct sockaddr_storage a;
  unsigned int len = sizeof a;
  if (aios_datagram_get_sockname(d, &a, &len) != 0) return;
  if (a.ss_family == AF_INET) g_dports[g_ndports++ % NPORTS] = ntohs(((struct sockaddr_in *)&a)->sin_port);
  if (a.ss_family == AF_INET6) g_dports6[g_ndports6++ % NPORTS] = ntohs(((struct sockaddr_in6 *)&a)->sin6_port);
}

/* Every callback: its arg, the endpoint it lends, the protocol's life. */
static closure_t *dproto_enter(void *arg, aios_datagram_t *d, const char *what, int need_made) {
  closure_t *c = check_closure(arg, K_DPROTO, what);
  if (!on_main()) die("%s ran off the loop's thread", what);
  if (d == NULL || aios_datagram_is_closing(d) < 0) die("%s got a dead datagram endpoint %p", what, (void *)d);
  count_callback(F_DPROTO);
  maybe_arm_watchdog();
  TRACE("(%s, datagram protocol %d)", what, pidx(c));
  if (c == NULL) return NULL;
  if (c->pstate == P_LOST) die("%s after connection_lost (datagram protocol %d)", what, pidx(c));
  if (need_made && c->pstate == P_NEW && !(c->pflags & DPF_MADE)) c->pstate = P_MADE;
  if (need_made && c->pstate != P_MADE) die("%s before connection_made (datagram protocol %d)", what, pidx(c));
  return c;
}

static void dproto_program(closure_t *c, aios_datagram_t *d, aios_error_t *error, const char *what) {
  frame_t *f;
  if (c == NULL) return;
  c->calls++;
  if (!can_run_programs() || at_end(&c->prog)) return;
  f = push_frame(F_DPROTO);
  f->datagram = d;
  f->error = error;
  f->closure = c;
  f->self = d;
  f->self_type = T_DATAGRAM;
  TRACE("%s %d {", what, pidx(c));
  {
    reader_t part = sub_reader(&c->prog, rd8(&c->prog) % 16);
    run_program(&part);
  }
  TRACE("}");
  pop_frame();
}

static void dp_made(aios_datagram_t *d, void *arg) {
  closure_t *c = dproto_enter(arg, d, "datagram connection_made", 0);
  if (c && c->pstate != P_NEW) die("datagram connection_made twice (protocol %d)", pidx(c));
  if (c) c->pstate = P_MADE;
  dproto_program(c, d, NULL, "datagram connection_made");
}

static void dp_received(aios_datagram_t *d, const void *data, size_t length, const void *address,
                        unsigned int address_length, void *arg) {
  closure_t *c = dproto_enter(arg, d, "datagram_received", 1);
  size_t i;
  unsigned sum = 0;
  if (data == NULL && length > 0) die("datagram_received: %zu bytes at NULL", length);
  if (address_length > sizeof(struct sockaddr_storage) || (address_length > 0 && address == NULL))
    die("datagram_received from an address of %u bytes at %p", address_length, address);
  for (i = 0; i < length; i++) sum += ((const unsigned char *)data)[i];
  for (i = 0; i < address_length; i++) sum += ((const unsigned char *)address)[i];
  (void)sum;
  /* Sends it back (one input byte per echo: two echoing endpoints stop). */
  if (c && (c->pflags & DPF_ECHO) && can_run_programs() && !at_end(&c->prog) && (rd8(&c->prog) & 1)) {
    int rc = aios_datagram_sendto(d, data, length, address_length ? address : NULL, address_length);
    TRACE("  echo of %zu bytes -> %d", length, rc);
  }
  dproto_program(c, d, NULL, "datagram_received");
}

static void dp_error(aios_datagram_t *d, aios_error_t *error, void *arg) {
  closure_t *c = dproto_enter(arg, d, "error_received", 1);
  if (error == NULL) die("error_received without an error");
  if (aios_error_code(error) >= 0) die("error_received got an error of code %d", aios_error_code(error));
  check_string(aios_error_message(error));
  TRACE("  error %d", aios_error_code(error));
  dproto_program(c, d, error, "error_received");
}

static void dp_lost(aios_datagram_t *d, aios_error_t *error, void *arg) {
  closure_t *c = dproto_enter(arg, d, "datagram connection_lost", 1);
  if (error) {
    if (aios_error_code(error) >= 0) die("datagram connection_lost got an error of code %d", aios_error_code(error));
    check_string(aios_error_message(error));
  }
  if (c) {
    c->pstate = P_LOST;
    c->dlost++;
  }
  dproto_program(c, d, error, "datagram connection_lost");
}

static void dp_pause(aios_datagram_t *d, void *arg) {
  closure_t *c = dproto_enter(arg, d, "datagram pause_writing", 1);
  if (c && c->paused) die("datagram pause_writing twice (protocol %d)", pidx(c));
  if (c) c->paused = 1;
  dproto_program(c, d, NULL, "datagram pause_writing");
}

static void dp_resume(aios_datagram_t *d, void *arg) {
  closure_t *c = dproto_enter(arg, d, "datagram resume_writing", 1);
  if (c && !c->paused) die("datagram resume_writing without pause_writing (protocol %d)", pidx(c));
  if (c) c->paused = 0;
  dproto_program(c, d, NULL, "datagram resume_writing");
}

typedef struct dproto_buf_s {
  aios_datagram_protocol_t p;
  char pad[16];
} dproto_buf_t;

/* A datagram protocol table (NULL, or of odd sizes: refused); its closure,
 * pending when destroy was given, is in *cp. */
static aios_datagram_protocol_t *pick_dprotocol(reader_t *r, dproto_buf_t *buf, closure_t **cp) {
  static const size_t sizes[] = {sizeof(aios_datagram_protocol_t), sizeof(aios_datagram_protocol_t),
                                 sizeof(aios_datagram_protocol_t), sizeof(aios_datagram_protocol_t) + 8,
                                 sizeof(aios_datagram_protocol_t), 0, 8, offsetof(aios_datagram_protocol_t, destroy)};
  uint8_t b = rd8(r), size = rd8(r);
  unsigned fl = 0;
  closure_t *c;
  memset(buf, 0, sizeof *buf);
  *cp = NULL;
  if (size == 0xff) return NULL;
  c = capture(r, K_DPROTO);
  if (!(b & 1)) fl |= DPF_MADE;
  if (!(b & 2)) fl |= DPF_RECV;
  if (!(b & 4)) fl |= DPF_ERR;
  if (!(b & 8)) fl |= DPF_LOST;
  if (!(b & 16)) fl |= DPF_FLOW;
  if (!(b & 32)) fl |= DPF_DESTROY;
  if (b & 64) fl |= DPF_ECHO;
  if (c) c->pflags = fl;
  buf->p.size = sizes[size % (sizeof sizes / sizeof sizes[0])];
  buf->p.arg = c;
  buf->p.connection_made = (fl & DPF_MADE) ? dp_made : NULL;
  buf->p.datagram_received = (fl & DPF_RECV) ? dp_received : NULL;
  buf->p.error_received = (fl & DPF_ERR) ? dp_error : NULL;
  buf->p.connection_lost = (fl & DPF_LOST) ? dp_lost : NULL;
  buf->p.pause_writing = (fl & DPF_FLOW) ? dp_pause : NULL;
  buf->p.resume_writing = (fl & DPF_FLOW) ? dp_resume : NULL;
  buf->p.destroy = (fl & DPF_DESTROY) && closure_offer(c) ? closure_dtor : NULL;
  *cp = c;
  return &buf->p;
}

/* ---- Descriptor watchers ---- */

/* What the harness added: the oracles of remove and of the callbacks. */
#define NWATCH 256
typedef struct watch_s {
  const void *loop;
  int fd, reading, active;
  dev_t dev;
  ino_t ino;
  closure_t *c;
} watch_t;
static watch_t g_watch[NWATCH];
static int g_nwatch;

/* Whether `fd` names the file it named when it was watched. */
static int watch_current(const watch_t *w) {
  struct stat st;
  return fstat(w->fd, &st) == 0 && st.st_dev == w->dev && st.st_ino == w->ino;
}

static watch_t *watch_find(const void *loop, int fd, int reading) {
  int i;
  for (i = g_nwatch - 1; i >= 0; i--)
    if (g_watch[i].active && g_watch[i].loop == loop && g_watch[i].fd == fd && g_watch[i].reading == reading)
      return &g_watch[i];
  return NULL;
}

/* The watcher of (loop, fd) is gone: its callback may run no more, if its
 * descriptor still named the same file (else a call scheduled may run). */
static void watch_gone(watch_t *w) {
  if (w == NULL) return;
  if (w->c && watch_current(w)) w->c->pstate = P_REPLACED;
  w->active = 0;
}

static void watch_added(const void *loop, int fd, int reading, closure_t *c) {
  struct stat st;
  watch_t *w;
  watch_gone(watch_find(loop, fd, reading));
  if (g_nwatch >= NWATCH || fstat(fd, &st) != 0) return;
  w = &g_watch[g_nwatch++];
  w->loop = loop;
  w->fd = fd;
  w->reading = reading;
  w->active = 1;
  w->dev = st.st_dev;
  w->ino = st.st_ino;
  w->c = c;
}

/* remove_reader/_writer and its oracle: 1 when a watcher of the same file
 * is there, 0 when none was added. */
static int watch_remove(aios_loop_t *l, int how, int fd, int reading) {
  watch_t *w = watch_find(l, fd, reading);
  int rc = reading ? aios_loop_remove_reader(l, fd) : aios_loop_remove_writer(l, fd);
  TRACE("  remove_%s(%d) -> %d", reading ? "reader" : "writer", fd, rc);
  expect_refused(how, rc, "aios_loop_remove_reader");
  if (how != PK_SLOT || l == NULL || rc < 0) return rc;
  if (rc > 1) die("aios_loop_remove_%s returned %d", reading ? "reader" : "writer", rc);
  if (w && watch_current(w) && rc != 1) die("aios_loop_remove_%s(%d) returned %d for a watcher added", reading ? "reader" : "writer", fd, rc);
  if (w == NULL && rc != 0) {
    int i, any = 0;
    for (i = 0; i < g_nwatch; i++) any |= g_watch[i].loop == l && g_watch[i].fd == fd && g_watch[i].reading == reading;
    if (!any) die("aios_loop_remove_%s(%d) returned %d, none was added", reading ? "reader" : "writer", fd, rc);
  }
  if (rc == 1) watch_gone(w);
  return rc;
}

static void watch_cb(void *arg);

/* add_reader/_writer of a closure, and its oracles. */
static int watch_add(aios_loop_t *l, int how, int fd, int reading, closure_t *c, int null_cb, int expect) {
  aios_destructor_fn dtor = c && c->has_dtor ? closure_dtor : NULL;
  int rc;
  if (c) {
    c->wfd = fd;
    c->wreading = reading;
  }
  rc = (reading ? aios_loop_add_reader : aios_loop_add_writer)(l, fd, null_cb ? NULL : watch_cb, c, dtor);
  TRACE("  add_%s(%d) -> %d", reading ? "reader" : "writer", fd, rc);
  if (dtor) closure_commit(c, rc == 0);
  expect_refused(how, rc, "aios_loop_add_reader");
  if (rc == 0 && null_cb) die("aios_loop_add_%s accepted a NULL callback", reading ? "reader" : "writer");
  if (how == PK_SLOT && l && aios_loop_is_closed(l) == 0 && expect != 1 && rc != expect)
    die("aios_loop_add_%s(%d) returned %d, not %d", reading ? "reader" : "writer", fd, rc, expect);
  if (rc == 0) watch_added(l, fd, reading, c);
  return rc;
}

/* Closes a descriptor the harness holds, under whatever watches it. */
static void fd_close_rec(int fd) {
  int k;
  for (k = 0; k < g_nfds; k++)
    if (g_fds[k].state == FD_HARN && g_fds[k].fd == fd) {
      /* Never the file a sendfile reads (the caller keeps it open). */
      if (sock_file_busy(k)) {
        TRACE("  (kept %d open: a sendfile reads it)", fd);
        return;
      }
      TRACE("  close(%d) under its watcher", fd);
      sock_fd_closing(k);
      close(fd);
      g_fds[k].state = FD_FREE;
      return;
    }
}

/* A watcher's callback: it may remove itself, add the other side, close
 * its descriptor, then runs a few ops (the loop is its DROP_SELF). */
static void watch_cb(void *arg) {
  closure_t *c = check_closure(arg, K_WATCH, "descriptor watcher");
  aios_loop_t *l = NULL;
  frame_t *f;
  uint8_t b;
  count_callback(F_WATCH);
  maybe_arm_watchdog();
  if (!on_main()) die("a descriptor watcher ran off the loop's thread");
  if (c == NULL) return;
  if (c->pstate == P_REPLACED) die("a watcher of %d ran after it was removed or replaced (closure %d)", c->wfd, pidx(c));
  c->calls++;
  if (!can_run_programs() || at_end(&c->prog) || aios_get_running_loop(&l) != 0) return;
  b = rd8(&c->prog);
  switch (b & 3) {
  case 1: watch_remove(l, PK_SLOT, c->wfd, c->wreading); break;
  case 2: {
    closure_t *o = capture(&c->prog, K_WATCH);
    if (o && (b & 4) && closure_offer(o)) o->has_dtor = 1;
    if (o) {
      o->self = c->self;
      o->self_type = c->self_type;
    }
    watch_add(l, PK_SLOT, c->wfd, !c->wreading, o, 0, 1);
    break;
  }
  case 3: fd_close_rec(c->wfd); break;
  default: break;
  }
  f = push_frame(F_WATCH);
  f->closure = c;
  f->loop = l;
  f->self = c->self;
  f->self_type = c->self_type;
  TRACE("watcher %d of %d {", pidx(c), c->wfd);
  {
    reader_t part = sub_reader(&c->prog, (b >> 3) & 15);
    run_program(&part);
  }
  TRACE("}");
  pop_frame();
  aios_loop_unref(l);
}

/* ---- Pipes ---- */

enum { PFD_OK = 0, PFD_FILE, PFD_DEVNULL, PFD_DIR, PFD_BADF };

/* A descriptor for a pipe transport: a pipe's end for the direction (the
 * harness keeps the other as a peer), the other end, a socket pair's, a
 * FIFO, a listening socket; or what is refused: a regular file, a
 * directory, /dev/null (epoll cannot watch it), numbers that name nothing. */
static int pick_pipe_fd(reader_t *r, int writing, int *idx, int *kind, int *peer) {
  int p[2], fd = -1, mine = -1, mine_pipe = 0;
  uint8_t b = rd8(r);
  *idx = -1;
  *kind = PFD_OK;
  *peer = -1;
  switch (b % 15) {
  case 0: case 1: case 2: case 3: case 4:
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) break;
    /* 4: the wrong end (a read pipe that can only write) */
    fd = (writing != (b % 15 == 4)) ? p[1] : p[0];
    mine = fd == p[1] ? p[0] : p[1];
    mine_pipe = 1;
    break;
  case 5: case 6:
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p) != 0) break;
    fd = p[0];
    mine = p[1];
    break;
  case 7: fd = open(g_path_fifo, O_RDWR | O_NONBLOCK | O_CLOEXEC); break;
  case 8: *kind = PFD_FILE; fd = open(g_path_file, O_RDWR | O_CLOEXEC); break;
  case 9: *kind = PFD_DEVNULL; fd = open("/dev/null", O_RDWR | O_CLOEXEC); break;
  case 10: *kind = PFD_DIR; fd = open(g_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC); break;
  case 11: *kind = PFD_BADF; return -1;
  case 12: *kind = PFD_BADF; return closed_fd();
  case 13: *kind = PFD_BADF; return (b & 0x80) ? INT_MAX : 1 << 20;
  default: fd = tcp_socket_bound(1); break;
  }
  if (mine >= 0) *peer = peer_add(mine, mine_pipe);
  *idx = fd >= 0 ? fd_add(fd, 0) : -1;
  if (*idx < 0) {
    *kind = PFD_BADF;
    return -1;
  }
  return fd;
}

/* ---- Socket operations: what the harness started ---- */

/* Every aios_sock_* call that worked, and every aios_transport_sendfile:
 * the oracles of its future, once it is done. */
enum { SK_RECV, SK_RECV_INTO, SK_RECVFROM, SK_RECVFROM_INTO, SK_SENDALL, SK_SENDTO, SK_CONNECT, SK_ACCEPT,
       SK_SENDFILE, SK_TSENDFILE };
#define NSOCK 128
#define SOCKBUF 256       /* a recv_into's buffer: its n is at most this (or refused) */
#define SOCKGUARD 16      /* after it: never written */
#define SOCK_FILL 0xee    /* what a buffer holds before a read (and a send's copy after its call) */
#define SOCK_CANARY 0xc5  /* what it holds once the harness cancelled its read */
#define SF_SIZE (2 << 20) /* sendfile's file */

typedef struct sockop_s {
  int kind;
  aios_future_t *f;       /* our reference; NULL once let go (SOCK_CTL) */
  const void *fp;         /* the future's handle, compared only */
  aios_transport_t *tr;   /* SK_TSENDFILE: our reference */
  const void *loop;       /* its future's loop at the call, compared only */
  int fd, fdi;            /* its socket and its record in g_fds (-1: not one of the harness's) */
  int clean;              /* every byte it reads comes from g_wbuf */
  size_t n;               /* a read's most; a send's length */
  int has_buf;            /* a read into g_sockbufs[its index] */
  int canary;             /* the harness cancelled it while it waited: its buffer keeps SOCK_CANARY */
  int closed_under;       /* the harness closed its descriptor while it waited */
  int checked, taken;
  uint8_t how;            /* bit 0: take the result once done; 1-3: how (sock_take); 4: read a
                           * failure's error; 5: keep that error in a slot */
  /* sendfile: */
  int filei, file, file_regular;
  dev_t file_dev;
  ino_t file_ino;
  long long offset, count, expect; /* expect: what it sends when it works (-1: unknown) */
  off_t pos0;             /* the file's offset at the call */
} sockop_t;
static sockop_t g_sock[NSOCK];
static int g_nsock;
/* Valid until every loop of the input is closed: a read that was never
 * cancelled may write its buffer until then. */
static unsigned char g_sockbufs[NSOCK][SOCKBUF + SOCKGUARD];
static unsigned char g_sendbuf[(1 << 20) + 8]; /* a send's bytes, overwritten once its call returns */
static unsigned char g_alpha[256];             /* the bytes of g_wbuf */
static char g_path_sock[128];                  /* where the socket ops' Unix listener listens */
static char g_path_sf[128];                    /* sendfile's file */
static int g_sports[NPORTS], g_nsports;        /* the socket ops' TCP listeners */
static int g_uports[NPORTS], g_nuports;        /* their UDP sockets */

/* ---- Per input ---- */

static void net_reset(void) {
  int i;
  g_nplans = 0;
  g_nchild_base = -1;
  g_nrpipes = 0;
  g_nfds = 0;
  g_net_made = 0;
  g_net_lookups = 0;
  g_nports = 0;
  g_nnetf = 0;
  g_ndports = 0;
  g_ndports6 = 0;
  g_nwatch = 0;
  g_nsock = 0;
  g_nsports = 0;
  g_nuports = 0;
  unlink(g_path_sock);
  /* The harness's datagram socket starts empty, the endpoints' paths free. */
  if (g_dgram_harn >= 0) {
    char scratch[256];
    while (recv(g_dgram_harn, scratch, sizeof scratch, MSG_DONTWAIT) >= 0) {}
  }
  for (i = 0; i < 3; i++) unlink(g_dpaths[i]);
}

/* Sockets and anonymous inodes (libuv's epoll and eventfd) open now: what
 * transports, servers and loops hold. Pipes and files are not counted:
 * libFuzzer keeps pipes to its symbolizer open once it has printed a
 * NEW_FUNC line. */
static int count_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0;
  if (d == NULL) return -1;
  while ((e = readdir(d)) != NULL) {
    char path[300], target[64];
    ssize_t len;
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
    len = readlink(path, target, sizeof target - 1);
    if (len <= 0) continue;
    target[len] = '\0';
    n += strncmp(target, "socket:", 7) == 0 || strncmp(target, "anon_inode:", 11) == 0;
  }
  closedir(d);
  return n;
}

/* Every descriptor open now, pipes and files included: compared with the
 * count at the start of the same input (libFuzzer opens its symbolizer's
 * pipes between inputs, never during one). */
static int g_fd_input_base = -1;
static int count_all_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  int n = 0;
  if (d == NULL) return -1;
  while ((e = readdir(d)) != NULL) n += e->d_name[0] != '.';
  closedir(d);
  return n;
}

static void list_fds(void) {
  DIR *d = opendir("/proc/self/fd");
  struct dirent *e;
  if (d == NULL) return;
  while ((e = readdir(d)) != NULL) {
    char path[300], target[256];
    ssize_t n;
    if (e->d_name[0] == '.') continue;
    snprintf(path, sizeof path, "/proc/self/fd/%s", e->d_name);
    n = readlink(path, target, sizeof target - 1);
    target[n > 0 ? n : 0] = '\0';
    fprintf(stderr, "  fd %s -> %s\n", e->d_name, target);
  }
  closedir(d);
}

/* After every loop closed: the harness's descriptors closed, its futures
 * released. */
static void net_teardown(void) {
  int i;
  for (i = 0; i < g_nnetf; i++) aios_future_unref(g_netf[i]);
  g_nnetf = 0;
  for (i = 0; i < g_nfds; i++) {
    if (g_fds[i].state != FD_HARN) continue;
    close(g_fds[i].fd);
    if (g_fds[i].unix_listener) unlink(g_path_harn);
    g_fds[i].state = FD_FREE;
  }
}

/* Once every object is gone: the oracles of the network. */
static void net_check(void) {
  int i, n, tries;
  for (i = 0; i < g_nclosures; i++) {
    closure_t *c = &g_closures[i];
    if (c->kind == K_PROTO && !c->batched && c->pstate == P_MADE && (c->pflags & PF_LOST))
      die("protocol %d: connected, and its connection_lost never ran", i);
    if (c->kind == K_SPROTO && c->pstate == P_MADE && (c->pflags & SPF_LOST))
      die("subprocess protocol %d: connected, and its connection_lost never ran", i);
    if (c->kind == K_DPROTO && c->pstate == P_MADE && (c->pflags & DPF_LOST))
      die("datagram protocol %d: made, and its connection_lost never ran", i);
  }
  if (g_refusing_fd >= 0 && fcntl(g_refusing_fd, F_GETFD) == -1) die("the harness's own socket was closed");
  /* Every socket closed (a lookup's worker may be finishing: a few tries). */
  for (tries = 0; tries < 50 && (n = count_fds()) > g_fd_baseline; tries++) usleep(1000);
  n = count_fds();
  if (g_fd_baseline >= 0 && n != g_fd_baseline) {
    list_fds();
    die("leak: %d sockets and anonymous inodes open after the input, %d before", n, g_fd_baseline);
  }
  for (tries = 0; tries < 50 && (n = count_all_fds()) != g_fd_input_base; tries++) usleep(1000);
  if (g_fd_input_base >= 0 && n != g_fd_input_base) {
    list_fds();
    die("leak: %d descriptors open after the input, %d before", n, g_fd_input_base);
  }
}

/* Once every loop closed: every child of the input reaped, and the
 * signals the harness uses back to what they were. */
static void child_check(void) {
  int i, st, rc, pids[NCHILDREN], n, k;
  for (i = 0; i < g_nplans; i++) {
    if (g_plans[i].pid <= 0) continue;
    rc = waitpid(g_plans[i].pid, &st, WNOHANG);
    if (rc != -1 || errno != ECHILD)
      die("leak: child %d (plan %d) %s after every loop closed", g_plans[i].pid, i, rc == 0 ? "still runs" : "was not reaped");
  }
  rc = waitpid(-1, &st, WNOHANG);
  if (rc > 0) die("leak: child %d was not reaped", rc);
  if (rc < 0 && errno != ECHILD) die("waitpid: %s", strerror(errno));
  if (g_nplans > 0 && g_nchild_base >= 0) {
    n = list_children(pids, NCHILDREN);
    for (i = 0; i < n; i++) {
      for (k = 0; k < g_nchild_base && g_child_base[k] != pids[i]; k++) {}
      if (k == g_nchild_base) die("leak: child %d still runs after every loop closed", pids[i]);
    }
  }
  for (i = 0; i < (int)N_WATCHED; i++)
    if (disposition(g_watched_signals[i]) != g_sig_initial[i])
      die("signal %d: its disposition is not what it was before the input (%p, not %p)", g_watched_signals[i],
          disposition(g_watched_signals[i]), g_sig_initial[i]);
}

/* The files of a temp dir of ours: see net_init. */
static void remove_dir(const char *dir) {
  static const char *const names[] = {"u0.sock", "u1.sock", "u2.sock", "u3.sock", "file", "h.sock", "fifo",
                                      "d0.sock", "d1.sock", "d2.sock", "dh.sock", "s.sock", "sf.dat"};
  char path[200];
  size_t i;
  for (i = 0; i < sizeof names / sizeof names[0]; i++) {
    snprintf(path, sizeof path, "%s/%s", dir, names[i]);
    unlink(path);
  }
  rmdir(dir);
}

static void net_cleanup(void) { remove_dir(g_dir); }

/* A run that crashed (an abort skips atexit) left its dir: the dirs of
 * processes gone are removed. */
static void sweep_stale_dirs(const char *tmp) {
  DIR *d = opendir(tmp);
  struct dirent *e;
  if (d == NULL) return;
  while ((e = readdir(d)) != NULL) {
    int pid;
    char rest, dir[200];
    if (sscanf(e->d_name, "aios-fuzz-%d%c", &pid, &rest) != 1 || pid <= 0) continue;
    if (kill(pid, 0) == 0 || errno != ESRCH) continue;
    snprintf(dir, sizeof dir, "%s/%s", tmp, e->d_name);
    remove_dir(dir);
  }
  closedir(d);
}

/* BUG_SIGPIPE (findings/transport-write-sigpipe): a transport's write to a
 * peer that has gone raised SIGPIPE, which killed a process that did not
 * ignore it, where asyncio reports EPIPE to connection_lost. The library now
 * ignores SIGPIPE when its disposition is the default (as Python does). On,
 * the harness leaves the default in place, so a SIGPIPE kills the run; off,
 * the harness ignores it itself. */
/* Once: the temp dir, the refusing port, the baseline of descriptors. */
static void net_init(void) {
  const char *tmp = getenv("TMPDIR");
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  aios_loop_t *l = NULL;
  int i, fd;
  signal(SIGPIPE, BUG_SIGPIPE ? SIG_DFL : SIG_IGN);
  if (tmp == NULL || strlen(tmp) > 40) tmp = "/tmp";
  sweep_stale_dirs(tmp);
  snprintf(g_dir, sizeof g_dir, "%s/aios-fuzz-%d", tmp, (int)getpid());
  remove_dir(g_dir); /* a dead process's of the same pid */
  if (mkdir(g_dir, 0700) != 0) die("harness: mkdir %s: %s", g_dir, strerror(errno));
  for (i = 0; i < 4; i++) snprintf(g_paths[i], sizeof g_paths[i], "%s/u%d.sock", g_dir, i);
  snprintf(g_path_file, sizeof g_path_file, "%s/file", g_dir);
  snprintf(g_path_nodir, sizeof g_path_nodir, "%s/none/u.sock", g_dir);
  snprintf(g_path_harn, sizeof g_path_harn, "%s/h.sock", g_dir);
  snprintf(g_path_fifo, sizeof g_path_fifo, "%s/fifo", g_dir);
  for (i = 0; i < 3; i++) snprintf(g_dpaths[i], sizeof g_dpaths[i], "%s/d%d.sock", g_dir, i);
  snprintf(g_dpath_harn, sizeof g_dpath_harn, "%s/dh.sock", g_dir);
  snprintf(g_path_sock, sizeof g_path_sock, "%s/s.sock", g_dir);
  snprintf(g_path_sf, sizeof g_path_sf, "%s/sf.dat", g_dir);
  fd = open(g_path_file, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
  if (fd >= 0) close(fd);
  if (mkfifo(g_path_fifo, 0600) != 0) die("harness: mkfifo %s: %s", g_path_fifo, strerror(errno));
  for (i = 0; i < (int)(sizeof g_many_env / sizeof g_many_env[0]) - 1; i++) g_many_env[i] = "AIOS_FUZZ_MANY=1";
  for (i = 0; i < (int)(sizeof g_many_fds / sizeof g_many_fds[0]); i++) g_many_fds[i] = 1;
  atexit(net_cleanup);
  /* A port bound and not listening: connecting to it is refused at once. */
  g_refusing_fd = tcp_socket_bound(0);
  if (g_refusing_fd >= 0 && getsockname(g_refusing_fd, (struct sockaddr *)&a, &len) == 0)
    g_refusing_port = ntohs(a.sin_port);
  for (i = 0; i < (int)(sizeof g_wbuf); i++) g_wbuf[i] = (unsigned char)("ab\nxy|"[i % 6]);
  for (i = 0; i < 6; i++) g_alpha[(unsigned char)"ab\nxy|"[i]] = 1;
  /* sendfile's file: SF_SIZE bytes of g_wbuf's, more than a socket pair's
   * buffers hold (so that a sendfile waits, and a cancel sends part). */
  fd = open(g_path_sf, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);
  if (fd < 0) die("harness: open %s: %s", g_path_sf, strerror(errno));
  for (i = 0; i < SF_SIZE; i += 1 << 20)
    if (write(fd, g_wbuf, 1 << 20) != 1 << 20) die("harness: write %s: %s", g_path_sf, strerror(errno));
  close(fd);
  for (i = 0; i < (int)(sizeof g_many_hosts / sizeof g_many_hosts[0]); i++) g_many_hosts[i] = "127.0.0.1";
  /* libuv opens descriptors of its own once, with the first loop; a first
   * signal handler and a first child too, if anything. */
  if (aios_loop_new(&l) == 0) {
    aios_future_t *f = NULL, *w = NULL;
    void *v = NULL;
    aios_destructor_fn d = NULL;
    aios_loop_add_signal_handler(l, SIGWINCH, cb_sched, NULL, NULL);
    aios_loop_remove_signal_handler(l, SIGWINCH);
    if (aios_create_subprocess_exec(l, "/bin/true", NULL, NULL, &f) == 0) {
      aios_loop_run_until_complete(l, f);
      if (aios_future_take_result(f, &v, &d) == 0 && v && aios_process_wait((aios_process_t *)v, &w) == 0) {
        aios_loop_run_until_complete(l, w);
        aios_future_unref(w);
      }
      if (v) aios_process_unref((aios_process_t *)v);
      aios_future_unref(f);
    }
    aios_loop_close(l);
    aios_loop_unref(l);
  }
  {
    struct sockaddr_un un;
    memset(&un, 0, sizeof un);
    un.sun_family = AF_UNIX;
    snprintf(un.sun_path, sizeof un.sun_path, "%s", g_dpath_harn);
    g_dgram_harn = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (g_dgram_harn >= 0 && bind(g_dgram_harn, (struct sockaddr *)&un, sizeof un) != 0) {
      close(g_dgram_harn);
      g_dgram_harn = -1;
    }
  }
  g_fd_baseline = count_fds();
  if (g_verbose) {
    fprintf(stderr, "%d sockets and anonymous inodes at the start:\n", g_fd_baseline);
    list_fds();
  }
}

/* ------------------------------------------------------------------------ */
/* The ops                                                                    */

#define OPS(X)                                                                 \
  X(LOOP_NEW) X(REF) X(UNREF) X(UNREF_WRONG) X(RUN_UNTIL_COMPLETE)             \
  X(RUN_FOREVER) X(LOOP_STOP) X(LOOP_CLOSE) X(LOOP_QUERY) X(CALL_SOON)         \
  X(CALL_SOON_TS) X(CALL_LATER) X(CALL_AT) X(GET_RUNNING_LOOP)                 \
  X(SET_HANDLER) X(CALL_HANDLER) X(LOOP_DEBUG) X(HANDLE_OP) X(FUTURE_NEW)      \
  X(SET_RESULT) X(SET_ERROR) X(FUTURE_CANCEL) X(FUTURE_QUERY) X(TAKE_RESULT)   \
  X(ADD_DONE) X(REMOVE_DONE) X(SLEEP) X(TASK_NEW) X(AWAIT) X(RETURN) X(FAIL)   \
  X(STEP_RAW) X(TASK_CANCEL) X(TASK_QUERY) X(CURRENT_TASK) X(ALL_TASKS)        \
  X(ERROR_NEW) X(ERROR_NEW_USER) X(ERROR_QUERY) X(INFO) X(TIMEOUT_NEW)         \
  X(TIMEOUT_ENTER) X(TIMEOUT_EXIT) X(TIMEOUT_QUERY) X(GATHER) X(WAIT)          \
  X(AS_COMPLETED_NEW) X(AS_COMPLETED_NEXT) X(SHIELD) X(WAIT_FOR) X(GROUP_NEW)  \
  X(GROUP_ENTER) X(GROUP_CREATE_TASK) X(GROUP_EXIT) X(TO_THREAD) X(POOL_SIZE)  \
  X(LOCK_OP) X(EVENT_OP) X(COND_OP) X(SEM_OP) X(BARRIER_OP) X(QUEUE_NEW)       \
  X(QUEUE_PUT) X(QUEUE_GET) X(QUEUE_OP) X(RUN) X(RUNNER_OP) X(THREAD_START)    \
  X(THREAD_JOIN) X(DROP_SELF) X(DEBUG_FLAGS) X(TASK_FACTORY)                   \
  X(GETADDRINFO) X(GETNAMEINFO) X(CONNECT) X(CONNECT_UNIX) X(CONNECT_FD)       \
  X(OPEN_CONNECTION) X(SERVER_NEW) X(START_SERVER) X(TRANSPORT_WRITE)          \
  X(TRANSPORT_OP) X(TRANSPORT_QUERY) X(TRANSPORT_PROTOCOL) X(SERVER_OP)        \
  X(STREAM_NEW) X(STREAM_READ) X(STREAM_FEED) X(STREAM_WRITE) X(STREAM_OP)     \
  X(PEER_OP) X(NET_SETTLE) X(NET_INFO) X(TAKE_IO_EVENTS)                      \
  X(PIPE_CONNECT) X(SIGNAL) X(SPAWN) X(PROCESS_NEW) X(SUBPROCESS_OP)           \
  X(PROCESS_OP) X(TRANSPORT_WRITE_NOCOPY)                                     \
  X(DGRAM_NEW) X(DGRAM_SEND) X(DGRAM_OP) X(WATCH) X(IO_EVENTS_CB)          \
  X(SOCK_OP) X(SOCK_SENDFILE) X(SOCK_CTL) X(ITERATION_CB) X(IO_BUFFER_CB)

enum {
#define OP_ENUM_(name) OP_##name,
  OPS(OP_ENUM_)
#undef OP_ENUM_
  OP_COUNT
};
static const char *const op_names[] = {
#define OP_NAME_(name) #name,
  OPS(OP_NAME_)
#undef OP_NAME_
};

/* Feedback from inside the library, which is not instrumented: libFuzzer
 * counts these as coverage, so a new status code for an op, or a callback
 * kind at a new depth, is progress. */
#define RC_BUCKETS 48
__attribute__((used, section("__libfuzzer_extra_counters")))
static uint8_t g_extra[OP_COUNT * RC_BUCKETS + 128];

static int rc_bucket(long rc) {
  if (rc >= 0) return rc < 4 ? (int)rc : 4;
  if (rc <= -3001 && rc >= -3040) return 5 + (int)(-3001 - rc);
  return rc > -4096 ? 45 : 46;
}
static void count_rc(int op, long rc) {
  uint8_t *c = &g_extra[op * RC_BUCKETS + rc_bucket(rc)];
  if (*c < 255) (*c)++;
}
static void count_callback(int kind) {
  uint8_t *c = &g_extra[OP_COUNT * RC_BUCKETS + (kind & 31) * 4 + (g_depth & 3)];
  if (*c < 255) (*c)++;
}

/* Puts a future the library handed out in a slot, with its dependency record. */
static void got_future(aios_future_t *f, int rc, int dep_kind) {
  if (rc != 0 || f == NULL) return;
  if (dep_kind == D_PLAIN && dep_find(f) < 0) dep_add(f, D_PLAIN);
  slot_put(T_FUTURE, f);
}

static int pick_futures(reader_t *r, aios_future_t **arr, int *with_null_array) {
  int n = rd8(r) % (MAX_ARRAY + 1), i;
  *with_null_array = 0;
  for (i = 0; i < n; i++) arr[i] = (aios_future_t *)pick_obj(r, T_FUTURE, NULL);
  if (n == 0 && (rd8(r) & 1)) *with_null_array = 1;
  return n;
}

/* The closure of the task `t` names, if we know it. */
static closure_t *task_closure(aios_task_t *t) {
  int d;
  if (t && t == cur()->task) return cur()->closure;
  d = dep_find(t);
  if (d >= 0 && g_deps[d].kind == D_TASK) return g_deps[d].task;
  return NULL;
}

/* The status a scope's body ended with, for timeouts and task groups. */
static int pick_status(reader_t *r) {
  uint8_t b = rd8(r);
  aios_future_t *aw = cur()->future;
  switch (b % 4) {
  case 0: return 0;
  case 1: return AIOS_ECANCELLED;
  case 2: return aw ? aios_future_result(aw, NULL) : 0;
  default: return pick_code(r);
  }
}

/* Whether finishing `f` from outside (set_result, set_error) would meet a
 * known bug: then the op is skipped. */
static int set_outcome_is_guarded(void *f) {
  const char *bug = NULL;
  /* BUG_SET_RESULT_ON_TASK (findings/set-result-on-task): a task took an
   * outcome from outside, which asyncio refuses; a value given so was never
   * freed, and the future the task awaited and its loop leaked. */
  if (!BUG_SET_RESULT_ON_TASK && is_task(f)) bug = "BUG_SET_RESULT_ON_TASK";
  /* BUG_SET_RESULT_ON_SLEEP (findings/set-result-on-sleep): finishing a
   * pending aios_sleep future leaked the value the sleep was given. */
  else if (!BUG_SET_RESULT_ON_SLEEP && made_kind(f) == FK_SLEEP && aios_future_done(f) == 0)
    bug = "BUG_SET_RESULT_ON_SLEEP";
  /* BUG_SET_RESULT_ON_SHIELD (findings/set-result-on-shield): a shield's
   * future takes an outcome; once the inner future is done too, freeing the
   * shield frees the inner future's value (a double free), never its own. */
  else if (!BUG_SET_RESULT_ON_SHIELD && made_kind(f) == FK_SHIELD) bug = "BUG_SET_RESULT_ON_SHIELD";
  else if (!BUG_WAIT_LEAK && is_wait(f)) bug = "BUG_WAIT_LEAK"; /* see finish_waits */
  if (bug) TRACE("  (skipped: %s)", bug);
  return bug != NULL;
}

static int exec_run_op(reader_t *r, int op) {
  aios_loop_t *l;
  aios_future_t *f;
  int rc = 0;
  if (op == OP_RUN_UNTIL_COMPLETE) {
    l = (aios_loop_t *)pick_obj(r, T_LOOP, NULL);
    f = (aios_future_t *)pick_obj(r, T_FUTURE, NULL);
    TRACE("run_until_complete(%p, %p)", (void *)l, (void *)f);
    if (on_main() && !loop_running_here()) {
      begin_run(l, RUN_DIRECT);
      rc = aios_loop_run_until_complete(l, f);
      end_run();
    } else {
      rc = aios_loop_run_until_complete(l, f);
      if (rc == 0) die("run_until_complete ran while a loop runs on this thread");
    }
  } else {
    uint8_t how = rd8(r);
    l = (aios_loop_t *)pick_obj(r, T_LOOP, NULL);
    TRACE("run_forever(%p) stop=%d", (void *)l, how % 4);
    if (how % 4 == 0) aios_loop_call_soon(l, cb_stop, l, NULL, NULL);
    if (how % 4 == 1) aios_loop_call_later(l, 0.0002, cb_stop, l, NULL, NULL);
    if (how % 4 == 2) aios_loop_stop(l); /* exactly one iteration */
    if (on_main() && !loop_running_here()) {
      begin_run(l, RUN_DIRECT);
      rc = aios_loop_run_forever(l);
      end_run();
    } else {
      rc = aios_loop_run_forever(l);
      if (rc == 0) die("run_forever ran while a loop runs on this thread");
    }
  }
  TRACE(" -> %d", rc);
  return rc;
}

/* ------------------------------------------------------------------------ */
/* The network's ops                                                          */

/* Memory the buffer callback lent (aios_loop_set_io_buffer_callback): each
 * must come back in exactly one AIOS_IO_DATA_BUFFER event, or stay lent
 * when its loop closed before the take (freed at teardown). */
enum { MAX_LENT = 64 };
static struct { unsigned char *memory; size_t size; unsigned long order; void *loop; } g_lent[MAX_LENT];
static unsigned long g_lent_count;
static int g_lent_refuse;   /* the callback's choice: 0 lends, 1 gives NULL; its arg is its loop */

/* The batched protocol a token names (NULL for token 7, which a table of
 * the input's own may carry); dies on any other token. */
static closure_t *batched_closure(unsigned long long token, const char *what) {
  closure_t *c = NULL;
  if (token >= TOKEN_BASE && token < TOKEN_BASE + (unsigned long long)g_nclosures)
    c = &g_closures[token - TOKEN_BASE];
  if (token != 7 && (c == NULL || c->kind != K_PROTO || !c->batched))
    die("%s with token %llu, which no batched protocol has", what, token);
  return token == 7 ? NULL : c;
}

static void *io_buffer_cb(void *arg, unsigned long long token, size_t size) {
  int k;
  if (arg == NULL) die("the I/O buffer callback got no arg (its loop)");
  if (!pthread_equal(pthread_self(), g_main_thread)) die("the I/O buffer callback ran on another thread");
  batched_closure(token, "the I/O buffer callback");
  if (size < AIOS_IO_BUFFER_MIN || size % 4096 != 0 || size > 256 * 1024)
    die("the I/O buffer callback was asked for %zu bytes", size);
  TRACE("(I/O buffer callback: %zu bytes%s)", size, g_lent_refuse ? ", refused" : "");
  if (g_lent_refuse) return NULL;
  for (k = 0; k < MAX_LENT; k++) {
    if (g_lent[k].memory == NULL) {
      g_lent[k].memory = malloc(size);
      g_lent[k].size = size;
      g_lent[k].order = ++g_lent_count;
      g_lent[k].loop = arg;
      return g_lent[k].memory;
    }
  }
  return NULL;
}

/* The slot of lent memory an AIOS_IO_DATA_BUFFER event gives back. */
static int lent_slot(const aios_io_event_t *e) {
  int k, j;
  for (k = 0; k < MAX_LENT; k++) {
    if (g_lent[k].memory == NULL || (uintptr_t)g_lent[k].memory != (uintptr_t)e->offset) continue;
    /* Back in the order lent: none lent before it is still out, but on a
     * loop that closed before the take (freed at teardown). */
    for (j = 0; j < MAX_LENT; j++)
      if (g_lent[j].memory != NULL && g_lent[j].order < g_lent[k].order && g_lent[j].loop == g_lent[k].loop)
        die("lent memory came back before memory lent earlier");
    return k;
  }
  die("an AIOS_IO_DATA_BUFFER event gives back memory never lent (or back twice): %#zx", e->offset);
  return -1;
}

static void free_lent_memory(void) {
  int k;
  for (k = 0; k < MAX_LENT; k++) {
    free(g_lent[k].memory);
    g_lent[k].memory = NULL;
  }
}

/* aios_loop_take_io_events and the oracles of the events it gives. */
static int take_io_events(aios_loop_t *l, int how, uint8_t b) {
  const aios_io_event_t *events = NULL;
  const unsigned char *arena = NULL;
  size_t count = 0, i, k;
  int rc;
  rc = aios_loop_take_io_events(l, (b & 0x10) ? NULL : &events, (b & 0x20) ? NULL : &count,
                                (b & 0x40) ? NULL : &arena);
  expect_refused(how, rc, "aios_loop_take_io_events");
  if (rc != 0 || (b & 0x30)) return rc;
  if ((events == NULL) != (count == 0)) die("aios_loop_take_io_events: %zu events at %p", count, (void *)events);
  for (i = 0; i < count; i++) {
    const aios_io_event_t *e = &events[i];
    closure_t *c = batched_closure(e->token, "an I/O event");
    unsigned sum = 0;
    TRACE("    event %d: token %llu, %zu bytes", e->kind, e->token, e->length);
    if (e->kind < AIOS_IO_CONNECTED || e->kind > AIOS_IO_DATA_BUFFER) die("an I/O event of kind %d", e->kind);
    if (e->transport == NULL || aios_transport_is_closing(e->transport) < 0)
      die("an I/O event (kind %d) lends a dead transport %p", e->kind, (void *)e->transport);
    if (e->kind == AIOS_IO_DATA) {
      if (e->length == 0 || (arena == NULL && !(b & 0x40))) die("an AIOS_IO_DATA event of %zu bytes", e->length);
      for (k = 0; arena && k < e->length; k++) sum += arena[e->offset + k];
    } else if (e->kind == AIOS_IO_DATA_BUFFER) {
      int slot = lent_slot(e);
      if (e->length > g_lent[slot].size)
        die("an AIOS_IO_DATA_BUFFER event of %zu bytes in %zu lent", e->length, g_lent[slot].size);
      for (k = 0; k < e->length; k++) sum += g_lent[slot].memory[k];
      free(g_lent[slot].memory);
      g_lent[slot].memory = NULL;
    } else if (e->length != 0) {
      die("an I/O event of kind %d with %zu bytes", e->kind, e->length);
    }
    (void)sum;
    if (e->kind != AIOS_IO_LOST && e->status != 0) die("an I/O event of kind %d with status %d", e->kind, e->status);
    if (e->kind == AIOS_IO_LOST && e->status > 0) die("AIOS_IO_LOST with status %d", e->status);
    /* The protocol's life, as its callbacks' would be. */
    /* (A replaced protocol's events recorded before it was replaced may
     * still be in the batch.) */
    if (c == NULL || c->pstate == P_REPLACED) continue;
    if (c->pstate == P_LOST) die("an I/O event (kind %d) after AIOS_IO_LOST (protocol %d)", e->kind, pidx(c));
    if (e->kind == AIOS_IO_CONNECTED) {
      if (c->pstate != P_NEW) die("AIOS_IO_CONNECTED twice (protocol %d)", pidx(c));
      c->pstate = P_MADE;
      continue;
    }
    if (c->pstate != P_MADE) die("an I/O event (kind %d) before AIOS_IO_CONNECTED (protocol %d)", e->kind, pidx(c));
    if (e->kind == AIOS_IO_LOST) c->pstate = P_LOST;
    if (e->kind == AIOS_IO_EOF && c->eofs++) die("AIOS_IO_EOF twice (protocol %d)", pidx(c));
    if (e->kind == AIOS_IO_DATA && c->eofs) die("AIOS_IO_DATA after AIOS_IO_EOF (protocol %d)", pidx(c));
    if (e->kind == AIOS_IO_DATA_BUFFER && c->eofs) die("AIOS_IO_DATA_BUFFER after AIOS_IO_EOF (protocol %d)", pidx(c));
    if (e->kind == AIOS_IO_PAUSE_WRITING) {
      if (c->paused) die("AIOS_IO_PAUSE_WRITING twice (protocol %d)", pidx(c));
      c->paused = 1;
    }
    if (e->kind == AIOS_IO_RESUME_WRITING) {
      if (!c->paused && !c->via_set) die("AIOS_IO_RESUME_WRITING without a pause (protocol %d)", pidx(c));
      c->paused = 0;
    }
  }
  /* Keep a transport or two (they are lent until the next take). */
  for (i = 0; i < count && i < 2; i++)
    if (aios_transport_ref(events[i].transport) == 0) slot_put(T_TRANSPORT, events[i].transport);
  return (int)(count > 100 ? 100 : count);
}

static int exec_net_op(reader_t *r, int op) {
  int rc = 0, how = PK_SLOT, idx;
  aios_loop_t *l = NULL;
  aios_future_t *f = NULL;
  aios_transport_t *tr;
  aios_server_t *sv;
  aios_stream_t *st;
  closure_t *c = NULL;
  proto_buf_t pb;
  aios_protocol_t *proto;
  copts_buf_t cob;
  sopts_buf_t sob;
  aios_connect_options_t *copts;
  aios_server_options_t *sopts;
  const char *host;
  int port, family = 0;
  uint8_t b = rd8(r);

  switch (op) {
  case OP_GETADDRINFO: {
    static const char *const hosts[] = {NULL, "127.0.0.1", "::1", "fe80::1%1", "localhost", "", "no-such-host.invalid",
                                        "\xff\xfe bad utf-8", "1.2.3.4.5", "0x7f.1", "127.0.0.1", NULL};
    static const char *const services[] = {NULL, "0", "80", "65535", "65536", "-1", "http", "", "80", NULL};
    static const int families[] = {0, 0, AF_INET, AF_INET6, AF_UNIX, -1, 12345};
    static const int socktypes[] = {0, SOCK_STREAM, SOCK_DGRAM, SOCK_RAW, -1, 99};
    static const int protocols[] = {0, 0, IPPROTO_TCP, IPPROTO_UDP, -1, 255};
    static const int flags[] = {0, 0, AI_PASSIVE, AI_CANONNAME, AI_V4MAPPED | AI_ALL, AI_ADDRCONFIG, -1, INT_MAX};
    const char *service;
    int hi, si, fl, k;
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    hi = rd8(r) % (int)(sizeof hosts / sizeof hosts[0]);
    host = hi == (int)(sizeof hosts / sizeof hosts[0]) - 1 ? g_long_string : hosts[hi];
    si = rd8(r) % (int)(sizeof services / sizeof services[0]);
    service = si == (int)(sizeof services / sizeof services[0]) - 1 ? g_long_string : services[si];
    fl = flags[rd8(r) % (sizeof flags / sizeof flags[0])] | AI_NUMERICHOST;
    /* A service name would be looked up: only numbers, else AI_NUMERICSERV. */
    for (k = 0; service && service[k]; k++)
      if (service[k] < '0' || service[k] > '9') break;
    if (service && (service[k] || k == 0)) fl |= AI_NUMERICSERV;
    family = families[rd8(r) % (sizeof families / sizeof families[0])];
    k = socktypes[rd8(r) % (sizeof socktypes / sizeof socktypes[0])];
    port = protocols[rd8(r) % (sizeof protocols / sizeof protocols[0])]; /* the protocol number */
    if (!lookup_budget()) break;
    /* BUG_LOOKUP_PENDING_AT_LAST_UNREF (findings/lookup-pending-at-last-unref):
     * a runner let go while its loop ran left that loop unclosed, and a
     * lookup still on the resolver's threads kept it alive, with two
     * handles. Off: the harness keeps each lookup's future and the loop
     * until the lookup is over (remember_guarded). */
    rc = aios_getaddrinfo(l, host, service, family, k, port, fl,
                          (b & 0x40) && BUG_LOOKUP_PENDING_AT_LAST_UNREF ? NULL : &f);
    expect_refused(how, rc, "aios_getaddrinfo");
    if (rc != 0) break;
    remember_guarded(l, f, BUG_LOOKUP_PENDING_AT_LAST_UNREF);
    remember_net(f);
    got_future(f, rc, D_PLAIN);
    if (b & 2) aios_future_cancel(f, NULL); /* cancels the lookup */
    if (b & 1) settle(l, f);
    break;
  }

  case OP_GETNAMEINFO: {
    static const int flags[] = {0, 0, NI_NAMEREQD, NI_DGRAM, NI_NOFQDN, 0x100, -1, INT_MAX};
    unsigned char addr[128];
    unsigned int len;
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    len = pick_address(r, addr);
    family = flags[rd8(r) % (sizeof flags / sizeof flags[0])] | NI_NUMERICHOST | NI_NUMERICSERV; /* the flags */
    if (!lookup_budget()) break;
    rc = aios_getnameinfo(l, (b & 4) ? NULL : addr, len, family, (b & 0x40) ? NULL : &f);
    expect_refused(how, rc, "aios_getnameinfo");
    if (rc != 0) break;
    remember_net(f);
    got_future(f, rc, D_PLAIN);
    if (b & 2) aios_future_cancel(f, NULL);
    if (b & 1) settle(l, f);
    break;
  }

  case OP_CONNECT:
  case OP_CONNECT_UNIX:
  case OP_CONNECT_FD: {
    const char *path = NULL;
    int fd = -1;
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    proto = pick_protocol(r, &pb, &c);
    idx = -1;
    if (op == OP_CONNECT) {
      copts = pick_connect_options(r, &cob);
      host = pick_host(r, copts != NULL, copts ? &cob.o.family : &family, 0);
      port = pick_port(r, 0);
      if (!net_budget()) { closure_commit(c, 0); break; }
      rc = aios_create_connection(l, proto, host, port, copts, (b & 0x40) ? NULL : &f);
      expect_refused(how, rc, "aios_create_connection");
    } else if (op == OP_CONNECT_UNIX) {
      path = pick_unix_path(r);
      if (!net_budget()) { closure_commit(c, 0); break; }
      rc = aios_create_unix_connection(l, proto, path, (b & 0x40) ? NULL : &f);
      expect_refused(how, rc, "aios_create_unix_connection");
    } else {
      if (!guarded_loop_ok(l, BUG_ACCEPTED_PENDING_AT_CLOSE)) { closure_commit(c, 0); break; }
      fd = pick_accepted_fd(r, &idx);
      rc = aios_connect_accepted_socket(l, proto, fd, (b & 0x40) ? NULL : &f);
      expect_refused(how, rc, "aios_connect_accepted_socket");
      fd_given(idx, rc == 0, "aios_connect_accepted_socket");
      if (rc == 0) remember_guarded(l, f, BUG_ACCEPTED_PENDING_AT_CLOSE);
    }
    closure_commit(c, rc == 0);
    if (rc != 0) break;
    if (op != OP_CONNECT_FD) cancel_before_close_later(f, BUG_CONNECT_PENDING_AT_CLOSE);
    remember_net(f);
    got_future(f, rc, D_PLAIN);
    if (b & 2) aios_future_cancel(f, NULL); /* stops the attempts; a connection made is closed */
    if (b & 1) settle(l, f);
    break;
  }

  case OP_OPEN_CONNECTION: {
    size_t limit;
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    limit = pick_limit(r);
    if (b & 4) {
      const char *path = pick_unix_path(r);
      if (!net_budget()) break;
      rc = aios_open_unix_connection(l, path, limit, (b & 0x40) ? NULL : &f);
      expect_refused(how, rc, "aios_open_unix_connection");
    } else {
      copts = pick_connect_options(r, &cob);
      host = pick_host(r, copts != NULL, copts ? &cob.o.family : &family, 0);
      port = pick_port(r, 0);
      if (!net_budget()) break;
      rc = aios_open_connection(l, host, port, limit, copts, (b & 0x40) ? NULL : &f);
      expect_refused(how, rc, "aios_open_connection");
    }
    if (rc != 0) break;
    cancel_before_close_later(f, BUG_CONNECT_PENDING_AT_CLOSE);
    remember_net(f);
    got_future(f, rc, D_PLAIN);
    if (b & 2) aios_future_cancel(f, NULL);
    if (b & 1) settle(l, f);
    break;
  }

  case OP_SERVER_NEW:
  case OP_START_SERVER: {
    aios_destructor_fn dtor = NULL;
    size_t limit = 0;
    const char *path = NULL;
    int is_unix = (b & 4) != 0;
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    c = capture(r, op == OP_SERVER_NEW ? K_PFACTORY : K_CLIENT);
    if ((b & 8) && closure_offer(c)) dtor = closure_dtor;
    if (op == OP_START_SERVER) limit = pick_limit(r);
    sopts = pick_server_options(r, &sob, is_unix, &idx);
    if (is_unix) {
      path = pick_unix_path(r);
    } else {
      host = pick_host(r, sopts != NULL, &family, 1);
      port = pick_port(r, 1);
    }
    if (!net_budget()) {
      closure_commit(c, 0);
      fd_given(idx, 0, "a server that was not made");
      break;
    }
    if (op == OP_SERVER_NEW) {
      aios_protocol_factory_fn fn = (b & 0x30) == 0x30 ? NULL : proto_factory;
      if (is_unix) rc = aios_create_unix_server(l, fn, c, dtor, path, sopts, (b & 0x40) ? NULL : &f);
      else rc = aios_create_server(l, fn, c, dtor, host, port, sopts, (b & 0x40) ? NULL : &f);
      expect_refused(how, rc, "aios_create_server");
    } else {
      aios_client_connected_fn fn = (b & 0x30) == 0x30 ? NULL : client_connected;
      if (is_unix) rc = aios_start_unix_server(l, fn, c, dtor, path, limit, sopts, (b & 0x40) ? NULL : &f);
      else rc = aios_start_server(l, fn, c, dtor, host, port, limit, sopts, (b & 0x40) ? NULL : &f);
      expect_refused(how, rc, "aios_start_server");
    }
    closure_commit(c, rc == 0);
    fd_given(idx, rc == 0, "a server's creation");
    if (rc != 0) break;
    cancel_before_close_later(f, BUG_SERVER_PENDING_AT_CLOSE);
    remember_net(f);
    got_future(f, rc, D_PLAIN);
    if (b & 2) aios_future_cancel(f, NULL);
    if (b & 1) settle(l, f);
    break;
  }

  case OP_TRANSPORT_WRITE: {
    aios_buf_t bufs[4];
    tr = (aios_transport_t *)pick_obj(r, T_TRANSPORT, &how);
    if (b & 1) {
      int n = rd8(r) % 5, k;
      size_t count;
      for (k = 0; k < n; k++) {
        bufs[k].length = pick_wsize(r);
        bufs[k].base = (b & 0x10) && k == 1 && bufs[k].length ? NULL : g_wbuf; /* NULL with a length: refused */
      }
      count = (size_t)n;
      /* BUG_BUFFER_COUNT_HUGE: a count of 2^63 or more with a real array
       * traps; off: 2^62, which is refused as too many. */
      if ((b & 6) == 6) count = BUG_BUFFER_COUNT_HUGE ? SIZE_MAX : (size_t)1 << 62;
      rc = aios_transport_writev(tr, (b & 8) && (n == 0 || (b & 0x80)) ? NULL : bufs, count);
    } else {
      size_t size = pick_wsize(r);
      rc = aios_transport_write(tr, (b & 2) && size ? NULL : g_wbuf, size);
    }
    expect_refused(how, rc, "a transport write");
    if (how == PK_SLOT && is_read_pipe(tr) && rc != AIOS_EINVAL) die("a write to a read pipe returned %d", rc);
    break;
  }

  case OP_TRANSPORT_WRITE_NOCOPY: {
    /* The bytes are g_wbuf's, which never change; the release is a value's
     * destructor (once, and never when the call fails), or none. */
    size_t size;
    value_t *v;
    void *val = NULL;
    aios_destructor_fn dtor = NULL;
    tr = (aios_transport_t *)pick_obj(r, T_TRANSPORT, &how);
    size = pick_wsize(r);
    v = pick_value(r, &val, &dtor);
    rc = aios_transport_write_nocopy(tr, (b & 2) && size ? NULL : g_wbuf, size, dtor, val);
    value_commit(v, rc == 0);
    expect_refused(how, rc, "aios_transport_write_nocopy");
    if (how == PK_SLOT && is_read_pipe(tr) && rc != AIOS_EINVAL) die("a write to a read pipe returned %d", rc);
    break;
  }

  case OP_TRANSPORT_OP: {
    static const long long limits[] = {-1, 0, 1, 100, 4096, 65536, LLONG_MAX, LLONG_MIN, -5, 1 << 20};
    size_t low = 0, high = 0;
    tr = (aios_transport_t *)pick_obj(r, T_TRANSPORT, &how);
    switch (b % 9) {
    case 0: rc = aios_transport_write_eof(tr); break;
    case 1:
      rc = aios_transport_can_write_eof(tr);
      /* 0 for a read pipe only, which refuses every write */
      if (how == PK_SLOT && tr && rc > 1) die("aios_transport_can_write_eof returned %d", rc);
      if (how == PK_SLOT && tr && rc == 0 && aios_transport_write(tr, g_wbuf, 0) != AIOS_EINVAL)
        die("aios_transport_can_write_eof is 0 for a transport that takes writes");
      if (how == PK_SLOT && rc == 1 && is_read_pipe(tr)) die("aios_transport_can_write_eof is 1 for a read pipe");
      break;
    case 2: rc = aios_transport_close(tr); break;
    case 3: rc = aios_transport_abort(tr); break;
    case 4: rc = aios_transport_pause_reading(tr); break;
    case 5: rc = aios_transport_resume_reading(tr); break;
    case 6: {
      long long hi = limits[rd8(r) % 10], lo = limits[rd8(r) % 10];
      /* BUG_WRITE_LIMITS_OVERFLOW (findings/write-buffer-limits-overflow):
       * a default high (negative) is 4 * low, which traps for a low of 2^61
       * or more. Off: such a low becomes 2^40. */
      if (!BUG_WRITE_LIMITS_OVERFLOW && hi < 0 && lo > (1LL << 40)) lo = 1LL << 40;
      rc = aios_transport_set_write_buffer_limits(tr, hi, lo);
      break;
    }
    case 7:
      rc = aios_transport_get_loop(tr, (b & 0x80) ? NULL : &l);
      if (rc == 0) slot_put(T_LOOP, l);
      break;
    default:
      rc = aios_transport_get_write_buffer_limits(tr, (b & 0x10) ? NULL : &low, (b & 0x20) ? NULL : &high);
      if (rc == 0 && !(b & 0x30) && low > high) die("write buffer limits: low %zu above high %zu", low, high);
      break;
    }
    expect_refused(how, rc, "a transport call");
    break;
  }

  case OP_TRANSPORT_QUERY: {
    static const unsigned int lengths[] = {128, 128, 0, 1, 2, 16, 28, 110};
    unsigned char addr[128];
    unsigned int len = lengths[(b >> 4) % 8];
    long long n = 0;
    tr = (aios_transport_t *)pick_obj(r, T_TRANSPORT, &how);
    switch (b % 8) {
    case 0: n = aios_transport_is_closing(tr); break;
    case 1: n = aios_transport_is_reading(tr); break;
    case 2: n = aios_transport_get_write_buffer_size(tr); break;
    case 3: case 4:
      n = (b % 8 == 3 ? aios_transport_get_sockname : aios_transport_get_peername)(
          tr, (b & 0x80) && len ? NULL : addr, (b & 8) ? NULL : &len);
      if (n == 0 && len > sizeof(struct sockaddr_storage)) die("an address of %u bytes", len);
      break;
    case 5:
      n = aios_transport_get_fd(tr);
      if (n >= 0 && fcntl((int)n, F_GETFD) == -1) die("aios_transport_get_fd gave %lld, a closed descriptor", n);
      break;
    case 6: {
      int err = 1;
      n = aios_transport_get_error(tr, (b & 0x80) ? NULL : &err);
      if (n == 0 && err > 0) die("aios_transport_get_error gave %d, not a status", err);
      if (n == 0 && err < 0 && aios_transport_is_closing(tr) != 1)
        die("aios_transport_get_error gave %d for a transport that is not closing", err);
      break;
    }
    default:
      n = aios_transport_can_write_eof(tr);
      break;
    }
    expect_refused(how, n, "a transport query");
    rc = n < INT_MIN ? INT_MIN : n > INT_MAX ? INT_MAX : (int)n;
    break;
  }

  case OP_TRANSPORT_PROTOCOL: {
    static const size_t sizes[] = {sizeof(aios_protocol_t), 0, 8, 16, offsetof(aios_protocol_t, destroy),
                                   sizeof(aios_protocol_t) + 16};
    tr = (aios_transport_t *)pick_obj(r, T_TRANSPORT, &how);
    if (b & 1) { /* a new protocol; the old one is destroyed */
      closure_t *old;
      /* BUG_SET_PROTOCOL_ON_STREAM (findings/set-protocol-on-stream-transport):
       * set_protocol on a stream's transport leaks the transport and its
       * loop, even once closed and lost. Off: not on those. */
      if (!BUG_SET_PROTOCOL_ON_STREAM && made_kind(tr) == FK_STREAM_TRANSPORT) {
        TRACE("  (skipped: BUG_SET_PROTOCOL_ON_STREAM)");
        break;
      }
      /* BUG_SET_PROTOCOL_ON_SUBPROCESS_PIPE
       * (findings/set-protocol-on-subprocess-pipe): set_protocol on a pipe
       * transport of a subprocess (aios_subprocess_get_pipe_transport)
       * replaces the subprocess's own pipe protocol: the subprocess never
       * learns that pipe closed, its connection_lost never runs, and it
       * leaks with its loop and pipe transports, every reference released
       * and the loop closed. Off: not on those. */
      if (!BUG_SET_PROTOCOL_ON_SUBPROCESS_PIPE && made_kind(tr) == FK_SUBPROCESS_PIPE) {
        TRACE("  (skipped: BUG_SET_PROTOCOL_ON_SUBPROCESS_PIPE)");
        break;
      }
      /* BUG_SET_PROTOCOL_IN_GET_BUFFER (findings/set-protocol-in-get-buffer):
       * set_protocol from a buffered protocol's get_buffer destroys the old
       * protocol as get_buffer returns; libuv then reads into the buffer
       * that protocol gave (its arg destroyed: a use after free for a caller
       * whose destroy frees it), and the count goes to the new protocol's
       * buffer_updated (or the bytes to its data_received), whose get_buffer
       * was never called. Off: no set_protocol while a get_buffer runs. */
      if (!BUG_SET_PROTOCOL_IN_GET_BUFFER && g_in_get_buffer) {
        TRACE("  (skipped: BUG_SET_PROTOCOL_IN_GET_BUFFER)");
        break;
      }
      old = tr && how != PK_FORGED ? current_protocol(tr) : NULL;
      proto = pick_protocol(r, &pb, &c);
      rc = aios_transport_set_protocol(tr, proto);
      closure_commit(c, rc == 0);
      expect_refused(how, rc, "aios_transport_set_protocol");
      if (rc == 0) {
        if (old && old != c) {
          old->pstate = P_REPLACED;
          if (g_in_get_buffer && old == g_get_buffer_owner) old->handover = 1;
        }
        if (c) {
          c->pstate = P_MADE;
          c->via_set = 1; /* a batched one gets no AIOS_IO_CONNECTED either */
        }
      }
    } else {
      memset(&pb, 0x5a, sizeof pb);
      pb.p.size = sizes[(b >> 1) % 6];
      rc = aios_transport_get_protocol(tr, (b & 0x80) ? NULL : &pb.p);
      expect_refused(how, rc, "aios_transport_get_protocol");
      if (rc == 0 && pb.p.size >= offsetof(aios_protocol_t, arg) + sizeof(void *) && pb.p.arg && !as_closure(pb.p.arg))
        die("aios_transport_get_protocol gave an arg never given");
      if (rc == 0 && pb.p.size >= offsetof(aios_protocol_t, data_received) && pb.p.connection_made &&
          pb.p.connection_made != proto_made)
        die("aios_transport_get_protocol gave a connection_made never given");
    }
    break;
  }

  case OP_SERVER_OP: {
    static const size_t indexes[] = {0, 0, 1, 2, SIZE_MAX, (size_t)1 << 63};
    unsigned char addr[128];
    unsigned int len = (b & 0x20) ? 2 : sizeof addr;
    sv = (aios_server_t *)pick_obj(r, T_SERVER, &how);
    switch (b % 10) {
    case 0: rc = aios_server_close(sv); break;
    case 1: rc = aios_server_close_clients(sv); break;
    case 2: rc = aios_server_abort_clients(sv); break;
    case 3: rc = aios_server_wait_closed(sv, (b & 0x80) ? NULL : &f); got_future(f, rc, D_PLAIN); break;
    case 4: rc = aios_server_start_serving(sv); break;
    case 5: rc = aios_server_serve_forever(sv, (b & 0x80) ? NULL : &f); got_future(f, rc, D_PLAIN); break;
    case 6: rc = aios_server_is_serving(sv); break;
    case 7: rc = aios_server_socket_count(sv); break;
    case 8:
      rc = aios_server_get_sockname(sv, indexes[(b >> 4) % 6], (b & 0x40) ? NULL : addr, (b & 0x80) ? NULL : &len);
      if (rc == 0 && len > sizeof(struct sockaddr_storage)) die("a server address of %u bytes", len);
      break;
    default:
      rc = aios_server_get_loop(sv, (b & 0x80) ? NULL : &l);
      if (rc == 0) slot_put(T_LOOP, l);
      break;
    }
    expect_refused(how, rc, "a server call");
    break;
  }

  case OP_STREAM_NEW: {
    size_t limit;
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    limit = pick_limit(r);
    rc = aios_stream_new(l, limit, (b & 0x40) ? NULL : &st);
    expect_refused(how, rc, "aios_stream_new");
    if (rc == 0) slot_put(T_STREAM, st);
    break;
  }

  case OP_STREAM_READ: {
    static const long long reads[] = {0, 1, 5, 100, -1, -2, LLONG_MAX, LLONG_MIN, 65536};
    static const size_t exacts[] = {0, 1, 5, 100, 65536, SIZE_MAX / 2, SIZE_MAX, (size_t)1 << 63, 3};
    static const aios_buf_t seps[] = {{"\n", 1}, {"\r\n", 2}, {"|", 1}, {"ab", 2}, {"", 0}, {NULL, 0}, {NULL, 2},
                                      {"xy|", 3}};
    aios_future_t **out = (b & 0x80) ? NULL : &f;
    st = (aios_stream_t *)pick_obj(r, T_STREAM, &how);
    switch (b % 5) {
    case 0: rc = aios_stream_read(st, reads[rd8(r) % 9], out); break;
    case 1: rc = aios_stream_readline(st, out); break;
    case 2: {
      size_t n = exacts[rd8(r) % 9];
      /* BUG_READEXACTLY_HUGE: a count of 2^63 or more traps; off: SIZE_MAX / 2. */
      if (!BUG_READEXACTLY_HUGE && n > SIZE_MAX / 2) n = SIZE_MAX / 2;
      rc = aios_stream_readexactly(st, n, out);
      break;
    }
    default: {
      aios_buf_t given[4];
      int n = rd8(r) % 5, k;
      size_t count;
      for (k = 0; k < n; k++) given[k] = seps[rd8(r) % 8];
      count = (size_t)n;
      if (b & 0x40) count = BUG_BUFFER_COUNT_HUGE ? SIZE_MAX : (size_t)1 << 62; /* as in TRANSPORT_WRITE */
      rc = aios_stream_readuntil(st, (b & 0x20) ? NULL : given, count, out);
      break;
    }
    }
    expect_refused(how, rc, "a stream read");
    if (rc == 0) cancel_before_close_later(f, BUG_READ_PENDING_AT_CLOSE);
    got_future(f, rc, D_PLAIN);
    break;
  }

  case OP_STREAM_FEED: {
    size_t size;
    st = (aios_stream_t *)pick_obj(r, T_STREAM, &how);
    switch (b % 3) {
    case 0:
      size = pick_wsize(r);
      rc = aios_stream_feed_data(st, (b & 0x10) && size ? NULL : g_wbuf + (rd8(r) % 6), size);
      break;
    case 1: rc = aios_stream_feed_eof(st); break;
    default: rc = aios_stream_at_eof(st); break;
    }
    expect_refused(how, rc, "a stream feed");
    break;
  }

  case OP_STREAM_WRITE: {
    aios_buf_t bufs[4];
    st = (aios_stream_t *)pick_obj(r, T_STREAM, &how);
    switch (b % 3) {
    case 0: {
      size_t size = pick_wsize(r);
      rc = aios_stream_write(st, (b & 0x10) && size ? NULL : g_wbuf, size);
      break;
    }
    case 1: {
      int n = rd8(r) % 5, k;
      size_t count;
      for (k = 0; k < n; k++) {
        bufs[k].length = pick_wsize(r);
        bufs[k].base = (b & 0x10) && k == 0 && bufs[k].length ? NULL : g_wbuf;
      }
      count = (size_t)n;
      if ((b & 0x60) == 0x60) count = BUG_BUFFER_COUNT_HUGE ? SIZE_MAX : (size_t)1 << 62;
      rc = aios_stream_writev(st, (b & 0x80) && n == 0 ? NULL : bufs, count);
      break;
    }
    default:
      rc = aios_stream_drain(st, (b & 0x80) ? NULL : &f);
      got_future(f, rc, D_PLAIN);
      break;
    }
    expect_refused(how, rc, "a stream write");
    break;
  }

  case OP_STREAM_OP:
    st = (aios_stream_t *)pick_obj(r, T_STREAM, &how);
    switch (b % 6) {
    case 0: rc = aios_stream_write_eof(st); break;
    case 1: rc = aios_stream_can_write_eof(st); break;
    case 2: rc = aios_stream_close(st); break;
    case 3: rc = aios_stream_is_closing(st); break;
    case 4: rc = aios_stream_wait_closed(st, (b & 0x80) ? NULL : &f); got_future(f, rc, D_PLAIN); break;
    default:
      rc = aios_stream_get_transport(st, (b & 0x80) ? NULL : &tr);
      if (rc == 0) made_by(tr, FK_STREAM_TRANSPORT);
      if (rc == 0) slot_put(T_TRANSPORT, tr);
      break;
    }
    expect_refused(how, rc, "a stream call");
    break;

  case OP_PEER_OP: { /* the harness's end of a pair it gave a transport, a pipe or a child */
    int n = 0, k, pick = rd8(r), is_pipe;
    unsigned char scratch[4096];
    for (k = 0; k < g_nfds; k++) n += g_fds[k].state == FD_HARN && g_fds[k].peer;
    if (n == 0) break;
    pick %= n;
    for (k = 0; k < g_nfds; k++)
      if (g_fds[k].state == FD_HARN && g_fds[k].peer && pick-- == 0) break;
    is_pipe = g_fds[k].is_pipe;
    /* A pipe has no send nor shutdown: write, and close for an EOF. */
#define PEER_SEND(n) (is_pipe ? (int)write(g_fds[k].fd, g_wbuf, (n)) : (int)send(g_fds[k].fd, g_wbuf, (n), MSG_NOSIGNAL))
    switch (b % 6) {
    case 0: rc = PEER_SEND(pick_wsize(r)); break;
    case 1:
      if (!is_pipe) { rc = shutdown(g_fds[k].fd, SHUT_WR); break; }
      /* fall through */
    case 2: case 5: /* gone: EOF, or a reset when what it was sent is unread */
      if (b % 6 == 5) rc = PEER_SEND(3);
      if (sock_file_busy(k)) break; /* a sendfile reads it */
      sock_fd_closing(k);
      close(g_fds[k].fd);
      g_fds[k].state = FD_FREE;
      break;
    case 3: rc = (int)read(g_fds[k].fd, scratch, sizeof scratch); break;
    default:
      rc = PEER_SEND(pick_wsize(r));
      if (is_pipe && !sock_file_busy(k)) {
        sock_fd_closing(k);
        close(g_fds[k].fd);
        g_fds[k].state = FD_FREE;
      } else {
        shutdown(g_fds[k].fd, SHUT_WR);
      }
      break;
    }
#undef PEER_SEND
    rc = rc < 0 ? -errno : 0;
    break;
  }

  case OP_NET_SETTLE: /* a few iterations of a loop, then take the results */
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    if (l && on_main() && !loop_running_here() && aios_loop_is_closed(l) == 0) {
      int k;
      begin_run(l, RUN_DIRECT);
      if (b & 8) {
        /* A short wait, for the resolver's threads. */
        aios_loop_call_later(l, 0.0003, cb_stop, l, NULL, NULL);
        rc = aios_loop_run_forever(l);
      } else {
        for (k = 0; k <= (b & 3); k++) {
          aios_loop_stop(l);
          rc = aios_loop_run_forever(l);
        }
      }
      end_run();
    }
    harvest();
    break;

  case OP_NET_INFO: {
    aios_error_t *e;
    switch (b % 5) {
    case 0:
      aios_bytes_free(NULL);
      aios_addrinfo_list_free(NULL);
      aios_nameinfo_free(NULL);
      check_string(aios_err_name(-3101 - (int)(rd8(r) % 12)));
      break;
    case 1: case 2: {
      const void *data = NULL;
      size_t len = 0;
      long long expected = 0, consumed;
      int kind;
      e = (aios_error_t *)pick_obj(r, T_ERROR, &how);
      kind = aios_error_kind(e);
      rc = aios_error_partial(e, (b & 8) ? NULL : &data, (b & 16) ? NULL : &len, (b & 32) ? NULL : &expected);
      expect_refused(how, rc, "aios_error_partial");
      if (kind > 0 && (rc == 0) != (kind == AIOS_ERROR_INCOMPLETE_READ))
        die("aios_error_partial returned %d for an error of kind %d", rc, kind);
      if (rc == 0 && !(b & 24)) {
        size_t i;
        unsigned sum = 0;
        if (len && data == NULL) die("aios_error_partial: %zu bytes at NULL", len);
        for (i = 0; i < len; i++) sum += ((const unsigned char *)data)[i];
        (void)sum;
      }
      consumed = aios_error_consumed(e);
      expect_refused(how, consumed, "aios_error_consumed");
      if (kind > 0 && (consumed >= 0) != (kind == AIOS_ERROR_LIMIT_OVERRUN))
        die("aios_error_consumed returned %lld for an error of kind %d", consumed, kind);
      /* A count only on a CANCELLED error (a send's, or one set from it). */
      consumed = aios_error_bytes_sent(e);
      expect_refused(how, consumed, "aios_error_bytes_sent");
      if (consumed >= 0 && kind != AIOS_ERROR_CANCELLED)
        die("aios_error_bytes_sent returned %lld for an error of kind %d", consumed, kind);
      if (consumed < 0 && consumed != AIOS_EINVAL && consumed != AIOS_EBADHANDLE)
        die("aios_error_bytes_sent returned %lld", consumed);
      break;
    }
    case 3: {
      int type;
      for (type = AIOS_OBJECT_TRANSPORT; type <= AIOS_OBJECT_SUBPROCESS; type++)
        if (aios_live_objects((aios_object_type_t)type) < 0) die("aios_live_objects(%d) < 0", type);
      break;
    }
    default:
      harvest();
      break;
    }
    break;
  }

  case OP_TAKE_IO_EVENTS: /* a batched protocol's events: one iteration's */
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    rc = take_io_events(l, how, b);
    if (b & 0x80) { /* done with them: the next reads may reuse the arena */
      int released = aios_loop_release_io_events(l);
      expect_refused(how, released, "aios_loop_release_io_events");
      if (how == PK_SLOT && rc >= 0 && released != 0) die("aios_loop_release_io_events returned %d", released);
    }
    break;

  default:
    break;
  }
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Pipes, signals and children: the ops                                       */

/* Runs `f`'s loop until it is done, as settle does. */
static void settle_future(aios_future_t *f) {
  aios_loop_t *fl = NULL;
  if (aios_future_get_loop(f, &fl) != 0) return;
  settle(fl, f);
  aios_loop_unref(fl);
}

/* Children that read or write their stdio get none of the fuzzer's own:
 * the inherited ones become /dev/null. */
static void quiet_mode(int *mode) {
  if (*mode == AIOS_CHILD_INHERIT) *mode = AIOS_CHILD_DEVNULL;
}

static int exec_child_op(reader_t *r, int op) {
  int rc = 0, how = PK_SLOT, idx, i;
  aios_loop_t *l = NULL;
  aios_future_t *f = NULL;
  closure_t *c = NULL;
  uint8_t b = rd8(r);

  switch (op) {
  case OP_PIPE_CONNECT: {
    static const char *const names[] = {"aios_connect_read_pipe", "aios_connect_write_pipe", "aios_open_read_pipe",
                                        "aios_open_write_pipe"};
    proto_buf_t pb;
    aios_protocol_t *proto = NULL;
    aios_future_t **out = (b & 0xe0) == 0xe0 ? NULL : &f;
    size_t limit = 0;
    int variant = b & 3, kind, peer, fd;
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    if (variant < 2) proto = pick_protocol(r, &pb, &c);
    if (variant == 2) limit = pick_limit(r);
    if (!net_budget()) { closure_commit(c, 0); break; }
    fd = pick_pipe_fd(r, variant == 1 || variant == 3, &idx, &kind, &peer);
    if (peer >= 0 && (b & 0x10)) { /* the other end gone first */
      close(g_fds[peer].fd);
      g_fds[peer].state = FD_FREE;
    }
    switch (variant) {
    case 0: rc = aios_connect_read_pipe(l, proto, fd, out); break;
    case 1: rc = aios_connect_write_pipe(l, proto, fd, out); break;
    case 2: rc = aios_open_read_pipe(l, fd, limit, out); break;
    default: rc = aios_open_write_pipe(l, fd, out); break;
    }
    TRACE("  %s(fd %d, kind %d) -> %d", names[variant], fd, kind, rc);
    closure_commit(c, rc == 0);
    expect_refused(how, rc, names[variant]);
    fd_given(idx, rc == 0, names[variant]);
    if (kind != PFD_OK && rc == 0) die("%s took descriptor %d, which is not a pipe (kind %d)", names[variant], fd, kind);
    if (kind != PFD_OK && how == PK_SLOT && aios_loop_is_closed(l) == 0 && out &&
        (variant == 3 || (variant == 2 && limit <= INT_MAX))) {
      int want = kind == PFD_DEVNULL ? -EPERM : kind == PFD_BADF ? -EBADF : AIOS_EINVAL;
      if (rc != want) die("%s on a descriptor of kind %d returned %d, not %d", names[variant], kind, rc, want);
    }
    if (rc != 0) break;
    remember_net_as(f, variant == 0 ? NK_READ_PIPE : NK_NONE, -1);
    got_future(f, rc, D_PLAIN);
    if ((b & 0x0c) == 0x0c) aios_future_cancel(f, NULL);
    if (!(b & 8)) settle(l, f);
    break;
  }

  case OP_SIGNAL: {
    int sig;
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    sig = g_signals[rd8(r) % N_SIGNALS];
    switch (b % 4) {
    case 0: case 1: { /* add, or replace (the old arg is destroyed) */
      aios_destructor_fn dtor = NULL;
      int null_cb = (b & 0x60) == 0x60;
      c = capture(r, K_SIGNAL);
      if (c) {
        c->sig = sig;
        c->self = l;
        c->self_type = T_LOOP;
      }
      if (c && !(b & 8) && closure_offer(c)) dtor = closure_dtor;
      if (dtor && (b & 16)) c->on_free = capture(r, K_DTOR);
      rc = aios_loop_add_signal_handler(l, sig, null_cb ? NULL : sig_cb, c, dtor);
      TRACE("  add_signal_handler(%d) -> %d", sig, rc);
      if (dtor) closure_commit(c, rc == 0);
      expect_refused(how, rc, "aios_loop_add_signal_handler");
      if (rc == 0 && (signal_refused(sig) || null_cb)) die("aios_loop_add_signal_handler(%d) accepted %s", sig, null_cb ? "a NULL callback" : "the signal");
      if (how == PK_SLOT && aios_loop_is_closed(l) == 0 && (signal_refused(sig) || null_cb) && rc != AIOS_EINVAL)
        die("aios_loop_add_signal_handler(%d) returned %d, not AIOS_EINVAL", sig, rc);
      break;
    }
    case 2:
      rc = aios_loop_remove_signal_handler(l, sig);
      TRACE("  remove_signal_handler(%d) -> %d", sig, rc);
      expect_refused(how, rc, "aios_loop_remove_signal_handler");
      if (rc > 1 || ((sig < 1 || sig > 64) && rc >= 0)) die("aios_loop_remove_signal_handler(%d) returned %d", sig, rc);
      break;
    default: {
      static const int raised[] = {SIGUSR1, SIGUSR2, SIGUSR1, SIGUSR2, SIGCHLD, SIGWINCH, SIGPIPE, 64};
      int s = raised[(b >> 2) % 8];
      if (!raise_is_safe(s)) {
        TRACE("  (skipped: nothing catches signal %d)", s);
        break;
      }
      TRACE("  raise(%d)", s);
      rc = raise(s);
      /* Two iterations: libuv's pipe is read, then the handler runs. */
      if ((b & 0x80) && l && on_main() && !loop_running_here() && aios_loop_is_closed(l) == 0) {
        begin_run(l, RUN_DIRECT);
        for (i = 0; i < 2; i++) {
          aios_loop_stop(l);
          aios_loop_run_forever(l);
        }
        end_run();
      }
      break;
    }
    }
    break;
  }

  case OP_SPAWN:
  case OP_PROCESS_NEW: {
    sproto_buf_t spb;
    spawn_buf_t sb;
    aios_subprocess_protocol_t *sproto = NULL;
    aios_spawn_options_t *opts;
    const program_t *pg;
    const char *file;
    aios_future_t **out = &f;
    int shell = (b & 4) != 0, pi, before[NCHILDREN], after[NCHILDREN], nb;
    plan_t *pl;
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    if (op == OP_SPAWN) sproto = pick_sprotocol(r, &spb, &c);
    i = rd8(r);
    pg = shell ? &shell_programs[i % N_SHELL_PROGRAMS] : &exec_programs[i % N_EXEC_PROGRAMS];
    opts = pick_spawn_options(r, &sb);
    if (b & 0x20) { /* a call refused before anything forks (a fork costs about 10 ms) */
      static const char *const why[] = {"no program", "an empty program", "no out", "an options size of 0",
                                        "STDOUT for stdin", "STDOUT for stdout", "a mode of 7",
                                        "a negative descriptor", "257 pass_fds", "pass_fds NULL with a count",
                                        "a protocol size too small", "a NULL protocol", "a NULL loop",
                                        "a negative process group", "a signals value of 3",
                                        "an empty executable"};
      int refusal = rd8(r) % 16;
      if (refusal >= 3 && refusal != 10 && refusal != 11 && refusal != 12 && !opts) {
        opts = &sb.o;
        sb.o.size = sizeof sb.o;
      }
      file = child_file(pg);
      switch (refusal) {
      case 0: file = NULL; break;
      case 1: file = shell ? NULL : ""; break;
      case 2: out = NULL; break;
      case 3: sb.o.size = 0; break;
      case 4: sb.o.stdin_mode = AIOS_CHILD_STDOUT; break;
      case 5: sb.o.stdout_mode = AIOS_CHILD_STDOUT; break;
      case 6: sb.o.stderr_mode = 7; break;
      case 7: sb.o.stderr_mode = AIOS_CHILD_FD; sb.o.stderr_fd = -1; break;
      case 8: sb.o.pass_fds = g_many_fds; sb.o.pass_fds_count = 257; break;
      case 9: sb.o.pass_fds = NULL; sb.o.pass_fds_count = 1; break;
      case 10: spb.p.size = sizeof spb.p - 1; break;
      case 11: sproto = NULL; break;
      case 12: l = NULL; break;
      case 13: sb.o.use_process_group = 1; sb.o.process_group = -1; break;
      case 14: sb.o.size = sizeof sb.o; sb.o.signals = 3; break;
      default: sb.o.size = sizeof sb.o; sb.o.executable = ""; break;
      }
      if (op != OP_SPAWN && (refusal == 10 || refusal == 11)) file = NULL;
      TRACE("  refused: %s (%s %.40s)", why[refusal], shell ? "shell" : "exec", file ? file : "(null)");
      nb = list_children(before, NCHILDREN);
      if (op == OP_SPAWN) {
        if (shell) rc = aios_subprocess_shell(l, sproto, file, opts, out);
        else rc = aios_subprocess_exec(l, sproto, file, pg->args, opts, out);
      } else {
        if (shell) rc = aios_create_subprocess_shell(l, file, opts, out);
        else rc = aios_create_subprocess_exec(l, file, pg->args, opts, out);
      }
      closure_commit(c, rc == 0);
      expect_refused(how, rc, "a spawn");
      if (rc == 0) die("a spawn with %s worked", why[refusal]);
      if ((refusal == 12 || (how == PK_SLOT && aios_loop_is_closed(l) == 0)) && rc != AIOS_EINVAL)
        die("a spawn with %s returned %d, not AIOS_EINVAL", why[refusal], rc);
      if (nb >= 0 && new_child(before, nb, after, list_children(after, NCHILDREN)))
        die("a spawn with %s forked a child", why[refusal]);
      for (i = 0; i < sb.nkept; i++) fd_given(sb.kept[i], 0, "a refused spawn");
      break;
    }
    if (!child_loop_ok(l) || !child_budget()) { closure_commit(c, 0); break; }
    if (pg->prog == PG_CAT || pg->prog == PG_PRINTF) {
      if (opts == NULL) {
        pg = shell ? &shell_programs[0] : &exec_programs[0];
      } else {
        quiet_mode(&sb.o.stdin_mode);
        quiet_mode(&sb.o.stdout_mode);
        quiet_mode(&sb.o.stderr_mode);
      }
    }
    /* BUG_NEGATIVE_PASS_FD (findings/negative-pass-fd): a negative
     * pass_fds entry is refused (AIOS_EINVAL) only once the pipes are made
     * and the loop's SIGCHLD watcher started: the parent's ends of the
     * pipes leak, and the watcher stays, so aios_loop_close blocks for
     * ever. Off: a closed number instead (refused by the child's setup). */
    if (!BUG_NEGATIVE_PASS_FD && opts && opts->pass_fds == sb.pass && sb.pass[0] < 0) {
      TRACE("  (pass_fds: a closed number, not %d: BUG_NEGATIVE_PASS_FD)", sb.pass[0]);
      sb.pass[0] = closed_fd();
    }
    file = child_file(pg);
    /* `executable`: the program's own file again, or /bin/sh for a shell,
     * so that the child is the plan's. */
    if (opts && opts->size >= sizeof *opts && file && (rd8(r) & 1)) opts->executable = shell ? "/bin/sh" : file;
    pi = g_nplans++;
    pl = &g_plans[pi];
    memset(pl, 0, sizeof *pl);
    pl->prog = pg->prog;
    pl->expect = pg->expect;
    if (opts && opts->size >= SPAWN_OPTIONS_OLD_SIZE) {
      pl->pipes = (opts->stdin_mode == AIOS_CHILD_PIPE) | (opts->stdout_mode == AIOS_CHILD_PIPE) << 1 |
                  (opts->stderr_mode == AIOS_CHILD_PIPE) << 2;
      pl->err_to_out = opts->stderr_mode == AIOS_CHILD_STDOUT;
    }
    if (c) c->child = pi;
    TRACE("  %s %.40s (plan %d)", shell ? "shell" : "exec", file ? file : "(null)", pi);
    nb = list_children(before, NCHILDREN);
    if (op == OP_SPAWN) {
      if (shell) rc = aios_subprocess_shell(l, sproto, file, opts, out);
      else rc = aios_subprocess_exec(l, sproto, file, pg->args, opts, out);
    } else {
      if (shell) rc = aios_create_subprocess_shell(l, file, opts, out);
      else rc = aios_create_subprocess_exec(l, file, pg->args, opts, out);
    }
    if (rc == 0) {
      pl->loop = l;
      if (nb >= 0) pl->pid = new_child(before, nb, after, list_children(after, NCHILDREN));
      /* Closed by the harness only (BUG_SUBPROCESS_EXIT_AT_CLOSE). */
      if (!BUG_SUBPROCESS_EXIT_AT_CLOSE && aios_loop_ref(l) == 0) keep_push(T_LOOP, l);
    }
    TRACE("  -> %d (pid %d)", rc, pl->pid);
    closure_commit(c, rc == 0);
    expect_refused(how, rc, op == OP_SPAWN ? "aios_subprocess_exec" : "aios_create_subprocess_exec");
    for (i = 0; i < sb.nkept; i++) fd_given(sb.kept[i], 0, "a spawn (a child's descriptors stay the caller's)");
    if (rc == 0 && pg->cannot_start) die("a spawn of %.40s worked", file ? file : "(null)");
    if (rc != 0) break;
    remember_net_as(f, op == OP_SPAWN ? NK_SPAWN : NK_PROCESS, pi);
    got_future(f, rc, D_PLAIN);
    if ((b & 0x1a) == 0x1a && !(b & 0x40)) { /* cancelled: the child is closed (killed) */
      pl->touched = 1;
      aios_future_cancel(f, NULL);
    }
    if ((b & 0x11) != 0x10 || pl->prog == PG_SLEEP) settle(l, f);
    break;
  }

  case OP_SUBPROCESS_OP: {
    static const int fds[] = {0, 1, 2, 0, 1, 3, -1, INT_MAX};
    static const int sigs[] = {SIGTERM, SIGKILL, SIGUSR1, SIGCONT, SIGSTOP, 0, -1, 65, INT_MAX, SIGINT};
    aios_subprocess_t *sp = (aios_subprocess_t *)pick_obj(r, T_SUBPROCESS, &how);
    aios_transport_t *tr = NULL;
    uint8_t m = rd8(r);
    int code = 0, fd, sig, live = aios_subprocess_get_pid(sp) > 0, pi = plan_by_pid(aios_subprocess_get_pid(sp));
    int null_out = (m & 0xe0) == 0xe0;
    switch (b % 11) {
    case 0:
      rc = aios_subprocess_get_pid(sp);
      if (rc == 0) die("aios_subprocess_get_pid gave 0");
      break;
    case 1:
      rc = aios_subprocess_get_returncode(sp, null_out ? NULL : &code);
      if (rc == 1 && (code < -64 || code > 255)) die("aios_subprocess_get_returncode gave %d", code);
      if (live && null_out && rc != AIOS_EINVAL) die("aios_subprocess_get_returncode with no code returned %d", rc);
      if (rc == 1 && plan_of(pi) && !g_plans[pi].touched && g_plans[pi].expect != NO_CODE &&
          code != g_plans[pi].expect && code != -SIGKILL)
        die("a child that ends with %d has the returncode %d", g_plans[pi].expect, code);
      break;
    case 2:
      fd = fds[m % 8];
      touch_subprocess(sp);
      rc = aios_subprocess_get_pipe_transport(sp, fd, null_out ? NULL : &tr);
      if (rc == 0 && (fd < 0 || fd > 2)) die("aios_subprocess_get_pipe_transport gave a pipe for fd %d", fd);
      if (live && !null_out && plan_of(pi) && fd >= 0 && fd < 3 && (rc == 0) != ((g_plans[pi].pipes >> fd) & 1))
        die("aios_subprocess_get_pipe_transport(%d) returned %d for pipes %#x", fd, rc, g_plans[pi].pipes);
      if (rc == 0 && fd > 0) rpipe_add(tr);
      if (rc == 0) made_by(tr, FK_SUBPROCESS_PIPE);
      if (rc == 0) slot_put(T_TRANSPORT, tr);
      break;
    case 3:
      sig = sigs[m % 10];
      touch_subprocess(sp);
      rc = aios_subprocess_send_signal(sp, sig);
      /* A bad number does nothing only once the child exited. */
      if (live && rc == 0 && (sig < 0 || sig > 64) && aios_subprocess_get_returncode(sp, &code) != 1)
        die("aios_subprocess_send_signal(%d) to a running child returned 0", sig);
      break;
    case 4: touch_subprocess(sp); rc = aios_subprocess_terminate(sp); break;
    case 5: touch_subprocess(sp); rc = aios_subprocess_kill(sp); break;
    case 6:
      touch_subprocess(sp);
      rc = aios_subprocess_close(sp);
      if (rc == 0 && aios_subprocess_is_closing(sp) != 1) die("a subprocess closed is not closing");
      break;
    case 7: rc = aios_subprocess_is_closing(sp); break;
    case 8:
      rc = aios_subprocess_get_loop(sp, null_out ? NULL : &l);
      if (rc == 0) slot_put(T_LOOP, l);
      break;
    case 9:
      rc = aios_subprocess_ref(sp);
      if (rc == 0 && how != PK_FORGED) slot_put(T_SUBPROCESS, sp);
      break;
    default: { /* the queries agree with each other */
      int closing = aios_subprocess_is_closing(sp), got = aios_subprocess_get_returncode(sp, &code);
      rc = aios_subprocess_get_pid(sp);
      if (live && (closing < 0 || got < 0)) die("a live subprocess's queries failed (%d, %d)", closing, got);
      break;
    }
    }
    expect_refused(how, rc, "a subprocess call");
    break;
  }

  case OP_PROCESS_OP: {
    static const int fds[] = {0, 1, 2, 1, 3, -1};
    static const size_t lens[] = {0, 1, 3, 3, 100, 65536, 1 << 20};
    aios_process_t *pr = (aios_process_t *)pick_obj(r, T_PROCESS, &how);
    aios_subprocess_t *sp = NULL;
    aios_stream_t *st = NULL;
    uint8_t m = rd8(r);
    int pi = process_plan(pr), fd, null_out = (m & 0xe0) == 0xe0, run = (m & 0x18) != 0x18;
    switch (b % 7) {
    case 0:
      rc = aios_process_get_subprocess(pr, null_out ? NULL : &sp);
      if (rc == 0) slot_put(T_SUBPROCESS, sp);
      break;
    case 1:
      fd = fds[m % 6];
      if (plan_of(pi)) g_plans[pi].touched = 1;
      rc = aios_process_get_stream(pr, fd, null_out ? NULL : &st);
      if (plan_of(pi) && !null_out && (rc == 0) != (fd >= 0 && fd < 3 && ((g_plans[pi].pipes >> fd) & 1)))
        die("aios_process_get_stream(%d) returned %d for pipes %#x", fd, rc, g_plans[pi].pipes);
      if (rc == 0) slot_put(T_STREAM, st);
      break;
    case 2:
      rc = aios_process_wait(pr, null_out ? NULL : &f);
      if (rc != 0) break;
      remember_net_as(f, NK_WAIT, pi);
      got_future(f, rc, D_PLAIN);
      if (run) settle_future(f);
      break;
    case 3: {
      const void *in = g_wbuf;
      size_t len = lens[m % 7];
      switch (m >> 5) {
      case 5: in = NULL; len = 0; break;
      case 6: in = NULL; len = 5; break;    /* refused */
      case 7: len = (size_t)-1; break;       /* a negative length: refused */
      default: break;
      }
      rc = aios_process_communicate(pr, in, len, (m & 0x80) && (m & 7) == 7 ? NULL : &f);
      if (rc == 0 && ((in == NULL && len) || len > SIZE_MAX / 2)) die("aios_process_communicate took %zu bytes at %p", len, in);
      if (rc != 0) break;
      if (plan_of(pi)) {
        g_plans[pi].communicates++;
        g_plans[pi].input_len = len;
      }
      remember_net_as(f, NK_COMMUNICATE, pi);
      got_future(f, rc, D_PLAIN);
      if (run) settle_future(f);
      break;
    }
    case 4:
      rc = aios_process_ref(pr);
      if (rc == 0 && how != PK_FORGED) slot_put(T_PROCESS, pr);
      break;
    case 5:
      aios_output_free(NULL);
      if (plan_of(pi)) g_plans[pi].touched = 1;
      rc = aios_process_get_stream(pr, 0, null_out ? NULL : &st);
      if (rc == 0) {
        TRACE("  (stdin's stream: at EOF %d)", aios_stream_at_eof(st));
        slot_put(T_STREAM, st);
      }
      break;
    default: /* its child killed, through its transport */
      if (aios_process_get_subprocess(pr, &sp) != 0) { rc = -1; break; }
      touch_subprocess(sp);
      rc = aios_subprocess_kill(sp);
      aios_subprocess_unref(sp);
      break;
    }
    expect_refused(how, rc, "a process call");
    break;
  }

  default:
    break;
  }
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Datagrams, descriptor watchers, the I/O events callback: the ops          */

/* What a callback the loop makes as it runs (not a scheduled one) checks
 * first: it is on the loop's thread with its loop running (*l, a reference).
 * Returns the first byte of the closure's next slice of program, or 0. */
static uint8_t begin_loop_callback(closure_t *c, int kind, const char *what, aios_loop_t **l) {
  count_callback(kind);
  maybe_arm_watchdog();
  if (!on_main()) die("the %s ran off the loop's thread", what);
  if (aios_get_running_loop(l) != 0) die("the %s ran with no loop running", what);
  if (c) c->calls++;
  return (c && can_run_programs() && !at_end(&c->prog)) ? rd8(&c->prog) : 0;
}

/* Runs `len` bytes of a loop callback's program in a frame naming the loop. */
static void run_loop_callback_program(closure_t *c, int kind, aios_loop_t *l, size_t len) {
  frame_t *f = push_frame(kind);
  reader_t part;
  f->closure = c;
  f->loop = l;
  part = sub_reader(&c->prog, len);
  run_program(&part);
  TRACE("}");
  pop_frame();
}

/* The I/O events callback of a loop: takes the events (mostly), then runs a
 * slice of its program. */
static void io_events_cb(void *arg) {
  closure_t *c = check_closure(arg, K_IOEV, "I/O events callback");
  aios_loop_t *l = NULL;
  uint8_t b = begin_loop_callback(c, F_IOEV, "I/O events callback", &l);
  if (!(b & 1)) {
    int rc = take_io_events(l, PK_SLOT, 0);
    TRACE("(I/O events callback: %d events)", rc);
  }
  if (c && (b & 2) && can_run_programs()) {
    TRACE("I/O events callback %d {", pidx(c));
    run_loop_callback_program(c, F_IOEV, l, (b >> 2) & 15);
  }
  aios_loop_unref(l);
}

/* The iteration callback of a loop: told whether the poll may block, then
 * runs a slice of its program (which may schedule, stop, or set another
 * callback). */
static void iteration_cb(void *arg, int waits) {
  closure_t *c = check_closure(arg, K_ITER, "iteration callback");
  aios_loop_t *l = NULL;
  uint8_t b = begin_loop_callback(c, F_ITER, "iteration callback", &l);
  if (waits != 0 && waits != 1) die("the iteration callback was told waits=%d", waits);
  if (c && (b & 1) && can_run_programs()) {
    TRACE("iteration callback %d (waits %d) {", pidx(c), waits);
    run_loop_callback_program(c, F_ITER, l, (b >> 1) & 15);
  }
  aios_loop_unref(l);
}

/* A socket address for sendto, in buf (128 bytes): its length, or *null. */
static unsigned int pick_dgram_address(reader_t *r, unsigned char *buf, int *null) {
  struct sockaddr_in *in = (struct sockaddr_in *)buf;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)buf;
  struct sockaddr_un *un = (struct sockaddr_un *)buf;
  uint8_t b = rd8(r);
  int n = g_ndports < NPORTS ? g_ndports : NPORTS, n6 = g_ndports6 < NPORTS ? g_ndports6 : NPORTS;
  memset(buf, 0, 128);
  *null = 0;
  switch (b & 15) {
  case 0: case 1: *null = 1; return 0; /* the peer */
  case 2: case 3: case 12: case 13: case 14: /* an endpoint of this input, or a closed port */
    in->sin_family = AF_INET;
    in->sin_port = htons(n ? g_dports[(b >> 4) % n] : g_refusing_port);
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sizeof *in;
  case 4:
    in->sin_family = AF_INET;
    in->sin_port = htons(g_refusing_port);
    in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sizeof *in;
  case 5:
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons(n6 ? g_dports6[(b >> 4) % n6] : g_refusing_port);
    in6->sin6_addr.s6_addr[15] = 1;
    return sizeof *in6;
  case 6: case 7:
    un->sun_family = AF_UNIX;
    snprintf(un->sun_path, sizeof un->sun_path, "%s", (b & 0x30) == 0x30 ? g_dpath_harn : g_dpaths[(b >> 4) % 3]);
    return (unsigned int)(offsetof(struct sockaddr_un, sun_path) + strlen(un->sun_path) + 1);
  case 8: in->sin_family = AF_INET; in->sin_port = htons(g_refusing_port); return sizeof *in - 1; /* too short */
  case 9: return 0;                                    /* length 0 */
  case 10: buf[0] = 0xff; buf[1] = 0x7f; return 16;    /* no family */
  default: in->sin_family = AF_INET; return (b & 0x10) ? UINT_MAX : 128;
  }
}

/* A descriptor for a datagram endpoint (sock=): *idx is its record. */
static int pick_dgram_fd(reader_t *r, int *idx, int *expect) {
  int p[2], fd = -1, peer = -1;
  uint8_t b = rd8(r);
  *idx = -1;
  *expect = 0;
  switch (b % 10) {
  case 0: case 1: { /* UDP on 127.0.0.1, bound or connected to an endpoint of ours */
    struct sockaddr_in a;
    int n = g_ndports < NPORTS ? g_ndports : NPORTS;
    if (!net_budget()) {
      *expect = -EBADF; /* no socket: -1 is given */
      return -1;
    }
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {}
    if (fd >= 0 && (b & 1)) {
      a.sin_port = htons(n ? g_dports[(b >> 4) % n] : g_refusing_port);
      if (connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {}
    }
    break;
  }
  case 2: case 3: /* a Unix datagram pair: the harness is the peer */
    if (net_budget() && socketpair(AF_UNIX, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p) == 0) {
      fd = p[0];
      peer = p[1];
    }
    break;
  case 4: /* a stream */
    *expect = AIOS_EINVAL;
    if (net_budget() && socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) == 0) {
      fd = p[0];
      fd_add(p[1], 0);
    }
    break;
  case 5:
    *expect = AIOS_EINVAL;
    if (net_budget()) fd = tcp_socket_bound(b & 0x10);
    break;
  case 6: /* not a socket */
    *expect = -ENOTSOCK;
    if (pipe2(p, O_CLOEXEC) == 0) {
      fd = p[0];
      fd_add(p[1], 0);
    }
    break;
  case 7: *expect = -EBADF; return -1;
  case 8: *expect = -EBADF; return closed_fd();
  default: /* IPv6, unbound */
    if (net_budget()) fd = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    break;
  }
  if (peer >= 0) peer_add(peer, 0);
  *idx = fd_add(fd, 0);
  if (*idx < 0) {
    *expect = -EBADF;
    return -1;
  }
  return fd;
}

/* A descriptor to watch, and what add_reader must return (1: no oracle). */
static int pick_watch_fd(reader_t *r, aios_loop_t *l, int *expect) {
  int p[2], k, n = 0, pick;
  uint8_t b = rd8(r);
  *expect = 1;
  switch (b % 12) {
  case 0: case 1: case 2: /* one the harness holds */
    for (k = 0; k < g_nfds; k++) n += g_fds[k].state == FD_HARN;
    if (n == 0) return -1;
    pick = (b >> 4) % n;
    for (k = 0; k < g_nfds; k++)
      if (g_fds[k].state == FD_HARN && pick-- == 0) return g_fds[k].fd;
    return -1;
  case 3: case 4: /* a socket pair, one byte waiting */
    if (!net_budget() || socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, p) != 0) return -1;
    if (send(p[1], "x", 1, MSG_NOSIGNAL) != 1) {}
    peer_add(p[1], 0);
    fd_add(p[0], 1);
    return p[0];
  case 5: /* a pipe: its read end, or its write end */
    if (pipe2(p, O_CLOEXEC | O_NONBLOCK) != 0) return -1;
    peer_add(p[1], 1);
    peer_add(p[0], 1);
    return (b & 0x10) ? p[1] : p[0];
  case 6: { /* a datagram endpoint's: refused while open, on its loop */
    aios_datagram_t *d = NULL;
    aios_loop_t *dl = NULL;
    int fd;
    for (k = 0; k < NSLOTS && d == NULL; k++)
      if (g_slots[(k + (b >> 4)) % NSLOTS].type == T_DATAGRAM) d = (aios_datagram_t *)g_slots[(k + (b >> 4)) % NSLOTS].p;
    if (d == NULL || (fd = aios_datagram_get_fd(d)) < 0) return -1;
    if (aios_datagram_is_closing(d) == 0 && aios_datagram_get_loop(d, &dl) == 0) {
      if (dl == l) *expect = AIOS_EINVAL;
      aios_loop_unref(dl);
    }
    return fd;
  }
  case 7: /* a regular file, /dev/null: epoll refuses them */
    *expect = -EPERM;
    k = open((b & 0x10) ? "/dev/null" : g_path_file, O_RDONLY | O_CLOEXEC);
    if (fd_add(k, 0) < 0) { *expect = -EBADF; return -1; }
    return k;
  case 8: *expect = -EBADF; return -1;
  case 9: *expect = -EBADF; return closed_fd();
  default: /* a number watched before, whatever it names now */
    if (g_nwatch == 0) return -1;
    return g_watch[(b >> 4) % g_nwatch].fd;
  }
}

static int exec_dgram_op(reader_t *r, int op) {
  int rc = 0, how = PK_SLOT, idx = -1, expect = 0;
  aios_loop_t *l = NULL;
  aios_future_t *f = NULL;
  aios_datagram_t *d;
  closure_t *c = NULL;
  dproto_buf_t pb;
  aios_datagram_protocol_t *proto;
  uint8_t b = rd8(r);

  switch (op) {
  case OP_DGRAM_NEW: {
    static const char *const hosts[] = {"127.0.0.1", "127.0.0.1", "127.0.0.1", "::1", NULL, "",
                                        "no-such-host.invalid", "localhost", "1.2.3.4.5"};
    static const int families[] = {0, AF_INET, AF_INET, AF_INET6, AF_UNIX, -1};
    static const int protos[] = {0, 0, IPPROTO_UDP, IPPROTO_TCP, -1};
    aios_datagram_options_t opts;
    aios_future_t **out;
    const char *lh = NULL, *rh = NULL;
    int lp = -1, rp = -1, kind = b % 4, n = g_ndports < NPORTS ? g_ndports : NPORTS, have_opts = 0;
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    proto = pick_dprotocol(r, &pb, &c);
    out = (b & 0x40) ? NULL : &f;
    if (proto == NULL || proto->size < sizeof *proto || out == NULL) expect = AIOS_EINVAL;
    if (kind <= 1) { /* UDP */
      uint8_t ob = rd8(r), hb = rd8(r), pb2 = rd8(r);
      memset(&opts, 0, sizeof opts);
      if (ob & 1) {
        have_opts = 1;
        opts.size = (ob & 6) == 6 ? 8 : sizeof opts;
        opts.family = families[(ob >> 3) % 6];
        opts.proto = protos[(ob >> 4) % 5];
        opts.flags = AI_NUMERICHOST | ((ob & 0x80) ? AI_PASSIVE : 0);
        opts.reuse_port = (ob >> 5) & 1;
        opts.allow_broadcast = (ob >> 6) & 1;
      }
      /* Without options, numeric hosts only (no lookup waits on DNS); a
       * local host is never the wildcard. */
      lh = hosts[(hb & 15) % 9];
      rh = hosts[(hb >> 4) % 9];
      if (!have_opts && lh && strcmp(lh, "127.0.0.1") != 0 && strcmp(lh, "::1") != 0) lh = "127.0.0.1";
      if (!have_opts && rh && strcmp(rh, "127.0.0.1") != 0 && strcmp(rh, "::1") != 0) rh = "127.0.0.1";
      if (lh == NULL || lh[0] == '\0') lh = "127.0.0.1";
      switch (pb2 & 7) {
      case 0: case 1: lp = 0; break;
      case 2: lp = -1; break; /* unbound */
      case 3: lp = -2; break;
      case 4: lp = 70000; break;
      case 5: lp = n ? g_dports[(pb2 >> 4) % n] : 0; break; /* in use */
      case 6: lp = 65535; break;
      default: lp = 0; break;
      }
      switch ((pb2 >> 3) & 7) {
      case 0: case 1: case 2: rp = -1; break;
      case 3: case 4: rp = n ? g_dports[(pb2 >> 6) % n] : g_refusing_port; break;
      case 5: rp = g_refusing_port; break; /* nothing there: ICMP errors */
      case 6: rp = 70000; break;
      default: rp = 0; break;
      }
      if (lp > 65535 || rp > 65535 || (have_opts && opts.size < sizeof opts)) expect = AIOS_EINVAL;
      if (lp < 0 && rp < 0 && (!have_opts || opts.family == 0)) expect = AIOS_EINVAL;
      if (expect == 0) expect = 1;
      if (!net_budget()) { closure_commit(c, 0); break; }
      rc = aios_create_datagram_endpoint(l, proto, lh, lp, rh, rp, have_opts ? &opts : NULL, out);
      TRACE("  create_datagram_endpoint(%s:%d -> %s:%d, family %d) -> %d", lh ? lh : "NULL", lp, rh ? rh : "NULL",
            rp, have_opts ? opts.family : -9, rc);
      expect_refused(how, rc, "aios_create_datagram_endpoint");
    } else if (kind == 2) { /* Unix */
      static const int which[] = {0, 1, 2, 0, 1, 3, 4, 5, 6, 7};
      const char *paths[8];
      uint8_t pb2 = rd8(r), stale = rd8(r);
      paths[0] = g_dpaths[0]; paths[1] = g_dpaths[1]; paths[2] = g_dpaths[2]; paths[3] = NULL;
      paths[4] = g_path_nodir; paths[5] = g_dpath_harn; paths[6] = g_long_string; paths[7] = "";
      lh = paths[which[(pb2 & 15) % 10]];
      rh = paths[which[(pb2 >> 4) % 10]];
      if (lh == g_dpath_harn) lh = g_path_file; /* not a socket: bind fails */
      if ((stale & 1) && lh && lh != g_path_file && lh != g_long_string && lh[0]) {
        /* A stale socket file there, which the endpoint removes first. */
        struct sockaddr_un a;
        int s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        memset(&a, 0, sizeof a);
        a.sun_family = AF_UNIX;
        snprintf(a.sun_path, sizeof a.sun_path, "%s", lh);
        unlink(lh);
        if (s >= 0 && bind(s, (struct sockaddr *)&a, sizeof a) != 0) {}
        if (s >= 0) close(s);
      }
      if (expect == 0) expect = 1;
      if (!net_budget()) { closure_commit(c, 0); break; }
      rc = aios_create_unix_datagram_endpoint(l, proto, lh, rh, out);
      TRACE("  create_unix_datagram_endpoint(%s, %s) -> %d", lh ? lh : "NULL", rh ? rh : "NULL", rc);
      expect_refused(how, rc, "aios_create_unix_datagram_endpoint");
    } else { /* sock= */
      int fd, fexpect;
      fd = pick_dgram_fd(r, &idx, &fexpect);
      if (expect == 0) expect = fexpect;
      rc = aios_datagram_from_socket(l, proto, fd, out);
      TRACE("  datagram_from_socket(%d) -> %d", fd, rc);
      expect_refused(how, rc, "aios_datagram_from_socket");
      fd_given(idx, rc == 0, "aios_datagram_from_socket");
    }
    closure_commit(c, rc == 0);
    if (how == PK_SLOT && l && aios_loop_is_closed(l) == 0 && expect != 1 && rc != expect)
      die("a datagram endpoint's creation returned %d, not %d", rc, expect);
    if (rc != 0) break;
    /* BUG_DGRAM_PENDING_AT_CLOSE (findings/datagram-endpoint-pending-at-close):
     * a loop closed before the endpoint's future is done leaks the loop and
     * the future. Off: the future is cancelled before its loop closes. */
    cancel_before_close_later(f, BUG_DGRAM_PENDING_AT_CLOSE);
    remember_net(f);
    got_future(f, rc, D_PLAIN);
    if (b & 0x20) aios_future_cancel(f, NULL);
    if (b & 0x10) settle(l, f);
    break;
  }

  case OP_DGRAM_SEND: {
    static const size_t sizes[] = {0, 1, 5, 100, 1472, 65507, 65536, 200000, 8, 60000};
    unsigned char addr[128];
    unsigned int alen;
    int null_addr, k, times;
    size_t size;
    d = (aios_datagram_t *)pick_obj(r, T_DATAGRAM, &how);
    size = sizes[rd8(r) % 10];
    alen = pick_dgram_address(r, addr, &null_addr);
    times = (b & 3) == 3 ? 64 : (b & 3) == 2 ? 12 : 1; /* many: the buffer fills, pause_writing */
    for (k = 0; k < times; k++) {
      rc = aios_datagram_sendto(d, (b & 4) && size ? NULL : g_wbuf, size, null_addr ? NULL : addr, alen);
      expect_refused(how, rc, "aios_datagram_sendto");
      if (rc > 0) die("aios_datagram_sendto returned %d", rc);
      /* (A slot may hold another type: PK_SLOT is no datagram by itself.) */
      if (how == PK_SLOT && aios_datagram_is_closing(d) >= 0 && (b & 4) && size && rc != AIOS_EINVAL)
        die("aios_datagram_sendto of NULL data with a length returned %d", rc);
      if (rc != 0) break;
    }
    TRACE("  sendto(%zu bytes, %u-byte address%s) x%d -> %d", size, alen, null_addr ? " NULL" : "", times, rc);
    break;
  }

  case OP_DGRAM_OP: {
    static const long long limits[] = {-1, 0, 1, 100, 4096, 65536, 1LL << 62, LLONG_MAX, LLONG_MIN, -5};
    static const unsigned int lengths[] = {128, 128, 0, 1, 2, 16, 28, 110};
    unsigned char addr[128];
    unsigned int len = lengths[(b >> 4) % 8];
    long long n = 0;
    d = (aios_datagram_t *)pick_obj(r, T_DATAGRAM, &how);
    switch (b & 15) {
    case 0: n = aios_datagram_close(d); break;
    case 1: n = aios_datagram_abort(d); break;
    case 2:
      n = aios_datagram_is_closing(d);
      if (n > 1) die("aios_datagram_is_closing returned %lld", n);
      break;
    case 3: n = aios_datagram_get_write_buffer_size(d); break;
    case 4: {
      long long hi = limits[rd8(r) % 10], lo = limits[rd8(r) % 10];
      n = aios_datagram_set_write_buffer_limits(d, hi, lo);
      TRACE("  set_write_buffer_limits(%lld, %lld) -> %lld", hi, lo, n);
      if (how == PK_SLOT && d && n == 0 && hi >= 0 && lo >= 0 && lo > hi) die("write buffer limits: low %lld above high %lld taken", lo, hi);
      break;
    }
    case 5: case 6:
      n = ((b & 15) == 5 ? aios_datagram_get_sockname : aios_datagram_get_peername)(
          d, (b & 0x80) && len ? NULL : addr, (b & 8) ? NULL : &len);
      if (n == 0 && len > sizeof(struct sockaddr_storage)) die("a datagram address of %u bytes", len);
      break;
    case 7:
      n = aios_datagram_get_fd(d);
      if (n >= 0 && fcntl((int)n, F_GETFD) == -1) die("aios_datagram_get_fd gave %lld, a closed descriptor", n);
      if (n >= 0 && how == PK_SLOT && aios_datagram_is_closing(d) == 0 && aios_datagram_get_loop(d, &l) == 0) {
        /* Its descriptor is refused to watchers while it is open. */
        if (aios_loop_is_closed(l) == 0) {
          int w = aios_loop_add_reader(l, (int)n, watch_cb, NULL, NULL);
          if (w != AIOS_EINVAL) die("aios_loop_add_reader of an open endpoint's descriptor returned %d", w);
        }
        aios_loop_unref(l);
        l = NULL;
      }
      break;
    case 8:
      n = aios_datagram_get_loop(d, (b & 0x80) ? NULL : &l);
      if (n == 0) slot_put(T_LOOP, l);
      break;
    case 9:
      n = aios_datagram_ref(d);
      if (n == 0 && (how == PK_SLOT || how == PK_CTX || how == PK_STALE)) slot_put(T_DATAGRAM, d);
      else if (n == 0) die("aios_datagram_ref accepted a %s handle", how_names[how]);
      break;
    case 10: { /* drop one of ours, or an unref of what we do not hold */
      int i;
      for (i = 0; d && i < NSLOTS; i++)
        if (g_slots[i].p == d && g_slots[i].type == T_DATAGRAM) break;
      if (d && i < NSLOTS) { drop_slot(i); break; }
      if (how == PK_STALE || how == PK_CTX || holders(d)) break;
      n = aios_datagram_unref(d);
      if (n == 0 && d) die("aios_datagram_unref of a %s handle worked", how_names[how]);
      break;
    }
    default: /* wrong types: a datagram is no transport, and no transport a datagram */
      n = AIOS_EINVAL; /* nothing of d's own was called */
      if (d && how == PK_SLOT && aios_datagram_is_closing(d) >= 0) {
        if (aios_transport_ref((aios_transport_t *)d) == 0) die("aios_transport_ref accepted a datagram endpoint");
        if (aios_transport_close((aios_transport_t *)d) == 0) die("aios_transport_close accepted a datagram endpoint");
      }
      {
        int thow = PK_SLOT;
        aios_transport_t *t = (aios_transport_t *)pick_obj(r, T_TRANSPORT, &thow);
        if (t && thow == PK_SLOT && aios_transport_is_closing(t) >= 0 && aios_datagram_is_closing((aios_datagram_t *)t) >= 0)
          die("aios_datagram_is_closing accepted a transport");
      }
      break;
    }
    expect_refused(how, n, "a datagram call");
    rc = n < INT_MIN ? INT_MIN : n > INT_MAX ? INT_MAX : (int)n;
    break;
  }

  case OP_WATCH: {
    int fd;
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    fd = pick_watch_fd(r, l, &expect);
    switch (b & 7) {
    case 0: case 1: { /* add (or replace) a reader or a writer */
      int null_cb = (b & 0x60) == 0x60;
      c = capture(r, K_WATCH);
      if (c) {
        c->self = l;
        c->self_type = T_LOOP;
        if (!(b & 8)) closure_offer(c);
        if (c->has_dtor && (b & 0x80)) c->on_free = capture(r, K_DTOR);
      }
      if (null_cb) expect = AIOS_EINVAL;
      rc = watch_add(l, how, fd, (b & 7) == 0, c, null_cb, expect);
      break;
    }
    case 2: case 3: rc = watch_remove(l, how, fd, (b & 7) == 2); break;
    case 4: /* the descriptor closed under its watcher (its number may be reused next) */
      fd_close_rec(fd);
      break;
    default: /* a few iterations, for the watchers to fire */
      if (l && on_main() && !loop_running_here() && aios_loop_is_closed(l) == 0) {
        int k;
        begin_run(l, RUN_DIRECT);
        for (k = 0; k <= (b >> 4) % 3; k++) {
          aios_loop_stop(l);
          rc = aios_loop_run_forever(l);
        }
        end_run();
      }
      break;
    }
    break;
  }

  case OP_IO_EVENTS_CB:
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    if (b & 1) {
      rc = aios_loop_set_io_events_callback(l, NULL, (b & 2) ? NULL : g_closures);
    } else {
      c = capture(r, K_IOEV);
      rc = aios_loop_set_io_events_callback(l, io_events_cb, c);
    }
    expect_refused(how, rc, "aios_loop_set_io_events_callback");
    if (how == PK_SLOT && l && aios_loop_is_closed(l) == 0 && rc != 0)
      die("aios_loop_set_io_events_callback returned %d", rc);
    break;

  default:
    break;
  }
  return rc;
}

/* ------------------------------------------------------------------------ */
/* Socket operations (asyncio's sock_* methods) and sendfile: the ops        */

static const char *const sk_names[] = {"aios_sock_recv", "aios_sock_recv_into", "aios_sock_recvfrom",
                                       "aios_sock_recvfrom_into", "aios_sock_sendall", "aios_sock_sendto",
                                       "aios_sock_connect", "aios_sock_accept", "aios_sock_sendfile",
                                       "aios_transport_sendfile"};

static int sk_sends(int kind) { return kind == SK_SENDALL || kind == SK_SENDFILE || kind == SK_TSENDFILE; }
static int sk_sendfile(int kind) { return kind == SK_SENDFILE || kind == SK_TSENDFILE; }
/* Kinds whose result is an allocation or a descriptor, not a count. */
static int sk_owns_value(int kind) {
  return kind == SK_RECV || kind == SK_RECVFROM || kind == SK_RECVFROM_INTO || kind == SK_ACCEPT;
}

static unsigned char *sock_buf(const sockop_t *s) { return g_sockbufs[s - g_sock]; }
static int sidx(const sockop_t *s) { return (int)(s - g_sock); }

static sockop_t *sock_find(const void *f) {
  int i;
  for (i = g_nsock - 1; f && i >= 0; i--)
    if (g_sock[i].fp == f) return &g_sock[i];
  return NULL;
}

/* The next record, its buffer filled; g_nsock counts it once its call worked. */
static sockop_t *sock_new(void) {
  sockop_t *s;
  if (g_nsock >= NSOCK) {
    TRACE("  (skipped: %d socket operations made)", g_nsock);
    return NULL;
  }
  s = &g_sock[g_nsock];
  memset(s, 0, sizeof *s);
  s->fd = s->fdi = s->filei = s->file = -1;
  s->expect = -1;
  memset(g_sockbufs[g_nsock], SOCK_FILL, sizeof g_sockbufs[g_nsock]);
  return s;
}

/* Its call worked: a slot holds the future handed out, the record a
 * reference of its own. */
static void sock_commit(sockop_t *s, aios_future_t *f) {
  aios_loop_t *fl = NULL;
  if (aios_future_get_loop(f, &fl) == 0) {
    s->loop = fl;
    aios_loop_unref(fl);
  }
  s->fp = f;
  s->f = aios_future_ref(f) == 0 ? f : NULL;
  g_nsock++;
  got_future(f, 0, D_PLAIN);
}

static void check_alphabet(const unsigned char *p, size_t n, const char *what) {
  size_t i;
  for (i = 0; i < n; i++)
    if (!g_alpha[p[i]]) die("%s gave byte %#x at %zu of %zu, which nothing of the harness sent", what, p[i], i, n);
}

/* ---- Arguments ---- */

/* The refusals that apply to a call, one bit per status. */
enum { X_INVAL = 1, X_BADF = 2, X_NOSF = 4, X_NOTSOCK = 8 };
static unsigned code_bit(int rc) {
  switch (rc) {
  case AIOS_EINVAL: return X_INVAL;
  case -EBADF: return X_BADF;
  case AIOS_ENOSENDFILE: return X_NOSF;
  case -ENOTSOCK: return X_NOTSOCK;
  default: return 0;
  }
}

/* What a socket operation must say of a descriptor: -EBADF when it names
 * nothing, AIOS_EINVAL when it blocks. */
static unsigned fd_refusal(int fd) {
  int fl = fd < 0 ? -1 : fcntl(fd, F_GETFL);
  if (fl < 0) return X_BADF;
  return (fl & O_NONBLOCK) ? 0 : X_INVAL;
}

typedef struct sockfd_s {
  int idx;       /* its record in g_fds, or -1 */
  int clean;
  unsigned want; /* AIOS_EINVAL: an open transport's or endpoint's of the call's loop */
} sockfd_t;

static int sock_peer(int fd) {
  int idx = peer_add(fd, 0);
  if (idx >= 0) g_fds[idx].clean = 1;
  return idx;
}

static void sk_nonblock(int fd) { fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK); }

static int loopback(struct sockaddr_in *a, int port) {
  memset(a, 0, sizeof *a);
  a->sin_family = AF_INET;
  a->sin_port = htons((uint16_t)port);
  a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  return (int)sizeof *a;
}

/* Records the port a socket of the socket ops is bound to: in `ports`, and
 * where the other ops look for one (connections: g_ports; datagrams: g_dports). */
static int sock_port(int fd, int *ports, int *n, int *others, int *nothers) {
  struct sockaddr_in a;
  socklen_t len = sizeof a;
  if (getsockname(fd, (struct sockaddr *)&a, &len) != 0 || a.sin_family != AF_INET) return 0;
  ports[(*n)++ % NPORTS] = ntohs(a.sin_port);
  others[(*nothers)++ % NPORTS] = ntohs(a.sin_port);
  return ntohs(a.sin_port);
}

/* Whether the transport or endpoint in slot `sl` is open on loop `l`, and
 * its descriptor in *fd. */
static int slot_io_fd(const slot_t *sl, aios_loop_t *l, int *fd) {
  aios_loop_t *ol = NULL;
  int open = 0;
  *fd = -1;
  if (sl->type == T_TRANSPORT && (*fd = aios_transport_get_fd((aios_transport_t *)sl->p)) >= 0) {
    if (aios_transport_is_closing((aios_transport_t *)sl->p) == 0 && aios_transport_get_loop((aios_transport_t *)sl->p, &ol) == 0)
      open = ol == l;
  } else if (sl->type == T_DATAGRAM && (*fd = aios_datagram_get_fd((aios_datagram_t *)sl->p)) >= 0) {
    if (aios_datagram_is_closing((aios_datagram_t *)sl->p) == 0 && aios_datagram_get_loop((aios_datagram_t *)sl->p, &ol) == 0)
      open = ol == l;
  }
  if (ol) aios_loop_unref(ol);
  return open;
}

/* A descriptor for a socket operation: sockets of every kind the harness
 * makes for it (it keeps both ends, the far one a peer for PEER_OP),
 * blocking ones, a transport's or an endpoint's, numbers that name nothing,
 * one an earlier operation had. */
static int pick_sock_fd(reader_t *r, aios_loop_t *l, sockfd_t *s) {
  struct sockaddr_in a;
  struct sockaddr_un un;
  int p[2], fd = -1, k, n = 0, pick;
  uint8_t b = rd8(r);
  memset(s, 0, sizeof *s);
  s->idx = -1;
  switch (b & 15) {
  case 0: case 1: case 3: case 7: {
    /* Unix pairs: streams (3: blocking, refused), datagrams (7); bytes
     * waiting, or (a stream) the far end shut down */
    int type = (b & 15) == 7 ? SOCK_DGRAM : SOCK_STREAM, nb = (b & 15) != 3;
    if (!net_budget() || socketpair(AF_UNIX, type | SOCK_CLOEXEC | (nb ? SOCK_NONBLOCK : 0), 0, p) != 0) return -1;
    if (sock_peer(p[1]) >= 0) {
      if (b & 0x10) (void)send(p[1], g_wbuf, 1u + (b >> 5), MSG_NOSIGNAL);
      if (type == SOCK_STREAM && (b & 0xc0) == 0xc0) shutdown(p[1], SHUT_WR);
    }
    fd = p[0];
    break;
  }
  case 2: { /* TCP on 127.0.0.1 */
    int peer = -1;
    if (!net_budget() || (fd = tcp_pair(&peer)) < 0) return -1;
    if (sock_peer(peer) >= 0 && (b & 0x10)) (void)send(peer, g_wbuf, 1u + (b >> 5), MSG_NOSIGNAL);
    break;
  }
  case 4: /* UDP on 127.0.0.1 (endpoints may send to it), maybe a datagram to itself waiting */
    if (!net_budget()) return -1;
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    loopback(&a, 0);
    if (fd >= 0 && bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {
      close(fd);
      return -1;
    }
    if (fd >= 0 && (k = sock_port(fd, g_uports, &g_nuports, g_dports, &g_ndports)) && (b & 0x10)) {
      loopback(&a, k);
      (void)sendto(fd, g_wbuf, 1u + (b >> 5), 0, (struct sockaddr *)&a, sizeof a);
    }
    break;
  case 5: /* a TCP listener (blocking: refused); connections may come to it, maybe one waits already */
    if (!net_budget() || (fd = tcp_socket_bound(1)) < 0) return -1;
    if (!(b & 0x80)) sk_nonblock(fd);
    k = sock_port(fd, g_sports, &g_nsports, g_ports, &g_nports);
    if ((b & 0x10) && k && net_budget()) {
      int c = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
      loopback(&a, k);
      if (c >= 0 && connect(c, (struct sockaddr *)&a, sizeof a) != 0 && errno != EINPROGRESS) {}
      if (c >= 0) sock_peer(c);
    }
    break;
  case 6: /* TCP, not connected (maybe bound) */
    if (!net_budget()) return -1;
    fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    loopback(&a, 0);
    if (fd >= 0 && (b & 0x10) && bind(fd, (struct sockaddr *)&a, sizeof a) != 0) {}
    break;
  case 8: /* a Unix listener at g_path_sock, or a Unix stream socket not connected */
    if (!net_budget()) return -1;
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd >= 0 && !(b & 0x10)) {
      memset(&un, 0, sizeof un);
      un.sun_family = AF_UNIX;
      snprintf(un.sun_path, sizeof un.sun_path, "%s", g_path_sock);
      unlink(g_path_sock);
      if (bind(fd, (struct sockaddr *)&un, sizeof un) != 0 || listen(fd, 8) != 0) {}
    }
    break;
  case 9: case 10: /* one the harness holds (10: one the socket ops made) */
    for (k = 0; k < g_nfds; k++) n += g_fds[k].state == FD_HARN && ((b & 15) == 9 || g_fds[k].clean);
    if (n == 0) return -1;
    pick = (b >> 4) % n;
    for (k = 0; k < g_nfds; k++)
      if (g_fds[k].state == FD_HARN && ((b & 15) == 9 || g_fds[k].clean) && pick-- == 0) {
        s->idx = k;
        s->clean = g_fds[k].clean;
        return g_fds[k].fd;
      }
    return -1;
  case 11: /* a transport's or an endpoint's: refused while it is open, on its loop */
    for (k = 0; k < NSLOTS; k++) {
      int open = slot_io_fd(&g_slots[(k + (b >> 4)) % NSLOTS], l, &fd);
      if (fd < 0) continue;
      if (open) s->want = X_INVAL;
      return fd;
    }
    return -1;
  case 12: return -1;
  case 13: return closed_fd();
  case 14: return (b & 0x10) ? INT_MAX : 1 << 20;
  default:
    /* An earlier operation's, still the harness's; once closed (or not
     * the harness's: a transport's), a number that names nothing instead.
     * The number itself may be the library's by now (a watcher polls a
     * duplicate, made at the lowest free number; libuv's epoll and eventfd),
     * which a caller must not touch. */
    if (g_nsock == 0) return -1;
    k = (b >> 4) % g_nsock;
    if (g_sock[k].fdi >= 0 && g_fds[g_sock[k].fdi].state == FD_HARN && g_fds[g_sock[k].fdi].fd == g_sock[k].fd) {
      s->idx = g_sock[k].fdi;
      s->clean = g_fds[s->idx].clean;
      return g_sock[k].fd;
    }
    return closed_fd();
  }
  if (fd < 0) return -1;
  s->idx = fd_add(fd, 0);
  if (s->idx < 0) return -1;
  g_fds[s->idx].clean = s->clean = 1;
  return fd;
}

/* A read's most. */
static size_t pick_sock_n(reader_t *r) {
  static const size_t t[] = {0, 1, 2, 7, 64, 100, 4096, 65536, 1 << 20, (size_t)1 << 40, SIZE_MAX / 2,
                             (size_t)1 << 63, SIZE_MAX, 16, 1, 300};
  return t[rd8(r) % (sizeof t / sizeof t[0])];
}

/* An address for sendto and connect in buf (128 bytes), its length in
 * *len, or NULL; *refused: X_INVAL when the call must refuse it. */
static const void *pick_sock_addr(reader_t *r, unsigned char *buf, unsigned int *len, unsigned *refused) {
  struct sockaddr_in *in = (struct sockaddr_in *)buf;
  struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)buf;
  struct sockaddr_un *un = (struct sockaddr_un *)buf;
  uint8_t b = rd8(r);
  int k = b >> 4, n;
  const char *path;
  memset(buf, 0, 128);
  *refused = 0;
  switch (b & 15) {
  case 0: case 1: case 2: /* a listener of the socket ops', a server's (or the port that refuses) */
    n = g_nsports < NPORTS ? g_nsports : NPORTS;
    if ((b & 15) < 2 && n) {
      *len = (unsigned)loopback(in, g_sports[k % n]);
    } else {
      n = g_nports < NPORTS ? g_nports : NPORTS;
      *len = (unsigned)loopback(in, n ? g_ports[k % n] : g_refusing_port);
    }
    break;
  case 3: case 4: /* a UDP socket of the socket ops', an endpoint's */
    n = g_nuports < NPORTS ? g_nuports : NPORTS;
    if ((b & 15) == 3 && n) {
      *len = (unsigned)loopback(in, g_uports[k % n]);
    } else {
      n = g_ndports < NPORTS ? g_ndports : NPORTS;
      *len = (unsigned)loopback(in, n ? g_dports[k % n] : g_refusing_port);
    }
    break;
  case 5: *len = (unsigned)loopback(in, g_refusing_port); break;
  case 6: /* ::1 */
    n = g_ndports6 < NPORTS ? g_ndports6 : NPORTS;
    in6->sin6_family = AF_INET6;
    in6->sin6_port = htons((uint16_t)(n ? g_dports6[k % n] : g_refusing_port));
    in6->sin6_addr.s6_addr[15] = 1;
    *len = sizeof *in6;
    break;
  case 7: case 8: /* a Unix stream listener (ours, a server's), a datagram endpoint's */
    path = (b & 15) == 8 ? ((k & 3) == 3 ? g_dpath_harn : g_dpaths[k % 3])
           : k % 6 == 0 ? g_path_sock : k % 6 == 5 ? g_path_harn : g_paths[k % 4];
    un->sun_family = AF_UNIX;
    snprintf(un->sun_path, sizeof un->sun_path, "%s", path);
    *len = (unsigned)(offsetof(struct sockaddr_un, sun_path) + strlen(un->sun_path) + 1);
    break;
  case 9: *len = sizeof *in; *refused = X_INVAL; return NULL;
  case 10: /* too short for its family */
    if (k & 1) {
      in6->sin6_family = AF_INET6;
      *len = sizeof *in6 - 1;
    } else {
      *len = (unsigned)loopback(in, g_refusing_port) - 1;
    }
    *refused = X_INVAL;
    break;
  case 11: buf[0] = 0xff; buf[1] = 0xff; *len = 16; break; /* no family: taken, the call fails */
  case 12: *len = (unsigned)(k & 1); *refused = X_INVAL; break;
  case 13: in->sin_family = AF_INET; *len = (k & 1) ? UINT_MAX : 129; *refused = X_INVAL; break;
  case 14: loopback(in, g_refusing_port); *len = 128; break; /* a whole sockaddr_storage */
  default: un->sun_family = AF_UNIX; *len = 2; break; /* an unnamed Unix address */
  }
  return buf;
}

/* sendfile's file: SF_SIZE bytes of g_wbuf's (its offset moved first,
 * sometimes), an empty file, a pipe with bytes in it, /dev/null, a
 * directory, numbers that name nothing, one the harness holds. */
static int pick_sf_file(reader_t *r, int *idx) {
  uint8_t b = rd8(r);
  int fd = -1, p[2], k, n = 0, pick;
  *idx = -1;
  switch (b % 10) {
  case 0: case 1: case 2: case 3:
    fd = open(g_path_sf, O_RDONLY | O_CLOEXEC);
    if (fd >= 0 && (b & 0x10)) lseek(fd, 12345, SEEK_SET); /* the offset argument counts, not this */
    break;
  case 4: fd = open(g_path_file, O_RDONLY | O_CLOEXEC); break;
  case 5:
    if (pipe2(p, O_CLOEXEC) != 0) return -1;
    if (write(p[1], g_wbuf, 100) != 100) {}
    peer_add(p[1], 1);
    fd = p[0];
    break;
  case 6: fd = open("/dev/null", O_RDONLY | O_CLOEXEC); break;
  case 7: fd = open(g_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC); break;
  case 8: return (b & 0x10) ? -1 : closed_fd();
  default:
    for (k = 0; k < g_nfds; k++) n += g_fds[k].state == FD_HARN;
    if (n == 0) return -1;
    pick = (b >> 4) % n;
    for (k = 0; k < g_nfds; k++)
      if (g_fds[k].state == FD_HARN && pick-- == 0) {
        *idx = k;
        return g_fds[k].fd;
      }
    return -1;
  }
  *idx = fd_add(fd, 0);
  return *idx >= 0 ? fd : -1;
}

/* ---- Oracles ---- */

/* A call's status: a code its comment names; refused exactly when its
 * arguments call for it, with one of the codes that apply (`want`; `may`:
 * those that may). `state`: aios_loop_is_closed of its loop (a
 * transport's) at the call, negative for no loop of ours. */
static void sock_status(const char *what, int how, int rc, int state, unsigned want, unsigned may, int sendfile,
                        const aios_future_t *f) {
  if (rc != 0 && f != NULL) die("%s failed (%d) and handed out a future", what, rc);
  if (!(rc == 0 || rc == AIOS_EINVAL || rc == AIOS_EBADHANDLE || rc == AIOS_EWRONGTHREAD || rc == AIOS_ENOMEM ||
        rc == -EBADF || rc == AIOS_ECLOSED || (sendfile && rc == AIOS_ENOSENDFILE)))
    die("%s returned %d (%s), a code its comment does not name", what, rc, aios_err_name(rc));
  expect_refused(how, rc, what);
  if (state < 0) {
    if (rc == 0) die("%s worked without a loop (or a transport) of ours", what);
    return;
  }
  if (state == 1) {
    if (rc != AIOS_ECLOSED && !(rc == AIOS_EINVAL && ((want | may) & X_INVAL)))
      die("%s on a closed loop returned %d (%s), not AIOS_ECLOSED", what, rc, aios_err_name(rc));
    return;
  }
  if (rc == 0) {
    if (want) die("%s worked where it must be refused (refusals %#x)", what, want);
    if (f == NULL) die("%s worked and handed out no future", what);
    return;
  }
  if (!(code_bit(rc) & (want | may)))
    die("%s returned %d (%s) where its arguments call for %#x (or maybe %#x; 1 AIOS_EINVAL, 2 -EBADF, "
        "4 AIOS_ENOSENDFILE)", what, rc, aios_err_name(rc), want, may);
}

/* A read's buffer: nothing past its end is written, nor anything once the
 * harness cancelled the read. */
static void sock_check_buffer(const sockop_t *s) {
  const unsigned char *buf;
  int i;
  if (!s->has_buf) return;
  buf = sock_buf(s);
  for (i = SOCKBUF; i < SOCKBUF + SOCKGUARD; i++)
    if (buf[i] != SOCK_FILL) die("%s %d wrote past the %zu bytes it was given", sk_names[s->kind], sidx(s), s->n);
  if (s->canary)
    for (i = 0; i < SOCKBUF; i++)
      if (buf[i] != SOCK_CANARY)
        die("%s %d wrote its buffer (byte %d is %#x) after it was cancelled", sk_names[s->kind], sidx(s), i, buf[i]);
}

static void check_received_address(const aios_received_t *rv, const char *what) {
  int family;
  if (rv->address_length > sizeof rv->address) die("%s gave an address of %u bytes", what, rv->address_length);
  if (rv->address_length == 0) return;
  if (rv->address_length < 2) die("%s gave an address of %u bytes", what, rv->address_length);
  family = ((const struct sockaddr *)rv->address)->sa_family;
  if (family != AF_INET && family != AF_INET6 && family != AF_UNIX)
    die("%s gave an address of family %d", what, family);
  if ((family == AF_INET && rv->address_length != sizeof(struct sockaddr_in)) ||
      (family == AF_INET6 && rv->address_length != sizeof(struct sockaddr_in6)))
    die("%s gave an address of family %d and %u bytes", what, family, rv->address_length);
}

/* sendfile left its file's offset after the last byte sent (where it was
 * when nothing went), when the harness alone used the file. */
static void sock_file_pos(const sockop_t *s, long long sent) {
  struct stat st;
  off_t pos, want;
  int k = s->filei;
  if (!s->file_regular || k < 0 || g_fds[k].state != FD_HARN || g_fds[k].fd != s->file || g_fds[k].sf_uses != 1)
    return;
  if (fstat(s->file, &st) != 0 || st.st_dev != s->file_dev || st.st_ino != s->file_ino) return;
  pos = lseek(s->file, 0, SEEK_CUR);
  want = sent > 0 ? (off_t)(s->offset + sent) : s->pos0;
  if (pos != want)
    die("%s %d sent %lld bytes from offset %lld: its file's offset is %lld, not %lld", sk_names[s->kind], sidx(s),
        sent, s->offset, (long long)pos, (long long)want);
}

/* The value of a socket operation that worked. */
static void sock_result(sockop_t *s, void *v) {
  const char *what = sk_names[s->kind];
  switch (s->kind) {
  case SK_RECV: {
    const aios_bytes_t *by = (const aios_bytes_t *)v;
    check_bytes(by, what);
    if (by->length > s->n) die("%s of at most %zu bytes gave %zu", what, s->n, by->length);
    if (s->clean) check_alphabet(by->data, by->length, what);
    TRACE("  (%s %d: %zu bytes)", what, sidx(s), by->length);
    break;
  }
  case SK_RECVFROM: {
    const aios_received_t *rv = (const aios_received_t *)v;
    if (rv == NULL || rv->data == NULL) die("%s gave no bytes", what);
    if (rv->length > s->n) die("%s of at most %zu bytes gave %zu", what, s->n, rv->length);
    if (rv->data[rv->length] != 0) die("%s gave bytes not NUL-terminated", what);
    check_received_address(rv, what);
    if (s->clean) check_alphabet(rv->data, rv->length, what);
    TRACE("  (%s %d: %zu bytes, a %u-byte address)", what, sidx(s), rv->length, rv->address_length);
    break;
  }
  case SK_RECV_INTO: case SK_RECVFROM_INTO: {
    unsigned char *buf = s->has_buf ? sock_buf(s) : NULL;
    size_t count, i;
    if (s->kind == SK_RECVFROM_INTO) {
      const aios_received_t *rv = (const aios_received_t *)v;
      if (rv == NULL) die("%s gave no result", what);
      if (rv->data != buf) die("%s gave data at %p, not in the buffer it was given (%p)", what, (void *)rv->data, (void *)buf);
      check_received_address(rv, what);
      count = rv->length;
    } else {
      count = (size_t)(uintptr_t)v;
    }
    TRACE("  (%s %d: %zu bytes)", what, sidx(s), count);
    if (count > s->n) die("%s of at most %zu bytes gave %zu", what, s->n, count);
    if (buf == NULL) break;
    if (s->clean) check_alphabet(buf, count, what);
    for (i = count; i < SOCKBUF + SOCKGUARD; i++)
      if (buf[i] != SOCK_FILL) die("%s read %zu bytes and wrote byte %zu of its buffer", what, count, i);
    break;
  }
  case SK_SENDALL:
    if ((size_t)(uintptr_t)v != s->n) die("%s of %zu bytes gave %zu", what, s->n, (size_t)(uintptr_t)v);
    break;
  case SK_SENDTO:
    if ((size_t)(uintptr_t)v > s->n) die("%s of %zu bytes sent %zu", what, s->n, (size_t)(uintptr_t)v);
    break;
  case SK_ACCEPT: {
    intptr_t fd = (intptr_t)v;
    int fl, fdfl;
    if (fd < 0 || fd > INT_MAX) die("%s gave the descriptor %ld", what, (long)fd);
    fl = fcntl((int)fd, F_GETFL);
    fdfl = fcntl((int)fd, F_GETFD);
    if (fl < 0 || fdfl < 0) die("%s gave %d, which is closed", what, (int)fd);
    if (!(fl & O_NONBLOCK) || !(fdfl & FD_CLOEXEC)) die("%s gave %d, blocking or not close-on-exec", what, (int)fd);
    TRACE("  (%s %d: descriptor %d)", what, sidx(s), (int)fd);
    break;
  }
  case SK_SENDFILE: case SK_TSENDFILE: {
    long long sent = (long long)(intptr_t)v;
    TRACE("  (%s %d: %lld bytes)", what, sidx(s), sent);
    if (sent < 0) die("%s gave the count %lld", what, sent);
    if (s->expect >= 0 && sent != s->expect)
      die("%s of %lld bytes from %lld of a file of its own sent %lld, not %lld", what, s->count, s->offset, sent, s->expect);
    sock_file_pos(s, sent);
    break;
  }
  default: break;
  }
}

/* Takes the value out of a done future `f` (s's, or lent for a callback),
 * as `b` says: bit 0 asks for no value (for counts only: other values would
 * be lost), bit 1 for no destructor (the header's free function then, or
 * for a descriptor, the harness keeps it), bit 2 frees with the header's
 * function rather than the destructor given (for a descriptor, calls the
 * destructor, which closes it). An accepted descriptor kept is the
 * harness's (a peer for PEER_OP), closed at the end. */
static void sock_take(sockop_t *s, aios_future_t *f, uint8_t b) {
  const char *what = sk_names[s->kind];
  void *v = NULL, *again = NULL;
  aios_destructor_fn d = NULL;
  int owned = sk_owns_value(s->kind), lossy = (b & 1) && !owned, rc;
  if (f == NULL) return;
  if (!BUG_SHIELD_LENDS_TAKEN_VALUE && is_shielded(s->fp)) {
    TRACE("  (skipped: BUG_SHIELD_LENDS_TAKEN_VALUE)");
    return;
  }
  rc = aios_future_take_result(f, lossy ? NULL : &v, (b & 2) ? NULL : &d);
  TRACE("  take_result(%s %d) -> %d (%p, destructor %p)", what, sidx(s), rc, v, (void *)(uintptr_t)d);
  if (rc != 0) return;
  if (s->taken) {
    if (v != NULL || d != NULL) die("%s: a second take_result gave %p and a destructor %p", what, v, (void *)(uintptr_t)d);
    return;
  }
  s->taken = 1;
  if (aios_future_result(f, &again) != 0 || again != NULL) die("%s: its future still has a value once taken", what);
  if (lossy) return;
  if (!owned) {
    if (d != NULL) die("%s gave a count with a destructor", what);
    return;
  }
  if (!(b & 2) && d == NULL) die("%s handed out its value without a destructor", what);
  switch (s->kind) {
  case SK_RECV:
    if (v == NULL) die("%s gave no bytes", what);
    if ((b & 4) || d == NULL) aios_bytes_free(v);
    else d(v);
    break;
  case SK_RECVFROM: case SK_RECVFROM_INTO:
    if (v == NULL) die("%s gave no result", what);
    if ((b & 4) || d == NULL) aios_received_free(v);
    else d(v);
    break;
  default: { /* SK_ACCEPT */
    int fd = (int)(intptr_t)v;
    if ((b & 4) && d) {
      d(v);
      if (fcntl(fd, F_GETFD) != -1) die("the destructor of an accepted descriptor left %d open", fd);
    } else {
      sock_peer(fd);
    }
    break;
  }
  }
}

/* A done operation's error: a cancelled send says how much it sent, and
 * nothing else says anything. */
static void sock_error(sockop_t *s, int final) {
  const char *what = sk_names[s->kind];
  aios_error_t *e = NULL;
  int cancelled = aios_future_cancelled(s->f) == 1;
  long long sent;
  if (aios_future_error(s->f, &e) != 0 || e == NULL) die("%s: aios_future_error of its failed future gave no error", what);
  sent = aios_error_bytes_sent(e);
  TRACE("  (%s %d: error %d, bytes sent %lld)", what, sidx(s), aios_error_code(e), sent);
  if (cancelled && sk_sends(s->kind)) {
    long long bound = s->kind == SK_SENDALL ? (long long)s->n : s->expect;
    if (sent < 0) die("aios_error_bytes_sent of a cancelled %s returned %lld", what, sent);
    if (bound >= 0 && sent > bound) die("a cancelled %s sent %lld bytes of %lld", what, sent, bound);
    if (sk_sendfile(s->kind)) sock_file_pos(s, sent);
  } else if (sent != AIOS_EINVAL) {
    die("aios_error_bytes_sent of %s %s gave %lld, not AIOS_EINVAL", cancelled ? "a cancelled" : "a failed", what, sent);
  }
  if ((s->how & 0x20) && !final) slot_put(T_ERROR, e);
  else aios_error_unref(e);
}

/* The oracles of an operation: waiting only while its loop is open (and,
 * a transport's sendfile, while its transport is not closing); done, its
 * value's or its error's, once. `final`: every loop is closed. */
static void sock_check_rec(sockop_t *s, int final) {
  const char *what = sk_names[s->kind];
  void *v = NULL;
  int done, rc;
  sock_check_buffer(s);
  if (s->f == NULL) return;
  done = aios_future_done(s->f);
  if (done < 0) die("%s %d: its future %p, which the harness holds, is dead (%d)", what, sidx(s), s->fp, done);
  if (done == 0) {
    aios_loop_t *fl = NULL;
    int closed = 0;
    if (aios_future_get_loop(s->f, &fl) == 0) {
      closed = aios_loop_is_closed(fl) == 1;
      aios_loop_unref(fl);
    }
    /* Not inside a callback: one a close runs (a destructor of what it
     * drops) sees the loop closed before the close has failed its
     * operations. */
    if ((closed && g_depth == 0) || final) die("%s %d still waits after its loop closed", what, sidx(s));
    if (s->kind == SK_TSENDFILE && s->tr && aios_transport_is_closing(s->tr) == 1)
      die("aios_transport_sendfile %d still waits once its transport is closing", sidx(s));
    return;
  }
  if (s->checked) return;
  s->checked = 1;
  rc = aios_future_result(s->f, &v);
  TRACE("  (%s %d done: %d)", what, sidx(s), rc);
  if (rc == 0) {
    if (s->closed_under) die("%s %d worked after its descriptor %d was closed under it", what, sidx(s), s->fd);
    sock_result(s, v);
    if (s->how & 1) sock_take(s, s->f, (uint8_t)(s->how >> 1));
    return;
  }
  if (!(rc == AIOS_ECANCELLED || rc == AIOS_ECLOSED || rc == AIOS_ENOMEM ||
        (sk_sendfile(s->kind) && rc == AIOS_ENOSENDFILE) || (rc < 0 && rc > -1000)))
    die("%s %d failed with %d (%s), neither a -errno nor a code the header gives", what, sidx(s), rc, aios_err_name(rc));
  if ((aios_future_cancelled(s->f) == 1) != (rc == AIOS_ECANCELLED))
    die("%s %d: aios_future_cancelled is %d with the status %d", what, sidx(s), aios_future_cancelled(s->f), rc);
  if (rc == AIOS_ECANCELLED || (s->how & 0x10)) sock_error(s, final);
}

static int sk_reads(int kind) { return kind <= SK_RECVFROM_INTO || kind == SK_ACCEPT; }

static void sock_check_all(void) {
  int i, j, done[NSOCK];
  for (i = 0; i < g_nsock; i++) sock_check_rec(&g_sock[i], 0);
  /* First come, first served: one served while another started before it
   * waits on the same descriptor of the same loop, the same way. */
  for (i = 0; i < g_nsock; i++) done[i] = g_sock[i].f ? aios_future_done(g_sock[i].f) : -1;
  for (j = 1; j < g_nsock; j++) {
    const sockop_t *later = &g_sock[j];
    if (done[j] != 1 || later->fdi < 0 || later->kind == SK_TSENDFILE || later->closed_under ||
        aios_future_cancelled(later->f) == 1)
      continue;
    for (i = 0; i < j; i++) {
      const sockop_t *first = &g_sock[i];
      if (done[i] == 0 && first->fdi == later->fdi && first->loop == later->loop && first->loop &&
          first->kind != SK_TSENDFILE && sk_reads(first->kind) == sk_reads(later->kind) && !first->closed_under)
        die("%s %d was served while %s %d, started before it on descriptor %d, still waits", sk_names[later->kind], j,
            sk_names[first->kind], i, first->fd);
    }
  }
}

/* ---- What the harness does to operations under way ---- */

/* A pending operation on g_fds[k], closed now, must not work any more: on
 * a socket the socket ops made, which no other descriptor names (a watcher
 * knows its descriptor closed when the number names another file, and a
 * FIFO opened twice is one file). */
static void sock_fd_closing(int k) {
  int i;
  for (i = 0; i < g_nsock; i++)
    if (g_sock[i].fdi == k && g_sock[i].clean && g_sock[i].f && aios_future_done(g_sock[i].f) == 0)
      g_sock[i].closed_under = 1;
}

/* Whether a sendfile that may still run reads g_fds[k]: the harness, a
 * careful caller, keeps it open until then. */
static int sock_file_busy(int k) {
  int i;
  for (i = 0; i < g_nsock; i++)
    if (g_sock[i].filei == k && (g_sock[i].f == NULL || aios_future_done(g_sock[i].f) == 0)) return 1;
  return 0;
}

/* A future of ours cancelled now (rc 1): a read never writes its buffer
 * any more. */
static void sock_cancelled(void *f, int rc) {
  sockop_t *s = sock_find(f);
  if (s == NULL || s->f == NULL || s->f != f || rc != 1) return;
  if (aios_future_done(s->f) != 1 || aios_future_cancelled(s->f) != 1)
    die("%s %d: cancelled, and not done and cancelled", sk_names[s->kind], sidx(s));
  if (s->has_buf && !s->checked) {
    memset(sock_buf(s), SOCK_CANARY, SOCKBUF);
    s->canary = 1;
  }
  sock_check_rec(s, 0);
}

static void sock_cancel(sockop_t *s) {
  int pending = aios_future_done(s->f) == 0, rc = aios_future_cancel(s->f, NULL);
  TRACE("  cancel(%s %d) -> %d", sk_names[s->kind], sidx(s), rc);
  if (rc != (pending ? 1 : 0))
    die("aios_future_cancel of a %s %s returned %d", pending ? "waiting" : "finished", sk_names[s->kind], rc);
  sock_cancelled(s->f, rc);
}

/* Closes an operation's descriptor under it (one of the harness's). */
static void sock_close_fd(sockop_t *s) {
  int k = s->fdi;
  if (k < 0 || g_fds[k].state != FD_HARN || g_fds[k].fd != s->fd || sock_file_busy(k)) return;
  TRACE("  close(%d) under %s %d", s->fd, sk_names[s->kind], sidx(s));
  sock_fd_closing(k);
  close(s->fd);
  g_fds[k].state = FD_FREE;
}

/* Closes (or aborts) a transport under its sendfile: that fails with
 * -ENOTCONN at once. */
static void sock_close_transport(sockop_t *s, int abort_it) {
  int pending = aios_future_done(s->f) == 0, rc;
  if (s->tr == NULL) return;
  rc = abort_it ? aios_transport_abort(s->tr) : aios_transport_close(s->tr);
  TRACE("  %s(transport of aios_transport_sendfile %d) -> %d", abort_it ? "abort" : "close", sidx(s), rc);
  if (pending && aios_transport_is_closing(s->tr) == 1) {
    int st = aios_future_done(s->f) == 1 ? aios_future_result(s->f, NULL) : 1;
    if (st != -ENOTCONN)
      die("aios_transport_%s under a sendfile: the sendfile %s %d", abort_it ? "abort" : "close",
          st == 1 ? "still waits," : "ended with", st);
  }
  sock_check_rec(s, 0);
}

/* Lets go of an operation: the harness's references to its future (and
 * transport) go; it may be waiting still. Its buffer stays valid. */
static void sock_forget(sockop_t *s) {
  aios_future_t *f = s->f;
  TRACE("  (letting go of %s %d)", sk_names[s->kind], sidx(s));
  s->f = NULL;
  if (s->tr) aios_transport_unref(s->tr);
  s->tr = NULL;
  drop_all_of(f);
  aios_future_unref(f);
}

/* A few iterations of `l`, when none runs here. */
static void sock_iterate(aios_loop_t *l, int n) {
  int k;
  if (n <= 0 || !l || !on_main() || loop_running_here() || aios_loop_is_closed(l) != 0) return;
  begin_run(l, RUN_DIRECT);
  for (k = 0; k < n; k++) {
    aios_loop_stop(l);
    aios_loop_run_forever(l);
  }
  end_run();
}

/* Closes `l` with operations still waiting (with the guards of LOOP_CLOSE):
 * each fails with AIOS_ECLOSED (a transport's sendfile: -ENOTCONN, its
 * transport aborted by the close). */
static void sock_close_loop(aios_loop_t *l) {
  int i, rc, marked[NSOCK];
  if (g_depth > 0 || g_in_run || !on_main() || aios_loop_is_closed(l) != 0) return;
  if (!close_is_safe(l)) return;
  if (!BUG_SUBPROCESS_EXIT_AT_CLOSE && spawned_on(l)) drain_children(l);
  cancel_before_close(l);
  if (pending_guarded(l) > 0) {
    drain_loop(l);
    if (pending_guarded(l) > 0) return;
  }
  if (aios_loop_is_closed(l) != 0) return;
  for (i = 0; i < g_nsock; i++) {
    aios_loop_t *fl = NULL;
    marked[i] = 0;
    if (g_sock[i].f == NULL || aios_future_done(g_sock[i].f) != 0) continue;
    if (aios_future_get_loop(g_sock[i].f, &fl) == 0) {
      marked[i] = fl == l;
      aios_loop_unref(fl);
    }
  }
  rc = aios_loop_close(l);
  TRACE("  loop_close(%p) with its socket operations waiting -> %d", (void *)l, rc);
  if (rc != 0) die("aios_loop_close of a loop that does not run returned %d", rc);
  for (i = 0; i < g_nsock; i++) {
    int st;
    if (!marked[i] || g_sock[i].f == NULL) continue; /* let go of by a callback the close ran */
    if (aios_future_done(g_sock[i].f) != 1) die("%s %d still waits once its loop is closed", sk_names[g_sock[i].kind], i);
    st = aios_future_result(g_sock[i].f, NULL);
    if (st != AIOS_ECLOSED && !(g_sock[i].kind == SK_TSENDFILE && st == -ENOTCONN))
      die("%s %d, waiting when its loop closed, ended with %d (%s), not AIOS_ECLOSED", sk_names[g_sock[i].kind], i, st,
          aios_err_name(st));
  }
  sock_check_all();
}

/* A record to act on: mostly one still waiting (`pending`), of `kind` (-1: any). */
static sockop_t *sock_pick(reader_t *r, int pending, int kind) {
  int start = rd8(r), i, pass;
  for (pass = pending ? 0 : 1; pass < 2; pass++)
    for (i = 0; i < g_nsock; i++) {
      sockop_t *s = &g_sock[(start + i) % g_nsock];
      if (s->f == NULL || (kind >= 0 && s->kind != kind)) continue;
      if (pass == 0 && aios_future_done(s->f) != 0) continue;
      return s;
    }
  return NULL;
}

/* What follows a call that worked (`post`): bits 0-1: cancel it (1), close
 * its descriptor, or its transport, under it (2: bit 4 aborts); bits 2-3:
 * iterations of its loop. */
static void sock_post(sockop_t *s, aios_loop_t *l, uint8_t post) {
  int pending = s->f && aios_future_done(s->f) == 0;
  if (pending && (post & 3) == 1) sock_cancel(s);
  if (pending && (post & 3) == 2) {
    if (s->kind == SK_TSENDFILE) sock_close_transport(s, (post & 0x10) != 0);
    else sock_close_fd(s);
  }
  sock_iterate(l, (post >> 2) & 3);
  sock_check_all();
}

/* Takes a future's result for TAKE_RESULT, if it is a socket operation's:
 * 1 then. */
static int sock_take_op(void *f, uint8_t b) {
  sockop_t *s = sock_find(f);
  if (s == NULL) return 0;
  if (s->f == f) sock_check_rec(s, 0);
  sock_take(s, (aios_future_t *)f, b);
  return 1;
}

/* Once every loop is closed: nothing waits; the harness's references go. */
static void sock_teardown(void) {
  int i;
  for (i = 0; i < g_nsock; i++) sock_check_rec(&g_sock[i], 1);
  for (i = 0; i < g_nsock; i++) {
    sockop_t *s = &g_sock[i];
    if (s->f) aios_future_unref(s->f);
    if (s->tr) aios_transport_unref(s->tr);
    s->f = NULL;
    s->tr = NULL;
    sock_check_buffer(s);
  }
}

/* ---- The ops ---- */

static int exec_sock_op(reader_t *r, int op) {
  int rc = 0, how = PK_SLOT, state, fd = -1, open_before;
  aios_loop_t *l = NULL;
  aios_future_t *f = NULL;
  unsigned want = 0, may = 0;
  sockfd_t sf;
  sockop_t *s;
  uint8_t b = rd8(r), post, hb;

  switch (op) {
  case OP_SOCK_OP: {
    static const size_t into_sizes[] = {0, 1, 7, 64, SOCKBUF, SOCKBUF, 16, (size_t)1 << 63, SIZE_MAX, 100};
    static const size_t send_sizes[] = {0, 1, 7, 100, 4096, 65536, 200000, 1 << 20, (size_t)1 << 63, SIZE_MAX, 5,
                                        300, 1, 2};
    int kind = b & 7, null_out = (b & 0x38) == 0x38;
    unsigned char addr[128], *buf = NULL;
    const void *ap = NULL, *data = NULL;
    unsigned int alen = 0;
    size_t n = 0;
    uint8_t m;
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    fd = pick_sock_fd(r, l, &sf);
    s = sock_new();
    switch (kind) {
    case SK_RECV: case SK_RECVFROM:
      n = pick_sock_n(r);
      if (n >> 63) want |= X_INVAL;
      break;
    case SK_RECV_INTO: case SK_RECVFROM_INTO:
      m = rd8(r);
      n = into_sizes[m % 10];
      buf = (m & 0xc0) == 0xc0 || s == NULL ? NULL : sock_buf(s);
      if ((n >> 63) || (buf == NULL && n > 0)) want |= X_INVAL;
      break;
    case SK_SENDALL: case SK_SENDTO:
      m = rd8(r);
      n = send_sizes[m % 14];
      data = (m & 0xc0) == 0xc0 ? NULL : g_sendbuf;
      if ((n >> 63) || (data == NULL && n > 0)) want |= X_INVAL;
      break;
    default: break;
    }
    if (kind == SK_SENDTO || kind == SK_CONNECT) {
      unsigned refused;
      ap = pick_sock_addr(r, addr, &alen, &refused);
      want |= refused;
    }
    post = rd8(r);
    hb = rd8(r);
    if (s == NULL) break;
    if (null_out) want |= X_INVAL;
    want |= fd_refusal(fd) | sf.want;
    state = l ? aios_loop_is_closed(l) : -1;
    open_before = fd >= 0 && fcntl(fd, F_GETFD) != -1;
    if (data && n <= (1 << 20)) memcpy(g_sendbuf, g_wbuf, n);
    switch (kind) {
    case SK_RECV: rc = aios_sock_recv(l, fd, n, null_out ? NULL : &f); break;
    case SK_RECVFROM: rc = aios_sock_recvfrom(l, fd, n, null_out ? NULL : &f); break;
    case SK_RECV_INTO: rc = aios_sock_recv_into(l, fd, buf, n, null_out ? NULL : &f); break;
    case SK_RECVFROM_INTO: rc = aios_sock_recvfrom_into(l, fd, buf, n, null_out ? NULL : &f); break;
    case SK_SENDALL: rc = aios_sock_sendall(l, fd, data, n, null_out ? NULL : &f); break;
    case SK_SENDTO: rc = aios_sock_sendto(l, fd, data, n, ap, alen, null_out ? NULL : &f); break;
    case SK_CONNECT: rc = aios_sock_connect(l, fd, ap, alen, null_out ? NULL : &f); break;
    default: rc = aios_sock_accept(l, fd, null_out ? NULL : &f); break;
    }
    TRACE("  %s(fd %d, n %zu%s, address of %u bytes%s) -> %d%s", sk_names[kind], fd, n,
          (kind == SK_RECV_INTO || kind == SK_RECVFROM_INTO) && !buf ? ", buffer NULL" :
          (kind == SK_SENDALL || kind == SK_SENDTO) && !data ? ", data NULL" : "", alen, ap ? "" : " at NULL", rc,
          rc == 0 && aios_future_done(f) == 1 ? " (done)" : "");
    /* Returned: a send that waits works on a copy of its bytes. */
    if (data && n <= (1 << 20)) memset(g_sendbuf, SOCK_FILL, n);
    sock_status(sk_names[kind], how, rc, state, want, may, 0, f);
    if (open_before && fcntl(fd, F_GETFD) == -1) die("%s closed the descriptor %d its caller keeps", sk_names[kind], fd);
    if (rc != 0) {
      size_t i;
      for (i = 0; buf && i < SOCKBUF + SOCKGUARD; i++)
        if (buf[i] != SOCK_FILL) die("a refused %s wrote its buffer", sk_names[kind]);
      break;
    }
    s->kind = kind;
    s->fd = fd;
    s->fdi = sf.idx;
    s->clean = sf.clean;
    s->n = n;
    s->has_buf = buf != NULL;
    s->how = hb;
    sock_commit(s, f);
    sock_post(s, l, post);
    break;
  }

  case OP_SOCK_SENDFILE: {
    static const long long offsets[] = {0, 0, 0, 1, 100, SF_SIZE - 10, SF_SIZE, SF_SIZE + 100, -1, LLONG_MIN,
                                        LLONG_MAX, 1LL << 40, 12345};
    static const long long counts[] = {-1, -1, -1, 1, 10, 4096, SF_SIZE, LLONG_MAX, 0, -2, LLONG_MIN, 300000};
    static const int fallbacks[] = {AIOS_SENDFILE_FALLBACK_REFUSED, AIOS_SENDFILE_FALLBACK_ALLOWED,
                                    AIOS_SENDFILE_FALLBACK_ALWAYS, 1, 2, 0, -1, 3, INT_MAX, INT_MIN};
    int transport = b & 1, null_out = (b & 0x0e) == 0x0e, file, fidx, fallback, regular = 0, i;
    long long offset, count, expect = -1;
    aios_transport_t *tr = NULL;
    struct stat st;
    off_t pos0 = 0;
    const char *what = transport ? "aios_transport_sendfile" : "aios_sock_sendfile";
    memset(&sf, 0, sizeof sf);
    sf.idx = -1;
    if (transport) {
      tr = (aios_transport_t *)pick_obj(r, T_TRANSPORT, &how);
    } else {
      l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
      fd = pick_sock_fd(r, l, &sf);
    }
    file = pick_sf_file(r, &fidx);
    offset = offsets[rd8(r) % (sizeof offsets / sizeof offsets[0])];
    count = counts[rd8(r) % (sizeof counts / sizeof counts[0])];
    fallback = fallbacks[rd8(r) % (sizeof fallbacks / sizeof fallbacks[0])];
    post = rd8(r);
    hb = rd8(r);
    if ((s = sock_new()) == NULL) break;
    if (null_out) want |= X_INVAL;
    if (fallback < 0 || fallback > 2 || count == 0 || count < -1 || offset < 0) want |= X_INVAL;
    if (file < 0 || fstat(file, &st) != 0) {
      want |= X_BADF;
    } else {
      regular = S_ISREG(st.st_mode);
      if (!regular && fallback == AIOS_SENDFILE_FALLBACK_REFUSED) want |= X_NOSF;
      if (regular && offset >= 0) {
        long long left = (long long)st.st_size > offset ? (long long)st.st_size - offset : 0;
        expect = count == -1 || count > left ? left : count;
        pos0 = lseek(file, 0, SEEK_CUR);
        s->file_dev = st.st_dev;
        s->file_ino = st.st_ino;
      }
    }
    if (transport) {
      aios_loop_t *tl = NULL;
      state = aios_transport_get_loop(tr, &tl) == 0 && tl ? aios_loop_is_closed(tl) : -1;
      if (tl) slot_put(T_LOOP, tl); /* released as ours are */
      l = tl;
      if (state == 0) {
        if (aios_transport_is_closing(tr) == 1 || aios_transport_can_write_eof(tr) == 0) want |= X_INVAL;
        for (i = 0; i < g_nsock; i++) {
          if (g_sock[i].kind != SK_TSENDFILE || g_sock[i].fp == NULL || g_sock[i].tr != tr) continue;
          if (g_sock[i].f && aios_future_done(g_sock[i].f) == 0) want |= X_INVAL; /* one under way */
        }
        for (i = 0; i < g_nsock; i++) /* one let go of: under way, maybe */
          if (g_sock[i].kind == SK_TSENDFILE && g_sock[i].f == NULL && g_sock[i].fp != NULL) may |= X_INVAL;
      }
    } else {
      unsigned fr = fd_refusal(fd) | sf.want;
      state = l ? aios_loop_is_closed(l) : -1;
      want |= fr;
      if (!(fr & X_BADF)) {
        int type = 0;
        socklen_t tlen = sizeof type;
        if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tlen) != 0) {
          /* BUG_SENDFILE_NOT_A_SOCKET (findings/sock-sendfile-not-a-socket,
           * fixed): a descriptor that is not a socket got -ENOTSOCK, a code
           * the header does not name; it is AIOS_EINVAL, as for a socket
           * not SOCK_STREAM. Off: no such call. */
          if (!BUG_SENDFILE_NOT_A_SOCKET && !fr && state == 0) {
            TRACE("  (skipped: BUG_SENDFILE_NOT_A_SOCKET)");
            break;
          }
          want |= X_INVAL;
        } else if (type != SOCK_STREAM) {
          want |= X_INVAL;
        }
      }
    }
    if (fidx >= 0) g_fds[fidx].sf_uses++;
    open_before = fd >= 0 && fcntl(fd, F_GETFD) != -1;
    if (transport) rc = aios_transport_sendfile(tr, file, offset, count, fallback, null_out ? NULL : &f);
    else rc = aios_sock_sendfile(l, fd, file, offset, count, fallback, null_out ? NULL : &f);
    TRACE("  %s(fd %d, file %d, offset %lld, count %lld, fallback %d) -> %d%s", what, transport ? -1 : fd, file, offset,
          count, fallback, rc, rc == 0 && aios_future_done(f) == 1 ? " (done)" : "");
    sock_status(what, how, rc, state, want, may, 1, f);
    if (open_before && fcntl(fd, F_GETFD) == -1) die("%s closed the descriptor %d its caller keeps", what, fd);
    if (file >= 0 && fidx >= 0 && fcntl(file, F_GETFD) == -1) die("%s closed its file %d", what, file);
    if (rc != 0) break;
    s->kind = transport ? SK_TSENDFILE : SK_SENDFILE;
    s->fd = transport ? -1 : fd;
    s->fdi = transport ? -1 : sf.idx;
    s->filei = fidx;
    s->file = file;
    s->file_regular = regular;
    s->offset = offset;
    s->count = count;
    s->expect = expect;
    s->pos0 = pos0;
    s->how = hb;
    if (transport && aios_transport_ref(tr) == 0) s->tr = tr;
    sock_commit(s, f);
    if (transport && aios_future_done(f) == 0) {
      /* Under way: the transport refuses writes and another sendfile, and
       * does not read. */
      aios_future_t *second = NULL;
      aios_buf_t piece = {g_wbuf, 1};
      int w = aios_transport_write(tr, g_wbuf, 1);
      if (w != AIOS_EINVAL) die("aios_transport_write during aios_transport_sendfile returned %d, not AIOS_EINVAL", w);
      w = aios_transport_writev(tr, &piece, 1);
      if (w != AIOS_EINVAL) die("aios_transport_writev during aios_transport_sendfile returned %d, not AIOS_EINVAL", w);
      w = aios_transport_write_nocopy(tr, g_wbuf, 1, NULL, NULL);
      if (w != AIOS_EINVAL)
        die("aios_transport_write_nocopy during aios_transport_sendfile returned %d, not AIOS_EINVAL", w);
      w = aios_transport_sendfile(tr, file, 0, -1, AIOS_SENDFILE_FALLBACK_ALLOWED, &second);
      if (w != AIOS_EINVAL || second) die("aios_transport_sendfile while one is under way returned %d", w);
      if (g_depth == 0 && aios_transport_is_reading(tr) != 0) die("a transport reads while its sendfile is under way");
    }
    sock_post(s, l, post);
    break;
  }

  case OP_SOCK_CTL: {
    uint8_t tb;
    switch (b & 7) {
    case 0: /* iterations of a loop */
      l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
      sock_iterate(l, 1 + ((b >> 4) & 3));
      break;
    case 1: if ((s = sock_pick(r, 1, -1)) != NULL) sock_cancel(s); break;
    case 2: if ((s = sock_pick(r, 1, -1)) != NULL) sock_close_fd(s); break;
    case 3: if ((s = sock_pick(r, (b & 0x10) != 0, -1)) != NULL) sock_forget(s); break;
    case 4: /* its loop closed with it waiting */
      if ((s = sock_pick(r, 1, -1)) != NULL && aios_future_get_loop(s->f, &l) == 0) {
        slot_put(T_LOOP, l); /* released as ours are */
        sock_close_loop(l);
      }
      break;
    case 5:
      s = sock_pick(r, 0, -1);
      tb = rd8(r);
      if (s) {
        sock_check_rec(s, 0);
        sock_take(s, s->f, tb);
      }
      break;
    case 6: { /* any error: a count only for a CANCELLED one */
      aios_error_t *e = (aios_error_t *)pick_obj(r, T_ERROR, &how);
      long long sent = aios_error_bytes_sent(e);
      TRACE("  aios_error_bytes_sent(%p) -> %lld", (void *)e, sent);
      expect_refused(how, sent, "aios_error_bytes_sent");
      if (sent >= 0 && aios_error_code(e) != AIOS_ECANCELLED)
        die("aios_error_bytes_sent gave %lld for an error of code %d", sent, aios_error_code(e));
      if (sent < 0 && sent != AIOS_EINVAL && sent != AIOS_EBADHANDLE) die("aios_error_bytes_sent returned %lld", sent);
      if (e == NULL && sent != AIOS_EINVAL) die("aios_error_bytes_sent(NULL) returned %lld", sent);
      aios_received_free(NULL);
      rc = sent < 0 ? (int)sent : 0;
      break;
    }
    default: /* a transport closed under its sendfile */
      if ((s = sock_pick(r, 1, SK_TSENDFILE)) != NULL) sock_close_transport(s, (b & 0x10) != 0);
      break;
    }
    sock_check_all();
    break;
  }

  default:
    break;
  }
  return rc;
}

static int exec_op(reader_t *r) {
  size_t at = r->pos;
  uint8_t op_byte = r->pos < r->n ? r->p[r->pos] : 0;
  int op = rd8(r) % OP_COUNT, rc = 0, how = PK_SLOT;
  aios_loop_t *l = NULL;
  aios_future_t *f = NULL, *out = NULL;
  aios_task_t *t = NULL;
  aios_error_t *e = NULL;
  aios_handle_t *h = NULL;
  closure_t *c = NULL;
  value_t *v = NULL;
  void *val = NULL;
  aios_destructor_fn dtor = NULL;
  options_buf_t ob;
  double d = 0;
  uint8_t b;

  /* The byte's offset in the input, and its value: what a rewrite of an
   * input for a new op count needs (see the README). */
  TRACE("%s @%td=%u", op_names[op], (const uint8_t *)r->p + at - g_input, op_byte);
  switch (op) {
  case OP_LOOP_NEW:
    b = rd8(r);
    rc = aios_loop_new(b == 0xff ? NULL : &l);
    if (rc == 0 && l) made_by(l, FK_LOOP_NEW); /* closed only by us (see pending_net) */
    if (rc == 0 && l) {
      /* Quiet mostly: the default handler prints to stderr. */
      if ((b & 7) != 7) aios_loop_set_exception_handler(l, exc_handler, NULL);
      slot_put(T_LOOP, l);
    }
    break;

  case OP_REF: { /* a new reference to anything, even what we must not have */
    int type = 1 + rd8(r) % (T_COUNT_BEFORE_DATAGRAM - 1);
    void *p = pick_obj(r, type, &how);
    rc = obj_ref(type, p);
    expect_refused(how, rc, "a ref function");
    if (rc == 0) {
      int held = type;
      if (how == PK_SLOT || how == PK_CTX || how == PK_STALE) {
        /* Wrong-type refs that work (a task through aios_future_ref) are
         * kept under the type that took them. */
        slot_put(held, p);
      }
    }
    break;
  }

  case OP_UNREF:
    drop_slot(pick_slot_index(r));
    break;

  case OP_UNREF_WRONG: { /* unref with the wrong function, NULL, forged */
    int type = 1 + rd8(r) % (T_COUNT_BEFORE_DATAGRAM - 1), i;
    slot_t held = {T_NONE, NULL};
    void *p = pick_obj(r, type, &how);
    if (how == PK_STALE || how == PK_CTX) break; /* not ours to drop */
    for (i = 0; i < NSLOTS; i++)
      if (g_slots[i].p == p && g_slots[i].type == type) break;
    if (p && i < NSLOTS) { drop_slot(i); break; } /* a right one: a plain unref */
    /* The reference it may take is one of a slot's: out of the slots while
     * the call runs (destructors it runs may drop slots). */
    for (i = 0; p && i < NSLOTS + g_nkeep; i++) {
      slot_t *sl = i < NSLOTS ? &g_slots[i] : &g_keep[i - NSLOTS];
      if (sl->p == p) {
        held = *sl;
        sl->p = NULL;
        sl->type = T_NONE;
        break;
      }
    }
    if (type == T_LOOP && p && holders(p) == 0 && held.p) cancel_before_close((aios_loop_t *)p); /* maybe its last */
    rc = obj_unref(type, p);
    expect_refused(how, rc, "an unref function");
    if (rc == 0 && p && held.p == NULL) die("an unref of something we do not hold worked");
    if (rc != 0 && held.p) slot_put(held.type, held.p); /* refused: still ours */
    if (rc == 0 && p && holders(p) == 0) stale_push(type, p);
    break;
  }

  case OP_RUN_UNTIL_COMPLETE:
  case OP_RUN_FOREVER:
    exec_run_op(r, op);
    if (g_depth == 0) harvest(); /* connections, servers, lookups done meanwhile */
    break;

  case OP_LOOP_STOP:
    rc = aios_loop_stop((aios_loop_t *)pick_obj(r, T_LOOP, &how));
    expect_refused(how, rc, "aios_loop_stop");
    break;

  case OP_LOOP_CLOSE:
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    if (how == PK_SLOT && l && !close_is_safe(l)) break;
    /* BUG_SUBPROCESS_EXIT_AT_CLOSE: a loop with children runs on first (see
     * drain_children), or stays open. */
    if (!BUG_SUBPROCESS_EXIT_AT_CLOSE && spawned_on(l) && aios_loop_is_closed(l) == 0) {
      if (g_depth > 0 || g_in_run) break;
      drain_children(l);
    }
    cancel_before_close(l);
    /* BUG_ACCEPTED_PENDING_AT_CLOSE: run it until that call is through
     * first, or leave it open. */
    if (l && pending_guarded(l) > 0) {
      if (g_depth > 0 || g_in_run) break;
      drain_loop(l);
      if (pending_guarded(l) > 0) break;
    }
    b = aios_loop_is_running(l) == 1;
    rc = aios_loop_close(l);
    expect_refused(how, rc, "aios_loop_close");
    if (rc == 0 && b) die("aios_loop_close closed a running loop");
    break;

  case OP_LOOP_QUERY:
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    b = rd8(r);
    switch (b % 5) {
    case 0: rc = aios_loop_is_running(l); break;
    case 1: rc = aios_loop_is_closed(l); break;
    case 2: rc = aios_loop_time(l, (b & 8) ? NULL : &d); break;
    case 3: rc = aios_loop_get_debug(l); break;
    default: {
      aios_loop_t *lr = NULL;
      rc = aios_get_running_loop(&lr);
      if (rc == 0) slot_put(T_LOOP, lr);
      else if (rc != AIOS_ENOLOOP) die("aios_get_running_loop returned %d", rc);
      break;
    }
    }
    if (b % 5 != 4) expect_refused(how, rc, "a loop query");
    break;

  case OP_CALL_SOON:
  case OP_CALL_SOON_TS:
  case OP_CALL_LATER:
  case OP_CALL_AT: {
    aios_handle_t **hp;
    b = rd8(r);
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    c = capture(r, K_CALLBACK);
    if (c && (b & 4)) { c->self = l; c->self_type = T_LOOP; }
    hp = (b & 1) ? &h : NULL;
    if (op == OP_CALL_SOON_TS && !BUG_THREADSAFE_OUT_HANDLE) hp = NULL;
    dtor = (c && (b & 8) && closure_offer(c)) ? closure_dtor : NULL;
    if (dtor && (b & 16)) c->on_free = capture(r, K_DTOR);
    if (op == OP_CALL_SOON) rc = aios_loop_call_soon(l, (b & 2) ? cb_sched : NULL, c, dtor, hp);
    else if (op == OP_CALL_SOON_TS) rc = aios_loop_call_soon_threadsafe(l, (b & 2) ? cb_sched : NULL, c, dtor, hp);
    else if (op == OP_CALL_LATER) rc = aios_loop_call_later(l, pick_delay(r, 0), (b & 2) ? cb_sched : NULL, c, dtor, hp);
    else rc = aios_loop_call_at(l, pick_when(r, l), (b & 2) ? cb_sched : NULL, c, dtor, hp);
    if (dtor) closure_commit(c, rc == 0);
    expect_refused(how, rc, "a call_soon function");
    if (rc == 0 && h) slot_put(T_HANDLE, h);
    if (rc != 0 && h) die("a failed call_soon handed out a handle");
    break;
  }

  case OP_GET_RUNNING_LOOP:
    rc = aios_get_running_loop(rd8(r) == 0xff ? NULL : &l);
    if (rc == 0) slot_put(T_LOOP, l);
    break;

  case OP_SET_HANDLER:
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    b = rd8(r);
    /* The default handler (NULL) prints: rarely. */
    if ((b & 15) == 0) rc = aios_loop_set_exception_handler(l, NULL, NULL);
    else rc = aios_loop_set_exception_handler(l, exc_handler, (b & 1) ? capture(r, K_HANDLER) : NULL);
    expect_refused(how, rc, "aios_loop_set_exception_handler");
    break;

  case OP_CALL_HANDLER:
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    rc = aios_loop_call_exception_handler(l, pick_str(r), (aios_error_t *)pick_obj(r, T_ERROR, NULL));
    expect_refused(how, rc, "aios_loop_call_exception_handler");
    break;

  case OP_LOOP_DEBUG:
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    if (rd8(r) & 1) rc = aios_loop_set_debug(l, pick_int(r));
    else rc = aios_loop_set_slow_callback_duration(l, pick_double(r));
    expect_refused(how, rc, "a loop debug setting");
    break;

  case OP_HANDLE_OP:
    h = (aios_handle_t *)pick_obj(r, T_HANDLE, &how);
    b = rd8(r);
    if (b % 3 == 0) rc = aios_handle_cancel(h);
    else if (b % 3 == 1) rc = aios_handle_cancelled(h);
    else rc = aios_handle_when(h, (b & 8) ? NULL : &d);
    expect_refused(how, rc, "a handle call");
    break;

  case OP_FUTURE_NEW:
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    rc = aios_future_new(l, (rd8(r) == 0xff) ? NULL : &f);
    expect_refused(how, rc, "aios_future_new");
    got_future(f, rc, D_PLAIN);
    break;

  case OP_SET_RESULT:
    f = (aios_future_t *)pick_obj(r, T_FUTURE, &how);
    v = pick_value(r, &val, &dtor);
    if (set_outcome_is_guarded(f)) { value_commit(v, 0); break; }
    future_meddled(f);
    rc = aios_future_set_result(f, val, dtor);
    value_commit(v, rc == 0);
    expect_refused(how, rc, "aios_future_set_result");
    break;

  case OP_SET_ERROR:
    f = (aios_future_t *)pick_obj(r, T_FUTURE, &how);
    e = (aios_error_t *)pick_obj(r, T_ERROR, NULL);
    if (set_outcome_is_guarded(f)) break;
    future_meddled(f);
    rc = aios_future_set_error(f, e);
    expect_refused(how, rc, "aios_future_set_error");
    break;

  case OP_FUTURE_CANCEL: {
    const char *msg;
    f = (aios_future_t *)pick_obj(r, T_FUTURE, &how);
    msg = pick_str(r);
    if (wait_cancel_is_guarded(f)) break;
    future_meddled(f);
    rc = aios_future_cancel(f, msg);
    expect_refused(how, rc, "aios_future_cancel");
    if (how != PK_FORGED) sock_cancelled(f, rc);
    break;
  }

  case OP_FUTURE_QUERY:
    f = (aios_future_t *)pick_obj(r, T_FUTURE, &how);
    b = rd8(r);
    switch (b % 5) {
    case 0: {
      /* A future that is a task gives the same pointer back as a task. */
      aios_task_t *as_task = aios_future_as_task(f);
      if (as_task && (const void *)as_task != (const void *)f) die("aios_future_as_task gave another pointer");
      if (as_task && how == PK_FORGED) die("aios_future_as_task accepted a forged handle");
      if (as_task && aios_task_as_future(as_task) != f) die("aios_future_as_task is not aios_task_as_future's inverse");
      rc = aios_future_done(f);
      break;
    }
    case 1: rc = aios_future_cancelled(f); break;
    case 2:
      rc = aios_future_result(f, (b & 8) ? NULL : &val);
      if (rc == 0) check_lent(val, "aios_future_result");
      break;
    case 3:
      rc = aios_future_error(f, (b & 8) ? NULL : &e);
      if (rc == 0 && e) {
        check_string(aios_error_message(e));
        slot_put(T_ERROR, e);
      }
      break;
    default:
      rc = aios_future_get_loop(f, (b & 8) ? NULL : &l);
      if (rc == 0) slot_put(T_LOOP, l);
      break;
    }
    expect_refused(how, rc, "a future query");
    break;

  case OP_TAKE_RESULT:
    f = (aios_future_t *)pick_obj(r, T_FUTURE, &how);
    b = rd8(r);
    /* BUG_SHIELD_LENDS_TAKEN_VALUE (findings/shield-lends-taken-value): a
     * shield lends the value of the future it follows "while the shield is
     * held", but taking that future's value (and freeing it) leaves the
     * shield lending freed memory. Off: not out of a future a shield follows. */
    if (!BUG_SHIELD_LENDS_TAKEN_VALUE && is_shielded(f)) {
      TRACE("  (skipped: BUG_SHIELD_LENDS_TAKEN_VALUE)");
      break;
    }
    /* A socket operation's: its value's oracles, then taken as its kind
     * is (an accepted descriptor is the harness's to close). */
    if (how != PK_FORGED && sock_take_op(f, b)) break;
    {
      void *peek = NULL;
      value_t *pv;
      int got = aios_future_result(f, &peek) == 0;
      /* Ignoring the value loses it: only when it is not one we track. */
      if ((b & 1) && got && (((pv = as_value(peek)) && pv->has_dtor) || as_work_result(peek))) b &= ~1;
      /* One of the library's (bytes, an address list, an object): taken
       * with its destructor, as a caller that knows no better does. */
      if (got && peek && !as_value(peek) && !as_work_result(peek) && (uintptr_t)peek > 4096) b &= ~3;
      /* A shield lends the value it follows, unless it was given one of its
       * own (set_result): only its destructor tells. */
      if (made_kind(f) == FK_SHIELD) b &= ~2;
    }
    if (how == PK_SLOT) note_future(f);
    rc = aios_future_take_result(f, (b & 1) ? NULL : &val, (b & 2) ? NULL : &dtor);
    expect_refused(how, rc, "aios_future_take_result");
    if (rc == 0 && !(b & 1)) {
      if ((b & 2) && made_kind(f) == FK_SHIELD) {
        /* Destructor not asked for, and known: none, a shield lends its value. */
      } else if (b & 2) {
        /* Destructor not asked for: a caller that knows it frees the value. */
        value_t *tv = as_value(val);
        if (tv && tv->has_dtor && (ATOMIC_LOAD(&tv->state) == O_LIB || ATOMIC_LOAD(&tv->state) == O_PENDING))
          take_over(val, value_dtor, "aios_future_take_result");
        else if (as_work_result(val)) work_result_dtor(val);
      } else {
        take_over(val, dtor, "aios_future_take_result");
      }
    }
    break;

  case OP_ADD_DONE:
    f = (aios_future_t *)pick_obj(r, T_FUTURE, &how);
    b = rd8(r);
    c = capture(r, K_DONE);
    if (c) { c->self = f; c->self_type = T_FUTURE; }
    dtor = (c && (b & 8) && closure_offer(c)) ? closure_dtor : NULL;
    if (dtor && (b & 16)) c->on_free = capture(r, K_DTOR);
    rc = aios_future_add_done_callback(f, (b & 3) == 0 ? NULL : (b & 3) == 1 ? cb_done_other : cb_done, c, dtor);
    if (dtor) closure_commit(c, rc == 0);
    expect_refused(how, rc, "aios_future_add_done_callback");
    break;

  case OP_REMOVE_DONE:
    f = (aios_future_t *)pick_obj(r, T_FUTURE, &how);
    b = rd8(r);
    c = g_nclosures ? &g_closures[rd8(r) % g_nclosures] : NULL;
    rc = aios_future_remove_done_callback(f, (b & 1) ? cb_done_other : cb_done, (b & 2) ? NULL : c);
    expect_refused(how, rc, "aios_future_remove_done_callback");
    break;

  case OP_SLEEP:
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    d = pick_delay(r, 1);
    v = pick_value(r, &val, &dtor);
    rc = aios_sleep(l, d, val, dtor, (rd8(r) == 0xff) ? NULL : &f);
    value_commit(v, rc == 0);
    if (rc == 0) made_by(f, FK_SLEEP);
    expect_refused(how, rc, "aios_sleep");
    got_future(f, rc, D_PLAIN);
    break;

  case OP_TASK_NEW: {
    aios_task_options_t *opts;
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    c = capture(r, K_STEP);
    if (c && (rd8(r) & 1)) c->on_free = capture(r, K_DTOR);
    opts = pick_options(r, &ob, c, &v);
    b = rd8(r);
    /* aios_task_create skips the loop's task factory. */
    if (b & 8) rc = aios_task_create(l, (b & 7) == 7 ? NULL : step_fn, c, opts, (b & 7) == 6 ? NULL : &t);
    else rc = aios_task_new(l, (b & 7) == 7 ? NULL : step_fn, c, opts, (b & 7) == 6 ? NULL : &t);
    closure_commit(c, rc == 0);
    value_commit(v, rc == 0);
    expect_refused(how, rc, "aios_task_new");
    if (rc == 0 && t) {
      if (c) {
        if (c->dep < 0) { c->dep = dep_add(t, D_TASK); if (c->dep >= 0) g_deps[c->dep].task = c; }
        else g_deps[c->dep].value = t;
      }
      slot_put(T_TASK, t);
    }
    break;
  }

  case OP_AWAIT: {
    closure_t *tc;
    t = (aios_task_t *)pick_obj(r, T_TASK, NULL);
    f = (aios_future_t *)pick_obj(r, T_FUTURE, &how);
    tc = task_closure(t);
    if (!await_is_safe(tc, f)) f = NULL; /* BUG_AWAIT_CYCLES */
    if (rd8(r) & 1) {
      /* Hands over a reference of its own, even when it fails. */
      if (how != PK_FORGED && f && aios_future_ref(f) != 0) f = NULL;
      rc = aios_task_await_owned(t, f);
    } else {
      rc = aios_task_await(t, f);
    }
    TRACE(" await(%p, %p) -> %d", (void *)t, (void *)f, rc);
    if (rc == AIOS_STEP_AWAIT && tc && t == cur()->task) tc->awaiting = f;
    count_rc(op, rc);
    return rc;
  }

  case OP_RETURN:
    t = (aios_task_t *)pick_obj(r, T_TASK, NULL);
    v = pick_value(r, &val, &dtor);
    rc = aios_task_return(t, val, dtor);
    value_commit(v, rc == AIOS_STEP_DONE);
    count_rc(op, rc);
    return rc;

  case OP_FAIL:
    t = (aios_task_t *)pick_obj(r, T_TASK, NULL);
    b = rd8(r);
    if (b & 1) {
      rc = aios_task_fail(t, (aios_error_t *)pick_obj(r, T_ERROR, NULL));
    } else { /* a fresh error, cancelled ones included */
      if (aios_error_new(pick_code(r), pick_str(r), &e) != 0) e = NULL;
      rc = aios_task_fail(t, e);
      aios_error_unref(e);
    }
    count_rc(op, rc);
    return rc;

  case OP_STEP_RAW: { /* a step returning what it should not */
    static const int raw[] = {0, AIOS_STEP_AWAIT, AIOS_STEP_DONE, 3, -1, INT_MIN + 1, INT_MAX,
                              AIOS_ECANCELLED, AIOS_EUSER, -EPIPE, AIOS_ESTEP, AIOS_EGROUP};
    return raw[rd8(r) % (sizeof raw / sizeof raw[0])];
  }

  case OP_TASK_CANCEL:
    t = (aios_task_t *)pick_obj(r, T_TASK, &how);
    rc = aios_task_cancel(t, pick_str(r));
    expect_refused(how, rc, "aios_task_cancel");
    break;

  case OP_TASK_QUERY: {
    const char *name;
    t = (aios_task_t *)pick_obj(r, T_TASK, &how);
    b = rd8(r);
    switch (b % 6) {
    case 5:
      val = aios_task_get_context(t);
      check_lent(val, "aios_task_get_context");
      if (val && how == PK_FORGED) die("aios_task_get_context of a forged task");
      rc = val ? 0 : -1;
      break;
    case 0: rc = aios_task_cancelling(t); break;
    case 1: rc = aios_task_uncancel(t); break;
    case 4:
      l = aios_task_get_loop(t); /* borrowed */
      if (l && aios_loop_is_closed(l) < 0) die("aios_task_get_loop gave a dead loop %p", (void *)l);
      if (l && how == PK_FORGED) die("aios_task_get_loop of a forged task");
      rc = l ? 0 : -1;
      break;
    case 2:
      name = aios_task_get_name(t);
      check_string(name);
      if (how == PK_FORGED && name) die("aios_task_get_name named a forged task");
      rc = name ? 0 : -1;
      break;
    default:
      rc = aios_task_set_name(t, pick_str(r));
      check_string(aios_task_get_name(t));
      break;
    }
    if (b % 6 == 0 || b % 6 == 1 || b % 6 == 3) expect_refused(how, rc, "a task query");
    break;
  }

  case OP_CURRENT_TASK:
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    rc = aios_current_task(l, (rd8(r) == 0xff) ? NULL : &t);
    expect_refused(how, rc, "aios_current_task");
    if (rc == 0 && t) slot_put(T_TASK, t);
    break;

  case OP_ALL_TASKS: {
    size_t cap = pick_size(r), n, i;
    aios_task_t **copy;
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    if (!BUG_ALL_TASKS_CAPACITY && cap >= ((size_t)1 << 63)) cap = ((size_t)1 << 62);
    b = rd8(r);
    rc = aios_all_tasks(l, (b & 1) ? NULL : g_taskbuf, cap);
    expect_refused(how, rc, "aios_all_tasks");
    if (rc <= 0 || (b & 1)) break;
    if (rc > TASKBUF) die("harness limit: %d tasks", rc);
    n = (size_t)rc < cap ? (size_t)rc : cap;
    copy = (aios_task_t **)malloc(sizeof *copy * (n ? n : 1));
    memcpy(copy, g_taskbuf, sizeof *copy * n);
    for (i = 0; i < n; i++) {
      if (copy[i] == NULL) die("aios_all_tasks filled a NULL entry");
      if (i < 2) slot_put(T_TASK, copy[i]);
      else aios_task_unref(copy[i]);
    }
    free(copy);
    break;
  }

  case OP_ERROR_NEW:
    rc = aios_error_new(pick_code(r), pick_str(r), (rd8(r) == 0xff) ? NULL : &e);
    if (rc == 0) slot_put(T_ERROR, e);
    break;

  case OP_ERROR_NEW_USER:
    v = pick_value(r, &val, &dtor);
    rc = aios_error_new_user(pick_str(r), val, dtor, (rd8(r) == 0xff) ? NULL : &e);
    value_commit(v, rc == 0);
    if (rc == 0) slot_put(T_ERROR, e);
    break;

  case OP_ERROR_QUERY: {
    aios_error_t *child = NULL;
    const char *msg;
    e = (aios_error_t *)pick_obj(r, T_ERROR, &how);
    b = rd8(r);
    switch (b % 7) {
    case 0: rc = aios_error_code(e); if (how == PK_FORGED && rc != AIOS_EBADHANDLE) die("aios_error_code of a forged error: %d", rc); rc = -1; break;
    case 1: rc = aios_error_kind(e); break;
    case 2: rc = aios_error_os_errno(e); break;
    case 3:
      msg = aios_error_message(e);
      check_string(msg);
      if (how == PK_FORGED && msg) die("aios_error_message of a forged error");
      rc = -1;
      break;
    case 4:
      val = aios_error_user_data(e);
      check_lent(val, "aios_error_user_data");
      if (how == PK_FORGED && val) die("aios_error_user_data of a forged error");
      rc = -1;
      break;
    case 5: rc = aios_error_group_size(e); break;
    default: {
      size_t idx = (b & 8) ? pick_size(r) : (size_t)(rd8(r) % 4);
      rc = aios_error_group_get(e, idx, (b & 16) ? NULL : &child);
      if (rc == 0 && child) slot_put(T_ERROR, child);
      break;
    }
    }
    expect_refused(how, rc, "an error query");
    break;
  }

  case OP_INFO: {
    int code = pick_code(r);
    check_string(aios_strerror(code));
    check_string(aios_err_name(code));
    check_string(aios_version_string());
    if (aios_version() != AIOS_VERSION_HEX) die("aios_version %u is not the header's", aios_version());
    {
      static const int types[] = {0, 1, 2, 3, 4, 5, 6, 7, -1, 8, INT_MAX, INT_MIN};
      int type = types[rd8(r) % (sizeof types / sizeof types[0])];
      long n = aios_live_objects((aios_object_type_t)type);
      if ((type < 0 || type >= N_OBJECT_TYPES) && n != AIOS_EINVAL) die("aios_live_objects(%d) = %ld", type, n);
      if (type >= 0 && type < N_OBJECT_TYPES && n < 0) die("aios_live_objects(%d) = %ld", type, n);
    }
    break;
  }

  case OP_TIMEOUT_NEW: {
    aios_timeout_t *to = NULL;
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    b = rd8(r);
    if (b & 1) rc = aios_timeout(l, pick_delay(r, 0), (b & 0x80) ? NULL : &to);
    else rc = aios_timeout_at(l, pick_when(r, l), (b & 0x80) ? NULL : &to);
    expect_refused(how, rc, "aios_timeout_at");
    if (rc == 0) slot_put(T_TIMEOUT, to);
    break;
  }

  case OP_TIMEOUT_ENTER: {
    aios_timeout_t *to = (aios_timeout_t *)pick_obj(r, T_TIMEOUT, &how);
    rc = aios_timeout_enter(to, (aios_task_t *)pick_obj(r, T_TASK, NULL));
    expect_refused(how, rc, "aios_timeout_enter");
    break;
  }

  case OP_TIMEOUT_EXIT: {
    aios_timeout_t *to = (aios_timeout_t *)pick_obj(r, T_TIMEOUT, &how);
    rc = aios_timeout_exit(to, pick_status(r));
    expect_refused(how, rc == AIOS_EBADHANDLE ? -1 : 0, "aios_timeout_exit");
    break;
  }

  case OP_TIMEOUT_QUERY: {
    aios_timeout_t *to = (aios_timeout_t *)pick_obj(r, T_TIMEOUT, &how);
    b = rd8(r);
    if (b % 3 == 0) {
      aios_loop_t *tl = (aios_loop_t *)pick_obj(r, T_LOOP, NULL);
      rc = aios_timeout_reschedule(to, pick_when(r, tl));
    } else if (b % 3 == 1) {
      rc = aios_timeout_when(to, (b & 8) ? NULL : &d);
    } else {
      rc = aios_timeout_expired(to);
    }
    expect_refused(how, rc, "a timeout call");
    break;
  }

  case OP_GATHER:
  case OP_WAIT:
  case OP_AS_COMPLETED_NEW: {
    aios_future_t *arr[MAX_ARRAY];
    int null_array, n;
    size_t count;
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    n = pick_futures(r, arr, &null_array);
    b = rd8(r);
    count = (size_t)n;
    if (null_array && (b & 0x40)) count = (b & 0x80) ? SIZE_MAX : 1; /* NULL array, count > 0 */
    if (op == OP_GATHER) {
      rc = aios_gather(l, null_array ? NULL : arr, count, pick_int(r), (b & 1) ? NULL : &out);
      if (rc == 0 && out) { dep_derived(out, (void *const *)arr, (size_t)n); slot_put(T_FUTURE, out); }
    } else if (op == OP_WAIT) {
      static const int when[] = {AIOS_FIRST_COMPLETED, AIOS_FIRST_EXCEPTION, AIOS_ALL_COMPLETED, 0, 4, -1};
      d = pick_delay(r, 0);
      rc = aios_wait(l, null_array ? NULL : arr, count, d, (aios_return_when_t)when[rd8(r) % 6], (b & 1) ? NULL : &out);
      if (rc == 0 && out) { dep_derived(out, (void *const *)arr, (size_t)n); remember_wait(out); slot_put(T_FUTURE, out); }
    } else {
      aios_as_completed_t *it = NULL;
      d = pick_delay(r, 0);
      rc = aios_as_completed_new(l, null_array ? NULL : arr, count, d, (b & 1) ? NULL : &it);
      if (rc == 0 && it) { dep_derived(it, (void *const *)arr, (size_t)n); slot_put(T_ASCOMP, it); }
    }
    expect_refused(how, rc, "a combinator");
    break;
  }

  case OP_AS_COMPLETED_NEXT: {
    aios_as_completed_t *it = (aios_as_completed_t *)pick_obj(r, T_ASCOMP, &how);
    rc = aios_as_completed_next(it, (rd8(r) == 0xff) ? NULL : &out);
    expect_refused(how, rc, "aios_as_completed_next");
    if (rc == 0 && out) {
      /* It depends on the iterator's futures. */
      int di = dep_find(it), dn = dep_add(out, D_DERIVED), k;
      if (di < 0) dep_child(dn, -1);
      else for (k = 0; k < g_deps[di].nchild; k++) dep_child(dn, g_deps[di].child[k]);
      if (di >= 0 && g_deps[di].unknown && dn >= 0) g_deps[dn].unknown = 1;
      slot_put(T_FUTURE, out);
    }
    if (rc == 1 && out) die("aios_as_completed_next returned 1 with a future");
    break;
  }

  case OP_SHIELD:
    f = (aios_future_t *)pick_obj(r, T_FUTURE, &how);
    rc = aios_shield(f, (rd8(r) == 0xff) ? NULL : &out);
    expect_refused(how, rc, "aios_shield");
    if (rc == 0 && out != f) made_by(out, FK_SHIELD);
    if (rc == 0 && out != f && g_nshielded < NMADE) g_shielded[g_nshielded++] = f;
    if (rc == 0 && out) { dep_derived(out, (void *const *)&f, 1); slot_put(T_FUTURE, out); }
    break;

  case OP_WAIT_FOR:
    f = (aios_future_t *)pick_obj(r, T_FUTURE, &how);
    d = pick_delay(r, 0);
    b = rd8(r);
    if (!BUG_WAIT_FOR_CLOSED_LOOP && f && aios_future_done(f) == 1) {
      /* BUG_WAIT_FOR_CLOSED_LOOP: on a done future of a closed loop. */
      aios_loop_t *fl = NULL;
      int closed = aios_future_get_loop(f, &fl) == 0 && aios_loop_is_closed(fl) == 1;
      if (fl) slot_put(T_LOOP, fl); /* released as ours are */
      if (closed) break;
    }
    rc = aios_wait_for(f, d, b == 0xff ? NULL : &out);
    expect_refused(how, rc, "aios_wait_for");
    if (rc == 0 && out) { dep_derived(out, (void *const *)&f, 1); slot_put(T_FUTURE, out); }
    break;

  case OP_GROUP_NEW: {
    aios_task_group_t *g = NULL;
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    rc = aios_task_group_new(l, (rd8(r) == 0xff) ? NULL : &g);
    expect_refused(how, rc, "aios_task_group_new");
    if (rc == 0 && g) {
      dep_add(g, D_DERIVED);
      made_by(g, FK_GROUP);
      made_by(l, FK_GROUP_LOOP); /* right after its group: see group_loop_open */
      slot_put(T_GROUP, g);
    }
    break;
  }

  case OP_GROUP_ENTER: {
    aios_task_group_t *g = (aios_task_group_t *)pick_obj(r, T_GROUP, &how);
    rc = aios_task_group_enter(g, (aios_task_t *)pick_obj(r, T_TASK, NULL));
    expect_refused(how, rc, "aios_task_group_enter");
    break;
  }

  case OP_GROUP_CREATE_TASK: {
    aios_task_group_t *g = (aios_task_group_t *)pick_obj(r, T_GROUP, &how);
    aios_task_options_t *opts;
    c = capture(r, K_STEP);
    opts = pick_options(r, &ob, c, &v);
    b = rd8(r);
    rc = aios_task_group_create_task(g, step_fn, c, opts, (b & 1) ? NULL : &t);
    closure_commit(c, rc == 0);
    value_commit(v, rc == 0);
    expect_refused(how, rc, "aios_task_group_create_task");
    if (rc == 0) {
      /* The group's exit future waits for this task. */
      int gd = dep_find(g);
      if (c && c->dep < 0) { c->dep = dep_add(t, D_TASK); if (c->dep >= 0) g_deps[c->dep].task = c; }
      dep_child(gd, c ? c->dep : -1);
      if (t) slot_put(T_TASK, t);
    }
    break;
  }

  case OP_GROUP_EXIT: {
    aios_task_group_t *g = (aios_task_group_t *)pick_obj(r, T_GROUP, &how);
    /* The error the body ended with: none, the awaited future's, any. */
    b = rd8(r);
    if (b % 3 == 1 && cur()->future && aios_future_error(cur()->future, &e) == 0 && e) slot_put(T_ERROR, e);
    else if (b % 3 == 2) e = (aios_error_t *)pick_obj(r, T_ERROR, NULL);
    else e = NULL;
    b = rd8(r);
    /* BUG_GROUP_EXIT_AT_CLOSE: an exit future made when the loop is closed
     * already stays pending (and leaks) as well. */
    if (!BUG_GROUP_EXIT_AT_CLOSE && how == PK_SLOT && !group_loop_open(g)) {
      TRACE("  (skipped: BUG_GROUP_EXIT_AT_CLOSE)");
      break;
    }
    rc = aios_task_group_exit(g, e, b == 0xff ? NULL : &out);
    expect_refused(how, rc, "aios_task_group_exit");
    if (rc == 0 && out) {
      int gd = dep_find(g), dn = dep_add(out, D_DERIVED), k;
      if (gd < 0) dep_child(dn, -1);
      else {
        for (k = 0; k < g_deps[gd].nchild; k++) dep_child(dn, g_deps[gd].child[k]);
        if (g_deps[gd].unknown && dn >= 0) g_deps[dn].unknown = 1;
      }
      remember_exit(out);
      slot_put(T_FUTURE, out);
    }
    break;
  }

  case OP_TO_THREAD: {
    work_t *w = &g_work[g_nwork++ % NWORK];
    b = rd8(r);
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    /* Without a destructor the work must not make a result (modes 3, 4). */
    w->mode = (b & 0x40) ? 3 + (b & 1) : b;
    w->loop = l;
    w->closure = capture(r, K_CALLBACK);
    ATOMIC_STORE(&w->gen, g_input_gen);
    rc = aios_to_thread(l, (b & 0x80) ? NULL : work_fn, w, (b & 0x40) ? NULL : work_result_dtor,
                        (b & 0x20) && (b & 0x10) ? NULL : &f);
    expect_refused(how, rc, "aios_to_thread");
    got_future(f, rc, D_PLAIN);
    break;
  }

  case OP_POOL_SIZE: {
    static const unsigned sizes[] = {0, 1, 2, 3, 4, 1025, UINT_MAX};
    rc = aios_set_thread_pool_size(sizes[rd8(r) % 7]);
    break;
  }

  case OP_LOCK_OP: {
    aios_lock_t *lk = NULL;
    b = rd8(r);
    if (b % 4 == 0) {
      l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
      rc = aios_lock_new(l, (b & 0x80) ? NULL : &lk);
      if (rc == 0) slot_put(T_LOCK, lk);
    } else {
      lk = (aios_lock_t *)pick_obj(r, T_LOCK, &how);
      if (b % 4 == 1) { rc = aios_lock_acquire(lk, (b & 0x80) ? NULL : &f); got_future(f, rc, D_PLAIN); }
      else if (b % 4 == 2) rc = aios_lock_release(lk);
      else rc = aios_lock_locked(lk);
    }
    expect_refused(how, rc, "a lock call");
    break;
  }

  case OP_EVENT_OP: {
    aios_event_t *ev = NULL;
    b = rd8(r);
    if (b % 5 == 0) {
      l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
      rc = aios_event_new(l, (b & 0x80) ? NULL : &ev);
      if (rc == 0) slot_put(T_EVENT, ev);
    } else {
      ev = (aios_event_t *)pick_obj(r, T_EVENT, &how);
      switch (b % 5) {
      case 1: rc = aios_event_set(ev); break;
      case 2: rc = aios_event_clear(ev); break;
      case 3: rc = aios_event_is_set(ev); break;
      default: rc = aios_event_wait(ev, (b & 0x80) ? NULL : &f); got_future(f, rc, D_PLAIN); break;
      }
    }
    expect_refused(how, rc, "an event call");
    break;
  }

  case OP_COND_OP: {
    aios_condition_t *cv = NULL;
    b = rd8(r);
    if (b % 8 == 0) {
      l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
      rc = aios_condition_new(l, (aios_lock_t *)pick_obj(r, T_LOCK, NULL), (b & 0x80) ? NULL : &cv);
      if (rc == 0) slot_put(T_COND, cv);
    } else {
      cv = (aios_condition_t *)pick_obj(r, T_COND, &how);
      switch (b % 8) {
      case 1: rc = aios_condition_acquire(cv, (b & 0x80) ? NULL : &f); break;
      case 2: rc = aios_condition_release(cv); break;
      case 3: rc = aios_condition_locked(cv); break;
      case 4: rc = aios_condition_wait(cv, (b & 0x80) ? NULL : &f); break;
      case 5:
        c = capture(r, K_PRED);
        if (c) { c->self = cv; c->self_type = T_COND; }
        rc = aios_condition_wait_for(cv, (b & 0x40) ? NULL : pred_fn, c, (b & 0x80) ? NULL : &f);
        break;
      case 6: rc = aios_condition_notify(cv, pick_int(r)); break;
      default: rc = aios_condition_notify_all(cv); break;
      }
      got_future(f, rc, D_PLAIN);
    }
    expect_refused(how, rc, "a condition call");
    break;
  }

  case OP_SEM_OP: {
    aios_semaphore_t *s = NULL;
    b = rd8(r);
    if (b % 4 == 0) {
      unsigned value = pick_uint(r);
      static const int bounded[] = {0, 1, -1, 2};
      l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
      rc = aios_semaphore_new(l, value, bounded[(b >> 2) & 3], (b & 0x80) ? NULL : &s);
      if (rc == 0) slot_put(T_SEM, s);
    } else {
      s = (aios_semaphore_t *)pick_obj(r, T_SEM, &how);
      if (b % 4 == 1) { rc = aios_semaphore_acquire(s, (b & 0x80) ? NULL : &f); got_future(f, rc, D_PLAIN); }
      else if (b % 4 == 2) rc = aios_semaphore_release(s);
      else rc = aios_semaphore_locked(s);
    }
    expect_refused(how, rc, "a semaphore call");
    break;
  }

  case OP_BARRIER_OP: {
    aios_barrier_t *ba = NULL;
    b = rd8(r);
    if (b % 7 == 0) {
      unsigned parties = pick_uint(r);
      if (!BUG_BARRIER_UINT_MAX && parties == UINT_MAX) parties = UINT_MAX - 1;
      l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
      rc = aios_barrier_new(l, parties, (b & 0x80) ? NULL : &ba);
      if (rc == 0) slot_put(T_BARRIER, ba);
    } else {
      ba = (aios_barrier_t *)pick_obj(r, T_BARRIER, &how);
      switch (b % 7) {
      case 1: rc = aios_barrier_wait(ba, (b & 0x80) ? NULL : &f); break;
      case 2: rc = aios_barrier_reset(ba, (b & 0x80) ? NULL : &f); break;
      case 3: rc = aios_barrier_abort(ba, (b & 0x80) ? NULL : &f); break;
      case 4: rc = aios_barrier_parties(ba); break;
      case 5: rc = aios_barrier_n_waiting(ba); break;
      default: rc = aios_barrier_broken(ba); break;
      }
      got_future(f, rc, D_PLAIN);
    }
    expect_refused(how, rc, "a barrier call");
    break;
  }

  case OP_QUEUE_NEW: {
    aios_queue_t *q = NULL;
    static const int kinds[] = {AIOS_QUEUE_FIFO, AIOS_QUEUE_LIFO, AIOS_QUEUE_PRIORITY, 3, -1, INT_MAX};
    int kind = kinds[rd8(r) % 6];
    long maxsize = pick_long(r);
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    rc = aios_queue_new(l, (aios_queue_kind_t)kind, maxsize, (rd8(r) == 0xff) ? NULL : &q);
    expect_refused(how, rc, "aios_queue_new");
    if (rc == 0) slot_put(T_QUEUE, q);
    break;
  }

  case OP_QUEUE_PUT: {
    aios_queue_t *q = (aios_queue_t *)pick_obj(r, T_QUEUE, &how);
    long long prio;
    b = rd8(r);
    v = pick_value(r, &val, &dtor);
    prio = pick_llong(r);
    if (b & 1) rc = aios_queue_put_nowait(q, val, dtor, prio);
    else { rc = aios_queue_put(q, val, dtor, prio, (b & 0x80) ? NULL : &f); got_future(f, rc, D_PLAIN); }
    value_commit(v, rc == 0);
    expect_refused(how, rc, "a queue put");
    break;
  }

  case OP_QUEUE_GET: {
    aios_queue_t *q = (aios_queue_t *)pick_obj(r, T_QUEUE, &how);
    b = rd8(r);
    if (b & 1) {
      rc = aios_queue_get_nowait(q, (b & 4) ? NULL : &val, (b & 2) ? NULL : &dtor);
      if (rc == 0 && !(b & 4)) {
        if (b & 2) {
          value_t *tv = as_value(val);
          if (tv && tv->has_dtor) take_over(val, value_dtor, "aios_queue_get_nowait");
        } else {
          take_over(val, dtor, "aios_queue_get_nowait");
        }
      }
    } else {
      rc = aios_queue_get(q, (b & 0x80) ? NULL : &f);
      got_future(f, rc, D_PLAIN);
    }
    expect_refused(how, rc, "a queue get");
    break;
  }

  case OP_QUEUE_OP: {
    aios_queue_t *q = (aios_queue_t *)pick_obj(r, T_QUEUE, &how);
    long n = 0;
    b = rd8(r);
    switch (b % 7) {
    case 0: n = aios_queue_qsize(q); break;
    case 1: n = aios_queue_maxsize(q); if (how == PK_FORGED && n >= 0) die("aios_queue_maxsize of a forged queue"); n = -1; break;
    case 2: n = aios_queue_empty(q); break;
    case 3: n = aios_queue_full(q); break;
    case 4: n = aios_queue_task_done(q); break;
    case 5: n = aios_queue_join(q, (b & 0x80) ? NULL : &f); got_future(f, (int)n, D_PLAIN); break;
    default: n = aios_queue_shutdown(q, pick_int(r)); break;
    }
    expect_refused(how, n, "a queue call");
    break;
  }

  case OP_RUN:
  case OP_RUNNER_OP: {
    aios_task_options_t *opts;
    aios_runner_t *rn = NULL;
    b = rd8(r);
    if (op == OP_RUNNER_OP && b % 5 != 0) {
      rn = (aios_runner_t *)pick_obj(r, T_RUNNER, &how);
      if (b % 5 == 1) {
        rc = aios_runner_new((b & 0x80) ? NULL : &rn);
        if (rc == 0) slot_put(T_RUNNER, rn);
      } else if (b % 5 == 2) {
        rc = aios_runner_get_loop(rn, (b & 0x80) ? NULL : &l);
        expect_refused(how, rc, "aios_runner_get_loop");
        if (rc == 0) slot_put(T_LOOP, l);
      } else if (b % 5 == 3) {
        finish_waits();
        cancel_before_close(NULL);
        if (on_main() && !loop_running_here()) {
          int saved = g_wind_down;
          g_wind_down = 1; /* its remaining tasks are cancelled and awaited */
          begin_run(NULL, RUN_RUNNER);
          rc = aios_runner_close(rn);
          end_run();
          g_wind_down = saved;
        } else {
          rc = aios_runner_close(rn);
        }
        expect_refused(how, rc, "aios_runner_close");
      } else {
        rc = aios_runner_ref(rn);
        expect_refused(how, rc, "aios_runner_ref");
        if (rc == 0) slot_put(T_RUNNER, rn);
      }
      break;
    }
    /* aios_run, or aios_runner_run: a main task driven by a program. */
    if (op == OP_RUNNER_OP) rn = (aios_runner_t *)pick_obj(r, T_RUNNER, &how);
    c = capture(r, K_STEP);
    if (c) c->flags |= C_MAIN;
    opts = pick_options(r, &ob, c, &v);
    t = NULL;
    TRACE(" %s {", op == OP_RUN ? "aios_run" : "aios_runner_run");
    if (on_main() && !loop_running_here()) {
      begin_run(NULL, RUN_RUNNER);
      g_run_sets_handler = op == OP_RUN;
      if (op == OP_RUN) rc = aios_run((b & 2) ? step_fn : NULL, c, opts, (b & 1) ? &t : NULL);
      else rc = aios_runner_run(rn, (b & 2) ? step_fn : NULL, c, opts, (b & 1) ? &t : NULL);
      end_run();
    } else {
      if (op == OP_RUN) rc = aios_run((b & 2) ? step_fn : NULL, c, opts, (b & 1) ? &t : NULL);
      else rc = aios_runner_run(rn, (b & 2) ? step_fn : NULL, c, opts, (b & 1) ? &t : NULL);
      if (rc == 0) die("a run worked while a loop runs on this thread");
    }
    TRACE(" } -> %d", rc);
    /* The main task existed if it stepped, was handed out, or freed its arg. */
    {
      int made = (c && c->calls > 0) || t != NULL || (c && ATOMIC_LOAD(&c->dcount) > 0) ||
                 (v && ATOMIC_LOAD(&v->dcount) > 0);
      closure_commit(c, made);
      value_commit(v, made);
    }
    if (t) slot_put(T_TASK, t);
    break;
  }

  case OP_THREAD_START:
    if (on_main()) thread_start(r);
    break;

  case OP_THREAD_JOIN:
    if (on_main()) thread_join();
    break;

  case OP_DROP_SELF: /* a callback drops the last reference to its own object */
    drop_all_of(cur()->self);
    if (rd8(r) & 1) drop_all_of(cur()->future);
    break;

  case OP_TASK_FACTORY: {
    aios_task_factory_fn got = NULL;
    void *got_arg = NULL;
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    b = rd8(r);
    if (b & 1) {
      rc = aios_loop_get_task_factory(l, (b & 2) ? NULL : &got, (b & 4) ? NULL : &got_arg);
      if (rc == 0 && got != NULL && got != task_factory) die("aios_loop_get_task_factory gave a factory never set");
      if (rc == 0 && got_arg && !as_closure(got_arg)) die("aios_loop_get_task_factory gave an arg never set");
    } else {
      rc = aios_loop_set_task_factory(l, (b & 2) ? NULL : task_factory, (b & 4) ? NULL : capture(r, K_FACTORY));
    }
    expect_refused(how, rc, "a task factory call");
    break;
  }

  case OP_ITERATION_CB:
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    b = rd8(r);
    if (b & 1) rc = aios_loop_set_iteration_callback(l, NULL, (b & 2) ? NULL : g_closures);
    else rc = aios_loop_set_iteration_callback(l, iteration_cb, capture(r, K_ITER));
    expect_refused(how, rc, "aios_loop_set_iteration_callback");
    if (how == PK_SLOT && l && aios_loop_is_closed(l) == 0 && rc != 0)
      die("aios_loop_set_iteration_callback returned %d", rc);
    break;

  case OP_IO_BUFFER_CB: /* memory for large reads, or none (NULL), or the callback cleared */
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    b = rd8(r);
    g_lent_refuse = (b & 4) != 0;
    if (b & 1) rc = aios_loop_set_io_buffer_callback(l, NULL, NULL);
    else rc = aios_loop_set_io_buffer_callback(l, io_buffer_cb, l);
    expect_refused(how, rc, "aios_loop_set_io_buffer_callback");
    if (how == PK_SLOT && l && aios_loop_is_closed(l) == 0 && rc != 0)
      die("aios_loop_set_io_buffer_callback returned %d", rc);
    break;

  case OP_DEBUG_FLAGS: /* aios_loop_set_debug with a zero slow duration: every callback is slow */
    l = (aios_loop_t *)pick_obj(r, T_LOOP, &how);
    aios_loop_set_debug(l, 1);
    aios_loop_set_slow_callback_duration(l, (rd8(r) & 1) ? 0.0 : 1e-9);
    break;

  default:
    if (op >= OP_SOCK_OP) rc = exec_sock_op(r, op);
    else if (op >= OP_DGRAM_NEW) rc = exec_dgram_op(r, op);
    else if (op >= OP_PIPE_CONNECT && op != OP_TRANSPORT_WRITE_NOCOPY) rc = exec_child_op(r, op);
    else if (op >= OP_GETADDRINFO) rc = exec_net_op(r, op);
    break;
  }
  TRACE("  -> %d", rc);
  count_rc(op, rc);
  return NO_TERM;
}

static int run_program(reader_t *prog) {
  while (!at_end(prog) && g_budget > 0 && !g_wind_down && !g_teardown) {
    int term;
    g_budget--;
    term = exec_op(prog);
    if (term != NO_TERM && cur()->kind == F_STEP) return term;
  }
  return NO_TERM;
}

/* ------------------------------------------------------------------------ */
/* End of an input: release everything, close every loop, check             */

static void release_all_of_type(int want_loop) {
  int i, n;
  for (i = 0; i < NSLOTS; i++)
    if (g_slots[i].p && (g_slots[i].type == T_LOOP) == want_loop) drop_slot(i);
  /* The keep list may grow while we release (guards), so walk it again. */
  for (n = 0; n < 4; n++) {
    int found = 0;
    for (i = g_nkeep - 1; i >= 0; i--) {
      slot_t s = g_keep[i];
      if (s.p == NULL || (s.type == T_LOOP) != want_loop) continue;
      g_keep[i].p = NULL;
      found = 1;
      if (s.type == T_RUNNER) {
        finish_waits();
        cancel_before_close(NULL);
        begin_run(NULL, RUN_RUNNER);
        obj_unref(s.type, s.p);
        end_run();
      } else {
        if (s.type == T_LOOP && holders(s.p) == 0) drain_loop((aios_loop_t *)s.p);
        obj_unref(s.type, s.p);
      }
    }
    if (!found) break;
  }
}

static void close_all_loops(void) {
  int i;
  for (i = 0; i < NSLOTS + g_nkeep; i++) {
    slot_t *s = i < NSLOTS ? &g_slots[i] : &g_keep[i - NSLOTS];
    if (s->p && s->type == T_LOOP && aios_loop_is_closed((aios_loop_t *)s->p) == 0) {
      drain_loop((aios_loop_t *)s->p);
      aios_loop_close((aios_loop_t *)s->p);
    }
  }
}

static void teardown(void) {
  int i, type, tries;
  aios_error_t *e = NULL;
  TRACE("teardown");
  g_teardown = 1;
  g_wind_down = 1;
  thread_join();
  finish_waits();
  cancel_before_close(NULL);
  close_all_loops();
  release_all_of_type(0);
  close_all_loops();
  release_all_of_type(1);
  sock_teardown();
  for (i = 0; i < g_nwaits; i++) aios_future_unref(g_waits[i]);
  g_nwaits = 0;
  for (i = 0; i < g_nexits; i++) aios_future_unref(g_exits[i]);
  g_nexits = 0;
  for (i = 0; i < g_ndoomed; i++) aios_future_unref(g_doomed[i]);
  g_ndoomed = 0;
  for (i = 0; i < g_nguarded; i++) aios_future_unref(g_guarded[i].future);
  g_nguarded = 0;
  net_teardown();
  free_lent_memory();
  /* Objects whose last reference the thread dropped are freed by their
   * thread at its next unref call: make one. */
  if (aios_error_new(AIOS_EINVAL, NULL, &e) == 0) aios_error_unref(e);

  /* Work a worker started finishes before its loop closes. */
  for (tries = 0; tries < 200 && ATOMIC_LOAD(&g_work_started) != ATOMIC_LOAD(&g_work_finished); tries++)
    usleep(1000);
  if (ATOMIC_LOAD(&g_work_started) != ATOMIC_LOAD(&g_work_finished))
    die("to_thread work still running after every loop closed");

  /* Live objects back at the baseline (a few tries: a worker's last
   * release may be on its way). */
  for (tries = 0; tries < 20; tries++) {
    int ok = 1;
    for (type = 0; type < N_OBJECT_TYPES; type++) ok &= aios_live_objects((aios_object_type_t)type) == g_baseline[type];
    if (ok) break;
    if (aios_error_new(AIOS_EINVAL, NULL, &e) == 0) aios_error_unref(e);
    usleep(1000);
  }
  for (type = 0; type < N_OBJECT_TYPES; type++) {
    long n = aios_live_objects((aios_object_type_t)type);
    if (n != g_baseline[type]) {
      static const char *const names[] = {"loop", "handle", "future", "task", "error", "runner", "primitive",
                                          "queue", "transport", "server", "stream", "subprocess"};
      fprintf(stderr, "live objects:");
      for (i = 0; i < N_OBJECT_TYPES; i++) fprintf(stderr, " %s=%ld(base %ld)", names[i], aios_live_objects((aios_object_type_t)i), g_baseline[i]);
      fputc('\n', stderr);
      die("leak: %ld live %s objects after the input, baseline %ld", n, names[type], g_baseline[type]);
    }
  }
  net_check();
  child_check();
  for (i = 0; i < ATOMIC_LOAD(&g_work_results_made); i++)
    if (ATOMIC_LOAD(&g_work_results[i].freed) != 1)
      die("to_thread result %d freed %d times, expected once", i, g_work_results[i].freed);

  /* Every destructor ran exactly once, and only for what the library owned. */
  for (i = 0; i < g_nvalues; i++) {
    value_t *v = &g_values[i];
    int expected = (v->state == O_LIB && v->has_dtor) || v->state == O_TAKEN;
    if (v->state == O_PENDING) die("harness bug: value %d left pending", i);
    if (v->dcount != expected)
      die("value %d (state %d, destructor %s): destructor ran %d times, expected %d", i, v->state,
          v->has_dtor ? "given" : "none", v->dcount, expected);
  }
  for (i = 0; i < g_nclosures; i++) {
    closure_t *c = &g_closures[i];
    int expected = c->own == O_LIB && c->has_dtor;
    if (c->own == O_PENDING) die("harness bug: closure %d left pending", i);
    if (c->dcount != expected)
      die("callback or task arg %d (state %d): arg destructor ran %d times, expected %d", i, c->own, c->dcount, expected);
  }
}

static void reset_state(void) {
  memset(g_slots, 0, sizeof g_slots);
  g_nkeep = 0;
  g_nstale = 0;
  g_nvalues = 0;
  g_nclosures = 0;
  g_ndeps = 0;
  g_nwaits = 0;
  g_nexits = 0;
  g_ndoomed = 0;
  g_nguarded = 0;
  g_nmade = 0;
  g_nshielded = 0;
  g_depth = 0;
  memset(&g_frames[0], 0, sizeof g_frames[0]);
  g_budget = MAX_TOTAL_OPS;
  g_teardown = 0;
  g_wind_down = 0;
  g_in_run = 0;
  g_run_depth = 0;
  g_watch_loop = NULL;
  memset(g_work_results, 0, sizeof(work_result_t) * (size_t)(g_work_results_made < NWORK_RESULTS ? g_work_results_made : NWORK_RESULTS));
  ATOMIC_STORE(&g_work_results_made, 0);
  ATOMIC_ADD(&g_input_gen, 1);
  net_reset();
}

int LLVMFuzzerInitialize(int *argc, char ***argv) {
  int type;
  (void)argc;
  (void)argv;
  g_main_thread = pthread_self();
  g_verbose = getenv("FUZZ_VERBOSE") != NULL;
  memset(g_long_string, 'a', sizeof g_long_string - 1);
  net_init();
  for (type = 0; type < N_OBJECT_TYPES; type++) g_baseline[type] = aios_live_objects((aios_object_type_t)type);
  return 0;
}

static int g_sig_initial_taken;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  uint8_t *input = g_input;
  reader_t top;
  int ops = 0;
  if (!pthread_equal(pthread_self(), g_main_thread)) g_main_thread = pthread_self();
  if (size > FUZZ_MAX_INPUT) size = FUZZ_MAX_INPUT;
  memcpy(input, data, size); /* callbacks may outlive nothing, but keep our own copy */
  if (!g_sig_initial_taken) {
    /* libFuzzer's handlers of SIGUSR1 and SIGUSR2 (set after
     * LLVMFuzzerInitialize) would end the run: the harness's signals. */
    int i;
    signal(SIGUSR1, SIG_DFL);
    signal(SIGUSR2, SIG_DFL);
    for (i = 0; i < (int)N_WATCHED; i++) g_sig_initial[i] = disposition(g_watched_signals[i]);
    g_sig_initial_taken = 1;
  }
  reset_state();
  g_fd_input_base = count_all_fds();
  top.p = input;
  top.n = size;
  top.pos = 0;
  while (!at_end(&top) && ops++ < MAX_TOP_OPS && g_budget > 0) {
    g_budget--;
    exec_op(&top);
  }
  teardown();
  return 0;
}
