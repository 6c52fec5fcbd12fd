// Capsicum limits per open file (sys_capability.c cap_rights_limit / cap_ioctls_limit,
// kern_ioctl's CAP_IOCTL and cap_ioctl_check, mmap's CAP_MMAP_*).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { REQ14 } from '../../src/abi/ioctls';
import { VM_ACTIVATE_CPU, VM_CPU_TOPOLOGY } from '../../src/abi/structs';
import { CapRight, capRights, capright } from '../../src/lab/kernel/capsicum';
import { createVm, spinGuest, startLab, VmThread } from './harness';

const OPTS = { timeout: 5_000 };
const ENOTCAPABLE = -93;

test('sys_capability.c cap_rights_limit: without CAP_IOCTL every ioctl is ENOTCAPABLE; rights may only narrow', OPTS, async () => {
  const lab = await startLab('fixed14');
  try {
    const t = await createVm(lab, 'rights', spinGuest());
    assert.equal(await t.client.capRights(t.file, capRights(CapRight.MMAP_RW)), 0);
    assert.equal(await t.activate(0), ENOTCAPABLE);
    assert.equal((await t.getTopology()).ret, ENOTCAPABLE);
    assert.equal(await t.client.capRights(t.file, capRights(CapRight.MMAP_RW, CapRight.IOCTL)), ENOTCAPABLE, 'widening');
    assert.equal((await t.client.mmap(t.file, 0, 4096)).ret, 0, 'CAP_MMAP_RW kept');
    assert.equal(await t.client.capRights(t.file, capRights()), 0);
    assert.equal((await t.client.mmap(t.file, 0, 4096)).ret, ENOTCAPABLE);
    // Limits belong to the open file: another open of the same VM is unrestricted.
    const other = await VmThread.open(lab, 'rights');
    assert.equal(await other.activate(0), 0);
    t.end();
    other.end();
  } finally {
    await lab.close();
  }
});

test('sys/capsicum.h CAPRIGHT: CAP_IOCTL alone allows ioctls, CAP_READ alone does not (the two words are separate)', OPTS, async () => {
  const lab = await startLab('fixed14');
  try {
    // CAP_IOCTL is CAPRIGHT(1, 0x80): word 1. CAP_READ is CAPRIGHT(0, 0x1): word 0.
    assert.deepEqual(capRights(CapRight.IOCTL), [1n << 57n, (1n << 58n) | 0x80n]);
    assert.deepEqual(capRights(CapRight.READ), [(1n << 57n) | 1n, 1n << 58n]);
    const ioctlOnly = await createVm(lab, 'ioctl-only', spinGuest());
    assert.equal(await ioctlOnly.client.capRights(ioctlOnly.file, capRights(CapRight.IOCTL)), 0);
    assert.equal((await ioctlOnly.getTopology()).ret, 0, 'CAP_IOCTL alone allows ioctls');
    assert.equal((await ioctlOnly.client.mmap(ioctlOnly.file, 0, 4096)).ret, ENOTCAPABLE, '... but no mmap');
    const readOnly = await createVm(lab, 'read-only', spinGuest());
    assert.equal(await readOnly.client.capRights(readOnly.file, capRights(CapRight.READ)), 0);
    assert.equal((await readOnly.getTopology()).ret, ENOTCAPABLE, 'CAP_READ alone does not');
    // The old single-mask encoding (CAP_IOCTL as bit 0) is not a valid rights set: EINVAL.
    assert.equal(await readOnly.client.capRights(readOnly.file, [1n, 0n]), -22);
    ioctlOnly.end();
    readOnly.end();
  } finally {
    await lab.close();
  }
});

test('subr_capability.c cap_rights_is_valid: version, index bits and unknown rights are checked (EINVAL)', OPTS, async () => {
  const lab = await startLab('fixed14');
  try {
    const t = await createVm(lab, 'valid', spinGuest());
    const good = capRights(CapRight.IOCTL, CapRight.MMAP_RW);
    assert.equal(await t.client.capRights(t.file, [good[0] | (1n << 62n), good[1]]), -22, 'version 1');
    assert.equal(await t.client.capRights(t.file, [good[1], good[0]]), -22, 'words swapped');
    assert.equal(await t.client.capRights(t.file, [good[0], good[1] | capright(1, 0x200000n)]), -22, 'an unused right');
    assert.equal(await t.client.capRights(t.file, good), 0);
    assert.equal((await t.client.mmap(t.file, 0, 4096)).ret, 0);
    assert.equal((await t.getTopology()).ret, 0);
    t.end();
  } finally {
    await lab.close();
  }
});

test('sys_capability.c cap_ioctls_limit: ioctls outside the list are ENOTCAPABLE; the list may only narrow', OPTS, async () => {
  const lab = await startLab('fixed14');
  try {
    const t = await createVm(lab, 'ioctls', spinGuest());
    // 13.1 bhyve's list holds the 13.1 VM_RUN; the 14.0 VM_RUN is not in it.
    const allowed = [REQ14.VM_GET_TOPOLOGY, REQ14.VM_ACTIVATE_CPU, REQ14.VM_RUN_13];
    assert.equal(await t.client.capIoctls(t.file, allowed), 0);
    assert.equal((await t.client.ioctl(t.file, REQ14.VM_GET_TOPOLOGY, Buffer.alloc(0))).ret, 0);
    assert.equal(await t.activate(0), 0);
    assert.equal((await t.run14(0)).ret, ENOTCAPABLE);
    assert.equal(await t.suspendCpu(0), ENOTCAPABLE);
    assert.equal(await t.client.capIoctls(t.file, [REQ14.VM_GET_TOPOLOGY, REQ14.VM_SUSPEND_CPU]), ENOTCAPABLE, 'widening');
    assert.equal(await t.client.capIoctls(t.file, [REQ14.VM_GET_TOPOLOGY]), 0);
    assert.equal((await t.client.ioctl(t.file, REQ14.VM_ACTIVATE_CPU, VM_ACTIVATE_CPU.encode({ vcpuid: 1 }))).ret, ENOTCAPABLE);
    assert.equal(VM_CPU_TOPOLOGY.decode((await t.client.ioctl(t.file, REQ14.VM_GET_TOPOLOGY, Buffer.alloc(0))).out).sockets, 1);
    assert.equal(await t.client.capIoctls(t.file, []), 0);
    assert.equal((await t.client.ioctl(t.file, REQ14.VM_GET_TOPOLOGY, Buffer.alloc(0))).ret, ENOTCAPABLE);
    t.end();
  } finally {
    await lab.close();
  }
});

test('sys_capability.c cap_ioctls_limit: EINVAL for more than IOCTLS_MAX_COUNT (256) commands', OPTS, async () => {
  const lab = await startLab('legacy13');
  try {
    const t = await createVm(lab, 'many', spinGuest());
    assert.equal(await t.client.capIoctls(t.file, Array.from({ length: 257 }, (_, i) => i)), -22);
    t.end();
  } finally {
    await lab.close();
  }
});
