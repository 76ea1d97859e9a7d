/* Starting child processes (posix_spawn, as CPython's subprocess does when
 * it can: the child is made with vfork semantics, so its cost does not grow
 * with the parent's memory as fork's does), and the system calls Swift's
 * Glibc module does not bring.
 * Internal: not part of the installed header. */
#ifndef AIOS_PROCESS_H
#define AIOS_PROCESS_H

#include <stddef.h>
#include <sys/types.h>

#define AIOSI_INTERNAL __attribute__((visibility("hidden")))

/* 0 if epoll can watch `fd`, else -errno (a regular file, /dev/null). */
AIOSI_INTERNAL int aiosi_check_pollable(int fd);
/* pipe2(fds, O_CLOEXEC): 0 or -errno. */
AIOSI_INTERNAL int aiosi_pipe(int fds[2]);
/* A pidfd of the child `pid` (close-on-exec), readable once it exited; or
 * -errno (-ENOSYS before Linux 5.3). */
AIOSI_INTERNAL int aiosi_pidfd_open(int pid);
/* A close-on-exec AF_UNIX stream socket pair: 0 or -errno. */
AIOSI_INTERNAL int aiosi_socketpair(int fds[2]);
/* The bytes waiting to be read on a socket (ioctl FIONREAD; for a datagram
 * socket, the next datagram's size), or 0 when it cannot tell. */
AIOSI_INTERNAL size_t aiosi_bytes_readable(int fd);
/* accept4(fd, address, length, SOCK_NONBLOCK | SOCK_CLOEXEC): the new
 * descriptor, or -1 with errno set. */
struct sockaddr;
AIOSI_INTERNAL int aiosi_accept(int fd, struct sockaddr *address, unsigned int *length);

/* What a child starts with. */
typedef struct aiosi_spawn_s {
  const char *file;          /* searched in the child's PATH when it has no "/" */
  char *const *argv;         /* NULL-terminated */
  char *const *envp;         /* NULL: the parent's environment */
  const char *cwd;           /* NULL: the parent's */
  int stdio[3];              /* the parent's descriptors that become 0, 1, 2 */
  const int *keep;           /* descriptors above 2 the child keeps, sorted */
  size_t keep_count;
  int new_session;           /* setsid() */
  int process_group;         /* >= 0: setpgid(0, process_group) */
  int signals;               /* ChildSignals: 0 every signal default, 1 SIGPIPE
                                and SIGXFSZ default, 2 the ignored stay ignored */
} aiosi_spawn_t;

/* Starts the child: every descriptor above 2 but `keep` is closed in it,
 * its signals have the default actions `signals` says and none is blocked. @return 0 and
 * its pid in *pid, or -errno (a program that is missing or not executable,
 * or a bad cwd, is reported here). */
AIOSI_INTERNAL int aiosi_spawn(const aiosi_spawn_t *spec, pid_t *pid);

#endif
