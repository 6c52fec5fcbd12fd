// rc.d conventions the daemon must honour (deployment.md section 1.5): SIGHUP re-reads the
// configuration and says what it applied, keeps the old one when the new one is broken; SIGTERM
// leaves running VMs alone, and the interposer's fallback finishes their boot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import { LabBench } from '../../src/lab/run';
import { buildSmpBoot } from '../../src/lab/guests/smp-boot';

test('SIGHUP applies a changed log_level and logs it; a broken file is refused and the old one kept', async () => {
  const bench = await LabBench.start({ kernel: 'window' });
  try {
    fs.writeFileSync(bench.configPath, 'log_level = info\n');
    const daemon = await bench.startDaemon([], { logLevel: null });
    fs.writeFileSync(bench.configPath, 'log_level = debug\n');
    daemon.kill('SIGHUP');
    await bench.waitForDaemonLog(/"applied":\["log_level=debug"\].*configuration reloaded/);
    fs.writeFileSync(bench.configPath, 'log_level = debug\nparker_idle_poll_ms = soon\n');
    daemon.kill('SIGHUP');
    await bench.waitForDaemonLog(/reload failed; keeping the running configuration/);
    assert.match(bench.daemonLog(), /parker_idle_poll_ms must be a whole number from 1 to 10000, not \\"soon\\"/);
    // Still serving: a VM boots through it (wrap reads the file too, so it is valid again).
    fs.writeFileSync(bench.configPath, 'log_level = debug\n');
    const r = await bench.spawnBhyve({ bhyve: '13.1', vcpus: 2, vmName: 'after-hup', shim: true, timeoutMs: 20000 }).result;
    assert.deepEqual(r.apsStarted, [1]);
    assert.equal(daemon.exitCode, null);
  } finally {
    await bench.close();
  }
});

test('SIGTERM while a VM boots: the daemon exits 0 and unlinks its sockets; the VM still starts every AP', async () => {
  const bench = await LabBench.start({ kernel: 'window' });
  try {
    const daemon = await bench.startDaemon();
    const run = bench.spawnBhyve({
      bhyve: '13.1',
      vcpus: 4,
      vmName: 'through-term',
      shim: true,
      timeoutMs: 20000,
      guest: buildSmpBoot({ apWaitMs: 1000, startDelayMs: 500 }),
    });
    await bench.waitForDaemonLog(/"msg":"plan"/);
    daemon.kill('SIGTERM');
    const status = await new Promise<number | null>((resolve) => daemon.once('exit', (code) => resolve(code)));
    assert.equal(status, 0);
    assert.equal(fs.existsSync(`${bench.socketDir}/vmm-compatd.sock`), false);
    assert.match(bench.daemonLog(), /running VMs are untouched/);
    const r = await run.result;
    assert.deepEqual(r.apsStarted, [1, 2, 3], r.bhyveStderr);
    assert.equal(r.outcome, 'poweroff');
  } finally {
    await bench.close();
  }
});

test('kernel_variant = auto: the daemon identifies legacy13, fixed14 and the window by experiment (osreldate 1400076 no longer refused)', async () => {
  for (const kernel of ['legacy13', 'fixed14', 'window'] as const) {
    const bench = await LabBench.start({ kernel });
    try {
      fs.writeFileSync(bench.configPath, 'kernel_variant = auto\n');
      await bench.startDaemon();
      // The start-up line follows the sockets: wait for it rather than race it.
      await bench.waitForDaemonLog(new RegExp(`"kernelVariant":"${kernel}","by":"experiment"`), 5000);
      const r = await bench.spawnBhyve({ bhyve: '13.1', vcpus: 2, vmName: `auto-${kernel}`, shim: true, timeoutMs: 20000 }).result;
      assert.deepEqual(r.apsStarted, [1], r.bhyveStderr);
    } finally {
      await bench.close();
    }
  }
});

test('SIGHUP from a set kernel_variant back to auto: the daemon identifies the kernel then (by experiment); a set one applies at once (by config)', async () => {
  const bench = await LabBench.start({ kernel: 'window' });
  try {
    fs.writeFileSync(bench.configPath, 'kernel_variant = fixed14\n');
    const daemon = await bench.startDaemon();
    assert.deepEqual(await bench.daemonKernel(), { variant: 'fixed14', by: 'config' });
    fs.writeFileSync(bench.configPath, 'kernel_variant = auto\n');
    daemon.kill('SIGHUP');
    await bench.waitForDaemonLog(/"kernelVariant":"window","by":"experiment".*kernel_variant = auto identified the kernel/);
    assert.deepEqual(await bench.daemonKernel(), { variant: 'window', by: 'experiment' });
    assert.match(fs.readFileSync(`${bench.socketDir}/kernel-variant`, 'utf8'), /^variant=window\n[\s\S]*identified_by=experiment\n$/);
    const r = await bench.spawnBhyve({ bhyve: '13.1', vcpus: 4, vmName: 'after-auto', shim: true, timeoutMs: 20000 }).result;
    assert.deepEqual(r.apsStarted, [1, 2, 3], r.bhyveStderr);
    fs.writeFileSync(bench.configPath, 'kernel_variant = window\n');
    daemon.kill('SIGHUP');
    await bench.waitForDaemonLog(/"applied":\["kernel_variant=window"/);
    assert.deepEqual(await bench.daemonKernel(), { variant: 'window', by: 'config' });
  } finally {
    await bench.close();
  }
});
