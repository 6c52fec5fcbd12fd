// The fix, through the real interposer, the real daemon and `vmm-compat wrap` (docs/design.md,
// "The compat sequence on a window kernel", steps 1-10).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runLab, compatEventsOf, type LabKernelName, type LabBhyve, type LabOptions } from '../../src/lab/run';
import { buildSmpBoot } from '../../src/lab/guests/smp-boot';
import { buildApStartsAp } from '../../src/lab/guests/ap-starts-ap';

const guest = buildSmpBoot({ apWaitMs: 1000 });

function shim(kernel: LabKernelName, bhyve: LabBhyve, vcpus: number, extra: Partial<LabOptions> = {}) {
  return runLab({ kernel, bhyve, vcpus, shim: true, timeoutMs: 30000, guest, collectDaemonLog: true, ...extra });
}

function events(daemonLog: string | undefined): string[] {
  return compatEventsOf(daemonLog).map((e) => e.event);
}

for (const vcpus of [2, 4, 8, 16]) {
  test(`window + 13.1 bhyve + shim: all ${vcpus - 1} APs start and power-off exits 1 (bhyverun.c vmexit_suspend)`, async () => {
    const r = await shim('window', '13.1', vcpus);
    assert.deepEqual(r.apsStarted, r.apsExpected, r.bhyveStderr);
    assert.equal(r.outcome, 'poweroff');
    assert.equal(r.bhyveExit.status, 1);
    assert.equal(r.guestOutput, `online=${vcpus}\n`);
    const ev = events(r.daemonLog);
    assert.equal(ev.filter((e) => e === 'parked').length, vcpus - 1);
    assert.equal(ev.filter((e) => e === 'handover').length, vcpus - 1);
    assert.equal(ev.filter((e) => e === 'activate-hidden').length, vcpus - 1, 'VM_ACTIVATE_CPU answered 0 (vmm.c vm_activate_cpu EBUSY hidden)');
  });
}

test('window + shim: reset exits 0, and a restart on the same VM (VM_REINIT) boots every AP again', async () => {
  const r = await shim('window', '13.1', 4, {
    boots: [{ guest: buildSmpBoot({ apWaitMs: 1000, finalAction: 'reset' }) }, { guest }],
  });
  const [first, second] = r.boots ?? [];
  assert.ok(first && second);
  assert.equal(first.outcome, 'reset');
  assert.equal(first.bhyveExit.status, 0);
  assert.equal(first.guestOutput, 'online=4\n');
  assert.equal(second.outcome, 'poweroff');
  assert.equal(second.guestOutput, 'online=4\n', second.bhyveStderr);
  assert.match(r.daemonLog ?? '', /"boot":0/);
  assert.equal(events(r.daemonLog).filter((e) => e === 'handover').length, 6, 'three handovers per boot');
});

test('window + shim: halt exits 2 (vm_handle_hlt suspends with HALT once every active vCPU halted)', async () => {
  const r = await shim('window', '13.1', 4, { guest: buildSmpBoot({ apWaitMs: 1000, finalAction: 'halt' }) });
  assert.equal(r.outcome, 'halt');
  assert.equal(r.bhyveExit.status, 2);
  assert.deepEqual(r.apsStarted, [1, 2, 3]);
});

test('window + shim: triple fault exits 3', async () => {
  const r = await shim('window', '13.1', 4, { guest: buildSmpBoot({ apWaitMs: 1000, finalAction: 'triplefault' }) });
  assert.equal(r.outcome, 'triplefault');
  assert.equal(r.bhyveExit.status, 3);
});

test('window + shim: a guest that starts only AP 2 powers off cleanly with APs 1 and 3 still parked', async () => {
  const r = await shim('window', '13.1', 4, { guest: buildSmpBoot({ apWaitMs: 300, startMask: 0b0100 }) });
  assert.deepEqual(r.apsStarted, [2]);
  assert.equal(r.outcome, 'poweroff');
  assert.equal(r.bhyveExit.status, 1);
  const ev = events(r.daemonLog);
  assert.equal(ev.filter((e) => e === 'handover').length, 1);
  assert.ok(ev.includes('suspend'));
});

test('window + shim: INIT+SIPI of a running AP again is swallowed; bhyve does not crash (no second thread)', async () => {
  const r = await shim('window', '13.1', 4, { guest: buildSmpBoot({ apWaitMs: 300, restartAp: 2 }) });
  assert.equal(r.outcome, 'poweroff', r.bhyveStderr);
  assert.equal(r.bhyveExit.status, 1);
  assert.equal(r.guestOutput, 'online=4\nrestart=0\n');
  assert.ok(events(r.daemonLog).includes('spinup-duplicate'));
});

test('fixed14 + 13.1 bhyve + shim: VM_GET_CPUS translated to the 128-byte cpuset, all APs start, no eager activation', async () => {
  const r = await shim('fixed14', '13.1', 4);
  assert.deepEqual(r.apsStarted, [1, 2, 3], r.bhyveStderr);
  assert.equal(r.outcome, 'poweroff');
  const ev = events(r.daemonLog);
  assert.ok(ev.includes('cpus-translated'));
  assert.ok(!ev.includes('parked'));
  assert.match(r.daemonLog ?? '', /no eager activation/);
});

test('fixed14 without COMPAT_FREEBSD13 + shim: VM_RUN goes through the 14.0 form, capsicum list widened by exactly it', async () => {
  const r = await shim('fixed14', '13.1', 4, { compatFreebsd13: false });
  assert.deepEqual(r.apsStarted, [1, 2, 3], r.bhyveStderr);
  assert.equal(r.outcome, 'poweroff');
  assert.match(r.bhyveStderr, /added 0x80207601 to bhyve's capsicum ioctl list: the 14\.0 VM_RUN; the kernel has no COMPAT_FREEBSD13/);
  assert.doesNotMatch(r.bhyveStderr, /0x8038760e|0xc038760f/, 'nothing else is added on a 14.x kernel');
  assert.ok(events(r.daemonLog).includes('vmrun-translated'));
});

test('legacy13 + shim is left alone: pass-through, and the record says why', async () => {
  const r = await shim('legacy13', '13.1', 4);
  assert.deepEqual(r.apsStarted, [1, 2, 3]);
  const ev = events(r.daemonLog);
  assert.ok(!ev.includes('parked') && !ev.includes('handover'));
  assert.match(r.daemonLog ?? '', /no eager activation: 13\.0\/13\.1 kernel/);
});

test('new-protocol bhyve + shim is left alone: the window kernel\'s own 14-CURRENT bhyve passes through untouched', async () => {
  const r = await shim('window', '14-current', 4);
  assert.deepEqual(r.apsStarted, [1, 2, 3], r.bhyveStderr);
  assert.equal(r.outcome, 'poweroff');
  assert.ok(!events(r.daemonLog).includes('parked'));
  assert.ok(events(r.daemonLog).includes('bhyve-native'), 'its ABI tag (1400076) is as new as the kernel');
});

test('new-protocol bhyve without an ABI tag + shim is left alone too: it enabled VM_CAP_IPI_EXIT', async () => {
  const r = await shim('window', '14-current', 4, { untagged: true });
  assert.deepEqual(r.apsStarted, [1, 2, 3], r.bhyveStderr);
  assert.equal(r.outcome, 'poweroff');
  assert.ok(!events(r.daemonLog).includes('parked'));
  assert.match(r.daemonLog ?? '', /new-protocol bhyve/);
});

test('sanitized: the ASan+UBSan interposer and bridge boot a window VM cleanly', async () => {
  const r = await shim('window', '13.1', 4, { sanitized: true });
  assert.deepEqual(r.apsStarted, [1, 2, 3], r.bhyveStderr);
  assert.equal(r.outcome, 'poweroff');
  assert.doesNotMatch(r.bhyveStderr, /AddressSanitizer|runtime error/);
});

for (const kernel of ['window', 'fixed14'] as const) {
  test(`${kernel} + shim: a SPINUP_AP raised on AP 1 is delivered on the BSP (13.1 bhyverun.c asserts fromcpu == BSP)`, async () => {
    const r = await shim(kernel, '13.1', 3, { guest: buildApStartsAp() });
    assert.equal(r.outcome, 'poweroff', r.bhyveStderr);
    assert.deepEqual(r.apsStarted, [1, 2]);
    assert.equal(r.guestOutput, 'online=3\n');
    assert.ok(events(r.daemonLog).includes('spinup-rerouted'));
  });
}
