// FreeBSD errno numbers (sys/sys/errno.h). The model speaks FreeBSD's numbers on the wire; the
// bridge translates them for the host libc (docs/internals.md section 1).

export const Errno = {
  EPERM: 1,
  ENOENT: 2,
  ENXIO: 6,
  EBADF: 9,
  ENOMEM: 12,
  EFAULT: 14,
  EBUSY: 16,
  EEXIST: 17,
  ENODEV: 19,
  EINVAL: 22,
  ENOTTY: 25,
  ENOSPC: 28,
  ERANGE: 34,
  EALREADY: 37,
  ENAMETOOLONG: 63,
  ENOTCAPABLE: 93,
  ECAPMODE: 94,
} as const;

const NAMES = new Map<number, string>(Object.entries(Errno).map(([name, n]) => [n, name]));

/** 'EBUSY' for 16, 'errno 99' for a number the model never produces. */
export function errnoName(errno: number): string {
  return NAMES.get(errno) ?? `errno ${errno}`;
}

/** A kernel function's error return: becomes `-errno` in the REPLY frame. */
export class KernelError extends Error {
  constructor(
    readonly errno: number,
    detail?: string,
  ) {
    super(detail === undefined ? errnoName(errno) : `${errnoName(errno)}: ${detail}`);
  }
}

/**
 * The calling thread went away (its connection closed, or the model is shutting down) while
 * the call was in progress: the call unwinds without a reply, as a killed thread's system call
 * does (thread_check_susp returning an error in vm_handle_rendezvous / vm_handle_suspend).
 */
export class CallAborted extends Error {
  constructor() {
    super('the calling thread is gone');
  }
}

export function fail(errno: number, detail?: string): never {
  throw new KernelError(errno, detail);
}
