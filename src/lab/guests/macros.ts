// Instruction sequences that several guests need (console output, TSC waits, IPIs), written
// with the Assembler. Each one says which registers it clobbers; none uses a stack, because the
// subset has no push/pop/call.

import { Assembler, Mem } from './asm';
import { COM1_LSR_PORT, COM1_THR_PORT, CONSOLE_PORT, LSR_THRE, X2APIC_ICR_MSR, type GuestConsole } from './conventions';

/** Spins until COM1's line status register shows the transmit holding register empty. Clobbers AL, DX. */
function waitForCom1(asm: Assembler): void {
  const poll = asm.uniqueLabel('com1.thre');
  asm.movImm16('dx', COM1_LSR_PORT);
  asm.label(poll).inAlDx().aluAlImm8('and', LSR_THRE).je(poll);
}

/**
 * Writes AL to the console. The debug port: `out 0xE9, al`. COM1: waits for THRE, then writes
 * the transmit holding register; clobbers DX and DI too (DI keeps AL while the LSR is read).
 */
export function consoleOutAl(asm: Assembler, console: GuestConsole = 'debug-port'): void {
  if (console === 'debug-port') {
    asm.outImmAl(CONSOLE_PORT);
    return;
  }
  asm.movReg('di', 'ax');
  waitForCom1(asm);
  asm.movReg('ax', 'di').movImm16('dx', COM1_THR_PORT).outDxAl();
}

/** Prints one character on the console. Clobbers AL (and DX on COM1). */
export function printChar(asm: Assembler, char: string, console: GuestConsole = 'debug-port'): void {
  const code = char.charCodeAt(0);
  if (char.length !== 1 || code > 0x7f) throw new Error(`printChar: '${char}' is not one ASCII character`);
  if (console === 'debug-port') {
    asm.movImm8('al', code).outImmAl(CONSOLE_PORT);
    return;
  }
  waitForCom1(asm);
  asm.movImm8('al', code).movImm16('dx', COM1_THR_PORT).outDxAl();
}

/** Prints an ASCII string on the console. Clobbers AL (and DX on COM1). */
export function printString(asm: Assembler, text: string, console: GuestConsole = 'debug-port'): void {
  for (const char of text) printChar(asm, char, console);
}

const DECIMAL_PLACES = [10000, 1000, 100, 10] as const;

/**
 * Prints BX as an unsigned decimal number without leading zeros, by repeated subtraction (the
 * subset has no div). Clobbers AX, BX, CX (and DX, DI on COM1).
 */
export function printDecimalBx(asm: Assembler, console: GuestConsole = 'debug-port'): void {
  asm.aluReg('xor', 'cx', 'cx'); // CX = 1 once a digit has been printed
  for (const place of DECIMAL_PLACES) {
    const count = asm.uniqueLabel('decimal.count');
    const emit = asm.uniqueLabel('decimal.emit');
    const print = asm.uniqueLabel('decimal.print');
    const skip = asm.uniqueLabel('decimal.skip');
    asm.movImm16('ax', 0x30);
    asm.label(count).aluImm('cmp', 'bx', place).jb(emit);
    asm.aluImm('sub', 'bx', place).incReg('ax').jmp(count);
    asm.label(emit).aluImm('cmp', 'ax', 0x30).jne(print);
    asm.aluImm8('cmp', 'cx', 0).je(skip);
    asm.label(print);
    consoleOutAl(asm, console);
    asm.movImm16('cx', 1);
    asm.label(skip);
  }
  asm.movReg('ax', 'bx').aluAlImm8('add', 0x30);
  consoleOutAl(asm, console);
}

/** Stores the low dword of the TSC in `startSlot` (a dword in the image). Clobbers EAX, EDX. */
export function startTscWait(asm: Assembler, startSlot: Mem): void {
  asm.rdtsc().store(startSlot, 'eax');
}

/**
 * Jumps to `label` while fewer than the dword in `durationSlot` nanoseconds have passed since
 * startTscWait(startSlot). Only the TSC's low dword is compared, with a wrap-safe subtraction,
 * so durations must stay below 2^32 ns (about 4.29 s). Clobbers EAX, EDX.
 */
export function jumpWhileWaitingMem(asm: Assembler, startSlot: Mem, durationSlot: Mem, label: string): void {
  asm.rdtsc().aluFromMem('sub', 'eax', startSlot).aluFromMem('cmp', 'eax', durationSlot).jb(label);
}

/** Spins with pause for `nanoseconds` of TSC time. Clobbers EAX, EDX. */
export function waitNanoseconds(asm: Assembler, nanoseconds: number, startSlot: Mem): void {
  if (!Number.isInteger(nanoseconds) || nanoseconds < 0 || nanoseconds > 0xffffffff) {
    throw new RangeError(`waitNanoseconds: ${nanoseconds} ns is not a duration below 2^32 ns`);
  }
  const spin = asm.uniqueLabel('wait.spin');
  startTscWait(asm, startSlot);
  asm.label(spin).pause().rdtsc().aluFromMem('sub', 'eax', startSlot).aluImm('cmp', 'eax', nanoseconds).jb(spin);
}

/**
 * Sends an IPI through the x2APIC ICR: EDX = destination x2APIC ID (the word in `destinationSlot`),
 * EAX = `icrLow` (vector, delivery mode, level). Clobbers EAX, ECX, EDX.
 */
export function sendIpi(asm: Assembler, destinationSlot: Mem, icrLow: number): void {
  asm.movImm32('ecx', X2APIC_ICR_MSR);
  asm.aluReg('xor', 'edx', 'edx').load('dx', destinationSlot);
  asm.movImm32('eax', icrLow).wrmsr();
}
