#include <uv.h>
#include <stdint.h>
#include <stdio.h>
#include <pthread.h>

/* C11 atomics for the C ABI's object table, which Swift reaches here. */
static inline uint64_t aios__atomic_load(uint64_t *p) {
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline int aios__atomic_cas(uint64_t *p, uint64_t expected, uint64_t desired) {
  return __atomic_compare_exchange_n(p, &expected, desired, 0, __ATOMIC_ACQ_REL,
                                     __ATOMIC_ACQUIRE);
}
static inline void aios__atomic_store(uint64_t *p, uint64_t v) {
  __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
static inline uint32_t aios__atomic_load32(uint32_t *p) {
  return __atomic_load_n(p, __ATOMIC_ACQUIRE);
}
static inline void aios__atomic_store32(uint32_t *p, uint32_t v) {
  __atomic_store_n(p, v, __ATOMIC_RELEASE);
}
