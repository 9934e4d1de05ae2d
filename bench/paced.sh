#!/usr/bin/env bash
# bench/paced.sh — where a paced message's time goes (issue #17; bench/README.md, "Paced
# latency breakdown"). One tern-bench pairs run at a fixed rate against a fresh ternd, and
# over 8 s of its measured window:
#   perf stat --per-thread: CPU (task-clock), system calls and context switches per thread;
#   two scrapes of /metrics: tern_stage_seconds_total per stage, the store's histograms;
#   tern-bench --timeline: delivery latency per 100 ms of send time, and beside it /metrics
#   every 100 ms (OUT.poll, bench/paced-sampler.mjs: unix time, the writer's checkpoint holds
#   and commits so far, the machine's, ternd's, its writer's and the generator's CPU).
# Then bench/paced-summary.mjs divides everything by the messages sent in the window and
# says whether the slowest 100 ms bins coincide with a checkpoint holding the writer, and
# bench/wal-pages.mjs says which tables' pages the commits in the WAL at the window's end wrote.
#
#   bench/paced.sh [BUILD] [RATE] [OUT]      defaults: build 25000 /tmp/tern-paced
#   TERND=path/to/ternd bench/paced.sh …     another server binary (A/B runs)
#   PACED_BENCH_ARGS="--tick-us 250" bench/paced.sh …   more tern-bench arguments
# Needs perf (linux-perf), curl and node. Runs ~25 s. Never part of make test.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
rate=${2:-25000}
out=${3:-/tmp/tern-paced}
ternd=${TERND:-$build/ternd}
app_id=benchApp00000000000000000-gzGzoHsz
key=benchMasterKey00000000000
window=8
dir=$(mktemp -d)
spid=""
ppid_=""
cleanup() {
  [[ -n $ppid_ ]] && { kill "$ppid_" 2>/dev/null || true; wait "$ppid_" 2>/dev/null || true; }
  [[ -n $spid ]] && { kill "$spid" 2>/dev/null || true; wait "$spid" 2>/dev/null || true; }
  rm -rf "$dir"
}
trap cleanup EXIT
TERN_LISTEN=127.0.0.1:0 TERN_DATA_DIR=$dir TERN_APP_ID=$app_id TERN_MASTER_KEY=$key TERN_LOG_LEVEL=warn \
  TERN_MAX_CONN_RATE=0 TERN_MAX_CLIENT_RATE=0 TERN_MAX_CONNS_PER_IP=0 TERN_MAX_SESSIONS_PER_IP=0 TERN_OUTPUT_LIMIT_IP=0 \
  "$ternd" >"$dir/out" 2>"$dir/err" &
spid=$!
port=""
for _ in $(seq 200); do
  port=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$dir/out")
  [[ -n $port ]] && break
  sleep 0.05
done
[[ -n $port ]] || { cat "$dir/err" >&2; exit 1; }
scrape() { curl -sf -H "Authorization: Bearer $key" "http://127.0.0.1:$port/metrics" >"$1"; }
"$build/tern-bench" --url "ws://127.0.0.1:$port/" --app-id "$app_id" --server-pid "$spid" --threads 2 --json \
  --scenario pairs --clients 1000 --rate "$rate" --warmup 3 --duration 12 --timeline "$out.timeline.tsv" ${PACED_BENCH_ARGS:-} \
  >"$out.json" 2>"$out.err" &
bpid=$!
: >"$out.poll"
# every 100 ms: the store's holds and commits, the machine's and the processes' CPU (OUT.poll)
node bench/paced-sampler.mjs "$out.poll" "$app_id" "$key" "http://127.0.0.1:$port/" "$spid" "$bpid" &
ppid_=$!
sleep 5 # login (~1 s) and 3 s of warmup: the window starts inside the measured part
scrape "$out.m0"
perf stat --per-thread -x, -o "$out.perf" -p "$spid" \
  -e task-clock,context-switches,raw_syscalls:sys_enter,syscalls:sys_enter_read,syscalls:sys_enter_write \
  -e syscalls:sys_enter_epoll_wait,syscalls:sys_enter_futex,syscalls:sys_enter_pread64,syscalls:sys_enter_pwrite64 \
  -e syscalls:sys_enter_fcntl,syscalls:sys_enter_fdatasync,syscalls:sys_enter_io_uring_enter -- sleep "$window"
scrape "$out.m1"
# the WAL as it is now (the database first, then its WAL): which tables the commits wrote
cp "$dir/tern.db" "$out.db" && cp "$dir/tern.db-wal" "$out.db-wal" || true
wait "$bpid"
kill "$ppid_" 2>/dev/null || true
wait "$ppid_" 2>/dev/null || true
ppid_=""
node bench/paced-summary.mjs "$out" "$rate" "$window"
[[ -s $out.db-wal ]] && node bench/wal-pages.mjs "$out.db" || true
