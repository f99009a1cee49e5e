// First import of services/api/src/main.ts: the SDK must patch http, express and pg before they
// load. The server span, the append and its queries need the async context across awaits. Nest's
// own spans (request context, handler) are left out: they repeat the server span on every request.
import { registerFromEnv } from './register';

registerFromEnv('meshplane-api', { instrumentations: ['http', 'express', 'pg'], context: 'async' });
