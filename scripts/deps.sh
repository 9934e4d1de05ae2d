#!/usr/bin/env bash
# Installs what tern needs on Debian 12, only what is missing: the build and runtime
# libraries always (node and npm too: the build bundles web/, see web/build.sh), and with
# --test the test tools (Chromium for tests/browser) and the npm packages of tests/.
# Uses sudo when not root. Safe to run again: it exits quickly when all is present.
set -euo pipefail
cd "$(dirname "$0")/.."

# file: what `make deb`'s cpack runs dpkg-shlibdeps with (dpkg-dev comes with build-essential)
# libhiredis-dev: the cluster bus (src/server/bus/redis); the package then depends on libhiredis0.14
# liburing-dev: the workers' socket writes in one io_uring submission per loop iteration (src/server/net/uring.c)
build_pkgs=(build-essential cmake pkg-config libuv1-dev liburing-dev libhttp-parser-dev libprotobuf-c-dev protobuf-c-compiler
  libjansson-dev libsqlite3-dev libpcre2-dev libssl-dev libcurl4-openssl-dev libpq-dev libhiredis-dev gnuplot-nox nodejs npm file)
# chromium: the browser tests of /console and /chat (driven by playwright-core from web/)
# systemd (systemd-analyze verify) and man-db: the package test (tests/integration/package.test.mjs)
# prometheus: promtool check metrics, the real parser of /metrics (tests/proto/ops-metrics.test.mjs)
# postgresql: the store suite's PostgreSQL group and the integration tests on --store postgres://
#   (scripts/pg.sh starts a throwaway server from its binaries; the packaged cluster is not used)
# clang-format-14 and clang-tidy-14: the format check and `make lint` (scripts/format.sh, scripts/lint.sh)
# linux-perf and curl: bench/paced.sh, the per-message breakdown of a paced run (never part of make test)
# redis-server: the cluster tests' bus (tests/cluster, started by tests/lib/redis.mjs)
# haproxy: tests/cluster/haproxy.test.mjs runs docs/haproxy.cfg (a plain process; the packaged
#   service is not used)
# mosquitto: the reference broker of make bench's paced pairs (tern-bench --protocol mqtt) and
#   its check in tests/integration/bench.test.mjs (a plain process; the packaged service is not used)
test_pkgs=(libcmocka-dev clang libclang-rt-14-dev clang-format-14 clang-tidy-14 procps openssl tmux sqlite3 chromium systemd
  man-db prometheus linux-perf curl redis-server postgresql haproxy mosquitto)

want=("${build_pkgs[@]}")
if [[ "${1:-}" == "--test" ]]; then want+=("${test_pkgs[@]}"); fi

missing=()
for p in "${want[@]}"; do
  if [[ "$p" == nodejs || "$p" == npm ]]; then
    command -v "${p/nodejs/node}" >/dev/null 2>&1 && continue
  fi
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "deps: installing ${missing[*]}"
  SUDO=""
  if [[ $(id -u) -ne 0 ]]; then SUDO=sudo; fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if [[ "${1:-}" == "--test" ]]; then
  # The official SDK and the test helpers, pinned in tests/package-lock.json.
  if [[ ! -d tests/node_modules ]] || [[ tests/package-lock.json -nt tests/node_modules/.stamp ]]; then
    echo "deps: npm ci in tests/"
    (cd tests && npm ci --no-audit --no-fund --loglevel=error && touch node_modules/.stamp)
  fi
fi
