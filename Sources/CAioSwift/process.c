#define _GNU_SOURCE
#include "aios_process.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

int aiosi_check_pollable(int fd) {
  int probe = epoll_create1(EPOLL_CLOEXEC);
  if (probe < 0) return -errno;
  struct epoll_event event = {.events = EPOLLIN};
  int rc = epoll_ctl(probe, EPOLL_CTL_ADD, fd, &event) == 0 ? 0 : -errno;
  close(probe);
  return rc;
}

int aiosi_pipe(int fds[2]) { return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno; }

/* The setup of this thread's next fork. The child is a copy of the forking
 * thread, so it reads the same variable; other threads' forks see theirs
 * (disarmed) and do nothing. */
static __thread struct {
  int armed;
  int process_group;
  size_t count;
  int keep[AIOSI_KEEP_MAX];
} spawn_setup;

/* Marks [low, high] close-on-exec; only async-signal-safe calls (the child
 * of a threaded parent may not take locks). */
static void cloexec_range(unsigned low, unsigned high) {
  if (low > high) return;
  if (syscall(SYS_close_range, low, high, CLOSE_RANGE_CLOEXEC) == 0) return;
  /* Kernels before 5.11: one descriptor at a time, up to the limit. */
  struct rlimit limit;
  unsigned last = high;
  if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur != RLIM_INFINITY && limit.rlim_cur - 1 < last)
    last = (unsigned)(limit.rlim_cur - 1);
  for (unsigned fd = low; fd <= last; fd++) {
    int flags = fcntl((int)fd, F_GETFD);
    if (flags >= 0) fcntl((int)fd, F_SETFD, flags | FD_CLOEXEC);
  }
}

static void child_after_fork(void) {
  if (!spawn_setup.armed) return;
  if (spawn_setup.process_group >= 0) setpgid(0, spawn_setup.process_group);
  unsigned low = 3;
  for (size_t i = 0; i < spawn_setup.count; i++) {
    unsigned fd = (unsigned)spawn_setup.keep[i];
    if (fd < low) continue;
    cloexec_range(low, fd - 1);
    low = fd + 1;
  }
  cloexec_range(low, ~0U);
}

static pthread_once_t handler_once = PTHREAD_ONCE_INIT;
static int handler_status;
static void install_handler(void) { handler_status = pthread_atfork(NULL, NULL, child_after_fork); }

int aiosi_spawn_arm(const int *keep, size_t count, int process_group) {
  if (count > AIOSI_KEEP_MAX) return -E2BIG;
  pthread_once(&handler_once, install_handler);
  if (handler_status != 0) return -handler_status;
  for (size_t i = 0; i < count; i++) spawn_setup.keep[i] = keep[i];
  spawn_setup.count = count;
  spawn_setup.process_group = process_group;
  spawn_setup.armed = 1;
  return 0;
}

void aiosi_spawn_disarm(void) { spawn_setup.armed = 0; }
