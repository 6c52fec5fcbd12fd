// sipi-without-init: a hostile guest. The BSP sends every AP two STARTUPs without the INIT that
// must come first (the MP specification's order is INIT, STARTUP, STARTUP), waits, and prints
// `online=N`: a STARTUP reaches only a CPU in wait-for-SIPI, which only INIT puts it in, so N is
// 1. Then it starts the APs properly, prints `online=N` again (every vCPU) and powers off. The
// options live in a data block at fixed image offsets (SIPI_WITHOUT_INIT_LAYOUT), as smp-boot's
// do. docs/lab-guests.md describes the behaviour and layout.

import { Assembler } from './asm';
import { ICR_STARTUP, PM1A_CONTROL_PORT, POWEROFF_VALUE, type GuestConsole } from './conventions';
import { jumpWhileWaitingMem, sendIpi, startTscWait, waitNanoseconds } from './macros';
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

export interface SipiWithoutInitOptions {
  /** How long to watch for APs started by the bare STARTUPs, in ms of TSC time; default 200. */
  strayWaitMs?: number;
  /** Bounded wait for the proper start's check-ins, in ms of TSC time; default 1000, at most 4294. */
  apWaitMs?: number;
  /** Where it prints: the lab's debug port 0xE9 (default) or COM1 (in a boot ROM); the layout is the same. */
  console?: GuestConsole;
}

export const SIPI_WITHOUT_INIT_LAYOUT = {
  entry: 0x0000,
  /** 8 ASCII bytes "sipinoin". */
  signature: 0x0008,
  /** u16: AP check-ins. */
  online: 0x0010,
  /** u32 option: the wait after the bare STARTUPs in ns. */
  strayWaitNs: 0x0012,
  /** u32 option: the wait after the proper start in ns. */
  apWaitNs: 0x0016,
  /** u16: vCPU count copied from guest-physical 0x0500. */
  vcpuCount: 0x001a,
  /** u16: destination of the IPIs being sent. */
  apId: 0x001c,
  /** u32: TSC low dword at the start of the current wait. */
  waitStart: 0x001e,
  /** u16: APs started properly (the check-ins waited for). */
  expected: 0x0022,
  bsp: 0x0040,
  trampoline: 0x1000,
} as const;

export const SIPI_WITHOUT_INIT_SIGNATURE = 'sipinoin';
const L = SIPI_WITHOUT_INIT_LAYOUT;

function waitNs(ms: number | undefined, fallback: number, what: string): number {
  const value = ms ?? fallback;
  if (!Number.isFinite(value) || value < 0 || value > MAX_AP_WAIT_MS) throw new RangeError(`sipi-without-init: ${what} ${value} is outside 0..${MAX_AP_WAIT_MS}`);
  return Math.round(value * 1e6);
}

/** Builds the sipi-without-init image (load it at 0x10000). */
export function buildSipiWithoutInit(opts: SipiWithoutInitOptions = {}): Uint8Array {
  const console = guestConsole('sipi-without-init', opts.console);
  const a = new Assembler(0);
  a.jmpNear('bsp');
  a.padTo(L.signature);
  for (const char of SIPI_WITHOUT_INIT_SIGNATURE) a.db(char.charCodeAt(0));
  a.padTo(L.online).label('online').dw(0);
  a.label('strayWaitNs').dd(waitNs(opts.strayWaitMs, 200, 'strayWaitMs'));
  a.label('apWaitNs').dd(waitNs(opts.apWaitMs, 1000, 'apWaitMs'));
  a.label('vcpuCount').dw(0);
  a.label('apId').dw(0);
  a.label('waitStart').dd(0);
  a.label('expected').dw(0);

  a.padTo(L.bsp).label('bsp');
  emitReadVcpuCount(a);

  // STARTUP, STARTUP to every AP, no INIT.
  a.storeImm16('apId', 1);
  a.label('stray.next');
  a.load('ax', 'apId').aluFromMem('cmp', 'ax', 'vcpuCount').jccNear('AE', 'stray.done');
  for (let i = 0; i < 2; i++) {
    sendIpi(a, 'apId', ICR_STARTUP | SMP_BOOT_SIPI_VECTOR);
    waitNanoseconds(a, STARTUP_WAIT_NS, 'waitStart');
  }
  a.incMem16('apId').jmpNear('stray.next');
  a.label('stray.done');
  startTscWait(a, 'waitStart');
  a.label('stray.poll');
  a.pause();
  jumpWhileWaitingMem(a, 'waitStart', 'strayWaitNs', 'stray.poll');
  emitPrintOnline(a, console);

  // Now as it should be: INIT, STARTUP, STARTUP.
  emitStartEveryAp(a, 'start');
  emitAwaitCheckins(a);
  emitPrintOnline(a, console);
  a.movImm16('dx', PM1A_CONTROL_PORT).movImm16('ax', POWEROFF_VALUE).outDxAx();
  a.label('park').cli().hlt().jmp('park');

  emitTrampoline(a);
  checkGuestLayout(a, 'sipi-without-init', SIPI_WITHOUT_INIT_LAYOUT);
  return a.bytes();
}
