/*
 * Pieces of the propagation suites (also used by the telemetry and federation suites): the
 * services as real child processes, the in-process API, the pipeline start-up, and the readers
 * of the agents' persisted maps and KV status. One import for the suites; each topic has its file.
 */
export { cleanupAll, removeTempDir, tempDir } from '../harness/cleanup';
export * from './api';
export * from './pipeline';
export * from './service-process';
export * from './waits';
