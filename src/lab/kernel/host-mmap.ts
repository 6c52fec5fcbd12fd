// The model's own shared mapping of a guest memory file: libc mmap(2) through koffi, so that
// the interpreter reads and writes the same pages that the bhyve models map through the bridge
// (MAP_SHARED on one file). All koffi declarations of the kernel model live here.

import { koffi } from '../../ffi/koffi';
import fs from 'node:fs';

const PROT_READ = 0x1;
const PROT_WRITE = 0x2;
const MAP_SHARED = 0x01;
/** (void *)-1 as koffi returns it. */
const MAP_FAILED = (1n << 64n) - 1n;

type MmapFn = (addr: null, len: number, prot: number, flags: number, fd: number, offset: number) => unknown;
type MunmapFn = (addr: unknown, len: number) => number;

interface Libc {
  readonly mmap: MmapFn;
  readonly munmap: MunmapFn;
}

let libc: Libc | null = null;

function loadLibc(): Libc {
  if (libc === null) {
    const lib = koffi.load('libc.so.6');
    libc = {
      mmap: lib.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, int64_t off)') as MmapFn,
      munmap: lib.func('int munmap(void *addr, size_t len)') as MunmapFn,
    };
  }
  return libc;
}

/**
 * The largest view the model takes of a mapping: an ArrayBuffer of Node 20 holds at most
 * buffer.constants.MAX_LENGTH (4 GiB) bytes, and koffi aborts the process rather than fail
 * beyond it. A segment can be larger (vm_setup_memory makes 4 GB + highmem for more than 3 GB):
 * the whole file is mapped and shared, the model's own view stops here. The interpreter only
 * reads guest-physical memory from 0 through the lowmem mapping (at most 3 GB).
 */
export const MAX_VIEW_BYTES = 2 ** 32 - 4096;

export interface HostMapping {
  /** The file's first MAX_VIEW_BYTES (all of it when smaller), shared with every process that maps it. */
  readonly bytes: Uint8Array;
  /** munmap(2). The caller must drop every view of `bytes` first. */
  unmap(): void;
}

/** Creates (or truncates) `path` to `len` bytes and maps it read-write, shared. */
export function createSharedFile(path: string, len: number): HostMapping {
  const calls = loadLibc();
  const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_CREAT | fs.constants.O_TRUNC, 0o600);
  let pointer: unknown;
  try {
    fs.ftruncateSync(fd, len);
    pointer = calls.mmap(null, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  } finally {
    fs.closeSync(fd);
  }
  if (pointer === null || koffi.address(pointer) === MAP_FAILED) {
    throw new Error(`mmap of ${path} (${len} bytes) failed`);
  }
  const bytes = new Uint8Array(koffi.view(pointer, Math.min(len, MAX_VIEW_BYTES)));
  let mapped = true;
  return {
    bytes,
    unmap(): void {
      if (!mapped) return;
      mapped = false;
      calls.munmap(pointer, len);
    },
  };
}
