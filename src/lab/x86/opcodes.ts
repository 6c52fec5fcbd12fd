// The lab's x86 subset as data, in the shape of vmm_instruction_emul.c's one_byte_opcodes[256] and
// two_byte_opcodes[256]: an entry says how to decode an opcode byte and which operation it is.
// An opcode without an entry is not in the subset, and the interpreter turns it into a triple
// fault one lookup later. docs/lab-guests.md carries the table generated from SUBSET_FORMS.

/** What the interpreter does with a decoded instruction (the interpreter switches on this). */
export const OpType = {
  UNSUPPORTED: 0,
  /** 01 09 21 29 31 39: r/m16/32 op= r16/32 (ADD OR AND SUB XOR CMP, by subcode). */
  ALU_RM_REG: 1,
  /** 03 0B 23 2B 33 3B: r16/32 op= r/m16/32. */
  ALU_REG_RM: 2,
  /** 05 0D 25 2D 35 3D: AX/EAX op= imm16/32. */
  ALU_ACC_IMM: 3,
  /** 04 0C 24 2C 34 3C: AL op= imm8. */
  ALU_AL_IMM8: 4,
  /** 81 /digit: r/m16/32 op= imm16/32. */
  ALU_RM_IMM: 5,
  /** 83 /digit: r/m16/32 op= sign-extended imm8. */
  ALU_RM_IMM8: 6,
  /** 40+r: inc r16/32 (CF kept). */
  INC_REG: 7,
  /** 48+r: dec r16/32 (CF kept). */
  DEC_REG: 8,
  /** FF /0 inc r/m, FF /1 dec r/m (lock allowed with a memory operand). */
  INC_DEC_RM: 9,
  /** D1 /4 shl r/m, 1 and D1 /5 shr r/m, 1. */
  SHIFT_RM_1: 10,
  /** 89: mov r/m16/32, r16/32. */
  MOV_RM_REG: 11,
  /** 8B: mov r16/32, r/m16/32. */
  MOV_REG_RM: 12,
  /** 8C: mov r/m16, Sreg. */
  MOV_RM_SREG: 13,
  /** 8E: mov Sreg, r/m16 (not CS: that is #UD on x86). */
  MOV_SREG_RM: 14,
  /** A0 / A1: mov AL / AX / EAX, [moffs16] (DS). */
  MOV_ACC_MOFFS: 15,
  /** A2 / A3: mov [moffs16], AL / AX / EAX (DS). */
  MOV_MOFFS_ACC: 16,
  /** B0+r: mov r8, imm8. */
  MOV_REG8_IMM: 17,
  /** B8+r: mov r16/32, imm16/32. */
  MOV_REG_IMM: 18,
  /** C7 /0: mov r/m16/32, imm16/32. */
  MOV_RM_IMM: 19,
  /** 70..7F and 0F 80..8F: jcc rel8 / rel16 (condition = subcode). */
  JCC_REL8: 20,
  JCC_REL16: 21,
  /** EB / E9: jmp rel8 / rel16. */
  JMP_REL8: 22,
  JMP_REL16: 23,
  /** E2: loop rel8 (CX, 16-bit address size). */
  LOOP_REL8: 24,
  /** 90: nop; F3 90: pause. */
  NOP: 25,
  CLI: 26,
  STI: 27,
  HLT: 28,
  /** E6 / E7: out imm8, AL / AX / EAX. */
  OUT_IMM8: 29,
  /** EE / EF: out DX, AL / AX / EAX. */
  OUT_DX: 30,
  WRMSR: 31,
  RDTSC: 32,
  RDMSR: 33,
  /** EA: jmp ptr16:16 (far jump: reloads CS, base = selector << 4 in real mode). */
  JMP_FAR: 34,
  /** EC: in AL, DX (an exit: the caller supplies the byte). */
  IN_DX: 35,
  /** A4 / A5: movsb / movsw / movsd, ES:DI = DS:SI (CS:SI with 2E), optionally rep. */
  MOVS: 36,
  /** 0F A2: cpuid (an exit: the caller supplies EAX, EBX, ECX, EDX). */
  CPUID: 37,
  /** 0F 01 /3: lidt m16&32. */
  LIDT: 38,
} as const;
export type OpType = (typeof OpType)[keyof typeof OpType];

/** Decoding properties of an opcode (vmm_instruction_emul.c calls these op_flags). */
export const OpFlag = {
  /** A ModRM byte follows the opcode. */
  MODRM: 1 << 0,
  /** The operand is 16 bits, or 32 with a 0x66 prefix. Without this flag 0x66 is ignored (as on x86). */
  OPSIZE: 1 << 1,
  /** 0x66 would change the meaning (a branch would take a 32-bit displacement): not in the subset. */
  NO_OPSIZE: 1 << 2,
  /** 0xF0 lock is allowed (only with a memory operand). */
  LOCKABLE: 1 << 3,
  /** The operand is 8 bits wide. */
  BYTE: 1 << 4,
  /** 0xF3 rep is allowed (pause is F3 90; rep movs repeats CX times). */
  REPEATABLE: 1 << 5,
  /** 0x2E (CS segment override) is allowed: the memory source is read through CS. */
  CS_OVERRIDE: 1 << 6,
  /** The ModRM operand must be memory (a register is #UD on x86). */
  MEMORY_ONLY: 1 << 7,
} as const;

/** ALU operations, numbered as the /digit of 81/83 and bits 5..3 of opcodes 00..3F. */
export const AluOp = { ADD: 0, OR: 1, AND: 4, SUB: 5, XOR: 6, CMP: 7 } as const;
export type AluOp = (typeof AluOp)[keyof typeof AluOp];

/** One decoded table entry; every slot of the 256-entry tables holds one (UNSUPPORTED if absent). */
export interface OpcodeEntry {
  readonly opByte: number;
  readonly opType: OpType;
  readonly opFlags: number;
  /** Per-byte detail: the ALU operation, the register of +r forms, or the jcc condition. */
  readonly subcode: number;
  /** For MODRM opcodes, bit n set = ModRM reg field n (a /digit or a segment register) is supported. */
  readonly regFieldMask: number;
}

/** One row of the documented subset: an instruction form that may cover several opcode bytes. */
export interface InstructionForm {
  /** 0x0F-prefixed opcodes live in the two-byte table. */
  readonly table: 'one-byte' | 'two-byte';
  readonly opBytes: readonly number[];
  readonly encoding: string;
  readonly mnemonic: string;
  readonly effect: string;
  readonly opType: OpType;
  readonly opFlags: number;
  readonly regFieldMask?: number;
  readonly subcode?: (opByte: number) => number;
}

const ALU_NAMES = ['add', 'or', '', '', 'and', 'sub', 'xor', 'cmp'] as const;
const ALU_OPS: readonly AluOp[] = [AluOp.ADD, AluOp.OR, AluOp.AND, AluOp.SUB, AluOp.XOR, AluOp.CMP];
const ALU_DIGIT_MASK = ALU_OPS.reduce<number>((mask, op) => mask | (1 << op), 0);
const ALU_LIST = ALU_OPS.map((op) => ALU_NAMES[op]).join('/');

function aluBytes(lowBits: number): number[] {
  return ALU_OPS.map((op) => (op << 3) | lowBits);
}
function range(first: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => first + i);
}
const aluOfOpcode = (opByte: number): number => (opByte >> 3) & 7;
const registerOfOpcode = (opByte: number): number => opByte & 7;
const conditionOfOpcode = (opByte: number): number => opByte & 0xf;

const { MODRM, OPSIZE, NO_OPSIZE, LOCKABLE, BYTE, REPEATABLE, CS_OVERRIDE, MEMORY_ONLY } = OpFlag;

/** The subset, one row per instruction form, in opcode order. */
export const SUBSET_FORMS: readonly InstructionForm[] = [
  { table: 'one-byte', opBytes: aluBytes(1), encoding: '01 09 21 29 31 39 /r', mnemonic: `${ALU_LIST} r/m, r`,
    effect: 'r/m = r/m op r (cmp: flags only); ZF SF CF OF PF AF', opType: OpType.ALU_RM_REG, opFlags: MODRM | OPSIZE, subcode: aluOfOpcode },
  { table: 'one-byte', opBytes: aluBytes(3), encoding: '03 0B 23 2B 33 3B /r', mnemonic: `${ALU_LIST} r, r/m`,
    effect: 'r = r op r/m (cmp: flags only); flags as above', opType: OpType.ALU_REG_RM, opFlags: MODRM | OPSIZE, subcode: aluOfOpcode },
  { table: 'one-byte', opBytes: aluBytes(4), encoding: '04 0C 24 2C 34 3C ib', mnemonic: `${ALU_LIST} al, imm8`,
    effect: 'AL = AL op imm8; flags as above', opType: OpType.ALU_AL_IMM8, opFlags: BYTE, subcode: aluOfOpcode },
  { table: 'one-byte', opBytes: aluBytes(5), encoding: '05 0D 25 2D 35 3D iw/id', mnemonic: `${ALU_LIST} ax, imm`,
    effect: 'AX/EAX = AX/EAX op imm16/32; flags as above', opType: OpType.ALU_ACC_IMM, opFlags: OPSIZE, subcode: aluOfOpcode },
  { table: 'one-byte', opBytes: range(0x40, 8), encoding: '40+r', mnemonic: 'inc r',
    effect: 'r += 1; ZF SF OF PF AF, CF kept', opType: OpType.INC_REG, opFlags: OPSIZE, subcode: registerOfOpcode },
  { table: 'one-byte', opBytes: range(0x48, 8), encoding: '48+r', mnemonic: 'dec r',
    effect: 'r -= 1; ZF SF OF PF AF, CF kept', opType: OpType.DEC_REG, opFlags: OPSIZE, subcode: registerOfOpcode },
  { table: 'one-byte', opBytes: range(0x70, 16), encoding: '70+cc cb', mnemonic: 'jcc rel8',
    effect: 'jo jno jb jae je jne jbe ja js jns jp jnp jl jge jle jg: IP += rel8 if the condition holds', opType: OpType.JCC_REL8, opFlags: NO_OPSIZE, subcode: conditionOfOpcode },
  { table: 'one-byte', opBytes: [0x81], encoding: '81 /0 /1 /4 /5 /6 /7 iw/id', mnemonic: `${ALU_LIST} r/m, imm`,
    effect: 'r/m = r/m op imm16/32; flags as above', opType: OpType.ALU_RM_IMM, opFlags: MODRM | OPSIZE, regFieldMask: ALU_DIGIT_MASK },
  { table: 'one-byte', opBytes: [0x83], encoding: '83 /0 /1 /4 /5 /6 /7 ib', mnemonic: `${ALU_LIST} r/m, simm8`,
    effect: 'r/m = r/m op sign-extended imm8; flags as above', opType: OpType.ALU_RM_IMM8, opFlags: MODRM | OPSIZE, regFieldMask: ALU_DIGIT_MASK },
  { table: 'one-byte', opBytes: [0x89], encoding: '89 /r', mnemonic: 'mov r/m, r',
    effect: 'r/m = r', opType: OpType.MOV_RM_REG, opFlags: MODRM | OPSIZE },
  { table: 'one-byte', opBytes: [0x8b], encoding: '8B /r', mnemonic: 'mov r, r/m',
    effect: 'r = r/m', opType: OpType.MOV_REG_RM, opFlags: MODRM | OPSIZE },
  { table: 'one-byte', opBytes: [0x8c], encoding: '8C /r', mnemonic: 'mov r/m16, sreg',
    effect: 'r/m16 = ES/CS/SS/DS selector', opType: OpType.MOV_RM_SREG, opFlags: MODRM, regFieldMask: 0b1111 },
  { table: 'one-byte', opBytes: [0x8e], encoding: '8E /r', mnemonic: 'mov sreg, r/m16',
    effect: 'ES/SS/DS = r/m16, base = selector << 4 (CS is #UD on x86)', opType: OpType.MOV_SREG_RM, opFlags: MODRM, regFieldMask: 0b1101 },
  { table: 'one-byte', opBytes: [0x90], encoding: '90 / F3 90', mnemonic: 'nop / pause',
    effect: 'nothing (pause does not exit)', opType: OpType.NOP, opFlags: REPEATABLE },
  { table: 'one-byte', opBytes: [0xa0], encoding: 'A0 ow', mnemonic: 'mov al, [m16]',
    effect: 'AL = byte at DS:m16', opType: OpType.MOV_ACC_MOFFS, opFlags: BYTE },
  { table: 'one-byte', opBytes: [0xa1], encoding: 'A1 ow', mnemonic: 'mov ax, [m16]',
    effect: 'AX/EAX = word/dword at DS:m16', opType: OpType.MOV_ACC_MOFFS, opFlags: OPSIZE },
  { table: 'one-byte', opBytes: [0xa2], encoding: 'A2 ow', mnemonic: 'mov [m16], al',
    effect: 'byte at DS:m16 = AL', opType: OpType.MOV_MOFFS_ACC, opFlags: BYTE },
  { table: 'one-byte', opBytes: [0xa3], encoding: 'A3 ow', mnemonic: 'mov [m16], ax',
    effect: 'word/dword at DS:m16 = AX/EAX', opType: OpType.MOV_MOFFS_ACC, opFlags: OPSIZE },
  { table: 'one-byte', opBytes: [0xa4], encoding: '[2E] [F3] A4', mnemonic: '[cs] [rep] movsb',
    effect: 'byte at ES:DI = byte at DS:SI (CS:SI with 2E, which reaches the boot ROM); SI, DI += 1 (-= 1 with DF); F3: CX times, CX = 0', opType: OpType.MOVS, opFlags: BYTE | REPEATABLE | CS_OVERRIDE },
  { table: 'one-byte', opBytes: [0xa5], encoding: '[2E] [F3] A5', mnemonic: '[cs] [rep] movsw',
    effect: 'as movsb for a word (dword with 66): SI, DI += 2 (4)', opType: OpType.MOVS, opFlags: OPSIZE | REPEATABLE | CS_OVERRIDE },
  { table: 'one-byte', opBytes: range(0xb0, 8), encoding: 'B0+r ib', mnemonic: 'mov r8, imm8',
    effect: 'AL CL DL BL AH CH DH BH = imm8', opType: OpType.MOV_REG8_IMM, opFlags: BYTE, subcode: registerOfOpcode },
  { table: 'one-byte', opBytes: range(0xb8, 8), encoding: 'B8+r iw/id', mnemonic: 'mov r, imm',
    effect: 'r16/r32 = imm16/32', opType: OpType.MOV_REG_IMM, opFlags: OPSIZE, subcode: registerOfOpcode },
  { table: 'one-byte', opBytes: [0xc7], encoding: 'C7 /0 iw/id', mnemonic: 'mov r/m, imm',
    effect: 'r/m = imm16/32', opType: OpType.MOV_RM_IMM, opFlags: MODRM | OPSIZE, regFieldMask: 0b1 },
  { table: 'one-byte', opBytes: [0xd1], encoding: 'D1 /4 /5', mnemonic: 'shl/shr r/m, 1',
    effect: 'shift by one; CF = bit shifted out; ZF SF OF PF', opType: OpType.SHIFT_RM_1, opFlags: MODRM | OPSIZE, regFieldMask: 0b11_0000 },
  { table: 'one-byte', opBytes: [0xe2], encoding: 'E2 cb', mnemonic: 'loop rel8',
    effect: 'CX -= 1; IP += rel8 if CX != 0; flags kept', opType: OpType.LOOP_REL8, opFlags: NO_OPSIZE },
  { table: 'one-byte', opBytes: [0xe6], encoding: 'E6 ib', mnemonic: 'out imm8, al',
    effect: 'exit out (1 byte) to port imm8', opType: OpType.OUT_IMM8, opFlags: BYTE },
  { table: 'one-byte', opBytes: [0xe7], encoding: 'E7 ib', mnemonic: 'out imm8, ax',
    effect: 'exit out (2 or 4 bytes) to port imm8', opType: OpType.OUT_IMM8, opFlags: OPSIZE },
  { table: 'one-byte', opBytes: [0xe9], encoding: 'E9 cw', mnemonic: 'jmp rel16',
    effect: 'IP += rel16', opType: OpType.JMP_REL16, opFlags: NO_OPSIZE },
  { table: 'one-byte', opBytes: [0xea], encoding: 'EA iw sw', mnemonic: 'jmp ptr16:16',
    effect: 'CS = sw (base = sw << 4), IP = iw: leaves the reset vector\'s CS base 0xFFFF0000', opType: OpType.JMP_FAR, opFlags: NO_OPSIZE },
  { table: 'one-byte', opBytes: [0xeb], encoding: 'EB cb', mnemonic: 'jmp rel8',
    effect: 'IP += rel8', opType: OpType.JMP_REL8, opFlags: NO_OPSIZE },
  { table: 'one-byte', opBytes: [0xec], encoding: 'EC', mnemonic: 'in al, dx',
    effect: 'exit in (1 byte) from port DX; the caller stores AL', opType: OpType.IN_DX, opFlags: BYTE },
  { table: 'one-byte', opBytes: [0xee], encoding: 'EE', mnemonic: 'out dx, al',
    effect: 'exit out (1 byte) to port DX', opType: OpType.OUT_DX, opFlags: BYTE },
  { table: 'one-byte', opBytes: [0xef], encoding: 'EF', mnemonic: 'out dx, ax',
    effect: 'exit out (2 or 4 bytes) to port DX', opType: OpType.OUT_DX, opFlags: OPSIZE },
  { table: 'one-byte', opBytes: [0xf4], encoding: 'F4', mnemonic: 'hlt',
    effect: 'exit hlt (the caller reads IF to decide whether the vCPU can wake)', opType: OpType.HLT, opFlags: 0 },
  { table: 'one-byte', opBytes: [0xfa], encoding: 'FA', mnemonic: 'cli',
    effect: 'IF = 0', opType: OpType.CLI, opFlags: 0 },
  { table: 'one-byte', opBytes: [0xfb], encoding: 'FB', mnemonic: 'sti',
    effect: 'IF = 1', opType: OpType.STI, opFlags: 0 },
  { table: 'one-byte', opBytes: [0xff], encoding: 'FF /0 /1', mnemonic: 'inc/dec r/m',
    effect: 'r/m += 1 or -= 1; CF kept; F0 lock allowed with a memory operand', opType: OpType.INC_DEC_RM, opFlags: MODRM | OPSIZE | LOCKABLE, regFieldMask: 0b11 },
  { table: 'two-byte', opBytes: [0x01], encoding: '[2E] 0F 01 /3', mnemonic: 'lidt [m16]',
    effect: 'IDTR = limit (word) and base (the next 3 bytes; 4 with 66) at DS:m16 (CS:m16 with 2E)', opType: OpType.LIDT, opFlags: MODRM | MEMORY_ONLY | CS_OVERRIDE, regFieldMask: 0b1000 },
  { table: 'two-byte', opBytes: [0x30], encoding: '0F 30', mnemonic: 'wrmsr',
    effect: 'exit wrmsr: MSR ECX = EDX:EAX', opType: OpType.WRMSR, opFlags: 0 },
  { table: 'two-byte', opBytes: [0x31], encoding: '0F 31', mnemonic: 'rdtsc',
    effect: 'EDX:EAX = Platform.tsc()', opType: OpType.RDTSC, opFlags: 0 },
  { table: 'two-byte', opBytes: [0x32], encoding: '0F 32', mnemonic: 'rdmsr',
    effect: 'exit rdmsr: MSR ECX; the caller stores EDX:EAX with completeRdmsr', opType: OpType.RDMSR, opFlags: 0 },
  { table: 'two-byte', opBytes: range(0x80, 16), encoding: '0F 80+cc cw', mnemonic: 'jcc rel16',
    effect: 'IP += rel16 if the condition holds (conditions as 70+cc)', opType: OpType.JCC_REL16, opFlags: NO_OPSIZE, subcode: conditionOfOpcode },
  { table: 'two-byte', opBytes: [0xa2], encoding: '0F A2', mnemonic: 'cpuid',
    effect: 'exit cpuid: leaf EAX, subleaf ECX; the caller stores EAX, EBX, ECX, EDX with completeCpuid', opType: OpType.CPUID, opFlags: 0 },
];

const UNSUPPORTED_FLAGS = 0;

function buildTable(which: InstructionForm['table']): readonly OpcodeEntry[] {
  const table: OpcodeEntry[] = range(0, 256).map((opByte) => ({
    opByte, opType: OpType.UNSUPPORTED, opFlags: UNSUPPORTED_FLAGS, subcode: 0, regFieldMask: 0,
  }));
  for (const form of SUBSET_FORMS) {
    if (form.table !== which) continue;
    for (const opByte of form.opBytes) {
      if (table[opByte].opType !== OpType.UNSUPPORTED) {
        throw new Error(`x86 subset: opcode 0x${opByte.toString(16)} defined twice in the ${which} table`);
      }
      table[opByte] = {
        opByte,
        opType: form.opType,
        opFlags: form.opFlags,
        subcode: form.subcode ? form.subcode(opByte) : 0,
        regFieldMask: form.regFieldMask ?? 0xff,
      };
    }
  }
  return Object.freeze(table);
}

/** Opcodes without a 0x0F escape, indexed by the opcode byte. */
export const ONE_BYTE_OPCODES: readonly OpcodeEntry[] = buildTable('one-byte');
/** Opcodes after a 0x0F escape, indexed by the second byte. */
export const TWO_BYTE_OPCODES: readonly OpcodeEntry[] = buildTable('two-byte');

/** Prefix bytes the subset accepts (everything else that x86 calls a prefix is an unsupported opcode). */
export const Prefix = { OPERAND_SIZE: 0x66, LOCK: 0xf0, REP: 0xf3, CS_OVERRIDE: 0x2e, TWO_BYTE_ESCAPE: 0x0f } as const;

/** Condition codes of jcc (low nibble of 70+cc / 0F 80+cc), for the assembler. */
export const Condition = {
  O: 0x0, NO: 0x1, B: 0x2, AE: 0x3, E: 0x4, NE: 0x5, BE: 0x6, A: 0x7,
  S: 0x8, NS: 0x9, P: 0xa, NP: 0xb, L: 0xc, GE: 0xd, LE: 0xe, G: 0xf,
} as const;
export type Condition = (typeof Condition)[keyof typeof Condition];
