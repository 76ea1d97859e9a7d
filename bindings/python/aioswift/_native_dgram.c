/*
 * Datagram endpoints of aioswift._native: the per-packet side of
 * aioswift._datagrams.DatagramTransport. Part of _native.c's translation
 * unit, included after _native_events.c (whose IOCell it uses).
 *
 * A Datagram is the C half of one Python transport: the core's endpoint
 * (aios_datagram_t, one reference from connection_made until
 * connection_lost), the protocol and its datagram_received. The core calls
 * its protocol table directly (datagram protocols are not batched), through
 * the endpoint's cell:
 *
 *   datagram_received    here: the datagram is queued (call_soon of the
 *                        Datagram's _deliver, which calls the protocol's
 *                        datagram_received): the core reads during its poll,
 *                        before the callbacks already ready, and asyncio reads
 *                        in a handle that runs after them. What the protocol
 *                        raises goes to the exception handler, as the error
 *                        of asyncio's _read_ready handle; the endpoint stays
 *                        open;
 *   connection_made,     transport._io_made(), _io_error(error), _io_lost(error),
 *   error_received, ...  _io_pause_writing(), _io_resume_writing() (Python).
 *
 * sendto is the Datagram's C method, set on the transport: asyncio's checks,
 * the address made a sockaddr (numeric ones here; a host name goes to the
 * Python helper, which resolves it as socket.sendto does), one call into the
 * core. The calls into the core that may call the protocol back at once
 * (sendto, close, abort, set_write_buffer_limits) are made from here, with
 * the GIL held: the callbacks find it held (enter_io).
 *
 * The loop keeps the Datagram in its io_objects set from fill() until
 * connection_lost (or the loop's close), so the collector sees it.
 */

typedef struct {
    PyObject_HEAD
    CoreObject *core;            /* strong */
    IOCell *cell;                /* the library's way to us, until connection_lost */
    aios_datagram_t *ptr;        /* one reference, from connection_made until lost */
    PyObject *transport;         /* the Python transport, until lost */
    PyObject *protocol;
    PyObject *datagram_received; /* protocol.datagram_received, or NULL (looked up) */
    PyObject *deliver;           /* self._deliver, bound once */
    PyObject *address;           /* asyncio's _address: the remote address given, or NULL */
    PyObject *weakreflist;
    long conn_lost;              /* asyncio's _conn_lost count (connected endpoints) */
    int family;
    char connected;              /* the socket has a peer: datagrams go there */
    char closing;
    char lost;
    char in_call;                /* in a call of ours into the core (sendto, close, ...) */
} DatagramObject;

static PyTypeObject DatagramType;

/* Set by configure(): address(family, addr) -> a numeric address, for the
 * host names sendto cannot read. */
static PyObject *datagram_address_helper = NULL;

static PyObject *take_interrupt(CoreObject *self);

/* After a call into the core that may have called a protocol back at once:
 * a KeyboardInterrupt or SystemExit the callback raised comes out of this
 * call too, as it comes out of asyncio's (the loop is stopping already). */
static PyObject *
raise_new_interrupt(CoreObject *core, PyObject *before)
{
    if (core->interrupt != NULL && core->interrupt != before) {
        restore_exception(take_interrupt(core));
        return NULL;
    }
    Py_RETURN_NONE;
}

static PyObject *str_io_made, *str_io_error, *str_io_pause_writing, *str_io_dgram_lost,
    *str_report_callback;
static PyObject *msg_fatal_write;

static void
datagram_let_go(DatagramObject *self)
{
    aios_datagram_t *ptr = self->ptr;
    self->ptr = NULL;
    self->lost = 1;
    if (ptr != NULL)
        aios_datagram_unref(ptr);
    IOCell *cell = self->cell;
    self->cell = NULL;
    cell_forget(cell);
}

/* The library is done with us: out of the loop's set (which may free us). */
static void
datagram_leave_loop(DatagramObject *self)
{
    datagram_let_go(self);
    Py_CLEAR(self->transport);
    Py_CLEAR(self->deliver);
    if (self->core != NULL && self->core->io_objects != NULL &&
        PySet_Discard(self->core->io_objects, (PyObject *)self) < 0)
        PyErr_Clear();
}

/* Calls transport.<name>(arg), reporting what escapes; -1 for an interrupt. */
static int
datagram_call(DatagramObject *self, PyObject *name, PyObject *arg)
{
    if (self->transport == NULL)
        return 0;
    PyObject *r = arg != NULL ? PyObject_CallMethodObjArgs(self->transport, name, arg, NULL)
                              : PyObject_CallMethodObjArgs(self->transport, name, NULL);
    if (r != NULL) {
        Py_DECREF(r);
        return 0;
    }
    PyObject *exc = fetch_exception();
    if (exc == NULL)
        return 0;
    if (is_interrupt(exc)) {
        set_interrupt(self->core, exc);
        return -1;
    }
    restore_exception(exc);
    PyErr_WriteUnraisable(self->transport);
    return 0;
}

/* A protocol callback raised: an interrupt stops the loop; anything else goes
 * to the exception handler (transport._report_callback(exc, name)), as
 * asyncio's handle of _read_ready reports it. */
static void
datagram_callback_failed(DatagramObject *self, const char *name)
{
    PyObject *exc = fetch_exception();
    if (exc == NULL)
        return;
    if (is_interrupt(exc)) {
        set_interrupt(self->core, exc);
        return;
    }
    if (self->transport != NULL) {
        PyObject *where = PyUnicode_FromString(name);
        PyObject *r = where != NULL
            ? PyObject_CallMethodObjArgs(self->transport, str_report_callback, exc, where, NULL)
            : NULL;
        Py_XDECREF(where);
        Py_DECREF(exc);
        if (r != NULL) {
            Py_DECREF(r);
            return;
        }
        exc = fetch_exception();
        if (exc == NULL)
            return;
        if (is_interrupt(exc)) {
            set_interrupt(self->core, exc);
            return;
        }
    }
    restore_exception(exc);
    PyErr_WriteUnraisable((PyObject *)self);
}

static inline int
datagram_live(DatagramObject *self)
{
    return self != NULL && self->core != NULL && !self->core->closed && self->core->loop != NULL;
}

/* -- the protocol table ------------------------------------------------------ */

static void
dg_connection_made(aios_datagram_t *datagram, void *arg)
{
    DatagramObject *self = (DatagramObject *)cell_object(arg);
    if (!datagram_live(self))
        return;
    PyGILState_STATE state = PyGILState_UNLOCKED;
    int how = enter_io(self->core, &state);
    Py_INCREF(self);
    if (self->ptr == NULL && aios_datagram_ref(datagram) == 0)
        self->ptr = datagram;
    datagram_call(self, str_io_made, NULL);
    Py_DECREF(self);
    leave_python(self->core, how, state);
}

static void
dg_datagram_received(aios_datagram_t *datagram, const void *data, size_t length,
                     const void *address, unsigned int address_length, void *arg)
{
    (void)datagram;
    DatagramObject *self = (DatagramObject *)cell_object(arg);
    if (!datagram_live(self))
        return;
    CoreObject *core = self->core;
    PyGILState_STATE state = PyGILState_UNLOCKED;
    int how = enter_io(core, &state);
    Py_INCREF(self);
    if (self->transport != NULL && !self->lost && self->deliver != NULL) {
        /* As socket.recvfrom gives it: None for an unnamed Unix socket. */
        PyObject *bytes = PyBytes_FromStringAndSize((const char *)data, (Py_ssize_t)length);
        PyObject *addr = bytes == NULL ? NULL
            : address_length > 0 ? python_address(address, address_length)
                                 : Py_NewRef(Py_None);
        if (addr != NULL) {
            PyObject *call[3] = {self->deliver, bytes, addr};
            Py_XDECREF(schedule(core, &HandleType, str_call_soon, call, 3, NULL, 0.0, 0));
        }
        if (PyErr_Occurred())
            PyErr_WriteUnraisable((PyObject *)self);
        Py_XDECREF(addr);
        Py_XDECREF(bytes);
    }
    Py_DECREF(self);
    leave_python(core, how, state);
}

/* _deliver(data, addr): a datagram read by the core, to the protocol, unless
 * the endpoint counts as lost since (asyncio's _read_ready reads no more). */
static PyObject *
datagram_deliver(DatagramObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "_deliver(data, addr)");
        return NULL;
    }
    if (self->lost || self->conn_lost > 0 || self->protocol == NULL)
        Py_RETURN_NONE;
    PyObject *r;
    if (self->datagram_received != NULL) {
        PyObject *method = Py_NewRef(self->datagram_received);
        r = PyObject_Vectorcall(method, args, 2, NULL);
        Py_DECREF(method);
    }
    else {
        r = PyObject_CallMethod(self->protocol, "datagram_received", "OO", args[0], args[1]);
    }
    if (r == NULL) {
        PyObject *exc = fetch_exception();
        if (exc != NULL && is_interrupt(exc)) {
            restore_exception(exc);
            return NULL;
        }
        restore_exception(exc);
        datagram_callback_failed(self, "datagram_received");
        if (self->core->interrupt != NULL) {
            /* The report raised an interrupt: it is this call's. */
            restore_exception(take_interrupt(self->core));
            return NULL;
        }
        Py_RETURN_NONE;
    }
    Py_DECREF(r);
    Py_RETURN_NONE;
}

/* error_received, connection_lost: the error's address (borrowed for the
 * call) or None, for _errors.exception_from_error. */
static void
dg_with_error(void *arg, aios_error_t *error, PyObject *name, int lost)
{
    DatagramObject *self = (DatagramObject *)cell_object(arg);
    if (self == NULL)
        return;
    if (!datagram_live(self)) {
        /* The loop closes: no callback, as asyncio's close() calls none
         * (the loop's io_objects go after it). */
        if (lost)
            datagram_let_go(self);
        return;
    }
    CoreObject *core = self->core;
    PyGILState_STATE state = PyGILState_UNLOCKED;
    int how = enter_io(core, &state);
    Py_INCREF(self);
    if (lost)
        self->lost = 1;
    PyObject *address = error != NULL ? PyLong_FromVoidPtr(error) : Py_NewRef(Py_None);
    if (address == NULL) {
        PyErr_Clear();
    }
    else if (lost) {
        datagram_call(self, name, address);
    }
    else {
        /* error_received: at once inside sendto, as asyncio's; from the
         * core's reads, queued as the datagrams are. */
        PyObject *r = PyObject_CallMethodObjArgs(self->transport, name, address,
                                                 self->in_call ? Py_False : Py_True, NULL);
        if (r == NULL)
            datagram_callback_failed(self, "error_received");
        Py_XDECREF(r);
    }
    Py_XDECREF(address);
    if (lost)
        datagram_leave_loop(self);
    Py_DECREF(self);
    leave_python(core, how, state);
}

static void
dg_error_received(aios_datagram_t *datagram, aios_error_t *error, void *arg)
{
    (void)datagram;
    dg_with_error(arg, error, str_io_error, 0);
}

static void
dg_connection_lost(aios_datagram_t *datagram, aios_error_t *error, void *arg)
{
    (void)datagram;
    dg_with_error(arg, error, str_io_dgram_lost, 1);
}

static void
dg_flow(void *arg, int paused)
{
    DatagramObject *self = (DatagramObject *)cell_object(arg);
    if (!datagram_live(self))
        return;
    PyGILState_STATE state = PyGILState_UNLOCKED;
    int how = enter_io(self->core, &state);
    Py_INCREF(self);
    PyObject *flag = PyBool_FromLong(paused);
    datagram_call(self, str_io_pause_writing, flag);
    Py_DECREF(flag);
    Py_DECREF(self);
    leave_python(self->core, how, state);
}

static void
dg_pause_writing(aios_datagram_t *datagram, void *arg)
{
    (void)datagram;
    dg_flow(arg, 1);
}

static void
dg_resume_writing(aios_datagram_t *datagram, void *arg)
{
    (void)datagram;
    dg_flow(arg, 0);
}

/* -- methods ------------------------------------------------------------------- */

/* Datagram(core, family, connected, address) */
static PyObject *
datagram_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"core", "family", "connected", "address", NULL};
    PyObject *core, *address = Py_None;
    int family, connected;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!ip|O:Datagram", names, &CoreType, &core,
                                     &family, &connected, &address))
        return NULL;
    DatagramObject *self = PyObject_GC_New(DatagramObject, type);
    if (self == NULL)
        return NULL;
    self->core = (CoreObject *)Py_NewRef(core);
    self->cell = NULL;
    self->ptr = NULL;
    self->transport = self->protocol = self->datagram_received = NULL;
    self->address = address != Py_None ? Py_NewRef(address) : NULL;
    self->weakreflist = NULL;
    self->deliver = NULL;
    self->conn_lost = 0;
    self->family = family;
    self->connected = (char)connected;
    self->closing = self->lost = self->in_call = 0;
    PyObject_GC_Track(self);
    self->deliver = PyObject_GetAttrString((PyObject *)self, "_deliver");
    if (self->deliver == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* fill(table_address): the callbacks, the argument and its destructor in
 * the aios_datagram_protocol_t there (its size already set); the loop holds
 * the Datagram from now on. */
static PyObject *
datagram_fill(DatagramObject *self, PyObject *arg)
{
    aios_datagram_protocol_t *table = table_at(arg);
    if (table == NULL)
        return NULL;
    if (self->cell != NULL || self->lost) {
        PyErr_SetString(PyExc_RuntimeError, "fill: the endpoint was made already");
        return NULL;
    }
    IOCell *cell = io_object_cell(self->core, (PyObject *)self);
    if (cell == NULL)
        return NULL;
    self->cell = cell;
    table->arg = cell;
    table->connection_made = dg_connection_made;
    table->datagram_received = dg_datagram_received;
    table->error_received = dg_error_received;
    table->connection_lost = dg_connection_lost;
    table->pause_writing = dg_pause_writing;
    table->resume_writing = dg_resume_writing;
    table->destroy = cell_unref;
    Py_RETURN_NONE;
}

/* abandon(): the call that was to take the table failed, or its future did:
 * the library keeps nothing of ours (`refused` when it failed at once, and
 * its share of the cell is ours to drop). */
static PyObject *
datagram_abandon(DatagramObject *self, PyObject *refused)
{
    int at_once = PyObject_IsTrue(refused);
    if (at_once < 0)
        return NULL;
    if (at_once && self->cell != NULL)
        cell_unref(self->cell);
    Py_INCREF(self);
    datagram_leave_loop(self);
    Py_DECREF(self);
    Py_RETURN_NONE;
}

static PyObject *
datagram_set_protocol(DatagramObject *self, PyObject *protocol)
{
    Py_CLEAR(self->datagram_received);
    Py_XSETREF(self->protocol, Py_NewRef(protocol));
    self->datagram_received = PyObject_GetAttrString(protocol, "datagram_received");
    if (self->datagram_received == NULL)
        PyErr_Clear();          /* looked up again, to raise, when one comes */
    Py_RETURN_NONE;
}

/* A sockaddr for `addr`: 0 when made, 1 when the address is not one read
 * here (a host name, a bad form: the helper deals with it), -1 with an
 * exception. */
static int
datagram_sockaddr(int family, PyObject *addr, struct sockaddr_storage *out, socklen_t *length)
{
    memset(out, 0, sizeof *out);
    if (family == AF_UNIX) {
        PyObject *path;
        if (PyUnicode_Check(addr)) {
            path = PyUnicode_EncodeFSDefault(addr);
            if (path == NULL)
                return -1;
        }
        else if (PyBytes_Check(addr)) {
            path = Py_NewRef(addr);
        }
        else {
            return 1;
        }
        struct sockaddr_un *un = (struct sockaddr_un *)out;
        Py_ssize_t n = PyBytes_GET_SIZE(path);
        int abstract = n > 0 && PyBytes_AS_STRING(path)[0] == '\0';
        if (abstract ? (size_t)n > sizeof un->sun_path : (size_t)n >= sizeof un->sun_path) {
            Py_DECREF(path);
            PyErr_SetString(PyExc_OSError, "AF_UNIX path too long");
            return -1;
        }
        un->sun_family = AF_UNIX;
        memcpy(un->sun_path, PyBytes_AS_STRING(path), (size_t)n);
        Py_DECREF(path);
        *length = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + (size_t)n);
        return 0;
    }
    if (family != AF_INET && family != AF_INET6)
        return 1;
    if (!PyTuple_Check(addr))
        return 1;
    Py_ssize_t size = PyTuple_GET_SIZE(addr);
    if (size < 2 || size > (family == AF_INET ? 2 : 4))
        return 1;
    PyObject *host = PyTuple_GET_ITEM(addr, 0), *port_object = PyTuple_GET_ITEM(addr, 1);
    if (!PyUnicode_Check(host) || !PyLong_Check(port_object))
        return 1;
    long port = PyLong_AsLong(port_object);
    if (port == -1 && PyErr_Occurred())
        return -1;
    if (port < 0 || port > 0xFFFF) {
        PyErr_SetString(PyExc_OverflowError, "sendto(): port must be 0-65535.");
        return -1;
    }
    const char *name = PyUnicode_AsUTF8(host);
    if (name == NULL)
        return -1;
    if (family == AF_INET) {
        struct sockaddr_in *in = (struct sockaddr_in *)out;
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        if (name[0] == '\0')
            in->sin_addr.s_addr = htonl(INADDR_ANY);
        else if (strcmp(name, "<broadcast>") == 0)
            in->sin_addr.s_addr = htonl(INADDR_BROADCAST);
        else if (inet_pton(AF_INET, name, &in->sin_addr) != 1)
            return 1;
        *length = sizeof *in;
        return 0;
    }
    unsigned long flowinfo = 0, scope_id = 0;
    if (size > 2) {
        flowinfo = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(addr, 2));
        if (flowinfo == (unsigned long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 1;
        }
        if (flowinfo > 0xfffff) {
            PyErr_SetString(PyExc_OverflowError, "sendto(): flowinfo must be 0-1048575.");
            return -1;
        }
    }
    if (size > 3) {
        scope_id = PyLong_AsUnsignedLong(PyTuple_GET_ITEM(addr, 3));
        if (scope_id == (unsigned long)-1 && PyErr_Occurred()) {
            PyErr_Clear();
            return 1;
        }
    }
    /* Numeric only (a scope as "%eth0" included): no lookup here. */
    struct addrinfo hints, *found = NULL;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_INET6;
    hints.ai_socktype = SOCK_DGRAM;
    hints.ai_flags = AI_NUMERICHOST;
    if (name[0] == '\0' || getaddrinfo(name, NULL, &hints, &found) != 0 || found == NULL)
        return 1;
    memcpy(out, found->ai_addr, found->ai_addrlen);
    freeaddrinfo(found);
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)out;
    in6->sin6_port = htons((uint16_t)port);
    in6->sin6_flowinfo = htonl((uint32_t)flowinfo);
    if (size > 3 || in6->sin6_scope_id == 0)
        in6->sin6_scope_id = (uint32_t)scope_id;
    *length = sizeof *in6;
    return 0;
}

/* A sendto failed before reaching the socket: asyncio's routing of what
 * socket.sendto raised (OSError: error_received; the rest: the transport's
 * fatal error). NULL for an interrupt, else None. */
static PyObject *
datagram_send_failed(DatagramObject *self)
{
    PyObject *exc = fetch_exception();
    if (exc == NULL)
        Py_RETURN_NONE;
    if (is_interrupt(exc) || self->transport == NULL) {
        restore_exception(exc);
        return NULL;
    }
    PyObject *r;
    if (PyErr_GivenExceptionMatches(exc, PyExc_OSError)) {
        r = self->protocol != NULL
            ? PyObject_CallMethod(self->protocol, "error_received", "O", exc)
            : Py_NewRef(Py_None);
        if (r == NULL)
            datagram_callback_failed(self, "error_received");
    }
    else {
        r = PyObject_CallMethodObjArgs(self->transport, str_fatal_error, exc, msg_fatal_write, NULL);
    }
    Py_DECREF(exc);
    if (r == NULL)
        return NULL;
    Py_DECREF(r);
    Py_RETURN_NONE;
}

/* transport.sendto(data, addr=None): asyncio's _SelectorDatagramTransport.sendto. */
static PyObject *
datagram_sendto(DatagramObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *data = NULL, *addr = Py_None;
    Py_ssize_t nkw = kwnames != NULL ? PyTuple_GET_SIZE(kwnames) : 0;
    if (nargs + nkw < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "sendto() takes data and an optional addr");
        return NULL;
    }
    if (nargs >= 1)
        data = args[0];
    if (nargs == 2)
        addr = args[1];
    for (Py_ssize_t i = 0; i < nkw; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        if (PyUnicode_CompareWithASCIIString(key, "addr") == 0 && nargs < 2)
            addr = args[nargs + i];
        else if (PyUnicode_CompareWithASCIIString(key, "data") == 0 && nargs < 1)
            data = args[nargs + i];
        else {
            PyErr_Format(PyExc_TypeError, "sendto() got an unexpected keyword argument '%U'", key);
            return NULL;
        }
    }
    if (data == NULL) {
        PyErr_SetString(PyExc_TypeError, "sendto() missing required argument 'data'");
        return NULL;
    }
    if (!PyBytes_Check(data) && !PyByteArray_Check(data) && !PyMemoryView_Check(data)) {
        PyErr_Format(PyExc_TypeError, "data argument must be a bytes-like object, not '%.200s'",
                     Py_TYPE(data)->tp_name);
        return NULL;
    }
    if (self->address != NULL) {
        if (addr != Py_None) {
            int same = PyObject_RichCompareBool(addr, self->address, Py_EQ);
            if (same < 0)
                return NULL;
            if (!same)
                return PyErr_Format(PyExc_ValueError, "Invalid address: must be None or %S",
                                    self->address);
        }
        addr = self->address;
        if (self->conn_lost > 0) {
            if (self->conn_lost >= CONNLOST_WRITES_WARN && connlost_warning != NULL) {
                PyObject *r = PyObject_CallFunction(connlost_warning, "s",
                                                    "socket.send() raised exception.");
                if (r == NULL)
                    return NULL;
                Py_DECREF(r);
            }
            self->conn_lost++;
            Py_RETURN_NONE;
        }
    }
    if (self->ptr == NULL || self->lost)
        Py_RETURN_NONE;         /* closed: the datagram is dropped */
    struct sockaddr_storage storage;
    socklen_t length = 0;
    const void *target = NULL;
    if (!self->connected) {
        int r = datagram_sockaddr(self->family, addr, &storage, &length);
        if (r == 1 && datagram_address_helper != NULL) {
            /* Resolved as socket.sendto resolves it (or its exception). */
            PyObject *numeric = PyObject_CallFunction(datagram_address_helper, "iO", self->family,
                                                      addr);
            r = numeric == NULL ? -1 : datagram_sockaddr(self->family, numeric, &storage, &length);
            if (r == 1)
                PyErr_Format(PyExc_TypeError, "sendto(): bad address %R", numeric);
            Py_XDECREF(numeric);
            if (r == 1)
                r = -1;
        }
        if (r != 0)
            return datagram_send_failed(self);
        target = &storage;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    Py_INCREF(self);
    PyObject *before = self->core->interrupt;
    self->in_call = 1;
    int status = aios_datagram_sendto(self->ptr, view.buf, (size_t)view.len, target,
                                      (unsigned int)length);
    self->in_call = 0;
    PyBuffer_Release(&view);
    PyObject *result;
    if (status < 0) {
        raise_status(status);
        result = datagram_send_failed(self);
    }
    else {
        result = raise_new_interrupt(self->core, before);
    }
    Py_DECREF(self);
    return result;
}

static PyObject *
datagram_close(DatagramObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing || self->ptr == NULL || self->lost) {
        self->closing = 1;
        Py_RETURN_NONE;
    }
    self->closing = 1;
    /* asyncio counts the endpoint as lost at once when nothing is buffered. */
    if (aios_datagram_get_write_buffer_size(self->ptr) == 0)
        self->conn_lost++;
    int status = aios_datagram_close(self->ptr);
    if (status < 0)
        return raise_status(status);
    Py_RETURN_NONE;
}

/* asyncio's _force_close: a no-op once the endpoint counts as lost. */
static PyObject *
datagram_abort(DatagramObject *self, PyObject *Py_UNUSED(ignored))
{
    self->closing = 1;
    if (self->ptr == NULL || self->lost || self->conn_lost > 0)
        Py_RETURN_NONE;
    self->conn_lost = 1;
    int status = aios_datagram_abort(self->ptr);
    if (status < 0)
        return raise_status(status);
    Py_RETURN_NONE;
}

static PyObject *
datagram_is_closing(DatagramObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing || self->lost || self->ptr == NULL)
        Py_RETURN_TRUE;
    int r = aios_datagram_is_closing(self->ptr);
    if (r < 0)
        return raise_status(r);
    return PyBool_FromLong(r);
}

static PyObject *
datagram_get_write_buffer_size(DatagramObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->ptr == NULL || self->lost)
        return PyLong_FromLong(0);
    long long size = aios_datagram_get_write_buffer_size(self->ptr);
    if (size < 0)
        return raise_status((int)size);
    return PyLong_FromLongLong(size);
}

static PyObject *
datagram_set_write_buffer_limits(DatagramObject *self, PyObject *args)
{
    long long high, low;
    if (!PyArg_ParseTuple(args, "LL:set_write_buffer_limits", &high, &low))
        return NULL;
    if (self->ptr == NULL || self->lost)
        Py_RETURN_NONE;
    Py_INCREF(self);
    PyObject *before = self->core->interrupt;
    self->in_call = 1;
    int status = aios_datagram_set_write_buffer_limits(self->ptr, high, low);
    self->in_call = 0;
    PyObject *result = status < 0 ? raise_status(status) : raise_new_interrupt(self->core, before);
    Py_DECREF(self);
    return result;
}

static PyObject *
datagram_fileno(DatagramObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->ptr == NULL || self->lost)
        return PyLong_FromLong(-1);
    int fd = aios_datagram_get_fd(self->ptr);
    return PyLong_FromLong(fd < 0 ? -1 : fd);
}

static int
datagram_traverse(DatagramObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->core);
    Py_VISIT(self->transport);
    Py_VISIT(self->protocol);
    Py_VISIT(self->datagram_received);
    Py_VISIT(self->address);
    Py_VISIT(self->deliver);
    return 0;
}

static int
datagram_clear(DatagramObject *self)
{
    Py_CLEAR(self->transport);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->datagram_received);
    Py_CLEAR(self->address);
    Py_CLEAR(self->deliver);
    return 0;
}

static void
datagram_dealloc(DatagramObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    datagram_let_go(self);
    datagram_clear(self);
    Py_CLEAR(self->core);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

static PyObject *
datagram_get_lost(DatagramObject *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->lost);
}

static PyMethodDef datagram_methods[] = {
    {"fill", (PyCFunction)datagram_fill, METH_O,
     "fill(table_address): the protocol table's callbacks, argument and destructor."},
    {"abandon", (PyCFunction)datagram_abandon, METH_O,
     "abandon(refused): the library keeps nothing of ours."},
    {"set_protocol", (PyCFunction)datagram_set_protocol, METH_O, NULL},
    {"sendto", (PyCFunction)(void (*)(void))datagram_sendto, METH_FASTCALL | METH_KEYWORDS,
     "transport.sendto(data, addr=None)"},
    {"_deliver", (PyCFunction)(void (*)(void))datagram_deliver, METH_FASTCALL,
     "_deliver(data, addr): a datagram the core read, to the protocol."},
    {"close", (PyCFunction)datagram_close, METH_NOARGS, NULL},
    {"abort", (PyCFunction)datagram_abort, METH_NOARGS, NULL},
    {"is_closing", (PyCFunction)datagram_is_closing, METH_NOARGS, NULL},
    {"get_write_buffer_size", (PyCFunction)datagram_get_write_buffer_size, METH_NOARGS, NULL},
    {"set_write_buffer_limits", (PyCFunction)datagram_set_write_buffer_limits, METH_VARARGS,
     "set_write_buffer_limits(high, low)"},
    {"fileno", (PyCFunction)datagram_fileno, METH_NOARGS, "The core's socket's fd, or -1."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef datagram_getset[] = {
    {"transport", (getter)channel_get_obj, (setter)channel_set_obj, NULL,
     (void *)offsetof(DatagramObject, transport)},
    {"protocol", (getter)channel_get_obj, NULL, NULL, (void *)offsetof(DatagramObject, protocol)},
    {"lost", (getter)datagram_get_lost, NULL, NULL, NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject DatagramType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "aioswift._native.Datagram",
    .tp_doc = "Datagram(core, family, connected, address): the C half of a datagram transport.",
    .tp_basicsize = sizeof(DatagramObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = datagram_new,
    .tp_dealloc = (destructor)datagram_dealloc,
    .tp_traverse = (traverseproc)datagram_traverse,
    .tp_clear = (inquiry)datagram_clear,
    .tp_weaklistoffset = offsetof(DatagramObject, weakreflist),
    .tp_methods = datagram_methods,
    .tp_getset = datagram_getset,
};

static int
dgram_module_init(void)
{
    if (PyType_Ready(&DatagramType) < 0)
        return -1;
    str_io_made = PyUnicode_InternFromString("_io_made");
    str_io_error = PyUnicode_InternFromString("_io_error");
    str_io_pause_writing = PyUnicode_InternFromString("_io_pause_writing");
    str_io_dgram_lost = PyUnicode_InternFromString("_io_lost");
    str_report_callback = PyUnicode_InternFromString("_report_callback");
    msg_fatal_write = PyUnicode_FromString("Fatal write error on datagram transport");
    if (!str_io_made || !str_io_error || !str_io_pause_writing || !str_io_dgram_lost ||
        !str_report_callback || !msg_fatal_write)
        return -1;
    return 0;
}
