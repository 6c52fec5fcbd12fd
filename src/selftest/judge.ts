// How selftest judges a boot, from what an operator sees too: bhyve's exit status, and what the
// guest printed on COM1 (smp-boot prints online=N, the CPUs that came up, then powers off).
import type { PlannedBoot } from './matrix';

/**
 * 13.1 bhyverun.c vmexit_suspend (and 13.2+, 14.x): exit(0) reset, 1 power-off, 2 halt, 3 triple
 * fault. Anything else (4: device emulation initialization error, or on 15.0 a VM destroyed
 * under bhyve; 71: EX_OSERR; a signal such as an assert's SIGABRT) is a bhyve error; no end within
 * the run's time is a hang.
 */
export type BootOutcome = 'poweroff' | 'reset' | 'halt' | 'triplefault' | 'bhyve-error' | 'hang';

const BY_STATUS: Readonly<Record<number, BootOutcome>> = { 0: 'reset', 1: 'poweroff', 2: 'halt', 3: 'triplefault' };

export function outcomeOf(status: number | null, signal: string | null, timedOut: boolean): BootOutcome {
  if (timedOut) return 'hang';
  if (signal === null && status !== null) return BY_STATUS[status] ?? 'bhyve-error';
  return 'bhyve-error';
}

/** The CPUs the guest says came up (its last `online=N`), or null when it said nothing of it. */
export function guestOnline(output: string): number | null {
  const all = [...output.matchAll(/online=(\d+)/g)];
  const last = all.at(-1);
  return last === undefined ? null : Number(last[1]);
}

/**
 * pass: through the shim, every AP started (online=N for N vCPUs) and the guest powered off.
 * fail: through the shim, anything else: the self-test fails.
 * works-without-shim: without the shim, the same: at this count this bhyve needs no shim here.
 * host-bug: without the shim, anything else: the bug this host has, which the shim is for.
 */
export type BootVerdict = 'pass' | 'fail' | 'works-without-shim' | 'host-bug';

export interface BootJudgement {
  outcome: BootOutcome;
  /** APs started as the guest reports them (online=N: N - 1); null when it printed no count. */
  apsStarted: number | null;
  verdict: BootVerdict;
  /** One sentence: what happened. */
  detail: string;
}

export interface BootObservation {
  exitStatus: number | null;
  exitSignal: string | null;
  timedOut: boolean;
  timeoutMs: number;
  guestOutput: string;
  bhyveStderr: string;
}

/** The last non-empty line bhyve (or the interposer) wrote on stderr. */
function lastWords(stderr: string): string {
  return stderr.trim().split('\n').filter((l) => l.trim() !== '').at(-1)?.trim() ?? '';
}

export function judgeBoot(boot: Pick<PlannedBoot, 'vcpus' | 'shim'>, seen: BootObservation): BootJudgement {
  const outcome = outcomeOf(seen.exitStatus, seen.exitSignal, seen.timedOut);
  const online = guestOnline(seen.guestOutput);
  const apsStarted = online === null ? null : online - 1;
  const expected = boot.vcpus - 1;
  const good = outcome === 'poweroff' && apsStarted === expected;
  let detail: string;
  if (good) {
    detail = `every AP started (online=${online}) and the guest powered off`;
  } else if (outcome === 'hang') {
    detail = `no end within ${seen.timeoutMs} ms: bhyve was killed${online === null ? '' : ` (the guest had said online=${online})`}`;
  } else if (outcome === 'bhyve-error') {
    const how = seen.exitSignal !== null ? `bhyve was killed by ${seen.exitSignal}` : `bhyve exited ${seen.exitStatus}`;
    const said = lastWords(seen.bhyveStderr);
    detail = `${how}${online === null ? ' before the guest printed its count' : ` after the guest said online=${online}`}${said ? `: ${said}` : ''}`;
  } else if (online === null) {
    detail = `the guest ended with a ${outcome} (exit ${seen.exitStatus}) without printing online=N`;
  } else if (apsStarted !== expected) {
    detail =
      apsStarted === 0 && expected > 0
        ? `no AP started: the guest says online=1 of ${boot.vcpus}${outcome === 'poweroff' ? '' : ` and ended with a ${outcome}`}`
        : `${apsStarted} of ${expected} APs started (online=${online} of ${boot.vcpus})${outcome === 'poweroff' ? '' : ` and the guest ended with a ${outcome}`}`;
  } else {
    detail = `every AP started (online=${online}), but the guest ended with a ${outcome} (exit ${seen.exitStatus}), not a power-off`;
  }
  const verdict: BootVerdict = boot.shim ? (good ? 'pass' : 'fail') : good ? 'works-without-shim' : 'host-bug';
  return { outcome, apsStarted, verdict, detail };
}
