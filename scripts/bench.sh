#!/usr/bin/env bash
# `npm run bench -- NAME [args]`: prepares the machine, builds, and runs the
# benchmark bench/NAME.ts (compiled to dist/bench/NAME.js). Results are written
# to bench/results/NAME.json. Without a known NAME it lists the benchmarks.
set -euo pipefail
cd "$(dirname "$0")/.."

available() {
  local f b
  for f in bench/*.ts; do
    [ -e "$f" ] || continue
    b=$(basename "$f" .ts)
    case "$b" in *.spec | *.e2e-spec) continue ;; esac
    printf '%s\n' "$b"
  done
}

usage() {
  echo "usage: npm run bench -- NAME [options]   (or: bash scripts/bench.sh NAME [options])"
  echo "available benchmarks:"
  available | sed 's/^/  /'
}

name="${1:-}"
case "$name" in
  -h | --help | help | list | --list)
    usage
    exit 0
    ;;
esac
# The list is read whole: with pipefail, grep -q closing the pipe early would fail it.
if [ -z "$name" ] || ! grep -qxF -- "$name" <<<"$(available)"; then
  [ -n "$name" ] && echo "unknown benchmark: $name" >&2
  usage >&2
  exit 2
fi
shift

bash scripts/ensure-env.sh
npm run -s build
exec node --enable-source-maps "dist/bench/$name.js" "$@"
