// A tiny assembler for the lab's x86 subset (src/lab/x86/opcodes.ts): one method per
// instruction form, labels, and fix-ups for rel8 / rel16 branches and [m16] label references.
// Encodings are fixed per method (no silent short/long choice), so a test can state the bytes
// a method produces. Anything the subset lacks is deliberately missing here too, except ud2
// (0F 0B), which guests use on purpose to leave the subset and triple-fault.
//
// Prefixes are emitted in the order 2E (CS override), F3 (rep), 66 (operand size), opcode.

import { AluOp, Condition } from '../x86/opcodes';

export type Reg8 = 'al' | 'cl' | 'dl' | 'bl' | 'ah' | 'ch' | 'dh' | 'bh';
export type Reg16 = 'ax' | 'cx' | 'dx' | 'bx' | 'sp' | 'bp' | 'si' | 'di';
export type Reg32 = 'eax' | 'ecx' | 'edx' | 'ebx' | 'esp' | 'ebp' | 'esi' | 'edi';
export type Reg = Reg16 | Reg32;
export type SegmentReg = 'es' | 'cs' | 'ss' | 'ds';
export type AluName = keyof typeof ALU_CODES;
export type ConditionName = keyof typeof Condition;

/**
 * A DS-relative [m16] operand: a number is the 16-bit offset itself; a label (optionally with a
 * byte offset added) is the label's address (org + its position in the image).
 */
export type Mem = number | string | { readonly label: string; readonly plus: number };

const REG8: readonly Reg8[] = ['al', 'cl', 'dl', 'bl', 'ah', 'ch', 'dh', 'bh'];
const REG16: readonly Reg16[] = ['ax', 'cx', 'dx', 'bx', 'sp', 'bp', 'si', 'di'];
const REG32: readonly Reg32[] = ['eax', 'ecx', 'edx', 'ebx', 'esp', 'ebp', 'esi', 'edi'];
const SEGMENT_REGS: readonly SegmentReg[] = ['es', 'cs', 'ss', 'ds'];
const ALU_CODES = { add: AluOp.ADD, or: AluOp.OR, and: AluOp.AND, sub: AluOp.SUB, xor: AluOp.XOR, cmp: AluOp.CMP } as const;

const OPERAND_SIZE_PREFIX = 0x66;
const CS_OVERRIDE_PREFIX = 0x2e;
const REP_PREFIX = 0xf3;

/** Prefix options of the string move and lidt. */
export interface SourceOptions {
  /** 2E: read the source through CS (from the reset vector's CS base: the boot ROM). */
  readonly cs?: boolean;
}
export interface StringMoveOptions extends SourceOptions {
  /** F3: repeat CX times. */
  readonly rep?: boolean;
}
/** ModRM mod = 00, r/m = 110: a 16-bit displacement follows. */
const MODRM_DISP16 = 0b00_000_110;
const MODRM_REGISTER = 0b11_000_000;

type FixupKind = 'rel8' | 'rel16' | 'abs16';
interface Fixup {
  readonly kind: FixupKind;
  readonly label: string;
  readonly plus: number;
  /** Position of the field to patch. */
  readonly at: number;
  /** Position just after the instruction (relative branches count from there). */
  readonly end: number;
  readonly mnemonic: string;
}

function is32(reg: Reg): reg is Reg32 {
  return reg.startsWith('e');
}

function registerNumber(reg: Reg): number {
  return is32(reg) ? REG32.indexOf(reg) : REG16.indexOf(reg);
}

function checkImmediate(value: number, bits: 8 | 16 | 32, what: string): number {
  const min = -(2 ** (bits - 1));
  const max = 2 ** bits - 1;
  if (!Number.isInteger(value) || value < min || value > max) {
    throw new RangeError(`${what}: immediate ${value} does not fit in ${bits} bits`);
  }
  return bits === 32 ? value >>> 0 : value & (2 ** bits - 1);
}

export class Assembler {
  /** The offset (within the segment the code is addressed through) of the image's first byte. */
  readonly org: number;
  private readonly code: number[] = [];
  private readonly labels = new Map<string, number>();
  private readonly fixups: Fixup[] = [];
  private generatedLabels = 0;

  constructor(org = 0) {
    this.org = org;
  }

  /** Current position in the image (bytes emitted so far). */
  get position(): number {
    return this.code.length;
  }

  // ---- Layout and data ----

  label(name: string): this {
    if (this.labels.has(name)) throw new Error(`label '${name}' defined twice`);
    this.labels.set(name, this.code.length);
    return this;
  }

  /** A fresh label name (for macros that emit local branches more than once). */
  uniqueLabel(stem: string): string {
    this.generatedLabels++;
    return `${stem}.${this.generatedLabels}`;
  }

  /** The address (org + position) of a label defined so far. */
  addressOf(name: string): number {
    const position = this.labels.get(name);
    if (position === undefined) throw new Error(`label '${name}' is not defined`);
    return this.org + position;
  }

  /** Fills with zero bytes up to image offset `position` (an error if already past it). */
  padTo(position: number): this {
    if (position < this.code.length) {
      throw new Error(`padTo(0x${position.toString(16)}): already at 0x${this.code.length.toString(16)}`);
    }
    while (this.code.length < position) this.code.push(0);
    return this;
  }

  align(boundary: number): this {
    return this.padTo(Math.ceil(this.code.length / boundary) * boundary);
  }

  db(...values: number[]): this {
    for (const value of values) this.code.push(checkImmediate(value, 8, 'db'));
    return this;
  }

  dw(value: number): this {
    return this.imm16(value, 'dw');
  }

  dd(value: number): this {
    return this.imm32(value, 'dd');
  }

  // ---- Moves ----

  /** B0+r ib: mov r8, imm8. */
  movImm8(reg: Reg8, value: number): this {
    return this.db(0xb0 + REG8.indexOf(reg)).imm8(value, 'mov r8, imm8');
  }

  /** B8+r iw: mov r16, imm16. */
  movImm16(reg: Reg16, value: number): this {
    return this.db(0xb8 + REG16.indexOf(reg)).imm16(value, 'mov r16, imm16');
  }

  /** 66 B8+r id: mov r32, imm32. */
  movImm32(reg: Reg32, value: number): this {
    return this.db(OPERAND_SIZE_PREFIX, 0xb8 + REG32.indexOf(reg)).imm32(value, 'mov r32, imm32');
  }

  /** 89 /r (mod = 11): mov dst, src (both 16 or both 32 bits). */
  movReg(dst: Reg, src: Reg): this {
    return this.registerForm(0x89, src, dst);
  }

  /** A1 (ax / eax) or 8B /r: mov reg, [m16]. A0 for al. */
  load(reg: Reg | 'al', mem: Mem): this {
    if (reg === 'al') return this.db(0xa0).address(mem, 'mov al, [m16]');
    this.sizePrefix(reg);
    if (registerNumber(reg) === 0) return this.db(0xa1).address(mem, 'mov ax, [m16]');
    return this.memoryForm(0x8b, registerNumber(reg), mem, 'mov r, [m16]');
  }

  /** A3 (ax / eax) or 89 /r: mov [m16], reg. A2 for al. */
  store(mem: Mem, reg: Reg | 'al'): this {
    if (reg === 'al') return this.db(0xa2).address(mem, 'mov [m16], al');
    this.sizePrefix(reg);
    if (registerNumber(reg) === 0) return this.db(0xa3).address(mem, 'mov [m16], ax');
    return this.memoryForm(0x89, registerNumber(reg), mem, 'mov [m16], r');
  }

  /** C7 /0 iw: mov word [m16], imm16. */
  storeImm16(mem: Mem, value: number): this {
    return this.memoryForm(0xc7, 0, mem, 'mov word [m16], imm16').imm16(value, 'mov word [m16], imm16');
  }

  /** 66 C7 /0 id: mov dword [m16], imm32. */
  storeImm32(mem: Mem, value: number): this {
    this.db(OPERAND_SIZE_PREFIX);
    return this.memoryForm(0xc7, 0, mem, 'mov dword [m16], imm32').imm32(value, 'mov dword [m16], imm32');
  }

  /** 8C /r: mov r16, sreg. */
  movFromSegment(reg: Reg16, sreg: SegmentReg): this {
    return this.db(0x8c, MODRM_REGISTER | (SEGMENT_REGS.indexOf(sreg) << 3) | REG16.indexOf(reg));
  }

  /** 8E /r: mov sreg, r16 (not CS: x86 raises #UD, so the assembler refuses). */
  movToSegment(sreg: Exclude<SegmentReg, 'cs'>, reg: Reg16): this {
    return this.db(0x8e, MODRM_REGISTER | (SEGMENT_REGS.indexOf(sreg) << 3) | REG16.indexOf(reg));
  }

  // ---- Arithmetic ----

  /** 01-family /r (mod = 11): dst op= src. */
  aluReg(op: AluName, dst: Reg, src: Reg): this {
    return this.registerForm(0x01 | (ALU_CODES[op] << 3), src, dst);
  }

  /** 05-family (ax / eax) or 81 /digit (other registers): reg op= imm16 / imm32. */
  aluImm(op: AluName, reg: Reg, value: number): this {
    this.sizePrefix(reg);
    const n = registerNumber(reg);
    if (n === 0) this.db(0x05 | (ALU_CODES[op] << 3));
    else this.db(0x81, MODRM_REGISTER | (ALU_CODES[op] << 3) | n);
    return is32(reg) ? this.imm32(value, `${op} ${reg}, imm32`) : this.imm16(value, `${op} ${reg}, imm16`);
  }

  /** 83 /digit ib: reg op= sign-extended imm8. */
  aluImm8(op: AluName, reg: Reg, value: number): this {
    this.sizePrefix(reg);
    this.db(0x83, MODRM_REGISTER | (ALU_CODES[op] << 3) | registerNumber(reg));
    return this.simm8(value, `${op} ${reg}, simm8`);
  }

  /** 04-family ib: al op= imm8. */
  aluAlImm8(op: AluName, value: number): this {
    return this.db(0x04 | (ALU_CODES[op] << 3)).imm8(value, `${op} al, imm8`);
  }

  /** 03-family /r: reg op= [m16]. */
  aluFromMem(op: AluName, reg: Reg, mem: Mem): this {
    this.sizePrefix(reg);
    return this.memoryForm(0x03 | (ALU_CODES[op] << 3), registerNumber(reg), mem, `${op} r, [m16]`);
  }

  /** 01-family /r: [m16] op= reg. */
  aluToMem(op: AluName, mem: Mem, reg: Reg): this {
    this.sizePrefix(reg);
    return this.memoryForm(0x01 | (ALU_CODES[op] << 3), registerNumber(reg), mem, `${op} [m16], r`);
  }

  /** 81 /digit iw: word [m16] op= imm16. */
  aluMemImm16(op: AluName, mem: Mem, value: number): this {
    return this.memoryForm(0x81, ALU_CODES[op], mem, `${op} word [m16], imm16`).imm16(value, `${op} word [m16], imm16`);
  }

  /** 66 81 /digit id: dword [m16] op= imm32. */
  aluMemImm32(op: AluName, mem: Mem, value: number): this {
    this.db(OPERAND_SIZE_PREFIX);
    return this.memoryForm(0x81, ALU_CODES[op], mem, `${op} dword [m16], imm32`).imm32(value, `${op} dword [m16], imm32`);
  }

  /** 40+r: inc reg. */
  incReg(reg: Reg): this {
    this.sizePrefix(reg);
    return this.db(0x40 + registerNumber(reg));
  }

  /** 48+r: dec reg. */
  decReg(reg: Reg): this {
    this.sizePrefix(reg);
    return this.db(0x48 + registerNumber(reg));
  }

  /** FF /0: inc word [m16]; with lock: F0 FF /0. */
  incMem16(mem: Mem, options: { lock?: boolean } = {}): this {
    if (options.lock === true) this.db(0xf0);
    return this.memoryForm(0xff, 0, mem, 'inc word [m16]');
  }

  /** F0 FF /0: lock inc word [m16]. */
  lockIncMem16(mem: Mem): this {
    return this.incMem16(mem, { lock: true });
  }

  /** FF /1: dec word [m16]. */
  decMem16(mem: Mem): this {
    return this.memoryForm(0xff, 1, mem, 'dec word [m16]');
  }

  /** D1 /4 (shl) or D1 /5 (shr): shift word [m16] by one. */
  shiftMem16(direction: 'shl' | 'shr', mem: Mem): this {
    return this.memoryForm(0xd1, direction === 'shl' ? 4 : 5, mem, `${direction} word [m16], 1`);
  }

  /** D1 /4 (shl) or D1 /5 (shr), mod = 11: shift reg by one. */
  shiftReg(direction: 'shl' | 'shr', reg: Reg): this {
    this.sizePrefix(reg);
    return this.db(0xd1, MODRM_REGISTER | ((direction === 'shl' ? 4 : 5) << 3) | registerNumber(reg));
  }

  // ---- Branches ----

  /** 70+cc cb: conditional jump, rel8. */
  jcc(condition: ConditionName, label: string): this {
    this.db(0x70 | Condition[condition]);
    return this.branch('rel8', label, `j${condition.toLowerCase()}`);
  }

  /** 0F 80+cc cw: conditional jump, rel16. */
  jccNear(condition: ConditionName, label: string): this {
    this.db(0x0f, 0x80 | Condition[condition]);
    return this.branch('rel16', label, `j${condition.toLowerCase()} near`);
  }

  je(label: string): this { return this.jcc('E', label); }
  jne(label: string): this { return this.jcc('NE', label); }
  jb(label: string): this { return this.jcc('B', label); }
  jae(label: string): this { return this.jcc('AE', label); }

  /** EB cb: jmp rel8. */
  jmp(label: string): this {
    return this.db(0xeb).branch('rel8', label, 'jmp');
  }

  /** E9 cw: jmp rel16. */
  jmpNear(label: string): this {
    return this.db(0xe9).branch('rel16', label, 'jmp near');
  }

  /** EA iw sw: jmp ptr16:16, a far jump that reloads CS (real mode: base = selector << 4). */
  jmpFar(selector: number, offset: number): this {
    return this.db(0xea).dw(offset).dw(selector);
  }

  /** E2 cb: loop rel8 (decrements CX). */
  loop(label: string): this {
    return this.db(0xe2).branch('rel8', label, 'loop');
  }

  // ---- String moves ----

  /** [2E] [F3] A4: movsb (ES:DI = DS:SI, or CS:SI). */
  movsb(options: StringMoveOptions = {}): this {
    return this.stringPrefixes(options).db(0xa4);
  }

  /** [2E] [F3] A5: movsw. */
  movsw(options: StringMoveOptions = {}): this {
    return this.stringPrefixes(options).db(0xa5);
  }

  /** [2E] [F3] 66 A5: movsd. */
  movsd(options: StringMoveOptions = {}): this {
    return this.stringPrefixes(options).db(OPERAND_SIZE_PREFIX, 0xa5);
  }

  // ---- Processor control, I/O, MSRs ----

  /** [2E] 0F 01 /3: lidt [m16] (limit word, then a 24-bit base). */
  lidt(mem: Mem, options: SourceOptions = {}): this {
    if (options.cs) this.db(CS_OVERRIDE_PREFIX);
    this.db(0x0f);
    return this.memoryForm(0x01, 3, mem, 'lidt [m16]');
  }

  /** 0F A2: EAX, EBX, ECX, EDX = CPUID leaf EAX (subleaf ECX). */
  cpuid(): this { return this.db(0x0f, 0xa2); }

  nop(): this { return this.db(0x90); }
  /** F3 90. */
  pause(): this { return this.db(0xf3, 0x90); }
  cli(): this { return this.db(0xfa); }
  sti(): this { return this.db(0xfb); }
  hlt(): this { return this.db(0xf4); }
  /** 0F 30: MSR[ECX] = EDX:EAX. */
  wrmsr(): this { return this.db(0x0f, 0x30); }
  /** 0F 31: EDX:EAX = TSC. */
  rdtsc(): this { return this.db(0x0f, 0x31); }
  /** 0F 32: EDX:EAX = MSR[ECX]. */
  rdmsr(): this { return this.db(0x0f, 0x32); }
  /** 0F 0B: outside the subset on purpose; the lab turns it into a triple fault. */
  ud2(): this { return this.db(0x0f, 0x0b); }

  /** EC: in al, dx. */
  inAlDx(): this { return this.db(0xec); }
  /** EE: out dx, al. */
  outDxAl(): this { return this.db(0xee); }
  /** EF: out dx, ax. */
  outDxAx(): this { return this.db(0xef); }
  /** 66 EF: out dx, eax. */
  outDxEax(): this { return this.db(OPERAND_SIZE_PREFIX, 0xef); }
  /** E6 ib: out imm8, al. */
  outImmAl(port: number): this { return this.db(0xe6).imm8(port, 'out imm8, al'); }
  /** E7 ib: out imm8, ax. */
  outImmAx(port: number): this { return this.db(0xe7).imm8(port, 'out imm8, ax'); }

  // ---- Output ----

  /** The image with every fix-up resolved. */
  bytes(): Uint8Array {
    const image = Uint8Array.from(this.code);
    for (const fixup of this.fixups) {
      const position = this.labels.get(fixup.label);
      if (position === undefined) throw new Error(`${fixup.mnemonic}: label '${fixup.label}' is not defined`);
      const target = position + fixup.plus;
      if (fixup.kind === 'abs16') {
        const address = this.org + target;
        if (address > 0xffff) throw new RangeError(`${fixup.mnemonic}: address 0x${address.toString(16)} of '${fixup.label}' exceeds 16 bits`);
        image[fixup.at] = address & 0xff;
        image[fixup.at + 1] = address >> 8;
        continue;
      }
      const distance = target - fixup.end;
      const limit = fixup.kind === 'rel8' ? 0x80 : 0x8000;
      if (distance < -limit || distance >= limit) {
        throw new RangeError(
          `${fixup.mnemonic} to '${fixup.label}': distance ${distance} is outside the ${fixup.kind} range ` +
            `(${-limit}..${limit - 1})${fixup.kind === 'rel8' ? '; use the rel16 form' : ''}`,
        );
      }
      image[fixup.at] = distance & 0xff;
      if (fixup.kind === 'rel16') image[fixup.at + 1] = (distance >> 8) & 0xff;
    }
    return image;
  }

  // ---- Encoding helpers ----

  private imm8(value: number, what: string): this {
    this.code.push(checkImmediate(value, 8, what));
    return this;
  }

  private simm8(value: number, what: string): this {
    if (!Number.isInteger(value) || value < -128 || value > 127) {
      throw new RangeError(`${what}: ${value} is not a signed 8-bit immediate`);
    }
    this.code.push(value & 0xff);
    return this;
  }

  private imm16(value: number, what: string): this {
    const v = checkImmediate(value, 16, what);
    this.code.push(v & 0xff, v >> 8);
    return this;
  }

  private imm32(value: number, what: string): this {
    const v = checkImmediate(value, 32, what);
    this.code.push(v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24);
    return this;
  }

  private stringPrefixes(options: StringMoveOptions): this {
    if (options.cs) this.db(CS_OVERRIDE_PREFIX);
    if (options.rep) this.db(REP_PREFIX);
    return this;
  }

  private sizePrefix(reg: Reg): void {
    if (is32(reg)) this.code.push(OPERAND_SIZE_PREFIX);
  }

  /** opcode /r with mod = 11: the reg field is `regField`, the r/m field `rm`. */
  private registerForm(opcode: number, regField: Reg, rm: Reg): this {
    if (is32(regField) !== is32(rm)) throw new Error(`operand sizes differ: ${rm}, ${regField}`);
    this.sizePrefix(rm);
    return this.db(opcode, MODRM_REGISTER | (registerNumber(regField) << 3) | registerNumber(rm));
  }

  /** opcode /regField with mod = 00, r/m = 110: [disp16]. */
  private memoryForm(opcode: number, regField: number, mem: Mem, mnemonic: string): this {
    this.db(opcode, MODRM_DISP16 | (regField << 3));
    return this.address(mem, mnemonic);
  }

  /** A 16-bit DS offset: a number, or a label resolved when bytes() runs. */
  private address(mem: Mem, mnemonic: string): this {
    if (typeof mem === 'number') return this.imm16(mem, mnemonic);
    const label = typeof mem === 'string' ? mem : mem.label;
    const plus = typeof mem === 'string' ? 0 : mem.plus;
    this.fixups.push({ kind: 'abs16', label, plus, at: this.code.length, end: this.code.length + 2, mnemonic });
    this.code.push(0, 0);
    return this;
  }

  private branch(kind: 'rel8' | 'rel16', label: string, mnemonic: string): this {
    const width = kind === 'rel8' ? 1 : 2;
    this.fixups.push({ kind, label, plus: 0, at: this.code.length, end: this.code.length + width, mnemonic });
    for (let i = 0; i < width; i++) this.code.push(0);
    return this;
  }
}
