export * from './args';
export * from './db';
export * from './pg-profile';
export * from './proc-cpu';
export * from './report';
export * from './results';
export * from './stats';
export * from './timing';
