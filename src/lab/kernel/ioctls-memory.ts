// Guest memory ioctls (vmm_dev.c alloc_memseg / get_memseg; vmm.c vm_alloc_memseg,
// vm_get_memseg, vm_mmap_memseg, vm_munmap_memseg, vm_mmap_getnext). Changes to the memory map
// freeze every vCPU first (vmmdev_ioctl's memsegs group).

import { VM_MEMMAP, VM_MEMSEG, VM_MUNMAP } from '../../abi/structs';
import { Errno, fail } from './errno';
import { safeNumber } from './guest-memory';
import { onVm, type IoctlHandler } from './ioctl-types';

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

export const MEMORY_IOCTLS: Readonly<Record<string, IoctlHandler>> = {
  VM_ALLOC_MEMSEG: onVm('freeze-all', ({ vm, arg }) => {
    const { segid, len, name } = VM_MEMSEG.decode(arg);
    const segName = segmentName(name);
    vm.memory.allocSegment(segid, safeNumber(len), segName);
  }),
  VM_GET_MEMSEG: onVm('none', ({ vm, arg }) => {
    const { segid } = VM_MEMSEG.decode(arg);
    const seg = vm.memory.getSegment(segid);
    const name = Buffer.alloc(16);
    if (seg.len !== 0 && !seg.sysmem) name.write(seg.name, 'latin1');
    VM_MEMSEG.encodeInto(arg, { len: BigInt(seg.len), name });
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
