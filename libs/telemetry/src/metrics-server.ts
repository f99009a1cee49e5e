import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { PROMETHEUS_CONTENT_TYPE } from './prometheus';

export interface MetricsServer {
  readonly port: number;
  readonly url: string;
  close(): Promise<void>;
}

/**
 * GET /metrics on a loopback port (MESH_METRICS_PORT) for the services that have no HTTP API of
 * their own. Scrapers reach it through the node's loopback (or a sidecar); it never binds
 * elsewhere. Port 0 here means "any free port" (tests); the services' config uses 0 for "off".
 */
export function serveMetrics(port: number, render: () => string, host = '127.0.0.1'): Promise<MetricsServer> {
  const server = http.createServer((req, res) => {
    const path = (req.url ?? '/').split('?')[0];
    if (path !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: only GET /metrics is served\n');
      return;
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD', 'content-type': 'text/plain' }).end('method not allowed\n');
      return;
    }
    let body: string;
    try {
      body = render();
    } catch (err) {
      res.writeHead(500, { 'content-type': 'text/plain' }).end(`${(err as Error).message}\n`);
      return;
    }
    res
      .writeHead(200, { 'content-type': PROMETHEUS_CONTENT_TYPE })
      .end(req.method === 'HEAD' ? undefined : body);
  });
  // A scrape must never keep a stopping service alive.
  server.keepAliveTimeout = 1000;
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      server.unref();
      const p = (server.address() as AddressInfo).port;
      resolve({
        port: p,
        url: `http://${host}:${p}/metrics`,
        close: () =>
          new Promise<void>((r) => {
            server.closeAllConnections();
            server.close(() => r());
          }),
      });
    });
  });
}
