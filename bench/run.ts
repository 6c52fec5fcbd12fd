// npm run bench: every performance figure the README quotes, measured side by side in one run
// on this machine, written to bench/results/<date>-<commit>.json and bench/results/latest.json.
// Options: --quick (fewer rounds, for a smoke run), --only NAME[,NAME] (passthrough, boot,
// parked, storm, scale, vcpus, probe). The fault matrix and the reboot soak are their own scripts
// (npm run faults, npm run soak, bench/faults.ts and bench/soak.ts).
import { execFileSync, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LabBench, compatEventsOf, type BootResult } from '../src/lab/run';
import { buildSmpBoot } from '../src/lab/guests/smp-boot';
import { ARTIFACTS, nativeArtifact, requireArtifact } from '../src/native-paths';
import { runScale, type ScaleResult } from '../src/lab/scale/run';
import { benchManyVcpus } from './many-vcpus';
import { benchProbe } from './probe';
import { mergeSectionIntoLatest, replaceLatestKeepingOthers } from './results-file';
import { median, percentile, processCpuNs } from '../src/lab/measure';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const onlyArg = args.find((_arg, i) => args[i - 1] === '--only');
const only = onlyArg ? new Set(onlyArg.split(',')) : null;
const enabled = (name: string): boolean => only === null || only.has(name);

function say(line: string): void {
  process.stderr.write(`bench: ${line}\n`);
}

const round = (x: number, digits = 2): number => Number(x.toFixed(digits));

// ---- 1. pass-through cost of the interposer, beside the two floors -------------------------

/** What is preloaded in front of the lab bridge for one measurement. */
type Interposer = 'none' | 'product' | 'tailJump' | 'callTest';
const INTERPOSERS: readonly Interposer[] = ['none', 'product', 'tailJump', 'callTest'];

function interposerLibrary(which: Interposer): string | null {
  switch (which) {
    case 'none':
      return null;
    case 'product':
      return nativeArtifact(ARTIFACTS.interposer);
    case 'tailJump':
      return requireArtifact('bench/libfloor_tailjump.so');
    case 'callTest':
      return requireArtifact('bench/libfloor_calltest.so');
  }
}

interface PassthroughResult {
  request: string;
  rounds: number;
  iterationsPerRound: number;
  /** Medians over the rounds. */
  baselineNsPerCall: number;
  interposerNsPerCall: number;
  /** Medians of the per-round (back-to-back) differences and ratios against no interposer. */
  addedNsPerCall: number;
  ratio: number;
  /** The minimal interposer this request is held against: tail-jump, or call-and-test for VM_RUN. */
  floor: 'tail-jump' | 'call-and-test';
  /** What that floor adds, measured in the same interleaved rounds. */
  floorAddedNsPerCall: number;
  /** Median of the per-round differences, product minus its floor. */
  aboveFloorNsPerCall: number;
  /** Both floors, for the record. */
  tailJumpAddedNsPerCall: number;
  callTestAddedNsPerCall: number;
  /** Exact instructions per call (callgrind), absolute, and added over no interposer. */
  instructionsPerCall: Record<Interposer, number> | null;
  addedInstructionsPerCall: number | null;
  floorAddedInstructionsPerCall: number | null;
  target: { aboveFloorNsAtMost: number; met: boolean };
}

function loopEnv(which: Interposer): NodeJS.ProcessEnv {
  const preload = [interposerLibrary(which), nativeArtifact(ARTIFACTS.bridge)].filter(Boolean).join(' ');
  return { ...process.env, LD_PRELOAD: preload, VMMLAB_BRIDGE_MODE: 'loopback', VMMLAB_ROOT: os.tmpdir() };
}

function passthroughOnce(request: string, which: Interposer, iterations: number): number {
  const loop = requireArtifact('bench/passthrough');
  // Pin to one core where taskset exists: every variant then shares one cache and clock.
  const hasTaskset = spawnSync('taskset', ['--version']).status === 0;
  const argv = hasTaskset ? ['taskset', '-c', String(os.availableParallelism() - 1), loop] : [loop];
  const out = execFileSync(argv[0]!, [...argv.slice(1), 'bench-vm', request, String(iterations)], {
    env: loopEnv(which),
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'ignore'],
  });
  return Number(out.trim());
}

/** Instructions per call, exactly, from callgrind: (Ir(2N) - Ir(N)) / (calls(2N) - calls(N)). */
function instructionsPerCall(request: string, which: Interposer): number | null {
  if (spawnSync('valgrind', ['--version']).status !== 0) return null;
  const loop = requireArtifact('bench/passthrough');
  const refs = (n: number): number => {
    const r = spawnSync('valgrind', ['--tool=callgrind', '--callgrind-out-file=/dev/null', loop, 'bench-vm', request, String(n)], {
      env: loopEnv(which),
      encoding: 'utf8',
    });
    const m = /refs:\s+([\d,]+)/.exec(r.stderr);
    if (!m) throw new Error(`callgrind printed no instruction count: ${r.stderr.slice(-300)}`);
    return Number(m[1]!.replace(/,/g, ''));
  };
  // The loop makes n/10 warm-up calls plus n timed calls.
  return (refs(20000) - refs(10000)) / 11000;
}

function benchPassthrough(): PassthroughResult[] {
  const rounds = quick ? 5 : 21;
  const iterations = quick ? 200000 : 500000;
  const results: PassthroughResult[] = [];
  for (const request of ['run', 'getreg']) {
    say(`pass-through ${request}: ${rounds} interleaved rounds of ${iterations} calls, no interposer / libvmmcompat.so / tail-jump floor / call-and-test floor...`);
    const ns: Record<Interposer, number[]> = { none: [], product: [], tailJump: [], callTest: [] };
    for (let r = 0; r < rounds; r++) {
      // Interleaved, the order rotated every round: drift on a shared machine hits all alike.
      for (let k = 0; k < INTERPOSERS.length; k++) {
        const which = INTERPOSERS[(r + k) % INTERPOSERS.length]!;
        ns[which].push(passthroughOnce(request, which, iterations));
      }
    }
    // Each round's four ran back to back: the median of the per-round differences cancels the
    // drift of a shared machine better than the difference of two medians.
    const paired = (a: Interposer, b: Interposer): number => median(ns[a].map((x, i) => x - ns[b][i]!));
    const floor: Interposer = request === 'run' ? 'callTest' : 'tailJump';
    const instr = spawnSync('valgrind', ['--version']).status === 0
      ? (Object.fromEntries(INTERPOSERS.map((w) => [w, round(instructionsPerCall(request, w)!, 1)])) as Record<Interposer, number>)
      : null;
    const aboveFloor = paired('product', floor);
    const allowed = request === 'run' ? 10 : 5;
    const result: PassthroughResult = {
      request: request === 'run' ? 'VM_RUN (0xC0907601, an AP)' : 'VM_GET_REGISTER (0xC0107615)',
      rounds,
      iterationsPerRound: iterations,
      baselineNsPerCall: round(median(ns.none)),
      interposerNsPerCall: round(median(ns.product)),
      addedNsPerCall: round(paired('product', 'none')),
      ratio: round(median(ns.product.map((x, i) => x / ns.none[i]!)), 4),
      floor: floor === 'callTest' ? 'call-and-test' : 'tail-jump',
      floorAddedNsPerCall: round(paired(floor, 'none')),
      aboveFloorNsPerCall: round(aboveFloor),
      tailJumpAddedNsPerCall: round(paired('tailJump', 'none')),
      callTestAddedNsPerCall: round(paired('callTest', 'none')),
      instructionsPerCall: instr,
      addedInstructionsPerCall: instr ? round(instr.product - instr.none, 1) : null,
      floorAddedInstructionsPerCall: instr ? round(instr[floor] - instr.none, 1) : null,
      target: { aboveFloorNsAtMost: allowed, met: aboveFloor <= allowed },
    };
    say(
      `pass-through ${result.request}: ${result.baselineNsPerCall} -> ${result.interposerNsPerCall} ns/call ` +
        `(+${result.addedNsPerCall} ns, x${result.ratio}, +${result.addedInstructionsPerCall ?? '?'} instructions); ` +
        `${result.floor} floor +${result.floorAddedNsPerCall} ns (+${result.floorAddedInstructionsPerCall ?? '?'} instructions); ` +
        `product above its floor by ${result.aboveFloorNsPerCall} ns (target <= ${allowed}${result.target.met ? ', met' : ', NOT met'})`,
    );
    results.push(result);
  }
  return results;
}

// ---- 2. plan delay and handover latency (16 vCPUs) -------------------------------------------

async function benchBoots(): Promise<{ boots: number; vcpus: number; planDelayUs: { p50: number; p99: number; max: number }; handoverUs: { samples: number; p50: number; p99: number; max: number }; allApsStarted: boolean }> {
  const boots = quick ? 5 : 30;
  const vcpus = 16;
  const bench = await LabBench.start({ kernel: 'window' });
  let allApsStarted = true;
  try {
    await bench.startDaemon(['--log-level', 'info']);
    const guest = buildSmpBoot({ apWaitMs: 2000 });
    for (let i = 0; i < boots; i++) {
      const vm = `bench-boot-${i}`;
      const run = bench.spawnBhyve({ bhyve: '13.1', vcpus, vmName: vm, shim: true, direct: true, timeoutMs: 30000, guest });
      const r = await run.result;
      if (r.apsStarted.length !== vcpus - 1 || r.outcome !== 'poweroff') allApsStarted = false;
      bench.model.destroyVm(vm);
      if ((i + 1) % 10 === 0 || i + 1 === boots) say(`  boot ${i + 1}/${boots} done`);
    }
    await bench.stopDaemon();
    const ev = compatEventsOf(bench.daemonLog());
    const planned = ev.filter((e) => e.event === 'planned').map((e) => e.arg);
    const handovers = ev.filter((e) => e.event === 'handover').map((e) => e.arg);
    const result = {
      boots,
      vcpus,
      planDelayUs: { p50: percentile(planned, 50), p99: percentile(planned, 99), max: Math.max(...planned) },
      handoverUs: { samples: handovers.length, p50: percentile(handovers, 50), p99: percentile(handovers, 99), max: Math.max(...handovers) },
      allApsStarted,
    };
    say(`boots: ${boots} x ${vcpus} vCPUs, BSP held for the plan p50 ${result.planDelayUs.p50} us, p99 ${result.planDelayUs.p99} us; handover p50 ${result.handoverUs.p50} us, p99 ${result.handoverUs.p99} us (${handovers.length} samples)`);
    return result;
  } finally {
    await bench.close();
  }
}

// ---- 3. CPU of a parked AP after back-off ----------------------------------------------------

async function benchParked(): Promise<{ windowMs: number; bootWindowMs: number; idlePollMs: number; bhyveCorePercent: number; kernelModelCorePercent: number; parkedAps: number }> {
  const windowMs = quick ? 3000 : 10000;
  const bootWindowMs = 500;
  const bench = await LabBench.start({ kernel: 'window' });
  try {
    await bench.startDaemon(['--log-level', 'info']);
    // No AP is ever started and the BSP halts: AP 1 stays parked for good, and with an active
    // AP that never halts the VM never suspends (vmm.c vm_handle_hlt needs every active vCPU).
    const guest = buildSmpBoot({ apWaitMs: 10, startMask: 0, finalAction: 'halt' });
    const run = bench.spawnBhyve({
      bhyve: '13.1',
      vcpus: 2,
      vmName: 'bench-parked',
      shim: true,
      direct: true,
      timeoutMs: windowMs + 30000,
      guest,
      env: { VMM_COMPAT_PARKER_BOOT_WINDOW_MS: String(bootWindowMs) },
    });
    await bench.waitForDaemonLog(/"event":"parked"/);
    say(`parked AP: waiting out the boot window, then measuring for ${windowMs} ms...`);
    // The boot window, then the back-off from 1 ms to the idle poll (about 7 doublings).
    await new Promise((r) => setTimeout(r, bootWindowMs + 1500));
    const pid = run.child.pid!;
    const bhyveBefore = processCpuNs(pid);
    const modelBefore = process.cpuUsage();
    await new Promise((r) => setTimeout(r, windowMs));
    const bhyveNs = processCpuNs(pid) - bhyveBefore;
    const model = process.cpuUsage(modelBefore);
    bench.kill(run);
    await run.result;
    const result = {
      windowMs,
      bootWindowMs,
      idlePollMs: 100,
      parkedAps: 1,
      bhyveCorePercent: round((bhyveNs / 1e6 / windowMs) * 100, 3),
      kernelModelCorePercent: round(((model.user + model.system) / 1e3 / windowMs) * 100, 3),
    };
    say(`parked AP after back-off: bhyve process ${result.bhyveCorePercent}% of a core, kernel model ${result.kernelModelCorePercent}% (over ${windowMs} ms)`);
    return result;
  } finally {
    await bench.close();
  }
}

// ---- 4. boot storm ------------------------------------------------------------------------------

function peakRssKiB(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(fs.readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

async function benchStorm(): Promise<{ vms: number; vcpusPerVm: number; vmsWithAllAps: number; outcomes: Record<string, number>; bootMs: { p50: number; p90: number; max: number }; daemonPeakRssMiB: number }> {
  const vms = quick ? 8 : 32;
  const vcpus = 4;
  const bench = await LabBench.start({ kernel: 'window' });
  try {
    const daemon = await bench.startDaemon(['--log-level', 'info']);
    // The longest bounded wait: 32 guests share one single-threaded kernel model here.
    const guest = buildSmpBoot({ apWaitMs: 4000 });
    const runs = Array.from({ length: vms }, (_, i) =>
      bench.spawnBhyve({ bhyve: '13.1', vcpus, vmName: `storm-${i}`, shim: true, direct: true, timeoutMs: 120000, guest }),
    );
    let rss = 0;
    const sampler = setInterval(() => {
      rss = Math.max(rss, peakRssKiB(daemon.pid!));
    }, 100);
    let finished = 0;
    const results: BootResult[] = await Promise.all(
      runs.map((r) =>
        r.result.then((result) => {
          finished++;
          if (finished % 8 === 0) say(`  storm: ${finished}/${vms} VMs done`);
          return result;
        }),
      ),
    );
    clearInterval(sampler);
    rss = Math.max(rss, peakRssKiB(daemon.pid!));
    const outcomes: Record<string, number> = {};
    for (const r of results) outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
    const times = results.map((r) => r.elapsedMs);
    const result = {
      vms,
      vcpusPerVm: vcpus,
      vmsWithAllAps: results.filter((r) => r.apsStarted.length === vcpus - 1).length,
      outcomes,
      bootMs: { p50: percentile(times, 50), p90: percentile(times, 90), max: Math.max(...times) },
      daemonPeakRssMiB: round(rss / 1024, 1),
    };
    say(`storm: ${result.vmsWithAllAps}/${vms} VMs booted every AP, boot p50 ${result.bootMs.p50} ms, max ${result.bootMs.max} ms, daemon peak RSS ${result.daemonPeakRssMiB} MiB`);
    return result;
  } finally {
    await bench.close();
  }
}

// ---- 5. one daemon, 1,000 connected sessions -----------------------------------------------------

/** The targets of the scale section, checked against what this run measured. */
function scaleTargets(r: ScaleResult): Record<string, { target: string; measured: number | null; met: boolean }> {
  const storm100 = r.storms.find((s) => s.size === 100);
  const t = (target: string, measured: number | null, met: boolean) => ({ target, measured, met });
  return {
    daemonOwnShareOfOnePlanP99Ms: t('<= 1 ms p99 with every session connected', r.singlePlan.daemonOwnMs.p99, r.singlePlan.daemonOwnMs.p99 <= 1),
    storm100AllPlannedMs: t('<= 1000 ms, every storm', storm100?.allPlannedMs.max ?? null, storm100 !== undefined && storm100.allPlannedMs.max <= 1000),
    daemonPeakRssMiB: t('< 150 MiB', r.daemon.peakRssMiB, r.daemon.peakRssMiB < 150),
    fdsReleasedWhenSessionsEnd: t('back to the count before the sessions', r.daemon.fds.afterSessionsEnded, r.daemon.fds.afterSessionsEnded <= r.daemon.fds.beforeSessions),
    statusMaxMs: t('< 100 ms, every probe', r.status.ms.max, r.status.failures === 0 && r.status.ms.max < 100),
  };
}

async function benchScale(): Promise<ScaleResult & { targets: ReturnType<typeof scaleTargets> }> {
  const r = await runScale(
    quick
      ? { sessions: 200, singlePlans: 50, storms: [{ size: 10, count: 3 }, { size: 100, count: 1 }], jails: 3, idleMs: 500, driverProcesses: 4, progress: (l) => say(`  ${l}`) }
      : { sessions: 1000, singlePlans: 200, storms: [{ size: 10, count: 10 }, { size: 100, count: 5 }], jails: 3, idleMs: 2000, driverProcesses: 10, progress: (l) => say(`  ${l}`) },
  );
  const targets = scaleTargets(r);
  say(
    `scale: ${r.sessions} sessions; one plan: client p50 ${r.singlePlan.clientMs.p50} / p99 ${r.singlePlan.clientMs.p99} ms, ` +
      `kernel p99 ${r.singlePlan.kernelMs.p99} ms, daemon's own p99 ${r.singlePlan.daemonOwnMs.p99} ms; ` +
      r.storms.map((s) => `storm of ${s.size}: all planned within ${s.allPlannedMs.max} ms`).join(', ') +
      `; peak RSS ${r.daemon.peakRssMiB} MiB; fds ${r.daemon.fds.beforeSessions} -> ${r.daemon.fds.allConnected} -> ${r.daemon.fds.afterSessionsEnded}; ` +
      `status max ${r.status.ms.max} ms; /metrics max ${r.metrics.ms.max} ms`,
  );
  for (const [name, x] of Object.entries(targets)) if (!x.met) say(`  scale target NOT met: ${name} ${x.measured} (${x.target})`);
  return { ...r, targets };
}

async function main(): Promise<void> {
  const commit = (() => {
    try {
      return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8' }).trim();
    } catch {
      return 'unknown';
    }
  })();
  const report: Record<string, unknown> = {
    date: new Date().toISOString(),
    commit,
    quick,
    machine: { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? 'unknown', node: process.version, platform: `${os.platform()} ${os.release()}` },
  };
  if (enabled('passthrough')) report.passthrough = benchPassthrough();
  if (enabled('boot')) report.boot = await benchBoots();
  if (enabled('parked')) report.parkedAp = await benchParked();
  if (enabled('storm')) report.storm = await benchStorm();
  if (enabled('scale')) report.scale = await benchScale();
  if (enabled('vcpus')) report.manyVcpus = await benchManyVcpus(quick, say);
  if (enabled('probe')) report.probe = await benchProbe(quick, say);
  const dir = path.resolve(__dirname, '..', '..', 'bench', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${report.date as string}-${commit}.json`.replace(/:/g, '-'));
  const text = JSON.stringify(report, null, 2) + '\n';
  fs.writeFileSync(file, text);
  // latest.json: this run's sections replace theirs; `npm run faults` and `npm run soak` keep theirs.
  if (!quick && only === null) replaceLatestKeepingOthers(report);
  // The probe section is its own measurement (like the fault matrix and the soak): a run of it
  // alone still goes into latest.json, stamped with its date and commit.
  else if (!quick && report.probe !== undefined) {
    mergeSectionIntoLatest('probe', report.probe as Record<string, unknown>, { date: report.date as string, commit });
  }
  say(`report written to ${path.relative(process.cwd(), file)}`);
}

main().catch((err: unknown) => {
  process.stderr.write(`bench: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
