// Time spent inside the kernel's ioctls while the daemon plans a boot, kept apart from the
// daemon's own work so that an operator (and the scale benchmark) can tell which one is slow.
import type { CpusetKind, VmHandle } from './vmm-device';

export class KernelClock {
  private totalNs = 0n;

  /** Runs one system call (or a few), adding its wall time to the total. */
  time<T>(call: () => T): T {
    const started = process.hrtime.bigint();
    try {
      return call();
    } finally {
      this.totalNs += process.hrtime.bigint() - started;
    }
  }

  get seconds(): number {
    return Number(this.totalNs) / 1e9;
  }

  /** The same handle, every call timed on this clock. */
  timed(handle: VmHandle): VmHandle {
    return {
      name: handle.name,
      fd: handle.fd,
      activateCpu: (vcpu: number) => this.time(() => handle.activateCpu(vcpu)),
      suspendCpu: (vcpu: number) => this.time(() => handle.suspendCpu(vcpu)),
      resumeCpu: (vcpu: number) => this.time(() => handle.resumeCpu(vcpu)),
      cpus: (which: CpusetKind, cpusetBytes: number) => this.time(() => handle.cpus(which, cpusetBytes)),
      close: () => this.time(() => handle.close()),
    };
  }
}
