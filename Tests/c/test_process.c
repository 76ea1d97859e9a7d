/*
 * test_process.c: subprocesses (the transport and protocol, and Process with
 * its streams), pipes and signal handlers, with real children, pipes and
 * signals. Every test ends with no child left to reap.
 */
#define _GNU_SOURCE
#define _XOPEN_SOURCE 600
#include "test_util.h"
#include "test_net.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <stdint.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

static aios_loop_t *new_test_loop(void) {
  aios_loop_t *loop = NULL;
  CHECK_EQ(aios_loop_new(&loop), 0);
  return loop;
}

/* No child of this process is waiting to be reaped. */
static void check_no_zombies(void) {
  int status;
  pid_t rc = waitpid(-1, &status, WNOHANG);
  CHECK(rc == 0 || (rc == -1 && errno == ECHILD));
}

static aios_spawn_options_t options_piped(int in, int out, int err) {
  aios_spawn_options_t options;
  memset(&options, 0, sizeof options);
  options.size = sizeof options;
  options.stdin_mode = in;
  options.stdout_mode = out;
  options.stderr_mode = err;
  return options;
}

static aios_process_t *spawn_shell(aios_loop_t *loop, const char *command, const aios_spawn_options_t *options) {
  aios_future_t *future = NULL;
  CHECK_EQ(aios_create_subprocess_shell(loop, command, options, &future), 0);
  return (aios_process_t *)await_value(loop, future);
}

static aios_output_t *communicate(aios_loop_t *loop, aios_process_t *process, const void *input, size_t length) {
  aios_future_t *future = NULL;
  CHECK_EQ(aios_process_communicate(process, input, length, &future), 0);
  return (aios_output_t *)await_value(loop, future);
}

static int returncode_of(aios_process_t *process) {
  aios_subprocess_t *subprocess = NULL;
  int code = 12345;
  CHECK_EQ(aios_process_get_subprocess(process, &subprocess), 0);
  CHECK_EQ(aios_subprocess_get_returncode(subprocess, &code), 1);
  CHECK_EQ(aios_subprocess_unref(subprocess), 0);
  return code;
}

static void test_communicate_outputs_and_returncode(void) {
  aios_loop_t *loop = new_test_loop();
  aios_spawn_options_t options = options_piped(AIOS_CHILD_INHERIT, AIOS_CHILD_PIPE, AIOS_CHILD_PIPE);
  aios_process_t *process = spawn_shell(loop, "echo out; echo err >&2; exit 3", &options);
  aios_output_t *output = communicate(loop, process, NULL, 0);
  CHECK_STR_EQ((const char *)output->out->data, "out\n");
  CHECK_STR_EQ((const char *)output->err->data, "err\n");
  aios_output_free(output);
  CHECK_EQ(returncode_of(process), 3);
  {
    /* wait after the end: at once, with the code; a signal now is ProcessLookupError. */
    aios_future_t *waited = NULL;
    aios_subprocess_t *subprocess = NULL;
    CHECK_EQ(aios_process_wait(process, &waited), 0);
    CHECK_EQ((int)(intptr_t)await_value(loop, waited), 3);
    CHECK_EQ(aios_process_get_subprocess(process, &subprocess), 0);
    CHECK_EQ(aios_subprocess_kill(subprocess), -ESRCH);
    CHECK_EQ(aios_subprocess_unref(subprocess), 0);
  }
  CHECK_EQ(aios_process_unref(process), 0);
  close_loop(loop);
  check_no_zombies();
}

/* What a process given `input` wrote to its stdout (the text is valid
 * until the next call); the process is let go of. */
static const char *output_of(aios_loop_t *loop, aios_process_t *process, const char *input) {
  static char text[256];
  aios_output_t *output = communicate(loop, process, input, strlen(input));
  snprintf(text, sizeof text, "%s", (const char *)output->out->data);
  aios_output_free(output);
  CHECK_EQ(aios_process_unref(process), 0);
  return text;
}

static const char *shell_output(aios_loop_t *loop, const char *command, const aios_spawn_options_t *options,
                                const char *input) {
  return output_of(loop, spawn_shell(loop, command, options), input);
}

/* The child's pipes are pipes, as asyncio makes them, so it can open
 * /dev/stdin and the rest; socket pairs on request (a socket refuses it). */
static void test_pipes_or_socket_pairs(void) {
  aios_loop_t *loop = new_test_loop();
  aios_spawn_options_t options = options_piped(AIOS_CHILD_PIPE, AIOS_CHILD_PIPE, AIOS_CHILD_PIPE);
  const char *script =
      "for f in /dev/stdin /dev/stdout /dev/stderr; do"
      "  if test -p $f; then printf p; elif test -S $f; then printf s; fi; done;"
      "cat /dev/stdin > /dev/stdout 2>/dev/null || printf ' refused'";
  CHECK_STR_EQ(shell_output(loop, script, &options, "in"), "pppin");
  options.socket_pairs = 1;
  CHECK_STR_EQ(shell_output(loop, script, &options, "in"), "sss refused");
  /* A caller built before socket_pairs (its size ends at `limit`) gets pipes. */
  options.size = offsetof(aios_spawn_options_t, limit) + sizeof options.limit;
  CHECK_STR_EQ(shell_output(loop, script, &options, "in"), "pppin");
  options.size = offsetof(aios_spawn_options_t, limit);
  {
    aios_future_t *future = NULL;
    CHECK_EQ(aios_create_subprocess_shell(loop, "true", &options, &future), AIOS_EINVAL);
  }
  close_loop(loop);
  check_no_zombies();
}

/* What a program (not a shell) wrote to its stdout. */
static const char *exec_output(aios_loop_t *loop, const char *program, const char *const *args,
                               const aios_spawn_options_t *options) {
  aios_future_t *future = NULL;
  CHECK_EQ(aios_create_subprocess_exec(loop, program, args, options, &future), 0);
  return output_of(loop, (aios_process_t *)await_value(loop, future), "");
}

/* `executable` runs another file, the program staying argv[0] (Popen's
 * executable=); for a shell command it is the shell. */
static void test_executable(void) {
  aios_loop_t *loop = new_test_loop();
  aios_spawn_options_t options = options_piped(AIOS_CHILD_INHERIT, AIOS_CHILD_PIPE, AIOS_CHILD_INHERIT);
  static const char *const args[] = {"-c", "printf '%s' \"$0\"", NULL};
  aios_future_t *future = NULL;
  options.executable = "/bin/sh";
  CHECK_STR_EQ(exec_output(loop, "named-by-argv0", args, &options), "named-by-argv0");
  options.executable = "sh"; /* searched in PATH, as the program is */
  CHECK_STR_EQ(exec_output(loop, "/nonexistent/other", args, &options), "/nonexistent/other");
  options.executable = "/bin/dash";
  if (access(options.executable, X_OK) == 0)
    CHECK_STR_EQ(shell_output(loop, "printf '%s' \"$0\"", &options, ""), "/bin/dash");
  options.executable = "/nonexistent-aios-shell";
  CHECK_EQ(aios_create_subprocess_exec(loop, "sh", args, &options, &future), -ENOENT);
  options.executable = "";
  CHECK_EQ(aios_create_subprocess_exec(loop, "sh", args, &options, &future), AIOS_EINVAL);
  /* A caller built before `executable` (its size ends at socket_pairs) runs the program. */
  options.executable = "/nonexistent-aios-shell";
  options.size = offsetof(aios_spawn_options_t, socket_pairs) + sizeof options.socket_pairs;
  CHECK_STR_EQ(exec_output(loop, "sh", args, &options), "sh");
  close_loop(loop);
  check_no_zombies();
}

/* Whether `signal` is ignored in a child started with `signals` (the
 * child reads its SigIgn mask). */
static int ignored_in_child(aios_loop_t *loop, int signals, int signal) {
  aios_spawn_options_t options = options_piped(AIOS_CHILD_INHERIT, AIOS_CHILD_PIPE, AIOS_CHILD_INHERIT);
  unsigned long long mask;
  options.signals = signals;
  mask = strtoull(shell_output(loop, "sed -n 's/^SigIgn:[[:space:]]*//p' /proc/self/status", &options, ""),
                  NULL, 16);
  return (int)((mask >> (signal - 1)) & 1);
}

/* The signals a parent ignores: reset (every default, libuv's), restored
 * (SIGPIPE and SIGXFSZ default, the others kept: Popen's restore_signals),
 * or inherited. */
static void test_child_signals(void) {
  aios_loop_t *loop = new_test_loop();
  struct sigaction ignore, old_pipe, old_hup;
  aios_future_t *future = NULL;
  aios_spawn_options_t options = options_piped(AIOS_CHILD_INHERIT, AIOS_CHILD_INHERIT, AIOS_CHILD_INHERIT);
  memset(&ignore, 0, sizeof ignore);
  ignore.sa_handler = SIG_IGN;
  CHECK_EQ(sigaction(SIGPIPE, &ignore, &old_pipe), 0);
  CHECK_EQ(sigaction(SIGHUP, &ignore, &old_hup), 0);
  CHECK_EQ(ignored_in_child(loop, AIOS_CHILD_SIGNALS_RESET, SIGPIPE), 0);
  CHECK_EQ(ignored_in_child(loop, AIOS_CHILD_SIGNALS_RESET, SIGHUP), 0);
  CHECK_EQ(ignored_in_child(loop, AIOS_CHILD_SIGNALS_RESTORE, SIGPIPE), 0);
  CHECK_EQ(ignored_in_child(loop, AIOS_CHILD_SIGNALS_RESTORE, SIGHUP), 1);
  CHECK_EQ(ignored_in_child(loop, AIOS_CHILD_SIGNALS_INHERIT, SIGPIPE), 1);
  CHECK_EQ(ignored_in_child(loop, AIOS_CHILD_SIGNALS_INHERIT, SIGHUP), 1);
  CHECK_EQ(sigaction(SIGPIPE, &old_pipe, NULL), 0);
  CHECK_EQ(sigaction(SIGHUP, &old_hup, NULL), 0);
  options.signals = 3;
  CHECK_EQ(aios_create_subprocess_shell(loop, "true", &options, &future), AIOS_EINVAL);
  options.signals = -1;
  CHECK_EQ(aios_create_subprocess_shell(loop, "true", &options, &future), AIOS_EINVAL);
  close_loop(loop);
  check_no_zombies();
}

/* A process's exit code, awaited for at most `seconds` (a hang is a
 * timeout, not a stalled test). */
static int exit_code_within(aios_loop_t *loop, aios_process_t *process, double seconds) {
  aios_future_t *waited = NULL, *bounded = NULL;
  void *value = NULL;
  CHECK_EQ(aios_process_wait(process, &waited), 0);
  CHECK_EQ(aios_wait_for(waited, seconds, &bounded), 0);
  CHECK_EQ(await_status(loop, bounded), 0);   /* not a timeout */
  CHECK_EQ(aios_future_result(waited, &value), 0);
  CHECK_EQ(aios_future_unref(waited), 0);
  return (int)(intptr_t)value;
}

static volatile sig_atomic_t g_own_sigchld;

static void own_sigchld(int signum) {
  (void)signum;
  g_own_sigchld++;
}

/* A SIGCHLD handler installed behind the library's back (as Python's
 * signal.signal installs one) takes SIGCHLD from libuv: the children are
 * still reaped (by their pidfds), and wait ends. */
static void test_children_reaped_without_sigchld(void) {
  aios_loop_t *loop;
  int probe = (int)syscall(SYS_pidfd_open, getpid(), 0);
  if (probe < 0) {
    /* Before Linux 5.3, or under a valgrind that does not know the call:
     * SIGCHLD alone reaps, and a handler that takes it away stops that. */
    printf("# skipped: no pidfd_open here (%s)\n", strerror(errno));
    return;
  }
  close(probe);
  loop = new_test_loop();
  aios_spawn_options_t options = options_piped(AIOS_CHILD_INHERIT, AIOS_CHILD_INHERIT, AIOS_CHILD_INHERIT);
  aios_process_t *first = spawn_shell(loop, "sleep 0.1; exit 4", &options), *second;
  struct sigaction mine, library;
  memset(&mine, 0, sizeof mine);
  mine.sa_handler = own_sigchld;
  CHECK_EQ(sigaction(SIGCHLD, &mine, &library), 0);
  g_own_sigchld = 0;
  second = spawn_shell(loop, "exit 5", &options);
  CHECK_EQ(exit_code_within(loop, first, 10.0), 4);
  CHECK_EQ(exit_code_within(loop, second, 10.0), 5);
  CHECK(g_own_sigchld >= 1);               /* the signals went to the program's handler */
  CHECK_EQ(sigaction(SIGCHLD, &library, NULL), 0);
  CHECK_EQ(aios_process_unref(first), 0);
  CHECK_EQ(aios_process_unref(second), 0);
  close_loop(loop);
  check_no_zombies();
}

static void test_stderr_to_stdout_and_streams(void) {
  aios_loop_t *loop = new_test_loop();
  aios_spawn_options_t options = options_piped(AIOS_CHILD_PIPE, AIOS_CHILD_PIPE, AIOS_CHILD_STDOUT);
  aios_process_t *process = spawn_shell(loop, "read line; echo \"got $line\"; echo to-err >&2", &options);
  aios_stream_t *in = NULL, *out = NULL, *err = NULL;
  aios_future_t *future = NULL;
  aios_bytes_t *bytes;
  CHECK_EQ(aios_process_get_stream(process, 0, &in), 0);
  CHECK_EQ(aios_process_get_stream(process, 1, &out), 0);
  CHECK_EQ(aios_process_get_stream(process, 2, &err), AIOS_EINVAL);
  CHECK_EQ(aios_process_get_stream(process, 3, &err), AIOS_EINVAL);
  CHECK_EQ(aios_stream_write(in, "hello\n", 6), 0);
  CHECK_EQ(aios_stream_drain(in, &future), 0);
  CHECK_EQ(await_status(loop, future), 0);
  CHECK_EQ(aios_stream_close(in), 0);
  CHECK_EQ(aios_stream_read(out, -1, &future), 0);
  bytes = (aios_bytes_t *)await_value(loop, future);
  CHECK_STR_EQ((const char *)bytes->data, "got hello\nto-err\n");
  aios_bytes_free(bytes);
  CHECK_EQ(aios_process_wait(process, &future), 0);
  CHECK_EQ((int)(intptr_t)await_value(loop, future), 0);
  CHECK_EQ(aios_stream_unref(in), 0);
  CHECK_EQ(aios_stream_unref(out), 0);
  CHECK_EQ(aios_process_unref(process), 0);
  close_loop(loop);
  check_no_zombies();
}

static void test_large_input_and_output_at_once(void) {
  /* Both ways at once through cat: a sequential write then read would
   * deadlock on the pipes' buffers. */
  size_t size = under_valgrind() ? 2u << 20 : 10u << 20, i;
  unsigned char *input = malloc(size);
  aios_loop_t *loop = new_test_loop();
  aios_spawn_options_t options = options_piped(AIOS_CHILD_PIPE, AIOS_CHILD_PIPE, AIOS_CHILD_INHERIT);
  aios_future_t *future = NULL;
  aios_process_t *process;
  aios_output_t *output;
  for (i = 0; i < size; i++) input[i] = (unsigned char)(i * 7 + i / 4096);
  CHECK_EQ(aios_create_subprocess_exec(loop, "cat", NULL, &options, &future), 0);
  process = (aios_process_t *)await_value(loop, future);
  output = communicate(loop, process, input, size);
  CHECK_EQ(output->out->length, size);
  CHECK(memcmp(output->out->data, input, size) == 0);
  CHECK(output->err == NULL);
  aios_output_free(output);
  CHECK_EQ(returncode_of(process), 0);
  CHECK_EQ(aios_process_unref(process), 0);
  free(input);
  close_loop(loop);
  check_no_zombies();
}

static void test_kill_and_several_waiters(void) {
  aios_loop_t *loop = new_test_loop();
  const char *args[] = {"30", NULL};
  aios_future_t *future = NULL, *waiters[3];
  aios_process_t *process;
  aios_subprocess_t *subprocess = NULL;
  int i, code = 0;
  CHECK_EQ(aios_create_subprocess_exec(loop, "sleep", args, NULL, &future), 0);
  process = (aios_process_t *)await_value(loop, future);
  for (i = 0; i < 3; i++) CHECK_EQ(aios_process_wait(process, &waiters[i]), 0);
  CHECK_EQ(aios_process_get_subprocess(process, &subprocess), 0);
  CHECK(aios_subprocess_get_pid(subprocess) > 0);
  CHECK_EQ(aios_subprocess_get_returncode(subprocess, &code), 0);
  CHECK_EQ(aios_subprocess_send_signal(subprocess, 12345), -EINVAL);
  CHECK_EQ(aios_subprocess_kill(subprocess), 0);
  for (i = 0; i < 3; i++) CHECK_EQ((int)(intptr_t)await_value(loop, waiters[i]), -SIGKILL);
  CHECK_EQ(aios_subprocess_get_returncode(subprocess, &code), 1);
  CHECK_EQ(code, -SIGKILL);
  CHECK_EQ(aios_subprocess_unref(subprocess), 0);
  CHECK_EQ(aios_process_unref(process), 0);
  close_loop(loop);
  check_no_zombies();
}

static void test_spawn_failures(void) {
  aios_loop_t *loop = new_test_loop();
  aios_future_t *future = NULL;
  aios_spawn_options_t options = options_piped(AIOS_CHILD_PIPE, AIOS_CHILD_PIPE, AIOS_CHILD_PIPE);
  char plain[64];
  int fd, many[300], i;
  snprintf(plain, sizeof plain, "/tmp/aios-plain-%d", (int)getpid());
  fd = open(plain, O_CREAT | O_WRONLY, 0644);
  CHECK(fd >= 0);
  close(fd);
  CHECK_EQ(aios_create_subprocess_exec(loop, "/no/such/program", NULL, &options, &future), -ENOENT);
  CHECK_EQ(aios_create_subprocess_exec(loop, plain, NULL, &options, &future), -EACCES);
  options.cwd = "/no/such/directory";
  CHECK_EQ(aios_create_subprocess_exec(loop, "true", NULL, &options, &future), -ENOENT);
  options.cwd = NULL;
  CHECK_EQ(aios_create_subprocess_exec(loop, NULL, NULL, &options, &future), AIOS_EINVAL);
  CHECK_EQ(aios_create_subprocess_exec(loop, "", NULL, &options, &future), AIOS_EINVAL);
  CHECK_EQ(aios_create_subprocess_shell(loop, NULL, &options, &future), AIOS_EINVAL);
  CHECK_EQ(aios_create_subprocess_exec(loop, "true", NULL, &options, NULL), AIOS_EINVAL);
  options.stdout_mode = AIOS_CHILD_STDOUT;
  CHECK_EQ(aios_create_subprocess_exec(loop, "true", NULL, &options, &future), AIOS_EINVAL);
  options.stdout_mode = 99;
  CHECK_EQ(aios_create_subprocess_exec(loop, "true", NULL, &options, &future), AIOS_EINVAL);
  options.stdout_mode = AIOS_CHILD_FD;
  options.stdout_fd = -1;
  CHECK_EQ(aios_create_subprocess_exec(loop, "true", NULL, &options, &future), AIOS_EINVAL);
  options = options_piped(0, 0, 0);
  for (i = 0; i < 300; i++) many[i] = 3 + i;
  options.pass_fds = many;
  options.pass_fds_count = 300;
  CHECK_EQ(aios_create_subprocess_exec(loop, "true", NULL, &options, &future), AIOS_EINVAL);
  options.pass_fds_count = 0;
  options.size = 8;
  CHECK_EQ(aios_create_subprocess_exec(loop, "true", NULL, &options, &future), AIOS_EINVAL);
  unlink(plain);
  close_loop(loop);
  CHECK_EQ(aios_create_subprocess_exec(loop, "true", NULL, NULL, &future), AIOS_EBADHANDLE);
  check_no_zombies();
}

/* A subprocess protocol recording its calls. */
typedef struct {
  char log[256];
  size_t received;
  int destroyed;
  aios_loop_t *loop;
} recorder_t;

static void note(recorder_t *r, const char *what) {
  strncat(r->log, what, sizeof r->log - strlen(r->log) - 1);
}
static void rec_made(aios_subprocess_t *s, void *arg) { (void)s; note(arg, "made "); }
static void rec_data(aios_subprocess_t *s, int fd, const void *data, size_t length, void *arg) {
  (void)s;
  (void)data;
  CHECK_EQ(fd, 1);
  ((recorder_t *)arg)->received += length;
}
static void rec_pipe_lost(aios_subprocess_t *s, int fd, aios_error_t *error, void *arg) {
  char text[32];
  (void)s;
  snprintf(text, sizeof text, "pipe%d%s ", fd, error ? "!" : "");
  note(arg, text);
}
static void rec_exited(aios_subprocess_t *s, void *arg) { (void)s; note(arg, "exited "); }
static void rec_lost(aios_subprocess_t *s, aios_error_t *error, void *arg) {
  (void)s;
  CHECK(error == NULL);
  note(arg, "lost");
  CHECK_EQ(aios_loop_stop(((recorder_t *)arg)->loop), 0);
}
static void rec_destroy(void *arg) { ((recorder_t *)arg)->destroyed++; }

static aios_subprocess_protocol_t recorder_protocol(recorder_t *r) {
  aios_subprocess_protocol_t p;
  memset(&p, 0, sizeof p);
  p.size = sizeof p;
  p.arg = r;
  p.connection_made = rec_made;
  p.pipe_data_received = rec_data;
  p.pipe_connection_lost = rec_pipe_lost;
  p.process_exited = rec_exited;
  p.connection_lost = rec_lost;
  p.destroy = rec_destroy;
  return p;
}

static void test_subprocess_protocol_events(void) {
  aios_loop_t *loop = new_test_loop();
  recorder_t r;
  aios_subprocess_protocol_t protocol;
  aios_spawn_options_t options = options_piped(AIOS_CHILD_PIPE, AIOS_CHILD_PIPE, AIOS_CHILD_DEVNULL);
  aios_future_t *future = NULL;
  aios_subprocess_t *subprocess;
  aios_transport_t *in = NULL, *none = NULL;
  const char *args[] = {"-c", "head -c 100000 /dev/zero; cat >/dev/null", NULL};
  memset(&r, 0, sizeof r);
  r.loop = loop;
  protocol = recorder_protocol(&r);
  /* A failure to start leaves the protocol's argument with the caller. */
  CHECK_EQ(aios_subprocess_exec(loop, &protocol, "/no/such/program", NULL, &options, &future), -ENOENT);
  CHECK_EQ(r.destroyed, 0);
  CHECK_EQ(aios_subprocess_exec(loop, &protocol, "/bin/sh", args, &options, &future), 0);
  subprocess = (aios_subprocess_t *)await_value(loop, future);
  CHECK_STR_EQ(r.log, "made ");
  CHECK_EQ(aios_subprocess_get_pipe_transport(subprocess, 2, &none), AIOS_EINVAL);
  CHECK_EQ(aios_subprocess_get_pipe_transport(subprocess, 0, &in), 0);
  /* The subprocess follows its pipes through their protocols: one of
   * them replaced, it would never learn that pipe's end. Refused, and the
   * caller keeps the protocol's argument. */
  {
    int destroyed = 0;
    aios_protocol_t other;
    memset(&other, 0, sizeof other);
    other.size = sizeof other;
    other.destroy = count_destructor;
    other.arg = &destroyed;
    CHECK_EQ(aios_transport_set_protocol(in, &other), AIOS_EINVAL);
    CHECK_EQ(destroyed, 0);
  }
  CHECK_EQ(aios_transport_write(in, "x", 1), 0);
  CHECK_EQ(aios_transport_close(in), 0);
  CHECK_EQ(aios_transport_unref(in), 0);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_EQ(r.received, 100000);
  /* stdin's pipe closed first (by us); stdout's EOF and the exit race each
   * other; connection_lost comes last, once. */
  CHECK(strcmp(r.log, "made pipe0 pipe1 exited lost") == 0 || strcmp(r.log, "made pipe0 exited pipe1 lost") == 0);
  CHECK_EQ(r.destroyed, 1);
  CHECK_EQ(aios_subprocess_close(subprocess), 0);
  CHECK_EQ(aios_subprocess_is_closing(subprocess), 1);
  CHECK_EQ(aios_subprocess_unref(subprocess), 0);
  close_loop(loop);
  check_no_zombies();
}

static void test_close_kills_and_loop_close_reaps(void) {
  aios_loop_t *loop = new_test_loop();
  const char *args[] = {"30", NULL};
  aios_future_t *future = NULL, *waited = NULL;
  aios_process_t *process, *left;
  aios_subprocess_t *subprocess = NULL;
  pid_t pid;
  CHECK_EQ(aios_create_subprocess_exec(loop, "sleep", args, NULL, &future), 0);
  process = (aios_process_t *)await_value(loop, future);
  CHECK_EQ(aios_process_get_subprocess(process, &subprocess), 0);
  CHECK_EQ(aios_process_wait(process, &waited), 0);
  CHECK_EQ(aios_subprocess_close(subprocess), 0);
  CHECK_EQ((int)(intptr_t)await_value(loop, waited), -SIGKILL);
  CHECK_EQ(aios_subprocess_unref(subprocess), 0);
  CHECK_EQ(aios_process_unref(process), 0);
  /* One still running when the loop closes is killed and reaped. */
  CHECK_EQ(aios_create_subprocess_exec(loop, "sleep", args, NULL, &future), 0);
  left = (aios_process_t *)await_value(loop, future);
  CHECK_EQ(aios_process_get_subprocess(left, &subprocess), 0);
  pid = aios_subprocess_get_pid(subprocess);
  CHECK_EQ(aios_subprocess_unref(subprocess), 0);
  CHECK_EQ(aios_process_unref(left), 0);
  close_loop(loop);
  CHECK_EQ(kill(pid, 0), -1);
  check_no_zombies();
}

static int signal_calls, signal_destroyed;
static void on_signal(void *arg) {
  signal_calls++;
  if (signal_calls == 2) CHECK_EQ(aios_loop_stop((aios_loop_t *)arg), 0);
}
static void signal_destroy(void *arg) {
  (void)arg;
  signal_destroyed++;
}
/* Removes its own handler: its argument goes after the call. */
static void remove_self(void *arg) {
  CHECK_EQ(aios_loop_remove_signal_handler((aios_loop_t *)arg, SIGUSR2), 1);
  signal_calls += 10;
  CHECK_EQ(aios_loop_stop((aios_loop_t *)arg), 0);
}

static void test_signal_handlers(void) {
  aios_loop_t *loop = new_test_loop();
  struct sigaction action;
  char command[64];
  aios_process_t *sender;
  aios_future_t *future = NULL;
  signal_calls = signal_destroyed = 0;
  CHECK_EQ(aios_loop_add_signal_handler(loop, SIGKILL, on_signal, loop, NULL), AIOS_EINVAL);
  CHECK_EQ(aios_loop_add_signal_handler(loop, SIGSTOP, on_signal, loop, NULL), AIOS_EINVAL);
  CHECK_EQ(aios_loop_add_signal_handler(loop, 0, on_signal, loop, NULL), AIOS_EINVAL);
  CHECK_EQ(aios_loop_add_signal_handler(loop, 65, on_signal, loop, NULL), AIOS_EINVAL);
  CHECK_EQ(aios_loop_add_signal_handler(loop, SIGUSR1, NULL, loop, NULL), AIOS_EINVAL);
  CHECK_EQ(aios_loop_remove_signal_handler(loop, 65), AIOS_EINVAL);
  /* Replacing destroys the first argument. */
  CHECK_EQ(aios_loop_add_signal_handler(loop, SIGUSR1, on_signal, loop, signal_destroy), 0);
  CHECK_EQ(aios_loop_add_signal_handler(loop, SIGUSR1, on_signal, loop, signal_destroy), 0);
  CHECK_EQ(signal_destroyed, 1);
  /* raise() from here, then kill from another process. */
  raise(SIGUSR1);
  snprintf(command, sizeof command, "kill -USR1 %d", (int)getpid());
  sender = spawn_shell(loop, command, NULL);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_EQ(signal_calls, 2);
  CHECK_EQ(aios_process_wait(sender, &future), 0);
  CHECK_EQ((int)(intptr_t)await_value(loop, future), 0);
  CHECK_EQ(aios_process_unref(sender), 0);
  CHECK_EQ(aios_loop_remove_signal_handler(loop, SIGUSR1), 1);
  CHECK_EQ(signal_destroyed, 2);
  CHECK_EQ(aios_loop_remove_signal_handler(loop, SIGUSR1), 0);
  CHECK_EQ(sigaction(SIGUSR1, NULL, &action), 0);
  CHECK(action.sa_handler == SIG_DFL);
  /* A handler removing itself; one left for the loop's close to remove. */
  CHECK_EQ(aios_loop_add_signal_handler(loop, SIGUSR2, remove_self, loop, signal_destroy), 0);
  raise(SIGUSR2);
  CHECK_EQ(aios_loop_run_forever(loop), 0);
  CHECK_EQ(signal_calls, 12);
  CHECK_EQ(signal_destroyed, 3);
  CHECK_EQ(aios_loop_add_signal_handler(loop, SIGUSR1, on_signal, loop, signal_destroy), 0);
  close_loop(loop);
  CHECK_EQ(signal_destroyed, 4);
  CHECK_EQ(sigaction(SIGUSR1, NULL, &action), 0);
  CHECK(action.sa_handler == SIG_DFL);
  /* SIGPIPE stays ignored after its handler goes. */
  loop = new_test_loop();
  CHECK_EQ(aios_loop_add_signal_handler(loop, SIGPIPE, on_signal, loop, NULL), 0);
  CHECK_EQ(aios_loop_remove_signal_handler(loop, SIGPIPE), 1);
  CHECK_EQ(sigaction(SIGPIPE, NULL, &action), 0);
  CHECK(action.sa_handler == SIG_IGN);
  close_loop(loop);
  check_no_zombies();
}

static void test_pipes(void) {
  aios_loop_t *loop = new_test_loop();
  int ends[2], file;
  aios_future_t *future = NULL;
  aios_stream_t *reader, *writer;
  aios_bytes_t *bytes;
  aios_transport_t *transport;
  aios_protocol_t protocol;
  CHECK_EQ(pipe(ends), 0);
  CHECK_EQ(aios_open_read_pipe(loop, ends[0], 0, &future), 0);
  reader = (aios_stream_t *)await_value(loop, future);
  CHECK_EQ(aios_open_write_pipe(loop, ends[1], &future), 0);
  writer = (aios_stream_t *)await_value(loop, future);
  CHECK_EQ(aios_stream_write(writer, "one\ntwo\n", 8), 0);
  CHECK_EQ(aios_stream_readline(reader, &future), 0);
  bytes = (aios_bytes_t *)await_value(loop, future);
  CHECK_STR_EQ((const char *)bytes->data, "one\n");
  aios_bytes_free(bytes);
  CHECK_EQ(aios_stream_can_write_eof(writer), 1);
  CHECK_EQ(aios_stream_write_eof(writer), 0); /* a pipe's write_eof closes it */
  CHECK_EQ(aios_stream_read(reader, -1, &future), 0);
  bytes = (aios_bytes_t *)await_value(loop, future);
  CHECK_STR_EQ((const char *)bytes->data, "two\n");
  aios_bytes_free(bytes);
  CHECK_EQ(aios_stream_at_eof(reader), 1);
  CHECK_EQ(aios_stream_get_transport(reader, &transport), 0);
  CHECK_EQ(aios_transport_write(transport, "x", 1), AIOS_EINVAL);
  CHECK_EQ(aios_transport_can_write_eof(transport), 0);
  CHECK_EQ(aios_transport_unref(transport), 0);
  CHECK_EQ(aios_stream_unref(reader), 0);
  CHECK_EQ(aios_stream_unref(writer), 0);
  /* A regular file and /dev/null are refused, and stay the caller's. */
  memset(&protocol, 0, sizeof protocol);
  protocol.size = sizeof protocol;
  file = open("/etc/hostname", O_RDONLY);
  CHECK(file >= 0);
  CHECK_EQ(aios_connect_read_pipe(loop, &protocol, file, &future), AIOS_EINVAL);
  CHECK_EQ(fcntl(file, F_GETFD), 0);
  close(file);
  file = open("/dev/null", O_WRONLY);
  CHECK_EQ(aios_connect_write_pipe(loop, &protocol, file, &future), -EPERM);
  close(file);
  CHECK_EQ(aios_connect_read_pipe(loop, &protocol, -1, &future), -EBADF);
  close_loop(loop);
}


/* Reads one line from `stream`; checks it. */
static void expect_line(aios_loop_t *loop, aios_stream_t *stream, const char *line) {
  aios_future_t *future = NULL;
  aios_bytes_t *bytes;
  CHECK_EQ(aios_stream_readline(stream, &future), 0);
  bytes = (aios_bytes_t *)await_value(loop, future);
  CHECK_STR_EQ((const char *)bytes->data, line);
  aios_bytes_free(bytes);
}

static void test_fifo_and_pty(void) {
  aios_loop_t *loop = new_test_loop();
  char dir[] = "/tmp/aios-fifo-XXXXXX", path[64];
  aios_future_t *future = NULL;
  aios_stream_t *reader, *writer;
  aios_error_t *error;
  int in, out, master, slave;
  /* A FIFO: opened for reading first (non-blocking, or open would wait). */
  CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/fifo", dir);
  CHECK_EQ(mkfifo(path, 0600), 0);
  in = open(path, O_RDONLY | O_NONBLOCK);
  out = open(path, O_WRONLY);
  CHECK(in >= 0 && out >= 0);
  CHECK_EQ(aios_open_read_pipe(loop, in, 0, &future), 0);
  reader = (aios_stream_t *)await_value(loop, future);
  CHECK_EQ(aios_open_write_pipe(loop, out, &future), 0);
  writer = (aios_stream_t *)await_value(loop, future);
  CHECK_EQ(aios_stream_write(writer, "through a fifo\n", 15), 0);
  expect_line(loop, reader, "through a fifo\n");
  CHECK_EQ(aios_stream_close(writer), 0);
  CHECK_EQ(aios_stream_wait_closed(writer, &future), 0);
  CHECK_EQ(await_status(loop, future), 0);
  CHECK_EQ(aios_stream_read(reader, -1, &future), 0);
  aios_bytes_free(await_value(loop, future)); /* EOF once the writer closed */
  CHECK_EQ(aios_stream_at_eof(reader), 1);
  CHECK_EQ(aios_stream_unref(reader), 0);
  CHECK_EQ(aios_stream_unref(writer), 0);
  unlink(path);
  rmdir(dir);
  /* A pty: the master read as a pipe; when the slave closes, reading
   * fails with EIO, as asyncio reports it. */
  master = posix_openpt(O_RDWR | O_NOCTTY);
  CHECK(master >= 0);
  CHECK_EQ(grantpt(master), 0);
  CHECK_EQ(unlockpt(master), 0);
  slave = open(ptsname(master), O_RDWR | O_NOCTTY);
  CHECK(slave >= 0);
  CHECK_EQ(aios_open_read_pipe(loop, master, 0, &future), 0);
  reader = (aios_stream_t *)await_value(loop, future);
  CHECK_EQ(write(slave, "from the tty\n", 13), 13);
  expect_line(loop, reader, "from the tty\r\n");
  close(slave);
  CHECK_EQ(aios_stream_read(reader, -1, &future), 0);
  error = await_error(loop, future);
  CHECK_EQ(aios_error_code(error), -EIO);
  CHECK_EQ(aios_error_unref(error), 0);
  CHECK_EQ(aios_stream_unref(reader), 0);
  close_loop(loop);
}

/* Starts `count` children at once (exit i % 7) and checks every code. */
static void spawn_many(aios_loop_t *loop, int count) {
  aios_future_t **futures = calloc((size_t)count, sizeof *futures);
  aios_process_t **processes = calloc((size_t)count, sizeof *processes);
  int i;
  for (i = 0; i < count; i++) {
    char command[32];
    snprintf(command, sizeof command, "exit %d", i % 7);
    CHECK_EQ(aios_create_subprocess_shell(loop, command, NULL, &futures[i]), 0);
  }
  for (i = 0; i < count; i++) {
    processes[i] = (aios_process_t *)await_value(loop, futures[i]);
    CHECK_EQ(aios_process_wait(processes[i], &futures[i]), 0);
  }
  for (i = 0; i < count; i++) {
    CHECK_EQ((int)(intptr_t)await_value(loop, futures[i]), i % 7);
    CHECK_EQ(aios_process_unref(processes[i]), 0);
  }
  free(futures);
  free(processes);
}

static void test_200_concurrent_spawns(void) {
  aios_loop_t *loop = new_test_loop();
  spawn_many(loop, under_valgrind() ? 50 : 200);
  close_loop(loop);
  check_no_zombies();
}

static void *spawn_on_thread(void *arg) {
  aios_loop_t *loop = new_test_loop();
  (void)arg;
  spawn_many(loop, 20);
  close_loop(loop);
  return NULL;
}

static void test_subprocesses_on_two_threads(void) {
  pthread_t threads[2];
  int i;
  /* The first spawn makes Swift's metadata on this thread (see warm_up_runtime). */
  spawn_on_thread(NULL);
  for (i = 0; i < 2; i++) CHECK_EQ(pthread_create(&threads[i], NULL, spawn_on_thread, NULL), 0);
  for (i = 0; i < 2; i++) CHECK_EQ(pthread_join(threads[i], NULL), 0);
  check_no_zombies();
}

/* A writer that writes again from resume_writing and closes after its last
 * chunk: the close must wait for the write that resume_writing started. */
typedef struct {
  size_t sent, total;
  int lost;
  char chunk[65536];
} refiller_t;

static void refill(aios_transport_t *t, void *arg) {
  refiller_t *r = arg;
  while (r->sent < r->total) {
    long long buffered;
    CHECK_EQ(aios_transport_write(t, r->chunk, sizeof r->chunk), 0);
    r->sent += sizeof r->chunk;
    buffered = aios_transport_get_write_buffer_size(t);
    if (buffered > 64 * 1024) return; /* paused: resume_writing comes back here */
  }
  CHECK_EQ(aios_transport_close(t), 0);
}
static void refiller_made(aios_transport_t *t, void *arg) { refill(t, arg); }
static void refiller_lost(aios_transport_t *t, aios_error_t *error, void *arg) {
  (void)t;
  CHECK(error == NULL);
  ((refiller_t *)arg)->lost++;
}

static void test_close_after_writing_in_resume_writing(void) {
  aios_loop_t *loop = new_test_loop();
  static refiller_t r;
  aios_protocol_t protocol;
  aios_future_t *future = NULL;
  aios_stream_t *reader;
  aios_transport_t *transport;
  aios_bytes_t *bytes;
  int ends[2];
  memset(&r, 'x', sizeof r);
  r.sent = 0;
  r.total = 64 * sizeof r.chunk;
  r.lost = 0;
  memset(&protocol, 0, sizeof protocol);
  protocol.size = sizeof protocol;
  protocol.arg = &r;
  protocol.connection_made = refiller_made;
  protocol.resume_writing = refill;
  protocol.connection_lost = refiller_lost;
  CHECK_EQ(pipe(ends), 0);
  CHECK_EQ(aios_open_read_pipe(loop, ends[0], 0, &future), 0);
  reader = (aios_stream_t *)await_value(loop, future);
  CHECK_EQ(aios_connect_write_pipe(loop, &protocol, ends[1], &future), 0);
  transport = (aios_transport_t *)await_value(loop, future);
  CHECK_EQ(aios_stream_read(reader, -1, &future), 0);
  bytes = (aios_bytes_t *)await_value(loop, future);
  CHECK_EQ(bytes->length, r.total);
  aios_bytes_free(bytes);
  CHECK_EQ(r.lost, 1);
  CHECK_EQ(aios_transport_unref(transport), 0);
  CHECK_EQ(aios_stream_unref(reader), 0);
  close_loop(loop);
}

static int released;
static void count_release(void *arg) {
  (void)arg;
  released++;
}

/* write_nocopy sends from the caller's memory and lets go of it once. */
static void test_write_nocopy(void) {
  aios_loop_t *loop = new_test_loop();
  size_t size = 4u << 20, i;
  unsigned char *data = malloc(size);
  aios_protocol_t protocol;
  aios_future_t *future = NULL;
  aios_stream_t *reader;
  aios_transport_t *transport;
  aios_bytes_t *bytes;
  int ends[2];
  for (i = 0; i < size; i++) data[i] = (unsigned char)(i * 13);
  memset(&protocol, 0, sizeof protocol);
  protocol.size = sizeof protocol;
  released = 0;
  CHECK_EQ(pipe(ends), 0);
  CHECK_EQ(aios_open_read_pipe(loop, ends[0], 0, &future), 0);
  reader = (aios_stream_t *)await_value(loop, future);
  CHECK_EQ(aios_connect_write_pipe(loop, &protocol, ends[1], &future), 0);
  transport = (aios_transport_t *)await_value(loop, future);
  /* A small write the pipe takes at once: released before the call returns. */
  CHECK_EQ(aios_transport_write_nocopy(transport, "abc", 3, count_release, NULL), 0);
  CHECK_EQ(released, 1);
  /* A big one waits in the buffer, sent from `data` itself. */
  CHECK_EQ(aios_transport_write_nocopy(transport, data, size, count_release, NULL), 0);
  CHECK_EQ(released, 1);
  CHECK(aios_transport_get_write_buffer_size(transport) > 0);
  CHECK_EQ(aios_transport_write_nocopy(transport, NULL, 1, count_release, NULL), AIOS_EINVAL);
  CHECK_EQ(aios_transport_close(transport), 0);
  CHECK_EQ(aios_stream_readexactly(reader, 3 + size, &future), 0);
  bytes = (aios_bytes_t *)await_value(loop, future);
  CHECK(memcmp(bytes->data, "abc", 3) == 0);
  CHECK(memcmp(bytes->data + 3, data, size) == 0);
  aios_bytes_free(bytes);
  CHECK_EQ(released, 2);
  /* Ignored after close: released at once. */
  CHECK_EQ(aios_transport_write_nocopy(transport, data, 10, count_release, NULL), 0);
  CHECK_EQ(released, 3);
  CHECK_EQ(aios_transport_unref(transport), 0);
  CHECK_EQ(aios_stream_unref(reader), 0);
  free(data);
  close_loop(loop);
}

int main(int argc, char **argv) {
  static const test_entry_t tests[] = {
      TEST_ENTRY(test_communicate_outputs_and_returncode),
      TEST_ENTRY(test_pipes_or_socket_pairs),
      TEST_ENTRY(test_executable),
      TEST_ENTRY(test_child_signals),
      TEST_ENTRY(test_children_reaped_without_sigchld),
      TEST_ENTRY(test_stderr_to_stdout_and_streams),
      TEST_ENTRY(test_large_input_and_output_at_once),
      TEST_ENTRY(test_kill_and_several_waiters),
      TEST_ENTRY(test_spawn_failures),
      TEST_ENTRY(test_subprocess_protocol_events),
      TEST_ENTRY(test_close_kills_and_loop_close_reaps),
      TEST_ENTRY(test_signal_handlers),
      TEST_ENTRY(test_pipes),
      TEST_ENTRY(test_fifo_and_pty),
      TEST_ENTRY(test_200_concurrent_spawns),
      TEST_ENTRY(test_subprocesses_on_two_threads),
      TEST_ENTRY(test_close_after_writing_in_resume_writing),
      TEST_ENTRY(test_write_nocopy),
  };
  return run_tests(argc, argv, tests, sizeof tests / sizeof tests[0]);
}
