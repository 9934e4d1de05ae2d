#!/usr/bin/env bash
# Starts a throwaway PostgreSQL 15 (the Debian package's binaries) for the tests, on a free
# loopback port in a new temporary directory, with fsync on, and prints its URI on stdout
# (one line). The server runs as the `postgres` user when started by root (initdb refuses
# root) and trusts loopback connections (no password: nothing but this machine can reach it).
#
#   scripts/pg.sh start            → prints postgres://postgres@127.0.0.1:PORT/postgres,
#                                    and the directory on the second line
#   scripts/pg.sh stop DIR         → stops the server of DIR and removes DIR
#   scripts/pg.sh pause DIR        → stops the server (keeps DIR: `resume` starts it again)
#   scripts/pg.sh resume DIR       → starts the stopped server of DIR on its port again
#
# PG_OPTS adds server settings (`-c name=value ...`), for benchmarks that compare them.
#
# scripts/test.sh starts one for the whole run (TERN_TEST_PG for ctest's store suite and
# tests/lib/pg.mjs) and stops it on exit.
set -euo pipefail
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
as_pg() {
  if [[ $(id -u) -eq 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}
free_port() {
  python3 - <<'PY' 2>/dev/null || node -e 'const s=require("net").createServer();s.listen(0,"127.0.0.1",()=>{console.log(s.address().port);s.close()})'
import socket
s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()
PY
}
start_server() { # dir
  local dir=$1 port
  port=$(cat "$dir/port")
  as_pg "$PGBIN/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $port -c unix_socket_directories=$dir/sock -c fsync=on -c synchronous_commit=on -c max_connections=200 -c shared_buffers=64MB ${PG_OPTS:-}" \
    start >/dev/null
}
case "${1:-}" in
start)
  dir=$(mktemp -d /tmp/tern-pg-XXXXXX)
  chmod 755 "$dir"
  mkdir -p "$dir/data" "$dir/sock"
  [[ $(id -u) -eq 0 ]] && chown -R postgres:postgres "$dir"
  as_pg "$PGBIN/initdb" -D "$dir/data" -U postgres -A trust -E UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 || {
    cat "$dir/initdb.log" >&2
    exit 1
  }
  free_port >"$dir/port"
  [[ $(id -u) -eq 0 ]] && chown postgres:postgres "$dir/port"
  start_server "$dir" || {
    cat "$dir/log" >&2
    exit 1
  }
  echo "postgres://postgres@127.0.0.1:$(cat "$dir/port")/postgres"
  echo "$dir"
  ;;
stop)
  dir=${2:?dir}
  [[ -d "$dir/data" ]] && as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
  rm -rf "$dir"
  ;;
pause)
  dir=${2:?dir}
  as_pg "$PGBIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null
  ;;
resume)
  start_server "${2:?dir}"
  ;;
*)
  echo "usage: scripts/pg.sh start | stop DIR | pause DIR | resume DIR" >&2
  exit 2
  ;;
esac
