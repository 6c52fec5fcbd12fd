// 13.1 bhyve on 15.0/main (the main15 kernel model) and on 13.2..13.5 (fixed13), booting through
// a boot ROM: the failure without the shim, and the fix through the real interposer and daemon.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { compatEventsOf, LabBench, LAB_KERNELS, runLab, type LabKernelName, type LabOptions, type Outcome } from '../../src/lab/run';
import { buildSmpBoot } from '../../src/lab/guests/smp-boot';
import { standardGuests } from '../../src/lab/guests';
import { Assembler } from '../../src/lab/guests/asm';
import { printString } from '../../src/lab/guests/macros';
import { VmExitcode } from '../../src/abi/enums';
import { REQ13 } from '../../src/abi/ioctls';
import { waitUntilGuestRan } from '../helpers/guest-ran';

const guest = buildSmpBoot({ apWaitMs: 1000 });
/** The same guest inside a boot ROM prints on COM1, as real machines' ROM guests do. */
const romGuest = buildSmpBoot({ apWaitMs: 1000, console: 'com1' });

function lab(kernel: LabKernelName, vcpus: number, extra: Partial<LabOptions> = {}) {
  return runLab({ kernel, bhyve: '13.1', vcpus, shim: false, timeoutMs: 30000, guest: extra.bootrom ? romGuest : guest, collectDaemonLog: true, ...extra });
}

function events(log: string | undefined, name?: string) {
  return compatEventsOf(log).filter((e) => name === undefined || e.event === name);
}

for (const vcpus of [1, 2, 4, 8, 16]) {
  test(`main15, ${vcpus} vCPU(s), boot ROM, no shim: VM_MMAP_MEMSEG with 13.1's segid 1 is EINVAL, "device emulation initialization error", exit 4`, async () => {
    const r = await lab('main15', vcpus, { bootrom: true });
    assert.equal(r.outcome, 'bhyve-error');
    assert.equal(r.bhyveExit.status, 4);
    assert.match(r.bhyveStderr, /device emulation initialization error: Invalid argument/);
    assert.deepEqual(r.apsStarted, []);
    assert.equal(r.bootrom, true);
  });
}

const COMPAT = [
  { name: 'GENERIC (COMPAT_FREEBSD13 and 14)', opts: {}, bits: 2 },
  { name: 'no COMPAT_FREEBSD13', opts: { compatFreebsd13: false }, bits: 3 },
  { name: 'no COMPAT_FREEBSD14', opts: { compatFreebsd14: false }, bits: 6 },
  { name: 'neither', opts: { compatFreebsd13: false, compatFreebsd14: false }, bits: 7 },
] as const;

for (const compat of COMPAT) {
  for (const vcpus of [1, 2, 4, 8, 16]) {
    test(`main15 (${compat.name}), ${vcpus} vCPU(s), boot ROM, shim: every AP starts and the guest powers off`, async () => {
      const r = await lab('main15', vcpus, { bootrom: true, shim: true, ...compat.opts });
      assert.deepEqual(r.apsStarted, r.apsExpected, r.bhyveStderr);
      assert.equal(r.outcome, 'poweroff');
      assert.equal(r.guestOutput, `online=${vcpus}\n`);
      // kabi.c reports what the kernel answered at open; bhyve's own session is the last one.
      const abi = events(r.daemonLog, 'kernel-abi');
      assert.equal(abi.at(-1)?.arg, compat.bits);
      // The ROM mapping: 13.1's segid 1 went out as 8 (VM_MMAP_MEMSEG = IOCNUM 16).
      assert.ok(events(r.daemonLog, 'memseg-translated').some((e) => e.arg === 16));
      if (compat.bits & 4) assert.ok(events(r.daemonLog, 'memseg-translated').some((e) => e.arg === 14), 'VM_ALLOC_MEMSEG reissued in the 56-byte form');
      assert.equal(events(r.daemonLog, 'parked').length, 0, 'no eager activation on 15.0');
      assert.match(r.daemonLog ?? '', /no eager activation: 15\.0\/main: the kernel starts 13\.1 bhyve APs itself/);
    });
  }
}

test('main15 with the framebuffer: without the shim pci_fbuf cannot map segid 2; with it the framebuffer is mapped', async () => {
  const plain = await lab('main15', 2, { fbuf: true });
  assert.equal(plain.outcome, 'poweroff', plain.bhyveStderr);
  assert.match(plain.bhyveStderr, /pci_fbuf: mmap_memseg failed/);
  for (const compat of COMPAT) {
    const r = await lab('main15', 4, { fbuf: true, bootrom: true, shim: true, ...compat.opts });
    assert.deepEqual(r.apsStarted, [1, 2, 3], r.bhyveStderr);
    assert.equal(r.outcome, 'poweroff');
    assert.doesNotMatch(r.bhyveStderr, /mmap_memseg failed/);
  }
});

test('fixed13 (13.2..13.5): 13.1 bhyve starts every AP with and without the shim; its 32-byte VM_GET_CPUS needs no translation', async () => {
  for (const bootrom of [false, true]) {
    const plain = await lab('fixed13', 4, { bootrom });
    assert.deepEqual(plain.apsStarted, [1, 2, 3], plain.bhyveStderr);
    assert.equal(plain.outcome, 'poweroff');
    const shimmed = await lab('fixed13', 4, { bootrom, shim: true });
    assert.deepEqual(shimmed.apsStarted, [1, 2, 3], shimmed.bhyveStderr);
    assert.equal(shimmed.outcome, 'poweroff');
    assert.equal(events(shimmed.daemonLog, 'cpus-translated').length, 0, 'the caller\'s 32 bytes worked');
    assert.equal(events(shimmed.daemonLog, 'kernel-abi').length, 0, 'nothing to report: the 13.1 ABI');
  }
});

test('the shim never turns a working boot into a failing one: every kernel, both boot paths', async () => {
  for (const kernel of LAB_KERNELS) {
    for (const bootrom of [false, true]) {
      const plain = await lab(kernel, 4, { bootrom });
      const shimmed = await lab(kernel, 4, { bootrom, shim: true });
      if (plain.outcome === 'poweroff') {
        assert.equal(shimmed.outcome, 'poweroff', `${kernel} bootrom=${bootrom}: ${shimmed.bhyveStderr}`);
        assert.ok(shimmed.apsStarted.length >= plain.apsStarted.length, `${kernel}: fewer APs with the shim`);
      }
      assert.deepEqual(shimmed.apsStarted, [1, 2, 3], `${kernel} bootrom=${bootrom}: ${shimmed.bhyveStderr}`);
    }
  }
});

/** Outcomes of the built-in guests (src/lab/guests/index.ts), as 13.1 bhyve ends them. */
const GUEST_OUTCOME: Readonly<Record<string, { outcome: Outcome; aps: number[] | 'any' }>> = {
  'smp-boot': { outcome: 'poweroff', aps: [1, 2, 3] },
  'smp-boot-reset': { outcome: 'reset', aps: [1, 2, 3] },
  'smp-boot-halt': { outcome: 'halt', aps: [1, 2, 3] },
  'smp-boot-triplefault': { outcome: 'triplefault', aps: [1, 2, 3] },
  'smp-boot-restart': { outcome: 'poweroff', aps: [1, 2, 3] },
  'smp-boot-bsp-only': { outcome: 'poweroff', aps: [] },
  'smp-boot-half': { outcome: 'poweroff', aps: [2] },
  'ipi-storm': { outcome: 'poweroff', aps: [1, 2, 3] },
  'sipi-without-init': { outcome: 'poweroff', aps: [1, 2, 3] },
  // It resets while its APs are being started: how many ran guest code by then is a race.
  'reboot-loop': { outcome: 'reset', aps: 'any' },
};

test('every built-in guest boots through the ROM on every kernel, with the shim', async () => {
  for (const kernel of LAB_KERNELS) {
    for (const g of standardGuests()) {
      const expected = GUEST_OUTCOME[g.name];
      assert.ok(expected, `no expectation for ${g.name}`);
      const r = await lab(kernel, 4, { bootrom: true, shim: true, guest: g.build('com1') });
      assert.equal(r.outcome, expected.outcome, `${kernel} ${g.name}: ${r.bhyveStderr}`);
      if (expected.aps !== 'any') assert.deepEqual(r.apsStarted, expected.aps, `${kernel} ${g.name}`);
    }
  }
});

/** A guest that spins forever on the BSP: only a destroy ends it. */
function spinForever(): Uint8Array {
  return new Assembler().label('spin').pause().jmp('spin').bytes();
}

async function destroyWhileRunning(shim: boolean): Promise<{ status: number | null; stderr: string; outcome: Outcome; log: string }> {
  const bench = await LabBench.start({ kernel: 'main15' });
  try {
    if (shim) await bench.startDaemon();
    // Through the loader: without the shim a ROM boot would already fail on this kernel.
    const loaded = await bench.loadGuest({ vmName: 'doomed', guest: spinForever(), shim, timeoutMs: 20000 });
    assert.equal(loaded.status, 0, loaded.stderr);
    const run = bench.spawnBhyve({ bhyve: '13.1', vcpus: 2, vmName: 'doomed', shim, timeoutMs: 20000, bootrom: false });
    await waitUntilGuestRan(bench, 'doomed', { deadline: Date.now() + 10000 });
    assert.equal(bench.model.destroyVm('doomed'), true);
    const r = await run.result;
    await bench.stopDaemon();
    return { status: r.bhyveExit.status, stderr: r.bhyveStderr, outcome: r.outcome, log: bench.daemonLog() };
  } finally {
    await bench.close();
  }
}

test('15.0 destroy (VM_SUSPEND_DESTROY) under a running 13.1 bhyve: "invalid reason" exit 100 alone, exit 4 with the shim and the daemon records it', async () => {
  const plain = await destroyWhileRunning(false);
  assert.equal(plain.status, 100, plain.stderr);
  assert.match(plain.stderr, /vmexit_suspend: invalid reason 5/);
  const shimmed = await destroyWhileRunning(true);
  assert.equal(shimmed.status, 4, shimmed.stderr);
  assert.equal(shimmed.outcome, 'destroyed');
  assert.match(shimmed.stderr, /was destroyed while running \(VM_SUSPEND_DESTROY\); bhyve exits with status 4/);
  assert.equal(events(shimmed.log, 'vm-destroyed').length, 1);
});

test('a 13.2..13.5 kernel that an admin set to fixed14 still boots through the shim: VM_GET_CPUS goes out with 13.1\'s 32 bytes first', async () => {
  const bench = await LabBench.start({ kernel: 'fixed13' });
  try {
    // The daemon believes 14.0's 128-byte cpuset; the kernel's is 32 and CPU_MAXSIZE/NBBY too.
    await bench.startDaemon(['--kernel', 'fixed14']);
    const r = await bench.spawnBhyve({ bhyve: '13.1', vcpus: 4, vmName: 'misnamed', shim: true, timeoutMs: 20000, guest });
    const result = await r.result;
    assert.deepEqual(result.apsStarted, [1, 2, 3], result.bhyveStderr);
    assert.equal(result.outcome, 'poweroff');
    assert.match(bench.daemonLog(), /"kernelVariant":"fixed14"/);
    assert.equal(events(bench.daemonLog(), 'cpus-translated').length, 0, 'no translation: the caller\'s size worked');
  } finally {
    await bench.close();
  }
});

/** Writes one character to the console, then spins forever: one INOUT exit, then only a destroy ends it. */
function printThenSpin(): Uint8Array {
  const a = new Assembler();
  printString(a, 'x');
  return a.label('spin').pause().jmp('spin').bytes();
}

test('15.0 destroy while the BSP is in userland: its next VM_RUN gets ENXIO; with the shim bhyve still exits 4 as a 15.0 bhyve does ("destroyed asynchronously"), not 1', async () => {
  for (const shim of [false, true]) {
    const bench = await LabBench.start({ kernel: 'main15' });
    try {
      if (shim) await bench.startDaemon();
      const vm = `between-runs-${shim ? 'shim' : 'plain'}`;
      const loaded = await bench.loadGuest({ vmName: vm, guest: printThenSpin(), shim, timeoutMs: 20000 });
      assert.equal(loaded.status, 0, loaded.stderr);
      // The destroy lands as the BSP's VM_RUN returns its console exit, so the BSP is in userland
      // (vmexit_inout) when the device goes: its next VM_RUN is refused with ENXIO (destroy_dev).
      let destroyed = false;
      bench.model.tap((e) => {
        if (!destroyed && e.vm === vm && e.phase === 'leave' && e.exit?.exitcode === VmExitcode.INOUT) {
          destroyed = bench.model.destroyVm(vm);
        }
      });
      const r = await bench.spawnBhyve({ bhyve: '13.1', vcpus: 1, vmName: vm, shim, timeoutMs: 20000, bootrom: false }).result;
      assert.ok(destroyed);
      if (!shim) {
        // 13.1 bhyverun.c fbsdrun_start_thread: vm_loop returns on a VM_RUN error, then exit(1).
        assert.equal(r.bhyveExit.status, 1, r.bhyveStderr);
        assert.match(r.bhyveStderr, /vm_run error -1, errno 6/);
      } else {
        assert.equal(r.bhyveExit.status, 4, r.bhyveStderr);
        assert.match(r.bhyveStderr, /was destroyed while running/);
        await bench.stopDaemon();
        assert.equal(events(bench.daemonLog(), 'vm-destroyed').length, 1);
      }
    } finally {
      await bench.close();
    }
  }
});

test('15.0 destroy as a new AP thread starts: its vm_active_cpus gets ENXIO; 13.1 bhyve alone aborts on vm_loop\'s assert, with the shim it exits 4', async () => {
  for (const shim of [false, true]) {
    const bench = await LabBench.start({ kernel: 'main15' });
    try {
      if (shim) await bench.startDaemon();
      const vm = `new-ap-${shim ? 'shim' : 'plain'}`;
      // The BSP's spinup_ap activates AP 1 and starts its thread (bhyverun.c fbsdrun_addcpu); the
      // thread's first call is vm_active_cpus (vm_loop). The device goes just as that call arrives.
      let apActivated = false;
      let destroyed = false;
      bench.model.tap((e) => {
        if (e.vm !== vm || destroyed) return;
        if (e.phase === 'leave' && e.request === REQ13.VM_ACTIVATE_CPU && e.errno === 0 && e.arg?.readInt32LE(0) === 1) apActivated = true;
        if (apActivated && e.phase === 'enter' && e.request === REQ13.VM_GET_CPUS) destroyed = bench.model.destroyVm(vm);
      });
      // Through the loader: without the shim a ROM boot would already fail on this kernel.
      const loaded = await bench.loadGuest({ vmName: vm, guest: buildSmpBoot({ apWaitMs: 4000 }), shim, timeoutMs: 20000 });
      assert.equal(loaded.status, 0, loaded.stderr);
      const r = await bench.spawnBhyve({ bhyve: '13.1', vcpus: 2, vmName: vm, shim, timeoutMs: 20000, bootrom: false }).result;
      assert.ok(destroyed);
      if (!shim) {
        assert.equal(r.bhyveExit.signal, 'SIGABRT', r.bhyveStderr);
        assert.match(r.bhyveStderr, /vm_loop: Assertion/);
      } else {
        assert.equal(r.bhyveExit.status, 4, r.bhyveStderr);
        assert.match(r.bhyveStderr, /was destroyed while running \(VM_GET_CPUS: ENXIO, the device is gone\)/);
      }
    } finally {
      await bench.close();
    }
  }
});
