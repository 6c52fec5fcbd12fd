// The short version of `npm run bench -- --only hostile`: a victim jail boots a real lab VM while
// another jail floods the daemon. Checks what must hold at any load (every victim AP starts and
// every plan is answered, the flood is refused over its limits, status answers throughout, the
// flood's descriptors are let go); the timing targets are the benchmark's (docs/benchmarks.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runHostile } from '../../src/lab/hostile/run';

test('hostile (short): a victim boots every AP while a flood is refused over its limits; status answers throughout', async () => {
  const r = await runHostile({
    victimBoots: 3,
    floodDrivers: 1,
    floodWarmUpMs: 500,
    flood: { vcpus: 4, silentConnections: 100, planSessions: 8, plansPerStorm: 100, garbageLoops: 1, slowReaders: 2, churnLoops: 1, eventSessions: 1, paceMs: 2 },
  });
  assert.ok(r.victimBootedEveryAp, JSON.stringify({ quiet: r.quiet, flooded: r.flooded }));
  assert.equal(r.quiet.planMs.p50 > 0 && r.flooded.planMs.p50 > 0, true, 'every victim boot was planned by the daemon');
  assert.ok(Number.isFinite(r.victimPlanP99Ms), 'no victim boot fell back');
  assert.ok(r.refusedSessions > 0, 'the flood was refused over its limits');
  assert.ok((r.refusedByReason['jail=flood,reason=max-sessions'] ?? 0) + (r.refusedByReason['jail=flood,reason=before-hello'] ?? 0) > 0);
  assert.equal(
    Object.entries(r.refusedByReason).filter(([k, n]) => k.startsWith('jail=victim') && n > 0).length,
    0,
    'the victim was never refused',
  );
  assert.ok((r.flood.stats.errorReplies['35'] ?? 0) > 0, 'refused connections got ERROR 35 (EAGAIN)');
  assert.equal(r.status.failures, 0, r.status.firstFailure);
  assert.ok(r.status.probes > 10);
  assert.ok(r.flood.stats.plansAnswered > 0);
});
