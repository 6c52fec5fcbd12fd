import { test } from 'node:test';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { protocolDefines, protocolHeader } from '../../src/daemon/gen-protocol-header';
import assert from 'node:assert/strict';
import {
  BODY_BYTES,
  BODY_BYTES_BY_VERSION,
  FrameReader,
  SUPPORTED_PROTOCOL_VERSIONS,
  HEADER_BYTES,
  MAX_BODY_BYTES,
  MessageType,
  PlanAction,
  ProtocolError,
  encode,
  type Message,
} from '../../src/daemon/protocol';

const samples: Message[] = [
  { type: MessageType.HELLO, pid: 4242, flags: 0, vm: 'guest-1', bhyve: '13.1' },
  { type: MessageType.PLAN_REQUEST, ncpus: 16, boot: 3 },
  { type: MessageType.EVENT, kind: 2, vcpu: 5, arg: -1, monotonicNs: 123456789012345n },
  { type: MessageType.WELCOME, session: 7, variant: 2, kernelCpusetBytes: 32, vmrunAbi: 13, flags: 0 },
  {
    type: MessageType.PLAN,
    action: PlanAction.PARK,
    spinupBias: 1,
    parkedMask: 0xfffen,
    boot: 1,
    reason: 'park APs 1..15',
    parkedSet: 0xfffen,
  },
  { type: MessageType.ERROR, code: 1, message: 'refused' },
];

test('every message type round-trips through encode and FrameReader', () => {
  for (const msg of samples) {
    const frame = encode(msg);
    assert.equal(frame.length, HEADER_BYTES + BODY_BYTES[msg.type]);
    assert.deepEqual(new FrameReader().push(frame), [msg]);
  }
});

test('frames split at every byte boundary reassemble to the same messages', () => {
  const stream = Buffer.concat(samples.map((m) => encode(m)));
  for (let cut = 1; cut < stream.length; cut += 7) {
    const reader = new FrameReader();
    const got = [...reader.push(stream.subarray(0, cut)), ...reader.push(stream.subarray(cut))];
    assert.deepEqual(got, samples);
    assert.equal(reader.buffered, 0);
  }
});

test('the wire layout matches docs/internals.md section 5 (offsets of PLAN, version 2)', () => {
  const frame = encode(samples[4]!);
  assert.equal(frame.readUInt32LE(0), 160);
  assert.equal(frame.readUInt16LE(4), 2);
  assert.equal(frame.readUInt16LE(6), 102);
  assert.equal(frame.readUInt32LE(8 + 0), 1);
  assert.equal(frame.readUInt32LE(8 + 4), 1);
  assert.equal(frame.readBigUInt64LE(8 + 8), 0xfffen);
  assert.equal(frame.subarray(8 + 24, 8 + 24 + 14).toString(), 'park APs 1..15');
  assert.equal(frame.readBigUInt64LE(8 + 128), 0xfffen, 'parkedSet word 0');
  for (const word of [1, 2, 3]) assert.equal(frame.readBigUInt64LE(8 + 128 + 8 * word), 0n);
});

test('PLAN carries all 256 vCPUs of 13.x userland: APs 1..255 round-trip, the low word mirrors parkedMask', () => {
  const all = (1n << 256n) - 2n; // APs 1..255
  const msg: Message = { type: MessageType.PLAN, action: PlanAction.PARK, spinupBias: 1, parkedMask: all & 0xffffffffffffffffn, boot: 0, reason: 'x', parkedSet: all };
  const frame = encode(msg);
  for (const word of [1, 2, 3]) assert.equal(frame.readBigUInt64LE(8 + 128 + 8 * word), 0xffffffffffffffffn);
  assert.equal(frame[8 + 128], 0xfe, 'bit 0 (the BSP) is clear');
  assert.deepEqual(new FrameReader().push(frame), [msg]);
  const only255 = { ...msg, parkedMask: 0n, parkedSet: 1n << 255n };
  assert.equal(encode(only255)[8 + 128 + 31], 0x80, 'vCPU 255 is the top bit of the last byte');
  assert.throws(() => encode({ ...msg, parkedSet: 1n << 256n }), /does not fit 256 bits/);
  const mismatch = encode({ ...msg, parkedMask: 1n, parkedSet: 2n });
  assert.throws(() => new FrameReader().push(mismatch), /low 64 bits of parkedSet/);
});

test('version 1 (deprecated) is still spoken on request: 128-byte PLAN with the u64 mask only', () => {
  assert.deepEqual([...SUPPORTED_PROTOCOL_VERSIONS], [1, 2]);
  const v1: Message = { type: MessageType.PLAN, action: PlanAction.PARK, spinupBias: 0, parkedMask: 0b110n, boot: 2, reason: 'v1' };
  const frame = encode(v1, 1);
  assert.equal(frame.length, HEADER_BYTES + 128);
  assert.equal(BODY_BYTES_BY_VERSION[1]![MessageType.PLAN], 128);
  assert.equal(frame.readUInt16LE(4), 1);
  assert.deepEqual(new FrameReader(SUPPORTED_PROTOCOL_VERSIONS).push(frame), [v1]);
  // A version 2 reader alone refuses it; a connection keeps its first frame's version.
  assert.throws(() => new FrameReader().push(frame), /protocol version 1 is not supported \(vmm-compatd speaks version 2\)/);
  const reader = new FrameReader(SUPPORTED_PROTOCOL_VERSIONS);
  reader.push(encode(samples[1]!, 1));
  assert.equal(reader.version, 1);
  assert.throws(() => reader.push(encode(samples[1]!)), /protocol version 2 after frames of version 1/);
  // Every other message has the same body in both versions.
  for (const msg of samples.filter((m) => m.type !== MessageType.PLAN)) {
    assert.deepEqual(new FrameReader([1]).push(encode(msg, 1)), [msg]);
  }
});

test('a wrong version, unknown type, wrong length or oversized body is a ProtocolError', () => {
  const good = encode(samples[1]!);
  const wrongVersion = Buffer.from(good);
  wrongVersion.writeUInt16LE(3, 4);
  assert.throws(() => new FrameReader(SUPPORTED_PROTOCOL_VERSIONS).push(wrongVersion), /protocol version 3 is not supported \(vmm-compatd speaks versions 1, 2\)/);
  const unknown = Buffer.from(good);
  unknown.writeUInt16LE(77, 6);
  assert.throws(() => new FrameReader().push(unknown), /unknown message type 77/);
  const wrongLength = Buffer.from(good);
  wrongLength.writeUInt32LE(9, 0);
  assert.throws(() => new FrameReader().push(wrongLength), /must have a 8-byte body, got 9/);
  const huge = Buffer.alloc(8);
  huge.writeUInt32LE(MAX_BODY_BYTES + 1, 0);
  huge.writeUInt16LE(2, 4);
  huge.writeUInt16LE(1, 6);
  assert.throws(() => new FrameReader().push(huge), /exceeds the 4096-byte limit/);
});

test('a string field without NUL terminator is refused', () => {
  const frame = encode(samples[0]!);
  frame.fill(0x41, 8 + 8, 8 + 8 + 232);
  assert.throws(() => new FrameReader().push(frame), /not NUL-terminated/);
});

test('fuzz: 20000 random and mutated frames never throw anything but ProtocolError', () => {
  let seed = 0x1234567;
  const rand = (): number => {
    seed ^= seed << 13;
    seed ^= seed >>> 17;
    seed ^= seed << 5;
    return (seed >>> 0) / 0x100000000;
  };
  const valid = samples.map((m) => encode(m));
  let protocolErrors = 0;
  let decoded = 0;
  for (let i = 0; i < 20000; i++) {
    let frame: Buffer;
    if (i % 2 === 0) {
      frame = Buffer.from(valid[Math.floor(rand() * valid.length)]!);
      const flips = 1 + Math.floor(rand() * 4);
      for (let f = 0; f < flips; f++) frame[Math.floor(rand() * frame.length)] = Math.floor(rand() * 256);
      if (rand() < 0.2) frame = frame.subarray(0, Math.floor(rand() * frame.length));
    } else {
      frame = Buffer.alloc(Math.floor(rand() * 64));
      for (let b = 0; b < frame.length; b++) frame[b] = Math.floor(rand() * 256);
    }
    try {
      decoded += new FrameReader().push(frame).length;
    } catch (err) {
      assert.ok(err instanceof ProtocolError, `unexpected ${String(err)}`);
      protocolErrors++;
    }
  }
  assert.ok(protocolErrors > 1000, `expected many refusals, got ${protocolErrors}`);
  assert.ok(decoded > 100, `expected some mutated frames to stay valid, got ${decoded}`);
});

test('the generated C header carries every field of LAYOUT, and gcc compiles it with -Werror', () => {
  const defines = new Map(protocolDefines());
  assert.equal(defines.get('VMC_PROTO_VERSION'), '2');
  assert.equal(defines.get('VMC_PLAN_PARKED_MASK'), '8');
  assert.equal(defines.get('VMC_PLAN_PARKED_SET'), '128');
  assert.equal(defines.get('VMC_PLAN_PARKED_SET_SIZE'), '32');
  assert.equal(defines.get('VMC_PLAN_BYTES'), '160');
  assert.equal(defines.get('VMC_HELLO_BHYVE'), '240');
  assert.equal(defines.get('VMC_EV_NEW_PROTOCOL'), '13');
  assert.equal(defines.get('VMC_VARIANT_WINDOW'), '2');
  assert.equal(defines.get('VMC_ERROR_MESSAGE_SIZE'), '252');
  if (spawnSync('gcc', ['--version']).status !== 0) return;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'proto-h-'));
  fs.writeFileSync(path.join(dir, 'vmm_compat_proto_gen.h'), protocolHeader());
  fs.writeFileSync(
    path.join(dir, 'check.c'),
    '#include "vmm_compat_proto_gen.h"\n_Static_assert(VMC_PLAN_PARKED_SET + VMC_PLAN_PARKED_SET_SIZE == VMC_PLAN_BYTES, "plan");\n' +
      '_Static_assert(VMC_HELLO_BHYVE + VMC_HELLO_BHYVE_SIZE == VMC_HELLO_BYTES, "hello");\nint main(void) { return VMC_T_HELLO - 1; }\n',
  );
  const r = spawnSync('gcc', ['-std=c11', '-Wall', '-Wextra', '-Werror', '-o', path.join(dir, 'check'), path.join(dir, 'check.c')], { encoding: 'utf8' });
  fs.rmSync(dir, { recursive: true, force: true });
  assert.equal(r.status, 0, r.stderr);
});
