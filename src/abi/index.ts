// The vmm ABI as data: one import for the daemon, the lab and the CLI.
export * from './ioccom';
export * from './enums';
export * from './cpuset';
export * from './ioctls';
export * from './structs';
export { renderCHeader } from './gen-c-header';
