"""What every part of the binding shares: the compiled cffi module, Python
objects owned by the C runtime, and which loop runs on this thread.

(Scheduled callbacks do not come through here: aioswift._native holds them.)
Python objects handed to C through cffi travel as cffi handles
(ffi.new_handle). A handle keeps its object alive only while the handle
cdata itself is alive, so each one is kept in a dict until C can no longer
use it:

  - values C owns and frees with a destructor (a future's result, the
    exception carried by a user error): the module-level `_boxes`, emptied by
    the destructor aioswift_py_release, which C calls exactly once;
  - a CFuture's done-callback registrations: the loop's `_pending` dict,
    emptied when the callback ran or was removed, or the loop closed (see
    _future.py).

Every pointer that comes back from C is looked up in those dicts before
ffi.from_handle touches it, so a stale or foreign pointer is reported, never
dereferenced.
"""

import sys
import threading
import weakref

try:
    from ._aioswift import ffi, lib
except ImportError as exc:  # pragma: no cover - depends on the build
    raise ImportError(
        "aioswift: the cffi extension aioswift._aioswift is not built or cannot "
        "load libaio-swift; run `make -C bindings/python build` or "
        "`pip install bindings/python` (see bindings/python/README.md)") from exc

NULL = ffi.NULL

if (lib.aios_version() >> 16) != lib.AIOS_VERSION_MAJOR:  # pragma: no cover
    raise ImportError(
        f"aioswift: built against libaio-swift {lib.AIOS_VERSION_MAJOR}.x but "
        f"loaded {ffi.string(lib.aios_version_string()).decode()}")


def address(ptr):
    """The integer value of a pointer (cdata)."""
    return int(ffi.cast("uintptr_t", ptr))


def text(char_ptr):
    """A C string as str, or None for NULL."""
    if char_ptr == NULL:
        return None
    return ffi.string(char_ptr).decode("utf-8", "replace")


# Counters of things that only a library bug can cause; tests assert they stay 0.
stats = {
    "unknown_release": 0,   # a destructor called on a value we do not own (twice?)
    "lost_callback": 0,     # a callback whose argument is not pending on the loop
}


def _complain(what, detail):
    stats[what] += 1
    try:
        sys.stderr.write(f"aioswift: {detail} (library bug?)\n")
    except Exception:  # pragma: no cover - stderr gone at shutdown
        pass


# ---------------------------------------------------------------------------
# Values owned by C
#
# A box is a cffi handle to a _Holder, which holds the value. While a Python
# wrapper of the C object that owns the value is alive (a CFuture and its
# result or exception), the wrapper holds the value and the holder only points
# at the wrapper: the garbage collector then sees every reference, and can
# free a cycle such as exception -> traceback -> frame -> future -> exception
# that passes through C. When the wrapper goes, the holder takes the value
# back for as long as C keeps it (see lend and reclaim).


class _Holder:
    __slots__ = ("value", "owner", "extras")

    def __init__(self, value, extras):
        self.value = value
        self.owner = None          # weakref to the wrapper holding the value
        self.extras = extras

    def get(self, default):
        owner = self.owner
        if owner is None:
            return self.value
        owner = owner()
        return owner._owned if owner is not None else default


# address of the box -> (box cdata, _Holder)
_boxes = {}


def box(obj, extras=None):
    """A `void *` standing for `obj`, to hand to C together with the
    destructor lib.aioswift_py_release. `extras` rides along (see box_extras)."""
    holder = _Holder(obj, extras)
    handle = ffi.new_handle(holder)
    _boxes[address(handle)] = (handle, holder)
    return handle


def discard(ptr):
    """Take back a box C refused (the call failed, so the caller still owns it)."""
    _boxes.pop(address(ptr), None)


_MISSING = object()


def unbox(ptr, default=_MISSING):
    """The object behind a box, `default` if `ptr` is not one of ours."""
    entry = _boxes.get(address(ptr))
    if entry is None:
        return default
    return entry[1].get(default)


def box_extras(ptr):
    entry = _boxes.get(address(ptr))
    return entry[1].extras if entry is not None else None


def lend(ptr, owner):
    """Let `owner` hold the boxed value (as owner._owned) while it lives.
    Returns whether it does (not when another owner holds it already, or
    `ptr` is not a box of ours)."""
    entry = _boxes.get(address(ptr))
    if entry is not None and entry[1].owner is None:
        holder = entry[1]
        owner._owned = holder.value
        holder.value = None
        holder.owner = weakref.ref(owner)
        return True
    return False


def reclaim(ptr, owner):
    """`owner` goes away: the box holds the value again, for as long as C does."""
    entry = _boxes.get(address(ptr))
    if entry is not None and entry[1].owner is not None:
        holder = entry[1]
        holder.value = owner._owned
        holder.owner = None


def boxed_count():
    return len(_boxes)


@ffi.def_extern()
def aioswift_py_release(value):
    # The destructor C calls exactly once for each boxed value.
    if _boxes.pop(address(value), None) is None:
        _complain("unknown_release",
                  f"destructor called on {address(value):#x}, which is not a live value")


# ---------------------------------------------------------------------------
# The loop running on this thread (callbacks only run inside run_forever or
# run_until_complete, on the loop's thread).

_tls = threading.local()


def running_loop():
    return getattr(_tls, "loop", None)


def set_running_loop(loop):
    """Make `loop` this thread's running loop; returns the previous one."""
    previous = getattr(_tls, "loop", None)
    _tls.loop = loop
    return previous


def lost_callback(arg):
    _complain("lost_callback",
              f"callback called with argument {address(arg):#x}, which no running loop expects")
