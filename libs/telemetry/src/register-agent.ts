// First import of services/agent/src/main.ts. The agent's spans are manual (apply, compile, diff,
// map writes), each with an explicit parent, so no auto-instrumentation and no async context.
import { registerFromEnv } from './register';

registerFromEnv('meshplane-agent', { instrumentations: [] });
