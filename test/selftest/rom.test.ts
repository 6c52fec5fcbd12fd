// The ROM selftest boots: found where the package installs it, patched per vCPU count in a private
// directory, and anything that is not a vmm-compat boot ROM refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { findInstalledRom, openSelftestRom, romDirectories } from '../../src/selftest/rom';
import { readGuestRomHeader } from '../../src/lab/guests/rom';
import { standardGuestRom } from '../../src/lab/guests';

test('the installed ROM: $VMM_COMPAT_GUESTS_DIR alone when set, else PREFIX/share/vmm-compat/guests, then dist/guests', () => {
  const dirs = romDirectories({});
  assert.equal(dirs.length, 2);
  assert.match(dirs[0]!, /share\/vmm-compat\/guests$/);
  assert.match(dirs[1]!, /dist\/guests$/);
  assert.deepEqual(romDirectories({ VMM_COMPAT_GUESTS_DIR: '/opt/roms' }), ['/opt/roms']);
  const found = findInstalledRom({});
  assert.ok(found.file !== null && found.file.endsWith('dist/guests/smp-boot.rom'), 'npm run build wrote dist/guests');
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'vmmc-noroms-'));
  assert.deepEqual(findInstalledRom({ VMM_COMPAT_GUESTS_DIR: empty }), { file: null, searched: [path.join(empty, 'smp-boot.rom')] });
  fs.rmSync(empty, { recursive: true });
});

test('one copy per vCPU count, with that count at ROM offset 0x0A, in a private directory removed at the end', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmmc-rom-'));
  const source = path.join(dir, 'smp-boot.rom');
  fs.writeFileSync(source, standardGuestRom('smp-boot', 4));
  const rom = openSelftestRom(source);
  assert.equal(rom.name, 'smp-boot');
  const two = rom.fileFor(2);
  const sixteen = rom.fileFor(16);
  assert.equal(rom.fileFor(2), two, 'written once');
  assert.equal(readGuestRomHeader(fs.readFileSync(two)).vcpus, 2);
  assert.deepEqual(fs.readFileSync(sixteen), Buffer.from(standardGuestRom('smp-boot', 16)), 'the same bytes as a ROM built for 16');
  assert.equal(fs.statSync(path.dirname(two)).mode & 0o777, 0o700);
  assert.equal(readGuestRomHeader(fs.readFileSync(source)).vcpus, 4, 'the installed ROM is not changed');
  rom.remove();
  assert.equal(fs.existsSync(path.dirname(two)), false);
  fs.writeFileSync(source, Buffer.alloc(8192));
  assert.throws(() => openSelftestRom(source), /not a vmm-compat boot ROM/);
  fs.rmSync(dir, { recursive: true });
});
