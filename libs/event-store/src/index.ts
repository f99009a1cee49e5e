export * from './connection';
export * from './event-store';
export * from './hashing';
export * from './leader-session';
export * from './log-reader';
export * from './migrate';
export * from './snapshots';
export * from './types';
