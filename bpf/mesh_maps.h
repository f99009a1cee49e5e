/* SPDX-License-Identifier: (GPL-2.0-only OR BSD-2-Clause) */
/*
 * mesh_maps.h - the ONE definition of every BPF map key and value of Meshplane.
 *
 * The agent (libs/dataplane/src/layout.ts) encodes these structs byte for byte;
 * a unit test recomputes every size and offset from this file (and compiles a C
 * probe) and compares them with that table, so the two cannot drift apart.
 *
 * Rules for this file:
 *  - fixed-width types only; natural alignment with explicit pad fields, never
 *    __attribute__((packed)) (unaligned loads are slow or rejected by the verifier);
 *  - pad fields are always written as zero, so equal entries are equal bytes
 *    (the agent diffs maps byte-wise: applying the same state twice writes nothing);
 *  - __be* fields are in network byte order (as the kernel hands out addresses
 *    and ports in bpf_sock_addr), every other integer is host order;
 *  - changing any struct, map type or meaning bumps MESH_LAYOUT_VERSION; an agent
 *    that finds pinned maps of another version does not adopt them.
 *
 * Map names are BPF object names: at most 15 characters.
 */
#ifndef MESH_MAPS_H
#define MESH_MAPS_H

#include <linux/types.h>

#define MESH_LAYOUT_VERSION 1
#define MESH_META_MAGIC 0x4d455348 /* "MESH" */

#define MESH_PROTO_TCP 6  /* IPPROTO_TCP */
#define MESH_PROTO_UDP 17 /* IPPROTO_UDP */

/* Capacities (max_entries). Large hash maps are created with BPF_F_NO_PREALLOC. */
#define MESH_MAX_SERVICES 65536        /* frontends: one per (Service, port) */
#define MESH_MAX_SLOTS 1048576         /* room for two generations of every table */
#define MESH_MAX_SLOTS_PER_SERVICE 4096
#define MESH_MAX_BACKENDS 262144
#define MESH_MAX_IDENTITIES 65536      /* workload cgroups on this node */
#define MESH_MAX_POLICIES 262144
#define MESH_MAX_REVNAT_SOCKS 262144   /* LRU */
#define MESH_MAX_SOCKS 65536           /* sockhash */
#define MESH_MAX_LISTENERS 65536       /* meshed TCP listeners on this node */
#define MESH_MAX_PENDING_SOCKS 16384   /* LRU: meshed connects not yet accepted */
#define MESH_IDENTITY_NAME_LEN 64
#define MESH_NAME_LEN 64

/* ------------------------------------------------------------------------
 * mesh_services (HASH): frontend -> service. Read by connect4 / sendmsg4.
 * One entry per (Service, port, protocol): each frontend has its own id, slot
 * table and policy entries, so AuthorizationPolicy.ports needs no port field.
 * The entry is the publish point of a service: it is written only after its
 * slots, backends and policy entries exist, and removed before them.
 */
struct mesh_service_key {
	__be32 vip;   /* service VIP */
	__be16 port;  /* service port */
	__u8 proto;   /* MESH_PROTO_TCP or MESH_PROTO_UDP */
	__u8 pad;
};

#define MESH_SVC_F_ALLOW 0x1 /* some ALLOW policy covers this frontend: only identities with an
			      * ALLOW entry in mesh_policy may connect (unknown callers are denied) */
#define MESH_SVC_F_DENY 0x2  /* some DENY policy covers it: look up mesh_policy (DENY wins) */

struct mesh_service_value {
	__u32 service_id;  /* stable id (also the rev-NAT index); never 0 */
	__u16 slot_count;  /* slots 0..slot_count-1 of `generation` are live; 0 = no backend */
	__u16 generation;  /* which slot table is live: a content hash of the table, so a new
			    * table is written beside the old one and this entry flips to it */
	__u16 flags;       /* MESH_SVC_F_* */
	__u16 pad;
};

/* ------------------------------------------------------------------------
 * mesh_slots (HASH): {service, generation, slot} -> backend. Weights become slot
 * counts: a backend with twice the weight holds twice the slots. The program picks
 * slot = bpf_get_prandom_u32() % slot_count in the live generation. On a miss (the
 * table was replaced between the two lookups) it re-reads the service once.
 */
struct mesh_slot_key {
	__u32 service_id;
	__u16 generation;
	__u16 slot;
};

struct mesh_slot_value {
	__u32 backend_id;
};

/* ------------------------------------------------------------------------
 * mesh_backends (HASH): backend id -> destination. One id per (address,
 * targetPort, protocol), shared by every frontend that selects it; the agent
 * re-reads ids from this map on restart, so ids never change for live backends.
 */
struct mesh_backend_key {
	__u32 backend_id; /* never 0 */
};

#define MESH_BE_F_LOCAL 0x1 /* the workload runs on this node (sockmap acceleration candidate) */

struct mesh_backend_value {
	__be32 addr;  /* workload address */
	__be16 port;  /* targetPort (or the service port) */
	__u8 proto;   /* MESH_PROTO_* */
	__u8 flags;   /* MESH_BE_F_* */
};

/* ------------------------------------------------------------------------
 * mesh_identities (HASH): cgroup id -> identity, for the workloads of THIS
 * node only (bpf_get_current_cgroup_id() of the caller). A caller whose cgroup
 * is not here has identity 0 (unknown).
 */
struct mesh_identity_key {
	__u64 cgroup_id;
};

struct mesh_identity_value {
	__u32 identity_id; /* never 0 */
	__u32 pad;
};

/* ------------------------------------------------------------------------
 * mesh_policy (HASH): {frontend, caller identity} -> verdict, only for
 * identities that some workload of this node has. connect4 evaluates:
 *   entry DENY                           -> deny (DENY rules first)
 *   flags & ALLOW and entry is not ALLOW -> deny
 *   otherwise                            -> allow
 * Deny = the program returns 0 and connect() fails with EPERM.
 */
struct mesh_policy_key {
	__u32 service_id;
	__u32 identity_id;
};

#define MESH_ACTION_ALLOW 1
#define MESH_ACTION_DENY 2

struct mesh_policy_value {
	__u8 action; /* MESH_ACTION_*; DENY when both an ALLOW and a DENY rule match */
	__u8 pad[3];
};

/* ------------------------------------------------------------------------
 * mesh_id_names (HASH): identity id -> identity name. Bookkeeping for the
 * agent only (no program reads it): the persisted id allocator, so that ids in
 * mesh_identities and mesh_policy survive agent restarts unchanged.
 */
struct mesh_id_name_key {
	__u32 identity_id;
};

struct mesh_id_name_value {
	char name[MESH_IDENTITY_NAME_LEN]; /* identity name, NUL padded */
};

/* ------------------------------------------------------------------------
 * mesh_meta (ARRAY, 1 entry, key 0): what the maps hold, stored WITH the maps
 * so that a restarted agent knows it without trusting its memory.
 */
struct mesh_meta_key {
	__u32 index; /* always 0 */
};

struct mesh_meta_value {
	__u32 magic;             /* MESH_META_MAGIC once an agent has written it; 0 = empty */
	__u32 layout_version;    /* MESH_LAYOUT_VERSION of the writer */
	__u64 applied_revision;  /* last revision whose maps were fully written (the checkpoint) */
	__u64 applied_at_ms;     /* unix time in ms of that write */
	__u64 maps_digest;       /* order-independent digest of the managed maps at that revision */
	char node[MESH_NAME_LEN];    /* node the maps belong to, NUL padded */
	char cluster[MESH_NAME_LEN]; /* cluster whose stream the revision counts in, NUL padded */
};

/* ------------------------------------------------------------------------
 * mesh_revnat_sk (LRU_HASH): written by connect4 / sendmsg4 themselves, read by
 * getpeername4 / recvmsg4 so the application sees the VIP. Keyed by socket
 * cookie (Cilium's reverse-sk map): a backend can serve several VIPs, so the
 * backend address alone cannot say which VIP a socket dialled. Not managed by
 * the agent; entries of closed sockets age out of the LRU.
 */
struct mesh_revnat_sk_key {
	__u64 cookie;  /* bpf_get_socket_cookie() */
	__be32 addr;   /* backend address the socket was sent to */
	__be16 port;   /* backend port */
	__u16 pad;
};

struct mesh_revnat_sk_value {
	__be32 vip;
	__be16 port;
	__u16 pad;
	__u32 service_id;
};

/* ------------------------------------------------------------------------
 * mesh_socks (SOCKHASH): established sockets of meshed workloads on this node,
 * inserted by sockops, used by sk_msg to splice same-node connections. Ports are
 * host order (the program normalises sockops' and sk_msg's mixed conventions).
 * The peer of a socket is found under {remote, local} swapped. Not agent-managed.
 */
struct mesh_sock_key {
	__be32 local_ip;
	__be32 remote_ip;
	__u16 local_port;
	__u16 remote_port;
};

/* ------------------------------------------------------------------------
 * mesh_listeners (HASH): TCP listeners of meshed workloads on this node, written
 * by sockops itself (listen() adds, the listener's close removes). sockops puts
 * a connecting socket into mesh_socks only when its peer is one of these, so a
 * meshed client talking to a remote or non-meshed backend pays no sk_msg at all.
 * addr 0 is a wildcard (INADDR_ANY) listener. Not agent-managed.
 */
struct mesh_listener_key {
	__be32 addr;  /* bound address, 0 for INADDR_ANY */
	__u16 port;   /* host order */
	__u16 pad;
};

struct mesh_listener_value {
	__u32 count; /* listening sockets on this address (SO_REUSEPORT groups have several) */
};

/* ------------------------------------------------------------------------
 * mesh_sk_pending (LRU_HASH): a connecting socket that sockops put into
 * mesh_socks, keyed by its mesh_sock_key, until the accepting end (always
 * established after it: it waits for the connecting end's final ACK) finds it
 * under its own key swapped, removes it and joins the sockhash too. sockops
 * cannot look sockets up in the sockhash itself (no bpf_sk_release there).
 * LRU: a connection that is never accepted leaves an entry that ages out.
 */
struct mesh_sk_pending_value {
	__u32 reserved; /* 0 */
};

#endif /* MESH_MAPS_H */
