export * from './db';
export * from './ports';
export * from './private-nats';
export * from './private-postgres';
export * from './processes';
export * from './wait';
