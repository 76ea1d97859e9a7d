/*
 * aioswift._native: the hot path of aioswift's event loop, in C against
 * CPython's C API.
 *
 * What runs once per scheduled callback lives here, so that no Python frame
 * of ours runs per callback: call_soon, call_soon_threadsafe, call_later,
 * call_at, create_future, create_task and get_debug (bound methods of a
 * Core, set on the loop object, so that asyncio's C Task and Future find C
 * functions when they look up loop.call_soon), the Handle and TimerHandle
 * objects they return, and the trampoline the core calls to run one. The
 * ready queue and the timer heap are the core's own (aios_loop_call_soon /
 * aios_loop_call_at): a Python callback and a C callback scheduled one after
 * the other run in that order.
 *
 * Ownership. A Core owns one reference to its aios_loop_t (until close). A
 * scheduled handle is held by its Core's pending list (one reference,
 * counted in the handle's refcount and visited by the Core's tp_traverse)
 * from scheduling until its callback ran, it was cancelled with the core's
 * agreement, or the loop closed; the core's own queue holds only the
 * handle's address, with no destructor: the list is what lets go. Each
 * handle holds its Core.
 *
 * The GIL. Core.run() releases the GIL while the core runs the loop; the
 * first callback of an iteration takes it back, and it is kept while the
 * loop is busy (see before_iteration). A callback that arrives any other way
 * takes the GIL with PyGILState_Ensure.
 *
 * Threads. The core's loops belong to the thread that made them; a Core
 * whose loop is not running moves to the thread that uses it (see
 * move_to_this_thread).
 *
 * Errors of callbacks never reach the core. KeyboardInterrupt and SystemExit
 * stop the loop and are raised again by run(); the callbacks left in that
 * iteration are put back in the ready queue for the next run instead of
 * running with the interrupt pending. Any other exception goes to the
 * Python reporter the loop installed (asyncio's "Exception in callback").
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "aio_swift.h"

#define INLINE_ARGS 3
/* Seconds: a timer due sooner is not given a core handle (see schedule). */
#define NEAR_TIMER 1.0

typedef struct CoreObject CoreObject;

/* A connection's entry in its Core's token table (see _native_io.c). */
typedef struct IOSlot {
    PyObject *channel;              /* strong, or NULL */
    unsigned long long server;      /* a server's connection before CONNECTED: its key */
    unsigned int generation;
    char used;
} IOSlot;

typedef struct HandleObject {
    PyObject_HEAD
    CoreObject *core;            /* strong */
    PyObject *callback;          /* NULL once cancelled or dropped by close */
    /* argv[0] is scratch space for PY_VECTORCALL_ARGUMENTS_OFFSET;
     * argv[1..nargs] are the arguments when there are at most INLINE_ARGS. */
    PyObject *argv[INLINE_ARGS + 1];
    PyObject *args;              /* tuple of the arguments when there are more */
    Py_ssize_t nargs;
    PyObject *context;
    PyObject *source_traceback;  /* debug mode */
    PyObject *repr;              /* kept by cancel() in debug mode */
    PyObject *weakreflist;
    aios_handle_t *c_handle;     /* timers due later than NEAR_TIMER: one reference, to cancel */
    struct HandleObject *prev, *next;   /* the Core's pending list */
    double when;
    char linked;                 /* in the pending list: the core may call us */
    char running;
    char cancelled;
    char in_heap;                /* scheduled with call_at (not yet due) */
} HandleObject;

struct CoreObject {
    PyObject_HEAD
    aios_loop_t *loop;           /* one reference; NULL once cleared */
    PyObject *owner;             /* the Python event loop */
    PyObject *reporter;          /* reporter(handle, exc): a callback raised */
    PyObject *debug_check;       /* debug_check(callback, method) -> traceback */
    PyObject *slow_reporter;     /* slow_reporter(handle, seconds) */
    PyObject *interrupt;         /* KeyboardInterrupt / SystemExit to raise */
    PyObject *weakreflist;
    PyThreadState *released;     /* set while run() has let go of the GIL */
    int gil_held;                /* the loop's thread took it back during run() */
    int entered;                 /* a callback of ours ran this iteration */
    PyObject *task_factory;      /* loop.set_task_factory's, or NULL */
    unsigned long owner_thread;  /* the thread the core's loop belongs to */
    int foreign_calls;           /* another thread's call_soon_threadsafe is queued */
    aios_exception_handler_fn exception_handler;   /* installed on each loop */
    void *exception_handler_arg;
    HandleObject *head, *tail;
    Py_ssize_t pending;
    double slow_duration;
    long moves;                  /* times the loop moved to another thread */
    /* Network I/O (_native_io.c) */
    IOSlot *io_slots;            /* the token table (C memory) */
    Py_ssize_t io_capacity;
    Py_ssize_t *io_free;         /* free slots, a stack */
    Py_ssize_t io_nfree;
    Py_ssize_t io_used;
    PyObject *io_backlog;        /* events an interrupt kept back */
    PyObject **io_lent;          /* bytes the core reads into (io_buffer), a ring in */
    Py_ssize_t io_lent_head;     /*   the order they were lent, which is the order */
    Py_ssize_t io_lent_count;    /*   their AIOS_IO_DATA_BUFFER events come in */
    Py_ssize_t io_lent_capacity;
    long io_servers;             /* servers open (the Python side counts them) */
    int io_enabled;              /* the core's loop schedules io_ready */
    /* Descriptor watchers, signal handlers, datagram endpoints and
     * subprocesses (_native_events.c, _native_dgram.c, _native_proc.c) */
    PyObject *watches;           /* dict (kind, number) -> Watch */
    PyObject *io_objects;        /* set of the Datagram and Relay objects the library may call */
    int debug;
    int closed;
    int running;
};

static PyTypeObject HandleType;
static PyTypeObject TimerHandleType;
static PyTypeObject CoreType;

/* Set by configure(): formatter(handle) -> repr, error_for(code) -> exception. */
static PyObject *handle_formatter = NULL;
static PyObject *error_for_code = NULL;
/* asyncio.tasks and asyncio.futures: their Task and Future are looked up at
 * each call, as asyncio's own loop does (tests replace them). */
static PyObject *tasks_module = NULL;
static PyObject *futures_module = NULL;
static PyObject *str_Task, *str_Future, *str_set_name, *str_source_traceback;
static PyObject *kw_loop, *kw_loop_name, *kw_loop_context, *kw_loop_name_context, *kw_context;

static PyObject *str_call_soon, *str_call_soon_threadsafe, *str_call_later, *str_call_at;
static PyObject *str_context;

/* ------------------------------------------------------------------------ */
/* Helpers                                                                    */

/* time.monotonic()'s clock and its conversion to seconds: the core's clock
 * (uv_hrtime) is CLOCK_MONOTONIC too. */
static double
monotonic(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    long long ns = (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
    return (double)ns / 1e9;
}

static PyObject *
fetch_exception(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
    if (type == NULL)
        return NULL;
    PyErr_NormalizeException(&type, &value, &tb);
    if (tb != NULL) {
        PyException_SetTraceback(value, tb);
        Py_DECREF(tb);
    }
    Py_DECREF(type);
    return value;
#endif
}

static void
restore_exception(PyObject *exc)   /* steals exc */
{
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyObject *tb = PyException_GetTraceback(exc);
    PyObject *type = (PyObject *)Py_TYPE(exc);
    Py_INCREF(type);
    PyErr_Restore(type, exc, tb);
#endif
}

static int
is_interrupt(PyObject *exc)
{
    return PyErr_GivenExceptionMatches(exc, PyExc_KeyboardInterrupt) ||
           PyErr_GivenExceptionMatches(exc, PyExc_SystemExit);
}

/* Raise the Python exception for a negative status of the core. */
static PyObject *
raise_status(int status)
{
    if (status == AIOS_ECLOSED) {
        PyObject *code = PyLong_FromLong(status);
        PyObject *exc = NULL;
        if (code != NULL && error_for_code != NULL)
            exc = PyObject_CallFunction(error_for_code, "Os", code, "Event loop is closed");
        Py_XDECREF(code);
        if (exc != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        else if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError, "Event loop is closed");
        return NULL;
    }
    if (status == AIOS_EWRONGTHREAD) {
        PyObject *code = PyLong_FromLong(status);
        PyObject *exc = NULL;
        if (code != NULL && error_for_code != NULL)
            exc = PyObject_CallFunction(
                error_for_code, "Os", code,
                "Non-thread-safe operation invoked on an event loop other than the current one");
        Py_XDECREF(code);
        if (exc != NULL) {
            PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
            Py_DECREF(exc);
        }
        else if (!PyErr_Occurred())
            PyErr_SetString(PyExc_RuntimeError,
                            "Non-thread-safe operation invoked on an event loop other than the current one");
        return NULL;
    }
    if (error_for_code != NULL) {
        PyObject *code = PyLong_FromLong(status);
        if (code == NULL)
            return NULL;
        PyObject *exc = PyObject_CallOneArg(error_for_code, code);
        Py_DECREF(code);
        if (exc == NULL)
            return NULL;
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
        return NULL;
    }
    PyErr_Format(PyExc_RuntimeError, "%s", aios_strerror(status));
    return NULL;
}

static PyObject *
closed_error(void)
{
    return raise_status(AIOS_ECLOSED);
}

/* ------------------------------------------------------------------------ */
/* The pending list                                                           */

static inline void
link_pending(CoreObject *core, HandleObject *h)
{
    h->prev = core->tail;
    h->next = NULL;
    if (core->tail != NULL)
        core->tail->next = h;
    else
        core->head = h;
    core->tail = h;
    h->linked = 1;
    core->pending++;
}

static inline void
unlink_pending(CoreObject *core, HandleObject *h)
{
    if (!h->linked)
        return;
    if (h->prev != NULL)
        h->prev->next = h->next;
    else
        core->head = h->next;
    if (h->next != NULL)
        h->next->prev = h->prev;
    else
        core->tail = h->prev;
    h->prev = h->next = NULL;
    h->linked = 0;
    core->pending--;
}

static void
handle_drop_callback(HandleObject *h)
{
    Py_CLEAR(h->callback);
    for (Py_ssize_t i = 1; i <= INLINE_ARGS; i++)
        Py_CLEAR(h->argv[i]);
    Py_CLEAR(h->args);
}

static void
handle_drop_c(HandleObject *h)
{
    aios_handle_t *c = h->c_handle;
    if (c != NULL) {
        h->c_handle = NULL;
        aios_handle_unref(c);
    }
}

/* Lets go of every pending handle: the core will call none of them again
 * (the loop closed, or the Core let go of the loop). */
static void
drop_pending(CoreObject *core)
{
    while (core->head != NULL) {
        HandleObject *h = core->head;
        unlink_pending(core, h);
        handle_drop_c(h);
        handle_drop_callback(h);
        Py_DECREF(h);
    }
}

/* ------------------------------------------------------------------------ */
/* Running a handle (the trampoline the core calls)                           */

static void run_handle(void *arg);
static int claim(CoreObject *self);

static void
set_interrupt(CoreObject *core, PyObject *exc)   /* steals exc */
{
    if (core->interrupt == NULL) {
        core->interrupt = exc;
        if (core->loop != NULL)
            aios_loop_stop(core->loop);
    }
    else {
        Py_DECREF(exc);
    }
}

static void
report_error(CoreObject *core, HandleObject *h)
{
    PyObject *exc = fetch_exception();
    if (exc == NULL)
        return;
    if (is_interrupt(exc)) {
        set_interrupt(core, exc);
        return;
    }
    if (core->reporter == NULL) {
        restore_exception(exc);
        PyErr_WriteUnraisable((PyObject *)h);
        return;
    }
    PyObject *res = PyObject_CallFunctionObjArgs(core->reporter, (PyObject *)h, exc, NULL);
    Py_DECREF(exc);
    if (res != NULL) {
        Py_DECREF(res);
        return;
    }
    PyObject *again = fetch_exception();
    if (again == NULL)
        return;
    if (is_interrupt(again)) {
        set_interrupt(core, again);
        return;
    }
    restore_exception(again);
    PyErr_WriteUnraisable(core->reporter);
}

static void
call_handle(CoreObject *core, HandleObject *h)
{
    double started = core->debug ? monotonic() : 0.0;
    PyObject *res;
    h->running = 1;
    if (PyContext_Enter(h->context) < 0) {
        res = NULL;
    }
    else {
        if (h->args != NULL)
            res = PyObject_Vectorcall(h->callback, &PyTuple_GET_ITEM(h->args, 0),
                                      PyTuple_GET_SIZE(h->args), NULL);
        else
            res = PyObject_Vectorcall(h->callback, &h->argv[1],
                                      (size_t)h->nargs | PY_VECTORCALL_ARGUMENTS_OFFSET, NULL);
        if (PyContext_Exit(h->context) < 0) {
            Py_XDECREF(res);
            res = NULL;
        }
    }
    if (res != NULL)
        Py_DECREF(res);
    else
        report_error(core, h);
    h->running = 0;
    if (core->debug && core->slow_reporter != NULL) {
        double took = monotonic() - started;
        if (took >= core->slow_duration) {
            PyObject *seconds = PyFloat_FromDouble(took);
            PyObject *r = seconds ? PyObject_CallFunctionObjArgs(core->slow_reporter, (PyObject *)h,
                                                                 seconds, NULL) : NULL;
            Py_XDECREF(seconds);
            if (r == NULL) {
                PyObject *exc = fetch_exception();
                if (exc != NULL && is_interrupt(exc))
                    set_interrupt(core, exc);
                else if (exc != NULL) {
                    restore_exception(exc);
                    PyErr_WriteUnraisable(core->slow_reporter);
                }
            }
            Py_XDECREF(r);
        }
    }
}

/* A KeyboardInterrupt or SystemExit is pending: the handle waits for the
 * next run, at the end of the ready queue. */
static void
put_back(CoreObject *core, HandleObject *h)
{
    handle_drop_c(h);   /* a timer that fell due is an ordinary callback now */
    h->in_heap = 0;
    int status = core->loop != NULL
        ? aios_loop_call_soon(core->loop, run_handle, h, NULL, NULL)
        : AIOS_ECLOSED;
    if (status < 0) {
        unlink_pending(core, h);
        handle_drop_callback(h);
        Py_DECREF(h);
    }
}

/* The GIL across an iteration.
 *
 * run() lets go of the GIL while the core runs the loop. The first callback
 * of ours in an iteration takes it back, and it is kept for the callbacks
 * that follow, instead of being released and taken again for each one (a
 * mutex and a condition variable each time, and under contention a futex
 * wake of every thread waiting for it). The core calls before_iteration as
 * each iteration starts (aios_loop_set_iteration_callback), and it gives the
 * GIL up when the iteration may wait for events, or when none of our
 * callbacks ran in the last one (the loop is busy with C work alone). So a
 * busy loop keeps the GIL, and an idle one gives it up just before it
 * waits; other threads get it when a callback runs Python code (CPython's
 * switch interval, as with any Python code). */
static void
before_iteration(void *arg, int waits)
{
    CoreObject *core = (CoreObject *)arg;
    if (core->gil_held && (waits || !core->entered)) {
        core->gil_held = 0;
        core->released = PyEval_SaveThread();
    }
    core->entered = 0;
}

enum { GIL_KEPT, GIL_ENSURED, GIL_NESTED };

static inline int
enter_python(CoreObject *core, PyGILState_STATE *state)
{
    core->entered = 1;
    if (core->gil_held)
        return GIL_KEPT;
    PyThreadState *saved = core->released;
    if (saved == NULL) {
        /* Not from run() (the GIL may be ours already). */
        *state = PyGILState_Ensure();
        return GIL_ENSURED;
    }
    core->released = NULL;
    PyEval_RestoreThread(saved);
    core->gil_held = 1;
    return GIL_KEPT;
}

/* For the callbacks the core calls directly, outside its ready queue
 * (datagram and subprocess protocols): they may come inside a call of
 * ours into the core, which holds the GIL (nested), or from the core's
 * poll while run() has let go of it, or while a cffi call or
 * Py_BEGIN_ALLOW_THREADS has let go of it although gil_held says the loop
 * keeps it: then it is taken as any thread takes it. */

static inline int
enter_io(CoreObject *core, PyGILState_STATE *state)
{
    if (PyGILState_Check()) {
        core->entered = 1;
        return GIL_NESTED;
    }
    if (core->gil_held) {
        core->entered = 1;
        *state = PyGILState_Ensure();
        return GIL_ENSURED;
    }
    return enter_python(core, state);
}

static inline void
leave_python(CoreObject *core, int how, PyGILState_STATE state)
{
    if (how == GIL_ENSURED)
        PyGILState_Release(state);
}

static void
run_handle(void *arg)
{
    HandleObject *h = (HandleObject *)arg;
    CoreObject *core = h->core;
    PyGILState_STATE state = PyGILState_UNLOCKED;
    int how = enter_python(core, &state);
    Py_INCREF(core);
    if (!h->linked) {
        /* Not scheduled (cannot happen: the core calls each handle once). */
    }
    else if (core->interrupt != NULL && !h->cancelled) {
        put_back(core, h);
    }
    else {
        unlink_pending(core, h);        /* the list's reference is ours now */
        handle_drop_c(h);
        h->in_heap = 0;
        if (!h->cancelled && h->callback != NULL)
            call_handle(core, h);
        /* As asyncio's, a handle that ran keeps its callback and arguments
         * (for its repr) until it is freed or cancelled. */
        Py_DECREF(h);
    }
    Py_DECREF(core);                    /* alive: run() or the caller holds it */
    leave_python(core, how, state);
}

/* ------------------------------------------------------------------------ */
/* Handle and TimerHandle                                                     */

/* Freed handles of our own two types are kept for reuse (as CPython keeps
 * tuples and frames): no allocation, and no count towards the collector's
 * threshold, for the busiest object of the loop. Touched under the GIL. */
#define HANDLE_FREELIST 256
static HandleObject *handle_freelist[HANDLE_FREELIST];
static int handle_freelist_length = 0;

static HandleObject *
handle_new(PyTypeObject *type, CoreObject *core, PyObject *callback,
           PyObject *const *args, Py_ssize_t nargs, PyObject *context)
{
    HandleObject *h;
    if (handle_freelist_length > 0 && (type == &HandleType || type == &TimerHandleType)) {
        h = handle_freelist[--handle_freelist_length];
        PyObject_Init((PyObject *)h, type);
    }
    else {
        h = PyObject_GC_New(HandleObject, type);
        if (h == NULL)
            return NULL;
    }
    Py_INCREF(core);
    h->core = core;
    Py_INCREF(callback);
    h->callback = callback;
    h->argv[0] = NULL;
    for (Py_ssize_t i = 1; i <= INLINE_ARGS; i++)
        h->argv[i] = NULL;
    h->args = NULL;
    h->nargs = nargs;
    if (nargs <= INLINE_ARGS) {
        for (Py_ssize_t i = 0; i < nargs; i++) {
            Py_INCREF(args[i]);
            h->argv[i + 1] = args[i];
        }
    }
    h->context = NULL;
    h->source_traceback = NULL;
    h->repr = NULL;
    h->weakreflist = NULL;
    h->c_handle = NULL;
    h->prev = h->next = NULL;
    h->when = 0.0;
    h->linked = h->running = h->cancelled = h->in_heap = 0;
    if (nargs > INLINE_ARGS) {
        /* Tracked only once complete: fill the tuple before tracking. */
        PyObject *tuple = PyTuple_New(nargs);
        if (tuple == NULL) {
            PyObject_GC_Track(h);
            Py_DECREF(h);
            return NULL;
        }
        for (Py_ssize_t i = 0; i < nargs; i++) {
            Py_INCREF(args[i]);
            PyTuple_SET_ITEM(tuple, i, args[i]);
        }
        h->args = tuple;
    }
    if (context == NULL || context == Py_None) {
        h->context = PyContext_CopyCurrent();
        if (h->context == NULL) {
            PyObject_GC_Track(h);
            Py_DECREF(h);
            return NULL;
        }
    }
    else {
        Py_INCREF(context);
        h->context = context;
    }
    PyObject_GC_Track(h);
    return h;
}

static int
handle_traverse(HandleObject *h, visitproc visit, void *arg)
{
    Py_VISIT(h->core);
    Py_VISIT(h->callback);
    for (Py_ssize_t i = 1; i <= INLINE_ARGS; i++)
        Py_VISIT(h->argv[i]);
    Py_VISIT(h->args);
    Py_VISIT(h->context);
    Py_VISIT(h->source_traceback);
    Py_VISIT(h->repr);
    return 0;
}

static int
handle_clear(HandleObject *h)
{
    handle_drop_callback(h);
    Py_CLEAR(h->context);
    Py_CLEAR(h->source_traceback);
    Py_CLEAR(h->repr);
    /* A handle the core may still call keeps its Core (the trampoline needs
     * it); the Core's own tp_clear lets go of the pending ones. */
    if (!h->linked && !h->running)
        Py_CLEAR(h->core);
    return 0;
}

static void
handle_dealloc(HandleObject *h)
{
    PyObject_GC_UnTrack(h);
    if (h->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)h);
    handle_drop_c(h);
    handle_clear(h);
    Py_CLEAR(h->core);
    PyTypeObject *type = Py_TYPE(h);
    if ((type == &HandleType || type == &TimerHandleType) &&
        handle_freelist_length < HANDLE_FREELIST) {
        handle_freelist[handle_freelist_length++] = h;
        return;
    }
    type->tp_free((PyObject *)h);
}

static PyObject *
handle_cancel(HandleObject *h, PyObject *Py_UNUSED(ignored))
{
    if (h->cancelled)
        Py_RETURN_NONE;
    CoreObject *core = h->core;
    h->cancelled = 1;
    if (core != NULL && core->debug && h->repr == NULL && h->callback != NULL) {
        /* Debug mode keeps the description (for "Executing ... took"). */
        PyObject *r = PyObject_Repr((PyObject *)h);
        if (r == NULL) {
            h->cancelled = 0;
            return NULL;
        }
        h->repr = r;
    }
    if (h->running)
        Py_RETURN_NONE;     /* the trampoline lets go when the callback returns */
    handle_drop_callback(h);
    /* A timer leaves the core's heap now when the core agrees (on the
     * loop's thread); otherwise the trampoline skips it when it is due. */
    if (h->linked && h->c_handle != NULL && core != NULL &&
        aios_handle_cancel(h->c_handle) == 0) {
        unlink_pending(core, h);
        handle_drop_c(h);
        Py_DECREF(h);       /* the list's reference; the caller holds another */
    }
    Py_RETURN_NONE;
}

static PyObject *
handle_cancelled(HandleObject *h, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(h->cancelled);
}

static PyObject *
handle_get_context(HandleObject *h, PyObject *Py_UNUSED(ignored))
{
    if (h->context == NULL)
        Py_RETURN_NONE;
    Py_INCREF(h->context);
    return h->context;
}

static PyObject *
handle_get_args(HandleObject *h, void *Py_UNUSED(closure))
{
    if (h->callback == NULL)
        Py_RETURN_NONE;
    if (h->args != NULL) {
        Py_INCREF(h->args);
        return h->args;
    }
    PyObject *tuple = PyTuple_New(h->nargs);
    if (tuple == NULL)
        return NULL;
    for (Py_ssize_t i = 0; i < h->nargs; i++) {
        Py_INCREF(h->argv[i + 1]);
        PyTuple_SET_ITEM(tuple, i, h->argv[i + 1]);
    }
    return tuple;
}

static PyObject *
handle_get_loop(HandleObject *h, void *Py_UNUSED(closure))
{
    if (h->core == NULL || h->core->owner == NULL)
        Py_RETURN_NONE;
    Py_INCREF(h->core->owner);
    return h->core->owner;
}

static PyObject *
handle_get_cancelled(HandleObject *h, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(h->cancelled);
}

static PyObject *
handle_get_scheduled(HandleObject *h, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(h->linked);
}

static PyObject *
handle_get_when_attr(HandleObject *h, void *Py_UNUSED(closure))
{
    return PyFloat_FromDouble(h->when);
}

static PyObject *
handle_repr(HandleObject *h)
{
    if (h->repr != NULL) {
        Py_INCREF(h->repr);
        return h->repr;
    }
    if (handle_formatter == NULL)
        return PyUnicode_FromFormat("<%s>", Py_TYPE(h)->tp_name);
    return PyObject_CallOneArg(handle_formatter, (PyObject *)h);
}

static PyObject *
timer_when(HandleObject *h, PyObject *Py_UNUSED(ignored))
{
    return PyFloat_FromDouble(h->when);
}

static PyMethodDef handle_methods[] = {
    {"cancel", (PyCFunction)handle_cancel, METH_NOARGS,
     "Cancel the call; cancelling twice, or after it ran, does nothing."},
    {"cancelled", (PyCFunction)handle_cancelled, METH_NOARGS, "Whether cancel() was called."},
    {"get_context", (PyCFunction)handle_get_context, METH_NOARGS,
     "The contextvars.Context the callback runs in."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef handle_members[] = {
    {"_callback", T_OBJECT, offsetof(HandleObject, callback), READONLY, NULL},
    {"_context", T_OBJECT, offsetof(HandleObject, context), READONLY, NULL},
    {"_source_traceback", T_OBJECT, offsetof(HandleObject, source_traceback), 0, NULL},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef handle_getset[] = {
    {"_args", (getter)handle_get_args, NULL, NULL, NULL},
    {"_loop", (getter)handle_get_loop, NULL, NULL, NULL},
    {"_cancelled", (getter)handle_get_cancelled, NULL, NULL, NULL},
    {"_scheduled", (getter)handle_get_scheduled, NULL,
     "True while the core may still call it (it holds a reference then).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef timer_methods[] = {
    {"when", (PyCFunction)timer_when, METH_NOARGS,
     "The deadline, in loop time (time.monotonic())."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef timer_getset[] = {
    {"_when", (getter)handle_get_when_attr, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject HandleType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "aioswift.Handle",
    .tp_doc = "A callback scheduled with call_soon or call_soon_threadsafe "
              "(asyncio.Handle's surface).",
    .tp_basicsize = sizeof(HandleObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_BASETYPE,
    .tp_dealloc = (destructor)handle_dealloc,
    .tp_traverse = (traverseproc)handle_traverse,
    .tp_clear = (inquiry)handle_clear,
    .tp_repr = (reprfunc)handle_repr,
    .tp_weaklistoffset = offsetof(HandleObject, weakreflist),
    .tp_methods = handle_methods,
    .tp_members = handle_members,
    .tp_getset = handle_getset,
};

static PyTypeObject TimerHandleType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "aioswift.TimerHandle",
    .tp_doc = "A callback scheduled with call_later or call_at "
              "(asyncio.TimerHandle's surface: when()).",
    .tp_basicsize = sizeof(HandleObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)handle_dealloc,
    .tp_traverse = (traverseproc)handle_traverse,
    .tp_clear = (inquiry)handle_clear,
    .tp_repr = (reprfunc)handle_repr,
    .tp_weaklistoffset = offsetof(HandleObject, weakreflist),
    .tp_methods = timer_methods,
    .tp_getset = timer_getset,
};

/* ------------------------------------------------------------------------ */
/* Signals while the loop waits                                               */
/*
 * Python runs its signal handlers (KeyboardInterrupt's among them) on the
 * main thread when that thread runs Python code; a loop blocked in the
 * core's poll runs none. So while the main thread's loop runs, Python's
 * wakeup fd (signal.set_wakeup_fd) is the write end of a pipe read by a
 * small thread of ours, which wakes that loop with a threadsafe call; the
 * call runs the handlers (PyErr_CheckSignals), and what they raise stops the
 * loop and comes out of run(), as it comes out of select() on asyncio's.
 */

static pthread_mutex_t wake_lock = PTHREAD_MUTEX_INITIALIZER;
static aios_loop_t *wake_loop = NULL;     /* the loop run() runs with signals */
static CoreObject *wake_core = NULL;      /* borrowed: run() holds it */
static int wake_pipe[2] = {-1, -1};
static pid_t wake_pid = 0;

static void
check_signals(void *arg)
{
    CoreObject *core = (CoreObject *)arg;
    PyGILState_STATE state = PyGILState_UNLOCKED;
    int how = enter_python(core, &state);
    if (PyErr_CheckSignals() < 0) {
        PyObject *exc = fetch_exception();
        if (exc != NULL)
            set_interrupt(core, exc);
    }
    leave_python(core, how, state);
}

static void *
wake_thread(void *arg)
{
    int fd = (int)(intptr_t)arg;
    char buffer[64];
    for (;;) {
        ssize_t n = read(fd, buffer, sizeof buffer);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return NULL;
        pthread_mutex_lock(&wake_lock);
        if (wake_loop != NULL)
            aios_loop_call_soon_threadsafe(wake_loop, check_signals, wake_core, NULL, NULL);
        pthread_mutex_unlock(&wake_lock);
    }
}

static PyObject *
signal_wakeup_fd(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    pid_t pid = getpid();
    if (wake_pipe[1] >= 0 && wake_pid == pid)
        return PyLong_FromLong(wake_pipe[1]);
    if (wake_pipe[1] >= 0) {
        /* A forked child: the reading thread stayed in the parent. */
        close(wake_pipe[0]);
        close(wake_pipe[1]);
        wake_pipe[0] = wake_pipe[1] = -1;
    }
    int fds[2];
    if (pipe(fds) < 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    int flags = fcntl(fds[1], F_GETFL);
    fcntl(fds[1], F_SETFL, flags | O_NONBLOCK);
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    pthread_t thread;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    pthread_attr_setstacksize(&attr, 64 * 1024);
    /* The thread blocks every signal (it inherits this mask): a signal is
     * for the threads that run handlers, not for one parked in a read. */
    sigset_t all, saved;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &saved);
    int rc = pthread_create(&thread, &attr, wake_thread, (void *)(intptr_t)fds[0]);
    pthread_sigmask(SIG_SETMASK, &saved, NULL);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        close(fds[0]);
        close(fds[1]);
        errno = rc;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    wake_pipe[0] = fds[0];
    wake_pipe[1] = fds[1];
    wake_pid = pid;
    return PyLong_FromLong(wake_pipe[1]);
}

static void
set_wake_target(aios_loop_t *loop, CoreObject *core)
{
    pthread_mutex_lock(&wake_lock);
    wake_loop = loop;
    wake_core = core;
    pthread_mutex_unlock(&wake_lock);
}

/* ------------------------------------------------------------------------ */
/* Core: the scheduling side of one loop                                      */

/* Splits (callback, *args, context=None) as asyncio's call_* take them. */
static int
parse_call(PyObject *name, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames,
           Py_ssize_t leading, PyObject **context)
{
    *context = NULL;
    if (kwnames != NULL) {
        Py_ssize_t nkw = PyTuple_GET_SIZE(kwnames);
        for (Py_ssize_t i = 0; i < nkw; i++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, i);
            if (key != str_context && PyUnicode_CompareWithASCIIString(key, "context") != 0) {
                PyErr_Format(PyExc_TypeError, "%U() got an unexpected keyword argument '%U'",
                             name, key);
                return -1;
            }
            *context = args[nargs + i];
        }
    }
    if (nargs < leading + 1) {
        PyErr_Format(PyExc_TypeError, "%U() missing required positional argument%s", name,
                     leading ? "s" : "");
        return -1;
    }
    return 0;
}

static int
core_usable(CoreObject *self)
{
    if (self->closed || self->loop == NULL) {
        closed_error();
        return 0;
    }
    return 1;
}

/* The core frees what another thread let go of on the object's own thread,
 * at that thread's next iteration or next unref call. A loop that moved
 * away from a thread that then runs no loop and drops nothing would wait for
 * that forever: an unref here lets this thread's share go. (The C ABI has no
 * call for "free what is this thread's"; an error object's unref is one.) */
static void
drain_deferred(void)
{
    aios_error_t *error = NULL;
    if (aios_error_new(AIOS_EINVAL, NULL, &error) == 0)
        aios_error_unref(error);
}

#include "_native_io.c"
#include "_native_events.c"
#include "_native_dgram.c"
#include "_native_proc.c"

/* The core's loops belong to the thread that made them; asyncio's belong to
 * whichever thread runs them. A Core whose loop is not running moves to the
 * thread that runs it or schedules on it: a new core loop is made on this
 * thread, every pending handle is scheduled on it again in its order (call_soon
 * ones in FIFO order, timers at their deadlines), and the old loop is let go
 * (its own thread frees it; its queue, which only names our handles, is
 * dropped without calling them). C futures made on the old loop stay there.
 * The C ABI has no way to hand a loop to another thread, which is what this
 * stands in for. */
static int
move_to_this_thread(CoreObject *self)
{
    if (self->io_used > 0 || self->io_servers > 0 || io_pinned(self)) {
        /* What the core's loop holds stays on its thread. */
        PyErr_SetString(PyExc_RuntimeError,
                        "aioswift: a loop with open transports, servers, readers or writers, "
                        "signal handlers or subprocesses cannot move to another thread");
        return -1;
    }
    aios_loop_t *fresh = NULL;
    int status = aios_loop_new(&fresh);
    if (status < 0) {
        raise_status(status);
        return -1;
    }
    if (self->exception_handler != NULL)
        aios_loop_set_exception_handler(fresh, self->exception_handler,
                                        self->exception_handler_arg);
    if (self->io_enabled) {
        aios_loop_set_io_events_callback(fresh, io_ready, self);
        aios_loop_set_io_buffer_callback(fresh, io_buffer, self);
    }
    HandleObject *h = self->head;
    while (h != NULL) {
        HandleObject *next = h->next;
        if (h->cancelled) {
            unlink_pending(self, h);
            handle_drop_c(h);
            handle_drop_callback(h);
            Py_DECREF(h);
        }
        else {
            aios_handle_t *c = NULL;
            if (h->in_heap)
                status = aios_loop_call_at(fresh, h->when, run_handle, h, NULL, &c);
            else
                status = aios_loop_call_soon(fresh, run_handle, h, NULL, NULL);
            handle_drop_c(h);
            h->c_handle = c;
            if (status < 0) {       /* cannot happen on a new loop: dropped */
                h->in_heap = 0;
                unlink_pending(self, h);
                handle_drop_callback(h);
                Py_DECREF(h);
            }
        }
        h = next;
    }
    aios_loop_t *old = self->loop;
    self->loop = fresh;
    aios_loop_unref(old);
    drain_deferred();
    self->owner_thread = PyThread_get_thread_ident();
    self->foreign_calls = 0;
    self->moves++;
    return 0;
}

/* In debug mode: asyncio's checks of the callback (and of the thread), and
 * the traceback of where the handle was made. */
static int
debug_checks(CoreObject *self, HandleObject *h, PyObject *method)
{
    if (self->debug_check == NULL)
        return 0;
    PyObject *tb = PyObject_CallFunctionObjArgs(self->debug_check, h->callback, method, NULL);
    if (tb == NULL)
        return -1;
    if (tb == Py_None)
        Py_DECREF(tb);
    else
        Py_XSETREF(h->source_traceback, tb);
    return 0;
}

static PyObject *
schedule(CoreObject *self, PyTypeObject *type, PyObject *method, PyObject *const *args,
         Py_ssize_t nargs, PyObject *context, double when, int kind)
{
    HandleObject *h = handle_new(type, self, args[0], args + 1, nargs - 1, context);
    if (h == NULL)
        return NULL;
    h->when = when;
    if (self->debug && debug_checks(self, h, method) < 0) {
        Py_DECREF(h);
        return NULL;
    }
    int status;
    /* The list holds the reference the core's queue stands for. Linked
     * before the call: a threadsafe call may be run by the loop's thread as
     * soon as this thread lets go of the GIL, never earlier. */
    link_pending(self, h);
    Py_INCREF(h);
    for (int attempt = 0;; attempt++) {
        switch (kind) {
        case 0:
            if (self->foreign_calls) {
                /* Other threads' calls wait in the core's threadsafe queue
                 * until the next poll; a threadsafe call from the loop's
                 * own thread takes them in first and then keeps its place
                 * as call_soon would. So this one runs after them, as in
                 * asyncio, where they all go in one queue. */
                status = aios_loop_call_soon_threadsafe(self->loop, run_handle, h, NULL, NULL);
                if (status == 0)
                    self->foreign_calls = 0;
            }
            else {
                status = aios_loop_call_soon(self->loop, run_handle, h, NULL, NULL);
            }
            break;
        case 1:
            status = aios_loop_call_soon_threadsafe(self->loop, run_handle, h, NULL, NULL);
            if (status == 0 && PyThread_get_thread_ident() != self->owner_thread)
                self->foreign_calls = 1;
            break;
        default:
            /* A cancelled timer the core is not told about stays in its
             * heap (as a shell: cancel() drops the callback) until it is
             * due, as asyncio keeps cancelled timers in its own heap. For a
             * deadline that near that is cheap, and the handle the core would
             * make to cancel it costs more than the shell; a timer further
             * off gets that handle, and leaves the heap when cancelled. */
            status = aios_loop_call_at(self->loop, when, run_handle, h, NULL,
                                       when - monotonic() > NEAR_TIMER ? &h->c_handle : NULL);
            h->in_heap = status == 0;
            break;
        }
        /* A loop that is not running goes with the thread that uses it. */
        if (status != AIOS_EWRONGTHREAD || attempt > 0 || self->running)
            break;
        unlink_pending(self, h);
        int moved = move_to_this_thread(self);
        link_pending(self, h);
        if (moved < 0) {
            unlink_pending(self, h);
            Py_DECREF(h);
            Py_DECREF(h);
            return NULL;
        }
    }
    if (status < 0) {
        unlink_pending(self, h);
        Py_DECREF(h);
        handle_drop_callback(h);
        Py_DECREF(h);
        if (status == AIOS_EINVAL && kind == 2)
            return PyErr_Format(PyExc_ValueError, "%U(): invalid time (NaN)", method);
        return raise_status(status);
    }
    return (PyObject *)h;
}

static PyObject *
core_call_soon(CoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *context;
    if (parse_call(str_call_soon, args, nargs, kwnames, 0, &context) < 0)
        return NULL;
    if (!core_usable(self))
        return NULL;
    return schedule(self, &HandleType, str_call_soon, args, nargs, context, 0.0, 0);
}

static PyObject *
core_call_soon_threadsafe(CoreObject *self, PyObject *const *args, Py_ssize_t nargs,
                          PyObject *kwnames)
{
    PyObject *context;
    if (parse_call(str_call_soon_threadsafe, args, nargs, kwnames, 0, &context) < 0)
        return NULL;
    if (!core_usable(self))
        return NULL;
    return schedule(self, &HandleType, str_call_soon_threadsafe, args, nargs, context, 0.0, 1);
}

static int
as_time(PyObject *value, const char *none_message, double *out)
{
    if (value == Py_None) {
        PyErr_SetString(PyExc_TypeError, none_message);
        return -1;
    }
    double d = PyFloat_AsDouble(value);
    if (d == -1.0 && PyErr_Occurred())
        return -1;
    *out = d;
    return 0;
}

static PyObject *
core_call_later(CoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *context;
    double delay;
    if (parse_call(str_call_later, args, nargs, kwnames, 1, &context) < 0)
        return NULL;
    if (as_time(args[0], "delay must not be None", &delay) < 0)
        return NULL;
    if (!core_usable(self))
        return NULL;
    return schedule(self, &TimerHandleType, str_call_later, args + 1, nargs - 1, context,
                    monotonic() + delay, 2);
}

static PyObject *
core_call_at(CoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *context;
    double when;
    if (parse_call(str_call_at, args, nargs, kwnames, 1, &context) < 0)
        return NULL;
    if (as_time(args[0], "when cannot be None", &when) < 0)
        return NULL;
    if (!core_usable(self))
        return NULL;
    return schedule(self, &TimerHandleType, str_call_at, args + 1, nargs - 1, context, when, 2);
}

static PyObject *
take_interrupt(CoreObject *self)
{
    PyObject *exc = self->interrupt;
    if (exc == NULL)
        return NULL;
    self->interrupt = NULL;
    return exc;
}

static PyObject *
core_run(CoreObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    int signals = 0;
    if (nargs > 1) {
        PyErr_SetString(PyExc_TypeError, "run() takes at most one argument");
        return NULL;
    }
    if (nargs == 1 && (signals = PyObject_IsTrue(args[0])) < 0)
        return NULL;
    if (!core_usable(self))
        return NULL;
    if (claim(self) < 0)
        return NULL;
    aios_loop_t *loop = self->loop;
    int status = aios_loop_set_iteration_callback(loop, before_iteration, self);
    if (status < 0)
        return raise_status(status);
    aios_loop_ref(loop);
    Py_INCREF(self);
    self->running = 1;
    io_resume_backlog(self);
    if (signals)
        set_wake_target(loop, self);
    self->entered = 0;
    self->released = PyEval_SaveThread();
    status = aios_loop_run_forever(loop);
    aios_loop_set_iteration_callback(loop, NULL, NULL);
    if (self->gil_held)
        self->gil_held = 0;             /* kept since the last iteration */
    else
        PyEval_RestoreThread(self->released);
    self->released = NULL;
    if (signals)
        set_wake_target(NULL, NULL);
    self->running = 0;
    aios_loop_unref(loop);
    PyObject *interrupt = take_interrupt(self);
    Py_DECREF(self);
    if (interrupt != NULL) {
        restore_exception(interrupt);
        return NULL;
    }
    if (status < 0)
        return raise_status(status);
    Py_RETURN_NONE;
}

/* Before a call of the core that the loop's thread must make: a loop that is
 * not running comes to this thread. */
static int
claim(CoreObject *self)
{
    double ignored;
    if (self->loop == NULL || self->running || self->closed)
        return 0;
    if (aios_loop_time(self->loop, &ignored) != AIOS_EWRONGTHREAD)
        return 0;
    return move_to_this_thread(self);
}

static PyObject *
core_claim(CoreObject *self, PyObject *Py_UNUSED(ignored))
{
    if (claim(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
core_stop(CoreObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->loop == NULL)
        Py_RETURN_NONE;
    if (claim(self) < 0)
        return NULL;
    int status = aios_loop_stop(self->loop);
    if (status < 0 && status != AIOS_ECLOSED)
        return raise_status(status);
    Py_RETURN_NONE;
}

static PyObject *
core_close(CoreObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->loop == NULL || self->closed)
        Py_RETURN_NONE;
    if (claim(self) < 0)
        return NULL;
    int status;
    aios_loop_t *loop = self->loop;
    /* Closing waits for the core's worker threads, which may need the GIL.
     * Meanwhile the loop counts as closed for other threads. */
    self->closed = 1;
    Py_BEGIN_ALLOW_THREADS
    status = aios_loop_close(loop);
    Py_END_ALLOW_THREADS
    if (status < 0) {
        self->closed = 0;
        if (status == AIOS_ERUNNING) {
            PyErr_SetString(PyExc_RuntimeError, "Cannot close a running event loop");
            return NULL;
        }
        return raise_status(status);
    }
    drop_pending(self);
    io_drop_all(self);
    /* Let go of it here, on its thread: only its own thread may free a core
     * loop, and that thread may not outlive this call (a loop that moved to
     * a thread that closes it and ends). */
    self->loop = NULL;
    aios_loop_unref(loop);
    drain_deferred();
    Py_RETURN_NONE;
}

static PyObject *
core_set_interrupt(CoreObject *self, PyObject *exc)
{
    Py_INCREF(exc);
    set_interrupt(self, exc);
    Py_RETURN_NONE;
}

static PyObject *
core_take_interrupt(CoreObject *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *exc = take_interrupt(self);
    if (exc == NULL)
        Py_RETURN_NONE;
    return exc;
}

/* module.name, looked up per call as asyncio's own code does (a patched
 * module is honoured), from the module's dict: the generic attribute lookup
 * on a module costs more than making the future. A module of another class
 * goes through getattr. */
static PyObject *
module_global(PyObject *module, PyObject *name)
{
    if (PyModule_CheckExact(module)) {
        PyObject *value = PyDict_GetItemWithError(PyModule_GetDict(module), name);
        if (value != NULL)
            return Py_NewRef(value);
        if (PyErr_Occurred())
            return NULL;
    }
    return PyObject_GetAttr(module, name);
}

/* loop.create_future(): asyncio.Future(loop=loop). */
static PyObject *
core_create_future(CoreObject *self, PyObject *Py_UNUSED(ignored))
{
    if (futures_module == NULL || self->owner == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "aioswift._native is not configured");
        return NULL;
    }
    PyObject *future_type = module_global(futures_module, str_Future);
    if (future_type == NULL)
        return NULL;
    PyObject *stack[2] = {NULL, self->owner};
    PyObject *future = PyObject_Vectorcall(future_type, stack + 1,
                                           0 | PY_VECTORCALL_ARGUMENTS_OFFSET, kw_loop);
    Py_DECREF(future_type);
    return future;
}

/* loop.create_task(coro, *, name=None, context=None), as asyncio's loop
 * does it: the task factory's task (named afterwards), else asyncio.Task. */
static PyObject *
core_create_task(CoreObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *name = NULL, *context = NULL;
    if (nargs != 1) {
        PyErr_Format(PyExc_TypeError, "create_task() takes 1 positional argument (%zd given)",
                     nargs);
        return NULL;
    }
    if (kwnames != NULL) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(kwnames); i++) {
            PyObject *key = PyTuple_GET_ITEM(kwnames, i);
            if (PyUnicode_CompareWithASCIIString(key, "name") == 0)
                name = args[nargs + i];
            else if (PyUnicode_CompareWithASCIIString(key, "context") == 0)
                context = args[nargs + i];
            else {
                PyErr_Format(PyExc_TypeError,
                             "create_task() got an unexpected keyword argument '%U'", key);
                return NULL;
            }
        }
    }
    if (name == Py_None)
        name = NULL;
    if (context == Py_None)
        context = NULL;
    if (!core_usable(self))
        return NULL;
    if (tasks_module == NULL || self->owner == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "aioswift._native is not configured");
        return NULL;
    }
    PyObject *stack[5] = {NULL};
    PyObject *task;
    if (self->task_factory != NULL) {
        PyObject *factory = Py_NewRef(self->task_factory);
        stack[1] = self->owner;
        stack[2] = args[0];
        if (context != NULL) {
            stack[3] = context;
            task = PyObject_Vectorcall(factory, stack + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                       kw_context);
        }
        else {
            task = PyObject_Vectorcall(factory, stack + 1, 2 | PY_VECTORCALL_ARGUMENTS_OFFSET,
                                       NULL);
        }
        Py_DECREF(factory);
        if (task == NULL || name == NULL)
            return task;
        PyObject *set_name = PyObject_GetAttr(task, str_set_name);
        if (set_name == NULL) {
            if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
                Py_DECREF(task);
                return NULL;
            }
            PyErr_Clear();
            return task;
        }
        PyObject *r = PyObject_CallOneArg(set_name, name);
        Py_DECREF(set_name);
        if (r == NULL) {
            Py_DECREF(task);
            return NULL;
        }
        Py_DECREF(r);
        return task;
    }
    PyObject *task_type = module_global(tasks_module, str_Task);
    if (task_type == NULL)
        return NULL;
    stack[1] = args[0];
    stack[2] = self->owner;
    PyObject *kw = kw_loop;
    if (name != NULL && context != NULL) {
        stack[3] = name;
        stack[4] = context;
        kw = kw_loop_name_context;
    }
    else if (name != NULL) {
        stack[3] = name;
        kw = kw_loop_name;
    }
    else if (context != NULL) {
        stack[3] = context;
        kw = kw_loop_context;
    }
    task = PyObject_Vectorcall(task_type, stack + 1, 1 | PY_VECTORCALL_ARGUMENTS_OFFSET, kw);
    Py_DECREF(task_type);
    if (task != NULL && self->debug) {
        /* As asyncio's: the traceback ends where create_task was called. */
        PyObject *tb = PyObject_GetAttr(task, str_source_traceback);
        if (tb == NULL) {
            PyErr_Clear();
        }
        else {
            if (PyList_Check(tb) && PyList_GET_SIZE(tb) > 0)
                PyList_SetSlice(tb, PyList_GET_SIZE(tb) - 1, PyList_GET_SIZE(tb), NULL);
            Py_DECREF(tb);
        }
    }
    return task;
}

static PyObject *
core_set_task_factory(CoreObject *self, PyObject *factory)
{
    if (factory != Py_None && !PyCallable_Check(factory)) {
        PyErr_SetString(PyExc_TypeError, "task factory must be a callable or None");
        return NULL;
    }
    Py_XSETREF(self->task_factory, factory == Py_None ? NULL : Py_NewRef(factory));
    Py_RETURN_NONE;
}

static PyObject *
core_get_task_factory(CoreObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->task_factory == NULL)
        Py_RETURN_NONE;
    return Py_NewRef(self->task_factory);
}

static PyObject *
core_get_debug(CoreObject *self, PyObject *Py_UNUSED(ignored))
{
    return PyBool_FromLong(self->debug);
}

static PyObject *
core_set_debug(CoreObject *self, PyObject *enabled)
{
    int on = PyObject_IsTrue(enabled);
    if (on < 0)
        return NULL;
    self->debug = on;
    Py_RETURN_NONE;
}

static PyObject *
core_hooks(CoreObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"reporter", "debug_check", "slow_reporter", NULL};
    PyObject *reporter = NULL, *debug_check = NULL, *slow = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OOO:set_hooks", names,
                                     &reporter, &debug_check, &slow))
        return NULL;
    if (reporter != NULL)
        Py_XSETREF(self->reporter, reporter == Py_None ? NULL : Py_NewRef(reporter));
    if (debug_check != NULL)
        Py_XSETREF(self->debug_check, debug_check == Py_None ? NULL : Py_NewRef(debug_check));
    if (slow != NULL)
        Py_XSETREF(self->slow_reporter, slow == Py_None ? NULL : Py_NewRef(slow));
    Py_RETURN_NONE;
}

static PyObject *
core_set_exception_handler(CoreObject *self, PyObject *args)
{
    unsigned long long fn, arg;
    if (!PyArg_ParseTuple(args, "KK:set_exception_handler", &fn, &arg))
        return NULL;
    self->exception_handler = (aios_exception_handler_fn)(uintptr_t)fn;
    self->exception_handler_arg = (void *)(uintptr_t)arg;
    if (self->loop == NULL)
        Py_RETURN_NONE;
    int status = aios_loop_set_exception_handler(self->loop, self->exception_handler,
                                                 self->exception_handler_arg);
    if (status < 0)
        return raise_status(status);
    Py_RETURN_NONE;
}

static PyObject *
core_get_moves(CoreObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(self->moves);
}

static PyObject *
core_get_address(CoreObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromVoidPtr(self->loop);
}

static PyObject *
core_get_closed(CoreObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->closed || self->loop == NULL);
}

static PyObject *
core_get_running(CoreObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->running);
}

static PyObject *
core_get_pending(CoreObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->pending);
}

static PyObject *
core_get_slow(CoreObject *self, void *Py_UNUSED(closure))
{
    return PyFloat_FromDouble(self->slow_duration);
}

static int
core_set_slow(CoreObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete slow_callback_duration");
        return -1;
    }
    double d = PyFloat_AsDouble(value);
    if (d == -1.0 && PyErr_Occurred())
        return -1;
    self->slow_duration = d;
    return 0;
}

static PyObject *
core_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"owner", NULL};
    PyObject *owner;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O:Core", names, &owner))
        return NULL;
    aios_loop_t *loop = NULL;
    drain_deferred();
    int status = aios_loop_new(&loop);
    if (status < 0)
        return raise_status(status);
    CoreObject *self = (CoreObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        aios_loop_unref(loop);
        return NULL;
    }
    self->loop = loop;
    self->owner_thread = PyThread_get_thread_ident();
    Py_INCREF(owner);
    self->owner = owner;
    self->slow_duration = 0.1;
    return (PyObject *)self;
}

static int
core_traverse(CoreObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->owner);
    Py_VISIT(self->reporter);
    Py_VISIT(self->debug_check);
    Py_VISIT(self->slow_reporter);
    Py_VISIT(self->interrupt);
    Py_VISIT(self->task_factory);
    for (HandleObject *h = self->head; h != NULL; h = h->next)
        Py_VISIT((PyObject *)h);
    return io_traverse(self, visit, arg);
}

/* Lets go of the loop first: once the last reference is gone nobody can run
 * it, so the core calls none of the pending handles again. */
static void
core_release_loop(CoreObject *self)
{
    aios_loop_t *loop = self->loop;
    if (loop != NULL) {
        self->loop = NULL;
        if (self->io_enabled) {
            aios_loop_set_io_events_callback(loop, NULL, NULL);
            aios_loop_set_io_buffer_callback(loop, NULL, NULL);
        }
        aios_loop_unref(loop);
    }
    drop_pending(self);
    io_drop_all(self);
}

static int
core_clear(CoreObject *self)
{
    if (self->running)
        return 0;
    core_release_loop(self);
    Py_CLEAR(self->owner);
    Py_CLEAR(self->reporter);
    Py_CLEAR(self->debug_check);
    Py_CLEAR(self->slow_reporter);
    Py_CLEAR(self->interrupt);
    Py_CLEAR(self->task_factory);
    return 0;
}

static void
core_dealloc(CoreObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    core_clear(self);
    io_free_table(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef core_methods[] = {
    {"call_soon", (PyCFunction)(void (*)(void))core_call_soon, METH_FASTCALL | METH_KEYWORDS,
     "call_soon(callback, *args, context=None) -> Handle"},
    {"call_soon_threadsafe", (PyCFunction)(void (*)(void))core_call_soon_threadsafe,
     METH_FASTCALL | METH_KEYWORDS,
     "call_soon_threadsafe(callback, *args, context=None) -> Handle; any thread"},
    {"call_later", (PyCFunction)(void (*)(void))core_call_later, METH_FASTCALL | METH_KEYWORDS,
     "call_later(delay, callback, *args, context=None) -> TimerHandle"},
    {"call_at", (PyCFunction)(void (*)(void))core_call_at, METH_FASTCALL | METH_KEYWORDS,
     "call_at(when, callback, *args, context=None) -> TimerHandle"},
    {"run", (PyCFunction)(void (*)(void))core_run, METH_FASTCALL,
     "run(signals=False): run the core's loop until stop(); raises what "
     "interrupted it. With signals, the signal_wakeup_fd() thread wakes it."},
    {"stop", (PyCFunction)core_stop, METH_NOARGS, "Stop after the current iteration."},
    {"claim", (PyCFunction)core_claim, METH_NOARGS,
     "A loop that is not running moves to this thread if it is another's."},
    {"close", (PyCFunction)core_close, METH_NOARGS,
     "Close the core's loop; pending callbacks are dropped. Twice is a no-op."},
    {"get_debug", (PyCFunction)core_get_debug, METH_NOARGS, NULL},
    {"create_future", (PyCFunction)core_create_future, METH_NOARGS,
     "asyncio.Future(loop=owner)"},
    {"create_task", (PyCFunction)(void (*)(void))core_create_task, METH_FASTCALL | METH_KEYWORDS,
     "create_task(coro, *, name=None, context=None): the task factory's task, or asyncio.Task"},
    {"set_task_factory", (PyCFunction)core_set_task_factory, METH_O, NULL},
    {"get_task_factory", (PyCFunction)core_get_task_factory, METH_NOARGS, NULL},
    {"set_debug", (PyCFunction)core_set_debug, METH_O, NULL},
    {"set_hooks", (PyCFunction)(void (*)(void))core_hooks, METH_VARARGS | METH_KEYWORDS,
     "set_hooks(reporter=, debug_check=, slow_reporter=)"},
    {"set_exception_handler", (PyCFunction)core_set_exception_handler, METH_VARARGS,
     "set_exception_handler(fn, arg): the aios_exception_handler_fn (an address) "
     "installed on the core's loop, now and after a move to another thread."},
    {"set_interrupt", (PyCFunction)core_set_interrupt, METH_O,
     "Stop the loop; run() raises this exception (the first one set)."},
    {"take_interrupt", (PyCFunction)core_take_interrupt, METH_NOARGS, NULL},
    {"io_enable", (PyCFunction)core_io_enable, METH_NOARGS,
     "The core's loop hands batched I/O events over from now on (io_ready)."},
    {"add_watch", (PyCFunction)(void (*)(void))core_add_watch, METH_FASTCALL,
     "add_watch(kind, number, callback, *args) -> Handle: a reader (0), writer (1) or signal "
     "handler (2) of the core's; replaces the one there."},
    {"remove_watch", (PyCFunction)core_remove_watch, METH_VARARGS,
     "remove_watch(kind, number) -> whether one was registered."},
    {"transport_using", (PyCFunction)core_transport_using, METH_O,
     "transport_using(fd) -> the open connection or pipe transport on fd, or None."},
    {"server_factory", (PyCFunction)core_server_factory, METH_O,
     "server_factory(key) -> (factory, arg, destructor): addresses for aios_create_server "
     "whose connections name the server `key`."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef core_getset[] = {
    {"address", (getter)core_get_address, NULL, "The aios_loop_t * as an integer.", NULL},
    {"closed", (getter)core_get_closed, NULL, NULL, NULL},
    {"moves", (getter)core_get_moves, NULL,
     "How many times the loop moved to another thread.", NULL},
    {"running", (getter)core_get_running, NULL, NULL, NULL},
    {"pending", (getter)core_get_pending, NULL,
     "How many handles the core may still call.", NULL},
    {"slow_callback_duration", (getter)core_get_slow, (setter)core_set_slow, NULL, NULL},
    {"io_used", (getter)core_get_io_used, NULL, "Connections in the token table.", NULL},
    {"io_backlog", (getter)core_get_io_backlog, NULL,
     "Events an interrupt kept back for the next run.", NULL},
    {"io_lent", (getter)core_get_io_lent, NULL,
     "Bytes objects the core reads into whose events have not come yet.", NULL},
    {"io_servers", (getter)core_get_io_servers, (setter)core_set_io_servers,
     "Servers open (they keep the loop on its thread).", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject CoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "aioswift._native.Core",
    .tp_doc = "Core(owner): a libaio-swift loop's scheduling, for the event loop `owner`.",
    .tp_basicsize = sizeof(CoreObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = core_new,
    .tp_dealloc = (destructor)core_dealloc,
    .tp_traverse = (traverseproc)core_traverse,
    .tp_clear = (inquiry)core_clear,
    .tp_weaklistoffset = offsetof(CoreObject, weakreflist),
    .tp_methods = core_methods,
    .tp_getset = core_getset,
};

/* ------------------------------------------------------------------------ */
/* Module                                                                     */

static PyObject *
configure(PyObject *Py_UNUSED(module), PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"formatter", "error_for_code", "tasks", "futures",
                            "buffered_protocol", "connlost_warning", "datagram_address", NULL};
    PyObject *formatter, *error_for, *tasks, *futures, *buffered = NULL, *warning = NULL,
        *dgram_address = NULL;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOO|OOO:configure", names, &formatter,
                                     &error_for, &tasks, &futures, &buffered, &warning,
                                     &dgram_address))
        return NULL;
    if (dgram_address != NULL)
        Py_XSETREF(datagram_address_helper, Py_NewRef(dgram_address));
    if (buffered != NULL)
        Py_XSETREF(buffered_protocol_type, Py_NewRef(buffered));
    if (warning != NULL)
        Py_XSETREF(connlost_warning, Py_NewRef(warning));
    Py_XSETREF(handle_formatter, Py_NewRef(formatter));
    Py_XSETREF(error_for_code, Py_NewRef(error_for));
    Py_XSETREF(tasks_module, Py_NewRef(tasks));
    Py_XSETREF(futures_module, Py_NewRef(futures));
    Py_RETURN_NONE;
}

static PyObject *
native_monotonic(PyObject *Py_UNUSED(module), PyObject *Py_UNUSED(ignored))
{
    return PyFloat_FromDouble(monotonic());
}

static PyMethodDef module_methods[] = {
    {"configure", (PyCFunction)(void (*)(void))configure, METH_VARARGS | METH_KEYWORDS,
     "configure(formatter, error_for_code, tasks, futures): the Python helpers of the "
     "hot path, and the modules of asyncio.Task and asyncio.Future."},
    {"signal_wakeup_fd", (PyCFunction)signal_wakeup_fd, METH_NOARGS,
     "The fd to give signal.set_wakeup_fd while the main thread's loop runs."},
    {"monotonic", (PyCFunction)native_monotonic, METH_NOARGS,
     "The clock call_later adds its delay to (time.monotonic()'s)."},
    {"sockaddr", (PyCFunction)native_sockaddr, METH_O,
     "sockaddr(bytes): a struct sockaddr as Python's socket module gives addresses."},
    {"gai_strerror", (PyCFunction)native_gai_strerror, METH_O,
     "The system's message for a getaddrinfo error code (socket.EAI_*)."},
    {"keep_disposition", (PyCFunction)native_keep_disposition, METH_VARARGS,
     "keep_disposition(signum, fn): fn() (signal.signal), then the system's action for "
     "signum as it was before."},
    {"signal_action", (PyCFunction)native_signal_action, METH_O,
     "signal_action(signum) -> 0 (SIG_DFL), 1 (SIG_IGN) or the handler's address."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef native_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "aioswift._native",
    .m_doc = "The hot path of aioswift's event loop (handles, scheduling, the trampoline).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__native(void)
{
    TimerHandleType.tp_base = &HandleType;
    if (PyType_Ready(&HandleType) < 0 || PyType_Ready(&TimerHandleType) < 0 ||
        PyType_Ready(&CoreType) < 0 || io_module_init() < 0 || events_module_init() < 0 ||
        dgram_module_init() < 0 || proc_module_init() < 0)
        return NULL;
    str_call_soon = PyUnicode_InternFromString("call_soon");
    str_call_soon_threadsafe = PyUnicode_InternFromString("call_soon_threadsafe");
    str_call_later = PyUnicode_InternFromString("call_later");
    str_call_at = PyUnicode_InternFromString("call_at");
    if (!str_call_soon || !str_call_soon_threadsafe || !str_call_later || !str_call_at)
        return NULL;
    str_context = PyUnicode_InternFromString("context");
    if (str_context == NULL)
        return NULL;
    str_Task = PyUnicode_InternFromString("Task");
    str_Future = PyUnicode_InternFromString("Future");
    str_set_name = PyUnicode_InternFromString("set_name");
    str_source_traceback = PyUnicode_InternFromString("_source_traceback");
    kw_loop = Py_BuildValue("(s)", "loop");
    kw_context = Py_BuildValue("(s)", "context");
    kw_loop_name = Py_BuildValue("(ss)", "loop", "name");
    kw_loop_context = Py_BuildValue("(ss)", "loop", "context");
    kw_loop_name_context = Py_BuildValue("(sss)", "loop", "name", "context");
    if (!str_Task || !str_Future || !str_set_name || !str_source_traceback || !kw_loop ||
        !kw_context || !kw_loop_name || !kw_loop_context || !kw_loop_name_context)
        return NULL;
    PyObject *m = PyModule_Create(&native_module);
    if (m == NULL)
        return NULL;
    Py_INCREF(&HandleType);
    Py_INCREF(&TimerHandleType);
    Py_INCREF(&CoreType);
    if (PyModule_AddObject(m, "Handle", (PyObject *)&HandleType) < 0 ||
        PyModule_AddObject(m, "TimerHandle", (PyObject *)&TimerHandleType) < 0 ||
        PyModule_AddObject(m, "Core", (PyObject *)&CoreType) < 0 ||
        PyModule_AddObject(m, "Channel", (PyObject *)Py_NewRef(&ChannelType)) < 0 ||
        PyModule_AddObject(m, "Datagram", (PyObject *)Py_NewRef(&DatagramType)) < 0 ||
        PyModule_AddObject(m, "Relay", (PyObject *)Py_NewRef(&RelayType)) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
