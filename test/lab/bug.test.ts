// The lab must reproduce the bug before a test can claim the fix (docs/lab-kernel.md).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { runLab, labSucceeded, type LabKernelName, type LabBhyve } from '../../src/lab/run';
import { buildSmpBoot } from '../../src/lab/guests/smp-boot';
import { Assembler } from '../../src/lab/guests/asm';
import { spawnSync } from 'node:child_process';

// A shorter bounded wait than the CLI's default keeps the failing runs quick.
const guest = buildSmpBoot({ apWaitMs: 300 });

async function boot(kernel: LabKernelName, bhyve: LabBhyve, vcpus: number) {
  return runLab({ kernel, bhyve, vcpus, shim: false, timeoutMs: 20000, guest });
}

for (const vcpus of [2, 4, 8, 16]) {
  test(`window kernel (vlapic.c 7c326ab5): 13.1 bhyve with ${vcpus} vCPUs starts no AP, the guest gives up and powers off`, async () => {
    const r = await boot('window', '13.1', vcpus);
    assert.deepEqual(r.apsStarted, []);
    assert.equal(r.outcome, 'poweroff');
    assert.equal(r.bhyveExit.status, 1);
    assert.equal(r.guestOutput, 'online=1\n');
    assert.equal(labSucceeded(r), false);
  });

  test(`legacy13 kernel (13-era vlapic boot states): 13.1 bhyve starts all ${vcpus - 1} APs`, async () => {
    const r = await boot('legacy13', '13.1', vcpus);
    assert.deepEqual(r.apsStarted, r.apsExpected);
    assert.equal(r.outcome, 'poweroff');
    assert.equal(r.guestOutput, `online=${vcpus}\n`);
  });

  test(`window kernel with its own new-protocol bhyve (14-CURRENT of early 2023): all ${vcpus - 1} APs start`, async () => {
    const r = await boot('window', '14-current', vcpus);
    assert.deepEqual(r.apsStarted, r.apsExpected, r.bhyveStderr);
    assert.equal(r.outcome, 'poweroff');
  });
}

test('fixed14 kernel (vmm_dev.c VM_GET_CPUS ERANGE for 32 bytes): 13.1 bhyve aborts on its vm_loop assert', async () => {
  const r = await boot('fixed14', '13.1', 4);
  assert.equal(r.outcome, 'bhyve-error');
  assert.equal(r.bhyveExit.signal, 'SIGABRT');
  assert.match(r.bhyveStderr, /vm_loop.*Assertion/);
});

test('fixed14 kernel with the new-protocol bhyve: all APs start', async () => {
  const r = await boot('fixed14', '14.0', 4);
  assert.deepEqual(r.apsStarted, [1, 2, 3], r.bhyveStderr);
  assert.equal(r.outcome, 'poweroff');
});

test('a guest that never ends is reported as a hang after --timeout-ms, and bhyve is killed', async () => {
  const spin = new Assembler(0);
  spin.label('forever').pause().jmp('forever');
  const started = Date.now();
  const vmName = `hang-${process.pid}`;
  const r = await runLab({ kernel: 'legacy13', bhyve: '13.1', vcpus: 2, shim: false, timeoutMs: 800, guest: spin.bytes(), vmName });
  assert.equal(r.outcome, 'hang');
  assert.equal(r.bhyveExit.signal, 'SIGKILL');
  assert.ok(Date.now() - started < 10000);
  assert.equal(labSucceeded(r), false);
  const leftovers = spawnSync('pgrep', ['-f', `bhyve13 .* ${vmName}$`], { encoding: 'utf8' }).stdout.trim();
  assert.equal(leftovers, '', 'no bhyve process is left behind');
});
