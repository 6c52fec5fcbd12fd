// Test harness for the kernel model: a model on a temporary socket, fake caller memory for
// COPYIN/COPYOUT, a typed wrapper around the raw ioctls, and small guests.

import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after } from 'node:test';
import { CpusetWhich, VmCap, VmReg, X2apicState } from '../../src/abi/enums';
import { REQ13, REQ14, requestOf, type AbiName } from '../../src/abi/ioctls';
import {
  VM_ACTIVATE_CPU,
  VM_CAPABILITY,
  VM_CPU_TOPOLOGY,
  VM_CPUSET,
  VM_EXIT,
  VM_MEMMAP,
  VM_MEMSEG,
  VM_MEMSEG_15,
  VM_REGISTER,
  VM_RUN_13,
  VM_RUN_14,
  VM_SEG_DESC,
  VM_SUSPEND,
  VM_X2APIC,
  type VmExit,
} from '../../src/abi/structs';
import { cpusetFromBytes } from '../../src/abi/cpuset';
import { Assembler } from '../../src/lab/guests/asm';
import { connectKernel, type CallerMemory, type KernelClient } from '../../src/lab/kernel/client';
import { startKernelModel, type KernelModel, type KernelModelOptions, type KernelVariant } from '../../src/lab/kernel/server';
import { variantRules } from '../../src/lab/kernel/variant';

export const GUEST_BASE = 0x10000;
export const MEM_BYTES = 1 << 20;
export const AP_VECTOR = 0x20;
export const CONSOLE = 0xe9;

export interface Lab {
  readonly model: KernelModel;
  readonly dir: string;
  readonly abi: AbiName;
  close(): Promise<void>;
}

const openLabs = new Set<Lab>();

// A test that fails while a call hangs (by design, in the hang tests) must not keep the file's
// process alive: whatever a test left open is closed when the file's tests are done.
after(async () => {
  for (const lab of [...openLabs]) await lab.close();
});

export async function startLab(variant: KernelVariant, options: Partial<KernelModelOptions> = {}): Promise<Lab> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmmk-'));
  const model = await startKernelModel({ socketPath: path.join(dir, 'k.sock'), root: dir, variant, sliceInstructions: 500, ...options });
  const lab: Lab = {
    model,
    dir,
    abi: variantRules(variant).abi,
    async close() {
      openLabs.delete(lab);
      await model.close();
      fs.rmSync(dir, { recursive: true, force: true });
    },
  };
  openLabs.add(lab);
  return lab;
}

/** A sparse fake address space: what the bridge's process_vm_readv/writev would reach. */
export class FakeMemory implements CallerMemory {
  private readonly regions: { addr: bigint; bytes: Buffer }[] = [];
  private next = 0x10000n;

  alloc(init: Buffer | number): bigint {
    const bytes = typeof init === 'number' ? Buffer.alloc(init) : Buffer.from(init);
    const addr = this.next;
    this.next += BigInt(bytes.length + 0x1000);
    this.regions.push({ addr, bytes });
    return addr;
  }

  bytes(addr: bigint): Buffer {
    const region = this.regions.find((r) => r.addr === addr);
    if (region === undefined) throw new Error(`no region at ${addr}`);
    return region.bytes;
  }

  private locate(addr: bigint, len: number): { bytes: Buffer; offset: number } {
    for (const r of this.regions) {
      if (addr >= r.addr && addr + BigInt(len) <= r.addr + BigInt(r.bytes.length)) return { bytes: r.bytes, offset: Number(addr - r.addr) };
    }
    throw new Error(`bad address ${addr}`);
  }

  read(addr: bigint, len: number): Buffer {
    const { bytes, offset } = this.locate(addr, len);
    return Buffer.from(bytes.subarray(offset, offset + len));
  }

  write(addr: bigint, data: Buffer): void {
    const { bytes, offset } = this.locate(addr, data.length);
    data.copy(bytes, offset);
  }
}

export interface RunResult {
  ret: number;
  exit: VmExit | null;
}

/** One "thread" of a process using one open VM file, with typed ioctls. */
export class VmThread {
  private constructor(
    readonly client: KernelClient,
    readonly file: number,
    readonly abi: AbiName,
    /** sizeof(cpuset_t) of the model's kernel: the VM_GET_CPUS size a 14.0 bhyve would pass. */
    readonly cpusetBytes: number,
  ) {}

  static async open(lab: Lab, name: string, pid = 1000): Promise<VmThread> {
    const client = await connectKernel(lab.model.socketPath, { pid });
    const file = await client.open(name);
    if (file < 0) throw new Error(`open ${name}: ${file}`);
    return new VmThread(client, file, lab.abi, lab.model.config.kernelCpusetBytes);
  }

  /** Another thread of the same process on the same file. */
  async sibling(lab: Lab): Promise<VmThread> {
    const client = await connectKernel(lab.model.socketPath, { pid: this.client.pid });
    return new VmThread(client, this.file, this.abi, this.cpusetBytes);
  }

  req(name: string): number {
    return requestOf(this.abi, name);
  }

  async ioctl(name: string, arg: Buffer, memory?: CallerMemory): Promise<{ ret: number; out: Buffer }> {
    return this.client.ioctl(this.file, this.req(name), arg, memory);
  }

  async activate(vcpuid: number): Promise<number> {
    return (await this.ioctl('VM_ACTIVATE_CPU', VM_ACTIVATE_CPU.encode({ vcpuid }))).ret;
  }
  async suspendCpu(vcpuid: number): Promise<number> {
    return (await this.ioctl('VM_SUSPEND_CPU', VM_ACTIVATE_CPU.encode({ vcpuid }))).ret;
  }
  async resumeCpu(vcpuid: number): Promise<number> {
    return (await this.ioctl('VM_RESUME_CPU', VM_ACTIVATE_CPU.encode({ vcpuid }))).ret;
  }
  async suspend(how: number): Promise<number> {
    return (await this.ioctl('VM_SUSPEND', VM_SUSPEND.encode({ how }))).ret;
  }
  async reinit(): Promise<number> {
    return (await this.ioctl('VM_REINIT', Buffer.alloc(0))).ret;
  }
  async setRegister(cpuid: number, regnum: number, regval: bigint | number): Promise<number> {
    return (await this.ioctl('VM_SET_REGISTER', VM_REGISTER.encode({ cpuid, regnum, regval: BigInt(regval) }))).ret;
  }
  async getRegister(cpuid: number, regnum: number): Promise<{ ret: number; value: bigint }> {
    const r = await this.ioctl('VM_GET_REGISTER', VM_REGISTER.encode({ cpuid, regnum }));
    return { ret: r.ret, value: r.ret === 0 ? VM_REGISTER.decode(r.out).regval : 0n };
  }
  async setDesc(cpuid: number, regnum: number, base: number, limit: number, access: number): Promise<number> {
    return (await this.ioctl('VM_SET_SEGMENT_DESCRIPTOR', VM_SEG_DESC.encode({ cpuid, regnum, base: BigInt(base), limit, access }))).ret;
  }
  async setCap(cpuid: number, captype: number, capval: number): Promise<number> {
    return (await this.ioctl('VM_SET_CAPABILITY', VM_CAPABILITY.encode({ cpuid, captype, capval }))).ret;
  }
  async getCap(cpuid: number, captype: number): Promise<{ ret: number; value: number }> {
    const r = await this.ioctl('VM_GET_CAPABILITY', VM_CAPABILITY.encode({ cpuid, captype }));
    return { ret: r.ret, value: r.ret === 0 ? VM_CAPABILITY.decode(r.out).capval : -1 };
  }
  async setX2apic(cpuid: number, state: number): Promise<number> {
    return (await this.ioctl('VM_SET_X2APIC_STATE', VM_X2APIC.encode({ cpuid, state }))).ret;
  }
  async setTopology(sockets: number, cores: number, threads: number, maxcpus: number): Promise<number> {
    return (await this.ioctl('VM_SET_TOPOLOGY', VM_CPU_TOPOLOGY.encode({ sockets, cores, threads, maxcpus }))).ret;
  }
  async getTopology(): Promise<{ ret: number; sockets: number; cores: number; threads: number; maxcpus: number }> {
    const r = await this.ioctl('VM_GET_TOPOLOGY', Buffer.alloc(0));
    return { ret: r.ret, ...VM_CPU_TOPOLOGY.decode(r.ret === 0 ? r.out : Buffer.alloc(8)) };
  }
  /** VM_GET_CPUS through a fake user buffer of `cpusetsize` bytes (pre-filled with 0xAA). */
  async getCpus(which: number, cpusetsize: number): Promise<{ ret: number; ids: number[]; bytes: Buffer }> {
    const memory = new FakeMemory();
    const cpus = memory.alloc(Buffer.alloc(Math.max(cpusetsize, 1), 0xaa));
    const r = await this.ioctl('VM_GET_CPUS', VM_CPUSET.encode({ which, cpusetsize, cpus }), memory);
    const bytes = memory.bytes(cpus);
    return { ret: r.ret, ids: r.ret === 0 ? cpusetFromBytes(bytes.subarray(0, cpusetsize)) : [], bytes };
  }
  async active(): Promise<number[]> {
    return (await this.getCpus(CpusetWhich.ACTIVE, this.cpusetBytes)).ids;
  }

  /** The 144-byte VM_RUN (13.1 VM_RUN, early-2023 native, 14.0 VM_RUN_13): same number everywhere. */
  async run13(cpuid: number): Promise<RunResult> {
    const r = await this.client.ioctl(this.file, REQ13.VM_RUN, VM_RUN_13.encode({ cpuid }));
    return { ret: r.ret, exit: r.ret === 0 ? VM_EXIT.decode(VM_RUN_13.decode(r.out).vm_exit) : null };
  }

  /** The 32-byte 14.0 VM_RUN with the exit and the cpuset in fake user memory. */
  async run14(cpuid: number, cpusetsize = 128): Promise<RunResult & { cpuset: Buffer }> {
    const memory = new FakeMemory();
    const exitAddr = memory.alloc(VM_EXIT.size);
    const cpusetAddr = memory.alloc(Buffer.alloc(cpusetsize, 0xaa));
    const arg = VM_RUN_14.encode({ cpuid, cpuset: cpusetAddr, cpusetsize: BigInt(cpusetsize), vm_exit: exitAddr });
    const r = await this.client.ioctl(this.file, REQ14.VM_RUN, arg, memory);
    return { ret: r.ret, exit: r.ret === 0 ? VM_EXIT.decode(memory.bytes(exitAddr)) : null, cpuset: memory.bytes(cpusetAddr) };
  }

  /** The VM_RUN a 13.1 bhyve issues on this kernel (144 bytes everywhere). */
  run(cpuid: number): Promise<RunResult> {
    return this.run13(cpuid);
  }

  end(): void {
    this.client.end();
  }
}

/** hw.vmm.create, memory (segment 0 at gpa 0), the guest image at 0x10000. */
export async function createVm(lab: Lab, name: string, guest: Uint8Array, pid = 1000): Promise<VmThread> {
  const control = await connectKernel(lab.model.socketPath, { pid });
  const created = await control.sysctl('hw.vmm.create', name);
  control.end();
  if (created.ret !== 0) throw new Error(`hw.vmm.create ${name}: ${created.ret}`);
  const t = await VmThread.open(lab, name, pid);
  const memseg = lab.abi === '15.0' ? VM_MEMSEG_15 : VM_MEMSEG;
  const alloc = await t.ioctl('VM_ALLOC_MEMSEG', memseg.encode({ segid: 0, len: BigInt(MEM_BYTES) }));
  if (alloc.ret !== 0) throw new Error(`VM_ALLOC_MEMSEG: ${alloc.ret}`);
  const map = await t.ioctl('VM_MMAP_MEMSEG', VM_MEMMAP.encode({ gpa: 0n, segid: 0, segoff: 0n, len: BigInt(MEM_BYTES), prot: 7, flags: 0 }));
  if (map.ret !== 0) throw new Error(`VM_MMAP_MEMSEG: ${map.ret}`);
  await writeGuest(t, GUEST_BASE, guest);
  return t;
}

/** Writes into guest memory through the backing file the MMAP frame names (a shared mapping). */
export async function writeGuest(t: VmThread, gpa: number, bytes: Uint8Array): Promise<void> {
  const where = await t.client.mmap(t.file, gpa, bytes.length);
  if (where.ret !== 0) throw new Error(`mmap: ${where.ret}`);
  const fd = fs.openSync(where.path, 'r+');
  try {
    fs.writeSync(fd, bytes, 0, bytes.length, Number(where.offset));
  } finally {
    fs.closeSync(fd);
  }
}

/** bhyve's real-mode start state (internals.md section 4): CS = sel, base = sel << 4, IP 0, x2APIC on. */
export async function setRealMode(t: VmThread, vcpu: number, selector: number, withX2apic = true): Promise<void> {
  const results = [
    await t.setCap(vcpu, VmCap.UNRESTRICTED_GUEST, 1),
    await t.setDesc(vcpu, VmReg.CS, selector << 4, 0xffff, 0x9b),
    await t.setRegister(vcpu, VmReg.CS, selector),
    await t.setDesc(vcpu, VmReg.DS, selector << 4, 0xffff, 0x93),
    await t.setRegister(vcpu, VmReg.DS, selector),
    await t.setDesc(vcpu, VmReg.SS, selector << 4, 0xffff, 0x93),
    await t.setRegister(vcpu, VmReg.SS, selector),
    await t.setRegister(vcpu, VmReg.RSP, 0xfff0),
    await t.setRegister(vcpu, VmReg.RIP, 0),
    await t.setRegister(vcpu, VmReg.RFLAGS, 2),
    await t.setX2apic(vcpu, withX2apic ? X2apicState.ENABLED : X2apicState.DISABLED),
  ];
  if (results.some((r) => r !== 0)) throw new Error(`setRealMode(${vcpu}): ${results.join(',')}`);
}

/** Start state of an AP woken by SIPI `vector` (spinup_ap): CS = vector << 8, IP 0. */
export function setApStart(t: VmThread, vcpu: number, vector = AP_VECTOR): Promise<void> {
  return setRealMode(t, vcpu, vector << 8);
}

// ---- Guests ----

/** ICR low words (conventions: INIT level assert, STARTUP with the vector). */
export const ICR_INIT = 0x4500;
export const icrStartup = (vector: number): number => 0x4600 | vector;

/** Sends one IPI: ECX = 0x830, EDX = dest, EAX = icrLow, wrmsr. */
export function ipi(asm: Assembler, dest: number, icrLow: number): Assembler {
  return asm.movImm32('ecx', 0x830).movImm32('edx', dest).movImm32('eax', icrLow).wrmsr();
}

/** Writes `char` to the console port. */
export function mark(asm: Assembler, char: string): Assembler {
  return asm.movImm8('al', char.charCodeAt(0)).outImmAl(CONSOLE);
}

/** BSP: INIT + STARTUP to `dest`, console 'D', then spin. AP trampoline at AP_VECTOR << 12. */
export function bootOneApGuest(dest: number, repeat = 1): Uint8Array {
  const asm = new Assembler();
  for (let i = 0; i < repeat; i++) {
    ipi(asm, dest, ICR_INIT);
    ipi(asm, dest, icrStartup(AP_VECTOR));
    mark(asm, 'D');
  }
  asm.label('spin').pause().jmp('spin');
  return asm.bytes();
}

/** The AP trampoline: console 'A', then `cli; hlt` forever. */
export function apTrampoline(): Uint8Array {
  const asm = new Assembler();
  mark(asm, 'A');
  asm.label('halt').cli().hlt().jmp('halt');
  return asm.bytes();
}

/** A guest that spins forever. */
export function spinGuest(): Uint8Array {
  return new Assembler().label('spin').pause().jmp('spin').bytes();
}

/** Resolves with the promise's value, or with `timedOut` after `ms`. */
export async function within<T, U>(promise: Promise<T>, ms: number, timedOut: U): Promise<T | U> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<U>((resolve) => {
    timer = setTimeout(() => resolve(timedOut), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export const TIMED_OUT = Symbol('timed out');

export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Waits until `check()` holds (polled every 5 ms); throws naming `what` after `ms`. */
export async function until(check: () => boolean, what: string, ms = 2000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${ms} ms`);
    await delay(5);
  }
}

/**
 * A parker: a thread looping VM_RUN on a debug-suspended vCPU, as 14.0 bhyve parks its APs
 * (and the product's parker threads do). Stops on `stop()` or on a non-DEBUG exit / error.
 */
export function parker(t: VmThread, vcpu: number): { exits: number[]; done: Promise<RunResult>; stop(): void } {
  const exits: number[] = [];
  let stopped = false;
  const done = (async (): Promise<RunResult> => {
    for (;;) {
      const r = await t.run(vcpu);
      if (r.exit !== null) exits.push(r.exit.exitcode);
      if (r.ret !== 0 || r.exit === null || stopped || r.exit.exitcode !== 21 /* DEBUG */) return r;
      await delay(1); // vmexit_debug's usleep(1000) (D39174)
    }
  })();
  return {
    exits,
    done,
    stop() {
      stopped = true;
    },
  };
}
