#!/usr/bin/env bash
# The C sources against .clang-format, with Debian 12's clang-format 14 (other versions lay
# some constructs out differently, so the check names the one it is made for).
#   scripts/format.sh          check: lists each file that differs and exits 1 (make test)
#   scripts/format.sh -i       rewrite them in place (make format)
set -euo pipefail
cd "$(dirname "$0")/.."
cf=$(command -v clang-format-14 || command -v clang-format || true)
if [[ -z "$cf" ]]; then echo "format: clang-format-14 not found (scripts/deps.sh --test installs it)" >&2; exit 1; fi
if ! "$cf" --version | grep -q 'version 14\.'; then
  echo "format: $cf is not clang-format 14 ($("$cf" --version)); the check is made for 14" >&2
  exit 1
fi
# every C file of ours: src (server, common, sdk, cli, bench), the public headers, the tests
mapfile -t files < <(find src include tests/unit tests/store tests/fuzz tests/sdk -name '*.[ch]' | sort)
if [[ "${1:-}" == "-i" ]]; then
  "$cf" -i "${files[@]}"
  exit 0
fi
# one run over all of them; each difference is reported as "<file>:<line>:<col>: error: …"
rc=0
out=$("$cf" --dry-run --Werror "${files[@]}" 2>&1) || rc=$?
mapfile -t bad < <(sed -n 's/^\([^:]*\.[ch]\):[0-9]*:[0-9]*: error: .*/\1/p' <<<"$out" | sort -u)
if ((rc != 0 && ${#bad[@]} == 0)); then
  echo "format: clang-format failed:" >&2
  echo "$out" | tail -n 20 >&2
  exit 1
fi
if ((${#bad[@]})); then
  echo "format: ${#bad[@]} file(s) differ from .clang-format (make format rewrites them):" >&2
  printf '  %s\n' "${bad[@]}" >&2
  exit 1
fi
echo "format: ${#files[@]} files match .clang-format"
