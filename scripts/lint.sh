#!/usr/bin/env bash
# clang-tidy (Debian 12's clang-tidy-14) over every C file of src/ with the checks of
# .clang-tidy, on the compile commands of the build in $1 (default build-asan, configured
# here if needed). Any finding fails (WarningsAsErrors). `make lint` runs it.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-asan}
tidy=$(command -v clang-tidy-14 || command -v clang-tidy || true)
if [[ -z "$tidy" ]]; then echo "lint: clang-tidy-14 not found (scripts/deps.sh --test installs it)" >&2; exit 1; fi
if [[ ! -f "$build/compile_commands.json" ]]; then
  cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Debug -DTERN_SANITIZE=ON >/dev/null
fi
# the generated protobuf header and tern_version.h, which sources include
cmake --build "$build" --target terncommon tern_version >/dev/null
mapfile -t files < <(find src -name '*.c' | sort)
jobs=$(nproc 2>/dev/null || echo 2)
log=$(mktemp)
trap 'rm -f "$log"' EXIT
rc=0
printf '%s\n' "${files[@]}" |
  xargs -P "$jobs" -n 4 "$tidy" -p "$build" --quiet --header-filter='^'"$PWD"'/src/' >"$log" 2>/dev/null || rc=$?
if ((rc != 0)) || grep -q ': \(warning\|error\): ' "$log"; then
  grep -A6 ': \(warning\|error\): ' "$log" | head -n 400 >&2
  echo "lint: clang-tidy found $(grep -c ': \(warning\|error\): ' "$log") problem(s) in ${#files[@]} files" >&2
  exit 1
fi
echo "lint: clang-tidy clean over ${#files[@]} files"
