// The forms the boot ROMs need beyond the guests' subset: the string move (movsb, movsw, movsd,
// with rep and the CS override that reaches the boot ROM at the reset CS base) and lidt. in and
// cpuid are exits (exits.test.ts).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CpuState, Flag, Gpr, resetCpuState, setRealModeSegment } from '../../src/lab/x86/cpu';
import { run, type Exit } from '../../src/lab/x86/interpreter';
import { CODE_BASE, DATA_BASE, DATA_SEGMENT, MEMORY_BYTES, execute, snippet, type Snippet } from './snippet';

const FOUR_GB = 0x1_0000_0000;
const ES_SEGMENT = 0x2800;
const ES_BASE = ES_SEGMENT << 4;

function withEs(s: Snippet): Snippet {
  setRealModeSegment(s.cpu.es, ES_SEGMENT);
  return s;
}

function faultOf(exit: Exit): string {
  assert.equal(exit.kind, 'fault', JSON.stringify(exit));
  return exit.kind === 'fault' ? exit.reason : '';
}

test('movsb / movsw / movsd (A4, A5, 66 A5): one element DS:SI -> ES:DI, SI and DI step up, flags and CX kept', () => {
  const s = withEs(snippet([0xa4, 0xa5, 0x66, 0xa5]));
  s.mem.bytes.set([1, 2, 3, 4, 5, 6, 7, 8], DATA_BASE + 0x100);
  s.cpu.gpr[Gpr.ESI] = 0x100;
  s.cpu.gpr[Gpr.EDI] = 0x200;
  s.cpu.gpr[Gpr.ECX] = 0x1234;
  s.cpu.flags = 0x2 | Flag.ZF | Flag.CF;
  assert.equal(execute(s, 3).kind, 'budget');
  assert.deepEqual([...s.mem.bytes.subarray(ES_BASE + 0x200, ES_BASE + 0x208)], [1, 2, 3, 4, 5, 6, 7, 0]);
  assert.equal(s.cpu.gpr[Gpr.ESI], 0x107);
  assert.equal(s.cpu.gpr[Gpr.EDI], 0x207);
  assert.equal(s.cpu.gpr[Gpr.ECX], 0x1234);
  assert.equal(s.cpu.flags, 0x2 | Flag.ZF | Flag.CF);
  assert.equal(s.cpu.instructions, 3);
});

test('rep movsb (F3 A4): CX elements, CX ends at 0, one instruction; CX = 0 moves nothing', () => {
  const s = withEs(snippet([0xf3, 0xa4, 0xf3, 0xa4]));
  for (let i = 0; i < 300; i++) s.mem.bytes[DATA_BASE + i] = i & 0xff;
  s.cpu.gpr[Gpr.ECX] = 0xffff_012c; // CX = 300; the address size is 16 bits, so ECX's upper half stays
  execute(s);
  assert.deepEqual([...s.mem.bytes.subarray(ES_BASE, ES_BASE + 300)], Array.from({ length: 300 }, (_, i) => i & 0xff));
  assert.equal(s.mem.bytes[ES_BASE + 300], 0);
  assert.equal(s.cpu.gpr[Gpr.ECX], 0xffff_0000);
  assert.equal(s.cpu.gpr[Gpr.ESI], 300);
  assert.equal(s.cpu.instructions, 1);
  execute(s);
  assert.equal(s.cpu.gpr[Gpr.ESI], 300, 'CX = 0: nothing moved');
});

test('DF set: SI and DI step down; overlapping ranges copy element by element as x86 does', () => {
  const s = withEs(snippet([0xf3, 0xa5]));
  s.cpu.flags |= Flag.DF;
  s.mem.bytes.set([0x11, 0x22, 0x33, 0x44], DATA_BASE + 0x10);
  s.cpu.gpr[Gpr.ESI] = 0x12;
  s.cpu.gpr[Gpr.EDI] = 0x22;
  s.cpu.gpr[Gpr.ECX] = 2;
  execute(s);
  assert.deepEqual([...s.mem.bytes.subarray(ES_BASE + 0x20, ES_BASE + 0x24)], [0x11, 0x22, 0x33, 0x44]);
  assert.equal(s.cpu.gpr[Gpr.ESI], 0x0e);
  assert.equal(s.cpu.gpr[Gpr.EDI], 0x1e);
  // Forward copy onto itself shifted by one byte: each byte read after the previous write.
  const o = snippet([0xf3, 0xa4]);
  setRealModeSegment(o.cpu.es, DATA_SEGMENT);
  o.mem.bytes.set([7, 0, 0, 0], DATA_BASE);
  o.cpu.gpr[Gpr.ESI] = 0;
  o.cpu.gpr[Gpr.EDI] = 1;
  o.cpu.gpr[Gpr.ECX] = 3;
  execute(o);
  assert.deepEqual([...o.mem.bytes.subarray(DATA_BASE, DATA_BASE + 4)], [7, 7, 7, 7]);
});

test('cs movsw (2E A5) reads through CS: at the reset CS base it reaches the boot ROM below 4 GB', () => {
  const rom = new Uint8Array(0x1000);
  rom.set([0x34, 0x12], 0x800);
  rom.set([0x2e, 0xa5, 0x2e, 0xf3, 0xa4, 0xf4], 0xff0); // the reset vector: cs movsw; cs rep movsb; hlt
  const cpu = new CpuState();
  resetCpuState(cpu);
  cpu.cs.selector = 0xf000;
  cpu.cs.base = 0xffff0000;
  cpu.ip = 0xfff0;
  cpu.gpr[Gpr.ESI] = 0xf800; // CS:F800 = linear 0xFFFFF800 = ROM offset 0x800
  cpu.gpr[Gpr.EDI] = 0x500;
  const low = new Uint8Array(0x20000);
  const exit = run(cpu, { bytes: low, high: { base: FOUR_GB - rom.length, bytes: rom } }, { tsc: () => 0n }, 10);
  assert.equal(exit.kind, 'hlt');
  assert.equal(low[0x500] | (low[0x501] << 8), 0x1234, 'ES base 0: guest-physical 0x500');
  assert.equal(cpu.gpr[Gpr.ESI], 0xf802);
  // After a far jump CS is an ordinary real-mode segment: cs movsb reads guest memory there.
  const s = withEs(snippet([0x2e, 0xa4]));
  s.mem.bytes[CODE_BASE + 0x40] = 0x99;
  s.cpu.gpr[Gpr.ESI] = 0x40;
  execute(s);
  assert.equal(s.mem.bytes[ES_BASE], 0x99);
});

test('movs faults before it writes anything: the source or destination of any element outside memory or the limit', () => {
  // DI wraps within 16 bits (FFFF -> 0) for bytes, as x86 does; a word at FFFF crosses the limit.
  const wrap = snippet([0xf3, 0xa4]);
  setRealModeSegment(wrap.cpu.es, 0x1800); // ES:FFFF is still inside guest memory
  wrap.cpu.gpr[Gpr.EDI] = 0xffff;
  wrap.cpu.gpr[Gpr.ECX] = 2;
  assert.equal(execute(wrap).kind, 'budget');
  assert.equal(wrap.cpu.gpr[Gpr.EDI], 1);
  const word = withEs(snippet([0xa5]));
  word.cpu.gpr[Gpr.EDI] = 0xffff;
  assert.match(faultOf(execute(word)), /data access at ES offset 0xffff \(2 bytes\) beyond the ES limit 0xffff/);
  const src = withEs(snippet([0xf3, 0xa4]));
  src.cpu.gpr[Gpr.ECX] = 4;
  setRealModeSegment(src.cpu.ds, (MEMORY_BYTES - 2) >> 4); // DS base 0x2fff0... past memory after 2 bytes
  src.cpu.gpr[Gpr.ESI] = 0xe;
  const mem = Uint8Array.from(src.mem.bytes);
  assert.match(faultOf(execute(src)), /opcode 0xa4: data access at linear 0x30000 \(1 bytes\) outside guest memory/);
  assert.deepEqual(src.mem.bytes, mem, 'the first two elements were not written');
  assert.equal(src.cpu.gpr[Gpr.ESI], 0xe);
  assert.equal(src.cpu.gpr[Gpr.ECX], 4);
  // A CS read above the ROM's end of 4 GB... and one below its start: neither memory nor ROM.
  const high = withEs(snippet([]));
  high.cpu.cs.base = 0xffff0000;
  high.cpu.gpr[Gpr.ESI] = 0x1000;
  const rom = new Uint8Array(0x1000);
  rom.set([0x2e, 0xa5], 0xff0);
  high.cpu.ip = 0xfff0;
  const exit = run(high.cpu, { bytes: high.mem.bytes, high: { base: FOUR_GB - 0x1000, bytes: rom } }, high.platform, 1);
  assert.match(faultOf(exit), /data access at linear 0xffff1000 \(2 bytes\) outside guest memory \(0x30000 bytes\) and the boot ROM/);
});

test('lidt [m16] (0F 01 /3): limit word and 24-bit base from DS:m16, 32 bits with 66; cs lidt reads the ROM', () => {
  const s = snippet([0x0f, 0x01, 0x1e, 0x10, 0x00, 0x66, 0x0f, 0x01, 0x1e, 0x10, 0x00]);
  s.mem.bytes.set([0xff, 0x03, 0x78, 0x56, 0x34, 0x12], DATA_BASE + 0x10);
  execute(s);
  assert.deepEqual(s.cpu.idtr, { base: 0x345678, limit: 0x3ff });
  execute(s);
  assert.deepEqual(s.cpu.idtr, { base: 0x12345678, limit: 0x3ff });
  assert.equal(s.cpu.instructions, 2);
  const rom = new Uint8Array(0x1000);
  rom.set([0x2e, 0x0f, 0x01, 0x1e, 0x00, 0xf8, 0xf4], 0xff0); // cs lidt [0xf800]; hlt
  const cpu = new CpuState();
  cpu.cs.selector = 0xf000;
  cpu.cs.base = 0xffff0000;
  cpu.ip = 0xfff0;
  assert.deepEqual(cpu.idtr, { base: 0, limit: 0xffff }, 'power-on IDTR: the real-mode vector table');
  const exit = run(cpu, { bytes: new Uint8Array(0x1000), high: { base: FOUR_GB - rom.length, bytes: rom } }, { tsc: () => 0n }, 10);
  assert.equal(exit.kind, 'hlt');
  assert.deepEqual(cpu.idtr, { base: 0, limit: 0 }, 'the ROM\'s zeros at offset 0x800');
});

test('lidt needs a memory operand and the /3 digit; resetCpuState restores the power-on IDTR', () => {
  assert.match(faultOf(execute(snippet([0x0f, 0x01, 0xd8]))), /opcode 0x0f 0x01 \/3 needs a memory operand \(#UD on x86\)/);
  assert.match(faultOf(execute(snippet([0x0f, 0x01, 0x16, 0x00, 0x00]))), /opcode 0x0f 0x01 \/2 \(not in the lab's x86 subset\)/); // lgdt
  assert.match(faultOf(execute(snippet([0x0f, 0x01, 0x1e, 0xfc, 0xff]))), /DS offset 0xfffc \(6 bytes\) beyond the DS limit/);
  const cpu = new CpuState();
  cpu.idtr.limit = 0;
  cpu.idtr.base = 0x1234;
  resetCpuState(cpu);
  assert.deepEqual(cpu.idtr, { base: 0, limit: 0xffff });
});
