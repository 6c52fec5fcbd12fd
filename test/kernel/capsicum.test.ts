// Capsicum limits per open file (sys_capability.c cap_rights_limit / cap_ioctls_limit,
// kern_ioctl's CAP_IOCTL and cap_ioctl_check, mmap's CAP_MMAP_*).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { REQ14 } from '../../src/abi/ioctls';
import { VM_ACTIVATE_CPU, VM_CPU_TOPOLOGY } from '../../src/abi/structs';
import { CapRight } from '../../src/lab/kernel/capsicum';
import { createVm, spinGuest, startLab, VmThread } from './harness';

const OPTS = { timeout: 5_000 };
const ENOTCAPABLE = -93;

test('sys_capability.c cap_rights_limit: without CAP_IOCTL every ioctl is ENOTCAPABLE; rights may only narrow', OPTS, async () => {
  const lab = await startLab('fixed14');
  try {
    const t = await createVm(lab, 'rights', spinGuest());
    assert.equal(await t.client.capRights(t.file, CapRight.MMAP_RW), 0);
    assert.equal(await t.activate(0), ENOTCAPABLE);
    assert.equal((await t.getTopology()).ret, ENOTCAPABLE);
    assert.equal(await t.client.capRights(t.file, CapRight.MMAP_RW | CapRight.IOCTL), ENOTCAPABLE, 'widening');
    assert.equal((await t.client.mmap(t.file, 0, 4096)).ret, 0, 'CAP_MMAP_RW kept');
    assert.equal(await t.client.capRights(t.file, 0n), 0);
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
