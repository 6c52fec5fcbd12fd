// The decoder tables and everything that leaves the subset: unsupported opcodes, /digits,
// addressing modes and prefixes, memory bounds and segment limits. Every fault must leave the
// vCPU as it was before the instruction.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Gpr, setRealModeSegment } from '../../src/lab/x86/cpu';
import { Exit, NO_OPCODE } from '../../src/lab/x86/interpreter';
import { ONE_BYTE_OPCODES, OpType, SUBSET_FORMS, TWO_BYTE_OPCODES } from '../../src/lab/x86/opcodes';
import { subsetMarkdownTable } from '../../src/lab/x86/subset-doc';
import { CODE_SEGMENT, MEMORY_BYTES, Snippet, execute, snippet } from './snippet';

function expectFault(s: Snippet, reason: string | RegExp, opcode?: number): Extract<Exit, { kind: 'fault' }> {
  const before = { ip: s.cpu.ip, gpr: [...s.cpu.gpr], flags: s.cpu.flags, ds: { ...s.cpu.ds }, instructions: s.cpu.instructions };
  const memory = Uint8Array.from(s.mem.bytes);
  const exit = execute(s, 10);
  assert.equal(exit.kind, 'fault', `expected a fault, got ${JSON.stringify(exit)}`);
  if (exit.kind !== 'fault') throw new Error('unreachable');
  if (typeof reason === 'string') assert.equal(exit.reason, reason);
  else assert.match(exit.reason, reason);
  if (opcode !== undefined) assert.equal(exit.opcode, opcode);
  assert.equal(exit.rip, before.ip);
  assert.deepEqual({ ip: s.cpu.ip, gpr: [...s.cpu.gpr], flags: s.cpu.flags, ds: { ...s.cpu.ds }, instructions: s.cpu.instructions }, before,
    'a fault changes no state');
  assert.deepEqual(s.mem.bytes, memory, 'a fault writes no memory');
  return exit;
}

test('the tables have 256 entries each, indexed by their own opcode byte', () => {
  assert.equal(ONE_BYTE_OPCODES.length, 256);
  assert.equal(TWO_BYTE_OPCODES.length, 256);
  ONE_BYTE_OPCODES.forEach((entry, index) => assert.equal(entry.opByte, index));
  TWO_BYTE_OPCODES.forEach((entry, index) => assert.equal(entry.opByte, index));
  const supported = (table: typeof ONE_BYTE_OPCODES): number => table.filter((e) => e.opType !== OpType.UNSUPPORTED).length;
  const documented = (which: 'one-byte' | 'two-byte'): number =>
    SUBSET_FORMS.filter((f) => f.table === which).reduce((n, f) => n + f.opBytes.length, 0);
  assert.equal(supported(ONE_BYTE_OPCODES), documented('one-byte'));
  assert.equal(supported(TWO_BYTE_OPCODES), documented('two-byte'));
  for (const byte of [0x31, 0x8c, 0x8e, 0xa1, 0xa3, 0xc7, 0xff, 0x81, 0x3d, 0x41, 0x49, 0x74, 0x75, 0xeb, 0xe2, 0x90, 0xfa, 0xfb, 0xf4, 0xee, 0xef]) {
    assert.notEqual(ONE_BYTE_OPCODES[byte].opType, OpType.UNSUPPORTED, `0x${byte.toString(16)} is in the required subset`);
  }
  for (const byte of [0xa4, 0xa5, 0xec]) assert.notEqual(ONE_BYTE_OPCODES[byte].opType, OpType.UNSUPPORTED, `0x${byte.toString(16)}: the boot ROMs need it`);
  for (const byte of [0x01, 0x30, 0x31, 0x32, 0xa2]) assert.notEqual(TWO_BYTE_OPCODES[byte].opType, OpType.UNSUPPORTED);
  assert.equal(TWO_BYTE_OPCODES[0x0b].opType, OpType.UNSUPPORTED, 'ud2 stays outside');
});

test('docs/lab-guests.md carries the subset table generated from the decoder table', () => {
  const docs = readFileSync(join(__dirname, '../../../docs/lab-guests.md'), 'utf8');
  assert.ok(docs.includes(subsetMarkdownTable()), 'regenerate the table: node dist/src/lab/x86/subset-doc.js');
});

test('ud2 (0F 0B) at 1000:0042: "triple fault at 1000:0042, opcode 0x0f 0x0b (not in the lab\'s x86 subset)"', () => {
  const s = snippet([0x0f, 0x0b], { ip: 0x42 });
  expectFault(s, "triple fault at 1000:0042, opcode 0x0f 0x0b (not in the lab's x86 subset)", 0x0f0b);
});

test('every byte outside the one-byte table faults with its opcode named', () => {
  for (let byte = 0; byte < 256; byte++) {
    if (ONE_BYTE_OPCODES[byte].opType !== OpType.UNSUPPORTED) continue;
    if ([0x66, 0xf0, 0xf3, 0x2e, 0x0f].includes(byte)) continue; // prefixes and the escape
    const s = snippet([byte, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00], { ip: 0x10 });
    const hex = byte.toString(16).padStart(2, '0');
    expectFault(s, `triple fault at 1000:0010, opcode 0x${hex} (not in the lab's x86 subset)`, byte);
  }
});

test('unsupported /digit of a group opcode: FF /2 (call), 81 /2 (adc), D1 /7 (sar), 8E /1 (mov cs)', () => {
  expectFault(snippet([0xff, 0xd0]), "triple fault at 1000:0000, opcode 0xff /2 (not in the lab's x86 subset)");
  expectFault(snippet([0x81, 0xd0, 0x01, 0x00]), "triple fault at 1000:0000, opcode 0x81 /2 (not in the lab's x86 subset)");
  expectFault(snippet([0xd1, 0xf8]), "triple fault at 1000:0000, opcode 0xd1 /7 (not in the lab's x86 subset)");
  expectFault(snippet([0x8e, 0xc8]), "triple fault at 1000:0000, opcode 0x8e /1 (not in the lab's x86 subset)");
  expectFault(snippet([0x8c, 0xe0]), /opcode 0x8c \/4/, 0x8c);
});

test('addressing modes other than registers and [disp16] fault', () => {
  expectFault(snippet([0x8b, 0x07]), /^triple fault at 1000:0000, opcode 0x8b, ModRM 0x07: addressing mode not in the lab's x86 subset/);
  expectFault(snippet([0xff, 0x46, 0x02]), /ModRM 0x46/); // [bp+disp8]
  expectFault(snippet([0x01, 0x80, 0x00, 0x00]), /ModRM 0x80/); // [bx+si+disp16]
});

test('prefixes: lock only on inc/dec of memory, rep only as pause and on movs, cs only on movs and lidt, 0x66 not on branches', () => {
  expectFault(snippet([0xf0, 0xff, 0xc0]), /lock prefix 0xf0 is allowed only on inc\/dec of a memory operand/); // lock inc ax
  expectFault(snippet([0xf0, 0x89, 0x06, 0x00, 0x00]), /opcode 0x89: lock prefix/);
  expectFault(snippet([0xf0, 0x90]), /lock prefix/);
  expectFault(snippet([0xf3, 0xa1, 0x00, 0x00]), "triple fault at 1000:0000, opcode 0xa1: rep prefix 0xf3 is in the subset only as pause (f3 90) and on movs");
  expectFault(snippet([0xf3, 0xec]), /rep prefix 0xf3/);
  expectFault(snippet([0x2e, 0xa1, 0x00, 0x00]), "triple fault at 1000:0000, opcode 0xa1: segment override prefix 0x2e (cs) is in the subset only on movs and lidt");
  expectFault(snippet([0x2e, 0x90]), /segment override prefix 0x2e/);
  expectFault(snippet([0x2e, 0x0f, 0xa2]), /opcode 0x0f 0xa2: segment override prefix 0x2e/);
  expectFault(snippet([0xf0, 0xa4]), /lock prefix/);
  expectFault(snippet([0x26, 0xa4]), "triple fault at 1000:0000, opcode 0x26 (not in the lab's x86 subset)", 0x26); // es override
  expectFault(snippet([0x3e, 0xa4]), /opcode 0x3e \(not in the lab's x86 subset\)/); // ds override
  expectFault(snippet([0x66, 0xeb, 0x00]), /operand-size prefix 0x66 on a branch/);
  expectFault(snippet([0x66, 0xe9, 0x00, 0x00, 0x00, 0x00]), /operand-size prefix/);
  expectFault(snippet([0x66, 0x0f, 0x84, 0x00, 0x00]), /operand-size prefix/);
  const ignored = snippet([0x66, 0x90, 0x66, 0xfa]);
  assert.equal(execute(ignored, 2).kind, 'budget', '0x66 on an instruction without operands is ignored, as on x86');
  assert.equal(ignored.cpu.ip, 4);
});

test('an instruction longer than 15 bytes faults (#GP on x86)', () => {
  expectFault(snippet([...Array(15).fill(0x66), 0x90]), /instruction longer than 15 bytes/, NO_OPCODE);
  const fifteen = snippet([...Array(14).fill(0x66), 0x90]);
  assert.equal(execute(fifteen).kind, 'budget');
});

test('data accesses outside guest memory fault; the last byte in memory is readable', () => {
  const s = snippet([0xa1, 0x0f, 0x00]); // mov ax, [0x000f]
  setRealModeSegment(s.cpu.ds, (MEMORY_BYTES - 0x10) >> 4); // DS:000F = last byte of memory
  expectFault(s, `triple fault at 1000:0000, opcode 0xa1: data access at linear 0x2ffff (2 bytes) outside guest memory (0x30000 bytes)`);
  const byte = snippet([0xa0, 0x0f, 0x00]);
  setRealModeSegment(byte.cpu.ds, (MEMORY_BYTES - 0x10) >> 4);
  byte.mem.bytes[MEMORY_BYTES - 1] = 0x77;
  execute(byte);
  assert.equal(byte.cpu.gpr[Gpr.EAX] & 0xff, 0x77);
  const far = snippet([0xc7, 0x06, 0x00, 0x00, 0x01, 0x00]);
  setRealModeSegment(far.cpu.ds, 0xf000);
  expectFault(far, /outside guest memory/, 0xc7);
  const rmw = snippet([0xf0, 0xff, 0x06, 0x00, 0x00]);
  setRealModeSegment(rmw.cpu.ds, 0xf000);
  expectFault(rmw, /opcode 0xff: data access at linear 0xf0000/);
});

test('a word at DS offset 0xffff crosses the segment limit and faults (no wrap to offset 0)', () => {
  expectFault(snippet([0xa1, 0xff, 0xff]), /data access at DS offset 0xffff \(2 bytes\) beyond the DS limit 0xffff/);
  expectFault(snippet([0x66, 0xa3, 0xfd, 0xff]), /DS offset 0xfffd \(4 bytes\)/);
});

test('instruction fetch outside guest memory or past the CS limit faults', () => {
  const s = snippet([]);
  setRealModeSegment(s.cpu.cs, 0xf000);
  s.cpu.ip = 0xfff0;
  expectFault(s, 'triple fault at f000:fff0, opcode (none): instruction fetch at linear 0xffff0 outside guest memory (0x30000 bytes)', NO_OPCODE);
  const partial = snippet([]);
  partial.mem.bytes.set([0xb8, 0x34], MEMORY_BYTES - 2); // mov ax, imm16 cut off by the end of memory
  setRealModeSegment(partial.cpu.cs, (MEMORY_BYTES - 0x10000) >> 4);
  partial.cpu.ip = 0xfffe;
  expectFault(partial, /opcode 0xb8: instruction fetch at IP 0x10000 beyond the CS limit 0xffff/, 0xb8);
});

test('the fault names CS:IP of the first prefix byte', () => {
  const s = snippet([0x90, 0x66, 0x0f, 0xff], { ip: 0x1ff });
  const exit = execute(s, 10);
  assert.equal(exit.kind, 'fault');
  assert.equal(exit.kind === 'fault' && exit.reason, `triple fault at ${CODE_SEGMENT.toString(16)}:0200, opcode 0x0f 0xff (not in the lab's x86 subset)`);
  assert.equal(s.cpu.ip, 0x200);
  assert.equal(s.cpu.instructions, 1, 'the nop before it counted, the fault did not');
});
