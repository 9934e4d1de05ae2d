# tern — the front door. CMake does the compiling (see CMakeLists.txt); this file names
# the few things people do: run the server, run every test, run the benchmarks.
#
#   make run     install what is missing, build ternd and tern quietly, start ternd on
#                127.0.0.1:8080 with its data in ./tern-data (DATA=dir, ARGS="--flag=value …")
#   make test    install what is missing, build with ASan+UBSan (-Werror) and ternd with
#                ThreadSanitizer, check the format, run every test
#   make lint    clang-tidy over src/ with .clang-tidy's checks (not part of test: 4.5-9 min)
#   make install build, then install under PREFIX (default /usr/local), DESTDIR honoured
#   make deb     build for /usr and make the Debian package in $(BUILD)/dist/ (docs/operations.md)
#   make bench   build optimised, run the standard benchmark set (never part of test)
#   make fuzz    build the libFuzzer targets, run each for FUZZ_SECONDS (never part of test)

BUILD      ?= build
TEST_BUILD ?= build-asan
TSAN_BUILD ?= build-tsan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)
PREFIX     ?= /usr/local
DATA       ?= tern-data
# a build directory configured before keeps its build type (make run BUILD=build-asan)
CONFIGURE   = cmake -S . -B $(BUILD) $(if $(wildcard $(BUILD)/CMakeCache.txt),,-DCMAKE_BUILD_TYPE=RelWithDebInfo)

.PHONY: all build run test test-unit test-node deps deps-test bench fuzz clean format lint install deb

all: build

deps:
	@scripts/deps.sh

deps-test:
	@scripts/deps.sh --test

build:
	@$(CONFIGURE) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

# Only what `make run` starts (ternd, tern, the web pages ternd serves), the compiler's
# output in $(BUILD)/build.log, shown only when the build fails.
run: deps
	@mkdir -p $(BUILD)
	@printf 'building ternd and tern in %s/ (log: %s/build.log)... ' '$(BUILD)' '$(BUILD)'
	@{ $(CONFIGURE) && cmake --build $(BUILD) -j$(JOBS) --target run-targets; } >$(BUILD)/build.log 2>&1 \
	  || { echo failed; tail -n 40 $(BUILD)/build.log; exit 1; }
	@echo done
	@mkdir -p $(DATA)
	@exec $(BUILD)/ternd --data-dir $(DATA) $(ARGS)

install: build
	@DESTDIR=$(DESTDIR) cmake --install $(BUILD) --prefix $(PREFIX)

deb: deps
	@cmake -S . -B $(BUILD) -DCMAKE_INSTALL_PREFIX=/usr $(if $(wildcard $(BUILD)/CMakeCache.txt),,-DCMAKE_BUILD_TYPE=RelWithDebInfo) >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)
	@cd $(BUILD) && cpack -G DEB

$(TEST_BUILD)/ternd: FORCE
	@cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTERN_SANITIZE=ON >/dev/null
	@cmake --build $(TEST_BUILD) -j$(JOBS)

# ternd alone with ThreadSanitizer, for the TSan phase of scripts/test.sh
$(TSAN_BUILD)/ternd: FORCE
	@cmake -S . -B $(TSAN_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTERN_TSAN=ON >/dev/null
	@cmake --build $(TSAN_BUILD) -j$(JOBS) --target ternd

test: deps-test $(TEST_BUILD)/ternd $(TSAN_BUILD)/ternd
	@TERN_TSAN_BUILD=$(TSAN_BUILD) scripts/test.sh $(TEST_BUILD)

test-unit: $(TEST_BUILD)/ternd
	@cd $(TEST_BUILD) && ctest --output-on-failure

bench: deps build
	@scripts/bench.sh $(BUILD)

# libFuzzer targets (clang) in build-fuzz/, FUZZ_SECONDS (default 60) each; docs/fuzzing.md
fuzz:
	@scripts/fuzz.sh $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD) $(TEST_BUILD) $(TSAN_BUILD) build-fuzz

# clang-tidy with .clang-tidy over src/, on the sanitizer build's compile commands
lint: deps-test
	@scripts/lint.sh $(TEST_BUILD)

# rewrites the C sources to .clang-format (clang-format 14); make test checks them
format:
	@scripts/format.sh -i

FORCE:
