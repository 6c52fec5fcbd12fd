// vmm.c vcpu_set_state(vcpu, VCPU_FROZEN, from_idle=true) and vmm_dev.c vcpu_lock_one /
// vcpu_lock_all: one ioctl at a time per vCPU.
//
// A thread that wants a vCPU which is not IDLE sets reqidle, notifies the vCPU and sleeps
// ("vmstat") until the vCPU is IDLE. A thread inside VM_RUN for that vCPU sees reqidle at its
// next event check and returns VM_EXITCODE_REQIDLE to userland; its vcpu_unlock makes the vCPU
// IDLE and wakes the waiter. The product's parker threads rely on exactly this.

import type { Vcpu } from './vcpu';
import type { Vm } from './vm';
import type { CallContext } from './wait';

/** vcpu_lock_one: IDLE -> FROZEN, waiting (with reqidle) while another thread holds the vCPU. */
export async function lockVcpu(vm: Vm, vcpu: Vcpu, ctx: CallContext): Promise<void> {
  while (vcpu.state !== 'idle') {
    vcpu.reqidle = true;
    vm.notify();
    vm.stateWaiters++;
    try {
      await vm.sleep(ctx);
    } finally {
      vm.stateWaiters--;
    }
  }
  vcpu.state = 'frozen';
}

/**
 * vcpu_unlock_one: FROZEN -> IDLE and wakeup(&vcpu->state). Also the exit path of a dead caller.
 * The kernel's wakeup reaches only the threads sleeping on that vCPU's state; the model's one
 * channel per VM would wake every sleeper of the VM (every halted vCPU) on every ioctl, so it
 * wakes only when a thread waits for a vCPU to become IDLE.
 */
export function unlockVcpu(vm: Vm, vcpu: Vcpu): void {
  vcpu.state = 'idle';
  if (vm.stateWaiters > 0) vm.notify();
}

/**
 * vcpu_lock_all: freezes every allocated vCPU in id order. If the caller goes away half-way,
 * the vCPUs already frozen are released again (the error path of vcpu_lock_all).
 */
export async function lockAllVcpus(vm: Vm, ctx: CallContext): Promise<Vcpu[]> {
  const locked: Vcpu[] = [];
  try {
    for (const vcpu of vm.allocatedVcpus()) {
      await lockVcpu(vm, vcpu, ctx);
      locked.push(vcpu);
    }
  } catch (error) {
    for (const vcpu of locked) unlockVcpu(vm, vcpu);
    throw error;
  }
  return locked;
}

export function unlockAllVcpus(vm: Vm, locked: readonly Vcpu[]): void {
  for (const vcpu of locked) unlockVcpu(vm, vcpu);
}
