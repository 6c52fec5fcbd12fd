// How the daemon (and `vmm-compat doctor`) learn the kernel variant at start-up: leftover probe
// VMs are swept first; with kernel_variant = auto the experiment decides (once per kernel
// identity: a cached result is used while boot time, osreldate and kern.version stay the same),
// kern.osreldate corroborates, and where no probe VM can be made kern.osreldate decides; an
// explicit kernel_variant wins without an experiment.
import type { Config } from '../config/config';
import {
  IdentificationError,
  decideKernelVariant,
  type KernelIdentification,
  type ProbeAnswers,
} from './kernel-identification';
import { runKernelProbe, sweepProbeVms, type SweepResult } from './kernel-probe';
import { readKernelIdentity, readProbeCache, writeProbeCache, type CachedProbe } from './kernel-probe-cache';
import type { VmmSyscalls } from './vmm-device';

/** What the experiment did this time, for status, the log and `probe`. */
export interface ExperimentReport {
  /** true: the result of an earlier probe on this very kernel (the cache). */
  cached: boolean;
  probedAt: string;
  /** The probe's own time (the earlier one's when cached). */
  elapsedMs: number;
  /** Why the cache was not used, when it was not. */
  cacheMiss: string | null;
  /** This run's probe VM, its answers and the BSP's exits (absent when cached). */
  vmName?: string;
  answers?: ProbeAnswers;
  exits?: string[];
  /** Whether the kernel has the 144-byte VM_RUN (COMPAT_FREEBSD13 on 14.x/15). */
  vmrun144: boolean;
}

export interface DaemonKernel extends KernelIdentification {
  experiment: ExperimentReport | null;
  swept: SweepResult;
}

export interface IdentifyLog {
  info(fields: object, msg: string): void;
  warn(fields: object, msg: string): void;
}

export { IdentificationError };

export async function identifyKernelAtStart(config: Config, sys: VmmSyscalls, log: IdentifyLog): Promise<DaemonKernel> {
  const swept = sweepProbeVms(sys, config.deviceDir);
  if (swept.destroyed.length > 0 || swept.failed.length > 0) {
    log.warn({ destroyed: swept.destroyed, failed: swept.failed }, 'destroyed probe VMs an interrupted probe left behind');
  }
  const osreldateBytes = sys.sysctlRead('kern.osreldate', 8);
  const osreldate = osreldateBytes === null || osreldateBytes.length < 4 ? null : osreldateBytes.length >= 8 ? Number(osreldateBytes.readBigInt64LE(0)) : osreldateBytes.readInt32LE(0);
  if (config.kernelVariant !== 'auto') {
    return { ...decideKernelVariant({ configured: config.kernelVariant, osreldate, experiment: null }), experiment: null, swept };
  }
  const identity = readKernelIdentity(sys);
  let cacheMiss = 'the kernel identity (kern.boottime, kern.osreldate, kern.version) cannot be read';
  if (identity !== null) {
    const cached = readProbeCache(config.probeCache, identity);
    if ('probe' in cached) {
      const p = cached.probe;
      const decided = decideKernelVariant({
        configured: 'auto',
        osreldate,
        experiment: { classification: { variant: p.variant, why: p.why, evidence: p.evidence, vmrun144: p.vmrun144 } },
      });
      return { ...decided, experiment: { cached: true, probedAt: p.probedAt, elapsedMs: p.elapsedMs, cacheMiss: null, vmrun144: p.vmrun144 }, swept };
    }
    cacheMiss = cached.miss;
  }
  const outcome = await runKernelProbe(sys, { library: sys.library });
  if (outcome.kind === 'unavailable') {
    log.warn({ why: outcome.why }, 'no probe VM can be made; identifying the kernel from kern.osreldate');
    return { ...decideKernelVariant({ configured: 'auto', osreldate, experiment: { unavailable: `no probe VM can be made: ${outcome.why}` } }), experiment: null, swept };
  }
  if (outcome.destroyError !== null) {
    log.warn({ vm: outcome.vmName, err: outcome.destroyError }, 'the probe VM could not be destroyed; the next start sweeps it');
  }
  const c = outcome.classification;
  const probedAt = new Date().toISOString();
  const experiment: ExperimentReport = {
    cached: false,
    probedAt,
    elapsedMs: outcome.elapsedMs,
    cacheMiss,
    vmName: outcome.vmName,
    answers: outcome.answers,
    exits: outcome.exits,
    vmrun144: c.vmrun144,
  };
  if (c.variant !== null && identity !== null) {
    const record: CachedProbe = { variant: c.variant, why: c.why, evidence: c.evidence, vmrun144: c.vmrun144, probedAt, elapsedMs: outcome.elapsedMs };
    try {
      writeProbeCache(config.probeCache, identity, record);
    } catch (err) {
      log.warn({ file: config.probeCache, err: err instanceof Error ? err.message : String(err) }, 'cannot keep the probe result; the next start probes again');
    }
  }
  return { ...decideKernelVariant({ configured: 'auto', osreldate, experiment: { classification: c } }), experiment, swept };
}

/** The `kernel` object of `status --json`: the variant, how it was identified, and the evidence. */
export interface KernelStatus {
  variant: string;
  by: KernelIdentification['by'];
  why: string;
  osreldate: number | null;
  disagreement: string | null;
  experimentSkipped: string | null;
  evidence: string[];
  experiment: ExperimentReport | null;
  /** Probe VMs of interrupted probes destroyed at start-up. */
  sweptAtStart: string[];
}

export function kernelStatus(k: DaemonKernel): KernelStatus {
  return {
    variant: k.variant,
    by: k.by,
    why: k.why,
    osreldate: k.osreldate,
    disagreement: k.disagreement,
    experimentSkipped: k.experimentSkipped,
    evidence: k.evidence,
    experiment: k.experiment,
    sweptAtStart: k.swept.destroyed,
  };
}
