// The bridge <-> kernel model protocol (docs/internals.md section 2): frame layout, frame types
// and the body codecs shared by the server (connection.ts) and the TypeScript client
// (client.ts). Every frame: u32 length (bytes after this field), u32 type, body; integers
// little-endian; at most 1 MiB.

export const FrameType = {
  HELLO: 1,
  OPEN: 2,
  CLOSE: 3,
  IOCTL: 4,
  MMAP: 5,
  SYSCTL: 6,
  CAP_RIGHTS: 7,
  CAP_IOCTLS: 8,
  COPYIN_DATA: 9,
  COPYOUT_DONE: 10,
  REPLY: 100,
  COPYIN: 101,
  COPYOUT: 102,
} as const;

/** The largest value of a frame's length field. */
export const MAX_FRAME_BYTES = 1 << 20;

export interface Frame {
  readonly type: number;
  readonly body: Buffer;
}

/** A frame the peer should not have sent: the connection is closed. */
export class ProtocolError extends Error {}

/** Splits a byte stream into frames; throws ProtocolError on an impossible length. */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Frame[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const frames: Frame[] = [];
    while (this.pending.length >= 4) {
      const length = this.pending.readUInt32LE(0);
      if (length < 4) throw new ProtocolError(`frame length ${length} leaves no room for the type`);
      if (length > MAX_FRAME_BYTES) throw new ProtocolError(`frame length ${length} > ${MAX_FRAME_BYTES}`);
      if (this.pending.length < 4 + length) break;
      const type = this.pending.readUInt32LE(4);
      const body = Buffer.from(this.pending.subarray(8, 4 + length));
      frames.push({ type, body });
      this.pending = this.pending.subarray(4 + length);
    }
    return frames;
  }
}

export function encodeFrame(type: number, body: Buffer): Buffer {
  const out = Buffer.alloc(8 + body.length);
  out.writeUInt32LE(4 + body.length, 0);
  out.writeUInt32LE(type, 4);
  body.copy(out, 8);
  return out;
}

function need(body: Buffer, size: number, what: string, exact = false): void {
  if (exact ? body.length !== size : body.length < size) {
    throw new ProtocolError(`${what}: body of ${body.length} bytes, ${exact ? '' : 'at least '}${size} expected`);
  }
}

// ---- Bridge -> model ----

export function encodeHello(pid: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(pid >>> 0);
  return b;
}
export function decodeHello(body: Buffer): { pid: number } {
  need(body, 4, 'HELLO', true);
  return { pid: body.readUInt32LE(0) };
}

/**
 * OPEN: a bare VM name (/dev/vmm/NAME; a trailing NUL, if the bridge sends one, is not part of
 * it), or an absolute device path followed by a NUL and the u32 open flags (/dev/vmmctl,
 * /dev/vmm.io/NAME.SEG; docs/internals.md section 2).
 */
export function decodeOpen(body: Buffer): { name: string; flags?: number } {
  const nul = body.indexOf(0);
  const name = body.subarray(0, nul < 0 ? body.length : nul).toString('latin1');
  if (nul >= 0 && body.length === nul + 5) return { name, flags: body.readUInt32LE(nul + 1) };
  return { name };
}

export function encodeFileOnly(file: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(file >>> 0);
  return b;
}
export function decodeClose(body: Buffer): { file: number } {
  need(body, 4, 'CLOSE', true);
  return { file: body.readUInt32LE(0) };
}

export interface IoctlFrame {
  file: number;
  request: bigint;
  argAddr: bigint;
  arg: Buffer;
}
export function encodeIoctl(f: IoctlFrame): Buffer {
  const b = Buffer.alloc(24 + f.arg.length);
  b.writeUInt32LE(f.file >>> 0, 0);
  b.writeBigUInt64LE(f.request, 8);
  b.writeBigUInt64LE(f.argAddr, 16);
  f.arg.copy(b, 24);
  return b;
}
export function decodeIoctl(body: Buffer): IoctlFrame {
  need(body, 24, 'IOCTL');
  return {
    file: body.readUInt32LE(0),
    request: body.readBigUInt64LE(8),
    argAddr: body.readBigUInt64LE(16),
    arg: Buffer.from(body.subarray(24)),
  };
}

export interface MmapFrame {
  file: number;
  prot: number;
  offset: bigint;
  len: bigint;
}
export function encodeMmap(f: MmapFrame): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(f.file >>> 0, 0);
  b.writeUInt32LE(f.prot >>> 0, 4);
  b.writeBigUInt64LE(f.offset, 8);
  b.writeBigUInt64LE(f.len, 16);
  return b;
}
export function decodeMmap(body: Buffer): MmapFrame {
  need(body, 24, 'MMAP', true);
  return {
    file: body.readUInt32LE(0),
    prot: body.readUInt32LE(4),
    offset: body.readBigUInt64LE(8),
    len: body.readBigUInt64LE(16),
  };
}

/** SYSCTL: u32 newlen, the name NUL-terminated, then newlen bytes of new value (none: a read). */
export function encodeSysctl(name: string, newValue: Buffer | null): Buffer {
  const value = newValue ?? Buffer.alloc(0);
  const nameBytes = Buffer.from(`${name}\0`, 'latin1');
  const b = Buffer.alloc(4 + nameBytes.length + value.length);
  b.writeUInt32LE(value.length, 0);
  nameBytes.copy(b, 4);
  value.copy(b, 4 + nameBytes.length);
  return b;
}
export function decodeSysctl(body: Buffer): { name: string; newValue: Buffer | null } {
  need(body, 5, 'SYSCTL');
  const newlen = body.readUInt32LE(0);
  const nul = body.indexOf(0, 4);
  if (nul < 0) throw new ProtocolError('SYSCTL: the name is not NUL-terminated');
  const value = body.subarray(nul + 1);
  if (value.length !== newlen) throw new ProtocolError(`SYSCTL: newlen ${newlen} but ${value.length} bytes follow the name`);
  return { name: body.subarray(4, nul).toString('latin1'), newValue: newlen === 0 ? null : Buffer.from(value) };
}

/** CAP_RIGHTS: u32 file, u32 pad, u64 cr_rights[2] (a version 00 cap_rights_t). */
export function encodeCapRights(file: number, rights: readonly [bigint, bigint]): Buffer {
  const b = Buffer.alloc(24);
  b.writeUInt32LE(file >>> 0, 0);
  b.writeBigUInt64LE(rights[0], 8);
  b.writeBigUInt64LE(rights[1], 16);
  return b;
}
export function decodeCapRights(body: Buffer): { file: number; rights: [bigint, bigint] } {
  need(body, 24, 'CAP_RIGHTS', true);
  return { file: body.readUInt32LE(0), rights: [body.readBigUInt64LE(8), body.readBigUInt64LE(16)] };
}

export function encodeCapIoctls(file: number, requests: readonly (number | bigint)[]): Buffer {
  const b = Buffer.alloc(8 + 8 * requests.length);
  b.writeUInt32LE(file >>> 0, 0);
  b.writeUInt32LE(requests.length, 4);
  requests.forEach((r, i) => b.writeBigUInt64LE(BigInt(r), 8 + 8 * i));
  return b;
}
export function decodeCapIoctls(body: Buffer): { file: number; requests: bigint[] } {
  need(body, 8, 'CAP_IOCTLS');
  const count = body.readUInt32LE(4);
  need(body, 8 + 8 * count, 'CAP_IOCTLS', true);
  const requests: bigint[] = [];
  for (let i = 0; i < count; i++) requests.push(body.readBigUInt64LE(8 + 8 * i));
  return { file: body.readUInt32LE(0), requests };
}

export function encodeCopyinData(err: number, data: Buffer): Buffer {
  const b = Buffer.alloc(4 + data.length);
  b.writeInt32LE(err, 0);
  data.copy(b, 4);
  return b;
}
export function decodeCopyinData(body: Buffer): { err: number; data: Buffer } {
  need(body, 4, 'COPYIN_DATA');
  return { err: body.readInt32LE(0), data: Buffer.from(body.subarray(4)) };
}

export function encodeCopyoutDone(err: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(err, 0);
  return b;
}
export function decodeCopyoutDone(body: Buffer): { err: number } {
  need(body, 4, 'COPYOUT_DONE', true);
  return { err: body.readInt32LE(0) };
}

// ---- Model -> bridge ----

export function encodeReply(ret: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const b = Buffer.alloc(4 + payload.length);
  b.writeInt32LE(ret, 0);
  payload.copy(b, 4);
  return b;
}
export function decodeReply(body: Buffer): { ret: number; payload: Buffer } {
  need(body, 4, 'REPLY');
  return { ret: body.readInt32LE(0), payload: Buffer.from(body.subarray(4)) };
}

/** The MMAP reply payload: u64 file offset, then the backing file's path. */
export function encodeMmapReply(offset: number, path: string): Buffer {
  const pathBytes = Buffer.from(path, 'utf8');
  const b = Buffer.alloc(8 + pathBytes.length);
  b.writeBigUInt64LE(BigInt(offset), 0);
  pathBytes.copy(b, 8);
  return b;
}
export function decodeMmapReply(payload: Buffer): { offset: bigint; path: string } {
  if (payload.length < 8) throw new ProtocolError('MMAP reply shorter than 8 bytes');
  return { offset: payload.readBigUInt64LE(0), path: payload.subarray(8).toString('utf8') };
}

export function encodeCopyin(addr: bigint, len: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigUInt64LE(addr, 0);
  b.writeBigUInt64LE(BigInt(len), 8);
  return b;
}
export function decodeCopyin(body: Buffer): { addr: bigint; len: bigint } {
  need(body, 16, 'COPYIN', true);
  return { addr: body.readBigUInt64LE(0), len: body.readBigUInt64LE(8) };
}

export function encodeCopyout(addr: bigint, data: Buffer): Buffer {
  const b = Buffer.alloc(8 + data.length);
  b.writeBigUInt64LE(addr, 0);
  data.copy(b, 8);
  return b;
}
export function decodeCopyout(body: Buffer): { addr: bigint; data: Buffer } {
  need(body, 8, 'COPYOUT');
  return { addr: body.readBigUInt64LE(0), data: Buffer.from(body.subarray(8)) };
}
