#!/bin/sh
# Called by the build (CMake target "web"): installs the pinned npm packages when the lock
# file is newer than the last install, then bundles the pages into $1.
set -eu
cd "$(dirname "$0")"
if [ ! -f node_modules/.stamp ] || [ package-lock.json -nt node_modules/.stamp ]; then
  echo "web: npm ci"
  npm ci --no-audit --no-fund --loglevel=error
  touch node_modules/.stamp
fi
exec node build.mjs "$1"
