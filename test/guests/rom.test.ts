// The lab's boot ROM and the reset vector: vmmapi.c vcpu_reset puts CS at selector 0xF000 with
// base 0xFFFF0000 (not selector << 4) and IP at 0xFFF0; the interpreter fetches through that base
// from the ROM mapped just below 4 GB until the ROM's far jump reloads CS.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { buildLabRom, LAB_ROM_BYTES, RESET_VECTOR_OFFSET } from '../../src/lab/guests/rom';
import { CpuState, Gpr } from '../../src/lab/x86/cpu';
import { run } from '../../src/lab/x86/interpreter';

const PLATFORM = { tsc: (): bigint => 0n };
const FOUR_GB = 0x1_0000_0000;

function resetCpu(): CpuState {
  const cpu = new CpuState();
  cpu.cs.selector = 0xf000;
  cpu.cs.base = 0xffff0000;
  cpu.ip = 0xfff0;
  cpu.gpr[Gpr.EDX] = 0xf00;
  return cpu;
}

test('the ROM is one page whose reset vector jumps back into it', () => {
  const rom = buildLabRom();
  assert.equal(rom.length, LAB_ROM_BYTES);
  assert.equal(rom[RESET_VECTOR_OFFSET], 0xe9, 'jmp rel16 at linear 0xFFFFFFF0');
});

test('from the reset state the ROM reaches the guest entry point with the documented start state', () => {
  const low = new Uint8Array(0x30000);
  low.set([0xf4], 0x10000); // the guest: hlt at 0x1000:0000
  const cpu = resetCpu();
  const exit = run(cpu, { bytes: low, high: { base: FOUR_GB - LAB_ROM_BYTES, bytes: buildLabRom() } }, PLATFORM, 100);
  assert.equal(exit.kind, 'hlt');
  assert.deepEqual([cpu.cs.selector, cpu.cs.base, cpu.ds.base, cpu.es.base, cpu.ss.base], [0x1000, 0x10000, 0x10000, 0x10000, 0x10000]);
  assert.equal(cpu.gpr[Gpr.ESP] & 0xffff, 0xfff0);
  assert.equal(cpu.gpr[Gpr.EAX] & 0xffff, 0);
  assert.equal(cpu.ip, 1, 'past the hlt at 0x1000:0000');
});

test('a CS base that is not selector << 4 holds until a far jump: near jumps stay inside the ROM', () => {
  const rom = new Uint8Array(LAB_ROM_BYTES);
  rom.set([0xeb, 0x00, 0xf4], RESET_VECTOR_OFFSET); // jmp +0; hlt
  const cpu = resetCpu();
  const exit = run(cpu, { bytes: new Uint8Array(0x20000), high: { base: FOUR_GB - LAB_ROM_BYTES, bytes: rom } }, PLATFORM, 10);
  assert.equal(exit.kind, 'hlt');
  assert.equal(cpu.cs.base, 0xffff0000, 'the hidden base is kept (the selector says 0xF0000)');
  assert.equal(cpu.ip, 0xfff3);
});

test('without a ROM the reset vector is outside guest memory: a triple fault names it', () => {
  const cpu = resetCpu();
  const exit = run(cpu, { bytes: new Uint8Array(0x20000) }, PLATFORM, 10);
  assert.equal(exit.kind, 'fault');
  assert.match(exit.kind === 'fault' ? exit.reason : '', /triple fault at f000:fff0, opcode \(none\): instruction fetch at linear 0xfffffff0 outside guest memory/);
});
