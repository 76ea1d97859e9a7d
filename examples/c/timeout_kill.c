/* timeout_kill.c: `timeout_kill SECONDS COMMAND` runs COMMAND with /bin/sh,
 * keeps what it writes, and kills it once it has run for SECONDS; then
 * prints the output it got and how the child ended.
 * Build: cc timeout_kill.c $(pkg-config --cflags --libs aio-swift) */
#include <aio_swift.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CHECK(call)                                                                  \
  do {                                                                               \
    int rc_ = (call);                                                                \
    if (rc_ < 0) {                                                                   \
      fprintf(stderr, "timeout_kill: %s: %s\n", #call, aios_strerror(rc_));          \
      exit(1);                                                                       \
    }                                                                                \
  } while (0)

/* Runs the loop until `future` is done; its status, and its result in *value. */
static int await(aios_loop_t *loop, aios_future_t *future, void **value) {
  aios_destructor_fn destructor = NULL;
  int rc = aios_loop_run_until_complete(loop, future);
  if (rc == 0 && value != NULL) CHECK(aios_future_take_result(future, value, &destructor));
  aios_future_unref(future);
  return rc;
}

int main(int argc, char **argv) {
  aios_loop_t *loop = NULL;
  aios_future_t *future = NULL, *bounded = NULL;
  aios_process_t *process = NULL;
  aios_subprocess_t *subprocess = NULL;
  aios_stream_t *out = NULL;
  aios_spawn_options_t options;
  double limit, start, now;
  char *output = NULL;
  size_t length = 0;
  void *value = NULL;
  int timed_out = 0;
  if (argc != 3) {
    fprintf(stderr, "usage: timeout_kill SECONDS COMMAND\n");
    return 2;
  }
  limit = atof(argv[1]);
  CHECK(aios_loop_new(&loop));
  memset(&options, 0, sizeof options);
  options.size = sizeof options;
  options.stdout_mode = AIOS_CHILD_PIPE;
  CHECK(aios_create_subprocess_shell(loop, argv[2], &options, &future));
  CHECK(await(loop, future, &value));
  process = value;
  CHECK(aios_process_get_stream(process, 1, &out));
  CHECK(aios_loop_time(loop, &start));
  for (;;) {
    aios_bytes_t *chunk;
    int rc;
    CHECK(aios_loop_time(loop, &now));
    CHECK(aios_stream_read(out, 65536, &future));
    /* A read cut short by the timeout loses nothing: the bytes stay in the stream. */
    CHECK(aios_wait_for(future, limit - (now - start) > 0 ? limit - (now - start) : 0, &bounded));
    rc = await(loop, bounded, NULL);
    if (rc == AIOS_ETIMEOUT) {
      aios_future_unref(future);
      timed_out = 1;
      break;
    }
    CHECK(rc);
    /* wait_for's own result is empty: the bytes are the read's. */
    CHECK(await(loop, future, &value));
    chunk = value;
    if (chunk->length == 0) {
      aios_bytes_free(chunk);
      break;
    }
    output = realloc(output, length + chunk->length);
    memcpy(output + length, chunk->data, chunk->length);
    length += chunk->length;
    aios_bytes_free(chunk);
  }
  CHECK(aios_process_get_subprocess(process, &subprocess));
  if (timed_out) CHECK(aios_subprocess_kill(subprocess));
  CHECK(aios_process_wait(process, &future));
  CHECK(await(loop, future, &value));
  printf("timeout_kill: kept %zu bytes: %.*s", length, (int)length, output ? output : "");
  if (length > 0 && output[length - 1] != '\n') printf("\n");
  printf("timeout_kill: %s, returncode %d\n", timed_out ? "killed after the timeout" : "ended on its own",
         (int)(intptr_t)value);
  free(output);
  aios_subprocess_unref(subprocess);
  aios_stream_unref(out);
  aios_process_unref(process);
  CHECK(aios_loop_close(loop));
  aios_loop_unref(loop);
  return 0;
}
