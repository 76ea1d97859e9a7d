/* See aios_runtime.h. */
#include "aios_runtime.h"

__thread void *aiosi_running_loop __attribute__((tls_model("initial-exec")));

void *aiosi_handle_chunks[AIOSI_HANDLE_CHUNKS];
uint64_t aiosi_handle_free_head;
uint64_t aiosi_deferred_releases;
