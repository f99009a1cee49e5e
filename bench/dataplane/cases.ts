/**
 * The latency cases of the dataplane benchmark: who connects to what, how, and what must answer.
 * The addresses are fixed, all in 127.0.0.0/8 (DESIGN.md).
 */
import type { Haproxy } from './haproxy';
import type { LatencyCase } from './latency';
import type { LineProc, RrServer } from './procs';

export const PLAIN_SERVER = '127.0.1.201';
export const MESHED_SERVER = '127.0.1.202';
export const CLIENT_ADDR = '127.0.1.203';
export const VIP_PLAIN = '127.100.201.1';
export const VIP_MESHED = '127.100.201.2';

export interface CaseProcs {
  /** Client in a workload cgroup below the mesh cgroup (every program attached). */
  meshClient: LineProc;
  /** Client in a cgroup with only the socket-LB programs. */
  lbClient: LineProc;
  /** Client in the plain cgroup (no programs). */
  plainClient: LineProc;
  /** Echo server in the plain cgroup, behind VIP_PLAIN. */
  plainSrv: RrServer;
  /** Echo server in a meshed workload cgroup, behind VIP_MESHED. */
  meshedSrv: RrServer;
  haproxy: Haproxy;
  /** The Services' port on both VIPs. */
  vport: number;
}

/** Every case once per connection mode, then the sockmap case (reused connections only). */
export function latencyCases(p: CaseProcs): LatencyCase[] {
  const { meshClient, lbClient, plainClient, plainSrv, meshedSrv, haproxy, vport } = p;
  const plainT = { host: plainSrv.host, port: plainSrv.port };
  const vipT = { host: VIP_PLAIN, port: vport };
  const srv = { server: plainSrv };
  const onPath = (...procs: Array<{ pid: number }>) => ({
    pids: [...procs.map((p) => p.pid), plainSrv.proc.pid],
  });
  const cases: LatencyCase[] = [];
  for (const mode of ['new', 'reused'] as const) {
    const sfx = mode === 'new' ? '' : '_reused';
    const peer = `${VIP_PLAIN}:${vport}`;
    cases.push(
      {
        name: `vip${sfx}`,
        client: meshClient,
        target: vipT,
        mode,
        ...srv,
        expectPeer: peer,
        ...onPath(meshClient),
      },
      {
        name: `vip_lb_only${sfx}`,
        client: lbClient,
        target: vipT,
        mode,
        ...srv,
        expectPeer: peer,
        ...onPath(lbClient),
      },
      { name: `direct${sfx}`, client: plainClient, target: plainT, mode, ...srv, ...onPath(plainClient) },
      {
        name: `direct_in_mesh${sfx}`,
        client: meshClient,
        target: plainT,
        mode,
        ...srv,
        ...onPath(meshClient),
      },
      {
        name: `proxy${sfx}`,
        client: plainClient,
        target: { host: haproxy.host, port: haproxy.sidecarPort },
        mode,
        ...srv,
        ...onPath(plainClient, haproxy),
      },
      {
        name: `proxy2${sfx}`,
        client: plainClient,
        target: { host: haproxy.host, port: haproxy.twoHopPort },
        mode,
        ...srv,
        ...onPath(plainClient, haproxy),
      },
    );
  }
  cases.push({
    name: 'sockmap_reused',
    client: meshClient,
    target: { host: VIP_MESHED, port: vport },
    mode: 'reused',
    server: meshedSrv,
    expectPeer: `${VIP_MESHED}:${vport}`,
    pids: [meshClient.pid, meshedSrv.proc.pid],
  });
  return cases;
}
