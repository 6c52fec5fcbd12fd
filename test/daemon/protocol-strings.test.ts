// String fields of the compat protocol are read as UTF-8 or refused: fuzzing the daemon's frame
// decoder found a PLAN reason whose bytes were not UTF-8 decoded to U+FFFD characters, so that
// the message no longer survived encode and decode (test/fuzz/corpus/daemon-frame/regress-*).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { FrameReader, HEADER_BYTES, LAYOUT, MessageType, ProtocolError, SUPPORTED_PROTOCOL_VERSIONS, encode } from '../../src/daemon/protocol';

const corpus = path.resolve(__dirname, '..', '..', '..', 'test', 'fuzz', 'corpus', 'daemon-frame');

function helloWithVmBytes(name: Buffer): Buffer {
  const frame = encode({ type: MessageType.HELLO, pid: 1, flags: 0, vm: 'x', bhyve: '13.1' });
  const vm = LAYOUT[MessageType.HELLO].find((f) => f.name === 'vm')!;
  frame.fill(0, HEADER_BYTES + vm.offset, HEADER_BYTES + vm.offset + vm.size);
  name.copy(frame, HEADER_BYTES + vm.offset);
  return frame;
}

test('a VM name that is not UTF-8 is refused as a malformed frame, not renamed', () => {
  const frame = helloWithVmBytes(Buffer.from([0x76, 0x6d, 0xff, 0x30]));
  assert.throws(() => new FrameReader().push(frame), (err: unknown) => err instanceof ProtocolError && err.code === 22 && /string field vm is not valid UTF-8/.test(err.message));
});

test('UTF-8 names, including multibyte ones, still decode', () => {
  const [msg] = new FrameReader().push(helloWithVmBytes(Buffer.from('vm-ä€😀', 'utf8')));
  assert.equal(msg && msg.type === MessageType.HELLO ? msg.vm : null, 'vm-ä€😀');
});

test('the fuzzer input: a PLAN reason with bytes 0xde is refused', () => {
  // Found in protocol 1, which the daemon still accepts.
  const input = fs.readFileSync(path.join(corpus, 'regress-plan-reason-invalid-utf8'));
  assert.throws(() => new FrameReader(SUPPORTED_PROTOCOL_VERSIONS).push(input), /string field reason is not valid UTF-8/);
});
