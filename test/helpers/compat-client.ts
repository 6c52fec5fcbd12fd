// A compat-protocol client for daemon tests: frames in order, a wait for the next one, a close.
import net from 'node:net';
import path from 'node:path';
import { FrameReader, MessageType, SUPPORTED_PROTOCOL_VERSIONS, encode, type Message } from '../../src/daemon/protocol';
import { SOCKET_NAME } from '../../src/daemon/compat-server';

export class CompatClient {
  private readonly reader = new FrameReader(SUPPORTED_PROTOCOL_VERSIONS);
  private readonly queue: Message[] = [];
  private waiters: ((m: Message | null) => void)[] = [];
  closed = false;
  readonly closedAt: Promise<number>;

  constructor(readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => {
      for (const m of this.reader.push(chunk)) {
        const w = this.waiters.shift();
        if (w) w(m);
        else this.queue.push(m);
      }
    });
    socket.on('error', () => socket.destroy());
    this.closedAt = new Promise((resolve) =>
      socket.on('close', () => {
        this.closed = true;
        for (const w of this.waiters.splice(0)) w(null);
        resolve(performance.now());
      }),
    );
  }

  static connect(dir: string): Promise<CompatClient> {
    return new Promise((resolve, reject) => {
      const s = net.connect(path.join(dir, SOCKET_NAME));
      s.once('connect', () => resolve(new CompatClient(s)));
      s.once('error', reject);
    });
  }

  send(m: Message | Buffer): void {
    this.socket.write(Buffer.isBuffer(m) ? m : encode(m));
  }

  /** The next frame, or null once the daemon closed the connection. */
  next(timeoutMs = 3000): Promise<Message | null> {
    const queued = this.queue.shift();
    if (queued) return Promise.resolve(queued);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no frame within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push((m) => {
        clearTimeout(timer);
        resolve(m);
      });
    });
  }

  /** Frames received and not taken yet. */
  get queued(): number {
    return this.queue.length;
  }

  end(): void {
    this.socket.destroy();
  }
}

export function hello(vm: string, pid = process.pid): Message {
  return { type: MessageType.HELLO, pid, flags: 0, vm, bhyve: '13.1' };
}
