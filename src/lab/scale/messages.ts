// What the scale benchmark's parts say to each other (IPC with the driver, postMessage with the
// observer).
import type { FloodSpec, FloodStats } from '../hostile/flood';

export interface SessionSpec {
  index: number;
  vm: string;
  vcpus: number;
  /** The socket directory this session connects through (the host's or a jail's). */
  socketDir: string;
}

export type DriverCommand =
  | { op: 'connect'; sessions: SessionSpec[]; concurrency: number }
  | { op: 'plan'; indices: number[] }
  | { op: 'close' }
  /** The hostile benchmark: start a flood (src/lab/hostile/flood.ts), and stop it. */
  | { op: 'flood'; spec: FloodSpec }
  | { op: 'flood-stop' };

export interface PlanRoundTrip {
  index: number;
  session: number;
  /** PLAN_REQUEST written to PLAN read, in the simulated interposer. */
  ms: number;
  parkedMask: string;
}

export type DriverReply =
  | { op: 'ready'; pid: number }
  | { op: 'progress'; done: number }
  | { op: 'connected'; helloMs: number[]; sessions: number[] }
  | { op: 'planned'; results: PlanRoundTrip[] }
  | { op: 'closed' }
  | { op: 'flooding' }
  | { op: 'flood-stopped'; stats: FloodStats }
  | { op: 'error'; message: string };

export interface ObserverOptions {
  daemonPid: number;
  controlDir: string;
  metricsUrl: string;
  sampleMs: number;
  statusEveryMs: number;
  scrapeEveryMs: number;
}

export interface StatusProbe {
  at: number;
  ms: number;
  ok: boolean;
  vms: number;
  error?: string;
}

export interface ScrapeProbe {
  at: number;
  ms: number;
  ok: boolean;
  /** Sum over labels of vmm_compat_plan_latency_seconds_count. */
  planCount: number;
  sessionsOpen: number;
  /** Sum over labels of vmm_compat_refused_sessions_total. */
  refusedSessions: number;
  /** The daemon's own event-loop delay (prom-client's nodejs_eventloop_lag_p99/max_seconds). */
  eventLoopLagP99Seconds: number;
  eventLoopLagMaxSeconds: number;
  error?: string;
}

export interface ResourceSample {
  at: number;
  rssKiB: number;
  hwmKiB: number;
  fds: number;
  /** utime + stime, seconds. */
  cpuSeconds: number;
}

export type ObserverReport = { status: StatusProbe[]; scrapes: ScrapeProbe[]; samples: ResourceSample[] };
