// The lab's vCPU: runs the documented real-mode subset (opcodes.ts) on a CpuState until an
// instruction needs the caller (hlt, in, out, wrmsr, rdmsr, cpuid), the instruction budget is used up, or
// the guest does something outside the subset (a fault, which the kernel model turns into a
// triple-fault suspend).
//
// Performance: the kernel model calls run() inside every VM_RUN slice, so the loop allocates
// nothing per instruction: decoding goes through the 256-entry tables, and the per-instruction
// decode results live in the module-level scratch variables below (run() is not re-entrant).
// Only exits allocate their result object.

import { CpuState, Flag, Gpr, Segment, setRealModeSegment } from './cpu';
import { alu, conditionHolds, dec, inc, operandMask, shl1, shr1 } from './alu';
import { AluOp, OpFlag, OpType, ONE_BYTE_OPCODES, OpcodeEntry, Prefix, TWO_BYTE_OPCODES } from './opcodes';

/** Guest-physical memory: index = guest-physical address. */
export interface GuestMemory {
  readonly bytes: Uint8Array;
  /**
   * A read-only region outside `bytes`: the boot ROM mapped so that it ends at 4 GB, where the
   * reset vector (CS base 0xFFFF0000, IP 0xFFF0) is. Instructions are fetched from it, and a
   * CS-relative read (the 2E prefix on movs and lidt) reads it; nothing writes it.
   */
  readonly high?: { readonly base: number; readonly bytes: Uint8Array } | null;
}

/** What the interpreter needs from the machine around it. */
export interface Platform {
  /** Time stamp counter: 1 GHz of host monotonic time (internals.md section 4). */
  tsc(): bigint;
}

export type Exit =
  | { kind: 'budget' }
  | { kind: 'hlt'; rip: number; instLength: number }
  | { kind: 'in'; port: number; bytes: 1 | 2 | 4; rip: number; instLength: number }
  | { kind: 'out'; port: number; bytes: 1 | 2 | 4; value: number; rip: number; instLength: number }
  | { kind: 'wrmsr'; msr: number; value: bigint; rip: number; instLength: number }
  | { kind: 'rdmsr'; msr: number; rip: number; instLength: number }
  | { kind: 'cpuid'; leaf: number; subleaf: number; rip: number; instLength: number }
  | { kind: 'fault'; rip: number; opcode: number; reason: string };

export type FaultExit = Extract<Exit, { kind: 'fault' }>;

/** Longer instructions raise #GP on x86 (Intel SDM vol. 2, 2.3.11). */
export const MAX_INSTRUCTION_LENGTH = 15;

/** `opcode` of a fault raised before an opcode byte could be fetched. */
export const NO_OPCODE = -1;

const BUDGET_EXIT: Exit = Object.freeze({ kind: 'budget' });
const TWO_POW_32 = 0x1_0000_0000;
const MAX_EXACT_TSC = BigInt(Number.MAX_SAFE_INTEGER);

/** Thrown inside one instruction when the guest leaves the subset; caught by run(). */
class GuestFault {
  constructor(readonly detail: string) {}
}

// ---- Scratch state of the instruction being executed (reset at the start of every step) ----

const NO_MEMORY = new Uint8Array(0);
let memory: Uint8Array = NO_MEMORY;
let highBase = 0;
let highMemory: Uint8Array = NO_MEMORY;
/** IP of the instruction's first byte (prefixes included). */
let instructionStart = 0;
/** IP of the next byte to fetch; after decoding, the IP of the next instruction. */
let fetchIp = 0;
let fetchBase = 0;
let fetchLimit = 0;
/** The opcode as reported in a fault: the byte, 0x0f00 | byte for two-byte opcodes, or NO_OPCODE. */
let currentOpcode = NO_OPCODE;
/** The ModRM reg field (a register, a /digit or a segment register). */
let modrmRegField = 0;
/** Whether the ModRM r/m operand is a register (mod = 11) or memory ([disp16]). */
let rmIsRegister = false;
let rmRegister = 0;
/** Linear address of a memory operand, already checked against the segment limit and guest memory. */
let rmLinear = 0;
/** The 2E prefix: the memory source is read through CS (which may reach the boot ROM). */
let csOverride = false;

function fault(detail: string): never {
  throw new GuestFault(detail);
}

// ---- Instruction fetch ----

function fetch8(): number {
  if (fetchIp - instructionStart >= MAX_INSTRUCTION_LENGTH) {
    fault(`instruction longer than ${MAX_INSTRUCTION_LENGTH} bytes (#GP on x86)`);
  }
  if (fetchIp > fetchLimit) fault(`instruction fetch at IP 0x${hex(fetchIp, 4)} beyond the CS limit 0x${hex(fetchLimit, 4)}`);
  const linear = fetchBase + fetchIp;
  if (linear >= memory.length) {
    const offset = linear - highBase;
    if (offset >= 0 && offset < highMemory.length) {
      fetchIp++;
      return highMemory[offset];
    }
    fault(`instruction fetch at linear 0x${hex(linear, 5)} outside guest memory (0x${hex(memory.length, 5)} bytes)`);
  }
  fetchIp++;
  return memory[linear];
}

function fetch16(): number {
  const low = fetch8();
  return low | (fetch8() << 8);
}

function fetch32(): number {
  const low = fetch16();
  return (low | (fetch16() << 16)) >>> 0;
}

function fetchImmediate(size: number): number {
  return size === 4 ? fetch32() : size === 2 ? fetch16() : fetch8();
}

/** A signed 8-bit displacement. */
function fetchRel8(): number {
  return (fetch8() << 24) >> 24;
}

function fetchRel16(): number {
  return (fetch16() << 16) >> 16;
}

// ---- Operands ----

/**
 * Checks a data access of `size` bytes at `offset` in segment `seg` (named `segName` in faults)
 * and returns its linear address. Real mode still checks the segment limit (an access past it
 * is #GP on x86); there is no A20 wrap.
 */
function dataAddress(seg: Segment, offset: number, size: number, segName = 'DS'): number {
  if (offset + size - 1 > seg.limit) {
    fault(`data access at ${segName} offset 0x${hex(offset, 4)} (${size} bytes) beyond the ${segName} limit 0x${hex(seg.limit, 4)}`);
  }
  const linear = seg.base + offset;
  if (linear + size > memory.length) {
    fault(`data access at linear 0x${hex(linear, 5)} (${size} bytes) outside guest memory (0x${hex(memory.length, 5)} bytes)`);
  }
  return linear;
}

/**
 * A read through CS (the 2E prefix): like dataAddress, but the bytes may also lie in the boot ROM
 * at the top of the 4 GB space, which real mode reaches only through the reset vector's CS base.
 */
function sourceAddress(cpu: CpuState, offset: number, size: number): number {
  if (!csOverride) return dataAddress(cpu.ds, offset, size);
  const cs = cpu.cs;
  if (offset + size - 1 > cs.limit) {
    fault(`data access at CS offset 0x${hex(offset, 4)} (${size} bytes) beyond the CS limit 0x${hex(cs.limit, 4)}`);
  }
  const linear = cs.base + offset;
  if (linear + size <= memory.length) return linear;
  const romOffset = linear - highBase;
  if (romOffset < 0 || romOffset + size > highMemory.length) {
    fault(`data access at linear 0x${hex(linear, 5)} (${size} bytes) outside guest memory (0x${hex(memory.length, 5)} bytes) and the boot ROM`);
  }
  return linear;
}

/** Reads what sourceAddress checked: guest memory or, above it, the boot ROM. */
function readSource(linear: number, size: number): number {
  if (linear + size <= memory.length) return readMemory(linear, size);
  const at = linear - highBase;
  if (size === 1) return highMemory[at];
  if (size === 2) return highMemory[at] | (highMemory[at + 1] << 8);
  return (highMemory[at] | (highMemory[at + 1] << 8) | (highMemory[at + 2] << 16) | (highMemory[at + 3] << 24)) >>> 0;
}

/**
 * Decodes a ModRM byte. The subset's addressing modes are a register (mod = 11) and a
 * DS-relative 16-bit displacement (mod = 00, r/m = 110), the [m16] of the documentation.
 */
function decodeModRM(cpu: CpuState, entry: OpcodeEntry, size: number): void {
  const modrm = fetch8();
  modrmRegField = (modrm >> 3) & 7;
  if ((entry.regFieldMask & (1 << modrmRegField)) === 0) {
    fault(`${opcodeText()} /${modrmRegField} (not in the lab's x86 subset)`);
  }
  const mod = modrm >> 6;
  const rm = modrm & 7;
  if (mod === 3) {
    if ((entry.opFlags & OpFlag.MEMORY_ONLY) !== 0) fault(`${opcodeText()} /${modrmRegField} needs a memory operand (#UD on x86)`);
    rmIsRegister = true;
    rmRegister = rm;
  } else if (mod === 0 && rm === 6) {
    rmIsRegister = false;
    rmLinear = sourceAddress(cpu, fetch16(), size);
  } else {
    fault(`${opcodeText()}, ModRM 0x${hex(modrm, 2)}: addressing mode not in the lab's x86 subset (registers and [disp16] only)`);
  }
}

function readRegister(gpr: Uint32Array, reg: number, size: number): number {
  if (size === 4) return gpr[reg];
  if (size === 2) return gpr[reg] & 0xffff;
  // 8-bit registers: AL CL DL BL are the low bytes of EAX..EBX, AH CH DH BH their second bytes.
  return reg < 4 ? gpr[reg] & 0xff : (gpr[reg - 4] >>> 8) & 0xff;
}

function writeRegister(gpr: Uint32Array, reg: number, size: number, value: number): void {
  if (size === 4) gpr[reg] = value;
  else if (size === 2) gpr[reg] = (gpr[reg] & 0xffff0000) | (value & 0xffff);
  else if (reg < 4) gpr[reg] = (gpr[reg] & 0xffffff00) | (value & 0xff);
  else gpr[reg - 4] = (gpr[reg - 4] & 0xffff00ff) | ((value & 0xff) << 8);
}

function readMemory(linear: number, size: number): number {
  if (size === 1) return memory[linear];
  if (size === 2) return memory[linear] | (memory[linear + 1] << 8);
  return (memory[linear] | (memory[linear + 1] << 8) | (memory[linear + 2] << 16) | (memory[linear + 3] << 24)) >>> 0;
}

function writeMemory(linear: number, size: number, value: number): void {
  memory[linear] = value;
  if (size === 1) return;
  memory[linear + 1] = value >>> 8;
  if (size === 2) return;
  memory[linear + 2] = value >>> 16;
  memory[linear + 3] = value >>> 24;
}

function readRm(gpr: Uint32Array, size: number): number {
  return rmIsRegister ? readRegister(gpr, rmRegister, size) : readMemory(rmLinear, size);
}

function writeRm(gpr: Uint32Array, size: number, value: number): void {
  if (rmIsRegister) writeRegister(gpr, rmRegister, size, value);
  else writeMemory(rmLinear, size, value);
}

/** Segment registers in ModRM reg-field order (ES CS SS DS; FS and GS are not in the subset). */
function segmentRegister(cpu: CpuState, field: number): Segment {
  switch (field) {
    case 0: return cpu.es;
    case 1: return cpu.cs;
    case 2: return cpu.ss;
    default: return cpu.ds;
  }
}

function storeTsc(gpr: Uint32Array, tsc: bigint): void {
  // Below 2^53 a Number holds the value exactly, and splitting it needs no BigInt arithmetic.
  if (tsc >= 0n && tsc <= MAX_EXACT_TSC) {
    const n = Number(tsc);
    gpr[Gpr.EAX] = n >>> 0;
    gpr[Gpr.EDX] = Math.floor(n / TWO_POW_32);
  } else {
    gpr[Gpr.EAX] = Number(tsc & 0xffffffffn);
    gpr[Gpr.EDX] = Number((tsc >> 32n) & 0xffffffffn);
  }
}

// ---- Fault messages ----

function hex(value: number, digits: number): string {
  return value.toString(16).padStart(digits, '0');
}

function opcodeText(): string {
  if (currentOpcode === NO_OPCODE) return 'opcode (none)';
  if (currentOpcode > 0xff) return `opcode 0x0f 0x${hex(currentOpcode & 0xff, 2)}`;
  return `opcode 0x${hex(currentOpcode, 2)}`;
}

function faultExit(cpu: CpuState, detail: string): FaultExit {
  const where = `${hex(cpu.cs.selector, 4)}:${hex(instructionStart, 4)}`;
  const reason = detail.startsWith('opcode ') ? detail : `${opcodeText()}: ${detail}`;
  return { kind: 'fault', rip: instructionStart, opcode: currentOpcode, reason: `triple fault at ${where}, ${reason}` };
}

// ---- Execution ----

/**
 * Executes one instruction. Returns null when the guest simply continues, or the exit the caller
 * must handle. Every check that can fault comes before the first change of state, so a fault
 * leaves the vCPU exactly as it was before the instruction.
 */
function step(cpu: CpuState, platform: Platform): Exit | null {
  const gpr = cpu.gpr;
  instructionStart = cpu.ip;
  fetchIp = cpu.ip;
  fetchBase = cpu.cs.base;
  fetchLimit = cpu.cs.limit;
  currentOpcode = NO_OPCODE;

  let operandSize32 = false;
  let lock = false;
  let rep = false;
  csOverride = false;
  let opByte = fetch8();
  for (;;) {
    if (opByte === Prefix.OPERAND_SIZE) operandSize32 = true;
    else if (opByte === Prefix.LOCK) lock = true;
    else if (opByte === Prefix.REP) rep = true;
    else if (opByte === Prefix.CS_OVERRIDE) csOverride = true;
    else break;
    opByte = fetch8();
  }

  let entry: OpcodeEntry;
  if (opByte === Prefix.TWO_BYTE_ESCAPE) {
    const second = fetch8();
    currentOpcode = 0x0f00 | second;
    entry = TWO_BYTE_OPCODES[second];
  } else {
    currentOpcode = opByte;
    entry = ONE_BYTE_OPCODES[opByte];
  }
  if (entry.opType === OpType.UNSUPPORTED) fault(`${opcodeText()} (not in the lab's x86 subset)`);

  const opFlags = entry.opFlags;
  if (operandSize32 && (opFlags & OpFlag.NO_OPSIZE) !== 0) {
    fault('operand-size prefix 0x66 on a branch is not in the lab\'s x86 subset');
  }
  if (rep && (opFlags & OpFlag.REPEATABLE) === 0) fault('rep prefix 0xf3 is in the subset only as pause (f3 90) and on movs');
  if (csOverride && (opFlags & OpFlag.CS_OVERRIDE) === 0) fault('segment override prefix 0x2e (cs) is in the subset only on movs and lidt');
  const size = (opFlags & OpFlag.BYTE) !== 0 ? 1 : (opFlags & OpFlag.OPSIZE) !== 0 && operandSize32 ? 4 : 2;
  // lidt reads a 6-byte pseudo-descriptor: a limit word and a base dword (24 bits without 66).
  if ((opFlags & OpFlag.MODRM) !== 0) decodeModRM(cpu, entry, entry.opType === OpType.LIDT ? 6 : size);
  if (lock && ((opFlags & OpFlag.LOCKABLE) === 0 || rmIsRegister || (opFlags & OpFlag.MODRM) === 0)) {
    fault('lock prefix 0xf0 is allowed only on inc/dec of a memory operand (#UD on x86)');
  }

  let nextIp = fetchIp;
  switch (entry.opType) {
    case OpType.ALU_RM_REG: {
      const result = alu(cpu, entry.subcode, readRm(gpr, size), readRegister(gpr, modrmRegField, size), size);
      if (entry.subcode !== AluOp.CMP) writeRm(gpr, size, result);
      break;
    }
    case OpType.ALU_REG_RM: {
      const result = alu(cpu, entry.subcode, readRegister(gpr, modrmRegField, size), readRm(gpr, size), size);
      if (entry.subcode !== AluOp.CMP) writeRegister(gpr, modrmRegField, size, result);
      break;
    }
    case OpType.ALU_ACC_IMM:
    case OpType.ALU_AL_IMM8: {
      const immediate = fetchImmediate(size);
      nextIp = fetchIp;
      const result = alu(cpu, entry.subcode, readRegister(gpr, Gpr.EAX, size), immediate, size);
      if (entry.subcode !== AluOp.CMP) writeRegister(gpr, Gpr.EAX, size, result);
      break;
    }
    case OpType.ALU_RM_IMM:
    case OpType.ALU_RM_IMM8: {
      const immediate = entry.opType === OpType.ALU_RM_IMM
        ? fetchImmediate(size)
        : (((fetch8() << 24) >> 24) & operandMask(size)) >>> 0;
      nextIp = fetchIp;
      const result = alu(cpu, modrmRegField, readRm(gpr, size), immediate, size);
      if (modrmRegField !== AluOp.CMP) writeRm(gpr, size, result);
      break;
    }
    case OpType.INC_REG:
      writeRegister(gpr, entry.subcode, size, inc(cpu, readRegister(gpr, entry.subcode, size), size));
      break;
    case OpType.DEC_REG:
      writeRegister(gpr, entry.subcode, size, dec(cpu, readRegister(gpr, entry.subcode, size), size));
      break;
    case OpType.INC_DEC_RM: {
      const value = readRm(gpr, size);
      // A lock prefix needs no modelling: the kernel model runs one vCPU at a time.
      writeRm(gpr, size, modrmRegField === 0 ? inc(cpu, value, size) : dec(cpu, value, size));
      break;
    }
    case OpType.SHIFT_RM_1: {
      const value = readRm(gpr, size);
      writeRm(gpr, size, modrmRegField === 4 ? shl1(cpu, value, size) : shr1(cpu, value, size));
      break;
    }
    case OpType.MOV_RM_REG:
      writeRm(gpr, size, readRegister(gpr, modrmRegField, size));
      break;
    case OpType.MOV_REG_RM:
      writeRegister(gpr, modrmRegField, size, readRm(gpr, size));
      break;
    case OpType.MOV_RM_SREG:
      writeRm(gpr, 2, segmentRegister(cpu, modrmRegField).selector);
      break;
    case OpType.MOV_SREG_RM:
      setRealModeSegment(segmentRegister(cpu, modrmRegField), readRm(gpr, 2));
      break;
    case OpType.MOV_ACC_MOFFS: {
      const linear = dataAddress(cpu.ds, fetch16(), size);
      nextIp = fetchIp;
      writeRegister(gpr, Gpr.EAX, size, readMemory(linear, size));
      break;
    }
    case OpType.MOV_MOFFS_ACC: {
      const linear = dataAddress(cpu.ds, fetch16(), size);
      nextIp = fetchIp;
      writeMemory(linear, size, readRegister(gpr, Gpr.EAX, size));
      break;
    }
    case OpType.MOV_REG8_IMM:
    case OpType.MOV_REG_IMM: {
      const immediate = fetchImmediate(size);
      nextIp = fetchIp;
      writeRegister(gpr, entry.subcode, size, immediate);
      break;
    }
    case OpType.MOV_RM_IMM: {
      const immediate = fetchImmediate(size);
      nextIp = fetchIp;
      writeRm(gpr, size, immediate);
      break;
    }
    case OpType.JCC_REL8:
    case OpType.JCC_REL16: {
      const displacement = entry.opType === OpType.JCC_REL8 ? fetchRel8() : fetchRel16();
      nextIp = conditionHolds(entry.subcode, cpu.flags) ? (fetchIp + displacement) & 0xffff : fetchIp;
      break;
    }
    case OpType.JMP_REL8:
    case OpType.JMP_REL16: {
      const displacement = entry.opType === OpType.JMP_REL8 ? fetchRel8() : fetchRel16();
      nextIp = (fetchIp + displacement) & 0xffff;
      break;
    }
    case OpType.JMP_FAR: {
      const offset = fetch16();
      const selector = fetch16();
      setRealModeSegment(cpu.cs, selector);
      nextIp = offset;
      break;
    }
    case OpType.LOOP_REL8: {
      const displacement = fetchRel8();
      // The address size (16 bits here) picks CX, not ECX; loop changes no flags.
      const count = (gpr[Gpr.ECX] - 1) & 0xffff;
      writeRegister(gpr, Gpr.ECX, 2, count);
      nextIp = count !== 0 ? (fetchIp + displacement) & 0xffff : fetchIp;
      break;
    }
    case OpType.NOP:
      break;
    case OpType.CLI:
      cpu.flags &= ~Flag.IF;
      break;
    case OpType.STI:
      cpu.flags |= Flag.IF;
      break;
    case OpType.HLT:
      commit(cpu, fetchIp);
      return { kind: 'hlt', rip: instructionStart, instLength: fetchIp - instructionStart };
    case OpType.IN_DX: {
      const port = gpr[Gpr.EDX] & 0xffff;
      commit(cpu, fetchIp);
      return { kind: 'in', port, bytes: 1, rip: instructionStart, instLength: fetchIp - instructionStart };
    }
    case OpType.MOVS:
      moveString(cpu, size, rep);
      break;
    case OpType.LIDT: {
      const limit = readSource(rmLinear, 2);
      const base = readSource(rmLinear + 2, 4);
      cpu.idtr.limit = limit;
      cpu.idtr.base = operandSize32 ? base : base & 0xffffff;
      break;
    }
    case OpType.CPUID:
      commit(cpu, fetchIp);
      return { kind: 'cpuid', leaf: gpr[Gpr.EAX], subleaf: gpr[Gpr.ECX], rip: instructionStart, instLength: fetchIp - instructionStart };
    case OpType.OUT_IMM8:
    case OpType.OUT_DX: {
      const port = entry.opType === OpType.OUT_IMM8 ? fetch8() : gpr[Gpr.EDX] & 0xffff;
      const value = readRegister(gpr, Gpr.EAX, size);
      commit(cpu, fetchIp);
      return { kind: 'out', port, bytes: size as 1 | 2 | 4, value, rip: instructionStart, instLength: fetchIp - instructionStart };
    }
    case OpType.WRMSR: {
      const value = (BigInt(gpr[Gpr.EDX]) << 32n) | BigInt(gpr[Gpr.EAX]);
      commit(cpu, fetchIp);
      return { kind: 'wrmsr', msr: gpr[Gpr.ECX], value, rip: instructionStart, instLength: fetchIp - instructionStart };
    }
    case OpType.RDMSR:
      commit(cpu, fetchIp);
      return { kind: 'rdmsr', msr: gpr[Gpr.ECX], rip: instructionStart, instLength: fetchIp - instructionStart };
    case OpType.RDTSC:
      storeTsc(gpr, platform.tsc());
      break;
    default:
      fault(`${opcodeText()}: decoder table entry without an implementation`);
  }
  commit(cpu, nextIp);
  return null;
}

/**
 * movs with 16-bit addressing: copies `size` bytes from DS:SI (CS:SI with 2E) to ES:DI and steps
 * SI and DI by `size` (down with DF), once or, with rep, CX times (CX ends at 0). Every element
 * is checked before the first is written, so a fault changes nothing; the copy then goes element
 * by element in order, as x86 does (overlapping ranges behave as on x86).
 */
function moveString(cpu: CpuState, size: number, rep: boolean): void {
  const gpr = cpu.gpr;
  const step = (cpu.flags & Flag.DF) !== 0 ? -size : size;
  const count = rep ? gpr[Gpr.ECX] & 0xffff : 1;
  let si = gpr[Gpr.ESI] & 0xffff;
  let di = gpr[Gpr.EDI] & 0xffff;
  for (let i = 0, s = si, d = di; i < count; i++) {
    sourceAddress(cpu, s, size);
    dataAddress(cpu.es, d, size, 'ES');
    s = (s + step) & 0xffff;
    d = (d + step) & 0xffff;
  }
  for (let i = 0; i < count; i++) {
    writeMemory(cpu.es.base + di, size, readSource((csOverride ? cpu.cs.base : cpu.ds.base) + si, size));
    si = (si + step) & 0xffff;
    di = (di + step) & 0xffff;
  }
  writeRegister(gpr, Gpr.ESI, 2, si);
  writeRegister(gpr, Gpr.EDI, 2, di);
  if (rep) writeRegister(gpr, Gpr.ECX, 2, 0);
}

function commit(cpu: CpuState, nextIp: number): void {
  cpu.ip = nextIp;
  cpu.instructions++;
}

/**
 * Runs up to `budget` instructions. hlt, in, out, wrmsr, rdmsr and cpuid complete their own
 * architectural effect (IP past the instruction, counted in `instructions`) and return so that
 * the caller can apply the side effect (for in, rdmsr and cpuid: the result registers); a fault
 * leaves IP at the faulting instruction and does not count it.
 */
export function run(cpu: CpuState, mem: GuestMemory, platform: Platform, budget: number): Exit {
  memory = mem.bytes;
  highBase = mem.high?.base ?? 0;
  highMemory = mem.high?.bytes ?? NO_MEMORY;
  try {
    for (let executed = 0; executed < budget; executed++) {
      const exit = step(cpu, platform);
      if (exit !== null) return exit;
    }
  } catch (error) {
    if (error instanceof GuestFault) return faultExit(cpu, error.detail);
    throw error;
  } finally {
    memory = NO_MEMORY; // do not keep a destroyed VM's memory alive between slices
    highMemory = NO_MEMORY;
  }
  return BUDGET_EXIT;
}

/**
 * Completes an in exit: the low `bytes` of EAX = value, the rest kept (bhyve's inout.c writes
 * RAX that way after the port handler).
 */
export function completeIn(cpu: CpuState, bytes: 1 | 2 | 4, value: number): void {
  const mask = bytes === 4 ? 0xffffffff : bytes === 2 ? 0xffff : 0xff;
  cpu.gpr[Gpr.EAX] = ((cpu.gpr[Gpr.EAX] & ~mask) | (value & mask)) >>> 0;
}

/** Completes a cpuid exit: EAX, EBX, ECX, EDX = the leaf's four registers. */
export function completeCpuid(cpu: CpuState, regs: readonly [number, number, number, number]): void {
  cpu.gpr[Gpr.EAX] = regs[0] >>> 0;
  cpu.gpr[Gpr.EBX] = regs[1] >>> 0;
  cpu.gpr[Gpr.ECX] = regs[2] >>> 0;
  cpu.gpr[Gpr.EDX] = regs[3] >>> 0;
}

/** Completes an rdmsr exit: EDX:EAX = value (the MSR's 64 bits). */
export function completeRdmsr(cpu: CpuState, value: bigint): void {
  cpu.gpr[Gpr.EAX] = Number(value & 0xffffffffn);
  cpu.gpr[Gpr.EDX] = Number((value >> 32n) & 0xffffffffn);
}
