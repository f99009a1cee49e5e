#!/usr/bin/env bash
# Makes the eBPF data plane buildable and built: installs the Debian packages it needs
# (only those missing), mounts bpffs when nothing is mounted at /sys/fs/bpf, compiles
# bpf/*.bpf.c into bpf/*.bpf.o and the libbpf addon into native/build/, each only when
# its sources are newer than its outputs. Idempotent: a ready machine passes in well
# under a second. Called by scripts/ensure-env.sh; safe to run on its own.
#
# MESH_BPF_SKIP_APT=1 skips the package step (for machines managed otherwise).
set -euo pipefail
cd "$(dirname "$0")/.."

log() { printf '[ensure-bpf] %s\n' "$*" >&2; }
die() { printf '[ensure-bpf] ERROR: %s\n' "$*" >&2; exit 1; }

# --- Debian packages ---------------------------------------------------------
# clang: BPF backend; libbpf-dev: bpf_helpers.h + libbpf.so for the addon; libelf/zlib:
# libbpf's link deps; linux-libc-dev: UAPI headers (linux/bpf.h); bpftool: operators'
# and tests' view of the maps; g++/make/python3: node-gyp; iproute2: `ss -ti`, which the
# sockmap test reads to prove spliced bytes bypassed TCP.
need=(clang llvm libbpf-dev libelf-dev zlib1g-dev linux-libc-dev pkg-config bpftool g++ make python3 iproute2)
need+=(haproxy) # `npm run bench -- dataplane`: the userspace proxy (sidecar stand-in) the VIP path is compared with
missing=()
for p in "${need[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ] && [ "${MESH_BPF_SKIP_APT:-0}" != 1 ]; then
  [ "$(id -u)" = 0 ] || die "missing Debian packages: ${missing[*]} (run as root, or: apt-get install ${missing[*]})"
  log "installing Debian packages: ${missing[*]}"
  apt-get update -qq >/dev/null
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# --- bpffs ----------------------------------------------------------------------
# Pinned maps and links live on bpffs; a container or minimal VM may not mount it.
if ! awk '$2 == "/sys/fs/bpf" && $3 == "bpf" { found = 1 } END { exit !found }' /proc/mounts; then
  if [ "$(id -u)" = 0 ] && [ -d /sys/fs/bpf ]; then
    log "mounting bpffs at /sys/fs/bpf"
    mount -t bpf bpf /sys/fs/bpf || log "could not mount bpffs (the BPF data plane will be unavailable)"
  else
    log "bpffs is not mounted at /sys/fs/bpf and we are not root (the BPF data plane will be unavailable)"
  fi
fi

# newer_than OUT SRC... : true when OUT is missing or any SRC is newer
stale() {
  local out=$1
  shift
  [ -e "$out" ] || return 0
  local src
  for src in "$@"; do [ "$src" -nt "$out" ] && return 0; done
  return 1
}

# --- BPF objects ------------------------------------------------------------------
# Plain UAPI headers rather than a generated vmlinux.h: mesh_maps.h includes
# <linux/types.h>, which would clash with vmlinux.h's copies of the same types, and the
# programs only touch UAPI contexts (bpf_sock_addr, bpf_sock_ops, sk_msg_md).
arch_inc="/usr/include/$(uname -m)-linux-gnu"
shopt -s nullglob
for src in bpf/*.bpf.c; do
  out="${src%.c}.o"
  if stale "$out" "$src" bpf/*.h; then
    log "compiling $src"
    clang -O2 -g -Wall -Werror -target bpf -I"$arch_inc" -Ibpf -c "$src" -o "$out.tmp"
    mv "$out.tmp" "$out"
  fi
done

# --- native addon -------------------------------------------------------------------
addon=native/build/Release/meshplane_bpf.node
if stale "$addon" native/binding.gyp native/src/*; then
  [ -f node_modules/node-gyp/bin/node-gyp.js ] && [ -d node_modules/node-addon-api ] ||
    die "node-gyp / node-addon-api are not installed: run npm ci first"
  log "building native addon (node-gyp)"
  gyp_args=(rebuild -C native --loglevel=error)
  # Build against Debian's Node headers instead of downloading a tarball (no network).
  [ -f /usr/include/node/common.gypi ] && gyp_args+=(--nodedir=/usr)
  node node_modules/node-gyp/bin/node-gyp.js "${gyp_args[@]}" >/dev/null
  [ -f "$addon" ] || die "node-gyp finished but $addon is missing"
  touch "$addon"
fi
