/** The api benchmark's findings and the description of what it measured (params of the results file). */
import { round, targetMisses } from '../lib';
import { type Args, CLIENT_NAMES, clientKind, DEFAULTS, otherClient, TARGETS } from './args';
import type { profileDetails, statementDetails } from './diagnostics';
import type { pathDetails } from './paths';

/** Plain-language findings computed from the numbers (also printed under the table). */
export function findings(m: Record<string, number>, d: Record<string, unknown>): string[] {
  const out: string[] = [];
  const http = d.http as ReturnType<typeof pathDetails>;
  const app = d.append as ReturnType<typeof pathDetails>;
  out.push(
    `HTTP: ${Math.round(http.per_s)} changes/s, p50 ${http.latency_ms.p50} ms, p99 ${http.latency_ms.p99} ms; ` +
      `append(): ${Math.round(app.per_s)} changes/s, p50 ${app.latency_ms.p50} ms, p99 ${app.latency_ms.p99} ms ` +
      `(${DEFAULTS.clients} concurrent each unless overridden).`,
  );
  out.push(
    `main thread busy: ${http.main_thread_busy_ms_per_op} ms per HTTP change (API server thread, event-loop ` +
      `utilization ${http.main_thread_event_loop_utilization}) vs ${app.main_thread_busy_ms_per_op} ms per ` +
      `append (utilization ${app.main_thread_event_loop_utilization}); client thread utilization ` +
      `${http.client_thread_event_loop_utilization}; all cores ${Math.round(http.machine_cpu_busy * 100)}% / ` +
      `${Math.round(app.machine_cpu_busy * 100)}% busy.`,
  );
  const altKey = Object.keys(d).find((k) => k.startsWith('http_') && k.endsWith('_client'));
  if (altKey) {
    const x = d[altKey] as ReturnType<typeof pathDetails>;
    out.push(
      `load generator: the primary client thread is busy ${http.client_thread_busy_ms_per_op} ms per request; with ` +
        `${altKey.replace(/^http_|_client$/g, '')} as the client (${x.client_thread_busy_ms_per_op} ms per request) the same ` +
        `API does ${Math.round(x.per_s)} changes/s (p50 ${x.latency_ms.p50} ms, p99 ${x.latency_ms.p99} ms), ` +
        `${round(x.per_s / app.per_s, 3)} of append(): on 2 shared cores the client's CPU is taken from the API and Postgres.`,
    );
  }
  const prof = d.profile as
    | { http?: ReturnType<typeof profileDetails>; append?: ReturnType<typeof profileDetails> }
    | undefined;
  if (prof?.http && prof.append) {
    const h = prof.http;
    const a = prof.append;
    const top = Object.entries(h.self_ms_per_op_by_group)
      .filter(([k]) => k !== '(idle)')
      .slice(0, 8)
      .map(([k, v]) => `${k} ${v}`)
      .join(', ');
    out.push(
      `profile of the API thread: ${h.busy_ms_per_op} ms busy per HTTP change vs ${a.busy_ms_per_op} ms per ` +
        `direct append; self time per change by group (ms): ${top}.`,
    );
    const inc = h.inclusive_ms_per_op_by_function;
    const named = ['submit', 'validateChangeSet', 'canActivate', 'parseInput', 'jsonParser']
      .filter((k) => inc[k] !== undefined)
      .map((k) => `${k} ${inc[k]}`)
      .join(', ');
    if (named) out.push(`inclusive per HTTP change (ms): ${named}.`);
  }
  const st = d.statements as
    | { http: ReturnType<typeof statementDetails>; append: ReturnType<typeof statementDetails> }
    | undefined;
  if (st) {
    const one = (x: ReturnType<typeof statementDetails>) =>
      `${x.change_sets_per_batch} change sets per batch (${x.batches} batches, ${x.batches_under_lock} under the ` +
      `head lock), write statement ${x.mean_ms.write_change_set} ms, all statements ${x.statement_ms_per_batch} ms ` +
      `per batch; event-loop delay p50 ${x.event_loop_delay_ms.p50} / p99 ${x.event_loop_delay_ms.p99} ms`;
    out.push(
      `group commit, timed from the call to the result on this thread (the round trip plus the wait for the ` +
        `event loop): HTTP path ${one(st.http)}; direct append ${one(st.append)}.`,
    );
  }
  const srv = (d.http as { server_side_ms?: { request: { mean: number }; append: { mean: number } } })
    .server_side_ms;
  if (srv)
    out.push(
      `HTTP latency (mean): client-observed ${http.latency_ms.mean} ms = append() inside the API ` +
        `${srv.append.mean} ms + rest of the server request ${round(srv.request.mean - srv.append.mean, 3)} ms + ` +
        `client and sockets ${round(http.latency_ms.mean - srv.request.mean, 3)} ms.`,
    );
  out.push(...targetMisses(m, TARGETS, ': see the profile in details.profile.'));
  return out;
}

/** What each path did, in words, for the params of the results file. */
export function describeRun(args: Args, sliceMs: number): Record<string, unknown> {
  return {
    ...args,
    change:
      'one Workload put per change (update of a seeded workload: new labels.version and weight), ' +
      'reason + traceparent set; 127.0.1.x addresses',
    http_path:
      'POST /v1/changes {reason, apply:[workload]} with an operator token (Authorization: Bearer), ' +
      `${CLIENT_NAMES[clientKind(args)]} from a worker ` +
      'thread; every response checked for 201',
    ...(args.compareClient
      ? {
          compared_client:
            `the same HTTP load from a second worker using ${CLIENT_NAMES[otherClient(clientKind(args))]}, ` +
            'interleaved with the others against the same API and database (its own generation range, so no ' +
            'change repeats a spec): how much of the HTTP cost is the load generator sharing the 2 cores',
        }
      : {}),
    append_path:
      'EventStore.append([change], {actor, reason, requestId, traceContext, validate}) with the ' +
      "API's validate hook (validateChangeSet); store opened with the API's options (default pool)",
    api_logging:
      'the API request log lines are JSON-encoded as in production (stdout sink) and counted, not written',
    slices: `${args.rounds} alternating slices of ${sliceMs / 1000} s per path, CHECKPOINT before each`,
    databases: 'one fresh database per path on the same server, both seeded with the same population',
  };
}
