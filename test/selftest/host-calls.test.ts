// The host-calls thread: sysctl reads and VM destroys through the lab bridge while the kernel
// model runs on the calling thread's event loop, and a clean end of the thread.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { LabBench } from '../../src/lab/run';
import { HostCalls } from '../../src/selftest/host-calls';
import { ARTIFACTS, nativeArtifact } from '../../src/native-paths';

const bridge = nativeArtifact(ARTIFACTS.bridge);

test('sysctl reads and a destroy reach the in-process kernel model; a name that is no VM is an errno', async () => {
  const bench = await LabBench.start({ kernel: 'fixed14', hostCpus: 12 });
  process.env.VMMLAB_KERNEL_SOCK = bench.env.VMMLAB_KERNEL_SOCK;
  process.env.VMMLAB_ROOT = bench.env.VMMLAB_ROOT;
  const calls = new HostCalls(bridge);
  try {
    assert.equal(await calls.sysctlInt('kern.osreldate'), 1400097);
    assert.equal(await calls.sysctlInt('hw.vmm.maxcpu'), 12);
    assert.match((await calls.sysctlString('kern.version')) ?? '', /lab kernel model fixed14/);
    const loaded = await bench.loadGuest({ vmName: 'hc-vm', shim: false, timeoutMs: 10000 });
    assert.equal(loaded.status, 0, loaded.stderr);
    assert.ok(fs.existsSync(path.join(bench.root, 'dev', 'vmm', 'hc-vm')));
    assert.equal(await calls.destroyVm('hc-vm'), null);
    assert.equal(fs.existsSync(path.join(bench.root, 'dev', 'vmm', 'hc-vm')), false);
    assert.notEqual(await calls.destroyVm('hc-vm'), null, 'gone: hw.vmm.destroy refuses the name');
  } finally {
    await calls.close();
    await bench.close();
  }
});

test('a thread that used the bridge ends without taking Node down (the bridge is linked -z nodelete)', () => {
  // The bridge's pthread key destructor runs at the thread's exit, after koffi has unloaded it
  // from that thread: without -z nodelete that is a jump into unmapped code (SIGSEGV).
  const script = `
    const { HostCalls } = require(${JSON.stringify(path.resolve(__dirname, '../../src/selftest/host-calls.js'))});
    const { LabBench } = require(${JSON.stringify(path.resolve(__dirname, '../../src/lab/run.js'))});
    (async () => {
      const bench = await LabBench.start({ kernel: 'window' });
      process.env.VMMLAB_KERNEL_SOCK = bench.env.VMMLAB_KERNEL_SOCK;
      process.env.VMMLAB_ROOT = bench.env.VMMLAB_ROOT;
      const calls = new HostCalls(${JSON.stringify(bridge)});
      const osreldate = await calls.sysctlInt('kern.osreldate');
      await calls.close();
      await bench.close();
      console.log('ended', osreldate);
    })();`;
  const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 30000 });
  assert.equal(r.signal, null, r.stderr);
  assert.equal(r.status, 0, r.stderr);
  assert.equal(r.stdout, 'ended 1400076\n');
});
