/*
 * The map layout of bpf/mesh_maps.h as data: every struct with its fields,
 * offsets and size, every map with its type, key, value and capacity. The
 * encoders (codec.ts) are driven by this table, and layout.spec.ts checks it
 * against the header (by parsing it and by compiling a C probe), so the TS and
 * C sides can only change together. Keep this the ONLY place offsets appear.
 */

export const LAYOUT_VERSION = 1;
export const META_MAGIC = 0x4d455348;

export const PROTO_TCP = 6;
export const PROTO_UDP = 17;

export const SVC_F_ALLOW = 0x1;
export const SVC_F_DENY = 0x2;
export const BE_F_LOCAL = 0x1;
export const ACTION_ALLOW = 1;
export const ACTION_DENY = 2;

export const MAX_SLOTS_PER_SERVICE = 4096;
export const IDENTITY_NAME_LEN = 64;
export const NAME_LEN = 64;

/** Scalar types of the header. `be*` are network byte order; the rest host order (little endian). */
export type FieldType = 'u8' | 'u16' | 'u32' | 'u64' | 'be16' | 'be32' | 'char';

export interface FieldDef {
  name: string;
  type: FieldType;
  offset: number;
  /** Array length (`char name[64]`, `__u8 pad[3]`); 1 for scalars. */
  count: number;
}

export interface StructDef {
  name: string;
  size: number;
  fields: readonly FieldDef[];
}

export const TYPE_SIZE: Record<FieldType, number> = {
  u8: 1,
  u16: 2,
  u32: 4,
  u64: 8,
  be16: 2,
  be32: 4,
  char: 1,
};

/** C spelling of each type, as the header writes it. */
export const C_TYPE: Record<FieldType, string> = {
  u8: '__u8',
  u16: '__u16',
  u32: '__u32',
  u64: '__u64',
  be16: '__be16',
  be32: '__be32',
  char: 'char',
};

type FieldSpec = [name: string, type: FieldType, offset: number, count?: number];

function struct(name: string, size: number, fields: FieldSpec[]): StructDef {
  return {
    name,
    size,
    fields: fields.map(([n, type, offset, count]) => ({ name: n, type, offset, count: count ?? 1 })),
  };
}

export const STRUCTS = {
  mesh_service_key: struct('mesh_service_key', 8, [
    ['vip', 'be32', 0],
    ['port', 'be16', 4],
    ['proto', 'u8', 6],
    ['pad', 'u8', 7],
  ]),
  mesh_service_value: struct('mesh_service_value', 12, [
    ['service_id', 'u32', 0],
    ['slot_count', 'u16', 4],
    ['generation', 'u16', 6],
    ['flags', 'u16', 8],
    ['pad', 'u16', 10],
  ]),
  mesh_slot_key: struct('mesh_slot_key', 8, [
    ['service_id', 'u32', 0],
    ['generation', 'u16', 4],
    ['slot', 'u16', 6],
  ]),
  mesh_slot_value: struct('mesh_slot_value', 4, [['backend_id', 'u32', 0]]),
  mesh_backend_key: struct('mesh_backend_key', 4, [['backend_id', 'u32', 0]]),
  mesh_backend_value: struct('mesh_backend_value', 8, [
    ['addr', 'be32', 0],
    ['port', 'be16', 4],
    ['proto', 'u8', 6],
    ['flags', 'u8', 7],
  ]),
  mesh_identity_key: struct('mesh_identity_key', 8, [['cgroup_id', 'u64', 0]]),
  mesh_identity_value: struct('mesh_identity_value', 8, [
    ['identity_id', 'u32', 0],
    ['pad', 'u32', 4],
  ]),
  mesh_policy_key: struct('mesh_policy_key', 8, [
    ['service_id', 'u32', 0],
    ['identity_id', 'u32', 4],
  ]),
  mesh_policy_value: struct('mesh_policy_value', 4, [
    ['action', 'u8', 0],
    ['pad', 'u8', 1, 3],
  ]),
  mesh_id_name_key: struct('mesh_id_name_key', 4, [['identity_id', 'u32', 0]]),
  mesh_id_name_value: struct('mesh_id_name_value', 64, [['name', 'char', 0, IDENTITY_NAME_LEN]]),
  mesh_meta_key: struct('mesh_meta_key', 4, [['index', 'u32', 0]]),
  mesh_meta_value: struct('mesh_meta_value', 160, [
    ['magic', 'u32', 0],
    ['layout_version', 'u32', 4],
    ['applied_revision', 'u64', 8],
    ['applied_at_ms', 'u64', 16],
    ['maps_digest', 'u64', 24],
    ['node', 'char', 32, NAME_LEN],
    ['cluster', 'char', 96, NAME_LEN],
  ]),
  mesh_revnat_sk_key: struct('mesh_revnat_sk_key', 16, [
    ['cookie', 'u64', 0],
    ['addr', 'be32', 8],
    ['port', 'be16', 12],
    ['pad', 'u16', 14],
  ]),
  mesh_revnat_sk_value: struct('mesh_revnat_sk_value', 12, [
    ['vip', 'be32', 0],
    ['port', 'be16', 4],
    ['pad', 'u16', 6],
    ['service_id', 'u32', 8],
  ]),
  mesh_sock_key: struct('mesh_sock_key', 12, [
    ['local_ip', 'be32', 0],
    ['remote_ip', 'be32', 4],
    ['local_port', 'u16', 8],
    ['remote_port', 'u16', 10],
  ]),
  mesh_listener_key: struct('mesh_listener_key', 8, [
    ['addr', 'be32', 0],
    ['port', 'u16', 4],
    ['pad', 'u16', 6],
  ]),
  mesh_listener_value: struct('mesh_listener_value', 4, [['count', 'u32', 0]]),
  mesh_sk_pending_value: struct('mesh_sk_pending_value', 4, [['reserved', 'u32', 0]]),
} as const satisfies Record<string, StructDef>;

export type StructName = keyof typeof STRUCTS;

export type MapType = 'hash' | 'array' | 'lru_hash' | 'sockhash';

export interface MapDef {
  name: string;
  type: MapType;
  key: StructName;
  /** Undefined for sockhash (its values are sockets, not bytes). */
  value: StructName | undefined;
  maxEntries: number;
  /** `agent`: written and reconciled by the agent; `program`: written by the BPF programs only. */
  owner: 'agent' | 'program';
}

/** Every map of the data plane. Names are BPF object names (<= 15 characters). */
export const MAPS = {
  mesh_services: {
    name: 'mesh_services',
    type: 'hash',
    key: 'mesh_service_key',
    value: 'mesh_service_value',
    maxEntries: 65536,
    owner: 'agent',
  },
  mesh_slots: {
    name: 'mesh_slots',
    type: 'hash',
    key: 'mesh_slot_key',
    value: 'mesh_slot_value',
    maxEntries: 1048576,
    owner: 'agent',
  },
  mesh_backends: {
    name: 'mesh_backends',
    type: 'hash',
    key: 'mesh_backend_key',
    value: 'mesh_backend_value',
    maxEntries: 262144,
    owner: 'agent',
  },
  mesh_identities: {
    name: 'mesh_identities',
    type: 'hash',
    key: 'mesh_identity_key',
    value: 'mesh_identity_value',
    maxEntries: 65536,
    owner: 'agent',
  },
  mesh_policy: {
    name: 'mesh_policy',
    type: 'hash',
    key: 'mesh_policy_key',
    value: 'mesh_policy_value',
    maxEntries: 262144,
    owner: 'agent',
  },
  mesh_id_names: {
    name: 'mesh_id_names',
    type: 'hash',
    key: 'mesh_id_name_key',
    value: 'mesh_id_name_value',
    maxEntries: 65536,
    owner: 'agent',
  },
  mesh_meta: {
    name: 'mesh_meta',
    type: 'array',
    key: 'mesh_meta_key',
    value: 'mesh_meta_value',
    maxEntries: 1,
    owner: 'agent',
  },
  mesh_revnat_sk: {
    name: 'mesh_revnat_sk',
    type: 'lru_hash',
    key: 'mesh_revnat_sk_key',
    value: 'mesh_revnat_sk_value',
    maxEntries: 262144,
    owner: 'program',
  },
  mesh_socks: {
    name: 'mesh_socks',
    type: 'sockhash',
    key: 'mesh_sock_key',
    value: undefined,
    maxEntries: 65536,
    owner: 'program',
  },
  mesh_listeners: {
    name: 'mesh_listeners',
    type: 'hash',
    key: 'mesh_listener_key',
    value: 'mesh_listener_value',
    maxEntries: 65536,
    owner: 'program',
  },
  mesh_sk_pending: {
    name: 'mesh_sk_pending',
    type: 'lru_hash',
    key: 'mesh_sock_key',
    value: 'mesh_sk_pending_value',
    maxEntries: 16384,
    owner: 'program',
  },
} as const satisfies Record<string, MapDef>;

export type MapName = keyof typeof MAPS;

/**
 * The maps `compile` fills and the reconciler diffs, in the order their
 * upserts run (see plan.ts for why). The meta map is written separately,
 * after every op succeeded.
 */
export const MANAGED_MAPS = [
  'mesh_id_names',
  'mesh_backends',
  'mesh_slots',
  'mesh_policy',
  'mesh_identities',
  'mesh_services',
] as const;

export type ManagedMapName = (typeof MANAGED_MAPS)[number];

/** #define names in the header for constants mirrored here (checked by layout.spec.ts). */
export const HEADER_CONSTANTS: Record<string, number> = {
  MESH_LAYOUT_VERSION: LAYOUT_VERSION,
  MESH_META_MAGIC: META_MAGIC,
  MESH_PROTO_TCP: PROTO_TCP,
  MESH_PROTO_UDP: PROTO_UDP,
  MESH_SVC_F_ALLOW: SVC_F_ALLOW,
  MESH_SVC_F_DENY: SVC_F_DENY,
  MESH_BE_F_LOCAL: BE_F_LOCAL,
  MESH_ACTION_ALLOW: ACTION_ALLOW,
  MESH_ACTION_DENY: ACTION_DENY,
  MESH_MAX_SLOTS_PER_SERVICE: MAX_SLOTS_PER_SERVICE,
  MESH_IDENTITY_NAME_LEN: IDENTITY_NAME_LEN,
  MESH_NAME_LEN: NAME_LEN,
  MESH_MAX_SERVICES: MAPS.mesh_services.maxEntries,
  MESH_MAX_SLOTS: MAPS.mesh_slots.maxEntries,
  MESH_MAX_BACKENDS: MAPS.mesh_backends.maxEntries,
  MESH_MAX_IDENTITIES: MAPS.mesh_identities.maxEntries,
  MESH_MAX_POLICIES: MAPS.mesh_policy.maxEntries,
  MESH_MAX_REVNAT_SOCKS: MAPS.mesh_revnat_sk.maxEntries,
  MESH_MAX_SOCKS: MAPS.mesh_socks.maxEntries,
  MESH_MAX_LISTENERS: MAPS.mesh_listeners.maxEntries,
  MESH_MAX_PENDING_SOCKS: MAPS.mesh_sk_pending.maxEntries,
};
