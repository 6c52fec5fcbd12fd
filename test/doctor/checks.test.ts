// vmm-compat doctor: the checks for today's kernels (kernel variant, hw.vmm.maxcpu, COMPAT_FREEBSD13/14).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkCompatOptions, checkKernelVariant, checkMaxcpu } from '../../src/doctor/checks';
import type { StatusReport } from '../../src/daemon/control-server';
import type { VmmDevice, VmmSyscalls } from '../../src/daemon/vmm-device';
import { defaultConfig } from '../../src/config/config';
import { readKernelIdentity, writeProbeCache } from '../../src/daemon/kernel-probe-cache';

function device(sysctls: Record<string, number>): VmmDevice {
  return {
    library: 'fake',
    openVm: () => {
      throw new Error('not in this test');
    },
    sysctlInt: (name) => sysctls[name] ?? null,
  };
}

test('hw.vmm.maxcpu below 16 is a warning with the loader.conf fix; 16 and more, or no such sysctl, pass', () => {
  const low = checkMaxcpu(device({ 'hw.vmm.maxcpu': 8 }));
  assert.equal(low.status, 'warn');
  assert.match(low.detail, /more than 8 vCPUs fails/);
  assert.match(low.detail, /N vCPUs requested but only 8 available/);
  assert.match(low.fix ?? '', /hw\.vmm\.maxcpu=16.*\/boot\/loader\.conf/);
  assert.equal(checkMaxcpu(device({ 'hw.vmm.maxcpu': 16 })).status, 'pass');
  assert.equal(checkMaxcpu(device({ 'hw.vmm.maxcpu': 64 })).status, 'pass');
  assert.equal(checkMaxcpu(device({})).status, 'pass', '13.1 kernels have no hw.vmm.maxcpu');
  assert.equal(checkMaxcpu(null).status, 'pass');
});

const GENERIC_15 = 'options\tCOMPAT_FREEBSD13\noptions\tCOMPAT_FREEBSD14\noptions\tSMP\n';

function reportWithKernelAbi(arg: number): StatusReport {
  return {
    version: 'x', protocolVersion: 1, pid: 1, startedAt: '', kernelVariant: 'main15', socketDirectories: [], counters: {},
    vms: [{ events: [{ kind: 'kernel-abi', arg, vcpu: -1, session: 1, time: '' }] }],
  };
}

test('COMPAT_FREEBSD13/14: read from kern.conftxt, or from the interposer\'s kernel-abi events, or said to be unknown', () => {
  assert.equal(checkCompatOptions('main15', GENERIC_15, null).status, 'pass');
  const no14 = checkCompatOptions('main15', 'options\tCOMPAT_FREEBSD13\n', null);
  assert.equal(no14.status, 'warn');
  assert.match(no14.detail, /no COMPAT_FREEBSD14 \(kern\.conftxt\)/);
  assert.match(no14.fix ?? '', /options COMPAT_FREEBSD14.*vmm-compat wrap/);
  assert.equal(checkCompatOptions('fixed14', 'options\tCOMPAT_FREEBSD13\n', null).status, 'pass', '14.x needs no COMPAT_FREEBSD14');
  const no13 = checkCompatOptions('fixed14', 'options\tSMP\n', null);
  assert.equal(no13.status, 'warn');
  assert.match(no13.detail, /no COMPAT_FREEBSD13/);
  // kabi.c bits: 1 no 144-byte VM_RUN, 2 NUMA memseg, 4 no 32-byte memseg.
  const fromEvents = checkCompatOptions('main15', null, reportWithKernelAbi(7));
  assert.equal(fromEvents.status, 'warn');
  assert.match(fromEvents.detail, /no COMPAT_FREEBSD13 and COMPAT_FREEBSD14 \(the interposer's kernel-abi event\)/);
  assert.equal(checkCompatOptions('main15', null, reportWithKernelAbi(2)).status, 'pass');
  const unknown = checkCompatOptions('main15', null, null);
  assert.equal(unknown.status, 'pass');
  assert.match(unknown.detail, /cannot tell/);
  assert.equal(checkCompatOptions('fixed13', null, null).status, 'pass');
});

test('kernel variant: the running daemon\'s identification, else the kept probe result, else kern.osreldate; disagreements warn', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'doctor-kernel-'));
  try {
    const config = { ...defaultConfig(), probeCache: path.join(dir, 'probe.json') };
    const boot = Buffer.alloc(16);
    boot.writeBigInt64LE(1700000000n, 0);
    const osreldate = Buffer.alloc(4);
    osreldate.writeInt32LE(1400076);
    const values: Record<string, Buffer> = { 'kern.boottime': boot, 'kern.osreldate': osreldate, 'kern.version': Buffer.from('FreeBSD 14.0-CURRENT\0') };
    const syscalls = { sysctlRead: (name: string) => values[name] ?? null } as unknown as VmmSyscalls;
    const report = (kernel?: StatusReport['kernel']): StatusReport => ({
      version: 'x', protocolVersion: 2, pid: 1, startedAt: '', kernelVariant: kernel?.variant ?? 'window', socketDirectories: [], counters: {}, vms: [], ...(kernel ? { kernel } : {}),
    });
    const kernel = {
      variant: 'window', by: 'experiment' as const, why: 'INIT/SIPI to an inactive AP is dropped', osreldate: 1400076,
      disagreement: null, experimentSkipped: null, evidence: [], experiment: null, sweptAtStart: [],
    };
    const fromDaemon = checkKernelVariant(config, report(kernel), syscalls, device({}));
    assert.equal(fromDaemon.variant, 'window');
    assert.equal(fromDaemon.result.status, 'pass');
    assert.match(fromDaemon.result.detail, /^window \(by experiment, the running vmm-compatd\)/);
    const disagreeing = checkKernelVariant(config, report({ ...kernel, disagreement: 'kern.osreldate 1400097 says fixed14, but the experiment found window' }), syscalls, device({}));
    assert.equal(disagreeing.result.status, 'warn');
    assert.match(disagreeing.result.detail, /says fixed14, but the experiment found window/);
    const fellBack = checkKernelVariant(config, report({ ...kernel, variant: 'fixed14', by: 'osreldate', experimentSkipped: 'no probe VM can be made: EPERM' }), syscalls, device({}));
    assert.equal(fellBack.result.status, 'warn');
    assert.match(fellBack.result.fix ?? '', /vmm-compat probe/);
    // No daemon: a set variant, then this kernel's kept probe result, then kern.osreldate.
    assert.deepEqual(checkKernelVariant({ ...config, kernelVariant: 'fixed13' }, null, syscalls, device({})).variant, 'fixed13');
    const nothingYet = checkKernelVariant(config, null, syscalls, device({ 'kern.osreldate': 1400076 }));
    assert.equal(nothingYet.result.status, 'fail');
    assert.match(nothingYet.result.fix ?? '', /start vmm-compatd/);
    writeProbeCache(config.probeCache, readKernelIdentity(syscalls)!, { variant: 'window', why: 'dropped', evidence: [], vmrun144: true, probedAt: '2026-12-01T00:00:00.000Z', elapsedMs: 50 });
    const kept = checkKernelVariant(config, null, syscalls, device({ 'kern.osreldate': 1400076 }));
    assert.equal(kept.result.status, 'pass');
    assert.match(kept.result.detail, /^window \(by experiment, probed 2026-12-01/);
    const byOsreldate = checkKernelVariant(config, null, null, device({ 'kern.osreldate': 1500068 }));
    assert.equal(byOsreldate.variant, 'main15');
    assert.match(byOsreldate.result.detail, /by osreldate/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
