/* pipeline.c: `pipeline PRODUCER CONSUMER` runs `PRODUCER | CONSUMER` as two
 * children joined by a pipe (each command run by /bin/sh), reads what the
 * consumer writes, and prints it with both returncodes.
 * Build: cc pipeline.c $(pkg-config --cflags --libs aio-swift) */
#define _POSIX_C_SOURCE 200809L
#include <aio_swift.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CHECK(call)                                                                  \
  do {                                                                               \
    int rc_ = (call);                                                                \
    if (rc_ < 0) {                                                                   \
      fprintf(stderr, "pipeline: %s: %s\n", #call, aios_strerror(rc_));              \
      exit(1);                                                                       \
    }                                                                                \
  } while (0)

static void *await(aios_loop_t *loop, aios_future_t *future) {
  void *value = NULL;
  aios_destructor_fn destructor = NULL;
  CHECK(aios_loop_run_until_complete(loop, future));
  CHECK(aios_future_take_result(future, &value, &destructor));
  aios_future_unref(future);
  return value;
}

static aios_process_t *start(aios_loop_t *loop, const char *command, const aios_spawn_options_t *options) {
  aios_future_t *future = NULL;
  CHECK(aios_create_subprocess_shell(loop, command, options, &future));
  return await(loop, future);
}

int main(int argc, char **argv) {
  aios_loop_t *loop = NULL;
  aios_spawn_options_t producer_options, consumer_options;
  aios_process_t *producer, *consumer;
  aios_future_t *future = NULL;
  aios_output_t *output;
  int joint[2], producer_code, consumer_code;
  if (argc != 3) {
    fprintf(stderr, "usage: pipeline PRODUCER CONSUMER\n");
    return 2;
  }
  CHECK(aios_loop_new(&loop));
  if (pipe(joint) != 0) return 1;
  memset(&producer_options, 0, sizeof producer_options);
  producer_options.size = sizeof producer_options;
  producer_options.stdout_mode = AIOS_CHILD_FD;
  producer_options.stdout_fd = joint[1];
  consumer_options = producer_options;
  consumer_options.stdout_mode = AIOS_CHILD_PIPE;
  consumer_options.stdin_mode = AIOS_CHILD_FD;
  consumer_options.stdin_fd = joint[0];
  producer = start(loop, argv[1], &producer_options);
  consumer = start(loop, argv[2], &consumer_options);
  /* The children have their ends: the parent's copies must go, or the
   * consumer would never see the producer's EOF. */
  close(joint[0]);
  close(joint[1]);
  CHECK(aios_process_communicate(consumer, NULL, 0, &future));
  output = await(loop, future);
  CHECK(aios_process_wait(producer, &future));
  producer_code = (int)(intptr_t)await(loop, future);
  CHECK(aios_process_wait(consumer, &future));
  consumer_code = (int)(intptr_t)await(loop, future);
  printf("%.*s", (int)output->out->length, (const char *)output->out->data);
  printf("pipeline: producer returned %d, consumer returned %d\n", producer_code, consumer_code);
  aios_output_free(output);
  aios_process_unref(producer);
  aios_process_unref(consumer);
  CHECK(aios_loop_close(loop));
  aios_loop_unref(loop);
  return 0;
}
