// Table-driven struct layouts for LP64 amd64 (the SysV x86-64 rules FreeBSD's clang uses):
// every scalar is aligned to its size, a struct is aligned to its largest member and padded to a
// multiple of that alignment. A layout is written as a list of fields; offsets and the size are
// computed here, never typed in, and the tests compare them with the reference tables.
//
// Value types: i32/u32/u16/u8 decode to number, i64/u64/ptr to bigint, bytes to a Buffer copy.

export type FieldType = 'i32' | 'u32' | 'u16' | 'u8' | 'i64' | 'u64' | 'ptr' | 'bytes';
export type ScalarType = Exclude<FieldType, 'bytes'>;

/** One field of a computed layout. */
export interface FieldDef {
  readonly name: string;
  readonly type: FieldType;
  readonly offset: number;
  readonly size: number;
}

/** What the generators and tables need: no codec. */
export interface StructLayout {
  /** FreeBSD's struct name (without `struct`), e.g. 'vm_run'. */
  readonly name: string;
  readonly size: number;
  readonly align: number;
  readonly fields: readonly FieldDef[];
}

export interface StructDef<T> extends StructLayout {
  /** A new `size`-byte buffer; unspecified fields and padding are zero. */
  encode(value: Partial<T>): Buffer;
  /** Writes the given fields into `target` at `offset` (other bytes untouched); returns `target`. */
  encodeInto(target: Buffer, value: Partial<T>, offset?: number): Buffer;
  /** Reads every field; throws if fewer than `size` bytes are available at `offset`. */
  decode(buf: Buffer, offset?: number): T;
}

export interface ScalarSpec<N extends string = string, K extends ScalarType = ScalarType> {
  readonly name: N;
  readonly type: K;
}
export interface BytesSpec<N extends string = string> {
  readonly name: N;
  readonly type: 'bytes';
  readonly size: number;
  /** Alignment of the embedded object (an embedded struct or union of longs: 8). Default 1. */
  readonly align: number;
}
export type FieldSpec = ScalarSpec | BytesSpec;

export type FieldValue<K extends FieldType> = K extends 'i64' | 'u64' | 'ptr' ? bigint : K extends 'bytes' ? Buffer : number;

/** The decoded value of a struct described by `S`. */
export type StructValue<S extends readonly FieldSpec[]> = {
  -readonly [F in S[number] as F['name']]: FieldValue<F['type']>;
};

/** The value type of a StructDef. */
export type ValueOf<D> = D extends StructDef<infer T> ? T : never;

const SCALAR_SIZE: Readonly<Record<ScalarType, number>> = {
  i32: 4,
  u32: 4,
  u16: 2,
  u8: 1,
  i64: 8,
  u64: 8,
  ptr: 8,
};

const SCALAR_RANGE: Readonly<Record<'i32' | 'u32' | 'u16' | 'u8', readonly [number, number]>> = {
  i32: [-0x80000000, 0x7fffffff],
  u32: [0, 0xffffffff],
  u16: [0, 0xffff],
  u8: [0, 0xff],
};

const BIG_RANGE: Readonly<Record<'i64' | 'u64' | 'ptr', readonly [bigint, bigint]>> = {
  i64: [-(1n << 63n), (1n << 63n) - 1n],
  u64: [0n, (1n << 64n) - 1n],
  ptr: [0n, (1n << 64n) - 1n],
};

// Field spec helpers: the literal name and type are kept so that the value type can be derived.
export function i32<const N extends string>(name: N): ScalarSpec<N, 'i32'> {
  return { name, type: 'i32' };
}
export function u32<const N extends string>(name: N): ScalarSpec<N, 'u32'> {
  return { name, type: 'u32' };
}
export function u16<const N extends string>(name: N): ScalarSpec<N, 'u16'> {
  return { name, type: 'u16' };
}
export function u8<const N extends string>(name: N): ScalarSpec<N, 'u8'> {
  return { name, type: 'u8' };
}
export function i64<const N extends string>(name: N): ScalarSpec<N, 'i64'> {
  return { name, type: 'i64' };
}
export function u64<const N extends string>(name: N): ScalarSpec<N, 'u64'> {
  return { name, type: 'u64' };
}
export function ptr<const N extends string>(name: N): ScalarSpec<N, 'ptr'> {
  return { name, type: 'ptr' };
}
export function bytes<const N extends string>(name: N, size: number, align = 1): BytesSpec<N> {
  return { name, type: 'bytes', size, align };
}

function roundUp(n: number, align: number): number {
  return Math.ceil(n / align) * align;
}

function computeLayout(specs: readonly FieldSpec[]): { fields: FieldDef[]; size: number; align: number } {
  let cursor = 0;
  let maxAlign = 1;
  const fields: FieldDef[] = [];
  const seen = new Set<string>();
  for (const spec of specs) {
    if (seen.has(spec.name)) throw new Error(`layout: duplicate field ${spec.name}`);
    seen.add(spec.name);
    const size = spec.type === 'bytes' ? spec.size : SCALAR_SIZE[spec.type];
    const align = spec.type === 'bytes' ? spec.align : size;
    if (!Number.isInteger(size) || size <= 0) throw new Error(`layout: field ${spec.name} has bad size ${size}`);
    if (![1, 2, 4, 8].includes(align)) throw new Error(`layout: field ${spec.name} has bad alignment ${align}`);
    const offset = roundUp(cursor, align);
    fields.push({ name: spec.name, type: spec.type, offset, size });
    cursor = offset + size;
    maxAlign = Math.max(maxAlign, align);
  }
  return { fields, size: roundUp(cursor, maxAlign), align: maxAlign };
}

function writeField(structName: string, target: Buffer, base: number, field: FieldDef, value: unknown): void {
  const where = `${structName}.${field.name}`;
  const at = base + field.offset;
  switch (field.type) {
    case 'i32':
    case 'u32':
    case 'u16':
    case 'u8': {
      const [lo, hi] = SCALAR_RANGE[field.type];
      if (typeof value !== 'number' || !Number.isInteger(value) || value < lo || value > hi) {
        throw new RangeError(`${where}: ${String(value)} is not a ${field.type} (${lo}..${hi})`);
      }
      if (field.type === 'i32') target.writeInt32LE(value, at);
      else if (field.type === 'u32') target.writeUInt32LE(value, at);
      else if (field.type === 'u16') target.writeUInt16LE(value, at);
      else target.writeUInt8(value, at);
      return;
    }
    case 'i64':
    case 'u64':
    case 'ptr': {
      let big: bigint;
      if (typeof value === 'bigint') big = value;
      else if (typeof value === 'number' && Number.isSafeInteger(value)) big = BigInt(value);
      else throw new RangeError(`${where}: ${String(value)} is not a ${field.type} (bigint expected)`);
      const [lo, hi] = BIG_RANGE[field.type];
      if (big < lo || big > hi) throw new RangeError(`${where}: ${big} does not fit ${field.type}`);
      if (field.type === 'i64') target.writeBigInt64LE(big, at);
      else target.writeBigUInt64LE(big, at);
      return;
    }
    case 'bytes': {
      if (!Buffer.isBuffer(value)) throw new TypeError(`${where}: a Buffer is expected`);
      if (value.length > field.size) {
        throw new RangeError(`${where}: ${value.length} bytes do not fit in ${field.size}`);
      }
      target.fill(0, at, at + field.size);
      value.copy(target, at);
      return;
    }
  }
}

function readField(buf: Buffer, base: number, field: FieldDef): number | bigint | Buffer {
  const at = base + field.offset;
  switch (field.type) {
    case 'i32':
      return buf.readInt32LE(at);
    case 'u32':
      return buf.readUInt32LE(at);
    case 'u16':
      return buf.readUInt16LE(at);
    case 'u8':
      return buf.readUInt8(at);
    case 'i64':
      return buf.readBigInt64LE(at);
    case 'u64':
    case 'ptr':
      return buf.readBigUInt64LE(at);
    case 'bytes':
      return Buffer.from(buf.subarray(at, at + field.size));
  }
}

function makeStruct<T>(name: string, layout: { fields: readonly FieldDef[]; size: number; align: number }): StructDef<T> {
  const fields = Object.freeze(layout.fields.map((f) => Object.freeze({ ...f })));
  const byName = new Map(fields.map((f) => [f.name, f]));
  const { size, align } = layout;

  function encodeInto(target: Buffer, value: Partial<T>, offset = 0): Buffer {
    if (!Number.isInteger(offset) || offset < 0 || target.length - offset < size) {
      throw new RangeError(`${name}: encode needs ${size} bytes at offset ${offset}, buffer has ${target.length}`);
    }
    const record = value as Readonly<Record<string, unknown>>;
    for (const key of Object.keys(record)) {
      const field = byName.get(key);
      if (field === undefined) throw new TypeError(`${name}: no field named ${key}`);
      const v = record[key];
      if (v !== undefined) writeField(name, target, offset, field, v);
    }
    return target;
  }

  return Object.freeze({
    name,
    size,
    align,
    fields,
    encode(value: Partial<T>): Buffer {
      return encodeInto(Buffer.alloc(size), value, 0);
    },
    encodeInto,
    decode(buf: Buffer, offset = 0): T {
      if (!Number.isInteger(offset) || offset < 0 || buf.length - offset < size) {
        throw new RangeError(
          `${name}: decode needs ${size} bytes at offset ${offset}, buffer has ${buf.length}`,
        );
      }
      const out: Record<string, number | bigint | Buffer> = {};
      for (const field of fields) out[field.name] = readField(buf, offset, field);
      return out as T;
    },
  });
}

/** A struct from its fields in declaration order; offsets and size follow the amd64 rules. */
export function defineStruct<const S extends readonly FieldSpec[]>(name: string, specs: S): StructDef<StructValue<S>> {
  return makeStruct<StructValue<S>>(name, computeLayout(specs));
}

/** The same layout and codec under another FreeBSD name (e.g. vm_stats as the kernel's vm_stats_old). */
export function renameStruct<T>(def: StructDef<T>, name: string): StructDef<T> {
  return makeStruct<T>(name, def);
}

/** A field of a layout by name; throws naming the struct if absent. */
export function fieldOf(layout: StructLayout, name: string): FieldDef {
  const field = layout.fields.find((f) => f.name === name);
  if (field === undefined) throw new Error(`${layout.name}: no field named ${name}`);
  return field;
}
