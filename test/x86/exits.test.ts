// Exits: what run() hands back to the kernel model, and the state it leaves behind.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Flag, Gpr } from '../../src/lab/x86/cpu';
import { completeCpuid, completeIn, completeRdmsr, run } from '../../src/lab/x86/interpreter';
import { execute, snippet } from './snippet';

test('hlt (F4): exit with rip and instLength, IP past it, counted', () => {
  const s = snippet([0x90, 0xf4, 0x90], { ip: 0x30 });
  const exit = execute(s, 10);
  assert.deepEqual(exit, { kind: 'hlt', rip: 0x31, instLength: 1 });
  assert.equal(s.cpu.ip, 0x32);
  assert.equal(s.cpu.instructions, 2);
});

test('cli / sti (FA, FB) clear and set IF, which the caller reads after hlt', () => {
  const s = snippet([0xfb, 0xfa, 0xf4]);
  execute(s);
  assert.equal(s.cpu.flags & Flag.IF, Flag.IF);
  execute(s);
  assert.equal(s.cpu.flags & Flag.IF, 0);
  assert.equal(execute(s).kind, 'hlt');
  assert.equal(s.cpu.flags, 0x2, 'only bit 1 left');
});

test('out dx, al / out dx, ax / out dx, eax (EE, EF, 66 EF)', () => {
  const s = snippet([0xee, 0xef, 0x66, 0xef], { ip: 0x10 });
  s.cpu.gpr[Gpr.EDX] = 0xffff_0404;
  s.cpu.gpr[Gpr.EAX] = 0x1234_3400;
  assert.deepEqual(execute(s, 5), { kind: 'out', port: 0x404, bytes: 1, value: 0x00, rip: 0x10, instLength: 1 });
  assert.deepEqual(execute(s, 5), { kind: 'out', port: 0x404, bytes: 2, value: 0x3400, rip: 0x11, instLength: 1 });
  assert.deepEqual(execute(s, 5), { kind: 'out', port: 0x404, bytes: 4, value: 0x1234_3400, rip: 0x12, instLength: 2 });
  assert.equal(s.cpu.ip, 0x14);
  assert.equal(s.cpu.instructions, 3);
});

test('out imm8, al / out imm8, ax (E6, E7)', () => {
  const s = snippet([0xe6, 0xe9, 0xe7, 0x80]);
  s.cpu.gpr[Gpr.EAX] = 0xbeef;
  assert.deepEqual(execute(s), { kind: 'out', port: 0xe9, bytes: 1, value: 0xef, rip: 0, instLength: 2 });
  assert.deepEqual(execute(s), { kind: 'out', port: 0x80, bytes: 2, value: 0xbeef, rip: 2, instLength: 2 });
  assert.equal(s.cpu.ip, 4);
});

test('in al, dx (EC): exit in (1 byte) from port DX, IP past it, counted; completeIn merges AL into EAX', () => {
  const s = snippet([0xec, 0x66, 0xec, 0xf4], { ip: 0x20 });
  s.cpu.gpr[Gpr.EDX] = 0xabcd_03fd;
  s.cpu.gpr[Gpr.EAX] = 0x1234_5678;
  assert.deepEqual(execute(s, 5), { kind: 'in', port: 0x3fd, bytes: 1, rip: 0x20, instLength: 1 });
  assert.equal(s.cpu.ip, 0x21);
  assert.equal(s.cpu.instructions, 1);
  assert.equal(s.cpu.gpr[Gpr.EAX], 0x1234_5678, 'EAX unchanged until the caller completes the exit');
  completeIn(s.cpu, 1, 0x60);
  assert.equal(s.cpu.gpr[Gpr.EAX], 0x1234_5660, 'bhyve inout.c: only the low byte is replaced');
  // 0x66 does not widen in al, dx (a byte form): the same 1-byte exit.
  assert.deepEqual(execute(s, 5), { kind: 'in', port: 0x3fd, bytes: 1, rip: 0x21, instLength: 2 });
  completeIn(s.cpu, 2, 0xffff_beef);
  assert.equal(s.cpu.gpr[Gpr.EAX], 0x1234_beef);
  completeIn(s.cpu, 4, 0xffff_beef);
  assert.equal(s.cpu.gpr[Gpr.EAX], 0xffff_beef);
});

test('cpuid (0F A2): exit with leaf EAX and subleaf ECX, IP past it; completeCpuid sets all four registers', () => {
  const s = snippet([0x0f, 0xa2, 0xf4], { ip: 0x40 });
  s.cpu.gpr[Gpr.EAX] = 1;
  s.cpu.gpr[Gpr.ECX] = 7;
  s.cpu.gpr[Gpr.EBX] = 0xdead;
  assert.deepEqual(execute(s, 5), { kind: 'cpuid', leaf: 1, subleaf: 7, rip: 0x40, instLength: 2 });
  assert.equal(s.cpu.ip, 0x42);
  assert.equal(s.cpu.instructions, 1);
  completeCpuid(s.cpu, [0x600, 0x0300_0800, 0x8020_0000, 0xffff_ffff]);
  assert.deepEqual([Gpr.EAX, Gpr.EBX, Gpr.ECX, Gpr.EDX].map((r) => s.cpu.gpr[r]), [0x600, 0x0300_0800, 0x8020_0000, 0xffff_ffff]);
  assert.equal(execute(s, 5).kind, 'hlt');
});

test('wrmsr (0F 30): msr = ECX, value = EDX:EAX (an x2APIC ICR write)', () => {
  const s = snippet([0x0f, 0x30], { ip: 0x100 });
  s.cpu.gpr[Gpr.ECX] = 0x830;
  s.cpu.gpr[Gpr.EDX] = 3;
  s.cpu.gpr[Gpr.EAX] = 0x4611;
  assert.deepEqual(execute(s), { kind: 'wrmsr', msr: 0x830, value: 0x0000_0003_0000_4611n, rip: 0x100, instLength: 2 });
  assert.equal(s.cpu.ip, 0x102);
  assert.equal(s.cpu.instructions, 1);
  const high = snippet([0x0f, 0x30]);
  high.cpu.gpr[Gpr.EDX] = 0xffff_ffff;
  high.cpu.gpr[Gpr.EAX] = 0xffff_ffff;
  const exit = execute(high);
  assert.equal(exit.kind === 'wrmsr' && exit.value, 0xffff_ffff_ffff_ffffn);
});

test('rdmsr (0F 32) exits; completeRdmsr stores EDX:EAX', () => {
  const s = snippet([0x66, 0xb9, 0x02, 0x08, 0x00, 0x00, 0x0f, 0x32, 0x90]);
  assert.deepEqual(execute(s, 10), { kind: 'rdmsr', msr: 0x802, rip: 6, instLength: 2 });
  assert.equal(s.cpu.ip, 8);
  completeRdmsr(s.cpu, 0x1234_5678_9abc_def0n);
  assert.equal(s.cpu.gpr[Gpr.EAX], 0x9abc_def0);
  assert.equal(s.cpu.gpr[Gpr.EDX], 0x1234_5678);
  assert.equal(s.cpu.instructions, 2);
});

test('rdtsc (0F 31) reads platform.tsc() into EDX:EAX without an exit, also above 2^53', () => {
  for (const tsc of [0n, 1_000_000_007n, 0x0012_3456_789a_bcdefn, 0xfedc_ba98_7654_3210n]) {
    const s = snippet([0x0f, 0x31, 0xf4], { tsc });
    assert.equal(execute(s, 5).kind, 'hlt');
    assert.equal(s.platform.reads, 1);
    assert.equal((BigInt(s.cpu.gpr[Gpr.EDX]) << 32n) | BigInt(s.cpu.gpr[Gpr.EAX]), tsc & 0xffff_ffff_ffff_ffffn);
  }
});

test('pause (F3 90) and nop (90) are ordinary instructions: no exit', () => {
  const s = snippet([0xf3, 0x90, 0x90, 0xf3, 0x90]);
  assert.deepEqual(execute(s, 3), { kind: 'budget' });
  assert.equal(s.cpu.ip, 5);
  assert.equal(s.cpu.instructions, 3);
});

test('budget: run stops after exactly `budget` instructions; budget 0 does nothing', () => {
  const s = snippet([0x41, 0xeb, 0xfd]); // inc cx; jmp back
  assert.deepEqual(run(s.cpu, s.mem, s.platform, 0), { kind: 'budget' });
  assert.equal(s.cpu.instructions, 0);
  assert.deepEqual(execute(s, 1001), { kind: 'budget' });
  assert.equal(s.cpu.instructions, 1001);
  assert.equal(s.cpu.gpr[Gpr.ECX], 501);
  assert.equal(s.cpu.ip, 1, 'stopped between inc and jmp');
  execute(s, 1);
  assert.equal(s.cpu.ip, 0);
});

test('an exit inside the budget returns at once and counts toward instructions', () => {
  const s = snippet([0x90, 0x90, 0xf4, 0x90]);
  assert.equal(execute(s, 100).kind, 'hlt');
  assert.equal(s.cpu.instructions, 3);
  assert.deepEqual(execute(s, 1), { kind: 'budget' });
  assert.equal(s.cpu.instructions, 4);
});
