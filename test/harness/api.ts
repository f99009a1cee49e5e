import type { AddressInfo } from 'node:net';
import type { INestApplication } from '@nestjs/common';
import { createApiApp } from '../../services/api/src/app';
import type { ApiConfig } from '../../services/api/src/config';

/** The API (NestJS, in this process) listening on a free loopback port. */
export interface ListeningApi {
  app: INestApplication;
  url: string;
}

/**
 * Create the API app from `config` (its port and host are replaced: loopback, port 0) and listen;
 * an app that fails to listen is closed before the error is rethrown.
 */
export async function listenApi(config: Omit<ApiConfig, 'port' | 'host'>): Promise<ListeningApi> {
  const app = await createApiApp({ ...config, port: 0, host: '127.0.0.1' });
  try {
    await app.listen(0, '127.0.0.1');
  } catch (err) {
    await app.close().catch(() => undefined);
    throw err;
  }
  const { port } = app.getHttpServer().address() as AddressInfo;
  return { app, url: `http://127.0.0.1:${port}` };
}

/** A response body as JSON when it is JSON, else the text itself (metrics, plain errors). */
export function jsonOrText(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}
