/* The library's global and per-thread state that Swift reads on its hot
 * paths. Kept in C: a Swift global is initialised lazily, so every read
 * goes through swift_once; Swift has no thread-local variables, and a
 * pthread key costs a call into libc and a lookup on every read.
 * Internal: not part of the installed header. */
#ifndef AIOS_RUNTIME_H
#define AIOS_RUNTIME_H

#include <stdint.h>

#define AIOSI_INTERNAL __attribute__((visibility("hidden")))

/* The loop running on this thread (an unretained Loop), or NULL; an
 * initial-exec TLS variable, so a read is one load. */
AIOSI_INTERNAL extern __thread void *aiosi_running_loop __attribute__((tls_model("initial-exec")));
static inline void *aiosi_get_running_loop(void) { return aiosi_running_loop; }
static inline void aiosi_set_running_loop(void *loop) { aiosi_running_loop = loop; }

/* This thread's number: never 0, never reused within the process. Objects
 * record the number of the thread they belong to; a call on another thread
 * is refused before it touches them. Assigned on first use. */
AIOSI_INTERNAL extern __thread uint32_t aiosi_thread_number __attribute__((tls_model("initial-exec")));
AIOSI_INTERNAL uint32_t aiosi_assign_thread_number(void);
static inline uint32_t aiosi_thread_token(void) {
  uint32_t number = aiosi_thread_number;
  return __builtin_expect(number != 0, 1) ? number : aiosi_assign_thread_number();
}

/* How many objects wait for their own thread to release them (their last C
 * reference was dropped on another thread). */
AIOSI_INTERNAL extern uint64_t aiosi_deferred_releases;
static inline uint64_t aiosi_deferred_release_count(void) {
  return __atomic_load_n(&aiosi_deferred_releases, __ATOMIC_ACQUIRE);
}
static inline void aiosi_deferred_release_add(int64_t n) {
  __atomic_add_fetch(&aiosi_deferred_releases, (uint64_t)n, __ATOMIC_RELEASE);
}

/* The C handle table's storage (Sources/AioSwiftC/ObjectTable.swift): its
 * chunks of slots, and the head of its free list. */
#define AIOSI_HANDLE_CHUNKS 4096
AIOSI_INTERNAL extern void *aiosi_handle_chunks[AIOSI_HANDLE_CHUNKS];
AIOSI_INTERNAL extern uint64_t aiosi_handle_free_head;
static inline void **aiosi_handle_chunk_table(void) { return aiosi_handle_chunks; }
static inline uint64_t *aiosi_handle_free_list(void) { return &aiosi_handle_free_head; }

/* The Swift concurrency runtime's current task and its cancel, called
 * directly: an await on the loop asks which Swift task runs (a task's body
 * or one of its children), and withUnsafeCurrentTask costs more than the
 * rest of the await. The library links the runtime statically, so these
 * are its own functions (swiftcall, as the runtime declares them). */
extern void *swift_task_getCurrent(void) __attribute__((swiftcall));
extern void swift_task_cancel(void *task) __attribute__((swiftcall));
static inline void *aiosi_current_swift_task(void) { return swift_task_getCurrent(); }
static inline void aiosi_cancel_swift_task(void *task) { swift_task_cancel(task); }

/* Flags one thread writes and others read: a loop's running and closed
 * states and its "threadsafe calls waiting" mark. They are atomic, which
 * helgrind cannot tell from a plain access, so aiosi_shared_flags_new tells
 * it so (when built with valgrind's headers); everything else stays checked. */
AIOSI_INTERNAL uint8_t *aiosi_shared_flags_new(unsigned count);
AIOSI_INTERNAL void aiosi_shared_flags_free(uint8_t *flags, unsigned count);
static inline _Bool aiosi_flag_load(const uint8_t *flag) {
  return __atomic_load_n(flag, __ATOMIC_ACQUIRE) != 0;
}
static inline void aiosi_flag_store(uint8_t *flag, _Bool value) {
  __atomic_store_n(flag, (uint8_t)value, __ATOMIC_RELEASE);
}

#endif
