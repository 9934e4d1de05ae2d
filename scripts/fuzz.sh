#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan+UBSan, -DTERN_FUZZ=ON) in build-fuzz/ and runs
# each for FUZZ_SECONDS seconds on its committed corpus (docs/fuzzing.md).
#
#   scripts/fuzz.sh [target ...]      targets: http ws_frame dispatch where config imgsize import
#                                     jsonlim (default all)
#
#   FUZZ_SECONDS=60    time per target
#   FUZZ_JOBS=1        targets run side by side (each is one process)
#   FUZZ_TIMEOUT=20    seconds one input may take before it counts as a hang (generous:
#                      on a loaded machine I/O stalls made a 1 ms input take 13 s)
#   FUZZ_MERGE=0       1: afterwards merge what the run found into tests/fuzz/corpus/<t>
#                      (libFuzzer -merge=1 keeps only inputs that add coverage)
#   FUZZ_BUILD=build-fuzz
#
# tests/fuzz/dict/<t>.dict, when present, is passed as -dict. The committed corpus is only
# read; new inputs go to $FUZZ_BUILD/fuzz-out/<t>/corpus and crashes to
# $FUZZ_BUILD/fuzz-out/<t>/ (crash-*, leak-*, timeout-*, oom-*). The script
# exits 1 if any target crashed. A crash is fixed, then its input is committed as
# tests/fuzz/corpus/<t>/regress-<name> so `make test` replays it from then on.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FUZZ_BUILD:-build-fuzz}
secs=${FUZZ_SECONDS:-60}
timeout=${FUZZ_TIMEOUT:-20}
jobs=${FUZZ_JOBS:-1}
all=(http ws_frame dispatch where config imgsize import jsonlim)
targets=("$@")
((${#targets[@]})) || targets=("${all[@]}")

# bytes: room for a request past the 16 KiB header limit, a frame past max_frame, and a
# dozen commands; where/config inputs are short texts; an import body of a few dozen records;
# jsonlim: past 64 levels of nesting and 64 four-byte characters with room to spare
declare -A max_len=([http]=20000 [ws_frame]=20000 [dispatch]=16384 [where]=4096 [config]=4096 [imgsize]=4096
  [import]=16384 [jsonlim]=4096)
# config_load reports every bad flag on stderr: silence the target (libFuzzer keeps its own
# descriptor for crash reports)
declare -A extra=([config]=-close_fd_mask=3)

for t in "${targets[@]}"; do
  [[ -n ${max_len[$t]:-} ]] || { echo "fuzz: unknown target $t (one of: ${all[*]})" >&2; exit 2; }
done

# one build at a time in $build (two scripts started together would race in make)
mkdir -p "$build"
exec 9>"$build/.fuzz-build.lock"
flock 9
CC=${CC:-clang} cmake -S . -B "$build" -DTERN_FUZZ=ON -DCMAKE_BUILD_TYPE=Debug -DCMAKE_C_FLAGS_DEBUG="-g -O1" >/dev/null
cmake --build "$build" -j"$(nproc 2>/dev/null || echo 2)" --target "${targets[@]/#/fuzz_}"
flock -u 9

run() {
  local t=$1 out=$build/fuzz-out/$1
  mkdir -p "$out/corpus"
  rm -f "$out"/crash-* "$out"/leak-* "$out"/timeout-* "$out"/oom-* # reported by an earlier run
  echo "== fuzz_$t for ${secs}s (log: $out/fuzz.log)"
  # first directory: where new inputs go; the committed corpus is read only
  local dict=()
  [[ -f tests/fuzz/dict/$t.dict ]] && dict=(-dict="tests/fuzz/dict/$t.dict")
  [[ -n ${extra[$t]:-} ]] && dict+=("${extra[$t]}")
  "$build/tests/fuzz/fuzz_$t" -max_total_time="$secs" -rss_limit_mb=2048 -timeout="$timeout" \
    -max_len="${max_len[$t]}" -print_final_stats=1 -artifact_prefix="$out/" "${dict[@]}" \
    "$out/corpus" "tests/fuzz/corpus/$t" >"$out/fuzz.log" 2>&1 || true
  local last
  last=$(grep -E '^#[0-9]+' "$out/fuzz.log" | tail -1 || true)
  echo "   fuzz_$t: ${last:-no progress line}"
  local found
  found=$(find "$out" -maxdepth 1 -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' -o -name 'oom-*' \))
  if [[ -n $found ]]; then
    echo "   fuzz_$t FOUND A CRASH:" $found
    grep -m1 -E 'ERROR: |FUZZ CHECK FAILED|SUMMARY' "$out/fuzz.log" | sed 's/^/   /' || true
    return 1
  fi
  if [[ ${FUZZ_MERGE:-0} == 1 ]]; then
    "$build/tests/fuzz/fuzz_$t" -merge=1 -max_len="${max_len[$t]}" -rss_limit_mb=2048 -timeout="$timeout" \
      "tests/fuzz/corpus/$t" "$out/corpus" >>"$out/fuzz.log" 2>&1
    echo "   merged into tests/fuzz/corpus/$t ($(ls "tests/fuzz/corpus/$t" | wc -l) files)"
  fi
}

failed=0
running=0
for t in "${targets[@]}"; do
  if ((jobs > 1)); then
    run "$t" &
    running=$((running + 1))
    if ((running >= jobs)); then
      wait -n || failed=1
      running=$((running - 1))
    fi
  else
    run "$t" || failed=1
  fi
done
while ((running > 0)); do
  wait -n || failed=1
  running=$((running - 1))
done
if ((failed)); then
  echo "fuzz: crashes found (see above); fix them and keep each input as a regress-* corpus file" >&2
  exit 1
fi
echo "fuzz: no crashes"
