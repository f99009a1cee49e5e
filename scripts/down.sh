#!/usr/bin/env bash
# `npm run down`: stops the processes that `npm run up` started (by their pid files):
# the API, the relay, the node agent and the example echo servers, and for
# `npm run up -- --clusters N` every cluster's NATS server, API, relay, importer and agent. Stopping the agent
# leaves its BPF programs attached and its maps pinned (a restarted agent adopts them).
#
# `npm run down -- --purge` also removes the node's data plane: detaches the programs,
# unpins the maps, removes the agent's cgroup (MESH_TEARDOWN=1 of the agent) and the
# memory backend's state file.
set -uo pipefail
cd "$(dirname "$0")/.."
purge=0
for arg in "$@"; do
  case "$arg" in
    --purge) purge=1 ;;
    *) echo "usage: npm run down [-- --purge]" >&2; exit 2 ;;
  esac
done

for pidfile in .run/*.pid; do
  [ -e "$pidfile" ] || continue
  pid=$(cat "$pidfile")
  name=$(basename "$pidfile" .pid)
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "[down] stopped $name (pid $pid)"
  fi
  rm -f "$pidfile"
done

[ "$purge" = 1 ] || exit 0
# The NATS stores of `npm run up -- --clusters N` (its databases meshplane_<cluster> are kept).
if [ -d .run/fed ]; then rm -rf .run/fed && echo "[down] removed the federation clusters' NATS stores (.run/fed)"; fi
if [ ! -s .run/agent.env ]; then
  echo "[down] --purge: no .run/agent.env (was the agent started by npm run up?): nothing to tear down"
  exit 0
fi
# shellcheck disable=SC1091
set -a && . .run/agent.env && set +a
if [ -d "$MESH_BPF_PIN_DIR" ] || { [ -n "$MESH_CGROUP" ] && [ -d "$MESH_CGROUP" ]; }; then
  # Processes still in a workload cgroup (a shell an operator moved there) keep it alive: say so.
  MESH_TEARDOWN=1 node dist/services/agent/src/main.js >>.run/agent-teardown.log 2>&1
  rc=$?
  case $rc in
    0) echo "[down] data plane of $MESH_NODE removed (pins $MESH_BPF_PIN_DIR, cgroup ${MESH_CGROUP:-none})" ;;
    3) echo "[down] pins removed; some cgroups of $MESH_CGROUP still hold processes (see .run/agent-teardown.log)" ;;
    *) echo "[down] teardown failed (exit $rc, see .run/agent-teardown.log)"; exit 1 ;;
  esac
fi
rm -f "$MESH_STATE_FILE" .run/agent.env
