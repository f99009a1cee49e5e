export * from './bpf-backend';
export * from './cgroup';
export {
  BPF_ANY,
  BPF_EXIST,
  BPF_NOEXIST,
  isNativeError,
  loadAddon,
  type NativeAddon,
  type NativeError,
} from './native';
export { bpfAvailable } from './probe';
