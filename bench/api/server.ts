/**
 * The API under test, started as main.ts starts it on loopback, with its request log lines
 * JSON-encoded and counted (not written) and the server-side timings of chosen slices recorded.
 */
import type { AddressInfo } from 'node:net';
import { EventStore } from '@meshplane/event-store';
import type { INestApplication } from '@nestjs/common';
import { createApiApp } from '../../services/api/src/app';
import { nowMs } from '../lib';
import { BOOTSTRAP_TOKEN, CLUSTER, OPERATOR } from './args';

export interface ApiUnderTest {
  app: INestApplication;
  url: string;
  operatorToken: string;
  log: { lines: number; bytes: number; statusCounts: Record<string, number> };
  /** Server-side timings while `recording`: request (log line durationMs) and append() inside it. */
  serverTimes: { recording: boolean; requestMs: number[]; appendMs: number[] };
}

/**
 * Starts the API on `databaseUrl` and creates an operator token. `onApp` gets the application as
 * soon as it exists, so the caller can close it even when a later step fails.
 */
export async function startApi(
  databaseUrl: string,
  onApp: (app: INestApplication) => void,
): Promise<ApiUnderTest> {
  const log = { lines: 0, bytes: 0, statusCounts: {} as Record<string, number> };
  const serverTimes = { recording: false, requestMs: [] as number[], appendMs: [] as number[] };
  const app = await createApiApp({
    databaseUrl,
    port: 0,
    host: '127.0.0.1',
    cluster: CLUSTER,
    bootstrapToken: BOOTSTRAP_TOKEN,
    logSink: (line) => {
      log.lines++;
      log.bytes += JSON.stringify(line).length + 1;
      if (line.msg !== 'request') return;
      log.statusCounts[String(line.status)] = (log.statusCounts[String(line.status)] ?? 0) + 1;
      if (serverTimes.recording && line.path === '/v1/changes')
        serverTimes.requestMs.push(Number(line.durationMs));
    },
  });
  onApp(app);
  await app.listen(0, '127.0.0.1');
  const url = `http://127.0.0.1:${(app.getHttpServer().address() as AddressInfo).port}`;
  // Times append() inside the API (the store instance the API injected), without changing the API.
  const apiStore = app.get(EventStore);
  const innerAppend = apiStore.append.bind(apiStore);
  apiStore.append = async (changes, opts) => {
    const s0 = nowMs();
    try {
      return await innerAppend(changes, opts);
    } finally {
      if (serverTimes.recording) serverTimes.appendMs.push(nowMs() - s0);
    }
  };
  const tokenRes = await fetch(`${url}/v1/tokens`, {
    method: 'POST',
    headers: { authorization: `Bearer ${BOOTSTRAP_TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ name: OPERATOR, role: 'operator' }),
  });
  if (tokenRes.status !== 201)
    throw new Error(`POST /v1/tokens: ${tokenRes.status} ${await tokenRes.text()}`);
  const operatorToken = ((await tokenRes.json()) as { token: string }).token;
  return { app, url, operatorToken, log, serverTimes };
}
