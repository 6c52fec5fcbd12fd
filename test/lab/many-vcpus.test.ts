// Beyond 16 vCPUs: the 13.2-13.5 bhyve takes maxcpus from the kernel (bhyverun.c
// num_vcpus_allowed at 0040b6857e93), and the interposer, the daemon and the guests follow it up
// to the 256 vCPUs of 13.x's cpuset_t. 13.1 bhyve keeps VM_MAXCPU 16.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LAB_KERNELS, LabBench, compatEventsOf, runLab, type LabKernelName, type LabOptions } from '../../src/lab/run';
import { variantRules } from '../../src/lab/kernel/variant';
import { standardGuest } from '../../src/lab/guests';
import { buildSmpBoot } from '../../src/lab/guests/smp-boot';

const SLOW = { timeout: 180_000 };
const guest = buildSmpBoot({ apWaitMs: 2000 });

function lab(kernel: LabKernelName, opts: Partial<LabOptions> & { vcpus: number }) {
  return runLab({ kernel, bhyve: '13.5', shim: true, timeoutMs: 120000, guest, collectDaemonLog: true, ...opts });
}

function count(log: string | undefined, event: string): number {
  return compatEventsOf(log).filter((e) => e.event === event).length;
}

// Every kernel whose maxcpus comes from hw.vmm.maxcpu (the host's CPU count): whatever variants
// the lab has, not a list written here.
const hostSizedKernels = LAB_KERNELS.filter((k) => variantRules(k).maxcpuSysctl);

for (const kernel of hostSizedKernels) {
  test(`${kernel} + 13.5 bhyve + shim, 32 vCPUs on a 32-CPU host: all 31 APs start, power-off exits 1`, SLOW, async () => {
    const r = await lab(kernel, { vcpus: 32, hostCpus: 32 });
    assert.deepEqual(r.apsStarted, r.apsExpected, r.bhyveStderr);
    assert.equal(r.guestOutput, 'online=32\n');
    assert.equal(r.outcome, 'poweroff');
    assert.equal(r.bhyveExit.status, 1);
  });
}

test('window + 13.5 bhyve without the shim, 32 vCPUs: the bug (no AP starts); with it every AP does', SLOW, async () => {
  const bug = await lab('window', { vcpus: 32, hostCpus: 32, shim: false, guest: buildSmpBoot({ apWaitMs: 300 }) });
  assert.deepEqual(bug.apsStarted, []);
  assert.equal(bug.guestOutput, 'online=1\n');
  const fixed = await lab('window', { vcpus: 32, hostCpus: 32 });
  assert.equal(count(fixed.daemonLog, 'parked'), 31);
  assert.equal(count(fixed.daemonLog, 'handover'), 31);
  assert.equal(count(fixed.daemonLog, 'activate-hidden'), 31);
});

test('window + shim, 40 vCPUs, only the even APs started: clean power-off, the 20 others parked until it', SLOW, async () => {
  const r = await lab('window', { vcpus: 40, hostCpus: 40, guest: standardGuest('smp-boot-half') });
  const even = Array.from({ length: 19 }, (_, i) => 2 * (i + 1));
  const odd = Array.from({ length: 20 }, (_, i) => 2 * i + 1);
  assert.deepEqual(r.apsStarted, even, r.bhyveStderr);
  assert.equal(r.guestOutput, 'online=20\n');
  assert.equal(r.outcome, 'poweroff');
  assert.equal(r.bhyveExit.status, 1);
  const ev = compatEventsOf(r.daemonLog);
  assert.equal(ev.filter((e) => e.event === 'parked').length, 39);
  assert.deepEqual(ev.filter((e) => e.event === 'handover').map((e) => e.vcpu).sort((a, b) => a - b), even);
  // The APs the guest never started joined the power-off inside VM_RUN (vm_handle_suspend).
  const exits = ev.filter((e) => e.event === 'parker-exit');
  assert.deepEqual(exits.map((e) => e.vcpu).sort((a, b) => a - b), odd);
  assert.ok(exits.every((e) => e.arg === -2), 'each parker ended on VM_EXITCODE_SUSPENDED(POWEROFF)');
});

test('13.1 bhyve keeps VM_MAXCPU: --vcpus 20 exits 4 with "20 vCPUs requested but only 16 available", shim or not', SLOW, async () => {
  for (const shim of [false, true]) {
    const r = await runLab({ kernel: 'window', bhyve: '13.1', vcpus: 20, hostCpus: 32, shim, timeoutMs: 30000 });
    assert.equal(r.bhyveExit.status, 4, r.bhyveStderr);
    assert.match(r.bhyveStderr, /20 vCPUs requested but only 16 available/);
    assert.deepEqual(r.apsStarted, []);
  }
});

test('the limit a VM gets is the kernel\'s: 40 on a 32-CPU host and 17 on a 13.1 kernel fail vm_set_topology (exit 71)', SLOW, async () => {
  const host = await lab('window', { vcpus: 40, hostCpus: 32 });
  assert.equal(host.bhyveExit.status, 71, host.bhyveStderr);
  assert.match(host.bhyveStderr, /vm_set_topology/);
  // vmm.c vm_set_topology (K13): more than VM_MAXCPU (16) is EINVAL, whatever the host.
  const legacy = await lab('legacy13', { vcpus: 17, hostCpus: 64 });
  assert.equal(legacy.bhyveExit.status, 71, legacy.bhyveStderr);
  const sixteen = await lab('legacy13', { vcpus: 16, hostCpus: 64 });
  assert.deepEqual(sixteen.apsStarted, sixteen.apsExpected, sixteen.bhyveStderr);
});

test('window + 13.5 bhyve + shim, 256 vCPUs (13.x CPU_SETSIZE): every one of the 255 APs starts', SLOW, async () => {
  const r = await lab('window', { vcpus: 256, hostCpus: 256, timeoutMs: 170000 });
  assert.equal(r.apsStarted.length, 255, r.bhyveStderr);
  assert.equal(r.guestOutput, 'online=256\n');
  assert.equal(r.outcome, 'poweroff');
  assert.equal(count(r.daemonLog, 'handover'), 255);
});

test('no daemon, 40 vCPUs on a window kernel: the interposer activates and parks APs 1-39 itself and every AP starts', SLOW, async () => {
  const bench = await LabBench.start({ kernel: 'window', hostCpus: 40 });
  try {
    await bench.startDaemon();
    await bench.stopDaemon(); // leaves run/kernel-variant behind, as after a crash
    const r = await bench.spawnBhyve({ bhyve: '13.5', vcpus: 40, vmName: 'alone40', shim: true, timeoutMs: 60000, guest }).result;
    assert.equal(r.apsStarted.length, 39, r.bhyveStderr);
    assert.equal(r.outcome, 'poweroff');
    assert.match(r.bhyveStderr, /FALLBACK, the interposer activated and parks APs itself \(APs 1-39, window kernel\)/);
  } finally {
    await bench.close();
  }
});

test('sanitized (ASan + UBSan) interposer and bridge, 40 vCPUs, half the APs parked to the end: no report', SLOW, async () => {
  const r = await lab('window', { vcpus: 40, hostCpus: 40, sanitized: true, guest: standardGuest('smp-boot-half') });
  assert.doesNotMatch(r.bhyveStderr, /AddressSanitizer|runtime error/);
  assert.equal(r.apsStarted.length, 19, r.bhyveStderr);
  assert.equal(r.outcome, 'poweroff');
});
