// The hostile guests' own logic, on the deterministic lab machine (test/guests/lab-machine.ts):
// which IPIs they send, in which order, and their image layout. test/lab/hostile-guests.test.ts
// runs them on the kernel model with the real bhyve model, interposer and daemon.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { IPI_STORM_LAYOUT, IPI_STORM_SIGNATURE, buildIpiStorm } from '../../src/lab/guests/ipi-storm';
import { SIPI_WITHOUT_INIT_LAYOUT, buildSipiWithoutInit } from '../../src/lab/guests/sipi-without-init';
import { SMP_BOOT_SIPI_VECTOR } from '../../src/lab/guests/smp-boot';
import { runMachine } from './lab-machine';

test('ipi-storm: each round sends INIT then STARTUP to the BSP itself, every AP and the missing IDs, in order', () => {
  const r = runMachine({ vcpus: 4, image: buildIpiStorm({ rounds: 3, missingIds: 2 }) });
  assert.equal(r.outcome, 'poweroff');
  const storm = r.ipis.slice(3 * 3); // the start-up: INIT, STARTUP, STARTUP to APs 1..3
  assert.deepEqual(
    storm.map((i) => `${i.to}${i.mode[0]}`),
    Array.from({ length: 3 }, () => [0, 1, 2, 3, 4, 5].flatMap((id) => [`${id}i`, `${id}s`])).flat(),
  );
  assert.ok(storm.filter((i) => i.mode === 'startup').every((i) => i.vector === SMP_BOOT_SIPI_VECTOR));
  assert.equal(r.console.split('\n')[1], 'storm=3');
});

test('ipi-storm options: self false starts each round at AP 1; rounds and IDs are bounded; the layout is the documented one', () => {
  const r = runMachine({ vcpus: 2, image: buildIpiStorm({ rounds: 1, missingIds: 0, self: false }) });
  assert.deepEqual(r.ipis.slice(3).map((i) => i.to), [1, 1]);
  const image = buildIpiStorm({ rounds: 7, missingIds: 9 });
  assert.equal(Buffer.from(image.subarray(IPI_STORM_LAYOUT.signature, IPI_STORM_LAYOUT.signature + 8)).toString('ascii'), IPI_STORM_SIGNATURE);
  assert.equal(image[IPI_STORM_LAYOUT.rounds], 7);
  assert.equal(image[IPI_STORM_LAYOUT.missingIds], 9);
  assert.equal(image[IPI_STORM_LAYOUT.firstId], 0);
  assert.throws(() => buildIpiStorm({ rounds: 0 }), /rounds 0 is outside 1..65535/);
  assert.throws(() => buildIpiStorm({ rounds: 65536 }), /outside 1..65535/);
  assert.throws(() => buildIpiStorm({ missingIds: 256 }), /missingIds 256 is outside 0..255/);
  // A patched option is read from the image: one round instead of fifty.
  const patched = buildIpiStorm();
  patched[IPI_STORM_LAYOUT.rounds] = 1;
  assert.match(runMachine({ vcpus: 2, image: patched }).console, /storm=1\n/);
});

test('sipi-without-init: STARTUP, STARTUP to each AP with no INIT (nothing starts), then INIT, STARTUP, STARTUP', () => {
  const r = runMachine({ vcpus: 3, image: buildSipiWithoutInit() });
  assert.equal(r.console, 'online=1\nonline=3\n');
  assert.deepEqual(
    r.ipis.map((i) => `${i.to}${i.mode[0]}`),
    ['1s', '1s', '2s', '2s', '1i', '1s', '1s', '2i', '2s', '2s'],
  );
  const image = buildSipiWithoutInit({ strayWaitMs: 1 });
  assert.equal(Buffer.from(image.subarray(SIPI_WITHOUT_INIT_LAYOUT.strayWaitNs, SIPI_WITHOUT_INIT_LAYOUT.strayWaitNs + 4)).readUInt32LE(0), 1_000_000);
  assert.throws(() => buildSipiWithoutInit({ apWaitMs: 5000 }), /apWaitMs 5000 is outside 0..4294/);
});
