// vmm-compat doctor: the checks for today's kernels (hw.vmm.maxcpu, COMPAT_FREEBSD13/14).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { checkCompatOptions, checkMaxcpu } from '../../src/doctor/checks';
import type { StatusReport } from '../../src/daemon/control-server';
import type { VmmDevice } from '../../src/daemon/vmm-device';

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
