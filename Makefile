# tern — the front door. CMake does the compiling (see CMakeLists.txt); this file names
# the few things people do: run the server, run every test, run the benchmarks.
#
#   make run     install what is missing, build, start ternd on 127.0.0.1:8080
#   make test    install what is missing, build with ASan+UBSan, run every test
#   make bench   build optimised, run the standard benchmark set (never part of test)
#   make fuzz    build the libFuzzer targets, run each for FUZZ_SECONDS (never part of test)

BUILD      ?= build
TEST_BUILD ?= build-asan
JOBS       ?= $(shell nproc 2>/dev/null || echo 2)

.PHONY: all build run test test-unit test-node deps deps-test bench fuzz clean format

all: build

deps:
	@scripts/deps.sh

deps-test:
	@scripts/deps.sh --test

build:
	@cmake -S . -B $(BUILD) -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
	@cmake --build $(BUILD) -j$(JOBS)

run: deps build
	@mkdir -p tern-data
	$(BUILD)/ternd --data-dir ./tern-data $(ARGS)

$(TEST_BUILD)/ternd: FORCE
	@cmake -S . -B $(TEST_BUILD) -DCMAKE_BUILD_TYPE=Debug -DTERN_SANITIZE=ON >/dev/null
	@cmake --build $(TEST_BUILD) -j$(JOBS)

test: deps-test $(TEST_BUILD)/ternd
	@scripts/test.sh $(TEST_BUILD)

test-unit: $(TEST_BUILD)/ternd
	@cd $(TEST_BUILD) && ctest --output-on-failure

bench: deps build
	@scripts/bench.sh $(BUILD)

# libFuzzer targets (clang) in build-fuzz/, FUZZ_SECONDS (default 60) each; docs/fuzzing.md
fuzz:
	@scripts/fuzz.sh $(FUZZ_TARGETS)

clean:
	rm -rf $(BUILD) $(TEST_BUILD) build-fuzz

format:
	clang-format -i $(shell find src -name '*.[ch]') include/tern/*.h tests/unit/*.c

FORCE:
