// End-to-end tests of libvmmlab_bridge.so (docs/internals.md section 2, docs/lab-bridge.md): the
// labtest driver runs with the bridge preloaded against a fake kernel model written here.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { REQ13 } from '../../src/abi/ioctls';
import { nativeArtifact } from '../../src/native-paths';
import { FakeKernel, FBSD, T, run, type RunResult } from './fake-kernel';
import { CapRight, capRights } from '../../src/lab/kernel/capsicum';

/** The rights bhyve gives its vmm fd, as the two words of a version 00 cap_rights_t. */
const CAP_IOCTL_MMAP_RW = capRights(CapRight.IOCTL, CapRight.MMAP_RW);

const bridge = nativeArtifact('libvmmlab_bridge.so');
const labtest = nativeArtifact('labtest');
const built = fs.existsSync(bridge) && fs.existsSync(labtest);
const skip = built ? false : 'native-bindings not built (npm run build)';

const hex = (n: number): string => `0x${n.toString(16)}`;

function lines(r: RunResult): string[] {
  return r.stdout.trim().split('\n');
}

describe('libvmmlab_bridge.so against a fake kernel model', { skip }, () => {
  let root: string;
  let kernel: FakeKernel;
  let env: NodeJS.ProcessEnv;

  before(async () => {
    root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmmlab-bridge-'));
    kernel = await FakeKernel.start(root, {
      override: (rec) => {
        // VM_GET_TOPOLOGY (IOC_OUT): fixed values; VM_GET_REGISTER (INOUT): regval + 1.
        if (rec.request === REQ13.VM_GET_TOPOLOGY) {
          return { ret: 0, payload: Buffer.from([1, 0, 2, 0, 3, 0, 0x10, 0]) };
        }
        if (rec.request === REQ13.VM_GET_REGISTER) {
          const out = Buffer.from(rec.arg);
          out.writeBigUInt64LE(out.readBigUInt64LE(8) + 1n, 8);
          return { ret: 0, payload: out };
        }
        if (rec.request === REQ13.VM_STAT_DESC) return { ret: -FBSD.EAGAIN };
        return undefined;
      },
    });
    kernel.createVm('vm1');
    kernel.vms.get('vm1')!.active.add(0).add(2);
    env = { ...process.env, LD_PRELOAD: bridge, VMMLAB_KERNEL_SOCK: kernel.socketPath, VMMLAB_ROOT: root };
    delete env.VMMLAB_BRIDGE_MODE;
  });

  after(async () => {
    await kernel.close();
    fs.rmSync(root, { recursive: true, force: true });
  });

  it('opens /dev/vmm/NAME through OPEN and holds the real device file', async () => {
    const r = await run(labtest, ['open', 'vm1', 'open', 'nosuchvm'], env);
    assert.equal(r.status, 0, r.stderr);
    const [open1, open2] = lines(r);
    assert.match(open1!, /^open ok \d+$/);
    assert.equal(open2, `open err ENOENT 2`);
    const hello = kernel.framesOf(T.HELLO).at(-1)!;
    assert.ok(hello.body.readUInt32LE(0) > 0, 'HELLO carries the pid');
    assert.ok(kernel.framesOf(T.OPEN).some((f) => f.body.toString() === 'vm1'));
  });

  it('round-trips IN, OUT and INOUT ioctls with IOCPARM_LEN bytes of argument', async () => {
    const before = kernel.ioctls.length;
    // VM_SET_REGISTER (IN): cpuid 1, regnum 20 (RIP), value 0x1234.
    const setreg = '01000000140000003412000000000000';
    const getreg = '0100000014000000ff00000000000000';
    const r = await run(
      labtest,
      ['open', 'vm1', 'ioctl', hex(REQ13.VM_SET_REGISTER), setreg, 'ioctl', hex(REQ13.VM_GET_TOPOLOGY), '-', 'ioctl', hex(REQ13.VM_GET_REGISTER), getreg],
      env,
    );
    assert.equal(r.status, 0, r.stderr);
    const out = lines(r);
    assert.equal(out[1], `ioctl ok ${setreg}`);
    assert.equal(out[2], 'ioctl ok 0100020003001000');
    assert.equal(out[3], 'ioctl ok 01000000140000000001000000000000');
    const got = kernel.ioctls.slice(before);
    assert.deepEqual(
      got.map((g) => g.name),
      ['VM_SET_REGISTER', 'VM_GET_TOPOLOGY', 'VM_GET_REGISTER'],
    );
    assert.equal(got[0]!.arg.toString('hex'), setreg, 'IN: 16 bytes copied in');
    assert.equal(got[1]!.arg.length, 0, 'OUT: nothing copied in');
    assert.equal(got[2]!.arg.length, 16, 'INOUT: copied in');
    assert.ok(got.every((g) => g.argAddr !== 0n), 'argAddr is the caller pointer');
  });

  it('serves COPYOUT into a vm_cpuset.cpus buffer (VM_GET_CPUS)', async () => {
    const r = await run(labtest, ['open', 'vm1', 'getcpus', '0', '32'], env);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(lines(r)[1], `getcpus ok 05${'00'.repeat(31)}`);
    const done = kernel.framesOf(T.COPYOUT_DONE).at(-1)!;
    assert.equal(done.body.readInt32LE(0), 0);
  });

  it('turns bad pointers into EFAULT, never a crash', async () => {
    const before = kernel.ioctls.length;
    const r = await run(
      labtest,
      ['open', 'vm1', 'ioctlbad', hex(REQ13.VM_SET_REGISTER), 'ioctlnull', hex(REQ13.VM_ACTIVATE_CPU), 'getcpusbad', '0', '32', 'ioctlbad', hex(REQ13.VM_GET_TOPOLOGY)],
      env,
    );
    assert.equal(r.status, 0, r.stderr);
    assert.equal(r.signal, null);
    assert.deepEqual(lines(r).slice(1), ['ioctlbad err EFAULT 14', 'ioctlnull err EFAULT 14', 'getcpusbad err EFAULT 14', 'ioctlbad err EFAULT 14']);
    const names = kernel.ioctls.slice(before).map((g) => g.name);
    // IN arguments that cannot be read never reach the model; OUT ones fail on the copy-out.
    assert.deepEqual(names, ['VM_GET_CPUS', 'VM_GET_TOPOLOGY']);
    assert.equal(kernel.framesOf(T.COPYOUT_DONE).at(-1)!.body.readInt32LE(0), FBSD.EFAULT);
  });

  it('translates FreeBSD errno numbers to the host ones', async () => {
    kernel.vms.get('vm1')!.suspended = 0;
    const r = await run(
      labtest,
      ['open', 'vm1', 'ioctl', hex(REQ13.VM_SUSPEND), '02000000', 'ioctl', hex(REQ13.VM_SUSPEND), '02000000', 'ioctl', hex(REQ13.VM_STAT_DESC), '-', 'ioctl', hex(REQ13.VM_ACTIVATE_CPU), '00000000'],
      env,
    );
    kernel.vms.get('vm1')!.suspended = 0;
    assert.equal(r.status, 0, r.stderr);
    const out = lines(r);
    assert.equal(out[1], 'ioctl ok 02000000');
    assert.equal(out[2], `ioctl err EALREADY ${os.constants.errno.EALREADY}`);
    assert.equal(out[3], `ioctl err EAGAIN ${os.constants.errno.EAGAIN}`);
    assert.equal(out[4], `ioctl err EBUSY ${os.constants.errno.EBUSY}`);
  });

  it('forwards capability limits of a vmm fd to the model, which enforces them', async () => {
    kernel.createVm('capvm');
    const allowed = [REQ13.VM_GET_TOPOLOGY, REQ13.VM_RUN].map(hex).join(',');
    const r = await run(
      labtest,
      ['open', 'capvm', 'caprights', `${CAP_IOCTL_MMAP_RW[0]}:${CAP_IOCTL_MMAP_RW[1]}`, 'capioctls', allowed, 'ioctl', hex(REQ13.VM_GET_TOPOLOGY), '-', 'ioctl', hex(REQ13.VM_ACTIVATE_CPU), '00000000'],
      env,
    );
    assert.equal(r.status, 0, r.stderr);
    const out = lines(r);
    assert.deepEqual(out.slice(1, 3), ['caprights ok', 'capioctls ok']);
    assert.match(out[3]!, /^ioctl ok /);
    assert.equal(out[4], 'ioctl err ENOTCAPABLE 93');
    const rights = kernel.framesOf(T.CAP_RIGHTS).at(-1)!;
    assert.deepEqual([rights.body.readBigUInt64LE(8), rights.body.readBigUInt64LE(16)], CAP_IOCTL_MMAP_RW, 'both words of the cap_rights_t');
    const ioctls = kernel.framesOf(T.CAP_IOCTLS).at(-1)!;
    assert.equal(ioctls.body.readUInt32LE(4), 2);
    assert.equal(Number(ioctls.body.readBigUInt64LE(8)), REQ13.VM_GET_TOPOLOGY);
  });

  it('models capability mode: no path opens or connects, connectat through a directory fd works', async () => {
    const other = path.join(root, 'other.sock');
    const server = net.createServer((s) => s.end());
    await new Promise<void>((resolve) => server.listen(other, () => resolve()));
    try {
      const r = await run(
        labtest,
        [
          'open', 'vm1', 'opendir', root, 'capgetmode', 'capenter', 'capgetmode',
          'openpath', '/etc/hostname', 'open', 'vm1', 'connect', other, 'connectat', 'other.sock',
          'sysctl', 'kern.ostype', '-', 'ioctl', hex(REQ13.VM_GET_TOPOLOGY), '-',
        ],
        env,
      );
      assert.equal(r.status, 0, r.stderr);
      assert.deepEqual(lines(r).slice(1), [
        'opendir ok',
        'capgetmode ok 0',
        'capenter ok',
        'capgetmode ok 1',
        'openpath err ECAPMODE 94',
        'open err ECAPMODE 94',
        'connect err ECAPMODE 94',
        'connectat ok',
        'sysctl err ECAPMODE 94',
        'ioctl ok 0100020003001000',
      ]);
    } finally {
      server.close();
    }
  });

  it('maps a vmm fd onto the model file that backs guest memory', async () => {
    const vm = kernel.createVm('memvm');
    vm.memLen = 8192;
    const pattern = Buffer.alloc(8192);
    for (let i = 0; i < pattern.length; i++) pattern[i] = i & 0xff;
    fs.writeFileSync(vm.memFile, pattern);
    const r = await run(labtest, ['open', 'memvm', 'mmap', '8192', '4096', 'poke', '16', 'deadbeef', 'peek', '0', '4'], env);
    assert.equal(r.status, 0, r.stderr);
    const out = lines(r);
    assert.equal(out[1], `mmap ok ${Buffer.from(pattern.subarray(4096, 4112)).toString('hex')}`);
    assert.equal(out[3], 'peek ok 00010203');
    // The write through the mapping is in the model's file (MAP_SHARED, offset from MMAP).
    const file = fs.readFileSync(vm.memFile);
    assert.equal(file.subarray(4096 + 16, 4096 + 20).toString('hex'), 'deadbeef');
    const mmap = kernel.framesOf(T.MMAP).at(-1)!;
    assert.equal(mmap.body.readUInt32LE(4), 3, 'prot PROT_READ|PROT_WRITE');
    assert.equal(mmap.body.readBigUInt64LE(8), 4096n);
    assert.equal(mmap.body.readBigUInt64LE(16), 8192n);
  });

  it('creates and destroys VMs through the vmm sysctls; other names do not exist', async () => {
    const r = await run(labtest, ['sysctl', 'hw.vmm.create', 'sysvm', 'sysctl', 'hw.vmm.create', 'sysvm', 'sysctl', 'hw.vmm.maxcpu', '-', 'sysctl', 'kern.ostype', '-', 'sysctl', 'hw.vmm.destroy', 'sysvm'], env);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(lines(r), ['sysctl ok 0', 'sysctl err EEXIST 17', 'sysctl ok 4 10000000', 'sysctl err ENOENT 2', 'sysctl ok 0']);
    assert.equal(kernel.vms.has('sysvm'), false);
  });

  it('gives every calling thread its own connection', async () => {
    const hellos = kernel.framesOf(T.HELLO).length;
    const r = await run(labtest, ['open', 'vm1', 'threads', '8', hex(REQ13.VM_GET_TOPOLOGY), '-'], env);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(lines(r)[1], 'threads ok 8');
    assert.equal(kernel.framesOf(T.HELLO).length - hellos, 9, 'main thread + 8 threads');
  });

  it('sends CLOSE when a vmm fd is closed', async () => {
    const closes = kernel.framesOf(T.CLOSE).length;
    const r = await run(labtest, ['open', 'vm1', 'close'], env);
    assert.equal(r.status, 0, r.stderr);
    assert.equal(kernel.framesOf(T.CLOSE).length - closes, 1);
  });

  it('fails vmm operations with ENXIO and one line on stderr when there is no model', async () => {
    const noModel = { ...env };
    delete noModel.VMMLAB_KERNEL_SOCK;
    const r = await run(labtest, ['open', 'vm1', 'sysctl', 'hw.vmm.create', 'x'], noModel);
    assert.equal(r.status, 0);
    assert.deepEqual(lines(r), ['open err ENXIO 6', 'sysctl err ENXIO 6']);
    assert.equal(r.stderr.trim().split('\n').length, 1);
    assert.match(r.stderr, /^vmmlab bridge: /);
    const gone = await run(labtest, ['open', 'vm1'], { ...env, VMMLAB_KERNEL_SOCK: path.join(root, 'nobody.sock') });
    assert.deepEqual(lines(gone), ['open err ENXIO 6']);
    assert.match(gone.stderr, /cannot reach the kernel model/);
  });

  it('answers vmm ioctls in-process in loopback mode', async () => {
    const loop: NodeJS.ProcessEnv = { ...env, VMMLAB_BRIDGE_MODE: 'loopback' };
    delete loop.VMMLAB_KERNEL_SOCK;
    const r = await run(labtest, ['open', 'vm1', 'ioctl', hex(REQ13.VM_GET_REGISTER), '0100000014000000ffffffffffffffff', 'close'], loop);
    assert.equal(r.status, 0, r.stderr);
    assert.deepEqual(lines(r).slice(1), [`ioctl ok ${'00'.repeat(16)}`, 'close ok']);
    assert.equal(r.stderr, '');
  });
});
