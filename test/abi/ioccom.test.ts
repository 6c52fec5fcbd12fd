// sys/sys/ioccom.h encoding (legacy-13.1-side.md section 1).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  hexRequest,
  io,
  ioc,
  IOC_IN,
  IOC_INOUT,
  IOC_OUT,
  IOC_VOID,
  iocDir,
  iocGroup,
  iocLen,
  iocNum,
  IOCPARM_MASK,
  IOCPARM_SHIFT,
  ior,
  iow,
  iowr,
  requestFromU64,
  VMM_IOC_GROUP,
} from '../../src/abi/ioccom';

test('ioccom.h constants', () => {
  assert.equal(IOCPARM_SHIFT, 13);
  assert.equal(IOCPARM_MASK, (1 << IOCPARM_SHIFT) - 1);
  assert.equal(IOC_VOID, 0x20000000);
  assert.equal(IOC_OUT, 0x40000000);
  assert.equal(IOC_IN, 0x80000000);
  assert.equal(IOC_INOUT, (IOC_IN | IOC_OUT) >>> 0);
  assert.equal(VMM_IOC_GROUP, 'v'.charCodeAt(0));
});

test('_IOWR(v, 1, 144-byte vm_run) is 0xC0907601, unsigned', () => {
  const req = ioc(IOC_INOUT, VMM_IOC_GROUP, 1, 144);
  assert.equal(req, 0xc0907601);
  assert.ok(req > 0, 'bit 31 must not make the request negative');
  assert.equal(iowr(VMM_IOC_GROUP, 1, 144), req);
  assert.equal(hexRequest(req), '0xC0907601');
});

test('the macros pick their direction bits', () => {
  assert.equal(io(VMM_IOC_GROUP, 5), 0x20007605); // VM_REINIT
  assert.equal(ior(VMM_IOC_GROUP, 64, 8), 0x40087640); // VM_GET_TOPOLOGY
  assert.equal(iow(VMM_IOC_GROUP, 90, 4), 0x8004765a); // VM_ACTIVATE_CPU
  assert.equal(iowr(VMM_IOC_GROUP, 50, 536), 0xc2187632); // 13.1 VM_STATS
});

test('field extractors invert the encoding', () => {
  for (const [dir, num, len] of [
    [IOC_INOUT, 1, 144],
    [IOC_IN, 91, 16],
    [IOC_OUT, 38, 4],
    [IOC_VOID, 5, 0],
    [IOC_INOUT, 50, 544],
    [IOC_IN, 255, IOCPARM_MASK],
  ] as const) {
    const req = ioc(dir, VMM_IOC_GROUP, num, len);
    assert.equal(iocDir(req), dir);
    assert.equal(iocNum(req), num);
    assert.equal(iocLen(req), len);
    assert.equal(iocGroup(req), VMM_IOC_GROUP);
  }
});

test('hexRequest pads to 8 upper-case digits', () => {
  assert.equal(hexRequest(0x20007605), '0x20007605');
  assert.equal(hexRequest(0xabc), '0x00000ABC');
  assert.equal(hexRequest(0xc0207601), '0xC0207601');
});

test('ioc rejects what the encoding cannot carry', () => {
  assert.throws(() => ioc(IOC_IN, VMM_IOC_GROUP, 1, IOCPARM_MASK + 1), /len/);
  assert.throws(() => ioc(IOC_IN, VMM_IOC_GROUP, 256, 4), /num/);
  assert.throws(() => ioc(IOC_IN, 0x100, 1, 4), /group/);
  assert.throws(() => ioc(0x10000000, VMM_IOC_GROUP, 1, 4), /dir/);
  assert.throws(() => ioc(IOC_IN, VMM_IOC_GROUP, 1, 2.5), /len/);
});

test('requestFromU64 accepts zero-extended values only', () => {
  assert.equal(requestFromU64(0xc0907601n), 0xc0907601);
  assert.equal(requestFromU64(0x8004765a), 0x8004765a);
  assert.throws(() => requestFromU64(0xffffffffc0907601n), /zero-extended/);
  assert.throws(() => requestFromU64(-1n), /zero-extended/);
});
