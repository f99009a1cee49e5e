// First import of services/api/src/main.ts: the SDK must patch http and pg before they load.
// No async context (async_hooks' hook on every promise cost ~0.4 ms per POST): the request's
// context is captured while the server span is active (request-context middleware) and handed on
// explicitly; the append's queries run in it (AppendOptions.traceScope). The server span is named
// after the route by the http instrumentation's hook (sdk.ts). Nest's own spans would repeat it.
import { registerFromEnv } from './register';

registerFromEnv('meshplane-api', { instrumentations: ['http', 'pg'] });
