// ap-starts-ap: a guest whose AP 1 starts AP 2, as Linux may online a CPU from whichever CPU runs
// the request. On the kernels with the run-time compat path (b265a2e0 and later, and the window)
// the SPINUP_AP exit then comes to AP 1's VM_RUN, where 13.1 bhyve would trip its
// `assert(fromcpu == BSP)` (bhyverun.c fbsdrun_addcpu): the interposer reroutes it to the BSP.
// The BSP starts AP 1 only, waits for two check-ins, prints `online=N` and powers off.

import { Assembler } from './asm';
import { ICR_INIT_ASSERT, ICR_STARTUP, PM1A_CONTROL_PORT, POWEROFF_VALUE, type GuestConsole } from './conventions';
import { jumpWhileWaitingMem, printDecimalBx, printString, sendIpi, startTscWait, waitNanoseconds } from './macros';
import { SMP_BOOT_SIPI_VECTOR } from './smp-boot';

/** The APs that run guest code: the BSP starts AP 1, AP 1 starts AP 2. */
export const AP_STARTS_AP_STARTED = [1, 2] as const;

/** `console`: where it prints (the debug port 0xE9 by default; COM1 inside a boot ROM). */
export function buildApStartsAp(console: GuestConsole = 'debug-port'): Uint8Array {
  const a = new Assembler(0);
  a.jmpNear('bsp');
  a.padTo(0x10).label('online').dw(0);
  a.label('bspDest').dw(1);
  a.label('apDest').dw(2);
  a.label('wait').dd(0);
  a.label('apWait').dd(0);
  a.label('limit').dd(2_000_000_000);
  a.padTo(0x40).label('bsp');
  sendIpi(a, 'bspDest', ICR_INIT_ASSERT);
  waitNanoseconds(a, 10_000, 'wait');
  sendIpi(a, 'bspDest', ICR_STARTUP | SMP_BOOT_SIPI_VECTOR);
  waitNanoseconds(a, 200_000, 'wait');
  startTscWait(a, 'wait');
  a.label('poll').load('ax', 'online').aluImm('cmp', 'ax', 2).jae('done').pause();
  jumpWhileWaitingMem(a, 'wait', 'limit', 'poll');
  a.label('done');
  printString(a, 'online=', console);
  a.load('bx', 'online').incReg('bx');
  printDecimalBx(a, console);
  printString(a, '\n', console);
  a.movImm16('dx', PM1A_CONTROL_PORT).movImm16('ax', POWEROFF_VALUE).outDxAx();
  a.label('bsp.park').cli().hlt().jmp('bsp.park');
  a.padTo(0x1000).label('trampoline');
  a.movImm16('ax', 0x1000).movToSegment('ds', 'ax');
  a.lockIncMem16('online');
  a.movImm32('ecx', 0x802).rdmsr().aluImm('cmp', 'ax', 1).jne('ap.park');
  sendIpi(a, 'apDest', ICR_INIT_ASSERT);
  waitNanoseconds(a, 10_000, 'apWait');
  sendIpi(a, 'apDest', ICR_STARTUP | SMP_BOOT_SIPI_VECTOR);
  a.label('ap.park').cli().hlt().jmp('ap.park');
  return a.bytes();
}
