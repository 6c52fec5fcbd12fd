// vlapic.c: the x2APIC registers the lab's guests use (the ICR at MSR 0x830, the APIC ID at
// MSR 0x802, IA32_APIC_BASE) and vlapic_icrlo_write_handler's treatment of INIT and STARTUP in
// each kernel generation:
//
//   legacy13 (K13v)  per-vlapic boot_state; only vCPU 0 starts APs; STARTUP to a BS_SIPI target
//                    gives VM_EXITCODE_SPINUP_AP {vcpu = dest} directly.
//   window (KBUG)    VM_EXITCODE_IPI for vm_handle_ipi, whose target set is the dmask of vlapic_calcdest
//                    (active vCPUs only) although the compat path computed ipimask (7c326ab5).
//   fixed14 (KFIX)   VM_EXITCODE_IPI whose target set is ipimask: with the sender's ipi_exit false,
//                    {dest} even for an inactive or unallocated vCPU (b265a2e0).
//
// FIXED and NMI IPIs are delivered in the kernel (lapic_intr_edge / vm_inject_nmi); the lab has no
// interrupt delivery, so they are accepted and dropped.

import { CpuSet } from './cpuset';
import type { Vcpu } from './vcpu';
import type { Vm } from './vm';

export const MSR_APICBASE = 0x1b;
export const MSR_X2APIC_ID = 0x802;
export const MSR_X2APIC_ICR = 0x830;

/**
 * apicreg.h APIC_DELMODE_*: the ICR's delivery-mode bits in place (icrval & APIC_DELMODE_MASK).
 * These are also the values of u.ipi.mode in VM_EXITCODE_IPI (vlapic_icrlo_write_handler stores
 * the masked bits; vm_handle_ipi and bhyve's vmexit_ipi switch on APIC_DELMODE_INIT/STARTUP).
 */
export const DeliveryMode = {
  FIXED: 0x000,
  LOWPRIO: 0x100,
  SMI: 0x200,
  RR: 0x300,
  NMI: 0x400,
  INIT: 0x500,
  STARTUP: 0x600,
  EXTINT: 0x700,
} as const;
const APIC_DELMODE_MASK = 0x700;

/** apicreg.h APIC_DEST_* >> 18 (the shorthand field). */
const Shorthand = { DESTFLD: 0, SELF: 1, ALLISELF: 2, ALLESELF: 3 } as const;

const APIC_DESTMODE_LOGICAL = 0x800;
const APIC_LEVEL_ASSERT = 0x4000;
const APIC_TRIGMOD_LEVEL = 0x8000;
const DEFAULT_APIC_BASE = 0xfee00000n;
const APICBASE_BSP = 0x100n;
const APICBASE_X2APIC = 0x400n;
const APICBASE_ENABLED = 0x800n;
const X2APIC_BROADCAST = 0xffffffff;
const PAGE_SHIFT = 12n;

export interface Icr {
  readonly vector: number;
  readonly mode: number;
  readonly physical: boolean;
  readonly levelAssert: boolean;
  readonly levelTriggered: boolean;
  readonly shorthand: number;
  /** x2APIC destination: the ICR's upper 32 bits. */
  readonly dest: number;
}

export function decodeIcr(value: bigint): Icr {
  const low = Number(value & 0xffffffffn);
  return {
    vector: low & 0xff,
    mode: low & APIC_DELMODE_MASK,
    physical: (low & APIC_DESTMODE_LOGICAL) === 0,
    levelAssert: (low & APIC_LEVEL_ASSERT) !== 0,
    levelTriggered: (low & APIC_TRIGMOD_LEVEL) !== 0,
    shorthand: (low >>> 18) & 0x3,
    dest: Number((value >> 32n) & 0xffffffffn),
  };
}

/** What the ICR write means for the sending vCPU's VM_RUN. */
export type IcrOutcome =
  /** Handled in the kernel (`*retu = false`): the guest continues. */
  | { readonly kind: 'continue' }
  /** The handler returned 1: emulate_wrmsr fails and userland gets VM_EXITCODE_WRMSR. */
  | { readonly kind: 'userland' }
  /** K13v: VM_EXITCODE_SPINUP_AP straight from the ICR handler. */
  | { readonly kind: 'spinup'; readonly vcpu: number; readonly rip: bigint }
  /** VM_EXITCODE_IPI with the exit cpuset, processed next by vm_handle_ipi (ipi.ts). */
  | { readonly kind: 'ipi'; readonly mode: number; readonly vector: number; readonly targets: CpuSet };

const CONTINUE: IcrOutcome = { kind: 'continue' };
const USERLAND: IcrOutcome = { kind: 'userland' };

/** lapic_wrmsr -> vlapic_write(ICR_LOW) in x2APIC mode; an MSR write in xAPIC mode is ignored. */
export function writeIcr(vm: Vm, sender: Vcpu, value: bigint): IcrOutcome {
  if (!sender.x2apicMode) return CONTINUE;
  const icr = decodeIcr(value);
  switch (vm.config.rules.apStartup) {
    case 'boot-state':
      return icrWriteBootState(vm, sender, icr);
    case 'ipi-exit-7c326ab5':
      return icrWriteIpiExit(vm, sender, icr, true);
    case 'ipi-exit-b265a2e0':
      return icrWriteIpiExit(vm, sender, icr, false);
  }
}

/** K13v vlapic_icrlo_write_handler. */
function icrWriteBootState(vm: Vm, sender: Vcpu, icr: Icr): IcrOutcome {
  const { mode, dest } = icr;
  if (mode === DeliveryMode.FIXED || mode === DeliveryMode.NMI) return CONTINUE;
  if (mode === DeliveryMode.INIT) {
    if (!icr.levelAssert) return CONTINUE; // INIT level-deassert is ignored
    if (sender.id === 0 && dest !== 0 && dest < vm.maxcpus) {
      const target = vm.vcpu(dest);
      if (target !== undefined && target.bootState === 'init') target.bootState = 'sipi';
      return CONTINUE;
    }
  }
  if (mode === DeliveryMode.STARTUP) {
    if (sender.id === 0 && dest !== 0 && dest < vm.maxcpus) {
      const target = vm.vcpu(dest);
      // SIPIs are ignored in any state other than wait-for-SIPI: a running AP never produces
      // a second SPINUP_AP.
      if (target === undefined || target.bootState !== 'sipi') return CONTINUE;
      target.bootState = 'running';
      return { kind: 'spinup', vcpu: dest, rip: BigInt(icr.vector) << PAGE_SHIFT };
    }
  }
  return USERLAND;
}

/**
 * vlapic_is_icr_valid (KFIX): invalid combinations are ignored. INIT and STARTUP need the
 * destination field or all-excluding-self; an INIT level-deassert (MPS) is ignored.
 */
function isIcrValid(icr: Icr): boolean {
  const shorthandOk = icr.shorthand === Shorthand.DESTFLD || icr.shorthand === Shorthand.ALLESELF;
  switch (icr.mode) {
    case DeliveryMode.FIXED:
      return !icr.levelTriggered || icr.levelAssert;
    case DeliveryMode.LOWPRIO:
    case DeliveryMode.SMI:
    case DeliveryMode.NMI:
    case DeliveryMode.INIT:
      return shorthandOk && (!icr.levelTriggered || icr.levelAssert);
    case DeliveryMode.STARTUP:
      return shorthandOk;
    case DeliveryMode.RR:
      return !icr.levelTriggered && icr.shorthand === Shorthand.DESTFLD;
    default:
      return false;
  }
}

/**
 * vlapic_calcdest in x2APIC mode: broadcast -> every active vCPU; physical -> the vCPU whose
 * APIC ID (= vcpuid) is dest, only if it exists below maxcpus and is active; logical -> active
 * vCPUs whose x2APIC LDR (cluster id >> 4, bit 1 << (id & 15)) matches.
 */
function calcDest(vm: Vm, icr: Icr): CpuSet {
  if (icr.dest === X2APIC_BROADCAST) return vm.active.copy();
  if (icr.physical) {
    const set = new CpuSet();
    if (icr.dest < vm.maxcpus && vm.active.has(icr.dest)) set.add(icr.dest);
    return set;
  }
  const cluster = icr.dest >>> 16;
  const members = icr.dest & 0xffff;
  return CpuSet.of(vm.active.ids().filter((id) => id >>> 4 === cluster && (members & (1 << (id & 0xf))) !== 0));
}

/** The dmask of the shorthand field (vlapic_icrlo_write_handler). */
function destinationMask(vm: Vm, sender: Vcpu, icr: Icr): CpuSet {
  switch (icr.shorthand) {
    case Shorthand.DESTFLD:
      return calcDest(vm, icr);
    case Shorthand.SELF:
      return CpuSet.of([sender.id]);
    case Shorthand.ALLISELF:
      return vm.active.copy();
    default: {
      const others = vm.active.copy();
      others.delete(sender.id);
      return others;
    }
  }
}

/** KBUG / KFIX vlapic_icrlo_write_handler. */
function icrWriteIpiExit(vm: Vm, sender: Vcpu, icr: Icr, windowBug: boolean): IcrOutcome {
  if (!isIcrValid(icr)) return CONTINUE;
  const dmask = destinationMask(vm, sender, icr);
  switch (icr.mode) {
    case DeliveryMode.FIXED:
    case DeliveryMode.NMI:
      return CONTINUE;
    case DeliveryMode.INIT:
    case DeliveryMode.STARTUP: {
      let ipimask: CpuSet;
      if (sender.ipiExit) {
        ipimask = dmask;
      } else {
        // The compat path for old bhyve ignores dmask and the shorthand: logical destinations
        // are dropped; a physical destination names one vCPU, active or not, allocated or not.
        ipimask = new CpuSet();
        const target = icr.dest;
        if (icr.physical && target < vm.maxcpus && target !== sender.id) ipimask.add(target);
      }
      if (ipimask.isEmpty()) return CONTINUE;
      // 7c326ab5 put dmask (active targets only) into the exit instead of ipimask.
      const targets = windowBug ? dmask : ipimask;
      return { kind: 'ipi', mode: icr.mode, vector: icr.vector, targets };
    }
    default:
      return USERLAND;
  }
}

/**
 * vmm_lapic.c lapic_wrmsr(MSR_APICBASE) -> vlapic.c vlapic_set_apicbase: the value can only be
 * written as it is ("Changing APIC_BASE MSR ... not supported", -1). False when the write
 * changes it, which vmx.c turns into a VM_EXITCODE_WRMSR exit to userland.
 */
export function setApicBase(vcpu: Vcpu, value: bigint): boolean {
  return value === readLapicMsr(vcpu, MSR_APICBASE);
}

/**
 * lapic_rdmsr for the MSRs the lab's guests read; every other MSR reads as 0. IA32_APIC_BASE is
 * vlapic->msr_apicbase: vlapic_init's DEFAULT_APIC_BASE | APICBASE_ENABLED (| APICBASE_BSP on
 * vCPU 0), with APICBASE_X2APIC set and cleared by vlapic_set_x2apic_state.
 */
export function readLapicMsr(vcpu: Vcpu, msr: number): bigint {
  if (msr === MSR_APICBASE) {
    let value = DEFAULT_APIC_BASE | APICBASE_ENABLED;
    if (vcpu.id === 0) value |= APICBASE_BSP;
    if (vcpu.x2apicMode) value |= APICBASE_X2APIC;
    return value;
  }
  // x2APIC ID register = vcpuid (vm_apicid2vcpuid is the identity); 0 in xAPIC mode, where
  // vlapic_read ignores MSR accesses.
  if (msr === MSR_X2APIC_ID) return vcpu.x2apicMode ? BigInt(vcpu.id) : 0n;
  return 0n;
}
