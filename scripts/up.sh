#!/usr/bin/env bash
# `npm run up`: the control plane on this machine with the example mesh applied.
# Starts each service in the background (pids and logs under .run/), waits until
# it is ready, applies examples/bookinfo.yaml through meshctl, and prints how to
# use it. `npm run down` stops what this script started.
#
# The node agent runs the real eBPF data plane when this machine allows it
# (MESH_DATAPLANE=bpf; set MESH_DATAPLANE=memory to force the simulation): it
# owns the cgroup <cgroup2 mount><this shell's cgroup>/meshplane-up-<node> and
# pins under /sys/fs/bpf/meshplane/<node>. Each example workload of this node
# then gets a tiny echo HTTP server on its loopback address, running in the
# workload's cgroup, so that a request through a service VIP gets an answer.
# Idempotent: what already runs is left alone. `npm run down -- --purge` also
# detaches the programs, unpins the maps and removes the cgroup.
set -euo pipefail
cd "$(dirname "$0")/.."
log() { printf '[up] %s\n' "$*" >&2; }
die() { printf '[up] ERROR: %s\n' "$*" >&2; exit 1; }

usage() {
  cat <<'USAGE'
usage: npm run up [-- --clusters N]

  (no flags)      one cluster: API, relay and a node agent on the local Postgres and NATS,
                  with examples/bookinfo.yaml applied
  --clusters N    N = 2 or 3 federated clusters on this machine (east, west[, north]): one
                  NATS server each (infra/federation/<cluster>.conf, JetStream domain = cluster,
                  leafnodes to the hub east), one database each (meshplane_<cluster>), and per
                  cluster the API (ports 8181, 8182, 8183), relay, importer and one agent on the
                  memory map backend; east exports `web` (infra/federation/example-*.yaml).
                  MESH_FEDERATION_CACHE_TTL (default 30s) sets how long west keeps east's
                  backends once the link is cut.
  -h, --help      this text

npm run down stops what either form started.
USAGE
}
clusters=1
while [ $# -gt 0 ]; do
  case "$1" in
    --clusters) [ $# -ge 2 ] || die "--clusters needs a number"; clusters=$2; shift 2 ;;
    --clusters=*) clusters=${1#--clusters=}; shift ;;
    -h | --help) usage; exit 0 ;;
    *) usage >&2; die "unknown argument: $1" ;;
  esac
done
case "$clusters" in 1 | 2 | 3) ;; *) die "--clusters takes 1, 2 or 3 (got $clusters)" ;; esac

bash scripts/ensure-env.sh
log "building"
npm run -s build
if [ "$clusters" -gt 1 ]; then exec bash infra/federation/up-clusters.sh "$clusters"; fi

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

# --- the node agent: the eBPF data plane when this machine can run it ------------
AGENT_STATE="$PWD/$RUN/agent-$MESH_NODE.state"
dataplane=${MESH_DATAPLANE:-}
if [ -z "$dataplane" ]; then
  bpf_probe=$(node -e 'const r = require("./dist/libs/dataplane/src/bpf/probe.js").bpfAvailable(); console.log(r === true ? "ok" : r)' 2>&1 || true)
  if [ "$bpf_probe" = ok ]; then dataplane=bpf; else
    dataplane=memory
    log "BPF is unavailable ($bpf_probe): the agent simulates its maps (no traffic is steered)"
  fi
fi
agent_env=(MESH_DATAPLANE="$dataplane")
MESH_CGROUP=""
if [ "$dataplane" = bpf ]; then
  cg_mount=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
  cg_self=$(sed -n 's/^0:://p' /proc/self/cgroup)
  [ -n "$cg_mount" ] && [ -n "$cg_self" ] || die "MESH_DATAPLANE=bpf, but no cgroup v2 is mounted"
  # Below our own cgroup (the agent only accepts a cgroup inside its own subtree), never the root.
  MESH_CGROUP="${cg_mount%/}${cg_self%/}/meshplane-up-$MESH_NODE"
  mkdir -p "$MESH_CGROUP"
  agent_env+=(MESH_CGROUP="$MESH_CGROUP")
else
  agent_env+=(MESH_STATE_FILE="$AGENT_STATE")
fi
# What `npm run down -- --purge` needs to find this node's pins and cgroup again.
cat >"$RUN/agent.env" <<ENV
MESH_NODE=$MESH_NODE
MESH_DATAPLANE=$dataplane
MESH_CGROUP=$MESH_CGROUP
MESH_BPF_PIN_DIR=${MESH_BPF_PIN_DIR:-/sys/fs/bpf/meshplane/$MESH_NODE}
MESH_STATE_FILE=$AGENT_STATE
ENV
start "agent-$MESH_NODE" dist/services/agent/src/main.js "${agent_env[@]}"

log "applying examples/bookinfo.yaml"
node bin/meshctl apply -f examples/bookinfo.yaml --reason "npm run up: example mesh"
if node bin/meshctl --help 2>/dev/null | grep -qE '^ +wait'; then
  head=$(curl -fsS -H "Authorization: Bearer $MESH_TOKEN" "$MESH_SERVER/v1/revisions?limit=1" |
    node -e 'let s="";process.stdin.on("data",(d)=>(s+=d)).on("end",()=>console.log(JSON.parse(s).headRevision))')
  log "waiting until every node has applied revision $head"
  node bin/meshctl wait --revision "$head" --timeout 30s
fi

# --- loopback backends for the example workloads (bpf only) -------------------------
# One echo HTTP server per Workload of this node, on its address and the target port of
# every Service selecting it, inside the workload's cgroup (it is that workload).
try_cmd=""
ECHO_JS='const [name, addr, port] = process.argv.slice(1);
require("http")
  .createServer((q, s) => s.end(`${name} (${addr}:${port}) answered ${q.method} ${q.url}\n`))
  .listen(+port, addr, () => console.log(`${name} listening on ${addr}:${port}`));'
if [ "$dataplane" = bpf ]; then
  for _ in $(seq 1 50); do [ -d "$MESH_CGROUP/default.productpage-v1" ] && break; sleep 0.1; done
  backends=$(node -e '
    const yaml = require("yaml");
    const docs = yaml.parseAllDocuments(require("fs").readFileSync("examples/bookinfo.yaml", "utf8")).map((d) => d.toJS()).filter(Boolean);
    const node = process.argv[1];
    const svcs = docs.filter((d) => d.kind === "Service");
    for (const w of docs.filter((d) => d.kind === "Workload" && d.spec.node === node)) {
      const ns = w.namespace || "default";
      const ports = new Set();
      for (const s of svcs)
        if ((s.namespace || "default") === ns && Object.entries(s.spec.selector || {}).every(([k, v]) => w.spec.labels?.[k] === v))
          for (const p of s.spec.ports) if ((p.protocol || "TCP") === "TCP") ports.add(p.targetPort || p.port);
      for (const port of ports) console.log(`${ns} ${w.name} ${w.spec.address} ${port}`);
    }' "$MESH_NODE")
  while read -r ns name addr port; do
    [ -n "$name" ] || continue
    cg="$MESH_CGROUP/$ns.$name"
    [ -d "$cg" ] || { log "no cgroup $cg (has the agent applied the mesh? see $RUN/agent-$MESH_NODE.log)"; continue; }
    id="echo-$ns.$name-$port"
    if running "$id"; then continue; fi
    # The shell joins the workload cgroup, then becomes the server (same pid, same cgroup).
    ECHO_JS="$ECHO_JS" nohup sh -c 'echo $$ > "$1/cgroup.procs" && shift && exec node -e "$ECHO_JS" "$@"' \
      sh "$cg" "$ns/$name" "$addr" "$port" >>"$RUN/$id.log" 2>&1 &
    echo $! >"$RUN/$id.pid"
    log "$id started (pid $!, $addr:$port, cgroup $cg)"
  done <<<"$backends"
  client_cg="$MESH_CGROUP/default.productpage-v1"
  try_cmd="sh -c 'echo \$\$ > $client_cg/cgroup.procs && exec curl -sS http://127.100.0.4:9080/'"
  # Prove it once: a request from the productpage workload to the reviews VIP.
  answer=""
  for _ in $(seq 1 30); do
    answer=$(sh -c "echo \$\$ > $client_cg/cgroup.procs && exec curl -sS -m 2 http://127.100.0.4:9080/" 2>&1) && break
    answer=""
    sleep 0.2
  done
  if [ -n "$answer" ]; then log "through the reviews VIP: $answer"; else
    log "WARNING: no answer through the reviews VIP yet (see $RUN/agent-$MESH_NODE.log and $RUN/echo-*.log)"
  fi
fi

cat <<MSG

Meshplane is up: API $MESH_SERVER (cluster $MESH_CLUSTER). Use it with:

  export MESH_SERVER=$MESH_SERVER MESH_TOKEN=$MESH_TOKEN
  npx meshctl get
  npx meshctl history
  npx meshctl status

Logs are in $RUN/; stop everything with: npm run down
(npm run down -- --purge also removes the data plane: programs, pinned maps, cgroups)
MSG
if [ -n "$try_cmd" ]; then
  cat <<MSG

Data plane: eBPF (cgroup $MESH_CGROUP, pins ${MESH_BPF_PIN_DIR:-/sys/fs/bpf/meshplane/$MESH_NODE}).
Each example workload has an echo server on its 127.0.1.x address. Send a request through the
reviews VIP from inside the productpage workload's cgroup (where the programs apply; 80/10/10
over reviews v1/v2/v3, per the Route):

  $try_cmd

  for i in \$(seq 20); do $try_cmd; done | sort | uniq -c

The ratings VIP (127.100.0.3) admits only productpage and reviews: from details-v1 it fails (EPERM):

  sh -c 'echo \$\$ > $MESH_CGROUP/default.details-v1/cgroup.procs && exec curl -sS http://127.100.0.3:9080/'
MSG
else
  printf '\nData plane: memory (simulated maps; no traffic is steered on this machine).\n'
fi
