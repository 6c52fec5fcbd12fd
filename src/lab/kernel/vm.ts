// struct vm (vmm.c): the vCPU array, the cpusets that drive AP start-up, suspend and debug,
// and the small state transitions that do not block. Blocking paths live in freeze.ts,
// rendezvous.ts, suspend.ts and vm-run.ts.

import { VmSuspendHow } from '../../abi/enums';
import { CpuSet } from './cpuset';
import { Errno, KernelError, fail } from './errno';
import { GuestMemory } from './guest-memory';
import type { SliceBudget } from './slicing';
import type { KernelConfig } from './variant';
import { Vcpu } from './vcpu';
import { WaitChannel, type CallContext } from './wait';

/** vm->rendezvous_*: one rendezvous in progress at most (vm_smp_rendezvous). */
export interface Rendezvous {
  /** rendezvous_req_cpus: ANDed with active_cpus on every check. */
  req: CpuSet;
  /** rendezvous_done_cpus. */
  readonly done: CpuSet;
  /** rendezvous_func, run once on each requested vCPU inside its own VM_RUN. */
  readonly handler: (vcpu: Vcpu) => void;
}

export interface VmTopology {
  sockets: number;
  cores: number;
  threads: number;
}

export class Vm {
  readonly name: string;
  /** Date.now() when hw.vmm.create made this VM. */
  readonly created = Date.now();
  readonly config: KernelConfig;
  /** vm->maxcpus: every vCPU id must be below it (vm_alloc_vcpu). */
  readonly maxcpus: number;
  private readonly vcpus: (Vcpu | undefined)[];
  readonly active = new CpuSet();
  readonly suspended = new CpuSet();
  readonly debug = new CpuSet();
  /** vm->startup_cpus: INIT received, waiting for STARTUP (vm_await_start / vm_start_cpus). */
  readonly startup = new CpuSet();
  /** vm->halted_cpus (vm_handle_hlt). */
  readonly halted = new CpuSet();
  /** vm->suspend: VM_SUSPEND_NONE (0) or the how of vm_suspend. */
  suspendHow: number = VmSuspendHow.NONE;
  rendezvous: Rendezvous | null = null;
  topology: VmTopology = { sockets: 1, cores: 1, threads: 1 };
  readonly memory: GuestMemory;
  /** The reason of the last triple fault, for the lab's diagnostics. */
  lastFault: string | null = null;
  /** Set by hw.vmm.destroy / model shutdown: every call on this VM fails with ENXIO. */
  destroyed = false;
  /** 15.0 destroy in progress: new calls fail with ENXIO, calls inside finish (destroy_dev). */
  dying = false;
  /** Threads inside this VM's ioctls (si_threadcount). */
  callsInProgress = 0;
  /** msleep/wakeup channel shared by every sleeper of this VM. */
  private readonly events = new WaitChannel();
  /** Threads sleeping in vcpu_lock_one until a vCPU is IDLE (freeze.ts). */
  stateWaiters = 0;

  /** The model-wide guest slice size (slicing.ts). */
  readonly slicing: SliceBudget;

  constructor(name: string, config: KernelConfig, slicing: SliceBudget, memDir: string, filePrefix: string, devmemDir: string) {
    this.name = name;
    this.config = config;
    this.slicing = slicing;
    this.maxcpus = config.maxcpu;
    this.vcpus = new Array<Vcpu | undefined>(this.maxcpus);
    this.memory = new GuestMemory({
      dir: memDir,
      filePrefix,
      maxMemsegs: config.rules.maxMemsegs,
      maxMemmaps: config.rules.maxMemmaps,
      devmemDir,
      vmName: name,
    });
    if (!config.rules.lazyVcpus) {
      // K13 vm_init(create=true): the static vcpu[VM_MAXCPU] array is initialised up front.
      for (let id = 0; id < this.maxcpus; id++) this.vcpus[id] = new Vcpu(id);
    }
  }

  /** vm_vcpu(vm, id): undefined for an id out of range or a vCPU never allocated. */
  vcpu(id: number): Vcpu | undefined {
    return Number.isInteger(id) && id >= 0 && id < this.maxcpus ? this.vcpus[id] : undefined;
  }

  /**
   * vmm.c vm_alloc_vcpu: NULL (here undefined) if id < 0 or id >= maxcpus or the VM is dying;
   * otherwise the existing vCPU, or a new one through vcpu_alloc + vcpu_init (vlapic_init,
   * x2APIC DISABLED). On legacy13 every vCPU already exists (K13's static array).
   */
  allocVcpu(id: number): Vcpu | undefined {
    if (!Number.isInteger(id) || id < 0 || id >= this.maxcpus || this.destroyed) return undefined;
    let vcpu = this.vcpus[id];
    if (vcpu === undefined) {
      vcpu = new Vcpu(id);
      this.vcpus[id] = vcpu;
    }
    return vcpu;
  }

  allocatedVcpus(): Vcpu[] {
    return this.vcpus.filter((v): v is Vcpu => v !== undefined);
  }

  /** vcpu_notify_event / wakeup: every sleeper of this VM re-checks its condition. */
  notify(): void {
    this.events.wakeup();
  }

  /** msleep on this VM's channel; ENXIO once the VM is being destroyed. */
  async sleep(ctx: CallContext): Promise<void> {
    this.checkAlive();
    await this.events.sleep(ctx.signal);
    this.checkAlive();
  }

  checkAlive(): void {
    if (this.destroyed) throw new KernelError(Errno.ENXIO, `VM ${this.name} is being destroyed`);
  }

  /** vmm.c vm_activate_cpu: EBUSY when already active; no other side effect. */
  activateCpu(vcpu: Vcpu): void {
    if (this.active.has(vcpu.id)) fail(Errno.EBUSY, `vCPU ${vcpu.id} is already active`);
    this.active.add(vcpu.id);
  }

  /** vmm.c vm_suspend_cpu: all (-1): debug = active; one: EINVAL unless active. Notifies. */
  suspendCpu(vcpu: Vcpu | undefined): void {
    if (vcpu === undefined) {
      this.debug.assign(this.active);
    } else {
      if (!this.active.has(vcpu.id)) fail(Errno.EINVAL, `vCPU ${vcpu.id} is not active`);
      this.debug.add(vcpu.id);
    }
    this.notify();
  }

  /** vmm.c vm_resume_cpu: all (-1): clears debug; one: EINVAL unless in debug_cpus. */
  resumeCpu(vcpu: Vcpu | undefined): void {
    if (vcpu === undefined) {
      this.debug.clear();
    } else {
      if (!this.debug.has(vcpu.id)) fail(Errno.EINVAL, `vCPU ${vcpu.id} is not debug-suspended`);
      this.debug.delete(vcpu.id);
    }
  }

  /**
   * vmm.c vm_suspend: EINVAL unless NONE < how < LAST; EALREADY if the VM is already suspended
   * (atomic compare-and-set from 0); then every active vCPU is notified.
   */
  suspend(how: number): void {
    if (!Number.isInteger(how) || how <= VmSuspendHow.NONE || how >= this.config.rules.suspendLast) fail(Errno.EINVAL, `how ${how}`);
    if (this.suspendHow !== VmSuspendHow.NONE) fail(Errno.EALREADY, 'the VM is already suspended');
    this.suspendHow = how;
    this.notify();
  }

  /**
   * vmm.c vm_reinit, called with every allocated vCPU frozen: EBUSY unless suspended_cpus ==
   * active_cpus; then vm_cleanup(false) + vm_init(false): the active, debug, startup and
   * suspended sets and the suspend flag are cleared and every allocated vCPU runs vcpu_init.
   */
  reinit(): void {
    if (!this.suspended.equals(this.active)) fail(Errno.EBUSY, 'not every active vCPU is suspended');
    this.memory.reinit();
    this.active.clear();
    this.debug.clear();
    this.startup.clear();
    this.suspended.clear();
    this.suspendHow = VmSuspendHow.NONE;
    for (const vcpu of this.allocatedVcpus()) vcpu.reinit();
    this.notify();
  }

  /** vmm.c vm_await_start: OR `set` into startup_cpus. */
  awaitStart(set: CpuSet): void {
    this.startup.addAll(set);
  }

  /** vmm.c vm_start_cpus: set ∩ startup_cpus, removed from startup_cpus. */
  startCpus(set: CpuSet): CpuSet {
    const started = set.and(this.startup);
    this.startup.deleteAll(started);
    return started;
  }

  /** vcpu_rendezvous_pending: this vCPU's bit is in rendezvous_req_cpus. */
  rendezvousPending(vcpu: Vcpu): boolean {
    return this.rendezvous !== null && this.rendezvous.req.has(vcpu.id);
  }

  /** hw.vmm.destroy / shutdown: in-flight calls end with ENXIO, memory is unmapped. */
  destroy(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.notify();
    this.memory.destroy();
  }
}
