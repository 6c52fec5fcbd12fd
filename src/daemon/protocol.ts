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

function readString(buf: Buffer, offset: number, size: number): string {
  const field = buf.subarray(offset, offset + size);
  const nul = field.indexOf(0);
  if (nul < 0) throw new ProtocolError(`string field at offset ${offset} is not NUL-terminated`);
  return field.subarray(0, nul).toString('utf8');
}

function writeString(buf: Buffer, offset: number, size: number, value: string): void {
  const bytes = Buffer.from(value, 'utf8');
  // Always leave room for the terminating NUL; truncation of diagnostics is acceptable.
  bytes.copy(buf, offset, 0, Math.min(bytes.length, size - 1));
}

export function encode(msg: Message): Buffer {
  const bodySize = BODY_BYTES[msg.type];
  const frame = Buffer.alloc(HEADER_BYTES + bodySize);
  frame.writeUInt32LE(bodySize, 0);
  frame.writeUInt16LE(PROTOCOL_VERSION, 4);
  frame.writeUInt16LE(msg.type, 6);
  const body = frame.subarray(HEADER_BYTES);
  switch (msg.type) {
    case MessageType.HELLO:
      body.writeUInt32LE(msg.pid, 0);
      body.writeUInt32LE(msg.flags, 4);
      writeString(body, 8, VM_NAME_FIELD, msg.vm);
      writeString(body, 240, BHYVE_TAG_FIELD, msg.bhyve);
      break;
    case MessageType.PLAN_REQUEST:
      body.writeUInt32LE(msg.ncpus, 0);
      body.writeUInt32LE(msg.boot, 4);
      break;
    case MessageType.EVENT:
      body.writeUInt32LE(msg.kind, 0);
      body.writeInt32LE(msg.vcpu, 4);
      body.writeInt32LE(msg.arg, 8);
      body.writeBigUInt64LE(msg.monotonicNs, 16);
      break;
    case MessageType.WELCOME:
      body.writeUInt32LE(msg.session, 0);
      body.writeUInt32LE(msg.variant, 4);
      body.writeUInt32LE(msg.kernelCpusetBytes, 8);
      body.writeUInt32LE(msg.vmrunAbi, 12);
      body.writeUInt32LE(msg.flags, 16);
      break;
    case MessageType.PLAN:
      body.writeUInt32LE(msg.action, 0);
      body.writeUInt32LE(msg.spinupBias, 4);
      body.writeBigUInt64LE(msg.parkedMask, 8);
      body.writeUInt32LE(msg.boot, 16);
      writeString(body, 24, PLAN_REASON_FIELD, msg.reason);
      break;
    case MessageType.ERROR:
      body.writeInt32LE(msg.code, 0);
      writeString(body, 4, ERROR_MESSAGE_FIELD, msg.message);
      break;
  }
  return frame;
}

function decodeBody(type: MessageTypeCode, body: Buffer): Message {
  switch (type) {
    case MessageType.HELLO:
      return {
        type,
        pid: body.readUInt32LE(0),
        flags: body.readUInt32LE(4),
        vm: readString(body, 8, VM_NAME_FIELD),
        bhyve: readString(body, 240, BHYVE_TAG_FIELD),
      };
    case MessageType.PLAN_REQUEST:
      return { type, ncpus: body.readUInt32LE(0), boot: body.readUInt32LE(4) };
    case MessageType.EVENT:
      return {
        type,
        kind: body.readUInt32LE(0),
        vcpu: body.readInt32LE(4),
        arg: body.readInt32LE(8),
        monotonicNs: body.readBigUInt64LE(16),
      };
    case MessageType.WELCOME:
      return {
        type,
        session: body.readUInt32LE(0),
        variant: body.readUInt32LE(4),
        kernelCpusetBytes: body.readUInt32LE(8),
        vmrunAbi: body.readUInt32LE(12),
        flags: body.readUInt32LE(16),
      };
    case MessageType.PLAN: {
      const action = body.readUInt32LE(0);
      if (action !== PlanAction.PASS_THROUGH && action !== PlanAction.PARK) {
        throw new ProtocolError(`PLAN action ${action} is not 0 (pass-through) or 1 (park)`);
      }
      return {
        type,
        action,
        spinupBias: body.readUInt32LE(4),
        parkedMask: body.readBigUInt64LE(8),
        boot: body.readUInt32LE(16),
        reason: readString(body, 24, PLAN_REASON_FIELD),
      };
    }
    case MessageType.ERROR:
      return { type, code: body.readInt32LE(0), message: readString(body, 4, ERROR_MESSAGE_FIELD) };
  }
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
