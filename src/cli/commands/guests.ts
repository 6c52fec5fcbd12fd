// vmm-compat guests: the standard guests as self-contained boot ROMs (src/lab/guests/rom.ts), for
// bhyve's `-l bootrom,FILE` on a FreeBSD host and for QEMU's `-bios` (docs/lab-guests.md).
import fs from 'node:fs';
import path from 'node:path';
import { Command } from 'commander';
import { standardGuestRom, standardGuests } from '../../lab/guests';
import { DEFAULT_ROM_VCPUS, MAX_ROM_VCPUS } from '../../lab/guests/rom';
import { usageError } from '../usage';

interface GuestsCliOptions {
  list?: boolean;
  write?: string;
  vcpus: string;
  json?: boolean;
}

export interface GuestRomEntry {
  name: string;
  description: string;
  /** The file written, or null with --list alone. */
  file: string | null;
  bytes: number;
  vcpus: number;
}

/** The file name of a standard guest's ROM. */
export function guestRomFileName(name: string): string {
  return `${name}.rom`;
}

function parseVcpus(value: string): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < 1 || n > MAX_ROM_VCPUS) throw usageError(`--vcpus must be a whole number from 1 to ${MAX_ROM_VCPUS}, not "${value}"`);
  return n;
}

/** The output directory, created if missing (as install -d); a usage error when it cannot be one. */
function prepareDirectory(dir: string): string {
  const resolved = path.resolve(dir);
  if (fs.existsSync(resolved) && !fs.statSync(resolved).isDirectory()) throw usageError(`--write ${dir}: exists and is not a directory`);
  try {
    fs.mkdirSync(resolved, { recursive: true });
  } catch (err) {
    throw new Error(`cannot create ${dir}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
  return resolved;
}

/** Writes a file through a temporary name and a rename, so that a reader never sees half of it. */
function writeAtomically(file: string, bytes: Uint8Array): void {
  const temporary = `${file}.tmp-${process.pid}`;
  try {
    fs.writeFileSync(temporary, bytes, { mode: 0o644 });
    fs.renameSync(temporary, file);
  } catch (err) {
    fs.rmSync(temporary, { force: true });
    throw new Error(`cannot write ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
  }
}

/** Builds every standard guest's ROM for `vcpus` and, with `dir`, writes DIR/NAME.rom. */
export function writeGuestRoms(dir: string | null, vcpus: number): GuestRomEntry[] {
  const target = dir === null ? null : prepareDirectory(dir);
  return standardGuests().map((guest) => {
    const rom = standardGuestRom(guest.name, vcpus);
    let file: string | null = null;
    if (target !== null) {
      file = path.join(target, guestRomFileName(guest.name));
      writeAtomically(file, rom);
    }
    return { name: guest.name, description: guest.description, file, bytes: rom.length, vcpus };
  });
}

export function registerGuestsCommand(program: Command): void {
  program
    .command('guests')
    .description('the standard guests as boot ROMs for bhyve -l bootrom,FILE (list them, or write NAME.rom for each)')
    .option('--list', 'list the standard guests (the default without --write)')
    .option('--write <dir>', 'write DIR/NAME.rom for every standard guest (DIR is created if missing)')
    .option('--vcpus <n>', `the vCPU count stored in each ROM (1..${MAX_ROM_VCPUS}; ROM offset 0x0A)`, String(DEFAULT_ROM_VCPUS))
    .option('--json', 'print one JSON object')
    .action((opts: GuestsCliOptions) => {
      const vcpus = parseVcpus(opts.vcpus);
      const entries = writeGuestRoms(opts.write ?? null, vcpus);
      if (opts.json) {
        process.stdout.write(JSON.stringify({ vcpus, guests: entries }) + '\n');
        return;
      }
      const lines: string[] = [];
      if (opts.write !== undefined) {
        for (const e of entries) lines.push(`wrote ${e.file ?? ''} (${e.bytes} bytes, ${e.vcpus} vCPU${e.vcpus === 1 ? '' : 's'})`);
      }
      if (opts.list || opts.write === undefined) {
        const width = Math.max(...entries.map((e) => e.name.length));
        for (const e of entries) lines.push(`${e.name.padEnd(width)}  ${e.description}`);
      }
      process.stdout.write(lines.join('\n') + '\n');
    });
}
