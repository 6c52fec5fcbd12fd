// The compat protocol between libvmmcompat.so and vmm-compatd (docs/internals.md section 5).
// Fixed-layout little-endian frames so that the C side needs no parser library: an 8-byte
// header (u32 body length, u16 version, u16 type) and a body whose size is fixed per type.

export const PROTOCOL_VERSION = 1;
export const HEADER_BYTES = 8;
export const MAX_BODY_BYTES = 4096;

export const MessageType = {
  HELLO: 1,
  PLAN_REQUEST: 2,
  EVENT: 3,
  WELCOME: 101,
  PLAN: 102,
  ERROR: 199,
} as const;
export type MessageTypeCode = (typeof MessageType)[keyof typeof MessageType];

export const BODY_BYTES: Readonly<Record<MessageTypeCode, number>> = {
  [MessageType.HELLO]: 304,
  [MessageType.PLAN_REQUEST]: 8,
  [MessageType.EVENT]: 24,
  [MessageType.WELCOME]: 20,
  [MessageType.PLAN]: 128,
  [MessageType.ERROR]: 256,
};

export const VM_NAME_FIELD = 232;
export const BHYVE_TAG_FIELD = 64;
export const PLAN_REASON_FIELD = 104;
export const ERROR_MESSAGE_FIELD = 252;

export const EventKind = {
  PARKED: 1,
  HANDOVER: 2,
  SPINUP_DUPLICATE: 3,
  ACTIVATE_HIDDEN: 4,
  SUSPEND: 5,
  REINIT: 6,
  FALLBACK: 7,
  PARKER_EXIT: 8,
  VMRUN_TRANSLATED: 9,
  CPUS_TRANSLATED: 10,
  /** The BSP's first VM_RUN of a boot was held this long (arg, microseconds) for the plan. */
  PLANNED: 11,
  /** A SPINUP_AP raised on AP `arg` for vCPU `vcpu`, delivered on the BSP instead. */
  SPINUP_REROUTED: 12,
  /** The bhyve enabled VM_CAP_IPI_EXIT (vcpu): a new-protocol bhyve, left alone. */
  NEW_PROTOCOL: 13,
  /**
   * The VM was destroyed under the running bhyve (VM_EXITCODE_SUSPENDED with 15.0's
   * VM_SUSPEND_DESTROY on vcpu): the interposer ends bhyve with status 4, as a 15.0 bhyve does.
   */
  VM_DESTROYED: 14,
  /** A memory-segment request was translated for a 15.0 kernel (arg: the 13.1 IOCNUM, 14..17). */
  MEMSEG_TRANSLATED: 15,
  /**
   * What the kernel answered at open (arg bits): 1 no 144-byte VM_RUN (no COMPAT_FREEBSD13),
   * 2 the 15.0 guest-NUMA memseg, 4 no 32-byte memseg requests (no COMPAT_FREEBSD14).
   */
  KERNEL_ABI: 16,
} as const;
export type EventKindCode = (typeof EventKind)[keyof typeof EventKind];
const EVENT_NAMES = new Map<number, string>(
  Object.entries(EventKind).map(([name, code]) => [code, name.toLowerCase().replace(/_/g, '-')]),
);
export function eventKindName(kind: number): string {
  return EVENT_NAMES.get(kind) ?? `unknown(${kind})`;
}

export const PlanAction = { PASS_THROUGH: 0, PARK: 1 } as const;
export type PlanActionCode = (typeof PlanAction)[keyof typeof PlanAction];

export interface Hello { type: typeof MessageType.HELLO; pid: number; flags: number; vm: string; bhyve: string }
export interface PlanRequest { type: typeof MessageType.PLAN_REQUEST; ncpus: number; boot: number }
export interface CompatEvent {
  type: typeof MessageType.EVENT;
  kind: number;
  vcpu: number;
  arg: number;
  monotonicNs: bigint;
}
export interface Welcome {
  type: typeof MessageType.WELCOME;
  session: number;
  variant: number;
  kernelCpusetBytes: number;
  vmrunAbi: number;
  flags: number;
}
export interface PlanReply {
  type: typeof MessageType.PLAN;
  action: PlanActionCode;
  spinupBias: number;
  parkedMask: bigint;
  boot: number;
  reason: string;
}
export interface ErrorReply { type: typeof MessageType.ERROR; code: number; message: string }
export type Message = Hello | PlanRequest | CompatEvent | Welcome | PlanReply | ErrorReply;

/** A protocol violation: the peer gets ERROR with this text and the connection is closed. */
export class ProtocolError extends Error {
  constructor(message: string, readonly code = 22 /* EINVAL */) {
    super(message);
  }
}

type FieldKind = 'u32' | 'i32' | 'u64' | 'str';
export interface ProtocolField {
  readonly name: string;
  readonly kind: FieldKind;
  readonly offset: number;
  /** Bytes; for 'str' the NUL-padded array size. */
  readonly size: number;
}

/**
 * The body layout of every message, in one table: encode and decode read it, and
 * gen-protocol-header.ts writes the same offsets for the C side (vmm_compat_proto_gen.h), so
 * the interposer and the daemon cannot disagree.
 */
export const LAYOUT: Readonly<Record<MessageTypeCode, readonly ProtocolField[]>> = {
  [MessageType.HELLO]: [
    { name: 'pid', kind: 'u32', offset: 0, size: 4 },
    { name: 'flags', kind: 'u32', offset: 4, size: 4 },
    { name: 'vm', kind: 'str', offset: 8, size: VM_NAME_FIELD },
    { name: 'bhyve', kind: 'str', offset: 240, size: BHYVE_TAG_FIELD },
  ],
  [MessageType.PLAN_REQUEST]: [
    { name: 'ncpus', kind: 'u32', offset: 0, size: 4 },
    { name: 'boot', kind: 'u32', offset: 4, size: 4 },
  ],
  [MessageType.EVENT]: [
    { name: 'kind', kind: 'u32', offset: 0, size: 4 },
    { name: 'vcpu', kind: 'i32', offset: 4, size: 4 },
    { name: 'arg', kind: 'i32', offset: 8, size: 4 },
    { name: 'monotonicNs', kind: 'u64', offset: 16, size: 8 },
  ],
  [MessageType.WELCOME]: [
    { name: 'session', kind: 'u32', offset: 0, size: 4 },
    { name: 'variant', kind: 'u32', offset: 4, size: 4 },
    { name: 'kernelCpusetBytes', kind: 'u32', offset: 8, size: 4 },
    { name: 'vmrunAbi', kind: 'u32', offset: 12, size: 4 },
    { name: 'flags', kind: 'u32', offset: 16, size: 4 },
  ],
  [MessageType.PLAN]: [
    { name: 'action', kind: 'u32', offset: 0, size: 4 },
    { name: 'spinupBias', kind: 'u32', offset: 4, size: 4 },
    { name: 'parkedMask', kind: 'u64', offset: 8, size: 8 },
    { name: 'boot', kind: 'u32', offset: 16, size: 4 },
    { name: 'reason', kind: 'str', offset: 24, size: PLAN_REASON_FIELD },
  ],
  [MessageType.ERROR]: [
    { name: 'code', kind: 'i32', offset: 0, size: 4 },
    { name: 'message', kind: 'str', offset: 4, size: ERROR_MESSAGE_FIELD },
  ],
};

type FieldValue = number | bigint | string;

const STRICT_UTF8 = new TextDecoder('utf-8', { fatal: true });

function readField(body: Buffer, f: ProtocolField): FieldValue {
  switch (f.kind) {
    case 'u32':
      return body.readUInt32LE(f.offset);
    case 'i32':
      return body.readInt32LE(f.offset);
    case 'u64':
      return body.readBigUInt64LE(f.offset);
    case 'str': {
      const field = body.subarray(f.offset, f.offset + f.size);
      const nul = field.indexOf(0);
      if (nul < 0) throw new ProtocolError(`string field ${f.name} is not NUL-terminated`);
      // Not toString('utf8'): it would turn bytes that are not UTF-8 into U+FFFD, a name the
      // peer never sent (and /dev/vmm/<that name> is not the device it holds).
      try {
        return STRICT_UTF8.decode(field.subarray(0, nul));
      } catch {
        throw new ProtocolError(`string field ${f.name} is not valid UTF-8`);
      }
    }
  }
}

function writeField(body: Buffer, f: ProtocolField, value: FieldValue): void {
  switch (f.kind) {
    case 'u32':
      body.writeUInt32LE(Number(value), f.offset);
      break;
    case 'i32':
      body.writeInt32LE(Number(value), f.offset);
      break;
    case 'u64':
      body.writeBigUInt64LE(BigInt(value), f.offset);
      break;
    case 'str': {
      const bytes = Buffer.from(String(value), 'utf8');
      // Always leave room for the terminating NUL; truncation of diagnostics is acceptable.
      bytes.copy(body, f.offset, 0, Math.min(bytes.length, f.size - 1));
      break;
    }
  }
}

export function encode(msg: Message): Buffer {
  const bodySize = BODY_BYTES[msg.type];
  const frame = Buffer.alloc(HEADER_BYTES + bodySize);
  frame.writeUInt32LE(bodySize, 0);
  frame.writeUInt16LE(PROTOCOL_VERSION, 4);
  frame.writeUInt16LE(msg.type, 6);
  const body = frame.subarray(HEADER_BYTES);
  const values = msg as unknown as Readonly<Record<string, FieldValue>>;
  for (const f of LAYOUT[msg.type]) writeField(body, f, values[f.name]!);
  return frame;
}

function decodeBody(type: MessageTypeCode, body: Buffer): Message {
  const fields: Record<string, FieldValue> = { type };
  for (const f of LAYOUT[type]) fields[f.name] = readField(body, f);
  if (type === MessageType.PLAN && fields.action !== PlanAction.PASS_THROUGH && fields.action !== PlanAction.PARK) {
    throw new ProtocolError(`PLAN action ${String(fields.action)} is not 0 (pass-through) or 1 (park)`);
  }
  return fields as unknown as Message;
}

function isKnownType(type: number): type is MessageTypeCode {
  return Object.prototype.hasOwnProperty.call(BODY_BYTES, type);
}

/**
 * Incremental decoder for a byte stream. Validates the header before it waits for a body, so a
 * peer announcing 4 GiB is refused at once instead of being buffered.
 */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): Message[] {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
    const messages: Message[] = [];
    while (this.pending.length >= HEADER_BYTES) {
      const length = this.pending.readUInt32LE(0);
      const version = this.pending.readUInt16LE(4);
      const type = this.pending.readUInt16LE(6);
      if (version !== PROTOCOL_VERSION) {
        throw new ProtocolError(
          `protocol version ${version} is not supported (vmm-compatd speaks version ${PROTOCOL_VERSION}); ` +
            'install matching libvmmcompat.so and vmm-compatd versions',
          43 /* EPROTONOSUPPORT on FreeBSD */,
        );
      }
      if (length > MAX_BODY_BYTES) {
        throw new ProtocolError(`frame body of ${length} bytes exceeds the ${MAX_BODY_BYTES}-byte limit`);
      }
      if (!isKnownType(type)) throw new ProtocolError(`unknown message type ${type}`);
      if (length !== BODY_BYTES[type]) {
        throw new ProtocolError(`message type ${type} must have a ${BODY_BYTES[type]}-byte body, got ${length}`);
      }
      if (this.pending.length < HEADER_BYTES + length) break;
      const body = Buffer.from(this.pending.subarray(HEADER_BYTES, HEADER_BYTES + length));
      this.pending = this.pending.subarray(HEADER_BYTES + length);
      messages.push(decodeBody(type, body));
    }
    return messages;
  }

  get buffered(): number {
    return this.pending.length;
  }
}
