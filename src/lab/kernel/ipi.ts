// vlapic.c vm_handle_ipi (KBUG and KFIX), run on the *sending* vCPU inside its VM_RUN after the
// ICR handler produced VM_EXITCODE_IPI:
//
//   INIT     rendezvous with the targets (vlapic_handle_init resets their vlapics), then
//            vm_await_start(targets). With the sender's ipi_exit false the guest just continues;
//            otherwise the IPI exit goes to userland.
//   STARTUP  targets = vm_start_cpus(targets); empty -> the SIPI is ignored. With ipi_exit false
//            the exit becomes VM_EXITCODE_SPINUP_AP {vcpu = CPU_FFS(targets) - 1 (KFIX) or
//            CPU_FFS(targets), one-based, off by one (KBUG); rip = vector << 12}; otherwise the
//            IPI exit (with the started set) goes to userland.
//
// KBUG rendezvoused with the exit's whole set and KFIX with active ∩ set; vm_handle_rendezvous
// ANDs with active_cpus on every pass, so the two behave alike here.

import { CpuSet } from './cpuset';
import { spinupApExit } from './exit';
import { smpRendezvous } from './rendezvous';
import { DeliveryMode } from './vlapic';
import type { Vcpu } from './vcpu';
import type { Vm } from './vm';
import type { CallContext } from './wait';

const PAGE_SHIFT = 12n;

/** vlapic_handle_init: the rendezvous handler of an INIT IPI (a vlapic reset on the target). */
function vlapicHandleInit(target: Vcpu): void {
  target.vlapicResets++;
}

/** Returns true when the exit goes to userland (`*retu`), false when the guest continues. */
export async function handleIpi(vm: Vm, sender: Vcpu, mode: number, vector: number, ctx: CallContext): Promise<boolean> {
  const targets = sender.exitCpuset.copy();
  const windowBug = vm.config.rules.apStartup === 'ipi-exit-7c326ab5';
  switch (mode) {
    case DeliveryMode.INIT: {
      const rendezvousSet = windowBug ? targets : targets.and(vm.active);
      await smpRendezvous(vm, sender, rendezvousSet, vlapicHandleInit, ctx);
      vm.awaitStart(targets);
      return sender.ipiExit;
    }
    case DeliveryMode.STARTUP: {
      const started: CpuSet = vm.startCpus(targets);
      sender.exitCpuset.assign(started);
      if (started.isEmpty()) return false;
      if (!sender.ipiExit) {
        const first = started.ffs();
        const vcpuid = windowBug ? first : first - 1;
        const exit = sender.exit;
        sender.exit = spinupApExit(Number(exit.rip), exit.instLength, vcpuid, BigInt(vector) << PAGE_SHIFT);
      }
      return true;
    }
    default:
      // Unreachable: the ICR handler produces VM_EXITCODE_IPI only for INIT and STARTUP.
      return false;
  }
}
