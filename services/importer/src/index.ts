export * from './config';
export * from './importer';
export * from './peer-link';
