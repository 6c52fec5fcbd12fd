// struct vm_exit as the model keeps it per vCPU (vm_exitinfo) and as it is copied to userland.

import { VmExitcode } from '../../abi/enums';
import {
  VM_EXIT,
  VM_EXIT_U_BYTES,
  encodeInout,
  encodeIpi13,
  encodeIpi14,
  encodeMsr,
  encodeSpinupAp,
  encodeSuspended,
} from '../../abi/structs';
import type { CpuSet } from './cpuset';

/** The 13.2-era u.ipi embeds a 256-bit set (vmm_dev.c struct vm_exit_ipi_13). */
const IPI13_DMASK_BITS = 256;

export interface VcpuExit {
  exitcode: number;
  instLength: number;
  rip: bigint;
  /** The 120-byte union `u`, in the 14.0 layout (u.ipi = {mode, vector}). */
  u: Buffer;
}

const EMPTY_UNION = Buffer.alloc(VM_EXIT_U_BYTES);

export function plainExit(exitcode: number, rip: number): VcpuExit {
  return { exitcode, instLength: 0, rip: BigInt(rip), u: EMPTY_UNION };
}

export function suspendedExit(rip: number, how: number): VcpuExit {
  return { exitcode: VmExitcode.SUSPENDED, instLength: 0, rip: BigInt(rip), u: encodeSuspended({ how }) };
}

/**
 * vmx.c EXIT_REASON_INOUT: bytes, in (1 for an IN), port, and eax = the guest's EAX (for an OUT
 * the value written; for an IN what userland merges its result into before VM_SET_REGISTER(RAX)).
 */
export function inoutExit(rip: number, instLength: number, port: number, bytes: number, eax: number, direction: 'in' | 'out' = 'out'): VcpuExit {
  return {
    exitcode: VmExitcode.INOUT,
    instLength,
    rip: BigInt(rip),
    u: encodeInout({ bytes, in: direction === 'in' ? 1 : 0, string: 0, rep: 0, port, eax: eax >>> 0 }),
  };
}

export function wrmsrExit(rip: number, instLength: number, msr: number, value: bigint): VcpuExit {
  return { exitcode: VmExitcode.WRMSR, instLength, rip: BigInt(rip), u: encodeMsr({ code: msr >>> 0, wval: value }) };
}

export function spinupApExit(rip: number, instLength: number, vcpu: number, startRip: bigint): VcpuExit {
  return { exitcode: VmExitcode.SPINUP_AP, instLength, rip: BigInt(rip), u: encodeSpinupAp({ vcpu, rip: startRip }) };
}

export function ipiExit(rip: number, instLength: number, mode: number, vector: number): VcpuExit {
  return { exitcode: VmExitcode.IPI, instLength, rip: BigInt(rip), u: encodeIpi14({ mode, vector }) };
}

/** The 136-byte struct vm_exit of the 14.0 layout (what VM_RUN copies out through vm_exit). */
export function exitBytes(exit: VcpuExit): Buffer {
  return VM_EXIT.encode({ exitcode: exit.exitcode, inst_length: exit.instLength, rip: exit.rip, u: exit.u });
}

/**
 * The 136-byte exit in the 13.x layout: identical except that an IPI exit carries its target set
 * as a 256-bit dmask inside the union (vmm_dev.c VM_RUN_13: BIT_ZERO, then BIT_SET for every
 * vCPU below 256; the early-2023 kernels' own u.ipi had the same shape).
 */
export function exitBytes13(exit: VcpuExit, ipiTargets: CpuSet): Buffer {
  if (exit.exitcode !== VmExitcode.IPI) return exitBytes(exit);
  const mode = exit.u.readUInt32LE(0);
  const vector = exit.u.readUInt8(4);
  const dmask = ipiTargets.ids().filter((id) => id < IPI13_DMASK_BITS);
  const u = encodeIpi13({ mode, vector, dmask });
  return VM_EXIT.encode({ exitcode: exit.exitcode, inst_length: exit.instLength, rip: exit.rip, u });
}
