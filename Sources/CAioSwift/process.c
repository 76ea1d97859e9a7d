#define _GNU_SOURCE
#include "aios_process.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

extern char **environ;

int aiosi_check_pollable(int fd) {
  int probe = epoll_create1(EPOLL_CLOEXEC);
  if (probe < 0) return -errno;
  struct epoll_event event = {.events = EPOLLIN};
  int rc = epoll_ctl(probe, EPOLL_CTL_ADD, fd, &event) == 0 ? 0 : -errno;
  close(probe);
  return rc;
}

int aiosi_pipe(int fds[2]) { return pipe2(fds, O_CLOEXEC) == 0 ? 0 : -errno; }

int aiosi_pidfd_open(int pid) {
#ifdef SYS_pidfd_open
  /* Once the kernel (or valgrind) said it has none, it is not asked again. */
  static int missing;
  long fd;
  if (__atomic_load_n(&missing, __ATOMIC_RELAXED)) return -ENOSYS;
  fd = syscall(SYS_pidfd_open, pid, 0);
  if (fd < 0 && errno == ENOSYS) __atomic_store_n(&missing, 1, __ATOMIC_RELAXED);
  return fd >= 0 ? (int)fd : -errno;
#else
  (void)pid;
  return -ENOSYS;
#endif
}

int aiosi_accept(int fd, struct sockaddr *address, unsigned int *length) {
  return accept4(fd, address, (socklen_t *)length, SOCK_NONBLOCK | SOCK_CLOEXEC);
}

size_t aiosi_bytes_readable(int fd) {
  int count = 0;
  return ioctl(fd, FIONREAD, &count) == 0 && count > 0 ? (size_t)count : 0;
}

int aiosi_socketpair(int fds[2]) {
  return socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0 ? 0 : -errno;
}

/* 0 if `path` is a file this process may execute, else the errno execve
 * would give. */
static int executable(const char *path) {
  struct stat info;
  if (stat(path, &info) != 0) return errno;
  if (!S_ISREG(info.st_mode)) return EACCES;
  return access(path, X_OK) == 0 ? 0 : errno;
}

/* The program's path, found as execvp would find it but in the child's PATH
 * (as Popen looks it up), checked here rather than only in the child: an
 * exec error that posix_spawn reports through vfork's shared memory is not
 * reported where vfork is emulated by fork (valgrind). */
static int resolve(const aiosi_spawn_t *spec, char *out, size_t size) {
  const char *path = NULL;
  int found = ENOENT;
  if (spec->cwd != NULL) {
    struct stat info;
    if (stat(spec->cwd, &info) != 0) return errno;
    if (!S_ISDIR(info.st_mode)) return ENOTDIR;
  }
  if (strchr(spec->file, '/') != NULL) {
    int rc;
    if (spec->file[0] != '/' && spec->cwd != NULL) {
      /* Relative to the child's cwd, where the child will look for it. */
      if ((size_t)snprintf(out, size, "%s/%s", spec->cwd, spec->file) >= size) return ENAMETOOLONG;
      rc = executable(out);
    } else {
      rc = executable(spec->file);
    }
    if (rc != 0) return rc;
    if (strlen(spec->file) >= size) return ENAMETOOLONG;
    strcpy(out, spec->file);
    return 0;
  }
  if (spec->envp != NULL) {
    for (char *const *entry = spec->envp; *entry != NULL; entry++)
      if (strncmp(*entry, "PATH=", 5) == 0) path = *entry + 5;
  } else {
    path = getenv("PATH");
  }
  if (path == NULL) path = "/bin:/usr/bin";
  while (1) {
    const char *end = strchr(path, ':');
    size_t length = end ? (size_t)(end - path) : strlen(path);
    int rc;
    if ((size_t)snprintf(out, size, "%.*s/%s", (int)length, length ? path : ".", spec->file) < size) {
      rc = executable(out);
      if (rc == 0) return 0;
      if (rc == EACCES) found = EACCES; /* execvp reports EACCES if it met one */
    }
    if (end == NULL) break;
    path = end + 1;
  }
  return found;
}

static int kept(const aiosi_spawn_t *spec, int fd) {
  for (size_t k = 0; k < spec->keep_count; k++)
    if (spec->keep[k] == fd) return 1;
  return 0;
}

/* Close actions for the descriptors from 3 up to `highest` that are open
 * and not kept: listed from /proc/self/fd (its cost is the open ones), or
 * else probed one by one. 0 or -errno. */
static int close_unkept(posix_spawn_file_actions_t *actions, const aiosi_spawn_t *spec, int highest) {
  int rc;
  DIR *dir = opendir("/proc/self/fd");
  if (dir != NULL) {
    int own = dirfd(dir);
    struct dirent *entry;
    while ((entry = readdir(dir)) != NULL) {
      char *end;
      long fd = strtol(entry->d_name, &end, 10);
      if (*end != '\0' || entry->d_name[0] == '.' || fd < 3 || fd >= highest || fd == own || kept(spec, (int)fd)) continue;
      if ((rc = posix_spawn_file_actions_addclose(actions, (int)fd)) != 0) {
        closedir(dir);
        return -rc;
      }
    }
    closedir(dir);
    return 0;
  }
  for (int fd = 3; fd < highest; fd++) {
    if (kept(spec, fd) || fcntl(fd, F_GETFD) < 0) continue;
    if ((rc = posix_spawn_file_actions_addclose(actions, fd)) != 0) return -rc;
  }
  return 0;
}

static int spawn_with(const aiosi_spawn_t *spec, pid_t *pid, posix_spawn_file_actions_t *actions,
                      posix_spawnattr_t *attributes, int *moved) {
  int rc, i;
  short flags = POSIX_SPAWN_SETSIGMASK;
  sigset_t defaults, none;
  /* A descriptor meant for 0, 1 or 2 that is itself one of 0..2 (but not
   * its own place) could be overwritten by an earlier dup2: it moves up first. */
  for (i = 0; i < 3; i++) {
    int fd = spec->stdio[i];
    if (fd >= 0 && fd < 3 && fd != i) {
      moved[i] = fcntl(fd, F_DUPFD_CLOEXEC, 3);
      if (moved[i] < 0) return -errno;
    }
  }
  for (i = 0; i < 3; i++) {
    int fd = moved[i] >= 0 ? moved[i] : spec->stdio[i];
    /* A standard descriptor the parent has closed stays closed in the child. */
    if (fd == i && fcntl(fd, F_GETFD) < 0) continue;
    /* dup2 onto itself clears close-on-exec (glibc, POSIX issue 8). */
    if ((rc = posix_spawn_file_actions_adddup2(actions, fd, i)) != 0) return -rc;
  }
  /* close_fds: the descriptors open below the highest kept one that are
   * not kept, then everything above it. */
  if (spec->keep_count > 0) {
    int highest = spec->keep[spec->keep_count - 1];
    for (size_t k = 0; k < spec->keep_count; k++) {
      /* A kept descriptor must be open (dup2 onto itself clears its
       * close-on-exec in the child). */
      if (spec->keep[k] >= 3 && fcntl(spec->keep[k], F_GETFD) < 0) return -EBADF;
      if (spec->keep[k] >= 3 && (rc = posix_spawn_file_actions_adddup2(actions, spec->keep[k], spec->keep[k])) != 0)
        return -rc;
    }
    if ((rc = close_unkept(actions, spec, highest)) != 0) return rc;
    if ((rc = posix_spawn_file_actions_addclosefrom_np(actions, highest < 3 ? 3 : highest + 1)) != 0) return -rc;
  } else if ((rc = posix_spawn_file_actions_addclosefrom_np(actions, 3)) != 0) {
    return -rc;
  }
  if (spec->cwd != NULL && (rc = posix_spawn_file_actions_addchdir_np(actions, spec->cwd)) != 0) return -rc;
  sigemptyset(&none);
  if (spec->signals == 0) {
    sigfillset(&defaults);
  } else {
    /* Popen's restore_signals: the two that Python ignores for itself. */
    sigemptyset(&defaults);
    if (spec->signals == 1) {
      sigaddset(&defaults, SIGPIPE);
      sigaddset(&defaults, SIGXFSZ);
    }
  }
  if (spec->signals != 2) {
    flags |= POSIX_SPAWN_SETSIGDEF;
    if ((rc = posix_spawnattr_setsigdefault(attributes, &defaults)) != 0) return -rc;
  }
  if ((rc = posix_spawnattr_setsigmask(attributes, &none)) != 0) return -rc;
  if (spec->new_session) flags |= POSIX_SPAWN_SETSID;
  if (spec->process_group >= 0) {
    flags |= POSIX_SPAWN_SETPGROUP;
    if ((rc = posix_spawnattr_setpgroup(attributes, spec->process_group)) != 0) return -rc;
  }
  if ((rc = posix_spawnattr_setflags(attributes, flags)) != 0) return -rc;
  {
    char program[PATH_MAX];
    if ((rc = resolve(spec, program, sizeof program)) != 0) return -rc;
    rc = posix_spawn(pid, program, actions, attributes, spec->argv, spec->envp ? spec->envp : environ);
  }
  return rc == 0 ? 0 : -rc;
}

int aiosi_spawn(const aiosi_spawn_t *spec, pid_t *pid) {
  posix_spawn_file_actions_t actions;
  posix_spawnattr_t attributes;
  int moved[3] = {-1, -1, -1};
  int rc;
  if ((rc = posix_spawn_file_actions_init(&actions)) != 0) return -rc;
  if ((rc = posix_spawnattr_init(&attributes)) != 0) {
    posix_spawn_file_actions_destroy(&actions);
    return -rc;
  }
  rc = spawn_with(spec, pid, &actions, &attributes, moved);
  for (int i = 0; i < 3; i++)
    if (moved[i] >= 0) close(moved[i]);
  posix_spawnattr_destroy(&attributes);
  posix_spawn_file_actions_destroy(&actions);
  return rc;
}
