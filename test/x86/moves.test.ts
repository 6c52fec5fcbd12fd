// Data movement: immediates, registers, [m16] and segment registers.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuState, Gpr, REAL_MODE_CODE_ACCESS, REAL_MODE_DATA_ACCESS, setRealModeSegment } from '../../src/lab/x86/cpu';
import { CODE_SEGMENT, DATA_BASE, DATA_SEGMENT, execute, readDword, readWord, snippet, writeDword, writeWord } from './snippet';

test('power-on CpuState: zero registers, flags 0x2, real-mode segments at 0 with limit 0xffff', () => {
  const cpu = new CpuState();
  assert.deepEqual([...cpu.gpr], [0, 0, 0, 0, 0, 0, 0, 0]);
  assert.equal(cpu.ip, 0);
  assert.equal(cpu.flags, 0x2);
  assert.equal(cpu.instructions, 0);
  for (const seg of [cpu.cs, cpu.ds, cpu.es, cpu.ss]) {
    assert.equal(seg.selector, 0);
    assert.equal(seg.base, 0);
    assert.equal(seg.limit, 0xffff);
  }
  assert.equal(cpu.cs.access, REAL_MODE_CODE_ACCESS);
  assert.equal(cpu.ds.access, REAL_MODE_DATA_ACCESS);
  assert.notEqual(cpu.ds, cpu.es, 'each segment register is its own object');
});

test('setRealModeSegment: base = selector << 4, limit and access kept', () => {
  const cpu = new CpuState();
  cpu.ds.limit = 0xfffff;
  setRealModeSegment(cpu.ds, 0x1234);
  assert.deepEqual(cpu.ds, { selector: 0x1234, base: 0x12340, limit: 0xfffff, access: REAL_MODE_DATA_ACCESS });
});

test('mov r16, imm16 (B8+r) for every register keeps the upper halves', () => {
  for (let reg = 0; reg < 8; reg++) {
    const s = snippet([0xb8 + reg, 0x34, 0x12]);
    s.cpu.gpr[reg] = 0xaaaa_5555;
    execute(s);
    assert.equal(s.cpu.gpr[reg], 0xaaaa_1234, `register ${reg}`);
    assert.equal(s.cpu.ip, 3);
  }
});

test('mov r32, imm32 (66 B8+r)', () => {
  const s = snippet([0x66, 0xb9, 0x30, 0x08, 0x00, 0x00, 0x66, 0xb8, 0xef, 0xbe, 0xad, 0xde]);
  execute(s, 2);
  assert.equal(s.cpu.gpr[Gpr.ECX], 0x830);
  assert.equal(s.cpu.gpr[Gpr.EAX], 0xdead_beef);
  assert.equal(s.cpu.ip, 12);
});

test('mov dx, imm16 (BA) is B8+r with r = DX', () => {
  const s = snippet([0xba, 0x04, 0x04]);
  execute(s);
  assert.equal(s.cpu.gpr[Gpr.EDX], 0x404);
});

test('mov r8, imm8 (B0+r): AL CL DL BL and AH CH DH BH', () => {
  const s = snippet([0xb0, 0x11, 0xb1, 0x22, 0xb2, 0x33, 0xb3, 0x44, 0xb4, 0x55, 0xb5, 0x66, 0xb6, 0x77, 0xb7, 0x88]);
  for (let reg = 0; reg < 4; reg++) s.cpu.gpr[reg] = 0xffff_0000;
  execute(s, 8);
  assert.equal(s.cpu.gpr[Gpr.EAX], 0xffff_5511);
  assert.equal(s.cpu.gpr[Gpr.ECX], 0xffff_6622);
  assert.equal(s.cpu.gpr[Gpr.EDX], 0xffff_7733);
  assert.equal(s.cpu.gpr[Gpr.EBX], 0xffff_8844);
});

test('mov ax, [m16] / mov [m16], ax (A1, A3) and the 32-bit and byte forms', () => {
  const s = snippet([
    0xa1, 0x00, 0x01, // mov ax, [0x100]
    0xa3, 0x02, 0x01, // mov [0x102], ax
    0x66, 0xa1, 0x10, 0x01, // mov eax, [0x110]
    0x66, 0xa3, 0x20, 0x01, // mov [0x120], eax
    0xa0, 0x30, 0x01, // mov al, [0x130]
    0xa2, 0x31, 0x01, // mov [0x131], al
  ]);
  writeWord(s, 0x100, 0xbeef);
  writeDword(s, 0x110, 0x1234_5678);
  s.mem.bytes[DATA_BASE + 0x130] = 0x5a;
  s.cpu.gpr[Gpr.EAX] = 0xffff_0000;
  execute(s, 2);
  assert.equal(s.cpu.gpr[Gpr.EAX], 0xffff_beef);
  assert.equal(readWord(s, 0x102), 0xbeef);
  execute(s, 2);
  assert.equal(s.cpu.gpr[Gpr.EAX], 0x1234_5678);
  assert.equal(readDword(s, 0x120), 0x1234_5678);
  execute(s, 2);
  assert.equal(s.cpu.gpr[Gpr.EAX], 0x1234_565a);
  assert.equal(s.mem.bytes[DATA_BASE + 0x131], 0x5a);
  assert.equal(s.cpu.ip, 20);
});

test('[m16] is DS-relative: changing DS changes the address', () => {
  const s = snippet([0xa1, 0x00, 0x00]);
  setRealModeSegment(s.cpu.ds, DATA_SEGMENT + 1); // base 16 bytes higher
  writeWord(s, 0x10, 0x4242);
  execute(s);
  assert.equal(s.cpu.gpr[Gpr.EAX], 0x4242);
});

test('mov r, r/m and mov r/m, r (8B, 89): registers and [m16]', () => {
  const s = snippet([
    0x8b, 0x1e, 0x00, 0x05, // mov bx, [0x500]
    0x89, 0x1e, 0x1c, 0x00, // mov [0x1c], bx
    0x89, 0xd8, // mov ax, bx
    0x66, 0x8b, 0xca, // mov ecx, edx
  ]);
  writeWord(s, 0x500, 7);
  s.cpu.gpr[Gpr.EDX] = 0x8765_4321;
  execute(s, 4);
  assert.equal(s.cpu.gpr[Gpr.EBX], 7);
  assert.equal(readWord(s, 0x1c), 7);
  assert.equal(s.cpu.gpr[Gpr.EAX], 7);
  assert.equal(s.cpu.gpr[Gpr.ECX], 0x8765_4321);
});

test('mov word [m16], imm16 (C7 06) and mov dword [m16], imm32 (66 C7 06)', () => {
  const s = snippet([0xc7, 0x06, 0x20, 0x00, 0x01, 0x00, 0x66, 0xc7, 0x06, 0x24, 0x00, 0x78, 0x56, 0x34, 0x12]);
  writeDword(s, 0x20, 0xffff_ffff);
  execute(s, 2);
  assert.equal(readDword(s, 0x20), 0xffff_0001);
  assert.equal(readDword(s, 0x24), 0x1234_5678);
  assert.equal(s.cpu.ip, 15);
});

test('mov ax, cs / mov ds, ax (8C C8, 8E D8) and the other segment registers', () => {
  const s = snippet([
    0x8c, 0xc8, // mov ax, cs
    0x8e, 0xd8, // mov ds, ax
    0x8e, 0xc0, // mov es, ax
    0x8e, 0xd0, // mov ss, ax
    0x8c, 0xc3, // mov bx, es
    0x8c, 0x1e, 0x40, 0x00, // mov [0x40], ds
  ]);
  s.cpu.gpr[Gpr.EAX] = 0xffff_0000;
  execute(s);
  assert.equal(s.cpu.gpr[Gpr.EAX], 0xffff_0000 + CODE_SEGMENT);
  execute(s, 3);
  for (const seg of [s.cpu.ds, s.cpu.es, s.cpu.ss]) {
    assert.equal(seg.selector, CODE_SEGMENT);
    assert.equal(seg.base, CODE_SEGMENT << 4);
  }
  execute(s, 2);
  assert.equal(s.cpu.gpr[Gpr.EBX], CODE_SEGMENT);
  assert.equal(s.mem.bytes[(CODE_SEGMENT << 4) + 0x40], CODE_SEGMENT & 0xff, 'written through the new DS');
  assert.equal(s.cpu.ip, 14);
});

test('xor ax, ax; mov ds, ax reaches guest-physical 0x0500 (how smp-boot reads the vCPU count)', () => {
  const s = snippet([0x31, 0xc0, 0x8e, 0xd8, 0xa1, 0x00, 0x05]);
  s.mem.bytes[0x500] = 4;
  execute(s, 3);
  assert.equal(s.cpu.ds.base, 0);
  assert.equal(s.cpu.gpr[Gpr.EAX], 4);
});
