"""The cdef is the header itself, preprocessed: nothing is declared twice."""

import re

import cffi

import build_ffi
from aioswift import ffi, lib

from conftest import header_path


def header_text():
    with open(header_path(), encoding="utf-8") as f:
        return f.read()


def test_the_cdef_parses_and_holds_no_preprocessor_leftovers():
    text = build_ffi.cdef_text(header_text())
    directives = [line for line in text.splitlines() if line.lstrip().startswith("#")]
    assert all(re.fullmatch(r"#define AIOS_\w+ \.\.\.", line) for line in directives)
    assert "__attribute__" not in text and "AIOS_EXTERN" not in text
    cffi.FFI().cdef(text)


def test_every_function_of_the_header_is_in_the_module():
    names = re.findall(r"AIOS_EXTERN[^;(]*?\b(aios_\w+)\s*\(", header_text())
    assert len(names) > 60
    missing = [name for name in names if not hasattr(lib, name)]
    assert missing == []


def test_the_errno_enum_comes_from_the_x_macro():
    table = build_ffi.errno_map(header_text())
    enum = ffi.typeof("aios_errno_t").relements
    assert {f"AIOS_{name}": value for name, value, _ in table} == \
        {k: v for k, v in enum.items() if k != "AIOS_OK"}
    assert enum["AIOS_OK"] == 0
