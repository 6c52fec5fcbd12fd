// The shape of an ioctl handler of the model (vmm_dev.c vmmdev_ioctl's cases), and which vCPU
// locking the ioctl layer does before calling it.

import type { Vcpu } from './vcpu';
import type { Vm } from './vm';
import type { CallContext } from './wait';

/**
 * vmmdev_ioctl's first switch (KFIX/K14):
 *   'freeze-one'        vm_alloc_vcpu(*(int *)data) (NULL -> EINVAL) + vcpu_lock_one
 *   'alloc'             vm_alloc_vcpu without freezing (VM_STATS, VM_INJECT_NMI, VM_LAPIC_IRQ, VM_GET_X2APIC_STATE)
 *   'alloc-unless-all'  as 'alloc', except vcpuid -1 means every vCPU (VM_SUSPEND_CPU, VM_RESUME_CPU, VM_LAPIC_LOCAL_IRQ)
 *   'freeze-all'        vcpu_lock_all: every allocated vCPU (VM_REINIT, memory map changes)
 *   'none'              nothing
 */
export type VcpuLocking = 'freeze-one' | 'alloc' | 'alloc-unless-all' | 'freeze-all' | 'none';

interface CallBase {
  readonly vm: Vm;
  /** The argument as copied in (IOC_IN) or zeroed (IOC_OUT only); handlers write results into it. */
  readonly arg: Buffer;
  readonly ctx: CallContext;
}
export interface VcpuCall extends CallBase {
  readonly vcpu: Vcpu;
}
export interface OptionalVcpuCall extends CallBase {
  /** undefined when the caller passed vcpuid -1 (all vCPUs). */
  readonly vcpu: Vcpu | undefined;
}
export type VmCall = CallBase;

export type IoctlHandler =
  | { readonly locking: 'freeze-one' | 'alloc'; readonly handle: (call: VcpuCall) => void | Promise<void> }
  | { readonly locking: 'alloc-unless-all'; readonly handle: (call: OptionalVcpuCall) => void | Promise<void> }
  | { readonly locking: 'freeze-all' | 'none'; readonly handle: (call: VmCall) => void | Promise<void> };

export function onVcpu(locking: 'freeze-one' | 'alloc', handle: (call: VcpuCall) => void | Promise<void>): IoctlHandler {
  return { locking, handle };
}
export function onVcpuOrAll(handle: (call: OptionalVcpuCall) => void | Promise<void>): IoctlHandler {
  return { locking: 'alloc-unless-all', handle };
}
export function onVm(locking: 'freeze-all' | 'none', handle: (call: VmCall) => void | Promise<void>): IoctlHandler {
  return { locking, handle };
}
