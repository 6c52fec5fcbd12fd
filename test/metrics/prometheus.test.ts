import { test } from 'node:test';
import assert from 'node:assert/strict';
import { DaemonMetrics, COUNTER_METRICS } from '../../src/metrics/prometheus';
import { VmRegistry } from '../../src/daemon/registry';

/** The value of one sample line, `name{labels} value`, with the labels in any order. */
function sample(text: string, name: string, labels: Record<string, string>): number | undefined {
  for (const line of text.split('\n')) {
    const m = /^([a-z_:]+)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = new Map((m[2] ?? '').split(',').filter(Boolean).map((kv) => kv.split('=') as [string, string]).map(([k, v]) => [k, JSON.parse(v) as string]));
    if (Object.entries(labels).every(([k, v]) => have.get(k) === v) && have.size === Object.keys(labels).length) return Number(m[3]);
  }
  return undefined;
}

test('the plan latency histogram is cumulative: past 10,000 plans its count and buckets keep growing', async () => {
  const metrics = new DaemonMetrics(new VmRegistry());
  const labels = { jail: 'host', kernel_variant: 'window', action: 'park' };
  const counts: number[] = [];
  const fastBuckets: number[] = [];
  for (let round = 0; round < 3; round++) {
    // 6,000 fast plans per round: the old exposition kept only the last 10,000 samples.
    for (let i = 0; i < 6000; i++) metrics.observePlan({ jail: 'host', kernelVariant: 'window', action: 'park', totalSeconds: 0.0004, kernelSeconds: 0.0003 });
    const text = await metrics.render();
    counts.push(sample(text, 'vmm_compat_plan_latency_seconds_count', labels)!);
    fastBuckets.push(sample(text, 'vmm_compat_plan_latency_seconds_bucket', { ...labels, le: '0.0005' })!);
  }
  assert.deepEqual(counts, [6000, 12000, 18000]);
  assert.deepEqual(fastBuckets, [6000, 12000, 18000]);
  const text = await metrics.render();
  assert.equal(sample(text, 'vmm_compat_plan_kernel_seconds_count', labels), 18000);
  assert.ok(Math.abs(sample(text, 'vmm_compat_plan_latency_seconds_sum', labels)! - 7.2) < 1e-6);
});

test('every counter keeps its name, is labelled by jail, and starts at 0 for a served jail', async () => {
  const metrics = new DaemonMetrics(new VmRegistry());
  metrics.addJail('host');
  metrics.addJail('web');
  metrics.count('refusals', 'web');
  metrics.count('apsActivated', 'host', 15);
  const text = await metrics.render();
  for (const c of COUNTER_METRICS) {
    assert.match(text, new RegExp(`^# TYPE ${c.name} counter$`, 'm'));
    assert.notEqual(sample(text, c.name, { jail: 'host' }), undefined, `${c.name}{jail="host"}`);
  }
  assert.equal(sample(text, 'vmm_compat_refusals_total', { jail: 'web' }), 1);
  assert.equal(sample(text, 'vmm_compat_refusals_total', { jail: 'host' }), 0);
  assert.equal(sample(text, 'vmm_compat_aps_activated_total', { jail: 'host' }), 15);
});

test('gauges are read at scrape time; the info metrics name the kernel variant in use and how it was identified', async () => {
  const registry = new VmRegistry();
  const metrics = new DaemonMetrics(registry);
  metrics.setKernelVariant('window', 'experiment');
  const a = registry.vm('a', 'host');
  a.connected = true;
  registry.vm('b', 'web').connected = true;
  registry.vm('c', 'web').connected = false;
  metrics.openSessions = () => new Map([['host', 1], ['web', 1]]);
  let text = await metrics.render();
  assert.equal(sample(text, 'vmm_compat_vms_connected', { jail: 'host' }), 1);
  assert.equal(sample(text, 'vmm_compat_vms_connected', { jail: 'web' }), 1);
  assert.equal(sample(text, 'vmm_compat_sessions_open', { jail: 'web' }), 1);
  a.connected = false;
  assert.equal(sample(text, 'vmm_compat_kernel_info', { variant: 'window', by: 'experiment' }), 1);
  metrics.setKernelVariant('fixed14', 'config');
  text = await metrics.render();
  assert.equal(sample(text, 'vmm_compat_vms_connected', { jail: 'host' }), undefined);
  assert.match(text, /^vmm_compat_info\{[^}]*kernel_variant="fixed14"[^}]*\} 1$/m);
  assert.doesNotMatch(text, /kernel_variant="window"/);
  assert.equal(sample(text, 'vmm_compat_kernel_info', { variant: 'fixed14', by: 'config' }), 1);
  assert.doesNotMatch(text, /^vmm_compat_kernel_info\{[^}]*variant="window"/m, 'the earlier identification is gone');
});

test("prom-client's default process metrics are served: RSS, heap, event-loop lag, open fds", async () => {
  const text = await new DaemonMetrics(new VmRegistry()).render();
  for (const name of ['process_resident_memory_bytes', 'nodejs_heap_size_used_bytes', 'nodejs_eventloop_lag_seconds', 'process_cpu_seconds_total']) {
    assert.match(text, new RegExp(`^${name} `, 'm'), name);
  }
  // process_open_fds reads /proc/self/fd: Linux only in prom-client.
  if (process.platform === 'linux') assert.match(text, /^process_open_fds \d+$/m);
});
