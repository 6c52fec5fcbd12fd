// Request numbers per kernel generation (vmm_dev.c, KH13 / KH23 / K14): which VM_RUN exists,
// COMPAT_FREEBSD13, and the 14.0 VM_RUN's copy-out rules.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VmExitcode } from '../../src/abi/enums';
import { REQ13, REQ14 } from '../../src/abi/ioctls';
import { VM_STATS_13, VM_STATS_14, decodeInout } from '../../src/abi/structs';
import { Assembler } from '../../src/lab/guests/asm';
import { acceptedIoctlNames } from '../../src/lab/kernel/ioctl-table';
import { variantRules } from '../../src/lab/kernel/variant';
import { CONSOLE, createVm, mark, setRealMode, spinGuest, startLab } from './harness';

const OPTS = { timeout: 5_000 };
const EINVAL = -22;
const ENOTTY = -25;

test('vmm_dev.c VM_RUN_13 exists only under COMPAT_FREEBSD13: without it the 144-byte VM_RUN is ENOTTY on fixed14', OPTS, async () => {
  const lab = await startLab('fixed14', { compatFreebsd13: false });
  try {
    const t = await createVm(lab, 'nocompat', mark(new Assembler(), 'Z').bytes());
    await setRealMode(t, 0, 0x1000);
    assert.equal(await t.activate(0), 0);
    assert.equal((await t.run13(0)).ret, ENOTTY);
    assert.equal((await t.ioctl('VM_STATS_OLD', VM_STATS_13.encode({ cpuid: 0 }))).ret, ENOTTY);
    const r = await t.run14(0);
    assert.equal(r.ret, 0);
    assert.equal(r.exit?.exitcode, VmExitcode.INOUT);
    assert.equal(decodeInout(r.exit.u).port, CONSOLE);
    assert.ok(!acceptedIoctlNames(lab.model.config).includes('VM_RUN_13'));
    t.end();
  } finally {
    await lab.close();
  }
});

test('vmm_dev.c (K14) with COMPAT_FREEBSD13: the 144-byte VM_RUN_13 and the 32-byte VM_RUN both run the vCPU', OPTS, async () => {
  const lab = await startLab('fixed14');
  try {
    const asm = new Assembler();
    mark(asm, '1');
    mark(asm, '2');
    asm.label('spin').jmp('spin');
    const t = await createVm(lab, 'compat', asm.bytes());
    await setRealMode(t, 0, 0x1000);
    assert.equal(await t.activate(0), 0);
    const a = await t.run13(0);
    const b = await t.run14(0);
    assert.equal(decodeInout(a.exit?.u ?? Buffer.alloc(120)).eax, 0x31);
    assert.equal(decodeInout(b.exit?.u ?? Buffer.alloc(120)).eax, 0x32);
    t.end();
  } finally {
    await lab.close();
  }
});

for (const variant of ['legacy13', 'window'] as const) {
  test(`vmm_dev.h (${variant === 'legacy13' ? 'KH13' : 'KH23'}): the 32-byte VM_RUN of e17eca32 does not exist yet (ENOTTY); the 144-byte one is native`, OPTS, async () => {
    const lab = await startLab(variant, { compatFreebsd13: false });
    try {
      const t = await createVm(lab, 'old-run', mark(new Assembler(), 'Q').bytes());
      await setRealMode(t, 0, 0x1000);
      assert.equal(await t.activate(0), 0);
      assert.equal((await t.run14(0)).ret, ENOTTY);
      const r = await t.run13(0);
      assert.equal(r.ret, 0, 'COMPAT_FREEBSD13 does not matter: 0xC0907601 is the native VM_RUN');
      assert.equal(r.exit?.exitcode, VmExitcode.INOUT);
      t.end();
    } finally {
      await lab.close();
    }
  });
}

test('vmm_dev.h: legacy13 has the 536-byte VM_STATS only; the 14.0 544-byte number is ENOTTY', OPTS, async () => {
  const lab = await startLab('legacy13');
  try {
    const t = await createVm(lab, 'stats13', spinGuest());
    assert.equal((await t.client.ioctl(t.file, REQ13.VM_STATS, VM_STATS_13.encode({ cpuid: 0 }))).ret, 0);
    assert.equal((await t.client.ioctl(t.file, REQ14.VM_STATS, VM_STATS_14.encode({ cpuid: 0 }))).ret, ENOTTY);
    t.end();
  } finally {
    await lab.close();
  }
});

test('vmm_dev.c VM_RUN (14.0): on error nothing is copied out through vm_exit', OPTS, async () => {
  const lab = await startLab('fixed14');
  try {
    const t = await createVm(lab, 'noexit', spinGuest());
    const r = await t.run14(0);
    assert.equal(r.ret, EINVAL, 'vm_run: vCPU 0 is not active');
    assert.equal(r.exit, null);
    assert.ok(r.cpuset.every((b) => b === 0xaa), 'the cpuset buffer is untouched');
    t.end();
  } finally {
    await lab.close();
  }
});

test('vmm_dev.c vmmdev_ioctl: BHYVE_SNAPSHOT and COMPAT_FREEBSD12 requests are not part of the modelled kernels', () => {
  for (const variant of ['legacy13', 'window', 'fixed13', 'fixed14', 'main15'] as const) {
    const names = acceptedIoctlNames({
      rules: variantRules(variant),
      compatFreebsd13: true,
      compatFreebsd14: true,
      osreldate: variantRules(variant).osreldate,
      kernelCpusetBytes: 32,
      cpuMaxsizeBytes: 32,
      hostCpus: 16,
      maxcpu: 16,
      sliceInstructions: 100,
      refuseVmCreate: null,
    });
    assert.ok(!names.includes('VM_SNAPSHOT_REQ'));
    assert.ok(!names.includes('VM_ALLOC_MEMSEG_FBSD12'));
    assert.ok(!names.includes('VM_ALLOC_MEMSEG_12'));
    assert.ok(!names.includes('VMMCTL_VM_CREATE'), 'a /dev/vmmctl request is not /dev/vmm/NAME\'s');
    assert.ok(names.includes('VM_ACTIVATE_CPU'));
    assert.ok(names.includes(variant === 'window' || variant === 'fixed13' ? 'VM_RUN_13' : 'VM_RUN'));
  }
});
