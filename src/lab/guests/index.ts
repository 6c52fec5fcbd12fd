// The registry of standard guests, by name, for `--guest-name`, `vmm-compat guests` and tests.
// Each builds as a flat image for a loader boot (console on the debug port 0xE9) or, printing on
// COM1, inside a self-contained boot ROM (rom.ts).

import type { GuestConsole } from './conventions';
import { buildGuestRom } from './rom';
import { MAX_AP_ID, buildSmpBoot, type SmpBootOptions } from './smp-boot';
import { buildIpiStorm } from './ipi-storm';
import { buildSipiWithoutInit } from './sipi-without-init';

/** Bits of every even vCPU id 2..254 (the BSP, 0, is never started). */
function evenAps(): bigint {
  let mask = 0n;
  for (let id = 2; id <= MAX_AP_ID; id += 2) mask |= 1n << BigInt(id);
  return mask;
}

export interface StandardGuest {
  readonly name: string;
  readonly description: string;
  /** The flat image; `console` defaults to the debug port 0xE9. */
  build(console?: GuestConsole): Uint8Array;
  /**
   * A hostile guest (docs/lab-guests.md section 7): it does what bhyve must survive, some of
   * which a bare CPU answers otherwise (an INIT to itself stops it), so it is not compared with
   * a real CPU.
   */
  readonly hostile?: boolean;
}

function smpBoot(name: string, description: string, options: SmpBootOptions): StandardGuest {
  return { name, description, build: (console) => buildSmpBoot({ ...options, ...(console ? { console } : {}) }) };
}

const GUESTS: readonly StandardGuest[] = [
  smpBoot('smp-boot', 'start every AP, print online=N, power off', {}),
  smpBoot('smp-boot-reset', 'as smp-boot, then reset (byte 0x06 to port 0xCF9)', { finalAction: 'reset' }),
  smpBoot('smp-boot-halt', 'as smp-boot, then cli; hlt on the BSP (halt suspend)', { finalAction: 'halt' }),
  smpBoot('smp-boot-triplefault', 'as smp-boot, then an opcode outside the subset (triple fault)', { finalAction: 'triplefault' }),
  smpBoot('smp-boot-restart', 'as smp-boot, then INIT+SIPI AP 1 again and print restart=0|1', { restartAp: 1 }),
  smpBoot('smp-boot-bsp-only', 'start no AP, print online=1, power off', { startMask: 0 }),
  smpBoot(
    'smp-boot-half',
    'start the even-numbered APs only (half of them), print online=N, power off with the others never started',
    { startMask: evenAps() },
  ),
  // Hostile guests (docs/lab-guests.md section 7): what an untrusted guest may do to its vCPUs.
  {
    name: 'ipi-storm',
    description: 'start every AP, then 50 rounds of INIT+STARTUP to itself, every AP and 3 APIC IDs that do not exist; print online=N, storm=50, online=N, power off',
    build: (console) => buildIpiStorm(console ? { console } : {}),
    hostile: true,
  },
  {
    name: 'sipi-without-init',
    description: 'STARTUP every AP without INIT (print online=1), then start them properly (print online=N), power off',
    build: (console) => buildSipiWithoutInit(console ? { console } : {}),
    hostile: true,
  },
  {
    ...smpBoot('reboot-loop', 'send every AP INIT+STARTUP and reset at once, without waiting for one (restarted by the wrapper: a tight reboot loop)', {
      apWaitMs: 0,
      finalAction: 'reset',
    }),
    hostile: true,
  },
];

export function standardGuestNames(): string[] {
  return GUESTS.map((guest) => guest.name);
}

export function standardGuests(): readonly StandardGuest[] {
  return GUESTS;
}

function findGuest(name: string): StandardGuest {
  const guest = GUESTS.find((candidate) => candidate.name === name);
  if (guest === undefined) {
    throw new Error(`unknown guest '${name}'; standard guests: ${standardGuestNames().join(', ')}`);
  }
  return guest;
}

/** The image of a standard guest, to be loaded at guest-physical 0x10000 (console: port 0xE9 unless told). */
export function standardGuest(name: string, console?: GuestConsole): Uint8Array {
  return findGuest(name).build(console);
}

/** A standard guest's boot ROM: the guest printing on COM1, for `vcpus` vCPUs (rom.ts). */
export function standardGuestRom(name: string, vcpus?: number): Uint8Array {
  return buildGuestRom(findGuest(name).build('com1'), { name, ...(vcpus !== undefined ? { vcpus } : {}) });
}
