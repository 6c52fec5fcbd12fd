import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LEGACY_MAX_VCPUS, formatVcpuList, planForVm, maskOf } from '../../src/daemon/plan';
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

test('plans cover 1..256 vCPUs (13.x userland CPU_SETSIZE: a 13.2+ bhyve takes VM_GET_TOPOLOGY maxcpus), nothing beyond', () => {
  assert.equal(LEGACY_MAX_VCPUS, 256);
  assert.throws(() => planForVm('window', 0, []), RangeError);
  assert.throws(() => planForVm('window', 257, []), /outside 1\.\.256 \(13\.x userland's CPU_SETSIZE\)/);
  assert.deepEqual(planForVm('window', 1, []).apsToPark, []);
  const full = planForVm('window', 256, []);
  assert.equal(full.apsToPark.length, 255);
  assert.equal(full.apsToPark[254], 255);
  assert.equal(maskOf(full.apsToPark), (1n << 256n) - 2n);
  assert.match(full.reason, /park APs 1\.\.255/);
  assert.deepEqual(planForVm('window', 20, []).apsToPark, Array.from({ length: 19 }, (_, i) => i + 1), 'no 16 cap any more');
});

test('formatVcpuList writes ranges: readable at 256 vCPUs', () => {
  assert.equal(formatVcpuList([]), '');
  assert.equal(formatVcpuList([3, 1, 2, 5, 7, 8, 9]), '1-3,5,7-9');
  assert.equal(formatVcpuList(Array.from({ length: 255 }, (_, i) => i + 1)), '1-255');
  assert.equal(formatVcpuList([2, 4, 6]), '2,4,6');
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
