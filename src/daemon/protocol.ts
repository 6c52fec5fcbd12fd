// The compat protocol between libvmmcompat.so and vmm-compatd (docs/internals.md section 5).
// Fixed-layout little-endian frames so that the C side needs no parser library: an 8-byte
// header (u32 body length, u16 version, u16 type) and a body whose size is fixed per type.
//
// Version 2 widened PLAN by the 256-bit set of parked APs (13.x userland's CPU_SETSIZE: a
// 13.2+ bhyve runs up to 256 vCPUs); version 1 carried a 64-bit mask. The daemon still answers
// version 1 interposers (deprecated: they never plan more than 16 vCPUs) in version 1 frames.

export const PROTOCOL_VERSION = 2;
/** Versions the daemon accepts; a connection keeps the version of its first frame. */
export const SUPPORTED_PROTOCOL_VERSIONS: readonly number[] = [1, 2];
/** Versions still accepted but on their way out. */
export const DEPRECATED_PROTOCOL_VERSIONS: readonly number[] = [1];
export const HEADER_BYTES = 8;
export const MAX_BODY_BYTES = 4096;
/** 13.x userland cpuset_t (CPU_SETSIZE 256): the most vCPUs a legacy bhyve can name. */
export const VCPU_SET_BYTES = 32;

export const MessageType = {
  HELLO: 1,
  PLAN_REQUEST: 2,
  EVENT: 3,
  WELCOME: 101,
  PLAN: 102,
  ERROR: 199,
} as const;
export type MessageTypeCode = (typeof MessageType)[keyof typeof MessageType];


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
   * The VM was destroyed under the running bhyve: VM_EXITCODE_SUSPENDED with 15.0's
   * VM_SUSPEND_DESTROY on vcpu (arg 5), or a VM_RUN on vcpu or a VM_GET_CPUS (vcpu -1) refused
   * with ENXIO (arg -6), the device being gone. The
   * interposer ends bhyve with status 4, as a 15.0 bhyve does.
   */
  VM_DESTROYED: 14,
  /** A memory-segment request was translated for a 15.0 kernel (arg: the 13.1 IOCNUM, 14..17). */
  MEMSEG_TRANSLATED: 15,
  /**
   * What the kernel answered at open (arg bits): 1 no 144-byte VM_RUN (no COMPAT_FREEBSD13),
   * 2 the 15.0 guest-NUMA memseg, 4 no 32-byte memseg requests (no COMPAT_FREEBSD14).
   */
  KERNEL_ABI: 16,
  /**
   * The bhyve's release as the interposer learned it (arg: __FreeBSD_version): from its ELF
   * note NT_FREEBSD_ABI_TAG, else 1300000 or 1400000 from its first VM_RUN (144 or 32 bytes;
   * shim/interpose.c vm_run_first and on_vm_run14, the only callers of bhyve_learned).
   */
  BHYVE_GENERATION: 17,
  /** The bhyve (arg: __FreeBSD_version) is as new as the kernel: no compat action at all. */
  BHYVE_NATIVE: 18,
  /** The bhyve (arg: __FreeBSD_version) is newer than the kernel: its open was refused. */
  BHYVE_REFUSED: 19,
  /**
   * Events of kind `vcpu` that the interposer held back instead of sending (arg: how many since
   * the last one sent): a guest can repeat some without end (a re-sent SIPI is a
   * spinup-duplicate), so each boot sends a few, then one per power of two, then the count.
   */
  EVENTS_COALESCED: 20,
  /**
   * A SPINUP_AP for vCPU `vcpu` (raised on `arg`), which this VM does not have (at or above its
   * topology's vCPU count): swallowed, as hardware drops an IPI to an absent APIC ID; 13.1 bhyve
   * would abort on spinup_ap's assert(newcpu < guest_ncpus). Coalesced like spinup-duplicate.
   */
  SPINUP_ABSENT: 21,
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
  /** The parked APs below 64 (version 1's whole mask; in version 2 the low word of parkedSet). */
  parkedMask: bigint;
  boot: number;
  reason: string;
  /** Version 2: every parked AP, bit k = vCPU k, 256 bits (absent from version 1 frames). */
  parkedSet?: bigint;
}
export interface ErrorReply { type: typeof MessageType.ERROR; code: number; message: string }
export type Message = Hello | PlanRequest | CompatEvent | Welcome | PlanReply | ErrorReply;

/** A protocol violation: the peer gets ERROR with this text and the connection is closed. */
export class ProtocolError extends Error {
  constructor(message: string, readonly code = 22 /* EINVAL */) {
    super(message);
  }
}

type FieldKind = 'u32' | 'i32' | 'u64' | 'str' | 'set';
export interface ProtocolField {
  readonly name: string;
  readonly kind: FieldKind;
  readonly offset: number;
  /** Bytes; for 'str' the NUL-padded array size, for 'set' the bytes of a little-endian bit set. */
  readonly size: number;
}

type Layout = Readonly<Record<MessageTypeCode, readonly ProtocolField[]>>;

/** Version 1's PLAN: a 64-bit mask of parked APs (deprecated). */
const PLAN_V1: readonly ProtocolField[] = [
  { name: 'action', kind: 'u32', offset: 0, size: 4 },
  { name: 'spinupBias', kind: 'u32', offset: 4, size: 4 },
  { name: 'parkedMask', kind: 'u64', offset: 8, size: 8 },
  { name: 'boot', kind: 'u32', offset: 16, size: 4 },
  { name: 'reason', kind: 'str', offset: 24, size: PLAN_REASON_FIELD },
];

/**
 * The body layout of every message, in one table: encode and decode read it, and
 * gen-protocol-header.ts writes the same offsets for the C side (vmm_compat_proto_gen.h), so
 * the interposer and the daemon cannot disagree. This is the current version's (2); version 1
 * differs in PLAN only (LAYOUTS).
 */
export const LAYOUT: Layout = {
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
  // Version 1's body, then the whole set: a version 2 body extends the version 1 body.
  [MessageType.PLAN]: [...PLAN_V1, { name: 'parkedSet', kind: 'set', offset: 128, size: VCPU_SET_BYTES }],
  [MessageType.ERROR]: [
    { name: 'code', kind: 'i32', offset: 0, size: 4 },
    { name: 'message', kind: 'str', offset: 4, size: ERROR_MESSAGE_FIELD },
  ],
};

/** The layout of each supported version. */
export const LAYOUTS: Readonly<Record<number, Layout>> = {
  1: { ...LAYOUT, [MessageType.PLAN]: PLAN_V1 },
  2: LAYOUT,
};

const BODY_BYTES_V1: Readonly<Record<MessageTypeCode, number>> = {
  [MessageType.HELLO]: 304,
  [MessageType.PLAN_REQUEST]: 8,
  [MessageType.EVENT]: 24,
  [MessageType.WELCOME]: 20,
  [MessageType.PLAN]: 128,
  [MessageType.ERROR]: 256,
};

/** Body size per type and version (fixed: a frame of another length is refused). */
export const BODY_BYTES_BY_VERSION: Readonly<Record<number, Readonly<Record<MessageTypeCode, number>>>> = {
  1: BODY_BYTES_V1,
  2: { ...BODY_BYTES_V1, [MessageType.PLAN]: 160 },
};
export const BODY_BYTES: Readonly<Record<MessageTypeCode, number>> = BODY_BYTES_BY_VERSION[PROTOCOL_VERSION]!;

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
    case 'set': {
      let bits = 0n;
      for (let i = f.size - 8; i >= 0; i -= 8) bits = (bits << 64n) | body.readBigUInt64LE(f.offset + i);
      return bits;
    }
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
    case 'set': {
      let bits = BigInt(value);
      if (bits < 0n || bits >> BigInt(f.size * 8) !== 0n) throw new RangeError(`${f.name} does not fit ${f.size * 8} bits`);
      for (let i = 0; i < f.size; i += 8, bits >>= 64n) body.writeBigUInt64LE(bits & 0xffffffffffffffffn, f.offset + i);
      break;
    }
    case 'str': {
      const bytes = Buffer.from(String(value), 'utf8');
      // Always leave room for the terminating NUL; truncation of diagnostics is acceptable.
      bytes.copy(body, f.offset, 0, Math.min(bytes.length, f.size - 1));
      break;
    }
  }
}

/** The frame of `msg` in protocol `version` (default the current one). */
export function encode(msg: Message, version = PROTOCOL_VERSION): Buffer {
  const layout = LAYOUTS[version];
  if (!layout) throw new RangeError(`protocol version ${version} is not supported`);
  const bodySize = BODY_BYTES_BY_VERSION[version]![msg.type];
  const frame = Buffer.alloc(HEADER_BYTES + bodySize);
  frame.writeUInt32LE(bodySize, 0);
  frame.writeUInt16LE(version, 4);
  frame.writeUInt16LE(msg.type, 6);
  const body = frame.subarray(HEADER_BYTES);
  const values = msg as unknown as Readonly<Record<string, FieldValue | undefined>>;
  for (const f of layout[msg.type]) {
    const value = values[f.name];
    if (value === undefined) throw new RangeError(`message type ${msg.type} needs field ${f.name} in protocol version ${version}`);
    writeField(body, f, value);
  }
  return frame;
}

function decodeBody(type: MessageTypeCode, body: Buffer, version: number): Message {
  const fields: Record<string, FieldValue> = { type };
  for (const f of LAYOUTS[version]![type]) fields[f.name] = readField(body, f);
  if (type === MessageType.PLAN && fields.action !== PlanAction.PASS_THROUGH && fields.action !== PlanAction.PARK) {
    throw new ProtocolError(`PLAN action ${String(fields.action)} is not 0 (pass-through) or 1 (park)`);
  }
  if (type === MessageType.PLAN && fields.parkedSet !== undefined && fields.parkedMask !== (fields.parkedSet as bigint) % (1n << 64n)) {
    throw new ProtocolError('PLAN parkedMask is not the low 64 bits of parkedSet');
  }
  return fields as unknown as Message;
}

function isKnownType(type: number): type is MessageTypeCode {
  return Object.prototype.hasOwnProperty.call(BODY_BYTES, type);
}

/**
 * Incremental decoder for a byte stream. Validates the header before it waits for a body, so a
 * peer announcing 4 GiB is refused at once instead of being buffered. The first frame's version
 * (one of `accepted`) is the connection's: a later frame of another version is refused.
 */
export class FrameReader {
  private pending: Buffer = Buffer.alloc(0);
  private connectionVersion: number | null = null;

  constructor(private readonly accepted: readonly number[] = [PROTOCOL_VERSION]) {}

  /** The version this stream speaks, once its first frame header arrived. */
  get version(): number | null {
    return this.connectionVersion;
  }

  push(chunk: Buffer): Message[] {
    this.append(chunk);
    const messages: Message[] = [];
    for (let m = this.next(); m !== null; m = this.next()) messages.push(m);
    return messages;
  }

  /** Adds bytes without decoding them (the daemon decodes one message at a time, next()). */
  append(chunk: Buffer): void {
    this.pending = this.pending.length === 0 ? chunk : Buffer.concat([this.pending, chunk]);
  }

  /**
   * The next whole message, or null until more bytes arrive. The header is checked as soon as it
   * is here, before its body is waited for. Throws ProtocolError.
   */
  next(): Message | null {
    if (this.pending.length < HEADER_BYTES) return null;
    const length = this.pending.readUInt32LE(0);
    const version = this.pending.readUInt16LE(4);
    const type = this.pending.readUInt16LE(6);
    if (!this.accepted.includes(version)) {
      throw new ProtocolError(
        `protocol version ${version} is not supported (vmm-compatd speaks version${this.accepted.length > 1 ? 's' : ''} ${this.accepted.join(', ')}); ` +
          'install matching libvmmcompat.so and vmm-compatd versions',
        43 /* EPROTONOSUPPORT on FreeBSD */,
      );
    }
    if (this.connectionVersion !== null && version !== this.connectionVersion) {
      throw new ProtocolError(`protocol version ${version} after frames of version ${this.connectionVersion} on one connection`);
    }
    this.connectionVersion = version;
    const sizes = BODY_BYTES_BY_VERSION[version]!;
    if (length > MAX_BODY_BYTES) {
      throw new ProtocolError(`frame body of ${length} bytes exceeds the ${MAX_BODY_BYTES}-byte limit`);
    }
    if (!isKnownType(type)) throw new ProtocolError(`unknown message type ${type}`);
    if (length !== sizes[type]) {
      throw new ProtocolError(`message type ${type} must have a ${sizes[type]}-byte body, got ${length}`);
    }
    if (this.pending.length < HEADER_BYTES + length) return null;
    const body = Buffer.from(this.pending.subarray(HEADER_BYTES, HEADER_BYTES + length));
    this.pending = this.pending.subarray(HEADER_BYTES + length);
    return decodeBody(type, body, version);
  }

  get buffered(): number {
    return this.pending.length;
  }
}
