// Every bhyve generation on every newer kernel (src/daemon/bhyve-generation.ts, shim/generation.c):
// the interposer learns the bhyve's release from its ELF ABI tag (every lab model carries its
// release's, as crtbrand.S gives a FreeBSD program; VMM_COMPAT_BHYVE_VERSION names it for a binary
// without one) or from its first VM_RUN, and does only what that generation needs on the kernel: a
// 14.x bhyve on 15.0 gets the segment ids translated both ways and the destroy ended with 4, never
// eager activation; one as new as its kernel is left untouched; one newer than its kernel is
// refused, by the interposer and, without the shim, by the lab itself.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compatEventsOf, LabBench, LabPairingError, runLab, type LabKernelName, type LabOptions } from '../../src/lab/run';
import { buildSmpBoot } from '../../src/lab/guests/smp-boot';
import { Assembler } from '../../src/lab/guests/asm';
import { queryControl, type StatusReport } from '../../src/daemon/control-server';
import type { VmRecord } from '../../src/daemon/registry';
import { waitUntilGuestRan } from '../helpers/guest-ran';

const guest = buildSmpBoot({ apWaitMs: 1000 });
/** What the interposer reads for an untagged binary: here a 15.0 bhyve, which the lab has no model of. */
const NAMED_15_0 = { VMM_COMPAT_BHYVE_VERSION: '1500068' };

function lab(kernel: LabKernelName, extra: Partial<LabOptions> = {}) {
  return runLab({ kernel, bhyve: '14.3', vcpus: 4, shim: true, timeoutMs: 30000, guest, collectDaemonLog: true, bootrom: true, ...extra });
}

const events = (log: string | undefined, name: string) => compatEventsOf(log).filter((e) => e.event === name);

test('14.3 bhyve on main15 through the shim: the bootrom mapped with its segment id translated, every AP started by bhyve itself, no eager activation', async () => {
  const r = await lab('main15');
  assert.deepEqual(r.apsStarted, [1, 2, 3], r.bhyveStderr);
  assert.equal(r.outcome, 'poweroff');
  assert.deepEqual(events(r.daemonLog, 'bhyve-generation').map((e) => e.arg), [1403000]);
  // VM_MMAP_MEMSEG (IOCNUM 16) of the bootrom went out with 15.0's id.
  assert.ok(events(r.daemonLog, 'memseg-translated').some((e) => e.arg === 16));
  assert.equal(events(r.daemonLog, 'parked').length, 0);
  assert.equal(events(r.daemonLog, 'bhyve-native').length, 0);
  assert.equal(events(r.daemonLog, 'planned').length, 0, 'a 14.x bhyve never asks for a plan');
});

test('14.3 bhyve on main15 without COMPAT_FREEBSD13 and COMPAT_FREEBSD14: the 56-byte memory-segment requests, its own 32-byte VM_RUN untouched', async () => {
  const r = await lab('main15', { compatFreebsd13: false, compatFreebsd14: false, vcpus: 8, osreldate: 1600000 });
  assert.deepEqual(r.apsStarted, [1, 2, 3, 4, 5, 6, 7], r.bhyveStderr);
  assert.equal(r.outcome, 'poweroff');
  assert.ok(events(r.daemonLog, 'memseg-translated').some((e) => e.arg === 14), 'VM_ALLOC_MEMSEG reissued in the 56-byte form');
  assert.equal(events(r.daemonLog, 'vmrun-translated').length, 0);
});

test('14.3 bhyve on main15: alone a ROM boot exits 4 with bootrom.c\'s warning; through the shim with the framebuffer, through a loader, without COMPAT_FREEBSD13, and a reset guest, every AP starts', async () => {
  const alone = await lab('main15', { shim: false });
  assert.equal(alone.outcome, 'bhyve-error');
  assert.equal(alone.bhyveExit.status, 4);
  assert.match(alone.bhyveStderr, /^bhyve: bootrom_alloc: vm_mmap_mapseg: Invalid argument\ndevice emulation initialization error: Invalid argument$/m);
  for (const [what, extra] of [
    ['framebuffer', { fbuf: true }],
    ['loader', { bootrom: false }],
    ['no COMPAT_FREEBSD13', { compatFreebsd13: false }],
  ] as const) {
    const r = await lab('main15', extra);
    assert.equal(r.outcome, 'poweroff', `${what}: ${r.bhyveStderr}`);
    assert.deepEqual(r.apsStarted, [1, 2, 3], what);
  }
  const reset = await lab('main15', { guest: buildSmpBoot({ apWaitMs: 1000, finalAction: 'reset' }) });
  assert.equal(reset.outcome, 'reset', reset.bhyveStderr);
  assert.deepEqual(reset.apsStarted, [1, 2, 3]);
});

test('a bhyve without an ABI tag shows its generation by its first VM_RUN: 32 bytes is 14.0 or later, 144 bytes 13.x', async () => {
  const r14 = await lab('main15', { untagged: true });
  assert.equal(r14.outcome, 'poweroff', r14.bhyveStderr);
  assert.deepEqual(events(r14.daemonLog, 'bhyve-generation').map((e) => e.arg), [1400000]);
  const r13 = await lab('main15', { bhyve: '13.1', untagged: true });
  assert.equal(r13.outcome, 'poweroff', r13.bhyveStderr);
  assert.deepEqual(events(r13.daemonLog, 'bhyve-generation').map((e) => e.arg), [1300000]);
});

test('restart over the existing VM (bhyverun.c do_open: EEXIST -> VM_REINIT): 14.3 on main15 boots three times', async () => {
  const r = await lab('main15', { boots: [{ guest }, { guest }, { guest }] });
  assert.equal(r.boots?.length, 3);
  for (const b of r.boots ?? []) {
    assert.equal(b.outcome, 'poweroff', b.bhyveStderr);
    assert.deepEqual(b.apsStarted, [1, 2, 3]);
  }
  // vm_reinit keeps only the system-memory mappings (vmm.c vm_cleanup), so each boot maps its
  // ROM again with the id translated; VM_MMAP_GETNEXT's way back is test/native/memseg.test.ts's
  // and, where bhyve meets a device-memory mapping at its address at all, existing-mapping.test.ts's.
  assert.equal(events(r.daemonLog, 'bhyve-generation').length, 3, 'one session per boot');
  assert.ok(events(r.daemonLog, 'memseg-translated').some((e) => e.arg === 16));
});

test('a bhyve as new as its kernel passes through untouched: 14.3 on fixed14, 15.0 on main15', async () => {
  for (const kernel of ['fixed14', 'main15'] as const) {
    const version = kernel === 'fixed14' ? 1403000 : 1500068;
    const r = await lab(kernel, kernel === 'fixed14' ? {} : { bhyveEnv: NAMED_15_0, bhyve: '13.1', untagged: true, bootrom: false });
    // On main15 the untagged 13.1 model named 15.0 by VMM_COMPAT_BHYVE_VERSION stands in for 15.0's
    // bhyve (the lab has no 15.0 model): untouched, it boots through the loader as it does
    // without the interposer.
    assert.deepEqual(r.apsStarted, [1, 2, 3], r.bhyveStderr);
    assert.equal(r.outcome, 'poweroff');
    assert.deepEqual(events(r.daemonLog, 'bhyve-native').map((e) => e.arg), [version]);
    for (const kind of ['memseg-translated', 'vmrun-translated', 'cpus-translated', 'parked', 'planned', 'new-protocol']) {
      assert.equal(events(r.daemonLog, kind).length, 0, `${kernel}: no ${kind}`);
    }
  }
});

for (const kernel of ['legacy13', 'fixed13', 'window'] as const) {
  test(`a bhyve newer than its kernel is refused before the VM is touched: 14.3 on ${kernel}`, async () => {
    const r = await lab(kernel, { bootrom: false });
    assert.equal(r.outcome, 'bhyve-error');
    assert.equal(r.bhyveExit.status, 4);
    assert.match(r.bhyveStderr, /refusing VM .*__FreeBSD_version 1403000, newer than the \w+ kernel/);
    assert.deepEqual(events(r.daemonLog, 'bhyve-refused').map((e) => e.arg), [1403000]);
  });
}

test('without the shim the lab refuses those pairings itself, in the interposer\'s words; 14-current runs only on window', async () => {
  for (const [bhyve, kernel] of [['14.0', 'window'], ['14.3', 'window'], ['14.3', 'fixed13'], ['14.0', 'legacy13']] as const) {
    await assert.rejects(lab(kernel, { bhyve, shim: false }), (err: Error) => {
      assert.ok(err instanceof LabPairingError);
      assert.match(err.message, new RegExp(`bhyve ${bhyve.replace('.', '\\.')} is newer than the ${kernel} kernel: FreeBSD does not support a bhyve newer than its kernel`));
      return true;
    });
  }
  await assert.rejects(lab('fixed14', { bhyve: '14-current' }), /the lab runs it only with --kernel window/);
});

test('window: the 14-CURRENT bhyve of its own time is native; 15.0 on fixed14 is refused', async () => {
  const own = await lab('window', { bhyve: '14-current', bootrom: false });
  assert.deepEqual(own.apsStarted, [1, 2, 3], own.bhyveStderr);
  assert.deepEqual(events(own.daemonLog, 'bhyve-native').map((e) => e.arg), [1400076]);
  const newer = await lab('fixed14', { bhyve: '13.1', untagged: true, bhyveEnv: NAMED_15_0, bootrom: false });
  assert.equal(newer.bhyveExit.status, 4);
  assert.deepEqual(events(newer.daemonLog, 'bhyve-refused').map((e) => e.arg), [1500068]);
});

test('15.0 destroy under a running 14.3 bhyve: exit 4 through the shim, and status shows the VM\'s bhyve', async () => {
  const bench = await LabBench.start({ kernel: 'main15' });
  try {
    await bench.startDaemon();
    const spin = new Assembler().label('spin').pause().jmp('spin').bytes();
    const run = bench.spawnBhyve({ bhyve: '14.3', vcpus: 2, vmName: 'doomed14', shim: true, timeoutMs: 20000, bootrom: true, guest: spin });
    await waitUntilGuestRan(bench, 'doomed14', { deadline: Date.now() + 10000, failure: () => `the guest never ran: ${run.stdout()}` });
    const report = (await queryControl(bench.socketDir, 'status')) as StatusReport;
    const vm = (report.vms as VmRecord[]).find((v) => v.name === 'doomed14');
    assert.equal(vm?.bhyve?.release, '14.3');
    assert.equal(vm?.bhyve?.generation, '14.x');
    assert.equal(vm?.bhyve?.handling, 'compat');
    assert.equal(bench.model.destroyVm('doomed14'), true);
    const r = await run.result;
    assert.equal(r.bhyveExit.status, 4, r.bhyveStderr);
    assert.equal(r.outcome, 'destroyed');
    assert.match(r.bhyveStderr, /was destroyed while running/);
    await bench.stopDaemon();
    assert.equal(events(bench.daemonLog(), 'vm-destroyed').length, 1);
  } finally {
    await bench.close();
  }
});
