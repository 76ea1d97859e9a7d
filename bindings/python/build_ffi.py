"""Build script of aioswift's cffi extension module, aioswift._aioswift.

cffi's API mode: the declarations cffi reads (cdef) are produced from the
library's own header, include/aio_swift.h, by the C preprocessor, so they are
never written twice by hand. cdef cannot parse #ifdef, attribute macros or the
AIOS_ERRNO_MAP X-macro, so the header is run through `cc -E -P` first (with
its #include lines dropped: cffi knows size_t) and the result is what cffi
reads; the errno enum comes out of the X-macro expanded.

Where the library is:
  1. $AIOSWIFT_PREFIX: PREFIX/include/aio_swift.h and PREFIX/lib/libaio-swift.so
     (the top-level Makefile's build/ directory has that layout);
  2. else `pkg-config aio-swift`;
  3. else /usr/local.
The extension links -laio-swift with an rpath to the library's directory.

The second extension, aioswift._native (aioswift/_native.c: the hot path,
against CPython's C API, calling the library directly), is built from the
same locations: native_extension() describes it for setuptools.

Run it as a script to build both extensions in place (aioswift/_aioswift*.so
and aioswift/_native*.so), which is what `make build` does; setup.py hands
make_ffi and native_extension to setuptools for `pip install`.
"""

import os
import re
import shlex
import shutil
import subprocess
import sys
import sysconfig

HERE = os.path.dirname(os.path.abspath(__file__))
HEADER_NAME = "aio_swift.h"
MODULE_NAME = "aioswift._aioswift"

# Functions of Python called from C ("extern Python", cffi's callbacks). They
# are defined with @ffi.def_extern() in the aioswift package.
EXTERN_PYTHON = """
extern "Python" void aioswift_py_done(aios_future_t *future, void *arg);
extern "Python" void aioswift_py_release(void *value);
extern "Python" void aioswift_py_exception_handler(aios_loop_t *loop,
                                                  const aios_exception_context_t *context,
                                                  void *arg);
"""


class LibraryNotFound(RuntimeError):
    pass


def _pkg_config(*args):
    exe = os.environ.get("PKG_CONFIG", "pkg-config")
    if shutil.which(exe) is None:
        return None
    proc = subprocess.run([exe, *args, "aio-swift"], capture_output=True, text=True)
    if proc.returncode != 0:
        return None
    return proc.stdout.strip()


def locate():
    """Where the header and the library are: (include_dir, lib_dir, how)."""
    prefix = os.environ.get("AIOSWIFT_PREFIX")
    if prefix:
        prefix = os.path.abspath(prefix)
        return os.path.join(prefix, "include"), os.path.join(prefix, "lib"), "AIOSWIFT_PREFIX"
    includedir = _pkg_config("--variable=includedir")
    libdir = _pkg_config("--variable=libdir")
    if includedir and libdir:
        return includedir, libdir, "pkg-config aio-swift"
    return "/usr/local/include", "/usr/local/lib", "default /usr/local"


def find_header(include_dir):
    path = os.path.join(include_dir, HEADER_NAME)
    if not os.path.isfile(path):
        raise LibraryNotFound(
            f"aioswift: {path} not found. Set AIOSWIFT_PREFIX to the prefix the "
            f"library was installed to (or built into: the repository's build/), "
            f"or make `pkg-config aio-swift` find it.")
    return path


def _compiler():
    cc = os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc"
    return shlex.split(cc)


def preprocess(header_text):
    """The header's declarations as plain C that cffi's cdef parses."""
    # #include lines go: cffi knows the standard types, and system headers
    # would bring declarations cffi cannot parse.
    text = "\n".join(line for line in header_text.splitlines()
                     if not re.match(r"\s*#\s*include\b", line))
    cmd = _compiler() + [
        "-E", "-P", "-x", "c",
        # Take the header's non-GNU branch: AIOS_EXTERN expands to nothing.
        "-U__GNUC__", "-U__clang__",
        "-D__attribute__(x)=", "-D_Nonnull=", "-D_Nullable=", "-D__restrict=",
        "-",
    ]
    proc = subprocess.run(cmd, input=text, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"aioswift: preprocessing the header failed ({' '.join(cmd)}):\n"
                           f"{proc.stderr}")
    out = proc.stdout
    if "#" in out or "__attribute__" in out:
        raise RuntimeError("aioswift: the preprocessed header still holds "
                           "directives or attributes cffi cannot parse")
    return out


def integer_macros(header_text):
    """`#define NAME ...` lines for the header's object-like integer macros
    (AIOS_VERSION_*): in API mode cffi takes their values from the compiler."""
    joined = re.sub(r"\\\n", " ", header_text)
    names = []
    for m in re.finditer(r"^\s*#\s*define\s+(AIOS_\w+)(?!\()[ \t]+(\S[^\n]*)$", joined, re.M):
        name, value = m.group(1), m.group(2)
        if '"' in value or "__attribute__" in value or name == "AIOS_EXTERN":
            continue
        names.append(name)
    return "".join(f"#define {name} ...\n" for name in names)


def errno_map(header_text):
    """[(name, value, message)] from the header's AIOS_ERRNO_MAP lines, e.g.
    ("ECANCELLED", -3020, "operation was cancelled (CancelledError)")."""
    return [(m.group(1), int(m.group(2)), m.group(3))
            for m in re.finditer(r'XX\(\s*(\w+)\s*,\s*(-?\d+)\s*,\s*"((?:[^"\\]|\\.)*)"\s*\)',
                                 header_text)]


def cdef_text(header_text):
    return preprocess(header_text) + integer_macros(header_text) + EXTERN_PYTHON


def make_ffi():
    """The FFI builder (setuptools calls it through setup.py's cffi_modules)."""
    from cffi import FFI

    include_dir, lib_dir, _how = locate()
    header = find_header(include_dir)
    with open(header, encoding="utf-8") as f:
        header_text = f.read()
    ffibuilder = FFI()
    ffibuilder.cdef(cdef_text(header_text))
    ffibuilder.set_source(
        MODULE_NAME,
        f'#include "{HEADER_NAME}"\n',
        include_dirs=[include_dir],
        library_dirs=[lib_dir],
        libraries=["aio-swift"],
        extra_link_args=[f"-Wl,-rpath,{lib_dir}"],
    )
    return ffibuilder


NATIVE_MODULE_NAME = "aioswift._native"
NATIVE_SOURCE = os.path.join("aioswift", "_native.c")


def native_extension():
    """The setuptools Extension of aioswift._native. Not the limited API: it
    uses CPython's vectorcall and thread-state calls."""
    from setuptools import Extension

    include_dir, lib_dir, _how = locate()
    find_header(include_dir)
    return Extension(
        NATIVE_MODULE_NAME,
        sources=[NATIVE_SOURCE],
        depends=[os.path.join("aioswift", name) for name in
                 ("_native_io.c", "_native_events.c", "_native_dgram.c", "_native_proc.c")],
        include_dirs=[include_dir],
        library_dirs=[lib_dir],
        libraries=["aio-swift"],
        extra_compile_args=["-O2", "-Wall", "-Wno-missing-field-initializers"],
        extra_link_args=[f"-Wl,-rpath,{lib_dir}"],
    )


def build_native_inplace(verbose=False):
    """Compile aioswift._native next to its source with setuptools' build_ext."""
    from setuptools import Distribution

    here = os.getcwd()
    os.chdir(HERE)
    try:
        dist = Distribution({"name": "aioswift", "ext_modules": [native_extension()]})
        dist.verbose = 1 if verbose else 0
        cmd = dist.get_command_obj("build_ext")
        cmd.inplace = True
        cmd.build_temp = os.path.join("build", "native-" + sysconfig.get_config_var("SOABI"))
        cmd.ensure_finalized()
        cmd.run()
        return cmd.get_ext_fullpath(NATIVE_MODULE_NAME)
    finally:
        os.chdir(here)


def main(argv):
    include_dir, lib_dir, how = locate()
    print(f"aioswift: header and library from {how}: {include_dir}, {lib_dir}")
    ffibuilder = make_ffi()
    if "--print-cdef" in argv:
        with open(find_header(include_dir), encoding="utf-8") as f:
            print(cdef_text(f.read()))
        return 0
    # tmpdir=HERE puts the module at aioswift/_aioswift<EXT_SUFFIX>, in place.
    path = ffibuilder.compile(tmpdir=HERE, verbose="--verbose" in argv)
    print(f"aioswift: built {os.path.relpath(path, HERE)}")
    path = build_native_inplace(verbose="--verbose" in argv)
    print(f"aioswift: built {os.path.relpath(os.path.join(HERE, path), HERE)}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
