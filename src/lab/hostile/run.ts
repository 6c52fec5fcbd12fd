// runHostile: one daemon serving two jails. A victim jail boots a real lab VM (13.1 bhyve,
// 4 vCPUs, `window` kernel, through the shim) again and again, first with the daemon quiet, then
// while another jail floods the daemon with simulated interposers (src/lab/hostile/flood.ts):
// connections beyond its limit that never speak, plan storms, garbage frames, slow readers,
// rapid connect/disconnect and event spam. The victim's plan time (how long its BSP's first
// VM_RUN was held for the plan, as the interposer measured it) is compared between the two
// phases of the same run, while an observer asks `status`, scrapes /metrics and samples the
// daemon's memory and descriptors throughout. `npm run bench -- --only hostile` runs it;
// test/lab/hostile.test.ts a short one.
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import readline from 'node:readline';
import { LabBench, type BootResult } from '../run';
import { buildSmpBoot } from '../guests/smp-boot';
import { ARTIFACTS, requireArtifact } from '../../native-paths';
import { Driver, Observer, freeLoopbackPort, spread, type Spread } from '../scale/run';
import type { FloodSpec, FloodStats } from './flood';
import type { ResourceSample, ScrapeProbe } from '../scale/messages';
import { percentile, processCpuNs } from '../measure';

export const VICTIM_VCPUS = 4;
const WARM_UP_BOOTS = 3;

export interface HostileOptions {
  /** Victim boots in each phase (quiet, then flooded). */
  victimBoots: number;
  /** Pause between two victim boots, so that the flooded phase spans the flood, not its first second. */
  bootIntervalMs?: number;
  /** What each flood driver process does (socket directory and VM names are filled in). */
  flood: Omit<FloodSpec, 'socketDir' | 'vmPrefix'>;
  floodDrivers: number;
  /** How long the flood runs before the first flooded victim boot. */
  floodWarmUpMs: number;
  /** Extra configuration lines: global keys, and keys of the victim's and the flood's [jail]. */
  config?: { global?: string[]; victim?: string[]; flood?: string[] };
  progress?: (line: string) => void;
}

export interface VictimPhase {
  boots: number;
  /** The BSP's first VM_RUN held for the plan (the interposer's `planned` event), per boot. */
  planMs: Spread;
  /** Of that, the plan inside the daemon, and the part of it in the kernel's ioctls. */
  daemonPlanMs: Spread;
  kernelMs: Spread;
  /** And the wait inside the daemon before the plan: read to started (its jail's turn). */
  waitedInDaemonMs: Spread;
  bootMs: Spread;
  /** Boots in which every AP ran guest code and the guest powered off. */
  bootsWithEveryAp: number;
  outcomes: Record<string, number>;
}

export interface HostileResult {
  kernelSide: string;
  victim: { bhyve: '13.1'; kernel: 'window'; vcpus: number };
  quiet: VictimPhase;
  flooded: VictimPhase;
  quietPlanP99Ms: number;
  victimPlanP99Ms: number;
  victimBootedEveryAp: boolean;
  /** vmm_compat_refused_sessions_total at the end of the run, summed, and by jail and reason. */
  refusedSessions: number;
  refusedByReason: Record<string, number>;
  daemonPeakRssMiB: number;
  /** The daemon's largest RSS sample in each phase (VmRSS, every 100 ms), in MiB. */
  daemonRssMiB: { quiet: number; flooded: number; afterFlood: number };
  daemonFds: { beforeFlood: number; peak: number; afterFlood: number };
  status: {
    probes: number;
    failures: number;
    ms: Spread;
    firstFailure?: string;
    /** The five slowest answers, with when they were asked (ms since the run started). */
    slowest: { atMs: number; ms: number }[];
  };
  /**
   * The daemon's own event-loop delay as it reports it (prom-client's nodejs_eventloop_lag_max_seconds,
   * the worst since the previous scrape, one scrape a second): the worst in each phase, in ms.
   */
  daemonEventLoopLagMaxMs: { quiet: number; flooded: number };
  /** When the phases began (ms since the run started): the status times above are on this clock. */
  timeline: { quietMs: number; floodMs: number; floodedBootsMs: number; floodStopMs: number };
  flood: {
    drivers: number;
    spec: HostileOptions['flood'];
    stats: Omit<FloodStats, 'stormMs'>;
    stormAnsweredMs: Spread;
    seconds: number;
    /** The flood's own CPU (its driver processes), in % of one core over the flood. */
    driverCorePercent: number;
    /** The daemon's CPU over the flood, in % of one core. */
    daemonCorePercent: number;
  };
  daemonLogMiB: number;
}

interface VictimPlanTimes {
  /** The interposer's `planned` event: the BSP's first VM_RUN held for the plan, in ms. */
  heldMs: number;
  /** The daemon's `plan` line: the plan inside the daemon, and the part in the kernel's ioctls. */
  daemonMs?: number;
  kernelMs?: number;
  /** The daemon's `waitedMs`: from reading the request to starting the plan (its turn). */
  waitedMs?: number;
}

/** The victim's plan times per VM, read line by line (the log may be large). */
async function victimPlanTimes(logFile: string, vmPrefix: string): Promise<Map<string, VictimPlanTimes>> {
  const out = new Map<string, VictimPlanTimes>();
  const daemonSide = new Map<string, { daemonMs: number; kernelMs: number; waitedMs?: number }>();
  const lines = readline.createInterface({ input: fs.createReadStream(logFile), crlfDelay: Infinity });
  for await (const line of lines) {
    if (!line.includes(`"vm":"${vmPrefix}`)) continue;
    if (line.includes('"event":"planned"')) {
      const l = JSON.parse(line) as { vm: string; arg: number };
      out.set(l.vm, { heldMs: l.arg / 1000 });
    } else if (line.includes('"msg":"plan"')) {
      const l = JSON.parse(line) as { vm: string; planMs?: number; kernelMs?: number; waitedMs?: number };
      if (typeof l.planMs === 'number' && typeof l.kernelMs === 'number') daemonSide.set(l.vm, { daemonMs: l.planMs, kernelMs: l.kernelMs, ...(typeof l.waitedMs === 'number' ? { waitedMs: l.waitedMs } : {}) });
    }
  }
  for (const [vm, times] of out) Object.assign(times, daemonSide.get(vm) ?? {});
  return out;
}

function scrapeRefused(url: string): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent: false }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (c: string) => (body += c));
        res.on('end', () => {
          const out: Record<string, number> = {};
          for (const line of body.split('\n')) {
            const m = /^vmm_compat_refused_sessions_total\{(.*)\} (\d+)/.exec(line);
            if (m) out[m[1]!.replace(/"/g, '')] = Number(m[2]);
          }
          resolve(out);
        });
      })
      .on('error', reject);
  });
}

function mergeStats(all: FloodStats[]): FloodStats {
  const [first, ...rest] = all;
  const out: FloodStats = JSON.parse(JSON.stringify(first)) as FloodStats;
  for (const s of rest) {
    for (const [k, v] of Object.entries(s) as [keyof FloodStats, FloodStats[keyof FloodStats]][]) {
      if (typeof v === 'number') {
        if (k === 'silentOpenMax') out[k] += v;
        else (out[k] as number) += v;
      } else if (Array.isArray(v)) (out[k] as number[]).push(...v);
      else for (const [code, n] of Object.entries(v)) out.errorReplies[code] = (out.errorReplies[code] ?? 0) + n;
    }
  }
  return out;
}

/** The worst event-loop delay the daemon reported in scrapes taken between `from` and `to` (epoch ms). */
function worstLag(scrapes: ScrapeProbe[], from: number, to: number): number {
  const lags = scrapes.filter((s) => s.ok && s.at >= from && s.at <= to).map((s) => s.eventLoopLagMaxSeconds * 1000);
  return lags.length > 0 ? Number(Math.max(...lags).toFixed(1)) : NaN;
}

/** The largest RSS the daemon had in samples taken between `from` and `to` (epoch ms), in MiB. */
function peakRss(samples: ResourceSample[], from: number, to: number): number {
  const rss = samples.filter((s) => s.at >= from && s.at <= to && Number.isFinite(s.rssKiB)).map((s) => s.rssKiB);
  return rss.length > 0 ? Number((Math.max(...rss) / 1024).toFixed(1)) : NaN;
}

export async function runHostile(opts: HostileOptions): Promise<HostileResult> {
  const progress = opts.progress ?? (() => {});
  const bench = await LabBench.start({ kernel: 'window' });
  const t0 = performance.timeOrigin + performance.now();
  const now = (): number => Math.round(performance.timeOrigin + performance.now() - t0);
  const timeline = { quietMs: 0, floodMs: 0, floodedBootsMs: 0, floodStopMs: 0 };
  const drivers: Driver[] = [];
  let observer: Observer | null = null;
  try {
    const metricsPort = await freeLoopbackPort();
    const victimDir = path.join(bench.root, 'jails', 'victim');
    const floodDir = path.join(bench.root, 'jails', 'flood');
    const config = [
      `metrics_listen = 127.0.0.1:${metricsPort}`,
      ...(opts.config?.global ?? []),
      '[jail victim]',
      `socket_dir = ${victimDir}`,
      ...(opts.config?.victim ?? []),
      '[jail flood]',
      `socket_dir = ${floodDir}`,
      ...(opts.config?.flood ?? []),
    ];
    fs.writeFileSync(bench.configPath, config.join('\n') + '\n');
    const daemon = await bench.startDaemon([], { logLevel: 'info' });
    const metricsUrl = `http://127.0.0.1:${metricsPort}/metrics`;
    observer = await Observer.start({
      daemonPid: daemon.pid!,
      controlDir: bench.socketDir,
      metricsUrl,
      sampleMs: 100,
      statusEveryMs: 100,
      scrapeEveryMs: 500,
    });
    const guest = buildSmpBoot({ apWaitMs: 3000 });
    const boot = async (vm: string): Promise<BootResult> => {
      const run = bench.spawnBhyve({ bhyve: '13.1', vcpus: VICTIM_VCPUS, vmName: vm, shim: true, direct: true, socketDir: victimDir, timeoutMs: 60000, guest });
      const r = await run.result;
      bench.model.destroyVm(vm);
      return r;
    };
    const phase = async (name: string): Promise<{ vms: string[]; results: BootResult[] }> => {
      const vms: string[] = [];
      const results: BootResult[] = [];
      for (let i = 0; i < opts.victimBoots; i++) {
        const vm = `victim-${name}-${i}`;
        vms.push(vm);
        results.push(await boot(vm));
        await new Promise((r) => setTimeout(r, opts.bootIntervalMs ?? 0));
        if ((i + 1) % 10 === 0 || i + 1 === opts.victimBoots) progress(`  ${name}: ${i + 1}/${opts.victimBoots} victim boots`);
      }
      return { vms, results };
    };

    // Warm-up boots, not counted: the daemon's plan path is compiled by the first few.
    for (let i = 0; i < WARM_UP_BOOTS; i++) await boot(`warm-up-${i}`);
    progress(`victim, quiet: ${opts.victimBoots} boots of a ${VICTIM_VCPUS}-vCPU VM (13.1 bhyve, window, through the shim)...`);
    timeline.quietMs = now();
    const quiet = await phase('quiet');
    const beforeFlood = await observer.sample();

    progress(`flood: ${opts.floodDrivers} driver process(es) in jail "flood"; warming up for ${opts.floodWarmUpMs} ms...`);
    for (let i = 0; i < opts.floodDrivers; i++) {
      drivers.push(await Driver.start({ ...bench.env, VMMLAB_SCALE_BRIDGE: requireArtifact(ARTIFACTS.bridge) }, () => {}));
    }
    const floodStart = performance.now();
    timeline.floodMs = now();
    const driversCpuBefore = drivers.reduce((a, d) => a + processCpuNs(d.child.pid!), 0);
    const daemonCpuBefore = processCpuNs(daemon.pid!);
    await Promise.all(drivers.map((d, i) => d.ask({ op: 'flood', spec: { ...opts.flood, socketDir: floodDir, vmPrefix: `flood${i}` } }, 'flooding')));
    await new Promise((r) => setTimeout(r, opts.floodWarmUpMs));
    progress(`victim, flooded: ${opts.victimBoots} boots...`);
    timeline.floodedBootsMs = now();
    const flooded = await phase('flooded');
    timeline.floodStopMs = now();
    const floodSeconds = (performance.now() - floodStart) / 1000;
    const driverCorePercent = ((drivers.reduce((a, d) => a + processCpuNs(d.child.pid!), 0) - driversCpuBefore) / 1e9 / floodSeconds) * 100;
    const daemonCorePercent = ((processCpuNs(daemon.pid!) - daemonCpuBefore) / 1e9 / floodSeconds) * 100;
    const stats = mergeStats((await Promise.all(drivers.map((d) => d.ask({ op: 'flood-stop' }, 'flood-stopped')))).map((r) => r.stats));
    for (const d of drivers.splice(0)) d.child.kill('SIGKILL');
    // The daemon lets go of the flood's sessions; give it a moment, then sample.
    await new Promise((r) => setTimeout(r, 1500));
    const afterFlood = await observer.sample();
    const refusedByReason = await scrapeRefused(metricsUrl);
    const report = await observer.stop();
    observer = null;
    await bench.stopDaemon();

    const logFile = path.join(bench.root, 'daemon.log');
    const planned = await victimPlanTimes(logFile, 'victim-');
    const summarize = (p: { vms: string[]; results: BootResult[] }): VictimPhase => {
      const outcomes: Record<string, number> = {};
      for (const r of p.results) outcomes[r.outcome] = (outcomes[r.outcome] ?? 0) + 1;
      const times = p.vms.map((vm) => planned.get(vm)).filter((x): x is VictimPlanTimes => x !== undefined);
      return {
        boots: p.results.length,
        planMs: spread(times.map((t) => t.heldMs)),
        daemonPlanMs: spread(times.map((t) => t.daemonMs ?? NaN).filter(Number.isFinite)),
        kernelMs: spread(times.map((t) => t.kernelMs ?? NaN).filter(Number.isFinite)),
        waitedInDaemonMs: spread(times.map((t) => t.waitedMs ?? NaN).filter(Number.isFinite)),
        bootMs: spread(p.results.map((r) => r.elapsedMs)),
        bootsWithEveryAp: p.results.filter((r) => r.apsStarted.length === VICTIM_VCPUS - 1 && r.outcome === 'poweroff').length,
        outcomes,
      };
    };
    const quietPhase = summarize(quiet);
    const floodedPhase = summarize(flooded);
    const ok = report.status.filter((s) => s.ok);
    const failed = report.status.filter((s) => !s.ok);
    const peakHwm = Math.max(...report.samples.map((s) => s.hwmKiB).filter(Number.isFinite));
    // A boot without a `planned` event (the plan never came) counts as infinitely slow.
    const p99 = (vms: string[]): number => Number(percentile(vms.map((vm) => planned.get(vm)?.heldMs ?? Infinity), 99).toFixed(3));
    return {
      kernelSide: 'the lab kernel model (window variant), one Node process serving the victim, the flood and the daemon',
      victim: { bhyve: '13.1', kernel: 'window', vcpus: VICTIM_VCPUS },
      quiet: quietPhase,
      flooded: floodedPhase,
      quietPlanP99Ms: p99(quiet.vms),
      victimPlanP99Ms: p99(flooded.vms),
      victimBootedEveryAp: quietPhase.bootsWithEveryAp === quietPhase.boots && floodedPhase.bootsWithEveryAp === floodedPhase.boots,
      refusedSessions: Object.values(refusedByReason).reduce((a, b) => a + b, 0),
      refusedByReason,
      daemonPeakRssMiB: Number((peakHwm / 1024).toFixed(1)),
      daemonRssMiB: {
        quiet: peakRss(report.samples, t0 + timeline.quietMs, t0 + timeline.floodMs),
        flooded: peakRss(report.samples, t0 + timeline.floodMs, t0 + timeline.floodStopMs),
        afterFlood: peakRss(report.samples, t0 + timeline.floodStopMs, Infinity),
      },
      daemonFds: { beforeFlood: beforeFlood.fds, peak: Math.max(...report.samples.map((s) => s.fds).filter(Number.isFinite)), afterFlood: afterFlood.fds },
      status: {
        probes: report.status.length,
        failures: failed.length,
        ms: spread(ok.map((s) => s.ms)),
        ...(failed[0]?.error ? { firstFailure: failed[0].error } : {}),
        slowest: [...ok]
          .sort((a, b) => b.ms - a.ms)
          .slice(0, 5)
          .map((p) => ({ atMs: Math.round(p.at - t0), ms: Number(p.ms.toFixed(1)) })),
      },
      timeline,
      daemonEventLoopLagMaxMs: {
        quiet: worstLag(report.scrapes, t0 + timeline.quietMs, t0 + timeline.floodMs),
        flooded: worstLag(report.scrapes, t0 + timeline.floodMs, t0 + timeline.floodStopMs + 1000),
      },
      flood: {
        drivers: opts.floodDrivers,
        spec: opts.flood,
        stats: (({ stormMs: _omit, ...rest }) => rest)(stats),
        stormAnsweredMs: spread(stats.stormMs),
        seconds: Number(floodSeconds.toFixed(1)),
        driverCorePercent: Number(driverCorePercent.toFixed(1)),
        daemonCorePercent: Number(daemonCorePercent.toFixed(1)),
      },
      daemonLogMiB: Number((fs.statSync(logFile).size / 1048576).toFixed(1)),
    };
  } finally {
    if (observer) await observer.stop();
    for (const d of drivers) d.child.kill('SIGKILL');
    await bench.close();
  }
}
