#!/usr/bin/env bash
# `npm run up -- --clusters N` (N = 2 or 3): N federated Meshplane clusters on this machine.
# Per cluster: a NATS server (infra/federation/<cluster>.conf: JetStream domain = cluster name;
# east is the leafnode hub; with N=3 and MESH_FEDERATION_TOPOLOGY=mesh, mesh-<cluster>.conf: a
# full mesh of leafnodes, no hub), a database, and the API, relay, importer and one agent (memory map
# backend: several clusters' BPF programs on one machine would share cgroups). east exports the
# `web` service; west has its own `web` on the same VIP (one global service, affinity local).
# Pids and logs under .run/ (fed-*); `npm run down` stops them. Called by scripts/up.sh after
# it built the project.
set -euo pipefail
cd "$(dirname "$0")/../.."
log() { printf '[up] %s\n' "$*" >&2; }
die() { printf '[up] ERROR: %s\n' "$*" >&2; exit 1; }

N=${1:-2}
case "$N" in 2) CLUSTERS=(east west) ;; 3) CLUSTERS=(east west north) ;; *) die "--clusters takes 2 or 3" ;; esac
TOPOLOGY="${MESH_FEDERATION_TOPOLOGY:-hub}"
case "$TOPOLOGY" in
  hub) CONF_PREFIX="" ;;
  # The mesh configs link all three clusters; with two, each would keep dialing the missing one.
  mesh) [ "$N" = 3 ] || die "MESH_FEDERATION_TOPOLOGY=mesh needs --clusters 3"; CONF_PREFIX="mesh-" ;;
  *) die "MESH_FEDERATION_TOPOLOGY is hub or mesh, not $TOPOLOGY" ;;
esac
BASE_DB="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/meshplane}"
RUN=.run
mkdir -p "$RUN/fed"
if [ -z "${MESH_BOOTSTRAP_TOKEN:-}" ]; then
  [ -s "$RUN/token" ] || node -e 'console.log("mp_" + require("crypto").randomBytes(24).toString("hex"))' >"$RUN/token"
  MESH_BOOTSTRAP_TOKEN=$(cat "$RUN/token")
fi
export MESH_BOOTSTRAP_TOKEN
TTL="${MESH_FEDERATION_CACHE_TTL:-30s}"

running() { [ -s "$RUN/$1.pid" ] && kill -0 "$(cat "$RUN/$1.pid")" 2>/dev/null; }
start() { # name command... (env via `env`)
  local name=$1
  shift
  if running "$name"; then log "$name already running (pid $(cat "$RUN/$name.pid"))"; return; fi
  nohup "$@" >>"$RUN/$name.log" 2>&1 &
  echo $! >"$RUN/$name.pid"
  log "$name started (pid $!, log $RUN/$name.log)"
}
wait_http() {
  for _ in $(seq 1 100); do curl -fsS -o /dev/null "$1" 2>/dev/null && return 0; sleep 0.2; done
  die "$2 did not become ready at $1 (see $RUN/fed-*.log)"
}
db_url() { node -e 'const u = new URL(process.argv[1]); u.pathname = "/meshplane_" + process.argv[2]; console.log(u.toString())' "$BASE_DB" "$1"; }

for i in "${!CLUSTERS[@]}"; do
  c=${CLUSTERS[$i]}
  mkdir -p "$RUN/fed/$c"
  start "fed-$c-nats" nats-server -c "infra/federation/$CONF_PREFIX$c.conf" -sd "$PWD/$RUN/fed/$c"
done
for i in "${!CLUSTERS[@]}"; do
  port=$((4322 + i))
  for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
  (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null || die "NATS of ${CLUSTERS[$i]} is not listening on $port (see $RUN/fed-${CLUSTERS[$i]}-nats.log)"
done

for i in "${!CLUSTERS[@]}"; do
  c=${CLUSTERS[$i]}
  db=$(db_url "$c")
  nats="nats://127.0.0.1:$((4322 + i))"
  api_port=$((8181 + i))
  peers=$(printf '%s\n' "${CLUSTERS[@]}" | grep -vx "$c" | paste -sd, -)
  DATABASE_URL="$db" node dist/libs/event-store/src/migrate-cli.js
  common=(env MESH_CLUSTER="$c" DATABASE_URL="$db" NATS_URL="$nats")
  start "fed-$c-api" "${common[@]}" MESH_API_PORT="$api_port" MESH_BOOTSTRAP_TOKEN="$MESH_BOOTSTRAP_TOKEN" \
    node dist/services/api/src/main.js
  wait_http "http://127.0.0.1:$api_port/readyz" "the API of $c"
  start "fed-$c-relay" "${common[@]}" node dist/services/relay/src/main.js
  start "fed-$c-importer" "${common[@]}" MESH_FEDERATION_PEERS="$peers" MESH_FEDERATION_CACHE_TTL="$TTL" \
    node dist/services/importer/src/main.js
  start "fed-$c-agent" "${common[@]}" MESH_NODE="$c-node-1" MESH_DATAPLANE=memory \
    MESH_STATE_FILE="$PWD/$RUN/fed/$c/agent.state" MESH_API_URL="http://127.0.0.1:$api_port" \
    MESH_TOKEN="$MESH_BOOTSTRAP_TOKEN" node dist/services/agent/src/main.js
done

for c in east west; do
  i=0; [ "$c" = west ] && i=1
  log "applying infra/federation/example-$c.yaml to $c"
  MESH_SERVER="http://127.0.0.1:$((8181 + i))" MESH_TOKEN="$MESH_BOOTSTRAP_TOKEN" \
    node bin/meshctl apply -f "infra/federation/example-$c.yaml" --reason "npm run up --clusters: example" || true
done

cat <<MSG

$N federated clusters are up (${CLUSTERS[*]}; $([ "$TOPOLOGY" = mesh ] && echo "full mesh of leafnodes" || echo "NATS leafnode hub: east, 127.0.0.1:7422")).
APIs: $(for i in "${!CLUSTERS[@]}"; do printf '%s=http://127.0.0.1:%s ' "${CLUSTERS[$i]}" $((8181 + i)); done)

See what west imported from east (link state, peer revision, export seq, lag):

  MESH_SERVER=http://127.0.0.1:8182 MESH_TOKEN=$MESH_BOOTSTRAP_TOKEN npx meshctl federation status
  MESH_SERVER=http://127.0.0.1:8182 MESH_TOKEN=$MESH_BOOTSTRAP_TOKEN npx meshctl history
  MESH_SERVER=http://127.0.0.1:8182 MESH_TOKEN=$MESH_BOOTSTRAP_TOKEN npx meshctl get Service

Cut the link: kill \$(cat $RUN/fed-east-nats.pid); west shows east DISCONNECTED and withdraws its
backends after $TTL (MESH_FEDERATION_CACHE_TTL); npm run up -- --clusters $N restarts it.
Stop everything with: npm run down
MSG
