// Does a legacy loader (bhyveload, grub-bhyve) need vmm-compat? What the loaders ask the kernel
// is read in their sources (docs/vm-bhyve.md, "bhyveload and grub-bhyve"): VM creation and reinit,
// the system memory segment, registers and descriptors of vCPU 0, unrestricted guest; never a
// vCPU run, activation, CPU set or topology. The lab's 13.1 loader (bhyveload13.c) makes those
// calls. Alone it works on every kernel model but 15.0/main without COMPAT_FREEBSD14, where the
// 32-byte VM_ALLOC_MEMSEG is ENOTTY; there it works through the interposer, and through the shell
// wrapper linked as `bhyveload`, exec-only, as vm-bhyve would run it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { LabBench, type LabKernelName } from '../../src/lab/run';
import { ARTIFACTS, requireArtifact } from '../../src/native-paths';
import { standardGuest } from '../../src/lab/guests';
import { REPO_ROOT, run, writeExecutable } from '../service/helpers';

const CASES: { name: string; kernel: LabKernelName; compatFreebsd14?: boolean; alone: 'works' | 'fails' }[] = [
  { name: 'legacy13', kernel: 'legacy13', alone: 'works' },
  { name: 'window', kernel: 'window', alone: 'works' },
  { name: 'fixed13', kernel: 'fixed13', alone: 'works' },
  { name: 'fixed14', kernel: 'fixed14', alone: 'works' },
  { name: 'main15 (GENERIC: COMPAT_FREEBSD14)', kernel: 'main15', alone: 'works' },
  { name: 'main15 without COMPAT_FREEBSD14', kernel: 'main15', compatFreebsd14: false, alone: 'fails' },
];

for (const c of CASES) {
  test(`the 13.1 loader alone on ${c.name}: it ${c.alone}; through the interposer it works`, async () => {
    const bench = await LabBench.start({ kernel: c.kernel, compatFreebsd14: c.compatFreebsd14 });
    try {
      const alone = await bench.loadGuest({ vmName: 'ld-alone', shim: false, timeoutMs: 20000 });
      if (c.alone === 'works') assert.equal(alone.status, 0, alone.stderr);
      else {
        assert.notEqual(alone.status, 0);
        assert.match(alone.stderr, /vm_setup_memory: Inappropriate ioctl for device/);
      }
      await bench.startDaemon();
      const shimmed = await bench.loadGuest({ vmName: 'ld-shim', shim: true, timeoutMs: 20000 });
      assert.equal(shimmed.status, 0, shimmed.stderr);
    } finally {
      await bench.close();
    }
  });
}

test('main15 without COMPAT_FREEBSD14: the shell wrapper linked as bhyveload loads the guest, and bhyve then boots every AP', async () => {
  const bench = await LabBench.start({ kernel: 'main15', compatFreebsd14: false });
  try {
    await bench.startDaemon();
    const dir = path.join(bench.root, 'wrapper');
    const link = path.join(dir, 'bin', 'bhyveload');
    fs.mkdirSync(path.dirname(link), { recursive: true });
    fs.symlinkSync(path.join(REPO_ROOT, 'bin', 'bhyve-wrapper'), link);
    // The legacy "bhyveload" here adds the lab's kernel bridge after the preload the wrapper set
    // (the bridge stands in for the kernel; on a host the real bhyveload needs nothing added).
    const loader = requireArtifact(ARTIFACTS.bhyveload13);
    const bridge = requireArtifact(ARTIFACTS.bridge);
    writeExecutable(path.join(dir, 'legacy13', 'bhyveload'), `#!/bin/sh\nLD_PRELOAD="$LD_PRELOAD ${bridge}" exec '${loader}' "$@"\n`);
    const guest = path.join(dir, 'guest.bin');
    fs.writeFileSync(guest, standardGuest('smp-boot'));
    const r = await run(link, ['-m', '2M', '-d', guest, 'wrapped'], {
      env: {
        ...bench.env,
        VMM_COMPAT_LEGACY_BHYVELOAD: path.join(dir, 'legacy13', 'bhyveload'),
        VMM_COMPAT_INTERPOSER: requireArtifact(ARTIFACTS.interposer),
        VMM_COMPAT_SOCKET_DIR: bench.socketDir,
        VMM_COMPAT_CONFIG: path.join(dir, 'no-such.conf'),
      },
      timeoutMs: 20000,
    });
    assert.equal(r.code, 0, r.stderr);
    const booted = await bench.spawnBhyve({ bhyve: '13.1', vcpus: 4, vmName: 'wrapped', shim: true, bootrom: false, timeoutMs: 20000 }).result;
    assert.deepEqual(booted.apsStarted, [1, 2, 3], booted.bhyveStderr);
    assert.equal(booted.outcome, 'poweroff');
  } finally {
    await bench.close();
  }
});
