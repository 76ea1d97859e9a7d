/* What a child process needs done between fork and exec that libuv's
 * uv_spawn has no option for (asyncio's close_fds and process_group), and
 * the system calls Swift's Glibc module does not bring.
 * Internal: not part of the installed header. */
#ifndef AIOS_PROCESS_H
#define AIOS_PROCESS_H

#include <stddef.h>

#define AIOSI_INTERNAL __attribute__((visibility("hidden")))

/* 0 if epoll can watch `fd`, else -errno (a regular file, /dev/null). */
AIOSI_INTERNAL int aiosi_check_pollable(int fd);
/* pipe2(fds, O_CLOEXEC): 0 or -errno. */
AIOSI_INTERNAL int aiosi_pipe(int fds[2]);

/* Arms the child setup for the next fork of this thread: in the child,
 * every descriptor from 3 up but those in `keep` (sorted, at most
 * AIOSI_KEEP_MAX) is marked close-on-exec, and when `process_group` >= 0
 * the child joins that group (0: a group of its own). libuv forks inside
 * uv_spawn; a pthread_atfork handler does this in the child before libuv's
 * own setup, which keeps the descriptors it maps onto 0, 1, 2 and `keep`.
 * Disarm with aiosi_spawn_disarm once uv_spawn returns. */
#define AIOSI_KEEP_MAX 256
AIOSI_INTERNAL int aiosi_spawn_arm(const int *keep, size_t count, int process_group);
AIOSI_INTERNAL void aiosi_spawn_disarm(void);

#endif
