// The scale benchmark's observer, in a worker thread of its own (the kernel model keeps the main
// thread busy): samples the daemon's memory, descriptors and CPU from /proc, asks `status` on the
// control socket and scrapes /metrics throughout, timing every answer.
import fs from 'node:fs';
import http from 'node:http';
import net from 'node:net';
import path from 'node:path';
import { parentPort, workerData } from 'node:worker_threads';
import { CONTROL_SOCKET_NAME } from '../../daemon/control-server';
import type { ObserverOptions, ObserverReport, ResourceSample, ScrapeProbe, StatusProbe } from './messages';
import { openFdCount, processCpuNs } from '../measure';

const options = workerData as ObserverOptions;
const report: ObserverReport = { status: [], scrapes: [], samples: [] };
/** Milliseconds since the epoch, comparable across threads and processes. */
const now = (): number => performance.timeOrigin + performance.now();

/** CPU time of every thread of a process, in seconds. */
function processCpuSeconds(pid: number): number {
  return processCpuNs(pid) / 1e9;
}

function sample(): void {
  try {
    const status = fs.readFileSync(`/proc/${options.daemonPid}/status`, 'utf8');
    const kib = (field: string): number => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1] ?? NaN);
    const s: ResourceSample = {
      at: now(),
      rssKiB: kib('VmRSS'),
      hwmKiB: kib('VmHWM'),
      fds: openFdCount(options.daemonPid),
      cpuSeconds: processCpuSeconds(options.daemonPid),
    };
    report.samples.push(s);
  } catch {
    // the daemon is gone: the run reports that itself
  }
}

function probeStatus(): Promise<StatusProbe> {
  const at = now();
  return new Promise((resolve) => {
    const socket = net.connect(path.join(options.controlDir, CONTROL_SOCKET_NAME));
    const chunks: Buffer[] = [];
    const done = (ok: boolean, error?: string): void => {
      const ms = now() - at;
      let vms = 0;
      if (ok) {
        try {
          vms = (JSON.parse(Buffer.concat(chunks).toString('utf8')) as { vms: unknown[] }).vms.length;
        } catch (err) {
          ok = false;
          error = `not JSON: ${String(err)}`;
        }
      }
      resolve({ at, ms, ok, vms, ...(error ? { error } : {}) });
    };
    socket.setTimeout(10000, () => {
      socket.destroy();
      done(false, 'no answer within 10 s');
    });
    socket.on('connect', () => socket.write('{"op":"status"}\n'));
    socket.on('data', (c: Buffer) => chunks.push(c));
    socket.on('end', () => done(true));
    socket.on('error', (err) => done(false, err.message));
  });
}

function scrape(): Promise<ScrapeProbe> {
  const at = now();
  return new Promise((resolve) => {
    const req = http.get(options.metricsUrl, { agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => {
        const ms = now() - at;
        const sum = (name: string): number =>
          body
            .split('\n')
            .filter((l) => l.startsWith(`${name}{`) || l.startsWith(`${name} `))
            .reduce((a, l) => a + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
        resolve({
          at,
          ms,
          ok: res.statusCode === 200,
          planCount: sum('vmm_compat_plan_latency_seconds_count'),
          sessionsOpen: sum('vmm_compat_sessions_open'),
          refusedSessions: sum('vmm_compat_refused_sessions_total'),
          eventLoopLagP99Seconds: sum('nodejs_eventloop_lag_p99_seconds'),
          eventLoopLagMaxSeconds: sum('nodejs_eventloop_lag_max_seconds'),
        });
      });
    });
    req.setTimeout(10000, () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', (err) => resolve({ at, ms: now() - at, ok: false, planCount: 0, sessionsOpen: 0, refusedSessions: 0, eventLoopLagP99Seconds: NaN, eventLoopLagMaxSeconds: NaN, error: err.message }));
  });
}

/** Runs `probe` every `everyMs`, one at a time (a slow answer delays the next, never piles up). */
function every(everyMs: number, probe: () => Promise<void> | void): { stop(): Promise<void> } {
  let stopped = false;
  const loop = (async () => {
    while (!stopped) {
      const started = now();
      await probe();
      await new Promise((r) => setTimeout(r, Math.max(0, everyMs - (now() - started))));
    }
  })();
  return {
    stop: async () => {
      stopped = true;
      await loop;
    },
  };
}

const loops = [
  every(options.sampleMs, sample),
  every(options.statusEveryMs, async () => void report.status.push(await probeStatus())),
  every(options.scrapeEveryMs, async () => void report.scrapes.push(await scrape())),
];

parentPort!.on('message', (msg: { op: string }) => {
  if (msg.op === 'sample') {
    sample();
    parentPort!.postMessage({ op: 'sample', sample: report.samples[report.samples.length - 1] });
  } else if (msg.op === 'stop') {
    void Promise.all(loops.map((l) => l.stop())).then(() => {
      sample();
      parentPort!.postMessage({ op: 'report', report });
    });
  }
});
parentPort!.postMessage({ op: 'ready' });
