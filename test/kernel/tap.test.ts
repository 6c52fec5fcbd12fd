// The lab's ground truth about threads and its fault-injection hook: VmSets.withoutThread (an
// active vCPU that no live thread runs blocks every rendezvous and suspend: vmm.c
// vm_handle_rendezvous, vm_handle_suspend) and KernelModel.tap (every open and ioctl as it
// enters and leaves the model).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VmExitcode } from '../../src/abi/enums';
import { decodeSpinupAp } from '../../src/abi/structs';
import type { KernelTapEvent } from '../../src/lab/kernel/server';
import { bootOneApGuest, createVm, parker, setRealMode, spinGuest, startLab, until } from './harness';

const OPTS = { timeout: 5_000 };
const EBUSY = 16;

test('withoutThread: an active vCPU counts as run only while the thread that last entered VM_RUN on it lives', OPTS, async () => {
  const lab = await startLab('window');
  try {
    const t = await createVm(lab, 'threads', spinGuest());
    await setRealMode(t, 0, 0x1000);
    await setRealMode(t, 1, 0x1000);
    assert.equal(await t.activate(0), 0);
    assert.equal(await t.activate(1), 0);
    assert.deepEqual(lab.model.vmSets('threads')?.withoutThread, [0, 1], 'activated, never run');
    assert.equal(await t.suspendCpu(1), 0);
    const ap = await t.sibling(lab);
    assert.equal((await ap.run(1)).exit?.exitcode, VmExitcode.DEBUG, 'a parked AP returns DEBUG');
    assert.deepEqual(lab.model.vmSets('threads')?.withoutThread, [0], 'vCPU 1 has a thread (its parker)');
    ap.end();
    await until(() => lab.model.vmSets('threads')?.withoutThread.includes(1) === true, 'the parker thread exit');
    assert.deepEqual(lab.model.vmSets('threads')?.withoutThread, [0, 1]);
    t.end();
  } finally {
    await lab.close();
  }
});

test('tap: the open, and each ioctl as it enters and leaves, with the caller pid, the argument and the errno', OPTS, async () => {
  const lab = await startLab('window');
  const seen: KernelTapEvent[] = [];
  const untap = lab.model.tap((event) => seen.push(event));
  try {
    const t = await createVm(lab, 'tapped', spinGuest(), 4321);
    assert.deepEqual(
      seen.filter((e) => e.phase === 'open').map((e) => [e.pid, e.vm]),
      [[4321, 'tapped']],
    );
    seen.length = 0;
    assert.equal(await t.activate(1), 0);
    assert.equal(await t.activate(1), -EBUSY, 'vmm.c vm_activate_cpu: EBUSY when already active');
    const activations = seen.filter((e) => e.request === t.req('VM_ACTIVATE_CPU'));
    assert.deepEqual(
      activations.map((e) => [e.phase, e.arg?.readInt32LE(0), e.errno]),
      [
        ['enter', 1, 0],
        ['leave', 1, 0],
        ['enter', 1, 0],
        ['leave', 1, EBUSY],
      ],
    );
    t.end();
  } finally {
    untap();
    await lab.close();
  }
});

test('tap: a VM_RUN leaving with SPINUP_AP carries the exit (window: vcpuid + 1, vlapic.c 7c326ab5 CPU_FFS)', OPTS, async () => {
  const lab = await startLab('window');
  const runs: KernelTapEvent[] = [];
  lab.model.tap((event) => {
    if (event.phase === 'leave' && event.exit !== null) runs.push(event);
  });
  try {
    const t = await createVm(lab, 'spinup', bootOneApGuest(1));
    await setRealMode(t, 0, 0x1000);
    assert.equal(await t.activate(0), 0);
    assert.equal(await t.activate(1), 0);
    assert.equal(await t.suspendCpu(1), 0);
    const ap = parker(await t.sibling(lab), 1);
    const r = await t.run(0);
    assert.equal(r.exit?.exitcode, VmExitcode.SPINUP_AP);
    ap.stop();
    await ap.done;
    const spinup = runs.find((e) => e.exit?.exitcode === VmExitcode.SPINUP_AP);
    assert.ok(spinup, 'the tap saw the SPINUP_AP exit');
    assert.equal(spinup.arg?.readInt32LE(0), 0, 'on the BSP');
    assert.equal(decodeSpinupAp(spinup.exit!.u).vcpu, 2);
    t.end();
  } finally {
    await lab.close();
  }
});
