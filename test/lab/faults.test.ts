// Faults at every point of the compat sequence (docs/design.md, failure policy): a slice of the
// fault matrix (src/lab/faults/matrix.ts; the whole table is `npm run faults`), generated from
// the same table: every event kind and every fault, across kernels and vCPU counts. Then the
// failure-policy cases the table does not cover: no daemon at all, --require-daemon, a daemon
// that answers garbage, and a daemon restarted while a VM boots.
import { describe, test } from 'node:test';
import net from 'node:net';
import path from 'node:path';
import assert from 'node:assert/strict';
import { LabBench, type BootResult } from '../../src/lab/run';
import { buildSmpBoot } from '../../src/lab/guests/smp-boot';
import { EVENT_KINDS, FAULTS, faultMatrix, representativeSlice } from '../../src/lab/faults/matrix';
import { runFaultCase, type FaultCaseResult } from '../../src/lab/faults/inject';
import { formatFaultReport, summarizeFaults } from '../../src/lab/faults/run';

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

const matrix = faultMatrix();
const slice = representativeSlice(matrix);
const sliceResults: FaultCaseResult[] = [];

// Each case has its own kernel model and daemon; a SIGSTOPped daemon's 5 s overlap the others.
describe('fault matrix slice', { concurrency: 3 }, () => {
  for (const c of slice) {
    test(`${c.id}: ${c.fault} at ${c.event}${c.point > 0 ? ` (AP ${c.point})` : ''} on ${c.kernel.name} with ${c.vcpus} vCPUs`, async () => {
      const r = await runFaultCase(c);
      sliceResults.push(r);
      assert.notEqual(r.outcome, 'failed', r.problems.join('\n'));
    });
  }
});

test('fault matrix slice: every event kind and every fault injected, across kernels; the counts', (t) => {
  assert.deepEqual(new Set(slice.map((c) => c.event)), new Set(EVENT_KINDS), 'every event kind');
  for (const fault of FAULTS) assert.ok(slice.filter((c) => c.fault === fault).length >= 4, `${fault} at least four times`);
  assert.ok(new Set(slice.map((c) => c.kernel.kernel)).size >= 4, 'four kernel variants at least');
  assert.equal(sliceResults.length, slice.length);
  const report = summarizeFaults(sliceResults, matrix.skipped, null);
  for (const line of formatFaultReport(report)) t.diagnostic(line);
  assert.equal(report.byOutcome.failed, 0);
  assert.equal(report.injected, slice.length);
});

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
