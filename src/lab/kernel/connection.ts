// One bridge connection: one calling thread, so at most one system call at a time. The
// connection's AbortController is the thread's life: when the socket closes (the thread exited
// or the process was killed) the call in progress unwinds wherever it waits, and the vCPU it
// held becomes IDLE again, as when a thread leaves the kernel.
//
// State machine: HELLO first; then idle <-> busy (one call); while busy only the COPYIN_DATA /
// COPYOUT_DONE answering the model's own COPYIN / COPYOUT are accepted. Anything else, and any
// malformed or oversized frame, closes this connection only.

import type net from 'node:net';
import { CallAborted, Errno, KernelError } from './errno';
import type { VmmKernel } from './kernel';
import {
  FrameReader,
  FrameType,
  ProtocolError,
  decodeCapIoctls,
  decodeCapRights,
  decodeClose,
  decodeCopyinData,
  decodeCopyoutDone,
  decodeHello,
  decodeIoctl,
  decodeMmap,
  decodeOpen,
  decodeSysctl,
  encodeCopyin,
  encodeCopyout,
  encodeFrame,
  encodeMmapReply,
  encodeReply,
  type Frame,
} from './protocol';
import { MAX_COPY_BYTES, type CallContext } from './wait';

interface PendingCopy {
  readonly kind: 'copyin' | 'copyout';
  readonly len: number;
  readonly resolve: (data: Buffer) => void;
  readonly reject: (error: Error) => void;
}

interface Reply {
  readonly ret: number;
  readonly payload?: Buffer;
}

export type InternalErrorSink = (error: unknown) => void;

export class KernelConnection implements CallContext {
  private readonly reader = new FrameReader();
  private readonly controller = new AbortController();
  private pid: number | null = null;
  private busy = false;
  private pendingCopy: PendingCopy | null = null;
  private closed = false;

  constructor(
    private readonly socket: net.Socket,
    private readonly kernel: VmmKernel,
    private readonly onInternalError: InternalErrorSink,
    private readonly onClosed: (connection: KernelConnection) => void,
  ) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('error', () => this.close());
    socket.on('close', () => this.close());
  }

  get signal(): AbortSignal {
    return this.controller.signal;
  }

  /** Ends the connection: the call in progress (if any) unwinds without a reply. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.controller.abort();
    const pending = this.pendingCopy;
    this.pendingCopy = null;
    pending?.reject(new CallAborted());
    this.socket.destroy();
    this.onClosed(this);
  }

  private receive(chunk: Buffer): void {
    if (this.closed) return;
    try {
      for (const frame of this.reader.push(chunk)) {
        this.handleFrame(frame);
        if (this.closed) return;
      }
    } catch (error) {
      if (!(error instanceof ProtocolError)) this.onInternalError(error);
      this.close();
    }
  }

  private handleFrame(frame: Frame): void {
    if (this.pid === null) {
      if (frame.type !== FrameType.HELLO) throw new ProtocolError(`frame type ${frame.type} before HELLO`);
      this.pid = decodeHello(frame.body).pid;
      return;
    }
    if (frame.type === FrameType.COPYIN_DATA || frame.type === FrameType.COPYOUT_DONE) {
      this.answerCopy(frame);
      return;
    }
    if (this.busy) throw new ProtocolError(`frame type ${frame.type} while a call is in progress`);
    const pid = this.pid;
    this.busy = true;
    // Decoding errors are protocol errors and close the connection synchronously.
    const call = this.decodeCall(pid, frame);
    call.then(
      (reply) => {
        this.busy = false;
        this.send(FrameType.REPLY, encodeReply(reply.ret, reply.payload));
      },
      (error: unknown) => {
        this.busy = false;
        if (error instanceof KernelError) {
          this.send(FrameType.REPLY, encodeReply(-error.errno));
        } else if (error instanceof CallAborted || this.closed) {
          // The thread is gone: nobody to reply to.
        } else if (error instanceof ProtocolError) {
          this.close();
        } else {
          this.onInternalError(error);
          this.send(FrameType.REPLY, encodeReply(-Errno.EFAULT));
        }
      },
    );
  }

  /** Validates the frame now (throwing ProtocolError) and returns the call's promise. */
  private decodeCall(pid: number, frame: Frame): Promise<Reply> {
    const k = this.kernel;
    switch (frame.type) {
      case FrameType.OPEN: {
        const { name, flags } = decodeOpen(frame.body);
        return settle(() => ({ ret: flags === undefined ? k.open(pid, name) : k.openPath(pid, name, flags) }));
      }
      case FrameType.CLOSE: {
        const { file } = decodeClose(frame.body);
        return settle(() => (k.close(pid, file), { ret: 0 }));
      }
      case FrameType.IOCTL: {
        const f = decodeIoctl(frame.body);
        // sys_generic.c sys_ioctl: a command with high bits set is truncated to 32 bits.
        const request = Number(f.request & 0xffffffffn);
        return k.ioctl(pid, f.file, request, f.arg, this).then((out) => ({ ret: 0, payload: out }));
      }
      case FrameType.MMAP: {
        const f = decodeMmap(frame.body);
        return settle(() => {
          const where = k.mmap(pid, f.file, f.prot, f.offset, f.len);
          return { ret: 0, payload: encodeMmapReply(where.offset, where.path) };
        });
      }
      case FrameType.SYSCTL: {
        const { name, newValue } = decodeSysctl(frame.body);
        // Async: the 15.0 hw.vmm.destroy returns once the device has drained (kernel.ts destroyVm).
        return (async () => ({ ret: 0, payload: await k.sysctl(name, newValue) }))();
      }
      case FrameType.CAP_RIGHTS: {
        const { file, rights } = decodeCapRights(frame.body);
        return settle(() => (k.capRights(pid, file, rights), { ret: 0 }));
      }
      case FrameType.CAP_IOCTLS: {
        const { file, requests } = decodeCapIoctls(frame.body);
        return settle(() => (k.capIoctls(pid, file, requests.map((r) => Number(r & 0xffffffffn))), { ret: 0 }));
      }
      default:
        throw new ProtocolError(`unknown frame type ${frame.type}`);
    }
  }

  // ---- CallContext: copyin / copyout round trips ----

  copyin(addr: bigint, len: number): Promise<Buffer> {
    if (len === 0) return Promise.resolve(Buffer.alloc(0));
    if (len > MAX_COPY_BYTES) return Promise.reject(new KernelError(Errno.EFAULT, `copyin of ${len} bytes`));
    return this.roundTrip('copyin', len, FrameType.COPYIN, encodeCopyin(addr, len));
  }

  async copyout(addr: bigint, data: Buffer): Promise<void> {
    if (data.length === 0) return;
    if (data.length > MAX_COPY_BYTES) throw new KernelError(Errno.EFAULT, `copyout of ${data.length} bytes`);
    await this.roundTrip('copyout', data.length, FrameType.COPYOUT, encodeCopyout(addr, data));
  }

  private roundTrip(kind: PendingCopy['kind'], len: number, type: number, body: Buffer): Promise<Buffer> {
    if (this.closed) return Promise.reject(new CallAborted());
    if (this.pendingCopy !== null) return Promise.reject(new Error('a copy is already in progress on this connection'));
    return new Promise<Buffer>((resolve, reject) => {
      this.pendingCopy = { kind, len, resolve, reject };
      this.send(type, body);
    });
  }

  private answerCopy(frame: Frame): void {
    const pending = this.pendingCopy;
    const expected = frame.type === FrameType.COPYIN_DATA ? 'copyin' : 'copyout';
    if (pending === null || pending.kind !== expected) throw new ProtocolError(`unexpected frame type ${frame.type}`);
    this.pendingCopy = null;
    if (frame.type === FrameType.COPYIN_DATA) {
      const { err, data } = decodeCopyinData(frame.body);
      if (err !== 0) {
        pending.reject(new KernelError(Errno.EFAULT, 'copyin: bad address'));
        return;
      }
      if (data.length !== pending.len) {
        pending.reject(new CallAborted());
        throw new ProtocolError(`COPYIN_DATA: ${data.length} bytes, ${pending.len} requested`);
      }
      pending.resolve(data);
    } else {
      const { err } = decodeCopyoutDone(frame.body);
      if (err !== 0) pending.reject(new KernelError(Errno.EFAULT, 'copyout: bad address'));
      else pending.resolve(Buffer.alloc(0));
    }
  }

  private send(type: number, body: Buffer): void {
    if (this.closed || this.socket.destroyed) return;
    this.socket.write(encodeFrame(type, body));
  }
}

/** Runs a synchronous kernel call; its KernelError becomes a rejected promise. */
function settle(call: () => Reply): Promise<Reply> {
  try {
    return Promise.resolve(call());
  } catch (error) {
    return Promise.reject(error);
  }
}
