// Hostile guests through the real interposer and daemon (docs/lab-guests.md section 7): an IPI
// storm, STARTUP without INIT, a tight reboot loop. With the shim 13.1 bhyve ends as it does on a
// kernel that needs no shim (legacy13, no shim), and what each VM costs the daemon stays bounded:
// the interposer coalesces the events such a guest makes it send.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runLab, compatEventsOf, type LabKernelName, type LabResult } from '../../src/lab/run';
import { standardGuest } from '../../src/lab/guests';
import { buildIpiStorm, DEFAULT_STORM_ROUNDS } from '../../src/lab/guests/ipi-storm';
import { EventKind } from '../../src/daemon/protocol';

const VCPUS = 4;
const SHIMMED: readonly LabKernelName[] = ['window', 'fixed13', 'fixed14', 'main15', 'legacy13'];

function boot(kernel: LabKernelName, shim: boolean, guest: Uint8Array, extra: { boots?: { guest: Uint8Array }[] } = {}): Promise<LabResult> {
  return runLab({ kernel, bhyve: '13.1', vcpus: VCPUS, shim, timeoutMs: 60000, guest, bootrom: true, collectDaemonLog: true, ...extra });
}

/** The events of one kind a VM's daemon record got: sent, and held back by the interposer. */
function eventTotals(r: LabResult, kind: string, code: number): { sent: number; coalesced: number } {
  const ev = compatEventsOf(r.daemonLog);
  return {
    sent: ev.filter((e) => e.event === kind).length,
    coalesced: ev.filter((e) => e.event === 'events-coalesced' && e.vcpu === code).reduce((a, e) => a + e.arg, 0),
  };
}

/** Per boot, a coalesced kind reaches the daemon at most 8 + 2 log2(n) + 1 times. */
function coalescedBound(n: number): number {
  return 8 + 2 * Math.ceil(Math.log2(Math.max(2, n))) + 1;
}

const OUTPUT = `online=${VCPUS}\nstorm=${DEFAULT_STORM_ROUNDS}\nonline=${VCPUS}\n`;

test('ipi-storm without the shim on legacy13 (the kernel 13.1 needs no shim on), IDs that exist only: the reference outcome', async () => {
  const r = await boot('legacy13', false, buildIpiStorm({ missingIds: 0 }));
  assert.equal(r.outcome, 'poweroff', r.bhyveStderr);
  assert.equal(r.guestOutput, OUTPUT);
  assert.deepEqual(r.apsStarted, [1, 2, 3]);
});

test('ipi-storm without the shim on legacy13, to APIC IDs the VM does not have: 13.1 bhyve aborts (spinup_ap.c assert(newcpu < guest_ncpus))', async () => {
  const r = await boot('legacy13', false, standardGuest('ipi-storm'));
  assert.equal(r.bhyveExit.signal, 'SIGABRT');
  assert.match(r.bhyveStderr, /Assertion `newcpu < guest_ncpus' failed/);
});

for (const kernel of SHIMMED) {
  test(`ipi-storm with the shim on ${kernel}: no crash, no hang, the reference outcome; the re-sent SIPIs reach the daemon coalesced and counted exactly`, async () => {
    const r = await boot(kernel, true, standardGuest('ipi-storm'));
    assert.equal(r.outcome, 'poweroff', r.bhyveStderr);
    assert.equal(r.bhyveExit.status, 1);
    assert.equal(r.guestOutput, OUTPUT, 'no AP ran its trampoline twice');
    assert.deepEqual(r.apsStarted, [1, 2, 3]);
    const dup = eventTotals(r, 'spinup-duplicate', EventKind.SPINUP_DUPLICATE);
    const absent = eventTotals(r, 'spinup-absent', EventKind.SPINUP_ABSENT);
    if (kernel === 'legacy13') {
      // A 13.1 kernel never starts a running AP again (vlapic.c BS_RUNNING), but starts each
      // vCPU it has once, those the VM does not use too: 3 absent ones, swallowed.
      assert.deepEqual(dup, { sent: 0, coalesced: 0 });
      assert.deepEqual(absent, { sent: 3, coalesced: 0 });
    } else {
      const duplicates = DEFAULT_STORM_ROUNDS * (VCPUS - 1);
      assert.equal(dup.sent + dup.coalesced, duplicates, 'every re-sent SIPI counted');
      assert.ok(dup.sent <= coalescedBound(duplicates), `${dup.sent} spinup-duplicate events for ${duplicates} SIPIs`);
      // The window kernel delivers INIT/SIPI to active vCPUs only; the compat path of
      // b265a2e0 to any ID below maxcpus, so the absent ones come back as SPINUP_AP.
      const expectedAbsent = kernel === 'window' ? 0 : DEFAULT_STORM_ROUNDS * 3;
      assert.equal(absent.sent + absent.coalesced, expectedAbsent);
      assert.ok(absent.sent <= coalescedBound(expectedAbsent));
    }
  });
}

test('sipi-without-init: STARTUP without INIT starts nothing, on legacy13 without the shim and on every kernel with it', async () => {
  for (const [kernel, shim] of [['legacy13', false], ...SHIMMED.map((k) => [k, true])] as [LabKernelName, boolean][]) {
    const r = await boot(kernel, shim, standardGuest('sipi-without-init'));
    assert.equal(r.outcome, 'poweroff', `${kernel} shim=${shim}: ${r.bhyveStderr}`);
    assert.equal(r.guestOutput, `online=1\nonline=${VCPUS}\n`, `${kernel} shim=${shim}`);
    assert.deepEqual(r.apsStarted, [1, 2, 3]);
  }
});

for (const [kernel, shim] of [['legacy13', false], ['window', true], ['fixed14', true]] as [LabKernelName, boolean][]) {
  test(`reboot-loop, ${kernel}${shim ? ' with the shim' : ' without the shim'}: 12 resets back to back, each bhyve exits 0; the VM then boots every AP`, async () => {
    const loop = standardGuest('reboot-loop');
    const r = await boot(kernel, shim, loop, { boots: [...Array.from({ length: 12 }, () => ({ guest: loop })), { guest: standardGuest('smp-boot') }] });
    const boots = r.boots ?? [];
    assert.equal(boots.length, 13);
    for (const [i, b] of boots.slice(0, 12).entries()) {
      assert.equal(b.outcome, 'reset', `boot ${i}: ${b.bhyveStderr}`);
      assert.equal(b.bhyveExit.status, 0);
    }
    assert.equal(r.outcome, 'poweroff');
    assert.deepEqual(r.apsStarted, [1, 2, 3]);
    if (shim) {
      const log = r.daemonLog ?? '';
      assert.equal(log.split('\n').filter((l) => l.includes('"session started"')).length, 13, 'one session per bhyve');
      assert.equal(log.split('\n').filter((l) => l.includes('"msg":"plan"')).length, 13, 'one plan per boot');
    }
  });
}
