// First import of services/api/src/main.ts: the SDK must patch http, express, nest and pg before they load.
import { registerFromEnv } from './register';

registerFromEnv('meshplane-api', ['http', 'express', 'nestjs', 'pg']);
