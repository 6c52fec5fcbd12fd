// The fault matrix: one table of kernel x vCPUs x compat event x fault, generated, with every
// combination in which the event cannot occur skipped for a reason derived from the same facts
// the product and the kernel model act on (the daemon's VARIANT_FACTS, the model's variant
// rules), never from a hand-written list. src/lab/faults/inject.ts runs one case.

import { VARIANT_FACTS } from '../../daemon/kernel-variant';
import { variantRules } from '../kernel/variant';
import type { LabKernelName } from '../run';

/** How a fault is injected (docs/design.md, failure policy). */
export const FAULTS = ['daemon-sigkill', 'daemon-sigstop', 'bhyve-sigkill'] as const;
export type Fault = (typeof FAULTS)[number];

export const FAULT_DESCRIPTIONS: Readonly<Record<Fault, string>> = {
  'daemon-sigkill': 'vmm-compatd SIGKILLed',
  'daemon-sigstop': 'vmm-compatd SIGSTOPped for 5 s, then SIGCONT',
  'bhyve-sigkill': 'bhyve SIGKILLed (then destroyed and started again, as vm-bhyve does)',
};

/** How long a SIGSTOPped daemon stays stopped. */
export const DAEMON_STOP_MS = 5000;

export const FAULT_VCPUS = [2, 4, 16] as const;

/** A kernel of the lab with the compat options it was built with. */
export interface FaultKernel {
  /** The matrix's name for it: the variant, plus the option it lacks. */
  readonly name: string;
  readonly kernel: LabKernelName;
  /** options COMPAT_FREEBSD13 (the 144-byte VM_RUN as VM_RUN_13 on 14.x and 15). */
  readonly compatFreebsd13: boolean;
  /** options COMPAT_FREEBSD14 (the 32-byte memseg requests on 15.0). */
  readonly compatFreebsd14: boolean;
}

const kernel = (name: string, k: LabKernelName, compatFreebsd13 = true, compatFreebsd14 = true): FaultKernel => ({
  name,
  kernel: k,
  compatFreebsd13,
  compatFreebsd14,
});

/**
 * Every kernel variant with GENERIC's options, and the option variants in which a translation
 * happens that GENERIC never needs: the 14.0 VM_RUN (no COMPAT_FREEBSD13) and the 56-byte
 * VM_ALLOC_MEMSEG (no COMPAT_FREEBSD14 on 15.0).
 */
export const FAULT_KERNELS: readonly FaultKernel[] = [
  kernel('legacy13', 'legacy13'),
  kernel('window', 'window'),
  kernel('fixed13', 'fixed13'),
  kernel('fixed14', 'fixed14'),
  kernel('fixed14-no-compat13', 'fixed14', false),
  kernel('main15', 'main15'),
  kernel('main15-no-compat13', 'main15', false),
  kernel('main15-no-compat14', 'main15', true, false),
];

/** The compat events a fault is injected at, in the order of a boot. */
export const EVENT_KINDS = [
  'kernel-abi',
  'plan',
  'eager-activation',
  'park',
  'handover',
  'spinup-correction',
  'spinup-duplicate',
  'spinup-rerouted',
  'cpus-translated',
  'vmrun-translated',
  'memseg-translated',
  'suspend',
  'reinit',
  'vm-destroyed',
] as const;
export type EventKind = (typeof EVENT_KINDS)[number];

/** Which boot sequence a case runs (inject.ts). */
export type Scenario =
  /** One boot of the smp-boot guest, powered off. */
  | 'boot'
  /** As `boot`, with the guest whose AP 1 starts AP 2. */
  | 'ap-starts-ap'
  /** As `boot`, then the guest INIT/SIPIs AP 1 again. */
  | 'restart-ap'
  /** A boot that resets (bhyve exits 0), then bhyve again on the same VM (VM_REINIT). */
  | 'reset-then-boot'
  /** The VM is destroyed under the running bhyve while every vCPU is inside VM_RUN. */
  | 'destroy-while-running';

/** Why a combination is skipped. */
export interface CannotOccur {
  readonly reason: string;
  /**
   * 'kernel': the kernel (or its options) never gives the interposer this to do, which a
   * fault-free run confirms; 'scenario': the scenario itself needs more vCPUs than the count.
   */
  readonly because: 'kernel' | 'scenario';
}

export interface EventKindSpec {
  readonly kind: EventKind;
  /** The moment the fault is injected, as the kernel model sees it (the trigger in inject.ts). */
  readonly moment: string;
  readonly scenario: Scenario;
  /**
   * What the product records when the event happens: the daemon's compat event of that name,
   * or (spinup-correction) a plan with a non-zero spinupBias. A skipped combination is confirmed
   * by a fault-free run of its scenario in which the daemon records no such thing.
   */
  readonly recordedAs: string;
  /** Why this event cannot occur on this kernel with this many vCPUs, or null when it does. */
  cannotOccur(k: FaultKernel, vcpus: number): CannotOccur | null;
  /** One case per AP for the events that happen once per AP (each handover); else [0]. */
  points(vcpus: number): number[];
}

const once = (): number[] => [0];
const perAp = (vcpus: number): number[] => Array.from({ length: vcpus - 1 }, (_, i) => i + 1);

const kernelSkip = (reason: string): CannotOccur => ({ reason, because: 'kernel' });

/** The plan pre-activates and parks APs only where VARIANT_FACTS says the kernel needs it. */
function noEagerActivation(k: FaultKernel): CannotOccur | null {
  return VARIANT_FACTS[k.kernel].eagerActivation
    ? null
    : kernelSkip(`the plan activates no AP on ${k.kernel} (VARIANT_FACTS.eagerActivation is false): nothing is parked or handed over`);
}

/** 13.0/13.1 kernels start APs through per-vlapic boot states (vlapic.c, K13v). */
function bootStates(k: FaultKernel): boolean {
  return variantRules(k.kernel).apStartup === 'boot-state';
}

export const EVENT_SPECS: Readonly<Record<EventKind, EventKindSpec>> = {
  'kernel-abi': {
    kind: 'kernel-abi',
    recordedAs: 'kernel-abi',
    moment: "the interposer's first kernel-ABI probe at open (the 144-byte VM_RUN with cpuid -1), after HELLO",
    scenario: 'boot',
    cannotOccur: () => null,
    points: once,
  },
  plan: {
    kind: 'plan',
    recordedAs: 'planned',
    moment: "the daemon opens the VM for the BSP's plan (PLAN_REQUEST received, the BSP held)",
    scenario: 'boot',
    cannotOccur: () => null,
    points: once,
  },
  'eager-activation': {
    kind: 'eager-activation',
    recordedAs: 'parked',
    moment: "the daemon's VM_ACTIVATE_CPU of AP 1 (the APs after it not yet active)",
    scenario: 'boot',
    cannotOccur: noEagerActivation,
    points: once,
  },
  park: {
    kind: 'park',
    recordedAs: 'parked',
    moment: "the last AP's parker debug-suspends it (VM_SUSPEND_CPU) before its first VM_RUN",
    scenario: 'boot',
    cannotOccur: noEagerActivation,
    points: once,
  },
  handover: {
    kind: 'handover',
    recordedAs: 'handover',
    moment: 'the handover of AP k: its parker stopped, VM_RESUME_CPU(k) entering the kernel',
    scenario: 'boot',
    cannotOccur: noEagerActivation,
    points: perAp,
  },
  'spinup-correction': {
    kind: 'spinup-correction',
    recordedAs: 'a plan with spinupBias > 0',
    moment: "the BSP's VM_RUN leaves with the first SPINUP_AP (vcpuid + 1), before the interposer corrects it",
    scenario: 'boot',
    cannotOccur: (k) =>
      VARIANT_FACTS[k.kernel].spinupBias === 0
        ? kernelSkip(`SPINUP_AP names the right vCPU on ${k.kernel} (VARIANT_FACTS.spinupBias 0): nothing to correct`)
        : null,
    points: once,
  },
  'spinup-duplicate': {
    kind: 'spinup-duplicate',
    recordedAs: 'spinup-duplicate',
    moment: 'a VM_RUN leaves with a second SPINUP_AP for AP 1, which bhyve already runs (the interposer swallows it)',
    scenario: 'restart-ap',
    cannotOccur: (k) =>
      bootStates(k) ? kernelSkip('a SIPI to an AP in BS_RUNNING is ignored (13-era vlapic.c boot states): no second SPINUP_AP') : null,
    points: once,
  },
  'spinup-rerouted': {
    kind: 'spinup-rerouted',
    recordedAs: 'spinup-rerouted',
    moment: "AP 1's VM_RUN leaves with a SPINUP_AP for AP 2 (the interposer keeps it for the BSP)",
    scenario: 'ap-starts-ap',
    cannotOccur: (k, vcpus) => {
      if (vcpus < 3) return { reason: 'an AP starting another AP needs two APs (3 vCPUs)', because: 'scenario' };
      if (bootStates(k)) return kernelSkip('an IPI an AP sends goes to userland as a WRMSR exit (13-era vlapic.c), never SPINUP_AP');
      return null;
    },
    points: once,
  },
  'cpus-translated': {
    kind: 'cpus-translated',
    recordedAs: 'cpus-translated',
    moment: "bhyve's 32-byte VM_GET_CPUS leaves with ERANGE (the interposer retries with the kernel's size)",
    scenario: 'boot',
    cannotOccur: (k) => {
      const rules = variantRules(k.kernel);
      if (rules.getCpusRule === 'relaxed') return kernelSkip('the relaxed VM_GET_CPUS size rule (15.0 vmm_dev.c) takes 13.1\'s 32 bytes');
      if (rules.defaultKernelCpusetBytes <= 32) return kernelSkip(`the kernel's cpuset_t is ${rules.defaultKernelCpusetBytes} bytes: 13.1's 32 bytes are accepted`);
      return null;
    },
    points: once,
  },
  'vmrun-translated': {
    kind: 'vmrun-translated',
    recordedAs: 'vmrun-translated',
    moment: "bhyve's first VM_RUN reissued as the 14.0 32-byte VM_RUN (0x80207601) enters the kernel",
    scenario: 'boot',
    cannotOccur: (k) => {
      if (variantRules(k.kernel).vmRunAbi === 'embedded-exit') return kernelSkip('the 144-byte VM_RUN is the kernel\'s native one');
      if (k.compatFreebsd13) return kernelSkip('COMPAT_FREEBSD13 keeps the 144-byte VM_RUN (VM_RUN_13)');
      return null;
    },
    points: once,
  },
  'memseg-translated': {
    kind: 'memseg-translated',
    recordedAs: 'memseg-translated',
    moment: "bhyve's VM_MMAP_MEMSEG of the boot ROM with the 15.0 segment id (8) enters the kernel",
    scenario: 'boot',
    cannotOccur: (k) =>
      variantRules(k.kernel).memsegAbi === '15' ? null : kernelSkip("the kernel keeps 13.1's memory segment ids (before the guest-NUMA change)"),
    points: once,
  },
  suspend: {
    kind: 'suspend',
    recordedAs: 'suspend',
    moment: "bhyve's VM_SUSPEND (the guest's power-off) enters the kernel",
    scenario: 'boot',
    cannotOccur: () => null,
    points: once,
  },
  reinit: {
    kind: 'reinit',
    recordedAs: 'reinit',
    moment: "the restarted bhyve's VM_REINIT (after the guest reset and bhyve exited 0) enters the kernel",
    scenario: 'reset-then-boot',
    cannotOccur: () => null,
    points: once,
  },
  'vm-destroyed': {
    kind: 'vm-destroyed',
    recordedAs: 'vm-destroyed',
    moment: 'a bhyve VM_RUN leaves with VM_SUSPEND_DESTROY or ENXIO: the VM destroyed while every vCPU was inside VM_RUN',
    scenario: 'destroy-while-running',
    cannotOccur: (k) =>
      variantRules(k.kernel).suspendDestroy
        ? null
        : kernelSkip('a destroy before 15.0 tears the VM down without VM_SUSPEND_DESTROY: bhyve ends as a 13.1 bhyve does there, untouched'),
    points: once,
  },
};

export interface FaultCase {
  /** kernel/vCPUs/event[:point]/fault, unique in the matrix. */
  readonly id: string;
  readonly kernel: FaultKernel;
  readonly vcpus: number;
  readonly event: EventKind;
  /** The AP of a per-AP event (handover k); 0 otherwise. */
  readonly point: number;
  readonly fault: Fault;
}

export interface SkippedCombination {
  readonly kernel: string;
  readonly vcpus: number;
  readonly event: EventKind;
  /** Faults this skip stands for (all of them: the event itself cannot occur). */
  readonly faults: number;
  readonly reason: string;
  readonly because: CannotOccur['because'];
}

export interface FaultMatrix {
  readonly cases: FaultCase[];
  readonly skipped: SkippedCombination[];
}

export function caseId(k: FaultKernel, vcpus: number, event: EventKind, point: number, fault: Fault): string {
  return `${k.name}/${vcpus}/${event}${point > 0 ? `:${point}` : ''}/${fault}`;
}

/** The whole table: kernel x vCPUs x event kind (x AP for per-AP events) x fault. */
export function faultMatrix(): FaultMatrix {
  const cases: FaultCase[] = [];
  const skipped: SkippedCombination[] = [];
  for (const k of FAULT_KERNELS) {
    for (const vcpus of FAULT_VCPUS) {
      for (const event of EVENT_KINDS) {
        const spec = EVENT_SPECS[event];
        const skip = spec.cannotOccur(k, vcpus);
        if (skip !== null) {
          skipped.push({ kernel: k.name, vcpus, event, faults: FAULTS.length, reason: skip.reason, because: skip.because });
          continue;
        }
        for (const point of spec.points(vcpus)) {
          for (const fault of FAULTS) cases.push({ id: caseId(k, vcpus, event, point, fault), kernel: k, vcpus, event, point, fault });
        }
      }
    }
  }
  return { cases, skipped };
}

/**
 * A representative slice of the same table for `npm test`: every event kind once and every
 * fault at least four times, the kernels, vCPU counts and faults rotated so that the slice
 * crosses them rather than repeating one. Per-AP events take their last AP.
 */
export function representativeSlice(matrix: FaultMatrix = faultMatrix()): FaultCase[] {
  const slice: FaultCase[] = [];
  EVENT_KINDS.forEach((event, i) => {
    const fault = FAULTS[i % FAULTS.length]!;
    const candidates = matrix.cases.filter((c) => c.event === event && c.fault === fault);
    if (candidates.length === 0) return;
    // Kernels in rotation: the i-th kernel that has this event, then the vCPU count in rotation.
    const kernels = [...new Set(candidates.map((c) => c.kernel.name))];
    const kernelName = kernels[i % kernels.length]!;
    const onKernel = candidates.filter((c) => c.kernel.name === kernelName);
    const counts = [...new Set(onKernel.map((c) => c.vcpus))];
    const vcpus = counts[Math.floor(i / FAULTS.length) % counts.length]!;
    const chosen = onKernel.filter((c) => c.vcpus === vcpus);
    slice.push(chosen[chosen.length - 1]!);
  });
  return slice;
}
