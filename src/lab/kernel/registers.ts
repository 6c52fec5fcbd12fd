// vmm.c vm_get_register / vm_set_register / vm_get_seg_desc / vm_set_seg_desc, mapped onto the
// interpreter's CpuState. Registers the real-mode subset never touches are stored as written.

import { VmReg } from '../../abi/enums';
import { Gpr, type Segment } from '../x86/cpu';
import { Errno, fail } from './errno';
import type { SegDesc, Vcpu } from './vcpu';

/** enum vm_reg_name -> CpuState.gpr index (RAX, RBX, ... are not in x86 encoding order). */
const GPR_OF_REG: ReadonlyMap<number, number> = new Map([
  [VmReg.RAX, Gpr.EAX],
  [VmReg.RBX, Gpr.EBX],
  [VmReg.RCX, Gpr.ECX],
  [VmReg.RDX, Gpr.EDX],
  [VmReg.RSI, Gpr.ESI],
  [VmReg.RDI, Gpr.EDI],
  [VmReg.RBP, Gpr.EBP],
  [VmReg.RSP, Gpr.ESP],
]);

type SegmentName = 'es' | 'cs' | 'ss' | 'ds';
const SEGMENT_OF_REG: ReadonlyMap<number, SegmentName> = new Map([
  [VmReg.ES, 'es'],
  [VmReg.CS, 'cs'],
  [VmReg.SS, 'ss'],
  [VmReg.DS, 'ds'],
]);

/** vmm.c is_segment_register / is_descriptor_table: the registers VM_*_SEGMENT_DESCRIPTOR accept. */
const DESCRIPTOR_REGS: ReadonlySet<number> = new Set([
  VmReg.ES,
  VmReg.CS,
  VmReg.SS,
  VmReg.DS,
  VmReg.FS,
  VmReg.GS,
  VmReg.TR,
  VmReg.LDTR,
  VmReg.IDTR,
  VmReg.GDTR,
]);

const LOW32 = 0xffffffffn;

/** vm_get_register: EINVAL outside enum vm_reg_name (0 .. VM_REG_LAST - 1). */
function checkRegister(reg: number): void {
  if (!Number.isInteger(reg) || reg < 0 || reg >= VmReg.LAST) fail(Errno.EINVAL, `register ${reg}`);
}

/**
 * The subset is 16/32-bit: the upper halves of the general registers are not modelled, so a
 * 64-bit value reads back truncated to 32 bits.
 */
export function getRegister(vcpu: Vcpu, reg: number): bigint {
  checkRegister(reg);
  const cpu = vcpu.cpu;
  const gpr = GPR_OF_REG.get(reg);
  if (gpr !== undefined) return BigInt(cpu.gpr[gpr] ?? 0);
  if (reg === VmReg.RIP) return BigInt(vcpu.exitRip ?? cpu.ip);
  if (reg === VmReg.RFLAGS) return BigInt(cpu.flags >>> 0);
  const seg = SEGMENT_OF_REG.get(reg);
  if (seg !== undefined) return BigInt(cpu[seg].selector);
  return vcpu.otherRegisters.get(reg) ?? 0n;
}

export function setRegister(vcpu: Vcpu, reg: number, value: bigint): void {
  checkRegister(reg);
  const cpu = vcpu.cpu;
  const gpr = GPR_OF_REG.get(reg);
  if (gpr !== undefined) {
    cpu.gpr[gpr] = Number(value & LOW32);
    return;
  }
  if (reg === VmReg.RIP) {
    // vm_set_register(RIP) also sets vcpu->nextrip: the next VM_RUN starts here.
    cpu.ip = Number(value & LOW32);
    vcpu.exitRip = null;
    return;
  }
  if (reg === VmReg.RFLAGS) {
    cpu.flags = Number(value & LOW32);
    return;
  }
  const seg = SEGMENT_OF_REG.get(reg);
  if (seg !== undefined) {
    // A VMCS selector write changes the selector only; the base comes with the descriptor.
    cpu[seg].selector = Number(value & 0xffffn);
    return;
  }
  vcpu.otherRegisters.set(reg, BigInt.asUintN(64, value));
}

function checkDescriptorRegister(reg: number): void {
  if (!DESCRIPTOR_REGS.has(reg)) fail(Errno.EINVAL, `register ${reg} has no descriptor`);
}

export function getSegDesc(vcpu: Vcpu, reg: number): SegDesc {
  checkDescriptorRegister(reg);
  // IDTR is the interpreter's (lidt loads it); its access rights are not modelled.
  if (reg === VmReg.IDTR) return { base: BigInt(vcpu.cpu.idtr.base), limit: vcpu.cpu.idtr.limit, access: vcpu.otherDescriptors.get(reg)?.access ?? 0 };
  const seg = SEGMENT_OF_REG.get(reg);
  if (seg !== undefined) {
    const s: Segment = vcpu.cpu[seg];
    return { base: BigInt(s.base), limit: s.limit >>> 0, access: s.access >>> 0 };
  }
  return vcpu.otherDescriptors.get(reg) ?? { base: 0n, limit: 0, access: 0 };
}

export function setSegDesc(vcpu: Vcpu, reg: number, desc: SegDesc): void {
  checkDescriptorRegister(reg);
  if (reg === VmReg.IDTR) {
    vcpu.cpu.idtr.base = Number(desc.base & LOW32);
    vcpu.cpu.idtr.limit = desc.limit >>> 0;
    vcpu.otherDescriptors.set(reg, { ...desc });
    return;
  }
  const seg = SEGMENT_OF_REG.get(reg);
  if (seg !== undefined) {
    const s: Segment = vcpu.cpu[seg];
    s.base = Number(desc.base & LOW32);
    s.limit = desc.limit >>> 0;
    s.access = desc.access >>> 0;
    return;
  }
  vcpu.otherDescriptors.set(reg, { ...desc });
}
