export * from './connection';
export * from './federation';
export * from './names';
export * from './node-status';
export * from './publish';
export * from './revision-codec';
export * from './stream';
export * from './trace-headers';
