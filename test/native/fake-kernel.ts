// A small fake of the vmm kernel model for the bridge's end-to-end tests: a Unix-socket server that
// speaks docs/internals.md section 2 and keeps just enough VM state (device files, memory files,
// active/debug sets, registers, a script of VM_RUN exits) to drive the bridge, labtest and the
// bhyve models through their start-up sequences. It records every frame it receives.
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { buildGuestRom } from '../../src/lab/guests/rom';
import { spawn } from 'node:child_process';
import { REQ13, REQ14, ioctlByRequest } from '../../src/abi/ioctls';
import { FrameType, encodeCopyin, encodeCopyout, encodeFrame, encodeReply } from '../../src/lab/kernel/protocol';

/** The frame types of docs/internals.md section 2, as the kernel model defines them. */
export const T = FrameType;

/** FreeBSD errno numbers (sys/errno.h). */
export const FBSD = { EPERM: 1, ENOENT: 2, EACCES: 13, EFAULT: 14, EBUSY: 16, EEXIST: 17, EINVAL: 22, ERANGE: 34, EAGAIN: 35, EALREADY: 37, ENOTCAPABLE: 93 } as const;

export const EXIT = {
  INOUT: 0,
  HLT: 5,
  MTRAP: 6,
  PAUSE: 7,
  INST_EMUL: 9,
  SPINUP_AP: 10,
  SUSPENDED: 14,
  TASK_SWITCH: 16,
  DEBUG: 21,
  BPT: 23,
  IPI: 24,
} as const;
export const SUSPEND = { RESET: 1, POWEROFF: 2, HALT: 3, TRIPLEFAULT: 4 } as const;
export const APIC_DELMODE_INIT = 0x500;
export const APIC_DELMODE_STARTUP = 0x600;

/** One recorded frame from a bridge. */
export interface Received {
  conn: number;
  type: number;
  body: Buffer;
}

/** One recorded ioctl. */
export interface IoctlRecord {
  conn: number;
  file: number;
  request: number;
  name: string;
  argAddr: bigint;
  arg: Buffer;
  vcpu: number;
}

/** A VM_RUN exit the script hands out. */
export interface ExitSpec {
  exitcode: number;
  /** u.inout / u.spinup_ap / u.suspended / u.ipi fields */
  port?: number;
  bytes?: number;
  out?: boolean;
  eax?: number;
  vcpu?: number;
  rip?: bigint;
  how?: number;
  mode?: number;
  vector?: number;
  /** IPI destination set (vCPU ids). */
  cpus?: number[];
  instLength?: number;
  /** u.inst_emul: the faulting gpa, the instruction bytes (vie.inst, num_valid), vie.decoded. */
  gpa?: bigint;
  inst?: number[];
  decoded?: boolean;
  /** u.task_switch: the new TSS selector, ext, reason (TSR_*), paging.cpu_mode. */
  tsssel?: number;
  ext?: number;
  reason?: number;
  cpuMode?: number;
  /** Hand this exit out only once vCPU `vcpu` has entered VM_RUN `runs` times (an ordering, not a delay). */
  afterRunsOf?: { vcpu: number; runs: number };
}

export interface ReplyOverride {
  ret: number;
  payload?: Buffer;
}

interface VmState {
  name: string;
  active: Set<number>;
  debug: Set<number>;
  suspended: number;
  regs: Map<string, bigint>;
  descs: Map<string, Buffer>;
  memLen: number;
  memFile: string;
  ioctlLimit: Set<number> | null;
  /** Device-memory segments by segid: name, length and backing file (vmm_dev.c devmem). */
  devmem: Map<number, { name: string; len: number; file: string }>;
}

/** A script entry: the exits vCPU `vcpu` gets from successive VM_RUNs. */
export type RunScript = Map<number, ExitSpec[]>;

export interface FakeKernelOptions {
  /** Per-request override, consulted before the default behaviour. */
  override?: (rec: IoctlRecord) => ReplyOverride | undefined;
  /** Exits per vCPU; after a suspend every VM_RUN returns SUSPENDED. */
  script?: RunScript;
  /** What GET_TOPOLOGY reports as maxcpus. */
  maxcpus?: number;
  /** OPEN of an existing VM fails with this FreeBSD errno (e.g. a devfs rule hides it). */
  failOpen?: number;
}

const RUN13 = REQ13.VM_RUN;
const RUN14 = REQ14.VM_RUN;

class Reader {
  private chunks: Buffer[] = [];
  private have = 0;
  private waiter: (() => void) | null = null;
  closed = false;

  push(b: Buffer): void {
    this.chunks.push(b);
    this.have += b.length;
    this.wake();
  }
  end(): void {
    this.closed = true;
    this.wake();
  }
  private wake(): void {
    const w = this.waiter;
    this.waiter = null;
    if (w) w();
  }
  async read(n: number): Promise<Buffer | null> {
    while (this.have < n) {
      if (this.closed) return null;
      await new Promise<void>((resolve) => (this.waiter = resolve));
    }
    const all = Buffer.concat(this.chunks);
    this.chunks = [all.subarray(n)];
    this.have -= n;
    return all.subarray(0, n);
  }
  async frame(): Promise<{ type: number; body: Buffer } | null> {
    const hdr = await this.read(8);
    if (!hdr) return null;
    const len = hdr.readUInt32LE(0);
    const body = await this.read(len - 4);
    if (!body) return null;
    return { type: hdr.readUInt32LE(4), body };
  }
}

function reply(ret: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  return encodeFrame(T.REPLY, encodeReply(ret, payload));
}

export function ioctlName(request: number): string {
  return ioctlByRequest('13.1', request)?.name ?? ioctlByRequest('14.0', request)?.name ?? `0x${request.toString(16)}`;
}

/** A 136-byte struct vm_exit. */
export function encodeExit(e: ExitSpec, layout: 13 | 14): Buffer {
  const b = Buffer.alloc(136);
  b.writeInt32LE(e.exitcode, 0);
  b.writeInt32LE(e.instLength ?? 0, 4);
  b.writeBigUInt64LE(e.rip ?? 0n, 8);
  const u = 16;
  switch (e.exitcode) {
    case EXIT.INST_EMUL: {
      // u.inst_emul: gpa@0, paging@32 (24 bytes), vie@56: inst[15], num_valid@15, decoded@56.
      b.writeBigUInt64LE(e.gpa ?? 0n, u);
      b.writeInt32LE(e.cpuMode ?? 0, u + 32 + 12);
      const inst = e.inst ?? [];
      Buffer.from(inst).copy(b, u + 56);
      b.writeUInt8(inst.length, u + 56 + 15);
      b.writeUInt8(e.decoded ? 1 : 0, u + 56 + 56);
      break;
    }
    case EXIT.TASK_SWITCH:
      // struct vm_task_switch: tsssel@0 (u16), ext@4, errcode@8, errcode_valid@12, reason@16, paging@24.
      b.writeUInt16LE(e.tsssel ?? 0, u);
      b.writeInt32LE(e.ext ?? 0, u + 4);
      b.writeInt32LE(e.reason ?? 0, u + 16);
      b.writeInt32LE(e.cpuMode ?? 0, u + 24 + 12);
      break;
    case EXIT.BPT:
      b.writeInt32LE(e.instLength ?? 1, u);
      break;
    case EXIT.INOUT: {
      const bytes = e.bytes ?? 1;
      const flags = (bytes & 7) | (e.out === false ? 1 << 3 : 0);
      b.writeUInt16LE(flags, u);
      b.writeUInt16LE(e.port ?? 0, u + 2);
      b.writeUInt32LE(e.eax ?? 0, u + 4);
      break;
    }
    case EXIT.SPINUP_AP:
      b.writeInt32LE(e.vcpu ?? 0, u);
      b.writeBigUInt64LE(e.rip ?? 0n, u + 8);
      b.writeBigUInt64LE(0n, 8);
      break;
    case EXIT.SUSPENDED:
      b.writeInt32LE(e.how ?? 0, u);
      break;
    case EXIT.IPI:
      b.writeUInt32LE(e.mode ?? 0, u);
      b.writeUInt8(e.vector ?? 0, u + 4);
      if (layout === 13) {
        for (const cpu of e.cpus ?? []) {
          const off = u + 8 + Math.floor(cpu / 8);
          b.writeUInt8(b.readUInt8(off) | (1 << cpu % 8), off);
        }
      }
      break;
    default:
      break;
  }
  return b;
}

function cpusetBytes(cpus: Iterable<number>, size: number): Buffer {
  const b = Buffer.alloc(size);
  for (const cpu of cpus) {
    if (cpu / 8 < size) b.writeUInt8(b.readUInt8(Math.floor(cpu / 8)) | (1 << cpu % 8), Math.floor(cpu / 8));
  }
  return b;
}

/** The bridge's process went away in the middle of a call (e.g. bhyve exited). */
class PeerGone extends Error {}

class Connection {
  readonly reader = new Reader();
  constructor(
    readonly id: number,
    readonly socket: net.Socket,
    private readonly record: (r: Received) => void,
  ) {}
  private async answer(type: number): Promise<Buffer> {
    const f = await this.reader.frame();
    if (!f) throw new PeerGone();
    if (f.type !== type) throw new Error(`fake kernel: expected frame type ${type}`);
    this.record({ conn: this.id, type: f.type, body: f.body });
    return f.body;
  }
  send(b: Buffer): void {
    this.socket.write(b);
  }
  async copyout(addr: bigint, data: Buffer): Promise<number> {
    this.send(encodeFrame(T.COPYOUT, encodeCopyout(addr, data)));
    return (await this.answer(T.COPYOUT_DONE)).readInt32LE(0);
  }
  async copyin(addr: bigint, len: number): Promise<{ err: number; data: Buffer }> {
    this.send(encodeFrame(T.COPYIN, encodeCopyin(addr, len)));
    const b = await this.answer(T.COPYIN_DATA);
    return { err: b.readInt32LE(0), data: b.subarray(4) };
  }
}

export class FakeKernel {
  readonly received: Received[] = [];
  readonly ioctls: IoctlRecord[] = [];
  readonly vms = new Map<string, VmState>();
  readonly socketPath: string;
  private readonly files = new Map<number, string>();
  private nextFile = 1;
  private nextConn = 1;
  private readonly server: net.Server;
  private readonly sockets = new Set<net.Socket>();

  private constructor(
    readonly root: string,
    private readonly opts: FakeKernelOptions,
  ) {
    this.socketPath = path.join(root, 'kernel.sock');
    fs.mkdirSync(path.join(root, 'dev', 'vmm'), { recursive: true });
    fs.mkdirSync(path.join(root, 'mem'), { recursive: true });
    this.server = net.createServer((socket) => this.accept(socket));
  }

  static async start(root: string, opts: FakeKernelOptions = {}): Promise<FakeKernel> {
    const k = new FakeKernel(root, opts);
    await new Promise<void>((resolve, reject) => {
      k.server.once('error', reject);
      k.server.listen(k.socketPath, () => resolve());
    });
    return k;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  /** Frames of one type, in arrival order. */
  framesOf(type: number): Received[] {
    return this.received.filter((r) => r.type === type);
  }

  createVm(name: string): VmState {
    const vm: VmState = {
      name,
      active: new Set(),
      debug: new Set(),
      suspended: 0,
      regs: new Map(),
      descs: new Map(),
      memLen: 0,
      memFile: path.join(this.root, 'mem', `${name}.sysmem`),
      ioctlLimit: null,
      devmem: new Map(),
    };
    this.vms.set(name, vm);
    fs.writeFileSync(path.join(this.root, 'dev', 'vmm', name), '');
    return vm;
  }

  private accept(socket: net.Socket): void {
    const conn = new Connection(this.nextConn++, socket, (r) => this.received.push(r));
    this.sockets.add(socket);
    socket.on('data', (b: Buffer) => conn.reader.push(b));
    socket.on('close', () => {
      conn.reader.end();
      this.sockets.delete(socket);
    });
    socket.on('error', () => conn.reader.end());
    void this.serve(conn);
  }

  private async serve(conn: Connection): Promise<void> {
    for (;;) {
      const f = await conn.reader.frame();
      if (!f) return;
      this.received.push({ conn: conn.id, type: f.type, body: f.body });
      try {
        await this.handle(conn, f.type, f.body);
      } catch (err) {
        if (!(err instanceof PeerGone)) process.stderr.write(`fake kernel: ${(err as Error).message}\n`);
        conn.socket.destroy();
        return;
      }
    }
  }

  /** Open device-memory nodes: file -> segid. */
  private readonly devmemFiles = new Map<number, number>();

  private vmOfFile(file: number): VmState | undefined {
    const name = this.files.get(file);
    return name === undefined ? undefined : this.vms.get(name);
  }

  private async handle(conn: Connection, type: number, body: Buffer): Promise<void> {
    switch (type) {
      case T.HELLO:
        return; // no reply
      case T.OPEN: {
        const nul = body.indexOf(0);
        if (nul >= 0) {
          // /dev/vmm.io/VM.SEG: a device-memory node (docs/internals.md section 2).
          const node = body.subarray(0, nul).toString('utf8').replace(/^\/dev\/vmm\.io\//, '');
          for (const vm of this.vms.values()) {
            for (const [segid, seg] of vm.devmem) {
              if (node !== `${vm.name}.${seg.name}`) continue;
              const file = this.nextFile++;
              this.files.set(file, vm.name);
              this.devmemFiles.set(file, segid);
              return conn.send(reply(file));
            }
          }
          return conn.send(reply(-FBSD.ENOENT));
        }
        const name = body.toString('utf8');
        if (!this.vms.has(name)) return conn.send(reply(-FBSD.ENOENT));
        if (this.opts.failOpen !== undefined) return conn.send(reply(-this.opts.failOpen));
        const file = this.nextFile++;
        this.files.set(file, name);
        return conn.send(reply(file));
      }
      case T.CLOSE:
        this.files.delete(body.readUInt32LE(0));
        return conn.send(reply(0));
      case T.CAP_RIGHTS:
        return conn.send(reply(0));
      case T.CAP_IOCTLS: {
        const vm = this.vmOfFile(body.readUInt32LE(0));
        const n = body.readUInt32LE(4);
        const list = new Set<number>();
        for (let i = 0; i < n; i++) list.add(Number(body.readBigUInt64LE(8 + i * 8)));
        if (vm) vm.ioctlLimit = list;
        return conn.send(reply(0));
      }
      case T.SYSCTL:
        return conn.send(this.sysctl(body));
      case T.MMAP: {
        const vm = this.vmOfFile(body.readUInt32LE(0));
        if (!vm) return conn.send(reply(-FBSD.EINVAL));
        const offset = body.readBigUInt64LE(8);
        const p = Buffer.alloc(8);
        p.writeBigUInt64LE(offset, 0);
        const segid = this.devmemFiles.get(body.readUInt32LE(0));
        const backing = segid === undefined ? vm.memFile : vm.devmem.get(segid)!.file;
        return conn.send(reply(0, Buffer.concat([p, Buffer.from(path.relative(this.root, backing))])));
      }
      case T.IOCTL:
        return this.ioctl(conn, body);
      default:
        throw new Error(`unexpected frame type ${type}`);
    }
  }

  private sysctl(body: Buffer): Buffer {
    const newlen = body.readUInt32LE(0);
    const nul = body.indexOf(0, 4);
    const name = body.subarray(4, nul).toString('utf8');
    const value = body.subarray(nul + 1, nul + 1 + newlen).toString('utf8');
    if (name === 'hw.vmm.create') {
      if (this.vms.has(value)) return reply(-FBSD.EEXIST);
      this.createVm(value);
      return reply(0);
    }
    if (name === 'hw.vmm.destroy') {
      if (!this.vms.delete(value)) return reply(-FBSD.ENOENT);
      fs.rmSync(path.join(this.root, 'dev', 'vmm', value), { force: true });
      return reply(0);
    }
    const v = Buffer.alloc(4);
    v.writeUInt32LE(this.opts.maxcpus ?? 16, 0);
    return reply(0, v);
  }

  private async ioctl(conn: Connection, body: Buffer): Promise<void> {
    const file = body.readUInt32LE(0);
    const request = Number(body.readBigUInt64LE(8));
    const argAddr = body.readBigUInt64LE(16);
    const arg = Buffer.from(body.subarray(24));
    const rec: IoctlRecord = {
      conn: conn.id,
      file,
      request,
      name: ioctlName(request),
      argAddr,
      arg,
      vcpu: arg.length >= 4 ? arg.readInt32LE(0) : -1,
    };
    this.ioctls.push(rec);
    const vm = this.vmOfFile(file);
    if (!vm) return conn.send(reply(-FBSD.EINVAL));
    if (vm.ioctlLimit && !vm.ioctlLimit.has(request)) return conn.send(reply(-FBSD.ENOTCAPABLE));
    const o = this.opts.override?.(rec);
    if (o) return conn.send(reply(o.ret, o.payload));
    conn.send(await this.defaultIoctl(conn, vm, rec));
  }

  /**
   * The next exit of a vCPU: SUSPENDED once the VM is suspended, DEBUG while debug-suspended,
   * else its script; a vCPU with nothing left to do waits (as in the guest's idle loop) until
   * the VM is suspended.
   */
  private async nextExit(vm: VmState, vcpu: number): Promise<ExitSpec> {
    for (let waited = 0; ; waited += 5) {
      if (vm.suspended !== 0) return { exitcode: EXIT.SUSPENDED, how: vm.suspended };
      if (vm.debug.has(vcpu)) {
        await new Promise((r) => setTimeout(r, 2));
        return { exitcode: EXIT.DEBUG };
      }
      const queue = this.opts.script?.get(vcpu);
      const gate = queue?.[0]?.afterRunsOf;
      const e = gate && this.runsOf(gate.vcpu) < gate.runs ? undefined : queue?.shift();
      if (e) {
        if (e.exitcode === EXIT.SUSPENDED) vm.suspended = e.how ?? SUSPEND.HALT;
        return e;
      }
      if (waited > 20000) return { exitcode: EXIT.SUSPENDED, how: SUSPEND.HALT };
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  private runsOf(vcpu: number): number {
    return this.ioctls.filter((x) => x.name === 'VM_RUN' && x.vcpu === vcpu).length;
  }

  private async defaultIoctl(conn: Connection, vm: VmState, rec: IoctlRecord): Promise<Buffer> {
    const { request, arg } = rec;
    const regKey = (a: Buffer): string => `${a.readInt32LE(0)}:${a.readInt32LE(4)}`;
    switch (request) {
      case REQ13.VM_ACTIVATE_CPU:
        if (vm.active.has(rec.vcpu)) return reply(-FBSD.EBUSY);
        vm.active.add(rec.vcpu);
        return reply(0);
      case REQ13.VM_SUSPEND_CPU:
        vm.debug.add(rec.vcpu);
        return reply(0);
      case REQ13.VM_RESUME_CPU:
        vm.debug.delete(rec.vcpu);
        return reply(0);
      case REQ13.VM_SUSPEND:
        if (vm.suspended !== 0) return reply(-FBSD.EALREADY);
        vm.suspended = arg.readInt32LE(0);
        return reply(0);
      case REQ13.VM_GET_CPUS: {
        const size = arg.readInt32LE(4);
        const err = await conn.copyout(arg.readBigUInt64LE(8), cpusetBytes(vm.active, size));
        return reply(err === 0 ? 0 : -err);
      }
      case REQ13.VM_SET_REGISTER:
        vm.regs.set(regKey(arg), arg.readBigUInt64LE(8));
        return reply(0);
      case REQ13.VM_GET_REGISTER: {
        const out = Buffer.from(arg);
        out.writeBigUInt64LE(vm.regs.get(regKey(arg)) ?? 0n, 8);
        return reply(0, out);
      }
      case REQ13.VM_SET_SEGMENT_DESCRIPTOR:
        vm.descs.set(regKey(arg), Buffer.from(arg.subarray(8, 24)));
        return reply(0);
      case REQ13.VM_GET_SEGMENT_DESCRIPTOR: {
        const out = Buffer.from(arg);
        vm.descs.get(regKey(arg))?.copy(out, 8);
        return reply(0, out);
      }
      case REQ13.VM_GET_MEMSEG: {
        const out = Buffer.from(arg);
        const seg = vm.devmem.get(arg.readInt32LE(0));
        out.writeBigUInt64LE(BigInt(arg.readInt32LE(0) === 0 ? vm.memLen : (seg?.len ?? 0)), 8);
        if (seg) out.write(`${seg.name}\0`, 16, 'latin1');
        return reply(0, out);
      }
      case REQ13.VM_ALLOC_MEMSEG:
        if (arg[16] !== 0) {
          const segid = arg.readInt32LE(0);
          const name = arg.subarray(16, arg.indexOf(0, 16)).toString('latin1');
          const file = path.join(this.root, 'mem', `${vm.name}.seg${segid}`);
          const len = Number(arg.readBigUInt64LE(8));
          fs.writeFileSync(file, Buffer.alloc(0));
          fs.truncateSync(file, len);
          vm.devmem.set(segid, { name, len, file });
          fs.mkdirSync(path.join(this.root, 'dev', 'vmm.io'), { recursive: true });
          fs.writeFileSync(path.join(this.root, 'dev', 'vmm.io', `${vm.name}.${name}`), '');
          return reply(0);
        }
        vm.memLen = Number(arg.readBigUInt64LE(8));
        fs.writeFileSync(vm.memFile, Buffer.alloc(0));
        fs.truncateSync(vm.memFile, vm.memLen);
        return reply(0);
      case REQ13.VM_MMAP_GETNEXT:
        return reply(-FBSD.ENOENT);
      case REQ13.VM_GET_TOPOLOGY: {
        const out = Buffer.alloc(8);
        out.writeUInt16LE(1, 0);
        out.writeUInt16LE(1, 2);
        out.writeUInt16LE(1, 4);
        out.writeUInt16LE(this.opts.maxcpus ?? 16, 6);
        return reply(0, out);
      }
      case RUN13: {
        if (!vm.active.has(rec.vcpu)) return reply(-FBSD.EINVAL);
        const e = await this.nextExit(vm, rec.vcpu);
        const out = Buffer.alloc(144);
        out.writeInt32LE(rec.vcpu, 0);
        encodeExit(e, 13).copy(out, 8);
        return reply(0, out);
      }
      case RUN14: {
        if (!vm.active.has(rec.vcpu)) return reply(-FBSD.EINVAL);
        const e = await this.nextExit(vm, rec.vcpu);
        const cpusetAddr = arg.readBigUInt64LE(8);
        const cpusetSize = Number(arg.readBigUInt64LE(16));
        const exitAddr = arg.readBigUInt64LE(24);
        let err = await conn.copyout(exitAddr, encodeExit(e, 14));
        if (err === 0 && e.exitcode === EXIT.IPI) err = await conn.copyout(cpusetAddr, cpusetBytes(e.cpus ?? [], cpusetSize));
        return reply(err === 0 ? 0 : -err);
      }
      default:
        return reply(0, (request & 0x40000000) !== 0 ? arg : Buffer.alloc(0));
    }
  }
}

export interface RunResult {
  status: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a program with env, collecting output; kills it after timeoutMs. `stdin`: a descriptor to give it as fd 0. */
export function run(file: string, args: string[], env: NodeJS.ProcessEnv, timeoutMs = 15000, stdin: 'ignore' | number = 'ignore'): Promise<RunResult> {
  return new Promise((resolve) => {
    const child = spawn(file, args, { env, stdio: [stdin, 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, stdout, stderr });
    });
  });
}

/**
 * bhyve's arguments for a boot through a self-contained boot ROM made from the guest image
 * (written beside it, IMAGE.rom): the LPC bridge, which loads it, and the ROM.
 */
export function romBoot(image: string): string[] {
  const rom = `${image}.rom`;
  if (!fs.existsSync(rom)) fs.writeFileSync(rom, buildGuestRom(fs.readFileSync(image)));
  return ['-s', '31,lpc', '-l', `bootrom,${rom}`];
}
