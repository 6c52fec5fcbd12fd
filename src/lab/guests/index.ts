// The registry of standard guests, by name, for `--guest-name` and for tests.

import { MAX_AP_ID, buildSmpBoot } from './smp-boot';
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
  build(): Uint8Array;
}

const GUESTS: readonly StandardGuest[] = [
  { name: 'smp-boot', description: 'start every AP, print online=N, power off', build: () => buildSmpBoot() },
  { name: 'smp-boot-reset', description: 'as smp-boot, then reset (byte 0x06 to port 0xCF9)', build: () => buildSmpBoot({ finalAction: 'reset' }) },
  { name: 'smp-boot-halt', description: 'as smp-boot, then cli; hlt on the BSP (halt suspend)', build: () => buildSmpBoot({ finalAction: 'halt' }) },
  { name: 'smp-boot-triplefault', description: 'as smp-boot, then an opcode outside the subset (triple fault)', build: () => buildSmpBoot({ finalAction: 'triplefault' }) },
  { name: 'smp-boot-restart', description: 'as smp-boot, then INIT+SIPI AP 1 again and print restart=0|1', build: () => buildSmpBoot({ restartAp: 1 }) },
  { name: 'smp-boot-bsp-only', description: 'start no AP, print online=1, power off', build: () => buildSmpBoot({ startMask: 0 }) },
  {
    name: 'smp-boot-half',
    description: 'start the even-numbered APs only (half of them), print online=N, power off with the others never started',
    build: () => buildSmpBoot({ startMask: evenAps() }),
  },
  // Hostile guests (docs/lab-guests.md section 5): what an untrusted guest can make the shim do.
  {
    name: 'ipi-storm',
    description: 'start every AP, then 50 rounds of INIT+STARTUP to itself, every AP and 3 APIC IDs that do not exist; print online=N, storm=50, online=N, power off',
    build: () => buildIpiStorm(),
  },
  {
    name: 'sipi-without-init',
    description: 'STARTUP every AP without INIT (print online=1), then start them properly (print online=N), power off',
    build: () => buildSipiWithoutInit(),
  },
  {
    name: 'reboot-loop',
    description: 'send every AP INIT+STARTUP and reset at once, without waiting for one (restarted by the wrapper: a tight reboot loop)',
    build: () => buildSmpBoot({ apWaitMs: 0, finalAction: 'reset' }),
  },
];

export function standardGuestNames(): string[] {
  return GUESTS.map((guest) => guest.name);
}

export function standardGuests(): readonly StandardGuest[] {
  return GUESTS;
}

/** The image of a standard guest, to be loaded at guest-physical 0x10000. */
export function standardGuest(name: string): Uint8Array {
  const guest = GUESTS.find((candidate) => candidate.name === name);
  if (guest === undefined) {
    throw new Error(`unknown guest '${name}'; standard guests: ${standardGuestNames().join(', ')}`);
  }
  return guest.build();
}
