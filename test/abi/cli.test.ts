// `vmm-compat abi`, run as a user would: node dist/src/cli/main.js abi ...
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { ioctlTable } from '../../src/abi/ioctls';
import { abiJson, abiText } from '../../src/cli/commands/abi';
import { hexRequest } from '../../src/abi/ioccom';
import { REF_13 } from './reference';

const MAIN = path.resolve(__dirname, '../../src/cli/main.js');

function run(...args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [MAIN, ...args], { encoding: 'utf8' });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

interface Entry {
  name: string;
  request: string;
  len: number;
  dir: string;
  num: number;
  struct: string;
  compat?: string;
  differsFrom13?: boolean;
  request13?: string;
  same13As?: string;
  device?: string;
}

function parseEntries(stdout: string): Entry[] {
  const parsed: unknown = JSON.parse(stdout);
  assert.ok(Array.isArray(parsed));
  return parsed as Entry[];
}

test('abi --json prints the 13.1 table by default, with the reference numbers', () => {
  const r = run('abi', '--json');
  assert.equal(r.status, 0, r.stderr);
  const entries = parseEntries(r.stdout);
  assert.equal(entries.length, ioctlTable('13.1').length);
  const run13 = entries.find((e) => e.name === 'VM_RUN');
  assert.deepEqual(
    { ...run13, notes: undefined },
    { name: 'VM_RUN', request: '0xC0907601', len: 144, dir: 'inout', num: 1, struct: 'vm_run', notes: undefined },
  );
  for (const ref of REF_13) {
    const e = entries.find((x) => x.name === ref.name);
    assert.ok(e, ref.name);
    assert.equal(e.request, hexRequest(ref.request), ref.name);
    assert.equal(e.len, ref.len, ref.name);
    assert.equal(e.differsFrom13, undefined, '13.1 entries carry no comparison');
  }
  assert.equal(entries.find((e) => e.name === 'VM_ALLOC_MEMSEG_FBSD12')?.compat, 'COMPAT_FREEBSD12');
});

test('abi --abi 14.0 --json marks what differs from 13.1', () => {
  const r = run('abi', '--abi', '14.0', '--json');
  assert.equal(r.status, 0, r.stderr);
  const entries = parseEntries(r.stdout);
  const byName = new Map(entries.map((e) => [e.name, e]));
  assert.deepEqual(
    { ...byName.get('VM_RUN'), notes: undefined },
    {
      name: 'VM_RUN',
      request: '0x80207601',
      len: 32,
      dir: 'in',
      num: 1,
      struct: 'vm_run',
      notes: undefined,
      differsFrom13: true,
      request13: '0xC0907601',
    },
  );
  const run13 = byName.get('VM_RUN_13');
  assert.equal(run13?.request, '0xC0907601');
  assert.equal(run13?.compat, 'COMPAT_FREEBSD13');
  assert.equal(run13?.differsFrom13, true);
  assert.equal(run13?.same13As, 'VM_RUN');
  assert.equal(byName.get('VM_STATS')?.request, '0xC2207632');
  assert.equal(byName.get('VM_STATS')?.request13, '0xC2187632');
  assert.equal(byName.get('VM_STATS_OLD')?.compat, 'COMPAT_FREEBSD13');
  assert.equal(byName.get('VM_ACTIVATE_CPU')?.differsFrom13, false);
  assert.equal(byName.get('VM_ACTIVATE_CPU')?.request13, undefined);
});

test('abi without --json prints an aligned table', () => {
  const r = run('abi', '--abi', '14.0');
  assert.equal(r.status, 0, r.stderr);
  const lines = r.stdout.split('\n');
  const header = lines.find((l) => l.startsWith('NAME'));
  assert.ok(header);
  const runLine = lines.find((l) => l.startsWith('VM_RUN '));
  assert.ok(runLine);
  assert.equal(runLine.indexOf('0x80207601'), header.indexOf('REQUEST'), 'REQUEST column aligned');
  assert.match(runLine, /13\.1: 0xC0907601/);
  assert.match(lines.find((l) => l.startsWith('VM_RUN_13 ')) ?? '', /COMPAT_FREEBSD13/);
});

test('an unknown --abi value exits 2 and names the accepted values on stderr', () => {
  const r = run('abi', '--abi', '16.0');
  assert.equal(r.status, 2);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /13\.1/);
  assert.match(r.stderr, /14\.0/);
  assert.match(r.stderr, /15\.0/);
});

test('abi --abi 15.0 --json: the NUMA memseg, its COMPAT_FREEBSD14 forms, VM_RUN_13, VM_STATS_13 and /dev/vmmctl', () => {
  const r = run('abi', '--abi', '15.0', '--json');
  assert.equal(r.status, 0, r.stderr);
  const byName = new Map(parseEntries(r.stdout).map((e) => [e.name, e]));
  const pick = (name: string): unknown => {
    const e = byName.get(name);
    return e === undefined ? undefined : { request: e.request, len: e.len, dir: e.dir, compat: e.compat };
  };
  assert.deepEqual(pick('VM_ALLOC_MEMSEG'), { request: '0x8038760E', len: 56, dir: 'in', compat: undefined });
  assert.deepEqual(pick('VM_GET_MEMSEG'), { request: '0xC038760F', len: 56, dir: 'inout', compat: undefined });
  assert.deepEqual(pick('VM_ALLOC_MEMSEG_14'), { request: '0x8020760E', len: 32, dir: 'in', compat: 'COMPAT_FREEBSD14' });
  assert.deepEqual(pick('VM_GET_MEMSEG_14'), { request: '0xC020760F', len: 32, dir: 'inout', compat: 'COMPAT_FREEBSD14' });
  assert.deepEqual(pick('VM_RUN'), { request: '0x80207601', len: 32, dir: 'in', compat: undefined });
  assert.deepEqual(pick('VM_RUN_13'), { request: '0xC0907601', len: 144, dir: 'inout', compat: 'COMPAT_FREEBSD13' });
  assert.deepEqual(pick('VM_STATS_13'), { request: '0xC2187632', len: 536, dir: 'inout', compat: 'COMPAT_FREEBSD13' });
  assert.deepEqual(pick('VMMCTL_VM_CREATE'), { request: '0xC1285600', len: 296, dir: 'inout', compat: undefined });
  assert.deepEqual(pick('VMMCTL_VM_DESTROY'), { request: '0xC1285601', len: 296, dir: 'inout', compat: undefined });
  assert.equal(byName.get('VM_ALLOC_MEMSEG_14')?.same13As, 'VM_ALLOC_MEMSEG');
  assert.equal(byName.get('VMMCTL_VM_CREATE')?.device, '/dev/vmmctl');
  assert.equal(byName.get('VM_RUN')?.device, undefined);
  assert.equal(byName.has('VM_STATS_OLD'), false, '15.0 names it VM_STATS_13');
  const ids = run('abi', '--abi', '15.0', '--segids', '--json');
  assert.deepEqual(JSON.parse(ids.stdout), {
    VM_SYSMEM: 0, VM_MAXSYSMEM: 8, VM_BOOTROM: 8, VM_FRAMEBUFFER: 9, VM_PCIROM: 10, VM_MAX_MEMSEGS: 11, VM_MAX_MEMMAPS: 22,
  });
  assert.deepEqual(JSON.parse(run('abi', '--abi', '13.1', '--segids', '--json').stdout), {
    VM_SYSMEM: 0, VM_BOOTROM: 1, VM_FRAMEBUFFER: 2, VM_PCIROM: 3,
  });
});

// The same output in-process, so that a failure above that comes from another command's module
// failing to load is told apart from a failure of the abi command itself.
test('abiJson / abiText agree with the spawned command contract', () => {
  const e13 = abiJson('13.1');
  assert.equal(e13.find((e) => e.name === 'VM_RUN')?.request, '0xC0907601');
  assert.ok(e13.every((e) => e.differsFrom13 === undefined));
  const e14 = abiJson('14.0');
  assert.ok(e14.every((e) => typeof e.differsFrom13 === 'boolean'));
  assert.deepEqual(
    e14.filter((e) => e.differsFrom13).map((e) => e.name),
    ['VM_RUN', 'VM_RUN_13', 'VM_STATS', 'VM_STATS_OLD', 'VM_SNAPSHOT_REQ', 'VM_SNAPSHOT_REQ_OLD'],
  );
  const text = abiText('13.1');
  assert.match(text, /^VM_ACTIVATE_CPU\s+0x8004765A\s+in\s+90\s+4\s+vm_activate_cpu$/m);
});
