# Tests/fuzz/fuzz.mk: the libFuzzer targets over the C ABI (see
# Tests/fuzz/README.md): fuzz_api.c, over the whole header, and
# fuzz_stream_reader.c, the stream reader's buffer and separators against a
# model of asyncio's. The main Makefile includes it; `make -f
# Tests/fuzz/fuzz.mk fuzz-short` works on its own too, once build/ holds the
# library.
#
#   make fuzz         build, then fuzz each target in turn: fuzz_api for
#                     FUZZ_SECONDS (default 60) into Tests/fuzz/work/corpus,
#                     fuzz_stream_reader for FUZZ_READER_SECONDS (default
#                     FUZZ_SECONDS) into Tests/fuzz/work/corpus-stream-reader,
#                     working copies of the seed corpora
#   make fuzz-api, make fuzz-stream-reader: one of them only
#   make fuzz-short   replay every file of corpus/ and findings/ (and of
#                     corpus-stream-reader/ and findings-stream-reader/)
#                     once, then fuzz for FUZZ_SHORT_SECONDS (default 30) and
#                     FUZZ_READER_SHORT_SECONDS (default 15), with a fixed
#                     seed; fails on any finding (what `make test` runs)
#   make fuzz-clean   remove Tests/fuzz/bin and Tests/fuzz/work
#   make fuzz-covers-header
#                     check that fuzz_api.c names every function the header
#                     declares (fuzz-short checks it first)
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
FUZZ_READER_BIN    := $(FUZZ_DIR)/bin/fuzz_stream_reader
FUZZ_SECONDS       ?= 60
FUZZ_SHORT_SECONDS ?= 30
FUZZ_READER_SECONDS       ?= $(FUZZ_SECONDS)
FUZZ_READER_SHORT_SECONDS ?= 15
# Inputs replayed by fuzz-short: the seeds, then the findings (regression tests).
FUZZ_REPLAY        := $(wildcard $(FUZZ_DIR)/corpus/* $(FUZZ_DIR)/findings/*)
FUZZ_READER_REPLAY := $(wildcard $(FUZZ_DIR)/corpus-stream-reader/* $(FUZZ_DIR)/findings-stream-reader/*)
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

.PHONY: fuzz fuzz-api fuzz-stream-reader fuzz-short fuzz-clean fuzz-covers-header FORCE

# Rebuilt when the compiler or FUZZ_FLAGS change, not only the sources.
$(FUZZ_DIR)/bin/flags: FORCE
	@mkdir -p $(@D)
	@echo '$(CLANG) $(FUZZ_FLAGS)' | cmp -s - $@ || echo '$(CLANG) $(FUZZ_FLAGS)' > $@

$(FUZZ_DIR)/bin/fuzz_%: $(FUZZ_DIR)/fuzz_%.c $(BUILD)/include/aio_swift.h $(FUZZ_DIR)/bin/flags
	@mkdir -p $(@D)
	$(CLANG) $(FUZZ_CFLAGS) $(FUZZ_FLAGS) $(FUZZ_LD) -o $@ $< \
	   $$($(FUZZ_PKG) --cflags --libs aio-swift) -Wl,-rpath,$(BUILD)/lib -lpthread -lm

# $(call fuzz_run,binary,corpus name,seconds): fuzz into work/<corpus name>,
# a working copy of the seeds.
define fuzz_run
	@mkdir -p $(FUZZ_DIR)/work/$(2) $(FUZZ_DIR)/work/artifacts
	cp $(FUZZ_DIR)/$(2)/* $(FUZZ_DIR)/work/$(2)/
	cd $(FUZZ_DIR)/work && $(FUZZ_ENV) ../bin/$(notdir $(1)) $(FUZZ_RUN_FLAGS) \
	   -max_total_time=$(3) -print_final_stats=1 -artifact_prefix=artifacts/ $(2)
endef

# One after the other, even under make -j.
fuzz: $(FUZZ_DEPS)
	$(MAKE) -f $(firstword $(MAKEFILE_LIST)) $(FUZZ_BIN) $(FUZZ_READER_BIN)
	$(call fuzz_run,$(FUZZ_BIN),corpus,$(FUZZ_SECONDS))
	$(call fuzz_run,$(FUZZ_READER_BIN),corpus-stream-reader,$(FUZZ_READER_SECONDS))

fuzz-api: $(FUZZ_DEPS)
	$(MAKE) -f $(firstword $(MAKEFILE_LIST)) $(FUZZ_BIN)
	$(call fuzz_run,$(FUZZ_BIN),corpus,$(FUZZ_SECONDS))

fuzz-stream-reader: $(FUZZ_DEPS)
	$(MAKE) -f $(firstword $(MAKEFILE_LIST)) $(FUZZ_READER_BIN)
	$(call fuzz_run,$(FUZZ_READER_BIN),corpus-stream-reader,$(FUZZ_READER_SECONDS))

# $(call fuzz_short,binary,corpus name,inputs to replay,seconds): replay the
# inputs once, then fuzz with a fixed seed, into work/short. The inputs make
# the library report errors to stderr by the thousand: each run's output
# goes to a log, shown (its end) only if the run fails. A fixed seed: the
# same inputs on every machine, so that a new finding shows up in `make
# fuzz`, not as a red CI run by chance.
define fuzz_short
	$(FUZZ_ENV) $(1) $(FUZZ_RUN_FLAGS) $(3) \
	   > $(FUZZ_DIR)/work/short/$(2).replay.log 2>&1 || { tail -60 $(FUZZ_DIR)/work/short/$(2).replay.log; exit 1; }
	@echo "fuzz-short: $(notdir $(1)) replayed $(words $(3)) inputs"
	mkdir -p $(FUZZ_DIR)/work/short/$(2) && cp $(FUZZ_DIR)/$(2)/* $(FUZZ_DIR)/work/short/$(2)/
	cd $(FUZZ_DIR)/work/short && { $(FUZZ_ENV) ../../bin/$(notdir $(1)) $(FUZZ_RUN_FLAGS) -seed=1 \
	   -max_total_time=$(4) -print_final_stats=1 -artifact_prefix=artifacts/ $(2) \
	   > $(2).fuzz.log 2>&1 || { tail -60 $(2).fuzz.log; exit 1; }; } && grep '^stat::' $(2).fuzz.log
endef

# Every function the header declares (as check_library.sh finds them) is
# named in fuzz_api.c: one it never names is one nothing fuzzes.
fuzz-covers-header: $(FUZZ_DEPS)
	@missing=$$(grep -oE '^AIOS_EXTERN [^;]*\baios_[a-z0-9_]+\(' $(BUILD)/include/aio_swift.h | \
	   grep -oE 'aios_[a-z0-9_]+\($$' | tr -d '(' | sort -u | \
	   while read f; do grep -qw "$$f" $(FUZZ_DIR)/fuzz_api.c || echo "$$f"; done); \
	 if [ -n "$$missing" ]; then echo "fuzz_api.c never calls:" $$missing; exit 1; fi; \
	 echo "fuzz-covers-header: fuzz_api.c calls every function of the header"

fuzz-short: $(FUZZ_DEPS) fuzz-covers-header
	$(MAKE) -f $(firstword $(MAKEFILE_LIST)) $(FUZZ_BIN) $(FUZZ_READER_BIN)
	rm -rf $(FUZZ_DIR)/work/short && mkdir -p $(FUZZ_DIR)/work/short/artifacts
	$(call fuzz_short,$(FUZZ_BIN),corpus,$(FUZZ_REPLAY),$(FUZZ_SHORT_SECONDS))
	$(call fuzz_short,$(FUZZ_READER_BIN),corpus-stream-reader,$(FUZZ_READER_REPLAY),$(FUZZ_READER_SHORT_SECONDS))

fuzz-clean:
	rm -rf $(FUZZ_DIR)/bin $(FUZZ_DIR)/work

FORCE:
