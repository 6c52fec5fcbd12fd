// runScale: one daemon serving many connected legacy-bhyve sessions (simulated interposers,
// driver.ts) on the lab's kernel model, with plans one at a time and in storms, while an
// observer (observer.ts) asks `status`, scrapes /metrics and samples the daemon's RSS, fds and
// CPU. `npm run bench -- --only scale` runs 1,000 sessions; test/lab/scale.test.ts a short one.
import { fork, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { LabBench } from '../run';
import { ARTIFACTS, requireArtifact } from '../../native-paths';
import type { DriverCommand, DriverReply, ObserverReport, PlanRoundTrip, ResourceSample, SessionSpec } from './messages';

export interface ScaleOptions {
  sessions: number;
  /** Plans sent one at a time, each among `sessions` idle connected sessions. */
  singlePlans: number;
  /** Storms: `count` times, `size` plans written back to back. */
  storms: { size: number; count: number }[];
  /** Sessions are spread over the host's directory and this many jail directories. */
  jails: number;
  /** Quiet time with every session connected, to measure the daemon's idle CPU. */
  idleMs: number;
  /**
   * Processes the simulated interposers are spread over. A real bhyve holds one VM and a few
   * dozen descriptors; the daemon's open-file check reads every descriptor of the peer, so one
   * process holding all the VMs would measure that process, not the daemon.
   */
  driverProcesses: number;
  progress?: (line: string) => void;
}

export interface Spread {
  p50: number;
  p99: number;
  max: number;
}

export interface StormResult {
  size: number;
  storms: number;
  /** PLAN_REQUEST written to PLAN read, per plan, in the simulated interposers. */
  clientMs: Spread;
  /** First request written to last PLAN read, per storm. */
  allPlannedMs: Spread;
  /** Per plan, inside the daemon: the plan's time minus its kernel ioctls. */
  daemonOwnMs: Spread;
  kernelMs: Spread;
}

export interface ScaleResult {
  kernelSide: string;
  sessions: number;
  vcpusPerSession: { min: number; max: number };
  socketDirectories: number;
  driverProcesses: number;
  connect: { seconds: number; helloMs: Spread };
  singlePlan: {
    plans: number;
    clientMs: Spread;
    kernelMs: Spread;
    /** clientMs minus the plan's kernel ioctls: the daemon, its socket and its event loop. */
    daemonShareMs: Spread;
    /** Inside the daemon only (plan start to reply written), minus the kernel ioctls. */
    daemonOwnMs: Spread;
  };
  storms: StormResult[];
  plansWithWrongMask: number;
  daemon: {
    peakRssMiB: number;
    fds: { beforeSessions: number; allConnected: number; afterSessionsEnded: number; releasedWithinMs: number | null };
    cpuSeconds: { connect: number; idle: number; plans: number };
    idleCorePercent: number;
  };
  status: { probes: number; failures: number; ms: Spread };
  metrics: {
    scrapes: number;
    failures: number;
    ms: Spread;
    planCountNeverDecreased: boolean;
    finalPlanCount: number;
    sessionsOpenAfterEnd: number;
    /** The daemon's event-loop delay as it reports it (prom-client, cumulative since start). */
    daemonEventLoopLagMs: { p99: number; max: number };
  };
}

export function spread(xs: number[]): Spread {
  if (xs.length === 0) return { p50: NaN, p99: NaN, max: NaN };
  const s = [...xs].sort((a, b) => a - b);
  const at = (p: number): number => s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
  const r = (x: number): number => Number(x.toFixed(3));
  return { p50: r(at(50)), p99: r(at(99)), max: r(s[s.length - 1]!) };
}

export async function freeLoopbackPort(): Promise<number> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** The driver process, with request/reply over its IPC channel. */
export class Driver {
  private pending: { want: DriverReply['op']; resolve: (r: DriverReply) => void; reject: (e: Error) => void } | null = null;
  private constructor(
    readonly child: ChildProcess,
    private readonly progress: (line: string) => void,
  ) {
    child.on('message', (r: DriverReply) => {
      if (r.op === 'progress') {
        this.progress(`  ${r.done} sessions connected`);
        return;
      }
      const p = this.pending;
      if (!p) return;
      this.pending = null;
      if (r.op === 'error') p.reject(new Error(`scale driver: ${r.message}`));
      else if (r.op !== p.want) p.reject(new Error(`scale driver answered ${r.op}, expected ${p.want}`));
      else p.resolve(r);
    });
    child.on('exit', (code, signal) => {
      const p = this.pending;
      this.pending = null;
      p?.reject(new Error(`scale driver exited (status ${code}, signal ${signal})`));
    });
  }

  static async start(env: NodeJS.ProcessEnv, progress: (line: string) => void): Promise<Driver> {
    const child = fork(path.join(__dirname, 'driver.js'), [], { env, stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    const driver = new Driver(child, progress);
    await driver.wait('ready');
    return driver;
  }

  private wait<T extends DriverReply['op']>(want: T): Promise<Extract<DriverReply, { op: T }>> {
    return new Promise((resolve, reject) => {
      this.pending = { want, resolve: resolve as (r: DriverReply) => void, reject };
    });
  }

  ask<T extends DriverReply['op']>(cmd: DriverCommand, want: T): Promise<Extract<DriverReply, { op: T }>> {
    const reply = this.wait(want);
    this.child.send(cmd);
    return reply;
  }
}

export class Observer {
  private constructor(private readonly worker: Worker) {}

  static async start(data: object): Promise<Observer> {
    const worker = new Worker(path.join(__dirname, 'observer.js'), { workerData: data });
    await new Promise<void>((resolve, reject) => {
      worker.once('message', () => resolve());
      worker.once('error', reject);
    });
    return new Observer(worker);
  }

  sample(): Promise<ResourceSample> {
    return new Promise((resolve) => {
      const on = (m: { op: string; sample?: ResourceSample }): void => {
        if (m.op !== 'sample') return;
        this.worker.off('message', on);
        resolve(m.sample!);
      };
      this.worker.on('message', on);
      this.worker.postMessage({ op: 'sample' });
    });
  }

  stop(): Promise<ObserverReport> {
    return new Promise((resolve) => {
      const on = (m: { op: string; report?: ObserverReport }): void => {
        if (m.op !== 'report') return;
        this.worker.off('message', on);
        void this.worker.terminate();
        resolve(m.report!);
      };
      this.worker.on('message', on);
      this.worker.postMessage({ op: 'stop' });
    });
  }
}

interface DaemonPlanLine {
  session: number;
  planMs: number;
  kernelMs: number;
}

function planLines(log: string): Map<number, DaemonPlanLine> {
  const out = new Map<number, DaemonPlanLine>();
  for (const line of log.split('\n')) {
    if (!line.includes('"msg":"plan"')) continue;
    const l = JSON.parse(line) as Partial<DaemonPlanLine>;
    if (typeof l.session === 'number' && typeof l.planMs === 'number' && typeof l.kernelMs === 'number') {
      out.set(l.session, { session: l.session, planMs: l.planMs, kernelMs: l.kernelMs });
    }
  }
  return out;
}

export async function runScale(opts: ScaleOptions): Promise<ScaleResult> {
  const progress = opts.progress ?? (() => {});
  const plansNeeded = opts.singlePlans + opts.storms.reduce((a, s) => a + s.size * s.count, 0);
  if (plansNeeded > opts.sessions) throw new Error(`${plansNeeded} plans need as many sessions; only ${opts.sessions}`);
  const bench = await LabBench.start({ kernel: 'window' });
  const drivers: Driver[] = [];
  let observer: Observer | null = null;
  try {
    const metricsPort = await freeLoopbackPort();
    const jailDirs = Array.from({ length: opts.jails }, (_, i) => ({ name: `jail${i + 1}`, dir: path.join(bench.root, 'jails', `jail${i + 1}`) }));
    // Each directory holds its share of the sessions (and their plans) whatever the host's
    // default limits (src/daemon/limits.ts): this measures capacity, not the limits.
    const perDirectory = 2 * Math.ceil((opts.sessions + 1) / (opts.jails + 1));
    fs.writeFileSync(
      bench.configPath,
      `metrics_listen = 127.0.0.1:${metricsPort}\nhost_max_sessions = ${perDirectory}\n` +
        jailDirs.map((j) => `[jail ${j.name}]\nsocket_dir = ${j.dir}\nmax_sessions = ${perDirectory}\n`).join(''),
    );
    const daemon = await bench.startDaemon([], { logLevel: 'info' });
    const dirs = [bench.socketDir, ...jailDirs.map((j) => j.dir)];
    await waitFor(() => dirs.every((d) => fs.existsSync(path.join(d, 'vmm-compatd.sock'))), 10000, 'every socket directory served');
    observer = await Observer.start({
      daemonPid: daemon.pid!,
      controlDir: bench.socketDir,
      metricsUrl: `http://127.0.0.1:${metricsPort}/metrics`,
      sampleMs: 100,
      statusEveryMs: 250,
      scrapeEveryMs: 500,
    });
    for (let i = 0; i < opts.driverProcesses; i++) {
      drivers.push(await Driver.start({ ...bench.env, VMMLAB_SCALE_BRIDGE: requireArtifact(ARTIFACTS.bridge) }, i === 0 ? progress : () => {}));
    }
    const driver = drivers[0]!;
    const ownerOf = (index: number): number => index % drivers.length;
    /** Sends one command per driver with the sessions it holds, at once; merges the replies. */
    const plan = async (indices: number[]): Promise<PlanRoundTrip[]> => {
      const parts = drivers.map((d, k) => ({ d, mine: indices.filter((i) => ownerOf(i) === k) })).filter((p) => p.mine.length > 0);
      const replies = await Promise.all(parts.map((p) => p.d.ask({ op: 'plan', indices: p.mine }, 'planned')));
      return replies.flatMap((r) => r.results);
    };

    const specs: SessionSpec[] = Array.from({ length: opts.sessions }, (_, i) => ({
      index: i,
      vm: `scale-${i}`,
      vcpus: 4 + (i % 13),
      socketDir: dirs[i % dirs.length]!,
    }));
    // One session comes and goes first: the daemon's lasting descriptors (the lab bridge's
    // connection to the kernel model opens at the first ioctl) are then in the baseline.
    const warmUp: SessionSpec = { index: opts.sessions, vm: 'scale-warm-up', vcpus: 2, socketDir: bench.socketDir };
    await driver.ask({ op: 'connect', sessions: [warmUp], concurrency: 1 }, 'connected');
    await driver.ask({ op: 'plan', indices: [warmUp.index] }, 'planned');
    await driver.ask({ op: 'close' }, 'closed');
    // The baseline once the daemon has let go of the warm-up session: its descriptor count the
    // same over three samples 50 ms apart (at most 3 s), not after a fixed wait.
    let before = await observer.sample();
    for (let steady = 0, deadline = Date.now() + 3000; steady < 3 && Date.now() < deadline; ) {
      await new Promise((r) => setTimeout(r, 50));
      const next = await observer.sample();
      steady = next.fds === before.fds ? steady + 1 : 0;
      before = next;
    }
    progress(`connecting ${opts.sessions} sessions (4 to 16 vCPUs) through ${dirs.length} socket directories...`);
    const connectStart = performance.now();
    const connectedParts = await Promise.all(
      drivers.map((d, k) => d.ask({ op: 'connect', sessions: specs.filter((s) => ownerOf(s.index) === k), concurrency: Math.max(1, Math.ceil(16 / drivers.length)) }, 'connected')),
    );
    const connected = { helloMs: connectedParts.flatMap((c) => c.helloMs) };
    const connectSeconds = (performance.now() - connectStart) / 1000;
    const afterConnect = await observer.sample();
    progress(`  connected in ${connectSeconds.toFixed(1)} s; idle for ${opts.idleMs} ms`);
    await new Promise((r) => setTimeout(r, opts.idleMs));
    const afterIdle = await observer.sample();

    let nextSession = 0;
    const take = (n: number): number[] => Array.from({ length: n }, () => nextSession++);
    const singles: PlanRoundTrip[] = [];
    progress(`${opts.singlePlans} plans one at a time among ${opts.sessions} connected sessions...`);
    for (let i = 0; i < opts.singlePlans; i++) {
      singles.push(...(await plan(take(1))));
      await new Promise((r) => setTimeout(r, 5));
    }
    const stormRuns: { size: number; runs: { results: PlanRoundTrip[]; allMs: number }[] }[] = [];
    for (const storm of opts.storms) {
      progress(`${storm.count} storms of ${storm.size} plans at once...`);
      const runs: { results: PlanRoundTrip[]; allMs: number }[] = [];
      for (let k = 0; k < storm.count; k++) {
        const results = await plan(take(storm.size));
        runs.push({ results, allMs: Math.max(...results.map((r) => r.ms)) });
        await new Promise((r) => setTimeout(r, 200));
      }
      stormRuns.push({ size: storm.size, runs });
    }
    const afterPlans = await observer.sample();

    progress('ending every session...');
    const endStart = performance.now();
    await Promise.all(drivers.map((d) => d.ask({ op: 'close' }, 'closed')));
    let afterEnd = await observer.sample();
    let releasedWithinMs: number | null = null;
    const deadline = performance.now() + 15000;
    while (performance.now() < deadline) {
      afterEnd = await observer.sample();
      if (afterEnd.fds <= before.fds) {
        releasedWithinMs = Math.round(performance.now() - endStart);
        break;
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    // One more scrape interval, so that the observer sees the ended sessions.
    await new Promise((r) => setTimeout(r, 600));
    const report = await observer.stop();
    observer = null;
    await bench.stopDaemon();

    const lines = planLines(bench.daemonLog());
    const kernelOf = (r: PlanRoundTrip): number => lines.get(r.session)?.kernelMs ?? NaN;
    const ownOf = (r: PlanRoundTrip): number => {
      const l = lines.get(r.session);
      return l ? l.planMs - l.kernelMs : NaN;
    };
    const allPlans = [...singles, ...stormRuns.flatMap((s) => s.runs.flatMap((r) => r.results))];
    const missing = allPlans.filter((r) => !lines.has(r.session)).length;
    if (missing > 0) throw new Error(`${missing} plans have no "plan" line in the daemon log`);
    const plansWithWrongMask = allPlans.filter((r) => BigInt(r.parkedMask) !== (1n << BigInt(specs[r.index]!.vcpus)) - 2n).length;
    const counts = report.scrapes.filter((s) => s.ok).map((s) => s.planCount);
    const peakHwm = Math.max(...report.samples.map((s) => s.hwmKiB).filter(Number.isFinite));
    const idleSeconds = afterIdle.cpuSeconds - afterConnect.cpuSeconds;
    const lastScrape = report.scrapes.filter((s) => s.ok).pop();
    return {
      kernelSide:
        'the lab kernel model (window variant): a separate Node process serving every ioctl over a Unix socket through the lab bridge; kernelMs is the time the daemon spent inside those calls',
      sessions: opts.sessions,
      vcpusPerSession: { min: Math.min(...specs.map((s) => s.vcpus)), max: Math.max(...specs.map((s) => s.vcpus)) },
      socketDirectories: dirs.length,
      driverProcesses: drivers.length,
      connect: { seconds: Number(connectSeconds.toFixed(2)), helloMs: spread(connected.helloMs) },
      singlePlan: {
        plans: singles.length,
        clientMs: spread(singles.map((r) => r.ms)),
        kernelMs: spread(singles.map(kernelOf)),
        daemonShareMs: spread(singles.map((r) => r.ms - kernelOf(r))),
        daemonOwnMs: spread(singles.map(ownOf)),
      },
      storms: stormRuns.map(({ size, runs }) => {
        const results = runs.flatMap((r) => r.results);
        return {
          size,
          storms: runs.length,
          clientMs: spread(results.map((r) => r.ms)),
          allPlannedMs: spread(runs.map((r) => r.allMs)),
          daemonOwnMs: spread(results.map(ownOf)),
          kernelMs: spread(results.map(kernelOf)),
        };
      }),
      plansWithWrongMask,
      daemon: {
        peakRssMiB: Number((peakHwm / 1024).toFixed(1)),
        fds: { beforeSessions: before.fds, allConnected: afterConnect.fds, afterSessionsEnded: afterEnd.fds, releasedWithinMs },
        cpuSeconds: {
          connect: Number((afterConnect.cpuSeconds - before.cpuSeconds).toFixed(3)),
          idle: Number(idleSeconds.toFixed(3)),
          plans: Number((afterPlans.cpuSeconds - afterIdle.cpuSeconds).toFixed(3)),
        },
        idleCorePercent: Number(((idleSeconds / ((afterIdle.at - afterConnect.at) / 1000)) * 100).toFixed(2)),
      },
      status: { probes: report.status.length, failures: report.status.filter((s) => !s.ok).length, ms: spread(report.status.filter((s) => s.ok).map((s) => s.ms)) },
      metrics: {
        scrapes: report.scrapes.length,
        failures: report.scrapes.filter((s) => !s.ok).length,
        ms: spread(report.scrapes.filter((s) => s.ok).map((s) => s.ms)),
        planCountNeverDecreased: counts.every((c, i) => i === 0 || c >= counts[i - 1]!),
        finalPlanCount: counts[counts.length - 1] ?? 0,
        sessionsOpenAfterEnd: lastScrape?.sessionsOpen ?? NaN,
        daemonEventLoopLagMs: {
          p99: Number(((lastScrape?.eventLoopLagP99Seconds ?? NaN) * 1000).toFixed(3)),
          max: Number(((lastScrape?.eventLoopLagMaxSeconds ?? NaN) * 1000).toFixed(3)),
        },
      },
    };
  } finally {
    if (observer) await observer.stop();
    for (const d of drivers) d.child.kill('SIGKILL');
    await bench.close();
  }
}
