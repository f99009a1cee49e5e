#!/usr/bin/env bash
# Makes a fresh Debian machine ready for `npm run up` and `npm test`: installs the
# Debian packages and npm dependencies that are missing, starts the local Postgres
# and NATS when they are installed but not running, and otherwise stops with a
# message that names what is missing. Idempotent: a ready machine passes in ~1 s.
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[ensure-env] %s\n' "$*" >&2; }
die() { printf '[ensure-env] ERROR: %s\n' "$*" >&2; exit 1; }

DATABASE_URL="${DATABASE_URL:-postgres://postgres@127.0.0.1:5432/meshplane}"
NATS_URL="${NATS_URL:-nats://127.0.0.1:4222}"

# --- Debian packages ---------------------------------------------------------
missing=()
ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || missing+=(postgresql)
command -v psql >/dev/null 2>&1 || missing+=(postgresql-client)
command -v nats-server >/dev/null 2>&1 || missing+=(nats-server)
for extra in ${MESH_EXTRA_PACKAGES:-}; do
  dpkg -s "$extra" >/dev/null 2>&1 || missing+=("$extra")
done
fresh_pg=0
if [ ${#missing[@]} -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing Debian packages: ${missing[*]} (run as root, or: apt-get install ${missing[*]})"
  command -v apt-get >/dev/null || die "missing packages ${missing[*]} and no apt-get to install them"
  [[ " ${missing[*]} " == *" postgresql "* ]] && fresh_pg=1
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- npm dependencies ---------------------------------------------------------
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  log "installing npm dependencies (npm ci)"
  npm ci --no-audit --no-fund --loglevel=error
fi

# --- the eBPF data plane: toolchain, BPF objects, libbpf addon ------------------
bash scripts/ensure-bpf.sh

# --- services -----------------------------------------------------------------
hostport() { # url -> "host port"
  node -e 'const u=new URL(process.argv[1]);console.log(u.hostname, u.port||process.argv[2])' "$1" "$2"
}
reachable() { timeout 2 bash -c "exec 3<>/dev/tcp/$1/$2" 2>/dev/null; }
is_local() { [[ "$1" == 127.* || "$1" == localhost ]]; }

read -r pg_host pg_port < <(hostport "$DATABASE_URL" 5432)
if ! reachable "$pg_host" "$pg_port"; then
  is_local "$pg_host" || die "Postgres at $pg_host:$pg_port is not reachable (DATABASE_URL)"
  cluster_ver=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
  [ -n "$cluster_ver" ] || die "Postgres is installed but has no cluster under /etc/postgresql (pg_createcluster)"
  if [ "$fresh_pg" = 1 ]; then
    # A fresh Debian cluster asks for passwords on TCP; the local dev default is trust on loopback.
    hba="/etc/postgresql/$cluster_ver/main/pg_hba.conf"
    sed -i -E 's/^(host\s+all\s+all\s+(127\.0\.0\.1\/32|::1\/128)\s+)\S+/\1trust/' "$hba"
  fi
  log "starting Postgres $cluster_ver"
  pg_ctlcluster --skip-systemctl-redirect "$cluster_ver" main start || die "could not start Postgres"
  for _ in $(seq 1 30); do reachable "$pg_host" "$pg_port" && break; sleep 0.5; done
  reachable "$pg_host" "$pg_port" || die "Postgres did not come up on $pg_host:$pg_port"
fi

read -r nats_host nats_port < <(hostport "$NATS_URL" 4222)
if ! reachable "$nats_host" "$nats_port"; then
  is_local "$nats_host" || die "NATS at $nats_host:$nats_port is not reachable (NATS_URL)"
  log "starting nats-server with JetStream on $nats_host:$nats_port"
  mkdir -p /var/lib/nats-server
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/nats-server -- \
    -a "$nats_host" -p "$nats_port" -js -sd /var/lib/nats-server -l /var/log/nats-server.log
  for _ in $(seq 1 30); do reachable "$nats_host" "$nats_port" && break; sleep 0.5; done
  reachable "$nats_host" "$nats_port" || die "NATS did not come up on $nats_host:$nats_port"
fi
