// SPDX-License-Identifier: GPL-2.0-only
/*
 * mesh.bpf.c - Meshplane's socket-level data plane.
 *
 * cgroup/connect4, cgroup/sendmsg4   VIP -> backend (weighted slots) + L4 authorization
 * cgroup/recvmsg4, cgroup/getpeername4  backend -> VIP, so the application sees the VIP
 * sockops + sk_msg                   same-node socket splicing through a sockhash
 *
 * Every struct comes from mesh_maps.h; this file only declares the maps (all pinned by
 * name under the pin root the loader passes) and the programs. Built with plain UAPI
 * headers, not vmlinux.h, because mesh_maps.h includes <linux/types.h>.
 */
#include <linux/bpf.h>
#include <linux/in.h>
#include <linux/socket.h>
#include <linux/errno.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

#include "mesh_maps.h"

#ifndef AF_INET
#define AF_INET 2 /* from <sys/socket.h>, which cannot be included in BPF code */
#endif

#define MESH_HASH(name, ktype, vtype, entries)                                                           \
	struct {                                                                                         \
		__uint(type, BPF_MAP_TYPE_HASH);                                                         \
		__uint(max_entries, entries);                                                            \
		__uint(map_flags, BPF_F_NO_PREALLOC);                                                    \
		__uint(pinning, LIBBPF_PIN_BY_NAME);                                                     \
		__type(key, ktype);                                                                      \
		__type(value, vtype);                                                                    \
	} name SEC(".maps")

/* No preallocation: the capacities leave room for two slot generations of every service,
 * and preallocating them would pin hundreds of MiB per node agent that are rarely used. */
MESH_HASH(mesh_services, struct mesh_service_key, struct mesh_service_value, MESH_MAX_SERVICES);
MESH_HASH(mesh_slots, struct mesh_slot_key, struct mesh_slot_value, MESH_MAX_SLOTS);
MESH_HASH(mesh_backends, struct mesh_backend_key, struct mesh_backend_value, MESH_MAX_BACKENDS);
MESH_HASH(mesh_identities, struct mesh_identity_key, struct mesh_identity_value, MESH_MAX_IDENTITIES);
MESH_HASH(mesh_policy, struct mesh_policy_key, struct mesh_policy_value, MESH_MAX_POLICIES);
MESH_HASH(mesh_id_names, struct mesh_id_name_key, struct mesh_id_name_value, MESH_MAX_IDENTITIES);

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	/* The kernel wants an array map's BTF key to be a plain 4-byte int: same bytes as
	 * struct mesh_meta_key (one __u32 index), which a struct key would be rejected as. */
	__type(key, __u32);
	__type(value, struct mesh_meta_value);
} mesh_meta SEC(".maps");

/* LRU: closed sockets never tell us they are gone (no hook here), so their entries age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MESH_MAX_REVNAT_SOCKS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct mesh_revnat_sk_key);
	__type(value, struct mesh_revnat_sk_value);
} mesh_revnat_sk SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_SOCKHASH);
	__uint(max_entries, MESH_MAX_SOCKS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct mesh_sock_key);
	__type(value, __u64); /* socket cookie on lookup from user space */
} mesh_socks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, MESH_MAX_LISTENERS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct mesh_listener_key);
	__type(value, struct mesh_listener_value);
} mesh_listeners SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, MESH_MAX_PENDING_SOCKS);
	__uint(pinning, LIBBPF_PIN_BY_NAME);
	__type(key, struct mesh_sock_key);
	__type(value, struct mesh_sk_pending_value);
} mesh_sk_pending SEC(".maps");

#define SYS_REJECT 0
#define SYS_PROCEED 1

/* L4 authorization, evaluated exactly as mesh_maps.h documents it: DENY first, then a
 * frontend covered by some ALLOW admits only identities with an ALLOW entry. */
static __always_inline int mesh_authorized(const struct mesh_service_value *svc)
{
	if (!(svc->flags & (MESH_SVC_F_ALLOW | MESH_SVC_F_DENY)))
		return 1;

	struct mesh_identity_key ik = { .cgroup_id = bpf_get_current_cgroup_id() };
	struct mesh_identity_value *id = bpf_map_lookup_elem(&mesh_identities, &ik);
	if (!id) /* unknown caller: no policy entry can match it */
		return !(svc->flags & MESH_SVC_F_ALLOW);

	struct mesh_policy_key pk = { .service_id = svc->service_id, .identity_id = id->identity_id };
	struct mesh_policy_value *pol = bpf_map_lookup_elem(&mesh_policy, &pk);
	if (pol && pol->action == MESH_ACTION_DENY)
		return 0;
	if ((svc->flags & MESH_SVC_F_ALLOW) && !(pol && pol->action == MESH_ACTION_ALLOW))
		return 0;
	return 1;
}

/* Picks a backend of the live slot generation. The agent flips `generation` in the service
 * entry after writing the new table and deletes the old table afterwards, so a slot miss
 * means we raced that delete: re-read the service once and retry in the new generation. */
static __always_inline struct mesh_backend_value *mesh_pick(const struct mesh_service_key *sk,
							     struct mesh_service_value *svc)
{
	struct mesh_slot_key slk = {};
	struct mesh_slot_value *slot;

	for (int attempt = 0; attempt < 2; attempt++) {
		if (svc->slot_count == 0)
			return NULL;
		slk.service_id = svc->service_id;
		slk.generation = svc->generation;
		slk.slot = bpf_get_prandom_u32() % svc->slot_count;
		slot = bpf_map_lookup_elem(&mesh_slots, &slk);
		if (slot) {
			struct mesh_backend_key bk = { .backend_id = slot->backend_id };
			return bpf_map_lookup_elem(&mesh_backends, &bk);
		}
		svc = bpf_map_lookup_elem(&mesh_services, sk);
		if (!svc)
			return NULL;
	}
	return NULL;
}

/* Shared by connect4 (TCP and connected UDP) and sendmsg4 (unconnected UDP). */
static __always_inline int mesh_xlate(struct bpf_sock_addr *ctx)
{
	__u32 proto = ctx->protocol;
	if (proto != IPPROTO_TCP && proto != IPPROTO_UDP)
		return SYS_PROCEED;

	struct mesh_service_key sk = {
		.vip = ctx->user_ip4,
		.port = (__be16)ctx->user_port,
		.proto = (__u8)proto,
	};
	struct mesh_service_value *svc = bpf_map_lookup_elem(&mesh_services, &sk);
	if (!svc) /* not a mesh VIP: leave the socket alone */
		return SYS_PROCEED;

	if (!mesh_authorized(svc))
		return SYS_REJECT; /* connect()/sendmsg() fail with EPERM */

	struct mesh_backend_value *be = mesh_pick(&sk, svc);
	if (!be) {
		/* A VIP with no backend must not leak to whatever listens on the VIP itself;
		 * Cilium answers the same situation with EHOSTUNREACH. */
		bpf_set_retval(-EHOSTUNREACH);
		return SYS_REJECT;
	}

	/* Remember the VIP per socket (and per backend, for unconnected UDP that sends to
	 * several VIPs) so getpeername4/recvmsg4 can show it to the application. */
	struct mesh_revnat_sk_key rk = {
		.cookie = bpf_get_socket_cookie(ctx),
		.addr = be->addr,
		.port = be->port,
	};
	struct mesh_revnat_sk_value rv = {
		.vip = sk.vip,
		.port = sk.port,
		.service_id = svc->service_id,
	};
	bpf_map_update_elem(&mesh_revnat_sk, &rk, &rv, BPF_ANY);

	ctx->user_ip4 = be->addr;
	ctx->user_port = (__u32)be->port;
	return SYS_PROCEED;
}

/* backend -> VIP for the application's view; recvmsg4 and getpeername4 must return 1. */
static __always_inline int mesh_revxlate(struct bpf_sock_addr *ctx)
{
	struct mesh_revnat_sk_key rk = {
		.cookie = bpf_get_socket_cookie(ctx),
		.addr = ctx->user_ip4,
		.port = (__be16)ctx->user_port,
	};
	struct mesh_revnat_sk_value *rv = bpf_map_lookup_elem(&mesh_revnat_sk, &rk);
	if (rv) {
		ctx->user_ip4 = rv->vip;
		ctx->user_port = (__u32)rv->port;
	}
	return SYS_PROCEED;
}

SEC("cgroup/connect4")
int mesh_connect4(struct bpf_sock_addr *ctx)
{
	return mesh_xlate(ctx);
}

SEC("cgroup/sendmsg4")
int mesh_sendmsg4(struct bpf_sock_addr *ctx)
{
	return mesh_xlate(ctx);
}

SEC("cgroup/recvmsg4")
int mesh_recvmsg4(struct bpf_sock_addr *ctx)
{
	return mesh_revxlate(ctx);
}

SEC("cgroup/getpeername4")
int mesh_getpeer4(struct bpf_sock_addr *ctx)
{
	return mesh_revxlate(ctx);
}

/* ---------------------------------------------------------------------------------------
 * Sockmap acceleration. sockops is attached to the agent's cgroup, so only sockets that
 * meshed workloads create (and connections accepted on their listeners) get here. A
 * socket enters the sockhash only when BOTH ends are meshed workloads of this node:
 *  - listen() of a meshed workload records its address in mesh_listeners (removed again
 *    when the listener closes, through the state callback enabled on it);
 *  - the connecting end inserts itself when its peer is such a listener;
 *  - the accepted end inserts itself when its peer (the connecting end, established
 *    first: it sends the final ACK) did so, as recorded in mesh_sk_pending.
 * Any other connection (remote or non-meshed backend) never runs sk_msg: it pays only
 * the connect4 rewrite. sk_msg then hands a sender's bytes straight to the peer's
 * receive queue.
 *
 * Port conventions differ per context: local_port is host order; remote_port is a
 * network-order u16 in the upper half of the u32 on little endian, so bpf_ntohl() of the
 * whole field yields the host-order port. Keys use host-order ports (mesh_maps.h).
 */
static __always_inline void mesh_listener_add(struct bpf_sock_ops *skops)
{
	struct mesh_listener_key lk = { .addr = skops->local_ip4, .port = (__u16)skops->local_port };
	struct mesh_listener_value one = { .count = 1 };
	struct mesh_listener_value *lv = bpf_map_lookup_elem(&mesh_listeners, &lk);
	if (lv)
		__sync_fetch_and_add(&lv->count, 1);
	else if (bpf_map_update_elem(&mesh_listeners, &lk, &one, BPF_NOEXIST) != 0) {
		lv = bpf_map_lookup_elem(&mesh_listeners, &lk); /* lost a race with another listen() */
		if (lv)
			__sync_fetch_and_add(&lv->count, 1);
	}
	/* Tell us when this listener closes. Its children inherit the flag; the accepted
	 * end clears it again (mesh_sockops, PASSIVE_ESTABLISHED). */
	bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags | BPF_SOCK_OPS_STATE_CB_FLAG);
}

static __always_inline void mesh_listener_remove(struct bpf_sock_ops *skops)
{
	struct mesh_listener_key lk = { .addr = skops->local_ip4, .port = (__u16)skops->local_port };
	struct mesh_listener_value *lv = bpf_map_lookup_elem(&mesh_listeners, &lk);
	if (!lv)
		return;
	/* The BPF target (cpu v1) cannot use an atomic add's result: subtract, then re-read.
	 * A race with a concurrent listen() on the same address costs acceleration only. */
	__sync_fetch_and_add(&lv->count, -1);
	if ((__s32)lv->count <= 0)
		bpf_map_delete_elem(&mesh_listeners, &lk);
}

/* Is the peer of this connecting socket a meshed listener of this node? */
static __always_inline int mesh_peer_listens(const struct mesh_sock_key *key)
{
	struct mesh_listener_key lk = { .addr = key->remote_ip, .port = key->remote_port };
	if (bpf_map_lookup_elem(&mesh_listeners, &lk))
		return 1;
	lk.addr = 0; /* INADDR_ANY listener */
	return bpf_map_lookup_elem(&mesh_listeners, &lk) != NULL;
}

/* Did a meshed socket of this node connect to this accepted one? Consumes the record. */
static __always_inline int mesh_peer_pending(const struct mesh_sock_key *key)
{
	struct mesh_sock_key peer = {
		.local_ip = key->remote_ip,
		.remote_ip = key->local_ip,
		.local_port = key->remote_port,
		.remote_port = key->local_port,
	};
	if (!bpf_map_lookup_elem(&mesh_sk_pending, &peer))
		return 0;
	bpf_map_delete_elem(&mesh_sk_pending, &peer);
	return 1;
}

SEC("sockops")
int mesh_sockops(struct bpf_sock_ops *skops)
{
	if (skops->family != AF_INET)
		return 1;

	__u32 op = skops->op;
	if (op == BPF_SOCK_OPS_TCP_LISTEN_CB) {
		mesh_listener_add(skops);
		return 1;
	}
	if (op == BPF_SOCK_OPS_STATE_CB) {
		if (skops->args[0] == BPF_TCP_LISTEN && skops->args[1] == BPF_TCP_CLOSE)
			mesh_listener_remove(skops);
		return 1;
	}
	if (op != BPF_SOCK_OPS_ACTIVE_ESTABLISHED_CB && op != BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB)
		return 1;

	struct mesh_sock_key key = {
		.local_ip = skops->local_ip4,
		.remote_ip = skops->remote_ip4,
		.local_port = (__u16)skops->local_port,
		.remote_port = (__u16)bpf_ntohl(skops->remote_port),
	};
	if (op == BPF_SOCK_OPS_PASSIVE_ESTABLISHED_CB) {
		if (skops->bpf_sock_ops_cb_flags & BPF_SOCK_OPS_STATE_CB_FLAG) /* inherited */
			bpf_sock_ops_cb_flags_set(skops, skops->bpf_sock_ops_cb_flags &
								 ~BPF_SOCK_OPS_STATE_CB_FLAG);
		if (mesh_peer_pending(&key))
			bpf_sock_hash_update(skops, &mesh_socks, &key, BPF_ANY);
		return 1;
	}
	if (!mesh_peer_listens(&key))
		return 1;
	/* Failure (map full) only costs the acceleration, never the connection. The socket
	 * leaves the sockhash by itself when it closes. */
	if (bpf_sock_hash_update(skops, &mesh_socks, &key, BPF_ANY) == 0) {
		struct mesh_sk_pending_value pv = {};
		bpf_map_update_elem(&mesh_sk_pending, &key, &pv, BPF_ANY);
	}
	return 1;
}

SEC("sk_msg")
int mesh_sk_msg(struct sk_msg_md *msg)
{
	if (msg->family != AF_INET)
		return SK_PASS;

	struct mesh_sock_key peer = {
		.local_ip = msg->remote_ip4,
		.remote_ip = msg->local_ip4,
		.local_port = (__u16)bpf_ntohl(msg->remote_port),
		.remote_port = (__u16)msg->local_port,
	};
	/* A miss (peer not meshed here) returns SK_DROP without setting a redirect; we ignore
	 * it and pass, so the bytes take the normal TCP path instead of being dropped. */
	bpf_msg_redirect_hash(msg, &mesh_socks, &peer, BPF_F_INGRESS);
	return SK_PASS;
}

char LICENSE[] SEC("license") = "GPL";
