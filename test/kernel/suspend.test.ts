// VM suspend, halt detection, triple faults and VM_REINIT (vmm.c vm_suspend,
// vm_handle_suspend, vm_handle_hlt, vm_reinit).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { VmCap, VmExitcode, VmSuspendHow, X2apicState } from '../../src/abi/enums';
import { VM_X2APIC, decodeSuspended } from '../../src/abi/structs';
import { Assembler } from '../../src/lab/guests/asm';
import {
  TIMED_OUT,
  createVm,
  parker,
  setRealMode,
  spinGuest,
  startLab,
  within,
  type RunResult,
} from './harness';

const OPTS = { timeout: 5_000 };
const EINVAL = -22;
const EBUSY = -16;
const EALREADY = -37;

function suspendedHow(r: RunResult): number {
  assert.equal(r.ret, 0);
  assert.ok(r.exit);
  assert.equal(r.exit.exitcode, VmExitcode.SUSPENDED, `expected SUSPENDED, got exit code ${r.exit.exitcode}`);
  return decodeSuspended(r.exit.u).how;
}

for (const variant of ['legacy13', 'window', 'fixed14'] as const) {
  describe(`suspend on ${variant}`, () => {
    test(`vmm.c vm_handle_suspend (${variant}): VM_RUN waits until every active vCPU is suspended, then all get SUSPENDED; later VM_RUN is EINVAL; vm_reinit is EBUSY before and clears the sets after`, OPTS, async () => {
      const lab = await startLab(variant);
      try {
        const t = await createVm(lab, 'susp', spinGuest());
        await setRealMode(t, 0, 0x1000);
        await setRealMode(t, 1, 0x1000);
        assert.equal(await t.activate(0), 0);
        assert.equal(await t.activate(1), 0);
        assert.equal(await t.reinit(), EBUSY, 'vm_reinit: suspended_cpus != active_cpus');

        const bsp = await t.sibling(lab);
        const ap = await t.sibling(lab);
        const bspRun = bsp.run(0);
        assert.equal(await t.suspend(VmSuspendHow.NONE), EINVAL);
        assert.equal(await t.suspend(VmSuspendHow.LAST), EINVAL);
        assert.equal(await t.suspend(VmSuspendHow.POWEROFF), 0);
        assert.equal(await t.suspend(VmSuspendHow.RESET), EALREADY);
        assert.equal(await within(bspRun, 200, TIMED_OUT), TIMED_OUT, 'vCPU 1 is active and not suspended yet');
        assert.deepEqual(lab.model.vmSets('susp')?.suspended, [0]);

        assert.equal(suspendedHow(await ap.run(1)), VmSuspendHow.POWEROFF);
        assert.equal(suspendedHow(await bspRun), VmSuspendHow.POWEROFF);
        assert.equal((await bsp.run(0)).ret, EINVAL, 'vm_run: the vCPU is in suspended_cpus');
        assert.equal((await ap.run(1)).ret, EINVAL);
        assert.equal(lab.model.guestStats('susp')?.suspended, 'poweroff');

        assert.equal(await t.reinit(), 0);
        assert.deepEqual(lab.model.vmSets('susp'), { active: [], debug: [], suspended: [], startup: [], withoutThread: [] });
        assert.equal(lab.model.guestStats('susp')?.suspended, null);
        assert.equal((await bsp.run(0)).ret, EINVAL, 'after VM_REINIT no vCPU is active');
        assert.equal(await t.activate(0), 0);
        for (const x of [t, bsp, ap]) x.end();
      } finally {
        await lab.close();
      }
    });
  });
}

test('vmm.c vm_handle_suspend: an active vCPU that no thread runs keeps the BSP waiting in VM_RUN', OPTS, async () => {
  const lab = await startLab('window');
  try {
    const t = await createVm(lab, 'susp-hang', spinGuest());
    await setRealMode(t, 0, 0x1000);
    assert.equal(await t.activate(0), 0);
    assert.equal(await t.activate(1), 0);
    assert.equal(await t.suspend(VmSuspendHow.POWEROFF), 0);
    const bsp = await t.sibling(lab);
    const running = bsp.run(0);
    running.catch(() => undefined);
    assert.equal(await within(running, 300, TIMED_OUT), TIMED_OUT, 'the BSP must hang in "vmsusp"');
    bsp.end();
    await assert.rejects(running);
    assert.deepEqual(lab.model.vmSets('susp-hang')?.suspended, [0], 'the dead thread left its vCPU in suspended_cpus');
    t.end();
  } finally {
    await lab.close();
  }
});

test('vmm.c vmx_run: a debug-suspended AP looping in VM_RUN takes part in the VM suspend (suspend is checked before debug)', OPTS, async () => {
  const lab = await startLab('window');
  try {
    const t = await createVm(lab, 'susp-parked', spinGuest());
    await setRealMode(t, 0, 0x1000);
    assert.equal(await t.activate(0), 0);
    assert.equal(await t.activate(1), 0);
    assert.equal(await t.suspendCpu(1), 0);
    const apThread = await t.sibling(lab);
    const park = parker(apThread, 1);
    const bsp = await t.sibling(lab);
    const bspRun = bsp.run(0);
    assert.equal(await t.suspend(VmSuspendHow.RESET), 0);
    assert.equal(suspendedHow(await bspRun), VmSuspendHow.RESET);
    assert.equal(suspendedHow(await park.done), VmSuspendHow.RESET);
    assert.equal(await t.reinit(), 0);
    for (const x of [t, bsp, apThread]) x.end();
  } finally {
    await lab.close();
  }
});

test('vmm_dev.c VM_REINIT: vcpu_lock_all makes a vCPU inside VM_RUN return REQIDLE first', OPTS, async () => {
  const lab = await startLab('fixed14');
  try {
    const t = await createVm(lab, 'reinit-freeze', spinGuest());
    await setRealMode(t, 0, 0x1000);
    assert.equal(await t.activate(0), 0);
    const bsp = await t.sibling(lab);
    const bspRun = bsp.run(0);
    assert.equal(await within(bspRun, 50, TIMED_OUT), TIMED_OUT, 'the guest spins');
    assert.equal(await t.reinit(), EBUSY);
    const r = await bspRun;
    assert.equal(r.exit?.exitcode, VmExitcode.REQIDLE);
    t.end();
    bsp.end();
  } finally {
    await lab.close();
  }
});

test('vmm.c vm_reinit -> vcpu_init: x2APIC state back to DISABLED and ipi_exit back to false on every allocated vCPU', OPTS, async () => {
  const lab = await startLab('fixed14');
  try {
    const t = await createVm(lab, 'reinit-vcpu', spinGuest());
    assert.equal(await t.setX2apic(3, X2apicState.ENABLED), 0);
    assert.equal(await t.setCap(3, VmCap.IPI_EXIT, 1), 0);
    assert.equal(await t.reinit(), 0, 'no vCPU active: suspended == active');
    const x2 = await t.ioctl('VM_GET_X2APIC_STATE', VM_X2APIC.encode({ cpuid: 3 }));
    assert.equal(VM_X2APIC.decode(x2.out).state, X2apicState.DISABLED);
    assert.deepEqual(await t.getCap(3, VmCap.IPI_EXIT), { ret: 0, value: 0 });
    t.end();
  } finally {
    await lab.close();
  }
});

test('vmm.c vm_handle_hlt: every active vCPU in cli; hlt suspends the VM with VM_SUSPEND_HALT', OPTS, async () => {
  const lab = await startLab('fixed14');
  try {
    const t = await createVm(lab, 'halt', new Assembler().label('h').cli().hlt().jmp('h').bytes());
    await setRealMode(t, 0, 0x1000);
    await setRealMode(t, 1, 0x1000);
    assert.equal(await t.activate(0), 0);
    assert.equal(await t.activate(1), 0);
    const bsp = await t.sibling(lab);
    const bspRun = bsp.run(0);
    assert.equal(await within(bspRun, 200, TIMED_OUT), TIMED_OUT, 'vCPU 1 has not halted: no halt detection yet');
    assert.equal(suspendedHow(await t.run(1)), VmSuspendHow.HALT);
    assert.equal(suspendedHow(await bspRun), VmSuspendHow.HALT);
    assert.equal(lab.model.guestStats('halt')?.suspended, 'halt');
    t.end();
    bsp.end();
  } finally {
    await lab.close();
  }
});

test('vmm.c vm_entry_intinfo (triple fault): an instruction outside the lab subset suspends the VM with VM_SUSPEND_TRIPLEFAULT', OPTS, async () => {
  const lab = await startLab('legacy13');
  try {
    const t = await createVm(lab, 'tf', new Assembler().nop().ud2().bytes());
    await setRealMode(t, 0, 0x1000);
    assert.equal(await t.activate(0), 0);
    assert.equal(suspendedHow(await t.run(0)), VmSuspendHow.TRIPLEFAULT);
    const stats = lab.model.guestStats('tf');
    assert.equal(stats?.suspended, 'triplefault');
    assert.match(stats?.lastFault ?? '', /triple fault at 1000:0001/);
    assert.equal(stats?.instructions[0], 1);
    t.end();
  } finally {
    await lab.close();
  }
});
