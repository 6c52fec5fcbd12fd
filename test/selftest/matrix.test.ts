// selftest's boot matrix: the vCPU counts per bhyve (13.1's VM_MAXCPU, hw.vmm.maxcpu, --max-vcpus)
// and the VM names.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bhyveVcpuLimit, planBoots, selftestVmName, vcpuCounts, type BhyveUnderTest } from '../../src/selftest/matrix';

function bhyve(label: string, vcpuLimit: number): BhyveUnderTest {
  return {
    path: `/x/${label}/bhyve`,
    label,
    version: null,
    release: null,
    releaseFrom: 'unknown',
    generation: null,
    handling: null,
    needsShim: null,
    why: '',
    vcpuLimit,
    vcpuLimitWhy: '',
  };
}

test('the largest count: 13.1 bhyve 16 (VM_MAXCPU), 13.2+ the kernel\'s maxcpus (hw.vmm.maxcpu), 16 without hw.vmm.maxcpu, unknown taken as 13.1', () => {
  assert.equal(bhyveVcpuLimit('13.1', 32).limit, 16);
  assert.equal(bhyveVcpuLimit('13.1', 8).limit, 8, 'hw.vmm.maxcpu below 16 bounds 13.1 too (VM_SET_TOPOLOGY EINVAL)');
  assert.equal(bhyveVcpuLimit('13.2-13.5', 32).limit, 32);
  assert.equal(bhyveVcpuLimit('14.x', 256).limit, 256);
  assert.equal(bhyveVcpuLimit('14.x', 12).limit, 12);
  assert.equal(bhyveVcpuLimit('13.2-13.5', null).limit, 16, 'a 13.0/13.1 kernel: VM_MAXCPU 16');
  assert.equal(bhyveVcpuLimit(null, 64).limit, 16);
  assert.match(bhyveVcpuLimit('14.x', 32).why, /VM_GET_TOPOLOGY maxcpus: hw\.vmm\.maxcpu 32/);
});

test('the counts: 1, 2, 4 and the largest, each once, none above the largest', () => {
  assert.deepEqual(vcpuCounts(16), [1, 2, 4, 16]);
  assert.deepEqual(vcpuCounts(4), [1, 2, 4]);
  assert.deepEqual(vcpuCounts(3), [1, 2, 3]);
  assert.deepEqual(vcpuCounts(1), [1]);
  assert.deepEqual(vcpuCounts(256), [1, 2, 4, 256]);
});

test('the plan: per bhyve, per count, without then with the shim; names vmm-compat-selftest-<pid>-<n> in order', () => {
  const boots = planBoots([bhyve('13.1', 16), bhyve('13.5', 32)], 8, 4242);
  assert.deepEqual(
    boots.map((b) => `${b.bhyve.label}:${b.vcpus}:${b.shim ? 'shim' : 'bare'}`),
    ['13.1:1:bare', '13.1:1:shim', '13.1:2:bare', '13.1:2:shim', '13.1:4:bare', '13.1:4:shim', '13.1:8:bare', '13.1:8:shim',
     '13.5:1:bare', '13.5:1:shim', '13.5:2:bare', '13.5:2:shim', '13.5:4:bare', '13.5:4:shim', '13.5:8:bare', '13.5:8:shim'],
  );
  assert.deepEqual(boots.map((b) => b.vmName), boots.map((_, i) => `vmm-compat-selftest-4242-${i + 1}`));
  assert.equal(selftestVmName(7, 3), 'vmm-compat-selftest-7-3');
  assert.deepEqual(planBoots([bhyve('13.1', 16)], 64, 1).map((b) => b.vcpus), [1, 1, 2, 2, 4, 4, 16, 16], '--max-vcpus above the bhyve: the bhyve\'s');
});
