// Guest memory ioctls (vmm_dev.c alloc_memseg / get_memseg; vmm.c vm_alloc_memseg,
// vm_get_memseg, vm_mmap_memseg, vm_munmap_memseg, vm_mmap_getnext). Changes to the memory map
// freeze every vCPU first (vmmdev_ioctl's memsegs group).

import { segidTo15 } from '../../abi/enums';
import { VM_MEMMAP, VM_MEMSEG, VM_MEMSEG_15, VM_MUNMAP } from '../../abi/structs';
import { Errno, fail } from './errno';
import { safeNumber } from './guest-memory';
import { onVm, type IoctlHandler } from './ioctl-types';
import type { Vm } from './vm';

/**
 * vmm_dev.c alloc_memseg: a non-empty name makes device memory; copystr() into a
 * VM_MAX_SUFFIXLEN + 1 buffer fails with ENAMETOOLONG without a NUL; devfs (prep_devname)
 * refuses spaces and double quotes in the resulting vmm.io/VM.NAME device.
 */
function segmentName(raw: Buffer): string {
  if (raw[0] === 0) return '';
  const nul = raw.indexOf(0);
  if (nul < 0) fail(Errno.ENAMETOOLONG, 'memory segment name is not NUL-terminated');
  const name = raw.subarray(0, nul).toString('latin1');
  if (/[\s"]/.test(name)) fail(Errno.EINVAL, `memory segment name ${JSON.stringify(name)}`);
  return name;
}

/** sys/sys/domainset.h DOMAINSET_POLICY_INVALID: "no policy", what a NUMA-unaware caller passes. */
export const DOMAINSET_POLICY_INVALID = 0;
/**
 * The bounds of ds_mask_size (sys/dev/vmm/vmm_dev.c VM_ALLOC_MEMSEG): the kernel's
 * sizeof(domainset_t), a bitset of MAXMEMDOM (8 on amd64) bits in one long, and
 * DOMAINSET_MAXSIZE / NBBY with DOMAINSET_MAXSIZE 256 (sys/sys/_domainset.h, read_file id
 * 555533900). Userland's domainset_t is DOMAINSET_MAXSIZE bits, so a 15.0 libvmmapi passes 32.
 */
const KERNEL_DOMAINSET_BYTES = 8;
const DOMAINSET_MAXSIZE_BYTES = 256 / 8;

/** vmm_dev.c get_memseg: length 0 for a free slot; device memory returns its name. */
function getMemseg(vm: Vm, segid: number): { len: bigint; name: Buffer } {
  const seg = vm.memory.getSegment(segid);
  const name = Buffer.alloc(16);
  if (seg.len !== 0 && !seg.sysmem) name.write(seg.name, 'latin1');
  return { len: BigInt(seg.len), name };
}

export const MEMORY_IOCTLS: Readonly<Record<string, IoctlHandler>> = {
  VM_ALLOC_MEMSEG: onVm('freeze-all', ({ vm, arg }) => {
    const { segid, len, name } = VM_MEMSEG.decode(arg);
    const segName = segmentName(name);
    vm.memory.allocSegment(segid, safeNumber(len), segName);
  }),
  VM_GET_MEMSEG: onVm('none', ({ vm, arg }) => {
    const { segid } = VM_MEMSEG.decode(arg);
    VM_MEMSEG.encodeInto(arg, getMemseg(vm, segid));
  }),
  // sys/dev/vmm/vmm_dev.c VM_ALLOC_MEMSEG_14 / VM_GET_MEMSEG_14 (COMPAT_FREEBSD14): adjust_segid
  // first (every segid but VM_SYSMEM + 7), in place, so that GET copies the adjusted id back.
  VM_ALLOC_MEMSEG_14: onVm('freeze-all', ({ vm, arg }) => {
    const m = VM_MEMSEG.decode(arg);
    const segid = segidTo15(m.segid);
    VM_MEMSEG.encodeInto(arg, { segid });
    vm.memory.allocSegment(segid, safeNumber(m.len), segmentName(m.name));
  }),
  VM_GET_MEMSEG_14: onVm('none', ({ vm, arg }) => {
    const segid = segidTo15(VM_MEMSEG.decode(arg).segid);
    VM_MEMSEG.encodeInto(arg, { segid, ...getMemseg(vm, segid) });
  }),
  // sys/dev/vmm/vmm_dev.c VM_ALLOC_MEMSEG (15.0, guest NUMA): with ds_policy !=
  // DOMAINSET_POLICY_INVALID and a ds_mask, ERANGE for a mask size outside
  // [sizeof(domainset_t), DOMAINSET_MAXSIZE/NBBY], the mask copied in, and a policy the host
  // cannot satisfy is EINVAL (vm_alloc_memseg: domainset_empty_vm). The lab's host has one
  // memory domain, 0.
  VM_ALLOC_MEMSEG_15: onVm('freeze-all', async ({ vm, arg, ctx }) => {
    const m = VM_MEMSEG_15.decode(arg);
    if (m.ds_policy !== DOMAINSET_POLICY_INVALID && m.ds_mask !== 0n) {
      if (m.ds_mask_size < BigInt(KERNEL_DOMAINSET_BYTES) || m.ds_mask_size > BigInt(DOMAINSET_MAXSIZE_BYTES)) {
        fail(Errno.ERANGE, `ds_mask_size ${m.ds_mask_size}`);
      }
      // The whole mask is copied in; domainset_populate's checks of it are not modelled beyond
      // the host-domain test below.
      const mask = await ctx.copyin(m.ds_mask, Number(m.ds_mask_size));
      if (((mask[0] ?? 0) & 1) === 0) fail(Errno.EINVAL, 'the domain set has no domain of this host');
    }
    vm.memory.allocSegment(m.segid, safeNumber(m.len), segmentName(m.name));
  }),
  VM_GET_MEMSEG_15: onVm('none', ({ vm, arg }) => {
    const { segid } = VM_MEMSEG_15.decode(arg);
    VM_MEMSEG_15.encodeInto(arg, getMemseg(vm, segid));
  }),
  VM_MMAP_MEMSEG: onVm('freeze-all', ({ vm, arg }) => {
    const m = VM_MEMMAP.decode(arg);
    vm.memory.mapSegment(safeNumber(m.gpa), m.segid, safeNumber(m.segoff), safeNumber(m.len), m.prot, m.flags);
  }),
  VM_MUNMAP_MEMSEG: onVm('freeze-all', ({ vm, arg }) => {
    const { gpa, len } = VM_MUNMAP.decode(arg);
    vm.memory.unmapSegment(safeNumber(gpa), safeNumber(len));
  }),
  VM_MMAP_GETNEXT: onVm('none', ({ vm, arg }) => {
    const { gpa } = VM_MEMMAP.decode(arg);
    const m = vm.memory.nextMapping(gpa > BigInt(Number.MAX_SAFE_INTEGER) ? Number.MAX_SAFE_INTEGER : Number(gpa));
    VM_MEMMAP.encodeInto(arg, {
      gpa: BigInt(m.gpa),
      segid: m.segid,
      segoff: BigInt(m.segoff),
      len: BigInt(m.len),
      prot: m.prot,
      flags: m.flags,
    });
  }),
};
