/*
 * Subprocesses of aioswift._native: the C half of
 * aioswift._subprocess.SubprocessTransport. Part of _native.c's translation
 * unit, included after _native_dgram.c (whose helpers it uses).
 *
 * A Relay holds the core's subprocess (aios_subprocess_t, one reference
 * from connection_made until connection_lost) and takes its protocol
 * table's calls, through its cell:
 *
 *   pipe_data_received   here: loop.call_soon(protocol.pipe_data_received,
 *                        fd, data), as asyncio's _call does;
 *   connection_made,     transport._io_connected(), _io_pipe_lost(fd, error),
 *   pipe_connection_lost, _io_exited(), _io_finished(error),
 *   process_exited, ...  _io_pause_writing(paused) (Python).
 *
 * The child's pipes are stream transports of the core: pipe_channel(fd)
 * wraps one in a Channel of its own (no token: its events come through
 * here), the C half of the pipe transport get_pipe_transport(fd) gives.
 * The loop keeps the Relay in its io_objects set until connection_lost.
 */

typedef struct {
    PyObject_HEAD
    CoreObject *core;            /* strong */
    IOCell *cell;                /* the library's way to us, until connection_lost */
    aios_subprocess_t *ptr;      /* one reference, from connection_made until connection_lost */
    PyObject *transport;         /* the Python transport, until connection_lost */
} RelayObject;

static PyTypeObject RelayType;

static PyObject *str_io_connected_proc, *str_io_pipe_lost, *str_io_exited, *str_io_finished,
    *str_protocol_attr, *str_pipe_data_received;

static void
relay_let_go(RelayObject *self)
{
    aios_subprocess_t *ptr = self->ptr;
    self->ptr = NULL;
    if (ptr != NULL)
        aios_subprocess_unref(ptr);
    IOCell *cell = self->cell;
    self->cell = NULL;
    cell_forget(cell);
}

static void
relay_leave_loop(RelayObject *self)
{
    relay_let_go(self);
    Py_CLEAR(self->transport);
    if (self->core != NULL && self->core->io_objects != NULL &&
        PySet_Discard(self->core->io_objects, (PyObject *)self) < 0)
        PyErr_Clear();
}

static inline int
relay_live(RelayObject *self)
{
    return self != NULL && self->core != NULL && !self->core->closed && self->core->loop != NULL;
}

/* transport.<name>(*args); what escapes is unraisable, an interrupt stops
 * the loop. */
static void
relay_call(RelayObject *self, PyObject *name, PyObject *a, PyObject *b)
{
    if (self->transport == NULL)
        return;
    PyObject *r = PyObject_CallMethodObjArgs(self->transport, name, a, b, NULL);
    if (r != NULL) {
        Py_DECREF(r);
        return;
    }
    PyObject *exc = fetch_exception();
    if (exc == NULL)
        return;
    if (is_interrupt(exc)) {
        set_interrupt(self->core, exc);
        return;
    }
    restore_exception(exc);
    PyErr_WriteUnraisable(self->transport);
}

/* -- the protocol table ------------------------------------------------------ */

static void
sp_connection_made(aios_subprocess_t *subprocess, void *arg)
{
    RelayObject *self = (RelayObject *)cell_object(arg);
    if (!relay_live(self))
        return;
    PyGILState_STATE state = PyGILState_UNLOCKED;
    int how = enter_io(self->core, &state);
    Py_INCREF(self);
    if (self->ptr == NULL && aios_subprocess_ref(subprocess) == 0)
        self->ptr = subprocess;
    relay_call(self, str_io_connected_proc, NULL, NULL);
    Py_DECREF(self);
    leave_python(self->core, how, state);
}

static void
sp_pipe_data_received(aios_subprocess_t *subprocess, int fd, const void *data, size_t length,
                      void *arg)
{
    (void)subprocess;
    RelayObject *self = (RelayObject *)cell_object(arg);
    if (!relay_live(self))
        return;
    CoreObject *core = self->core;
    PyGILState_STATE state = PyGILState_UNLOCKED;
    int how = enter_io(core, &state);
    Py_INCREF(self);
    PyObject *protocol = self->transport != NULL
        ? PyObject_GetAttr(self->transport, str_protocol_attr) : NULL;
    PyObject *method = protocol != NULL && protocol != Py_None
        ? PyObject_GetAttr(protocol, str_pipe_data_received) : NULL;
    PyObject *number = method != NULL ? PyLong_FromLong(fd) : NULL;
    PyObject *bytes = number != NULL
        ? PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)length) : NULL;
    if (bytes != NULL) {
        PyObject *call[3] = {method, number, bytes};
        Py_XDECREF(schedule(core, &HandleType, str_call_soon, call, 3, NULL, 0.0, 0));
    }
    if (PyErr_Occurred())
        PyErr_WriteUnraisable(self->transport != NULL ? self->transport : (PyObject *)self);
    Py_XDECREF(bytes);
    Py_XDECREF(number);
    Py_XDECREF(method);
    Py_XDECREF(protocol);
    Py_DECREF(self);
    leave_python(core, how, state);
}

/* The other events, to the transport: `fd` -1 for none, `error` NULL for none. */
static void
sp_event(void *arg, PyObject *name, int fd, aios_error_t *error, int paused, int lost)
{
    RelayObject *self = (RelayObject *)cell_object(arg);
    if (self == NULL)
        return;
    if (!relay_live(self)) {
        /* The loop closes: no callback, as asyncio's close() calls none. */
        if (lost)
            relay_let_go(self);
        return;
    }
    CoreObject *core = self->core;
    PyGILState_STATE state = PyGILState_UNLOCKED;
    int how = enter_io(core, &state);
    Py_INCREF(self);
    PyObject *a = NULL, *b = NULL;
    if (paused >= 0) {
        a = PyBool_FromLong(paused);
    }
    else if (fd >= 0) {
        a = PyLong_FromLong(fd);
        b = error != NULL ? PyLong_FromVoidPtr(error) : Py_NewRef(Py_None);
    }
    else if (lost) {
        a = error != NULL ? PyLong_FromVoidPtr(error) : Py_NewRef(Py_None);
    }
    if (PyErr_Occurred())
        PyErr_Clear();
    else
        relay_call(self, name, a, b);
    Py_XDECREF(a);
    Py_XDECREF(b);
    if (lost)
        relay_leave_loop(self);
    Py_DECREF(self);
    leave_python(core, how, state);
}

static void
sp_pipe_connection_lost(aios_subprocess_t *subprocess, int fd, aios_error_t *error, void *arg)
{
    (void)subprocess;
    sp_event(arg, str_io_pipe_lost, fd, error, -1, 0);
}

static void
sp_process_exited(aios_subprocess_t *subprocess, void *arg)
{
    (void)subprocess;
    sp_event(arg, str_io_exited, -1, NULL, -1, 0);
}

static void
sp_connection_lost(aios_subprocess_t *subprocess, aios_error_t *error, void *arg)
{
    (void)subprocess;
    sp_event(arg, str_io_finished, -1, error, -1, 1);
}

static void
sp_pause_writing(aios_subprocess_t *subprocess, void *arg)
{
    (void)subprocess;
    sp_event(arg, str_io_pause_writing, -1, NULL, 1, 0);
}

static void
sp_resume_writing(aios_subprocess_t *subprocess, void *arg)
{
    (void)subprocess;
    sp_event(arg, str_io_pause_writing, -1, NULL, 0, 0);
}

/* -- methods ------------------------------------------------------------------- */

/* Relay(core, transport) */
static PyObject *
relay_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"core", "transport", NULL};
    PyObject *core, *transport;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!O:Relay", names, &CoreType, &core,
                                     &transport))
        return NULL;
    RelayObject *self = PyObject_GC_New(RelayObject, type);
    if (self == NULL)
        return NULL;
    self->core = (CoreObject *)Py_NewRef(core);
    self->cell = NULL;
    self->ptr = NULL;
    self->transport = Py_NewRef(transport);
    PyObject_GC_Track(self);
    return (PyObject *)self;
}

/* fill(table_address): see Datagram.fill. */
static PyObject *
relay_fill(RelayObject *self, PyObject *arg)
{
    aios_subprocess_protocol_t *table = table_at(arg);
    if (table == NULL)
        return NULL;
    if (self->cell != NULL || self->transport == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "fill: the subprocess was started already");
        return NULL;
    }
    IOCell *cell = io_object_cell(self->core, (PyObject *)self);
    if (cell == NULL)
        return NULL;
    self->cell = cell;
    table->arg = cell;
    table->connection_made = sp_connection_made;
    table->pipe_data_received = sp_pipe_data_received;
    table->pipe_connection_lost = sp_pipe_connection_lost;
    table->process_exited = sp_process_exited;
    table->connection_lost = sp_connection_lost;
    table->pause_writing = sp_pause_writing;
    table->resume_writing = sp_resume_writing;
    table->destroy = cell_unref;
    Py_RETURN_NONE;
}

/* abandon(refused): see Datagram.abandon. */
static PyObject *
relay_abandon(RelayObject *self, PyObject *refused)
{
    int at_once = PyObject_IsTrue(refused);
    if (at_once < 0)
        return NULL;
    if (at_once && self->cell != NULL)
        cell_unref(self->cell);
    Py_INCREF(self);
    relay_leave_loop(self);
    Py_DECREF(self);
    Py_RETURN_NONE;
}

static int
relay_ptr(RelayObject *self)
{
    if (self->ptr != NULL)
        return 1;
    PyErr_SetNone(PyExc_ProcessLookupError);
    return 0;
}

static PyObject *
relay_pid(RelayObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!relay_ptr(self))
        return NULL;
    int pid = aios_subprocess_get_pid(self->ptr);
    if (pid < 0)
        return raise_status(pid);
    return PyLong_FromLong(pid);
}

/* The returncode, or None while the child runs. */
static PyObject *
relay_returncode(RelayObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!relay_ptr(self))
        return NULL;
    int code = 0;
    int status = aios_subprocess_get_returncode(self->ptr, &code);
    if (status < 0)
        return raise_status(status);
    if (status == 0)
        Py_RETURN_NONE;
    return PyLong_FromLong(code);
}

static PyObject *
relay_send_signal(RelayObject *self, PyObject *arg)
{
    long signum = PyLong_AsLong(arg);
    if (signum == -1 && PyErr_Occurred())
        return NULL;
    if (!relay_ptr(self))
        return NULL;
    if (signum < INT_MIN || signum > INT_MAX)
        return raise_status(-EINVAL);
    int status = aios_subprocess_send_signal(self->ptr, (int)signum);
    if (status == -ESRCH) {
        PyErr_SetNone(PyExc_ProcessLookupError);
        return NULL;
    }
    if (status < 0)
        return raise_status(status);
    Py_RETURN_NONE;
}

static PyObject *
relay_close(RelayObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->ptr == NULL)
        Py_RETURN_NONE;
    PyObject *before = self->core->interrupt;
    Py_INCREF(self);
    int status = aios_subprocess_close(self->ptr);
    PyObject *result = status < 0 ? raise_status(status) : raise_new_interrupt(self->core, before);
    Py_DECREF(self);
    return result;
}

/* pipe_channel(fd) -> a Channel over the child's pipe `fd`, or None. */
static PyObject *
relay_pipe_channel(RelayObject *self, PyObject *arg)
{
    long fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    if (!relay_ptr(self))
        return NULL;
    aios_transport_t *pipe = NULL;
    if (fd < 0 || fd > 2 || aios_subprocess_get_pipe_transport(self->ptr, (int)fd, &pipe) < 0)
        Py_RETURN_NONE;
    ChannelObject *chan = channel_make(self->core, -1);
    if (chan == NULL) {
        aios_transport_unref(pipe);
        return NULL;
    }
    chan->ptr = pipe;           /* the reference the call gave */
    chan->pipe = 1;
    return (PyObject *)chan;
}

static int
relay_traverse(RelayObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->core);
    Py_VISIT(self->transport);
    return 0;
}

static int
relay_clear(RelayObject *self)
{
    Py_CLEAR(self->transport);
    return 0;
}

static void
relay_dealloc(RelayObject *self)
{
    PyObject_GC_UnTrack(self);
    relay_let_go(self);
    relay_clear(self);
    Py_CLEAR(self->core);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyMethodDef relay_methods[] = {
    {"fill", (PyCFunction)relay_fill, METH_O,
     "fill(table_address): the protocol table's callbacks, argument and destructor."},
    {"abandon", (PyCFunction)relay_abandon, METH_O,
     "abandon(refused): the library keeps nothing of ours."},
    {"pid", (PyCFunction)relay_pid, METH_NOARGS, NULL},
    {"returncode", (PyCFunction)relay_returncode, METH_NOARGS,
     "The child's returncode (minus the signal that killed it), or None."},
    {"send_signal", (PyCFunction)relay_send_signal, METH_O,
     "ProcessLookupError once connection_lost ran."},
    {"close", (PyCFunction)relay_close, METH_NOARGS,
     "Close the pipes and kill a child still running."},
    {"pipe_channel", (PyCFunction)relay_pipe_channel, METH_O,
     "pipe_channel(fd) -> Channel over the child's pipe, or None."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject RelayType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "aioswift._native.Relay",
    .tp_doc = "Relay(core, transport): the C half of a subprocess transport.",
    .tp_basicsize = sizeof(RelayObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = relay_new,
    .tp_dealloc = (destructor)relay_dealloc,
    .tp_traverse = (traverseproc)relay_traverse,
    .tp_clear = (inquiry)relay_clear,
    .tp_methods = relay_methods,
};

/* The loop closed (or the Core lets go of it): the library calls none of
 * its datagram endpoints and subprocesses again. */
static void
io_objects_drop_all(CoreObject *core)
{
    PyObject *objects = core->io_objects;
    if (objects == NULL)
        return;
    core->io_objects = NULL;
    PyObject *list = PySequence_List(objects);
    if (list == NULL)
        PyErr_Clear();
    for (Py_ssize_t i = 0; list != NULL && i < PyList_GET_SIZE(list); i++) {
        PyObject *item = PyList_GET_ITEM(list, i);
        if (Py_IS_TYPE(item, &DatagramType)) {
            datagram_let_go((DatagramObject *)item);
            Py_CLEAR(((DatagramObject *)item)->transport);
        }
        else if (Py_IS_TYPE(item, &RelayType)) {
            relay_let_go((RelayObject *)item);
            Py_CLEAR(((RelayObject *)item)->transport);
        }
    }
    Py_XDECREF(list);
    Py_DECREF(objects);
}

static int
proc_module_init(void)
{
    if (PyType_Ready(&RelayType) < 0)
        return -1;
    str_io_connected_proc = PyUnicode_InternFromString("_io_connected");
    str_io_pipe_lost = PyUnicode_InternFromString("_io_pipe_lost");
    str_io_exited = PyUnicode_InternFromString("_io_exited");
    str_io_finished = PyUnicode_InternFromString("_io_finished");
    str_protocol_attr = PyUnicode_InternFromString("_protocol");
    str_pipe_data_received = PyUnicode_InternFromString("pipe_data_received");
    if (!str_io_connected_proc || !str_io_pipe_lost || !str_io_exited || !str_io_finished ||
        !str_protocol_attr || !str_pipe_data_received)
        return -1;
    return 0;
}
