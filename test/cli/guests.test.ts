// vmm-compat guests and lab --rom through the real CLI: the ROMs `guests --write DIR --vcpus N`
// writes print online=N in the lab, booted by a bhyve model with a real bhyve command line
// (romBootArgs: -s 0,hostbridge -s 31,lpc -l com1,stdio -l bootrom,FILE, no lab-only loader).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { standardGuestNames, standardGuestRom } from '../../src/lab/guests';
import { readGuestRomHeader } from '../../src/lab/guests/rom';
import { romBootArgs } from '../../src/lab/run';

const cli = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');

function run(args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', timeout: 60000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function scratch(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'vmmc-guests-'));
}

test('guests (no flags) and --list name every standard guest with its description', () => {
  for (const args of [['guests'], ['guests', '--list']]) {
    const r = run(args);
    assert.equal(r.status, 0, r.stderr);
    const lines = r.stdout.trimEnd().split('\n');
    assert.deepEqual(lines.map((l) => l.split(/\s+/)[0]), standardGuestNames());
    assert.match(lines[0]!, /^smp-boot\s+start every AP, print online=N, power off$/);
  }
});

test('guests --write DIR --vcpus N writes NAME.rom for every standard guest, creating DIR, byte for byte the library\'s ROMs', () => {
  const dir = path.join(scratch(), 'new', 'roms');
  const r = run(['guests', '--write', dir, '--vcpus', '7']);
  assert.equal(r.status, 0, r.stderr);
  assert.deepEqual(fs.readdirSync(dir).sort(), standardGuestNames().map((n) => `${n}.rom`).sort());
  for (const name of standardGuestNames()) {
    const rom = fs.readFileSync(path.join(dir, `${name}.rom`));
    assert.deepEqual(rom, Buffer.from(standardGuestRom(name, 7)));
    assert.equal(readGuestRomHeader(rom).vcpus, 7);
    assert.equal(rom.length % 4096, 0, 'bootrom.c: whole pages');
    assert.match(r.stdout, new RegExp(`^wrote ${dir.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}/${name}\\.rom \\(${rom.length} bytes, 7 vCPUs\\)$`, 'm'));
  }
  assert.equal(fs.readdirSync(dir).filter((f) => f.includes('.tmp-')).length, 0, 'no temporary file left');
  const json = run(['guests', '--write', dir, '--json']);
  assert.equal(json.status, 0, json.stderr);
  const parsed = JSON.parse(json.stdout) as { vcpus: number; guests: { name: string; file: string; bytes: number; vcpus: number; description: string }[] };
  assert.equal(parsed.vcpus, 4, 'the default');
  assert.deepEqual(parsed.guests.map((g) => [g.name, g.file, g.bytes, g.vcpus]), standardGuestNames().map((n) => [n, path.join(dir, `${n}.rom`), 8192, 4]));
  assert.equal(readGuestRomHeader(fs.readFileSync(path.join(dir, 'smp-boot.rom'))).vcpus, 4, 'rewritten in place');
});

test('guests: bad input is a usage error (exit 2) and writes nothing', () => {
  const dir = scratch();
  for (const vcpus of ['0', '257', 'four', '1.5']) {
    const r = run(['guests', '--write', dir, '--vcpus', vcpus]);
    assert.equal(r.status, 2, vcpus);
    assert.match(r.stderr, /--vcpus must be a whole number from 1 to 256/);
  }
  const file = path.join(dir, 'plain');
  fs.writeFileSync(file, 'x');
  const notDir = run(['guests', '--write', file]);
  assert.equal(notDir.status, 2);
  assert.match(notDir.stderr, /exists and is not a directory/);
  assert.deepEqual(fs.readdirSync(dir), ['plain']);
});

test('the ROMs of guests --write print online=N in the lab for N = 1, 4 and 16, through lab --rom and a bhyve model given romBootArgs', { timeout: 120_000 }, () => {
  for (const vcpus of [1, 4, 16]) {
    const dir = scratch();
    assert.equal(run(['guests', '--write', dir, '--vcpus', String(vcpus)]).status, 0);
    const rom = path.join(dir, 'smp-boot.rom');
    const r = run(['lab', '--kernel', 'fixed14', '--bhyve', '14.0', '--vcpus', String(vcpus), '--rom', rom, '--json']);
    assert.equal(r.status, 0, `${vcpus}: ${r.stdout} ${r.stderr}`);
    const result = JSON.parse(r.stdout) as { guestOutput: string; outcome: string; bootrom: boolean; apsStarted: number[] };
    assert.equal(result.guestOutput, `online=${vcpus}\n`);
    assert.equal(result.outcome, 'poweroff');
    assert.equal(result.bootrom, true);
    assert.equal(result.apsStarted.length, vcpus - 1);
  }
  assert.deepEqual(romBootArgs({ vcpus: 4, romFile: '/r.rom', vmName: 'vm' }), [
    '-c', '4', '-m', '2M', '-x', '-H', '-P', '-A', '-s', '0,hostbridge', '-s', '31,lpc', '-l', 'com1,stdio', '-l', 'bootrom,/r.rom', 'vm',
  ]);
});

test('lab --rom: a ROM that is not there, or --rom with --guest, is a usage error; so is a --guest too big for a ROM with --bootrom', () => {
  const missing = run(['lab', '--rom', '/nonexistent/x.rom']);
  assert.equal(missing.status, 2);
  assert.match(missing.stderr, /cannot read --rom \/nonexistent\/x\.rom: ENOENT/);
  const both = run(['lab', '--rom', cli, '--guest-name', 'smp-boot']);
  assert.equal(both.status, 2);
  assert.match(both.stderr, /--rom boots a ROM as it is/);
  const dir = run(['lab', '--rom', os.tmpdir()]);
  assert.equal(dir.status, 2);
  assert.match(dir.stderr, /is not a file/);
  const big = path.join(scratch(), 'big.bin');
  fs.writeFileSync(big, Buffer.alloc(70000, 0x90));
  const tooBig = run(['lab', '--bootrom', '--guest', big]);
  assert.equal(tooBig.status, 2);
  assert.match(tooBig.stderr, /with --bootrom it must fit a boot ROM: 1\.\.65216 bytes/);
});
