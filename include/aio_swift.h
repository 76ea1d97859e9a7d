/*
 * aio_swift.h: the C ABI of libaio-swift, asyncio's event loop, futures and
 * tasks built on libuv.
 *
 * Conventions (they hold for every function below unless its comment says
 * otherwise):
 *  - Objects are opaque and reference counted. A function that hands out an
 *    object through an `out` parameter gives the caller one reference, which
 *    the caller releases with the matching `*_unref`. Objects passed *in* are
 *    borrowed: the library takes its own reference when it keeps one.
 *  - Functions return an `int` status: 0 (or a documented non-negative value)
 *    on success, a negative AIOS_E* code (or -errno for operating-system
 *    errors) on failure. aios_strerror() and aios_err_name() describe any code.
 *  - A bad argument is an error code, never a crash. The "common errors"
 *    hold for every function, and its comment does not repeat them:
 *    AIOS_EINVAL for a NULL object or `out` pointer (unless the comment
 *    allows NULL); AIOS_EBADHANDLE for a pointer that names no live object
 *    of the expected type (freed, forged, or of another type);
 *    AIOS_EWRONGTHREAD for a call from a thread the object does not belong
 *    to (see Threads below); AIOS_ENOMEM when a function that hands out an
 *    object finds the handle table full (2^24 live objects). A function
 *    that returns a pointer returns NULL for these. Every other code a
 *    function returns is named in its comment. AIOS_ECLOSED in particular
 *    comes only where the comment says so: reading a closed loop's state,
 *    or finishing and reading its futures, still works.
 *  - Pointers to objects are handles, not addresses: a pointer names its
 *    object while you hold a reference through it. After your last unref
 *    it is dead (AIOS_EBADHANDLE), even if the object lives on, and the
 *    object may come back later under another pointer (as a step's
 *    `awaited`, from aios_get_running_loop, ...). Compare pointers only
 *    while you hold references to both.
 *  - When a function that takes a callback fails, the callback is never called.
 *  - Threads: a loop belongs to the thread that created it. Every function
 *    that takes a loop, or an object bound to a loop (handle, future, task,
 *    primitive, queue, ...), must be called on that thread, except the ones
 *    named *_threadsafe, aios_loop_is_running/_is_closed and the ref and
 *    unref functions; a runner belongs to the thread that made it. Error
 *    objects and the version and error description functions may be used
 *    from any thread. When the last reference to an object is dropped on
 *    another thread, the object's own thread frees it (its destructors run
 *    there): the loop is woken for it, and it goes at the loop's next
 *    iteration, when the loop closes, or at that thread's next unref call.
 */
#ifndef AIO_SWIFT_H
#define AIO_SWIFT_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__) || defined(__clang__)
#define AIOS_EXTERN __attribute__((visibility("default")))
#else
#define AIOS_EXTERN
#endif

/* ------------------------------------------------------------------------ */
/* Version                                                                    */

#define AIOS_VERSION_MAJOR 0
#define AIOS_VERSION_MINOR 1
#define AIOS_VERSION_PATCH 0
#define AIOS_VERSION_HEX \
  ((AIOS_VERSION_MAJOR << 16) | (AIOS_VERSION_MINOR << 8) | AIOS_VERSION_PATCH)

/*! aios_version() : the library's version as AIOS_VERSION_HEX is built. Any thread. */
AIOS_EXTERN unsigned int aios_version(void);
/*! aios_version_string() : "MAJOR.MINOR.PATCH", a static string. Any thread. */
AIOS_EXTERN const char *aios_version_string(void);

/* ------------------------------------------------------------------------ */
/* Status codes                                                               */

/* XX(name, value, message). Codes of the library's own, below -3000 so they
 * never meet a -errno. The asyncio exception each one stands for is named.
 * Each function's comment says which codes it returns. Reserved, returned
 * by nothing yet: AIOS_ENOTIMPL. AIOS_EAI_* are name resolution's errors
 * (asyncio's socket.gaierror, an OSError; each is libuv's UV_EAI_* code
 * minus 101, so they never meet the library's other codes). AIOS_EBUSY
 * comes only from aios_set_thread_pool_size once the pool has started; its
 * message is older than that use. AIOS_ESTEP, AIOS_ECANCELLED, AIOS_ETIMEOUT,
 * AIOS_EBROKENBARRIER, AIOS_EUSER and AIOS_EGROUP mostly arrive as the
 * status of a finished future. */
#define AIOS_ERRNO_MAP(XX)                                                     \
  XX(EINVAL, -3001, "invalid argument")                                        \
  XX(EBADHANDLE, -3002, "object was freed or is not a valid object")           \
  XX(ECLOSED, -3003, "event loop is closed")                                   \
  XX(EWRONGTHREAD, -3004, "called from a thread that is not the loop's")       \
  XX(ERUNNING, -3005, "event loop is already running")                         \
  XX(ENOLOOP, -3006, "no running event loop")                                  \
  XX(EWRONGLOOP, -3007, "object belongs to a different event loop")            \
  XX(EBUSY, -3008, "another task is already running its step")                 \
  XX(ENOMEM, -3009, "out of memory")                                           \
  XX(ENOTIMPL, -3010, "not implemented")                                       \
  XX(ESTEP, -3011, "step function returned an invalid value")                  \
  XX(ENOTACQUIRED, -3012, "lock is not acquired (RuntimeError)")               \
  XX(ERELEASED, -3013, "released too many times (ValueError)")                 \
  XX(ECANCELLED, -3020, "operation was cancelled (CancelledError)")            \
  XX(ETIMEOUT, -3021, "operation timed out (TimeoutError)")                    \
  XX(EINVALIDSTATE, -3022, "invalid state (InvalidStateError)")                \
  XX(EINCOMPLETE, -3023, "read ended early (IncompleteReadError)")             \
  XX(ELIMIT, -3024, "buffer limit exceeded (LimitOverrunError)")               \
  XX(EBROKENBARRIER, -3025, "barrier is broken (BrokenBarrierError)")          \
  XX(EQUEUEEMPTY, -3026, "queue is empty (QueueEmpty)")                        \
  XX(EQUEUEFULL, -3027, "queue is full (QueueFull)")                           \
  XX(EQUEUESHUTDOWN, -3028, "queue is shut down (QueueShutDown)")              \
  XX(EUSER, -3029, "error raised by user code")                               \
  XX(EGROUP, -3030, "errors in a task group (ExceptionGroup)")               \
  XX(ENOSENDFILE, -3031, "sendfile is not available (SendfileNotAvailableError)") \
  XX(EAI_ADDRFAMILY, -3101, "address family for hostname not supported")      \
  XX(EAI_AGAIN, -3102, "temporary failure in name resolution")                \
  XX(EAI_BADFLAGS, -3103, "bad value for ai_flags")                           \
  XX(EAI_CANCELED, -3104, "name resolution request canceled")                 \
  XX(EAI_FAIL, -3105, "non-recoverable failure in name resolution")           \
  XX(EAI_FAMILY, -3106, "ai_family not supported")                            \
  XX(EAI_MEMORY, -3107, "memory allocation failure in name resolution")       \
  XX(EAI_NODATA, -3108, "no address associated with hostname")                \
  XX(EAI_NONAME, -3109, "name or service not known")                          \
  XX(EAI_OVERFLOW, -3110, "argument buffer overflow")                         \
  XX(EAI_SERVICE, -3111, "service not supported for socket type")             \
  XX(EAI_SOCKTYPE, -3112, "socket type not supported")                        \
  XX(EAI_BADHINTS, -3114, "invalid value for hints")                          \
  XX(EAI_PROTOCOL, -3115, "resolved protocol is unknown")

typedef enum aios_errno_e {
#define AIOS_ERRNO_ENUM_(name, value, msg) AIOS_##name = value,
  AIOS_ERRNO_MAP(AIOS_ERRNO_ENUM_)
#undef AIOS_ERRNO_ENUM_
  AIOS_OK = 0
} aios_errno_t;

/*! aios_strerror() : a static message for any status code (ours or -errno).
 *  Any thread. */
AIOS_EXTERN const char *aios_strerror(int code);
/*! aios_err_name() : a static name for any status code ("AIOS_ECANCELLED",
 *  "ECONNRESET", "UNKNOWN"). Any thread. */
AIOS_EXTERN const char *aios_err_name(int code);

/* ------------------------------------------------------------------------ */
/* Types                                                                      */

typedef struct aios_loop_s aios_loop_t;
typedef struct aios_handle_s aios_handle_t;
typedef struct aios_future_s aios_future_t;
typedef struct aios_task_s aios_task_t;
typedef struct aios_error_s aios_error_t;
typedef struct aios_runner_s aios_runner_t;

/* Frees a value the library holds for you (a result, a task's argument). */
typedef void (*aios_destructor_fn)(void *value);
/* A scheduled callback (call_soon, call_later, call_at). */
typedef void (*aios_callback_fn)(void *arg);
/* Called as a loop iteration starts (aios_loop_set_iteration_callback). */
typedef void (*aios_iteration_fn)(void *arg, int waits);
/* A future's done callback; `future` is borrowed for the call. */
typedef void (*aios_done_fn)(aios_future_t *future, void *arg);
/* What an exception handler is told: asyncio's context dict. Everything in
 * it is borrowed for the call; any field may be NULL. Fields may be added at
 * the end: read them only if `size` covers them. */
typedef struct aios_exception_context_s {
  size_t size;           /* sizeof the struct as the library fills it */
  const char *message;   /* "Task exception was never retrieved", ... */
  aios_error_t *error;   /* the exception */
  aios_future_t *future; /* the future (or task) it came from */
  aios_task_t *task;     /* that future, when it is a task */
  aios_handle_t *handle; /* the callback that reported it */
} aios_exception_context_t;
/* Receives errors nobody handled. Runs on the loop's thread. */
typedef void (*aios_exception_handler_fn)(aios_loop_t *loop,
                                          const aios_exception_context_t *context,
                                          void *arg);

/* ------------------------------------------------------------------------ */
/* Errors                                                                     */

/* The kind of an error, one per asyncio exception class. */
typedef enum aios_error_kind_e {
  AIOS_ERROR_RUNTIME = 1,   /* RuntimeError and misuse: AIOS_EINVAL, ECLOSED, ... */
  AIOS_ERROR_CANCELLED,     /* CancelledError */
  AIOS_ERROR_TIMEOUT,       /* TimeoutError */
  AIOS_ERROR_INVALID_STATE, /* InvalidStateError */
  AIOS_ERROR_INCOMPLETE_READ, /* IncompleteReadError: see aios_error_partial */
  AIOS_ERROR_LIMIT_OVERRUN,   /* LimitOverrunError: see aios_error_consumed */
  AIOS_ERROR_BROKEN_BARRIER,
  AIOS_ERROR_QUEUE_EMPTY,
  AIOS_ERROR_QUEUE_FULL,
  AIOS_ERROR_QUEUE_SHUT_DOWN,
  AIOS_ERROR_OS,            /* OSError: code is -errno */
  AIOS_ERROR_USER,          /* raised by user code; may carry user data */
  AIOS_ERROR_GROUP,         /* a task group's errors (ExceptionGroup): AIOS_EGROUP */
  AIOS_ERROR_GAI            /* socket.gaierror: an AIOS_EAI_* code */
} aios_error_kind_t;

/*! aios_error_new() : a new error with status `code` (an AIOS_E* code or
 *  -errno) and a message (copied; NULL for the code's default message).
 *  @return 0 and one reference in *out; AIOS_EINVAL when `code` is not
 *  negative. Any thread. */
AIOS_EXTERN int aios_error_new(int code, const char *message, aios_error_t **out);
/*! aios_error_new_user() : a new AIOS_ERROR_USER error carrying `data`, which
 *  the error owns: `destructor` (may be NULL) is called exactly once, when the
 *  error is freed. On failure the caller still owns `data`. Bindings use it
 *  to carry their language's exception object through the runtime.
 *  `message` may be NULL. @return 0 and one reference in *out, or a common
 *  error. Any thread. */
AIOS_EXTERN int aios_error_new_user(const char *message, void *data,
                                    aios_destructor_fn destructor,
                                    aios_error_t **out);
/*! aios_error_code() : the status code of the error (AIOS_ECANCELLED, -ECONNRESET,
 *  AIOS_EUSER, ...), or a common error, whose value an error's own code
 *  may have too. Any thread. */
AIOS_EXTERN int aios_error_code(const aios_error_t *error);
/*! aios_error_kind() : an aios_error_kind_t (positive), or a common error.
 *  Any thread. */
AIOS_EXTERN int aios_error_kind(const aios_error_t *error);
/*! aios_error_os_errno() : the positive errno of an OS error, 0 for other
 *  kinds, or a common error. Any thread. */
AIOS_EXTERN int aios_error_os_errno(const aios_error_t *error);
/*! aios_error_message() : the message, valid while the caller holds its
 *  reference; NULL for a bad handle. Any thread. */
AIOS_EXTERN const char *aios_error_message(const aios_error_t *error);
/*! aios_error_user_data() : the data of a user error, NULL for other kinds or
 *  a bad handle. Any thread. */
AIOS_EXTERN void *aios_error_user_data(const aios_error_t *error);
/*! aios_error_partial() : what an incomplete read (AIOS_EINCOMPLETE) had
 *  read before its stream ended (asyncio's IncompleteReadError.partial and
 *  .expected). *data (may be NULL when *length is 0) stays valid while the
 *  caller holds its reference; *expected is the count the read needed, or -1
 *  for a readuntil that met EOF. Any pointer may be NULL. @return 0; AIOS_EINVAL
 *  for an error of another kind. Any thread. */
AIOS_EXTERN int aios_error_partial(const aios_error_t *error, const void **data,
                                   size_t *length, long long *expected);
/*! aios_error_consumed() : how many bytes a readuntil that overran the
 *  stream's limit (AIOS_ELIMIT) would have consumed (asyncio's
 *  LimitOverrunError.consumed). @return the count (>= 0); AIOS_EINVAL for an
 *  error of another kind. Any thread. */
AIOS_EXTERN long long aios_error_consumed(const aios_error_t *error);
/*! aios_error_bytes_sent() : how many bytes a cancelled send (aios_sock_sendall,
 *  aios_sock_sendfile, aios_transport_sendfile) sent before it was cancelled,
 *  from the error of its future. @return the count (>= 0); AIOS_EINVAL for
 *  any other error. Any thread. */
AIOS_EXTERN long long aios_error_bytes_sent(const aios_error_t *error);
/*! aios_error_ref() / aios_error_unref() : take or drop a reference. unref
 *  accepts NULL (and returns 0). @return 0 or a common error. Any thread. */
AIOS_EXTERN int aios_error_ref(aios_error_t *error);
AIOS_EXTERN int aios_error_unref(aios_error_t *error);

/* ------------------------------------------------------------------------ */
/* Event loop                                                                 */

/*! aios_loop_new() : a new event loop, bound to the calling thread. The
 *  first loop of the process sets SIGPIPE to be ignored if its disposition
 *  is still the default (as Python does): a write to a peer that has gone
 *  then fails with -EPIPE instead of ending the process. A handler of your
 *  own is left alone.
 *  @return 0 and one reference in *out; -errno when libuv cannot set the
 *  loop up. */
AIOS_EXTERN int aios_loop_new(aios_loop_t **out);
/*! aios_loop_ref() / aios_loop_unref() : take or drop a reference; any thread.
 *  Dropping the last reference to a loop that is not closed closes it (that
 *  part must happen on the loop's thread, while it is not running). unref
 *  accepts NULL (and returns 0). @return 0 or a common error. */
AIOS_EXTERN int aios_loop_ref(aios_loop_t *loop);
AIOS_EXTERN int aios_loop_unref(aios_loop_t *loop);

/*! aios_loop_run_forever() : run until aios_loop_stop(). A stop requested
 *  before the call makes it run exactly one iteration.
 *  @return 0; AIOS_ERUNNING when this or another loop already runs on this
 *  thread; AIOS_ECLOSED. */
AIOS_EXTERN int aios_loop_run_forever(aios_loop_t *loop);
/*! aios_loop_run_until_complete() : run until `future` (or task) is done.
 *  @return the future's status: 0 when it has a result, AIOS_ECANCELLED when
 *  it was cancelled, its error's code when it failed (the error then counts as
 *  retrieved); AIOS_EINVALIDSTATE if the loop was stopped before the future
 *  was done; AIOS_ERUNNING, AIOS_ECLOSED as for run_forever; AIOS_EWRONGLOOP
 *  for a future of another loop of this thread (of another thread's loop:
 *  AIOS_EWRONGTHREAD). */
AIOS_EXTERN int aios_loop_run_until_complete(aios_loop_t *loop, aios_future_t *future);
/*! aios_loop_stop() : stop running after the current iteration.
 *  @return 0 or AIOS_ECLOSED. */
AIOS_EXTERN int aios_loop_stop(aios_loop_t *loop);
/*! aios_loop_close() : close the loop: drop every pending callback and timer,
 *  free its libuv resources. Closing a closed loop is a no-op (0).
 *  @return 0, or AIOS_ERUNNING while the loop runs. */
AIOS_EXTERN int aios_loop_close(aios_loop_t *loop);
/*! aios_loop_is_running() / aios_loop_is_closed() : 1 or 0, or a common
 *  error (never AIOS_EWRONGTHREAD). Any thread. */
AIOS_EXTERN int aios_loop_is_running(const aios_loop_t *loop);
AIOS_EXTERN int aios_loop_is_closed(const aios_loop_t *loop);
/*! aios_loop_time() : the loop's monotonic clock in seconds into *out
 *  (a closed loop's too). @return 0 or a common error. */
AIOS_EXTERN int aios_loop_time(const aios_loop_t *loop, double *out);

/* The scheduling calls below take an optional `arg_destructor` (may be
 * NULL): once the call succeeded it is called exactly once on `arg`, on the
 * loop's thread, after the callback ran, when it is cancelled, or when the
 * loop closes without running it. When the call fails it is not called: the
 * caller keeps `arg`, and the callback never runs. If `out` is not NULL it
 * receives one reference to a handle that can cancel the call. Each returns
 * 0; AIOS_EINVAL for a NULL `cb` or a NaN time; AIOS_ECLOSED; or a common
 * error. call_soon_threadsafe never returns AIOS_EWRONGTHREAD. */

/*! aios_loop_call_soon() : call cb(arg) on a later loop iteration, after the
 *  callbacks already scheduled (FIFO). */
AIOS_EXTERN int aios_loop_call_soon(aios_loop_t *loop, aios_callback_fn cb, void *arg,
                                    aios_destructor_fn arg_destructor, aios_handle_t **out);
/*! aios_loop_call_soon_threadsafe() : call_soon from any thread; wakes the
 *  loop if it is waiting. Calls from the loop's own thread keep their place
 *  among call_soon's (one queue, as in asyncio). The handle in `out` may be
 *  cancelled only on the loop's thread. Until the callback has run, the
 *  handle holds a reference to the loop; when the loop's own thread drops
 *  the last other reference, the loop closes and drops the calls not run. */
AIOS_EXTERN int aios_loop_call_soon_threadsafe(aios_loop_t *loop, aios_callback_fn cb,
                                               void *arg, aios_destructor_fn arg_destructor,
                                               aios_handle_t **out);
/*! aios_loop_call_later() : call cb(arg) once `delay` seconds have passed.
 *  The deadline is now + delay, as in asyncio: a delay <= 0 is due at once
 *  and runs with the next iteration's timers, before a later deadline. Timers
 *  due together run in order of their deadline, then of scheduling. Any
 *  delay is taken (INFINITY: never due); only NaN is refused. */
AIOS_EXTERN int aios_loop_call_later(aios_loop_t *loop, double delay, aios_callback_fn cb,
                                     void *arg, aios_destructor_fn arg_destructor,
                                     aios_handle_t **out);
/*! aios_loop_call_at() : call cb(arg) at loop time `when` (aios_loop_time's clock). */
AIOS_EXTERN int aios_loop_call_at(aios_loop_t *loop, double when, aios_callback_fn cb,
                                  void *arg, aios_destructor_fn arg_destructor,
                                  aios_handle_t **out);

/*! aios_get_running_loop() : the loop running on the calling thread. A
 *  child forked while a loop runs has none (that loop is the parent's; the
 *  child may make and run loops of its own).
 *  @return 0 and one reference in *out, or AIOS_ENOLOOP. Any thread. */
AIOS_EXTERN int aios_get_running_loop(aios_loop_t **out);

/*! aios_loop_set_exception_handler() : route unhandled errors (errors never
 *  retrieved from a future, errors reported by callbacks, slow callbacks in
 *  debug mode) to `handler`; NULL restores the default, which prints a
 *  report to stderr. @return 0 or a common error. */
AIOS_EXTERN int aios_loop_set_exception_handler(aios_loop_t *loop,
                                                aios_exception_handler_fn handler,
                                                void *arg);
/*! aios_loop_call_exception_handler() : report an error (may be NULL) with a
 *  message (may be NULL) to the loop's handler, as a callback that failed
 *  would. Bindings use it for exceptions raised by their callbacks.
 *  @return 0 or a common error. */
AIOS_EXTERN int aios_loop_call_exception_handler(aios_loop_t *loop, const char *message,
                                                 aios_error_t *error);
/*! aios_loop_set_debug() / aios_loop_get_debug() : in debug mode a callback
 *  or task step slower than the slow-callback duration (default 0.1 s) is
 *  reported to the exception handler. set returns 0, get 1 or 0; either
 *  may return a common error. */
AIOS_EXTERN int aios_loop_set_debug(aios_loop_t *loop, int enabled);
AIOS_EXTERN int aios_loop_get_debug(const aios_loop_t *loop);
/*! aios_loop_set_slow_callback_duration() : that duration, in seconds.
 *  @return 0; AIOS_EINVAL for a negative or NaN duration. */
AIOS_EXTERN int aios_loop_set_slow_callback_duration(aios_loop_t *loop, double seconds);

/*! aios_loop_set_iteration_callback() : for a binding that must let go of
 *  something before its loop waits (Python's GIL): `callback(arg, waits)` is
 *  called as each iteration of this loop starts, before it polls for I/O.
 *  `waits` is 1 when nothing is ready, so that the poll may block until an
 *  event, a timer or a wake-up comes; 0 when callbacks are ready (the
 *  iteration only looks for events, or does not poll). What the callback
 *  does counts in this iteration: a callback it schedules runs in it, and
 *  then, as after aios_loop_stop(), the poll does not block; a timer it sets
 *  bounds the wait. It runs on the loop's thread, with the loop running, and
 *  may call any function of the API. NULL `callback` stops it; closing the
 *  loop forgets it.
 *  @return 0; AIOS_ECLOSED. */
AIOS_EXTERN int aios_loop_set_iteration_callback(aios_loop_t *loop, aios_iteration_fn callback,
                                                 void *arg);

/* ------------------------------------------------------------------------ */
/* Handles (asyncio.Handle / TimerHandle)                                    */

/*! aios_handle_cancel() : the callback will not be called. Cancelling twice,
 *  or after the callback ran, is a no-op. @return 0 or a common error. */
AIOS_EXTERN int aios_handle_cancel(aios_handle_t *handle);
/*! aios_handle_cancelled() : 1 or 0, or a common error. */
AIOS_EXTERN int aios_handle_cancelled(const aios_handle_t *handle);
/*! aios_handle_when() : a timer handle's deadline in loop time into *out.
 *  @return 0; AIOS_EINVAL for a call_soon handle. */
AIOS_EXTERN int aios_handle_when(const aios_handle_t *handle, double *out);
/*! aios_handle_ref() / aios_handle_unref() : unref accepts NULL. Dropping a
 *  handle does not cancel its callback. @return 0 or a common error. Any
 *  thread. */
AIOS_EXTERN int aios_handle_ref(aios_handle_t *handle);
AIOS_EXTERN int aios_handle_unref(aios_handle_t *handle);

/* ------------------------------------------------------------------------ */
/* Futures                                                                    */

/*! aios_future_new() : a new pending future on `loop`.
 *  @return 0 and one reference in *out; AIOS_ECLOSED. */
AIOS_EXTERN int aios_future_new(aios_loop_t *loop, aios_future_t **out);
/*! aios_future_set_result() : finish with `value`, which the future owns from
 *  then on: `destructor` (may be NULL) is called exactly once when the future
 *  is freed. A value the pending future already owned (aios_sleep's) is
 *  freed then. On failure the caller still owns `value`. Done callbacks are
 *  scheduled, never run inline. Only plain futures take an outcome from
 *  outside: a task's comes from its step, and the futures of waiting calls
 *  (a lock's acquire, a queue's get, ...) from their primitive.
 *  @return 0; AIOS_EINVAL for a task or a waiting call's future;
 *  AIOS_EINVALIDSTATE when the future is already done. */
AIOS_EXTERN int aios_future_set_result(aios_future_t *future, void *value,
                                       aios_destructor_fn destructor);
/*! aios_future_set_error() : finish with `error` (borrowed): the future keeps
 *  the error itself, its code, message and user data, and aios_future_error
 *  hands out an error object carrying them.
 *  Refused for the futures aios_future_set_result refuses.
 *  @return 0; AIOS_EINVAL for an error of kind CANCELLED (use
 *  aios_future_cancel), a task or a waiting call's future;
 *  AIOS_EINVALIDSTATE when the future is already done; a common error, for
 *  `error` too. */
AIOS_EXTERN int aios_future_set_error(aios_future_t *future, aios_error_t *error);
/*! aios_future_cancel() : cancel with an optional message (copied; may be NULL).
 *  @return 1 if the future is now cancelled, 0 if it was already done, or a
 *  common error. Cancelling a task requests cancellation: see
 *  aios_task_cancel. */
AIOS_EXTERN int aios_future_cancel(aios_future_t *future, const char *message);
/*! aios_future_done() / aios_future_cancelled() : 1 or 0, or a common error. */
AIOS_EXTERN int aios_future_done(const aios_future_t *future);
AIOS_EXTERN int aios_future_cancelled(const aios_future_t *future);
/*! aios_future_result() : the outcome. @return 0 and the value (borrowed: the
 *  future keeps owning it) in *value (may be NULL); AIOS_ECANCELLED when
 *  cancelled; the error's code when it failed (and the error then counts as
 *  retrieved; aios_future_error gives the object); AIOS_EINVALIDSTATE when not
 *  done yet; or a common error. */
AIOS_EXTERN int aios_future_result(aios_future_t *future, void **value);
/*! aios_future_take_result() : move the result value out of a finished
 *  future: the caller gets `value` and its destructor (either pointer may be
 *  NULL to ignore it) and the future forgets them. @return as
 *  aios_future_result. */
AIOS_EXTERN int aios_future_take_result(aios_future_t *future, void **value,
                                        aios_destructor_fn *destructor);
/*! aios_future_error() : one reference to the future's error into *out (NULL
 *  when it has a result), and marks it retrieved. A cancelled future gives a
 *  CANCELLED error carrying the cancel message. @return 0; AIOS_EINVALIDSTATE
 *  when not done; or a common error. */
AIOS_EXTERN int aios_future_error(aios_future_t *future, aios_error_t **out);
/*! aios_future_add_done_callback() : schedule cb(future, arg) with call_soon
 *  once the future is done (at once if it already is). Callbacks run in the
 *  order they were added. `arg_destructor` (may be NULL) is called once on
 *  `arg` after the callback ran, when it is removed, or when the future is
 *  freed without running it; not when this call fails.
 *  @return 0; AIOS_EINVAL for a NULL `cb`; AIOS_ECLOSED when the future's
 *  loop is closed; or a common error. */
AIOS_EXTERN int aios_future_add_done_callback(aios_future_t *future, aios_done_fn cb,
                                              void *arg, aios_destructor_fn arg_destructor);
/*! aios_future_remove_done_callback() : remove every pending registration of
 *  (cb, arg). @return how many were removed; AIOS_EINVAL for a NULL `cb`;
 *  or a common error. */
AIOS_EXTERN int aios_future_remove_done_callback(aios_future_t *future, aios_done_fn cb,
                                                 void *arg);
/*! aios_future_get_loop() : one reference to the future's loop into *out.
 *  @return 0 or a common error. */
AIOS_EXTERN int aios_future_get_loop(aios_future_t *future, aios_loop_t **out);
/*! aios_future_ref() / aios_future_unref() : unref accepts NULL. Any thread.
 *  A future freed with an error nobody retrieved reports it to the loop's
 *  exception handler. @return 0 or a common error. */
AIOS_EXTERN int aios_future_ref(aios_future_t *future);
AIOS_EXTERN int aios_future_unref(aios_future_t *future);

/*! aios_sleep() : a future that gets the result `value` (owned as by
 *  aios_future_set_result) after `delay` seconds. delay <= 0 gives a future
 *  that is already done: a task that awaits it yields exactly one iteration.
 *  Cancelling the future cancels the timer. On failure the caller still owns
 *  `value`. @return 0 and one reference in *out; AIOS_EINVAL for a NaN
 *  delay; AIOS_ECLOSED. */
AIOS_EXTERN int aios_sleep(aios_loop_t *loop, double delay, void *value,
                           aios_destructor_fn destructor, aios_future_t **out);

/* ------------------------------------------------------------------------ */
/* Tasks                                                                      */

/* What a step function returns: the value of one of aios_task_await,
 * aios_task_return or aios_task_fail, or a negative status code, which fails
 * the task with an error of that code. */
enum { AIOS_STEP_AWAIT = 1, AIOS_STEP_DONE = 2 };

/* A task's body, asyncio's Task.__step: called on the loop's thread with the
 * task and the outcome of its last await, both borrowed for the call.
 * `awaited` is NULL on the first step and after a bare yield; otherwise it is
 * the future the last step awaited, now done. When the task is cancelled the
 * cancellation arrives as `awaited` being a cancelled future (the awaited one,
 * or a fresh cancelled one if the request came after it finished): the step
 * may finish as cancelled (aios_task_fail with a CANCELLED error, or
 * returning AIOS_ECANCELLED), or catch it and go on (see aios_task_uncancel).
 * A task cancelled before its first step never steps. */
typedef int (*aios_step_fn)(aios_task_t *task, aios_future_t *awaited, void *arg);

typedef struct aios_task_options_s {
  size_t size;                      /* sizeof(aios_task_options_t) */
  const char *name;                 /* NULL for "Task-N"; copied */
  int eager;                        /* run the first step inside aios_task_new */
  aios_destructor_fn arg_destructor; /* called once on `arg` when the task is freed */
  /* A binding's per-task context (what contextvars are to a Python task),
   * read back with aios_task_get_context; `context_destructor` (may be NULL)
   * is called once on it when the task is freed. */
  void *context;
  aios_destructor_fn context_destructor;
} aios_task_options_t;

/* asyncio's task factory: makes the task for aios_task_new and
 * aios_task_group_create_task (loop.create_task), typically by wrapping the
 * step or its options and calling aios_task_create. `loop`, `options` and
 * `factory_arg` are borrowed for the call. @return 0 and one reference to a
 * task of `loop` in *out, or a negative status, which the creating call
 * returns (a task left in *out then is released; a positive status is
 * AIOS_EINVAL). */
typedef int (*aios_task_factory_fn)(aios_loop_t *loop, aios_step_fn step, void *arg,
                                    const aios_task_options_t *options, void *factory_arg,
                                    aios_task_t **out);

/*! aios_task_new() : loop.create_task: a task on `loop` driven by `step`,
 *  made by the loop's task factory if it has one; its first step is
 *  scheduled with call_soon (or runs at once if `options->eager`; an eager
 *  task that finishes there is returned done). `options` may be NULL. The
 *  loop holds the task until it is done, so `out` may be NULL for a task
 *  nobody awaits (asyncio's fire-and-forget create_task).
 *  @return 0 and one reference in *out (if not NULL), or an error (then
 *  `arg` is untouched and arg_destructor is not called): AIOS_EINVAL for a
 *  NULL `step` or an options->size below sizeof(size_t); AIOS_ECLOSED; a
 *  common error. With a task factory: the factory's negative status (it
 *  gets `options` unchecked), AIOS_EINVAL when it made no task, or
 *  AIOS_EWRONGLOOP when it made something else than a task of `loop`. */
AIOS_EXTERN int aios_task_new(aios_loop_t *loop, aios_step_fn step, void *arg,
                              const aios_task_options_t *options, aios_task_t **out);
/*! aios_task_create() : asyncio.Task(...): aios_task_new without the loop's
 *  task factory (what a factory calls to make the task). Same arguments,
 *  ownership and errors, but none from a factory. */
AIOS_EXTERN int aios_task_create(aios_loop_t *loop, aios_step_fn step, void *arg,
                                 const aios_task_options_t *options, aios_task_t **out);
/*! aios_loop_set_task_factory() : asyncio's set_task_factory: aios_task_new
 *  and aios_task_group_create_task call `factory` to make their tasks (NULL
 *  restores the default, aios_task_create). A task it makes for another
 *  loop is refused (AIOS_EWRONGLOOP). @return 0 or a common error. */
AIOS_EXTERN int aios_loop_set_task_factory(aios_loop_t *loop, aios_task_factory_fn factory,
                                           void *factory_arg);
/*! aios_loop_get_task_factory() : the factory (NULL for the default) into
 *  *factory and its argument into *factory_arg (may be NULL).
 *  @return 0; AIOS_EINVAL for a NULL `factory`; or a common error. */
AIOS_EXTERN int aios_loop_get_task_factory(aios_loop_t *loop, aios_task_factory_fn *factory,
                                           void **factory_arg);
/*! aios_task_get_context() : the context pointer of the task's options;
 *  NULL when it has none, for a bad handle, or a task of another thread. */
AIOS_EXTERN void *aios_task_get_context(aios_task_t *task);
/*! aios_task_as_future() : the task as a future (the same object, no new
 *  reference); every aios_future_* function accepts it. The pointer is
 *  returned as it is, unchecked: a bad one stays bad. Any thread. */
AIOS_EXTERN aios_future_t *aios_task_as_future(aios_task_t *task);
/*! aios_future_as_task() : the task a future is (aios_task_as_future's
 *  inverse: the same object, no new reference), for a binding handed a
 *  future that may be a task; NULL for a future that is no task, or a
 *  pointer that names no live object. Any thread. */
AIOS_EXTERN aios_task_t *aios_future_as_task(aios_future_t *future);
/*! aios_task_get_loop() : the task's loop, borrowed: no reference is
 *  given, and the pointer stays valid while the loop is open and referenced
 *  (during a step, by whoever runs it: aios_run and runners included). NULL
 *  for a bad handle, a task of another thread, or a closed loop no caller
 *  holds a reference to. */
AIOS_EXTERN aios_loop_t *aios_task_get_loop(aios_task_t *task);
/*! aios_task_await() : from a step, suspend the task until `future` is done
 *  (NULL: a bare yield, stepping again on the next iteration). The task keeps
 *  its own reference through this pointer, so the next step's `awaited` is
 *  this same pointer. @return AIOS_STEP_AWAIT, to be returned by the step, or
 *  an error, which fails the task if the step returns it: AIOS_EINVAL when
 *  not called from this task's own step, or for `future` being the task
 *  itself; AIOS_EWRONGLOOP for a future of another loop; AIOS_EINVALIDSTATE
 *  when the step already awaited, returned or failed; a common error. */
AIOS_EXTERN int aios_task_await(aios_task_t *task, aios_future_t *future);
/*! aios_task_await_owned() : aios_task_await, taking over the caller's
 *  reference to `future` (the task's next step gets it back as `awaited`),
 *  even when it fails: `return aios_task_await_owned(task, made_future);`
 *  ends a step that awaits a future it made. Errors as aios_task_await's. */
AIOS_EXTERN int aios_task_await_owned(aios_task_t *task, aios_future_t *future);
/*! aios_task_return() : from a step, finish with a result, owned as by
 *  aios_future_set_result. @return AIOS_STEP_DONE, to be returned by the
 *  step, or an error as aios_task_await's (AIOS_EINVAL, AIOS_EINVALIDSTATE,
 *  a common error); the caller then still owns `value`. */
AIOS_EXTERN int aios_task_return(aios_task_t *task, void *value, aios_destructor_fn destructor);
/*! aios_task_fail() : from a step, finish with `error` (borrowed); a CANCELLED
 *  error finishes the task cancelled. @return AIOS_STEP_DONE, to be returned,
 *  or an error as aios_task_return's, for `error` too. */
AIOS_EXTERN int aios_task_fail(aios_task_t *task, aios_error_t *error);
/*! aios_task_cancel() : request cancellation with an optional message: the
 *  future the task awaits is cancelled, or the next step receives the
 *  cancellation. @return 1 if requested, 0 if the task is already done, or
 *  a common error. */
AIOS_EXTERN int aios_task_cancel(aios_task_t *task, const char *message);
/*! aios_task_cancelling() : the number of pending cancellation requests, or
 *  a common error. */
AIOS_EXTERN int aios_task_cancelling(const aios_task_t *task);
/*! aios_task_uncancel() : take back one cancellation request.
 *  @return the remaining number of requests, or a common error. */
AIOS_EXTERN int aios_task_uncancel(aios_task_t *task);
/*! aios_task_get_name() : the name (valid until renamed or freed). NULL for a
 *  bad handle or a task of another thread. */
AIOS_EXTERN const char *aios_task_get_name(aios_task_t *task);
/*! aios_task_set_name() : rename (copied). @return 0; AIOS_EINVAL for a
 *  NULL `name`; or a common error. */
AIOS_EXTERN int aios_task_set_name(aios_task_t *task, const char *name);
/*! aios_current_task() : the task whose step runs now on `loop` into *out
 *  (one reference), or NULL outside a task. @return 0 or a common error. */
AIOS_EXTERN int aios_current_task(aios_loop_t *loop, aios_task_t **out);
/*! aios_all_tasks() : the loop's tasks that are not done. Fills up to `capacity`
 *  entries of `tasks` (may be NULL when capacity is 0) with one reference
 *  each. @return the total number of such tasks (which may exceed capacity);
 *  AIOS_EINVAL for a NULL `tasks` with a capacity; or a common error. */
AIOS_EXTERN int aios_all_tasks(aios_loop_t *loop, aios_task_t **tasks, size_t capacity);
/*! aios_task_ref() / aios_task_unref() : unref accepts NULL. Any thread. A
 *  running task stays alive until done whatever references remain.
 *  @return 0 or a common error. */
AIOS_EXTERN int aios_task_ref(aios_task_t *task);
AIOS_EXTERN int aios_task_unref(aios_task_t *task);

/* ------------------------------------------------------------------------ */
/* Combinators (asyncio.gather, shield, timeout, timeout_at, wait_for)      */

typedef struct aios_timeout_s aios_timeout_t;

/*! aios_timeout_at() : asyncio.timeout_at(when): a scope with a deadline in
 *  loop time (aios_loop_time's clock; INFINITY: none). Enter it from a task's
 *  step; at the deadline it cancels the task, and its exit turns that
 *  cancellation, and only that one, into AIOS_ETIMEOUT.
 *  @return 0 and one reference in *out; AIOS_EINVAL for NaN; AIOS_ECLOSED;
 *  or a common error. */
AIOS_EXTERN int aios_timeout_at(aios_loop_t *loop, double when, aios_timeout_t **out);
/*! aios_timeout() : asyncio.timeout(delay): aios_timeout_at with the
 *  deadline `delay` seconds from now (INFINITY: none). Errors as
 *  aios_timeout_at's. */
AIOS_EXTERN int aios_timeout(aios_loop_t *loop, double delay, aios_timeout_t **out);
/*! aios_timeout_enter() : `async with`: bind the scope to `task` (in its
 *  step) and arm it. @return 0; AIOS_EINVALIDSTATE when the scope was
 *  entered before or the task is done; AIOS_EWRONGLOOP for a task of
 *  another loop than the scope's; AIOS_ECLOSED; or a common error. */
AIOS_EXTERN int aios_timeout_enter(aios_timeout_t *timeout, aios_task_t *task);
/*! aios_timeout_exit() : leave the scope with the status its body ended with
 *  (0, or the negative status it failed with; AIOS_ECANCELLED for a
 *  cancellation, such as an awaited future found cancelled).
 *  @return the status to go on with: AIOS_ETIMEOUT when the scope's own
 *  deadline cancelled the body and no newer cancellation was requested, else
 *  `status`; AIOS_EINVAL for a positive `status`; AIOS_EINVALIDSTATE if the
 *  scope is not active; or a common error. */
AIOS_EXTERN int aios_timeout_exit(aios_timeout_t *timeout, int status);
/*! aios_timeout_reschedule() : move the deadline of an active scope
 *  (INFINITY: none). @return 0; AIOS_EINVAL for NaN; AIOS_EINVALIDSTATE
 *  when the scope is not entered, or is expiring or exited; AIOS_ECLOSED;
 *  or a common error. */
AIOS_EXTERN int aios_timeout_reschedule(aios_timeout_t *timeout, double when);
/*! aios_timeout_when() : the deadline into *out (INFINITY: none).
 *  @return 0 or a common error. */
AIOS_EXTERN int aios_timeout_when(const aios_timeout_t *timeout, double *out);
/*! aios_timeout_expired() : 1 once the deadline passed while active, 0, or
 *  a common error. */
AIOS_EXTERN int aios_timeout_expired(const aios_timeout_t *timeout);
/*! aios_timeout_ref() / aios_timeout_unref() : unref accepts NULL. Any thread.
 *  @return 0 or a common error. */
AIOS_EXTERN int aios_timeout_ref(aios_timeout_t *timeout);
AIOS_EXTERN int aios_timeout_unref(aios_timeout_t *timeout);

/*! aios_gather() : asyncio.gather(*futures): a future done once all of
 *  `futures` (futures or tasks of one loop; `count` of them, each borrowed;
 *  one listed twice counts once) are done. Without `return_exceptions` it
 *  fails with the first child's error at once (the others go on) and is
 *  cancelled by a cancelled child. Cancelling it cancels every child. Its own
 *  result is empty: read the children's. count 0 gives a future already done
 *  (NULL `futures` allowed then).
 *  @return 0 and one reference in *out; AIOS_EINVAL for a NULL `futures`
 *  with a count; AIOS_EWRONGLOOP for a future of another loop; AIOS_ECLOSED;
 *  or a common error, for each entry too (a NULL entry is AIOS_EINVAL). */
AIOS_EXTERN int aios_gather(aios_loop_t *loop, aios_future_t *const *futures, size_t count,
                            int return_exceptions, aios_future_t **out);
/* When aios_wait's future is done (asyncio.FIRST_COMPLETED, ...). */
typedef enum aios_return_when_e {
  AIOS_FIRST_COMPLETED = 1,
  AIOS_FIRST_EXCEPTION = 2,
  AIOS_ALL_COMPLETED = 3
} aios_return_when_t;

/*! aios_wait() : asyncio.wait(futures, timeout, return_when): a future done
 *  once `return_when` holds for `futures` (of `loop`; `count` > 0 of them,
 *  borrowed; duplicates count once), or after `timeout` seconds (INFINITY:
 *  none). A timeout cancels nothing: see which futures are done with
 *  aios_future_done. Cancelling the returned future stops the wait only.
 *  @return 0 and one reference in *out; AIOS_EINVAL for no futures, a NaN
 *  timeout or a bad return_when; AIOS_EWRONGLOOP; AIOS_ECLOSED; or a common
 *  error, for each entry too. */
AIOS_EXTERN int aios_wait(aios_loop_t *loop, aios_future_t *const *futures, size_t count,
                          double timeout, aios_return_when_t return_when, aios_future_t **out);
typedef struct aios_as_completed_s aios_as_completed_t;

/*! aios_as_completed_new() : asyncio.as_completed(futures, timeout): an
 *  iterator over `futures` (of `loop`; `count` of them, borrowed, none twice)
 *  in the order they finish. `timeout` in seconds (INFINITY: none). count 0
 *  (NULL `futures` allowed then) gives an iterator already at its end.
 *  @return 0 and one reference in *out; AIOS_EINVAL for a repeated entry or
 *  a NaN timeout; AIOS_EWRONGLOOP; AIOS_ECLOSED; or a common error, for each
 *  entry too. */
AIOS_EXTERN int aios_as_completed_new(aios_loop_t *loop, aios_future_t *const *futures,
                                      size_t count, double timeout, aios_as_completed_t **out);
/*! aios_as_completed_next() : *out gets a future done once the next of the
 *  futures has finished; its result value is that future's index in
 *  `futures`, as (intptr_t)value. After the timeout it fails with
 *  AIOS_ETIMEOUT (nothing is cancelled).
 *  @return 0, or 1 with *out NULL once every future was handed out;
 *  AIOS_ECLOSED; AIOS_EWRONGLOOP when another loop runs on this thread; or
 *  a common error. */
AIOS_EXTERN int aios_as_completed_next(aios_as_completed_t *iterator, aios_future_t **out);
/*! aios_as_completed_ref() / aios_as_completed_unref() : unref accepts NULL.
 *  Any thread. @return 0 or a common error. */
AIOS_EXTERN int aios_as_completed_ref(aios_as_completed_t *iterator);
AIOS_EXTERN int aios_as_completed_unref(aios_as_completed_t *iterator);

/*! aios_shield() : asyncio.shield(future): a future that follows `future`,
 *  but cancelling it leaves `future` running, its result not lost. Its result
 *  value is lent from `future`: the value `future` holds (NULL once taken out
 *  of it with aios_future_take_result), valid while both are held. A done
 *  `future` is handed back as it is (a new reference).
 *  @return 0 and one reference in *out; AIOS_ECLOSED; or a common error. */
AIOS_EXTERN int aios_shield(aios_future_t *future, aios_future_t **out);

/*! aios_wait_for() : asyncio.wait_for(future, timeout): a task (as a future,
 *  in *out) done when `future` is, or failing with AIOS_ETIMEOUT once
 *  `timeout` seconds have passed, after cancelling `future` and, for a task,
 *  waiting for it to finish cancelling. timeout <= 0 still takes a result
 *  already there; INFINITY waits for ever. Cancelling the returned future
 *  cancels `future`. Its own result is empty: read `future`'s. A `future`
 *  already done gets a done future with its outcome, not a task.
 *  @return 0 and one reference in *out; AIOS_EINVAL for a NaN timeout;
 *  AIOS_ECLOSED (when a task must be made); or a common error. */
AIOS_EXTERN int aios_wait_for(aios_future_t *future, double timeout, aios_future_t **out);

/* ------------------------------------------------------------------------ */
/* Task groups (asyncio.TaskGroup)                                           */

typedef struct aios_task_group_s aios_task_group_t;

/*! aios_task_group_new() : a TaskGroup of `loop`, to be entered.
 *  @return 0 and one reference in *out; AIOS_ECLOSED. */
AIOS_EXTERN int aios_task_group_new(aios_loop_t *loop, aios_task_group_t **out);
/*! aios_task_group_enter() : `async with`: from the step of `parent`, the
 *  task the group belongs to. @return 0; AIOS_EINVALIDSTATE when entered
 *  before; AIOS_EWRONGLOOP for a task of another loop; or a common error. */
AIOS_EXTERN int aios_task_group_enter(aios_task_group_t *group, aios_task_t *parent);
/*! aios_task_group_create_task() : aios_task_new, in the group. `out` may be
 *  NULL. @return as aios_task_new's (AIOS_ECLOSED for the group's loop), and
 *  AIOS_EINVALIDSTATE when the group is not entered, is finished or is
 *  shutting down; on any error `arg` is untouched. */
AIOS_EXTERN int aios_task_group_create_task(aios_task_group_t *group, aios_step_fn step, void *arg,
                                            const aios_task_options_t *options, aios_task_t **out);
/*! aios_task_group_exit() : leave the scope with the error the parent's
 *  body ended with (borrowed; NULL when it ended normally), as asyncio's
 *  __aexit__ gets it: a CANCELLED error (from aios_future_error of the
 *  awaited future, say) keeps its message, any other error becomes a member
 *  of the group's error with its message and user data. The future in *out
 *  is done once every task of the group is. It fails with AIOS_EGROUP when
 *  tasks or the body failed (aios_future_error gives the group error; its
 *  members through aios_error_group_size and aios_error_group_get), or with
 *  the parent's CANCELLED error to propagate a cancellation; done normally,
 *  the body goes on as it ended. The first task failure cancels the other
 *  tasks and the parent (once).
 *  @return 0 and one reference in *out; AIOS_EINVALIDSTATE when the group
 *  is not entered or was exited; or a common error, for `error` too. */
AIOS_EXTERN int aios_task_group_exit(aios_task_group_t *group, aios_error_t *error,
                                     aios_future_t **out);
/*! aios_task_group_ref() / aios_task_group_unref() : unref accepts NULL.
 *  Any thread. @return 0 or a common error. */
AIOS_EXTERN int aios_task_group_ref(aios_task_group_t *group);
AIOS_EXTERN int aios_task_group_unref(aios_task_group_t *group);

/*! aios_error_group_size() : how many errors an AIOS_EGROUP error holds (0
 *  for other errors), or a common error. Any thread. */
AIOS_EXTERN int aios_error_group_size(const aios_error_t *error);
/*! aios_error_group_get() : one reference to the error at `index` of a
 *  group error into *out. @return 0; AIOS_EINVAL for an index out of range;
 *  or a common error. Any thread. */
AIOS_EXTERN int aios_error_group_get(const aios_error_t *error, size_t index, aios_error_t **out);

/* ------------------------------------------------------------------------ */
/* Threads (asyncio.to_thread)                                               */

/* Work for a worker thread: returns 0 and sets *result, or a negative status
 * (the future then fails with it). It must not call into the loop except
 * through aios_loop_call_soon_threadsafe. */
typedef int (*aios_thread_fn)(void *arg, void **result);

/*! aios_to_thread() : run fn(arg) on the worker pool; the future in *out gets
 *  its result (owned, freed by `result_destructor`) on the loop's thread.
 *  The loop runs on meanwhile. Cancelling the future does not stop fn: its
 *  result is freed when it arrives. Closing the loop waits for work already
 *  started. @return 0 and one reference in *out; AIOS_EINVAL for a NULL
 *  `fn`; AIOS_ECLOSED; -errno when libuv refuses the work; or a common
 *  error. */
AIOS_EXTERN int aios_to_thread(aios_loop_t *loop, aios_thread_fn fn, void *arg,
                               aios_destructor_fn result_destructor, aios_future_t **out);
/*! aios_set_thread_pool_size() : the number of worker threads (default 4),
 *  for the whole process, until the first aios_to_thread starts the pool.
 *  libuv reads the size from the environment only, so this sets
 *  UV_THREADPOOL_SIZE with setenv, which is not safe against getenv on other
 *  threads: call it before starting threads that read the environment.
 *  @return 0, AIOS_EINVAL (0 or above 1024), or AIOS_EBUSY once the pool
 *  has started. Any thread. */
AIOS_EXTERN int aios_set_thread_pool_size(unsigned int size);

/* ------------------------------------------------------------------------ */
/* Synchronization primitives (asyncio.Lock, Event, Condition, Semaphore,    */
/* BoundedSemaphore, Barrier)                                                 */
/*
 * Each primitive belongs to the loop it is created on. A call that may wait
 * hands back a future through `out` (one reference): it is already done when
 * the call did not need to wait; otherwise await it from a task. Cancelling
 * that future (or the task awaiting it) gives up with asyncio's semantics:
 * a cancelled acquire never ends up holding the lock, a cancelled waiter
 * passes its wake-up on. Waiters are served in FIFO order. Such a future
 * fails with AIOS_EINVAL if its primitive is freed while it waits.
 *
 * Errors: the _new functions return AIOS_ECLOSED for a closed loop. Every
 * other function below but ref and unref returns the "primitive errors":
 * AIOS_ECLOSED when the primitive's loop is closed, AIOS_EWRONGLOOP when
 * another loop runs on this thread, and the common errors. A comment names
 * only what comes on top.
 */

typedef struct aios_lock_s aios_lock_t;
typedef struct aios_event_s aios_event_t;
typedef struct aios_condition_s aios_condition_t;
typedef struct aios_semaphore_s aios_semaphore_t;
typedef struct aios_barrier_s aios_barrier_t;

/* A condition's predicate: 1 when it holds, 0 when not, or a negative status
 * (the wait then fails with it). Runs on the loop's thread. */
typedef int (*aios_predicate_fn)(void *arg);

/*! aios_lock_new() : an unlocked Lock. @return 0 and one reference in *out;
 *  AIOS_ECLOSED. */
AIOS_EXTERN int aios_lock_new(aios_loop_t *loop, aios_lock_t **out);
/*! aios_lock_acquire() : a future done once the lock is acquired. The lock
 *  has no owner: any task may release it. @return 0 or a primitive error. */
AIOS_EXTERN int aios_lock_acquire(aios_lock_t *lock, aios_future_t **out);
/*! aios_lock_release() : unlock and wake the first waiter.
 *  @return 0; AIOS_ENOTACQUIRED when the lock is not locked; or a primitive
 *  error. */
AIOS_EXTERN int aios_lock_release(aios_lock_t *lock);
/*! aios_lock_locked() : 1 or 0, or a primitive error. */
AIOS_EXTERN int aios_lock_locked(const aios_lock_t *lock);
/*! aios_lock_ref() / aios_lock_unref() : unref accepts NULL. Any thread.
 *  @return 0 or a common error. */
AIOS_EXTERN int aios_lock_ref(aios_lock_t *lock);
AIOS_EXTERN int aios_lock_unref(aios_lock_t *lock);

/*! aios_event_new() : an Event whose flag is clear.
 *  @return 0 and one reference in *out; AIOS_ECLOSED. */
AIOS_EXTERN int aios_event_new(aios_loop_t *loop, aios_event_t **out);
/*! aios_event_set() : set the flag and wake every waiter.
 *  @return 0 or a primitive error. */
AIOS_EXTERN int aios_event_set(aios_event_t *event);
/*! aios_event_clear() : clear the flag. @return 0 or a primitive error. */
AIOS_EXTERN int aios_event_clear(aios_event_t *event);
/*! aios_event_is_set() : 1 or 0, or a primitive error. */
AIOS_EXTERN int aios_event_is_set(const aios_event_t *event);
/*! aios_event_wait() : a future done once the flag is set.
 *  @return 0 or a primitive error. */
AIOS_EXTERN int aios_event_wait(aios_event_t *event, aios_future_t **out);
/*! aios_event_ref() / aios_event_unref() : unref accepts NULL. Any thread.
 *  @return 0 or a common error. */
AIOS_EXTERN int aios_event_ref(aios_event_t *event);
AIOS_EXTERN int aios_event_unref(aios_event_t *event);

/*! aios_condition_new() : a Condition over `lock` (borrowed; NULL: a lock of
 *  its own). @return 0 and one reference in *out; AIOS_ECLOSED;
 *  AIOS_EWRONGLOOP for a lock of another loop; `lock`'s primitive errors. */
AIOS_EXTERN int aios_condition_new(aios_loop_t *loop, aios_lock_t *lock,
                                   aios_condition_t **out);
/*! aios_condition_acquire() / _release() / _locked() : the aios_lock_*
 *  calls on its lock, with their returns (release: AIOS_ENOTACQUIRED). */
AIOS_EXTERN int aios_condition_acquire(aios_condition_t *condition, aios_future_t **out);
AIOS_EXTERN int aios_condition_release(aios_condition_t *condition);
AIOS_EXTERN int aios_condition_locked(const aios_condition_t *condition);
/*! aios_condition_wait() : release the lock, wait to be notified, re-acquire
 *  the lock; the future is done once the lock is held again, even when it was
 *  cancelled. @return 0; AIOS_ENOTACQUIRED when the lock is not held; or a
 *  primitive error. */
AIOS_EXTERN int aios_condition_wait(aios_condition_t *condition, aios_future_t **out);
/*! aios_condition_wait_for() : wait until predicate(arg) holds (checked now,
 *  then after each notification, with the lock held). A later check's
 *  negative status fails the future with it.
 *  @return 0 (a done future when it holds now); AIOS_EINVAL for a NULL
 *  `predicate`; the predicate's negative status from the first check;
 *  AIOS_ENOTACQUIRED when it does not hold and the lock is not held; or a
 *  primitive error. */
AIOS_EXTERN int aios_condition_wait_for(aios_condition_t *condition,
                                        aios_predicate_fn predicate, void *arg,
                                        aios_future_t **out);
/*! aios_condition_notify() / _notify_all() : wake up to `n` waiters, or
 *  all. @return 0; AIOS_ENOTACQUIRED when the lock is not held; AIOS_EINVAL
 *  for a negative `n`; or a primitive error. */
AIOS_EXTERN int aios_condition_notify(aios_condition_t *condition, int n);
AIOS_EXTERN int aios_condition_notify_all(aios_condition_t *condition);
/*! aios_condition_ref() / aios_condition_unref() : unref accepts NULL.
 *  Any thread. @return 0 or a common error. */
AIOS_EXTERN int aios_condition_ref(aios_condition_t *condition);
AIOS_EXTERN int aios_condition_unref(aios_condition_t *condition);

/*! aios_semaphore_new() : a Semaphore with `value` permits; with `bounded`, a
 *  BoundedSemaphore, which refuses to be released above `value`.
 *  @return 0 and one reference in *out; AIOS_ECLOSED. */
AIOS_EXTERN int aios_semaphore_new(aios_loop_t *loop, unsigned int value, int bounded,
                                   aios_semaphore_t **out);
/*! aios_semaphore_acquire() : a future done once a permit is taken.
 *  @return 0 or a primitive error. */
AIOS_EXTERN int aios_semaphore_acquire(aios_semaphore_t *semaphore, aios_future_t **out);
/*! aios_semaphore_release() : return a permit.
 *  @return 0; AIOS_ERELEASED for a bounded one released too often; or a
 *  primitive error. */
AIOS_EXTERN int aios_semaphore_release(aios_semaphore_t *semaphore);
/*! aios_semaphore_locked() : 1 when an acquire would wait, 0, or a
 *  primitive error. */
AIOS_EXTERN int aios_semaphore_locked(const aios_semaphore_t *semaphore);
/*! aios_semaphore_ref() / aios_semaphore_unref() : unref accepts NULL.
 *  Any thread. @return 0 or a common error. */
AIOS_EXTERN int aios_semaphore_ref(aios_semaphore_t *semaphore);
AIOS_EXTERN int aios_semaphore_unref(aios_semaphore_t *semaphore);

/*! aios_barrier_new() : a Barrier for `parties` tasks (at least 1).
 *  @return 0 and one reference in *out; AIOS_EINVAL for 0 or more than
 *  INT_MAX parties; AIOS_ECLOSED. */
AIOS_EXTERN int aios_barrier_new(aios_loop_t *loop, unsigned int parties,
                                 aios_barrier_t **out);
/*! aios_barrier_wait() : a future done once all parties have arrived; its
 *  result value is the arrival index, 0 to parties-1, as (intptr_t)value. It
 *  fails with AIOS_EBROKENBARRIER when the barrier is reset or aborted.
 *  @return 0 or a primitive error. */
AIOS_EXTERN int aios_barrier_wait(aios_barrier_t *barrier, aios_future_t **out);
/*! aios_barrier_reset() : back to empty; current waiters fail with
 *  AIOS_EBROKENBARRIER. The future is done once the reset is made.
 *  @return 0 or a primitive error. */
AIOS_EXTERN int aios_barrier_reset(aios_barrier_t *barrier, aios_future_t **out);
/*! aios_barrier_abort() : break the barrier for good; current and later
 *  waiters fail with AIOS_EBROKENBARRIER. The future is done once the abort
 *  is made. @return 0 or a primitive error. */
AIOS_EXTERN int aios_barrier_abort(aios_barrier_t *barrier, aios_future_t **out);
/*! aios_barrier_parties() / _n_waiting() / _broken() : counts, 1 or 0, or a
 *  primitive error. */
AIOS_EXTERN int aios_barrier_parties(const aios_barrier_t *barrier);
AIOS_EXTERN int aios_barrier_n_waiting(const aios_barrier_t *barrier);
AIOS_EXTERN int aios_barrier_broken(const aios_barrier_t *barrier);
/*! aios_barrier_ref() / aios_barrier_unref() : unref accepts NULL. Any thread.
 *  @return 0 or a common error. */
AIOS_EXTERN int aios_barrier_ref(aios_barrier_t *barrier);
AIOS_EXTERN int aios_barrier_unref(aios_barrier_t *barrier);

/* ------------------------------------------------------------------------ */
/* Queues (asyncio.Queue, LifoQueue, PriorityQueue)                          */
/*
 * Items are `void *` values with a destructor. A queue owns an item from a
 * successful put on; get hands the ownership on. Whatever a queue still holds
 * when it is freed (or shut down immediately) is freed, exactly once.
 * Errors are the primitives' (see above): aios_queue_new returns
 * AIOS_ECLOSED, every other function but ref and unref the primitive
 * errors, and a future fails with AIOS_EINVAL if its queue is freed while
 * it waits.
 */

typedef struct aios_queue_s aios_queue_t;

typedef enum aios_queue_kind_e {
  AIOS_QUEUE_FIFO = 0,    /* asyncio.Queue */
  AIOS_QUEUE_LIFO = 1,    /* asyncio.LifoQueue */
  AIOS_QUEUE_PRIORITY = 2 /* asyncio.PriorityQueue: smallest priority first,
                             equal priorities in arrival order */
} aios_queue_kind_t;

/*! aios_queue_new() : a queue of at most `maxsize` items (0 or less:
 *  unbounded). @return 0 and one reference in *out; AIOS_EINVAL for an
 *  unknown kind; AIOS_ECLOSED. */
AIOS_EXTERN int aios_queue_new(aios_loop_t *loop, aios_queue_kind_t kind, long maxsize,
                               aios_queue_t **out);
/*! aios_queue_put() : a future done once the item is in the queue (it waits
 *  while the queue is full). `priority` matters for priority queues only.
 *  On an error return the caller still owns `value`; once the call succeeded
 *  the queue owns it, and frees it if the put is cancelled or fails. The
 *  future fails with AIOS_EQUEUESHUTDOWN once the queue is shut down (also
 *  when it already was: the return code is for bad arguments only).
 *  @return 0 or a primitive error. */
AIOS_EXTERN int aios_queue_put(aios_queue_t *queue, void *value, aios_destructor_fn destructor,
                               long long priority, aios_future_t **out);
/*! aios_queue_put_nowait() : put without waiting. @return 0; AIOS_EQUEUEFULL;
 *  AIOS_EQUEUESHUTDOWN; or a primitive error. On an error the caller keeps
 *  `value`. */
AIOS_EXTERN int aios_queue_put_nowait(aios_queue_t *queue, void *value,
                                      aios_destructor_fn destructor, long long priority);
/*! aios_queue_get() : a future whose result is the next item; the future owns
 *  the item (aios_future_take_result moves it out). The future fails with
 *  AIOS_EQUEUESHUTDOWN once the queue is shut down and empty (also when it
 *  already was). @return 0 or a primitive error. */
AIOS_EXTERN int aios_queue_get(aios_queue_t *queue, aios_future_t **out);
/*! aios_queue_get_nowait() : the next item and its destructor, now owned by
 *  the caller (`destructor` may be NULL if you know it).
 *  @return 0; AIOS_EQUEUEEMPTY; AIOS_EQUEUESHUTDOWN when the queue is shut
 *  down and empty; AIOS_EINVAL for a NULL `value`; or a primitive error. */
AIOS_EXTERN int aios_queue_get_nowait(aios_queue_t *queue, void **value,
                                      aios_destructor_fn *destructor);
/*! aios_queue_qsize() / _maxsize() / _empty() / _full() : counts, 1 or 0, or
 *  a primitive error. maxsize is the value given to aios_queue_new. */
AIOS_EXTERN long aios_queue_qsize(const aios_queue_t *queue);
AIOS_EXTERN long aios_queue_maxsize(const aios_queue_t *queue);
AIOS_EXTERN int aios_queue_empty(const aios_queue_t *queue);
AIOS_EXTERN int aios_queue_full(const aios_queue_t *queue);
/*! aios_queue_task_done() : one item taken is processed.
 *  @return 0; AIOS_ERELEASED when called more often than items were put;
 *  or a primitive error. */
AIOS_EXTERN int aios_queue_task_done(aios_queue_t *queue);
/*! aios_queue_join() : a future done once every item put was marked done.
 *  @return 0 or a primitive error. */
AIOS_EXTERN int aios_queue_join(aios_queue_t *queue, aios_future_t **out);
/*! aios_queue_shutdown() : puts fail from now on with AIOS_EQUEUESHUTDOWN;
 *  gets fail once the queue is empty. With `immediate` the items are freed
 *  at once. Blocked getters and putters wake up and fail.
 *  @return 0 or a primitive error. */
AIOS_EXTERN int aios_queue_shutdown(aios_queue_t *queue, int immediate);
/*! aios_queue_ref() / aios_queue_unref() : unref accepts NULL. Any thread.
 *  @return 0 or a common error. */
AIOS_EXTERN int aios_queue_ref(aios_queue_t *queue);
AIOS_EXTERN int aios_queue_unref(aios_queue_t *queue);

/* ------------------------------------------------------------------------ */
/* Addresses and name resolution (getaddrinfo, getnameinfo)                  */

/* A socket address (a struct sockaddr of `length` bytes: sockaddr_in,
 * sockaddr_in6 with its scope id, or sockaddr_un), with what getaddrinfo
 * says of it. Flags and families are the system's <netdb.h> and
 * <sys/socket.h> values. */
typedef struct aios_addrinfo_s {
  int family;            /* AF_INET, AF_INET6, AF_UNIX */
  int socktype;          /* SOCK_STREAM, ... */
  int protocol;          /* IPPROTO_TCP, ... */
  unsigned int length;   /* bytes of `address` used */
  const char *canonname; /* AI_CANONNAME's answer on the first entry, else NULL */
  union {
    unsigned char bytes[128]; /* as large as struct sockaddr_storage */
    long long align_;
  } address;
} aios_addrinfo_t;

/* getaddrinfo's answer: every address, in the resolver's order. */
typedef struct aios_addrinfo_list_s {
  size_t count;
  aios_addrinfo_t *items;
} aios_addrinfo_list_t;

/* getnameinfo's answer. */
typedef struct aios_nameinfo_s {
  char *host;
  char *service;
} aios_nameinfo_t;

/*! aios_getaddrinfo() : asyncio's loop.getaddrinfo on libuv's resolver (a
 *  worker thread; the loop never blocks). `host` and `service` (a port
 *  number or a service name) may be NULL, not both; family, socktype,
 *  protocol and flags are getaddrinfo's hints (0 for any).
 *  @return 0 and one reference in *out to a future whose result is an
 *  aios_addrinfo_list_t * the future owns (take it with
 *  aios_future_take_result; free it with aios_addrinfo_list_free). The
 *  future fails with an AIOS_EAI_* error, or -errno; cancelling it cancels
 *  the lookup. AIOS_ECLOSED; AIOS_EINVAL for two NULL names. */
AIOS_EXTERN int aios_getaddrinfo(aios_loop_t *loop, const char *host, const char *service,
                                 int family, int socktype, int protocol, int flags,
                                 aios_future_t **out);
/*! aios_addrinfo_list_free() : frees a list getaddrinfo gave. NULL is a no-op. */
AIOS_EXTERN void aios_addrinfo_list_free(void *list);
/*! aios_getnameinfo() : asyncio's loop.getnameinfo: `address` (`length`
 *  bytes, copied) to a host and a service, with getnameinfo's NI_* flags.
 *  @return 0 and one reference in *out to a future whose result is an
 *  aios_nameinfo_t * (free it with aios_nameinfo_free); it fails with an
 *  AIOS_EAI_* error. AIOS_ECLOSED; AIOS_EINVAL for a length that is not an
 *  IPv4 or IPv6 address's. */
AIOS_EXTERN int aios_getnameinfo(aios_loop_t *loop, const void *address, unsigned int length,
                                 int flags, aios_future_t **out);
/*! aios_nameinfo_free() : frees a getnameinfo answer. NULL is a no-op. */
AIOS_EXTERN void aios_nameinfo_free(void *nameinfo);

/* ------------------------------------------------------------------------ */
/* Transports and protocols (asyncio.Transport, Protocol, BufferedProtocol)  */

typedef struct aios_transport_s aios_transport_t;
typedef struct aios_server_s aios_server_t;

/* A piece of memory to write: the library reads it during the call only. */
typedef struct aios_buf_s {
  const void *base;
  size_t length;
} aios_buf_t;

/* A protocol: asyncio's Protocol as a table of callbacks, all called on the
 * loop's thread with `arg`. The transport is lent for the call: take a
 * reference (aios_transport_ref) to keep it. Any callback may be NULL (a
 * NULL eof_received answers 0). The library copies the table; `arg` is the
 * library's from the call that takes the protocol succeeding: `destroy`
 * (may be NULL) frees it once, after connection_lost, after a failed
 * connection, or when set_protocol replaces it. When that call fails the
 * caller keeps `arg`. Fields may be added at the end: set `size` to
 * sizeof(aios_protocol_t). */
typedef struct aios_protocol_s {
  size_t size;
  void *arg;
  /* The connection is up (asyncio's connection_made). */
  void (*connection_made)(aios_transport_t *transport, void *arg);
  /* Bytes arrived: `data` is valid for this call only (copy to keep it). */
  void (*data_received)(aios_transport_t *transport, const void *data, size_t length,
                        void *arg);
  /* The peer will send no more. Return nonzero to keep the transport open
   * for writing (half-closed), 0 to close it (asyncio's eof_received).
   * As with asyncio, it comes after the callbacks that the last bytes'
   * data_received scheduled, and not while reading is paused. */
  int (*eof_received)(aios_transport_t *transport, void *arg);
  /* Called exactly once when the connection is gone: `error` is NULL for a
   * close or an EOF, else the reason (borrowed; -ECONNRESET, ...). No other
   * callback follows it. */
  void (*connection_lost)(aios_transport_t *transport, aios_error_t *error, void *arg);
  /* The write buffer went above the high-water mark / down to the low one. */
  void (*pause_writing)(aios_transport_t *transport, void *arg);
  void (*resume_writing)(aios_transport_t *transport, void *arg);
  /* asyncio.BufferedProtocol: when get_buffer is set, bytes are received
   * straight into the protocol's memory and data_received is not called.
   * get_buffer returns 0 and sets *buffer and *length (at least 1 byte;
   * `size_hint` is how much the library would like); the memory is the
   * protocol's and must stay valid until buffer_updated, which says how many
   * bytes were written at its start. A nonzero return (or a NULL buffer)
   * aborts the connection with that error. */
  int (*get_buffer)(aios_transport_t *transport, size_t size_hint, void **buffer,
                    size_t *length, void *arg);
  void (*buffer_updated)(aios_transport_t *transport, size_t nbytes, void *arg);
  aios_destructor_fn destroy;
  /* Batched delivery, for bindings where a call from C is costly: when
   * `batched` is nonzero no callback above is called (but `destroy`); each
   * event becomes a record with `token` in the loop's batch, which
   * aios_loop_take_io_events hands over (see there). */
  int batched;
  unsigned long long token;
} aios_protocol_t;

/* The events of batched protocols (aios_protocol_t.batched). */
typedef enum aios_io_event_kind_e {
  AIOS_IO_CONNECTED = 1, /* connection_made */
  AIOS_IO_DATA,          /* bytes: `length` of them at `offset` in the arena */
  AIOS_IO_EOF,           /* eof_received: the transport stays open; close it
                            (aios_transport_close) unless you keep it half-open */
  AIOS_IO_LOST,          /* connection_lost: `status` is 0 or the error's code */
  AIOS_IO_PAUSE_WRITING,
  AIOS_IO_RESUME_WRITING,
  AIOS_IO_DATA_BUFFER    /* bytes read into memory the buffer callback gave
                            (aios_loop_set_io_buffer_callback): `length` of
                            them at its start, 0 when it comes back unused;
                            `offset` is its address (a uintptr_t) */
} aios_io_event_kind_t;

/* One event of a batched protocol: plain integers, and its transport. */
typedef struct aios_io_event_s {
  int kind;                     /* an aios_io_event_kind_t */
  int status;                   /* AIOS_IO_LOST: 0 or a status code */
  unsigned long long token;     /* the protocol's token */
  aios_transport_t *transport;  /* lent until the next take */
  size_t offset;                /* AIOS_IO_DATA: into the arena */
  size_t length;
} aios_io_event_t;

/*! aios_loop_take_io_events() : hands over the events batched protocols
 *  of this loop recorded since the last call, in the order they happened,
 *  and the arena their bytes are in. Both stay valid until the next call
 *  on this loop (or its close); the transports are lent until then. A
 *  stream reads at most once between two calls: after its AIOS_IO_DATA it
 *  waits for the next take, so pause_reading called on seeing the bytes is
 *  exact. Its AIOS_IO_EOF is never in the take that has its last bytes: it
 *  is recorded on an iteration after that take, unless reading was paused.
 *  Bytes are received straight into the arena (no copy), each event's from
 *  a 64-byte boundary on (where the kernel's copy is fastest).
 *  Call it once per iteration: from the callback aios_loop_set_io_events_callback
 *  schedules, or after a run_once.
 *  @return 0, *events (NULL when none), *count and *arena; AIOS_ECLOSED. */
AIOS_EXTERN int aios_loop_take_io_events(aios_loop_t *loop, const aios_io_event_t **events,
                                         size_t *count, const unsigned char **arena);
/*! aios_loop_release_io_events() : says that the events and the arena the
 *  last aios_loop_take_io_events handed over are no longer used: the next
 *  reads may then go to the memory just read, while it is still in the
 *  CPU's cache. A binding that copies bytes out as it dispatches them calls
 *  it once the dispatch is over, when the take handed over more than a few
 *  KiB (for less, the call costs more than the cache lines it saves); the
 *  transports stay lent until the next take. Without it the events and the arena stay valid until the next
 *  take. Calling it again, or with nothing taken, does nothing.
 *  @return 0; AIOS_ECLOSED. */
AIOS_EXTERN int aios_loop_release_io_events(aios_loop_t *loop);
/*! aios_loop_set_io_events_callback() : tells a binding when batched
 *  events wait: `callback(arg)` is scheduled with call_soon when the first
 *  event after a take is recorded (at once if some wait already), and not
 *  again until the next take. Events of a poll are so taken in the
 *  iteration that polled, and a loop with no events still waits: without
 *  it, a binding that takes events from a callback of its own has to keep
 *  one scheduled, and its loop never waits. NULL `callback` stops it.
 *  @return 0; AIOS_ECLOSED. */
AIOS_EXTERN int aios_loop_set_io_events_callback(aios_loop_t *loop, aios_callback_fn callback,
                                                 void *arg);

/* Memory for one read of a batched protocol's stream (whose token is
 * `token`): at least `size` bytes, or NULL for the arena. */
typedef void *(*aios_io_buffer_fn)(void *arg, unsigned long long token, size_t size);

/*! aios_loop_set_io_buffer_callback() : lets a binding give the memory that
 *  large reads of this loop's batched protocols go to, so that a binding
 *  which hands bytes on as objects of its own (Python's bytes) has the
 *  kernel write them into that object and copies nothing. A stream whose
 *  last read got at least AIOS_IO_BUFFER_MIN bytes asks `get(arg, token,
 *  size)` for its next read, `size` being one byte more than that read got,
 *  rounded up to 4 KiB (doubled when the read filled memory `get` gave, up
 *  to 256 KiB); other reads, and those for which `get` returns NULL, go to
 *  the arena. Called on the loop's thread, from inside the poll; it may not
 *  call the library. Every memory `get` gave comes back in exactly one
 *  AIOS_IO_DATA_BUFFER event, in the order `get` gave them (with 0 bytes
 *  when the read found none, or the stream ended or failed): the binding
 *  frees it then, and frees what it gave when the loop closes before the
 *  take. NULL `get` stops it.
 *  @return 0; AIOS_ECLOSED. */
AIOS_EXTERN int aios_loop_set_io_buffer_callback(aios_loop_t *loop, aios_io_buffer_fn get,
                                                 void *arg);
#define AIOS_IO_BUFFER_MIN 4096

/* Makes a server's protocol for each connection it accepts: fill `protocol`
 * (its size is already set) and return 0, or return nonzero to refuse the
 * connection, which is then closed. Called on the loop's thread. */
typedef int (*aios_protocol_factory_fn)(void *arg, aios_protocol_t *protocol);

/* How aios_create_connection connects. A zeroed struct (or NULL) is
 * asyncio's defaults. */
typedef struct aios_connect_options_s {
  size_t size;                 /* sizeof(aios_connect_options_t) */
  int family;                  /* AF_UNSPEC (0), AF_INET or AF_INET6 */
  int flags;                   /* getaddrinfo flags */
  const char *local_host;      /* bind to this address first (local_addr) */
  int local_port;              /*   and port; 0: any */
  /* Seconds before the next address is tried while one is still connecting
   * (RFC 8305, asyncio's happy_eyeballs_delay); 0: one after another. */
  double happy_eyeballs_delay;
  /* Reorder the addresses so families alternate, `interleave` of the first
   * family before the next (0: asyncio's default, 1 with happy eyeballs). */
  int interleave;
} aios_connect_options_t;

/*! aios_create_connection() : asyncio's loop.create_connection over TCP:
 *  resolves host and port, then tries each address (staggered with happy
 *  eyeballs) until one connects; TCP_NODELAY is set. The protocol's
 *  connection_made runs before the future is done.
 *  @return 0 and one reference in *out to a future whose result is an
 *  aios_transport_t * holding one reference (aios_future_take_result gives
 *  it to you; its destructor drops it). The future fails with the attempt's
 *  error (-ECONNREFUSED, -ETIMEDOUT, an AIOS_EAI_* code), or for several
 *  failed attempts with the first one's code and a message listing them
 *  all; cancelling it stops the attempts. If the future fails the protocol
 *  is destroyed without a callback. AIOS_ECLOSED; AIOS_EINVAL for a port
 *  outside 0..65535, an options size too small, or NaN/negative delays. */
AIOS_EXTERN int aios_create_connection(aios_loop_t *loop, const aios_protocol_t *protocol,
                                       const char *host, int port,
                                       const aios_connect_options_t *options,
                                       aios_future_t **out);
/*! aios_create_unix_connection() : as aios_create_connection, to the Unix
 *  socket at `path` (asyncio's create_unix_connection). A path longer than
 *  a sockaddr_un holds is AIOS_EINVAL. */
AIOS_EXTERN int aios_create_unix_connection(aios_loop_t *loop, const aios_protocol_t *protocol,
                                            const char *path, aios_future_t **out);
/*! aios_connect_accepted_socket() : wraps a connected stream socket (TCP
 *  or Unix) that something else made (asyncio's connect_accepted_socket).
 *  The transport owns `fd` from a successful call on and closes it; on
 *  failure the caller keeps it. @return 0 and one reference in *out to a
 *  future as aios_create_connection's; AIOS_ECLOSED; -ENOTSOCK, -EINVAL for
 *  a descriptor that is not a connected stream socket. */
AIOS_EXTERN int aios_connect_accepted_socket(aios_loop_t *loop, const aios_protocol_t *protocol,
                                             int fd, aios_future_t **out);

/* Every transport function below may be called on a closed transport:
 * writes are then ignored (asyncio's), the queries answer, and the other
 * calls are no-ops that return 0, unless the comment says otherwise. */

/*! aios_transport_write() : sends `data` (asyncio's write). The socket is
 *  tried at once; what it does not take is copied into the write buffer and
 *  sent as the socket allows, so `data` may be reused when the call
 *  returns. @return 0; AIOS_EINVAL after write_eof (asyncio's RuntimeError)
 *  or a NULL `data` with a nonzero length. An error of the socket is not
 *  returned: it closes the transport, and connection_lost gets it. */
AIOS_EXTERN int aios_transport_write(aios_transport_t *transport, const void *data,
                                     size_t length);
/*! aios_transport_write_nocopy() : aios_transport_write without the copy:
 *  what the socket does not take at once is sent from `data` itself, which
 *  must stay valid and unchanged until `release(release_arg)` runs. That
 *  runs exactly once, when the library is done with `data` (sent, or
 *  dropped by an abort or a lost connection), possibly before this call
 *  returns; never when the call fails, and then the caller keeps `data`.
 *  `release` may be NULL. @return as aios_transport_write's. */
AIOS_EXTERN int aios_transport_write_nocopy(aios_transport_t *transport, const void *data,
                                            size_t length, aios_destructor_fn release,
                                            void *release_arg);
/*! aios_transport_writev() : writes `count` pieces as one (writelines). */
AIOS_EXTERN int aios_transport_writev(aios_transport_t *transport, const aios_buf_t *bufs,
                                      size_t count);
/*! aios_transport_write_eof() : closes the write side once the buffer is
 *  sent (shutdown); reading goes on. */
AIOS_EXTERN int aios_transport_write_eof(aios_transport_t *transport);
/*! aios_transport_can_write_eof() : 1 (TCP and Unix sockets can). */
AIOS_EXTERN int aios_transport_can_write_eof(aios_transport_t *transport);
/*! aios_transport_close() : stops reading, sends what is buffered, then
 *  closes; connection_lost(NULL) follows once. */
AIOS_EXTERN int aios_transport_close(aios_transport_t *transport);
/*! aios_transport_abort() : closes now, dropping the buffer;
 *  connection_lost(NULL) follows once. */
AIOS_EXTERN int aios_transport_abort(aios_transport_t *transport);
/*! aios_transport_is_closing() : 1 once close or abort was called or the
 *  connection was lost, else 0. */
AIOS_EXTERN int aios_transport_is_closing(aios_transport_t *transport);
/*! aios_transport_get_error() : the error connection_lost is to get, in
 *  *error: a negative status (-EPIPE, -ECONNRESET, ...) from when the
 *  transport starts closing with one (a write or read the socket failed)
 *  until connection_lost has run, else 0 (open, closed without an error,
 *  or lost). A binding that runs connection_lost from a queue of its own
 *  reads it as soon as it sees the transport closing, to queue
 *  connection_lost where asyncio's _fatal_error does. @return 0, or
 *  AIOS_EINVAL for a NULL `error`. */
AIOS_EXTERN int aios_transport_get_error(aios_transport_t *transport, int *error);
/*! aios_transport_pause_reading() / _resume_reading() : stop and restart
 *  data_received (no-ops when already so or closing). */
AIOS_EXTERN int aios_transport_pause_reading(aios_transport_t *transport);
AIOS_EXTERN int aios_transport_resume_reading(aios_transport_t *transport);
/*! aios_transport_is_reading() : 1 when reading, 0 when paused or closing. */
AIOS_EXTERN int aios_transport_is_reading(aios_transport_t *transport);
/*! aios_transport_get_write_buffer_size() : bytes written but not yet sent,
 *  or a common error (as a negative value). */
AIOS_EXTERN long long aios_transport_get_write_buffer_size(aios_transport_t *transport);
/*! aios_transport_set_write_buffer_limits() : asyncio's
 *  set_write_buffer_limits: a negative `high` is the default (64 KiB, or 4x
 *  `low` when `low` is given), a negative `low` is high / 4. May call
 *  pause_writing or resume_writing at once. @return 0; AIOS_EINVAL when
 *  low > high. */
AIOS_EXTERN int aios_transport_set_write_buffer_limits(aios_transport_t *transport,
                                                       long long high, long long low);
/*! aios_transport_get_write_buffer_limits() : the limits; either pointer may be NULL. */
AIOS_EXTERN int aios_transport_get_write_buffer_limits(aios_transport_t *transport,
                                                       size_t *low, size_t *high);
/*! aios_transport_get_sockname() / _get_peername() : the socket's address
 *  (get_extra_info('sockname'/'peername')), copied into `address` of
 *  *length bytes; *length is set to the address's length. @return 0;
 *  -ENOTCONN when it has none (the peer of an unconnected Unix socket, a
 *  closed transport). */
AIOS_EXTERN int aios_transport_get_sockname(aios_transport_t *transport, void *address,
                                            unsigned int *length);
AIOS_EXTERN int aios_transport_get_peername(aios_transport_t *transport, void *address,
                                            unsigned int *length);
/*! aios_transport_get_fd() : the socket's descriptor (get_extra_info('socket')),
 *  still the transport's; -EBADF once it is closed. */
AIOS_EXTERN int aios_transport_get_fd(aios_transport_t *transport);
/*! aios_transport_set_protocol() : asyncio's set_protocol: callbacks go to
 *  `protocol` (copied) from now on; the old protocol is destroyed. Called
 *  from get_buffer, it takes effect once the read into that buffer is over:
 *  its count goes to the old protocol's buffer_updated, which is destroyed
 *  only then. AIOS_EINVAL on a subprocess's pipe transport (the subprocess
 *  follows its pipes through their protocols). On a
 *  transport whose connection is lost, AIOS_EINVALIDSTATE and the caller
 *  keeps `protocol->arg`. */
AIOS_EXTERN int aios_transport_set_protocol(aios_transport_t *transport,
                                            const aios_protocol_t *protocol);
/*! aios_transport_get_protocol() : copies the current protocol's table
 *  into *protocol (up to protocol->size bytes, which the caller sets). The
 *  table still belongs to the transport. AIOS_EINVALIDSTATE once the
 *  connection is lost. */
AIOS_EXTERN int aios_transport_get_protocol(aios_transport_t *transport,
                                            aios_protocol_t *protocol);
/*! aios_transport_get_loop() : one reference to the transport's loop in *out. */
AIOS_EXTERN int aios_transport_get_loop(aios_transport_t *transport, aios_loop_t **out);
/*! aios_transport_ref() / _unref() : the transport lives while you hold a
 *  reference or its connection is open. Dropping the last reference does
 *  not close it. unref accepts NULL. Any thread for ref/unref. */
AIOS_EXTERN int aios_transport_ref(aios_transport_t *transport);
AIOS_EXTERN int aios_transport_unref(aios_transport_t *transport);

/* ------------------------------------------------------------------------ */
/* Servers (asyncio.Server)                                                   */

/* How aios_create_server listens. A zeroed struct (or NULL) is asyncio's
 * defaults. Tri-state fields: 0 is the default, 1 yes, -1 no. */
typedef struct aios_server_options_s {
  size_t size;              /* sizeof(aios_server_options_t) */
  int family;               /* AF_UNSPEC (0), AF_INET or AF_INET6 */
  int flags;                /* getaddrinfo flags (AI_PASSIVE is always added) */
  int backlog;              /* 0: 100 */
  int reuse_address;        /* SO_REUSEADDR; default on */
  int reuse_port;           /* SO_REUSEPORT; default off */
  int start_serving;        /* accept at once; default yes */
  /* More hosts to listen on besides `host` (asyncio's host sequence). */
  const char *const *hosts;
  size_t host_count;
  /* Serve this listening socket instead of resolving (asyncio's sock=);
   * used when has_sock is nonzero. The server owns it from a successful
   * call on. */
  int has_sock;
  int sock;
  /* A Unix server leaves its socket file at close (asyncio's
   * cleanup_socket=False); by default it removes the file if it is still
   * the one it bound. Older callers' structs without this field mean 0. */
  int keep_socket_file;
} aios_server_options_t;

/*! aios_create_server() : asyncio's loop.create_server: listens on every
 *  address `host` (NULL or "": all interfaces) resolves to, on `port` (0: a
 *  free one), and makes a protocol with `factory` for each connection.
 *  `factory_arg` is the server's from a successful call on:
 *  `factory_arg_destructor` (may be NULL) frees it when the server is freed.
 *  IPv6 sockets are IPV6_V6ONLY, as asyncio's.
 *  @return 0 and one reference in *out to a future whose result is an
 *  aios_server_t * holding one reference (its destructor drops it). The
 *  future fails with -EADDRINUSE, -EACCES, an AIOS_EAI_* error, ...
 *  AIOS_ECLOSED; AIOS_EINVAL for a NULL factory, a port outside 0..65535. */
AIOS_EXTERN int aios_create_server(aios_loop_t *loop, aios_protocol_factory_fn factory,
                                   void *factory_arg, aios_destructor_fn factory_arg_destructor,
                                   const char *host, int port,
                                   const aios_server_options_t *options, aios_future_t **out);
/*! aios_create_unix_server() : as aios_create_server, on the Unix socket at
 *  `path`. A socket file already there is removed first, as asyncio does
 *  (whether something listens on it or not); another kind of file is
 *  -EADDRINUSE. Closing the server removes its socket file (the one at
 *  `path`, or the given socket's) if it is still that file. Of the
 *  options, backlog, start_serving and has_sock/sock apply. */
AIOS_EXTERN int aios_create_unix_server(aios_loop_t *loop, aios_protocol_factory_fn factory,
                                        void *factory_arg,
                                        aios_destructor_fn factory_arg_destructor,
                                        const char *path, const aios_server_options_t *options,
                                        aios_future_t **out);
/*! aios_server_close() : stops listening and cancels a pending
 *  serve_forever; open connections stay (asyncio's Server.close). Closing
 *  twice is a no-op. */
AIOS_EXTERN int aios_server_close(aios_server_t *server);
/*! aios_server_close_clients() / _abort_clients() : closes (or aborts)
 *  every connection the server accepted (asyncio 3.13). */
AIOS_EXTERN int aios_server_close_clients(aios_server_t *server);
AIOS_EXTERN int aios_server_abort_clients(aios_server_t *server);
/*! aios_server_wait_closed() : one reference in *out to a future done once
 *  the server is closed and its last connection is gone. */
AIOS_EXTERN int aios_server_wait_closed(aios_server_t *server, aios_future_t **out);
/*! aios_server_start_serving() : starts accepting (no-op if it does).
 *  Until then a server made with start_serving off has the sockets it
 *  bound not listening, so connections are refused (asyncio's).
 *  @return 0; AIOS_EINVALIDSTATE for a closed server. */
AIOS_EXTERN int aios_server_start_serving(aios_server_t *server);
/*! aios_server_serve_forever() : starts serving and gives one reference in
 *  *out to a future that is done only by cancelling it, which closes the
 *  server, or by aios_server_close (asyncio's serve_forever; the coroutine
 *  there then also waits for the connections to go: await
 *  aios_server_wait_closed for that). AIOS_EINVALIDSTATE for a closed
 *  server or one already served forever. */
AIOS_EXTERN int aios_server_serve_forever(aios_server_t *server, aios_future_t **out);
/*! aios_server_is_serving() : 1 while accepting, else 0. */
AIOS_EXTERN int aios_server_is_serving(aios_server_t *server);
/*! aios_server_socket_count() : how many sockets it listens on (0 once closed). */
AIOS_EXTERN int aios_server_socket_count(aios_server_t *server);
/*! aios_server_get_sockname() : the address of its `index`th socket, as
 *  aios_transport_get_sockname. AIOS_EINVAL for an index out of range. */
AIOS_EXTERN int aios_server_get_sockname(aios_server_t *server, size_t index, void *address,
                                         unsigned int *length);
/*! aios_server_get_loop() : one reference to the server's loop in *out. */
AIOS_EXTERN int aios_server_get_loop(aios_server_t *server, aios_loop_t **out);
/*! aios_server_ref() / _unref() : a server lives while you hold a reference
 *  or it listens; dropping the last reference does not close it. unref
 *  accepts NULL. Any thread. */
AIOS_EXTERN int aios_server_ref(aios_server_t *server);
AIOS_EXTERN int aios_server_unref(aios_server_t *server);

/* ------------------------------------------------------------------------ */
/* Datagrams and descriptor watchers                                          */

/* A datagram endpoint (asyncio's DatagramTransport). */
typedef struct aios_datagram_s aios_datagram_t;

/* asyncio.DatagramProtocol as a table of callbacks, on the loop's thread,
 * with the endpoint lent for the call; any may be NULL. `size`, `arg` and
 * `destroy` as for aios_protocol_t. */
typedef struct aios_datagram_protocol_s {
  size_t size;
  void *arg;
  void (*connection_made)(aios_datagram_t *datagram, void *arg);
  /* One datagram, valid for this call only, from the sender's `address`
   * (`address_length` 0: an unnamed Unix socket). */
  void (*datagram_received)(aios_datagram_t *datagram, const void *data, size_t length,
                            const void *address, unsigned int address_length, void *arg);
  /* A send or receive failed (borrowed error; ECONNREFUSED for an ICMP error
   * on a connected socket); the endpoint stays open. */
  void (*error_received)(aios_datagram_t *datagram, aios_error_t *error, void *arg);
  /* Called exactly once, after close or abort: `error` NULL or why. */
  void (*connection_lost)(aios_datagram_t *datagram, aios_error_t *error, void *arg);
  /* The send buffer went above the high-water mark, or back to the low. */
  void (*pause_writing)(aios_datagram_t *datagram, void *arg);
  void (*resume_writing)(aios_datagram_t *datagram, void *arg);
  aios_destructor_fn destroy;
} aios_datagram_protocol_t;

/* How aios_create_datagram_endpoint makes its socket. A zeroed struct (or
 * NULL) is asyncio's defaults. */
typedef struct aios_datagram_options_s {
  size_t size;          /* sizeof(aios_datagram_options_t) */
  int family;           /* AF_UNSPEC (0), AF_INET or AF_INET6 */
  int proto;
  int flags;            /* getaddrinfo flags */
  int reuse_port;       /* SO_REUSEPORT */
  int allow_broadcast;  /* SO_BROADCAST; the endpoint is then not connected */
} aios_datagram_options_t;

/*! aios_create_datagram_endpoint() : asyncio's create_datagram_endpoint
 *  over UDP: binds to local_host:local_port (none when local_port < 0; a
 *  NULL host is the wildcard) and connects to remote_host:remote_port (none
 *  when remote_port < 0), each resolved for SOCK_DGRAM; one socket per
 *  (family, protocol) pair is tried until one works. With neither address
 *  the family must be given. connection_made runs before the future is done.
 *  @return 0 and one reference in *out to a future whose result is an
 *  aios_datagram_t * holding one reference; the future fails with the
 *  attempt's error (-EADDRINUSE, an AIOS_EAI_* code). AIOS_EINVAL for a port
 *  above 65535, no address and no family, or an options size too small;
 *  AIOS_ECLOSED. */
AIOS_EXTERN int aios_create_datagram_endpoint(aios_loop_t *loop, const aios_datagram_protocol_t *protocol,
                                              const char *local_host, int local_port,
                                              const char *remote_host, int remote_port,
                                              const aios_datagram_options_t *options, aios_future_t **out);
/*! aios_create_unix_datagram_endpoint() : the same over AF_UNIX datagram
 *  sockets: bound to `local_path` (a stale socket file there is removed
 *  first, as asyncio does) and connected to `remote_path`; either may be NULL. */
AIOS_EXTERN int aios_create_unix_datagram_endpoint(aios_loop_t *loop, const aios_datagram_protocol_t *protocol,
                                                   const char *local_path, const char *remote_path,
                                                   aios_future_t **out);
/*! aios_datagram_from_socket() : asyncio's create_datagram_endpoint(sock=):
 *  wraps a datagram socket (made non-blocking), which the endpoint owns from
 *  a successful call on. @return as aios_create_datagram_endpoint's;
 *  AIOS_EINVAL for a socket that is not SOCK_DGRAM; -ENOTSOCK. */
AIOS_EXTERN int aios_datagram_from_socket(aios_loop_t *loop, const aios_datagram_protocol_t *protocol, int fd,
                                          aios_future_t **out);
/*! aios_datagram_sendto() : asyncio's sendto: one datagram to `address`
 *  (a sockaddr of `address_length` bytes), or to the peer when `address` is
 *  NULL on a connected endpoint. Sent at once when nothing waits, else
 *  copied into the send buffer. A failure of the socket goes to
 *  error_received, not here; after close or abort the datagram is dropped.
 *  @return 0; AIOS_EINVAL for another address than a connected endpoint's
 *  peer, a bad address or NULL data with a length; -EDESTADDRREQ without an
 *  address on an unconnected endpoint. */
AIOS_EXTERN int aios_datagram_sendto(aios_datagram_t *datagram, const void *data, size_t length,
                                     const void *address, unsigned int address_length);
/*! aios_datagram_close() : no more datagrams are read; connection_lost
 *  runs once the send buffer is empty. aios_datagram_abort() drops the
 *  buffer and closes now. Either twice is a no-op. */
AIOS_EXTERN int aios_datagram_close(aios_datagram_t *datagram);
AIOS_EXTERN int aios_datagram_abort(aios_datagram_t *datagram);
AIOS_EXTERN int aios_datagram_is_closing(aios_datagram_t *datagram);
/*! aios_datagram_get_write_buffer_size() : bytes buffered (each datagram
 *  counts 8 bytes more, as in asyncio). @return it, or a negative status. */
AIOS_EXTERN long long aios_datagram_get_write_buffer_size(aios_datagram_t *datagram);
/*! aios_datagram_set_write_buffer_limits() : as aios_transport_set_write_buffer_limits. */
AIOS_EXTERN int aios_datagram_set_write_buffer_limits(aios_datagram_t *datagram, long long high,
                                                      long long low);
/*! aios_datagram_get_sockname() / _get_peername() : as the transport's;
 *  -ENOTCONN for the peer of an unconnected endpoint. */
AIOS_EXTERN int aios_datagram_get_sockname(aios_datagram_t *datagram, void *address, unsigned int *length);
AIOS_EXTERN int aios_datagram_get_peername(aios_datagram_t *datagram, void *address, unsigned int *length);
/*! aios_datagram_get_fd() : the socket's descriptor, or -EBADF once closed. */
AIOS_EXTERN int aios_datagram_get_fd(aios_datagram_t *datagram);
AIOS_EXTERN int aios_datagram_get_loop(aios_datagram_t *datagram, aios_loop_t **out);
AIOS_EXTERN int aios_datagram_ref(aios_datagram_t *datagram);
AIOS_EXTERN int aios_datagram_unref(aios_datagram_t *datagram);

/*! aios_loop_add_reader() / aios_loop_add_writer() : asyncio's add_reader
 *  and add_writer: `callback(arg)` runs on the loop, as a callback of its
 *  own, in each iteration `fd` is readable (writable). One reader and one
 *  writer per descriptor: adding again replaces the callback (and destroys
 *  its argument). `arg_destructor` (may be NULL) frees `arg` once, when the
 *  callback is replaced or removed, the descriptor is found closed, or the
 *  loop closes; on failure the caller keeps `arg`. The descriptor stays the
 *  caller's; closing it while it is watched is allowed (the watcher then
 *  goes at its next event, or at remove). @return 0; AIOS_EINVAL for a NULL
 *  callback or a descriptor an open transport of this loop uses; -EBADF;
 *  -EPERM for a descriptor epoll cannot watch (a regular file); AIOS_ECLOSED. */
AIOS_EXTERN int aios_loop_add_reader(aios_loop_t *loop, int fd, aios_callback_fn callback, void *arg,
                                     aios_destructor_fn arg_destructor);
AIOS_EXTERN int aios_loop_add_writer(aios_loop_t *loop, int fd, aios_callback_fn callback, void *arg,
                                     aios_destructor_fn arg_destructor);
/*! aios_loop_remove_reader() / aios_loop_remove_writer() : @return 1 if a
 *  callback was registered (and is now removed), 0 if not; AIOS_ECLOSED. */
AIOS_EXTERN int aios_loop_remove_reader(aios_loop_t *loop, int fd);
AIOS_EXTERN int aios_loop_remove_writer(aios_loop_t *loop, int fd);

/* ------------------------------------------------------------------------ */
/* Socket operations (asyncio's sock_* methods) and sendfile                 */

/* Each works on a non-blocking socket the caller owns and keeps, and gives
 * one reference in *out to a future. The call is made at once; one that
 * would block waits until the socket is ready. Several operations on one
 * socket are served in the order they were started, each way (reads, and
 * writes and connects). Cancelling the future leaves the socket usable: a
 * cancelled read never reads, a cancelled send sends no more (then
 * aios_error_bytes_sent on the future's error says how much it sent). A
 * socket closed while an operation waits fails it with -EBADF; one the
 * loop is closed under fails with AIOS_ECLOSED. Each returns 0; AIOS_EINVAL
 * for a NULL `out`, a blocking socket, a descriptor an open transport of
 * this loop uses, or a bad argument; -EBADF; AIOS_ECLOSED;
 * AIOS_EWRONGTHREAD. The future fails with the call's -errno. */

/* What aios_sock_recvfrom and aios_sock_recvfrom_into give: one allocation,
 * freed by aios_received_free. */
typedef struct aios_received_s {
  unsigned char address[128];  /* the sender's address, a struct sockaddr */
  unsigned int address_length; /* 0 when the sender has none */
  size_t length;               /* bytes received */
  unsigned char *data;         /* recvfrom: the bytes, then a NUL the length does
                                * not count; recvfrom_into: the caller's buffer */
} aios_received_t;

/*! aios_received_free() : frees a recvfrom result. NULL is a no-op. */
AIOS_EXTERN void aios_received_free(void *received);

/*! aios_sock_recv() : up to `n` bytes (none at EOF); the result is an
 *  aios_bytes_t * (aios_bytes_free), owned by the future until taken. */
AIOS_EXTERN int aios_sock_recv(aios_loop_t *loop, int fd, size_t n, aios_future_t **out);
/*! aios_sock_recv_into() : up to `n` bytes into `buffer`, which must stay
 *  valid until the future is done (a cancelled read never writes it); the
 *  result is the count, (void *)(intptr_t)count. */
AIOS_EXTERN int aios_sock_recv_into(aios_loop_t *loop, int fd, void *buffer, size_t n,
                                    aios_future_t **out);
/*! aios_sock_recvfrom() : a datagram of up to `n` bytes and its sender; the
 *  result is an aios_received_t *. */
AIOS_EXTERN int aios_sock_recvfrom(aios_loop_t *loop, int fd, size_t n, aios_future_t **out);
/*! aios_sock_recvfrom_into() : as aios_sock_recv_into, with the sender; the
 *  result is an aios_received_t * whose data is `buffer`. */
AIOS_EXTERN int aios_sock_recvfrom_into(aios_loop_t *loop, int fd, void *buffer, size_t n,
                                        aios_future_t **out);
/*! aios_sock_sendall() : all `length` bytes of `data` (copied if the socket
 *  does not take them at once), or the error; the result is the count. */
AIOS_EXTERN int aios_sock_sendall(aios_loop_t *loop, int fd, const void *data, size_t length,
                                  aios_future_t **out);
/*! aios_sock_sendto() : one datagram to `address` (a sockaddr of
 *  `address_length` bytes); the result is the count sent. */
AIOS_EXTERN int aios_sock_sendto(aios_loop_t *loop, int fd, const void *data, size_t length,
                                 const void *address, unsigned int address_length,
                                 aios_future_t **out);
/*! aios_sock_connect() : connects to `address`, already resolved. The
 *  future is done once connected, or fails with the connection's error. */
AIOS_EXTERN int aios_sock_connect(aios_loop_t *loop, int fd, const void *address,
                                  unsigned int address_length, aios_future_t **out);
/*! aios_sock_accept() : the next connection, a non-blocking close-on-exec
 *  descriptor, as the result (void *)(intptr_t)fd: take it with
 *  aios_future_take_result to own it (left in the future, it is closed with
 *  the future). getpeername(2) gives its peer. */
AIOS_EXTERN int aios_sock_accept(aios_loop_t *loop, int fd, aios_future_t **out);

/* sendfile's `fallback`: asyncio's fallback argument, and a third way. */
typedef enum aios_sendfile_fallback_e {
  AIOS_SENDFILE_FALLBACK_REFUSED = 0, /* the kernel's sendfile or AIOS_ENOSENDFILE */
  AIOS_SENDFILE_FALLBACK_ALLOWED = 1, /* else reads of the file, written (asyncio's default) */
  AIOS_SENDFILE_FALLBACK_ALWAYS = 2   /* always reads and writes */
} aios_sendfile_fallback_t;

/*! aios_sock_sendfile() : asyncio's sock_sendfile: `count` bytes (-1: to
 *  the end) of the file `file` from `offset`, to a SOCK_STREAM socket, with
 *  the kernel's sendfile(2) when `file` is a regular file, else (or with
 *  AIOS_SENDFILE_FALLBACK_ALWAYS) by reads of the file (on the loop's
 *  thread, as sendfile(2) reads) written to the socket. The file's own
 *  offset is left after the last byte sent, however it ends. The result is
 *  the count sent. @return as above; AIOS_EINVAL for a negative offset, a
 *  count of 0 or below -1, or a socket that is not SOCK_STREAM;
 *  AIOS_ENOSENDFILE when the fallback is refused and the kernel's sendfile
 *  cannot send this file (the future may fail with it too). */
AIOS_EXTERN int aios_sock_sendfile(aios_loop_t *loop, int fd, int file, long long offset,
                                   long long count, int fallback, aios_future_t **out);
/*! aios_transport_sendfile() : asyncio's loop.sendfile: the same through a
 *  stream transport's socket (or write pipe), once what was written before
 *  is sent. Until the future is done the transport does not read and
 *  refuses writes (AIOS_EINVAL); closing it fails the future with
 *  -ENOTCONN. @return as aios_sock_sendfile; AIOS_EINVAL for a closing
 *  transport, a read pipe, or a sendfile already under way. */
AIOS_EXTERN int aios_transport_sendfile(aios_transport_t *transport, int file, long long offset,
                                        long long count, int fallback, aios_future_t **out);

/* ------------------------------------------------------------------------ */
/* Streams (asyncio.StreamReader and StreamWriter)                           */

/* One connection's StreamReader and StreamWriter together (or a reader fed
 * by hand, from aios_stream_new). */
typedef struct aios_stream_s aios_stream_t;

/* The bytes a read gives: one allocation, freed by aios_bytes_free. */
typedef struct aios_bytes_s {
  size_t length;
  unsigned char *data; /* `length` bytes, then a NUL the length does not count */
} aios_bytes_t;

/*! aios_bytes_free() : frees the result of a stream read. NULL is a no-op. */
AIOS_EXTERN void aios_bytes_free(void *bytes);

/* Runs for each connection a stream server accepts, with the stream lent
 * for the call (take a reference to keep it). Return a task that serves it
 * (the server takes that reference: when the task fails, its error goes to
 * the exception handler and the connection is closed, as in asyncio; when
 * it ends cancelled the connection is closed unreported, as in 3.13), or
 * NULL. Called on the loop's thread. */
typedef aios_task_t *(*aios_client_connected_fn)(aios_stream_t *stream, void *arg);

/*! aios_open_connection() : asyncio's open_connection: create_connection
 *  with a stream protocol. `limit` is the reader's buffer limit (0: 64 KiB);
 *  `options` as for aios_create_connection. @return 0 and one reference in
 *  *out to a future whose result is an aios_stream_t * holding one reference
 *  (its destructor drops it); it fails as aios_create_connection's does. */
AIOS_EXTERN int aios_open_connection(aios_loop_t *loop, const char *host, int port,
                                     size_t limit, const aios_connect_options_t *options,
                                     aios_future_t **out);
/*! aios_open_unix_connection() : as aios_open_connection, to a Unix socket. */
AIOS_EXTERN int aios_open_unix_connection(aios_loop_t *loop, const char *path, size_t limit,
                                          aios_future_t **out);
/*! aios_start_server() : asyncio's start_server: create_server whose
 *  connections are streams handed to `callback`. `arg` and its destructor
 *  as create_server's factory_arg. Results and errors as aios_create_server's. */
AIOS_EXTERN int aios_start_server(aios_loop_t *loop, aios_client_connected_fn callback,
                                  void *arg, aios_destructor_fn arg_destructor,
                                  const char *host, int port, size_t limit,
                                  const aios_server_options_t *options, aios_future_t **out);
/*! aios_start_unix_server() : as aios_start_server, on a Unix socket. */
AIOS_EXTERN int aios_start_unix_server(aios_loop_t *loop, aios_client_connected_fn callback,
                                       void *arg, aios_destructor_fn arg_destructor,
                                       const char *path, size_t limit,
                                       const aios_server_options_t *options,
                                       aios_future_t **out);
/*! aios_stream_new() : a reader with no transport, fed by aios_stream_feed_data
 *  and aios_stream_feed_eof (limit 0: 64 KiB). Writing to it is AIOS_EINVALIDSTATE.
 *  @return 0 and one reference in *out; AIOS_ECLOSED. */
AIOS_EXTERN int aios_stream_new(aios_loop_t *loop, size_t limit, aios_stream_t **out);

/* Reads. Each gives one reference in *out to a future whose result is an
 * aios_bytes_t * the future owns until taken (aios_future_take_result).
 * Bytes that arrive while a read waits stay in the stream: a read cancelled
 * loses nothing. A stream has one reader at a time: a read while another
 * waits fails at once with AIOS_EINVALIDSTATE (asyncio's RuntimeError).
 * The future fails with the connection's error (-ECONNRESET, ...) when the
 * connection was lost with one and the buffer is empty. */

/*! aios_stream_read() : up to `n` bytes, at least one unless at EOF (then
 *  empty); n = -1 reads to EOF; n = 0 gives empty bytes at once. */
AIOS_EXTERN int aios_stream_read(aios_stream_t *stream, long long n, aios_future_t **out);
/*! aios_stream_readline() : up to and including "\n"; at EOF what is left.
 *  A line longer than the limit fails with AIOS_ELIMIT (and is dropped, as
 *  asyncio's readline drops it). */
AIOS_EXTERN int aios_stream_readline(aios_stream_t *stream, aios_future_t **out);
/*! aios_stream_readexactly() : exactly `n` bytes; the future fails with
 *  AIOS_EINCOMPLETE when EOF comes first (aios_error_partial gives what was
 *  read). An `n` past LLONG_MAX is read as LLONG_MAX (it ends at EOF). */
AIOS_EXTERN int aios_stream_readexactly(aios_stream_t *stream, size_t n, aios_future_t **out);
/*! aios_stream_readuntil() : up to and including the first of the
 *  `count` separators found earliest (asyncio 3.13 takes several);
 *  AIOS_EINCOMPLETE at EOF, AIOS_ELIMIT when no separator is found within
 *  the limit (aios_error_consumed says where to look again; the data stays).
 *  @return AIOS_EINVAL for no separator or an empty one. */
AIOS_EXTERN int aios_stream_readuntil(aios_stream_t *stream, const aios_buf_t *separators,
                                      size_t count, aios_future_t **out);
/*! aios_stream_at_eof() : 1 when EOF was received and the buffer is empty. */
AIOS_EXTERN int aios_stream_at_eof(aios_stream_t *stream);
/*! aios_stream_feed_data() / _feed_eof() : feed a reader by hand (the
 *  bytes are copied). Feeding after EOF is AIOS_EINVALIDSTATE. */
AIOS_EXTERN int aios_stream_feed_data(aios_stream_t *stream, const void *data, size_t length);
AIOS_EXTERN int aios_stream_feed_eof(aios_stream_t *stream);

/* Writes: as the transport's (asyncio's StreamWriter). */

/*! aios_stream_write() / _writev() : see aios_transport_write. */
AIOS_EXTERN int aios_stream_write(aios_stream_t *stream, const void *data, size_t length);
AIOS_EXTERN int aios_stream_writev(aios_stream_t *stream, const aios_buf_t *bufs, size_t count);
/*! aios_stream_drain() : one reference in *out to a future done once the
 *  write buffer is below its high-water mark (at once when it is: the
 *  common case costs no wait). It fails with the connection's error, or
 *  -ECONNRESET ("Connection lost") once the connection is gone. */
AIOS_EXTERN int aios_stream_drain(aios_stream_t *stream, aios_future_t **out);
/*! aios_stream_write_eof() / _can_write_eof() / _close() / _is_closing() :
 *  the transport's. */
AIOS_EXTERN int aios_stream_write_eof(aios_stream_t *stream);
AIOS_EXTERN int aios_stream_can_write_eof(aios_stream_t *stream);
AIOS_EXTERN int aios_stream_close(aios_stream_t *stream);
AIOS_EXTERN int aios_stream_is_closing(aios_stream_t *stream);
/*! aios_stream_wait_closed() : one reference in *out to a future done once
 *  the connection is lost (with its error, if it had one). */
AIOS_EXTERN int aios_stream_wait_closed(aios_stream_t *stream, aios_future_t **out);
/*! aios_stream_get_transport() : one reference to its transport in *out;
 *  AIOS_EINVALIDSTATE for a reader fed by hand. */
AIOS_EXTERN int aios_stream_get_transport(aios_stream_t *stream, aios_transport_t **out);
/*! aios_stream_ref() / _unref() : unref accepts NULL. A stream whose last
 *  reference goes is not closed: its connection lives until closed or lost.
 *  Any thread. */
AIOS_EXTERN int aios_stream_ref(aios_stream_t *stream);
AIOS_EXTERN int aios_stream_unref(aios_stream_t *stream);

/* ------------------------------------------------------------------------ */
/* Pipes, signals and subprocesses                                            */

/*! aios_connect_read_pipe() / aios_connect_write_pipe() : asyncio's
 *  connect_read_pipe and connect_write_pipe: a transport over `fd`, a pipe,
 *  a FIFO, a socket or a character device such as a tty (a regular file is
 *  AIOS_EINVAL, and a descriptor epoll cannot watch, as /dev/null, is
 *  -EPERM, as asyncio refuses them). The descriptor is made non-blocking;
 *  the transport owns it from a successful call on and closes it; on
 *  failure the caller keeps it. A read pipe closes at EOF after
 *  eof_received (whose answer is ignored); aios_transport_write on it is
 *  AIOS_EINVAL. A write pipe's protocol gets no data: aios_transport_write_eof
 *  closes it once its buffer is sent, and when the pipe's reader goes away
 *  (a FIFO or socket) it closes at once, with -EPIPE when bytes were still
 *  buffered. The other transport calls behave as for sockets; pause and
 *  resume reading do nothing on a write pipe.
 *  @return 0 and one reference in *out to a future as aios_create_connection's;
 *  AIOS_ECLOSED; -EBADF. */
AIOS_EXTERN int aios_connect_read_pipe(aios_loop_t *loop, const aios_protocol_t *protocol, int fd,
                                       aios_future_t **out);
AIOS_EXTERN int aios_connect_write_pipe(aios_loop_t *loop, const aios_protocol_t *protocol, int fd,
                                        aios_future_t **out);
/*! aios_open_read_pipe() / aios_open_write_pipe() : streams over a pipe:
 *  a stream whose reads come from `fd` (limit 0: 64 KiB), or one whose
 *  writes (and drain) go to it; reading a write pipe's stream gives EOF once
 *  it is closed. The descriptor as for aios_connect_read_pipe. @return 0 and
 *  one reference in *out to a future whose result is an aios_stream_t *
 *  holding one reference; errors as aios_connect_read_pipe's. */
AIOS_EXTERN int aios_open_read_pipe(aios_loop_t *loop, int fd, size_t limit, aios_future_t **out);
AIOS_EXTERN int aios_open_write_pipe(aios_loop_t *loop, int fd, aios_future_t **out);

/*! aios_loop_add_signal_handler() : asyncio's add_signal_handler: each time
 *  `signum` arrives, `callback(arg)` runs on the loop's thread as an
 *  ordinary callback (never inside the signal handler). A handler already
 *  set for `signum` on this loop is replaced (its `arg` is destroyed). When
 *  several loops watch one signal, each of them runs its handler. `arg_destructor`
 *  (may be NULL) frees `arg` once, when the handler is replaced or removed or
 *  the loop closes; on failure the caller keeps `arg`. @return 0; AIOS_EINVAL
 *  for a NULL callback, a number outside 1..64, SIGKILL, SIGSTOP or a
 *  signal the C library reserves; AIOS_ECLOSED; AIOS_EWRONGTHREAD. */
AIOS_EXTERN int aios_loop_add_signal_handler(aios_loop_t *loop, int signum, aios_callback_fn callback,
                                             void *arg, aios_destructor_fn arg_destructor);
/*! aios_loop_remove_signal_handler() : removes this loop's handler of
 *  `signum`. Once no loop watches the signal its disposition is the default
 *  again (the action the system takes, not Python's KeyboardInterrupt for
 *  SIGINT), except SIGPIPE, which stays ignored as the library keeps it.
 *  Every handler is removed when its loop closes. @return 1 if one was
 *  removed, 0 if there was none; AIOS_EINVAL for a number outside 1..64;
 *  AIOS_ECLOSED; AIOS_EWRONGTHREAD. */
AIOS_EXTERN int aios_loop_remove_signal_handler(aios_loop_t *loop, int signum);

/* Where a child's standard stream goes (asyncio's stdin=, stdout=, stderr=). */
typedef enum aios_child_stream_e {
  AIOS_CHILD_INHERIT = 0, /* the parent's own (None) */
  AIOS_CHILD_PIPE,        /* a pipe to the parent (PIPE); for stdin a socket
                             pair (as libuv makes it), for its larger buffer */
  AIOS_CHILD_DEVNULL,     /* /dev/null (DEVNULL) */
  AIOS_CHILD_STDOUT,      /* stderr only: where stdout goes (STDOUT) */
  AIOS_CHILD_FD           /* the descriptor in the matching *_fd field,
                             which stays the caller's */
} aios_child_stream_t;

/* How a child starts. A zeroed struct (or NULL) is asyncio's defaults:
 * every stream inherited, the parent's cwd and environment, no new session
 * or group, every descriptor above 2 closed in the child (close_fds). */
typedef struct aios_spawn_options_s {
  size_t size;                  /* sizeof(aios_spawn_options_t) */
  int stdin_mode, stdout_mode, stderr_mode; /* aios_child_stream_t */
  int stdin_fd, stdout_fd, stderr_fd;       /* for AIOS_CHILD_FD */
  const char *cwd;              /* NULL: the parent's */
  /* "NAME=value" strings, NULL-terminated: the child's whole environment,
   * or with `env_extend` what replaces or adds to the parent's. NULL: the
   * parent's environment. */
  const char *const *env;
  int env_extend;
  int start_new_session;        /* setsid() in the child */
  int use_process_group;        /* nonzero: setpgid(0, process_group) */
  int process_group;            /*   0: a group of the child's own */
  const int *pass_fds;          /* descriptors the child keeps (at most 256) */
  size_t pass_fds_count;
  size_t limit;                 /* aios_create_subprocess_*: the readers' limit (0: 64 KiB) */
  /* Nonzero: each AIOS_CHILD_PIPE is a Unix socket pair, as libuv's and
   * uvloop's are: bulk data moves about 1.5 times as fast, but the child
   * cannot open /dev/stdin, /dev/stdout or /dev/stderr. 0: pipes, as
   * asyncio's. (Added after `limit`: a caller whose `size` ends at `limit`
   * gets pipes.) */
  int socket_pairs;
  /* (Added after `socket_pairs`: a caller whose `size` ends there gets
   * NULL and AIOS_CHILD_SIGNALS_RESET.) */
  /* The file run instead of the program, which stays argv[0] (asyncio's
   * executable=), searched in PATH as the program is; for
   * aios_subprocess_shell the shell run instead of /bin/sh. NULL: none. */
  const char *executable;
  int signals;                  /* aios_child_signals_t */
} aios_spawn_options_t;

/* What becomes of the signals a child's parent ignores (one the parent
 * handles gets its default action at exec whatever this says). */
typedef enum aios_child_signals_e {
  AIOS_CHILD_SIGNALS_RESET = 0,  /* every signal's default action (libuv's) */
  AIOS_CHILD_SIGNALS_RESTORE,    /* SIGPIPE and SIGXFSZ default, the other ignored
                                    ones stay ignored (restore_signals=True) */
  AIOS_CHILD_SIGNALS_INHERIT     /* the ignored stay ignored (restore_signals=False) */
} aios_child_signals_t;

/* A running child and its pipes (asyncio's SubprocessTransport). */
typedef struct aios_subprocess_s aios_subprocess_t;

/* asyncio.SubprocessProtocol as a table of callbacks, called on the loop's
 * thread with `arg` and the subprocess lent for the call; any may be NULL.
 * `size`, `arg` and `destroy` as for aios_protocol_t: `destroy` frees `arg`
 * once, after connection_lost or when the call that takes it fails after
 * succeeding (never when it fails at once). */
typedef struct aios_subprocess_protocol_s {
  size_t size;
  void *arg;
  void (*connection_made)(aios_subprocess_t *subprocess, void *arg);
  /* Bytes the child wrote to its fd 1 or 2: valid for this call only. */
  void (*pipe_data_received)(aios_subprocess_t *subprocess, int fd, const void *data, size_t length,
                             void *arg);
  /* The pipe of fd 0, 1 or 2 closed: `error` NULL, or why (borrowed). */
  void (*pipe_connection_lost)(aios_subprocess_t *subprocess, int fd, aios_error_t *error, void *arg);
  void (*process_exited)(aios_subprocess_t *subprocess, void *arg);
  /* The child exited and every pipe closed; nothing follows. */
  void (*connection_lost)(aios_subprocess_t *subprocess, aios_error_t *error, void *arg);
  /* The child's stdin went above its high-water mark, or back to the low. */
  void (*pause_writing)(aios_subprocess_t *subprocess, void *arg);
  void (*resume_writing)(aios_subprocess_t *subprocess, void *arg);
  aios_destructor_fn destroy;
} aios_subprocess_protocol_t;

/*! aios_subprocess_exec() : asyncio's loop.subprocess_exec: starts
 *  `program` (searched in PATH when it has no "/") with the arguments
 *  `args` (NULL-terminated; NULL: none), argv[0] being the program. A child that cannot start (no such program, not executable,
 *  a bad cwd) is the call's error, -ENOENT, -EACCES, ..., and nothing is
 *  left behind. The protocol's connection_made runs before the future is
 *  done. No child is ever left unreaped: one still running when the loop
 *  closes is killed (SIGKILL) and reaped then, and one whose subprocess
 *  nobody holds is reaped when it exits.
 *  @return 0 and one reference in *out to a future whose result is an
 *  aios_subprocess_t * holding one reference (aios_future_take_result gives
 *  it to you; its destructor drops it); AIOS_EINVAL for a NULL or empty
 *  program, an options size too small, a mode out of range, STDOUT for
 *  stdin or stdout, a negative descriptor or too many pass_fds, an empty
 *  executable, a `signals` out of range; AIOS_ECLOSED. */
AIOS_EXTERN int aios_subprocess_exec(aios_loop_t *loop, const aios_subprocess_protocol_t *protocol,
                                     const char *program, const char *const *args,
                                     const aios_spawn_options_t *options, aios_future_t **out);
/*! aios_subprocess_shell() : as aios_subprocess_exec, running `command`
 *  with /bin/sh -c (asyncio's subprocess_shell). */
AIOS_EXTERN int aios_subprocess_shell(aios_loop_t *loop, const aios_subprocess_protocol_t *protocol,
                                      const char *command, const aios_spawn_options_t *options,
                                      aios_future_t **out);
/*! aios_subprocess_get_pid() : @return the child's pid, or a common error. */
AIOS_EXTERN int aios_subprocess_get_pid(aios_subprocess_t *subprocess);
/*! aios_subprocess_get_returncode() : @return 1 and the returncode in *code
 *  once the child exited (the exit status, or minus the signal that killed
 *  it, as asyncio reports it), 0 while it runs; AIOS_EINVAL for a NULL code. */
AIOS_EXTERN int aios_subprocess_get_returncode(aios_subprocess_t *subprocess, int *code);
/*! aios_subprocess_get_pipe_transport() : one reference in *out to the
 *  transport of the child's fd 0 (a write pipe), 1 or 2 (read pipes).
 *  @return 0; AIOS_EINVAL when that fd has no pipe. */
AIOS_EXTERN int aios_subprocess_get_pipe_transport(aios_subprocess_t *subprocess, int fd,
                                                   aios_transport_t **out);
/*! aios_subprocess_send_signal() / _terminate() / _kill() : signal the
 *  child. Between its exit and connection_lost this does nothing; after
 *  connection_lost it is -ESRCH (asyncio's ProcessLookupError), so a pid
 *  that was reaped is never signalled. @return 0; -ESRCH; -EINVAL for a bad
 *  signal number. */
AIOS_EXTERN int aios_subprocess_send_signal(aios_subprocess_t *subprocess, int signum);
AIOS_EXTERN int aios_subprocess_terminate(aios_subprocess_t *subprocess);
AIOS_EXTERN int aios_subprocess_kill(aios_subprocess_t *subprocess);
/*! aios_subprocess_close() : asyncio's close: closes the pipes and kills a
 *  child still running (SIGKILL); it is reaped when it exits. A second
 *  close is a no-op. @return 0 or a common error. */
AIOS_EXTERN int aios_subprocess_close(aios_subprocess_t *subprocess);
AIOS_EXTERN int aios_subprocess_is_closing(aios_subprocess_t *subprocess);
/*! aios_subprocess_get_loop() : one reference to its loop into *out. */
AIOS_EXTERN int aios_subprocess_get_loop(aios_subprocess_t *subprocess, aios_loop_t **out);
/*! aios_subprocess_ref() / _unref() : references; the child lives on its
 *  own (dropping the last reference neither kills nor forgets it). */
AIOS_EXTERN int aios_subprocess_ref(aios_subprocess_t *subprocess);
AIOS_EXTERN int aios_subprocess_unref(aios_subprocess_t *subprocess);

/* asyncio.subprocess.Process: a child with streams over its pipes. */
typedef struct aios_process_s aios_process_t;

/* What communicate read: each NULL when that stream is not a pipe. */
typedef struct aios_output_s {
  aios_bytes_t *out; /* stdout */
  aios_bytes_t *err; /* stderr */
} aios_output_t;

/*! aios_output_free() : frees a communicate result and its bytes. NULL is a no-op. */
AIOS_EXTERN void aios_output_free(void *output);

/*! aios_create_subprocess_exec() / _shell() : asyncio's
 *  create_subprocess_exec and create_subprocess_shell: as
 *  aios_subprocess_exec and aios_subprocess_shell, with the child's pipes as
 *  streams. @return 0 and one reference in *out to a future whose result is
 *  an aios_process_t * holding one reference; errors as aios_subprocess_exec's. */
AIOS_EXTERN int aios_create_subprocess_exec(aios_loop_t *loop, const char *program, const char *const *args,
                                            const aios_spawn_options_t *options, aios_future_t **out);
AIOS_EXTERN int aios_create_subprocess_shell(aios_loop_t *loop, const char *command,
                                             const aios_spawn_options_t *options, aios_future_t **out);
/*! aios_process_get_subprocess() : one reference in *out to its transport
 *  (pid, returncode, signals, close). */
AIOS_EXTERN int aios_process_get_subprocess(aios_process_t *process, aios_subprocess_t **out);
/*! aios_process_get_stream() : one reference in *out to the stream of the
 *  child's fd 0 (write to it: its stdin), 1 or 2 (read from it).
 *  @return 0; AIOS_EINVAL when that fd is not a pipe. */
AIOS_EXTERN int aios_process_get_stream(aios_process_t *process, int fd, aios_stream_t **out);
/*! aios_process_wait() : one reference in *out to a future done once the
 *  child exited and its pipes closed (asyncio 3.12+), with the returncode
 *  as its result, (void *)(intptr_t)code. */
AIOS_EXTERN int aios_process_wait(aios_process_t *process, aios_future_t **out);
/*! aios_process_communicate() : asyncio's communicate: writes `length`
 *  bytes of `input` (copied; NULL: none) to stdin and closes it, while
 *  reading stdout and stderr to their ends (never a deadlock, whatever the
 *  sizes), then waits for the child. A child that stops reading its stdin
 *  is not an error. @return 0 and one reference in *out to a future whose
 *  result is an aios_output_t * (freed by aios_output_free; the future owns
 *  it until taken). */
AIOS_EXTERN int aios_process_communicate(aios_process_t *process, const void *input, size_t length,
                                         aios_future_t **out);
/*! aios_process_ref() / _unref() : as aios_subprocess_ref's. */
AIOS_EXTERN int aios_process_ref(aios_process_t *process);
AIOS_EXTERN int aios_process_unref(aios_process_t *process);

/* ------------------------------------------------------------------------ */
/* Runner (asyncio.run and asyncio.Runner)                                    */

/*! aios_run() : asyncio.run: a new loop runs a main task driven by `step`
 *  until it is done, then the remaining tasks are cancelled and awaited and
 *  the loop is closed. `options` may be NULL. If `out` is not NULL it gets
 *  one reference to the finished main task (to read its result).
 *  @return the main task's status as aios_loop_run_until_complete's
 *  (AIOS_EINVALIDSTATE if a step stopped the loop first); AIOS_EINVAL for a
 *  NULL `step` or an options->size below sizeof(size_t); AIOS_ERUNNING when
 *  a loop already runs on this thread; -errno when libuv cannot set the
 *  loop up; or a common error. */
AIOS_EXTERN int aios_run(aios_step_fn step, void *arg, const aios_task_options_t *options,
                         aios_task_t **out);
/*! aios_runner_new() : a Runner with its own loop (created on first use),
 *  for several runs on one loop. @return 0 and one reference in *out, or a
 *  common error. */
AIOS_EXTERN int aios_runner_new(aios_runner_t **out);
/*! aios_runner_run() : run one main task to completion on the runner's loop,
 *  as aios_run does, without closing the loop. @return as aios_run's, and
 *  AIOS_ECLOSED once the runner is closed. */
AIOS_EXTERN int aios_runner_run(aios_runner_t *runner, aios_step_fn step, void *arg,
                                const aios_task_options_t *options, aios_task_t **out);
/*! aios_runner_get_loop() : one reference to the runner's loop into *out
 *  (dropping it does not close the loop: the runner does).
 *  @return 0; AIOS_ECLOSED once the runner is closed; -errno when libuv
 *  cannot set the loop up; or a common error. */
AIOS_EXTERN int aios_runner_get_loop(aios_runner_t *runner, aios_loop_t **out);
/*! aios_runner_close() : cancel and await the remaining tasks, close the
 *  loop. Closing twice is a no-op. @return 0; AIOS_ERUNNING while its loop
 *  runs; AIOS_EINVALIDSTATE when a task stopped the loop before the others
 *  were done (the runner then stays open); or a common error. */
AIOS_EXTERN int aios_runner_close(aios_runner_t *runner);
/*! aios_runner_ref() / aios_runner_unref() : dropping the last reference
 *  closes the runner. When that close cannot finish (the loop runs: a task
 *  dropped it; or a task stops the loop while the others are cancelled),
 *  the loop closes anyway, at once or when it stops, and the tasks still
 *  pending then are dropped, as a closed loop drops them. unref accepts
 *  NULL. @return 0 or a common error. */
AIOS_EXTERN int aios_runner_ref(aios_runner_t *runner);
AIOS_EXTERN int aios_runner_unref(aios_runner_t *runner);

/* ------------------------------------------------------------------------ */
/* Live objects                                                               */

typedef enum aios_object_type_e {
  AIOS_OBJECT_LOOP = 0,
  AIOS_OBJECT_HANDLE,
  AIOS_OBJECT_FUTURE, /* futures that are not tasks */
  AIOS_OBJECT_TASK,
  AIOS_OBJECT_ERROR,
  AIOS_OBJECT_RUNNER,
  AIOS_OBJECT_PRIMITIVE, /* locks, events, conditions, semaphores, barriers,
                            timeouts, task groups */
  AIOS_OBJECT_QUEUE,
  AIOS_OBJECT_TRANSPORT, /* stream and datagram transports, whether C holds them or not */
  AIOS_OBJECT_SERVER,
  AIOS_OBJECT_STREAM,    /* StreamReader/StreamWriter pairs */
  AIOS_OBJECT_SUBPROCESS /* children's transports, until reaped and finished */
} aios_object_type_t;

/*! aios_live_objects() : how many objects of a type are alive in the process
 *  right now, whoever holds them; tests assert it returns to its starting
 *  value. @return the count, or AIOS_EINVAL. Any thread. */
AIOS_EXTERN long aios_live_objects(aios_object_type_t type);

#ifdef __cplusplus
}
#endif
#endif /* AIO_SWIFT_H */
