// Runs fault-matrix cases (a slice or the whole table) a few at a time and counts them: injected,
// by outcome, by fault, by event, by kernel; skipped combinations by reason, each checked against
// a fault-free run of the same kernel, vCPU count and scenario in which the daemon must record no
// such event.

import { EVENT_SPECS, FAULT_DESCRIPTIONS, FAULT_KERNELS, FAULTS, type Fault, type FaultCase, type FaultKernel, type Scenario, type SkippedCombination } from './matrix';
import { FAULT_OUTCOMES, observeEvents, runFaultCase, type FaultCaseResult, type FaultOutcome } from './inject';
import { percentile } from '../measure';

export interface SkipReason {
  reason: string;
  /** 'kernel': confirmed by fault-free runs; 'scenario': the scenario needs more vCPUs (by construction). */
  because: 'kernel' | 'scenario';
  /** kernel/vCPUs/event combinations skipped for it. */
  combinations: number;
  /** Faults not injected because of it (combinations x faults). */
  faults: number;
  /** Combinations a fault-free run confirmed (the daemon recorded no such event); null: not checked. */
  confirmed: number | null;
}

export interface FaultMatrixReport {
  /** Faults injected (one per case). */
  injected: number;
  byOutcome: Record<FaultOutcome, number>;
  byFault: Record<string, Partial<Record<FaultOutcome, number>>>;
  byEvent: Record<string, Partial<Record<FaultOutcome, number>>>;
  byKernel: Record<string, Partial<Record<FaultOutcome, number>>>;
  byVcpus: Record<string, Partial<Record<FaultOutcome, number>>>;
  /** Cases in which the interposer planned alone (FALLBACK): the daemon was gone at the plan. */
  interposerFellBack: number;
  skipped: { combinations: number; faults: number; byReason: SkipReason[]; unconfirmed: string[] };
  failures: FaultCaseResult[];
  caseMs: { p50: number; max: number };
  elapsedMs: number;
  concurrency: number;
  cases: { id: string; outcome: FaultOutcome; ms: number; fellBack: boolean }[];
}

export interface FaultRunOptions {
  cases: FaultCase[];
  skipped: SkippedCombination[];
  /** Cases run at once (each with its own kernel model and daemon). Default 2. */
  concurrency?: number;
  /** Check every skipped combination against a fault-free run (the full matrix does). */
  confirmSkips?: boolean;
  bootTimeoutMs?: number;
  progress?: (line: string) => void;
}

function tally(into: Record<string, Partial<Record<FaultOutcome, number>>>, key: string, outcome: FaultOutcome): void {
  const row = (into[key] ??= {});
  row[outcome] = (row[outcome] ?? 0) + 1;
}

/** Runs `work` over `items`, at most `limit` at a time, in order of start. */
async function pool<T, R>(items: readonly T[], limit: number, work: (item: T, index: number) => Promise<R>): Promise<R[]> {
  const results = new Array<R>(items.length);
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      results[i] = await work(items[i]!, i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
  return results;
}

/**
 * Fault-free runs of every scenario on every kernel and vCPU count that has a skipped
 * combination: which events' moments came. A skip is confirmed when its event's did not.
 */
async function confirmSkips(skipped: SkippedCombination[], concurrency: number, bootTimeoutMs: number | undefined, progress: (line: string) => void): Promise<{ confirmed: Set<SkippedCombination>; problems: string[] }> {
  const kernels = new Map<string, FaultKernel>(FAULT_KERNELS.map((k) => [k.name, k]));
  const runs = new Map<string, { kernel: FaultKernel; vcpus: number; scenario: Scenario }>();
  for (const s of skipped.filter((x) => x.because === 'kernel')) {
    const scenario = EVENT_SPECS[s.event].scenario;
    runs.set(`${s.kernel}/${s.vcpus}/${scenario}`, { kernel: kernels.get(s.kernel)!, vcpus: s.vcpus, scenario });
  }
  progress(`confirming the ${skipped.filter((x) => x.because === 'kernel').length} skipped combinations the kernel rules out with ${runs.size} fault-free runs`);
  const keys = [...runs.keys()];
  const observed = await pool(keys, concurrency, async (key) => {
    const run = runs.get(key)!;
    return observeEvents(run.kernel, run.vcpus, run.scenario, { bootTimeoutMs });
  });
  const confirmed = new Set<SkippedCombination>();
  const problems: string[] = [];
  keys.forEach((key, i) => {
    if (observed[i]!.problems.length > 0) problems.push(`${key}: ${observed[i]!.problems.join('; ')}`);
  });
  for (const s of skipped.filter((x) => x.because === 'kernel')) {
    const i = keys.indexOf(`${s.kernel}/${s.vcpus}/${EVENT_SPECS[s.event].scenario}`);
    const seen = observed[i]!;
    if (seen.problems.length === 0 && !seen.recorded.has(EVENT_SPECS[s.event].recordedAs)) confirmed.add(s);
  }
  return { confirmed, problems };
}

export async function runFaultMatrix(options: FaultRunOptions): Promise<FaultMatrixReport> {
  const started = Date.now();
  const progress = options.progress ?? (() => {});
  const concurrency = options.concurrency ?? 2;
  const byOutcome = Object.fromEntries(FAULT_OUTCOMES.map((o) => [o, 0])) as Record<FaultOutcome, number>;
  let done = 0;
  const total = options.cases.length;
  progress(`${total} faults to inject (${FAULTS.join(', ')}), ${concurrency} at a time`);
  const results = await pool(options.cases, concurrency, async (c) => {
    const r = await runFaultCase(c, { bootTimeoutMs: options.bootTimeoutMs });
    done++;
    byOutcome[r.outcome]++;
    if (r.outcome === 'failed') progress(`FAILED ${r.id}: ${r.problems.join(' | ')}`);
    if (done % 25 === 0 || done === total) {
      const elapsed = Math.round((Date.now() - started) / 1000);
      progress(`${done}/${total} injected in ${elapsed} s: ${FAULT_OUTCOMES.map((o) => `${byOutcome[o]} ${o}`).join(', ')}`);
    }
    return r;
  });
  const confirmation = options.confirmSkips ? await confirmSkips(options.skipped, concurrency, options.bootTimeoutMs, progress) : null;
  return { ...summarizeFaults(results, options.skipped, confirmation), elapsedMs: Date.now() - started, concurrency };
}

/** Counts of finished cases and of the skipped combinations (confirmed or not). */
export function summarizeFaults(
  results: readonly FaultCaseResult[],
  skipped: readonly SkippedCombination[],
  confirmation: { confirmed: Set<SkippedCombination>; problems: string[] } | null,
): FaultMatrixReport {
  const byOutcome = Object.fromEntries(FAULT_OUTCOMES.map((o) => [o, 0])) as Record<FaultOutcome, number>;
  const byFault: FaultMatrixReport['byFault'] = {};
  const byEvent: FaultMatrixReport['byEvent'] = {};
  const byKernel: FaultMatrixReport['byKernel'] = {};
  const byVcpus: FaultMatrixReport['byVcpus'] = {};
  for (const r of results) {
    byOutcome[r.outcome]++;
    tally(byFault, r.fault, r.outcome);
    tally(byEvent, r.event, r.outcome);
    tally(byKernel, r.kernel, r.outcome);
    tally(byVcpus, String(r.vcpus), r.outcome);
  }
  const reasons = new Map<string, SkipReason>();
  const unconfirmed: string[] = [...(confirmation?.problems ?? [])];
  for (const s of skipped) {
    const checked = confirmation !== null && s.because === 'kernel';
    const row = reasons.get(s.reason) ?? { reason: s.reason, because: s.because, combinations: 0, faults: 0, confirmed: checked ? 0 : null };
    row.combinations++;
    row.faults += s.faults;
    if (checked) {
      if (confirmation.confirmed.has(s)) row.confirmed = (row.confirmed ?? 0) + 1;
      else unconfirmed.push(`${s.kernel}/${s.vcpus}/${s.event}: the daemon recorded ${EVENT_SPECS[s.event].recordedAs} in a fault-free run (or the run failed), yet the table skips it`);
    }
    reasons.set(s.reason, row);
  }
  const times = results.map((r) => r.elapsedMs);
  return {
    injected: results.length,
    byOutcome,
    byFault,
    byEvent,
    byKernel,
    byVcpus,
    interposerFellBack: results.filter((r) => r.interposerFellBack).length,
    skipped: {
      combinations: skipped.length,
      faults: skipped.reduce((n, s) => n + s.faults, 0),
      byReason: [...reasons.values()].sort((a, b) => b.faults - a.faults),
      unconfirmed,
    },
    failures: results.filter((r) => r.outcome === 'failed'),
    caseMs: { p50: percentile(times, 50), max: Math.max(0, ...times) },
    elapsedMs: 0,
    concurrency: 0,
    cases: results.map((r) => ({ id: r.id, outcome: r.outcome, ms: r.elapsedMs, fellBack: r.interposerFellBack })),
  };
}

/** The counts as lines for a test's or a script's output. */
export function formatFaultReport(r: FaultMatrixReport): string[] {
  const outcomes = (row: Partial<Record<FaultOutcome, number>>): string =>
    FAULT_OUTCOMES.filter((o) => (row[o] ?? 0) > 0).map((o) => `${row[o]} ${o}`).join(', ');
  const lines = [
    `faults injected: ${r.injected} (${outcomes(r.byOutcome)}); the interposer planned alone in ${r.interposerFellBack}`,
    ...Object.entries(r.byFault).map(([k, row]) => `  ${k} (${FAULT_DESCRIPTIONS[k as Fault]}): ${outcomes(row)}`),
    `by event: ${Object.entries(r.byEvent).map(([k, row]) => `${k} ${Object.values(row).reduce((a, b) => a + (b ?? 0), 0)}`).join(', ')}`,
    `by kernel: ${Object.entries(r.byKernel).map(([k, row]) => `${k} ${Object.values(row).reduce((a, b) => a + (b ?? 0), 0)}`).join(', ')}`,
    `skipped: ${r.skipped.combinations} combinations (${r.skipped.faults} faults) where the event cannot occur:`,
    ...r.skipped.byReason.map(
      (s) =>
        `  ${s.faults} (${s.combinations} combinations${s.confirmed === null ? (s.because === 'scenario' ? ', by construction' : '') : `, ${s.confirmed} confirmed by a fault-free run`}): ${s.reason}`,
    ),
    ...r.skipped.unconfirmed.map((u) => `  NOT CONFIRMED: ${u}`),
    ...r.failures.map((f) => `FAILED ${f.id}: ${f.problems.join(' | ')}`),
  ];
  return lines;
}
