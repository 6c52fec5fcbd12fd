// The vmm.ko model without its transport: the VM registry (hw.vmm.create / hw.vmm.destroy), the
// device files, open files, and the system-call entry points the protocol server calls.

import fs from 'node:fs';
import path from 'node:path';
import { suspendHowName, VmmConst, VmSuspendHow, VmSuspendHow15 } from '../../abi/enums';
import { ioctlByRequest, VMMCTL_DEVICE } from '../../abi/ioctls';
import { VMMCTL_VM_CREATE, VMMCTL_VM_DESTROY } from '../../abi/structs';
import type { CapRights } from './capsicum';
import { Errno, KernelError, fail } from './errno';
import { FileTable, type FileKind } from './files';
import { ioctlArgument, ioctlReply, vmmdevIoctl } from './ioctl-dispatch';
import { buildIoctlTable, type IoctlEntry } from './ioctl-table';
import { SliceBudget } from './slicing';
import type { KernelConfig } from './variant';
import { Vm } from './vm';
import { vmNameFromSysctl } from './vm-name';
import type { CallContext } from './wait';
import type { VcpuExit } from './exit';

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
  /**
   * Active vCPUs that no live thread runs: none entered VM_RUN on them since they were
   * activated, or the thread that did has exited (its connection closed). Such a vCPU blocks
   * every rendezvous and suspend (vmm.c vm_handle_rendezvous, vm_handle_suspend).
   */
  withoutThread: number[];
}

/**
 * One call into the model as the lab's fault injection sees it (VmmKernel.tap): the open of a
 * VM's device, or an ioctl on it as it enters the kernel and as it leaves. A lab hook only: the
 * product never sees it.
 */
export interface KernelTapEvent {
  phase: 'open' | 'enter' | 'leave';
  pid: number;
  vm: string;
  /** The request number; 0 for an open. */
  request: number;
  /** The argument as copied in (null for an open). Per-vCPU requests start with the vCPU id. */
  arg: Buffer | null;
  /** leave: 0 on success, else the errno. */
  errno: number;
  /** leave of a VM_RUN (either form) that succeeded: the exit the caller gets. */
  exit: VcpuExit | null;
}

export type KernelTap = (event: KernelTapEvent) => void;

export const SYSCTL_CREATE = 'hw.vmm.create';
export const SYSCTL_DESTROY = 'hw.vmm.destroy';
export const SYSCTL_MAXCPU = 'hw.vmm.maxcpu';
/** The daemon identifies the kernel from it (src/daemon/kernel-variant.ts identifyKernel). */
export const SYSCTL_OSRELDATE = 'kern.osreldate';
/** With kern.osreldate, the kernel identity the daemon caches its probe under (kernel-probe-cache.ts). */
export const SYSCTL_BOOTTIME = 'kern.boottime';
export const SYSCTL_VERSION = 'kern.version';
/** How long a 15.0-style destroy waits for the threads inside the VM's ioctls (destroy_dev). */
export const DESTROY_DRAIN_MS = 3000;
const O_ACCMODE = 3;
const O_RDONLY = 0;
/** The default string of sysctl_vmm_create / sysctl_vmm_destroy, returned as the old value. */
const SYSCTL_NAME_DEFAULT = Buffer.from('beavis\0', 'latin1');

export class VmmKernel {
  readonly config: KernelConfig;
  readonly root: string;
  private readonly devDir: string;
  private readonly memDir: string;
  /** $root/dev/vmm.io: device-memory nodes (vmm_dev.c devmem_create_cdev). */
  private readonly devmemDir: string;
  /** VMs being destroyed: off the registry, waiting for the threads inside their ioctls. */
  private readonly dying = new Set<Vm>();
  private readonly vms = new Map<string, Vm>();
  /** The latest instance per name, alive or destroyed: guestStats stays readable after destroy. */
  private readonly lastByName = new Map<string, Vm>();
  private readonly files = new FileTable();
  private readonly ioctls: ReadonlyMap<number, IoctlEntry>;
  private readonly slicing: SliceBudget;
  private generation = 0;
  private readonly taps = new Set<KernelTap>();
  /** Date.now() at the model's start: its kern.boottime. */
  readonly bootedAt = Date.now();

  constructor(config: KernelConfig, root: string) {
    this.config = config;
    this.root = root;
    this.devDir = path.join(root, 'dev', 'vmm');
    this.memDir = path.join(root, 'mem');
    this.devmemDir = path.join(root, 'dev', 'vmm.io');
    fs.mkdirSync(this.devDir, { recursive: true });
    fs.mkdirSync(this.memDir, { recursive: true });
    if (config.rules.vmmctl) fs.writeFileSync(path.join(root, 'dev', 'vmmctl'), '', { mode: 0o600 });
    this.ioctls = buildIoctlTable(config);
    this.slicing = new SliceBudget(config.sliceInstructions);
  }

  // ---- sysctl ----

  /** sysctlbyname for hw.vmm.*; returns the old value. ENOENT for an unknown name. */
  sysctl(name: string, newValue: Buffer | null): Buffer | Promise<Buffer> {
    switch (name) {
      case SYSCTL_CREATE:
        if (newValue !== null) this.createVm(vmNameFromSysctl(newValue));
        return SYSCTL_NAME_DEFAULT;
      case SYSCTL_DESTROY:
        // 15.0: the sysctl returns once destroy_dev() has drained the device (vmmdev_lookup_and_destroy).
        if (newValue !== null) return this.destroyVm(vmNameFromSysctl(newValue)).then(() => SYSCTL_NAME_DEFAULT);
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
        out.writeInt32LE(this.config.osreldate);
        return out;
      }
      case SYSCTL_BOOTTIME: {
        // kern_tc.c sysctl_kern_boottime: struct timeval {time_t tv_sec; suseconds_t tv_usec}
        // (16 bytes on amd64), read-only. The model's boot is its start.
        if (newValue !== null) fail(Errno.EPERM, `${name} is read-only`);
        const out = Buffer.alloc(16);
        out.writeBigInt64LE(BigInt(Math.floor(this.bootedAt / 1000)), 0);
        out.writeBigInt64LE(BigInt((this.bootedAt % 1000) * 1000), 8);
        return out;
      }
      case SYSCTL_VERSION: {
        // kern_mib.c: the read-only string `version` (vers.c), NUL-terminated.
        if (newValue !== null) fail(Errno.EPERM, `${name} is read-only`);
        return Buffer.from(`${this.kernelVersion()}\0`, 'latin1');
      }
      default:
        return fail(Errno.ENOENT, name);
    }
  }

  /** vmm_dev.c sysctl_vmm_create: EEXIST for a name in use. */
  createVm(name: string): Vm {
    if (this.config.refuseVmCreate !== null) fail(Errno.EPERM, 'this caller may not create VMs (the lab\'s refuseVmCreate)');
    if (this.vms.has(name)) fail(Errno.EEXIST, `VM ${name} exists`);
    this.generation++;
    const vm = new Vm(name, this.config, this.slicing, this.memDir, `${name}.${this.generation}`, this.devmemDir);
    fs.writeFileSync(this.devicePath(name), '', { mode: 0o600 });
    this.vms.set(name, vm);
    this.lastByName.set(name, vm);
    return vm;
  }

  /**
   * vmm_dev.c sysctl_vmm_destroy: EINVAL for a name that is not a VM. Before 15.0 the lab ends
   * the threads inside the device's ioctls at once (they return ENXIO), so that a harness can
   * always clean up; the kernel's destroy_dev() would wait for them.
   *
   * 15.0/main (vmmdev_lookup_and_destroy, DEV15): the VM leaves the registry, then
   * vm_suspend(VM_SUSPEND_DESTROY) makes every running vCPU return VM_EXITCODE_SUSPENDED with
   * that reason, and destroy_dev() refuses new calls (ENXIO) and waits for the threads inside.
   * The lab waits up to DESTROY_DRAIN_MS for them, then ends the stragglers with ENXIO.
   */
  destroyVm(name: string): Promise<void> {
    const vm = this.vms.get(name);
    if (vm === undefined) fail(Errno.EINVAL, `no VM named ${name}`);
    this.vms.delete(name);
    fs.rmSync(this.devicePath(name), { force: true });
    if (!this.config.rules.suspendDestroy) {
      vm.destroy();
      return Promise.resolve();
    }
    if (vm.suspendHow === VmSuspendHow.NONE) vm.suspend(VmSuspendHow15.DESTROY);
    vm.dying = true;
    this.dying.add(vm);
    return (async () => {
      const deadline = Date.now() + DESTROY_DRAIN_MS;
      while (vm.callsInProgress > 0 && Date.now() < deadline && !vm.destroyed) {
        await new Promise((resolve) => setTimeout(resolve, 5));
      }
      this.dying.delete(vm);
      vm.destroy();
    })();
  }

  // ---- /dev/vmmctl (15.0: a97f683fe3c4) ----

  /**
   * vmm_dev.c vmmctl_ioctl: VMMCTL_VM_CREATE / VMMCTL_VM_DESTROY (the ABI table's /dev/vmmctl
   * rows, 296-byte _IOWR structs, kern_ioctl's argument rules as for a VM's device); the name
   * is forced NUL-terminated at VM_MAX_NAMELEN in the caller's struct, non-zero reserved words
   * are EINVAL; anything else is ENOTTY. Returns the argument to copy back.
   */
  async vmmctlIoctl(request: number, arg: Buffer): Promise<Buffer> {
    const def = ioctlByRequest(this.config.rules.abi, request);
    if (def === undefined || def.device !== VMMCTL_DEVICE) fail(Errno.ENOTTY, `request 0x${request.toString(16)} on ${VMMCTL_DEVICE}`);
    const data = ioctlArgument(def, arg);
    const layout = def.name === 'VMMCTL_VM_CREATE' ? VMMCTL_VM_CREATE : VMMCTL_VM_DESTROY;
    data[VmmConst.VM_MAX_NAMELEN] = 0; // name[] is the struct's first member
    const { name, reserved } = layout.decode(data);
    if (reserved.some((b) => b !== 0)) fail(Errno.EINVAL, 'reserved words must be zero');
    const vmName = vmNameFromSysctl(name.subarray(0, name.indexOf(0)));
    if (layout === VMMCTL_VM_CREATE) this.createVm(vmName);
    else await this.destroyVm(vmName);
    return ioctlReply(def, data);
  }

  /** kern.version: names the model, its variant and the kern.osreldate it reports. */
  kernelVersion(): string {
    const { rules, osreldate, compatFreebsd13, compatFreebsd14 } = this.config;
    const options = [compatFreebsd13 ? 'COMPAT_FREEBSD13' : null, compatFreebsd14 ? 'COMPAT_FREEBSD14' : null].filter((o) => o !== null);
    return `FreeBSD lab kernel model ${rules.variant} (kern.osreldate ${osreldate}; ${options.join(' ') || 'no COMPAT options'})\n`;
  }

  devicePath(name: string): string {
    return path.join(this.devDir, name);
  }

  // ---- files ----

  /** open("/dev/vmm/NAME"): ENOENT when the device does not exist. Returns the file id. */
  open(pid: number, name: string): number {
    const vm = this.vms.get(name);
    if (vm === undefined) fail(Errno.ENOENT, `/dev/vmm/${name}`);
    const id = this.files.open(pid, vm).id;
    this.notify({ phase: 'open', pid, vm: name, request: 0, arg: null, errno: 0, exit: null });
    return id;
  }

  /**
   * open() of another vmm node: /dev/vmmctl (15.0; vmmctl_open: EPERM without FWRITE) or
   * /dev/vmm.io/VM.SEG, a device-memory segment's node (devmem_create_cdev). ENOENT otherwise.
   */
  openPath(pid: number, devPath: string, flags: number): number {
    if (devPath === VMMCTL_DEVICE && this.config.rules.vmmctl) {
      if ((flags & O_ACCMODE) === O_RDONLY) fail(Errno.EPERM, '/dev/vmmctl needs FWRITE');
      return this.files.open(pid, null, 'ctl').id;
    }
    const prefix = '/dev/vmm.io/';
    if (devPath.startsWith(prefix)) {
      const node = devPath.slice(prefix.length);
      for (const vm of this.vms.values()) {
        if (!node.startsWith(`${vm.name}.`)) continue;
        const segid = vm.memory.devmemSegment(node.slice(vm.name.length + 1));
        if (segid !== undefined) return this.files.open(pid, vm, 'devmem', segid).id;
      }
    }
    return fail(Errno.ENOENT, devPath);
  }

  close(pid: number, fileId: number): void {
    this.files.close(pid, fileId);
  }

  /** ioctl(2) on an open file: capsicum checks (kern_ioctl), then vmmdev_ioctl. */
  async ioctl(pid: number, fileId: number, request: number, arg: Buffer, ctx: CallContext): Promise<Buffer> {
    const file = this.files.get(pid, fileId);
    file.limits.checkIoctl(request);
    if (file.kind === 'ctl') return this.vmmctlIoctl(request, arg);
    const vm = file.vm;
    if (vm === null) return fail(Errno.EBADF, 'no VM');
    if (this.taps.size === 0) return this.vmIoctl(vm, file.kind, request, arg, ctx);
    this.notify({ phase: 'enter', pid, vm: vm.name, request, arg, errno: 0, exit: null });
    let errno = 0;
    try {
      return await this.vmIoctl(vm, file.kind, request, arg, ctx);
    } catch (error) {
      errno = error instanceof KernelError ? error.errno : -1;
      throw error;
    } finally {
      const isRun = this.ioctls.get(request)?.def.name.startsWith('VM_RUN') === true && arg.length >= 4;
      const exit = errno === 0 && isRun ? vm.vcpu(arg.readInt32LE(0))?.exit ?? null : null;
      this.notify({ phase: 'leave', pid, vm: vm.name, request, arg, errno, exit });
    }
  }

  /** vmmdev_ioctl on a VM's device: ENXIO once it is being destroyed. */
  private async vmIoctl(vm: Vm, kind: FileKind, request: number, arg: Buffer, ctx: CallContext): Promise<Buffer> {
    if (vm.destroyed || vm.dying) fail(Errno.ENXIO, `VM ${vm.name} was destroyed`);
    // devmemsw has no d_ioctl: devfs answers ENODEV.
    if (kind === 'devmem') fail(Errno.ENODEV, 'device memory has no ioctls');
    vm.callsInProgress++;
    try {
      return await vmmdevIoctl(vm, this.ioctls.get(request), arg, ctx);
    } finally {
      vm.callsInProgress--;
    }
  }

  /**
   * The lab's fault-injection hook: every open of a VM device and every ioctl on one, as it
   * enters and as it leaves the model. Listeners run synchronously, before the call goes on
   * (enter) or before its reply is sent (leave). Returns the function that removes the listener.
   */
  tap(listener: KernelTap): () => void {
    this.taps.add(listener);
    return () => this.taps.delete(listener);
  }

  private notify(event: KernelTapEvent): void {
    for (const listener of [...this.taps]) {
      try {
        listener(event);
      } catch (error) {
        console.error('vmm kernel model: a tap listener failed:', error);
      }
    }
  }

  /** mmap(2) on an open file: which backing file and offset (vmmdev_mmap_single). */
  mmap(pid: number, fileId: number, prot: number, offset: bigint, len: bigint): { path: string; offset: number } {
    const file = this.files.get(pid, fileId);
    file.limits.checkMmap(prot);
    const vm = file.vm;
    if (vm === null) return fail(Errno.ENODEV, '/dev/vmmctl cannot be mapped');
    if (vm.destroyed || vm.dying) fail(Errno.ENXIO, `VM ${vm.name} was destroyed`);
    const limit = BigInt(Number.MAX_SAFE_INTEGER);
    if (offset > limit || len > limit || len === 0n) fail(Errno.EINVAL, 'mmap range');
    if (file.kind === 'devmem' && file.segid !== undefined) return vm.memory.resolveDevmem(file.segid, Number(offset), Number(len), prot);
    return vm.memory.resolveMmap(Number(offset), Number(len), prot);
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
      suspended:
        vm.suspendHow === VmSuspendHow.NONE
          ? null
          : this.config.rules.suspendDestroy && vm.suspendHow === VmSuspendHow15.DESTROY
            ? 'destroy'
            : suspendHowName(vm.suspendHow).toLowerCase(),
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
      withoutThread: vm.active.ids().filter((id) => {
        const runner = vm.vcpu(id)?.runner ?? null;
        return runner === null || runner.aborted;
      }),
    };
  }

  /**
   * Destroys every VM (model shutdown) before it returns: the 15.0 destroy's drain (destroyVm)
   * is not waited for, the VMs it left dying are destroyed here with the others.
   */
  shutdown(): void {
    for (const name of [...this.vms.keys()]) {
      try {
        void this.destroyVm(name);
      } catch (error) {
        if (!(error instanceof KernelError)) throw error;
      }
    }
    for (const vm of this.dying) vm.destroy();
    this.dying.clear();
  }
}
