// vmm_dev.c vmmdev_ioctl, with the argument handling of kern_ioctl (sys_generic.c) in front:
// the argument is IOCPARM_LEN bytes copied in for IOC_IN, zero-filled for IOC_OUT only; the
// vCPU lookup and locking happen before the handler, the unlock after it whatever happens; the
// argument goes back to the caller only on success and only for IOC_OUT.

import type { IoctlDef } from '../../abi/ioctls';
import { Errno, fail } from './errno';
import { lockAllVcpus, lockVcpu, unlockAllVcpus, unlockVcpu } from './freeze';
import type { IoctlEntry } from './ioctl-table';
import type { Vm } from './vm';
import type { CallContext } from './wait';

/**
 * sys_generic.c kern_ioctl's argument: IOCPARM_LEN bytes copied in for IOC_IN (EFAULT when the
 * caller's buffer is shorter, EINVAL when the frame carries more), zero-filled for IOC_OUT only.
 */
export function ioctlArgument(def: IoctlDef, arg: Buffer): Buffer {
  if (def.dir === 'in' || def.dir === 'inout') {
    // The caller's buffer is shorter than the request says: copyin faults.
    if (arg.length < def.len) fail(Errno.EFAULT, `${def.name}: ${arg.length} of ${def.len} argument bytes`);
    if (arg.length > def.len) fail(Errno.EINVAL, `${def.name}: ${arg.length} argument bytes, the request says ${def.len}`);
    return Buffer.from(arg);
  }
  if (arg.length !== 0) fail(Errno.EINVAL, `${def.name}: takes no input, got ${arg.length} bytes`);
  return Buffer.alloc(def.len);
}

/** kern_ioctl's copyout: the argument goes back only for IOC_OUT (and only on success). */
export function ioctlReply(def: IoctlDef, data: Buffer): Buffer {
  return def.dir === 'out' || def.dir === 'inout' ? data : Buffer.alloc(0);
}

/** The reply of an ioctl: the bytes to copy out (empty unless IOC_OUT and success). */
export async function vmmdevIoctl(vm: Vm, entry: IoctlEntry | undefined, arg: Buffer, ctx: CallContext): Promise<Buffer> {
  if (entry === undefined) fail(Errno.ENOTTY, 'unknown ioctl');
  const { def, handler } = entry;
  const data = ioctlArgument(def, arg);
  vm.checkAlive();

  switch (handler.locking) {
    case 'freeze-one':
    case 'alloc': {
      const vcpu = vm.allocVcpu(data.readInt32LE(0));
      if (vcpu === undefined) fail(Errno.EINVAL, `${def.name}: vCPU ${data.readInt32LE(0)}`);
      if (handler.locking === 'alloc') {
        await handler.handle({ vm, vcpu, arg: data, ctx });
        break;
      }
      await lockVcpu(vm, vcpu, ctx);
      try {
        await handler.handle({ vm, vcpu, arg: data, ctx });
      } finally {
        unlockVcpu(vm, vcpu);
      }
      break;
    }
    case 'alloc-unless-all': {
      const vcpuid = data.readInt32LE(0);
      const vcpu = vcpuid === -1 ? undefined : vm.allocVcpu(vcpuid);
      if (vcpuid !== -1 && vcpu === undefined) fail(Errno.EINVAL, `${def.name}: vCPU ${vcpuid}`);
      await handler.handle({ vm, vcpu, arg: data, ctx });
      break;
    }
    case 'freeze-all': {
      const locked = await lockAllVcpus(vm, ctx);
      try {
        await handler.handle({ vm, arg: data, ctx });
      } finally {
        unlockAllVcpus(vm, locked);
      }
      break;
    }
    case 'none':
      await handler.handle({ vm, arg: data, ctx });
      break;
  }
  return ioctlReply(def, data);
}
