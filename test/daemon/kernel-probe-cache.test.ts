// The probe runs once per kernel identity (boot time, kern.osreldate, kern.version): a kept
// result is used again only for the very same kernel, and a file that is not ours is ignored.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { readKernelIdentity, readProbeCache, writeProbeCache, type CachedProbe, type KernelIdentity } from '../../src/daemon/kernel-probe-cache';
import type { VmmSyscalls } from '../../src/daemon/vmm-device';

function sysctls(values: Record<string, Buffer>): VmmSyscalls {
  const unused = (): never => {
    throw new Error('not in this test');
  };
  return {
    library: 'fake',
    open: unused,
    close: unused,
    ioctl: unused,
    sysctlWriteString: unused,
    writeShared: unused,
    sysctlRead: (name, maxBytes) => values[name]?.subarray(0, maxBytes) ?? null,
  };
}

function timeval(sec: number, usec: number): Buffer {
  const b = Buffer.alloc(16);
  b.writeBigInt64LE(BigInt(sec), 0);
  b.writeBigInt64LE(BigInt(usec), 8);
  return b;
}

function int(n: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeInt32LE(n);
  return b;
}

const PROBE: CachedProbe = { variant: 'window', why: 'INIT/SIPI to an inactive AP is dropped', evidence: ['e1'], vmrun144: true, probedAt: '2026-01-01T00:00:00.000Z', elapsedMs: 42 };

test('readKernelIdentity: kern.boottime, kern.osreldate and kern.version; null when any is missing', () => {
  const sys = sysctls({ 'kern.boottime': timeval(1700000000, 42), 'kern.osreldate': int(1400076), 'kern.version': Buffer.from('FreeBSD 14.0-CURRENT #0 main-n259000\n\0') });
  assert.deepEqual(readKernelIdentity(sys), { bootTime: '1700000000.000042', osreldate: 1400076, version: 'FreeBSD 14.0-CURRENT #0 main-n259000' });
  assert.equal(readKernelIdentity(sysctls({ 'kern.osreldate': int(1400076), 'kern.version': Buffer.from('x\0') })), null, 'no kern.boottime (glibc, no sysctlbyname)');
});

test('the kept result is used for the same kernel only; a new boot, osreldate or build probes again and says why', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'probe-cache-'));
  try {
    const file = path.join(dir, 'sub', 'kernel-probe.json');
    const identity: KernelIdentity = { bootTime: '1700000000.000042', osreldate: 1400076, version: 'FreeBSD 14.0-CURRENT #0' };
    assert.deepEqual(readProbeCache(file, identity), { miss: 'no earlier probe on this host' });
    writeProbeCache(file, identity, PROBE);
    assert.equal((fs.statSync(file).mode & 0o777).toString(8), '644');
    assert.deepEqual(readProbeCache(file, identity), { probe: PROBE });
    assert.deepEqual(readProbeCache(file, { ...identity, bootTime: '1700000999.000001' }), { miss: 'the kernel changed since the last probe (boot time)' });
    assert.deepEqual(readProbeCache(file, { ...identity, osreldate: 1400097, version: 'FreeBSD 14.0-RELEASE' }), {
      miss: 'the kernel changed since the last probe (kern.osreldate, kern.version)',
    });
    fs.writeFileSync(file, '{"format":1,"identity":{"bootTime":"1","osreldate":1,"version":"x"},"probe":{"variant":"linux"}}');
    assert.match((readProbeCache(file, identity) as { miss: string }).miss, /not a probe result of this version/);
    fs.writeFileSync(file, 'garbage');
    assert.match((readProbeCache(file, identity) as { miss: string }).miss, /is not JSON/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
