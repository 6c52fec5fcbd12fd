// cpuset_t bytes: bit i = vCPU i, little-endian longs (sys/sys/_bitset.h on amd64).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  CPUSET_BYTES_13,
  CPUSET_BYTES_14,
  cpusetFromBytes,
  cpusetHas,
  cpusetResize,
  cpusetToBytes,
} from '../../src/abi/cpuset';

test('sizes: 256 bits on 13.1, 1024 bits on 14.0', () => {
  assert.equal(CPUSET_BYTES_13 * 8, 256);
  assert.equal(CPUSET_BYTES_14 * 8, 1024);
});

test('bit i is vCPU i, as a little-endian long array', () => {
  const set = cpusetToBytes([0, 1, 3, 63, 64, 255], CPUSET_BYTES_13);
  assert.equal(set.length, 32);
  assert.equal(set.readBigUInt64LE(0), (1n << 0n) | (1n << 1n) | (1n << 3n) | (1n << 63n));
  assert.equal(set.readBigUInt64LE(8), 1n);
  assert.equal(set.readBigUInt64LE(24), 1n << 63n);
  assert.deepEqual(cpusetFromBytes(set), [0, 1, 3, 63, 64, 255]);
  assert.equal(cpusetHas(set, 63), true);
  assert.equal(cpusetHas(set, 2), false);
  assert.equal(cpusetHas(set, 256), false);
});

test('duplicates collapse, output is sorted', () => {
  assert.deepEqual(cpusetFromBytes(cpusetToBytes(new Set([5, 2, 5, 2]), 8)), [2, 5]);
  assert.deepEqual(cpusetFromBytes(Buffer.alloc(32)), []);
});

test('an id that does not fit is an error', () => {
  assert.throws(() => cpusetToBytes([256], CPUSET_BYTES_13), /vCPU 256/);
  assert.throws(() => cpusetToBytes([-1], CPUSET_BYTES_13), /vCPU -1/);
  assert.throws(() => cpusetToBytes([1.5], CPUSET_BYTES_13), /vCPU 1.5/);
});

test('resize copies the shorter length and reports truncation', () => {
  const big = cpusetToBytes([1, 300], CPUSET_BYTES_14);
  const small = cpusetResize(big, CPUSET_BYTES_13);
  assert.deepEqual(cpusetFromBytes(small.bytes), [1]);
  assert.equal(small.truncated, true);
  const back = cpusetResize(small.bytes, CPUSET_BYTES_14);
  assert.equal(back.bytes.length, 128);
  assert.deepEqual(cpusetFromBytes(back.bytes), [1]);
  assert.equal(back.truncated, false);
});
