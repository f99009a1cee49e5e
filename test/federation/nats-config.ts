/*
 * nats-server config text for the federation tests' clusters (loopback only). Two topologies:
 *
 * - hub: names[0] listens for leafnodes, the others connect to it, everything in the global
 *   account. A triangle of leafnodes in one account is a loop nats-server refuses ("Loop
 *   detected for leafnode account"), so leaf-to-leaf traffic crosses the hub.
 * - mesh: every cluster is linked to every other one directly. Loop detection is per account,
 *   so each server has a JetStream account MESH (clients land in it) and one account LINK_<peer>
 *   per peer; the remote to a peer binds LINK_<peer> here to MESH there. MESH reaches the peer's
 *   JetStream API and its consumers' flow control through service imports from LINK_<peer>, and
 *   receives the sourced messages through a stream import of the deliver prefix the import
 *   stream uses for that peer (importDeliverPrefix). Each link account is joined by one leafnode
 *   only, so there is no loop to detect. Same layout as infra/federation/mesh-*.conf.
 */
import { importDeliverPrefix, importFlowControlPrefix } from '@meshplane/messaging';

export type FederationTopology = 'hub' | 'mesh';

/** Password of the leafnode users in the tests' mesh configs (loopback only). */
const LEAF_PASSWORD = 'mesh-e2e';

/** Cluster `name` in the hub topology: the hub's leafnode listener, or a remote to it. */
export function hubNatsConfig(name: string, hubLeafPort: number, isHub: boolean): string {
  return [
    `jetstream { domain: ${JSON.stringify(name)} }`,
    isHub
      ? `leafnodes { listen: "127.0.0.1:${hubLeafPort}" }`
      : `leafnodes { reconnect: 1, remotes: [ { url: "nats-leaf://127.0.0.1:${hubLeafPort}" } ] }`,
  ].join('\n');
}

const q = JSON.stringify;
const linkAccount = (peer: string) => `LINK_${peer.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`;

/** Cluster `name` in the full mesh; `leafPorts` has every cluster's leafnode port (its own too). */
export function meshNatsConfig(name: string, leafPorts: Readonly<Record<string, number>>): string {
  const peers = Object.keys(leafPorts).filter((p) => p !== name);
  const api = (peer: string) => `$JS.${peer}.API.>`;
  const fc = (peer: string) => `${importFlowControlPrefix(peer)}.>`;
  const deliver = (peer: string) => `${importDeliverPrefix(name, peer)}.>`;
  const imports = peers.flatMap((p) => [
    `{ service: { account: ${linkAccount(p)}, subject: ${q(api(p))} } }`,
    `{ service: { account: ${linkAccount(p)}, subject: ${q(fc(p))} } }`,
    `{ stream: { account: ${linkAccount(p)}, subject: ${q(deliver(p))} } }`,
  ]);
  const links = peers.map(
    (p) =>
      `  ${linkAccount(p)} { exports: [ { service: ${q(api(p))} }, { service: ${q(fc(p))} }, { stream: ${q(deliver(p))} } ] }`,
  );
  const remotes = peers.map(
    (p) =>
      `    { url: ${q(`nats-leaf://${name}:${LEAF_PASSWORD}@127.0.0.1:${leafPorts[p]}`)}, account: ${linkAccount(p)} }`,
  );
  const leafUsers = peers.map((p) => `{ user: ${q(p)}, password: ${q(LEAF_PASSWORD)}, account: MESH }`);
  return [
    `jetstream { domain: ${q(name)} }`,
    'accounts {',
    '  MESH {',
    '    jetstream: enabled',
    '    users: [ { user: mesh, password: mesh } ]',
    `    imports: [\n      ${imports.join('\n      ')}\n    ]`,
    '  }',
    ...links,
    '}',
    // Clients (relay, importer, agents, API) connect without credentials into MESH.
    'no_auth_user: mesh',
    'leafnodes {',
    `  listen: "127.0.0.1:${leafPorts[name]}"`,
    '  reconnect: 1',
    `  authorization { users: [ ${leafUsers.join(', ')} ] }`,
    `  remotes: [\n${remotes.join('\n')}\n  ]`,
    '}',
  ].join('\n');
}
