export * from './metrics-server';
export * from './prometheus';
export * from './sdk';
export * from './settings';
export * from './trace';
