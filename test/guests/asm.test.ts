// The assembler: the exact bytes of each method, labels and fix-ups, and its errors.

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Assembler } from '../../src/lab/guests/asm';
import { CpuState, Gpr, setRealModeSegment } from '../../src/lab/x86/cpu';
import { run } from '../../src/lab/x86/interpreter';

function encode(build: (asm: Assembler) => void): number[] {
  const asm = new Assembler();
  build(asm);
  return [...asm.bytes()];
}

test('each method emits the documented encoding', () => {
  const cases: [string, (asm: Assembler) => void, number[]][] = [
    ['mov ax, 0x1234', (a) => a.movImm16('ax', 0x1234), [0xb8, 0x34, 0x12]],
    ['in al, dx', (a) => a.inAlDx(), [0xec]],
    ['cpuid', (a) => a.cpuid(), [0x0f, 0xa2]],
    ['movsb', (a) => a.movsb(), [0xa4]],
    ['cs rep movsb', (a) => a.movsb({ cs: true, rep: true }), [0x2e, 0xf3, 0xa4]],
    ['cs movsw', (a) => a.movsw({ cs: true }), [0x2e, 0xa5]],
    ['rep movsd', (a) => a.movsd({ rep: true }), [0xf3, 0x66, 0xa5]],
    ['lidt [0x20]', (a) => a.lidt(0x20), [0x0f, 0x01, 0x1e, 0x20, 0x00]],
    ['cs lidt [0xf818]', (a) => a.lidt(0xf818, { cs: true }), [0x2e, 0x0f, 0x01, 0x1e, 0x18, 0xf8]],
    ['mov dx, 0x404', (a) => a.movImm16('dx', 0x404), [0xba, 0x04, 0x04]],
    ['mov ecx, 0x830', (a) => a.movImm32('ecx', 0x830), [0x66, 0xb9, 0x30, 0x08, 0x00, 0x00]],
    ['mov al, 6', (a) => a.movImm8('al', 6), [0xb0, 0x06]],
    ['mov bh, 1', (a) => a.movImm8('bh', 1), [0xb7, 0x01]],
    ['xor ax, ax', (a) => a.aluReg('xor', 'ax', 'ax'), [0x31, 0xc0]],
    ['xor edx, edx', (a) => a.aluReg('xor', 'edx', 'edx'), [0x66, 0x31, 0xd2]],
    ['mov ax, bx', (a) => a.movReg('ax', 'bx'), [0x89, 0xd8]],
    ['mov ax, cs', (a) => a.movFromSegment('ax', 'cs'), [0x8c, 0xc8]],
    ['mov ds, ax', (a) => a.movToSegment('ds', 'ax'), [0x8e, 0xd8]],
    ['mov ax, [0x500]', (a) => a.load('ax', 0x500), [0xa1, 0x00, 0x05]],
    ['mov eax, [0x10]', (a) => a.load('eax', 0x10), [0x66, 0xa1, 0x10, 0x00]],
    ['mov bx, [0x500]', (a) => a.load('bx', 0x500), [0x8b, 0x1e, 0x00, 0x05]],
    ['mov al, [0x20]', (a) => a.load('al', 0x20), [0xa0, 0x20, 0x00]],
    ['mov [0x10], ax', (a) => a.store(0x10, 'ax'), [0xa3, 0x10, 0x00]],
    ['mov [0x24], eax', (a) => a.store(0x24, 'eax'), [0x66, 0xa3, 0x24, 0x00]],
    ['mov [0x1c], bx', (a) => a.store(0x1c, 'bx'), [0x89, 0x1e, 0x1c, 0x00]],
    ['mov word [0x20], 1', (a) => a.storeImm16(0x20, 1), [0xc7, 0x06, 0x20, 0x00, 0x01, 0x00]],
    ['mov dword [0x20], 1', (a) => a.storeImm32(0x20, 1), [0x66, 0xc7, 0x06, 0x20, 0x00, 0x01, 0x00, 0x00, 0x00]],
    ['inc word [0x10]', (a) => a.incMem16(0x10), [0xff, 0x06, 0x10, 0x00]],
    ['lock inc word [0x10]', (a) => a.lockIncMem16(0x10), [0xf0, 0xff, 0x06, 0x10, 0x00]],
    ['dec word [0x10]', (a) => a.decMem16(0x10), [0xff, 0x0e, 0x10, 0x00]],
    ['cmp word [0x10], 3', (a) => a.aluMemImm16('cmp', 0x10, 3), [0x81, 0x3e, 0x10, 0x00, 0x03, 0x00]],
    ['cmp dword [0x10], 3', (a) => a.aluMemImm32('cmp', 0x10, 3), [0x66, 0x81, 0x3e, 0x10, 0x00, 0x03, 0x00, 0x00, 0x00]],
    ['cmp ax, 0xffff', (a) => a.aluImm('cmp', 'ax', 0xffff), [0x3d, 0xff, 0xff]],
    ['cmp eax, 200000', (a) => a.aluImm('cmp', 'eax', 200_000), [0x66, 0x3d, 0x40, 0x0d, 0x03, 0x00]],
    ['cmp bx, 10000', (a) => a.aluImm('cmp', 'bx', 10_000), [0x81, 0xfb, 0x10, 0x27]],
    ['sub bx, 10000', (a) => a.aluImm('sub', 'bx', 10_000), [0x81, 0xeb, 0x10, 0x27]],
    ['cmp cx, 0 (83)', (a) => a.aluImm8('cmp', 'cx', 0), [0x83, 0xf9, 0x00]],
    ['add ebx, -1 (83)', (a) => a.aluImm8('add', 'ebx', -1), [0x66, 0x83, 0xc3, 0xff]],
    ['add al, 0x30', (a) => a.aluAlImm8('add', 0x30), [0x04, 0x30]],
    ['sub eax, [0x24]', (a) => a.aluFromMem('sub', 'eax', 0x24), [0x66, 0x2b, 0x06, 0x24, 0x00]],
    ['cmp eax, [0x18]', (a) => a.aluFromMem('cmp', 'eax', 0x18), [0x66, 0x3b, 0x06, 0x18, 0x00]],
    ['cmp ax, [0x1c]', (a) => a.aluFromMem('cmp', 'ax', 0x1c), [0x3b, 0x06, 0x1c, 0x00]],
    ['add [0x10], bx', (a) => a.aluToMem('add', 0x10, 'bx'), [0x01, 0x1e, 0x10, 0x00]],
    ['inc cx', (a) => a.incReg('cx'), [0x41]],
    ['dec cx', (a) => a.decReg('cx'), [0x49]],
    ['inc ecx', (a) => a.incReg('ecx'), [0x66, 0x41]],
    ['shr word [0x22], 1', (a) => a.shiftMem16('shr', 0x22), [0xd1, 0x2e, 0x22, 0x00]],
    ['shl ax, 1', (a) => a.shiftReg('shl', 'ax'), [0xd1, 0xe0]],
    ['pause', (a) => a.pause(), [0xf3, 0x90]],
    ['nop cli sti hlt', (a) => a.nop().cli().sti().hlt(), [0x90, 0xfa, 0xfb, 0xf4]],
    ['wrmsr rdtsc rdmsr ud2', (a) => a.wrmsr().rdtsc().rdmsr().ud2(), [0x0f, 0x30, 0x0f, 0x31, 0x0f, 0x32, 0x0f, 0x0b]],
    ['out dx, al / ax / eax', (a) => a.outDxAl().outDxAx().outDxEax(), [0xee, 0xef, 0x66, 0xef]],
    ['out 0xe9, al / out 0x80, ax', (a) => a.outImmAl(0xe9).outImmAx(0x80), [0xe6, 0xe9, 0xe7, 0x80]],
    ['db dw dd', (a) => a.db(1, 2).dw(0x0304).dd(0x0807_0605), [1, 2, 4, 3, 5, 6, 7, 8]],
  ];
  for (const [name, build, bytes] of cases) assert.deepEqual(encode(build), bytes, name);
});

test('branches: rel8 and rel16 fix-ups, forward and backward', () => {
  const bytes = encode((a) => {
    a.label('top').je('next').jne('top').jmp('top');
    a.label('next').jb('top').jae('next').loop('top').jmpNear('top').jccNear('NE', 'top');
  });
  assert.deepEqual(bytes, [
    0x74, 0x04, // je next (+4)
    0x75, 0xfc, // jne top (-4)
    0xeb, 0xfa, // jmp top (-6)
    0x72, 0xf8, // jb top
    0x73, 0xfc, // jae next (-4)
    0xe2, 0xf4, // loop top
    0xe9, 0xf1, 0xff, // jmp near top (-15)
    0x0f, 0x85, 0xed, 0xff, // jne near top (-19)
  ]);
});

test('rel8 out of range is an error that suggests the rel16 form; rel16 reaches', () => {
  const far = new Assembler();
  far.jne('far');
  far.padTo(0x82).label('far');
  assert.throws(() => far.bytes(), /jne to 'far': distance 128 is outside the rel8 range \(-128\.\.127\); use the rel16 form/);
  const edge = new Assembler();
  edge.jne('edge');
  edge.padTo(0x81).label('edge');
  assert.equal(edge.bytes()[1], 0x7f);
  const back = new Assembler();
  back.label('back').padTo(0x7e).jmp('back');
  assert.equal(back.bytes()[0x7f], 0x80, '-128 is in range');
  const back2 = new Assembler();
  back2.label('back').padTo(0x7f).jmp('back');
  assert.throws(() => back2.bytes(), /distance -129/);
  const near = new Assembler();
  near.jccNear('NE', 'far').padTo(0x1000).label('far');
  assert.deepEqual([...near.bytes().slice(0, 4)], [0x0f, 0x85, 0xfc, 0x0f]);
});

test('[m16] label references resolve to org + position, with an optional byte offset', () => {
  const asm = new Assembler(0x100);
  asm.load('ax', 'data').store({ label: 'data', plus: 2 }, 'ax').label('data').dw(0x1234).dw(0);
  assert.deepEqual([...asm.bytes()], [0xa1, 0x06, 0x01, 0xa3, 0x08, 0x01, 0x34, 0x12, 0, 0]);
  assert.equal(asm.addressOf('data'), 0x106);
});

test('errors: undefined and duplicate labels, padTo backwards, immediates out of range, mixed sizes', () => {
  assert.throws(() => encode((a) => a.jmp('nowhere')), /jmp: label 'nowhere' is not defined/);
  assert.throws(() => encode((a) => a.label('x').label('x')), /label 'x' defined twice/);
  assert.throws(() => encode((a) => a.db(0, 0, 0).padTo(2)), /padTo\(0x2\): already at 0x3/);
  assert.throws(() => encode((a) => a.movImm16('ax', 0x10000)), /does not fit in 16 bits/);
  assert.throws(() => encode((a) => a.movImm8('al', 256)), /does not fit in 8 bits/);
  assert.throws(() => encode((a) => a.aluImm8('add', 'ax', 128)), /not a signed 8-bit immediate/);
  assert.throws(() => encode((a) => a.movReg('ax', 'ebx')), /operand sizes differ/);
  const high = new Assembler(0xfff0);
  high.padTo(0x10).label('beyond').load('ax', 'beyond');
  assert.throws(() => high.bytes(), /mov ax, \[m16\]: address 0x10000 of 'beyond' exceeds 16 bits/);
  assert.equal(encode((a) => a.movImm16('ax', -1)).slice(1).join(), '255,255', 'negative immediates are two\'s complement');
});

test('uniqueLabel gives fresh names', () => {
  const asm = new Assembler();
  const a = asm.uniqueLabel('wait');
  const b = asm.uniqueLabel('wait');
  assert.notEqual(a, b);
  asm.label(a).label(b);
});

test('assembled code runs in the interpreter: sum 1..10 with loop', () => {
  const asm = new Assembler();
  asm.aluReg('xor', 'ax', 'ax').movImm16('cx', 10);
  asm.label('again').aluReg('add', 'ax', 'cx').loop('again').store('result', 'ax').hlt();
  asm.label('result').dw(0);
  const image = asm.bytes();
  const memory = new Uint8Array(0x20000);
  memory.set(image, 0x10000);
  const cpu = new CpuState();
  setRealModeSegment(cpu.cs, 0x1000);
  setRealModeSegment(cpu.ds, 0x1000);
  const exit = run(cpu, { bytes: memory }, { tsc: () => 0n }, 1000);
  assert.equal(exit.kind, 'hlt');
  assert.equal(cpu.gpr[Gpr.EAX], 55);
  const result = 0x10000 + asm.addressOf('result');
  assert.equal(memory[result] | (memory[result + 1] << 8), 55);
});
