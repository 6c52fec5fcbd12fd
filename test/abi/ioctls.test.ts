// The ioctl tables against the reference request numbers. The tables compute every number from
// IOCNUM, direction and struct layout; these tests check that the result is FreeBSD's.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ioc, iocDir, iocGroup, iocLen, iocNum, IOC_IN, IOC_INOUT, IOC_OUT, IOC_VOID, VMM_IOC_GROUP } from '../../src/abi/ioccom';
import { segidFrom15, segidTo15 } from '../../src/abi/enums';
import {
  ABI_NAMES,
  REQ15,
  argLayoutOf,
  compareWith13,
  IocNum,
  ioctlByName,
  ioctlByRequest,
  ioctlTable,
  REQ13,
  REQ14,
  requestOf,
  type AbiName,
} from '../../src/abi/ioctls';
import { structByName } from '../../src/abi/structs';
import { REF_13, REF_14_CHANGES } from './reference';

const DIR_BITS = { void: IOC_VOID, in: IOC_IN, out: IOC_OUT, inout: IOC_INOUT } as const;

test('ABI names', () => {
  assert.deepEqual([...ABI_NAMES], ['13.1', '14.0', '15.0']);
});

test('13.1 table reproduces every reference request number, length and direction', () => {
  const table = ioctlTable('13.1');
  assert.deepEqual(
    table.map((d) => d.name),
    REF_13.map((r) => r.name),
    'the 13.1 table lists exactly the reference ioctls, in IOCNUM order',
  );
  for (const ref of REF_13) {
    const def = ioctlByName('13.1', ref.name);
    assert.ok(def, ref.name);
    assert.equal(def.len, ref.len, `${ref.name} len`);
    assert.equal(def.dir, ref.dir, `${ref.name} dir`);
    assert.equal(def.request, ref.request, `${ref.name} request`);
  }
});

test('14.0 table: the reference changes, everything else as 13.1', () => {
  const changed = new Map(REF_14_CHANGES.map((r) => [r.name, r]));
  for (const ref of REF_14_CHANGES) {
    const def = ioctlByName('14.0', ref.name);
    assert.ok(def, ref.name);
    assert.equal(def.request, ref.request, `${ref.name} request`);
    assert.equal(def.len, ref.len, `${ref.name} len`);
  }
  for (const ref of REF_13) {
    if (changed.has(ref.name) || ref.name === 'VM_SNAPSHOT_REQ') continue;
    assert.equal(ioctlByName('14.0', ref.name)?.request, ref.request, `${ref.name} unchanged in 14.0`);
  }
});

test('14.0 snapshot request: one pointer shorter, the old one kept under COMPAT_FREEBSD13', () => {
  const old = ioctlByName('13.1', 'VM_SNAPSHOT_REQ');
  const now = ioctlByName('14.0', 'VM_SNAPSHOT_REQ');
  const compat = ioctlByName('14.0', 'VM_SNAPSHOT_REQ_OLD');
  assert.ok(old && now && compat);
  assert.equal(now.len, old.len - 8);
  assert.equal(compat.request, old.request);
  assert.equal(compat.compat, 'COMPAT_FREEBSD13');
});

test('COMPAT_FREEBSD13 entries of 14.0 carry the 13.1 numbers', () => {
  assert.equal(REQ14.VM_RUN_13, REQ13.VM_RUN);
  assert.equal(REQ14.VM_STATS_OLD, REQ13.VM_STATS);
  assert.equal(ioctlByName('14.0', 'VM_RUN_13')?.compat, 'COMPAT_FREEBSD13');
  assert.equal(ioctlByName('14.0', 'VM_STATS_OLD')?.compat, 'COMPAT_FREEBSD13');
  assert.equal(ioctlByName('14.0', 'VM_RUN')?.compat, undefined);
  assert.equal(ioctlByName('14.0', 'VM_RUN_13')?.struct, 'vm_run_13');
  assert.equal(ioctlByName('14.0', 'VM_STATS_OLD')?.struct, 'vm_stats_old');
  assert.equal(ioctlByName('13.1', 'VM_RUN_13'), undefined, '13.1 has no VM_RUN_13');
});

test('REQ13 / REQ14 / REQ15 hold every ioctl of their table', () => {
  assert.deepEqual(Object.keys(REQ13).sort(), ioctlTable('13.1').map((d) => d.name).sort());
  assert.deepEqual(Object.keys(REQ14).sort(), ioctlTable('14.0').map((d) => d.name).sort());
  assert.deepEqual(Object.keys(REQ15).sort(), ioctlTable('15.0').map((d) => d.name).sort());
  assert.equal(REQ13.VM_RUN, 0xc0907601);
  assert.equal(REQ13.VM_ACTIVATE_CPU, 0x8004765a);
  assert.equal(REQ14.VM_RUN, 0x80207601);
  assert.equal(REQ14.VM_STATS, 0xc2207632);
  assert.ok(Object.isFrozen(REQ13) && Object.isFrozen(REQ14) && Object.isFrozen(REQ15));
  // REQ15 is keyed by the 15.0 names only: 14.0's VM_STATS_OLD is VM_STATS_13 there.
  // @ts-expect-error VM_STATS_OLD is not a 15.0 name
  assert.equal(REQ15.VM_STATS_OLD, undefined);
});

for (const abi of ABI_NAMES) {
  test(`${abi}: every entry decodes back to its IOCNUM, length, direction and group 'v'`, () => {
    for (const def of ioctlTable(abi)) {
      // /dev/vmmctl requests are group 'V' (sys/dev/vmm/vmm_dev.h); every /dev/vmm/NAME one is 'v'.
      assert.equal(iocGroup(def.request), def.device === '/dev/vmmctl' ? 0x56 : VMM_IOC_GROUP, def.name);
      assert.equal(iocNum(def.request), def.num, def.name);
      assert.equal(iocLen(def.request), def.len, def.name);
      assert.equal(iocDir(def.request), DIR_BITS[def.dir], def.name);
    }
  });

  test(`${abi}: requests are unique and found by ioctlByRequest`, () => {
    const seen = new Set<number>();
    for (const def of ioctlTable(abi)) {
      assert.ok(!seen.has(def.request), `${def.name} duplicates a request`);
      seen.add(def.request);
      assert.equal(ioctlByRequest(abi, def.request), def);
      assert.equal(requestOf(abi, def.name), def.request);
    }
    assert.equal(ioctlByRequest(abi, 0xdeadbeef), undefined);
  });

  test(`${abi}: every argument struct is described by the struct table with the ioctl's length`, () => {
    for (const def of ioctlTable(abi)) {
      if (def.dir === 'void') {
        assert.equal(def.struct, '');
        assert.equal(def.len, 0);
        continue;
      }
      if (def.struct === 'int') {
        assert.equal(def.len, 4);
        continue;
      }
      const layout = structByName(abi, def.struct);
      assert.ok(layout, `${abi} ${def.name}: struct ${def.struct} missing from structTable`);
      assert.equal(layout.size, def.len, def.name);
      assert.equal(argLayoutOf(abi, def.name), layout);
    }
  });
}

test('IocNum agrees with the reference numbering (legacy-13.1-side.md section 2)', () => {
  assert.equal(IocNum.RUN, 1);
  assert.equal(IocNum.ACTIVATE_CPU, 90);
  assert.equal(IocNum.GET_CPUSET, 91);
  assert.equal(IocNum.SUSPEND_CPU, 92);
  assert.equal(IocNum.RESUME_CPU, 93);
  assert.equal(IocNum.VM_STATS, 50);
  assert.equal(IocNum.SNAPSHOT_REQ, 113);
  assert.equal(IocNum.RESTORE_TIME, 115);
});

test('requestOf names the ABI and the ioctl when it fails', () => {
  assert.throws(() => requestOf('13.1', 'VM_RUN_13'), (err: unknown) => {
    assert.ok(err instanceof Error);
    assert.match(err.message, /13\.1/);
    assert.match(err.message, /VM_RUN_13/);
    return true;
  });
  assert.throws(() => requestOf('14.0', 'VM_NOPE'), /14\.0.*VM_NOPE|VM_NOPE.*14\.0/);
});

test('an unknown ABI name is an error naming the accepted ones', () => {
  const bogus = '16.0' as AbiName;
  assert.throws(() => ioctlTable(bogus), /13\.1.*14\.0.*15\.0/);
});

test('compareWith13 marks what moved', () => {
  const run = ioctlByName('14.0', 'VM_RUN');
  const run13 = ioctlByName('14.0', 'VM_RUN_13');
  const act = ioctlByName('14.0', 'VM_ACTIVATE_CPU');
  assert.ok(run && run13 && act);
  assert.deepEqual(compareWith13(run), { differsFrom13: true, request13: 0xc0907601 });
  assert.deepEqual(compareWith13(run13), { differsFrom13: true, same13As: 'VM_RUN' });
  assert.deepEqual(compareWith13(act), { differsFrom13: false });
});

// sys/amd64/include/vmm_dev.h at e17eca32 (read_file id 940066618):
//   #define VM_RUN _IOW('v', IOCNUM_RUN, struct vm_run)
// with struct vm_run { int cpuid; cpuset_t *cpuset; size_t cpusetsize; struct vm_exit *vm_exit; }.
// An earlier edition of the research notes said _IOWR (0xC0207601): a kernel without
// COMPAT_FREEBSD13 would answer that number with ENOTTY.
test('14.0 VM_RUN is _IOW with the 32-byte struct vm_run: 0x80207601 (vmm_dev.h at e17eca32)', () => {
  const run = ioctlByName('14.0', 'VM_RUN');
  assert.ok(run);
  assert.equal(run.dir, 'in');
  assert.equal(run.len, 32);
  assert.equal(run.struct, 'vm_run');
  assert.equal(run.request, ioc(IOC_IN, VMM_IOC_GROUP, IocNum.RUN, 32));
  assert.equal(run.request, 0x80207601);
  assert.notEqual(run.request, 0xc0207601, 'the _IOWR number is not the kernel\'s');
});

// sys/dev/vmm/vmm_dev.c at 012895d5 (read_file id 3299502974: VM_ALLOC/GET_MEMSEG_14 are _IOW/_IOWR
// of the 32-byte struct vm_memseg_14) and sys/dev/vmm/vmm_dev.h at 272c8c2b (id 31869710602:
// VMMCTL_VM_CREATE/DESTROY _IOWR('V', 0/1) of name[VM_MAX_NAMELEN + 1] + int reserved[16]); the
// 56-byte NUMA vm_memseg as in kernel-15-side.md section 2 (field order from the riscv header).
test('vmm_dev.c / vmm_dev.h (15.0): memseg numbers of the NUMA struct and of COMPAT_FREEBSD14, vmmctl, unchanged MMAP requests', () => {
  assert.equal(REQ15.VM_ALLOC_MEMSEG, 0x8038760e);
  assert.equal(REQ15.VM_GET_MEMSEG, 0xc038760f);
  assert.equal(REQ15.VM_ALLOC_MEMSEG_14, REQ13.VM_ALLOC_MEMSEG);
  assert.equal(REQ15.VM_GET_MEMSEG_14, REQ13.VM_GET_MEMSEG);
  assert.equal(REQ15.VM_MMAP_MEMSEG, REQ13.VM_MMAP_MEMSEG);
  assert.equal(REQ15.VM_MMAP_GETNEXT, REQ13.VM_MMAP_GETNEXT);
  assert.equal(REQ15.VM_RUN, 0x80207601);
  assert.equal(REQ15.VM_RUN_13, REQ13.VM_RUN);
  assert.equal(REQ15.VM_STATS_13, REQ13.VM_STATS);
  assert.equal(REQ15.VMMCTL_VM_CREATE, 0xc1285600);
  assert.equal(REQ15.VMMCTL_VM_DESTROY, 0xc1285601);
  assert.equal(ioctlByName('15.0', 'VM_ALLOC_MEMSEG_14')?.compat, 'COMPAT_FREEBSD14');
  assert.equal(ioctlByName('15.0', 'VM_ALLOC_MEMSEG')?.len, 56);
  for (const def of ioctlTable('13.1')) {
    if (def.compat !== undefined) continue;
    // Every request 13.1 bhyve issues is still there, natively or under a compat option.
    assert.ok(ioctlByRequest('15.0', def.request), `${def.name} ${def.request.toString(16)} missing from 15.0`);
  }
});

test('vmm_dev.c adjust_segid (VM_BOOTROM - 1 added to all but VM_SYSMEM): 13.1 ids 1..3 are 8..10 on 15.0; the inverse refuses the NUMA sysmem ids 1..7', () => {
  assert.deepEqual([0, 1, 2, 3].map(segidTo15), [0, 8, 9, 10]);
  assert.deepEqual([0, 8, 9, 10].map(segidFrom15), [0, 1, 2, 3]);
  assert.equal(segidFrom15(3), null);
  assert.equal(segidFrom15(11), null);
});
