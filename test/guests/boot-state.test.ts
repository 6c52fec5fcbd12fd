// Start states of the lab's guest conventions.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BSP_STACK_POINTER, startApAtSipiVector, startLabBsp } from '../../src/lab/guests/boot-state';
import { CpuState, Flag, Gpr, resetCpuState } from '../../src/lab/x86/cpu';

function dirty(): CpuState {
  const cpu = new CpuState();
  cpu.gpr.fill(0x1234_5678);
  cpu.ip = 0x42;
  cpu.flags |= Flag.IF | Flag.CF;
  for (const seg of [cpu.cs, cpu.ds, cpu.es, cpu.ss]) Object.assign(seg, { selector: 0x9000, base: 0x90000, limit: 0xfffff, access: 0 });
  cpu.instructions = 77;
  return cpu;
}

test('resetCpuState restores the power-on state in place and keeps the instruction count', () => {
  const cpu = dirty();
  const gpr = cpu.gpr;
  const ds = cpu.ds;
  resetCpuState(cpu);
  assert.equal(cpu.gpr, gpr, 'same register file');
  assert.equal(cpu.ds, ds, 'same segment objects');
  const fresh = new CpuState();
  fresh.instructions = 77;
  assert.deepEqual(cpu, fresh);
});

test('startLabBsp: CS=DS=ES=SS=0x1000 (base 0x10000), IP 0, SP 0xFFF0', () => {
  const cpu = dirty();
  startLabBsp(cpu);
  for (const seg of [cpu.cs, cpu.ds, cpu.es, cpu.ss]) {
    assert.equal(seg.selector, 0x1000);
    assert.equal(seg.base, 0x10000);
    assert.equal(seg.limit, 0xffff);
  }
  assert.equal(cpu.ip, 0);
  assert.equal(cpu.gpr[Gpr.ESP], BSP_STACK_POINTER);
  assert.equal(cpu.gpr[Gpr.EAX], 0);
  assert.equal(cpu.flags, 0x2);
});

test('startApAtSipiVector: CS selector V << 8, base V << 12, IP 0, DS=ES=SS=0', () => {
  const cpu = dirty();
  startApAtSipiVector(cpu, 0x11);
  assert.deepEqual([cpu.cs.selector, cpu.cs.base, cpu.ip], [0x1100, 0x11000, 0]);
  for (const seg of [cpu.ds, cpu.es, cpu.ss]) assert.deepEqual([seg.selector, seg.base], [0, 0]);
  assert.throws(() => startApAtSipiVector(cpu, 0x100), /STARTUP vector 256/);
});
