// The vmm.ko model without its transport: the VM registry (hw.vmm.create / hw.vmm.destroy), the
// device files, open files, and the system-call entry points the protocol server calls.

import fs from 'node:fs';
import path from 'node:path';
import { suspendHowName, VmSuspendHow } from '../../abi/enums';
import type { CapRights } from './capsicum';
import { Errno, KernelError, fail } from './errno';
import { FileTable } from './files';
import { vmmdevIoctl } from './ioctl-dispatch';
import { buildIoctlTable, type IoctlEntry } from './ioctl-table';
import { SliceBudget } from './slicing';
import type { KernelConfig } from './variant';
import { Vm } from './vm';
import { vmNameFromSysctl } from './vm-name';
import type { CallContext } from './wait';

export interface GuestStats {
  /** Guest instructions retired per vCPU id (0 for ids never allocated). */
  instructions: number[];
  /** How the VM is suspended ('reset', 'poweroff', 'halt', 'triplefault'), or null. */
  suspended: string | null;
  /** Date.now() at hw.vmm.create. */
  created: number;
  /** The reason of the last triple fault (an opcode outside the lab's x86 subset), or null. */
  lastFault: string | null;
}

export interface VmSets {
  active: number[];
  debug: number[];
  suspended: number[];
  startup: number[];
}

export const SYSCTL_CREATE = 'hw.vmm.create';
export const SYSCTL_DESTROY = 'hw.vmm.destroy';
export const SYSCTL_MAXCPU = 'hw.vmm.maxcpu';
/** The daemon identifies the kernel from it (src/daemon/kernel-variant.ts identifyKernel). */
export const SYSCTL_OSRELDATE = 'kern.osreldate';
/** The default string of sysctl_vmm_create / sysctl_vmm_destroy, returned as the old value. */
const SYSCTL_NAME_DEFAULT = Buffer.from('beavis\0', 'latin1');

export class VmmKernel {
  readonly config: KernelConfig;
  readonly root: string;
  private readonly devDir: string;
  private readonly memDir: string;
  private readonly vms = new Map<string, Vm>();
  /** The latest instance per name, alive or destroyed: guestStats stays readable after destroy. */
  private readonly lastByName = new Map<string, Vm>();
  private readonly files = new FileTable();
  private readonly ioctls: ReadonlyMap<number, IoctlEntry>;
  private readonly slicing: SliceBudget;
  private generation = 0;

  constructor(config: KernelConfig, root: string) {
    this.config = config;
    this.root = root;
    this.devDir = path.join(root, 'dev', 'vmm');
    this.memDir = path.join(root, 'mem');
    fs.mkdirSync(this.devDir, { recursive: true });
    fs.mkdirSync(this.memDir, { recursive: true });
    this.ioctls = buildIoctlTable(config);
    this.slicing = new SliceBudget(config.sliceInstructions);
  }

  // ---- sysctl ----

  /** sysctlbyname for hw.vmm.*; returns the old value. ENOENT for an unknown name. */
  sysctl(name: string, newValue: Buffer | null): Buffer {
    switch (name) {
      case SYSCTL_CREATE:
        if (newValue !== null) this.createVm(vmNameFromSysctl(newValue));
        return SYSCTL_NAME_DEFAULT;
      case SYSCTL_DESTROY:
        if (newValue !== null) this.destroyVm(vmNameFromSysctl(newValue));
        return SYSCTL_NAME_DEFAULT;
      case SYSCTL_MAXCPU: {
        // K14 vmm.c: a read-only tunable (CTLFLAG_RDTUN). The 13-era kernel has no such sysctl.
        if (!this.config.rules.maxcpuSysctl) fail(Errno.ENOENT, name);
        if (newValue !== null) fail(Errno.EPERM, `${name} is read-only`);
        const out = Buffer.alloc(4);
        out.writeUInt32LE(this.config.maxcpu);
        return out;
      }
      case SYSCTL_OSRELDATE: {
        // kern_mib.c: read-only integer.
        if (newValue !== null) fail(Errno.EPERM, `${name} is read-only`);
        const out = Buffer.alloc(4);
        out.writeInt32LE(this.config.rules.osreldate);
        return out;
      }
      default:
        return fail(Errno.ENOENT, name);
    }
  }

  /** vmm_dev.c sysctl_vmm_create: EEXIST for a name in use. */
  createVm(name: string): Vm {
    if (this.vms.has(name)) fail(Errno.EEXIST, `VM ${name} exists`);
    this.generation++;
    const vm = new Vm(name, this.config, this.slicing, this.memDir, `${name}.${this.generation}`);
    fs.writeFileSync(this.devicePath(name), '', { mode: 0o600 });
    this.vms.set(name, vm);
    this.lastByName.set(name, vm);
    return vm;
  }

  /**
   * vmm_dev.c sysctl_vmm_destroy: EINVAL for a name that is not a VM. The kernel's
   * destroy_dev() waits for threads inside the device's ioctls; the lab ends them instead (they
   * return ENXIO), so that a harness can always clean up.
   */
  destroyVm(name: string): void {
    const vm = this.vms.get(name);
    if (vm === undefined) fail(Errno.EINVAL, `no VM named ${name}`);
    this.vms.delete(name);
    vm.destroy();
    fs.rmSync(this.devicePath(name), { force: true });
  }

  devicePath(name: string): string {
    return path.join(this.devDir, name);
  }

  // ---- files ----

  /** open("/dev/vmm/NAME"): ENOENT when the device does not exist. Returns the file id. */
  open(pid: number, name: string): number {
    const vm = this.vms.get(name);
    if (vm === undefined) fail(Errno.ENOENT, `/dev/vmm/${name}`);
    return this.files.open(pid, vm).id;
  }

  close(pid: number, fileId: number): void {
    this.files.close(pid, fileId);
  }

  /** ioctl(2) on an open file: capsicum checks (kern_ioctl), then vmmdev_ioctl. */
  async ioctl(pid: number, fileId: number, request: number, arg: Buffer, ctx: CallContext): Promise<Buffer> {
    const file = this.files.get(pid, fileId);
    file.limits.checkIoctl(request);
    if (file.vm.destroyed) fail(Errno.ENXIO, `VM ${file.vm.name} was destroyed`);
    return vmmdevIoctl(file.vm, this.ioctls.get(request), arg, ctx);
  }

  /** mmap(2) on an open file: which backing file and offset (vmmdev_mmap_single). */
  mmap(pid: number, fileId: number, prot: number, offset: bigint, len: bigint): { path: string; offset: number } {
    const file = this.files.get(pid, fileId);
    file.limits.checkMmap(prot);
    if (file.vm.destroyed) fail(Errno.ENXIO, `VM ${file.vm.name} was destroyed`);
    const limit = BigInt(Number.MAX_SAFE_INTEGER);
    if (offset > limit || len > limit || len === 0n) fail(Errno.EINVAL, 'mmap range');
    return file.vm.memory.resolveMmap(Number(offset), Number(len), prot);
  }

  capRights(pid: number, fileId: number, rights: CapRights): void {
    this.files.get(pid, fileId).limits.limitRights(rights);
  }

  capIoctls(pid: number, fileId: number, requests: readonly number[]): void {
    this.files.get(pid, fileId).limits.limitIoctls(requests);
  }

  // ---- the lab's view ----

  vmNames(): string[] {
    return [...this.vms.keys()].sort();
  }

  vm(name: string): Vm | undefined {
    return this.vms.get(name);
  }

  guestStats(name: string): GuestStats | undefined {
    const vm = this.lastByName.get(name);
    if (vm === undefined) return undefined;
    const instructions = new Array<number>(0);
    for (const vcpu of vm.allocatedVcpus()) {
      while (instructions.length < vcpu.id) instructions.push(0);
      instructions[vcpu.id] = vcpu.instructions;
    }
    return {
      instructions,
      suspended: vm.suspendHow === VmSuspendHow.NONE ? null : suspendHowName(vm.suspendHow).toLowerCase(),
      created: vm.created,
      lastFault: vm.lastFault,
    };
  }

  vmSets(name: string): VmSets | undefined {
    const vm = this.vms.get(name);
    if (vm === undefined) return undefined;
    return {
      active: vm.active.ids(),
      debug: vm.debug.ids(),
      suspended: vm.suspended.ids(),
      startup: vm.startup.ids(),
    };
  }

  /** Destroys every VM (model shutdown). */
  shutdown(): void {
    for (const name of [...this.vms.keys()]) {
      try {
        this.destroyVm(name);
      } catch (error) {
        if (!(error instanceof KernelError)) throw error;
      }
    }
  }
}
