// smp-boot, run on the round-robin test machine: the AP start-up sequence, the bounded wait, the
// console output, every final action, the restart step, and the documented image layout.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  FINAL_ACTION_CODES,
  INIT_WAIT_NS,
  NO_RESTART_AP,
  SMP_BOOT_LAYOUT,
  SMP_BOOT_LOAD_ADDRESS,
  SMP_BOOT_SIPI_VECTOR,
  STARTUP_WAIT_NS,
  VCPU_COUNT_ADDRESS,
  buildSmpBoot,
} from '../../src/lab/guests/smp-boot';
import { Flag } from '../../src/lab/x86/cpu';
import { Ipi, MachineResult, runMachine } from './lab-machine';

function word(bytes: Uint8Array, at: number): number {
  return bytes[at] | (bytes[at + 1] << 8);
}

function dword(bytes: Uint8Array, at: number): number {
  return (word(bytes, at) | (word(bytes, at + 2) << 16)) >>> 0;
}

function ipiSummary(ipis: readonly Ipi[]): string[] {
  return ipis.map((ipi) => `${ipi.from}->${ipi.to} ${ipi.mode}${ipi.mode === 'startup' ? ` 0x${ipi.vector.toString(16)}` : ''}`);
}

function lastPortWrite(result: MachineResult) {
  return result.portWrites[result.portWrites.length - 1];
}

test('constants: load address 0x10000, vCPU count at 0x0500, trampoline page 0x11000 (vector 0x11)', () => {
  assert.equal(SMP_BOOT_LOAD_ADDRESS, 0x10000);
  assert.equal(VCPU_COUNT_ADDRESS, 0x0500);
  assert.equal(SMP_BOOT_SIPI_VECTOR, 0x11);
  assert.equal(SMP_BOOT_LAYOUT.trampoline % 0x1000, 0, 'the trampoline is page-aligned');
});

test('4 vCPUs: INIT, STARTUP, STARTUP to each AP in turn; online=4; power-off write 0x3400 to port 0x404', () => {
  const result = runMachine({ vcpus: 4, image: buildSmpBoot() });
  assert.equal(result.console, 'online=4\n');
  assert.equal(result.outcome, 'poweroff');
  assert.deepEqual(lastPortWrite(result), { vcpu: 0, port: 0x404, bytes: 2, value: 0x3400 });
  assert.deepEqual(ipiSummary(result.ipis), [1, 2, 3].flatMap((ap) => [`0->${ap} init`, `0->${ap} startup 0x11`, `0->${ap} startup 0x11`]));
  assert.deepEqual(result.startups, [0, 1, 1, 1], 'the second STARTUP finds the AP running and is ignored');
  assert.equal(word(result.memory, SMP_BOOT_LOAD_ADDRESS + SMP_BOOT_LAYOUT.online), 3, 'three trampoline check-ins');
  for (const ap of [1, 2, 3]) {
    assert.equal(result.vcpuStates[ap], 'halted');
    assert.equal(result.cpus[ap].flags & Flag.IF, 0, 'APs park in cli; hlt');
    assert.equal(result.cpus[ap].cs.selector, 0x1100, 'APs ran at CS = vector << 8');
  }
});

test('the waits between IPIs: >= 10 us after INIT, >= 200 us after each STARTUP (TSC time)', () => {
  const result = runMachine({ vcpus: 3, image: buildSmpBoot() });
  const ipis = result.ipis;
  for (let i = 0; i + 1 < ipis.length; i++) {
    const gap = ipis[i + 1].atNs - ipis[i].atNs;
    const minimum = ipis[i].mode === 'init' ? INIT_WAIT_NS : STARTUP_WAIT_NS;
    assert.ok(gap >= minimum, `${ipis[i].mode} -> next: ${gap} ns`);
    assert.ok(gap < minimum + 5_000, `${ipis[i].mode} -> next: ${gap} ns is a short wait`);
  }
});

test('online=N for every vCPU count 1..16 (two-digit numbers in decimal)', () => {
  for (let vcpus = 1; vcpus <= 16; vcpus++) {
    const result = runMachine({ vcpus, image: buildSmpBoot() });
    assert.equal(result.console, `online=${vcpus}\n`, `${vcpus} vCPUs`);
    assert.equal(result.outcome, 'poweroff');
    assert.equal(result.ipis.length, 3 * (vcpus - 1));
  }
});

test('no AP ever starts: online=1 after the bounded wait of apWaitMs', () => {
  const result = runMachine({ vcpus: 4, image: buildSmpBoot({ apWaitMs: 5 }), deliver: () => false });
  assert.equal(result.console, 'online=1\n');
  assert.equal(result.outcome, 'poweroff');
  const lastIpi = result.ipis[result.ipis.length - 1].atNs;
  const waited = result.elapsedNs - lastIpi - STARTUP_WAIT_NS;
  assert.ok(waited >= 5_000_000, `waited ${waited} ns`);
  assert.ok(waited < 5_000_000 + 50_000, `waited ${waited} ns, not much longer than 5 ms`);
});

test('the default wait is 1000 ms of TSC time and is bounded', () => {
  const result = runMachine({ vcpus: 2, image: buildSmpBoot(), deliver: () => false, nsPerInstruction: 1000 });
  assert.equal(result.console, 'online=1\n');
  const waited = result.elapsedNs - result.ipis[result.ipis.length - 1].atNs - STARTUP_WAIT_NS;
  assert.ok(waited >= 1e9 && waited < 1e9 + 100_000, `waited ${waited} ns`);
});

test('the wait ends early once every started AP checked in', () => {
  const result = runMachine({ vcpus: 4, image: buildSmpBoot({ apWaitMs: 1000 }) });
  assert.equal(result.console, 'online=4\n');
  assert.ok(result.elapsedNs < 3 * 410_000 + 100_000, `finished after ${result.elapsedNs} ns`);
});

test('an AP that never starts is missing from the count: online=3 of 4', () => {
  const result = runMachine({ vcpus: 4, image: buildSmpBoot({ apWaitMs: 2 }), deliver: (ipi) => ipi.to !== 2 });
  assert.equal(result.console, 'online=3\n');
  assert.deepEqual(result.startups, [0, 1, 0, 1]);
});

test('startMask selects the APs; bits of absent vCPUs are ignored', () => {
  const some = runMachine({ vcpus: 4, image: buildSmpBoot({ startMask: 0b1010 }) });
  assert.equal(some.console, 'online=3\n');
  assert.deepEqual([...new Set(some.ipis.map((ipi) => ipi.to))], [1, 3]);
  const none = runMachine({ vcpus: 4, image: buildSmpBoot({ startMask: 0 }) });
  assert.equal(none.console, 'online=1\n');
  assert.equal(none.ipis.length, 0);
  const bspBitOnly = runMachine({ vcpus: 4, image: buildSmpBoot({ startMask: 1 }) });
  assert.equal(bspBitOnly.ipis.length, 0, 'bit 0 (the BSP) is ignored');
  const beyond = runMachine({ vcpus: 2, image: buildSmpBoot({ startMask: 0xfffe }) });
  assert.deepEqual([...new Set(beyond.ipis.map((ipi) => ipi.to))], [1]);
  assert.equal(beyond.console, 'online=2\n');
});

test('every AP starts at any count: 17, 40 and 256 vCPUs (x2APIC destinations up to 255)', () => {
  for (const vcpus of [17, 40, 256]) {
    const result = runMachine({ vcpus, image: buildSmpBoot({ apWaitMs: 50 }), maxInstructions: 200_000_000 });
    assert.equal(result.console, `online=${vcpus}\n`, `${vcpus} vCPUs`);
    assert.equal(result.outcome, 'poweroff');
    assert.deepEqual([...new Set(result.ipis.map((ipi) => ipi.to))], Array.from({ length: vcpus - 1 }, (_, i) => i + 1));
    assert.ok(result.startups.slice(1).every((n) => n === 1), 'each AP ran its trampoline once');
  }
});

test('a bigint startMask names APs beyond 15: words of startMaskHigh, 16 APs each', () => {
  const mask = (1n << 16n) | (1n << 31n) | (1n << 32n) | (1n << 255n) | 0b10n;
  const result = runMachine({ vcpus: 256, image: buildSmpBoot({ startMask: mask, apWaitMs: 20 }), maxInstructions: 200_000_000 });
  assert.deepEqual([...new Set(result.ipis.map((ipi) => ipi.to))], [1, 16, 31, 32, 255]);
  assert.equal(result.console, 'online=6\n');
  // A number is the first layout's 16-bit mask: it names APs 1..15 only.
  const low = runMachine({ vcpus: 20, image: buildSmpBoot({ startMask: 0xfffe, apWaitMs: 20 }) });
  assert.deepEqual([...new Set(low.ipis.map((ipi) => ipi.to))], Array.from({ length: 15 }, (_, i) => i + 1));
});

test('finalAction reset: byte 0x06 to port 0xCF9', () => {
  const result = runMachine({ vcpus: 2, image: buildSmpBoot({ finalAction: 'reset' }) });
  assert.equal(result.console, 'online=2\n');
  assert.equal(result.outcome, 'reset');
  assert.deepEqual(lastPortWrite(result), { vcpu: 0, port: 0xcf9, bytes: 1, value: 0x06 });
});

test('finalAction halt: every vCPU ends in hlt with interrupts disabled', () => {
  const result = runMachine({ vcpus: 3, image: buildSmpBoot({ finalAction: 'halt' }) });
  assert.equal(result.console, 'online=3\n');
  assert.equal(result.outcome, 'halt');
  assert.deepEqual(result.vcpuStates, ['halted', 'halted', 'halted']);
  assert.equal(result.cpus[0].flags & Flag.IF, 0);
  assert.ok(!result.portWrites.some((write) => write.port === 0x404 || write.port === 0xcf9));
});

test('finalAction triplefault: the BSP executes ud2, outside the subset', () => {
  const image = buildSmpBoot({ finalAction: 'triplefault' });
  const result = runMachine({ vcpus: 2, image });
  assert.equal(result.console, 'online=2\n');
  assert.equal(result.outcome, 'triplefault');
  assert.equal(result.fault?.vcpu, 0);
  const rip = result.fault?.rip ?? -1;
  assert.deepEqual([image[rip], image[rip + 1]], [0x0f, 0x0b]);
  assert.equal(result.fault?.reason, `triple fault at 1000:${rip.toString(16).padStart(4, '0')}, opcode 0x0f 0x0b (not in the lab's x86 subset)`);
});

test('restartAp: INIT+SIPI to a running AP that re-runs its trampoline prints restart=1', () => {
  const result = runMachine({ vcpus: 4, image: buildSmpBoot({ restartAp: 2 }) });
  assert.equal(result.console, 'online=4\nrestart=1\n');
  assert.equal(result.outcome, 'poweroff');
  assert.deepEqual(result.startups, [0, 1, 2, 1]);
  assert.deepEqual(ipiSummary(result.ipis.slice(9)), ['0->2 init', '0->2 startup 0x11', '0->2 startup 0x11']);
  assert.equal(word(result.memory, SMP_BOOT_LOAD_ADDRESS + SMP_BOOT_LAYOUT.online), 4);
});

test('restartAp: a platform that ignores the second INIT gives restart=0 after the bounded wait', () => {
  let initsToAp1 = 0;
  const result = runMachine({
    vcpus: 2,
    image: buildSmpBoot({ restartAp: 1, apWaitMs: 3 }),
    deliver: (ipi) => !(ipi.to === 1 && ipi.mode === 'init' && ++initsToAp1 > 1),
  });
  assert.equal(result.console, 'online=2\nrestart=0\n');
  assert.equal(result.outcome, 'poweroff');
  assert.deepEqual(result.startups, [0, 1]);
  assert.ok(result.elapsedNs > 3_000_000);
});

test('image layout: entry jump, signature, options and counter at the documented offsets', () => {
  const image = buildSmpBoot({ startMask: 0b0110, finalAction: 'halt', apWaitMs: 250, restartAp: 3 });
  assert.equal(image[SMP_BOOT_LAYOUT.entry], 0xe9);
  assert.equal(3 + word(image, 1), SMP_BOOT_LAYOUT.bsp, 'jmp near to the BSP code');
  assert.equal(Buffer.from(image.subarray(SMP_BOOT_LAYOUT.signature, SMP_BOOT_LAYOUT.signature + 8)).toString('ascii'), 'smp-boot');
  assert.equal(word(image, SMP_BOOT_LAYOUT.online), 0);
  assert.equal(word(image, SMP_BOOT_LAYOUT.startMask), 0b0110);
  assert.equal(word(image, SMP_BOOT_LAYOUT.finalAction), FINAL_ACTION_CODES.halt);
  assert.equal(word(image, SMP_BOOT_LAYOUT.restartAp), 3);
  assert.equal(dword(image, SMP_BOOT_LAYOUT.apWaitNs), 250_000_000);
  const defaults = buildSmpBoot();
  assert.equal(word(defaults, SMP_BOOT_LAYOUT.startMask), 0xfffe);
  assert.equal(word(defaults, SMP_BOOT_LAYOUT.finalAction), FINAL_ACTION_CODES.poweroff);
  assert.equal(word(defaults, SMP_BOOT_LAYOUT.restartAp), NO_RESTART_AP);
  assert.equal(dword(defaults, SMP_BOOT_LAYOUT.apWaitNs), 1_000_000_000);
  // The trampoline: mov ax, 0x1000; mov ds, ax; lock inc word [online]
  assert.deepEqual([...defaults.subarray(SMP_BOOT_LAYOUT.trampoline, SMP_BOOT_LAYOUT.trampoline + 9)],
    [0xb8, 0x00, 0x10, 0x8e, 0xd8, 0xf0, 0xff, 0x06, SMP_BOOT_LAYOUT.online]);
  assert.ok(defaults.length < 0x1100, `image is ${defaults.length} bytes`);
  // APs 16..255: 15 words after the trampoline, all ones by default.
  assert.equal(SMP_BOOT_LAYOUT.startMaskHigh, 0x1040);
  for (let k = 0; k < 15; k++) {
    assert.equal(word(defaults, SMP_BOOT_LAYOUT.startMaskHigh + 2 * k), 0xffff);
    assert.equal(word(image, SMP_BOOT_LAYOUT.startMaskHigh + 2 * k), 0, 'a 16-bit startMask starts no AP above 15');
  }
  assert.equal(defaults.length, SMP_BOOT_LAYOUT.startMaskHigh + 30);
});

test('patching startMaskHigh in a built image selects APs above 15', () => {
  const image = buildSmpBoot({ startMask: 0, apWaitMs: 20 });
  image[SMP_BOOT_LAYOUT.startMaskHigh + 2] = 0b1; // word 1: AP 32
  const result = runMachine({ vcpus: 40, image });
  assert.deepEqual([...new Set(result.ipis.map((ipi) => ipi.to))], [32]);
  assert.equal(result.console, 'online=2\n');
});

test('the options are data: patching startMask in a built image changes which APs start', () => {
  const image = buildSmpBoot();
  image[SMP_BOOT_LAYOUT.startMask] = 0b0100;
  image[SMP_BOOT_LAYOUT.startMask + 1] = 0;
  const result = runMachine({ vcpus: 4, image });
  assert.equal(result.console, 'online=2\n');
  assert.deepEqual([...new Set(result.ipis.map((ipi) => ipi.to))], [2]);
});

test('invalid options are refused with a clear message', () => {
  assert.throws(() => buildSmpBoot({ startMask: 0x10000 }), /startMask 65536 is not a 16-bit mask of AP ids 1\.\.15 \(a bigint names APs up to 255\)/);
  assert.throws(() => buildSmpBoot({ startMask: 1n << 256n }), /names vCPUs beyond 255/);
  assert.throws(() => buildSmpBoot({ restartAp: 0 }), /restartAp 0 is not an AP id 1\.\.255/);
  assert.throws(() => buildSmpBoot({ restartAp: 256 }), /restartAp 256/);
  assert.throws(() => buildSmpBoot({ apWaitMs: 5000 }), /apWaitMs 5000 is outside 0\.\.4294/);
  assert.throws(() => buildSmpBoot({ apWaitMs: -1 }), /apWaitMs -1/);
  assert.throws(() => buildSmpBoot({ finalAction: 'explode' as never }), /finalAction 'explode' is not one of poweroff, reset, halt, triplefault/);
});
