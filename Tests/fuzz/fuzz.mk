# Tests/fuzz/fuzz.mk: the libFuzzer target over the whole C ABI
# (Tests/fuzz/fuzz_api.c; see Tests/fuzz/README.md). The main Makefile
# includes it; `make -f Tests/fuzz/fuzz.mk fuzz-short` works on its own too,
# once build/ holds the library.
#
#   make fuzz         build, then fuzz for FUZZ_SECONDS (default 60) into
#                     Tests/fuzz/work/corpus, a working copy of the corpus
#   make fuzz-short   replay every file of corpus/ and findings/ once, then
#                     fuzz for FUZZ_SHORT_SECONDS (default 30); fails on any
#                     finding (what `make test` runs)
#   make fuzz-clean   remove Tests/fuzz/bin and Tests/fuzz/work
#
# FUZZ_FLAGS=-DFUZZ_AVOID_BUGS keeps the fuzzer away from the inputs that
# once broke (fixed, reached by default), to bisect a new finding;
# FUZZ_FLAGS=-DFUZZ_OPEN_BUGS lets it reach the bugs not fixed yet.

BUILD ?= $(CURDIR)/build

# Built with the toolchain's clang: it ships libFuzzer and the sanitizers.
CLANG ?= /opt/swift/usr/bin/clang
ifeq ($(wildcard $(CLANG)),)
  ifeq ($(shell command -v $(CLANG) 2>/dev/null),)
    override CLANG := clang
  endif
endif
# lld when it sits beside that clang (gold warns about every ASan symbol).
FUZZ_LD := $(if $(wildcard $(dir $(CLANG))ld.lld),-fuse-ld=lld)

FUZZ_DIR           := Tests/fuzz
FUZZ_BIN           := $(FUZZ_DIR)/bin/fuzz_api
FUZZ_SECONDS       ?= 60
FUZZ_SHORT_SECONDS ?= 30
FUZZ_FLAGS         ?=
FUZZ_PKG           := PKG_CONFIG_PATH=$(BUILD)/lib/pkgconfig pkg-config

# Only the harness is instrumented: the library is Swift, built without.
FUZZ_CFLAGS := -std=c99 -Wall -Wextra -g -O1 -fno-omit-frame-pointer \
               -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined

# LSan is off: the Swift runtime keeps allocations for the life of the
# process that it would report; leaks are found by the harness instead (every
# destructor ran once, aios_live_objects back at its baseline). abort_on_error
# makes an ASan report a crash libFuzzer records. Signals (SEGV, and the
# abort of a failed oracle) are left to libFuzzer's handler: ASan's, for a
# fault inside the Swift library, died of a nested fault and left no input.
FUZZ_ENV := ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:handle_segv=0:allocator_may_return_null=1 \
            UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
FUZZ_RUN_FLAGS := -timeout=10 -rss_limit_mb=4096

# Inside the main Makefile the library comes from `all`; alone, it must be
# there already.
ifeq ($(words $(MAKEFILE_LIST)),1)
FUZZ_DEPS := $(BUILD)/include/aio_swift.h
else
FUZZ_DEPS := all
endif

.PHONY: fuzz fuzz-short fuzz-clean FORCE

# Rebuilt when the compiler or FUZZ_FLAGS change, not only the sources.
$(FUZZ_DIR)/bin/flags: FORCE
	@mkdir -p $(@D)
	@echo '$(CLANG) $(FUZZ_FLAGS)' | cmp -s - $@ || echo '$(CLANG) $(FUZZ_FLAGS)' > $@

$(FUZZ_BIN): $(FUZZ_DIR)/fuzz_api.c $(BUILD)/include/aio_swift.h $(FUZZ_DIR)/bin/flags
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_CFLAGS) $(FUZZ_FLAGS) $(FUZZ_LD) -o $@ $< \
	   $$($(FUZZ_PKG) --cflags --libs aio-swift) -Wl,-rpath,$(BUILD)/lib -lpthread -lm

fuzz: $(FUZZ_DEPS)
	$(MAKE) -f $(firstword $(MAKEFILE_LIST)) $(FUZZ_BIN)
	@mkdir -p $(FUZZ_DIR)/work/corpus $(FUZZ_DIR)/work/artifacts
	cp $(FUZZ_DIR)/corpus/* $(FUZZ_DIR)/work/corpus/
	cd $(FUZZ_DIR)/work && $(FUZZ_ENV) ../bin/fuzz_api $(FUZZ_RUN_FLAGS) \
	   -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 -artifact_prefix=artifacts/ corpus

fuzz-short: $(FUZZ_DEPS)
	$(MAKE) -f $(firstword $(MAKEFILE_LIST)) $(FUZZ_BIN)
	rm -rf $(FUZZ_DIR)/work/short && mkdir -p $(FUZZ_DIR)/work/short/corpus $(FUZZ_DIR)/work/short/artifacts
	@# The inputs make the library report errors to stderr by the thousand:
	@# each run's output goes to a log, shown (its end) only if the run fails.
	$(FUZZ_ENV) $(FUZZ_BIN) $(FUZZ_RUN_FLAGS) $(wildcard $(FUZZ_DIR)/corpus/* $(FUZZ_DIR)/findings/*) \
	   > $(FUZZ_DIR)/work/short/replay.log 2>&1 || { tail -60 $(FUZZ_DIR)/work/short/replay.log; exit 1; }
	@echo "fuzz-short: replayed $(words $(wildcard $(FUZZ_DIR)/corpus/* $(FUZZ_DIR)/findings/*)) inputs"
	cp $(FUZZ_DIR)/corpus/* $(FUZZ_DIR)/work/short/corpus/
	@# A fixed seed: the same inputs on every machine, so that a new finding
	@# shows up in `make fuzz`, not as a red CI run by chance.
	cd $(FUZZ_DIR)/work/short && { $(FUZZ_ENV) ../../bin/fuzz_api $(FUZZ_RUN_FLAGS) -seed=1 \
	   -max_total_time=$(FUZZ_SHORT_SECONDS) -print_final_stats=1 -artifact_prefix=artifacts/ corpus \
	   > fuzz.log 2>&1 || { tail -60 fuzz.log; exit 1; }; } && grep '^stat::' fuzz.log

fuzz-clean:
	rm -rf $(FUZZ_DIR)/bin $(FUZZ_DIR)/work

FORCE:
