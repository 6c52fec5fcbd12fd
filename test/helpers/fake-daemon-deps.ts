// Test doubles for the daemon's two windows on the world: the VM device and the peer checks.
import type { Socket } from 'node:net';
import type { CpusetKind, VmHandle, VmmDevice } from '../../src/daemon/vmm-device';
import { VmmError } from '../../src/daemon/vmm-device';
import type { PeerCredentials, PeerInspector } from '../../src/daemon/peer';

/** A VM as the daemon sees it through its own fd: sets of active and debug-suspended vCPUs. */
export class FakeVm {
  active = new Set<number>([0]);
  debug = new Set<number>();
  /** vcpu -> errno to fail VM_ACTIVATE_CPU with. */
  failActivate = new Map<number, number>();
  calls: string[] = [];
}

export class FakeDevice implements VmmDevice {
  readonly library = 'fake';
  readonly vms = new Map<string, FakeVm>();
  osreldate: number | null = null;

  vm(name: string): FakeVm {
    let vm = this.vms.get(name);
    if (!vm) {
      vm = new FakeVm();
      this.vms.set(name, vm);
    }
    return vm;
  }

  openVm(name: string): VmHandle {
    const vm = this.vms.get(name);
    if (!vm) throw new VmmError(`open(/dev/vmm/${name})`, 2);
    return {
      name,
      fd: 99,
      activateCpu: (vcpu: number) => {
        vm.calls.push(`activate ${vcpu}`);
        const errno = vm.failActivate.get(vcpu);
        if (errno !== undefined) throw new VmmError('VM_ACTIVATE_CPU', errno);
        if (vm.active.has(vcpu)) throw new VmmError('VM_ACTIVATE_CPU', 16);
        vm.active.add(vcpu);
      },
      suspendCpu: (vcpu: number) => {
        vm.calls.push(`suspend ${vcpu}`);
        vm.debug.add(vcpu);
      },
      resumeCpu: (vcpu: number) => {
        vm.debug.delete(vcpu);
      },
      cpus: (which: CpusetKind) => [...(which === 'active' ? vm.active : which === 'debug' ? vm.debug : new Set<number>())].sort((a, b) => a - b),
      close: () => {},
    };
  }

  sysctlInt(name: string): number | null {
    return name === 'kern.osreldate' ? this.osreldate : null;
  }
}

/** Peers are identified by the pid they claim; `holders` says which pid holds which VM open. */
export class FakePeers implements PeerInspector {
  readonly holders = new Map<number, Set<string>>();
  /** When set, credentials() reports this pid instead of the claimed one. */
  spoofedPid: number | null = null;
  private readonly claimed = new WeakMap<Socket, number>();

  hold(pid: number, vm: string): void {
    const set = this.holders.get(pid) ?? new Set<string>();
    set.add(vm);
    this.holders.set(pid, set);
  }

  credentials(socket: Socket): PeerCredentials | null {
    // The test client is this process; credentials are whatever the test says the peer is.
    return { pid: this.spoofedPid ?? this.claimed.get(socket) ?? process.pid, uid: 0 };
  }

  holdsVm(pid: number, vm: string): boolean {
    return this.holders.get(pid)?.has(vm) ?? false;
  }
}
