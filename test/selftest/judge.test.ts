// How selftest judges a boot from bhyve's exit and the guest's COM1 output (13.1 bhyverun.c
// vmexit_suspend: 0 reset, 1 power-off, 2 halt, 3 triple fault).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { guestOnline, judgeBoot, outcomeOf, type BootObservation } from '../../src/selftest/judge';

const seen = (o: Partial<BootObservation>): BootObservation => ({
  exitStatus: 1,
  exitSignal: null,
  timedOut: false,
  timeoutMs: 30000,
  guestOutput: '',
  bhyveStderr: '',
  ...o,
});

test('outcomes from the exit status: 0 reset, 1 poweroff, 2 halt, 3 triplefault, others and signals bhyve-error, a timeout hang', () => {
  assert.equal(outcomeOf(0, null, false), 'reset');
  assert.equal(outcomeOf(1, null, false), 'poweroff');
  assert.equal(outcomeOf(2, null, false), 'halt');
  assert.equal(outcomeOf(3, null, false), 'triplefault');
  assert.equal(outcomeOf(4, null, false), 'bhyve-error');
  assert.equal(outcomeOf(71, null, false), 'bhyve-error');
  assert.equal(outcomeOf(null, 'SIGABRT', false), 'bhyve-error');
  assert.equal(outcomeOf(null, 'SIGKILL', true), 'hang');
});

test('the guest\'s count: its last online=N', () => {
  assert.equal(guestOnline('online=4\n'), 4);
  assert.equal(guestOnline('online=4\nrestart=1\nonline=3\n'), 3);
  assert.equal(guestOnline(''), null);
  assert.equal(guestOnline('garbage'), null);
});

test('verdicts: pass and works-without-shim need every AP (online=N) and a power-off; anything else is fail with the shim, the host\'s bug without', () => {
  const good = seen({ guestOutput: 'online=4\n' });
  assert.deepEqual(judgeBoot({ vcpus: 4, shim: true }, good), { outcome: 'poweroff', apsStarted: 3, verdict: 'pass', detail: 'every AP started (online=4) and the guest powered off' });
  assert.equal(judgeBoot({ vcpus: 4, shim: false }, good).verdict, 'works-without-shim');
  const window = judgeBoot({ vcpus: 4, shim: false }, seen({ guestOutput: 'online=1\n' }));
  assert.deepEqual(window, { outcome: 'poweroff', apsStarted: 0, verdict: 'host-bug', detail: 'no AP started: the guest says online=1 of 4' });
  assert.equal(judgeBoot({ vcpus: 4, shim: true }, seen({ guestOutput: 'online=1\n' })).verdict, 'fail');
  const some = judgeBoot({ vcpus: 4, shim: true }, seen({ guestOutput: 'online=3\n' }));
  assert.equal(some.verdict, 'fail');
  assert.equal(some.detail, '2 of 3 APs started (online=3 of 4)');
  const rom15 = judgeBoot({ vcpus: 2, shim: false }, seen({ exitStatus: 4, bhyveStderr: 'bootrom_alloc: vm_mmap_mapseg: Invalid argument\n' }));
  assert.deepEqual(rom15, {
    outcome: 'bhyve-error',
    apsStarted: null,
    verdict: 'host-bug',
    detail: 'bhyve exited 4 before the guest printed its count: bootrom_alloc: vm_mmap_mapseg: Invalid argument',
  });
  const abort = judgeBoot({ vcpus: 2, shim: false }, seen({ exitStatus: null, exitSignal: 'SIGABRT', bhyveStderr: 'Assertion failed: (error == 0)\n' }));
  assert.equal(abort.detail, 'bhyve was killed by SIGABRT before the guest printed its count: Assertion failed: (error == 0)');
  const hang = judgeBoot({ vcpus: 2, shim: true }, seen({ exitStatus: null, exitSignal: 'SIGKILL', timedOut: true, timeoutMs: 500 }));
  assert.deepEqual([hang.outcome, hang.verdict, hang.detail], ['hang', 'fail', 'no end within 500 ms: bhyve was killed']);
  const reset = judgeBoot({ vcpus: 2, shim: true }, seen({ exitStatus: 0, guestOutput: 'online=2\n' }));
  assert.deepEqual([reset.outcome, reset.verdict], ['reset', 'fail'], 'every AP, but a reset is not the power-off smp-boot ends with');
});
