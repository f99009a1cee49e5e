// Moved to libs/event-store (shared with the federation importer); kept so relay imports stay put.
export {
  advisoryLockKey,
  LeaderSession,
  type LeaderSessionOptions,
  REVISIONS_CHANNEL,
  relayLockKey,
} from '@meshplane/event-store';
