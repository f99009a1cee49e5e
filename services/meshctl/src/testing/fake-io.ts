import type { FetchLike } from '../client';
import type { Io } from '../context';

/** One request as the fake server saw it. */
export interface SeenRequest {
  method: string;
  url: URL;
  headers: Record<string, string>;
  body: unknown;
}

export type Handler = (req: SeenRequest) => { status: number; body?: unknown; text?: string };

/** An in-process stand-in for the API, for unit tests of the CLI (the e2e suite runs the real one). */
export function fakeServer(handler: Handler): { fetch: FetchLike; requests: SeenRequest[] } {
  const requests: SeenRequest[] = [];
  const fetch: FetchLike = async (url, init) => {
    const headers = Object.fromEntries(Object.entries((init.headers ?? {}) as Record<string, string>));
    const req: SeenRequest = {
      method: init.method ?? 'GET',
      url: new URL(url),
      headers,
      body: typeof init.body === 'string' ? JSON.parse(init.body) : undefined,
    };
    requests.push(req);
    const res = handler(req);
    const text = res.text ?? (res.body === undefined ? '' : JSON.stringify(res.body));
    return new Response(text, { status: res.status, headers: { 'content-type': 'application/json' } });
  };
  return { fetch, requests };
}

export interface CapturedIo extends Io {
  stdout: string;
  stderr: string;
}

export function captureIo(
  opts: { env?: Record<string, string>; stdin?: string; fetch?: FetchLike } = {},
): CapturedIo {
  const io: CapturedIo = {
    stdout: '',
    stderr: '',
    out: (s) => {
      io.stdout += s;
    },
    err: (s) => {
      io.stderr += s;
    },
    env: opts.env ?? {},
    readStdin: async () => opts.stdin ?? '',
    ...(opts.fetch ? { fetch: opts.fetch } : {}),
  };
  return io;
}
