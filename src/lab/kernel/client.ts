// A TypeScript client of the kernel model's protocol (docs/internals.md section 2): what the
// C bridge does, for tests and lab tools. One client = one connection = one "thread": calls on
// a client are queued and run one at a time, like the system calls of one thread; use several
// clients with the same pid for the threads of one process.

import net from 'node:net';
import {
  FrameReader,
  FrameType,
  decodeCopyin,
  decodeCopyout,
  decodeMmapReply,
  decodeReply,
  encodeCapIoctls,
  encodeCapRights,
  encodeCopyinData,
  encodeCopyoutDone,
  encodeFileOnly,
  encodeFrame,
  encodeHello,
  encodeIoctl,
  encodeMmap,
  encodeSysctl,
  type Frame,
} from './protocol';

/** The caller's address space for COPYIN / COPYOUT; throwing means a bad address (EFAULT). */
export interface CallerMemory {
  read(addr: bigint, len: number): Buffer;
  write(addr: bigint, data: Buffer): void;
}

/** FreeBSD's EFAULT, sent back for an address the CallerMemory refuses. */
const EFAULT = 14;

export interface IoctlResult {
  /** 0 on success, -errno on failure. */
  ret: number;
  /** The argument bytes copied out (IOC_OUT, success only). */
  out: Buffer;
}

export interface KernelClient {
  readonly pid: number;
  /** Resolves when the model closed the connection (or end() was called). */
  readonly closed: Promise<void>;
  /** The file id (>= 0) or -errno. */
  open(name: string): Promise<number>;
  /** Another vmm device node (/dev/vmmctl, /dev/vmm.io/NAME.SEG) with its open flags (O_RDWR 2). */
  openPath(path: string, flags: number): Promise<number>;
  close(file: number): Promise<number>;
  ioctl(file: number, request: number, arg: Buffer, memory?: CallerMemory, argAddr?: bigint): Promise<IoctlResult>;
  sysctl(name: string, newValue?: Buffer | string): Promise<{ ret: number; old: Buffer }>;
  capRights(file: number, rights: readonly [bigint, bigint]): Promise<number>;
  capIoctls(file: number, requests: readonly number[]): Promise<number>;
  mmap(file: number, offset: bigint | number, len: bigint | number, prot?: number): Promise<{ ret: number; offset: bigint; path: string }>;
  /** Closes the connection: a call in progress is abandoned, as when the thread dies. */
  end(): void;
}

/** The connection closed before the reply arrived. */
export class ConnectionClosed extends Error {
  constructor() {
    super('the kernel model closed the connection');
  }
}

interface Outstanding {
  readonly memory: CallerMemory | undefined;
  readonly resolve: (frame: Frame) => void;
  readonly reject: (error: Error) => void;
}

export interface ConnectOptions {
  /** The HELLO pid (default: this process). Threads of one process share it. */
  pid?: number;
}

export function connectKernel(socketPath: string, options: ConnectOptions = {}): Promise<KernelClient> {
  const pid = options.pid ?? process.pid;
  return new Promise<KernelClient>((resolve, reject) => {
    const socket = net.createConnection(socketPath);
    socket.once('error', reject);
    socket.once('connect', () => {
      socket.off('error', reject);
      resolve(makeClient(socket, pid));
    });
  });
}

function makeClient(socket: net.Socket, pid: number): KernelClient {
  const reader = new FrameReader();
  let outstanding: Outstanding | null = null;
  let queue: Promise<unknown> = Promise.resolve();
  let isClosed = false;
  let markClosed: () => void = () => undefined;
  const closed = new Promise<void>((resolve) => {
    markClosed = resolve;
  });

  const shutdown = (): void => {
    if (isClosed) return;
    isClosed = true;
    const pending = outstanding;
    outstanding = null;
    pending?.reject(new ConnectionClosed());
    socket.destroy();
    markClosed();
  };

  const send = (type: number, body: Buffer): void => {
    if (!isClosed) socket.write(encodeFrame(type, body));
  };

  socket.on('data', (chunk: Buffer) => {
    let frames: Frame[];
    try {
      frames = reader.push(chunk);
    } catch {
      shutdown();
      return;
    }
    for (const frame of frames) {
      const call = outstanding;
      if (call === null) continue;
      if (frame.type === FrameType.REPLY) {
        outstanding = null;
        call.resolve(frame);
      } else if (frame.type === FrameType.COPYIN) {
        const { addr, len } = decodeCopyin(frame.body);
        let data: Buffer | null = null;
        try {
          data = call.memory === undefined ? null : call.memory.read(addr, Number(len));
        } catch {
          data = null;
        }
        send(FrameType.COPYIN_DATA, data === null ? encodeCopyinData(EFAULT, Buffer.alloc(0)) : encodeCopyinData(0, data));
      } else if (frame.type === FrameType.COPYOUT) {
        const { addr, data } = decodeCopyout(frame.body);
        let err = 0;
        try {
          if (call.memory === undefined) err = EFAULT;
          else call.memory.write(addr, data);
        } catch {
          err = EFAULT;
        }
        send(FrameType.COPYOUT_DONE, encodeCopyoutDone(err));
      }
    }
  });
  socket.on('close', shutdown);
  socket.on('error', shutdown);
  send(FrameType.HELLO, encodeHello(pid));

  /** One system call: waits for the previous one of this "thread", then for its REPLY. */
  const call = (type: number, body: Buffer, memory?: CallerMemory): Promise<{ ret: number; payload: Buffer }> => {
    const run = queue.then(
      () =>
        new Promise<Frame>((resolve, reject) => {
          if (isClosed) {
            reject(new ConnectionClosed());
            return;
          }
          outstanding = { memory, resolve, reject };
          send(type, body);
        }),
    );
    queue = run.catch(() => undefined);
    return run.then((frame) => decodeReply(frame.body));
  };

  return {
    pid,
    closed,
    open: async (name) => (await call(FrameType.OPEN, Buffer.from(name, 'latin1'))).ret,
    openPath: async (path, flags) => {
      const flagBytes = Buffer.alloc(4);
      flagBytes.writeUInt32LE(flags >>> 0);
      return (await call(FrameType.OPEN, Buffer.concat([Buffer.from(path, 'latin1'), Buffer.from([0]), flagBytes]))).ret;
    },
    close: async (file) => (await call(FrameType.CLOSE, encodeFileOnly(file))).ret,
    async ioctl(file, request, arg, memory, argAddr = 0n) {
      const reply = await call(FrameType.IOCTL, encodeIoctl({ file, request: BigInt(request >>> 0), argAddr, arg }), memory);
      return { ret: reply.ret, out: reply.payload };
    },
    async sysctl(name, newValue) {
      const value = newValue === undefined ? null : typeof newValue === 'string' ? Buffer.from(newValue, 'latin1') : newValue;
      const reply = await call(FrameType.SYSCTL, encodeSysctl(name, value));
      return { ret: reply.ret, old: reply.payload };
    },
    capRights: async (file, rights) => (await call(FrameType.CAP_RIGHTS, encodeCapRights(file, rights))).ret,
    capIoctls: async (file, requests) => (await call(FrameType.CAP_IOCTLS, encodeCapIoctls(file, requests))).ret,
    async mmap(file, offset, len, prot = 0x3) {
      const reply = await call(FrameType.MMAP, encodeMmap({ file, prot, offset: BigInt(offset), len: BigInt(len) }));
      if (reply.ret < 0) return { ret: reply.ret, offset: 0n, path: '' };
      const where = decodeMmapReply(reply.payload);
      return { ret: reply.ret, offset: where.offset, path: where.path };
    },
    end: shutdown,
  };
}
