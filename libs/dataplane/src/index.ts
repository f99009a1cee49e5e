export * from './backend';
export * from './backoff';
// The BPF backend loads its native addon on first use, so importing it is safe without BPF.
export * from './bpf';
export * from './codec';
export * from './compile';
export * from './ids';
export * from './incremental';
export * from './layout';
export * from './maps';
export * from './memory-backend';
export * from './plan';
export * from './reconciler';
export * from './weights';
