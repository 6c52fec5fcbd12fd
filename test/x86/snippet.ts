// Runs short instruction sequences for the x86 tests: code at CS = 0x1000 (guest-physical
// 0x10000), data at DS = 0x2000 (guest-physical 0x20000), 192 KiB of guest memory.

import { CpuState, setRealModeSegment } from '../../src/lab/x86/cpu';
import { Exit, GuestMemory, Platform, run } from '../../src/lab/x86/interpreter';

export const CODE_SEGMENT = 0x1000;
export const DATA_SEGMENT = 0x2000;
export const CODE_BASE = CODE_SEGMENT << 4;
export const DATA_BASE = DATA_SEGMENT << 4;
export const MEMORY_BYTES = 0x30000;

export interface Snippet {
  readonly cpu: CpuState;
  readonly mem: GuestMemory;
  readonly platform: Platform & { reads: number };
}

export function snippet(code: readonly number[], options: { ip?: number; tsc?: bigint } = {}): Snippet {
  const bytes = new Uint8Array(MEMORY_BYTES);
  const ip = options.ip ?? 0;
  bytes.set(code, CODE_BASE + ip);
  const cpu = new CpuState();
  setRealModeSegment(cpu.cs, CODE_SEGMENT);
  setRealModeSegment(cpu.ds, DATA_SEGMENT);
  cpu.ip = ip;
  const tsc = options.tsc ?? 0n;
  const platform = {
    reads: 0,
    tsc(): bigint {
      this.reads++;
      return tsc;
    },
  };
  return { cpu, mem: { bytes }, platform };
}

/** Runs `count` instructions (the budget) and returns the exit. */
export function execute(s: Snippet, count = 1): Exit {
  return run(s.cpu, s.mem, s.platform, count);
}

export function readWord(s: Snippet, dsOffset: number): number {
  const a = DATA_BASE + dsOffset;
  return s.mem.bytes[a] | (s.mem.bytes[a + 1] << 8);
}

export function readDword(s: Snippet, dsOffset: number): number {
  return (readWord(s, dsOffset) | (readWord(s, dsOffset + 2) << 16)) >>> 0;
}

export function writeWord(s: Snippet, dsOffset: number, value: number): void {
  s.mem.bytes[DATA_BASE + dsOffset] = value & 0xff;
  s.mem.bytes[DATA_BASE + dsOffset + 1] = (value >> 8) & 0xff;
}

export function writeDword(s: Snippet, dsOffset: number, value: number): void {
  writeWord(s, dsOffset, value & 0xffff);
  writeWord(s, dsOffset + 2, value >>> 16);
}
