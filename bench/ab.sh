#!/usr/bin/env bash
# bench/ab.sh OLD_TERND NEW_TERND [ROUNDS] — two ternd binaries measured back to back, the
# way issue #13 asks a refactor to be judged: the same tern-bench (NEW_TERND's build dir)
# drives both, alternating old/new ROUNDS times (default 2) over a short set of scenarios
# (pairs flat out and at 25,000/s, group capacity, history, login storm), each against a
# fresh server with its own data directory. Prints one TSV row per run (bench/README.md,
# "A/B"). The machine must be quiet: compare the two columns of one run, never across runs.
set -euo pipefail
old=${1:?usage: bench/ab.sh OLD_TERND NEW_TERND [ROUNDS]}
new=${2:?usage: bench/ab.sh OLD_TERND NEW_TERND [ROUNDS]}
rounds=${3:-2}
benchbin=$(dirname "$new")/tern-bench
for b in "$old" "$new" "$benchbin"; do [[ -x $b ]] || { echo "ab: $b not found" >&2; exit 2; }; done
app=benchApp00000000000000000-gzGzoHsz
tmp=$(mktemp -d)
pid=""
trap '[[ -n $pid ]] && kill "$pid" 2>/dev/null; rm -rf "$tmp"' EXIT

# run LABEL TERND NAME ARGS... — one tern-bench run against a fresh TERND
run() {
  local label=$1 ternd=$2 name=$3 dir port=""
  shift 3
  dir=$(mktemp -d -p "$tmp")
  TERN_LISTEN=127.0.0.1:0 TERN_DATA_DIR=$dir TERN_APP_ID=$app TERN_LOG_LEVEL=warn TERN_MAX_CONN_RATE=0 \
    TERN_MAX_CLIENT_RATE=0 TERN_MAX_CONNS_PER_IP=0 TERN_MAX_SESSIONS_PER_IP=0 TERN_OUTPUT_LIMIT_IP=0 "$ternd" >"$dir.out" 2>&1 &
  pid=$!
  for _ in $(seq 200); do # the "listening on" line, not a fixed sleep
    port=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$dir.out")
    [[ -n $port ]] && break
    sleep 0.05
  done
  [[ -n $port ]] || { echo "ab: $ternd did not start" >&2; cat "$dir.out" >&2; exit 1; }
  local json
  json=$("$benchbin" --url "ws://127.0.0.1:$port/" --app-id "$app" --server-pid "$pid" --threads 2 --json "$@" \
    2>/dev/null || echo '{}')
  kill "$pid"
  wait "$pid" 2>/dev/null || true
  pid=""
  node -e '
    const [label, name, text] = process.argv.slice(1);
    let d = {};
    try { d = JSON.parse(text); } catch {}
    const t = d.throughput || {}, l = d.latency_us || {}, s = d.server || {};
    console.log([label, name, Math.round(t.delivered_per_s || 0) + "/s", "p50 " + Math.round(l.p50 || 0) + " us",
      "p99 " + Math.round(l.p99 || 0) + " us", "server cpu " + (s.cpu_s ?? "?") + " s",
      "lost " + (d.lost ?? "?"), "dup " + (d.duplicated ?? "?"), "machine busy " + (d.machine_cpu_busy ?? "?")].join("\t"));
  ' "$label" "$name" "$json"
}

for _ in $(seq "$rounds"); do
  for side in old new; do
    t=$old
    [[ $side == new ]] && t=$new
    run "$side" "$t" pairs-flat --scenario pairs --clients 1000 --rate 0 --duration 8 --warmup 2
    run "$side" "$t" pairs-25k --scenario pairs --clients 1000 --rate 25000 --duration 8 --warmup 2
    run "$side" "$t" group-capacity --scenario group --clients 2000 --group-size 500 --rate 0 --duration 10 --warmup 2
    run "$side" "$t" history --scenario history --clients 50 --history-messages 100000 --duration 10 --warmup 3
    run "$side" "$t" login-storm --scenario login-storm --clients 1000 --duration 8 --warmup 2
  done
done
