// First import of services/relay/src/main.ts. The relay's spans are manual; pg spans only under them.
import { registerFromEnv } from './register';

registerFromEnv('meshplane-relay', ['pg']);
