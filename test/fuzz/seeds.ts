// The seed corpus of every target, made from the product's own tables: frames of every message
// type from the compat protocol's LAYOUT (encode), answers of every kind from the lab model's
// codecs, WELCOMEs of every kernel variant, and configuration files with every key of the
// parser (its examples from docs/vmm-compat.conf.sample). `npm run fuzz` writes them as seed-*
// files of test/fuzz/corpus/<target>/; `npm test` replays them fresh, so a protocol or key added
// later is replayed before anyone regenerates the files.
import fs from 'node:fs';
import path from 'node:path';
import { CONFIG_KEYS } from '../../src/config/config';
import { VARIANT_CODE } from '../../src/daemon/kernel-variant';
import { MessageType, PlanAction, SUPPORTED_PROTOCOL_VERSIONS, encode, type Message } from '../../src/daemon/protocol';
import {
  FrameType,
  encodeCopyin,
  encodeCopyout,
  encodeFrame,
  encodeMmapReply,
  encodeReply,
} from '../../src/lab/kernel/protocol';
import { REPO_ROOT, sampleMessage } from './targets';

/** The caller-memory arena of native-bindings/fuzz/fuzz_bridge_reply.c (ARENA_BASE, ARENA_BYTES). */
const BRIDGE_ARENA_BASE = 0x10000n;
const BRIDGE_ARENA_BYTES = 8192;

/** Every message type in every protocol version the daemon accepts, and a session in each. */
function daemonFrameSeeds(): Map<string, Buffer> {
  const seeds = new Map<string, Buffer>();
  for (const version of SUPPORTED_PROTOCOL_VERSIONS) {
    for (const [name, type] of Object.entries(MessageType)) seeds.set(`seed-v${version}-${name.toLowerCase()}`, encode(sampleMessage(type), version));
    // A session as an interposer sends it: HELLO, PLAN_REQUEST, events.
    const session: Message[] = [
      sampleMessage(MessageType.HELLO),
      sampleMessage(MessageType.PLAN_REQUEST),
      { type: MessageType.EVENT, kind: 11, vcpu: 0, arg: 2500, monotonicNs: 1n },
      { type: MessageType.EVENT, kind: 2, vcpu: 1, arg: 300, monotonicNs: 2n },
    ];
    seeds.set(`seed-v${version}-session`, Buffer.concat(session.map((m) => encode(m, version))));
  }
  return seeds;
}

function daemonReplySeeds(): Map<string, Buffer> {
  const seeds = new Map<string, Buffer>();
  // The interposer speaks the current version (its header is generated from PROTOCOL_VERSION).
  const all = (1n << 256n) - 2n; // APs 1..255
  const park: Message = { type: MessageType.PLAN, action: PlanAction.PARK, spinupBias: 1, parkedMask: all & ((1n << 64n) - 1n), boot: 0, reason: 'park APs 1..255', parkedSet: all };
  const pass: Message = { type: MessageType.PLAN, action: PlanAction.PASS_THROUGH, spinupBias: 0, parkedMask: 0n, boot: 1, reason: 'no eager activation', parkedSet: 0n };
  for (const [variant, code] of Object.entries(VARIANT_CODE)) {
    const welcome: Message = { type: MessageType.WELCOME, session: 7, variant: code, kernelCpusetBytes: code >= 3 ? 128 : 32, vmrunAbi: 13, flags: 0 };
    seeds.set(`seed-welcome-${variant}-plans`, Buffer.concat([encode(welcome), encode(park), encode(pass)]));
  }
  seeds.set('seed-error-refusal', encode({ type: MessageType.ERROR, code: 1, message: 'process 42 does not hold /dev/vmm/vm0 open' }));
  const welcome14: Message = { type: MessageType.WELCOME, session: 1, variant: 3, kernelCpusetBytes: 128, vmrunAbi: 14, flags: 0 };
  seeds.set('seed-welcome-vmrun14-plan-error', Buffer.concat([encode(welcome14), encode(park), encode({ type: MessageType.ERROR, code: 16, message: 'cannot open the VM' })]));
  return seeds;
}

function bridgeReplySeeds(): Map<string, Buffer> {
  const seeds = new Map<string, Buffer>();
  const frame = (type: number, body: Buffer): Buffer => encodeFrame(type, body);
  const page = Buffer.alloc(BRIDGE_ARENA_BYTES / 2, 0xa5);
  seeds.set('seed-reply', frame(FrameType.REPLY, encodeReply(0)));
  seeds.set('seed-reply-errno', frame(FrameType.REPLY, encodeReply(-22)));
  seeds.set('seed-reply-payload', frame(FrameType.REPLY, encodeReply(0, Buffer.alloc(144, 1))));
  seeds.set('seed-reply-long-payload', frame(FrameType.REPLY, encodeReply(0, Buffer.alloc(5000, 2))));
  seeds.set('seed-reply-mmap', frame(FrameType.REPLY, encodeReply(0, encodeMmapReply(4096, '/tmp/vmmlab/mem/vm0.lowmem'))));
  seeds.set('seed-copyin-reply', Buffer.concat([frame(FrameType.COPYIN, encodeCopyin(BRIDGE_ARENA_BASE, 32)), frame(FrameType.REPLY, encodeReply(0, Buffer.alloc(32)))]));
  seeds.set('seed-copyin-efault', Buffer.concat([frame(FrameType.COPYIN, encodeCopyin(0n, 32)), frame(FrameType.REPLY, encodeReply(-14))]));
  seeds.set('seed-copyout-reply', Buffer.concat([frame(FrameType.COPYOUT, encodeCopyout(BRIDGE_ARENA_BASE + 64n, Buffer.alloc(136, 3))), frame(FrameType.REPLY, encodeReply(0))]));
  seeds.set('seed-copyout-page-copyin-page', Buffer.concat([
    frame(FrameType.COPYOUT, encodeCopyout(BRIDGE_ARENA_BASE, page)),
    frame(FrameType.COPYIN, encodeCopyin(BRIDGE_ARENA_BASE, page.length * 2)),
    frame(FrameType.REPLY, encodeReply(0)),
  ]));
  // More than one chunk to a page the caller does not have: EFAULT, the rest still read.
  seeds.set('seed-copyout-efault-two-chunks', Buffer.concat([frame(FrameType.COPYOUT, encodeCopyout(0n, Buffer.alloc(5000, 4))), frame(FrameType.REPLY, encodeReply(-14))]));
  seeds.set('seed-three-calls', Buffer.concat([frame(FrameType.REPLY, encodeReply(3)), frame(FrameType.REPLY, encodeReply(0, Buffer.alloc(8, 9))), frame(FrameType.REPLY, encodeReply(-2))]));
  return seeds;
}

/** `key = value` for every key: the sample's example, and a second value where one shows more. */
function configSeeds(): Map<string, Buffer> {
  const sample = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'vmm-compat.conf.sample'), 'utf8');
  const seeds = new Map<string, Buffer>();
  const lines: string[] = [];
  const more: Readonly<Record<string, string>> = {
    kernel_variant: 'window',
    compat_freebsd13: 'no',
    failure_policy: 'refuse',
    log_file: '/var/log/vmm-compatd.log',
    metrics_listen: '127.0.0.1:9641',
  };
  for (const key of CONFIG_KEYS) {
    const example = new RegExp(`^#${key} = ?(.*)$`, 'm').exec(sample);
    if (!example) throw new Error(`docs/vmm-compat.conf.sample has no example of ${key} (a "#${key} = ..." line): add one`);
    const line = `${key} = ${example[1]}`;
    lines.push(line);
    seeds.set(`seed-key-${key}`, Buffer.from(`${line}\n`));
    if (more[key] !== undefined) seeds.set(`seed-key-${key}-2`, Buffer.from(`${key} = "${more[key]}" # quoted\n`));
  }
  // A jail in the default directory and one whose explicit directory is its default.
  seeds.set('seed-jails-default-and-explicit', Buffer.from('[jail a]\n[jail b]\nsocket_dir = /var/run/vmm-compat/b\n'));
  seeds.set('seed-every-key-and-jails', Buffer.from(
    `# every key\n${lines.join('\n')}\n\n[jail db]\nsocket_dir = /var/run/vmm-compat-jails/db\n[ jail web.1 ]\r\n`,
  ));
  return seeds;
}

/** Seeds per target name. */
export function seedCorpus(): Map<string, Map<string, Buffer>> {
  return new Map([
    ['daemon-reply', daemonReplySeeds()],
    ['bridge-reply', bridgeReplySeeds()],
    ['daemon-frame', daemonFrameSeeds()],
    ['config-file', configSeeds()],
  ]);
}

/** Writes the seeds as seed-* files of each corpus directory, replacing the old seed-* files. */
export function writeSeeds(corpusRoot: string): number {
  let n = 0;
  for (const [target, seeds] of seedCorpus()) {
    const dir = path.join(corpusRoot, target);
    fs.mkdirSync(dir, { recursive: true });
    for (const name of fs.readdirSync(dir)) if (name.startsWith('seed-')) fs.rmSync(path.join(dir, name));
    for (const [name, data] of seeds) {
      fs.writeFileSync(path.join(dir, name), data);
      n++;
    }
  }
  return n;
}
