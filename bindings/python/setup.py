# The cffi extension is declared here because setuptools takes cffi_modules
# only through setup(); everything else is in pyproject.toml.
from setuptools import setup

setup(cffi_modules=["build_ffi.py:make_ffi"])
