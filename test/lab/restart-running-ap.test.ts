// A guest that sends INIT and SIPI to an AP that is already running (smp-boot-restart: "restart
// AP 1"), under a 13.x bhyve.
//
// FreeBSD's rules: a 13.0/13.1 kernel ignores the SIPI (vlapic boot state BS_RUNNING: no second
// SPINUP_AP), so the AP keeps running and the guest prints restart=0. From b265a2e0 (13.2 and
// later, 14.x, 15.0) the compat path of vlapic.c vm_handle_ipi adds every INIT target to
// startup_cpus, running or not, and the SIPI becomes a second VM_EXITCODE_SPINUP_AP for the
// running AP (read at 0162500b, read_file id 6804939122; vmm.c vm_await_start/vm_start_cpus id
// 180193527). 13.x bhyve's spinup_ap (spinup_ap.c, ids 582316966, 19015771312) then vcpu_resets
// that AP from the BSP's thread, one register ioctl at a time, while the AP's own thread keeps
// re-entering VM_RUN between them (each ioctl takes the vCPU from it with REQIDLE), and at last
// asks VM_ACTIVATE_CPU for an AP that is active: EBUSY, err(EX_OSERR): bhyve exits 71, unless the
// AP ran into trouble first with its half-reset registers.
//
// In the lab the AP does run between two of those writes, with RIP already 0xFFF0 and CS still its
// trampoline's, and meets zero bytes at 1100:FFF0, `add [bx+si], al` on a CPU but outside the lab's
// x86 subset: a triple fault. The VM suspends, the AP waits in vm_handle_suspend for vCPU 0, whose
// thread waits in vcpu_set_state for vCPU 1 to go idle: FreeBSD's own deadlock once a vCPU faults
// there (vm_handle_suspend does not look at reqidle), reached through the lab's subset. So the lab
// reports a hang and says which vCPU faulted where; on FreeBSD the same bhyve most likely exits 71.
// Either way the guest's restart never completes. The interposer keeps the second SPINUP_AP from
// bhyve (docs/design.md, the compat sequence step 7): the guest sees what a 13.1 kernel shows it.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { VmExitcode } from '../../src/abi/enums';
import { REQ13 } from '../../src/abi/ioctls';
import { compatEventsOf, LabBench, runLab, type LabBhyve, type LabKernelName } from '../../src/lab/run';
import { standardGuest } from '../../src/lab/guests';

const restartGuest = standardGuest('smp-boot-restart', 'com1');

function lab(kernel: LabKernelName, bhyve: LabBhyve, shim: boolean, bootrom: boolean) {
  return runLab({ kernel, bhyve, vcpus: 4, shim, bootrom, timeoutMs: 8000, guest: bootrom ? restartGuest : standardGuest('smp-boot-restart'), collectDaemonLog: true });
}

for (const bhyve of ['13.1', '13.5'] as const) {
  test(`${bhyve} bhyve on its own 13.1 kernel: the SIPI to a running AP is ignored, the guest prints restart=0`, async () => {
    const r = await lab('legacy13', bhyve, false, true);
    assert.equal(r.outcome, 'poweroff', r.bhyveStderr);
    assert.equal(r.guestOutput, 'online=4\nrestart=0\n');
  });

  for (const bootrom of [false, true]) {
    test(`${bhyve} bhyve on fixed13 through the shim (${bootrom ? 'boot ROM' : 'loader'}): the second SPINUP_AP never reaches bhyve; restart=0 as on its own kernel`, async () => {
      const r = await lab('fixed13', bhyve, true, bootrom);
      assert.equal(r.outcome, 'poweroff', r.bhyveStderr);
      assert.deepEqual(r.apsStarted, [1, 2, 3]);
      assert.equal(r.guestOutput, 'online=4\nrestart=0\n');
      assert.ok(compatEventsOf(r.daemonLog).some((e) => e.event === 'spinup-duplicate' && e.vcpu === 1));
    });
  }

  test(`${bhyve} bhyve on fixed13 without the shim: a second SPINUP_AP for the running AP, spinup_ap resets it under its own thread, the restart never completes`, async () => {
    const bench = await LabBench.start({ kernel: 'fixed13' });
    try {
      const spinups: number[] = [];
      let resetsOfAp1AfterSecond = 0;
      bench.model.tap((e) => {
        if (e.phase !== 'leave' || e.errno !== 0) return;
        if (e.request === REQ13.VM_RUN && e.exit?.exitcode === VmExitcode.SPINUP_AP) spinups.push(e.exit.u.readInt32LE(0));
        if (e.request === REQ13.VM_SET_REGISTER && spinups.length === 2 && e.arg?.readInt32LE(0) === 1) resetsOfAp1AfterSecond++;
      });
      const r = await bench.spawnBhyve({ bhyve, vcpus: 4, vmName: `restart${bhyve.replace('.', '')}`, shim: false, bootrom: true, guest: restartGuest, timeoutMs: 8000 }).result;
      assert.deepEqual(spinups, [1, 2, 3, 1], 'vm_handle_ipi (b265a2e0): the running AP 1 is started again');
      assert.ok(resetsOfAp1AfterSecond > 0, 'spinup_ap: vcpu_reset of the running AP from the BSP\'s thread');
      assert.doesNotMatch(r.guestOutput, /restart=/, 'the guest never sees its restart finish');
      if (r.outcome === 'hang') {
        // The lab's way: the AP ran its half-reset registers into an opcode outside the subset.
        assert.match(r.guestFault ?? '', /^triple fault at [0-9a-f]{4}:fff[0-9a-f], opcode/);
      } else {
        // FreeBSD's likely way: VM_ACTIVATE_CPU of an active AP is EBUSY (spinup_ap -> fbsdrun_addcpu).
        assert.equal(r.bhyveExit.status, 71, r.bhyveStderr);
        assert.match(r.bhyveStderr, /could not activate CPU 1/);
      }
    } finally {
      await bench.close();
    }
  });
}
