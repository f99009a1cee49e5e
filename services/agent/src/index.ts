export * from './agent';
export * from './config';
export * from './dataplane';
export * from './logger';
export * from './snapshot';
export * from './status';
export * from './workload-cgroups';
