// Per-vCPU state ioctls (vmm_dev.c cases; vmm.c and vmx.c functions named per handler).

import { VmCap, VmReg } from '../../abi/enums';
import {
  VM_CAPABILITY,
  VM_EXCEPTION,
  VM_GLA2GPA,
  VM_INTINFO,
  VM_LAPIC_IRQ,
  VM_REGISTER,
  VM_REGISTER_SET,
  VM_SEG_DESC,
  VM_X2APIC,
  fieldOf,
} from '../../abi/structs';
import { X2apicState } from '../../abi/enums';
import { Errno, fail } from './errno';
import { onVcpu, onVcpuOrAll, type IoctlHandler } from './ioctl-types';
import { getRegister, getSegDesc, setRegister, setSegDesc } from './registers';
import type { Vcpu } from './vcpu';
import type { Vm } from './vm';

const CAPVAL_OFFSET = fieldOf(VM_CAPABILITY, 'capval').offset;
const REGVAL_OFFSET = fieldOf(VM_REGISTER, 'regval').offset;
const X2APIC_STATE_OFFSET = fieldOf(VM_X2APIC, 'state').offset;
/** enum x2apic_state: X2APIC_STATE_LAST. */
const X2APIC_STATE_LAST = X2apicState.ENABLED + 1;
/** struct vm_guest_paging.paging_mode inside vm_gla2gpa.paging; PAGING_MODE_FLAT is 0. */
const PAGING_MODE_OFFSET = 16;
const PAGING_MODE_FLAT = 0;

/** vm_get_capability / vm_set_capability: EINVAL outside 0 .. VM_CAP_MAX - 1. */
function checkCapType(vm: Vm, type: number): void {
  if (type < 0 || type >= vm.config.rules.capMax) fail(Errno.EINVAL, `capability ${type}`);
}

/**
 * vmx_getcap: the capabilities the model supports. HALT_EXIT and PAUSE_EXIT are stored but do
 * not change behaviour (hlt always goes through vm_handle_hlt, pause never exits); the other
 * hardware capabilities are not modelled: ENOENT, as vmx_getcap says for an unsupported one.
 */
function readCap(vcpu: Vcpu, type: number): number {
  switch (type) {
    case VmCap.HALT_EXIT:
      return vcpu.haltExit ? 1 : 0;
    case VmCap.PAUSE_EXIT:
      return vcpu.pauseExit ? 1 : 0;
    case VmCap.UNRESTRICTED_GUEST:
      return vcpu.unrestrictedGuest ? 1 : 0;
    case VmCap.IPI_EXIT:
      return vcpu.ipiExit ? 1 : 0;
    default:
      return fail(Errno.ENOENT, `capability ${type} is not supported`);
  }
}

/** vmx_setcap; VM_CAP_IPI_EXIT sets the vlapic's ipi_exit (vlapic.c). */
function writeCap(vcpu: Vcpu, type: number, value: number): void {
  const on = value !== 0;
  switch (type) {
    case VmCap.HALT_EXIT:
      vcpu.haltExit = on;
      return;
    case VmCap.PAUSE_EXIT:
      vcpu.pauseExit = on;
      return;
    case VmCap.UNRESTRICTED_GUEST:
      vcpu.unrestrictedGuest = on;
      return;
    case VmCap.IPI_EXIT:
      vcpu.ipiExit = on;
      return;
    default:
      fail(Errno.ENOENT, `capability ${type} is not supported`);
  }
}

export const VCPU_STATE_IOCTLS: Readonly<Record<string, IoctlHandler>> = {
  VM_GET_CAPABILITY: onVcpu('freeze-one', ({ vm, vcpu, arg }) => {
    const { captype } = VM_CAPABILITY.decode(arg);
    checkCapType(vm, captype);
    arg.writeInt32LE(readCap(vcpu, captype), CAPVAL_OFFSET);
  }),
  VM_SET_CAPABILITY: onVcpu('freeze-one', ({ vm, vcpu, arg }) => {
    const { captype, capval } = VM_CAPABILITY.decode(arg);
    checkCapType(vm, captype);
    writeCap(vcpu, captype, capval);
  }),

  VM_GET_REGISTER: onVcpu('freeze-one', ({ vcpu, arg }) => {
    const { regnum } = VM_REGISTER.decode(arg);
    arg.writeBigUInt64LE(getRegister(vcpu, regnum), REGVAL_OFFSET);
  }),
  VM_SET_REGISTER: onVcpu('freeze-one', ({ vcpu, arg }) => {
    const { regnum, regval } = VM_REGISTER.decode(arg);
    setRegister(vcpu, regnum, regval);
  }),

  VM_GET_SEGMENT_DESCRIPTOR: onVcpu('freeze-one', ({ vcpu, arg }) => {
    const { regnum } = VM_SEG_DESC.decode(arg);
    const desc = getSegDesc(vcpu, regnum);
    VM_SEG_DESC.encodeInto(arg, { base: desc.base, limit: desc.limit, access: desc.access });
  }),
  VM_SET_SEGMENT_DESCRIPTOR: onVcpu('freeze-one', ({ vcpu, arg }) => {
    const { regnum, base, limit, access } = VM_SEG_DESC.decode(arg);
    setSegDesc(vcpu, regnum, { base, limit, access });
  }),

  // vmm_dev.c VM_GET_REGISTER_SET: count > VM_REG_LAST -> EINVAL; copyin regnums, read each
  // (stopping at the first error), copyout regvals.
  VM_GET_REGISTER_SET: onVcpu('freeze-one', async ({ vcpu, arg, ctx }) => {
    const { count, regnums, regvals } = VM_REGISTER_SET.decode(arg);
    if (count > VmReg.LAST) fail(Errno.EINVAL, `count ${count}`);
    const numbers = await ctx.copyin(regnums, count * 4);
    const values = Buffer.alloc(count * 8);
    for (let i = 0; i < count; i++) values.writeBigUInt64LE(getRegister(vcpu, numbers.readInt32LE(i * 4)), i * 8);
    await ctx.copyout(regvals, values);
  }),
  // VM_SET_REGISTER_SET: copyin regnums, copyin regvals, write each (stopping at the first error).
  VM_SET_REGISTER_SET: onVcpu('freeze-one', async ({ vcpu, arg, ctx }) => {
    const { count, regnums, regvals } = VM_REGISTER_SET.decode(arg);
    if (count > VmReg.LAST) fail(Errno.EINVAL, `count ${count}`);
    const numbers = await ctx.copyin(regnums, count * 4);
    const values = await ctx.copyin(regvals, count * 8);
    for (let i = 0; i < count; i++) setRegister(vcpu, numbers.readInt32LE(i * 4), values.readBigUInt64LE(i * 8));
  }),

  // vmm.c vm_set_x2apic_state: EINVAL for a state >= X2APIC_STATE_LAST; vlapic_set_x2apic_state
  // switches the vlapic's mode.
  VM_SET_X2APIC_STATE: onVcpu('freeze-one', ({ vcpu, arg }) => {
    const { state } = VM_X2APIC.decode(arg);
    if (state < 0 || state >= X2APIC_STATE_LAST) fail(Errno.EINVAL, `x2APIC state ${state}`);
    vcpu.x2apicState = state;
  }),
  VM_GET_X2APIC_STATE: onVcpu('alloc', ({ vcpu, arg }) => {
    arg.writeInt32LE(vcpu.x2apicState, X2APIC_STATE_OFFSET);
  }),

  // vmm.c vm_exit_intinfo / vm_get_intinfo: stored, never injected (no event injection modelled).
  VM_SET_INTINFO: onVcpu('freeze-one', ({ vcpu, arg }) => {
    vcpu.intinfo = VM_INTINFO.decode(arg).info1;
  }),
  VM_GET_INTINFO: onVcpu('freeze-one', ({ vcpu, arg }) => {
    VM_INTINFO.encodeInto(arg, { info1: vcpu.intinfo, info2: 0n });
  }),

  // vmm.c vm_inject_exception: EINVAL for a vector >= 32 or the NMI vector. Accepted, not delivered.
  VM_INJECT_EXCEPTION: onVcpu('freeze-one', ({ arg }) => {
    const { vector } = VM_EXCEPTION.decode(arg);
    if (vector < 0 || vector >= 32 || vector === 2) fail(Errno.EINVAL, `exception vector ${vector}`);
  }),
  // vm_inject_nmi / lapic_intr_edge: accepted, not delivered (the lab has no interrupt delivery).
  VM_INJECT_NMI: onVcpu('alloc', () => undefined),
  VM_LAPIC_IRQ: onVcpu('alloc', ({ arg }) => {
    const { vector } = VM_LAPIC_IRQ.decode(arg);
    if (vector < 16 || vector > 255) fail(Errno.EINVAL, `interrupt vector ${vector}`);
  }),
  VM_LAPIC_LOCAL_IRQ: onVcpuOrAll(() => undefined),

  // vmm.c vm_restart_instruction on a FROZEN vCPU: nextrip = the RIP register (the exit's rip).
  VM_RESTART_INSTRUCTION: onVcpu('freeze-one', ({ vcpu }) => {
    if (vcpu.exitRip !== null) vcpu.cpu.ip = vcpu.exitRip;
  }),

  // vm_gla2gpa: only flat (unpaged) guests are modelled, where gpa = gla.
  VM_GLA2GPA: onVcpu('freeze-one', ({ arg }) => translateFlat(arg)),
  VM_GLA2GPA_NOFAULT: onVcpu('freeze-one', ({ arg }) => translateFlat(arg)),

  // vmm_dev.c VM_GET/SET_KERNEMU_DEV: the in-kernel LAPIC/IOAPIC/HPET MMIO emulation is not
  // modelled; every address gets the EINVAL the kernel gives outside those ranges.
  VM_GET_KERNEMU_DEV: onVcpu('freeze-one', () => fail(Errno.EINVAL, 'in-kernel device emulation is not modelled')),
  VM_SET_KERNEMU_DEV: onVcpu('freeze-one', () => fail(Errno.EINVAL, 'in-kernel device emulation is not modelled')),
};

function translateFlat(arg: Buffer): void {
  const request = VM_GLA2GPA.decode(arg);
  if (request.paging.readInt32LE(PAGING_MODE_OFFSET) !== PAGING_MODE_FLAT) fail(Errno.EFAULT, 'guest paging is not modelled');
  VM_GLA2GPA.encodeInto(arg, { gpa: request.gla, fault: 0 });
}
