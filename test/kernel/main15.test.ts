// The 15.0/main kernel (sys/dev/vmm/vmm_dev.c at 3d39856d, DEV15; vmm_mem.[ch] at 09fa9c6f,
// MEMH/MEMC) and stable/13 after 577a666c (fixed13): the rules that differ from 14.0.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { CpusetWhich, VmExitcode, VmReg } from '../../src/abi/enums';
import { REQ13, REQ15 } from '../../src/abi/ioctls';
import { VM_MEMMAP, VM_MEMSEG, VM_MEMSEG_15, VMMCTL_VM_CREATE, VMMCTL_VM_DESTROY } from '../../src/abi/structs';
import { connectKernel } from '../../src/lab/kernel/client';
import { FakeMemory, createVm, setRealMode, spinGuest, startLab, until, within, type VmThread } from './harness';

const OPTS = { timeout: 10_000 };
const ENOENT = -2;
const EPERM = -1;
const ENXIO = -6;
const EINVAL = -22;
const ENOTTY = -25;
const ERANGE = -34;
const ENAMETOOLONG = -63;
const O_RDONLY = 0;
const O_RDWR = 2;

function name16(text: string, fill?: number): Buffer {
  const b = Buffer.alloc(16, fill ?? 0);
  if (fill === undefined) b.write(text, 'latin1');
  return b;
}

async function alloc14(t: VmThread, segid: number, len: number, name = ''): Promise<{ ret: number; out: Buffer }> {
  return t.client.ioctl(t.file, REQ13.VM_ALLOC_MEMSEG, VM_MEMSEG.encode({ segid, len: BigInt(len), name: name16(name) }));
}

async function get14(t: VmThread, segid: number): Promise<{ ret: number; out: Buffer }> {
  return t.client.ioctl(t.file, REQ13.VM_GET_MEMSEG, VM_MEMSEG.encode({ segid }));
}

async function mmap(t: VmThread, gpa: number, segid: number, len: number, prot = 5): Promise<number> {
  const arg = VM_MEMMAP.encode({ gpa: BigInt(gpa), segid, segoff: 0n, len: BigInt(len), prot, flags: 0 });
  return (await t.client.ioctl(t.file, REQ13.VM_MMAP_MEMSEG, arg)).ret;
}

async function getnext(t: VmThread, gpa: number): Promise<{ ret: number; segid: number; gpa: bigint }> {
  const r = await t.client.ioctl(t.file, REQ13.VM_MMAP_GETNEXT, VM_MEMMAP.encode({ gpa: BigInt(gpa) }));
  const m = VM_MEMMAP.decode(r.ret === 0 ? r.out : VM_MEMMAP.encode({}));
  return { ret: r.ret, segid: m.segid, gpa: m.gpa };
}

const ROM_GPA = 0x1_0000_0000 - 0x1000;

test('vmm_dev.c adjust_segid: a 13.1 bootrom (segid 1) is allocated as 8 by VM_ALLOC_MEMSEG_14, but VM_MMAP_MEMSEG takes segid 1 unchanged (EINVAL) and VM_MMAP_GETNEXT reports 8', OPTS, async () => {
  const lab = await startLab('main15');
  try {
    const t = await createVm(lab, 'rom15', spinGuest());
    assert.equal((await alloc14(t, 1, 0x1000, 'bootrom')).ret, 0);
    // VM_GET_MEMSEG_14 adjusts in place: the caller's struct comes back with segid 8.
    const got = await get14(t, 1);
    assert.equal(got.ret, 0);
    const seg = VM_MEMSEG.decode(got.out);
    assert.equal(seg.segid, 8);
    assert.equal(seg.len, 0x1000n);
    assert.equal(seg.name.toString('latin1').replace(/\0+$/, ''), 'bootrom');
    // vm_mmap_memseg: segment 1 has no object.
    assert.equal(await mmap(t, ROM_GPA, 1, 0x1000), EINVAL);
    assert.equal(await mmap(t, ROM_GPA, 8, 0x1000), 0);
    const next = await getnext(t, 0x1000);
    assert.equal(next.ret, 0);
    assert.equal(next.segid, 8, 'VM_MMAP_GETNEXT hands back the 15.0 segid');
    assert.equal(next.gpa, BigInt(ROM_GPA));
    t.end();
  } finally {
    await lab.close();
  }
});

test('vmm_dev.c vmmdev_ioctls without COMPAT_FREEBSD14 (main15): the 32-byte VM_ALLOC/GET_MEMSEG are ENOTTY, the 56-byte ones work with ds_policy invalid', OPTS, async () => {
  const lab = await startLab('main15', { compatFreebsd14: false });
  try {
    const t = await createVm(lab, 'nocompat14', spinGuest()); // the harness allocates sysmem with the 56-byte form
    assert.equal((await alloc14(t, 1, 0x1000, 'bootrom')).ret, ENOTTY);
    assert.equal((await get14(t, 0)).ret, ENOTTY);
    const arg = VM_MEMSEG_15.encode({ segid: 8, len: 0x1000n, name: name16('bootrom'), ds_policy: 0, ds_mask: 0n });
    assert.equal((await t.client.ioctl(t.file, REQ15.VM_ALLOC_MEMSEG, arg)).ret, 0);
    const got = await t.client.ioctl(t.file, REQ15.VM_GET_MEMSEG, VM_MEMSEG_15.encode({ segid: 8 }));
    assert.equal(got.ret, 0);
    assert.equal(VM_MEMSEG_15.decode(got.out).len, 0x1000n);
    t.end();
  } finally {
    await lab.close();
  }
});

test('vmm_dev.c VM_ALLOC_MEMSEG / alloc_memseg and vmm_mem.c vm_mmap_memseg / vm_mmap_getnext on main15, bad input: segid out of range, GETNEXT past the last mapping, a name without NUL, a bad domain-set size', OPTS, async () => {
  const lab = await startLab('main15');
  try {
    const t = await createVm(lab, 'bad15', spinGuest());
    // VM_MAX_MEMSEGS is 11 (VM_MEMSEG_END): 11 natively, and 4 + 7 through adjust_segid.
    const native = VM_MEMSEG_15.encode({ segid: 11, len: 0x1000n, name: name16('x') });
    assert.equal((await t.client.ioctl(t.file, REQ15.VM_ALLOC_MEMSEG, native)).ret, EINVAL);
    assert.equal((await alloc14(t, 4, 0x1000, 'x')).ret, EINVAL);
    // adjust_segid adds 7 to anything but 0, so only ids below -7 stay negative.
    assert.equal((await alloc14(t, -8, 0x1000, 'x')).ret, EINVAL);
    assert.equal((await get14(t, 4)).ret, EINVAL);
    assert.equal(await mmap(t, ROM_GPA, 11, 0x1000), EINVAL);
    // vm_mmap_getnext: ENOENT past the last mapping (sysmem ends at 1 MiB).
    assert.equal((await getnext(t, 0x100000)).ret, ENOENT);
    // copystr into VM_MAX_SUFFIXLEN + 1 bytes: no NUL, ENAMETOOLONG.
    const noNul = VM_MEMSEG.encode({ segid: 1, len: 0x1000n, name: name16('', 0x41) });
    assert.equal((await t.client.ioctl(t.file, REQ13.VM_ALLOC_MEMSEG, noNul)).ret, ENAMETOOLONG);
    // A NUMA policy with a mask of the wrong size: ERANGE before anything is allocated.
    const memory = new FakeMemory();
    const mask = memory.alloc(Buffer.from([1, 0, 0, 0, 0, 0, 0, 0]));
    const badSize = VM_MEMSEG_15.encode({ segid: 1, len: 0x1000n, ds_mask: mask, ds_mask_size: 4n, ds_policy: 1 });
    assert.equal((await t.client.ioctl(t.file, REQ15.VM_ALLOC_MEMSEG, badSize, memory)).ret, ERANGE);
    const tooBig = VM_MEMSEG_15.encode({ segid: 1, len: 0x1000n, ds_mask: mask, ds_mask_size: 33n, ds_policy: 1 });
    assert.equal((await t.client.ioctl(t.file, REQ15.VM_ALLOC_MEMSEG, tooBig, memory)).ret, ERANGE, 'beyond DOMAINSET_MAXSIZE / NBBY (32)');
    const good = VM_MEMSEG_15.encode({ segid: 1, len: 0x1000n, ds_mask: mask, ds_mask_size: 8n, ds_policy: 1 });
    assert.equal((await t.client.ioctl(t.file, REQ15.VM_ALLOC_MEMSEG, good, memory)).ret, 0, 'NUMA domain 1 of the guest, host domain 0');
    // Userland's domainset_t is DOMAINSET_MAXSIZE (256) bits: the 32-byte mask a 15.0 libvmmapi passes.
    const userMask = memory.alloc(Buffer.concat([Buffer.from([1]), Buffer.alloc(31)]));
    const userSized = VM_MEMSEG_15.encode({ segid: 2, len: 0x1000n, ds_mask: userMask, ds_mask_size: 32n, ds_policy: 1 });
    assert.equal((await t.client.ioctl(t.file, REQ15.VM_ALLOC_MEMSEG, userSized, memory)).ret, 0, "userland's 32-byte domainset_t");
    // vm_mmap_memseg on 15.0: VM_MEMMAP_F_IOMMU from userland is EINVAL, prot 0 too.
    const iommu = VM_MEMMAP.encode({ gpa: 0x200000n, segid: 1, segoff: 0n, len: 0x1000n, prot: 3, flags: 2 });
    assert.equal((await t.client.ioctl(t.file, REQ13.VM_MMAP_MEMSEG, iommu)).ret, EINVAL);
    assert.equal(await mmap(t, 0x200000, 1, 0x1000, 0), EINVAL);
    t.end();
  } finally {
    await lab.close();
  }
});

test('vmm_dev.c VM_GET_CPUS on 15.0: any size from 1 to CPU_MAXSIZE/NBBY as long as the highest set bit fits', OPTS, async () => {
  const lab = await startLab('main15');
  try {
    const t = await createVm(lab, 'cpus15', spinGuest());
    assert.equal(await t.activate(0), 0);
    assert.deepEqual(await t.getCpus(CpusetWhich.ACTIVE, 32).then((r) => [r.ret, r.ids]), [0, [0]], "13.1's 32 bytes");
    assert.equal((await t.getCpus(CpusetWhich.ACTIVE, 1)).ret, 0);
    assert.equal((await t.getCpus(CpusetWhich.ACTIVE, 0)).ret, ERANGE);
    assert.equal((await t.getCpus(CpusetWhich.ACTIVE, 129)).ret, ERANGE);
    assert.equal((await t.getCpus(7, 32)).ret, EINVAL);
    assert.equal(await t.activate(9), 0);
    assert.equal((await t.getCpus(CpusetWhich.ACTIVE, 1)).ret, ERANGE, 'vCPU 9 does not fit in one byte');
    assert.deepEqual((await t.getCpus(CpusetWhich.ACTIVE, 2)).ids, [0, 9]);
    t.end();
  } finally {
    await lab.close();
  }
});

test('vmm_dev.c VM_GET_CPUS (13.x strict rule) and vmm_dev.h VM_RUN on fixed13 (stable/13 after 577a666c): cpuset_t and CPU_MAXSIZE/NBBY are both 32 bytes, so 128 is ERANGE and 32 works; VM_RUN is the 144-byte one', OPTS, async () => {
  const lab = await startLab('fixed13');
  try {
    const t = await createVm(lab, 'cpus13', spinGuest());
    assert.equal(await t.activate(0), 0);
    assert.equal((await t.getCpus(CpusetWhich.ACTIVE, 128)).ret, ERANGE);
    assert.deepEqual((await t.getCpus(CpusetWhich.ACTIVE, 32)).ids, [0]);
    const control = await connectKernel(lab.model.socketPath);
    const osrel = await control.sysctl('kern.osreldate');
    assert.equal(osrel.old.readInt32LE(0), 1305000);
    assert.equal((await control.sysctl('hw.vmm.maxcpu')).ret, 0);
    control.end();
    assert.equal((await t.client.ioctl(t.file, 0x80207601, Buffer.alloc(32))).ret, ENOTTY, 'no 32-byte VM_RUN on stable/13');
    t.end();
  } finally {
    await lab.close();
  }
});

test('kern_mib.c kern.osreldate: 1500068 (15.0-RELEASE, kernel-15-side.md section 8, not read off param.h) on main15 unless the lab sets a 16-CURRENT value', OPTS, async () => {
  for (const [options, expected] of [[{}, 1500068], [{ osreldate: 1600000 }, 1600000]] as const) {
    const lab = await startLab('main15', options);
    try {
      const control = await connectKernel(lab.model.socketPath);
      assert.equal((await control.sysctl('kern.osreldate')).old.readInt32LE(0), expected);
      control.end();
    } finally {
      await lab.close();
    }
  }
});

test('vmm_dev.c /dev/vmmctl: EPERM without FWRITE, VMMCTL_VM_CREATE/DESTROY, EINVAL for reserved words, ENOTTY otherwise', OPTS, async () => {
  const lab = await startLab('main15');
  try {
    const c = await connectKernel(lab.model.socketPath);
    assert.equal(await c.openPath('/dev/vmmctl', O_RDONLY), EPERM);
    const ctl = await c.openPath('/dev/vmmctl', O_RDWR);
    assert.ok(ctl >= 0);
    const nameField = Buffer.alloc(230);
    nameField.write('ctlvm', 'latin1');
    assert.equal((await c.ioctl(ctl, REQ15.VMMCTL_VM_CREATE, VMMCTL_VM_CREATE.encode({ name: nameField }))).ret, 0);
    assert.deepEqual(lab.model.vmNames(), ['ctlvm']);
    const reserved = Buffer.alloc(64);
    reserved[0] = 1;
    assert.equal((await c.ioctl(ctl, REQ15.VMMCTL_VM_DESTROY, VMMCTL_VM_DESTROY.encode({ name: nameField, reserved }))).ret, EINVAL);
    assert.equal((await c.ioctl(ctl, REQ15.VM_RUN, Buffer.alloc(32))).ret, ENOTTY);
    // sys_generic.c kern_ioctl: a buffer shorter than IOCPARM_LEN faults in copyin.
    assert.equal((await c.ioctl(ctl, REQ15.VMMCTL_VM_CREATE, Buffer.alloc(100))).ret, -14, 'EFAULT');
    // vmc->name[VM_MAX_NAMELEN] = '\0' in the caller's struct: 230 letters make a 229-letter VM,
    // and the struct comes back (_IOWR) with the NUL in place.
    const full = VMMCTL_VM_CREATE.encode({ name: Buffer.alloc(230, 0x61) });
    const made = await c.ioctl(ctl, REQ15.VMMCTL_VM_CREATE, full);
    assert.equal(made.ret, 0);
    assert.equal(made.out.length, 296);
    assert.equal(made.out[229], 0);
    assert.ok(lab.model.vmNames().includes('a'.repeat(229)));
    const long = VMMCTL_VM_DESTROY.encode({ name: Buffer.alloc(230, 0x61) });
    assert.equal((await c.ioctl(ctl, REQ15.VMMCTL_VM_DESTROY, long)).ret, 0);
    assert.equal((await c.ioctl(ctl, REQ15.VMMCTL_VM_DESTROY, VMMCTL_VM_DESTROY.encode({ name: nameField }))).ret, 0);
    assert.deepEqual(lab.model.vmNames(), []);
    assert.equal((await c.ioctl(ctl, REQ15.VMMCTL_VM_DESTROY, VMMCTL_VM_DESTROY.encode({ name: nameField }))).ret, EINVAL, 'no such VM');
    c.end();
  } finally {
    await lab.close();
  }
  const old = await startLab('fixed14');
  try {
    const c = await connectKernel(old.model.socketPath);
    assert.equal(await c.openPath('/dev/vmmctl', O_RDWR), ENOENT, '14.0 has no /dev/vmmctl');
    c.end();
  } finally {
    await old.close();
  }
});

test('vmm_dev.c devmem_create_cdev / devmem_mmap_single: /dev/vmm.io/NAME.bootrom appears with the segment, maps only within it, never PROT_EXEC', OPTS, async () => {
  const lab = await startLab('main15');
  try {
    const t = await createVm(lab, 'devm', spinGuest());
    assert.equal(await t.client.openPath('/dev/vmm.io/devm.bootrom', O_RDWR), ENOENT);
    assert.equal((await alloc14(t, 1, 0x2000, 'bootrom')).ret, 0);
    const dev = await t.client.openPath('/dev/vmm.io/devm.bootrom', O_RDWR);
    assert.ok(dev >= 0);
    assert.equal((await t.client.mmap(dev, 0, 0x2000, 3)).ret, 0);
    assert.equal((await t.client.mmap(dev, 0x1000, 0x2000, 3)).ret, EINVAL, 'past the segment');
    assert.equal((await t.client.mmap(dev, 0, 0x1000, 4)).ret, EINVAL, 'PROT_EXEC');
    assert.equal((await t.client.ioctl(dev, REQ15.VM_RUN, Buffer.alloc(32))).ret, -19, 'devmem has no ioctl: ENODEV');
    t.end();
  } finally {
    await lab.close();
  }
});

test('vmm_dev.c vmmdev_lookup_and_destroy on 15.0: a running vCPU returns VM_EXITCODE_SUSPENDED with VM_SUSPEND_DESTROY (5), new calls get ENXIO', OPTS, async () => {
  const lab = await startLab('main15');
  try {
    const t = await createVm(lab, 'doomed', spinGuest());
    await setRealMode(t, 0, 0x1000);
    assert.equal(await t.activate(0), 0);
    const running = t.run14(0);
    await until(() => (lab.model.guestStats('doomed')?.instructions[0] ?? 0) > 0, 'the guest running in VM_RUN');
    const control = await connectKernel(lab.model.socketPath);
    const destroyed = control.sysctl('hw.vmm.destroy', 'doomed');
    const r = await within(running, 3000, null);
    assert.ok(r !== null, 'VM_RUN returned');
    assert.equal(r.ret, 0);
    assert.equal(r.exit?.exitcode, VmExitcode.SUSPENDED);
    assert.equal(r.exit?.u.readInt32LE(0), 5, 'VM_SUSPEND_DESTROY on amd64 (inferred: after TRIPLEFAULT)');
    assert.equal((await destroyed).ret, 0, 'the sysctl returns once the device is drained');
    assert.equal((await t.getRegister(0, VmReg.RIP)).ret, ENXIO);
    assert.equal(lab.model.guestStats('doomed')?.suspended, 'destroy');
    control.end();
    t.end();
  } finally {
    await lab.close();
  }
});

test('vmm_dev.c vmm_handler (15.0) and vmm.c vmm_init (13.x): on main15 and fixed13 hw.vmm.maxcpu defaults to the host CPU count (--host-cpus); vm_set_topology beyond it is EINVAL', OPTS, async () => {
  for (const variant of ['main15', 'fixed13'] as const) {
    const lab = await startLab(variant, { hostCpus: 8 });
    try {
      const control = await connectKernel(lab.model.socketPath);
      assert.equal((await control.sysctl('hw.vmm.maxcpu')).old.readUInt32LE(0), 8);
      control.end();
      const t = await createVm(lab, `topo-${variant}`, spinGuest());
      assert.equal(await t.setTopology(8, 1, 1, 0), 0);
      assert.equal(await t.setTopology(16, 1, 1, 0), EINVAL, '13.1 bhyve -c 16 on an 8-CPU host: exit 71');
      t.end();
    } finally {
      await lab.close();
    }
  }
});

test('model shutdown on main15: a VM with a thread inside VM_RUN is destroyed by close(), its memory files gone, without the 15.0 destroy drain', OPTS, async () => {
  const lab = await startLab('main15');
  const t = await createVm(lab, 'closing', spinGuest());
  await setRealMode(t, 0, 0x1000);
  assert.equal(await t.activate(0), 0);
  const running = t.run14(0);
  running.catch(() => undefined);
  await until(() => (lab.model.guestStats('closing')?.instructions[0] ?? 0) > 0, 'the guest running in VM_RUN');
  const memDir = path.join(lab.dir, 'mem');
  assert.notDeepEqual(fs.readdirSync(memDir), []);
  try {
    await lab.model.close();
    assert.deepEqual(fs.readdirSync(memDir), [], 'every segment file removed when close() resolves');
  } finally {
    await lab.close();
  }
});
