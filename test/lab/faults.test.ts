// Faults at every point of the compat sequence: the daemon or bhyve SIGKILLed before the plan,
// while APs are parked, during a handover and during suspend. No VM may hang; a daemon that is
// gone makes the interposer act alone (ARCHITECTURE.md section 3, failure policy).
import { test } from 'node:test';
import net from 'node:net';
import path from 'node:path';
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

for (const point of [
  { name: 'while APs are parked: handovers go on without it', pattern: /"msg":"plan"/, guest: delayed },
  { name: 'during a handover', pattern: /"event":"handover"/, guest: delayed },
  { name: 'during suspend: bhyve still exits with the power-off status', pattern: /"event":"suspend"/, guest: undefined },
]) {
  test(`daemon SIGKILLed ${point.name}`, async () => {
    await withBench(async (bench, vm) => {
      const daemon = await bench.startDaemon();
      const run = bench.spawnBhyve({ bhyve: '13.1', vcpus: VCPUS, vmName: vm, shim: true, timeoutMs: 20000, guest: point.guest });
      await bench.waitForDaemonLog(point.pattern);
      daemon.kill('SIGKILL');
      assertBooted(await run.result);
    });
  });
}

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

test('a daemon that answers garbage: the sanitized interposer treats it as absent and the VM boots', async () => {
  await withBench(async (bench, vm) => {
    await bench.startDaemon();
    await bench.stopDaemon(); // leaves run/kernel-variant behind
    let seed = 7;
    const rand = (): number => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed / 0x7fffffff;
    };
    const replies: Buffer[] = [
      Buffer.from('not a frame at all'),
      (() => {
        const f = Buffer.alloc(28); // WELCOME header with an impossible variant
        f.writeUInt32LE(20, 0);
        f.writeUInt16LE(1, 4);
        f.writeUInt16LE(101, 6);
        f.writeUInt32LE(99, 12);
        return f;
      })(),
      (() => {
        const f = Buffer.alloc(8); // a header announcing 4 GiB
        f.writeUInt32LE(0xffffffff, 0);
        f.writeUInt16LE(1, 4);
        f.writeUInt16LE(102, 6);
        return f;
      })(),
      Buffer.from(Array.from({ length: 300 }, () => Math.floor(rand() * 256))),
    ];
    for (const [i, reply] of replies.entries()) {
      const server = net.createServer((socket) => {
        socket.once('data', () => socket.end(reply));
        socket.on('error', () => socket.destroy());
      });
      await new Promise<void>((resolve) => server.listen(path.join(bench.socketDir, 'vmm-compatd.sock'), resolve));
      try {
        const r = await bench.spawnBhyve({ bhyve: '13.1', vcpus: VCPUS, vmName: `${vm}-${i}`, shim: true, timeoutMs: 20000, sanitized: true }).result;
        assertBooted(r);
        assert.doesNotMatch(r.bhyveStderr, /AddressSanitizer|runtime error/);
        assert.match(r.bhyveStderr, /FALLBACK/);
      } finally {
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    }
  });
});

test('daemon restarted while a VM boots: the interposer, in capability mode, reconnects through its directory fd (connectat)', async () => {
  await withBench(async (bench, vm) => {
    const first = await bench.startDaemon();
    const run = bench.spawnBhyve({
      bhyve: '13.1',
      vcpus: VCPUS,
      vmName: vm,
      shim: true,
      timeoutMs: 20000,
      guest: buildSmpBoot({ apWaitMs: 2000, startDelayMs: 1500 }),
    });
    await bench.waitForDaemonLog(/"msg":"plan"/);
    first.kill('SIGKILL');
    await new Promise((resolve) => first.once('exit', resolve));
    const logBefore = bench.daemonLog().length;
    await bench.startDaemon();
    const r = await run.result;
    assertBooted(r);
    // bhyve entered capability mode before its BSP ran (bhyverun.c main: caph_enter), so this
    // session can only have come through connectat(dirfd, ...).
    // Events are fire-and-forget: give the new daemon a moment to log what it received.
    const deadline = Date.now() + 5000;
    let after = '';
    while (Date.now() < deadline) {
      after = bench.daemonLog().slice(logBefore);
      if (/"event":"(handover|activate-hidden|suspend)"/.test(after)) break;
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    assert.match(after, new RegExp(`"vm":"${vm}".*"msg":"session started"`));
    assert.match(after, /"event":"(handover|activate-hidden|suspend)"/);
  });
});
