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
  //
  // 15.0/main (sys/dev/vmm/vmm_dev.c at 3d39856d, DEV15): ERANGE only for size < 1 or >
  // CPU_MAXSIZE / NBBY, EINVAL for an unknown set, then ERANGE if the set's highest bit does not
  // fit in size (howmany(CPU_FLS(cpuset), NBBY)); size bytes go out.
  VM_GET_CPUS: onVm('none', async ({ vm, arg, ctx }) => {
    const { which, cpusetsize, cpus } = VM_CPUSET.decode(arg);
    if (vm.config.rules.getCpusRule === 'relaxed') {
      if (cpusetsize < 1 || cpusetsize > vm.config.cpuMaxsizeBytes) fail(Errno.ERANGE, `cpusetsize ${cpusetsize}`);
      const set = setOf(vm, which);
      const ids = set.ids();
      const highest = ids.length === 0 ? 0 : Math.max(...ids) + 1;
      if (cpusetsize < Math.ceil(highest / 8)) fail(Errno.ERANGE, `vCPU ${highest - 1} does not fit in ${cpusetsize} bytes`);
      await ctx.copyout(cpus, set.toBytes(cpusetsize));
      return;
    }
    if (cpusetsize < vm.config.kernelCpusetBytes || cpusetsize > vm.config.cpuMaxsizeBytes) {
      fail(Errno.ERANGE, `cpusetsize ${cpusetsize}, kernel cpuset_t is ${vm.config.kernelCpusetBytes} bytes`);
    }
    const set = setOf(vm, which);
    await ctx.copyout(cpus, set.toBytes(cpusetsize));
  }),
};
