// Control flow: jcc rel8 / rel16, jmp rel8 / rel16, loop.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Flag, Gpr } from '../../src/lab/x86/cpu';
import { execute, snippet } from './snippet';

const { CF, PF, ZF, SF, OF } = Flag;

/** For each condition code: flag sets under which it holds and under which it does not. */
const CONDITIONS: { cc: number; name: string; taken: number[]; notTaken: number[] }[] = [
  { cc: 0x0, name: 'jo', taken: [OF], notTaken: [0, CF | ZF | SF | PF] },
  { cc: 0x1, name: 'jno', taken: [0], notTaken: [OF] },
  { cc: 0x2, name: 'jb', taken: [CF], notTaken: [0, ZF] },
  { cc: 0x3, name: 'jae', taken: [0, ZF], notTaken: [CF] },
  { cc: 0x4, name: 'je', taken: [ZF], notTaken: [0, CF] },
  { cc: 0x5, name: 'jne', taken: [0, CF], notTaken: [ZF] },
  { cc: 0x6, name: 'jbe', taken: [CF, ZF], notTaken: [0] },
  { cc: 0x7, name: 'ja', taken: [0], notTaken: [CF, ZF] },
  { cc: 0x8, name: 'js', taken: [SF], notTaken: [0] },
  { cc: 0x9, name: 'jns', taken: [0], notTaken: [SF] },
  { cc: 0xa, name: 'jp', taken: [PF], notTaken: [0] },
  { cc: 0xb, name: 'jnp', taken: [0], notTaken: [PF] },
  { cc: 0xc, name: 'jl', taken: [SF, OF], notTaken: [0, SF | OF] },
  { cc: 0xd, name: 'jge', taken: [0, SF | OF], notTaken: [SF, OF] },
  { cc: 0xe, name: 'jle', taken: [ZF, SF, ZF | SF | OF], notTaken: [0, SF | OF] },
  { cc: 0xf, name: 'jg', taken: [0, SF | OF], notTaken: [ZF, SF, OF] },
];

test('jcc rel8 (70+cc): every condition taken and not taken, forward and backward', () => {
  for (const { cc, name, taken, notTaken } of CONDITIONS) {
    for (const flags of taken) {
      const forward = snippet([0x70 | cc, 0x10], { ip: 0x20 });
      forward.cpu.flags |= flags;
      execute(forward);
      assert.equal(forward.cpu.ip, 0x32, `${name} taken with flags 0x${flags.toString(16)}`);
      const backward = snippet([0x70 | cc, 0xfe], { ip: 0x20 }); // jcc $ (to itself)
      backward.cpu.flags |= flags;
      execute(backward);
      assert.equal(backward.cpu.ip, 0x20, `${name} taken backwards`);
    }
    for (const flags of notTaken) {
      const s = snippet([0x70 | cc, 0x10], { ip: 0x20 });
      s.cpu.flags |= flags;
      execute(s);
      assert.equal(s.cpu.ip, 0x22, `${name} not taken with flags 0x${flags.toString(16)}`);
    }
  }
});

test('jcc rel16 (0F 80+cc) uses the same conditions with a 16-bit displacement', () => {
  for (const { cc, name, taken, notTaken } of CONDITIONS) {
    const yes = snippet([0x0f, 0x80 | cc, 0x00, 0x10], { ip: 0x20 });
    yes.cpu.flags |= taken[0];
    execute(yes);
    assert.equal(yes.cpu.ip, 0x1024, `${name} near taken`);
    const no = snippet([0x0f, 0x80 | cc, 0x00, 0x10], { ip: 0x20 });
    no.cpu.flags |= notTaken[0];
    execute(no);
    assert.equal(no.cpu.ip, 0x24, `${name} near not taken`);
  }
});

test('je / jne (74, 75) after cmp, as the guests use them', () => {
  const s = snippet([0x3d, 0x05, 0x00, 0x74, 0x02, 0x90, 0x90, 0x75, 0x7f]);
  s.cpu.gpr[Gpr.EAX] = 5;
  execute(s, 2);
  assert.equal(s.cpu.ip, 7, 'je skipped the two nops');
  execute(s);
  assert.equal(s.cpu.ip, 9, 'jne not taken');
});

test('jb / jae (72, 73) follow CF', () => {
  const s = snippet([0x72, 0x05]);
  s.cpu.flags |= CF;
  execute(s);
  assert.equal(s.cpu.ip, 7);
  const t = snippet([0x73, 0x05]);
  t.cpu.flags |= CF;
  execute(t);
  assert.equal(t.cpu.ip, 2);
});

test('jmp rel8 (EB) and jmp rel16 (E9), with 16-bit wrap-around of IP', () => {
  const short = snippet([0xeb, 0x80], { ip: 0x100 });
  execute(short);
  assert.equal(short.cpu.ip, 0x100 + 2 - 128);
  const near = snippet([0xe9, 0x00, 0x80], { ip: 0x100 });
  execute(near);
  assert.equal(near.cpu.ip, (0x100 + 3 - 0x8000) & 0xffff, 'IP wraps within 64 KiB');
  const forward = snippet([0xe9, 0x3d, 0x00]);
  execute(forward);
  assert.equal(forward.cpu.ip, 0x40);
});

test('loop (E2) decrements CX, keeps the upper half of ECX and the flags, stops at zero', () => {
  const s = snippet([0x90, 0xe2, 0xfd]); // nop; loop -3
  s.cpu.gpr[Gpr.ECX] = 0xabcd_0003;
  s.cpu.flags |= ZF;
  execute(s, 2);
  assert.equal(s.cpu.ip, 0);
  assert.equal(s.cpu.gpr[Gpr.ECX], 0xabcd_0002);
  execute(s, 4);
  assert.equal(s.cpu.ip, 3, 'fell through when CX reached 0');
  assert.equal(s.cpu.gpr[Gpr.ECX], 0xabcd_0000);
  assert.equal(s.cpu.flags & ZF, ZF, 'loop changes no flags');
  assert.equal(s.cpu.instructions, 6);
});

test('loop with CX = 0 runs 65536 times (CX wraps to 0xffff first)', () => {
  const s = snippet([0xe2, 0xfe]); // loop $
  execute(s, 70_000);
  assert.equal(s.cpu.ip, 2);
  assert.equal(s.cpu.instructions, 65_536);
});
