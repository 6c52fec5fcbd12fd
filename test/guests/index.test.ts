// The registry of standard guests.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { standardGuest, standardGuestNames, standardGuestRom, standardGuests } from '../../src/lab/guests/index';
import { FINAL_ACTION_CODES, SMP_BOOT_LAYOUT, buildSmpBoot } from '../../src/lab/guests/smp-boot';
import { runMachine } from './lab-machine';

test('the registry names smp-boot, its variants and the hostile guests', () => {
  assert.deepEqual(standardGuestNames(), [
    'smp-boot', 'smp-boot-reset', 'smp-boot-halt', 'smp-boot-triplefault', 'smp-boot-restart', 'smp-boot-bsp-only', 'smp-boot-half',
    'ipi-storm', 'sipi-without-init', 'reboot-loop',
  ]);
  for (const guest of standardGuests()) assert.ok(guest.description.length > 0, guest.name);
});

test('standardGuest builds the named image', () => {
  assert.deepEqual(standardGuest('smp-boot'), buildSmpBoot());
  const finalAction = (name: string): number => standardGuest(name)[SMP_BOOT_LAYOUT.finalAction];
  assert.equal(finalAction('smp-boot-reset'), FINAL_ACTION_CODES.reset);
  assert.equal(finalAction('smp-boot-halt'), FINAL_ACTION_CODES.halt);
  assert.equal(finalAction('smp-boot-triplefault'), FINAL_ACTION_CODES.triplefault);
});

test('each standard guest ends the way its name says', () => {
  const expected: Record<string, [string, string]> = {
    'smp-boot': ['poweroff', 'online=3\n'],
    'smp-boot-reset': ['reset', 'online=3\n'],
    'smp-boot-halt': ['halt', 'online=3\n'],
    'smp-boot-triplefault': ['triplefault', 'online=3\n'],
    'smp-boot-restart': ['poweroff', 'online=3\nrestart=1\n'],
    'smp-boot-bsp-only': ['poweroff', 'online=1\n'],
    'smp-boot-half': ['poweroff', 'online=2\n'],
    // This machine restarts an AP at every INIT+STARTUP, as a CPU does: 2 APs x 50 rounds more.
    // Under bhyve a running AP is never started again (test/lab/hostile-guests.test.ts).
    'ipi-storm': ['poweroff', 'online=3\nstorm=50\nonline=103\n'],
    'sipi-without-init': ['poweroff', 'online=1\nonline=3\n'],
    'reboot-loop': ['reset', 'online=3\n'],
  };
  for (const name of standardGuestNames()) {
    const result = runMachine({ vcpus: 3, image: standardGuest(name) });
    assert.deepEqual([result.outcome, result.console], expected[name], name);
    // The same guest printing on COM1, in its boot ROM, from the reset vector; on bhyve -x and on
    // a real CPU that starts in xAPIC mode.
    for (const apic of ['x2apic', 'xapic'] as const) {
      const rom = runMachine({ vcpus: 3, rom: standardGuestRom(name, 3), apic, com1BusyReads: 1 });
      assert.deepEqual([rom.outcome, rom.com1], expected[name], `${name} ROM, ${apic}`);
      assert.equal(rom.portWrites.filter((w) => w.port === 0xe9).length, 0, 'nothing on the debug port');
    }
  }
});

test('the COM1 build of each standard guest keeps the image layout: same size, same data block, different code', () => {
  for (const name of standardGuestNames()) {
    const debug = standardGuest(name);
    const com1 = standardGuest(name, 'com1');
    assert.equal(com1.length, debug.length, name);
    assert.deepEqual(com1.subarray(0, SMP_BOOT_LAYOUT.bsp), debug.subarray(0, SMP_BOOT_LAYOUT.bsp), `${name}: data block`);
    assert.deepEqual(com1.subarray(SMP_BOOT_LAYOUT.trampoline), debug.subarray(SMP_BOOT_LAYOUT.trampoline), `${name}: trampoline and startMaskHigh`);
    assert.notDeepEqual(com1, debug);
  }
  assert.deepEqual(standardGuest('smp-boot', 'debug-port'), standardGuest('smp-boot'));
  assert.throws(() => buildSmpBoot({ console: 'com2' as never }), /console 'com2' is not one of debug-port, com1/);
});

test('an unknown name is an error that lists the standard guests', () => {
  assert.throws(() => standardGuest('smp-bot'), {
    message: "unknown guest 'smp-bot'; standard guests: smp-boot, smp-boot-reset, smp-boot-halt, smp-boot-triplefault, smp-boot-restart, smp-boot-bsp-only, smp-boot-half, ipi-storm, sipi-without-init, reboot-loop",
  });
});

test('smp-boot-half starts the even APs at any count: 40 vCPUs give online=20 (the BSP and APs 2..38)', () => {
  const result = runMachine({ vcpus: 40, image: standardGuest('smp-boot-half') });
  assert.equal(result.console, 'online=20\n');
  assert.equal(result.outcome, 'poweroff');
  assert.deepEqual([...new Set(result.ipis.map((ipi) => ipi.to))], Array.from({ length: 19 }, (_, i) => 2 * (i + 1)));
});
