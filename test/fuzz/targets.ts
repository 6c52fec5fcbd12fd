// The fuzz targets: every decoder that reads bytes from another process (docs/fuzzing.md).
// TypeScript targets run the product's decoder in-process and check its contract after each
// input; C targets are libFuzzer binaries built from native-bindings/fuzz/ (fuzz.mk).
import path from 'node:path';
import { CONFIG_KEYS, ConfigError, RESERVED_JAIL_NAMES, parseConfig, type Config } from '../../src/config/config';
import { KERNEL_VARIANTS } from '../../src/daemon/kernel-variant';
import {
  BODY_BYTES_BY_VERSION,
  FrameReader,
  HEADER_BYTES,
  LAYOUTS,
  MAX_BODY_BYTES,
  MessageType,
  ProtocolError,
  SUPPORTED_PROTOCOL_VERSIONS,
  encode,
  type Message,
  type MessageTypeCode,
} from '../../src/daemon/protocol';
import type { FuzzTarget } from './engine/fuzzer';

export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
export const CORPUS_ROOT = path.join(REPO_ROOT, 'test', 'fuzz', 'corpus');

/** A decoder broke its contract (not a refusal of bad input: that is the decoder's job). */
export class ContractBreach extends Error {
  override name = 'ContractBreach';
}

function breach(what: string): never {
  throw new ContractBreach(what);
}

// ---- the daemon's frame decoder (src/daemon/protocol.ts) -----------------------------------

interface Decoded {
  messages: Message[];
  error: string | null;
  /** The version the connection speaks once its first header arrived. */
  version: number | null;
}

/** Pushes `chunks` into one reader made as the daemon makes it (compat-server.ts), as a connection's data events. */
function decodeStream(chunks: readonly Buffer[]): Decoded {
  const reader = new FrameReader(SUPPORTED_PROTOCOL_VERSIONS);
  const messages: Message[] = [];
  try {
    for (const chunk of chunks) {
      messages.push(...reader.push(chunk));
      if (reader.buffered > HEADER_BYTES + MAX_BODY_BYTES) breach(`${reader.buffered} bytes buffered, more than one frame`);
    }
  } catch (err) {
    if (err instanceof ProtocolError) return { messages, error: err.message, version: reader.version };
    throw err;
  }
  return { messages, error: null, version: reader.version };
}

function sameMessage(a: Message, b: Message, version: number): boolean {
  if (a.type !== b.type) return false;
  const va = a as unknown as Readonly<Record<string, unknown>>;
  const vb = b as unknown as Readonly<Record<string, unknown>>;
  return LAYOUTS[version]![a.type].every((f) => va[f.name] === vb[f.name]);
}

/**
 * Contract: the same bytes decode to the same messages however the stream is cut; every decoded
 * message encodes to a frame that decodes to the same message (nothing is read that the daemon
 * could not have meant); a refusal is a ProtocolError; nothing beyond one frame is buffered.
 */
export const daemonFrame: FuzzTarget = {
  name: 'daemon-frame',
  maxLength: 4 * (HEADER_BYTES + MAX_BODY_BYTES),
  watched: (url) => url.endsWith('/src/daemon/protocol.js'),
  run(input) {
    const whole = decodeStream([input]);
    // A cut that depends on the input, so that the fuzzer explores where streams split.
    const cut = input.length === 0 ? 0 : input[input.length - 1]! % (input.length + 1);
    const split = decodeStream([input.subarray(0, cut), input.subarray(cut)]);
    if ((whole.error === null) !== (split.error === null) || (whole.error !== null && whole.error !== split.error)) {
      breach(`cut at ${cut}: "${whole.error}" whole, "${split.error}" in two pieces`);
    }
    if (whole.error !== null || whole.version === null) return;
    const version = whole.version;
    if (whole.messages.length !== split.messages.length || !whole.messages.every((m, i) => sameMessage(m, split.messages[i]!, version))) {
      breach(`cut at ${cut} changes the decoded messages`);
    }
    for (const msg of whole.messages) {
      const again = decodeStream([encode(msg, version)]);
      if (again.error !== null || again.messages.length !== 1 || !sameMessage(msg, again.messages[0]!, version)) {
        breach(`message type ${msg.type} does not survive encode and decode in version ${version}: ${again.error ?? 'fields differ'}`);
      }
    }
  },
  dictionary() {
    const tokens: Buffer[] = [];
    const u16 = (v: number): Buffer => Buffer.from([v & 0xff, v >> 8]);
    const u32 = (v: number): Buffer => {
      const b = Buffer.alloc(4);
      b.writeUInt32LE(v >>> 0);
      return b;
    };
    tokens.push(u32(MAX_BODY_BYTES), u32(MAX_BODY_BYTES + 1));
    for (const version of SUPPORTED_PROTOCOL_VERSIONS) {
      tokens.push(u16(version));
      for (const type of Object.values(MessageType)) {
        tokens.push(u16(type), u32(BODY_BYTES_BY_VERSION[version]![type]), encode(sampleMessage(type), version).subarray(0, HEADER_BYTES));
      }
    }
    return tokens;
  },
};

/** One message of each type with every field of every version set (the seeds' and the dictionary's). */
export function sampleMessage(type: MessageTypeCode): Message {
  switch (type) {
    case MessageType.HELLO:
      return { type, pid: 4242, flags: 0, vm: 'guest-1', bhyve: '13.1' };
    case MessageType.PLAN_REQUEST:
      return { type, ncpus: 4, boot: 0 };
    case MessageType.EVENT:
      return { type, kind: 2, vcpu: 1, arg: 150, monotonicNs: 123456789n };
    case MessageType.WELCOME:
      return { type, session: 1, variant: 2, kernelCpusetBytes: 32, vmrunAbi: 13, flags: 0 };
    case MessageType.PLAN:
      return { type, action: 1, spinupBias: 1, parkedMask: 0xen, boot: 0, reason: 'park APs 1..3', parkedSet: 0xen };
    case MessageType.ERROR:
      return { type, code: 1, message: 'refused' };
  }
}

// ---- the configuration parser (src/config/config.ts) ---------------------------------------

const FUZZ_CONFIG_FILE = 'fuzz.conf';

function checkConfig(c: Config): void {
  const absolute = (p: string, what: string): void => {
    if (!path.isAbsolute(p) || path.normalize(p) !== p) breach(`${what} "${p}" is not an absolute normal path`);
  };
  absolute(c.socketDir, 'socket_dir');
  absolute(c.deviceDir, 'device_dir');
  if (c.logFile !== null) absolute(c.logFile, 'log_file');
  if (c.kernelVariant !== 'auto' && !(KERNEL_VARIANTS as readonly string[]).includes(c.kernelVariant)) breach(`kernel_variant ${c.kernelVariant}`);
  for (const n of [c.parkerBootPollUs, c.parkerBootWindowMs, c.parkerIdlePollMs]) {
    if (!Number.isSafeInteger(n) || n < 0) breach(`a parker setting of ${n}`);
  }
  if (c.metricsListen && !(Number.isInteger(c.metricsListen.port) && c.metricsListen.port >= 1 && c.metricsListen.port <= 65535)) {
    breach(`metrics port ${c.metricsListen.port}`);
  }
  const dirs = new Set([c.socketDir]);
  const names = new Set<string>();
  for (const j of c.jails) {
    absolute(j.socketDir, `jail ${j.name} socket_dir`);
    if (dirs.has(j.socketDir) || names.has(j.name)) breach(`jail ${j.name} shares a name or a socket directory`);
    dirs.add(j.socketDir);
    names.add(j.name);
  }
}

/**
 * Contract: a file is either refused with a ConfigError that names the file (and so the line),
 * or accepted as a configuration that keeps the documented rules (absolute paths, ranges, one
 * socket directory per jail). The bytes are read as loadConfig reads the file (UTF-8).
 */
export const configFile: FuzzTarget = {
  name: 'config-file',
  maxLength: 4096,
  watched: (url) => url.endsWith('/src/config/config.js'),
  run(input) {
    let config: Config;
    try {
      config = parseConfig(input.toString('utf8'), FUZZ_CONFIG_FILE);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      if (!err.message.startsWith(FUZZ_CONFIG_FILE)) breach(`a refusal that does not name the file: ${err.message}`);
      return;
    }
    checkConfig(config);
  },
  dictionary() {
    const words = [
      ...CONFIG_KEYS, ...KERNEL_VARIANTS, ...RESERVED_JAIL_NAMES, 'auto', 'yes', 'no', 'fallback', 'refuse', 'info', 'trace',
      '[jail ', ']', ' = ', '\n', '#', '"', '/var/run/vmm-compat', '127.0.0.1:9641', '[::1]:1', 'localhost:65535',
      // Names every JavaScript object answers to: a parser that looks keys up in an object must
      // not take them for its own keys.
      '__proto__', 'constructor', 'prototype', 'hasOwnProperty', 'toString', 'valueOf', 'isPrototypeOf',
    ];
    return words.map((w) => Buffer.from(w, 'utf8'));
  },
};

export const TS_TARGETS: readonly FuzzTarget[] = [daemonFrame, configFile];

// ---- C targets (native-bindings/fuzz/) --------------------------------------------------

/** Product code whose coverage is the target's: a file, or some of its functions. */
export interface CoveredSource {
  readonly file: string;
  readonly functions?: readonly string[];
}

export interface CTarget {
  readonly name: string;
  /** What it reads, for the report. */
  readonly reads: string;
  readonly sources: readonly CoveredSource[];
}

export const C_TARGETS: readonly CTarget[] = [
  { name: 'daemon-reply', reads: "the interposer's reader of vmm-compatd's replies", sources: [{ file: 'shim/daemon_reply.c' }] },
  {
    name: 'bridge-reply',
    reads: "the lab bridge's reader of the kernel model's answers",
    // bridge_frame.c also builds the bridge's requests, which no answer reaches.
    sources: [
      { file: 'lab/bridge_reply.c' },
      { file: 'lab/bridge_frame.c', functions: ['frame_parse_header', 'frame_copyin_head', 'frame_copyout_done', 'frame_finish'] },
    ],
  },
];

export const TARGET_READS: Readonly<Record<string, string>> = {
  'daemon-frame': "the daemon's decoder of interposer frames (FrameReader)",
  'config-file': "the daemon's configuration parser (parseConfig)",
  ...Object.fromEntries(C_TARGETS.map((t) => [t.name, t.reads])),
};

export const ALL_TARGET_NAMES: readonly string[] = [...C_TARGETS.map((t) => t.name), ...TS_TARGETS.map((t) => t.name)];

export function corpusDir(target: string): string {
  return path.join(CORPUS_ROOT, target);
}
