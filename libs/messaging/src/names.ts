/**
 * Names of everything a cluster owns in NATS. One place, so the relay, the agents and the API can
 * never disagree on where revisions and node status live.
 */

/** A cluster name must be one NATS subject token: no dots, wildcards, or whitespace. */
const CLUSTER = /^[A-Za-z0-9_-]{1,63}$/;

export function assertClusterName(cluster: string): void {
  if (!CLUSTER.test(cluster)) {
    throw new Error(
      `invalid cluster name ${JSON.stringify(cluster)}: use 1-63 letters, digits, '-' or '_' (it becomes a NATS subject token)`,
    );
  }
}

/** `MESH_<CLUSTER>`: upper case, every non-alphanumeric character replaced by `_`. */
export function streamName(cluster: string): string {
  assertClusterName(cluster);
  return `MESH_${cluster.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;
}

/** `mesh.<cluster>.revisions`: one message per revision, stream sequence == revision. */
export function revisionSubject(cluster: string): string {
  assertClusterName(cluster);
  return `mesh.${cluster}.revisions`;
}

/** `mesh_status_<cluster>`: JetStream KV bucket, one key per node. */
export function statusBucket(cluster: string): string {
  assertClusterName(cluster);
  return `mesh_status_${cluster}`;
}

/** `<cluster>:<revision>`: the JetStream dedupe id, identical on every retry of one revision. */
export function revisionMsgId(cluster: string, revision: number): string {
  return `${cluster}:${revision}`;
}

/** KV keys are subject tokens too; node names are DNS-like, so only reject what would break. */
const NODE_KEY = /^[A-Za-z0-9_=-][A-Za-z0-9_=.-]{0,252}$/;

export function nodeStatusKey(node: string): string {
  if (!NODE_KEY.test(node) || node.endsWith('.') || node.includes('..')) {
    throw new Error(
      `invalid node name ${JSON.stringify(node)}: use letters, digits, '-', '_', '=' or inner '.' (it becomes a KV key)`,
    );
  }
  return node;
}
