// vmm.c vm_smp_rendezvous and vm_handle_rendezvous.
//
// The initiator blocks until every requested *active* vCPU has run the handler, and a vCPU
// runs it only inside its own VM_RUN (the RENDEZVOUS event check). An active vCPU that no
// thread runs therefore blocks the initiator forever, until the initiator's thread goes away
// (thread_check_susp): that is the "vmrndv" hang of an eagerly activated, unparked AP.

import { CpuSet } from './cpuset';
import type { Vcpu } from './vcpu';
import type { Vm } from './vm';
import type { CallContext } from './wait';

/**
 * vm_handle_rendezvous: loop until no rendezvous is in progress. Each pass ANDs the request
 * set with active_cpus, runs the handler for this vCPU if it is requested and has not run it,
 * and completes the rendezvous when done == req (waking everybody). `vcpu` is undefined for a
 * caller that is not a vCPU.
 */
export async function handleRendezvous(vm: Vm, vcpu: Vcpu | undefined, ctx: CallContext): Promise<void> {
  for (;;) {
    const rv = vm.rendezvous;
    if (rv === null) return;
    rv.req = rv.req.and(vm.active);
    if (vcpu !== undefined && rv.req.has(vcpu.id) && !rv.done.has(vcpu.id)) {
      rv.handler(vcpu);
      rv.done.add(vcpu.id);
    }
    if (rv.req.equals(rv.done)) {
      vm.rendezvous = null;
      vm.notify();
      return;
    }
    await vm.sleep(ctx); // "vmrndv"
  }
}

/**
 * vm_smp_rendezvous: services a rendezvous already in progress first, then requests `dest`,
 * notifies those vCPUs and waits in vm_handle_rendezvous like everyone else.
 */
export async function smpRendezvous(
  vm: Vm,
  initiator: Vcpu,
  dest: CpuSet,
  handler: (vcpu: Vcpu) => void,
  ctx: CallContext,
): Promise<void> {
  while (vm.rendezvous !== null) await handleRendezvous(vm, initiator, ctx);
  vm.rendezvous = { req: dest.copy(), done: new CpuSet(), handler };
  vm.notify();
  await handleRendezvous(vm, initiator, ctx);
}
