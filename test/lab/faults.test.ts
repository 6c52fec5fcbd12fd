// Faults at every point of the compat sequence: the daemon or bhyve SIGKILLed before the plan,
// while APs are parked, during a handover and during suspend. No VM may hang; a daemon that is
// gone makes the interposer act alone (ARCHITECTURE.md section 3, failure policy).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { LabBench, type BootResult } from '../../src/lab/run';
import { buildSmpBoot } from '../../src/lab/guests/smp-boot';

const VCPUS = 4;
let serial = 0;

async function withBench(fn: (bench: LabBench, vm: string) => Promise<void>): Promise<void> {
  const bench = await LabBench.start({ kernel: 'window' });
  try {
    await fn(bench, `fault-${process.pid}-${serial++}`);
  } finally {
    await bench.close();
  }
}

function assertBooted(r: BootResult): void {
  assert.notEqual(r.outcome, 'hang');
  assert.deepEqual(r.apsStarted, [1, 2, 3], r.bhyveStderr);
  assert.equal(r.outcome, 'poweroff', r.bhyveStderr);
  assert.equal(r.bhyveExit.status, 1);
}

const delayed = buildSmpBoot({ apWaitMs: 1000, startDelayMs: 400 });

test('no daemon at all: the interposer plans alone from the cached kernel variant, loudly', async () => {
  await withBench(async (bench, vm) => {
    await bench.startDaemon();
    await bench.stopDaemon(); // leaves run/kernel-variant behind, as after a crash
    const run = bench.spawnBhyve({ bhyve: '13.1', vcpus: VCPUS, vmName: vm, shim: true, timeoutMs: 20000 });
    const r = await run.result;
    assertBooted(r);
    assert.match(r.bhyveStderr, /cannot reach vmm-compatd/);
    assert.match(r.bhyveStderr, /FALLBACK/);
  });
});

test('wrap --require-daemon (VMM_COMPAT_REQUIRE_DAEMON=1) without a daemon: bhyve stops at vm_open with the reason; the VM is untouched', async () => {
  await withBench(async (bench, vm) => {
    await bench.startDaemon();
    await bench.stopDaemon();
    const run = bench.spawnBhyve({
      bhyve: '13.1',
      vcpus: VCPUS,
      vmName: vm,
      shim: true,
      timeoutMs: 20000,
      requireDaemon: true,
    });
    const r = await run.result;
    assert.equal(r.outcome, 'bhyve-error');
    assert.equal(r.bhyveExit.status, 4, 'bhyverun.c do_open: vm_open failure exits 4');
    assert.match(r.bhyveStderr, /VMM_COMPAT_REQUIRE_DAEMON=1: not starting VM/);
    assert.deepEqual(bench.model.vmSets(vm)?.active ?? [], [], 'no vCPU was activated');
  });
});

test('daemon SIGKILLed before the plan: the BSP is released and every AP starts', async () => {
  await withBench(async (bench, vm) => {
    const daemon = await bench.startDaemon();
    const run = bench.spawnBhyve({ bhyve: '13.1', vcpus: VCPUS, vmName: vm, shim: true, timeoutMs: 20000, guest: delayed });
    await bench.waitForDaemonLog(/"session started"/);
    daemon.kill('SIGSTOP'); // freeze it where it is, then kill it: the plan request sees EOF
    const planned = /"msg":"plan"/.test(bench.daemonLog());
    daemon.kill('SIGKILL');
    const r = await run.result;
    assertBooted(r);
    if (!planned) assert.match(r.bhyveStderr, /FALLBACK/);
  });
});

test('daemon SIGKILLed while APs are parked: handovers go on without it', async () => {
  await withBench(async (bench, vm) => {
    const daemon = await bench.startDaemon();
    const run = bench.spawnBhyve({ bhyve: '13.1', vcpus: VCPUS, vmName: vm, shim: true, timeoutMs: 20000, guest: delayed });
    await bench.waitForDaemonLog(/"msg":"plan"/);
    daemon.kill('SIGKILL');
    assertBooted(await run.result);
  });
});

test('daemon SIGKILLed during a handover', async () => {
  await withBench(async (bench, vm) => {
    const daemon = await bench.startDaemon();
    const run = bench.spawnBhyve({ bhyve: '13.1', vcpus: VCPUS, vmName: vm, shim: true, timeoutMs: 20000, guest: delayed });
    await bench.waitForDaemonLog(/"event":"handover"/);
    daemon.kill('SIGKILL');
    assertBooted(await run.result);
  });
});

test('daemon SIGKILLed during suspend: bhyve still exits with the power-off status', async () => {
  await withBench(async (bench, vm) => {
    const daemon = await bench.startDaemon();
    const run = bench.spawnBhyve({ bhyve: '13.1', vcpus: VCPUS, vmName: vm, shim: true, timeoutMs: 20000 });
    await bench.waitForDaemonLog(/"event":"suspend"/);
    daemon.kill('SIGKILL');
    assertBooted(await run.result);
  });
});

for (const point of [
  { name: 'after the plan (APs parked)', pattern: /"msg":"plan"/ },
  { name: 'during a handover', pattern: /"event":"handover"/ },
  { name: 'during suspend', pattern: /"event":"suspend"/ },
]) {
  test(`bhyve SIGKILLed ${point.name}: the daemon drops the session and a new bhyve on the same VM boots`, async () => {
    await withBench(async (bench, vm) => {
      await bench.startDaemon();
      const guest = point.name.includes('suspend') ? undefined : delayed;
      const run = bench.spawnBhyve({ bhyve: '13.1', vcpus: VCPUS, vmName: vm, shim: true, timeoutMs: 20000, guest });
      await bench.waitForDaemonLog(point.pattern);
      bench.kill(run);
      await run.result;
      await bench.waitForDaemonLog(/"session ended"/);
      // A killed 13.1 bhyve leaves its VM active; vm-bhyve destroys it before the next start
      // (bhyvectl --destroy), since vm_reinit refuses unless every active vCPU is suspended.
      bench.model.destroyVm(vm);
      const again = bench.spawnBhyve({ bhyve: '13.1', vcpus: VCPUS, vmName: vm, shim: true, timeoutMs: 20000 });
      assertBooted(await again.result);
      assert.equal(bench.daemon?.exitCode ?? null, null, 'the daemon is still running');
    });
  });
}
