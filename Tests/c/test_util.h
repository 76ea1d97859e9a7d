/*
 * test_util.h: a tiny test framework for the C tests of libaio-swift, in the
 * spirit of libuv's test runner.
 *
 *  - CHECK(expr), CHECK_EQ(a, b), CHECK_STR_EQ, CHECK_PTR_EQ, CHECK_NEAR:
 *    on failure print file:line and the expression, then exit(1).
 *  - Each test is a `static void test_x(void)`. main() hands a table of them
 *    to run_tests(), which runs each one in a forked child (so one crash or
 *    failed check does not hide the others) under a watchdog alarm, and
 *    checks at its end that every kind of library object is back to the live
 *    count it had at the start (libuv's MAKE_VALGRIND_HAPPY: every test closes
 *    its loops and releases everything it made).
 *  - `./test_x NAME...` runs only the named tests, in-process (for gdb).
 *
 * Everything here is `static inline` so an unused helper is no warning
 * under -Wall -Wextra -Werror -pedantic.
 */
#ifndef AIOS_TEST_UTIL_H
#define AIOS_TEST_UTIL_H

#ifndef _POSIX_C_SOURCE
#define _POSIX_C_SOURCE 200809L
#endif

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <aio_swift.h>

/* ------------------------------------------------------------------------ */
/* Checks                                                                     */

#define CHECK(expr)                                                            \
  do {                                                                         \
    if (!(expr)) {                                                             \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #expr); \
      fflush(stderr);                                                          \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

/* For ints (status codes, counts). A negative value is shown with its
 * aios_err_name too. */
#define CHECK_EQ(a, b)                                                         \
  do {                                                                         \
    long long a_ = (long long)(a);                                             \
    long long b_ = (long long)(b);                                             \
    if (a_ != b_) {                                                            \
      fprintf(stderr, "%s:%d: CHECK_EQ failed: %s == %s (%lld %s vs %lld %s)\n", \
              __FILE__, __LINE__, #a, #b, a_, test_code_name_(a_), b_,         \
              test_code_name_(b_));                                            \
      fflush(stderr);                                                          \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

#define CHECK_PTR_EQ(a, b)                                                     \
  do {                                                                         \
    const void *a_ = (const void *)(a);                                        \
    const void *b_ = (const void *)(b);                                        \
    if (a_ != b_) {                                                            \
      fprintf(stderr, "%s:%d: CHECK_PTR_EQ failed: %s == %s (%p vs %p)\n",    \
              __FILE__, __LINE__, #a, #b, a_, b_);                             \
      fflush(stderr);                                                          \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

/* NULL-safe string equality. */
#define CHECK_STR_EQ(a, b)                                                     \
  do {                                                                         \
    const char *a_ = (a);                                                      \
    const char *b_ = (b);                                                      \
    if (a_ == NULL || b_ == NULL || strcmp(a_, b_) != 0) {                     \
      fprintf(stderr, "%s:%d: CHECK_STR_EQ failed: %s == %s (\"%s\" vs \"%s\")\n", \
              __FILE__, __LINE__, #a, #b, a_ ? a_ : "(null)",                  \
              b_ ? b_ : "(null)");                                             \
      fflush(stderr);                                                          \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

#define CHECK_NEAR(a, b, tol)                                                  \
  do {                                                                         \
    double a_ = (double)(a);                                                   \
    double b_ = (double)(b);                                                   \
    double d_ = a_ > b_ ? a_ - b_ : b_ - a_;                                   \
    if (!(d_ <= (double)(tol))) {                                              \
      fprintf(stderr, "%s:%d: CHECK_NEAR failed: %s ~ %s (%.9f vs %.9f, tol %g)\n", \
              __FILE__, __LINE__, #a, #b, a_, b_, (double)(tol));              \
      fflush(stderr);                                                          \
      exit(1);                                                                 \
    }                                                                          \
  } while (0)

/* "[AIOS_ECANCELLED]" for a negative value, "" otherwise. */
static inline const char *test_code_name_(long long code) {
  static char buf[2][96];
  static int which;
  const char *name;
  if (code >= 0 || code < -2147483647LL)
    return "";
  name = aios_err_name((int)code);
  which = !which;
  snprintf(buf[which], sizeof buf[which], "[%s]", name ? name : "(null name)");
  return buf[which];
}

/* ------------------------------------------------------------------------ */
/* Time                                                                       */

/* The monotonic clock in seconds. */
static inline double test_now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static inline void test_sleep(double seconds) {
  struct timespec ts;
  ts.tv_sec = (time_t)seconds;
  ts.tv_nsec = (long)((seconds - (double)ts.tv_sec) * 1e9);
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* Burns CPU (does not sleep) for `seconds`. */
static inline void test_busy_wait(double seconds) {
  double end = test_now() + seconds;
  while (test_now() < end) {
  }
}

/* ------------------------------------------------------------------------ */
/* An event log: callbacks append words, tests compare the whole sequence.   */

typedef struct test_log_s {
  char text[4096];
} test_log_t;

static test_log_t test_log_;

static inline void log_reset(void) { test_log_.text[0] = '\0'; }

/* Appends `word`, space separated. */
static inline void log_event(const char *word) {
  size_t len = strlen(test_log_.text);
  CHECK(len + strlen(word) + 2 < sizeof test_log_.text);
  if (len > 0)
    test_log_.text[len++] = ' ';
  strcpy(test_log_.text + len, word);
}

/* A callback (aios_callback_fn) that logs the string passed as arg. */
static inline void log_cb(void *arg) { log_event((const char *)arg); }

static inline const char *log_text(void) { return test_log_.text; }

#define CHECK_LOG(expected) CHECK_STR_EQ(log_text(), (expected))

/* ------------------------------------------------------------------------ */
/* Loop helpers                                                               */

/* Runs exactly one iteration: a stop requested before run_forever. */
static inline void run_once(aios_loop_t *loop) {
  CHECK_EQ(aios_loop_stop(loop), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
}

static inline aios_loop_t *make_loop(void) {
  aios_loop_t *loop = NULL;
  CHECK_EQ(aios_loop_new(&loop), 0);
  CHECK(loop != NULL);
  return loop;
}

/* Closes the loop and drops the test's reference. */
static inline void close_loop(aios_loop_t *loop) {
  CHECK_EQ(aios_loop_close(loop), 0);
  CHECK_EQ(aios_loop_is_closed(loop), 1);
  CHECK_EQ(aios_loop_unref(loop), 0);
}

/* A callback that stops the loop passed as arg. */
static inline void stop_loop_cb(void *arg) {
  CHECK_EQ(aios_loop_stop((aios_loop_t *)arg), 0);
}

/* A done callback that stops the loop passed as arg. */
static inline void stop_loop_done_cb(aios_future_t *future, void *arg) {
  (void)future;
  CHECK_EQ(aios_loop_stop((aios_loop_t *)arg), 0);
}

/* A destructor that counts its calls in the int `value` points to. */
static inline void count_destructor(void *value) { (*(int *)value)++; }

/* ------------------------------------------------------------------------ */
/* An exception handler that records what it is given.                       */

typedef struct exc_record_s {
  int calls;
  aios_loop_t *loop;      /* the loop of the last call */
  int had_message;        /* the last call had a message */
  char message[512];      /* copy of the last message */
  int had_error;          /* the last call had an error */
  int error_code;         /* of the last error */
  int error_kind;
  char error_message[512];
  void *error_user_data;
  int had_future, had_task, had_handle; /* the context named them */
} exc_record_t;

static inline void exc_recorder(aios_loop_t *loop, const aios_exception_context_t *context,
                                void *arg) {
  exc_record_t *r = (exc_record_t *)arg;
  const char *message = context->message;
  aios_error_t *error = context->error;
  r->calls++;
  r->had_future = context->future != NULL;
  r->had_task = context->task != NULL;
  r->had_handle = context->handle != NULL;
  r->loop = loop;
  r->had_message = message != NULL;
  r->message[0] = '\0';
  if (message)
    snprintf(r->message, sizeof r->message, "%s", message);
  r->had_error = error != NULL;
  r->error_code = 0;
  r->error_kind = 0;
  r->error_message[0] = '\0';
  r->error_user_data = NULL;
  if (error) {
    const char *m = aios_error_message(error);
    r->error_code = aios_error_code(error);
    r->error_kind = aios_error_kind(error);
    r->error_user_data = aios_error_user_data(error);
    if (m)
      snprintf(r->error_message, sizeof r->error_message, "%s", m);
  }
}

/* ------------------------------------------------------------------------ */
/* Live objects (MAKE_VALGRIND_HAPPY)                                         */

/* Object types are probed at run time (types 0, 1, ... until
 * aios_live_objects answers AIOS_EINVAL), so new types are covered too. */
#define TEST_MAX_OBJECT_TYPES 64

typedef struct live_counts_s {
  int types;
  long n[TEST_MAX_OBJECT_TYPES];
} live_counts_t;

static inline const char *object_type_name(int type) {
  static const char *const names[] = {"loop",  "handle", "future",   "task",
                                      "error", "runner", "primitive", "queue",
                                      "transport", "server", "stream", "subprocess"};
  static char other[32];
  if (type >= 0 && type < (int)(sizeof names / sizeof names[0]))
    return names[type];
  snprintf(other, sizeof other, "type %d", type);
  return other;
}

static inline live_counts_t live_snapshot(void) {
  live_counts_t c;
  int t;
  memset(&c, 0, sizeof c);
  for (t = 0; t < TEST_MAX_OBJECT_TYPES; t++) {
    long n = aios_live_objects(t);
    if (n == AIOS_EINVAL)
      break;
    CHECK(n >= 0);
    c.n[t] = n;
  }
  c.types = t;
  /* At least the types this suite was written against. */
  CHECK(c.types > AIOS_OBJECT_RUNNER);
  return c;
}

static inline long live_count(int type) { return aios_live_objects(type); }

/* Every object type back to `start`. */
static inline void check_live_back_to(const live_counts_t *start, const char *file,
                                      int line) {
  int t, bad = 0;
  for (t = 0; t < start->types; t++) {
    long now = aios_live_objects(t);
    if (now != start->n[t]) {
      fprintf(stderr, "%s:%d: live %s objects: %ld at start, %ld now\n", file,
              line, object_type_name(t), start->n[t], now);
      bad = 1;
    }
  }
  if (bad) {
    fflush(stderr);
    exit(1);
  }
}

#define CHECK_LIVE_BACK_TO(start) check_live_back_to((start), __FILE__, __LINE__)

/* ------------------------------------------------------------------------ */
/* Runner                                                                     */

typedef void (*test_fn)(void);
typedef struct test_entry_s {
  const char *name;
  test_fn fn;
} test_entry_t;

#define TEST_ENTRY(fn) { #fn, fn }

/* Seconds before a test is killed; AIOS_TEST_TIMEOUT overrides. */
static inline unsigned test_timeout(void) {
  const char *s = getenv("AIOS_TEST_TIMEOUT");
  long v = s ? strtol(s, NULL, 10) : 0;
  return v > 0 ? (unsigned)v : 120u;
}

/* Whether the test runs under valgrind (its preload is in LD_PRELOAD): a
 * test of billions of calls runs only natively. */
static inline int under_valgrind(void) {
  const char *preload = getenv("LD_PRELOAD");
  return preload != NULL && strstr(preload, "vgpreload") != NULL;
}

/* Runs one test in the current process and exits if it fails. */
static inline void run_test_here(const test_entry_t *t) {
  live_counts_t start = live_snapshot();
  alarm(test_timeout());
  log_reset();
  t->fn();
  alarm(0);
  CHECK_LIVE_BACK_TO(&start);
}

static inline void warm_up_nothing_cb(void *arg) { (void)arg; }

/* Swift's runtime makes type metadata on first use and publishes it with
 * atomics, which helgrind cannot follow: a test whose threads first use a
 * type at the same time would show races that are not there. The common
 * paths run once here, on the main thread, before any test thread starts. */
static inline void warm_up_runtime(void) {
  aios_loop_t *loop = NULL;
  aios_future_t *f = NULL;
  aios_error_t *e = NULL;
  void *value = NULL;
  if (aios_loop_new(&loop) != 0) return;
  if (aios_future_new(loop, &f) == 0) {
    aios_future_set_result(f, NULL, NULL);
    aios_future_result(f, &value);
    aios_future_unref(f);
    aios_future_done(f); /* a dead handle: the error path */
  }
  if (aios_error_new(AIOS_EINVAL, NULL, &e) == 0) aios_error_unref(e);
  aios_loop_call_soon_threadsafe(loop, warm_up_nothing_cb, NULL, NULL, NULL);
  aios_loop_stop(loop);
  aios_loop_run_forever(loop);
  aios_loop_close(loop);
  aios_loop_unref(loop);
}

static inline int run_tests(int argc, char **argv, const test_entry_t *tests,
                            size_t count) {
  size_t i;
  int failed = 0, passed = 0, valgrind_errors = 0;
  warm_up_runtime();
  if (argc > 1) {
    /* Named tests, in-process. */
    int a;
    for (a = 1; a < argc; a++) {
      int found = 0;
      for (i = 0; i < count; i++) {
        if (strcmp(tests[i].name, argv[a]) == 0) {
          found = 1;
          run_test_here(&tests[i]);
          printf("ok %s\n", tests[i].name);
          fflush(stdout);
        }
      }
      if (!found) {
        fprintf(stderr, "no test named %s\n", argv[a]);
        return 2;
      }
    }
    return 0;
  }
  for (i = 0; i < count; i++) {
    pid_t pid;
    int status = 0;
    fflush(stdout);
    fflush(stderr);
    pid = fork();
    if (pid < 0) {
      perror("fork");
      return 2;
    }
    if (pid == 0) {
      run_test_here(&tests[i]);
      fflush(stdout);
      exit(0);
    }
    while (waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) {
        perror("waitpid");
        return 2;
      }
    }
    if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
      printf("ok %lu - %s\n", (unsigned long)(i + 1), tests[i].name);
      passed++;
    } else {
      if (WIFSIGNALED(status))
        printf("not ok %lu - %s (killed by signal %d%s)\n", (unsigned long)(i + 1),
               tests[i].name, WTERMSIG(status),
               WTERMSIG(status) == SIGALRM ? ": timed out" : "");
      else
        printf("not ok %lu - %s (exit %d%s)\n", (unsigned long)(i + 1),
               tests[i].name, WEXITSTATUS(status),
               WEXITSTATUS(status) == 99 ? ": valgrind errors" : "");
      if (WIFEXITED(status) && WEXITSTATUS(status) == 99)
        valgrind_errors = 1;
      failed++;
    }
    fflush(stdout);
  }
  printf("# %d passed, %d failed\n", passed, failed);
  /* 99 (valgrind's --error-exitcode) when a child had memory errors. */
  return valgrind_errors ? 99 : failed ? 1 : 0;
}

#define TEST_MAIN(...)                                                         \
  int main(int argc, char **argv) {                                            \
    static const test_entry_t tests_[] = {__VA_ARGS__};                        \
    return run_tests(argc, argv, tests_, sizeof tests_ / sizeof tests_[0]);   \
  }

#endif /* AIOS_TEST_UTIL_H */
