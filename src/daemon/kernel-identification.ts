// Which kernel variant the daemon serves, and how it knows: from the probe VM's answers (the
// experiment, kernel-probe.ts), from kern.osreldate, or from the configuration. The rules of
// classifyProbe are the table in docs/design.md ("Identifying the kernel"); each rests on the
// FreeBSD source named beside it.
import { identifyKernel, type KernelVariant } from './kernel-variant';

export type IdentifiedBy = 'experiment' | 'osreldate' | 'config';

/**
 * What the BSP's VM_RUN gave when the probe's guest sent INIT and SIPI to the inactive AP 1:
 * 'spinup' (VM_EXITCODE_SPINUP_AP naming `vcpu`), 'none' (the guest ran on to its I/O exit with
 * no SPINUP_AP), or 'inconclusive' (anything else; `why` says what).
 */
export type ApStartAnswer =
  | { readonly kind: 'spinup'; readonly vcpu: number; readonly rip: number }
  | { readonly kind: 'none' }
  | { readonly kind: 'inconclusive'; readonly why: string };

/**
 * The kernel's answers to the probe's requests: null where it accepted the request, else the
 * errno name. Each request is refused before it touches the VM, or touches only the probe VM.
 */
export interface ProbeAnswers {
  /** The 144-byte VM_RUN (0xC0907601) with cpuid -1: EINVAL = present, ENOTTY = absent. */
  readonly vmrun144: string | null;
  /** The 14.0 32-byte VM_RUN (0x80207601) with cpuid -1: EINVAL = present, ENOTTY = absent. */
  readonly vmrun32: string | null;
  /** VM_GET_CPUS (active) with a 32-byte set: ERANGE where the kernel's cpuset_t is larger. */
  readonly cpus32: string | null;
  /** VM_GET_CPUS (active) with a 128-byte set: ERANGE where CPU_MAXSIZE/NBBY is 32. */
  readonly cpus128: string | null;
  /** The 56-byte VM_GET_MEMSEG (0xC038760F) of segment 0: answered only with guest NUMA (15.0). */
  readonly memseg56: string | null;
  /** The 32-byte VM_GET_MEMSEG (0xC020760F) of segment 0: ENOTTY on 15.0 without COMPAT_FREEBSD14. */
  readonly memseg32: string | null;
  /** VM_GET_CAPABILITY(vCPU 0, VM_CAP_IPI_EXIT = 8): EINVAL where VM_CAP_MAX is 8 (13.0/13.1). */
  readonly capIpiExit: string | null;
  /** Whether /dev/vmmctl opened (15.0: a97f683fe3c4). */
  readonly vmmctl: boolean;
  readonly apStart: ApStartAnswer;
}

export interface ProbeClassification {
  /** null when the answers match no kernel this project knows. */
  readonly variant: KernelVariant | null;
  /** One line per answer that decided, each with the FreeBSD source it rests on. */
  readonly evidence: string[];
  /** One sentence: the decision. */
  readonly why: string;
  /** Whether the kernel has the 144-byte VM_RUN (COMPAT_FREEBSD13 on 14.x/15, native before). */
  readonly vmrun144: boolean;
}

const present = (answer: string | null): boolean => answer !== 'ENOTTY';
const accepted = (answer: string | null): boolean => answer === null;

/** The ioctl ABI generation the request answers show. */
function abiGeneration(a: ProbeAnswers): { abi: '13' | '14' | '15' | null; evidence: string[] } {
  const evidence: string[] = [];
  if (accepted(a.memseg56)) {
    evidence.push(
      'the 56-byte VM_GET_MEMSEG (guest NUMA, a4197ea47777) is answered: 15.0 or main (sys/dev/vmm/vmm_dev.c at 3d39856d)',
    );
    return { abi: '15', evidence };
  }
  if (a.memseg56 !== 'ENOTTY') {
    evidence.push(`the 56-byte VM_GET_MEMSEG got ${a.memseg56}, neither an answer nor ENOTTY`);
    return { abi: null, evidence };
  }
  const run32 = present(a.vmrun32);
  const wide = accepted(a.cpus128);
  if (run32 && wide) {
    evidence.push(
      'the 32-byte VM_RUN 0x80207601 exists (e17eca32) and VM_GET_CPUS takes a 128-byte set (MAXCPU 1024): the 14.0 ABI (sys/amd64/vmm/vmm_dev.c at 0162500b)',
    );
    return { abi: '14', evidence };
  }
  if (!run32 && a.cpus128 === 'ERANGE' && accepted(a.cpus32)) {
    evidence.push(
      'no 32-byte VM_RUN (ENOTTY: before e17eca32) and VM_GET_CPUS takes 32 bytes, refusing 128 with ERANGE (CPU_MAXSIZE/NBBY 32): the 13.x ABI (vmm_dev.c VM_GET_CPUS, 13-era and 14-era)',
    );
    return { abi: '13', evidence };
  }
  evidence.push(
    `the ABI answers do not fit one generation: 32-byte VM_RUN ${a.vmrun32 ?? 'accepted'}, VM_GET_CPUS 32 bytes ${a.cpus32 ?? 'accepted'}, 128 bytes ${a.cpus128 ?? 'accepted'}`,
  );
  return { abi: null, evidence };
}

/**
 * The kernel variant the answers show. The AP start-up decides the window (only a kernel from
 * 7c326ab5 until b265a2e0 drops INIT/SIPI to an inactive AP); the request numbers and sizes
 * decide the rest; VM_CAP_IPI_EXIT tells 13.0/13.1 from 13.2+.
 */
export function classifyProbe(a: ProbeAnswers): ProbeClassification {
  const evidence: string[] = [];
  const vmrun144 = present(a.vmrun144);
  const finish = (variant: KernelVariant | null, why: string): ProbeClassification => ({ variant, evidence, why, vmrun144 });
  const { abi, evidence: abiEvidence } = abiGeneration(a);
  const ap = a.apStart;
  switch (ap.kind) {
    case 'inconclusive':
      evidence.push(`INIT/SIPI to the inactive AP 1: ${ap.why}`);
      return finish(null, `the AP start-up experiment was inconclusive (${ap.why})`);
    case 'none':
      evidence.push(
        'INIT/SIPI to the inactive AP 1 gave no SPINUP_AP: the guest ran on to its I/O exit (vlapic.c at 7c326ab5: the exit carries the active-only dmask, so vm_handle_ipi starts nobody)',
      );
      evidence.push(...abiEvidence);
      if (abi !== '13') {
        return finish(null, 'the APs do not start, but the ioctl ABI is not the one of the 7c326ab5..b265a2e0 window: no known kernel behaves so');
      }
      if (a.capIpiExit === 'EINVAL') {
        return finish(null, 'the APs do not start, but VM_CAP_IPI_EXIT is unknown (EINVAL): no known kernel behaves so');
      }
      return finish('window', 'INIT/SIPI to an inactive AP is dropped: main between 7c326ab5 and b265a2e0');
    case 'spinup':
      if (ap.vcpu !== 1) {
        evidence.push(`INIT/SIPI to the inactive AP 1 gave SPINUP_AP for vCPU ${ap.vcpu}, not 1`);
        return finish(null, `SPINUP_AP named vCPU ${ap.vcpu} for a SIPI to AP 1: no known kernel does that for an inactive AP`);
      }
      evidence.push(
        'INIT/SIPI to the inactive AP 1 gave SPINUP_AP for vCPU 1 (vlapic.c: 13-era boot states at 1f08342a, or the compat path of b265a2e0 at 0162500b, CPU_FFS - 1)',
      );
      evidence.push(...abiEvidence);
      switch (abi) {
        case '15':
          return finish('main15', 'the APs start and the memory segments are the guest-NUMA ones: 15.0 or main');
        case '14':
          return finish('fixed14', 'the APs start and the ioctl ABI is 14.0\'s: 14.x (or main from e17eca32 until guest NUMA)');
        case '13':
          if (a.capIpiExit === 'EINVAL') {
            evidence.push(
              'VM_GET_CAPABILITY(VM_CAP_IPI_EXIT) is EINVAL: VM_CAP_MAX is 8, before 0bda8d3e9f7a (13-era vmm.h; vmm.c vm_get_capability)',
            );
            return finish('legacy13', 'the APs start through the in-kernel boot states and VM_CAP_IPI_EXIT is unknown: 13.0/13.1');
          }
          evidence.push(
            `VM_GET_CAPABILITY(VM_CAP_IPI_EXIT) is ${a.capIpiExit ?? 'answered'}: the capability exists (stable/13 from 13.2 and main from 0bda8d3e9f7a: vmm.h VM_CAP_IPI_EXIT = 8)`,
          );
          return finish('fixed13', 'the APs start, VM_CAP_IPI_EXIT exists and the ioctl ABI is 13.x\'s: 13.2 .. 13.5 (or main from b265a2e0 until e17eca32)');
        case null:
          return finish(null, 'the APs start, but the ioctl ABI matches no known kernel');
      }
  }
}

/**
 * The variants a kern.osreldate admits. A 14-CURRENT below 14.0-RELEASE (1400097) may be any
 * of them: __FreeBSD_version bumps do not line up with 0bda8d3e9f7a, 7c326ab5, b265a2e0 or
 * e17eca32.
 */
export function osreldateCandidates(osreldate: number): KernelVariant[] {
  if (osreldate >= 1400000 && osreldate < 1400097) return ['legacy13', 'window', 'fixed13', 'fixed14'];
  const id = identifyKernel(osreldate);
  return id.variant === null ? [] : [id.variant];
}

export interface KernelIdentification {
  variant: KernelVariant;
  by: IdentifiedBy;
  /** One sentence: why this variant. */
  why: string;
  /** kern.osreldate, or null where it cannot be read. */
  osreldate: number | null;
  /** A warning when kern.osreldate and the experiment disagree, naming both; else null. */
  disagreement: string | null;
  /** Why no experiment decided (not auto, no probe VM, inconclusive); null when it did. */
  experimentSkipped: string | null;
  /** The experiment's evidence lines (empty without one). */
  evidence: string[];
}

export interface IdentificationInputs {
  /** kernel_variant, or the daemon's --kernel. */
  configured: KernelVariant | 'auto';
  osreldate: number | null;
  /** The experiment's classification, or why there is none. */
  experiment: { classification: ProbeClassification } | { unavailable: string } | null;
}

export class IdentificationError extends Error {}

/**
 * kernel_variant = auto: the experiment decides, kern.osreldate corroborates (a disagreement is
 * a warning naming both); without a conclusive experiment kern.osreldate decides where it can;
 * otherwise the configuration must. An explicit kernel_variant always wins.
 */
export function decideKernelVariant(inputs: IdentificationInputs): KernelIdentification {
  const { configured, osreldate, experiment } = inputs;
  if (configured !== 'auto') {
    return {
      variant: configured,
      by: 'config',
      why: `configured (kernel_variant = ${configured})`,
      osreldate,
      disagreement: null,
      experimentSkipped: 'kernel_variant is set in the configuration',
      evidence: [],
    };
  }
  let skipped: string;
  if (experiment !== null && 'classification' in experiment && experiment.classification.variant !== null) {
    const c = experiment.classification;
    const variant = c.variant!;
    let disagreement: string | null = null;
    if (osreldate !== null && !osreldateCandidates(osreldate).includes(variant)) {
      const says = identifyKernel(osreldate);
      disagreement =
        `kern.osreldate ${osreldate} says ${says.variant ?? 'an unsupported kernel'}, but the experiment found ${variant} ` +
        `(${c.why}); using ${variant}: a custom kernel, a backport or a derivative may carry a misleading osreldate`;
    }
    return { variant, by: 'experiment', why: c.why, osreldate, disagreement, experimentSkipped: null, evidence: c.evidence };
  }
  if (experiment === null) skipped = 'no experiment was run';
  else if ('unavailable' in experiment) skipped = experiment.unavailable;
  else skipped = `the experiment was inconclusive: ${experiment.classification.why}`;
  const evidence = experiment !== null && 'classification' in experiment ? experiment.classification.evidence : [];
  if (osreldate === null) {
    throw new IdentificationError(`cannot identify the kernel: ${skipped}, and kern.osreldate cannot be read; set kernel_variant in the configuration`);
  }
  const id = identifyKernel(osreldate);
  if (id.variant === null) {
    throw new IdentificationError(`cannot identify the kernel reliably: ${skipped}, and ${id.why}`);
  }
  return { variant: id.variant, by: 'osreldate', why: id.why, osreldate, disagreement: null, experimentSkipped: skipped, evidence };
}
