export * from './agent';
export * from './config';
export * from './logger';
export * from './snapshot';
export * from './status';
