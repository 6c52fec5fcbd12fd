// Where vCPUs start under the lab's guest conventions (docs/internals.md section 4), for the
// kernel model and the tests: the BSP at the image, an AP at its STARTUP vector.

import { CpuState, Gpr, resetCpuState, setRealModeSegment } from '../x86/cpu';
import { GUEST_LOAD_ADDRESS } from './conventions';

/** The BSP's stack pointer at entry. */
export const BSP_STACK_POINTER = 0xfff0;

/** Power-on state, then CS=DS=ES=SS = load address >> 4, IP 0, SP 0xFFF0. */
export function startLabBsp(cpu: CpuState): void {
  resetCpuState(cpu);
  for (const seg of [cpu.cs, cpu.ds, cpu.es, cpu.ss]) setRealModeSegment(seg, GUEST_LOAD_ADDRESS >> 4);
  cpu.gpr[Gpr.ESP] = BSP_STACK_POINTER;
}

/**
 * Power-on state, then CS selector vector << 8 (base vector << 12), IP 0, DS=ES=SS=0: what
 * bhyve's spinup_ap sets up after vcpu_reset for a STARTUP IPI with this vector.
 */
export function startApAtSipiVector(cpu: CpuState, vector: number): void {
  if (!Number.isInteger(vector) || vector < 0 || vector > 0xff) throw new RangeError(`STARTUP vector ${vector} is not 0..255`);
  resetCpuState(cpu);
  setRealModeSegment(cpu.cs, vector << 8);
}
