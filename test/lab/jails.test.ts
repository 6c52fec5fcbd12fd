// Two jails' socket directories against one daemon (docs/design.md, "Security"): each jail's VMs
// boot every AP, and a client in one jail's directory naming the other jail's VM is refused.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import path from 'node:path';
import { LabBench } from '../../src/lab/run';
import { FrameReader, MessageType, encode } from '../../src/daemon/protocol';

test('two jails, one daemon: both boot every AP; jail b naming jail a\'s VM is refused and logged', async () => {
  const bench = await LabBench.start({ kernel: 'window' });
  try {
    const dirA = path.join(bench.root, 'run', 'jail-a');
    const dirB = path.join(bench.root, 'run', 'jail-b');
    await bench.startDaemon(['--jail', `a=${dirA}`, '--jail', `b=${dirB}`]);
    const inA = await bench.spawnBhyve({ bhyve: '13.1', vcpus: 4, vmName: 'vm-a', shim: true, socketDir: dirA, timeoutMs: 20000 }).result;
    const inB = await bench.spawnBhyve({ bhyve: '13.1', vcpus: 4, vmName: 'vm-b', shim: true, socketDir: dirB, timeoutMs: 20000 }).result;
    for (const r of [inA, inB]) {
      assert.deepEqual(r.apsStarted, [1, 2, 3], r.bhyveStderr);
      assert.equal(r.outcome, 'poweroff');
    }
    const log = bench.daemonLog();
    assert.match(log, /"vm":"vm-a","jail":"a".*"msg":"plan"/);
    assert.match(log, /"vm":"vm-b","jail":"b".*"msg":"plan"/);

    // vm-a still exists (no -D): a bhyve in jail b that opens it is stopped at vm_open.
    const intruder = await bench.spawnBhyve({ bhyve: '13.1', vcpus: 4, vmName: 'vm-a', shim: true, socketDir: dirB, timeoutMs: 20000 }).result;
    assert.equal(intruder.bhyveExit.status, 4, 'bhyverun.c do_open: vm_open failure exits 4');
    assert.match(intruder.bhyveStderr, /vmm-compatd refused VM vm-a: VM vm-a belongs to jail a; this socket serves jail b/);
    await bench.waitForDaemonLog(/"jail":"b".*"vm":"vm-a".*"refused":"VM vm-a belongs to jail a/, 5000);
    assert.deepEqual(bench.model.vmSets('vm-a')?.active.filter((v) => v > 0).length ?? 0, 3, 'jail a\'s VM state is untouched (its APs from the last boot)');
  } finally {
    await bench.close();
  }
});

test('the real peer check: a process that does not hold /dev/vmm/NAME open is refused (SO_PEERCRED + /proc/PID/fd)', async () => {
  const bench = await LabBench.start({ kernel: 'window' });
  try {
    await bench.startDaemon();
    const r = await bench.spawnBhyve({ bhyve: '13.1', vcpus: 2, vmName: 'held', shim: true, timeoutMs: 20000 }).result;
    assert.deepEqual(r.apsStarted, [1]);
    // This test process names the VM but has no fd on its device file.
    const reply = await new Promise<Buffer>((resolve, reject) => {
      const socket = net.connect(path.join(bench.socketDir, 'vmm-compatd.sock'));
      let data = Buffer.alloc(0);
      socket.on('connect', () => socket.write(encode({ type: MessageType.HELLO, pid: process.pid, flags: 0, vm: 'held', bhyve: '13.1' })));
      socket.on('data', (chunk: Buffer) => (data = Buffer.concat([data, chunk])));
      socket.on('close', () => resolve(data));
      socket.on('error', reject);
    });
    const [message] = new FrameReader().push(reply);
    assert.equal(message?.type, MessageType.ERROR);
    if (message?.type === MessageType.ERROR) assert.match(message.message, new RegExp(`process ${process.pid} does not hold /dev/vmm/held open`));
  } finally {
    await bench.close();
  }
});

test('a VM name the daemon refuses (a control character) stops bhyve at vm_open with the daemon\'s reason, exit 4: a refusal, not an absent daemon', async () => {
  const bench = await LabBench.start({ kernel: 'window' });
  try {
    await bench.startDaemon();
    // The kernel (and the lab model, vmm_dev.c sysctl_vmm_create) accepts \x01; the daemon does not.
    const r = await bench.spawnBhyve({ bhyve: '13.1', vcpus: 2, vmName: 'bad\x01name', shim: true, timeoutMs: 20000 }).result;
    assert.equal(r.bhyveExit.status, 4, r.bhyveStderr);
    assert.match(r.bhyveStderr, /vmm-compatd refused VM bad\x01name: bad VM name: the VM name contains a control character/);
    assert.doesNotMatch(r.bhyveStderr, /cannot reach vmm-compatd/);
    assert.deepEqual(r.apsStarted, []);
  } finally {
    await bench.close();
  }
});
