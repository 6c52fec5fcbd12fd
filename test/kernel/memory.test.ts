// Guest memory: memory segments, their guest-physical mappings, mmap(2) on the device, and the
// sharing between the model's interpreter and whoever maps the backing file.

import assert from 'node:assert/strict';
import fs from 'node:fs';
import { test } from 'node:test';
import { VmExitcode } from '../../src/abi/enums';
import { VM_MEMMAP, VM_MEMSEG, VM_MUNMAP } from '../../src/abi/structs';
import { Assembler } from '../../src/lab/guests/asm';
import { GUEST_BASE, MEM_BYTES, createVm, setRealMode, spinGuest, startLab, type VmThread } from './harness';

const OPTS = { timeout: 5_000 };
const ENOENT = -2;
const EFAULT = -14;
const EEXIST = -17;
const EINVAL = -22;
const ENOSPC = -28;
const ENAMETOOLONG = -63;

function segName(name: string): Buffer {
  const b = Buffer.alloc(16);
  b.write(name, 'latin1');
  return b;
}

async function alloc(t: VmThread, segid: number, len: number, name = ''): Promise<number> {
  return (await t.ioctl('VM_ALLOC_MEMSEG', VM_MEMSEG.encode({ segid, len: BigInt(len), name: segName(name) }))).ret;
}

async function map(t: VmThread, gpa: number, segid: number, segoff: number, len: number, prot = 7, flags = 0): Promise<number> {
  const arg = VM_MEMMAP.encode({ gpa: BigInt(gpa), segid, segoff: BigInt(segoff), len: BigInt(len), prot, flags });
  return (await t.ioctl('VM_MMAP_MEMSEG', arg)).ret;
}

test('vmm.c vm_alloc_memseg: EINVAL for a bad segid or length, EEXIST for the same segment again, EINVAL for a different one; vmm_dev.c get_memseg', OPTS, async () => {
  const lab = await startLab('legacy13');
  try {
    const t = await createVm(lab, 'segs', spinGuest());
    assert.equal(await alloc(t, 0, MEM_BYTES), EEXIST);
    assert.equal(await alloc(t, 0, 2 * MEM_BYTES), EINVAL);
    assert.equal(await alloc(t, 3, 4096), EINVAL, 'VM_MAX_MEMSEGS is 3 on the 13-era kernel');
    assert.equal(await alloc(t, -1, 4096), EINVAL);
    assert.equal(await alloc(t, 1, 0), EINVAL);
    assert.equal(await alloc(t, 1, 4097), EINVAL);
    assert.equal((await t.ioctl('VM_ALLOC_MEMSEG', VM_MEMSEG.encode({ segid: 1, len: 4096n, name: Buffer.alloc(16, 0x41) }))).ret, ENAMETOOLONG);
    assert.equal(await alloc(t, 1, 8192, 'bootrom'), 0);
    const get = async (segid: number) => VM_MEMSEG.decode((await t.ioctl('VM_GET_MEMSEG', VM_MEMSEG.encode({ segid }))).out);
    assert.equal((await get(0)).len, BigInt(MEM_BYTES));
    assert.ok((await get(0)).name.every((b) => b === 0), 'system memory has no name');
    assert.equal((await get(1)).name.toString('latin1').replace(/\0+$/, ''), 'bootrom');
    assert.equal((await get(2)).len, 0n, 'a free slot has length 0');
    t.end();
  } finally {
    await lab.close();
  }
});

test('vmm.c vm_mmap_memseg / vm_munmap_memseg / vm_mmap_getnext: alignment, range, prot and flags checks, overlaps, slots, exact unmap', OPTS, async () => {
  const lab = await startLab('fixed14');
  try {
    const t = await createVm(lab, 'maps', spinGuest());
    assert.equal(await map(t, 0x200000, 0, 0x1000, 0x1000 + 1), EINVAL, 'unaligned length');
    assert.equal(await map(t, 0x200001, 0, 0, 0x1000), EINVAL, 'unaligned gpa');
    assert.equal(await map(t, 0x200000, 0, MEM_BYTES - 0x1000, 0x2000), EINVAL, 'beyond the segment');
    assert.equal(await map(t, 0x200000, 0, 0, 0x1000, 8), EINVAL, 'prot beyond VM_PROT_ALL');
    assert.equal(await map(t, 0x200000, 0, 0, 0x1000, 7, 4), EINVAL, 'unknown flag');
    assert.equal(await map(t, 0x200000, 0, 0, 0x1000, 7, 2), EINVAL, 'VM_MEMMAP_F_IOMMU is the kernel\'s own flag');
    assert.equal(await map(t, 0x200000, 0, 0, 0x1000, 0), EINVAL, 'prot 0');
    assert.equal(await map(t, 0x200000, 2, 0, 0x1000), EINVAL, 'segment not allocated');
    assert.equal(await map(t, 0x1000, 0, 0, 0x1000), EFAULT, 'overlaps the mapping at 0');
    const getnext = async (gpa: number) => t.ioctl('VM_MMAP_GETNEXT', VM_MEMMAP.encode({ gpa: BigInt(gpa) }));
    for (let i = 1; i < 8; i++) assert.equal(await map(t, 0x100000 * (i + 1), 0, 0, 0x1000), 0);
    assert.equal(await map(t, 0x1000000, 0, 0, 0x1000), ENOSPC, 'VM_MAX_MEMMAPS mappings');
    const next = await getnext(0x150000);
    assert.equal(next.ret, 0);
    assert.equal(VM_MEMMAP.decode(next.out).gpa, 0x200000n);
    assert.equal((await getnext(0x900000)).ret, ENOENT);
    assert.equal((await t.ioctl('VM_MUNMAP_MEMSEG', VM_MUNMAP.encode({ gpa: 0x200000n, len: 0x2000n }))).ret, EINVAL, 'not an exact mapping');
    assert.equal((await t.ioctl('VM_MUNMAP_MEMSEG', VM_MUNMAP.encode({ gpa: 0x200000n, len: 0x1000n }))).ret, 0);
    assert.equal(VM_MEMMAP.decode((await getnext(0x150000)).out).gpa, 0x300000n);
    t.end();
  } finally {
    await lab.close();
  }
});

test('vmm_dev.c vmmdev_mmap_single: MMAP names the backing file and offset; ENOENT outside every mapping; EINVAL for PROT_EXEC or device memory', OPTS, async () => {
  const lab = await startLab('window');
  try {
    const t = await createVm(lab, 'mm', spinGuest());
    const where = await t.client.mmap(t.file, 0x3000, 0x2000);
    assert.equal(where.ret, 0);
    assert.equal(where.offset, 0x3000n);
    assert.ok(fs.existsSync(where.path));
    assert.equal(fs.statSync(where.path).size, MEM_BYTES);
    assert.equal((await t.client.mmap(t.file, MEM_BYTES, 0x1000)).ret, ENOENT);
    assert.equal((await t.client.mmap(t.file, MEM_BYTES - 0x1000, 0x2000)).ret, ENOENT, 'crosses the end of the mapping');
    assert.equal((await t.client.mmap(t.file, 0, 0x1000, 0x7)).ret, EINVAL, 'PROT_EXEC');
    assert.equal(await alloc(t, 1, 0x10000, 'bootrom'), 0);
    assert.equal(await map(t, 0xfff00000, 1, 0, 0x10000, 5), 0);
    assert.equal((await t.client.mmap(t.file, 0xfff00000, 0x1000)).ret, EINVAL, 'device memory is not mapped through /dev/vmm/NAME');
    t.end();
  } finally {
    await lab.close();
  }
});

// VM_REINIT frees exactly what vm_cleanup(destroy=false) frees: the mappings of segments that are
// not system memory, and nothing else; every segment stays (vm_free_memseg only on destroy).
// Read in sys/amd64/vmm/vmm.c vm_cleanup of 13.x (read_file id 337928842) and 14.x (id 180193527)
// and in 15.0's sys/dev/vmm/vmm_mem.c vm_mem_cleanup (id 377661104): "Device memory can be
// relocated by the guest (e.g. using PCI BARs) so those mappings are removed on a VM reset".
test('guest memory is one shared file: the guest\'s stores are visible in it, and VM_REINIT keeps system memory mapped but drops device memory (vmm.c vm_cleanup)', OPTS, async () => {
  const lab = await startLab('fixed14');
  try {
    const asm = new Assembler().movImm8('al', 0x5a).store(0x100, 'al').movImm8('al', 0x21).outImmAl(0xe9);
    const t = await createVm(lab, 'shared', asm.bytes());
    await setRealMode(t, 0, 0x1000);
    assert.equal(await t.activate(0), 0);
    assert.equal((await t.run(0)).exit?.exitcode, VmExitcode.INOUT);
    const where = await t.client.mmap(t.file, GUEST_BASE + 0x100, 1);
    const fd = fs.openSync(where.path, 'r');
    const byte = Buffer.alloc(1);
    fs.readSync(fd, byte, 0, 1, Number(where.offset));
    fs.closeSync(fd);
    assert.equal(byte[0], 0x5a);

    assert.equal(await alloc(t, 1, 0x10000, 'bootrom'), 0);
    assert.equal(await map(t, 0xfff00000, 1, 0, 0x10000, 5), 0);
    assert.equal(await t.suspend(1), 0);
    assert.equal((await t.run(0)).exit?.exitcode, VmExitcode.SUSPENDED);
    assert.equal(await t.reinit(), 0);
    const next = VM_MEMMAP.decode((await t.ioctl('VM_MMAP_GETNEXT', VM_MEMMAP.encode({ gpa: 0n }))).out);
    assert.equal(next.gpa, 0n, 'system memory stays mapped across a reset');
    assert.equal((await t.ioctl('VM_MMAP_GETNEXT', VM_MEMMAP.encode({ gpa: 0x100000n }))).ret, ENOENT, 'the device mapping is gone');
    // The segments themselves stay, system memory and device memory alike.
    const bootrom = VM_MEMSEG.decode((await t.ioctl('VM_GET_MEMSEG', VM_MEMSEG.encode({ segid: 1 }))).out);
    assert.equal(bootrom.len, 0x10000n, 'the bootrom segment survives the reset');
    assert.equal(bootrom.name.subarray(0, 8).toString('latin1'), 'bootrom\0');
    assert.ok(VM_MEMSEG.decode((await t.ioctl('VM_GET_MEMSEG', VM_MEMSEG.encode({ segid: 0 }))).out).len > 0n);
    t.end();
  } finally {
    await lab.close();
  }
});
