# The cffi extension is declared here because setuptools takes cffi_modules
# only through setup(); the native hot path (aioswift._native) is an ordinary
# extension module built against the same library. Everything else is in
# pyproject.toml.
import os
import sys

from setuptools import setup

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import build_ffi  # noqa: E402

setup(cffi_modules=["build_ffi.py:make_ffi"],
      ext_modules=[build_ffi.native_extension()])
