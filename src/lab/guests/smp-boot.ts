// smp-boot: the lab's standard multi-vCPU guest. The BSP starts the selected APs with INIT and
// two STARTUPs through the x2APIC ICR (the universal start-up algorithm of the MP specification,
// as Linux's wakeup_secondary_cpu_via_init does it), waits a bounded time for their check-ins,
// prints `online=N`, optionally restarts one AP, and ends the VM in the chosen way. The options
// live in a data block at fixed image offsets (SMP_BOOT_LAYOUT), so a built image can also be
// patched by offset. docs/lab-guests.md describes the behaviour and the layout.

import { Assembler } from './asm';
import {
  GUEST_LOAD_ADDRESS,
  ICR_INIT_ASSERT,
  ICR_STARTUP,
  PM1A_CONTROL_PORT,
  POWEROFF_VALUE,
  RESET_CONTROL_PORT,
  RESET_VALUE,
  VCPU_COUNT_ADDRESS as LAB_VCPU_COUNT_ADDRESS,
  GUEST_CONSOLES,
  type GuestConsole,
} from './conventions';
import { jumpWhileWaitingMem, printDecimalBx, printString, sendIpi, startTscWait, waitNanoseconds } from './macros';

export const SMP_BOOT_LOAD_ADDRESS = GUEST_LOAD_ADDRESS;
export const VCPU_COUNT_ADDRESS = LAB_VCPU_COUNT_ADDRESS;

export type FinalAction = 'poweroff' | 'reset' | 'halt' | 'triplefault';

export interface SmpBootOptions {
  /**
   * Bitmask of AP vCPU ids to start (bit 0, the BSP, is ignored); default: every AP 1..ncpus-1.
   * A number names APs 1..15 only (the 16-bit mask of the first layout); a bigint names any of
   * the 256 vCPUs of 13.x's cpuset_t.
   */
  startMask?: number | bigint;
  /** What the BSP does at the end; default poweroff. */
  finalAction?: FinalAction;
  /** Bounded wait for check-ins (and for the restart), in ms of TSC time; default 1000, at most 4294. */
  apWaitMs?: number;
  /** After the check-ins, INIT+SIPI this AP again and report whether it re-ran its trampoline. */
  restartAp?: number;
  /** Run this long (ms of TSC time) before starting any AP, like firmware and an early kernel; default 0. */
  startDelayMs?: number;
  /**
   * Where the guest prints: the lab's debug port 0xE9 (default: what a loader boot's console
   * is) or COM1 (what a boot ROM's guest prints on, on bhyve and on real machines). Only the
   * code changes; every documented offset stays where it is.
   */
  console?: GuestConsole;
}

/** Image offsets (= DS offsets, since DS base = load address) of the smp-boot data and code. */
export const SMP_BOOT_LAYOUT = {
  /** jmp near to the BSP code. */
  entry: 0x0000,
  /** 8 ASCII bytes "smp-boot" identify the image. */
  signature: 0x0008,
  /** u16: AP check-ins, incremented with `lock inc` by every run of the trampoline. */
  online: 0x0010,
  /** u16 option: bitmask of APs 1..15 to start (0xFFFE = all); APs 16..255 are in startMaskHigh. */
  startMask: 0x0012,
  /** u16 option: FINAL_ACTION_CODES. */
  finalAction: 0x0014,
  /** u16 option: AP to restart after the check-ins, NO_RESTART_AP for none. */
  restartAp: 0x0016,
  /** u32 option: bounded wait in ns of TSC time (apWaitMs * 10^6). */
  apWaitNs: 0x0018,
  /** u16: vCPU count copied from guest-physical 0x0500. */
  vcpuCount: 0x001c,
  /** u16: APs the BSP sent INIT/STARTUP to (the check-ins it waits for). */
  expected: 0x001e,
  /** u16: destination x2APIC ID of the IPIs being sent. */
  apId: 0x0020,
  /** u16: startMask shifted right as the BSP walks the APs. */
  pendingMask: 0x0022,
  /** u32: TSC low dword at the start of the current wait. */
  waitStart: 0x0024,
  /** u16: `online` before the restart IPIs. */
  onlineBeforeRestart: 0x0028,
  /** u32 option: delay before the first INIT, in ns of TSC time (startDelayMs * 10^6). */
  startDelayNs: 0x002c,
  /** The BSP's code. */
  bsp: 0x0040,
  /** The AP trampoline: page-aligned, guest-physical 0x11000, STARTUP vector 0x11. */
  trampoline: 0x1000,
  /**
   * u16[15] option: the start mask of APs 16..255, bit j of word k-1 = AP 16k + j (all ones by
   * default). Behind the trampoline, in the same page: the first layout had no room for it.
   */
  startMaskHigh: 0x1040,
} as const;

export const FINAL_ACTION_CODES: Readonly<Record<FinalAction, number>> = {
  poweroff: 0,
  reset: 1,
  halt: 2,
  triplefault: 3,
};

export const NO_RESTART_AP = 0xffff;
export const SMP_BOOT_SIGNATURE = 'smp-boot';
/** STARTUP vector: the trampoline's guest-physical page number. */
export const SMP_BOOT_SIPI_VECTOR = (SMP_BOOT_LOAD_ADDRESS + SMP_BOOT_LAYOUT.trampoline) >> 12;
/** Waits between the IPIs (MP specification: 10 ms after INIT on old parts, 200 us after STARTUP; modern Linux waits 10 us after INIT). */
export const INIT_WAIT_NS = 10_000;
export const STARTUP_WAIT_NS = 200_000;
export const DEFAULT_AP_WAIT_MS = 1000;
/** The wait compares TSC low dwords, so it must stay below 2^32 ns. */
export const MAX_AP_WAIT_MS = Math.floor(0xffffffff / 1e6);
/** The highest AP id: 13.x userland's cpuset_t holds 256 vCPUs (CPU_SETSIZE). */
export const MAX_AP_ID = 255;
/** Words of startMaskHigh: APs 16..255, 16 per word. */
export const START_MASK_HIGH_WORDS = (MAX_AP_ID + 1) / 16 - 1;

const ALL_APS = (1n << BigInt(MAX_AP_ID + 1)) - 2n;
const L = SMP_BOOT_LAYOUT;

interface ResolvedOptions {
  /** Bits 0..255. */
  startMask: bigint;
  finalAction: number;
  apWaitNs: number;
  restartAp: number;
  startDelayNs: number;
  console: GuestConsole;
}

function resolveOptions(opts: SmpBootOptions): ResolvedOptions {
  const given = opts.startMask ?? ALL_APS;
  if (typeof given === 'number' && (!Number.isInteger(given) || given < 0 || given > 0xffff)) {
    throw new RangeError(`smp-boot: startMask ${given} is not a 16-bit mask of AP ids 1..15 (a bigint names APs up to ${MAX_AP_ID})`);
  }
  if (typeof given === 'bigint' && (given < 0n || given >> BigInt(MAX_AP_ID + 1) !== 0n)) {
    throw new RangeError(`smp-boot: startMask 0x${given.toString(16)} names vCPUs beyond ${MAX_AP_ID}`);
  }
  const startMask = BigInt(given);
  const finalAction = opts.finalAction ?? 'poweroff';
  if (!Object.hasOwn(FINAL_ACTION_CODES, finalAction)) {
    throw new RangeError(`smp-boot: finalAction '${String(finalAction)}' is not one of ${Object.keys(FINAL_ACTION_CODES).join(', ')}`);
  }
  const apWaitMs = opts.apWaitMs ?? DEFAULT_AP_WAIT_MS;
  if (!Number.isFinite(apWaitMs) || apWaitMs < 0 || apWaitMs > MAX_AP_WAIT_MS) {
    throw new RangeError(`smp-boot: apWaitMs ${apWaitMs} is outside 0..${MAX_AP_WAIT_MS}`);
  }
  const restartAp = opts.restartAp ?? NO_RESTART_AP;
  if (restartAp !== NO_RESTART_AP && (!Number.isInteger(restartAp) || restartAp < 1 || restartAp > MAX_AP_ID)) {
    throw new RangeError(`smp-boot: restartAp ${restartAp} is not an AP id 1..${MAX_AP_ID}`);
  }
  const startDelayMs = opts.startDelayMs ?? 0;
  if (!Number.isFinite(startDelayMs) || startDelayMs < 0 || startDelayMs > MAX_AP_WAIT_MS) {
    throw new RangeError(`smp-boot: startDelayMs ${startDelayMs} is outside 0..${MAX_AP_WAIT_MS}`);
  }
  const console = guestConsole('smp-boot', opts.console);
  return {
    console,
    startMask,
    finalAction: FINAL_ACTION_CODES[finalAction],
    apWaitNs: Math.round(apWaitMs * 1e6),
    restartAp,
    startDelayNs: Math.round(startDelayMs * 1e6),
  };
}

function emitDataBlock(asm: Assembler, options: ResolvedOptions): void {
  asm.padTo(L.signature);
  for (const char of SMP_BOOT_SIGNATURE) asm.db(char.charCodeAt(0));
  asm.padTo(L.online).label('online').dw(0);
  asm.label('startMask').dw(Number(options.startMask & 0xffffn));
  asm.label('finalAction').dw(options.finalAction);
  asm.label('restartAp').dw(options.restartAp);
  asm.label('apWaitNs').dd(options.apWaitNs);
  asm.label('vcpuCount').dw(0);
  asm.label('expected').dw(0);
  asm.label('apId').dw(0);
  asm.label('pendingMask').dw(0);
  asm.label('waitStart').dd(0);
  asm.label('onlineBeforeRestart').dw(0);
  asm.padTo(L.startDelayNs).label('startDelayNs').dd(options.startDelayNs);
}

// The pieces of the BSP's and the APs' code that the hostile guests (ipi-storm.ts,
// sipi-without-init.ts) share with smp-boot. They address the image's data by the labels of
// SMP_BOOT_LAYOUT (`vcpuCount`, `apId`, `expected`, `online`, `waitStart`, `apWaitNs`), which
// every such guest defines, and its trampoline is at SMP_BOOT_LAYOUT.trampoline.

/** The console a guest prints on (default the debug port), checked. */
export function guestConsole(guest: string, console: GuestConsole | undefined): GuestConsole {
  const chosen = console ?? 'debug-port';
  if (!GUEST_CONSOLES.includes(chosen)) throw new RangeError(`${guest}: console '${String(chosen)}' is not one of ${GUEST_CONSOLES.join(', ')}`);
  return chosen;
}

/** The vCPU count is at guest-physical 0x0500: read it through DS = 0, then DS = CS again. Clobbers AX, BX. */
export function emitReadVcpuCount(asm: Assembler): void {
  asm.aluReg('xor', 'ax', 'ax').movToSegment('ds', 'ax');
  asm.load('bx', LAB_VCPU_COUNT_ADDRESS);
  asm.movFromSegment('ax', 'cs').movToSegment('ds', 'ax');
  asm.store('vcpuCount', 'bx');
}

/** INIT, wait, STARTUP, wait, STARTUP, wait, to the AP whose id is in `apId`. Clobbers EAX, ECX, EDX. */
export function emitStartAp(asm: Assembler): void {
  sendIpi(asm, 'apId', ICR_INIT_ASSERT);
  waitNanoseconds(asm, INIT_WAIT_NS, 'waitStart');
  for (let i = 0; i < 2; i++) {
    sendIpi(asm, 'apId', ICR_STARTUP | SMP_BOOT_SIPI_VECTOR);
    waitNanoseconds(asm, STARTUP_WAIT_NS, 'waitStart');
  }
}

/** Starts every AP 1..vcpuCount-1 (emitStartAp), counting them in `expected`. Labels `prefix`.next/.done. */
export function emitStartEveryAp(asm: Assembler, prefix: string): void {
  asm.storeImm16('apId', 1).storeImm16('expected', 0);
  asm.label(`${prefix}.next`);
  asm.load('ax', 'apId').aluFromMem('cmp', 'ax', 'vcpuCount').jccNear('AE', `${prefix}.done`);
  emitStartAp(asm);
  asm.incMem16('expected').incMem16('apId').jmpNear(`${prefix}.next`);
  asm.label(`${prefix}.done`);
}

/** Bounded wait for the check-ins (`apWaitNs`); ends early once `online` reaches `expected`. Labels checkin.poll/.done. */
export function emitAwaitCheckins(asm: Assembler): void {
  startTscWait(asm, 'waitStart');
  asm.label('checkin.poll');
  asm.load('ax', 'online').aluFromMem('cmp', 'ax', 'expected').jae('checkin.done');
  asm.pause();
  jumpWhileWaitingMem(asm, 'waitStart', 'apWaitNs', 'checkin.poll');
  asm.label('checkin.done');
}

/** `online=N\n`, N = 1 (the BSP counts too) + the check-ins. Clobbers AX, BX, CX (and DX, DI on COM1). */
export function emitPrintOnline(asm: Assembler, console: GuestConsole): void {
  printString(asm, 'online=', console);
  asm.load('bx', 'online').incReg('bx');
  printDecimalBx(asm, console);
  printString(asm, '\n', console);
}

function emitBsp(asm: Assembler, console: GuestConsole): void {
  // COM1's output code is longer than the debug port's: a few branches over it need rel16 there
  // (the debug-port image keeps its rel8 encodings byte for byte).
  const long = console === 'com1';
  asm.padTo(L.bsp).label('bsp');

  emitReadVcpuCount(asm);

  // Optional delay before the first INIT (a window in which the APs sit parked).
  startTscWait(asm, 'waitStart');
  asm.label('delay.poll');
  asm.pause();
  jumpWhileWaitingMem(asm, 'waitStart', 'startDelayNs', 'delay.poll');

  // Walk AP ids 1..vcpuCount-1, shifting the start mask right by one per id (bit 0 is the BSP).
  // Every 16 ids the next word of startMaskHigh is loaded: the subset has no indexed addressing,
  // so a chain of compares picks the word (ids 16, 32, ... 240).
  asm.load('ax', 'startMask').store('pendingMask', 'ax').shiftMem16('shr', 'pendingMask');
  asm.storeImm16('apId', 1).storeImm16('expected', 0);
  asm.label('start.next');
  asm.load('ax', 'apId').aluFromMem('cmp', 'ax', 'vcpuCount').jccNear('AE', 'start.done');
  asm.aluImm('and', 'ax', 0x0f).jccNear('NE', 'start.test');
  asm.load('ax', 'apId');
  for (let word = 0; word < START_MASK_HIGH_WORDS; word++) {
    const next = asm.uniqueLabel('start.word');
    asm.aluImm('cmp', 'ax', 16 * (word + 1)).jccNear('NE', next);
    asm.load('bx', { label: 'startMaskHigh', plus: 2 * word }).store('pendingMask', 'bx').jmpNear('start.test');
    asm.label(next);
  }
  asm.label('start.test');
  asm.shiftMem16('shr', 'pendingMask').jccNear('AE', 'start.skip'); // CF = 0: not selected
  emitStartAp(asm);
  asm.incMem16('expected');
  asm.label('start.skip').incMem16('apId').jmpNear('start.next');
  asm.label('start.done');

  emitAwaitCheckins(asm);
  emitPrintOnline(asm, console);

  // Optional restart: INIT+SIPI an AP that already checked in, and watch for a new check-in.
  asm.load('ax', 'restartAp').aluImm('cmp', 'ax', NO_RESTART_AP).jccNear('E', 'final');
  asm.store('apId', 'ax');
  asm.load('ax', 'online').store('onlineBeforeRestart', 'ax');
  emitStartAp(asm);
  startTscWait(asm, 'waitStart');
  asm.label('restart.poll');
  asm.load('ax', 'online').aluFromMem('cmp', 'ax', 'onlineBeforeRestart');
  if (long) asm.jccNear('NE', 'restart.seen');
  else asm.jne('restart.seen');
  asm.pause();
  jumpWhileWaitingMem(asm, 'waitStart', 'apWaitNs', 'restart.poll');
  printString(asm, 'restart=0\n', console);
  if (long) asm.jmpNear('final');
  else asm.jmp('final');
  asm.label('restart.seen');
  printString(asm, 'restart=1\n', console);

  // The final action; an unknown code powers off.
  asm.label('final');
  asm.load('ax', 'finalAction');
  asm.aluImm('cmp', 'ax', FINAL_ACTION_CODES.reset).je('final.reset');
  asm.aluImm('cmp', 'ax', FINAL_ACTION_CODES.halt).je('park');
  asm.aluImm('cmp', 'ax', FINAL_ACTION_CODES.triplefault).je('final.triplefault');
  asm.movImm16('dx', PM1A_CONTROL_PORT).movImm16('ax', POWEROFF_VALUE).outDxAx();
  asm.jmp('park');
  asm.label('final.reset');
  asm.movImm16('dx', RESET_CONTROL_PORT).movImm8('al', RESET_VALUE).outDxAl();
  asm.jmp('park');
  asm.label('final.triplefault').ud2();
  // Also where the BSP ends up if the platform ignores the power-off or reset write.
  asm.label('park').cli().hlt().jmp('park');
}

/** The AP side: runs at CS = vector << 8, IP 0, with DS = 0, so it loads DS itself, checks in and halts. */
export function emitTrampoline(asm: Assembler): void {
  asm.padTo(L.trampoline).label('trampoline');
  asm.movImm16('ax', SMP_BOOT_LOAD_ADDRESS >> 4).movToSegment('ds', 'ax');
  asm.lockIncMem16('online');
  asm.label('ap.park').cli().hlt().jmp('ap.park');
}

/** The start mask of APs 16..255 (option data, after the trampoline). */
function emitStartMaskHigh(asm: Assembler, options: ResolvedOptions): void {
  asm.padTo(L.startMaskHigh).label('startMaskHigh');
  for (let word = 0; word < START_MASK_HIGH_WORDS; word++) {
    asm.dw(Number((options.startMask >> BigInt(16 * (word + 1))) & 0xffffn));
  }
}

/** Builds the smp-boot image (load it at SMP_BOOT_LOAD_ADDRESS). */
export function buildSmpBoot(opts: SmpBootOptions = {}): Uint8Array {
  const options = resolveOptions(opts);
  const asm = new Assembler(0); // DS base = load address, so image offsets are DS offsets
  asm.jmpNear('bsp');
  emitDataBlock(asm, options);
  emitBsp(asm, options.console);
  emitTrampoline(asm);
  emitStartMaskHigh(asm, options);
  checkGuestLayout(asm, 'smp-boot', SMP_BOOT_LAYOUT);
  return asm.bytes();
}

/** A guest's documented offsets are a contract: refuse to build an image whose code moved them. */
export function checkGuestLayout(asm: Assembler, guest: string, layout: Readonly<Record<string, number>>): void {
  for (const [label, offset] of Object.entries(layout)) {
    if (label === 'entry' || label === 'signature') continue; // not labels: fixed by padTo
    if (asm.addressOf(label) !== offset) {
      throw new Error(`${guest}: '${label}' is at 0x${asm.addressOf(label).toString(16)}, documented at 0x${offset.toString(16)}`);
    }
  }
}
