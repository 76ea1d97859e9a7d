# libaio-swift: the front door. `make` builds the release library into build/.
VERSION   := 0.1.0
SOMAJOR   := 0
PREFIX    ?= /usr/local
BUILD     := $(CURDIR)/build
PYTHON    ?= python3
# The Python binding is tested on every CPython the machine has of 3.11,
# 3.12 and 3.13 (pyenv's), or on $(PYTHON) alone.
PYTHONS   ?= $(or $(wildcard $(HOME)/.pyenv/versions/3.11*/bin/python \
                             $(HOME)/.pyenv/versions/3.12*/bin/python \
                             $(HOME)/.pyenv/versions/3.13*/bin/python),$(PYTHON))
SWIFT     ?= swift
# valgrind runs one thread at a time; its default lock lets a busy thread
# take it back at once and starve the others for minutes. Fair scheduling
# hands it round, so the threaded tests take seconds, not minutes.
VALGRIND  ?= valgrind --fair-sched=yes --quiet --error-exitcode=99 --leak-check=full \
             --errors-for-leak-kinds=definite,indirect --show-leak-kinds=definite,indirect
PKG       := PKG_CONFIG_PATH=$(BUILD)/lib/pkgconfig pkg-config
# Exclusivity is checked in debug builds and `swift test`; release builds
# leave the run-time checks out of their hot paths.
SWIFTC_RELEASE := -Xswiftc -static-stdlib -Xswiftc -enforce-exclusivity=unchecked -Xswiftc -cross-module-optimization
# The C library counts references without atomic instructions: through the C
# ABI every object belongs to its loop's thread, and the other threads only
# touch C-side counts (see the top of Sources/AioSwiftC/ObjectTable.swift).
# Swift programs importing the package keep Swift's atomic counting. The
# library builds in its own directory, so the two builds do not undo each
# other.
SO_SCRATCH := $(CURDIR)/.build/c-library
SO_FLAGS  := -c release --product aio-swift --scratch-path $(SO_SCRATCH) $(SWIFTC_RELEASE) \
             -Xswiftc -Xfrontend -Xswiftc -assume-single-threaded \
             -Xlinker --version-script=$(CURDIR)/Sources/AioSwiftC/exports.map \
             -Xlinker -soname=libaio-swift.so.$(SOMAJOR)

.PHONY: all deps install test checks swift-test c-test python-test bench bench-echo demo clean

# `make` and `make install` build only: they install nothing. `make test`,
# `make bench` and `make demo` first install what a fresh machine lacks
# (make deps), then build.
all:
	$(SWIFT) build $(SO_FLAGS)
	mkdir -p $(BUILD)/lib/pkgconfig $(BUILD)/include
	@# Copied and stripped aside, then renamed into place: a process that has
	@# the library mapped keeps its old file instead of seeing it rewritten.
	cp $(SO_SCRATCH)/release/libaio-swift.so $(BUILD)/lib/libaio-swift.so.$(VERSION).tmp
	@# valgrind cannot read the DWARF 5 the toolchain writes; symbols stay.
	strip --strip-debug $(BUILD)/lib/libaio-swift.so.$(VERSION).tmp
	mv -f $(BUILD)/lib/libaio-swift.so.$(VERSION).tmp $(BUILD)/lib/libaio-swift.so.$(VERSION)
	ln -sf libaio-swift.so.$(VERSION) $(BUILD)/lib/libaio-swift.so.$(SOMAJOR)
	ln -sf libaio-swift.so.$(SOMAJOR) $(BUILD)/lib/libaio-swift.so
	cp include/aio_swift.h $(BUILD)/include/
	sed -e 's|@PREFIX@|$(BUILD)|' -e 's|@VERSION@|$(VERSION)|' \
	    pkgconfig/aio-swift.pc.in > $(BUILD)/lib/pkgconfig/aio-swift.pc

# Installs what a fresh machine lacks: libuv's headers, valgrind, cffi, pytest.
deps:
	@pkg-config --exists libuv && command -v valgrind >/dev/null || \
	  { (apt-get update -qq || true) && apt-get install -y -qq libuv1-dev valgrind pkg-config; }
	@for py in $(PYTHONS); do \
	  $$py -c 'import cffi, pytest, setuptools' 2>/dev/null || $$py -m pip install -q cffi pytest setuptools; \
	done

install: all
	mkdir -p $(DESTDIR)$(PREFIX)/lib/pkgconfig $(DESTDIR)$(PREFIX)/include
	cp -P $(BUILD)/lib/libaio-swift.so* $(DESTDIR)$(PREFIX)/lib/
	cp include/aio_swift.h $(DESTDIR)$(PREFIX)/include/
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@VERSION@|$(VERSION)|' \
	    pkgconfig/aio-swift.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/aio-swift.pc

test: deps
	$(MAKE) --no-print-directory checks

checks: all swift-test c-test python-test fuzz-short

swift-test:
	$(SWIFT) test
	@# A user's program in Swift 6 mode (the package's targets build in 5).
	$(SWIFT) build --product aio-swift6-user
	$(CURDIR)/.build/debug/aio-swift6-user

# C tests: built as a user would, through pkg-config only, run under valgrind.
C_TESTS := $(patsubst Tests/c/%.c,Tests/c/bin/%,$(wildcard Tests/c/test_*.c))
Tests/c/bin/%: Tests/c/%.c $(wildcard Tests/c/*.h) $(BUILD)/include/aio_swift.h
	@mkdir -p Tests/c/bin
	cc -std=c99 -Wall -Wextra -Werror -pedantic -g -o $@ $< \
	   $$($(PKG) --cflags --libs aio-swift) -Wl,-rpath,$(BUILD)/lib -lpthread -lm
# Every C test runs under helgrind too: the library's reference counts are
# not atomic (docs/threads.md), so a count touched by two threads must show
# up as a race.
HELGRIND  ?= valgrind --fair-sched=yes --quiet --tool=helgrind --error-exitcode=99 \
             --suppressions=$(CURDIR)/Tests/c/helgrind.supp
c-test: all $(C_TESTS)
	bash Tests/check_library.sh $(BUILD)/lib/libaio-swift.so include/aio_swift.h
	bash Tests/c/run.sh "$(VALGRIND)" $(C_TESTS)
	bash Tests/c/run.sh "$(HELGRIND)" $(C_TESTS)
	@# Counters driven past 2^31: too many calls for valgrind. On a contended
	@# host it can take minutes natively, so its watchdog allows ten.
	AIOS_TEST_LONG=1 AIOS_TEST_TIMEOUT=600 Tests/c/bin/test_hardening test_cancel_count_saturates

python-test: all
	@for py in $(PYTHONS); do \
	  echo "== Python binding on $$($$py -c 'import sys; print(sys.version.split()[0])')"; \
	  $(MAKE) --no-print-directory -C bindings/python build BUILD=$(BUILD) PYTHON=$$py || exit 1; \
	  (cd bindings/python && $$py -m pytest -q tests) || exit 1; \
	done

bench: deps
	$(MAKE) --no-print-directory all
	SWIFT_BENCH_FLAGS="$(SWIFTC_RELEASE)" bash bench/run.sh

# The echo benchmark (bench/py/echo_bench.py; run.sh runs it too). Its load
# generator is plain epoll and its reference server raw libuv: neither links
# the library, so `make bench-echo` needs no Swift build.
bench/bin/echo_load: bench/c/echo_load.c
	@mkdir -p bench/bin
	$(CC) -O2 -std=gnu11 -Wall -Wextra -o $@ $<
bench/bin/echo_uv: bench/c/echo_uv.c
	@mkdir -p bench/bin
	$(CC) -O2 -std=gnu11 -Wall -Wextra -o $@ $< $$(pkg-config --cflags --libs libuv)
bench-echo: bench/bin/echo_load bench/bin/echo_uv
	$(PYTHON) bench/py/echo_bench.py

demo: deps
	$(MAKE) --no-print-directory all
	SWIFT_FLAGS="$(SWIFTC_RELEASE)" bash examples/run_demo.sh

clean:
	rm -rf $(BUILD) .build Tests/c/bin bench/bin examples/c/bin Tests/fuzz/bin Tests/fuzz/work

# The fuzzer over the C ABI: `make fuzz` (FUZZ_SECONDS), `make fuzz-short`.
include Tests/fuzz/fuzz.mk
