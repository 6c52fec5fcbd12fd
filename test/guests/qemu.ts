// Boots a boot ROM on a real x86 CPU: QEMU with KVM, the ROM as its BIOS. For the differential
// test of the lab's x86 against real hardware (real-cpu.test.ts).
//
//   qemu-system-x86_64 -accel kvm -cpu host -smp N -m 32 -nodefaults -display none -no-reboot
//     -bios ROM (padded at the front to a 64 KiB multiple: QEMU's rule for a BIOS image)
//     -serial file:OUT (COM1 at 0x3F8)
//     -device isa-debug-exit,iobase=0x404,iosize=2
//
// Without firmware QEMU has no ACPI PM1a control port at 0x404: isa-debug-exit there ends QEMU
// on the guest's power-off write, with status (value << 1 | 1) & 0xFF = 1 for 0x3400. A reset
// (0xCF9) or a triple fault ends it with status 0 under -no-reboot.

import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';

export const QEMU = 'qemu-system-x86_64';
const BIOS_ALIGN = 0x10000;

/**
 * How a QEMU run ended. 'emulation-failure': KVM could not run a guest instruction (QEMU prints
 * "KVM internal error" and stops the VM): what a hypervisor that emulates real mode (rather than
 * running it on the CPU) does with ud2, where VMX with unrestricted guest or SVM delivers #UD,
 * which the ROM's IDT of limit 0 turns into a triple fault.
 */
export type QemuEnding = 'poweroff' | 'reset-or-shutdown' | 'emulation-failure' | 'no-exit' | 'error';

export interface QemuRun {
  ending: QemuEnding;
  serial: string;
  status: number | null;
  stderr: string;
  elapsedMs: number;
}

/** The ROM with zeros in front, to a 64 KiB multiple: its last byte stays at 4 GB - 1. */
export function padBios(rom: Uint8Array): Buffer {
  const padded = Buffer.alloc(Math.ceil(rom.length / BIOS_ALIGN) * BIOS_ALIGN);
  Buffer.from(rom).copy(padded, padded.length - rom.length);
  return padded;
}

/** Why QEMU with KVM cannot be used here, or null. */
export function kvmUnusable(): string | null {
  const version = spawnSync(QEMU, ['--version'], { encoding: 'utf8' });
  if (version.error !== undefined || version.status !== 0) return `${QEMU} is not installed (Debian: apt-get install qemu-system-x86)`;
  try {
    fs.closeSync(fs.openSync('/dev/kvm', 'r+'));
  } catch (err) {
    return `/dev/kvm cannot be opened read-write (${(err as NodeJS.ErrnoException).code ?? String(err)}): no hardware virtualisation for this user`;
  }
  return null;
}

export interface QemuOptions {
  cpu: string;
  vcpus: number;
  /** A run that has not ended is stopped once its output ended in a newline and did not change for this long. */
  quietMs: number;
  /** ... and in any case after this long. */
  maxMs: number;
  dir: string;
}

let runs = 0;

/** Boots `rom` and reports how the run ended and what COM1 received. */
export function runQemu(rom: Uint8Array, opts: QemuOptions): Promise<QemuRun> {
  const id = runs++;
  const bios = path.join(opts.dir, `bios-${id}.bin`);
  const serial = path.join(opts.dir, `serial-${id}.txt`);
  fs.writeFileSync(bios, padBios(rom));
  const args = [
    '-accel', 'kvm', '-cpu', opts.cpu, '-smp', String(opts.vcpus), '-m', '32',
    '-nodefaults', '-display', 'none', '-no-reboot',
    '-bios', bios, '-serial', `file:${serial}`,
    '-device', 'isa-debug-exit,iobase=0x404,iosize=2',
  ];
  const started = Date.now();
  const child = spawn(QEMU, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const read = (): string => (fs.existsSync(serial) ? fs.readFileSync(serial, 'latin1') : '');
  return new Promise((resolve) => {
    let last = '';
    let lastChange = Date.now();
    let stoppedBy: QemuEnding | null = null;
    const timer = setInterval(() => {
      const now = Date.now();
      const out = read();
      if (out !== last) {
        last = out;
        lastChange = now;
      }
      if (/KVM internal error/.test(stderr) && /^Code=/m.test(stderr)) stoppedBy = 'emulation-failure';
      else if (now - started > opts.maxMs || (out.endsWith('\n') && now - lastChange > opts.quietMs)) stoppedBy = 'no-exit';
      if (stoppedBy !== null) child.kill('SIGKILL');
    }, 50);
    child.on('close', (status) => {
      clearInterval(timer);
      let ending: QemuEnding;
      if (stoppedBy !== null) ending = stoppedBy;
      else if (status === 1) ending = 'poweroff';
      else if (status === 0) ending = 'reset-or-shutdown';
      else ending = 'error';
      resolve({ ending, serial: read(), status, stderr, elapsedMs: Date.now() - started });
    });
  });
}

/** A one-page ROM whose reset vector powers off at once: does QEMU with this -cpu run at all? */
export function powerOffRom(): Uint8Array {
  const rom = new Uint8Array(0x1000);
  rom.set([0xba, 0x04, 0x04, 0xb8, 0x00, 0x34, 0xef, 0xf4], 0xff0); // mov dx, 0x404; mov ax, 0x3400; out dx, ax; hlt
  return rom;
}
