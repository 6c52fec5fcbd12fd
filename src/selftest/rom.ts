// The ROM selftest boots: the installed smp-boot guest's boot ROM (or --rom FILE), copied into a
// private directory once per vCPU count with that count patched in (GUEST_ROM_LAYOUT.vcpuCount).
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { patchGuestRomVcpus, readGuestRomHeader } from '../lab/guests/rom';
import { guestRomFileName } from '../cli/commands/guests';

export const SELFTEST_GUEST = 'smp-boot';

/**
 * Where the standard guests' ROMs are, in order: $VMM_COMPAT_GUESTS_DIR; PREFIX/share/vmm-compat/
 * guests of an installed package (its tree is PREFIX/libexec/vmm-compat, make install and the
 * port); dist/guests of an npm package or a source tree (npm run build writes them).
 */
export function romDirectories(env: NodeJS.ProcessEnv = process.env): string[] {
  if (env.VMM_COMPAT_GUESTS_DIR) return [env.VMM_COMPAT_GUESTS_DIR];
  // dist/src/selftest/rom.js -> the package tree
  const packageRoot = path.resolve(__dirname, '..', '..', '..');
  return [path.resolve(packageRoot, '..', '..', 'share', 'vmm-compat', 'guests'), path.join(packageRoot, 'dist', 'guests')];
}

/** The installed smp-boot ROM, or null with where it was looked for. */
export function findInstalledRom(env: NodeJS.ProcessEnv = process.env): { file: string } | { file: null; searched: string[] } {
  const searched = romDirectories(env).map((dir) => path.join(dir, guestRomFileName(SELFTEST_GUEST)));
  const file = searched.find((f) => fs.existsSync(f));
  return file === undefined ? { file: null, searched } : { file };
}

export interface SelftestRom {
  /** The ROM file read. */
  source: string;
  /** The guest's name in the ROM header. */
  name: string;
  /** The file to boot for `vcpus`, written on first use. */
  fileFor(vcpus: number): string;
  /** Removes the private directory. */
  remove(): void;
}

/** Reads and checks a ROM (a clear error for anything that is not a vmm-compat boot ROM). */
export function openSelftestRom(source: string): SelftestRom {
  const bytes = new Uint8Array(fs.readFileSync(source));
  const header = readGuestRomHeader(bytes);
  // mkdtemp: mode 0700, a name no one else has.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-compat-selftest-'));
  const written = new Map<number, string>();
  return {
    source,
    name: header.name,
    fileFor(vcpus: number): string {
      const known = written.get(vcpus);
      if (known !== undefined) return known;
      const copy = Uint8Array.from(bytes);
      patchGuestRomVcpus(copy, vcpus);
      const file = path.join(dir, `${header.name || 'guest'}-${vcpus}.rom`);
      fs.writeFileSync(file, copy, { mode: 0o644 });
      written.set(vcpus, file);
      return file;
    },
    remove(): void {
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
}
