// A minimal client of the V8 inspector of another Node process (the lab daemon started with
// --inspect=127.0.0.1:0), for the reboot soak: a full garbage collection and the heap in use
// after it, without a heap snapshot (whose buffers stay in the process's RSS). Speaks just enough
// WebSocket (RFC 6455) for that: one upgrade, masked text frames out, unmasked frames in.

import crypto from 'node:crypto';
import net from 'node:net';

export interface HeapUsage {
  /** Bytes in use by the JavaScript heap. */
  usedSize: number;
  /** Bytes the heap has committed. */
  totalSize: number;
}

/** The inspector's WebSocket URL as Node prints it ("Debugger listening on ws://..."). */
export function inspectorUrlOf(log: string): string | null {
  const m = /Debugger listening on (ws:\/\/[^\s]+)/.exec(log);
  return m ? m[1]! : null;
}

export class InspectorClient {
  private buffer = Buffer.alloc(0);
  private nextId = 1;
  private readonly waiting = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void }>();

  private constructor(private readonly socket: net.Socket) {
    socket.on('data', (chunk: Buffer) => this.receive(chunk));
    socket.on('close', () => this.failAll(new Error('the inspector connection closed')));
    socket.on('error', (err) => this.failAll(err));
  }

  static connect(url: string, timeoutMs = 5000): Promise<InspectorClient> {
    const u = new URL(url);
    return new Promise((resolve, reject) => {
      const socket = net.connect(Number(u.port), u.hostname);
      const timer = setTimeout(() => socket.destroy(new Error(`no inspector upgrade within ${timeoutMs} ms`)), timeoutMs);
      const key = crypto.randomBytes(16).toString('base64');
      let head = Buffer.alloc(0);
      const onData = (chunk: Buffer): void => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        clearTimeout(timer);
        const status = head.subarray(0, head.indexOf('\r\n')).toString('latin1');
        if (!/^HTTP\/1\.1 101 /.test(status)) {
          socket.destroy();
          reject(new Error(`the inspector refused the upgrade: ${status}`));
          return;
        }
        const client = new InspectorClient(socket);
        const rest = head.subarray(end + 4);
        if (rest.length > 0) client.receive(rest);
        resolve(client);
      };
      socket.on('data', onData);
      socket.once('error', (err) => {
        clearTimeout(timer);
        reject(err);
      });
      socket.once('connect', () => {
        socket.write(
          `GET ${u.pathname} HTTP/1.1\r\nHost: ${u.host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
            `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
        );
      });
    });
  }

  /** One inspector method call; resolves with its result. */
  call(method: string, params: Record<string, unknown> = {}, timeoutMs = 30000): Promise<unknown> {
    const id = this.nextId++;
    const payload = Buffer.from(JSON.stringify({ id, method, params }), 'utf8');
    // A client frame: FIN + text, masked (RFC 6455 section 5.3), 7-, 16- or 64-bit length.
    const mask = crypto.randomBytes(4);
    const header =
      payload.length < 126
        ? Buffer.from([0x81, 0x80 | payload.length])
        : payload.length < 65536
          ? Buffer.from([0x81, 0x80 | 126, payload.length >> 8, payload.length & 0xff])
          : (() => {
              const h = Buffer.alloc(10);
              h[0] = 0x81;
              h[1] = 0x80 | 127;
              h.writeBigUInt64BE(BigInt(payload.length), 2);
              return h;
            })();
    const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.waiting.delete(id);
        reject(new Error(`${method}: no answer within ${timeoutMs} ms`));
      }, timeoutMs);
      this.waiting.set(id, {
        resolve: (v) => {
          clearTimeout(timer);
          resolve(v);
        },
        reject: (e) => {
          clearTimeout(timer);
          reject(e);
        },
      });
      this.socket.write(Buffer.concat([header, mask, masked]));
    });
  }

  /** A full collection, then the heap in use after it. */
  async heapAfterFullCollection(): Promise<HeapUsage> {
    await this.call('HeapProfiler.collectGarbage');
    const usage = (await this.call('Runtime.getHeapUsage')) as Partial<HeapUsage>;
    if (typeof usage.usedSize !== 'number' || typeof usage.totalSize !== 'number') throw new Error('Runtime.getHeapUsage answered without sizes');
    return { usedSize: usage.usedSize, totalSize: usage.totalSize };
  }

  close(): void {
    this.socket.destroy();
  }

  private receive(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      if (this.buffer.length < 2) return;
      const opcode = this.buffer[0]! & 0x0f;
      let length = this.buffer[1]! & 0x7f;
      let offset = 2;
      if (length === 126) {
        if (this.buffer.length < 4) return;
        length = this.buffer.readUInt16BE(2);
        offset = 4;
      } else if (length === 127) {
        if (this.buffer.length < 10) return;
        length = Number(this.buffer.readBigUInt64BE(2));
        offset = 10;
      }
      if (this.buffer.length < offset + length) return;
      const payload = this.buffer.subarray(offset, offset + length);
      this.buffer = this.buffer.subarray(offset + length);
      if (opcode === 0x8) {
        this.socket.destroy();
        return;
      }
      if (opcode !== 0x1) continue;
      const message = JSON.parse(payload.toString('utf8')) as { id?: number; result?: unknown; error?: { message?: string } };
      if (message.id === undefined) continue; // an inspector event
      const waiter = this.waiting.get(message.id);
      if (!waiter) continue;
      this.waiting.delete(message.id);
      if (message.error) waiter.reject(new Error(message.error.message ?? 'inspector error'));
      else waiter.resolve(message.result);
    }
  }

  private failAll(err: Error): void {
    for (const w of this.waiting.values()) w.reject(err);
    this.waiting.clear();
  }
}
