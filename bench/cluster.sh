#!/usr/bin/env bash
# The cluster set (issue #14 point 6, bench/README.md "Cluster"): the same load against
#   sqlite1  one ternd on SQLite (the default deployment),
#   pg1      one ternd on PostgreSQL (no bus),
#   pg3      three ternd nodes on one PostgreSQL and one Redis, every client spread over them
#            (tern-bench: client i on node i mod 3, so every 1:1 delivery crosses nodes),
# each run: 1:1 flat out, 1:1 paced at 10,000 msgs/s, groups of 500 flat out, a login storm,
# a chat room of 5,000 at 200 msgs/s and flat out;
# then 9,000 idle sessions on pg3 (memory per session). A fresh database and fresh ternd
# processes for every run. Everything runs on this machine's cores, so this measures what
# PostgreSQL and the bus cost, not scaling. Builds nothing: give a Release build dir.
#
#   bench/cluster.sh [build-dir]        (default: build, as `make bench` builds it)
#   CLUSTER_ONLY="pg3" bench/cluster.sh build    only these set-ups
#   CLUSTER_PERF=DIR bench/cluster.sh build      also `perf record -a` each run into DIR
#   CLUSTER_TIMELINE=DIR bench/cluster.sh build  also tern-bench's --timeline of each run into
#                                                DIR (p99 per 100 ms of send time: stalls)
#   CLUSTER_RUNS="1:1" bench/cluster.sh build    only the runs whose name contains it
#   CLUSTER_SYSCALLS=1 bench/cluster.sh build    also count the nodes' and PostgreSQL's system
#                                                calls by kind (perf stat; run: syscalls)
#   CLUSTER_PGSS=1 bench/cluster.sh build        also pg_stat_statements (preloaded: it costs
#                                                PostgreSQL CPU, so not for the CPU figures)
#
# Starts PostgreSQL (scripts/pg.sh: Debian's package, a temporary directory, a free
# loopback port, fsync on) and redis-server (likewise, persistence off), stops them after.
# Writes bench/results/<date>-<commit>-cluster.json (every tern-bench report, with the
# set-up, the CPU PostgreSQL and Redis used during it, and the PostgreSQL writers' round
# trips and commits from the nodes' /metrics) and prints one table
# (bench/cluster-table.mjs). About 6 minutes.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
setups=${CLUSTER_ONLY:-sqlite1 pg1 pg3}
ternd=$build/ternd
benchbin=$build/tern-bench
for b in "$ternd" "$benchbin"; do
  [[ -x $b ]] || { echo "cluster: $b not found (build $build first: cmake -DCMAKE_BUILD_TYPE=Release)" >&2; exit 2; }
done
command -v redis-server >/dev/null || { echo "cluster: redis-server not installed (scripts/deps.sh --test)" >&2; exit 2; }
command -v node >/dev/null || { echo "cluster: node not installed (scripts/deps.sh --test)" >&2; exit 2; }

app_id=benchApp00000000000000000-gzGzoHsz
master_key=benchMasterKey00000000000
app_key=benchAppKey0000000000000
. bench/results.sh
results_path -cluster
tmp=$(mktemp -d)
node_pids=()
redis_pid=""
pg_dir=""
cleanup() {
  for p in "${node_pids[@]}" $redis_pid; do kill "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  [[ -n $pg_dir ]] && scripts/pg.sh stop "$pg_dir" || true
  rm -rf "$tmp"
}
trap cleanup EXIT

# "RUN WAIT" in nanoseconds, summed over every thread of the given processes and of their
# direct children (the postmaster and its backends): the time they ran, and the time they
# were runnable but waited for a core (/proc/PID/task/TID/schedstat), which on a shared
# machine is where latency goes.
sched_ns() {
  local p kids=()
  for p in "$@"; do kids+=($(pgrep -P "$p" || true)); done
  { cat $(for p in "$@" "${kids[@]}"; do echo /proc/"$p"/task/*/schedstat; done) 2>/dev/null || true; } |
    awk '{ r += $1; w += $2 } END { printf "%.0f %.0f\n", r, w }'
}

# PostgreSQL: one server for the whole set, a new database per run.
pg_out=$(scripts/pg.sh start)
pg_uri=$(sed -n 1p <<<"$pg_out")
pg_dir=$(sed -n 2p <<<"$pg_out")
pg_pid=$(head -1 "$pg_dir/data/postmaster.pid")
psql_bin=/usr/lib/postgresql/15/bin/psql
if [[ -n ${CLUSTER_PGSS:-} ]]; then # every statement's calls and time, per run (run: pgss)
  "$psql_bin" "$pg_uri" -qtAc "ALTER SYSTEM SET shared_preload_libraries = 'pg_stat_statements'" >/dev/null
  scripts/pg.sh pause "$pg_dir" && scripts/pg.sh resume "$pg_dir"
  pg_pid=$(head -1 "$pg_dir/data/postmaster.pid")
  "$psql_bin" "$pg_uri" -qtAc "CREATE EXTENSION pg_stat_statements" >/dev/null
  "$psql_bin" "$pg_uri" -qtAc "ALTER SYSTEM SET pg_stat_statements.track_planning = on" -c "SELECT pg_reload_conf()" >/dev/null
fi
ndb=0
new_db() { # sets db to the URI of a new empty database
  ndb=$((ndb + 1))
  "$psql_bin" "$pg_uri" -qtAc "CREATE DATABASE cbench_$ndb" >/dev/null
  db=${pg_uri%/*}/cbench_$ndb
}

# Redis: as tests/lib/redis.mjs starts it.
redis_port=$(free_port)
mkdir -p "$tmp/redis"
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no --dir "$tmp/redis" \
  --daemonize no --protected-mode yes >"$tmp/redis.log" 2>&1 &
redis_pid=$!
for _ in $(seq 200); do
  grep -q 'Ready to accept connections' "$tmp/redis.log" && break
  kill -0 "$redis_pid" 2>/dev/null || { cat "$tmp/redis.log" >&2; exit 1; }
  sleep 0.05
done

# start_nodes SETUP: fresh ternd processes (and database) for SETUP; sets urls, node_pids.
start_nodes() {
  local setup=$1 count=1 store=sqlite bus="" i dir o port
  case $setup in
  sqlite1) ;;
  pg1) new_db && store=$db ;;
  pg3) new_db && store=$db count=3 bus=redis://127.0.0.1:$redis_port/$((ndb % 16)) ;;
  esac
  urls=()
  node_pids=()
  : >"$tmp/ternd.err" # this run's nodes' log (warnings and errors: TERN_LOG_LEVEL=warn)
  for ((i = 1; i <= count; i++)); do
    dir=$(mktemp -d -p "$tmp")
    o=$dir.out
    : >"$o"
    TERN_LISTEN=127.0.0.1:0 TERN_DATA_DIR=$dir TERN_APP_ID=$app_id TERN_APP_KEY=$app_key TERN_MASTER_KEY=$master_key \
    TERN_LOG_LEVEL=warn TERN_MAX_CONN_RATE=0 TERN_MAX_CLIENT_RATE=0 TERN_MAX_CONNS_PER_IP=0 TERN_MAX_SESSIONS_PER_IP=0 TERN_OUTPUT_LIMIT_IP=0 \
    TERN_STORE=$store TERN_BUS=$bus TERN_NODE_ID=node$i \
      "$ternd" >"$o" 2>>"$tmp/ternd.err" &
    node_pids+=($!)
    port=""
    for _ in $(seq 400); do
      port=$(sed -n 's/.*listening on [^ ]*:\([0-9]*\).*/\1/p' "$o")
      [[ -n $port ]] && break
      kill -0 "${node_pids[-1]}" 2>/dev/null || break
      sleep 0.05
    done
    [[ -n $port ]] || { echo "cluster: ternd did not start:" >&2; tail -20 "$tmp/ternd.err" >&2; exit 1; }
    urls+=("ws://127.0.0.1:$port/")
  done
  # a cluster: every node must see the others before clients arrive (the bus's replica)
  for u in "${urls[@]}"; do
    [[ -n $bus ]] || break
    local h=${u#ws://} seen=""
    h=${h%/}
    for _ in $(seq 300); do
      seen=$(curl -s -H "X-LC-Id: $app_id" -H "X-LC-Key: $master_key,master" "http://$h/metrics" |
        sed -n 's/^tern_bus_nodes \([0-9]*\)$/\1/p')
      [[ $seen == "$count" ]] && break
      sleep 0.05
    done
    [[ $seen == "$count" ]] || { echo "cluster: node $h sees ${seen:-no} nodes, not $count" >&2; exit 1; }
  done
}

# "ROUND_TRIPS COMMITS MESSAGES" summed over the nodes' /metrics: the PostgreSQL writer's
# round trips (tern_store_round_trips_total; absent on SQLite and before it existed), its
# group commits, and the messages stored.
store_trips() {
  local u h m trips=0 commits=0 msgs=0
  for u in "${urls[@]}"; do
    h=${u#ws://}
    h=${h%/}
    m=$(curl -s -H "X-LC-Id: $app_id" -H "X-LC-Key: $master_key,master" "http://$h/metrics" || true)
    trips=$((trips + $(sed -n 's/^tern_store_round_trips_total \([0-9]*\)$/\1/p' <<<"$m" | head -1 | grep . || echo 0)))
    commits=$((commits + $(sed -n 's/^tern_store_commit_seconds_count \([0-9]*\)$/\1/p' <<<"$m" | head -1 | grep . || echo 0)))
    msgs=$((msgs + $(sed -n 's/^tern_messages_in_total{kind="stored"} \([0-9]*\)$/\1/p' <<<"$m" | head -1 | grep . || echo 0)))
  done
  echo "$trips $commits $msgs"
}

# "PID RUN_NS" of the postmaster and each of its children (every backend, the WAL writer...)
pg_pids_ns() {
  local p
  for p in "$pg_pid" $(pgrep -P "$pg_pid" || true); do
    { cat /proc/"$p"/task/*/schedstat 2>/dev/null || true; } | awk -v p="$p" '{ r += $1 } END { if (NR) printf "%s %.0f\n", p, r }'
  done
}

# "PID|KIND" of PostgreSQL's processes: the nodes' writer connections (their last statement
# a write: COMMIT after a group commit), their readers (a SELECT), or the backend type
# (walwriter, checkpointer, autovacuum ...); the postmaster is not in pg_stat_activity.
pg_kinds() {
  "$psql_bin" "$pg_uri" -qtAF'|' -c "SELECT pid, CASE WHEN backend_type <> 'client backend' THEN backend_type
    WHEN pid = pg_backend_pid() THEN 'cluster.sh'
    WHEN query ~* '^(COMMIT|ROLLBACK|BEGIN|INSERT|UPDATE|DELETE|SELECT pg_advisory|SELECT id FROM conv WHERE id = ANY)' THEN 'writer'
    ELSE 'reader' END FROM pg_stat_activity" 2>/dev/null || true
}

# "WAL_SYNCS WAL_RECORDS COMMITS": PostgreSQL's WAL flushes, WAL records and committed
# transactions so far (pg_stat_wal, pg_stat_database; on pg1 and pg3 only)
pg_walstat() {
  [[ -n ${pg_uri:-} ]] || { echo "0 0 0"; return; }
  "$psql_bin" "$pg_uri" -qtAF' ' -c "SELECT wal_sync, wal_records, (SELECT sum(xact_commit) FROM pg_stat_database) FROM pg_stat_wal" 2>/dev/null || echo "0 0 0"
}

stop_nodes() {
  for p in "${node_pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${node_pids[@]}"; do wait "$p" 2>/dev/null || true; done
  node_pids=()
}

failures=0
runs=()
# run SETUP NAME ARGS...: one tern-bench run against fresh nodes of SETUP (only the runs
# whose name contains $CLUSTER_RUNS, when it is set).
run() {
  local setup=$1 name=$2
  shift 2
  [[ -z ${CLUSTER_RUNS:-} || $name == *"$CLUSTER_RUNS"* ]] || return 0
  start_nodes "$setup"
  local url_args=() u
  for u in "${urls[@]}"; do url_args+=(--url "$u"); done
  echo "cluster: $setup $name: $*" >&2
  local f=$tmp/run-${#runs[@]}.json
  local pg0 pg1 r0 r1 t0 t1
  [[ -z ${CLUSTER_PGSS:-} ]] || "$psql_bin" "$pg_uri" -qtAc "SELECT pg_stat_statements_reset()" >/dev/null
  pg_pids_ns >"$tmp/pgpids0"
  local w0 w1
  w0=$(pg_walstat)
  pg0=$(sched_ns "$pg_pid")
  r0=$(sched_ns "$redis_pid")
  t0=$(sched_ns "${node_pids[@]}")
  local perf_pid=""
  if [[ -n ${CLUSTER_PERF:-} ]]; then # a system-wide profile of the run (other jobs included)
    mkdir -p "$CLUSTER_PERF"
    perf record -a -F 499 -o "$CLUSTER_PERF/$setup-${#runs[@]}.data" >/dev/null 2>&1 &
    perf_pid=$!
  fi
  local sc_pids=()
  if [[ -n ${CLUSTER_SYSCALLS:-} ]]; then # system calls by kind: the nodes', PostgreSQL's
    local ev=raw_syscalls:sys_enter sc pl
    for sc in read write writev readv sendto recvfrom sendmsg recvmsg epoll_wait epoll_pwait epoll_ctl futex \
      io_uring_enter poll ppoll fdatasync fsync pwrite64 pread64 lseek kill semop clock_nanosleep getrusage \
      openat close mmap munmap mremap madvise brk; do ev+=",syscalls:sys_enter_$sc"; done
    ev+=",context-switches"
    pl=$(IFS=,; echo "${node_pids[*]}")
    perf stat -x, -e "$ev" -p "$pl" -o "$tmp/sc-ternd" >/dev/null 2>&1 &
    sc_pids+=($!)
    pl=$(pgrep -P "$pg_pid" | paste -sd,)
    perf stat -x, -e "$ev" -p "$pl" -o "$tmp/sc-pg" >/dev/null 2>&1 &
    sc_pids+=($!)
  fi
  : >"$tmp/trips"
  # the same every half second while tern-bench runs, with the CPU PostgreSQL and the nodes
  # used so far: round trips per commit, and CPU per message, while messages flow
  node bench/cluster-sampler.mjs "$tmp/trips" "$app_id" "$master_key" "$pg_pid" \
    "$(IFS=,; echo "${node_pids[*]}")" "$(IFS=,; echo "${urls[*]}")" &
  local trips_pid=$!
  local ok=0
  local tl_args=()
  [[ -z ${CLUSTER_TIMELINE:-} ]] || { mkdir -p "$CLUSTER_TIMELINE" && tl_args=(--timeline "$CLUSTER_TIMELINE/$setup-${#runs[@]}.tsv"); }
  "$benchbin" "${url_args[@]}" --app-id "$app_id" --threads 2 --json "${tl_args[@]}" "$@" >"$f.raw" 2>"$tmp/bench.err" &&
    [[ -s $f.raw ]] && ok=1
  pg1=$(sched_ns "$pg_pid")
  pg_pids_ns >"$tmp/pgpids1"
  w1=$(pg_walstat)
  pg_kinds >"$tmp/pgkinds"
  : >"$tmp/pgss"
  [[ -z ${CLUSTER_PGSS:-} ]] || "$psql_bin" "$pg_uri" -qtAF$'\t' -c "SELECT calls, rows, round(total_exec_time::numeric, 1), plans, round(total_plan_time::numeric, 1),
    regexp_replace(left(query, 110), '\s+', ' ', 'g') FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = '${db##*/}') ORDER BY total_exec_time DESC LIMIT 40" >"$tmp/pgss"
  r1=$(sched_ns "$redis_pid")
  t1=$(sched_ns "${node_pids[@]}")
  [[ -z $perf_pid ]] || { kill -INT "$perf_pid"; wait "$perf_pid" || true; }
  for p in "${sc_pids[@]}"; do kill -INT "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  local sc_f
  for sc_f in ternd pg; do # "KIND COUNT" lines
    if [[ -n ${CLUSTER_SYSCALLS:-} ]]; then
      awk -F, '$3 ~ /sys_enter|context-switches/ && $1 > 0 { sub(/.*sys_enter_?/, "", $3); print ($3 == "" ? "all" : $3), $1 }' "$tmp/sc-$sc_f" >"$tmp/sc-$sc_f.txt"
    else : >"$tmp/sc-$sc_f.txt"; fi
  done
  kill "$trips_pid" 2>/dev/null || true
  wait "$trips_pid" 2>/dev/null || true
  local trips
  trips=$(store_trips)
  # what tern-bench and the nodes said (refused messages, errors): kept in the results
  { cat "$tmp/bench.err"; grep -v '^$' "$tmp/ternd.err" || true; } | head -20 >"$tmp/notes"
  if [[ $ok == 1 ]]; then
    # the report, with the set-up, and the run and run-queue wait of PostgreSQL, Redis and
    # the nodes over the whole run (setup and drain included)
    node -e '
      const [f, setup, name, pg0, pg1, r0, r1, t0, t1, notesFile, trips, tripsFile, tmpDir, w0, w1] = process.argv.slice(1);
      const fs = require("fs");
      const r = JSON.parse(fs.readFileSync(f + ".raw", "utf8"));
      const notes = fs.readFileSync(notesFile, "utf8").split("\n").filter(Boolean);
      const d = (a, b, k) => (Number(b.split(" ")[k]) - Number(a.split(" ")[k])) / 1e9;
      Object.assign(r, { setup, run: name,
        pg_cpu_s: d(pg0, pg1, 0), pg_wait_s: d(pg0, pg1, 1), redis_cpu_s: d(r0, r1, 0), redis_wait_s: d(r0, r1, 1),
        ternd_run_cpu_s: d(t0, t1, 0), ternd_run_wait_s: d(t0, t1, 1), notes,
        store_round_trips: Number(trips.split(" ")[0]), store_commits: Number(trips.split(" ")[1]) });
      // the WAL flushes, WAL records and commits of PostgreSQL during the run (set-up included)
      const wd = (k) => Number(w1.split(" ")[k]) - Number(w0.split(" ")[k]);
      if (wd(2) > 0) Object.assign(r, { pg_wal_syncs: wd(0), pg_wal_records: wd(1), pg_commits: wd(2) });
      // PostgreSQL CPU per kind of process (pg_cpu_by_kind_s: writer, reader, walwriter ...;
      // a backend that ended during the run is missing, one that began counts from 0)
      const ns = (file) => new Map(fs.readFileSync(file, "utf8").trim().split("\n").filter(Boolean).map((l) => l.split(" ")));
      const a0 = ns(tmpDir + "/pgpids0"), a1 = ns(tmpDir + "/pgpids1");
      const kinds = new Map(fs.readFileSync(tmpDir + "/pgkinds", "utf8").trim().split("\n").filter(Boolean).map((l) => l.split("|")));
      const byKind = {};
      for (const [pid, v] of a1) {
        const k = kinds.get(pid) || (pid === [...a1.keys()][0] ? "postmaster" : "ended");
        byKind[k] = (byKind[k] || 0) + (Number(v) - Number(a0.get(pid) || 0)) / 1e9;
      }
      r.pg_cpu_by_kind_s = byKind;
      const ss = fs.readFileSync(tmpDir + "/pgss", "utf8").trim().split("\n").filter(Boolean).map((l) => {
        const [calls, rows, ms, plans, planMs, query] = l.split("\t");
        return { calls: Number(calls), rows: Number(rows), exec_ms: Number(ms), plans: Number(plans), plan_ms: Number(planMs), query };
      });
      if (ss.length) r.pg_statements = ss;
      // system calls (CLUSTER_SYSCALLS): per kind, the nodes (all) and PostgreSQL (all backends)
      for (const w of ["ternd", "pg"]) {
        const sc = Object.fromEntries(fs.readFileSync(`${tmpDir}/sc-${w}.txt`, "utf8").trim().split("\n").filter(Boolean).map((l) => l.split(" ")).map(([k, v]) => [k, Number(v)]));
        if (Object.keys(sc).length) {
          r[`${w}_syscalls`] = sc;
          const per = (v) => (v / (r.sent || 1)).toFixed(2);
          console.error(`  ${w} system calls per message: ${Object.entries(sc).sort((a, b) => b[1] - a[1]).map(([k, v]) => `${k} ${per(v)}`).join(", ")}`);
        }
      }
      // while messages flowed: the half-second samples whose stored messages grew, but the
      // first of them (it holds the end of the set-up)
      const sm = fs.readFileSync(tripsFile, "utf8").trim().split("\n").filter(Boolean).map((l) => l.split(" ").map(Number));
      let ft = 0, fc = 0, first = true, fm = 0, fpg = 0, ftd = 0;
      const per = []; // round trips per commit of each half second: their median is the steady state
      for (let i = 1; i < sm.length; i++) {
        if (sm[i][2] <= sm[i - 1][2]) continue;
        if (first) { first = false; continue; }
        ft += sm[i][0] - sm[i - 1][0];
        fc += sm[i][1] - sm[i - 1][1];
        fm += sm[i][2] - sm[i - 1][2];
        fpg += sm[i][3] - sm[i - 1][3];
        ftd += sm[i][4] - sm[i - 1][4];
        if (sm[i][1] > sm[i - 1][1]) per.push((sm[i][0] - sm[i - 1][0]) / (sm[i][1] - sm[i - 1][1]));
      }
      per.sort((a, b) => a - b);
      const med = per.length ? per[per.length >> 1] : null;
      Object.assign(r, { store_round_trips_flowing: ft, store_commits_flowing: fc, store_round_trips_per_commit_median: med });
      // CPU per message stored while messages flowed (the half-seconds above: set-up, logins
      // and drain left out): PostgreSQL (all its processes) and the nodes
      if (fm > 0) Object.assign(r, { stored_flowing: fm, pg_us_per_msg_flowing: fpg / 1e3 / fm, ternd_us_per_msg_flowing: ftd / 1e3 / fm });
      fs.writeFileSync(f, JSON.stringify(r));
      for (const n of notes) console.error(`  note: ${n}`);
      const l = r.latency_us;
      const rt = r.store_commits ? ` ${(r.store_round_trips / r.store_commits).toFixed(2)} round trips/commit (${r.store_commits} commits), ${(ft / (fc || 1)).toFixed(2)} while messages flowed (${fc} commits; median of half-seconds ${med === null ? "-" : med.toFixed(2)});` : "";
      if (fm > 0) console.error(`  while messages flowed: ${fm} stored in ${fc} commits, PostgreSQL ${(fpg / 1e3 / fm).toFixed(1)} µs and the nodes ${(ftd / 1e3 / fm).toFixed(1)} µs a message`);
      if (r.pg_commits) console.error(`  PostgreSQL: ${r.pg_commits} commits, ${r.pg_wal_syncs} WAL flushes, ${(r.pg_wal_records / (r.sent || 1)).toFixed(2)} WAL records a message`);
      console.error(`  PostgreSQL CPU s by process: ${Object.entries(byKind).map(([k, v]) => `${k} ${v.toFixed(2)}`).join(", ")}`);
      console.error(`  sent ${r.sent} lost ${r.lost} dup ${r.duplicated} refused ${r.errors}; ${Math.round(r.throughput.sent_per_s)}/s; p50 ${Math.round(l.p50)} p99 ${Math.round(l.p99)} us;${rt} machine ${Math.round(100 * r.machine_cpu_busy)}% busy`);
    ' "$f" "$setup" "$name" "$pg0" "$pg1" "$r0" "$r1" "$t0" "$t1" "$tmp/notes" "$trips" "$tmp/trips" "$tmp" "$w0" "$w1"
  else
    failures=$((failures + 1))
    echo "cluster: $setup $name FAILED:" >&2
    cat "$tmp/notes" >&2
    printf '{"setup":"%s","run":"%s","error":"%s"}\n' "$setup" "$name" "$(tail -1 "$tmp/bench.err" | tr -d '"\\')" >"$f"
  fi
  runs+=("$f")
  stop_nodes
}

for setup in $setups; do
  run "$setup" "1:1 flat out" --scenario pairs --clients 1000 --duration 8 --warmup 2
  run "$setup" "1:1 10k/s" --scenario pairs --clients 1000 --rate 10000 --duration 10 --warmup 2
  run "$setup" "group 500 flat out" --scenario group --clients 1000 --group-size 500 --duration 8 --warmup 2
  run "$setup" "login storm" --scenario login-storm --clients 1000 --duration 8 --warmup 2
  # make bench's chat room (5,000 members, 4 senders), its members spread over the nodes
  run "$setup" "chat room 200/s" --scenario chatroom --clients 5000 --senders 4 --rate 200 --duration 10 --warmup 3
  run "$setup" "chat room flat out" --scenario chatroom --clients 5000 --senders 4 --duration 8 --warmup 2
  [[ $setup == pg3 ]] && run "$setup" "idle 9000" --scenario idle --clients 9000 --duration 3 --warmup 1
done

results_write '"kind":"cluster",' ",\"loadavg\":\"$(cut -d' ' -f1-3 /proc/loadavg)\"" "${runs[@]}"
echo "cluster: wrote $out.json" >&2
node bench/cluster-table.mjs "$out.json"
[[ $failures -eq 0 ]] || { echo "cluster: $failures run(s) failed" >&2; exit 1; }
