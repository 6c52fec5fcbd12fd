// libvmmcompat.so outside the lab's VM boots: what it must leave alone, under ASan and UBSan.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import { ARTIFACTS, nativeArtifact, requireArtifact } from '../../src/native-paths';
import { REQ13 } from '../../src/abi/ioctls';
import { sanitizerRuntimes } from '../../src/lab/run';
import { COMPAT_PROTOCOL_VERSION } from '../../src/version';

const loopEnv = (preload: string[]): NodeJS.ProcessEnv => ({
  ...process.env,
  LD_PRELOAD: preload.join(' '),
  VMMLAB_BRIDGE_MODE: 'loopback',
  VMMLAB_ROOT: os.tmpdir(),
  ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1',
  UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1',
});

for (const request of ['run', 'getreg']) {
  test(`sanitized interposer passes ${request === 'run' ? 'VM_RUN' : 'VM_GET_REGISTER'} through 20000 times without a report`, () => {
    const loop = requireArtifact('bench/passthrough');
    const preload = [...sanitizerRuntimes(), requireArtifact(ARTIFACTS.interposer, 'asan'), requireArtifact(ARTIFACTS.bridge, 'asan')];
    const r = spawnSync(loop, ['vm-x', request, '20000'], { env: loopEnv(preload), encoding: 'utf8', timeout: 60000 });
    assert.equal(r.status, 0, r.stderr);
    assert.doesNotMatch(r.stderr, /AddressSanitizer|runtime error/);
    assert.ok(Number(r.stdout) > 0);
    // No socket directory: the interposer says once that it runs without the daemon.
    assert.match(r.stderr, /cannot reach vmm-compatd \(VMM_COMPAT_SOCKET_DIR is not set\)/);
  });
}

test('the interposer exports only the interposed calls and its protocol tag', () => {
  const r = spawnSync('nm', ['-D', '--defined-only', nativeArtifact(ARTIFACTS.interposer)], { encoding: 'utf8' });
  if (r.status !== 0) return; // binutils missing: nothing to check
  const exported = r.stdout
    .split('\n')
    .map((l) => l.trim().split(/\s+/))
    .filter((f) => f.length === 3 && /[TDBR]/.test(f[1]!))
    .map((f) => f[2]!)
    .sort();
  assert.deepEqual(exported, ['cap_ioctls_limit', 'close', 'ioctl', 'open', 'open64', 'openat', 'openat64', 'sysctlbyname', 'vmm_compat_protocol']);
});

test('bad input on a vmm fd (NULL arguments, request 0, odd vCPU ids, fds off the table) never crashes the sanitized interposer', () => {
  const program = requireArtifact('shim-tests/bad_input');
  const preload = [...sanitizerRuntimes(), requireArtifact(ARTIFACTS.interposer, 'asan'), requireArtifact(ARTIFACTS.bridge, 'asan')];
  const r = spawnSync(program, [], { env: loopEnv(preload), encoding: 'utf8', timeout: 60000 });
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'ok\n');
  assert.doesNotMatch(r.stderr, /AddressSanitizer|runtime error/);
});

test('the interposer\'s vCPU sets hold vCPUs 0..255 exactly (13.x CPU_SETSIZE), sanitized', () => {
  const r = spawnSync(requireArtifact('shim-tests/vcpuset_test'), [], {
    env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=0:abort_on_error=1', UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1' },
    encoding: 'utf8',
    timeout: 60000,
  });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /^vcpuset: \d+ checks passed\n$/);
});

test('the protocol tag names the protocol version the daemon speaks (doctor compares them)', () => {
  const tag = /vmm-compat-protocol=(\d+)/.exec(fs.readFileSync(nativeArtifact(ARTIFACTS.interposer)).toString('latin1'));
  assert.equal(Number(tag?.[1]), COMPAT_PROTOCOL_VERSION);
});

test('more vCPUs than the interposer can name (257+): refused before the BSP runs where APs need parking, passed through elsewhere', () => {
  const labtest = requireArtifact('labtest');
  const preload = [...sanitizerRuntimes(), requireArtifact(ARTIFACTS.interposer, 'asan'), requireArtifact(ARTIFACTS.bridge, 'asan')];
  const hex = (n: number): string => `0x${n.toString(16)}`;
  // VM_SET_TOPOLOGY: 300 sockets x 1 core x 1 thread, then the BSP's first VM_RUN (the plan).
  const steps = ['open', 'wide-vm', 'ioctl', hex(REQ13.VM_SET_TOPOLOGY), '2c01010001000000', 'ioctl', hex(REQ13.VM_RUN), '-'];
  const window = spawnSync(labtest, steps, { env: { ...loopEnv(preload), VMM_COMPAT_KERNEL: 'window' }, encoding: 'utf8', timeout: 60000 });
  assert.equal(window.status, 69, window.stderr);
  assert.match(window.stderr, /VM wide-vm: 300 vCPUs, but the interposer can park and hand over at most 256 .* refusing to boot a VM whose APs 256\.\.299 could never start; nothing was activated/);
  assert.deepEqual(window.stdout.trim().split('\n').map((l) => l.split(' ').slice(0, 2).join(' ')), ['open ok', 'ioctl ok'], 'VM_SET_TOPOLOGY passed, VM_RUN never returned');
  const fixed = spawnSync(labtest, steps, { env: { ...loopEnv(preload), VMM_COMPAT_KERNEL: 'fixed14' }, encoding: 'utf8', timeout: 60000 });
  assert.equal(fixed.status, 0, fixed.stderr);
  assert.match(fixed.stderr, /VM wide-vm: 300 vCPUs, more than the 256 the interposer covers; the fixed14 kernel needs no eager activation: passing through/);
  assert.doesNotMatch(fixed.stderr, /AddressSanitizer|runtime error/);
});
