// First import of services/agent/src/main.ts. The agent's spans are manual (apply, compile, diff, map writes).
import { registerFromEnv } from './register';

registerFromEnv('meshplane-agent', []);
