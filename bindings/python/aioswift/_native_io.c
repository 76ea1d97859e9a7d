/*
 * Network I/O of aioswift._native: the per-packet side of stream transports.
 * Part of _native.c's translation unit (it is #included there, after the
 * Core), so it uses the Core's helpers directly.
 *
 * Every connection of the binding has a batched protocol (aios_protocol_t
 * with `batched` set): the core calls nothing of ours per event, it records
 * plain-integer events, and tells us once per take that some wait
 * (aios_loop_set_io_events_callback). io_ready then takes a whole
 * iteration's events in one call and dispatches them:
 *
 *   AIOS_IO_DATA             here, in C: one bytes object per event, copied
 *                            from the arena (valid until the next take), to
 *                            protocol.data_received, or into the buffers of a
 *                            BufferedProtocol (get_buffer / buffer_updated);
 *   AIOS_IO_DATA_BUFFER      the same with no copy: a large read went into a
 *                            bytes object io_buffer made for it;
 *   AIOS_IO_CONNECTED        loop._io_connected(channel, server_key), Python;
 *   AIOS_IO_EOF, _LOST, ...  the transport's _io_eof(), _io_lost(status),
 *                            _maybe_pause_protocol(), _io_resume_writing().
 *
 * A Channel is the C half of one Python transport (aioswift._transport):
 * the core's transport (one reference of ours from CONNECTED until the LOST
 * event is handled), the protocol and its bound methods, and the flags the
 * hot path reads. write and writelines are Channel methods set on the
 * transport object, so a write runs no Python frame of ours.
 *
 * Tokens. Each connection's protocol carries a token naming a slot of the
 * Core's table: (generation << 32) | (index + 1). A slot holds its Channel
 * until the connection's LOST event is handled (or the connection never
 * came); freeing it bumps the generation, so an event that names a freed
 * slot (a connection given up while it was being made, which the core then
 * aborts by itself) is ignored. A server's connections get their slot from
 * server_factory, which runs inside the core without Python: the slot holds
 * the server's key until CONNECTED makes its Channel.
 *
 * Ordering. asyncio reads a socket once per iteration and calls
 * data_received from that read's callback; the core reads a stream once per
 * take. Bytes already taken for a transport whose reading was paused (by
 * another callback of the same batch, or while a BufferedProtocol's buffers
 * took part of them) wait in the channel's `pending` list, with a None for
 * an EOF that came after them, and are delivered after resume_reading.
 * pause_writing is called at once by the write that crosses the high-water
 * mark (asyncio's _maybe_pause_protocol; StreamWriter.drain relies on it),
 * so the core's AIOS_IO_PAUSE_WRITING record finds the protocol paused.
 */

#include <netdb.h>
#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>

typedef struct ChannelObject ChannelObject;

struct ChannelObject {
    PyObject_HEAD
    CoreObject *core;            /* strong */
    aios_transport_t *ptr;       /* one reference, from CONNECTED until LOST is handled */
    PyObject *transport;         /* the Python transport */
    PyObject *protocol;
    PyObject *data_received;     /* protocol.data_received (Protocol), or NULL */
    PyObject *get_buffer;        /* BufferedProtocol's, or NULL */
    PyObject *buffer_updated;
    PyObject *pending;           /* list of bytes and None (EOF), or NULL */
    PyObject *context;           /* the Python side's, while connecting */
    PyObject *weakreflist;
    unsigned long long token;    /* 0: not in the table */
    long long high_water;        /* the transport's, for the write path */
    long long buffered_at_most;  /* a bound on the core's write buffer, or -1 (channel_after_write) */
    long conn_lost;              /* asyncio's _conn_lost count of writes dropped */
    char buffered;               /* the protocol is a BufferedProtocol */
    char closing;                /* close() or abort() was called here */
    char lost;                   /* LOST was handled (or the loop closed) */
    char reading_paused;
    char dropping;               /* closed with nothing to send, or aborted: writes are dropped */
    char close_deferred;         /* close() while write-paused: the core closes after resume_writing */
    char write_paused;           /* asyncio's _protocol_paused */
    char flush_scheduled;
    char eof_written;            /* write_eof() was called */
    char pipe;                   /* a pipe transport: asyncio's write pipe drops writes after
                                    close or write_eof instead of raising */
};

static PyTypeObject ChannelType;

/* Set by configure(): asyncio.BufferedProtocol, asyncio's logger warning
 * (for writes after the connection was lost). */
static PyObject *buffered_protocol_type = NULL;
static PyObject *connlost_warning = NULL;

static PyObject *str_io_connected, *str_io_eof, *str_io_lost, *str_io_closing, *str_maybe_pause,
    *str_io_resume_writing, *str_fatal_error, *str_protocol_failed, *str_call_soon_attr,
    *str_flush_pending;
static PyObject *msg_data_received, *msg_get_buffer, *msg_buffer_updated;

/* asyncio's constants.LOG_THRESHOLD_FOR_CONNLOST_WRITES */
#define CONNLOST_WRITES_WARN 5
/* Most pieces one writelines call hands the core at once. */
#define WRITEV_STACK 16

/* ------------------------------------------------------------------------ */
/* The token table                                                           */

static inline unsigned long long
slot_token(CoreObject *core, Py_ssize_t index)
{
    return ((unsigned long long)core->io_slots[index].generation << 32) |
           (unsigned long long)(index + 1);
}

/* A slot, or -1 when the token names none (freed, or never made). */
static inline Py_ssize_t
slot_index(CoreObject *core, unsigned long long token)
{
    unsigned long long low = token & 0xffffffffULL;
    if (low == 0 || (Py_ssize_t)(low - 1) >= core->io_capacity)
        return -1;
    Py_ssize_t index = (Py_ssize_t)(low - 1);
    IOSlot *slot = &core->io_slots[index];
    if (!slot->used || slot->generation != (unsigned int)(token >> 32))
        return -1;
    return index;
}

/* A free slot (C memory only: the server factory calls this without the
 * GIL, on the loop's thread, which is the only one that touches the
 * table). -1 when out of memory. */
static Py_ssize_t
slot_alloc(CoreObject *core)
{
    if (core->io_nfree == 0) {
        Py_ssize_t capacity = core->io_capacity ? core->io_capacity * 2 : 64;
        IOSlot *slots = realloc(core->io_slots, (size_t)capacity * sizeof(IOSlot));
        if (slots == NULL)
            return -1;
        Py_ssize_t *free_list = realloc(core->io_free, (size_t)capacity * sizeof(Py_ssize_t));
        if (free_list == NULL) {
            core->io_slots = slots;
            return -1;
        }
        memset(slots + core->io_capacity, 0,
               (size_t)(capacity - core->io_capacity) * sizeof(IOSlot));
        /* New slots are taken lowest first. */
        for (Py_ssize_t i = capacity - 1; i >= core->io_capacity; i--)
            free_list[core->io_nfree++] = i;
        core->io_slots = slots;
        core->io_free = free_list;
        core->io_capacity = capacity;
    }
    Py_ssize_t index = core->io_free[--core->io_nfree];
    IOSlot *slot = &core->io_slots[index];
    slot->used = 1;
    slot->channel = NULL;
    slot->server = 0;
    core->io_used++;
    return index;
}

/* Lets go of a slot; its token names nothing from now on. Needs the GIL
 * when the slot holds a channel. */
static void
slot_free(CoreObject *core, Py_ssize_t index)
{
    IOSlot *slot = &core->io_slots[index];
    if (!slot->used)
        return;
    PyObject *channel = slot->channel;
    slot->channel = NULL;
    slot->server = 0;
    slot->used = 0;
    slot->generation++;
    core->io_free[core->io_nfree++] = index;
    core->io_used--;
    if (channel != NULL) {
        ((ChannelObject *)channel)->token = 0;
        Py_DECREF(channel);
    }
}

/* ------------------------------------------------------------------------ */
/* Channel                                                                    */

static void
channel_drop_protocol(ChannelObject *self)
{
    Py_CLEAR(self->data_received);
    Py_CLEAR(self->get_buffer);
    Py_CLEAR(self->buffer_updated);
}

/* The protocol data goes to from now on, and its bound methods. A method
 * the protocol lacks is looked up again when data comes, to raise there. */
static int
channel_set_protocol_object(ChannelObject *self, PyObject *protocol)
{
    int buffered = 0;
    if (buffered_protocol_type != NULL) {
        buffered = PyObject_IsInstance(protocol, buffered_protocol_type);
        if (buffered < 0)
            return -1;
    }
    channel_drop_protocol(self);
    Py_INCREF(protocol);
    Py_XSETREF(self->protocol, protocol);
    self->buffered = (char)buffered;
    if (buffered) {
        self->get_buffer = PyObject_GetAttrString(protocol, "get_buffer");
        if (self->get_buffer == NULL)
            PyErr_Clear();
        self->buffer_updated = PyObject_GetAttrString(protocol, "buffer_updated");
        if (self->buffer_updated == NULL)
            PyErr_Clear();
    }
    else {
        self->data_received = PyObject_GetAttrString(protocol, "data_received");
        if (self->data_received == NULL)
            PyErr_Clear();
    }
    return 0;
}

/* A new channel in slot `index` (already allocated), or NULL. */
static ChannelObject *
channel_make(CoreObject *core, Py_ssize_t index)
{
    ChannelObject *self = PyObject_GC_New(ChannelObject, &ChannelType);
    if (self == NULL)
        return NULL;
    Py_INCREF(core);
    self->core = core;
    self->ptr = NULL;
    self->transport = self->protocol = NULL;
    self->data_received = self->get_buffer = self->buffer_updated = NULL;
    self->pending = self->context = NULL;
    self->weakreflist = NULL;
    self->token = index >= 0 ? slot_token(core, index) : 0;
    self->high_water = 64 * 1024;
    self->buffered_at_most = -1;
    self->conn_lost = 0;
    self->buffered = self->closing = self->lost = 0;
    self->reading_paused = self->write_paused = self->flush_scheduled = self->dropping = 0;
    self->close_deferred = self->eof_written = 0;
    self->pipe = 0;
    PyObject_GC_Track(self);
    if (index >= 0) {
        Py_INCREF(self);
        core->io_slots[index].channel = (PyObject *)self;
    }
    return self;
}

/* Channel(core): a channel with a token of its own, for a connection about
 * to be made (its protocol table carries channel.token). */
static PyObject *
channel_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"core", NULL};
    PyObject *core;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "O!:Channel", names, &CoreType, &core))
        return NULL;
    (void)type;
    if (!core_usable((CoreObject *)core))
        return NULL;
    /* The table belongs to the loop's thread (server_factory uses it there
     * without the GIL). */
    if (((CoreObject *)core)->owner_thread != PyThread_get_thread_ident())
        return raise_status(AIOS_EWRONGTHREAD);
    Py_ssize_t index = slot_alloc((CoreObject *)core);
    if (index < 0)
        return PyErr_NoMemory();
    ChannelObject *self = channel_make((CoreObject *)core, index);
    if (self == NULL)
        slot_free((CoreObject *)core, index);
    return (PyObject *)self;
}

/* connection_lost was delivered: the channel lets go of the Python side
 * (the transport and its protocol refer to each other through it, and
 * asyncio frees them by reference counting once the connection is lost). */
static void
channel_detach(ChannelObject *self)
{
    self->closing = 1;
    Py_CLEAR(self->pending);
    Py_CLEAR(self->context);
    channel_drop_protocol(self);
    Py_CLEAR(self->protocol);
    Py_CLEAR(self->transport);
}

/* The core's transport is gone (or never came): no more calls into it. */
static void
channel_let_go(ChannelObject *self)
{
    aios_transport_t *ptr = self->ptr;
    self->lost = 1;
    channel_detach(self);
    if (ptr != NULL) {
        self->ptr = NULL;
        aios_transport_unref(ptr);
    }
}

static int
channel_traverse(ChannelObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->core);
    Py_VISIT(self->transport);
    Py_VISIT(self->protocol);
    Py_VISIT(self->data_received);
    Py_VISIT(self->get_buffer);
    Py_VISIT(self->buffer_updated);
    Py_VISIT(self->pending);
    Py_VISIT(self->context);
    return 0;
}

static int
channel_clear(ChannelObject *self)
{
    Py_CLEAR(self->transport);
    Py_CLEAR(self->protocol);
    channel_drop_protocol(self);
    Py_CLEAR(self->pending);
    Py_CLEAR(self->context);
    return 0;
}

static void
channel_dealloc(ChannelObject *self)
{
    PyObject_GC_UnTrack(self);
    if (self->weakreflist != NULL)
        PyObject_ClearWeakRefs((PyObject *)self);
    /* Not in the table any more (the table holds a reference). */
    if (self->ptr != NULL) {
        aios_transport_unref(self->ptr);
        self->ptr = NULL;
    }
    channel_clear(self);
    Py_CLEAR(self->core);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Reports an exception that a callback of ours let through: an interrupt
 * stops the loop (and returns -1), anything else is unraisable. */
static int
channel_unexpected(ChannelObject *self, PyObject *where)
{
    PyObject *exc = fetch_exception();
    if (exc == NULL)
        return 0;
    if (is_interrupt(exc)) {
        set_interrupt(self->core, exc);
        return -1;
    }
    restore_exception(exc);
    PyErr_WriteUnraisable(where != NULL ? where : (PyObject *)self);
    return 0;
}

/* A protocol callback raised: transport._protocol_failed(exc, message),
 * which is asyncio's _fatal_error for a socket (a read pipe reports it and
 * goes on); an interrupt is the loop's instead. -1 for an interrupt. */
static int
channel_fatal(ChannelObject *self, PyObject *message)
{
    PyObject *exc = fetch_exception();
    if (exc == NULL)
        return 0;
    if (is_interrupt(exc)) {
        set_interrupt(self->core, exc);
        return -1;
    }
    if (self->transport == NULL) {
        Py_DECREF(exc);
        return 0;
    }
    PyObject *r = PyObject_CallMethodObjArgs(self->transport, str_protocol_failed, exc, message,
                                             NULL);
    Py_DECREF(exc);
    if (r == NULL)
        return channel_unexpected(self, self->transport);
    Py_DECREF(r);
    return 0;
}

/* Calls transport.<name>(args...); -1 for an interrupt. */
static int
channel_call(ChannelObject *self, PyObject *name, PyObject *arg)
{
    if (self->transport == NULL)
        return 0;
    PyObject *r = arg != NULL
        ? PyObject_CallMethodObjArgs(self->transport, name, arg, NULL)
        : PyObject_CallMethodObjArgs(self->transport, name, NULL);
    if (r == NULL)
        return channel_unexpected(self, self->transport);
    Py_DECREF(r);
    return 0;
}

static inline int
channel_receiving(ChannelObject *self)
{
    return !self->closing && !self->lost && self->ptr != NULL;
}

static int
channel_stash(ChannelObject *self, PyObject *item, int at_front)
{
    if (self->pending == NULL) {
        self->pending = PyList_New(0);
        if (self->pending == NULL)
            return -1;
    }
    return at_front ? PyList_Insert(self->pending, 0, item) : PyList_Append(self->pending, item);
}

/* Keeps bytes for after resume_reading: `data` when given, else a copy. */
static int
channel_stash_bytes(ChannelObject *self, PyObject *data, const char *base, Py_ssize_t length,
                    int at_front)
{
    PyObject *bytes = data;
    if (bytes == NULL) {
        bytes = PyBytes_FromStringAndSize(base, length);
        if (bytes == NULL)
            return -1;
    }
    else {
        Py_INCREF(bytes);
    }
    int r = channel_stash(self, bytes, at_front);
    Py_DECREF(bytes);
    return r;
}

/* Calls the protocol's method `name` with `arg`: the bound method cached
 * in `method` when there is one (held across the call, which may drop the
 * cache), else a lookup. A new reference, or NULL with an exception. */
static PyObject *
call_protocol(ChannelObject *self, PyObject *method, const char *name, PyObject *arg)
{
    if (method == NULL)
        return PyObject_CallMethod(self->protocol, name, "O", arg);
    Py_INCREF(method);
    PyObject *r = PyObject_CallOneArg(method, arg);
    Py_DECREF(method);
    return r;
}

/* call_protocol for a method whose result is ignored: 0, or what
 * channel_fatal makes of the exception (with `message`). */
static int
notify_protocol(ChannelObject *self, PyObject *method, const char *name, PyObject *arg, PyObject *message)
{
    PyObject *r = call_protocol(self, method, name, arg);
    if (r == NULL)
        return channel_fatal(self, message);
    Py_DECREF(r);
    return 0;
}

/* BufferedProtocol: as much as the protocol's buffers take, round after
 * round; what a pause leaves waits in `pending`. */
static int
deliver_buffered(ChannelObject *self, const char *base, Py_ssize_t length)
{
    Py_ssize_t done = 0;
    while (done < length) {
        if (!channel_receiving(self))
            return 0;                   /* closed meanwhile: asyncio reads no more */
        if (self->reading_paused)
            return channel_stash_bytes(self, NULL, base + done, length - done, 1) < 0
                ? channel_fatal(self, msg_get_buffer) : 0;
        if (!self->buffered) {
            /* set_protocol gave it a plain protocol meanwhile: the rest goes
             * to its data_received. */
            PyObject *rest = PyBytes_FromStringAndSize(base + done, length - done);
            if (rest == NULL)
                return channel_fatal(self, msg_data_received);
            int r = 0;
            if (self->data_received == NULL) {
                PyObject *m = PyObject_GetAttrString(self->protocol, "data_received");
                if (m != NULL) {
                    PyObject *x = PyObject_CallOneArg(m, rest);
                    Py_DECREF(m);
                    Py_XDECREF(x);
                    if (x == NULL)
                        r = channel_fatal(self, msg_data_received);
                }
                else {
                    r = channel_fatal(self, msg_data_received);
                }
            }
            else {
                PyObject *x = PyObject_CallOneArg(self->data_received, rest);
                Py_XDECREF(x);
                if (x == NULL)
                    r = channel_fatal(self, msg_data_received);
            }
            Py_DECREF(rest);
            return r;
        }
        PyObject *method = self->get_buffer;
        PyObject *hint = PyLong_FromSsize_t(length - done);
        if (hint == NULL)
            return channel_fatal(self, msg_get_buffer);
        PyObject *buffer = call_protocol(self, method, "get_buffer", hint);
        Py_DECREF(hint);
        if (buffer == NULL)
            return channel_fatal(self, msg_get_buffer);
        Py_buffer view;
        if (PyObject_GetBuffer(buffer, &view, PyBUF_WRITABLE) < 0) {
            Py_DECREF(buffer);
            return channel_fatal(self, msg_get_buffer);
        }
        if (view.len <= 0) {
            PyBuffer_Release(&view);
            Py_DECREF(buffer);
            PyErr_SetString(PyExc_RuntimeError, "get_buffer() returned an empty buffer");
            return channel_fatal(self, msg_get_buffer);
        }
        Py_ssize_t n = length - done < view.len ? length - done : view.len;
        memcpy(view.buf, base + done, (size_t)n);
        PyBuffer_Release(&view);
        Py_DECREF(buffer);
        done += n;
        PyObject *count = PyLong_FromSsize_t(n);
        if (count == NULL)
            return channel_fatal(self, msg_buffer_updated);
        int rc = notify_protocol(self, self->buffer_updated, "buffer_updated", count, msg_buffer_updated);
        Py_DECREF(count);
        if (rc < 0)
            return rc;
    }
    return 0;
}

/* One read's bytes to the protocol. `data` is a bytes object of them, or
 * NULL (they are at base). -1 for an interrupt. */
static int
deliver(ChannelObject *self, PyObject *data, const char *base, Py_ssize_t length)
{
    if (self->buffered)
        return deliver_buffered(self, base, length);
    PyObject *bytes = data;
    if (bytes == NULL) {
        bytes = PyBytes_FromStringAndSize(base, length);
        if (bytes == NULL)
            return channel_fatal(self, msg_data_received);
    }
    else {
        Py_INCREF(bytes);
    }
    int rc = notify_protocol(self, self->data_received, "data_received", bytes, msg_data_received);
    Py_DECREF(bytes);
    return rc;
}

/* A DATA event (or one kept back). -1 for an interrupt. Inlined in
 * dispatch_event: it is the hot path. */
static inline __attribute__((always_inline)) int
channel_data(ChannelObject *self, PyObject *data, const char *base, Py_ssize_t length)
{
    if (!channel_receiving(self) || self->transport == NULL)
        return 0;
    if (self->reading_paused || (self->pending != NULL && PyList_GET_SIZE(self->pending) > 0)) {
        if (channel_stash_bytes(self, data, base, length, 0) < 0)
            return channel_fatal(self, msg_data_received);
        return 0;
    }
    return deliver(self, data, base, length);
}

static int
channel_eof(ChannelObject *self)
{
    if (!channel_receiving(self))
        return 0;
    if (self->pending != NULL && PyList_GET_SIZE(self->pending) > 0) {
        if (channel_stash(self, Py_None, 0) < 0)
            return channel_unexpected(self, NULL);
        return 0;
    }
    return channel_call(self, str_io_eof, NULL);
}

/* channel._flush_pending(): what waited for resume_reading (call_soon'd by
 * resume_reading), in order, while reading goes on. */
static PyObject *
channel_flush_pending(ChannelObject *self, PyObject *Py_UNUSED(ignored))
{
    self->flush_scheduled = 0;
    Py_INCREF(self);
    while (self->pending != NULL && PyList_GET_SIZE(self->pending) > 0 &&
           channel_receiving(self) && !self->reading_paused) {
        PyObject *item = PyList_GET_ITEM(self->pending, 0);
        Py_INCREF(item);
        if (PyList_SetSlice(self->pending, 0, 1, NULL) < 0) {
            Py_DECREF(item);
            Py_DECREF(self);
            return NULL;
        }
        int r;
        if (item == Py_None)
            r = channel_call(self, str_io_eof, NULL);
        else
            r = deliver(self, item, PyBytes_AS_STRING(item), PyBytes_GET_SIZE(item));
        Py_DECREF(item);
        if (r < 0)
            break;                      /* an interrupt: the loop stops */
    }
    Py_DECREF(self);
    Py_RETURN_NONE;
}

static int
channel_usable_ptr(ChannelObject *self)
{
    return self->ptr != NULL && !self->lost;
}

/* After a write of `written` bytes: asyncio's _maybe_pause_protocol, at
 * once. The core's buffer only grows by what is written and shrinks as it
 * is sent, so the size last read plus what was written since bounds it:
 * while that bound stays at or under the high-water mark the size is not
 * asked for (a call into the core per write saved). -1: not known. */
static int
channel_after_write(ChannelObject *self, size_t written)
{
    if (self->write_paused || self->ptr == NULL) {
        self->buffered_at_most = -1;
        return 0;
    }
    if (self->buffered_at_most >= 0 && written <= (size_t)self->high_water) {
        self->buffered_at_most += (long long)written;
        if (self->buffered_at_most <= self->high_water)
            return 0;
    }
    long long size = aios_transport_get_write_buffer_size(self->ptr);
    self->buffered_at_most = size >= 0 ? size : -1;
    if (size <= self->high_water)
        return 0;
    if (self->transport == NULL)
        return 0;
    PyObject *r = PyObject_CallMethodObjArgs(self->transport, str_maybe_pause, NULL);
    if (r == NULL)
        return -1;
    Py_DECREF(r);
    return 0;
}

/* A write to a connection that is lost: dropped, and counted (asyncio
 * warns from the fifth on). */
static int
channel_dropped_write(ChannelObject *self)
{
    if (self->conn_lost >= CONNLOST_WRITES_WARN && connlost_warning != NULL) {
        PyObject *r = PyObject_CallFunction(
            connlost_warning, "s", self->pipe
                ? "pipe closed by peer or os.write(pipe, data) raised exception."
                : "socket.send() raised exception.");
        if (r == NULL)
            return -1;
        Py_DECREF(r);
    }
    self->conn_lost++;
    return 0;
}

static int
check_bytes_like(PyObject *data)
{
    if (PyBytes_CheckExact(data) || PyByteArray_Check(data) || PyMemoryView_Check(data) ||
        PyBytes_Check(data))
        return 0;
    PyErr_Format(PyExc_TypeError, "data argument must be a bytes-like object, not '%.200s'",
                 Py_TYPE(data)->tp_name);
    return -1;
}

/* transport.write(data): asyncio's checks, then one call into the core. */
/* The error of a write the core refused: after write_eof, or while a
 * sendfile runs (asyncio's messages). */
static PyObject *
write_refused(ChannelObject *self, int status, const char *method)
{
    if (status != AIOS_EINVAL)
        return raise_status(status);
    if (self->eof_written)
        return PyErr_Format(PyExc_RuntimeError, "Cannot call %s() after write_eof()", method);
    return PyErr_Format(PyExc_RuntimeError, "unable to %s; sendfile is in progress", method);
}

static PyObject *
channel_write(ChannelObject *self, PyObject *data)
{
    if (check_bytes_like(data) < 0)
        return NULL;
    if (self->pipe) {
        /* asyncio's write pipe: nothing to write returns first, and after a
         * close or write_eof a write is dropped. */
        Py_ssize_t n = PyObject_Length(data);
        if (n < 0)
            return NULL;
        if (n == 0)
            Py_RETURN_NONE;
        if (self->closing && channel_dropped_write(self) < 0)
            return NULL;
        if (self->closing)
            Py_RETURN_NONE;
    }
    if (!channel_usable_ptr(self) || self->dropping) {
        Py_ssize_t n = PyObject_Length(data);
        if (n < 0)
            return NULL;
        if (n > 0 && channel_dropped_write(self) < 0)
            return NULL;
        Py_RETURN_NONE;
    }
    int status;
    size_t written;
    if (PyBytes_CheckExact(data)) {
        written = (size_t)PyBytes_GET_SIZE(data);
        status = aios_transport_write(self->ptr, PyBytes_AS_STRING(data), written);
    }
    else {
        Py_buffer view;
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
            return NULL;
        written = (size_t)view.len;
        status = aios_transport_write(self->ptr, view.buf, written);
        PyBuffer_Release(&view);
    }
    if (status < 0)
        return write_refused(self, status, "write");
    if (channel_after_write(self, written) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* transport.writelines(list_of_data): the pieces as one write. */
static PyObject *
channel_writelines(ChannelObject *self, PyObject *iterable)
{
    PyObject *seq = PySequence_Fast(iterable, "writelines() argument must be iterable");
    if (seq == NULL)
        return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(seq);
    PyObject **items = PySequence_Fast_ITEMS(seq);
    aios_buf_t stack_bufs[WRITEV_STACK];
    Py_buffer stack_views[WRITEV_STACK];
    aios_buf_t *bufs = stack_bufs;
    Py_buffer *views = stack_views;
    Py_ssize_t got = 0;
    PyObject *result = NULL;
    if (count > WRITEV_STACK) {
        bufs = PyMem_Malloc((size_t)count * sizeof(aios_buf_t));
        views = PyMem_Malloc((size_t)count * sizeof(Py_buffer));
        if (bufs == NULL || views == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }
    size_t total = 0;
    for (; got < count; got++) {
        if (PyObject_GetBuffer(items[got], &views[got], PyBUF_SIMPLE) < 0)
            goto done;
        bufs[got].base = views[got].buf;
        bufs[got].length = (size_t)views[got].len;
        total += (size_t)views[got].len;
    }
    if (self->pipe && total == 0) {
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (!channel_usable_ptr(self) || self->dropping || (self->pipe && self->closing)) {
        if (total > 0 && channel_dropped_write(self) < 0)
            goto done;
        result = Py_NewRef(Py_None);
        goto done;
    }
    if (count == 0) {
        /* asyncio checks write_eof first, even for nothing to write. */
        int status = aios_transport_writev(self->ptr, NULL, 0);
        if (status < 0) {
            write_refused(self, status, "writelines");
            goto done;
        }
        result = Py_NewRef(Py_None);
        goto done;
    }
    int status = aios_transport_writev(self->ptr, bufs, (size_t)count);
    if (status < 0) {
        write_refused(self, status, "writelines");
        goto done;
    }
    for (Py_ssize_t i = 0; i < got; i++)
        PyBuffer_Release(&views[i]);
    got = 0;
    if (channel_after_write(self, total) < 0)
        goto done;
    result = Py_NewRef(Py_None);
done:
    for (Py_ssize_t i = 0; i < got; i++)
        PyBuffer_Release(&views[i]);
    if (bufs != stack_bufs)
        PyMem_Free(bufs);
    if (views != stack_views)
        PyMem_Free(views);
    Py_DECREF(seq);
    return result;
}

static PyObject *
channel_status(int status)
{
    if (status < 0)
        return raise_status(status);
    Py_RETURN_NONE;
}

static PyObject *
channel_write_eof(ChannelObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!channel_usable_ptr(self) || self->closing)
        Py_RETURN_NONE;
    self->eof_written = 1;
    /* A write pipe's write_eof is its close (asyncio's: is_closing from now on). */
    if (self->pipe)
        self->closing = 1;
    return channel_status(aios_transport_write_eof(self->ptr));
}

/* transport.close(): asyncio's: stop reading, send what is buffered, close.
 * Returns whether the buffer was empty (asyncio's _conn_lost then counts
 * the connection as lost at once). */
static PyObject *
channel_close(ChannelObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing || !channel_usable_ptr(self)) {
        self->closing = 1;
        Py_RETURN_FALSE;
    }
    if (aios_transport_is_closing(self->ptr) == 1) {
        /* The core closes it already (an error of the socket): its LOST
         * event says why. */
        self->closing = 1;
        Py_CLEAR(self->pending);
        Py_RETURN_FALSE;
    }
    self->closing = 1;
    Py_CLEAR(self->pending);
    if (self->write_paused) {
        /* asyncio calls resume_writing while the buffer still drains, and
         * what the protocol writes then (an SSL close_notify) goes out
         * before the close; the core would close first. Reading stops now,
         * the close waits for resume_writing. */
        self->close_deferred = 1;
        int status = aios_transport_pause_reading(self->ptr);
        if (status < 0)
            return raise_status(status);
        Py_RETURN_FALSE;
    }
    long long size = aios_transport_get_write_buffer_size(self->ptr);
    int status = aios_transport_close(self->ptr);
    if (status < 0)
        return raise_status(status);
    if (size == 0)
        self->dropping = 1;
    return PyBool_FromLong(size == 0);
}

static PyObject *
channel_abort(ChannelObject *self, PyObject *Py_UNUSED(ignored))
{
    self->closing = 1;
    self->dropping = 1;
    Py_CLEAR(self->pending);
    if (!channel_usable_ptr(self))
        Py_RETURN_NONE;
    return channel_status(aios_transport_abort(self->ptr));
}

/* The core closed a socket's transport by itself, on an error no event
 * has told of yet (a write the socket failed): the transport's _io_closing(status)
 * queues connection_lost now, where asyncio's _fatal_error queues it, and
 * not after the core's LOST event, which a task woken meanwhile (drain's
 * sleep(0)) would run ahead of. -1 with an exception set. */
static int
channel_core_closed(ChannelObject *self)
{
    int error = 0;
    if (self->closing || self->pipe || self->transport == NULL ||
        aios_transport_get_error(self->ptr, &error) < 0 || error == 0)
        return 0;
    self->closing = 1;
    PyObject *code = PyLong_FromLong(error);
    if (code == NULL)
        return -1;
    /* An interrupt it raised is the loop's now (channel_call keeps it). */
    (void)channel_call(self, str_io_closing, code);
    Py_DECREF(code);
    return 0;
}

static PyObject *
channel_is_closing(ChannelObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing || !channel_usable_ptr(self))
        Py_RETURN_TRUE;
    int r = aios_transport_is_closing(self->ptr);
    if (r < 0)
        return raise_status(r);
    if (r == 1 && channel_core_closed(self) < 0)
        return NULL;
    return PyBool_FromLong(r);
}

static PyObject *
channel_is_reading(ChannelObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing || !channel_usable_ptr(self) || self->reading_paused)
        Py_RETURN_FALSE;
    int r = aios_transport_is_reading(self->ptr);
    if (r < 0)
        return raise_status(r);
    return PyBool_FromLong(r);
}

static PyObject *
channel_pause_reading(ChannelObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing || self->reading_paused || !channel_usable_ptr(self))
        Py_RETURN_FALSE;
    self->reading_paused = 1;
    int status = aios_transport_pause_reading(self->ptr);
    if (status < 0)
        return raise_status(status);
    Py_RETURN_TRUE;
}

static PyObject *
channel_resume_reading(ChannelObject *self, PyObject *Py_UNUSED(ignored))
{
    if (self->closing || !self->reading_paused || !channel_usable_ptr(self))
        Py_RETURN_FALSE;
    self->reading_paused = 0;
    int status = aios_transport_resume_reading(self->ptr);
    if (status < 0)
        return raise_status(status);
    if (self->pending != NULL && PyList_GET_SIZE(self->pending) > 0 && !self->flush_scheduled &&
        self->core->owner != NULL) {
        /* As asyncio's resume_reading, what was read comes on a later
         * iteration, not inside this call. */
        PyObject *flush = PyObject_GetAttr((PyObject *)self, str_flush_pending);
        if (flush == NULL)
            return NULL;
        PyObject *r = PyObject_CallMethodObjArgs(self->core->owner, str_call_soon_attr, flush, NULL);
        Py_DECREF(flush);
        if (r == NULL)
            return NULL;
        Py_DECREF(r);
        self->flush_scheduled = 1;
    }
    Py_RETURN_TRUE;
}

static PyObject *
channel_get_write_buffer_size(ChannelObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!channel_usable_ptr(self))
        return PyLong_FromLong(0);
    long long size = aios_transport_get_write_buffer_size(self->ptr);
    if (size < 0)
        return raise_status((int)size);
    return PyLong_FromLongLong(size);
}

/* set_write_buffer_limits(high, low): asyncio's checks are the caller's;
 * -1 is the default. */
static PyObject *
channel_set_write_buffer_limits(ChannelObject *self, PyObject *args)
{
    long long high, low;
    if (!PyArg_ParseTuple(args, "LL:set_write_buffer_limits", &high, &low))
        return NULL;
    if (high >= 0)
        self->high_water = high;
    if (!channel_usable_ptr(self))
        Py_RETURN_NONE;
    int status = aios_transport_set_write_buffer_limits(self->ptr, high, low);
    if (status < 0)
        return raise_status(status);
    size_t lo = 0, hi = 0;
    if (aios_transport_get_write_buffer_limits(self->ptr, &lo, &hi) == 0)
        self->high_water = (long long)hi;
    self->buffered_at_most = -1;         /* the new mark is checked now */
    if (channel_after_write(self, 0) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
channel_get_write_buffer_limits(ChannelObject *self, PyObject *Py_UNUSED(ignored))
{
    size_t low = 0, high = 0;
    if (!channel_usable_ptr(self))
        return Py_BuildValue("(LL)", self->high_water / 4, self->high_water);
    int status = aios_transport_get_write_buffer_limits(self->ptr, &low, &high);
    if (status < 0)
        return raise_status(status);
    return Py_BuildValue("(nn)", (Py_ssize_t)low, (Py_ssize_t)high);
}

static PyObject *
channel_set_protocol(ChannelObject *self, PyObject *protocol)
{
    if (channel_set_protocol_object(self, protocol) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* A socket address as Python's socket module gives it. Hosts are interned:
 * every connection of a server names the server's own address, and many
 * name the same peer (64 bytes a string saved). */
static PyObject *
python_address(const void *address, unsigned int length)
{
    const struct sockaddr *sa = (const struct sockaddr *)address;
    if (length < sizeof(sa_family_t))
        Py_RETURN_NONE;
    if (sa->sa_family == AF_INET && length >= sizeof(struct sockaddr_in)) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)address;
        char host[INET_ADDRSTRLEN];
        if (inet_ntop(AF_INET, &in->sin_addr, host, sizeof host) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(Ni)", PyUnicode_InternFromString(host), ntohs(in->sin_port));
    }
    if (sa->sa_family == AF_INET6 && length >= sizeof(struct sockaddr_in6)) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)address;
        char host[INET6_ADDRSTRLEN];
        /* The socket module's formatting (inet_ntop): the scope is the
         * tuple's last item, not a %scope suffix of the host. */
        if (inet_ntop(AF_INET6, &in6->sin6_addr, host, sizeof host) == NULL)
            return PyErr_SetFromErrno(PyExc_OSError);
        return Py_BuildValue("(NiII)", PyUnicode_InternFromString(host), ntohs(in6->sin6_port),
                             (unsigned int)ntohl(in6->sin6_flowinfo),
                             (unsigned int)in6->sin6_scope_id);
    }
    if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)address;
        size_t offset = offsetof(struct sockaddr_un, sun_path);
        size_t path_length = length > offset ? length - offset : 0;
        if (path_length > sizeof un->sun_path)
            path_length = sizeof un->sun_path;
        if (path_length > 0 && un->sun_path[0] == '\0')
            return PyBytes_FromStringAndSize(un->sun_path, (Py_ssize_t)path_length);
        size_t n = 0;
        while (n < path_length && un->sun_path[n] != '\0')
            n++;
        return PyUnicode_DecodeFSDefaultAndSize(un->sun_path, (Py_ssize_t)n);
    }
    return Py_BuildValue("(iy#)", sa->sa_family, (const char *)address, (Py_ssize_t)length);
}

typedef int (*address_fn)(aios_transport_t *, void *, unsigned int *);

static PyObject *
channel_address(ChannelObject *self, address_fn fn)
{
    if (!channel_usable_ptr(self))
        Py_RETURN_NONE;
    union { struct sockaddr_storage storage; unsigned char bytes[sizeof(struct sockaddr_storage)]; } a;
    memset(&a, 0, sizeof a);
    unsigned int length = sizeof a;
    int status = fn(self->ptr, &a, &length);
    if (status < 0)
        Py_RETURN_NONE;
    if (length > sizeof a)
        length = sizeof a;
    return python_address(&a, length);
}

static PyObject *
channel_sockname(ChannelObject *self, PyObject *Py_UNUSED(ignored))
{
    return channel_address(self, aios_transport_get_sockname);
}

static PyObject *
channel_peername(ChannelObject *self, PyObject *Py_UNUSED(ignored))
{
    return channel_address(self, aios_transport_get_peername);
}

static PyObject *
channel_fileno(ChannelObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!channel_usable_ptr(self))
        return PyLong_FromLong(-1);
    int fd = aios_transport_get_fd(self->ptr);
    return PyLong_FromLong(fd < 0 ? -1 : fd);
}

/* channel.release(): gives the token back (a connection that never came,
 * or was given up). Events that name it from now on are ignored. */
static PyObject *
channel_release(ChannelObject *self, PyObject *Py_UNUSED(ignored))
{
    CoreObject *core = self->core;
    if (self->token != 0 && core != NULL && core->io_slots != NULL) {
        Py_ssize_t index = slot_index(core, self->token);
        if (index >= 0 && core->io_slots[index].channel == (PyObject *)self) {
            Py_INCREF(self);
            slot_free(core, index);
            channel_let_go(self);
            Py_DECREF(self);
            Py_RETURN_NONE;
        }
    }
    self->token = 0;
    channel_let_go(self);
    Py_RETURN_NONE;
}

static int channel_resumed(ChannelObject *chan);

/* channel._io_resumed(): the core's resume_writing for a channel whose
 * events come another way (a subprocess's stdin). */
static PyObject *
channel_io_resumed(ChannelObject *self, PyObject *Py_UNUSED(ignored))
{
    channel_resumed(self);      /* an interrupt it met is the loop's now */
    Py_RETURN_NONE;
}

static PyObject *
channel_detach_method(ChannelObject *self, PyObject *Py_UNUSED(ignored))
{
    channel_detach(self);
    Py_RETURN_NONE;
}

static PyObject *
channel_get_address(ChannelObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromVoidPtr(self->ptr);
}

static PyObject *
channel_get_token(ChannelObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromUnsignedLongLong(self->token);
}

static PyObject *
channel_get_flag(ChannelObject *self, void *closure)
{
    return PyBool_FromLong(*((char *)self + (Py_ssize_t)closure));
}

static int
channel_set_flag(ChannelObject *self, PyObject *value, void *closure)
{
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "cannot delete the attribute");
        return -1;
    }
    int on = PyObject_IsTrue(value);
    if (on < 0)
        return -1;
    *((char *)self + (Py_ssize_t)closure) = (char)on;
    return 0;
}

static PyObject *
channel_get_obj(ChannelObject *self, void *closure)
{
    PyObject *value = *(PyObject **)((char *)self + (Py_ssize_t)closure);
    if (value == NULL)
        Py_RETURN_NONE;
    return Py_NewRef(value);
}

static int
channel_set_obj(ChannelObject *self, PyObject *value, void *closure)
{
    PyObject **slot = (PyObject **)((char *)self + (Py_ssize_t)closure);
    Py_XSETREF(*slot, value == NULL || value == Py_None ? NULL : Py_NewRef(value));
    return 0;
}

static PyObject *
channel_get_pending(ChannelObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->pending != NULL ? PyList_GET_SIZE(self->pending) : 0);
}

static PyMethodDef channel_methods[] = {
    {"write", (PyCFunction)channel_write, METH_O,
     "transport.write(data): one call into the core's transport."},
    {"writelines", (PyCFunction)channel_writelines, METH_O,
     "transport.writelines(list_of_data): the pieces as one write."},
    {"write_eof", (PyCFunction)channel_write_eof, METH_NOARGS, NULL},
    {"close", (PyCFunction)channel_close, METH_NOARGS,
     "Close after the buffer is sent; returns whether it was empty."},
    {"abort", (PyCFunction)channel_abort, METH_NOARGS, NULL},
    {"is_closing", (PyCFunction)channel_is_closing, METH_NOARGS, NULL},
    {"is_reading", (PyCFunction)channel_is_reading, METH_NOARGS, NULL},
    {"pause_reading", (PyCFunction)channel_pause_reading, METH_NOARGS,
     "Returns whether it paused (asyncio's no-op cases return False)."},
    {"resume_reading", (PyCFunction)channel_resume_reading, METH_NOARGS, NULL},
    {"get_write_buffer_size", (PyCFunction)channel_get_write_buffer_size, METH_NOARGS, NULL},
    {"set_write_buffer_limits", (PyCFunction)channel_set_write_buffer_limits, METH_VARARGS,
     "set_write_buffer_limits(high, low), -1 for the default."},
    {"get_write_buffer_limits", (PyCFunction)channel_get_write_buffer_limits, METH_NOARGS,
     "(low, high)"},
    {"set_protocol", (PyCFunction)channel_set_protocol, METH_O, NULL},
    {"sockname", (PyCFunction)channel_sockname, METH_NOARGS, NULL},
    {"peername", (PyCFunction)channel_peername, METH_NOARGS, NULL},
    {"fileno", (PyCFunction)channel_fileno, METH_NOARGS, "The socket's fd, or -1."},
    {"release", (PyCFunction)channel_release, METH_NOARGS,
     "Give the token back: the connection never came or was given up."},
    {"_flush_pending", (PyCFunction)channel_flush_pending, METH_NOARGS, NULL},
    {"detach", (PyCFunction)channel_detach_method, METH_NOARGS,
     "connection_lost was delivered: let go of the transport and its protocol."},
    {"_io_resumed", (PyCFunction)channel_io_resumed, METH_NOARGS,
     "The core's resume_writing, for a channel whose events come another way."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef channel_getset[] = {
    {"address", (getter)channel_get_address, NULL, "The aios_transport_t * (0: none).", NULL},
    {"token", (getter)channel_get_token, NULL, NULL, NULL},
    {"pending", (getter)channel_get_pending, NULL, "Reads waiting for resume_reading.", NULL},
    {"closing", (getter)channel_get_flag, NULL, NULL,
     (void *)offsetof(ChannelObject, closing)},
    {"lost", (getter)channel_get_flag, NULL, NULL, (void *)offsetof(ChannelObject, lost)},
    {"write_paused", (getter)channel_get_flag, (setter)channel_set_flag, NULL,
     (void *)offsetof(ChannelObject, write_paused)},
    {"pipe", (getter)channel_get_flag, (setter)channel_set_flag,
     "A pipe transport's channel (asyncio's write pipe semantics).",
     (void *)offsetof(ChannelObject, pipe)},
    {"transport", (getter)channel_get_obj, (setter)channel_set_obj, NULL,
     (void *)offsetof(ChannelObject, transport)},
    {"protocol", (getter)channel_get_obj, NULL, NULL, (void *)offsetof(ChannelObject, protocol)},
    {"context", (getter)channel_get_obj, (setter)channel_set_obj, NULL,
     (void *)offsetof(ChannelObject, context)},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyTypeObject ChannelType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "aioswift._native.Channel",
    .tp_doc = "Channel(core): the C half of a stream transport (see _native_io.c).",
    .tp_basicsize = sizeof(ChannelObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .tp_new = channel_new,
    .tp_dealloc = (destructor)channel_dealloc,
    .tp_traverse = (traverseproc)channel_traverse,
    .tp_clear = (inquiry)channel_clear,
    .tp_weaklistoffset = offsetof(ChannelObject, weakreflist),
    .tp_methods = channel_methods,
    .tp_getset = channel_getset,
};

/* ------------------------------------------------------------------------ */
/* Servers: a protocol for each accepted connection, without Python          */

typedef struct {
    CoreObject *core;            /* borrowed: a server's connections come only while it runs */
    unsigned long long key;
} ServerArg;

static int
server_factory(void *arg, aios_protocol_t *protocol)
{
    ServerArg *server = (ServerArg *)arg;
    CoreObject *core = server->core;
    if (core->closed || core->loop == NULL)
        return 1;
    Py_ssize_t index = slot_alloc(core);
    if (index < 0)
        return 1;                       /* refused: the core closes it */
    core->io_slots[index].server = server->key;
    protocol->batched = 1;
    protocol->token = slot_token(core, index);
    return 0;
}

static void
server_arg_free(void *arg)
{
    free(arg);
}

/* core.server_factory(key) -> (factory, arg, destructor) as integers, for
 * aios_create_server. */
static PyObject *
core_server_factory(CoreObject *self, PyObject *key_object)
{
    unsigned long long key = PyLong_AsUnsignedLongLong(key_object);
    if (key == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    if (key == 0) {
        PyErr_SetString(PyExc_ValueError, "a server key is not 0");
        return NULL;
    }
    ServerArg *arg = malloc(sizeof *arg);
    if (arg == NULL)
        return PyErr_NoMemory();
    arg->core = self;
    arg->key = key;
    return Py_BuildValue("(NNN)", PyLong_FromVoidPtr((void *)(uintptr_t)server_factory),
                         PyLong_FromVoidPtr(arg),
                         PyLong_FromVoidPtr((void *)(uintptr_t)server_arg_free));
}

/* ------------------------------------------------------------------------ */
/* Taking and dispatching events                                              */

static void io_ready(void *arg);
static void *io_buffer(void *arg, unsigned long long token, size_t size);
static PyObject *lent_bytes(CoreObject *core, size_t address, size_t length);
static int lent_push(CoreObject *core, PyObject *bytes);
static PyObject *lent_pop(CoreObject *core);
static void watch_drop_all(CoreObject *core);
static void io_objects_drop_all(CoreObject *core);

/* The C part of CONNECTED: the channel (made now for a server's
 * connection) gets its reference to the core's transport. NULL when the
 * token names nothing. */
static ChannelObject *
connected_channel(CoreObject *core, unsigned long long token, aios_transport_t *ptr,
                  unsigned long long *server_key)
{
    Py_ssize_t index = slot_index(core, token);
    if (index < 0)
        return NULL;
    IOSlot *slot = &core->io_slots[index];
    *server_key = slot->server;
    ChannelObject *chan = (ChannelObject *)slot->channel;
    if (chan == NULL) {
        chan = channel_make(core, index);
        if (chan == NULL) {
            PyErr_Clear();
            aios_transport_abort(ptr);
            slot_free(core, index);
            return NULL;
        }
        Py_DECREF(chan);                /* the slot holds it */
    }
    slot->server = 0;
    if (chan->ptr == NULL && aios_transport_ref(ptr) == 0)
        chan->ptr = ptr;
    return chan;
}

static ChannelObject *
event_channel(CoreObject *core, unsigned long long token)
{
    Py_ssize_t index = slot_index(core, token);
    if (index < 0)
        return NULL;
    return (ChannelObject *)core->io_slots[index].channel;
}

/* The Python part of CONNECTED. */
static int
connected_py(CoreObject *core, ChannelObject *chan, unsigned long long server_key)
{
    if (core->owner == NULL)
        return 0;
    PyObject *key = PyLong_FromUnsignedLongLong(server_key);
    if (key == NULL)
        return channel_unexpected(chan, NULL);
    PyObject *r = PyObject_CallMethodObjArgs(core->owner, str_io_connected, (PyObject *)chan, key,
                                             NULL);
    Py_DECREF(key);
    if (r == NULL) {
        int interrupted = channel_unexpected(chan, core->owner);
        if (chan->transport == NULL && chan->ptr != NULL && !chan->closing) {
            chan->closing = 1;
            aios_transport_abort(chan->ptr);
        }
        return interrupted;
    }
    Py_DECREF(r);
    return 0;
}

/* The core's resume_writing: the protocol's, then a close that waited for it. */
static int
channel_resumed(ChannelObject *chan)
{
    if (!chan->write_paused || chan->lost)
        return 0;
    Py_INCREF(chan);
    int r = channel_call(chan, str_io_resume_writing, NULL);
    if (chan->close_deferred && chan->ptr != NULL && !chan->lost) {
        chan->close_deferred = 0;
        aios_transport_close(chan->ptr);
    }
    Py_DECREF(chan);
    return r;
}

static int
lost_event(CoreObject *core, ChannelObject *chan, int status)
{
    Py_INCREF(chan);
    chan->closing = 1;
    Py_CLEAR(chan->pending);
    int r = 0;
    if (chan->transport != NULL) {
        PyObject *code = PyLong_FromLong(status);
        if (code == NULL)
            r = channel_unexpected(chan, NULL);
        else {
            r = channel_call(chan, str_io_lost, code);
            Py_DECREF(code);
        }
    }
    /* The token is done: the core records nothing after LOST. */
    if (chan->token != 0) {
        Py_ssize_t index = slot_index(core, chan->token);
        if (index >= 0 && core->io_slots[index].channel == (PyObject *)chan)
            slot_free(core, index);
    }
    channel_let_go(chan);
    Py_DECREF(chan);
    return r;
}

/* One event. `data` (a bytes object) or `base` holds a DATA event's bytes.
 * `c_done`: CONNECTED's C part already ran (an event kept back). -1 for
 * an interrupt. */
static int
dispatch_event(CoreObject *core, int kind, unsigned long long token, int status,
               aios_transport_t *ptr, PyObject *data, const char *base, Py_ssize_t length,
               int c_done, unsigned long long server_key)
{
    ChannelObject *chan;
    switch (kind) {
    case AIOS_IO_CONNECTED:
        if (!c_done) {
            chan = connected_channel(core, token, ptr, &server_key);
            if (PyErr_Occurred())
                PyErr_Clear();
        }
        else {
            chan = event_channel(core, token);
        }
        if (chan == NULL)
            return 0;
        return connected_py(core, chan, server_key);
    case AIOS_IO_DATA:
        chan = event_channel(core, token);
        if (chan == NULL)
            return 0;
        return channel_data(chan, data, base, length);
    case AIOS_IO_EOF:
        chan = event_channel(core, token);
        if (chan == NULL)
            return 0;
        return channel_eof(chan);
    case AIOS_IO_LOST:
        chan = event_channel(core, token);
        if (chan == NULL)
            return 0;
        return lost_event(core, chan, status);
    case AIOS_IO_PAUSE_WRITING:
        chan = event_channel(core, token);
        if (chan == NULL || chan->write_paused || chan->lost)
            return 0;
        return channel_call(chan, str_maybe_pause, NULL);
    case AIOS_IO_RESUME_WRITING:
        chan = event_channel(core, token);
        if (chan == NULL)
            return 0;
        return channel_resumed(chan);
    default:
        return 0;
    }
}

/* After an interrupt the events left are kept for the next run, their
 * bytes copied (the arena goes at the next take). */
static void
keep_back(CoreObject *core, const aios_io_event_t *events, size_t from, size_t count,
          const unsigned char *arena)
{
    if (core->io_backlog == NULL) {
        core->io_backlog = PyList_New(0);
        if (core->io_backlog == NULL) {
            PyErr_Clear();
            return;
        }
    }
    for (size_t i = from; i < count; i++) {
        const aios_io_event_t *e = &events[i];
        unsigned long long server_key = 0;
        PyObject *data = Py_None;
        Py_INCREF(data);
        if (e->kind == AIOS_IO_CONNECTED) {
            if (connected_channel(core, e->token, e->transport, &server_key) == NULL)
                PyErr_Clear();
        }
        else if (e->kind == AIOS_IO_DATA || e->kind == AIOS_IO_DATA_BUFFER) {
            Py_DECREF(data);
            if (e->kind == AIOS_IO_DATA)
                data = PyBytes_FromStringAndSize((const char *)arena + e->offset,
                                                 (Py_ssize_t)e->length);
            else
                data = lent_bytes(core, e->offset, e->length);
            if (data == NULL) {
                PyErr_Clear();
                continue;
            }
        }
        int kind = e->kind == AIOS_IO_DATA_BUFFER ? AIOS_IO_DATA : e->kind;
        PyObject *item = Py_BuildValue("(iKiKN)", kind, e->token, e->status, server_key, data);
        if (item == NULL || PyList_Append(core->io_backlog, item) < 0)
            PyErr_Clear();
        Py_XDECREF(item);
    }
}

/* What an interrupt kept back, before this take's events. -1 when
 * interrupted again. */
static int
run_backlog(CoreObject *core)
{
    while (core->io_backlog != NULL && PyList_GET_SIZE(core->io_backlog) > 0) {
        if (core->interrupt != NULL)
            return -1;
        PyObject *item = PyList_GET_ITEM(core->io_backlog, 0);
        Py_INCREF(item);
        PyList_SetSlice(core->io_backlog, 0, 1, NULL);
        int kind = (int)PyLong_AsLong(PyTuple_GET_ITEM(item, 0));
        unsigned long long token = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(item, 1));
        int status = (int)PyLong_AsLong(PyTuple_GET_ITEM(item, 2));
        unsigned long long server_key = PyLong_AsUnsignedLongLong(PyTuple_GET_ITEM(item, 3));
        PyObject *data = PyTuple_GET_ITEM(item, 4);
        int r;
        if (data != Py_None)
            r = dispatch_event(core, kind, token, status, NULL, data, PyBytes_AS_STRING(data),
                               PyBytes_GET_SIZE(data), 1, server_key);
        else
            r = dispatch_event(core, kind, token, status, NULL, NULL, NULL, 0, 1, server_key);
        Py_DECREF(item);
        if (r < 0)
            return -1;
    }
    return 0;
}

/* Memory for a large read (aios_loop_set_io_buffer_callback), from inside
 * the core's poll: a bytes object of `size` bytes that the kernel fills and
 * data_received gets, copied nowhere. core->io_lent holds it until its
 * AIOS_IO_DATA_BUFFER event (lent_bytes), or until the loop closes. A
 * BufferedProtocol's bytes go to its own buffers: the arena serves it. */
static void *
io_buffer(void *arg, unsigned long long token, size_t size)
{
    CoreObject *core = (CoreObject *)arg;
    PyGILState_STATE state = PyGILState_UNLOCKED;
    int how = enter_python(core, &state);
    void *memory = NULL;
    ChannelObject *chan = event_channel(core, token);
    if (chan != NULL && !chan->buffered && size <= (size_t)PY_SSIZE_T_MAX && !core->closed) {
        PyObject *bytes = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)size);
        if (bytes != NULL && lent_push(core, bytes) == 0)
            memory = PyBytes_AS_STRING(bytes);
        else
            Py_XDECREF(bytes);          /* the arena then */
        PyErr_Clear();
    }
    leave_python(core, how, state);
    return memory;
}

/* The ring of lent bytes objects: push at its tail (it takes the
 * reference; -1 without memory), pop the oldest (gives it). */
static int
lent_push(CoreObject *core, PyObject *bytes)
{
    if (core->io_lent_count == core->io_lent_capacity) {
        Py_ssize_t capacity = core->io_lent_capacity ? core->io_lent_capacity * 2 : 16;
        PyObject **ring = PyMem_Malloc(sizeof(PyObject *) * (size_t)capacity);
        if (ring == NULL)
            return -1;
        for (Py_ssize_t k = 0; k < core->io_lent_count; k++)
            ring[k] = core->io_lent[(core->io_lent_head + k) % core->io_lent_capacity];
        PyMem_Free(core->io_lent);
        core->io_lent = ring;
        core->io_lent_head = 0;
        core->io_lent_capacity = capacity;
    }
    core->io_lent[(core->io_lent_head + core->io_lent_count) % core->io_lent_capacity] = bytes;
    core->io_lent_count++;
    return 0;
}

static PyObject *
lent_pop(CoreObject *core)
{
    PyObject *bytes = core->io_lent[core->io_lent_head];
    core->io_lent_head = (core->io_lent_head + 1) % core->io_lent_capacity;
    core->io_lent_count--;
    return bytes;
}

/* The loop closed: what it had not given back yet. */
static void
lent_drop_all(CoreObject *core)
{
    while (core->io_lent_count > 0)
        Py_DECREF(lent_pop(core));
    PyMem_Free(core->io_lent);
    core->io_lent = NULL;
    core->io_lent_head = core->io_lent_capacity = 0;
}

/* The bytes object of an AIOS_IO_DATA_BUFFER event, cut to its `length`
 * bytes (a new reference), or NULL: with no bytes (the memory came back
 * unused), or with an error set (no memory to cut it). The events come in
 * the order the memory was lent: the oldest in the ring is this one. */
static PyObject *
lent_bytes(CoreObject *core, size_t address, size_t length)
{
    if (core->io_lent_count == 0)
        return NULL;
    if ((size_t)(uintptr_t)PyBytes_AS_STRING(core->io_lent[core->io_lent_head]) != address)
        return NULL;                    /* not ours: the core keeps its order */
    PyObject *bytes = lent_pop(core);
    if (length == 0) {
        Py_DECREF(bytes);
        return NULL;
    }
    Py_ssize_t size = PyBytes_GET_SIZE(bytes);
    if ((Py_ssize_t)length < size) {
        if (size - (Py_ssize_t)length <= 4096) {
            /* A page or less to spare (io_buffer asks for one byte more
             * than the last read got): the object keeps it, unused. */
            Py_SET_SIZE(bytes, (Py_ssize_t)length);
            PyBytes_AS_STRING(bytes)[length] = '\0';
        }
        else if (_PyBytes_Resize(&bytes, (Py_ssize_t)length) < 0) {
            return NULL;
        }
    }
    return bytes;
}

/* An AIOS_IO_DATA_BUFFER event whose bytes lent_bytes could not give: none
 * (0), or no memory to cut them, which is the transport's fatal error as
 * when a bytes object cannot be made for an AIOS_IO_DATA. -1 for an
 * interrupt. */
static int
lent_bytes_lost(CoreObject *core, unsigned long long token)
{
    if (!PyErr_Occurred())
        return 0;
    ChannelObject *chan = event_channel(core, token);
    if (chan == NULL || !channel_receiving(chan)) {
        PyErr_Clear();
        return 0;
    }
    return channel_fatal(chan, msg_data_received);
}

/* An AIOS_IO_DATA_BUFFER event: its bytes object to data_received. Out of
 * line, so that io_ready's loop over the other events stays as small. -1
 * for an interrupt. */
static int __attribute__((noinline))
dispatch_lent(CoreObject *core, const aios_io_event_t *e)
{
    PyObject *data = lent_bytes(core, e->offset, e->length);
    if (data == NULL)
        return lent_bytes_lost(core, e->token);
    int r = dispatch_event(core, AIOS_IO_DATA, e->token, 0, e->transport, data,
                           PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data), 0, 0);
    Py_DECREF(data);
    return r;
}

/* Bytes a take must have handed over for io_ready to release the arena
 * early (aios_loop_release_io_events). */
enum { RELEASE_AFTER_BYTES = 4096 };

/* Scheduled by the core (aios_loop_set_io_events_callback) when events
 * wait: takes them all and dispatches them in order. */
static void
io_ready(void *arg)
{
    CoreObject *core = (CoreObject *)arg;
    PyGILState_STATE state = PyGILState_UNLOCKED;
    int how = enter_python(core, &state);
    Py_INCREF(core);
    if (core->loop != NULL && !core->closed) {
        int interrupted = core->interrupt != NULL || run_backlog(core) < 0;
        const aios_io_event_t *events = NULL;
        const unsigned char *arena = NULL;
        size_t count = 0;
        if (aios_loop_take_io_events(core->loop, &events, &count, &arena) == 0 && count > 0) {
            size_t i = 0, bytes = 0;
            if (!interrupted) {
                for (; i < count; i++) {
                    const aios_io_event_t *e = &events[i];
                    int r;
                    if (e->kind != AIOS_IO_DATA_BUFFER) {
                        bytes += e->length;
                        r = dispatch_event(core, e->kind, e->token, e->status, e->transport, NULL,
                                           (const char *)arena + e->offset, (Py_ssize_t)e->length,
                                           0, 0);
                    }
                    else {
                        r = dispatch_lent(core, e);
                    }
                    if (r < 0) {
                        i++;
                        break;
                    }
                    if (core->interrupt != NULL) {
                        i++;
                        break;
                    }
                }
            }
            if (i < count)
                keep_back(core, events, i, count, arena);
            /* Every byte is copied out: the next reads may reuse the arena
             * while it is in the CPU's cache. That pays for the call only
             * when the reads filled more than a few cache lines. */
            if (bytes >= RELEASE_AFTER_BYTES && core->loop != NULL)
                aios_loop_release_io_events(core->loop);
        }
    }
    Py_DECREF(core);
    leave_python(core, how, state);
}

/* The core's loop calls io_ready from now on (and after a move). */
static int
io_enable(CoreObject *core)
{
    if (core->io_enabled)
        return 0;
    int status = aios_loop_set_io_events_callback(core->loop, io_ready, core);
    if (status == 0)
        status = aios_loop_set_io_buffer_callback(core->loop, io_buffer, core);
    if (status < 0) {
        aios_loop_set_io_events_callback(core->loop, NULL, NULL);
        raise_status(status);
        return -1;
    }
    core->io_enabled = 1;
    return 0;
}

static PyObject *
core_io_enable(CoreObject *self, PyObject *Py_UNUSED(ignored))
{
    if (!core_usable(self))
        return NULL;
    if (claim(self) < 0)
        return NULL;
    if (io_enable(self) < 0)
        return NULL;
    Py_RETURN_NONE;
}

/* Kept-back events wait for the next run: io_ready is scheduled again. */
static void
io_resume_backlog(CoreObject *core)
{
    if (core->io_backlog != NULL && PyList_GET_SIZE(core->io_backlog) > 0 && core->loop != NULL)
        aios_loop_call_soon(core->loop, io_ready, core, NULL, NULL);
}

/* The loop closed (or the Core goes): every transport is let go of without
 * a callback, as asyncio's close() leaves its transports alone. */
static void
io_drop_all(CoreObject *core)
{
    for (Py_ssize_t i = 0; i < core->io_capacity; i++) {
        IOSlot *slot = &core->io_slots[i];
        if (!slot->used)
            continue;
        ChannelObject *chan = (ChannelObject *)slot->channel;
        if (chan != NULL) {
            Py_INCREF(chan);
            slot_free(core, i);
            channel_let_go(chan);
            Py_DECREF(chan);
        }
        else {
            slot_free(core, i);
        }
    }
    Py_CLEAR(core->io_backlog);
    lent_drop_all(core);
    core->io_enabled = 0;
    watch_drop_all(core);
    io_objects_drop_all(core);
}

static void
io_free_table(CoreObject *core)
{
    free(core->io_slots);
    free(core->io_free);
    core->io_slots = NULL;
    core->io_free = NULL;
    core->io_capacity = core->io_nfree = core->io_used = 0;
}

static int
io_traverse(CoreObject *core, visitproc visit, void *arg)
{
    for (Py_ssize_t i = 0; i < core->io_capacity; i++)
        Py_VISIT(core->io_slots[i].channel);
    Py_VISIT(core->io_backlog);
    Py_VISIT(core->watches);
    Py_VISIT(core->io_objects);
    return 0;
}

/* core.transport_using(fd) -> the transport of an open connection or pipe
 * of this loop on that descriptor, or None (asyncio's
 * _ensure_fd_no_transport looks it up among its transports). */
static PyObject *
core_transport_using(CoreObject *self, PyObject *arg)
{
    long fd = PyLong_AsLong(arg);
    if (fd == -1 && PyErr_Occurred())
        return NULL;
    for (Py_ssize_t i = 0; i < self->io_capacity; i++) {
        ChannelObject *chan = (ChannelObject *)self->io_slots[i].channel;
        if (chan == NULL || chan->ptr == NULL || chan->lost || chan->transport == NULL)
            continue;
        if (aios_transport_get_fd(chan->ptr) == fd)
            return Py_NewRef(chan->transport);
    }
    Py_RETURN_NONE;
}

static PyObject *
core_get_io_used(CoreObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->io_used);
}

static PyObject *
core_get_io_lent(CoreObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->io_lent_count);
}

static PyObject *
core_get_io_backlog(CoreObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->io_backlog != NULL ? PyList_GET_SIZE(self->io_backlog) : 0);
}

static PyObject *
core_get_io_servers(CoreObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromLong(self->io_servers);
}

static int
core_set_io_servers(CoreObject *self, PyObject *value, void *Py_UNUSED(closure))
{
    long n = value != NULL ? PyLong_AsLong(value) : -1;
    if (n < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_ValueError, "a count >= 0");
        return -1;
    }
    self->io_servers = n;
    return 0;
}

/* _native.sockaddr(bytes): a socket address as Python's socket module gives it. */
static PyObject *
native_sockaddr(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    union { struct sockaddr_storage storage; unsigned char bytes[sizeof(struct sockaddr_storage)]; } a;
    memset(&a, 0, sizeof a);
    size_t n = (size_t)view.len < sizeof a ? (size_t)view.len : sizeof a;
    memcpy(&a, view.buf, n);
    PyBuffer_Release(&view);
    return python_address(&a, (unsigned int)n);
}

/* _native.gai_strerror(code): the system's message of a getaddrinfo error. */
static PyObject *
native_gai_strerror(PyObject *Py_UNUSED(module), PyObject *arg)
{
    long code = PyLong_AsLong(arg);
    if (code == -1 && PyErr_Occurred())
        return NULL;
    return PyUnicode_FromString(gai_strerror((int)code));
}

static int
io_module_init(void)
{
    if (PyType_Ready(&ChannelType) < 0)
        return -1;
    str_io_connected = PyUnicode_InternFromString("_io_connected");
    str_io_eof = PyUnicode_InternFromString("_io_eof");
    str_io_lost = PyUnicode_InternFromString("_io_lost");
    str_io_closing = PyUnicode_InternFromString("_io_closing");
    str_maybe_pause = PyUnicode_InternFromString("_maybe_pause_protocol");
    str_io_resume_writing = PyUnicode_InternFromString("_io_resume_writing");
    str_fatal_error = PyUnicode_InternFromString("_fatal_error");
    str_protocol_failed = PyUnicode_InternFromString("_protocol_failed");
    str_call_soon_attr = PyUnicode_InternFromString("call_soon");
    str_flush_pending = PyUnicode_InternFromString("_flush_pending");
    msg_data_received = PyUnicode_FromString("Fatal error: protocol.data_received() call failed.");
    msg_get_buffer = PyUnicode_FromString("Fatal error: protocol.get_buffer() call failed.");
    msg_buffer_updated = PyUnicode_FromString("Fatal error: protocol.buffer_updated() call failed.");
    if (!str_io_connected || !str_io_eof || !str_io_lost || !str_io_closing || !str_maybe_pause ||
        !str_io_resume_writing || !str_fatal_error || !str_protocol_failed || !str_call_soon_attr ||
        !str_flush_pending ||
        !msg_data_received || !msg_get_buffer || !msg_buffer_updated)
        return -1;
    return 0;
}
