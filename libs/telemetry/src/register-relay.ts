// First import of services/relay/src/main.ts. The relay's one span (mesh.revision.publish) is
// manual, a child of the stored context: no auto-instrumentation and no async context.
import { registerFromEnv } from './register';

registerFromEnv('meshplane-relay', { instrumentations: [] });
