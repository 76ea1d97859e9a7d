/*
 * Descriptor watchers and signal handlers of aioswift._native: asyncio's
 * add_reader, add_writer and add_signal_handler on the core's
 * (aios_loop_add_reader, _add_writer, aios_loop_add_signal_handler). Part of
 * _native.c's translation unit, included after _native_io.c.
 *
 * Each registration is a Watch: the Handle asyncio would make (the callback,
 * its arguments and its context), run by the core as a callback of its own
 * at each event, with asyncio's Handle semantics (exceptions to the
 * exception handler, KeyboardInterrupt and SystemExit stop the loop). The
 * Core keeps its Watches in a dict, (kind, number) -> Watch: adding again
 * replaces the entry, removing deletes it, closing the loop empties it.
 *
 * Cells. What the library calls us back with is never one of our objects
 * but an IOCell naming it, the library's reference to the cell being the
 * one its destructor drops. So the Python object is held where the
 * collector sees it (the Core's dict or set), an unclosed loop with
 * watchers is garbage like any other, and a callback or destructor that
 * comes after we let go of the object finds the cell empty. The same cells
 * serve datagram endpoints and subprocesses (_native_dgram.c, _native_proc.c).
 */

#include <signal.h>

static PyObject *schedule(CoreObject *self, PyTypeObject *type, PyObject *method,
                          PyObject *const *args, Py_ssize_t nargs, PyObject *context,
                          double when, int kind);

typedef struct IOCell {
    long refs;                   /* ours and the library's */
    PyObject *obj;               /* borrowed: NULL once we let go */
} IOCell;

/* A cell for `obj`, with our reference and the library's. */
static IOCell *
cell_new(PyObject *obj)
{
    IOCell *cell = malloc(sizeof *cell);
    if (cell == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    cell->refs = 2;
    cell->obj = obj;
    return cell;
}

/* A cell for `obj`, an endpoint or a subprocess about to be handed to the
 * library, which the core holds among its I/O objects from now on (until
 * it leaves the loop). NULL with an exception set. */
static IOCell *
io_object_cell(CoreObject *core, PyObject *obj)
{
    if (core->io_objects == NULL && (core->io_objects = PySet_New(NULL)) == NULL)
        return NULL;
    IOCell *cell = cell_new(obj);
    if (cell == NULL)
        return NULL;
    if (PySet_Add(core->io_objects, obj) < 0) {
        free(cell);
        return NULL;
    }
    return cell;
}

/* fill(table_address)'s table: NULL with an exception set. */
static void *
table_at(PyObject *address)
{
    void *table = PyLong_AsVoidPtr(address);
    if (table == NULL && !PyErr_Occurred())
        PyErr_SetString(PyExc_ValueError, "fill: NULL table");
    return table;
}

/* The library's destructor of a callback argument (any thread, no GIL). */
static void
cell_unref(void *arg)
{
    IOCell *cell = (IOCell *)arg;
    if (cell != NULL && __atomic_sub_fetch(&cell->refs, 1, __ATOMIC_ACQ_REL) == 0)
        free(cell);
}

/* We let go of the object: the library's calls find nothing from now on. */
static void
cell_forget(IOCell *cell)
{
    if (cell == NULL)
        return;
    __atomic_store_n(&cell->obj, NULL, __ATOMIC_RELEASE);
    cell_unref(cell);
}

static inline PyObject *
cell_object(void *arg)
{
    return arg != NULL ? __atomic_load_n(&((IOCell *)arg)->obj, __ATOMIC_ACQUIRE) : NULL;
}

/* Whether the loop has what keeps it on its thread besides connections
 * and servers (see move_to_this_thread). */
static int
io_pinned(CoreObject *core)
{
    return (core->watches != NULL && PyDict_GET_SIZE(core->watches) > 0) ||
           (core->io_objects != NULL && PySet_GET_SIZE(core->io_objects) > 0);
}

/* ------------------------------------------------------------------------ */
/* Watch                                                                      */

typedef struct {
    PyObject_HEAD
    HandleObject *handle;        /* strong */
    IOCell *cell;
} WatchObject;

static PyTypeObject WatchType;

enum { WATCH_READER = 0, WATCH_WRITER = 1, WATCH_SIGNAL = 2 };

static int
watch_traverse(WatchObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->handle);
    return 0;
}

static int
watch_clear(WatchObject *self)
{
    Py_CLEAR(self->handle);
    return 0;
}

static void
watch_dealloc(WatchObject *self)
{
    PyObject_GC_UnTrack(self);
    cell_forget(self->cell);
    self->cell = NULL;
    watch_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyTypeObject WatchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "aioswift._native.Watch",
    .tp_doc = "A reader, writer or signal handler registered with the core.",
    .tp_basicsize = sizeof(WatchObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_dealloc = (destructor)watch_dealloc,
    .tp_traverse = (traverseproc)watch_traverse,
    .tp_clear = (inquiry)watch_clear,
};

/* The loop stops for an interrupt: this event's call waits for the next
 * run, as a call_soon of the same callback, as asyncio leaves the handle
 * in its ready queue. */
static void
watch_requeue(CoreObject *core, HandleObject *h)
{
    Py_ssize_t n = h->args != NULL ? PyTuple_GET_SIZE(h->args) : h->nargs;
    PyObject *call = PyTuple_New(n + 1);
    if (call == NULL) {
        PyErr_Clear();
        return;
    }
    PyTuple_SET_ITEM(call, 0, Py_NewRef(h->callback));
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *a = h->args != NULL ? PyTuple_GET_ITEM(h->args, i) : h->argv[i + 1];
        PyTuple_SET_ITEM(call, i + 1, Py_NewRef(a));
    }
    PyObject *r = schedule(core, &HandleType, str_call_soon, &PyTuple_GET_ITEM(call, 0), n + 1,
                           h->context, 0.0, 0);
    Py_DECREF(call);
    if (r == NULL)
        PyErr_Clear();
    Py_XDECREF(r);
}

/* The core's callback at each event of a watch. */
static void
run_watch(void *arg)
{
    WatchObject *w = (WatchObject *)cell_object(arg);
    if (w == NULL || w->handle == NULL)
        return;
    HandleObject *h = w->handle;
    CoreObject *core = h->core;
    if (core == NULL || core->closed || core->loop == NULL)
        return;
    PyGILState_STATE state = PyGILState_UNLOCKED;
    int how = enter_io(core, &state);
    Py_INCREF(core);
    Py_INCREF(h);
    if (!h->cancelled && h->callback != NULL) {
        if (core->interrupt != NULL)
            watch_requeue(core, h);
        else
            call_handle(core, h);
    }
    Py_DECREF(h);
    Py_DECREF(core);
    leave_python(core, how, state);
}

static int
watch_key(int kind, PyObject **key, long number)
{
    *key = Py_BuildValue("(il)", kind, number);
    return *key != NULL ? 0 : -1;
}

/* An entry leaves the dict: its handle is cancelled, as asyncio cancels
 * the reader it replaces or removes. */
static void
watch_cancel(PyObject *watch)
{
    HandleObject *h = ((WatchObject *)watch)->handle;
    if (h != NULL && !h->cancelled) {
        PyObject *r = handle_cancel(h, NULL);
        if (r == NULL)
            PyErr_Clear();
        Py_XDECREF(r);
    }
}

/* core.add_watch(kind, number, callback, *args) -> Handle: a reader (0) or
 * writer (1) of the descriptor `number`, or a handler of the signal
 * `number` (2). Replaces the one there. */
static PyObject *
core_add_watch(CoreObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs < 3) {
        PyErr_SetString(PyExc_TypeError, "add_watch(kind, number, callback, *args)");
        return NULL;
    }
    int kind = (int)PyLong_AsLong(args[0]);
    if (kind == -1 && PyErr_Occurred())
        return NULL;
    long number = PyLong_AsLong(args[1]);
    if (number == -1 && PyErr_Occurred())
        return NULL;
    if (kind < WATCH_READER || kind > WATCH_SIGNAL || number < INT_MIN || number > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "add_watch: bad kind or number");
        return NULL;
    }
    if (!core_usable(self) || claim(self) < 0)
        return NULL;
    if (self->watches == NULL && (self->watches = PyDict_New()) == NULL)
        return NULL;
    PyObject *key;
    if (watch_key(kind, &key, number) < 0)
        return NULL;
    HandleObject *h = handle_new(&HandleType, self, args[2], args + 3, nargs - 3, NULL);
    if (h == NULL) {
        Py_DECREF(key);
        return NULL;
    }
    WatchObject *w = PyObject_GC_New(WatchObject, &WatchType);
    if (w == NULL) {
        Py_DECREF(h);
        Py_DECREF(key);
        return NULL;
    }
    w->handle = h;              /* the Watch's reference */
    w->cell = NULL;
    PyObject_GC_Track(w);
    w->cell = cell_new((PyObject *)w);
    if (w->cell == NULL) {
        Py_DECREF(w);
        Py_DECREF(key);
        return NULL;
    }
    int status;
    switch (kind) {
    case WATCH_READER:
        status = aios_loop_add_reader(self->loop, (int)number, run_watch, w->cell, cell_unref);
        break;
    case WATCH_WRITER:
        status = aios_loop_add_writer(self->loop, (int)number, run_watch, w->cell, cell_unref);
        break;
    default:
        status = aios_loop_add_signal_handler(self->loop, (int)number, run_watch, w->cell, cell_unref);
        break;
    }
    if (status < 0) {
        cell_unref(w->cell);    /* the library's share: it keeps nothing */
        Py_DECREF(w);
        Py_DECREF(key);
        return raise_status(status);
    }
    PyObject *old = PyDict_GetItemWithError(self->watches, key);
    if (old != NULL) {
        Py_INCREF(old);
        watch_cancel(old);
    }
    int r = PyDict_SetItem(self->watches, key, (PyObject *)w);
    Py_XDECREF(old);
    Py_DECREF(key);
    Py_DECREF(w);
    if (r < 0)
        return NULL;
    return Py_NewRef((PyObject *)h);
}

/* core.remove_watch(kind, number) -> bool: whether one was registered. A
 * reader whose descriptor was closed under it counts, as asyncio's
 * selector still holds its key. */
static PyObject *
core_remove_watch(CoreObject *self, PyObject *args)
{
    int kind;
    long number;
    if (!PyArg_ParseTuple(args, "il:remove_watch", &kind, &number))
        return NULL;
    if (kind < WATCH_READER || kind > WATCH_SIGNAL || number < INT_MIN || number > INT_MAX) {
        PyErr_SetString(PyExc_ValueError, "remove_watch: bad kind or number");
        return NULL;
    }
    if (!core_usable(self) || claim(self) < 0)
        return NULL;
    int status;
    switch (kind) {
    case WATCH_READER:
        status = aios_loop_remove_reader(self->loop, (int)number);
        break;
    case WATCH_WRITER:
        status = aios_loop_remove_writer(self->loop, (int)number);
        break;
    default:
        status = aios_loop_remove_signal_handler(self->loop, (int)number);
        break;
    }
    if (status < 0)
        return raise_status(status);
    int had = status == 1;
    if (self->watches != NULL) {
        PyObject *key;
        if (watch_key(kind, &key, number) < 0)
            return NULL;
        PyObject *w = PyDict_GetItemWithError(self->watches, key);
        if (w != NULL) {
            Py_INCREF(w);
            watch_cancel(w);
            had = 1;
            if (PyDict_DelItem(self->watches, key) < 0) {
                Py_DECREF(w);
                Py_DECREF(key);
                return NULL;
            }
            Py_DECREF(w);
        }
        Py_DECREF(key);
        if (PyErr_Occurred())
            return NULL;
    }
    return PyBool_FromLong(had);
}

/* The loop closed (or the Core lets go of it): the library calls no watch
 * again. */
static void
watch_drop_all(CoreObject *core)
{
    PyObject *watches = core->watches;
    if (watches == NULL)
        return;
    core->watches = NULL;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(watches, &pos, &key, &value))
        watch_cancel(value);
    Py_DECREF(watches);
}

/* ------------------------------------------------------------------------ */
/* Signal dispositions                                                        */

/* _native.keep_disposition(signum, fn): calls fn() (signal.signal, to set
 * Python's table) and puts back the action the system had for the signal
 * before: the core's handler stays the one the system calls. */
static PyObject *
native_keep_disposition(PyObject *Py_UNUSED(module), PyObject *args)
{
    int signum;
    PyObject *fn;
    if (!PyArg_ParseTuple(args, "iO:keep_disposition", &signum, &fn))
        return NULL;
    struct sigaction saved;
    if (sigaction(signum, NULL, &saved) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    PyObject *r = PyObject_CallNoArgs(fn);
    if (sigaction(signum, &saved, NULL) != 0 && r != NULL) {
        Py_DECREF(r);
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return r;
}

/* _native.signal_action(signum) -> the system's action: 0 for SIG_DFL, 1
 * for SIG_IGN, else the handler's address. */
static PyObject *
native_signal_action(PyObject *Py_UNUSED(module), PyObject *arg)
{
    int signum = (int)PyLong_AsLong(arg);
    if (signum == -1 && PyErr_Occurred())
        return NULL;
    struct sigaction current;
    if (sigaction(signum, NULL, &current) != 0)
        return PyErr_SetFromErrno(PyExc_OSError);
    void *handler = (current.sa_flags & SA_SIGINFO) ? (void *)current.sa_sigaction
                                                    : (void *)current.sa_handler;
    if (handler == (void *)SIG_DFL)
        return PyLong_FromLong(0);
    if (handler == (void *)SIG_IGN)
        return PyLong_FromLong(1);
    return PyLong_FromVoidPtr(handler);
}

static int
events_module_init(void)
{
    return PyType_Ready(&WatchType);
}
