// Architectural state of one lab vCPU: the registers the real-mode subset touches, and nothing
// else. The kernel model reads and writes these fields for VM_GET_REGISTER / VM_SET_REGISTER and
// the segment-descriptor ioctls, so the field names follow x86 (and bhyve's register names).

/** A segment register with its hidden descriptor cache, as VM_GET_SEGMENT_DESCRIPTOR reports it. */
export interface Segment {
  selector: number;
  base: number;
  limit: number;
  access: number;
}

/** General-purpose register numbers in x86 encoding order (ModRM reg field, B8+r, 40+r, ...). */
export const Gpr = {
  EAX: 0,
  ECX: 1,
  EDX: 2,
  EBX: 3,
  ESP: 4,
  EBP: 5,
  ESI: 6,
  EDI: 7,
} as const;
export type Gpr = (typeof Gpr)[keyof typeof Gpr];

/** EFLAGS bits the interpreter reads or writes. Bit 1 is reserved and always reads as 1. */
export const Flag = {
  CF: 1 << 0,
  RESERVED_ONE: 1 << 1,
  PF: 1 << 2,
  AF: 1 << 4,
  ZF: 1 << 6,
  SF: 1 << 7,
  IF: 1 << 9,
  /** Direction: string instructions (movs) step SI and DI down instead of up. */
  DF: 1 << 10,
  OF: 1 << 11,
} as const;

/** The arithmetic status flags; instructions that set them replace all six at once. */
export const STATUS_FLAGS = Flag.CF | Flag.PF | Flag.AF | Flag.ZF | Flag.SF | Flag.OF;

/** Real-mode access rights: present, accessed; code is execute/read, data is read/write. */
export const REAL_MODE_CODE_ACCESS = 0x9b;
export const REAL_MODE_DATA_ACCESS = 0x93;
export const REAL_MODE_LIMIT = 0xffff;

function realModeSegment(access: number): Segment {
  return { selector: 0, base: 0, limit: REAL_MODE_LIMIT, access };
}

/** A descriptor-table register (IDTR): what lidt loads. */
export interface TableRegister {
  base: number;
  limit: number;
}

export class CpuState {
  /** EAX..EDI in x86 encoding order (index with Gpr). */
  readonly gpr: Uint32Array = new Uint32Array(8);
  /** 16-bit instruction pointer: the RIP bhyve sees (real mode, so it never exceeds 0xffff). */
  ip = 0;
  /** EFLAGS; bit 1 is always set. */
  flags: number = Flag.RESERVED_ONE;
  cs: Segment = realModeSegment(REAL_MODE_CODE_ACCESS);
  ds: Segment = realModeSegment(REAL_MODE_DATA_ACCESS);
  es: Segment = realModeSegment(REAL_MODE_DATA_ACCESS);
  ss: Segment = realModeSegment(REAL_MODE_DATA_ACCESS);
  /**
   * IDTR: base 0, limit 0xFFFF at power-on (the real-mode interrupt vector table). The lab never
   * delivers an exception through it (every exception is a triple fault); lidt loads it so that a
   * guest can make real CPUs agree (limit 0: any exception shuts the machine down).
   */
  idtr: TableRegister = { base: 0, limit: REAL_MODE_LIMIT };
  /** Instructions completed: the lab's ground truth that this vCPU ran guest code. */
  instructions = 0;
}

/**
 * Puts a vCPU back into its power-on state in place (the kernel model keeps one CpuState per
 * vCPU). `instructions` is kept: it counts every instruction this vCPU ever completed.
 */
export function resetCpuState(cpu: CpuState): void {
  cpu.gpr.fill(0);
  cpu.ip = 0;
  cpu.flags = Flag.RESERVED_ONE;
  Object.assign(cpu.cs, realModeSegment(REAL_MODE_CODE_ACCESS));
  for (const seg of [cpu.ds, cpu.es, cpu.ss]) Object.assign(seg, realModeSegment(REAL_MODE_DATA_ACCESS));
  cpu.idtr.base = 0;
  cpu.idtr.limit = REAL_MODE_LIMIT;
}

/**
 * Loads a segment register the way real mode does: base = selector << 4. Limit and access rights
 * are kept, as the hidden descriptor cache of a real CPU keeps them.
 */
export function setRealModeSegment(seg: Segment, selector: number): void {
  seg.selector = selector & 0xffff;
  seg.base = seg.selector << 4;
}
