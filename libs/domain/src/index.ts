export * from './canonical';
export * from './diff';
export * from './errors';
export * from './events';
export * from './resource';
export * from './schemas';
export * from './state';
export * from './validate';
