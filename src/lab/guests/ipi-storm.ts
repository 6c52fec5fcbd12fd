// ipi-storm: a hostile guest. The BSP starts every AP as smp-boot does and prints `online=N`;
// then, round after round, it sends INIT and STARTUP back to back to every APIC ID from its own
// (0) to a few past the last vCPU: to itself, to every AP, which already runs, and to IDs that
// do not exist. It prints `storm=R` and `online=N` again (the same N: no AP runs its trampoline a
// second time) and powers off. The options live in a data block at fixed image offsets
// (IPI_STORM_LAYOUT), as smp-boot's do. docs/lab-guests.md describes the behaviour and layout.

import { Assembler } from './asm';
import { ICR_INIT_ASSERT, ICR_STARTUP, PM1A_CONTROL_PORT, POWEROFF_VALUE, type GuestConsole } from './conventions';
import { printDecimalBx, printString, sendIpi, waitNanoseconds } from './macros';
import {
  MAX_AP_WAIT_MS,
  SMP_BOOT_SIPI_VECTOR,
  STARTUP_WAIT_NS,
  checkGuestLayout,
  emitAwaitCheckins,
  emitPrintOnline,
  emitReadVcpuCount,
  emitStartEveryAp,
  emitTrampoline,
  guestConsole,
} from './smp-boot';

export interface IpiStormOptions {
  /** Storm rounds, 1 to 65535; default 50. */
  rounds?: number;
  /** APIC IDs past the last vCPU that every round also targets (IDs that do not exist); default 3. */
  missingIds?: number;
  /** Whether every round also targets the BSP's own APIC ID; default true. */
  self?: boolean;
  /** Bounded wait for the first check-ins, in ms of TSC time; default 1000, at most 4294. */
  apWaitMs?: number;
  /** Where it prints: the lab's debug port 0xE9 (default) or COM1 (in a boot ROM); the layout is the same. */
  console?: GuestConsole;
}

export const IPI_STORM_LAYOUT = {
  entry: 0x0000,
  /** 8 ASCII bytes "ipistorm". */
  signature: 0x0008,
  /** u16: AP check-ins (`lock inc` by every run of the trampoline). */
  online: 0x0010,
  /** u16 option: rounds. */
  rounds: 0x0012,
  /** u16 option: IDs past the last vCPU targeted each round. */
  missingIds: 0x0014,
  /** u16 option: the first ID targeted each round: 0 (the BSP itself) or 1. */
  firstId: 0x0016,
  /** u32 option: bounded wait for the check-ins in ns (apWaitMs * 10^6). */
  apWaitNs: 0x0018,
  /** u16: vCPU count copied from guest-physical 0x0500. */
  vcpuCount: 0x001c,
  /** u16: rounds done. */
  roundsDone: 0x001e,
  /** u16: destination of the IPIs being sent. */
  apId: 0x0020,
  /** u16: the first ID not targeted (vcpuCount + missingIds). */
  endId: 0x0022,
  /** u32: TSC low dword at the start of the current wait. */
  waitStart: 0x0024,
  /** u16: APs started (the check-ins waited for). */
  expected: 0x0028,
  bsp: 0x0040,
  /** The AP trampoline: page-aligned, guest-physical 0x11000, STARTUP vector 0x11 (as smp-boot's). */
  trampoline: 0x1000,
} as const;

export const IPI_STORM_SIGNATURE = 'ipistorm';
export const DEFAULT_STORM_ROUNDS = 50;
export const DEFAULT_MISSING_IDS = 3;
const L = IPI_STORM_LAYOUT;

function resolve(opts: IpiStormOptions): { rounds: number; missingIds: number; firstId: number; apWaitNs: number } {
  const rounds = opts.rounds ?? DEFAULT_STORM_ROUNDS;
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 0xffff) throw new RangeError(`ipi-storm: rounds ${rounds} is outside 1..65535`);
  const missingIds = opts.missingIds ?? DEFAULT_MISSING_IDS;
  if (!Number.isInteger(missingIds) || missingIds < 0 || missingIds > 0xff) throw new RangeError(`ipi-storm: missingIds ${missingIds} is outside 0..255`);
  const apWaitMs = opts.apWaitMs ?? 1000;
  if (!Number.isFinite(apWaitMs) || apWaitMs < 0 || apWaitMs > MAX_AP_WAIT_MS) throw new RangeError(`ipi-storm: apWaitMs ${apWaitMs} is outside 0..${MAX_AP_WAIT_MS}`);
  return { rounds, missingIds, firstId: opts.self === false ? 1 : 0, apWaitNs: Math.round(apWaitMs * 1e6) };
}

/** Builds the ipi-storm image (load it at 0x10000). */
export function buildIpiStorm(opts: IpiStormOptions = {}): Uint8Array {
  const o = resolve(opts);
  const console = guestConsole('ipi-storm', opts.console);
  const a = new Assembler(0);
  a.jmpNear('bsp');
  a.padTo(L.signature);
  for (const char of IPI_STORM_SIGNATURE) a.db(char.charCodeAt(0));
  a.padTo(L.online).label('online').dw(0);
  a.label('rounds').dw(o.rounds);
  a.label('missingIds').dw(o.missingIds);
  a.label('firstId').dw(o.firstId);
  a.label('apWaitNs').dd(o.apWaitNs);
  a.label('vcpuCount').dw(0);
  a.label('roundsDone').dw(0);
  a.label('apId').dw(0);
  a.label('endId').dw(0);
  a.label('waitStart').dd(0);
  a.label('expected').dw(0);

  a.padTo(L.bsp).label('bsp');
  emitReadVcpuCount(a);
  // Start every AP 1..count-1 as smp-boot does: INIT, STARTUP, STARTUP with the MP specification's waits.
  emitStartEveryAp(a, 'start');
  emitAwaitCheckins(a);
  emitPrintOnline(a, console);

  // The storm: INIT then STARTUP, no wait between them, to IDs firstId .. count+missingIds-1.
  a.load('ax', 'vcpuCount').aluFromMem('add', 'ax', 'missingIds').store('endId', 'ax');
  a.storeImm16('roundsDone', 0);
  a.label('storm.round');
  a.load('ax', 'roundsDone').aluFromMem('cmp', 'ax', 'rounds').jccNear('AE', 'storm.done');
  a.load('ax', 'firstId').store('apId', 'ax');
  a.label('storm.next');
  a.load('ax', 'apId').aluFromMem('cmp', 'ax', 'endId').jccNear('AE', 'storm.roundDone');
  sendIpi(a, 'apId', ICR_INIT_ASSERT);
  sendIpi(a, 'apId', ICR_STARTUP | SMP_BOOT_SIPI_VECTOR);
  a.incMem16('apId').jmpNear('storm.next');
  a.label('storm.roundDone');
  a.incMem16('roundsDone').jmpNear('storm.round');
  a.label('storm.done');
  printString(a, 'storm=', console);
  a.load('bx', 'roundsDone');
  printDecimalBx(a, console);
  printString(a, '\n', console);
  // A trampoline run again would have counted by now (the storm's last IPIs were its own wait).
  waitNanoseconds(a, STARTUP_WAIT_NS, 'waitStart');
  emitPrintOnline(a, console);
  a.movImm16('dx', PM1A_CONTROL_PORT).movImm16('ax', POWEROFF_VALUE).outDxAx();
  a.label('park').cli().hlt().jmp('park');

  emitTrampoline(a);
  checkGuestLayout(a, 'ipi-storm', IPI_STORM_LAYOUT);
  return a.bytes();
}
