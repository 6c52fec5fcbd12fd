// planForVm: what the interposer in one legacy bhyve must do for one boot of one VM
// (docs/design.md, "The compat sequence on a window kernel", steps 3-4).
import { VARIANT_FACTS, type KernelVariant } from './kernel-variant';
import { CPUSET_BYTES_13 } from '../abi/cpuset';

export interface PlanDecision {
  /** APs to activate and debug-suspend before the BSP runs (empty: pass through). */
  apsToPark: number[];
  spinupBias: number;
  reason: string;
}

/**
 * The most vCPUs a legacy bhyve can name, and so the largest plan we accept: 13.x userland's
 * cpuset_t holds CPU_SETSIZE = 256 bits (sys/_cpuset.h), the set bhyve keeps its vCPU threads in
 * (bhyverun.c cpumask). 13.1 bhyve stops at VM_MAXCPU 16 by itself; 13.2 to 13.5 take what the
 * kernel's VM_GET_TOPOLOGY maxcpus allows (bhyverun.c num_vcpus_allowed at 0040b6857e93). What a
 * VM actually gets is that bhyve's and that kernel's business, never a limit of ours below this.
 */
export const LEGACY_MAX_VCPUS = CPUSET_BYTES_13 * 8;

export function planForVm(variant: KernelVariant, ncpus: number, activeAps: readonly number[]): PlanDecision {
  if (!Number.isInteger(ncpus) || ncpus < 1 || ncpus > LEGACY_MAX_VCPUS) {
    throw new RangeError(`vCPU count ${ncpus} is outside 1..${LEGACY_MAX_VCPUS} (13.x userland's CPU_SETSIZE)`);
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
      reason: `no eager activation: APs ${formatVcpuList(activeAps)} already active (new-protocol bhyve)`,
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

/**
 * vCPU ids as ranges, ascending: [1,2,3,5,7,8] -> "1-3,5,7-8". Readable at 256 vCPUs, and what
 * bhyve's own -p and cpuset(1) lists look like.
 */
export function formatVcpuList(ids: Iterable<number>): string {
  const sorted = [...new Set(ids)].sort((a, b) => a - b);
  const parts: string[] = [];
  for (let i = 0; i < sorted.length; ) {
    let j = i;
    while (j + 1 < sorted.length && sorted[j + 1] === sorted[j]! + 1) j++;
    parts.push(j === i ? String(sorted[i]) : `${sorted[i]}-${sorted[j]}`);
    i = j + 1;
  }
  return parts.join(',');
}
