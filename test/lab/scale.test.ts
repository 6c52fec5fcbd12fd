// The short version of `npm run bench -- --only scale`: one daemon, many connected simulated
// interposers over the real protocol and socket directories, plans one at a time and in storms,
// `status` and /metrics throughout. Checks what must hold at any scale; the timing targets are
// the benchmark's (docs/benchmarks.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runScale } from '../../src/lab/scale/run';

test('scale (short): 100 sessions, 4 to 16 vCPUs, 4 socket directories: every plan right, status and /metrics answer throughout, fds released', async () => {
  const r = await runScale({ sessions: 100, singlePlans: 20, storms: [{ size: 10, count: 2 }, { size: 50, count: 1 }], jails: 3, idleMs: 300, driverProcesses: 2 });
  const plans = 20 + 2 * 10 + 50;
  assert.equal(r.singlePlan.plans, 20);
  assert.deepEqual(r.vcpusPerSession, { min: 4, max: 16 });
  assert.equal(r.plansWithWrongMask, 0, 'every plan parks APs 1..n-1 (window)');
  assert.equal(r.status.failures, 0);
  assert.ok(r.status.probes > 0);
  assert.equal(r.metrics.failures, 0);
  assert.ok(r.metrics.scrapes > 0);
  assert.ok(r.metrics.planCountNeverDecreased, 'the plan histogram count never went down between scrapes');
  // The warm-up session's plan is counted too.
  assert.equal(r.metrics.finalPlanCount, plans + 1);
  assert.equal(r.metrics.sessionsOpenAfterEnd, 0);
  assert.ok(r.daemon.fds.allConnected >= r.daemon.fds.beforeSessions + 100, 'one descriptor per session while connected');
  assert.ok(r.daemon.fds.afterSessionsEnded <= r.daemon.fds.beforeSessions, `fds released: ${JSON.stringify(r.daemon.fds)}`);
  assert.ok(Number.isFinite(r.singlePlan.kernelMs.p50) && Number.isFinite(r.singlePlan.daemonOwnMs.p50));
});
