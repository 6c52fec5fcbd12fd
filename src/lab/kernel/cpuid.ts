// x86.c x86_emulate_cpuid: the kernel answers a guest's cpuid itself (vmx.c EXIT_REASON_CPUID ->
// vmx_handle_cpuid; the guest continues, nothing reaches userland). Read at freebsd-src
// 0162500b (sys/amd64/vmm/x86.c, read_file id 7390115207); the leaves the lab's guests can reach
// are modelled:
//
//   the leaf is clamped first: at or above 0x80000000 to the host's highest extended leaf (when
//   it has one), else at or above 0x40000000 to 0x40000000, else above the host's highest basic
//   leaf to that leaf;
//   0x00000000 and 0x80000000: the host's, passed through;
//   0x00000001: the host's, with the APIC ID (EBX 31:24) = vcpuid, EBX 23:16 = threads * cores,
//     VMX, EST, TM2 and SMX hidden, HV set, x2APIC set iff the vCPU's x2APIC state is not
//     DISABLED, XSAVE kept only if the host has OSXSAVE, OSXSAVE = XSAVE and CR4.XSAVE, MON,
//     PDCM and TSC-deadline hidden; EDX: ACPI, TM and DS hidden, MCA, MCE, MTRR and HTT set;
//   0x40000000: EAX 0x40000000 and "bhyve bhyve " in EBX, ECX, EDX.
//
// The host is the lab's fixed CPU (LAB_HOST_CPUID below), not the machine the lab runs on: a
// real host passes many more leaves through, and the lab's guests read only leaf 1 (x2APIC).

import { VmReg, X2apicState } from '../../abi/enums';
import type { Vcpu } from './vcpu';
import type { Vm } from './vm';

export type CpuidRegs = readonly [eax: number, ebx: number, ecx: number, edx: number];

/** specialreg.h: the leaf-1 bits x86_emulate_cpuid changes. */
const CPUID2 = {
  MON: 0x0000_0008,
  VMX: 0x0000_0020,
  SMX: 0x0000_0040,
  EST: 0x0000_0080,
  TM2: 0x0000_0100,
  PDCM: 0x0000_8000,
  X2APIC: 0x0020_0000,
  TSCDLT: 0x0100_0000,
  XSAVE: 0x0400_0000,
  OSXSAVE: 0x0800_0000,
  HV: 0x8000_0000,
} as const;
const CPUID_EDX = {
  MCE: 0x0000_0080,
  MTRR: 0x0000_1000,
  MCA: 0x0000_4000,
  DS: 0x0020_0000,
  ACPI: 0x0040_0000,
  HTT: 0x1000_0000,
  TM: 0x2000_0000,
} as const;
const CPUID_LOCAL_APIC_ID = 0xff00_0000;
const CPUID_HTT_CORES = 0x00ff_0000;
const CR4_XSAVE = 0x0004_0000n;

/** x86.c CPUID_VM_HIGH and bhyve_id. */
export const CPUID_VM_HIGH = 0x4000_0000;
export const BHYVE_CPUID_SIGNATURE = 'bhyve bhyve ';

function asciiDwords(text: string): [number, number, number] {
  const bytes = Buffer.from(text, 'latin1');
  return [bytes.readUInt32LE(0), bytes.readUInt32LE(4), bytes.readUInt32LE(8)];
}

const [GENU, INEI, NTEL] = asciiDwords('GenuineIntel');
const [BHYVE_EBX, BHYVE_ECX, BHYVE_EDX] = asciiDwords(BHYVE_CPUID_SIGNATURE);

/**
 * The lab's host CPU: an Intel family-6 part with basic leaves 0..1 and extended leaf
 * 0x80000000 only. Leaf 1 carries VMX, EST, TM2, MON, PDCM, x2APIC, TSC-deadline, XSAVE and
 * OSXSAVE (ECX) and ACPI, TM and DS (EDX), so that each of x86_emulate_cpuid's masks has a bit
 * to act on.
 */
export const LAB_HOST_CPUID: ReadonlyMap<number, CpuidRegs> = new Map<number, CpuidRegs>([
  [0x0000_0000, [0x0000_0001, GENU, NTEL, INEI]],
  [
    0x0000_0001,
    [
      0x0000_0600, // family 6, model 0, stepping 0
      0x0000_0800, // CLFLUSH line 8 quadwords; APIC ID 0
      0x0000_0001 | CPUID2.MON | CPUID2.VMX | CPUID2.EST | CPUID2.TM2 | CPUID2.PDCM | CPUID2.X2APIC | CPUID2.TSCDLT | CPUID2.XSAVE | CPUID2.OSXSAVE,
      0x0000_0001 | 0x0000_0010 | 0x0000_0020 | 0x0000_0200 | CPUID_EDX.DS | CPUID_EDX.ACPI | CPUID_EDX.TM, // FPU TSC MSR APIC ...
    ],
  ],
  [0x8000_0000, [0x8000_0000, 0, 0, 0]],
]);

const HOST_HIGH = LAB_HOST_CPUID.get(0)![0];
const HOST_EXTHIGH = LAB_HOST_CPUID.get(0x8000_0000)![0];

function hostLeaf(leaf: number): [number, number, number, number] {
  const regs = LAB_HOST_CPUID.get(leaf) ?? [0, 0, 0, 0];
  return [regs[0], regs[1], regs[2], regs[3]];
}

/** x86.c's clamping of an unknown leaf to the highest one of its range. */
export function clampCpuidLeaf(leaf: number): number {
  const func = leaf >>> 0;
  if (HOST_EXTHIGH !== 0 && func >= 0x8000_0000) return Math.min(func, HOST_EXTHIGH);
  if (func >= 0x4000_0000) return Math.min(func, CPUID_VM_HIGH);
  return Math.min(func, HOST_HIGH);
}

/** x86_emulate_cpuid for `vcpu`: EAX, EBX, ECX, EDX of leaf EAX (subleaf ECX is not needed). */
export function emulateCpuid(vm: Vm, vcpu: Vcpu, leaf: number): CpuidRegs {
  const func = clampCpuidLeaf(leaf);
  if (func === CPUID_VM_HIGH) return [CPUID_VM_HIGH, BHYVE_EBX, BHYVE_ECX, BHYVE_EDX];
  const regs = hostLeaf(func);
  if (func !== 1) return regs;
  let [eax, ebx, ecx, edx] = regs;
  ebx = (ebx & ~CPUID_LOCAL_APIC_ID) | ((vcpu.id & 0xff) << 24);
  ecx &= ~(CPUID2.VMX | CPUID2.EST | CPUID2.TM2 | CPUID2.SMX);
  ecx |= CPUID2.HV;
  // vm_get_x2apic_state: anything but X2APIC_DISABLED advertises x2APIC.
  if (vcpu.x2apicState !== X2apicState.DISABLED) ecx |= CPUID2.X2APIC;
  else ecx &= ~CPUID2.X2APIC;
  if ((ecx & CPUID2.OSXSAVE) === 0) ecx &= ~CPUID2.XSAVE;
  ecx &= ~CPUID2.OSXSAVE;
  if ((ecx & CPUID2.XSAVE) !== 0 && ((vcpu.otherRegisters.get(VmReg.CR4) ?? 0n) & CR4_XSAVE) !== 0n) ecx |= CPUID2.OSXSAVE;
  ecx &= ~(CPUID2.MON | CPUID2.PDCM | CPUID2.TSCDLT);
  edx &= ~(CPUID_EDX.ACPI | CPUID_EDX.TM | CPUID_EDX.DS);
  edx |= CPUID_EDX.MCA | CPUID_EDX.MCE | CPUID_EDX.MTRR;
  const { cores, threads } = vm.topology;
  ebx = (ebx & ~CPUID_HTT_CORES) | (((threads * cores) & 0xff) << 16);
  edx |= CPUID_EDX.HTT;
  return [eax >>> 0, ebx >>> 0, ecx >>> 0, edx >>> 0];
}
