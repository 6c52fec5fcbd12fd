// Optional Prometheus metrics on a loopback listener (metrics_listen): counters of the compat
// work and a histogram of plan latency. Text exposition format 0.0.4, no dependency.
import http from 'node:http';
import type { VmRegistry } from '../daemon/registry';

/** Plan latency buckets in seconds: the daemon is on the boot path once per VM boot. */
export const PLAN_BUCKETS = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1];

const COUNTERS: readonly { key: keyof VmRegistry['counters']; name: string; help: string }[] = [
  { key: 'sessions', name: 'vmm_compat_sessions_total', help: 'Interposer sessions accepted.' },
  { key: 'vmsShimmed', name: 'vmm_compat_vms_shimmed_total', help: 'VM boots whose APs were pre-activated and parked.' },
  { key: 'apsActivated', name: 'vmm_compat_aps_activated_total', help: 'APs activated eagerly by the daemon.' },
  { key: 'handovers', name: 'vmm_compat_handovers_total', help: 'Parked APs handed over to bhyve.' },
  { key: 'fallbacks', name: 'vmm_compat_fallbacks_total', help: 'Boots planned by the interposer alone (daemon unreachable).' },
  { key: 'refusals', name: 'vmm_compat_refusals_total', help: 'Requests refused (not the holder, other jail, bad name).' },
  { key: 'protocolErrors', name: 'vmm_compat_protocol_errors_total', help: 'Connections closed for protocol errors.' },
];

export function renderMetrics(registry: VmRegistry): string {
  const lines: string[] = [];
  for (const c of COUNTERS) {
    lines.push(`# HELP ${c.name} ${c.help}`, `# TYPE ${c.name} counter`, `${c.name} ${registry.counters[c.key]}`);
  }
  const connected = registry.all().filter((vm) => vm.connected).length;
  lines.push('# HELP vmm_compat_vms_connected VMs with a live interposer session.', '# TYPE vmm_compat_vms_connected gauge', `vmm_compat_vms_connected ${connected}`);
  const samples = registry.planLatenciesMs.map((ms) => ms / 1000);
  lines.push('# HELP vmm_compat_plan_latency_seconds Time the daemon took to answer a plan (eager activation included).', '# TYPE vmm_compat_plan_latency_seconds histogram');
  for (const le of PLAN_BUCKETS) {
    lines.push(`vmm_compat_plan_latency_seconds_bucket{le="${le}"} ${samples.filter((s) => s <= le).length}`);
  }
  lines.push(`vmm_compat_plan_latency_seconds_bucket{le="+Inf"} ${samples.length}`);
  lines.push(`vmm_compat_plan_latency_seconds_sum ${samples.reduce((a, b) => a + b, 0)}`);
  lines.push(`vmm_compat_plan_latency_seconds_count ${samples.length}`);
  return lines.join('\n') + '\n';
}

export async function startMetricsServer(host: string, port: number, registry: VmRegistry): Promise<http.Server> {
  const server = http.createServer((req, res) => {
    if (req.method !== 'GET' || (req.url ?? '/').split('?')[0] !== '/metrics') {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('only GET /metrics\n');
      return;
    }
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4' }).end(renderMetrics(registry));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => resolve());
  });
  return server;
}
