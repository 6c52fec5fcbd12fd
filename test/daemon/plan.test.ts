import { test } from 'node:test';
import assert from 'node:assert/strict';
import { planForVm, maskOf } from '../../src/daemon/plan';
import { identifyKernel } from '../../src/daemon/kernel-variant';

test('window kernel: every AP is parked and SPINUP_AP is corrected by one (vlapic.c 7c326ab5: CPU_FFS)', () => {
  const plan = planForVm('window', 4, []);
  assert.deepEqual(plan.apsToPark, [1, 2, 3]);
  assert.equal(plan.spinupBias, 1);
  assert.equal(maskOf(plan.apsToPark), 0b1110n);
});

test('legacy13, fixed14 and main15 pass through (no eager activation)', () => {
  for (const variant of ['legacy13', 'fixed14', 'main15'] as const) {
    const plan = planForVm(variant, 8, []);
    assert.deepEqual(plan.apsToPark, [], variant);
    assert.match(plan.reason, /no eager activation/);
  }
});

test('a bhyve that activated its own APs (14.0 bhyverun.c fbsdrun_addcpu) is left alone', () => {
  const plan = planForVm('window', 4, [1, 2, 3]);
  assert.deepEqual(plan.apsToPark, []);
  assert.match(plan.reason, /new-protocol bhyve/);
});

test('vCPU counts outside 1..16 (13.1 VM_MAXCPU) are refused', () => {
  assert.throws(() => planForVm('window', 0, []), RangeError);
  assert.throws(() => planForVm('window', 17, []), /outside 1\.\.16/);
  assert.deepEqual(planForVm('window', 1, []).apsToPark, []);
});

test('identifyKernel: reliable ranges are named, the 14-CURRENT window is refused', () => {
  assert.equal(identifyKernel(1301000).variant, 'legacy13');
  assert.equal(identifyKernel(1302000).variant, 'fixed13');
  assert.equal(identifyKernel(1305000).variant, 'fixed13', '13.5-RELEASE');
  assert.equal(identifyKernel(1399999).variant, 'fixed13');
  assert.equal(identifyKernel(1500068).variant, 'main15', '15.0-RELEASE');
  assert.equal(identifyKernel(1600000).variant, 'main15', '16-CURRENT');
  assert.match(identifyKernel(1600000).why, /main \(16-CURRENT/);
  assert.equal(identifyKernel(1400097).variant, 'fixed14');
  assert.equal(identifyKernel(1500010).variant, 'main15');
  const ambiguous = identifyKernel(1400080);
  assert.equal(ambiguous.variant, null);
  assert.match(ambiguous.why, /set kernel_variant/);
  assert.equal(identifyKernel(1203000).variant, null);
});
