// The reboot soak: one VM rebooted again and again the way vm-bhyve reboots a 13.1 UEFI guest
// (vm-bhyve destroys the VM between runs only for loader guests; lib/vm-run): the guest resets,
// bhyve exits 0, vm-bhyve starts bhyve again on the same VM, whose do_open finds it existing and
// calls VM_REINIT, under the interposer and one long-running daemon. Every
// boot must start every AP; bhyve's threads, descriptors and RSS and the daemon's RSS,
// descriptors, heap and status record must stay flat.
//
// Each bhyve is sampled at the same moment of its boot: as its VM_SUSPEND (the guest's reset)
// enters the kernel model, through the model's tap, while every thread of that bhyve is alive.
// The daemon's RSS follows Node's garbage collector (a sawtooth of some 16 MiB over thousands of
// boots, measured), so its leak criteria are the JavaScript heap still in use after a full
// collection and the memory outside that heap (RSS minus the heap's committed size), both read
// through the daemon's inspector (--inspect, lab only) after every tenth of the run: ten forced
// collections, the RSS samples in between are the daemon's own.

import fs from 'node:fs';
import { REQ13 } from '../../abi/ioctls';
import { queryControl, type StatusReport } from '../../daemon/control-server';
import { buildSmpBoot } from '../guests/smp-boot';
import { LabBench, type LabKernelName } from '../run';
import { InspectorClient, inspectorUrlOf } from './inspector';
import { median, openFdCount as fdCount, percentile } from '../measure';

export interface SoakOptions {
  kernel: LabKernelName;
  boots: number;
  vcpus: number;
  /** Bound on each boot; past it the boot is a hang and the soak stops. Default 30 s. */
  bootTimeoutMs?: number;
  /** The daemon's status record is read every this many boots (default 10). */
  daemonSampleEvery?: number;
  progress?: (line: string) => void;
}

/** One boot's figures, all read at its VM_SUSPEND. */
export interface SoakSample {
  boot: number;
  bhyveThreads: number;
  bhyveFds: number;
  bhyveRssKiB: number;
  daemonRssKiB: number;
  daemonFds: number;
}

/** A quantity over the run: where it started and ended, and its least-squares trend. */
export interface Trend {
  /** Median of the first and of the last tenth of the samples (boots), and the extremes. */
  firstTenthMedian: number;
  lastTenthMedian: number;
  first: number;
  last: number;
  min: number;
  max: number;
  /** Least-squares slope per boot, and that slope times the boots of the run. */
  slopePerBoot: number;
  fittedGrowth: number;
  /** What flat means for this quantity (the tolerance) and whether the run stayed within it. */
  tolerance: string;
  /** false: the run was too short to judge this quantity (flat is then not a verdict). */
  judged: boolean;
  flat: boolean;
  samples: number;
}

export interface SoakResult {
  kernel: LabKernelName;
  vcpus: number;
  bootsPlanned: number;
  bootsRun: number;
  /** Boots that reset (bhyve exit 0) with every AP started. */
  bootsWithEveryAp: number;
  /** VM_REINIT calls that succeeded: every boot after the first reinitialises the VM. */
  reinits: number;
  failures: string[];
  bootMs: { p50: number; p99: number; max: number };
  bhyveThreads: Trend;
  bhyveFds: Trend;
  bhyveRssKiB: Trend;
  daemonRssKiB: Trend;
  daemonFds: Trend;
  /** The daemon's JavaScript heap in use right after a full collection (what stays reachable). */
  daemonRetainedHeapKiB: Trend | null;
  /**
   * The daemon's memory outside the V8 heap at the same moments: RSS minus the heap's committed
   * size. The collector's sawtooth is the heap's; this is the rest (native code, buffers).
   */
  daemonNativeKiB: Trend | null;
  daemonStatusRecordBytes: Trend | null;
  /** Every trend within its tolerance and every boot good. */
  flat: boolean;
  elapsedMs: number;
}

function procStatus(pid: number, field: string): number {
  const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}


/** Tolerances: what a leak would have to exceed over the run to count (docs/benchmarks.md). */
export const SOAK_TOLERANCE = {
  /** Threads and descriptors are counts: one more at the end than at the start is a leak. */
  count: 'the last tenth\'s median equals the first tenth\'s, and the fitted growth over the run is under 1',
  /**
   * A new bhyve process per boot: its RSS varies only with what the boot touched (a few pages
   * of thread stacks and malloc arenas from run to run, about 100 KiB here).
   */
  bhyveRss: 'fitted growth over the run under 1 MiB and the last tenth within 256 KiB or 5 % (the larger) of the first',
  /** A long-running Node process: RSS moves with the garbage collector, a bounded sawtooth. */
  daemonRss: 'never more than 32 MiB above the first tenth\'s median (the collector\'s sawtooth is about 16 MiB here)',
  /** What stays reachable after a full collection: a leak of 1 KiB per boot shows in 1,000 boots. */
  daemonHeap: 'fitted growth over the run (ten readings, one per tenth) under 1 MiB',
  /** Native memory (koffi, buffers, libuv): nothing the collector moves. */
  daemonNative: 'fitted growth over the run (ten readings, one per tenth) under 2 MiB',
  statusRecord:
    'fitted growth over the second half of the run (slope and growth are the second half\'s) under 1 KiB (the per-VM record is bounded); judged from 200 boots, since the bounds (500 events, 64 sessions) take some 40 boots to fill',
} as const;

/** Runs shorter than this do not judge the status record: it is still filling its bounds. */
export const STATUS_RECORD_MIN_BOOTS = 200;

function leastSquaresSlope(points: { x: number; y: number }[]): number {
  const n = points.length;
  if (n < 2) return 0;
  const mx = points.reduce((a, p) => a + p.x, 0) / n;
  const my = points.reduce((a, p) => a + p.y, 0) / n;
  let num = 0;
  let den = 0;
  for (const p of points) {
    num += (p.x - mx) * (p.y - my);
    den += (p.x - mx) ** 2;
  }
  return den === 0 ? 0 : num / den;
}

export function trendOf(points: { x: number; y: number }[], runBoots: number, kind: keyof typeof SOAK_TOLERANCE): Trend {
  const ys = points.map((p) => p.y);
  const tenth = Math.max(1, Math.floor(points.length / 10));
  const firstTenth = ys.slice(0, tenth);
  const lastTenth = ys.slice(-tenth);
  // The status record fills its bounds first: its trend is the second half's.
  const slope = leastSquaresSlope(kind === 'statusRecord' ? points.slice(Math.floor(points.length / 2)) : points);
  const fittedGrowth = slope * (kind === 'statusRecord' ? runBoots / 2 : runBoots);
  const firstMedian = median(firstTenth);
  const lastMedian = median(lastTenth);
  let flat: boolean;
  switch (kind) {
    case 'count':
      flat = lastMedian === firstMedian && fittedGrowth < 1;
      break;
    case 'bhyveRss':
      flat = fittedGrowth < 1024 && lastMedian <= firstMedian + Math.max(256, firstMedian * 0.05);
      break;
    case 'daemonRss':
      flat = Math.max(...ys) <= firstMedian + 32 * 1024;
      break;
    case 'daemonHeap':
      flat = fittedGrowth < 1024;
      break;
    case 'daemonNative':
      flat = fittedGrowth < 2 * 1024;
      break;
    case 'statusRecord':
      flat = fittedGrowth < 1024;
      break;
  }
  const judged = kind !== 'statusRecord' || runBoots >= STATUS_RECORD_MIN_BOOTS;
  return {
    firstTenthMedian: firstMedian,
    lastTenthMedian: lastMedian,
    first: ys[0] ?? 0,
    last: ys[ys.length - 1] ?? 0,
    min: Math.min(...ys),
    max: Math.max(...ys),
    slopePerBoot: Number(slope.toFixed(4)),
    fittedGrowth: Number(fittedGrowth.toFixed(2)),
    tolerance: SOAK_TOLERANCE[kind],
    judged,
    flat: judged && flat,
    samples: points.length,
  };
}

export async function runSoak(options: SoakOptions): Promise<SoakResult> {
  const started = Date.now();
  const progress = options.progress ?? (() => {});
  const bootTimeoutMs = options.bootTimeoutMs ?? 30000;
  const every = options.daemonSampleEvery ?? 10;
  const vm = `soak-${options.kernel}-${process.pid}`;
  const bench = await LabBench.start({ kernel: options.kernel });
  const samples: SoakSample[] = [];
  const retained: { x: number; y: number }[] = [];
  const native: { x: number; y: number }[] = [];
  const record: { x: number; y: number }[] = [];
  const failures: string[] = [];
  const bootMs: number[] = [];
  let bootsWithEveryAp = 0;
  let reinits = 0;
  let bootsRun = 0;
  try {
    const daemon = await bench.startDaemon(['--log-level', 'warn'], { nodeFlags: ['--inspect=127.0.0.1:0'] });
    const daemonPid = daemon.pid!;
    let url: string | null = null;
    const deadline = Date.now() + 10000;
    while ((url = inspectorUrlOf(bench.daemonLog())) === null) {
      if (Date.now() > deadline) throw new Error('the daemon printed no inspector URL');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    const inspector = await InspectorClient.connect(url);
    // After every tenth of the run: ten full collections, the RSS samples between them natural.
    const measureAt = new Set(Array.from({ length: 10 }, (_, i) => Math.max(1, Math.round(((i + 1) * options.boots) / 10))));
    // Booted through a boot ROM (spawnBhyve's default): it prints on COM1.
    const guest = buildSmpBoot({ apWaitMs: 4000, finalAction: 'reset', console: 'com1' });
    const expected = Array.from({ length: options.vcpus - 1 }, (_, i) => i + 1).join(',');
    // Filled by the tap at this boot's VM_SUSPEND (a holder: the tap assigns it, not this scope).
    const pending: { sample: Omit<SoakSample, 'boot'> | null } = { sample: null };
    const untap = bench.model.tap((e) => {
      if (e.vm !== vm || e.pid === daemonPid) return;
      if (e.phase === 'leave' && e.request === REQ13.VM_REINIT && e.errno === 0) reinits++;
      if (e.phase === 'enter' && e.request === REQ13.VM_SUSPEND && pending.sample === null) {
        pending.sample = {
          bhyveThreads: procStatus(e.pid, 'Threads'),
          bhyveFds: fdCount(e.pid),
          bhyveRssKiB: procStatus(e.pid, 'VmRSS'),
          daemonRssKiB: procStatus(daemonPid, 'VmRSS'),
          daemonFds: fdCount(daemonPid),
        };
      }
    });
    try {
      for (let boot = 1; boot <= options.boots; boot++) {
        pending.sample = null;
        const r = await bench.spawnBhyve({ bhyve: '13.1', vcpus: options.vcpus, vmName: vm, shim: true, direct: true, timeoutMs: bootTimeoutMs, guest }).result;
        bootsRun++;
        bootMs.push(r.elapsedMs);
        // Every AP ran guest code in this boot (the model's count) and checked in (the guest's own).
        const good = r.outcome === 'reset' && r.bhyveExit.status === 0 && r.apsStarted.join(',') === expected && r.guestOutput === `online=${options.vcpus}\n`;
        if (good) bootsWithEveryAp++;
        else failures.push(`boot ${boot}: ${r.outcome} (exit ${r.bhyveExit.status ?? r.bhyveExit.signal}), APs ${r.apsStarted.join(',') || 'none'}, the guest printed ${JSON.stringify(r.guestOutput)}: ${r.bhyveStderr.trim().slice(-300)}`);
        // The tap filled it during the boot: TypeScript cannot see that assignment.
        const sample = pending.sample as Omit<SoakSample, 'boot'> | null;
        if (sample !== null) samples.push({ boot, ...sample });
        else failures.push(`boot ${boot}: no VM_SUSPEND to sample at`);
        if (r.outcome === 'hang') break;
        if (measureAt.has(boot)) {
          const heap = await inspector.heapAfterFullCollection();
          retained.push({ x: boot, y: Math.round(heap.usedSize / 1024) });
          native.push({ x: boot, y: procStatus(daemonPid, 'VmRSS') - Math.round(heap.totalSize / 1024) });
        }
        if (boot === 1 || boot % every === 0 || boot === options.boots) {
          const status = (await queryControl(bench.socketDir, 'status', 5000)) as StatusReport;
          const mine = status.vms.find((v) => (v as { name?: unknown }).name === vm);
          record.push({ x: boot, y: Buffer.byteLength(JSON.stringify(mine ?? null)) });
        }
        if (boot % 50 === 0 || boot === options.boots) {
          const last = samples[samples.length - 1];
          progress(
            `${options.kernel}: boot ${boot}/${options.boots}, ${bootsWithEveryAp} with every AP; ` +
              (last ? `bhyve ${last.bhyveThreads} threads, ${last.bhyveFds} fds, ${last.bhyveRssKiB} KiB; daemon ${last.daemonRssKiB} KiB, ${last.daemonFds} fds` : 'no sample'),
          );
        }
      }
    } finally {
      untap();
      inspector.close();
    }
    if (daemon.exitCode !== null || daemon.signalCode !== null) failures.push(`the daemon exited (${daemon.exitCode ?? daemon.signalCode})`);
    if (reinits !== bootsRun - 1) failures.push(`${reinits} successful VM_REINITs for ${bootsRun} boots (expected one per boot after the first)`);
    bench.model.destroyVm(vm);
  } finally {
    await bench.close();
  }
  const points = (pick: (s: SoakSample) => number): { x: number; y: number }[] => samples.map((s) => ({ x: s.boot, y: pick(s) }));
  const result: SoakResult = {
    kernel: options.kernel,
    vcpus: options.vcpus,
    bootsPlanned: options.boots,
    bootsRun,
    bootsWithEveryAp,
    reinits,
    failures,
    bootMs: { p50: percentile(bootMs, 50), p99: percentile(bootMs, 99), max: Math.max(0, ...bootMs) },
    bhyveThreads: trendOf(points((s) => s.bhyveThreads), bootsRun, 'count'),
    bhyveFds: trendOf(points((s) => s.bhyveFds), bootsRun, 'count'),
    bhyveRssKiB: trendOf(points((s) => s.bhyveRssKiB), bootsRun, 'bhyveRss'),
    daemonRssKiB: trendOf(points((s) => s.daemonRssKiB), bootsRun, 'daemonRss'),
    daemonFds: trendOf(points((s) => s.daemonFds), bootsRun, 'count'),
    daemonRetainedHeapKiB: retained.length > 1 ? trendOf(retained, bootsRun, 'daemonHeap') : null,
    daemonNativeKiB: native.length > 1 ? trendOf(native, bootsRun, 'daemonNative') : null,
    daemonStatusRecordBytes: record.length > 1 ? trendOf(record, bootsRun, 'statusRecord') : null,
    flat: false,
    elapsedMs: Date.now() - started,
  };
  const trends = [result.bhyveThreads, result.bhyveFds, result.bhyveRssKiB, result.daemonRssKiB, result.daemonFds, result.daemonRetainedHeapKiB, result.daemonNativeKiB, result.daemonStatusRecordBytes];
  result.flat = failures.length === 0 && trends.every((t) => t === null || !t.judged || t.flat);
  return result;
}

/** The result as lines for a test's or a script's output. */
export function formatSoak(r: SoakResult): string[] {
  const t = (name: string, x: Trend | null, unit = ''): string =>
    x === null
      ? `  ${name}: not sampled`
      : `  ${name}: first ${x.first}${unit} -> last ${x.last}${unit} (tenths ${x.firstTenthMedian} -> ${x.lastTenthMedian}, min ${x.min}, max ${x.max}), slope ${x.slopePerBoot}${unit}/boot, fitted growth ${x.fittedGrowth}${unit}: ${!x.judged ? 'not judged (too short a run)' : x.flat ? 'flat' : 'NOT FLAT'}`;
  return [
    `soak ${r.kernel}, ${r.vcpus} vCPUs: ${r.bootsWithEveryAp}/${r.bootsPlanned} boots started every AP and reset (bhyve exit 0), ${r.reinits} VM_REINITs; boot p50 ${r.bootMs.p50} ms, p99 ${r.bootMs.p99} ms; ${r.flat ? 'flat' : 'NOT FLAT'}`,
    t('bhyve threads', r.bhyveThreads),
    t('bhyve fds', r.bhyveFds),
    t('bhyve RSS', r.bhyveRssKiB, ' KiB'),
    t('daemon RSS', r.daemonRssKiB, ' KiB'),
    t('daemon fds', r.daemonFds),
    t('daemon heap in use after a full collection', r.daemonRetainedHeapKiB, ' KiB'),
    t('daemon RSS outside the V8 heap', r.daemonNativeKiB, ' KiB'),
    t('daemon status record of the VM', r.daemonStatusRecordBytes, ' B'),
    ...r.failures.slice(0, 10).map((f) => `  FAILED ${f}`),
  ];
}
