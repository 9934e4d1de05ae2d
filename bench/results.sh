# bench/results.sh — sourced by scripts/bench.sh and bench/cluster.sh: where a run's
# results go and how they are written, and a free loopback port for the servers they start.

# free_port: prints a TCP port on 127.0.0.1 nobody listens on now.
free_port() {
  node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
}

# results_path NAME-SUFFIX: sets stamp (the date), commit and out (bench/results/<date>-<commit><suffix>, with
# -2, -3… when that commit already has results: keep every run, medians need three).
results_path() {
  commit=$(git rev-parse --short HEAD 2>/dev/null || echo uncommitted)
  local base
  stamp=$(date +%Y%m%d)
  base=bench/results/$stamp-$commit$1
  out=$base
  local n=1
  while [[ -e $out.json ]]; do
    n=$((n + 1))
    out=$base-$n
  done
  mkdir -p bench/results
}

# results_write HEAD MACHINE RUN-FILES...: $out.json, the date and commit, HEAD (more
# top-level fields, each ending in a comma), the machine (MACHINE: more of its fields, each
# starting with a comma) and the runs, one JSON object per file.
results_write() {
  local head=$1 machine=$2 cpu mem sep="" f
  shift 2
  cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
  mem=$(awk '/^MemTotal/ {print $2}' /proc/meminfo)
  {
    printf '{"date":"%s","commit":"%s",%s' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$commit" "$head"
    printf '"machine":{"cpu":"%s","nproc":%s,"mem_total_kb":%s,"kernel":"%s"%s},"runs":[\n' \
      "${cpu//\"/}" "$(nproc)" "$mem" "$(uname -r)" "$machine"
    for f in "$@"; do
      printf '%s' "$sep"
      cat "$f"
      sep=","
    done
    printf ']}\n'
  } >"$out.json.tmp"
  mv "$out.json.tmp" "$out.json"
}
