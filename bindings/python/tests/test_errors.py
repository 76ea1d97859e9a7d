"""Status codes and error objects to Python exceptions, and back."""

import asyncio
import errno

import pytest

import aioswift
import build_ffi
from aioswift import _errors, _runtime, ffi, lib

from conftest import header_path


@pytest.mark.parametrize("name, expected", [
    ("ECANCELLED", asyncio.CancelledError),
    ("ETIMEOUT", TimeoutError),
    ("EINVALIDSTATE", asyncio.InvalidStateError),
])
def test_asyncio_codes_become_the_stock_asyncio_exceptions(name, expected):
    exc = aioswift.exception_for_code(getattr(lib, "AIOS_" + name))
    assert type(exc) is expected


@pytest.mark.parametrize("name, cls", [
    ("ECLOSED", aioswift.LoopClosedError),
    ("ERUNNING", aioswift.LoopRunningError),
    ("ENOLOOP", aioswift.NoRunningLoopError),
    ("EWRONGTHREAD", aioswift.WrongThreadError),
])
def test_loop_misuse_codes_are_runtime_errors(name, cls):
    code = getattr(lib, "AIOS_" + name)
    exc = aioswift.exception_for_code(code)
    assert type(exc) is cls
    assert isinstance(exc, RuntimeError) and isinstance(exc, aioswift.AioswiftError)
    assert exc.code == code
    assert exc.name == "AIOS_" + name
    assert str(exc) == aioswift.strerror(code)


def test_einval_is_a_value_error():
    exc = aioswift.exception_for_code(lib.AIOS_EINVAL)
    assert isinstance(exc, ValueError) and isinstance(exc, aioswift.AioswiftError)
    assert exc.code == lib.AIOS_EINVAL
    assert str(exc) == "invalid argument"


@pytest.mark.parametrize("number, cls", [
    (errno.ECONNRESET, ConnectionResetError),
    (errno.ENOENT, FileNotFoundError),
    (errno.EPIPE, BrokenPipeError),
    (errno.EIO, OSError),
])
def test_negative_errno_is_an_os_error_with_that_errno(number, cls):
    exc = aioswift.exception_for_code(-number)
    assert type(exc) is cls
    assert exc.errno == number
    assert exc.strerror == aioswift.strerror(-number)


@pytest.mark.parametrize("name", ["EBADHANDLE", "EBUSY", "ENOTIMPL", "ESTEP",
                                  "EINCOMPLETE", "EQUEUEFULL", "EUSER"])
def test_other_codes_are_aioswift_errors_with_code_and_message(name):
    code = getattr(lib, "AIOS_" + name)
    exc = aioswift.exception_for_code(code)
    assert type(exc) is aioswift.AioswiftError
    assert exc.code == code
    assert str(exc) == aioswift.strerror(code)
    assert exc.name == "AIOS_" + name


def test_a_message_overrides_the_default():
    exc = aioswift.exception_for_code(lib.AIOS_ECLOSED, "custom")
    assert str(exc) == "custom"
    assert aioswift.exception_for_code(lib.AIOS_ECANCELLED, "why").args == ("why",)
    assert aioswift.exception_for_code(lib.AIOS_ECANCELLED).args == ()


def test_the_library_describes_every_code_of_the_header():
    with open(header_path(), encoding="utf-8") as f:
        table = build_ffi.errno_map(f.read())
    assert len(table) >= 21
    for name, value, message in table:
        assert getattr(lib, "AIOS_" + name) == value
        assert aioswift.strerror(value) == message, name
        assert aioswift.err_name(value) == "AIOS_" + name
        assert aioswift.errorcode[value] == name
    assert aioswift.err_name(-errno.ECONNRESET) == "ECONNRESET"
    assert aioswift.err_name(-2999) == "UNKNOWN"


def new_error(code, message=None):
    out = ffi.new("aios_error_t **")
    status = lib.aios_error_new(code, message.encode() if message else ffi.NULL, out)
    assert status == 0
    return ffi.gc(out[0], lib.aios_error_unref)


@pytest.mark.parametrize("name, kind, cls", [
    ("ECANCELLED", "CANCELLED", asyncio.CancelledError),
    ("ETIMEOUT", "TIMEOUT", TimeoutError),
    ("EINVALIDSTATE", "INVALID_STATE", asyncio.InvalidStateError),
    ("ECLOSED", "RUNTIME", aioswift.LoopClosedError),
    ("EINVAL", "RUNTIME", aioswift.InvalidArgumentError),
    ("EQUEUEEMPTY", "QUEUE_EMPTY", aioswift.AioswiftError),
])
def test_error_objects_of_the_library(name, kind, cls):
    code = getattr(lib, "AIOS_" + name)
    error = new_error(code)
    assert lib.aios_error_code(error) == code
    assert lib.aios_error_kind(error) == getattr(lib, "AIOS_ERROR_" + kind)
    assert lib.aios_error_os_errno(error) == 0
    assert lib.aios_error_user_data(error) == ffi.NULL
    exc = _errors.exception_from_error(error)
    assert type(exc) is cls
    # aios_error_new(code, NULL): "NULL for the code's default message"
    assert _runtime.text(lib.aios_error_message(error)) == aioswift.strerror(code)
    if cls is asyncio.CancelledError:
        assert exc.args == ()
    else:
        assert str(exc) == aioswift.strerror(code)


def test_os_error_objects_carry_their_errno():
    error = new_error(-errno.ECONNRESET, "peer went away")
    assert lib.aios_error_kind(error) == lib.AIOS_ERROR_OS
    assert lib.aios_error_os_errno(error) == errno.ECONNRESET
    exc = _errors.exception_from_error(error)
    assert type(exc) is ConnectionResetError
    assert exc.errno == errno.ECONNRESET
    assert exc.strerror == "peer went away"


def test_a_user_error_gives_back_the_python_exception():
    boxed = _runtime.boxed_count()
    original = KeyError("the original")
    error = _errors.error_from_exception(original)
    try:
        assert _runtime.boxed_count() == boxed + 1
        assert lib.aios_error_code(error) == lib.AIOS_EUSER
        assert lib.aios_error_kind(error) == lib.AIOS_ERROR_USER
        assert _runtime.text(lib.aios_error_message(error)) == "KeyError: 'the original'"
        assert _errors.exception_from_error(error) is original
        assert lib.aios_error_ref(error) == 0
        assert lib.aios_error_unref(error) == 0
        assert _runtime.boxed_count() == boxed + 1      # one reference left
    finally:
        lib.aios_error_unref(error)
    assert _runtime.boxed_count() == boxed              # destructor ran once
    assert _runtime.stats["unknown_release"] == 0


def test_a_user_error_made_by_c_code_is_an_aioswift_error():
    out = ffi.new("aios_error_t **")
    data = ffi.new("int *", 5)
    assert lib.aios_error_new_user(b"from C", data, ffi.NULL, out) == 0
    error = ffi.gc(out[0], lib.aios_error_unref)
    assert lib.aios_error_user_data(error) == data
    exc = _errors.exception_from_error(error)
    assert type(exc) is aioswift.AioswiftError
    assert exc.code == lib.AIOS_EUSER
    assert str(exc) == "from C"


def test_bad_arguments_are_error_codes():
    # NULL is "a bad argument": an error code (which one the header leaves open).
    assert lib.aios_error_new(lib.AIOS_EINVAL, ffi.NULL, ffi.NULL) == lib.AIOS_EINVAL
    assert lib.aios_error_code(ffi.NULL) < 0
    assert lib.aios_error_unref(ffi.NULL) == 0
    assert lib.aios_loop_is_closed(ffi.NULL) < 0
    with pytest.raises(aioswift.AioswiftError):
        _errors.check(lib.aios_loop_stop(ffi.NULL))


def test_a_freed_object_is_ebadhandle():
    out = ffi.new("aios_error_t **")
    assert lib.aios_error_new(lib.AIOS_EINVAL, ffi.NULL, out) == 0
    error = out[0]
    assert lib.aios_error_unref(error) == 0
    assert lib.aios_error_code(error) == lib.AIOS_EBADHANDLE
    assert lib.aios_error_kind(error) == lib.AIOS_EBADHANDLE
    assert lib.aios_error_message(error) == ffi.NULL
    assert lib.aios_error_unref(error) == lib.AIOS_EBADHANDLE
    loop_out = ffi.new("aios_loop_t **")
    assert lib.aios_loop_new(loop_out) == 0
    loop = loop_out[0]
    assert lib.aios_loop_close(loop) == 0
    assert lib.aios_loop_unref(loop) == 0
    with pytest.raises(aioswift.AioswiftError) as info:
        _errors.check(lib.aios_loop_stop(loop))
    assert info.value.code == lib.AIOS_EBADHANDLE
