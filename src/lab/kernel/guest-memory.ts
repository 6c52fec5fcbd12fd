// Guest memory of one VM: memory segments (vmm.c vm_alloc_memseg / vm_get_memseg), their
// mappings into the guest-physical address space (vm_mmap_memseg / vm_munmap_memseg /
// vm_mmap_getnext), and the lookup behind mmap(2) on /dev/vmm/NAME (vmm_dev.c
// vmmdev_mmap_single). Each segment is a file under $root/mem/, mapped shared by the model (for
// the interpreter) and by whoever mmaps the device through the bridge.

import fs from 'node:fs';
import path from 'node:path';
import { VmmConst } from '../../abi/enums';
import { Errno, fail } from './errno';
import { createSharedFile, type HostMapping } from './host-mmap';

const PAGE_SIZE = 4096;
/** vmm.c VM_MAX_MEMMAPS before the guest-NUMA change (15.0: 2 * VM_MAX_MEMSEGS, variant rules). */
export const VM_MAX_MEMMAPS = 8;
/** VM_PROT_ALL: read | write | execute. */
const VM_PROT_ALL = 0x7;
const PROT_EXEC = 0x4;
const FOUR_GB = 0x1_0000_0000;

export interface MemSegment {
  readonly segid: number;
  readonly len: number;
  /** A named segment is device memory (bootrom, framebuffer): not mappable through /dev/vmm/NAME. */
  readonly sysmem: boolean;
  readonly name: string;
  readonly path: string;
  mapping: HostMapping | null;
}

export interface MemMap {
  readonly gpa: number;
  readonly segid: number;
  readonly segoff: number;
  readonly len: number;
  readonly prot: number;
  readonly flags: number;
}

function isPageAligned(n: number): boolean {
  return n % PAGE_SIZE === 0;
}

/** A u64 from an ioctl argument as a number; values beyond 2^53 cannot describe lab memory. */
export function safeNumber(value: bigint): number {
  if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) fail(Errno.EINVAL, `value 0x${value.toString(16)} out of range`);
  return Number(value);
}

/** Where a VM's memory lives and which vm_mmap_memseg rules apply. */
export interface GuestMemoryLayout {
  /** $root/mem: the segment files. */
  readonly dir: string;
  readonly filePrefix: string;
  /** VM_MAX_MEMSEGS. */
  readonly maxMemsegs: number;
  /** VM_MAX_MEMMAPS. */
  readonly maxMemmaps: number;
  /** $root/dev/vmm.io: the devmem device nodes (vmm_dev.c devmem_create_cdev, "vmm.io/%s.%s"). */
  readonly devmemDir: string;
  readonly vmName: string;
}

/** A guest-physical region the interpreter can fetch from outside low memory (the boot ROM). */
export interface HighRegion {
  readonly base: number;
  readonly bytes: Uint8Array;
}

export class GuestMemory {
  private readonly segments: (MemSegment | undefined)[];
  private readonly maps: (MemMap | undefined)[];
  private lowmemView: Uint8Array | null = null;
  private highView: HighRegion | null | undefined;
  private destroyed = false;
  private readonly dir: string;
  private readonly filePrefix: string;
  private readonly maxMemsegs: number;

  constructor(private readonly layout: GuestMemoryLayout) {
    this.dir = layout.dir;
    this.filePrefix = layout.filePrefix;
    this.maxMemsegs = layout.maxMemsegs;
    this.segments = new Array<MemSegment | undefined>(layout.maxMemsegs);
    this.maps = new Array<MemMap | undefined>(layout.maxMemmaps);
  }

  /** $root/dev/vmm.io/VM.SEG of a named segment. */
  devmemPath(segName: string): string {
    return path.join(this.layout.devmemDir, `${this.layout.vmName}.${segName}`);
  }

  /** The segment a devmem node stands for (open of /dev/vmm.io/VM.SEG), or undefined. */
  devmemSegment(segName: string): number | undefined {
    const seg = this.segments.find((sg) => sg !== undefined && !sg.sysmem && sg.name === segName);
    return seg?.segid;
  }

  /**
   * vmm_dev.c devmem_mmap_single: EINVAL for PROT_EXEC or an empty range, EINVAL when the range
   * ends past the segment; else the segment's backing file at the same offset.
   */
  resolveDevmem(segid: number, first: number, len: number, prot: number): { path: string; offset: number } {
    const last = first + len;
    if ((prot & PROT_EXEC) !== 0 || first < 0 || first >= last) fail(Errno.EINVAL, 'bad devmem mmap range or PROT_EXEC');
    const seg = this.segments[segid];
    if (seg === undefined || seg.sysmem) fail(Errno.ENXIO, 'the device memory segment is gone');
    if (seg.len < last) fail(Errno.EINVAL, `devmem mmap past the segment (${seg.len} bytes)`);
    return { path: seg.path, offset: first };
  }

  /** vmm.c vm_alloc_memseg, with vmm_dev.c alloc_memseg's name handling before it. */
  allocSegment(segid: number, len: number, name: string): void {
    if (!Number.isInteger(segid) || segid < 0 || segid >= this.maxMemsegs) fail(Errno.EINVAL, `segid ${segid}`);
    if (len === 0 || !isPageAligned(len)) fail(Errno.EINVAL, `segment length ${len}`);
    const sysmem = name === '';
    const existing = this.segments[segid];
    if (existing !== undefined) {
      if (existing.len === len && existing.sysmem === sysmem) fail(Errno.EEXIST, `segment ${segid} exists`);
      fail(Errno.EINVAL, `segment ${segid} exists with another size or kind`);
    }
    const file = path.join(this.dir, `${this.filePrefix}.seg${segid}`);
    let mapping: HostMapping;
    try {
      mapping = createSharedFile(file, len);
    } catch (error) {
      fail(Errno.ENOMEM, error instanceof Error ? error.message : String(error));
    }
    this.segments[segid] = { segid, len, sysmem, name, path: file, mapping };
    // vmm_dev.c alloc_memseg -> devmem_create_cdev: the node /dev/vmm.io/VM.NAME appears.
    if (!sysmem) {
      fs.mkdirSync(this.layout.devmemDir, { recursive: true });
      fs.writeFileSync(this.devmemPath(name), '', { mode: 0o600 });
    }
  }

  /** vmm.c vm_get_memseg: length 0 for a free slot. */
  getSegment(segid: number): { len: number; sysmem: boolean; name: string } {
    if (!Number.isInteger(segid) || segid < 0 || segid >= this.maxMemsegs) fail(Errno.EINVAL, `segid ${segid}`);
    const seg = this.segments[segid];
    return seg === undefined ? { len: 0, sysmem: false, name: '' } : { len: seg.len, sysmem: seg.sysmem, name: seg.name };
  }

  /**
   * vmm.c (13.x, 14.x) / vmm_mem.c (15.0) vm_mmap_memseg: EINVAL for prot 0 or beyond
   * VM_PROT_ALL and for any flag but VM_MEMMAP_F_WIRED: VM_MEMMAP_F_IOMMU is EINVAL from userland
   * in every version read, 13-era vmm.c through 15.0 vmm_mem.c (find_string ids 62717996,
   * 1044002529, 377661104, 62754595748).
   */
  mapSegment(gpa: number, segid: number, segoff: number, len: number, prot: number, flags: number): void {
    if (prot === 0 || (prot & ~VM_PROT_ALL) !== 0) fail(Errno.EINVAL, `prot 0x${prot.toString(16)}`);
    if ((flags & ~VmmConst.VM_MEMMAP_F_WIRED) !== 0) fail(Errno.EINVAL, `flags 0x${flags.toString(16)}`);
    if (!Number.isInteger(segid) || segid < 0 || segid >= this.maxMemsegs) fail(Errno.EINVAL, `segid ${segid}`);
    const seg = this.segments[segid];
    if (seg === undefined) fail(Errno.EINVAL, `segment ${segid} not allocated`);
    const last = segoff + len;
    if (segoff >= last || last > seg.len) fail(Errno.EINVAL, 'range outside the segment');
    if (!isPageAligned(gpa) || !isPageAligned(segoff) || len === 0 || !isPageAligned(len)) fail(Errno.EINVAL, 'unaligned');
    const slot = this.maps.findIndex((m) => m === undefined);
    if (slot < 0) fail(Errno.ENOSPC, 'no free memory map slot');
    // vm_map_find() into the guest vmspace at a fixed address fails on an overlap.
    for (const m of this.maps) {
      if (m !== undefined && gpa < m.gpa + m.len && m.gpa < gpa + len) fail(Errno.EFAULT, 'overlapping mapping');
    }
    this.maps[slot] = { gpa, segid, segoff, len, prot, flags };
    this.lowmemView = null;
    this.highView = undefined;
  }

  /** vmm.c vm_munmap_memseg: only an exact, non-IOMMU mapping is removed. */
  unmapSegment(gpa: number, len: number): void {
    const slot = this.maps.findIndex(
      (m) => m !== undefined && m.gpa === gpa && m.len === len && (m.flags & VmmConst.VM_MEMMAP_F_IOMMU) === 0,
    );
    if (slot < 0) fail(Errno.EINVAL, 'no such mapping');
    this.maps[slot] = undefined;
    this.lowmemView = null;
    this.highView = undefined;
  }

  /** Every mapping, lowest gpa first (the lab's view; tests and diagnostics). */
  mappings(): MemMap[] {
    return this.maps.filter((m): m is MemMap => m !== undefined).sort((a, b) => a.gpa - b.gpa);
  }

  /** vmm.c vm_mmap_getnext: the mapping with the lowest gpa >= `gpa`. */
  nextMapping(gpa: number): MemMap {
    let best: MemMap | undefined;
    for (const m of this.maps) {
      if (m === undefined || m.len === 0 || m.gpa < gpa) continue;
      if (best === undefined || m.gpa < best.gpa) best = m;
    }
    if (best === undefined) fail(Errno.ENOENT, 'no mapping at or above the address');
    return best;
  }

  /** vmm_dev.c vmmdev_mmap_single: which file and offset back guest-physical [first, first+len). */
  resolveMmap(first: number, len: number, prot: number): { path: string; offset: number } {
    const last = first + len;
    if ((prot & PROT_EXEC) !== 0 || first < 0 || first >= last) fail(Errno.EINVAL, 'bad mmap range or PROT_EXEC');
    let gpa = 0;
    for (;;) {
      const m = this.nextMapping(gpa); // ENOENT when the walk runs out, as in the kernel's loop
      if (first >= m.gpa && last <= m.gpa + m.len) {
        const seg = this.segments[m.segid];
        if (seg === undefined || !seg.sysmem) fail(Errno.EINVAL, 'not system memory');
        return { path: seg.path, offset: m.segoff + (first - m.gpa) };
      }
      gpa = m.gpa + m.len;
    }
  }

  /** Guest-physical memory from address 0 as the interpreter sees it (the sysmem map at gpa 0). */
  lowmem(): Uint8Array {
    if (this.lowmemView !== null) return this.lowmemView;
    let view: Uint8Array = new Uint8Array(0);
    if (!this.destroyed) {
      const m = this.maps.find((x) => x !== undefined && x.gpa === 0);
      const seg = m === undefined ? undefined : this.segments[m.segid];
      if (m !== undefined && seg !== undefined && seg.sysmem && seg.mapping !== null) {
        view = seg.mapping.bytes.subarray(m.segoff, m.segoff + m.len);
      }
    }
    this.lowmemView = view;
    return view;
  }

  /**
   * The mapping that ends at 4 GB, where a boot ROM sits (bhyve bootrom.c: gpa = 4 GB - size),
   * readable by the interpreter for instruction fetches at the reset vector. Guest memory is
   * otherwise only the system memory at gpa 0 (lowmem).
   */
  highRegion(): HighRegion | null {
    if (this.highView !== undefined) return this.highView;
    let region: HighRegion | null = null;
    if (!this.destroyed) {
      const top = this.maps.find((m) => m !== undefined && m.gpa + m.len === FOUR_GB);
      const seg = top === undefined ? undefined : this.segments[top.segid];
      if (top !== undefined && seg !== undefined && seg.mapping !== null) {
        region = { base: top.gpa, bytes: seg.mapping.bytes.subarray(top.segoff, top.segoff + top.len) };
      }
    }
    this.highView = region;
    return region;
  }

  /**
   * vmm.c vm_cleanup(destroy=false) for VM_REINIT: system memory stays mapped across a reset,
   * device memory mappings are removed (the guest may relocate them), and every segment stays
   * (vm_free_memseg only on destroy). Read in vm_cleanup of 13.x and 14.x (read_file ids 337928842,
   * 180193527) and 15.0's vmm_mem.c vm_mem_cleanup (id 377661104); sysmem_mapping is "the
   * mapping's segment is system memory", i.e. unnamed (vmm_dev.c alloc_memseg).
   */
  reinit(): void {
    for (let i = 0; i < this.maps.length; i++) {
      const m = this.maps[i];
      if (m !== undefined && this.segments[m.segid]?.sysmem !== true) this.maps[i] = undefined;
    }
    this.lowmemView = null;
    this.highView = undefined;
  }

  /** vm_cleanup(destroy=true): unmaps and removes every segment file. */
  destroy(): void {
    this.destroyed = true;
    this.lowmemView = null;
    this.highView = null;
    this.maps.fill(undefined);
    for (const seg of this.segments) {
      if (seg === undefined) continue;
      seg.mapping?.unmap();
      seg.mapping = null;
      fs.rmSync(seg.path, { force: true });
      // vmmdev_destroy: the devmem cdevs go before the VM's own.
      if (!seg.sysmem) fs.rmSync(this.devmemPath(seg.name), { force: true });
    }
    this.segments.fill(undefined);
  }
}
