#!/usr/bin/env bash
# `npm run up`: the control plane on this machine with the example mesh applied.
# Starts each service in the background (pids and logs under .run/), waits until
# it is ready, applies examples/bookinfo.yaml through meshctl, and prints how to
# use it. `npm run down` stops what this script started.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[up] %s\n' "$*" >&2; }
die() { printf '[up] ERROR: %s\n' "$*" >&2; exit 1; }

bash scripts/ensure-env.sh
log "building"
npm run -s build

export DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/meshplane}"
export NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"
export MESH_CLUSTER="${MESH_CLUSTER:-local}"
export MESH_API_PORT="${MESH_API_PORT:-8080}"
export MESH_NODE="${MESH_NODE:-node-1}"
RUN=.run
mkdir -p "$RUN"

# One admin token per checkout, kept out of git; MESH_BOOTSTRAP_TOKEN overrides it.
if [ -z "${MESH_BOOTSTRAP_TOKEN:-}" ]; then
  [ -s "$RUN/token" ] || node -e 'console.log("mp_" + require("crypto").randomBytes(24).toString("hex"))' >"$RUN/token"
  MESH_BOOTSTRAP_TOKEN=$(cat "$RUN/token")
fi
export MESH_BOOTSTRAP_TOKEN
export MESH_SERVER="http://127.0.0.1:${MESH_API_PORT}"
export MESH_TOKEN="$MESH_BOOTSTRAP_TOKEN"
export MESH_API_URL="$MESH_SERVER"

node dist/libs/event-store/src/migrate-cli.js

running() { [ -s "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }
start() { # name entry [env...]
  local name=$1 entry=$2
  shift 2
  if running "$name"; then log "$name already running (pid $(cat "$RUN/$name.pid"))"; return; fi
  [ -f "$entry" ] || { log "$name: not built yet ($entry), skipped"; return; }
  env "$@" nohup node "$entry" >>"$RUN/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
  log "$name started (pid $!, log $RUN/$name.log)"
}
wait_http() { # url what
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.2
  done
  die "$2 did not become ready at $1 (see $RUN/*.log)"
}

start api dist/services/api/src/main.js
wait_http "$MESH_SERVER/readyz" "the API"
start relay dist/services/relay/src/main.js
start "agent-$MESH_NODE" dist/services/agent/src/main.js MESH_STATE_FILE="$PWD/$RUN/agent-$MESH_NODE.state"

log "applying examples/bookinfo.yaml"
node bin/meshctl apply -f examples/bookinfo.yaml --reason "npm run up: example mesh"
if node bin/meshctl --help 2>/dev/null | grep -qE '^ +wait'; then
  head=$(curl -fsS -H "Authorization: Bearer $MESH_TOKEN" "$MESH_SERVER/v1/revisions?limit=1" |
    node -e 'let s="";process.stdin.on("data",(d)=>(s+=d)).on("end",()=>console.log(JSON.parse(s).headRevision))')
  log "waiting until every node has applied revision $head"
  node bin/meshctl wait --revision "$head" --timeout 30s
fi

cat <<MSG

Meshplane is up: API $MESH_SERVER (cluster $MESH_CLUSTER). Use it with:

  export MESH_SERVER=$MESH_SERVER MESH_TOKEN=$MESH_TOKEN
  npx meshctl get
  npx meshctl history
  npx meshctl status

Logs are in $RUN/; stop everything with: npm run down
MSG
