/* See aios_runtime.h. */
#include "aios_runtime.h"

#include <pthread.h>
#include <stdlib.h>

#if defined(__has_include)
#if __has_include(<valgrind/helgrind.h>)
#include <valgrind/helgrind.h>
#define AIOSI_HAVE_HELGRIND 1
#endif
#endif

__thread void *aiosi_running_loop __attribute__((tls_model("initial-exec")));

/* A child forked while a loop runs on the forking thread runs no loop: that
 * loop is the parent's (its libuv descriptors are the parent's too), and a
 * loop the child makes must be free to run, as asyncio resets its running
 * loop in a forked child. Cheaper than checking the pid at every lookup. */
static void forget_running_loop_in_child(void) { aiosi_running_loop = NULL; }

__attribute__((constructor)) static void register_fork_handler(void) {
  pthread_atfork(NULL, NULL, forget_running_loop_in_child);
}

void *aiosi_handle_chunks[AIOSI_HANDLE_CHUNKS];
uint64_t aiosi_handle_free_head;
uint64_t aiosi_deferred_releases;

__thread uint32_t aiosi_thread_number __attribute__((tls_model("initial-exec")));
static uint32_t next_thread_number;

uint32_t aiosi_assign_thread_number(void) {
  uint32_t number;
  do number = __atomic_add_fetch(&next_thread_number, 1, __ATOMIC_RELAXED);
  while (number == 0);
  aiosi_thread_number = number;
  return number;
}

uint8_t *aiosi_shared_flags_new(unsigned count) {
  uint8_t *flags = calloc(count, 1);
  if (flags == NULL) abort();
#ifdef AIOSI_HAVE_HELGRIND
  VALGRIND_HG_DISABLE_CHECKING(flags, count);
#endif
  return flags;
}

void aiosi_shared_flags_free(uint8_t *flags, unsigned count) {
#ifdef AIOSI_HAVE_HELGRIND
  VALGRIND_HG_ENABLE_CHECKING(flags, count);
#endif
  (void)count;
  free(flags);
}
