export * from './config';
export * from './leader-session';
export * from './logger';
export * from './metrics';
export * from './publisher';
export * from './relay';
