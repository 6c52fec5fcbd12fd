// VmmDevice: the daemon's own view of /dev/vmm/NAME. One koffi implementation over a
// configurable system-call library: libc.so.7 on FreeBSD, the lab's libvmmlab_bridge.so in the
// lab (which serves the same symbols). All koffi declarations of the daemon live here.
import { koffi } from '../ffi/koffi';
import os from 'node:os';
import { REQ13 } from '../abi/ioctls';
import { cpusetFromBytes } from '../abi/cpuset';
import { CpusetWhich } from '../abi/enums';
import { VM_ACTIVATE_CPU, VM_CPUSET } from '../abi/structs';

export type CpusetKind = 'active' | 'suspended' | 'debug';

export interface VmmDevice {
  readonly library: string;
  /** Opens /dev/vmm/NAME read-write; throws VmmError. */
  openVm(name: string): VmHandle;
  /** sysctlbyname for an integer, or null when the name does not exist here. */
  sysctlInt(name: string): number | null;
}

export interface VmHandle {
  readonly name: string;
  readonly fd: number;
  activateCpu(vcpu: number): void;
  suspendCpu(vcpu: number): void;
  resumeCpu(vcpu: number): void;
  cpus(which: CpusetKind, cpusetBytes: number): number[];
  close(): void;
}

/** A failed system call, with the errno name for logs and messages. */
export class VmmError extends Error {
  constructor(
    readonly operation: string,
    readonly errno: number,
  ) {
    super(`${operation}: ${errnoName(errno)}`);
  }
  get code(): string {
    return errnoName(this.errno);
  }
}

const ERRNO_NAMES = new Map<number, string>(Object.entries(os.constants.errno).map(([name, n]) => [n, name]));
// ENOTCAPABLE and ECAPMODE exist only on FreeBSD; the lab bridge reports them with FreeBSD's
// numbers (docs/internals.md section 1), which Linux uses for unrelated socket errors.
ERRNO_NAMES.set(93, 'ENOTCAPABLE');
ERRNO_NAMES.set(94, 'ECAPMODE');
export function errnoName(errno: number): string {
  return ERRNO_NAMES.get(errno) ?? `errno ${errno}`;
}

const O_RDWR = 2;
const O_CLOEXEC = os.platform() === 'freebsd' ? 0x00100000 : 0o2000000;

interface LibcCalls {
  open: (path: string, flags: number, mode: number) => number;
  close: (fd: number) => number;
  ioctl: (fd: number, request: number, arg: Buffer | null) => number;
  /** oldp and oldlenp (a size_t) as buffers or NULL, newp as a buffer or NULL. */
  sysctlbyname: ((name: string, oldp: Buffer | null, oldlenp: Buffer | null, newp: Buffer | null, newlen: number) => number) | null;
  mmap: (addr: null, len: number, prot: number, flags: number, fd: number, offset: number) => unknown;
  munmap: (addr: unknown, len: number) => number;
}

function bind(libraryPath: string): LibcCalls {
  const lib = koffi.load(libraryPath);
  let sysctlbyname: LibcCalls['sysctlbyname'] = null;
  try {
    sysctlbyname = lib.func(
      'int sysctlbyname(const char *name, void *oldp, void *oldlenp, const void *newp, size_t newlen)',
    ) as LibcCalls['sysctlbyname'];
  } catch {
    sysctlbyname = null; // glibc has no sysctlbyname; the lab bridge and FreeBSD's libc do.
  }
  return {
    open: lib.func('int open(const char *path, int flags, int mode)') as LibcCalls['open'],
    close: lib.func('int close(int fd)') as LibcCalls['close'],
    // ioctl is variadic in C; a fixed pointer third argument has the same x86-64 SysV ABI.
    ioctl: lib.func('int ioctl(int fd, unsigned long request, void *arg)') as LibcCalls['ioctl'],
    sysctlbyname,
    mmap: lib.func('void *mmap(void *addr, size_t len, int prot, int flags, int fd, long offset)') as LibcCalls['mmap'],
    munmap: lib.func('int munmap(void *addr, size_t len)') as LibcCalls['munmap'],
  };
}

/** sysctlbyname read of at most maxBytes: the value, or null when the name cannot be read. */
function sysctlRead(calls: LibcCalls, name: string, maxBytes: number): Buffer | null {
  if (!calls.sysctlbyname) return null;
  const value = Buffer.alloc(maxBytes);
  const length = Buffer.alloc(8);
  length.writeBigUInt64LE(BigInt(maxBytes));
  if (calls.sysctlbyname(name, value, length, null, 0) !== 0) return null;
  return value.subarray(0, Math.min(maxBytes, Number(length.readBigUInt64LE(0))));
}

const CPUSET_WHICH: Readonly<Record<CpusetKind, number>> = {
  active: CpusetWhich.ACTIVE,
  suspended: CpusetWhich.SUSPENDED,
  debug: CpusetWhich.DEBUG,
};

class KoffiVmHandle implements VmHandle {
  private closed = false;
  constructor(
    private readonly calls: LibcCalls,
    readonly name: string,
    readonly fd: number,
  ) {}

  private vcpuIoctl(operation: string, request: number, vcpu: number): void {
    const arg = VM_ACTIVATE_CPU.encode({ vcpuid: vcpu });
    if (this.calls.ioctl(this.fd, request, arg) !== 0) {
      throw new VmmError(`${operation}(${this.name}, vcpu ${vcpu})`, koffi.errno());
    }
  }

  activateCpu(vcpu: number): void {
    this.vcpuIoctl('VM_ACTIVATE_CPU', REQ13.VM_ACTIVATE_CPU, vcpu);
  }
  suspendCpu(vcpu: number): void {
    this.vcpuIoctl('VM_SUSPEND_CPU', REQ13.VM_SUSPEND_CPU, vcpu);
  }
  resumeCpu(vcpu: number): void {
    this.vcpuIoctl('VM_RESUME_CPU', REQ13.VM_RESUME_CPU, vcpu);
  }

  cpus(which: CpusetKind, cpusetBytes: number): number[] {
    const set = Buffer.alloc(cpusetBytes);
    const arg = VM_CPUSET.encode({ which: CPUSET_WHICH[which], cpusetsize: cpusetBytes, cpus: BigInt(koffi.address(set)) });
    if (this.calls.ioctl(this.fd, REQ13.VM_GET_CPUS, arg) !== 0) {
      throw new VmmError(`VM_GET_CPUS(${this.name}, ${which}, ${cpusetBytes} bytes)`, koffi.errno());
    }
    return cpusetFromBytes(set);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.calls.close(this.fd);
  }
}

class KoffiVmmDevice implements VmmDevice {
  private readonly calls: LibcCalls;
  constructor(readonly library: string) {
    this.calls = bind(library);
  }

  openVm(name: string): VmHandle {
    const fd = this.calls.open(`/dev/vmm/${name}`, O_RDWR | O_CLOEXEC, 0);
    if (fd < 0) throw new VmmError(`open(/dev/vmm/${name})`, koffi.errno());
    return new KoffiVmHandle(this.calls, name, fd);
  }

  sysctlInt(name: string): number | null {
    const value = sysctlRead(this.calls, name, 8);
    if (value === null || value.length < 4) return null;
    return value.length >= 8 ? Number(value.readBigInt64LE(0)) : value.readInt32LE(0);
  }
}

/**
 * The system calls of the kernel probe (kernel-probe.ts), which makes a VM of its own: each call
 * answers an errno name instead of throwing, because a refusal (ENOTTY, ERANGE, EINVAL) is
 * itself the answer the probe asks for. One instance per thread that uses it (the probe's
 * worker binds its own).
 */
export interface VmmSyscalls {
  readonly library: string;
  /** open(2) read-write, close-on-exec: the fd, or the errno name. */
  open(path: string): number | string;
  close(fd: number): void;
  /** ioctl(2): null on success, else the errno name. */
  ioctl(fd: number, request: number, arg: Buffer | null): string | null;
  /** sysctlbyname(3) read of at most maxBytes: the value, or null. */
  sysctlRead(name: string, maxBytes: number): Buffer | null;
  /** sysctlbyname(3) write of a NUL-terminated string (hw.vmm.create): null, else the errno name. */
  sysctlWriteString(name: string, value: string): string | null;
  /**
   * Maps `length` bytes of fd at `offset` shared and read-write (a VM's guest memory, as
   * libvmmapi's vm_map_gpa does), copies `bytes` in at `at`, unmaps: null, else the errno name.
   */
  writeShared(fd: number, offset: number, length: number, at: number, bytes: Uint8Array): string | null;
}

const PROT_READ = 1;
const PROT_WRITE = 2;
/** MAP_SHARED: 1 on FreeBSD and Linux. */
const MAP_SHARED = 1;
const MAP_FAILED = 0xffffffffffffffffn;

class KoffiVmmSyscalls implements VmmSyscalls {
  private readonly calls: LibcCalls;
  constructor(readonly library: string) {
    this.calls = bind(library);
  }

  open(path: string): number | string {
    const fd = this.calls.open(path, O_RDWR | O_CLOEXEC, 0);
    return fd < 0 ? errnoName(koffi.errno()) : fd;
  }

  close(fd: number): void {
    this.calls.close(fd);
  }

  ioctl(fd: number, request: number, arg: Buffer | null): string | null {
    return this.calls.ioctl(fd, request, arg) === 0 ? null : errnoName(koffi.errno());
  }

  sysctlRead(name: string, maxBytes: number): Buffer | null {
    return sysctlRead(this.calls, name, maxBytes);
  }

  sysctlWriteString(name: string, value: string): string | null {
    if (!this.calls.sysctlbyname) return 'ENOENT';
    const bytes = Buffer.from(`${value}\0`, 'utf8');
    return this.calls.sysctlbyname(name, null, null, bytes, bytes.length) === 0 ? null : errnoName(koffi.errno());
  }

  writeShared(fd: number, offset: number, length: number, at: number, bytes: Uint8Array): string | null {
    if (at < 0 || at + bytes.length > length) return 'EINVAL';
    const mapping = this.calls.mmap(null, length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset);
    if (mapping === null || koffi.address(mapping) === MAP_FAILED) return errnoName(koffi.errno());
    try {
      new Uint8Array(koffi.view(mapping, length)).set(bytes, at);
    } finally {
      this.calls.munmap(mapping, length);
    }
    return null;
  }
}

export function openVmmSyscalls(library: string): VmmSyscalls {
  return new KoffiVmmSyscalls(library);
}

/** The default system-call library of the platform the daemon runs on. */
export function defaultSyscallLibrary(): string {
  return os.platform() === 'freebsd' ? 'libc.so.7' : 'libc.so.6';
}

export function openVmmDevice(library: string): VmmDevice {
  return new KoffiVmmDevice(library);
}
