// vmm.c vm_handle_suspend: what a vCPU does inside VM_RUN once vm_suspend() has been called.
//
// It adds itself to suspended_cpus and waits ("vmsusp") until suspended_cpus == active_cpus,
// servicing rendezvous meanwhile; then it wakes the others and VM_RUN returns
// VM_EXITCODE_SUSPENDED. An active vCPU that no thread runs keeps every other vCPU waiting here
// until their threads go away. If the thread goes away while waiting, the vCPU stays in
// suspended_cpus (the kernel breaks out on thread_check_susp without undoing the bit).

import { handleRendezvous } from './rendezvous';
import type { Vcpu } from './vcpu';
import type { Vm } from './vm';
import type { CallContext } from './wait';

export async function handleSuspend(vm: Vm, vcpu: Vcpu, ctx: CallContext): Promise<void> {
  vm.suspended.add(vcpu.id);
  vm.notify();
  for (;;) {
    if (vm.suspended.equals(vm.active)) break;
    if (vm.rendezvous === null) {
      vcpu.state = 'sleeping';
      try {
        await vm.sleep(ctx);
      } finally {
        vcpu.state = 'frozen';
      }
    } else {
      await handleRendezvous(vm, vcpu, ctx);
    }
  }
  // Wake up the other vCPUs waiting in vm_handle_suspend.
  vm.notify();
}
