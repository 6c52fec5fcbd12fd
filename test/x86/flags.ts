// Reads the status flags of a CpuState as booleans, for readable assertions.

import { CpuState, Flag } from '../../src/lab/x86/cpu';

export interface StatusFlags {
  CF: boolean;
  PF: boolean;
  AF: boolean;
  ZF: boolean;
  SF: boolean;
  OF: boolean;
}

export function statusFlags(cpu: CpuState): StatusFlags {
  const has = (bit: number): boolean => (cpu.flags & bit) !== 0;
  return { CF: has(Flag.CF), PF: has(Flag.PF), AF: has(Flag.AF), ZF: has(Flag.ZF), SF: has(Flag.SF), OF: has(Flag.OF) };
}

/** Builds the expected flags: every flag not named is false. */
export function only(...set: (keyof StatusFlags)[]): StatusFlags {
  const flags: StatusFlags = { CF: false, PF: false, AF: false, ZF: false, SF: false, OF: false };
  for (const name of set) flags[name] = true;
  return flags;
}
