// One vCPU of the model: struct vcpu (vmm.c) with the parts of its vlapic (vlapic.c) and of
// its VMCS (vmx.c) that the lab needs.

import { X2apicState, VmExitcode } from '../../abi/enums';
import { CpuState } from '../x86/cpu';
import { CpuSet } from './cpuset';
import { plainExit, type VcpuExit } from './exit';

/** enum vcpu_state (vmm.h): IDLE -> FROZEN -> {RUNNING, SLEEPING} -> FROZEN -> IDLE. */
export type VcpuState = 'idle' | 'frozen' | 'running' | 'sleeping';

/** K13v vlapic.c boot_state: the 13-era in-kernel AP start-up. */
export type BootState = 'init' | 'sipi' | 'running';

/** struct seg_desc (vmm.h). */
export interface SegDesc {
  base: bigint;
  limit: number;
  access: number;
}

export class Vcpu {
  readonly id: number;
  /** vcpu->state, changed only through vcpu_set_state (freeze.ts). */
  state: VcpuState = 'idle';
  /** vcpu->reqidle: a thread waits for this vCPU to become IDLE (vcpu_set_state from_idle). */
  reqidle = false;
  cpu = new CpuState();
  /** vcpu->x2apic_state; ENABLED puts the vlapic in x2APIC mode (vlapic_set_x2apic_state). */
  x2apicState: number = X2apicState.DISABLED;
  /** vlapic->ipi_exit (VM_CAP_IPI_EXIT); reset by vlapic_init. */
  ipiExit = false;
  /** VMX capabilities the model stores (vmx_setcap). */
  unrestrictedGuest = false;
  haltExit = false;
  pauseExit = false;
  /** K13v vlapic->boot_state (legacy13 only). */
  bootState: BootState;
  /** Registers and descriptors the interpreter does not use, kept so that reads return writes. */
  readonly otherRegisters = new Map<number, bigint>();
  readonly otherDescriptors = new Map<number, SegDesc>();
  /** vm_exitinfo(vcpu). */
  exit: VcpuExit = plainExit(VmExitcode.BOGUS, 0);
  /** vm_exitinfo_cpuset(vcpu): the target set of a VM_EXITCODE_IPI. */
  readonly exitCpuset = new CpuSet();
  /**
   * The guest RIP register while the vCPU is stopped at an exit: the exiting instruction, while
   * cpu.ip already holds vcpu->nextrip (rip + inst_length), where the next VM_RUN resumes.
   */
  exitRip: number | null = null;
  /** vm_exit_intinfo / VM_SET_INTINFO. */
  intinfo = 0n;
  /** INIT rendezvous handlers run on this vCPU (vlapic_handle_init): diagnostics. */
  vlapicResets = 0;
  /**
   * The life of the thread that last entered VM_RUN on this vCPU (its connection's signal), or
   * null: the lab's ground truth for "an active vCPU that no thread runs" (VmSets.withoutThread).
   */
  runner: AbortSignal | null = null;
  /** Instructions retired by earlier incarnations (before VM_REINIT re-ran vcpu_init). */
  private retired = 0;

  constructor(id: number) {
    this.id = id;
    this.bootState = id === 0 ? 'running' : 'init';
  }

  get instructions(): number {
    return this.retired + this.cpu.instructions;
  }

  /**
   * vmm.c vcpu_init on an existing vCPU (vm_init(create=false) from VM_REINIT): new VMX state
   * (vmmops_vcpu_init), new vlapic (vlapic_init: ipi_exit false, 13-era boot_state), x2APIC
   * DISABLED, reqidle cleared.
   */
  reinit(): void {
    this.retired += this.cpu.instructions;
    this.cpu = new CpuState();
    this.x2apicState = X2apicState.DISABLED;
    this.ipiExit = false;
    this.unrestrictedGuest = false;
    this.haltExit = false;
    this.pauseExit = false;
    this.bootState = this.id === 0 ? 'running' : 'init';
    this.otherRegisters.clear();
    this.otherDescriptors.clear();
    this.reqidle = false;
    this.exit = plainExit(VmExitcode.BOGUS, 0);
    this.exitCpuset.clear();
    this.exitRip = null;
    this.intinfo = 0n;
    this.runner = null;
  }

  get x2apicMode(): boolean {
    return this.x2apicState === X2apicState.ENABLED;
  }
}
