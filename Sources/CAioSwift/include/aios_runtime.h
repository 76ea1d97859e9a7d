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

/* The C handle table's storage (Sources/AioSwiftC/ObjectTable.swift): its
 * chunks of slots, and the head of its free list. */
#define AIOSI_HANDLE_CHUNKS 4096
AIOSI_INTERNAL extern void *aiosi_handle_chunks[AIOSI_HANDLE_CHUNKS];
AIOSI_INTERNAL extern uint64_t aiosi_handle_free_head;
static inline void **aiosi_handle_chunk_table(void) { return aiosi_handle_chunks; }
static inline uint64_t *aiosi_handle_free_list(void) { return &aiosi_handle_free_head; }

#endif
