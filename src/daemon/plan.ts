// planForVm: what the interposer in one legacy bhyve must do for one boot of one VM
// (ARCHITECTURE.md section 3, steps 3-4).
import { VARIANT_FACTS, type KernelVariant } from './kernel-variant';
import { VmmConst } from '../abi/enums';

export interface PlanDecision {
  /** APs to activate and debug-suspend before the BSP runs (empty: pass through). */
  apsToPark: number[];
  spinupBias: number;
  reason: string;
}

/** 13.1 bhyve's limit (VM_MAXCPU in 13.1 vmm.h) and so the largest plan we accept. */
export const LEGACY_MAX_VCPUS = VmmConst.VM_MAXCPU_13;

export function planForVm(variant: KernelVariant, ncpus: number, activeAps: readonly number[]): PlanDecision {
  if (!Number.isInteger(ncpus) || ncpus < 1 || ncpus > LEGACY_MAX_VCPUS) {
    throw new RangeError(`vCPU count ${ncpus} is outside 1..${LEGACY_MAX_VCPUS} (13.1 bhyve's VM_MAXCPU)`);
  }
  const facts = VARIANT_FACTS[variant];
  if (!facts.eagerActivation) {
    return { apsToPark: [], spinupBias: 0, reason: `no eager activation: ${facts.summary}` };
  }
  if (activeAps.length > 0) {
    // A bhyve that activates its own APs before the BSP runs speaks the new protocol
    // (14.0 bhyverun.c: fbsdrun_addcpu for every vCPU); parking would take its vCPUs away.
    return {
      apsToPark: [],
      spinupBias: 0,
      reason: `no eager activation: APs ${activeAps.join(',')} already active (new-protocol bhyve)`,
    };
  }
  if (ncpus === 1) return { apsToPark: [], spinupBias: facts.spinupBias, reason: 'single vCPU: no APs to start' };
  const apsToPark = Array.from({ length: ncpus - 1 }, (_, i) => i + 1);
  return { apsToPark, spinupBias: facts.spinupBias, reason: `park APs 1..${ncpus - 1}: ${facts.summary}` };
}

export function maskOf(vcpus: Iterable<number>): bigint {
  let mask = 0n;
  for (const id of vcpus) mask |= 1n << BigInt(id);
  return mask;
}
