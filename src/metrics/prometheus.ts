// The daemon's Prometheus metrics (metrics_listen), served by prom-client: cumulative counters
// and histograms that never go down while the daemon runs (a drop reads as a counter reset),
// prom-client's default process metrics, and labels whose values are bounded by the
// configuration (jail, kernel variant), never by the VMs (docs/configuration.md).
import http from 'node:http';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { Counters, VmRegistry } from '../daemon/registry';
import { VERSION, COMPAT_PROTOCOL_VERSION } from '../version';

/** Plan latency buckets in seconds: the daemon is on the boot path once per VM boot. */
export const PLAN_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

/** Names and meaning of the counters; the names are the ones dashboards already use. */
export const COUNTER_METRICS: readonly { key: keyof Counters; name: string; help: string }[] = [
  { key: 'sessions', name: 'vmm_compat_sessions_total', help: 'Interposer sessions accepted, by socket directory (jail).' },
  { key: 'vmsShimmed', name: 'vmm_compat_vms_shimmed_total', help: 'VM boots whose APs were pre-activated and parked.' },
  { key: 'apsActivated', name: 'vmm_compat_aps_activated_total', help: 'APs activated eagerly by the daemon.' },
  { key: 'handovers', name: 'vmm_compat_handovers_total', help: 'Parked APs handed over to bhyve.' },
  { key: 'fallbacks', name: 'vmm_compat_fallbacks_total', help: 'Boots planned by the interposer alone (daemon unreachable).' },
  { key: 'refusals', name: 'vmm_compat_refusals_total', help: 'Requests refused (not the holder, other jail, bad name).' },
  { key: 'protocolErrors', name: 'vmm_compat_protocol_errors_total', help: 'Connections closed for protocol errors.' },
];

/** What one plan cost: all of it, and the part spent inside the kernel's ioctls. */
export interface PlanTiming {
  jail: string;
  kernelVariant: string;
  action: 'park' | 'pass-through';
  totalSeconds: number;
  kernelSeconds: number;
}

/**
 * Every metric of one daemon, in its own prom-client registry. The compat server counts through
 * it as the work happens; gauges that describe the registry are computed at scrape time.
 */
export class DaemonMetrics {
  readonly register = new Registry();
  private readonly counters = new Map<keyof Counters, Counter<'jail'>>();
  private readonly planSeconds: Histogram<'jail' | 'kernel_variant' | 'action'>;
  private readonly planKernelSeconds: Histogram<'jail' | 'kernel_variant' | 'action'>;
  private readonly info: Gauge<'version' | 'protocol_version' | 'kernel_variant'>;
  private readonly kernelInfo: Gauge<'variant' | 'by'>;

  /** Open interposer connections per jail (the compat server's), read at scrape time. */
  openSessions: () => ReadonlyMap<string, number> = () => new Map();

  constructor(private readonly registry: VmRegistry) {
    collectDefaultMetrics({ register: this.register });
    for (const c of COUNTER_METRICS) {
      this.counters.set(c.key, new Counter({ name: c.name, help: c.help, labelNames: ['jail'], registers: [this.register] }));
    }
    const self = this;
    new Gauge({
      name: 'vmm_compat_vms_connected',
      help: 'VMs with a live interposer session.',
      labelNames: ['jail'],
      registers: [this.register],
      collect() {
        this.reset();
        for (const [jail, n] of self.registry.connectedByJail()) this.labels(jail).set(n);
      },
    });
    new Gauge({
      name: 'vmm_compat_sessions_open',
      help: 'Interposer connections open now (one per legacy bhyve process), by socket directory (jail).',
      labelNames: ['jail'],
      registers: [this.register],
      collect() {
        this.reset();
        for (const [jail, n] of self.openSessions()) this.labels(jail).set(n);
      },
    });
    this.planSeconds = new Histogram({
      name: 'vmm_compat_plan_latency_seconds',
      help: 'Time the daemon took to answer a plan (eager activation included).',
      labelNames: ['jail', 'kernel_variant', 'action'],
      buckets: PLAN_BUCKETS,
      registers: [this.register],
    });
    this.planKernelSeconds = new Histogram({
      name: 'vmm_compat_plan_kernel_seconds',
      help: "Part of each plan spent inside the kernel's ioctls (open, VM_GET_CPUS, VM_ACTIVATE_CPU, VM_SUSPEND_CPU, close).",
      labelNames: ['jail', 'kernel_variant', 'action'],
      buckets: PLAN_BUCKETS,
      registers: [this.register],
    });
    this.info = new Gauge({
      name: 'vmm_compat_info',
      help: 'Always 1: the daemon version, compat protocol version and the kernel variant in use.',
      labelNames: ['version', 'protocol_version', 'kernel_variant'],
      registers: [this.register],
    });
    this.kernelInfo = new Gauge({
      name: 'vmm_compat_kernel_info',
      help: 'Always 1: the kernel variant in use and how it was identified (experiment, osreldate or config).',
      labelNames: ['variant', 'by'],
      registers: [this.register],
    });
  }

  /** The kernel variant in use and how it was identified (start-up, and a SIGHUP that changes it). */
  setKernelVariant(variant: string, by: string): void {
    this.info.reset();
    this.info.labels(VERSION, String(COMPAT_PROTOCOL_VERSION), variant).set(1);
    this.kernelInfo.reset();
    this.kernelInfo.labels(variant, by).set(1);
  }

  /** A jail's counters start at 0 as soon as its directory is served (absent and 0 differ in PromQL). */
  addJail(jail: string): void {
    for (const counter of this.counters.values()) counter.labels(jail).inc(0);
  }

  count(key: keyof Counters, jail: string, n = 1): void {
    this.counters.get(key)!.labels(jail).inc(n);
  }

  observePlan(t: PlanTiming): void {
    const labels = { jail: t.jail, kernel_variant: t.kernelVariant, action: t.action };
    this.planSeconds.observe(labels, t.totalSeconds);
    this.planKernelSeconds.observe(labels, t.kernelSeconds);
  }

  /** The exposition text (Prometheus text format 0.0.4). */
  render(): Promise<string> {
    return this.register.metrics();
  }

  get contentType(): string {
    return this.register.contentType;
  }
}

export async function startMetricsServer(host: string, port: number, metrics: DaemonMetrics): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '/').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics\n');
      return;
    }
    metrics.render().then(
      (text) => res.writeHead(200, { 'content-type': metrics.contentType }).end(text),
      (err: unknown) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`cannot collect metrics: ${String(err)}\n`),
    );
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
