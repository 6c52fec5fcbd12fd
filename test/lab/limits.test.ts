// A bhyve whose connection the daemon refuses over a limit, through the real wrap, interposer and
// daemon: the interposer follows its ordinary failure policy (docs/design.md "Failure policy").
// With fallback the VM boots without the daemon, every AP started; with refuse bhyve stops at
// vm_open with the daemon's reason and the VM is untouched.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { LabBench } from '../../src/lab/run';

const VCPUS = 4;

/** A daemon whose host directory holds one session, taken by a connection that never speaks. */
async function withFullDaemon(fn: (bench: LabBench) => Promise<void>): Promise<void> {
  const bench = await LabBench.start({ kernel: 'window' });
  let holder: net.Socket | null = null;
  try {
    fs.writeFileSync(bench.configPath, 'host_max_sessions = 1\nhello_timeout_ms = 60000\n');
    await bench.startDaemon();
    holder = await new Promise<net.Socket>((resolve, reject) => {
      const s = net.connect(path.join(bench.socketDir, 'vmm-compatd.sock'));
      s.once('connect', () => resolve(s));
      s.once('error', reject);
    });
    await fn(bench);
  } finally {
    holder?.destroy();
    await bench.close();
  }
}

test('over max_sessions, failure_policy = fallback: the interposer says the daemon turned it away, plans alone, and every AP starts', async () => {
  await withFullDaemon(async (bench) => {
    const r = await bench.spawnBhyve({ bhyve: '13.1', vcpus: VCPUS, vmName: 'refused-fallback', shim: true, timeoutMs: 30000 }).result;
    assert.equal(r.outcome, 'poweroff', r.bhyveStderr);
    assert.deepEqual(r.apsStarted, [1, 2, 3]);
    assert.match(r.bhyveStderr, /vmm-compatd turned this connection away \(vmm-compatd is over a limit: jail host has 1 sessions open \(max_sessions\); the interposer follows its failure policy\); VM refused-fallback continues with the window kernel facts/);
    assert.match(r.bhyveStderr, /FALLBACK/);
    await bench.waitForDaemonLog(/"reason":"max-sessions".*connection refused: over a limit/);
  });
});

test('over max_sessions, failure_policy = refuse (wrap --require-daemon): bhyve stops at vm_open with the reason; no vCPU was activated', async () => {
  await withFullDaemon(async (bench) => {
    const r = await bench.spawnBhyve({ bhyve: '13.1', vcpus: VCPUS, vmName: 'refused-refuse', shim: true, timeoutMs: 30000, requireDaemon: true }).result;
    assert.equal(r.outcome, 'bhyve-error');
    assert.equal(r.bhyveExit.status, 4, 'bhyverun.c do_open: vm_open failure exits 4');
    assert.match(r.bhyveStderr, /vmm-compatd turned this connection away \(.*max_sessions.*\) and VMM_COMPAT_REQUIRE_DAEMON=1: not starting VM refused-refuse/);
    assert.match(r.bhyveStderr, /Resource temporarily unavailable/, 'vm_open fails with EAGAIN');
    assert.deepEqual(bench.model.vmSets('refused-refuse')?.active ?? [], [], 'no vCPU was activated');
  });
});
