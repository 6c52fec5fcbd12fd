// Open /dev/vmm/NAME files. A file belongs to the process that opened it (the HELLO pid of the
// connection that sent OPEN): the bridge opens one connection per thread, and every thread of
// that process may use the file, as with a file descriptor. Each file keeps its own capsicum
// limits. A file outlives its VM: after hw.vmm.destroy its ioctls fail with ENXIO, as on a
// destroyed cdev, until it is closed.

import { CapabilityLimits } from './capsicum';
import { Errno, fail } from './errno';
import type { Vm } from './vm';

/**
 * What an open file is: a VM's /dev/vmm/NAME, one of its device-memory nodes
 * /dev/vmm.io/NAME.SEG (vmm_dev.c devmemsw: mmap only), or /dev/vmmctl (vmmctlsw: ioctl only).
 */
export type FileKind = 'vm' | 'devmem' | 'ctl';

export interface OpenFile {
  readonly id: number;
  readonly pid: number;
  readonly kind: FileKind;
  /** The VM instance opened (null for /dev/vmmctl): after destroy calls get ENXIO. */
  readonly vm: Vm | null;
  /** The device-memory segment of a devmem node. */
  readonly segid?: number;
  readonly limits: CapabilityLimits;
}

export class FileTable {
  private readonly files = new Map<number, OpenFile>();
  private nextId = 1;

  open(pid: number, vm: Vm | null, kind: FileKind = 'vm', segid?: number): OpenFile {
    // File ids stay positive and within i32 (the REPLY's ret).
    const id = this.nextId;
    this.nextId = this.nextId >= 0x7fffffff ? 1 : this.nextId + 1;
    const file: OpenFile = { id, pid, kind, vm, ...(segid !== undefined ? { segid } : {}), limits: new CapabilityLimits() };
    this.files.set(id, file);
    return file;
  }

  /** EBADF for an id that is not open in this process. */
  get(pid: number, id: number): OpenFile {
    const file = this.files.get(id);
    if (file === undefined || file.pid !== pid) fail(Errno.EBADF, `file ${id}`);
    return file;
  }

  close(pid: number, id: number): void {
    this.get(pid, id);
    this.files.delete(id);
  }

  get size(): number {
    return this.files.size;
  }
}
