#!/usr/bin/env bash
# Runs every test against the sanitizer build in $1 (default build-asan):
#   1. unit tests (cmocka, through ctest), the store suite on SQLite and on a PostgreSQL
#      started for the run (scripts/pg.sh)
#   2. black-box protocol tests with hand-built frames   (tests/proto)
#   3. the official JS SDK against the real server      (tests/interop)
#   4. integration: crash safety, tern-bench smoke, …    (tests/integration)
#   4a. several ternd nodes on one real redis-server (tests/cluster, docs/cluster.md), HAProxy
#      in front of three (docs/haproxy.cfg); then the JS SDK interop suite again, its clients
#      spread over 3 nodes on one PostgreSQL and one Redis (TERN_TEST_CLUSTER=3)
#   4b. the integration tests that load ternd's threads again, on a ThreadSanitizer ternd
#      ($TERN_TSAN_BUILD, default build-tsan; `make test` builds it)
#   5. load attacks, one at a time with nothing else running  (tests/attack): every issue
#      #11 attack beside a chatting pair; 100 readers that never read beside one that does;
#      hostile queries beside a pair on the same worker
#   6. /console and /chat in headless Chromium           (tests/browser)
# Before them: docs/options.md against the option table, and the C sources against
# .clang-format (scripts/format.sh). Every spawned ternd is checked at teardown for
# sanitizer reports (tests/lib/server.mjs), ThreadSanitizer's included.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build-asan}
export TERND="$PWD/$build/ternd"
export TERN_BUILD="$PWD/$build"
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}

echo "== docs/options.md matches the option table"
if ! diff <(tail -n +5 docs/options.md) <("$TERND" --options-markdown) >/dev/null; then
  echo "docs/options.md is out of date: regenerate it with $TERND --options-markdown (keep its 4-line header)" >&2
  exit 1
fi

echo "== docs/security.md cites tests that exist"
node scripts/check-limits-doc.mjs

echo "== C sources match .clang-format"
scripts/format.sh

# A PostgreSQL for the store suite's postgres group (tests/store, TERN_TEST_PG): started
# here from the Debian package's binaries (scripts/pg.sh), stopped and removed on exit.
# The node tests that need one start their own (tests/lib/pg.mjs), so that stopping it
# under a ternd disturbs nothing else.
pg_out=$(scripts/pg.sh start)
pg_dir=$(tail -n 1 <<<"$pg_out")
trap 'scripts/pg.sh stop "$pg_dir"' EXIT
export TERN_TEST_PG=$(head -n 1 <<<"$pg_out")

echo "== unit tests"
(cd "$build" && ctest --output-on-failure --timeout 300)

run_node() {
  local dir=$1
  shopt -s nullglob
  local files=(tests/$dir/*.test.mjs)
  shopt -u nullglob
  if ((${#files[@]} == 0)); then return 0; fi
  echo "== $dir tests (${#files[@]} files)"
  node --test --test-concurrency=2 --test-timeout=600000 "${files[@]}"
}

run_node proto
run_node interop
run_node integration
run_node cluster
# The official-JS-SDK suite once more, each suite's server being 3 nodes on the run's
# PostgreSQL (a database per suite) and a redis-server of its own, a test's clients on
# nodes 1, 2, 3 in turn (tests/lib/cluster-mode.mjs; the few single-node tests skip, see
# docs/cluster.md). 2 to 7 minutes on this shared 2-core machine (136-418 s measured, by load).
echo "== interop tests across 3 nodes (TERN_TEST_CLUSTER=3)"
TERN_TEST_CLUSTER=3 node --test --test-concurrency=2 --test-timeout=600000 tests/interop/*.test.mjs

# The integration tests (and the cluster tests) again on the ThreadSanitizer build — workers,
# the store's writer and checkpointer, the query pool, hooks and push on the worker loops,
# SIGHUP's parked workers, the cluster bus: a race fails the test (server.mjs). Left out: package (it builds and installs
# the ASan tree itself), sdk-frames (libtern against a scripted server, no ternd) and
# slow-consumer (it bounds ternd's RSS, which TSan's shadow memory inflates). About 2.5
# minutes on an idle 2-core machine.
tsan=${TERN_TSAN_BUILD:-build-tsan}
if [[ ! -x "$tsan/ternd" ]]; then
  echo "no ThreadSanitizer ternd in $tsan/: make test builds it (cmake -DTERN_TSAN=ON, target ternd)" >&2
  exit 1
fi
ln -sfn "$PWD/$build/web" "$tsan/web" # the console and chat pages the banner tests look for
tsan_skip=" package sdk-frames slow-consumer "
tsan_files=()
for f in tests/integration/*.test.mjs; do
  t=$(basename "$f" .test.mjs)
  [[ "$tsan_skip" == *" $t "* ]] || tsan_files+=("$f")
done
# and the cluster tests: the bus's replica is written by worker 0 and read by every worker
tsan_files+=(tests/cluster/*.test.mjs)
echo "== integration tests on ThreadSanitizer ternd (${#tsan_files[@]} files)"
TSAN_OPTIONS="halt_on_error=0:exitcode=25:suppressions=$PWD/tests/tsan.supp" TERND="$PWD/$tsan/ternd" node --test --test-concurrency=2 --test-timeout=600000 "${tsan_files[@]}"
# Alone, one at a time: they measure latency or need the reader that keeps up to keep up,
# which another test's load on these 2 cores can make it fail to do.
echo "== attack tests"
node --test --test-concurrency=1 --test-timeout=600000 tests/attack/*.test.mjs
run_node browser
echo "== all tests passed"
