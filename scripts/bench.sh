#!/usr/bin/env bash
# Runs the standard benchmark set (bench/README.md) with the binaries of build dir $1:
# a fresh ternd (own data directory, free port) per run, tern-bench against it, then
#   bench/results/<date>-<commit>.json   every run's report plus what machine this was
#   bench/results/<date>-<commit>.png    latency against throughput for the pairs sweep
# At 25,000 and 50,000 msgs/s the pairs run is followed at once by the same run against a
# fresh mosquitto (Debian's package, WebSocket listener, MQTT over WebSocket: tern-bench
# --protocol mqtt), the reference issue #17 compares with (bench/README.md, "The mosquitto
# reference"); skipped, with a note, when mosquitto is not installed.
# Builds nothing (`make bench` built $1) and takes about six minutes; never part of `make test`.
# BENCH_ONLY=mosquitto runs only ternd and mosquitto back to back, pairs of 1,000 clients at
# each rate of BENCH_RATES (default "10000 25000 50000"), BENCH_ROUNDS times (default 3),
# with BENCH_ARGS added to every tern-bench (e.g. "--tick-us 250"), into
# bench/results/<date>-<commit>-mosquitto.json, and prints them side by side
# (bench/pairs-table.mjs). BENCH_ONLY=import runs only the two import runs (about a minute), into
# bench/results/<date>-<commit>-import.json.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
only=${BENCH_ONLY:-}
[[ -z $only || $only == import || $only == mosquitto ]] || { echo "bench: BENCH_ONLY is 'import', 'mosquitto' or unset" >&2; exit 2; }
ternd=$build/ternd
benchbin=$build/tern-bench
for b in "$ternd" $([[ $only != import ]] && echo "$benchbin"); do
  [[ -x $b ]] || { echo "bench: $b not found; run 'make bench' (or build $build first)" >&2; exit 2; }
done

app_id=benchApp00000000000000000-gzGzoHsz
master_key=benchMasterKey00000000000
. bench/results.sh
results_path "${only:+-$only}"
tmp=$(mktemp -d)
server_pid=""
src_pid=""
cleanup() {
  for p in $server_pid $src_pid; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  rm -rf "$tmp"
}
trap cleanup EXIT

start_server() {
  local dir out
  dir=$(mktemp -d -p "$tmp")
  out=$dir.out # its own: two servers run at once for the importer's run
  : >"$out"     # there before sed reads it (set -e ends the script on sed's error)
  TERN_LISTEN=127.0.0.1:0 TERN_DATA_DIR=$dir TERN_APP_ID=$app_id TERN_MASTER_KEY=$master_key TERN_LOG_LEVEL=warn \
  TERN_MAX_CONN_RATE=0 TERN_MAX_CLIENT_RATE=0 TERN_MAX_CONNS_PER_IP=0 TERN_MAX_SESSIONS_PER_IP=0 TERN_OUTPUT_LIMIT_IP=0 \
    "$ternd" >"$out" 2>>"$tmp/ternd.err" &
  server_pid=$!
  for _ in $(seq 200); do # wait for the "listening on" line, not a fixed sleep
    port=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$out")
    [[ -n $port ]] && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "bench: ternd did not start:" >&2
  cat "$tmp/ternd.err" >&2
  exit 1
}

# start_mosquitto: a fresh mosquitto on a free loopback port, as start_server for ternd.
# mosquitto 2.0 starts no WebSocket listener alone, so a plain one listens on a unix socket
# in the run's directory; `user` keeps it from switching to the mosquitto user (which could
# not reach that directory).
start_mosquitto() {
  local dir
  dir=$(mktemp -d -p "$tmp")
  port=$(free_port)
  printf 'user %s\npersistence false\nallow_anonymous true\nlistener 0 %s/mqtt.sock\nlistener %s 127.0.0.1\nprotocol websockets\n' \
    "$(id -un)" "$dir" "$port" >"$dir/mosquitto.conf"
  mosquitto -c "$dir/mosquitto.conf" 2>>"$tmp/mosquitto.err" &
  server_pid=$!
  for _ in $(seq 200); do
    (: >"/dev/tcp/127.0.0.1/$port") 2>/dev/null && return 0
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.05
  done
  echo "bench: mosquitto did not start:" >&2
  cat "$tmp/mosquitto.err" >&2
  exit 1
}

stop_server() {
  kill "$server_pid" 2>/dev/null || true
  wait "$server_pid" 2>/dev/null || true
  server_pid=""
}

failures=0
runs=()
# run NAME ARGS... — one tern-bench run against a fresh server (ternd; mosquitto when the
# arguments say --protocol mqtt); its JSON joins the results.
run() {
  local name=$1
  shift
  if [[ " $* " == *" --protocol mqtt "* ]]; then start_mosquitto; else start_server; fi
  echo "bench: $name: $*" >&2
  local f=$tmp/run-${#runs[@]}.json
  if "$benchbin" --url "ws://127.0.0.1:$port/" --app-id "$app_id" --server-pid "$server_pid" --threads 2 \
    --json "$@" >"$f" 2>"$tmp/bench.err" && [[ -s $f ]]; then
    sed -n 's/.*"sent":\([0-9]*\),"delivered":\([0-9]*\),"expected":\([0-9]*\),"lost":\([0-9]*\),"duplicated":\([0-9]*\).*"throughput":{"sent_per_s":\([0-9.e+]*\),"delivered_per_s":\([0-9.e+]*\)}.*"latency_us":{"count":[0-9]*,"p50":\([0-9.e+]*\),"p90":[0-9.e+]*,"p99":\([0-9.e+]*\).*/  sent \1 delivered \2\/\3 lost \4 dup \5; \6 sent\/s, \7 deliveries\/s; p50 \8 us, p99 \9 us/p' "$f" >&2
  else
    failures=$((failures + 1))
    echo "bench: $name FAILED:" >&2
    cat "$tmp/bench.err" >&2
    printf '{"scenario":"%s","error":"%s"}\n' "$name" "$(tail -1 "$tmp/bench.err" | tr -d '"\\')" >"$f"
  fi
  runs+=("$f")
  stop_server
}

: >"$tmp/pairs.tsv"
if [[ -z $only ]]; then
  run idle --scenario idle --clients 19000 --sources 2 --duration 10 --warmup 2
  for rate in 25000 50000 100000 150000 200000 0; do # 0 = flat out: the saturation point
    run pairs --scenario pairs --clients 1000 --rate "$rate" --duration 8 --warmup 2 --tsv "$tmp/pairs.tsv"
    ((rate == 25000 || rate == 50000)) || continue
    if command -v mosquitto >/dev/null && command -v node >/dev/null; then
      run pairs-mosquitto --protocol mqtt --scenario pairs --clients 1000 --rate "$rate" --duration 8 --warmup 2
    else
      echo "bench: the mosquitto reference skipped: mosquitto (and node) not installed (scripts/deps.sh --test)" >&2
    fi
  done
  run group --scenario group --clients 2000 --group-size 500 --rate 1000 --duration 15 --warmup 3
  run group --scenario group --clients 2000 --group-size 500 --rate 0 --duration 10 --warmup 2 # capacity
  run chatroom --scenario chatroom --clients 5000 --senders 4 --rate 200 --duration 15 --warmup 3
  run chatroom --scenario chatroom --clients 5000 --senders 4 --rate 0 --duration 10 --warmup 2 # capacity
  run login-storm --scenario login-storm --clients 1000 --duration 15 --warmup 3
  run history --scenario history --clients 50 --history-messages 100000 --duration 20 --warmup 3
fi

if [[ $only == mosquitto ]]; then
  command -v mosquitto >/dev/null || { echo "bench: mosquitto is not installed (scripts/deps.sh --test)" >&2; exit 2; }
  for ((round = 1; round <= ${BENCH_ROUNDS:-3}; round++)); do
    for rate in ${BENCH_RATES:-10000 25000 50000}; do
      # shellcheck disable=SC2086 # BENCH_ARGS: words on purpose
      run pairs --scenario pairs --clients 1000 --rate "$rate" --duration 8 --warmup 2 ${BENCH_ARGS:-}
      # shellcheck disable=SC2086
      run pairs-mosquitto --protocol mqtt --scenario pairs --clients 1000 --rate "$rate" --duration 8 --warmup 2 ${BENCH_ARGS:-}
    done
  done
  results_write '"kind":"mosquitto",' "" "${runs[@]}"
  echo "bench: wrote $out.json" >&2
  node bench/pairs-table.mjs "$out.json"
  ((failures == 0)) || { echo "bench: $failures run(s) failed" >&2; exit 1; }
  exit 0
fi

# The import rate (docs/migrate-api.md): 1,000,000 messages through POST /1.2/import/records
# into an empty ternd, by bench/import.mjs (Node: the test suite's; without it, no figure).
start_server
f=$tmp/run-${#runs[@]}.json
echo "bench: import: 1000000 messages in bodies of 5000" >&2
if ! command -v node >/dev/null; then
  echo "bench: import skipped: node is not installed (scripts/deps.sh --test installs it)" >&2
  printf '{"scenario":"import","error":"node not installed"}\n' >"$f"
elif node bench/import.mjs --url "http://127.0.0.1:$port" --app-id "$app_id" --master-key "$master_key" \
  --messages 1000000 --batch 5000 --inflight 3 --server-pid "$server_pid" --json >"$f" 2>"$tmp/bench.err"; then
  sed -n 's/.*"seconds":\([0-9.]*\),"msgs_per_s":\([0-9]*\).*"lost":\([0-9]*\).*/  \2 msgs\/s (\1 s), lost \3/p' "$f" >&2
else
  failures=$((failures + 1))
  echo "bench: import FAILED:" >&2
  cat "$tmp/bench.err" >&2
  printf '{"scenario":"import","error":"%s"}\n' "$(tail -1 "$tmp/bench.err" | tr -d '"\\')" >"$f"
fi
runs+=("$f")

# The importer end to end: that ternd, now holding the million messages, is the source (it
# answers LeanCloud's REST reads); `tern admin import leancloud` copies it into an empty one.
src_pid=$server_pid
src_port=$port
server_pid=""
start_server
f=$tmp/run-${#runs[@]}.json
echo "bench: import-e2e: tern admin import leancloud, 1000000 messages from a ternd into an empty one" >&2
if ! command -v node >/dev/null || [[ ! -x $build/src/cli/tern ]]; then
  echo "bench: import-e2e skipped: needs node and $build/src/cli/tern" >&2
  printf '{"scenario":"import-e2e","error":"node or tern not found"}\n' >"$f"
elif node bench/import-e2e.mjs --tern "$build/src/cli/tern" --source "http://127.0.0.1:$src_port" \
  --target "http://127.0.0.1:$port" --app-id "$app_id" --master-key "$master_key" --messages 1000000 \
  --source-pid "$src_pid" --target-pid "$server_pid" --json >"$f" 2>"$tmp/bench.err"; then
  sed -n 's/.*"seconds":\([0-9.]*\),"msgs_per_s":\([0-9]*\).*/  \2 msgs\/s (\1 s)/p' "$f" >&2
else
  failures=$((failures + 1))
  echo "bench: import-e2e FAILED:" >&2
  cat "$tmp/bench.err" >&2
  printf '{"scenario":"import-e2e","error":"%s"}\n' "$(tail -1 "$tmp/bench.err" | tr -d '"\\')" >"$f"
fi
runs+=("$f")
stop_server
server_pid=$src_pid
src_pid=""
stop_server

# The results file: the machine, then every run's report as tern-bench printed it.
results_write "" "" "${runs[@]}"
echo "bench: wrote $out.json" >&2

if [[ ! -s $tmp/pairs.tsv ]]; then
  : # no pairs sweep (BENCH_ONLY): no plot
elif command -v gnuplot >/dev/null; then
  sort -t$'\t' -k4,4g "$tmp/pairs.tsv" >"$tmp/pairs.sorted.tsv"
  gnuplot -e "datafile='$tmp/pairs.sorted.tsv'; outfile='$out.png'; label='$stamp $commit, $(nproc) cores'" bench/plot.gp
  echo "bench: wrote $out.png" >&2
else
  echo "bench: gnuplot not installed (scripts/deps.sh installs gnuplot-nox); no plot" >&2
fi
if ((failures)); then
  echo "bench: $failures run(s) failed" >&2
  exit 1
fi
