// ALU instructions of the subset: results and the six status flags (Intel SDM vol. 2, "Flags
// Affected" of ADD, SUB, CMP, AND, OR, XOR, INC, DEC, SHL, SHR).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Flag, Gpr, STATUS_FLAGS } from '../../src/lab/x86/cpu';
import { execute, readDword, readWord, snippet, writeDword, writeWord } from './snippet';
import { only, statusFlags } from './flags';

/** Runs one instruction with AX/EAX = a, BX/EBX = b and every status flag set beforehand. */
function runBinary(code: number[], a: number, b: number) {
  const s = snippet(code);
  s.cpu.gpr[Gpr.EAX] = a;
  s.cpu.gpr[Gpr.EBX] = b;
  s.cpu.flags |= STATUS_FLAGS | Flag.IF;
  assert.equal(execute(s).kind, 'budget');
  return s;
}

const ADD_AX_BX = [0x01, 0xd8];
const SUB_AX_BX = [0x29, 0xd8];
const CMP_AX_BX = [0x39, 0xd8];

test('add r/m16, r16 (01 /r): result and flags', () => {
  const cases: [number, number, number, ReturnType<typeof only>][] = [
    [0x7fff, 0x0001, 0x8000, only('SF', 'OF', 'AF', 'PF')],
    [0xffff, 0x0001, 0x0000, only('CF', 'ZF', 'AF', 'PF')],
    [0x1234, 0x1111, 0x2345, only()],
    [0x8000, 0x8000, 0x0000, only('CF', 'ZF', 'OF', 'PF')],
  ];
  for (const [a, b, result, flags] of cases) {
    const s = runBinary(ADD_AX_BX, a, b);
    assert.equal(s.cpu.gpr[Gpr.EAX], result, `add 0x${a.toString(16)} + 0x${b.toString(16)}`);
    assert.deepEqual(statusFlags(s.cpu), flags, `flags of 0x${a.toString(16)} + 0x${b.toString(16)}`);
  }
});

test('sub and cmp (29 /r, 39 /r): CF is the borrow, OF the signed overflow; cmp keeps the operand', () => {
  const cases: [number, number, number, ReturnType<typeof only>][] = [
    [0x0000, 0x0001, 0xffff, only('CF', 'SF', 'AF', 'PF')],
    [0x8000, 0x0001, 0x7fff, only('OF', 'AF', 'PF')],
    [0x0005, 0x0005, 0x0000, only('ZF', 'PF')],
    [0x0003, 0x0005, 0xfffe, only('CF', 'SF', 'AF')],
  ];
  for (const [a, b, result, flags] of cases) {
    const sub = runBinary(SUB_AX_BX, a, b);
    assert.equal(sub.cpu.gpr[Gpr.EAX], result);
    assert.deepEqual(statusFlags(sub.cpu), flags, `sub 0x${a.toString(16)} - 0x${b.toString(16)}`);
    const cmp = runBinary(CMP_AX_BX, a, b);
    assert.equal(cmp.cpu.gpr[Gpr.EAX], a, 'cmp does not write its operand');
    assert.deepEqual(statusFlags(cmp.cpu), flags, `cmp 0x${a.toString(16)}, 0x${b.toString(16)}`);
  }
});

test('and / or / xor clear CF and OF and set ZF SF PF from the result', () => {
  const and = runBinary([0x21, 0xd8], 0xf0f0, 0x0ff0);
  assert.equal(and.cpu.gpr[Gpr.EAX], 0x00f0);
  assert.deepEqual(statusFlags(and.cpu), only('PF'));
  const or = runBinary([0x09, 0xd8], 0x8000, 0x0001);
  assert.equal(or.cpu.gpr[Gpr.EAX], 0x8001);
  assert.deepEqual(statusFlags(or.cpu), only('SF'));
  const xor = runBinary([0x31, 0xd8], 0x1234, 0x1234);
  assert.equal(xor.cpu.gpr[Gpr.EAX], 0);
  assert.deepEqual(statusFlags(xor.cpu), only('ZF', 'PF'));
});

test('xor ax, ax (31 C0) zeroes AX, keeps the upper half of EAX, sets ZF and PF', () => {
  const s = runBinary([0x31, 0xc0], 0xdead_beef, 0);
  assert.equal(s.cpu.gpr[Gpr.EAX], 0xdead_0000);
  assert.deepEqual(statusFlags(s.cpu), only('ZF', 'PF'));
  assert.equal(s.cpu.ip, 2);
  assert.ok((s.cpu.flags & Flag.IF) !== 0, 'IF is not a status flag');
  assert.ok((s.cpu.flags & Flag.RESERVED_ONE) !== 0, 'bit 1 stays set');
});

test('the reg <- r/m direction (03, 0B, 23, 2B, 33, 3B) writes the reg operand', () => {
  const add = runBinary([0x03, 0xc3], 10, 3); // add ax, bx
  assert.equal(add.cpu.gpr[Gpr.EAX], 13);
  assert.equal(add.cpu.gpr[Gpr.EBX], 3);
  const sub = runBinary([0x2b, 0xd8], 10, 3); // sub bx, ax
  assert.equal(sub.cpu.gpr[Gpr.EBX], 0xfff9);
  assert.equal(sub.cpu.gpr[Gpr.EAX], 10);
  const cmp = runBinary([0x3b, 0xc3], 10, 3); // cmp ax, bx
  assert.equal(cmp.cpu.gpr[Gpr.EAX], 10);
  assert.deepEqual(statusFlags(cmp.cpu), only(), '10 - 3 = 7: three bits set, so PF is clear');
});

test('32-bit forms with 0x66: add / sub / cmp eax', () => {
  const add = runBinary([0x66, 0x01, 0xd8], 0xffff_ffff, 1);
  assert.equal(add.cpu.gpr[Gpr.EAX], 0);
  assert.deepEqual(statusFlags(add.cpu), only('CF', 'ZF', 'AF', 'PF'));
  const overflow = runBinary([0x66, 0x01, 0xd8], 0x7fff_ffff, 1);
  assert.equal(overflow.cpu.gpr[Gpr.EAX], 0x8000_0000);
  assert.deepEqual(statusFlags(overflow.cpu), only('SF', 'OF', 'AF', 'PF'));
  const sub = runBinary([0x66, 0x29, 0xd8], 0, 1);
  assert.equal(sub.cpu.gpr[Gpr.EAX], 0xffff_ffff);
  assert.deepEqual(statusFlags(sub.cpu), only('CF', 'SF', 'AF', 'PF'));
  const cmp = runBinary([0x66, 0x39, 0xd8], 0x8000_0000, 1);
  assert.equal(cmp.cpu.gpr[Gpr.EAX], 0x8000_0000);
  assert.deepEqual(statusFlags(cmp.cpu), only('OF', 'AF', 'PF'));
});

test('cmp ax, imm16 (3D) and cmp eax, imm32 (66 3D)', () => {
  const equal = runBinary([0x3d, 0x34, 0x12], 0x1234, 0);
  assert.deepEqual(statusFlags(equal.cpu), only('ZF', 'PF'));
  assert.equal(equal.cpu.ip, 3);
  const below = runBinary([0x3d, 0x35, 0x12], 0x1234, 0);
  assert.ok(statusFlags(below.cpu).CF);
  const wide = runBinary([0x66, 0x3d, 0x00, 0x00, 0x01, 0x00], 0x0001_0000, 0);
  assert.deepEqual(statusFlags(wide.cpu), only('ZF', 'PF'));
  assert.equal(wide.cpu.ip, 6);
  const wideBelow = runBinary([0x66, 0x3d, 0x01, 0x00, 0x01, 0x00], 0x0001_0000, 0);
  assert.deepEqual(statusFlags(wideBelow.cpu), only('CF', 'SF', 'AF', 'PF'));
});

test('add / sub ax, imm16 (05, 2D) and add al, imm8 (04) keeping AH', () => {
  const add = runBinary([0x05, 0x01, 0x00], 0xffff, 0);
  assert.equal(add.cpu.gpr[Gpr.EAX], 0);
  const sub = runBinary([0x2d, 0x10, 0x00], 0x0100, 0);
  assert.equal(sub.cpu.gpr[Gpr.EAX], 0x00f0);
  const al = runBinary([0x04, 0x01], 0x12ff, 0);
  assert.equal(al.cpu.gpr[Gpr.EAX], 0x1200, 'AL wraps, AH is kept');
  assert.deepEqual(statusFlags(al.cpu), only('CF', 'ZF', 'AF', 'PF'));
  const signed = runBinary([0x04, 0x01], 0x7f, 0);
  assert.equal(signed.cpu.gpr[Gpr.EAX], 0x80);
  assert.deepEqual(statusFlags(signed.cpu), only('SF', 'OF', 'AF'));
  const cmpAl = runBinary([0x3c, 0x30], 0x30, 0);
  assert.deepEqual(statusFlags(cmpAl.cpu), only('ZF', 'PF'));
});

test('81 /digit and 83 /digit on registers, 83 sign-extends its imm8', () => {
  const addBx = runBinary([0x81, 0xc3, 0x00, 0x10], 0, 0x0234); // add bx, 0x1000
  assert.equal(addBx.cpu.gpr[Gpr.EBX], 0x1234);
  const subBx = runBinary([0x81, 0xeb, 0x10, 0x27], 0, 10000); // sub bx, 10000
  assert.equal(subBx.cpu.gpr[Gpr.EBX], 0);
  assert.ok(statusFlags(subBx.cpu).ZF);
  const cmpBx = runBinary([0x81, 0xfb, 0x10, 0x27], 0, 9999); // cmp bx, 10000
  assert.ok(statusFlags(cmpBx.cpu).CF);
  assert.equal(cmpBx.cpu.gpr[Gpr.EBX], 9999);
  const minusOne = runBinary([0x83, 0xc3, 0xff], 0, 5); // add bx, -1
  assert.equal(minusOne.cpu.gpr[Gpr.EBX], 4);
  assert.ok(statusFlags(minusOne.cpu).CF, '5 + 0xffff carries');
  const wide = runBinary([0x66, 0x83, 0xc3, 0xff], 0, 0); // add ebx, -1
  assert.equal(wide.cpu.gpr[Gpr.EBX], 0xffff_ffff);
  const cmpCx = runBinary([0x83, 0xf9, 0x00], 0, 0); // cmp cx, 0
  assert.ok(statusFlags(cmpCx.cpu).ZF);
});

test('cmp word [m16], imm16 (81 3E) and memory-destination ALU forms', () => {
  const s = snippet([0x81, 0x3e, 0x10, 0x00, 0x03, 0x00, 0x81, 0x3e, 0x10, 0x00, 0x04, 0x00, 0x81, 0x06, 0x10, 0x00, 0xff, 0xff]);
  writeWord(s, 0x10, 3);
  execute(s);
  assert.deepEqual(statusFlags(s.cpu), only('ZF', 'PF'));
  execute(s);
  assert.ok(statusFlags(s.cpu).CF, '3 < 4');
  assert.equal(readWord(s, 0x10), 3, 'cmp does not write memory');
  execute(s); // add word [0x10], 0xffff
  assert.equal(readWord(s, 0x10), 2);
  assert.equal(s.cpu.ip, 18);

  const m = snippet([0x66, 0x01, 0x1e, 0x20, 0x00]); // add [0x20], ebx
  writeDword(m, 0x20, 0x0000_ffff);
  m.cpu.gpr[Gpr.EBX] = 1;
  execute(m);
  assert.equal(readDword(m, 0x20), 0x0001_0000);
});

test('sub eax, [m16] (66 2B 06) and cmp eax, [m16] (66 3B 06): the TSC-wait pair', () => {
  const s = snippet([0x66, 0x2b, 0x06, 0x00, 0x01, 0x66, 0x3b, 0x06, 0x04, 0x01]);
  s.cpu.gpr[Gpr.EAX] = 0x0000_0010;
  writeDword(s, 0x100, 0xffff_fff0); // the TSC wrapped since the start: difference 0x20
  writeDword(s, 0x104, 0x21);
  execute(s);
  assert.equal(s.cpu.gpr[Gpr.EAX], 0x20);
  execute(s);
  assert.ok(statusFlags(s.cpu).CF, '0x20 < 0x21: still waiting');
  assert.equal(s.cpu.ip, 10);
});

test('inc / dec r (40+r, 48+r) keep CF and set OF at the signed edge', () => {
  const incCx = snippet([0x41]);
  incCx.cpu.gpr[Gpr.ECX] = 0x7fff;
  incCx.cpu.flags |= Flag.CF;
  execute(incCx);
  assert.equal(incCx.cpu.gpr[Gpr.ECX], 0x8000);
  assert.deepEqual(statusFlags(incCx.cpu), only('CF', 'SF', 'OF', 'AF', 'PF'));

  const decCx = snippet([0x49]);
  decCx.cpu.gpr[Gpr.ECX] = 0x0001_0000; // CX = 0: wraps within 16 bits
  execute(decCx);
  assert.equal(decCx.cpu.gpr[Gpr.ECX], 0x0001_ffff);
  assert.deepEqual(statusFlags(decCx.cpu), only('SF', 'AF', 'PF'), 'CF stays clear');

  for (let reg = 0; reg < 8; reg++) {
    const s = snippet([0x40 + reg, 0x48 + reg, 0x48 + reg]);
    s.cpu.gpr[reg] = 5;
    execute(s, 3);
    assert.equal(s.cpu.gpr[reg], 4, `register ${reg}`);
  }

  const wide = snippet([0x66, 0x41]);
  wide.cpu.gpr[Gpr.ECX] = 0x0000_ffff;
  execute(wide);
  assert.equal(wide.cpu.gpr[Gpr.ECX], 0x0001_0000, '66 41 is inc ecx');
  assert.equal(wide.cpu.ip, 2);
});

test('inc / lock inc / dec word [m16] (FF 06, F0 FF 06, FF 0E)', () => {
  const s = snippet([0xff, 0x06, 0x40, 0x00, 0xf0, 0xff, 0x06, 0x40, 0x00, 0xff, 0x0e, 0x42, 0x00]);
  writeWord(s, 0x40, 0xfffe);
  writeWord(s, 0x42, 0x0000);
  s.cpu.flags |= Flag.CF;
  execute(s);
  assert.equal(readWord(s, 0x40), 0xffff);
  execute(s);
  assert.equal(readWord(s, 0x40), 0x0000);
  assert.deepEqual(statusFlags(s.cpu), only('CF', 'ZF', 'AF', 'PF'), 'inc keeps CF');
  assert.equal(s.cpu.ip, 9);
  execute(s);
  assert.equal(readWord(s, 0x42), 0xffff);
  assert.equal(readWord(s, 0x44), 0, 'a word write touches two bytes only');

  const wide = snippet([0x66, 0xf0, 0xff, 0x06, 0x40, 0x00]);
  writeDword(wide, 0x40, 0x0000_ffff);
  execute(wide);
  assert.equal(readDword(wide, 0x40), 0x0001_0000, 'prefixes in either order; 66 widens');
});

test('shl / shr by one (D1 /4, D1 /5): CF is the bit shifted out', () => {
  const shl = runBinary([0xd1, 0xe0], 0x8001, 0);
  assert.equal(shl.cpu.gpr[Gpr.EAX], 0x0002);
  assert.deepEqual(statusFlags(shl.cpu), only('CF', 'OF'), 'OF = new sign XOR CF');
  const shr = runBinary([0xd1, 0xe8], 0x8001, 0);
  assert.equal(shr.cpu.gpr[Gpr.EAX], 0x4000);
  assert.deepEqual(statusFlags(shr.cpu), only('CF', 'OF', 'PF'), 'OF = the old sign');
  const mem = snippet([0xd1, 0x2e, 0x08, 0x00, 0xd1, 0x2e, 0x08, 0x00]);
  writeWord(mem, 0x08, 0b10);
  execute(mem);
  assert.equal(readWord(mem, 0x08), 0b1);
  assert.equal(statusFlags(mem.cpu).CF, false);
  execute(mem);
  assert.equal(readWord(mem, 0x08), 0);
  assert.deepEqual(statusFlags(mem.cpu), only('CF', 'ZF', 'PF'));
});

/** A deterministic generator (xorshift32) for the cross-check below. */
function xorshift(seed: number): () => number {
  let x = seed >>> 0;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x;
  };
}

test('add / sub flags agree with a signed/unsigned reference on 3000 operand pairs per width', () => {
  const random = xorshift(0x5eed);
  const widths = [
    { bits: 8, add: [0x04], sub: [0x2c], immBytes: 1 },
    { bits: 16, add: [0x05], sub: [0x2d], immBytes: 2 },
    { bits: 32, add: [0x66, 0x05], sub: [0x66, 0x2d], immBytes: 4 },
  ];
  for (const width of widths) {
    const modulus = 2 ** width.bits;
    const signed = (v: number): number => (v >= modulus / 2 ? v - modulus : v);
    for (let i = 0; i < 3000; i++) {
      // Mix edge values in, since random operands rarely hit them.
      const edges = [0, 1, modulus / 2 - 1, modulus / 2, modulus - 1];
      const a = i % 7 === 0 ? edges[i % 5] : random() % modulus;
      const b = i % 11 === 0 ? edges[(i >> 1) % 5] : random() % modulus;
      const imm = Array.from({ length: width.immBytes }, (_, k) => Math.floor(b / 256 ** k) % 256);
      for (const op of ['add', 'sub'] as const) {
        const s = runBinary([...(op === 'add' ? width.add : width.sub), ...imm], a, 0);
        const exact = op === 'add' ? a + b : a - b;
        const exactSigned = op === 'add' ? signed(a) + signed(b) : signed(a) - signed(b);
        const result = ((exact % modulus) + modulus) % modulus;
        const low = s.cpu.gpr[Gpr.EAX] % modulus;
        const what = `${op}${width.bits} 0x${a.toString(16)}, 0x${b.toString(16)}`;
        assert.equal(low, result, what);
        const flags = statusFlags(s.cpu);
        assert.equal(flags.CF, exact < 0 || exact >= modulus, `${what}: CF`);
        assert.equal(flags.OF, exactSigned < -modulus / 2 || exactSigned >= modulus / 2, `${what}: OF`);
        assert.equal(flags.ZF, result === 0, `${what}: ZF`);
        assert.equal(flags.SF, result >= modulus / 2, `${what}: SF`);
      }
    }
  }
});
