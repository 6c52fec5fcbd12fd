// Arithmetic and flag rules of the subset's ALU instructions (Intel SDM vol. 2, each instruction's
// "Flags Affected"). Every function takes unsigned operands already truncated to the operand size,
// returns the truncated result and writes the six status flags into cpu.flags, so the
// interpreter allocates nothing per instruction.

import { CpuState, Flag, STATUS_FLAGS } from './cpu';
import { AluOp } from './opcodes';

/** 1 where the byte has an even number of set bits (PF = parity of the result's low byte). */
const EVEN_PARITY = new Uint8Array(256).map((_, byte) => {
  let bits = 0;
  for (let v = byte; v !== 0; v >>= 1) bits += v & 1;
  return bits % 2 === 0 ? 1 : 0;
});

export function operandMask(size: number): number {
  return size === 4 ? 0xffffffff : size === 2 ? 0xffff : 0xff;
}

export function signBit(size: number): number {
  return size === 4 ? 0x80000000 : size === 2 ? 0x8000 : 0x80;
}

/** ZF, SF and PF of a result (AF, CF, OF are left clear for the caller to add). */
function resultFlags(result: number, size: number): number {
  let flags = 0;
  if (result === 0) flags |= Flag.ZF;
  if ((result & signBit(size)) !== 0) flags |= Flag.SF;
  if (EVEN_PARITY[result & 0xff] === 1) flags |= Flag.PF;
  return flags;
}

function setStatus(cpu: CpuState, status: number): void {
  cpu.flags = (cpu.flags & ~STATUS_FLAGS) | status;
}

function addFlags(a: number, b: number, result: number, size: number): number {
  let flags = resultFlags(result, size);
  if (((a ^ b ^ result) & 0x10) !== 0) flags |= Flag.AF;
  if (((a ^ result) & (b ^ result) & signBit(size)) !== 0) flags |= Flag.OF;
  return flags;
}

function subFlags(a: number, b: number, result: number, size: number): number {
  let flags = resultFlags(result, size);
  if (((a ^ b ^ result) & 0x10) !== 0) flags |= Flag.AF;
  if (((a ^ b) & (a ^ result) & signBit(size)) !== 0) flags |= Flag.OF;
  return flags;
}

/**
 * ADD OR AND SUB XOR CMP. CMP returns the difference like SUB; the caller does not store it.
 * OR/AND/XOR clear CF and OF; AF is undefined on x86 for them and is cleared here.
 */
export function alu(cpu: CpuState, op: number, a: number, b: number, size: number): number {
  const mask = operandMask(size);
  let result: number;
  switch (op) {
    case AluOp.ADD:
      result = ((a + b) & mask) >>> 0;
      setStatus(cpu, addFlags(a, b, result, size) | (a + b > mask ? Flag.CF : 0));
      return result;
    case AluOp.SUB:
    case AluOp.CMP:
      result = ((a - b) & mask) >>> 0;
      setStatus(cpu, subFlags(a, b, result, size) | (a < b ? Flag.CF : 0));
      return result;
    case AluOp.OR:
      result = ((a | b) & mask) >>> 0;
      break;
    case AluOp.AND:
      result = ((a & b) & mask) >>> 0;
      break;
    case AluOp.XOR:
      result = ((a ^ b) & mask) >>> 0;
      break;
    default:
      throw new Error(`alu: operation ${op} is not in the subset`);
  }
  setStatus(cpu, resultFlags(result, size));
  return result;
}

/** INC: like ADD 1, but CF keeps its value. */
export function inc(cpu: CpuState, a: number, size: number): number {
  const result = ((a + 1) & operandMask(size)) >>> 0;
  setStatus(cpu, addFlags(a, 1, result, size) | (cpu.flags & Flag.CF));
  return result;
}

/** DEC: like SUB 1, but CF keeps its value. */
export function dec(cpu: CpuState, a: number, size: number): number {
  const result = ((a - 1) & operandMask(size)) >>> 0;
  setStatus(cpu, subFlags(a, 1, result, size) | (cpu.flags & Flag.CF));
  return result;
}

/** SHL r/m, 1: CF = the bit shifted out, OF = new sign XOR CF; AF cleared (undefined on x86). */
export function shl1(cpu: CpuState, a: number, size: number): number {
  const result = ((a << 1) & operandMask(size)) >>> 0;
  const carry = (a & signBit(size)) !== 0;
  const newSign = (result & signBit(size)) !== 0;
  setStatus(cpu, resultFlags(result, size) | (carry ? Flag.CF : 0) | (carry !== newSign ? Flag.OF : 0));
  return result;
}

/** SHR r/m, 1: CF = the bit shifted out, OF = the operand's old sign; AF cleared. */
export function shr1(cpu: CpuState, a: number, size: number): number {
  const result = a >>> 1;
  const oldSign = (a & signBit(size)) !== 0;
  setStatus(cpu, resultFlags(result, size) | ((a & 1) !== 0 ? Flag.CF : 0) | (oldSign ? Flag.OF : 0));
  return result;
}

/**
 * The jcc condition with code cc (low nibble of 70+cc): even codes test a flag predicate, odd
 * codes its negation (Intel SDM vol. 1, appendix B).
 */
export function conditionHolds(cc: number, flags: number): boolean {
  let holds: boolean;
  switch (cc >> 1) {
    case 0: holds = (flags & Flag.OF) !== 0; break; // o
    case 1: holds = (flags & Flag.CF) !== 0; break; // b
    case 2: holds = (flags & Flag.ZF) !== 0; break; // e
    case 3: holds = (flags & (Flag.CF | Flag.ZF)) !== 0; break; // be
    case 4: holds = (flags & Flag.SF) !== 0; break; // s
    case 5: holds = (flags & Flag.PF) !== 0; break; // p
    case 6: holds = ((flags & Flag.SF) !== 0) !== ((flags & Flag.OF) !== 0); break; // l
    default: holds = (flags & Flag.ZF) !== 0 || ((flags & Flag.SF) !== 0) !== ((flags & Flag.OF) !== 0); // le
  }
  return (cc & 1) === 0 ? holds : !holds;
}
