// vCPU sets: VM_ACTIVATE_CPU, VM_SUSPEND_CPU / VM_RESUME_CPU (debug suspend), VM_GET_CPUS.

import { CpusetWhich } from '../../abi/enums';
import { VM_CPUSET } from '../../abi/structs';
import type { CpuSet } from './cpuset';
import { Errno, fail } from './errno';
import { onVcpu, onVcpuOrAll, onVm, type IoctlHandler } from './ioctl-types';
import type { Vm } from './vm';

function setOf(vm: Vm, which: number): CpuSet {
  switch (which) {
    case CpusetWhich.ACTIVE:
      return vm.active;
    case CpusetWhich.SUSPENDED:
      return vm.suspended;
    case CpusetWhich.DEBUG:
      return vm.debug;
    default:
      return fail(Errno.EINVAL, `cpuset ${which}`);
  }
}

export const CPUSET_IOCTLS: Readonly<Record<string, IoctlHandler>> = {
  // vmm.c vm_activate_cpu (the vCPU is allocated and frozen by vmmdev_ioctl first).
  VM_ACTIVATE_CPU: onVcpu('freeze-one', ({ vm, vcpu }) => vm.activateCpu(vcpu)),
  // vmm.c vm_suspend_cpu / vm_resume_cpu; vcpuid -1 means all.
  VM_SUSPEND_CPU: onVcpuOrAll(({ vm, vcpu }) => vm.suspendCpu(vcpu)),
  VM_RESUME_CPU: onVcpuOrAll(({ vm, vcpu }) => vm.resumeCpu(vcpu)),
  // vmm_dev.c VM_GET_CPUS: ERANGE if cpusetsize < sizeof(cpuset_t) or > CPU_MAXSIZE / NBBY;
  // EINVAL for an unknown set; then exactly cpusetsize bytes go out through `cpus`, the part
  // beyond the kernel's cpuset zero-filled.
  VM_GET_CPUS: onVm('none', async ({ vm, arg, ctx }) => {
    const { which, cpusetsize, cpus } = VM_CPUSET.decode(arg);
    if (cpusetsize < vm.config.kernelCpusetBytes || cpusetsize > vm.config.cpuMaxsizeBytes) {
      fail(Errno.ERANGE, `cpusetsize ${cpusetsize}, kernel cpuset_t is ${vm.config.kernelCpusetBytes} bytes`);
    }
    const set = setOf(vm, which);
    await ctx.copyout(cpus, set.toBytes(cpusetsize));
  }),
};
