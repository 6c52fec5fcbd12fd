// VM_RUN in its two ABIs (vmm_dev.c, KFIX/K14):
//   embedded exit (144 bytes)  13.1 and early-2023 main natively; VM_RUN_13 under COMPAT_FREEBSD13
//                              on 14.0: the exit is copied into the argument; an IPI exit carries
//                              its targets as a 256-bit dmask inside the union.
//   exit pointer (32 bytes)    14.0: on success the exit is copied out through vm_run.vm_exit; for
//                              VM_EXITCODE_IPI the cpuset too, min(cpusetsize, sizeof(cpuset_t))
//                              bytes, with the rest of the user buffer zero-filled. On error
//                              nothing is copied out.

import { VmExitcode } from '../../abi/enums';
import { VM_RUN_13, VM_RUN_14, fieldOf } from '../../abi/structs';
import { Errno, fail } from './errno';
import { exitBytes, exitBytes13 } from './exit';
import { onVcpu, type IoctlHandler } from './ioctl-types';
import { vmRun } from './vm-run';
import { MAX_COPY_BYTES } from './wait';

const VM_RUN_13_EXIT_OFFSET = fieldOf(VM_RUN_13, 'vm_exit').offset;

export const runEmbeddedExit: IoctlHandler = onVcpu('freeze-one', async ({ vm, vcpu, arg, ctx }) => {
  await vmRun(vm, vcpu, ctx);
  exitBytes13(vcpu.exit, vcpu.exitCpuset).copy(arg, VM_RUN_13_EXIT_OFFSET);
});

export const runExitPointer: IoctlHandler = onVcpu('freeze-one', async ({ vm, vcpu, arg, ctx }) => {
  const request = VM_RUN_14.decode(arg);
  await vmRun(vm, vcpu, ctx);
  await ctx.copyout(request.vm_exit, exitBytes(vcpu.exit));
  if (vcpu.exit.exitcode !== VmExitcode.IPI) return;
  if (request.cpusetsize > BigInt(MAX_COPY_BYTES)) fail(Errno.EFAULT, `cpusetsize ${request.cpusetsize}`);
  const size = Number(request.cpusetsize);
  const out = Buffer.alloc(size);
  vcpu.exitCpuset.toBytes(Math.min(size, vm.config.kernelCpusetBytes)).copy(out);
  await ctx.copyout(request.cpuset, out);
});
