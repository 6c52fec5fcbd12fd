// Bad input: VM names, unknown and malformed ioctls, file ids, and malformed frames, which
// close the offending connection only (docs/internals.md section 2).

import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { test } from 'node:test';
import { REQ14 } from '../../src/abi/ioctls';
import { VM_ACTIVATE_CPU, VM_CPUSET } from '../../src/abi/structs';
import { connectKernel } from '../../src/lab/kernel/client';
import { FrameType, MAX_FRAME_BYTES, encodeFrame, encodeHello, encodeIoctl } from '../../src/lab/kernel/protocol';
import { createVm, delay, spinGuest, startLab, within, TIMED_OUT, type Lab } from './harness';

const OPTS = { timeout: 5_000 };
const ENOENT = -2;
const ENXIO = -6;
const EBADF = -9;
const EFAULT = -14;
const EEXIST = -17;
const EINVAL = -22;
const ENOTTY = -25;

test('vmm_dev.c sysctl_vmm_create: EINVAL for bad names (length, white space, ", . and ..), EEXIST for a duplicate; the device file appears', OPTS, async () => {
  const lab = await startLab('window');
  try {
    const c = await connectKernel(lab.model.socketPath);
    for (const bad of ['\0', 'a b', 'tab\tname', 'quo"te', '.', '..', 'x'.repeat(230), 'a/b']) {
      assert.equal((await c.sysctl('hw.vmm.create', bad)).ret, EINVAL, JSON.stringify(bad));
    }
    assert.equal((await c.sysctl('hw.vmm.create', 'x'.repeat(229))).ret, 0, 'VM_MAX_NAMELEN is allowed');
    assert.equal((await c.sysctl('hw.vmm.create', 'guest-1')).ret, 0);
    assert.equal((await c.sysctl('hw.vmm.create', 'guest-1')).ret, EEXIST);
    assert.ok(fs.existsSync(path.join(lab.dir, 'dev', 'vmm', 'guest-1')));
    assert.deepEqual(lab.model.vmNames(), ['guest-1', 'x'.repeat(229)]);
    c.end();
  } finally {
    await lab.close();
  }
});

test('vmm_dev.c sysctl_vmm_destroy: EINVAL for an unknown VM; destroy removes the device; open of a missing device is ENOENT; an old file gets ENXIO', OPTS, async () => {
  const lab = await startLab('fixed14');
  try {
    const c = await connectKernel(lab.model.socketPath);
    assert.equal((await c.sysctl('hw.vmm.destroy', 'nope')).ret, EINVAL);
    assert.equal(await c.open('nope'), ENOENT);
    const t = await createVm(lab, 'gone', spinGuest());
    assert.equal(await t.activate(0), 0);
    const stats = lab.model.guestStats('gone');
    assert.equal((await c.sysctl('hw.vmm.destroy', 'gone')).ret, 0);
    assert.ok(!fs.existsSync(path.join(lab.dir, 'dev', 'vmm', 'gone')));
    assert.equal(await c.open('gone'), ENOENT);
    assert.equal(await t.activate(1), ENXIO);
    assert.deepEqual(lab.model.guestStats('gone'), stats, 'the ground truth outlives the VM');
    assert.equal(fs.readdirSync(path.join(lab.dir, 'mem')).length, 0, 'memory files are removed');
    // Re-created under the same name: a new VM, new stats; the old file still sees the old one.
    assert.equal((await c.sysctl('hw.vmm.create', 'gone')).ret, 0);
    assert.equal(await t.activate(0), ENXIO);
    assert.deepEqual(lab.model.guestStats('gone')?.instructions, []);
    assert.equal(await t.client.close(t.file), 0);
    assert.equal(await t.client.close(t.file), EBADF);
    c.end();
    t.end();
  } finally {
    await lab.close();
  }
});

test('vmm_dev.c vmmdev_ioctl: unknown request ENOTTY; a short argument EFAULT (copyin), a longer one EINVAL; bad vCPU ids EINVAL; another process\'s file EBADF', OPTS, async () => {
  const lab = await startLab('fixed14');
  try {
    const t = await createVm(lab, 'bad', spinGuest());
    assert.equal((await t.client.ioctl(t.file, 0xc0107699, Buffer.alloc(16))).ret, ENOTTY);
    assert.equal((await t.client.ioctl(t.file, REQ14.VM_ACTIVATE_CPU, Buffer.alloc(2))).ret, EFAULT);
    assert.equal((await t.client.ioctl(t.file, REQ14.VM_ACTIVATE_CPU, Buffer.alloc(8))).ret, EINVAL);
    assert.equal((await t.client.ioctl(t.file, REQ14.VM_GET_TOPOLOGY, Buffer.alloc(8))).ret, EINVAL, 'IOC_OUT takes no input');
    assert.equal((await t.client.ioctl(t.file, REQ14.VM_ACTIVATE_CPU, VM_ACTIVATE_CPU.encode({ vcpuid: 1000 }))).ret, EINVAL);
    assert.equal((await t.getRegister(-5, 0)).ret, EINVAL);
    const cpus = await t.client.ioctl(t.file, REQ14.VM_GET_CPUS, VM_CPUSET.encode({ which: 0, cpusetsize: 128, cpus: 0x1000n }));
    assert.equal(cpus.ret, EFAULT, 'no caller memory behind the cpus pointer');
    const stranger = await connectKernel(lab.model.socketPath, { pid: 4242 });
    assert.equal((await stranger.ioctl(t.file, REQ14.VM_GET_TOPOLOGY, Buffer.alloc(0))).ret, EBADF);
    stranger.end();
    t.end();
  } finally {
    await lab.close();
  }
});

function rawConnection(lab: Lab): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.createConnection(lab.model.socketPath, () => resolve(s));
    s.once('error', reject);
  });
}

function closedWithin(socket: net.Socket, ms: number): Promise<boolean> {
  return new Promise((resolve) => {
    if (socket.destroyed) return resolve(true);
    const timer = setTimeout(() => resolve(false), ms);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve(true);
    });
    socket.resume();
  });
}

test('docs/internals.md section 2: malformed, oversized or out-of-order frames close that connection only; the model keeps serving others', OPTS, async () => {
  const lab = await startLab('window');
  try {
    const healthy = await connectKernel(lab.model.socketPath);
    assert.equal((await healthy.sysctl('hw.vmm.create', 'alive')).ret, 0);
    const hello = encodeFrame(FrameType.HELLO, encodeHello(1));
    const oversized = Buffer.alloc(8);
    oversized.writeUInt32LE(MAX_FRAME_BYTES + 1, 0);
    const tooShort = Buffer.alloc(4);
    tooShort.writeUInt32LE(2, 0);
    const cases: [string, Buffer][] = [
      ['a call before HELLO', encodeFrame(FrameType.OPEN, Buffer.from('alive'))],
      ['an oversized length', Buffer.concat([hello, oversized])],
      ['a length without room for the type', Buffer.concat([hello, tooShort])],
      ['an unknown frame type', Buffer.concat([hello, encodeFrame(77, Buffer.alloc(0))])],
      ['a short IOCTL body', Buffer.concat([hello, encodeFrame(FrameType.IOCTL, Buffer.alloc(10))])],
      ['a SYSCTL without NUL', Buffer.concat([hello, encodeFrame(FrameType.SYSCTL, Buffer.from([0, 0, 0, 0, 0x68, 0x77]))])],
      ['a COPYOUT_DONE nobody asked for', Buffer.concat([hello, encodeFrame(FrameType.COPYOUT_DONE, Buffer.alloc(4))])],
      ['a HELLO twice', Buffer.concat([hello, hello])],
    ];
    for (const [what, bytes] of cases) {
      const s = await rawConnection(lab);
      s.write(bytes);
      assert.equal(await closedWithin(s, 1000), true, `${what} must close the connection`);
    }
    // A second call while one is in progress (here a VM_RUN blocked in a hung rendezvous).
    const t = await createVm(lab, 'busy', spinGuest());
    const s = await rawConnection(lab);
    const file = await t.client.open('busy');
    assert.ok(file >= 0);
    s.write(hello);
    const getCpus = encodeIoctl({ file: 0, request: BigInt(REQ14.VM_GET_CPUS), argAddr: 0n, arg: VM_CPUSET.encode({ which: 0, cpusetsize: 32, cpus: 0x1000n }) });
    s.write(Buffer.concat([encodeFrame(FrameType.IOCTL, getCpus), encodeFrame(FrameType.IOCTL, getCpus)]));
    assert.equal(await closedWithin(s, 1000), true, 'a call while a call (waiting for COPYOUT_DONE) is in progress');
    // The healthy connection still works.
    assert.equal((await healthy.sysctl('hw.vmm.create', 'still-alive')).ret, 0);
    assert.deepEqual(lab.model.vmNames(), ['alive', 'busy', 'still-alive']);
    healthy.end();
    t.end();
  } finally {
    await lab.close();
  }
});

test('connection.ts: a COPYIN_DATA of the wrong length closes the connection and releases the vCPU', OPTS, async () => {
  const lab = await startLab('legacy13');
  try {
    const t = await createVm(lab, 'copy', spinGuest());
    const s = await rawConnection(lab);
    s.write(encodeFrame(FrameType.HELLO, encodeHello(1000)));
    // VM_GET_REGISTER_SET on vCPU 0: the model freezes vCPU 0 and asks for 4 bytes of regnums.
    const arg = Buffer.alloc(24);
    arg.writeUInt32LE(1, 4);
    arg.writeBigUInt64LE(0x1000n, 8);
    arg.writeBigUInt64LE(0x2000n, 16);
    s.write(encodeFrame(FrameType.IOCTL, encodeIoctl({ file: t.file, request: BigInt(0xc0187619), argAddr: 0n, arg })));
    await delay(50);
    const data = Buffer.alloc(4 + 2);
    s.write(encodeFrame(FrameType.COPYIN_DATA, data));
    assert.equal(await closedWithin(s, 1000), true);
    const r = await within(t.getRegister(0, 0), 1000, TIMED_OUT);
    assert.notEqual(r, TIMED_OUT, 'vCPU 0 is not left frozen');
    t.end();
  } finally {
    await lab.close();
  }
});

test('server.ts close(): removes the socket and every device and memory file', OPTS, async () => {
  const lab = await startLab('fixed14');
  await createVm(lab, 'one', spinGuest());
  await createVm(lab, 'two', spinGuest());
  await lab.model.close();
  assert.ok(!fs.existsSync(lab.model.socketPath));
  assert.deepEqual(fs.readdirSync(path.join(lab.dir, 'dev', 'vmm')), []);
  assert.deepEqual(fs.readdirSync(path.join(lab.dir, 'mem')), []);
  assert.equal(lab.model.guestStats('one')?.suspended, null);
  await lab.close();
});
