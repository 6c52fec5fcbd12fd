// Mutations of one input, after libFuzzer's (MutationDispatcher): bit and byte changes,
// interesting integers, inserted, erased, copied and filled ranges, crossover with another input,
// dictionary tokens, and whole-word replacement for text formats (key = value lines).

/** xorshift32: fast and reproducible from --seed. */
export class Random {
  private state: number;
  constructor(seed: number) {
    this.state = seed >>> 0 || 0x9e3779b9;
  }
  next(): number {
    let x = this.state;
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    this.state = x >>> 0;
    return this.state;
  }
  /** 0 <= n < bound */
  below(bound: number): number {
    return bound <= 1 ? 0 : this.next() % bound;
  }
}

const INTERESTING_8 = [0x00, 0x01, 0x7f, 0x80, 0xff, 0x20, 0x0a, 0x3d, 0x23, 0x5b, 0x5d, 0x22];
const INTERESTING_32 = [0, 1, 2, 4, 8, 16, 32, 64, 100, 127, 128, 255, 256, 4096, 4097, 0x7fff, 0x8000, 0xffff, 0x10000, 0x7fffffff, 0x80000000, 0xffffffff];

export interface MutationContext {
  readonly random: Random;
  readonly maxLength: number;
  /** Tokens worth inserting whole (the format's keywords, type codes, sizes). */
  readonly dictionary: readonly Buffer[];
  /** Another corpus input, for crossover. */
  other(): Buffer;
}

type Mutation = (input: Buffer, ctx: MutationContext) => Buffer | null;

function pos(ctx: MutationContext, length: number): number {
  return ctx.random.below(length);
}

function splice(input: Buffer, at: number, remove: number, insert: Buffer): Buffer {
  return Buffer.concat([input.subarray(0, at), insert, input.subarray(at + remove)]);
}

const flipBit: Mutation = (input, ctx) => {
  if (input.length === 0) return null;
  const out = Buffer.from(input);
  const i = pos(ctx, out.length);
  out[i] = out[i]! ^ (1 << ctx.random.below(8));
  return out;
};

const randomByte: Mutation = (input, ctx) => {
  if (input.length === 0) return null;
  const out = Buffer.from(input);
  out[pos(ctx, out.length)] = ctx.random.below(256);
  return out;
};

const interestingByte: Mutation = (input, ctx) => {
  if (input.length === 0) return null;
  const out = Buffer.from(input);
  out[pos(ctx, out.length)] = INTERESTING_8[ctx.random.below(INTERESTING_8.length)]!;
  return out;
};

const interestingWord: Mutation = (input, ctx) => {
  if (input.length < 4) return null;
  const out = Buffer.from(input);
  out.writeUInt32LE(INTERESTING_32[ctx.random.below(INTERESTING_32.length)]!, pos(ctx, out.length - 3));
  return out;
};

const arithmetic: Mutation = (input, ctx) => {
  if (input.length < 4) return null;
  const out = Buffer.from(input);
  const at = pos(ctx, out.length - 3);
  const delta = ctx.random.below(35) - 17;
  out.writeUInt32LE((out.readUInt32LE(at) + delta) >>> 0, at);
  return out;
};

const insertBytes: Mutation = (input, ctx) => {
  const n = 1 + ctx.random.below(8);
  const bytes = Buffer.alloc(n);
  const fill = ctx.random.below(2) === 0 ? ctx.random.below(256) : -1;
  for (let i = 0; i < n; i++) bytes[i] = fill >= 0 ? fill : ctx.random.below(256);
  return splice(input, pos(ctx, input.length + 1), 0, bytes);
};

const eraseBytes: Mutation = (input, ctx) => {
  if (input.length < 2) return null;
  const at = pos(ctx, input.length);
  const n = 1 + ctx.random.below(Math.min(64, input.length - at));
  return splice(input, at, n, Buffer.alloc(0));
};

const copyPart: Mutation = (input, ctx) => {
  if (input.length < 2) return null;
  const from = pos(ctx, input.length);
  const n = 1 + ctx.random.below(Math.min(128, input.length - from));
  const part = Buffer.from(input.subarray(from, from + n));
  return ctx.random.below(2) === 0
    ? splice(input, pos(ctx, input.length + 1), 0, part)
    : splice(input, pos(ctx, input.length), Math.min(n, input.length), part);
};

/** Overwrites a range with one byte (AFL's block fill): fixed-size string fields without a NUL. */
const fillRange: Mutation = (input, ctx) => {
  if (input.length === 0) return null;
  const out = Buffer.from(input);
  const at = pos(ctx, out.length);
  // Often to the end: the last field of a fixed layout.
  const n = ctx.random.below(4) === 0 ? out.length - at : 1 + ctx.random.below(Math.min(512, out.length - at));
  out.fill(ctx.random.below(2) === 0 ? 0x41 : ctx.random.below(256), at, at + n);
  return out;
};

const crossOver: Mutation = (input, ctx) => {
  const other = ctx.other();
  if (other.length === 0) return null;
  const from = pos(ctx, other.length);
  const n = 1 + ctx.random.below(other.length - from);
  const at = pos(ctx, input.length + 1);
  return ctx.random.below(2) === 0
    ? splice(input, at, 0, other.subarray(from, from + n))
    : Buffer.concat([input.subarray(0, at), other.subarray(from)]);
};

const insertToken: Mutation = (input, ctx) => {
  if (ctx.dictionary.length === 0) return null;
  const token = ctx.dictionary[ctx.random.below(ctx.dictionary.length)]!;
  const at = pos(ctx, input.length + 1);
  return ctx.random.below(2) === 0 ? splice(input, at, 0, token) : splice(input, at, Math.min(token.length, input.length - at), token);
};

function isWordByte(b: number): boolean {
  return (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x5f;
}

/** Replaces one whole word ([A-Za-z0-9_]+) with a dictionary token: keys and values of a text format. */
const replaceWord: Mutation = (input, ctx) => {
  if (ctx.dictionary.length === 0 || input.length === 0) return null;
  let start = pos(ctx, input.length);
  while (start < input.length && !isWordByte(input[start]!)) start++;
  if (start >= input.length) return null;
  while (start > 0 && isWordByte(input[start - 1]!)) start--;
  let end = start;
  while (end < input.length && isWordByte(input[end]!)) end++;
  return splice(input, start, end - start, ctx.dictionary[ctx.random.below(ctx.dictionary.length)]!);
};

const MUTATIONS: readonly Mutation[] = [
  flipBit, randomByte, interestingByte, interestingWord, arithmetic, insertBytes, eraseBytes,
  copyPart, fillRange, crossOver, insertToken, replaceWord,
];

/** One to four stacked mutations of `input` (never longer than maxLength). */
export function mutate(input: Buffer, ctx: MutationContext): Buffer {
  let out = input;
  const rounds = 1 + ctx.random.below(4);
  for (let i = 0; i < rounds; i++) {
    const next = MUTATIONS[ctx.random.below(MUTATIONS.length)]!(out, ctx);
    if (next !== null) out = next;
  }
  if (out === input) out = insertBytes(input, ctx)!;
  return out.length > ctx.maxLength ? out.subarray(0, ctx.maxLength) : out;
}
