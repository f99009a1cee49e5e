// First import of services/api/src/main.ts: the SDK must patch http and pg before they load.
// The context is 'sync' (no async_hooks, whose hook on every promise cost ~0.4 ms per POST): the
// request's context is captured while the server span is active (request-context middleware) and
// handed on explicitly; the append's queries run in it (AppendOptions.traceScope). The server span
// is named after the route by the http instrumentation's hook (sdk.ts), not by the express
// instrumentation, which needs the async context. Nest's own spans would repeat the server span.
import { registerFromEnv } from './register';

registerFromEnv('meshplane-api', { instrumentations: ['http', 'pg'], context: 'sync' });
