// Enumerations and constants of the vmm ABI, with FreeBSD's values.
//
// Keys are FreeBSD's names without their prefix (VM_EXITCODE_, VM_SUSPEND_, VM_CAP_,
// VM_REG_GUEST_, ...); gen-c-header.ts puts the prefixes back for C.
// Sources: sys/amd64/include/vmm.h (enum vm_exitcode, vm_suspend_how, vm_cap_type, vm_reg_name,
// x2apic_state, vm_intr_trigger), sys/amd64/include/vmm_dev.h (VM_ACTIVE_CPUS, ...),
// lib/libvmmapi/vmmapi.h (memory segment ids). Numbers: reference legacy-13.1-side.md section 5
// and kernel-main-side.md section 4.

/**
 * enum vm_exitcode (vmm.h). Values 0..23 are the 13.1 set; IPI (24) arrived with 13.2 and
 * 14.0, DB (25) with the 14.0 code base. The values never moved between versions.
 */
export const VmExitcode = {
  INOUT: 0,
  VMX: 1,
  BOGUS: 2,
  RDMSR: 3,
  WRMSR: 4,
  HLT: 5,
  MTRAP: 6,
  PAUSE: 7,
  PAGING: 8,
  INST_EMUL: 9,
  SPINUP_AP: 10,
  DEPRECATED1: 11, // was SPINDOWN_CPU
  RENDEZVOUS: 12,
  IOAPIC_EOI: 13,
  SUSPENDED: 14,
  INOUT_STR: 15,
  TASK_SWITCH: 16,
  MONITOR: 17,
  MWAIT: 18,
  SVM: 19,
  REQIDLE: 20,
  DEBUG: 21,
  VMINSN: 22,
  BPT: 23,
  IPI: 24, // 13.2+ / 14.0 only; never sent to a vCPU whose sender did not enable VM_CAP_IPI_EXIT
  DB: 25, // 14.0 code base (kernel-main-side.md K14)
} as const;
export type VmExitcodeName = keyof typeof VmExitcode;

/** VM_EXITCODE_MAX in 13.1 vmm.h: 13.1 bhyve treats any exit code >= 24 as "unexpected" (exit 4). */
export const VM_EXITCODE_MAX_13 = 24;
/** VM_EXITCODE_MAX in the 14.0 code base (after IPI 24 and DB 25). */
export const VM_EXITCODE_MAX_14 = 26;

/** enum vm_suspend_how (vmm.h); unchanged between 13.1 and 14.0. */
export const VmSuspendHow = {
  NONE: 0,
  RESET: 1,
  POWEROFF: 2,
  HALT: 3,
  TRIPLEFAULT: 4,
  LAST: 5,
} as const;
export type VmSuspendHowName = keyof typeof VmSuspendHow;

/**
 * enum vm_cap_type (vmm.h). 13.1 ends before IPI_EXIT (VM_CAP_MAX 8). IPI_EXIT (8) is 13.2+/14.0;
 * MASK_HWINTR (9) and RFLAGS_TF (10) were appended later (legacy-13.1-side.md section 5).
 */
export const VmCap = {
  HALT_EXIT: 0,
  MTRAP_EXIT: 1,
  PAUSE_EXIT: 2,
  UNRESTRICTED_GUEST: 3,
  ENABLE_INVPCID: 4,
  BPT_EXIT: 5,
  RDPID: 6,
  RDTSCP: 7,
  IPI_EXIT: 8,
  MASK_HWINTR: 9,
  RFLAGS_TF: 10,
} as const;
export type VmCapName = keyof typeof VmCap;

/** VM_CAP_MAX in 13.1 vmm.h. */
export const VM_CAP_MAX_13 = 8;

/**
 * enum vm_reg_name (vmm.h), VM_REG_GUEST_<name>; LAST is FreeBSD's VM_REG_LAST of 13.1/14.0.
 * Newer main only appends (FS_BASE 45 ... LAST 49, see VmRegAppended); old numbers never moved.
 */
export const VmReg = {
  RAX: 0,
  RBX: 1,
  RCX: 2,
  RDX: 3,
  RSI: 4,
  RDI: 5,
  RBP: 6,
  R8: 7,
  R9: 8,
  R10: 9,
  R11: 10,
  R12: 11,
  R13: 12,
  R14: 13,
  R15: 14,
  CR0: 15,
  CR3: 16,
  CR4: 17,
  DR7: 18,
  RSP: 19,
  RIP: 20,
  RFLAGS: 21,
  ES: 22,
  CS: 23,
  SS: 24,
  DS: 25,
  FS: 26,
  GS: 27,
  LDTR: 28,
  TR: 29,
  IDTR: 30,
  GDTR: 31,
  EFER: 32,
  CR2: 33,
  PDPTE0: 34,
  PDPTE1: 35,
  PDPTE2: 36,
  PDPTE3: 37,
  INTR_SHADOW: 38,
  DR0: 39,
  DR1: 40,
  DR2: 41,
  DR3: 42,
  DR6: 43,
  ENTRY_INST_LENGTH: 44,
  LAST: 45,
} as const;
export type VmRegName = keyof typeof VmReg;

/** Registers appended to enum vm_reg_name by later main (not in 13.1 or 14.0). */
export const VmRegAppended = {
  FS_BASE: 45,
  GS_BASE: 46,
  KGS_BASE: 47,
  TPR: 48,
  LAST: 49,
} as const;

/** vm_cpuset.which (vmm_dev.h): VM_ACTIVE_CPUS, VM_SUSPENDED_CPUS, VM_DEBUG_CPUS. */
export const CpusetWhich = {
  ACTIVE: 0,
  SUSPENDED: 1,
  DEBUG: 2,
} as const;
export type CpusetWhichName = keyof typeof CpusetWhich;

/** enum x2apic_state (vmm.h). */
export const X2apicState = {
  DISABLED: 0,
  ENABLED: 1,
} as const;

/** enum vm_intr_trigger (vmm.h): EDGE_TRIGGER, LEVEL_TRIGGER. */
export const VmIntrTrigger = {
  EDGE: 0,
  LEVEL: 1,
} as const;

/**
 * Memory segment ids (lib/libvmmapi/vmmapi.h: VM_SYSMEM, VM_BOOTROM, VM_FRAMEBUFFER, VM_PCIROM),
 * the 13.1 and 14.x numbering. LOWMEM is an alias of SYSMEM: bhyve's low and high system memory
 * are both segment 0. PCIROM is from 13-era vmmapi.h versions later than 13.1 bhyve's needs; its
 * presence in releng/13.1 was not verified. Current main (15) moved BOOTROM to 8, see
 * VM_BOOTROM_MAIN15 (deployment.md section 3).
 */
export const VmMemSeg = {
  SYSMEM: 0,
  LOWMEM: 0,
  BOOTROM: 1,
  FRAMEBUFFER: 2,
  PCIROM: 3,
} as const;

/** main/15: VM_BOOTROM = VM_MAXSYSMEM = 8 (sys/dev/vmm/vmm_mem.h; deployment.md section 3). */
export const VM_BOOTROM_MAIN15 = 8;

/**
 * Memory segment ids of 15.0 and main (sys/dev/vmm/vmm_mem.h at 09fa9c6f, read_file id
 * 2142784334): one system-memory segment per guest NUMA domain in [VM_SYSMEM, VM_MAXSYSMEM),
 * VM_MAXMEMDOM = VM_MAXSYSMEM = 8, then VM_BOOTROM = VM_MAXSYSMEM, VM_FRAMEBUFFER, VM_PCIROM,
 * VM_MEMSEG_END. VM_MAX_MEMSEGS = VM_MEMSEG_END (11), VM_MAX_MEMMAPS = 2 * VM_MAX_MEMSEGS (22).
 */
export const VmMemSeg15 = {
  SYSMEM: 0,
  BOOTROM: 8,
  FRAMEBUFFER: 9,
  PCIROM: 10,
  MEMSEG_END: 11,
} as const;
export const VM_MAXSYSMEM_15 = 8;
export const VM_MAX_MEMSEGS_15 = VmMemSeg15.MEMSEG_END;
export const VM_MAX_MEMMAPS_15 = 2 * VM_MAX_MEMSEGS_15;

/**
 * sys/dev/vmm/vmm_dev.c adjust_segid (COMPAT_FREEBSD14/12, amd64): "Translate pre-15.0 memory
 * segment identifiers into their 15.0 counterparts": every id but VM_SYSMEM gets
 * VM_BOOTROM - 1 (7) added. The kernel applies it only in VM_ALLOC_MEMSEG_14/_12 and
 * VM_GET_MEMSEG_14/_12; VM_MMAP_MEMSEG and VM_MMAP_GETNEXT take and return the new ids.
 */
export function segidTo15(segid: number): number {
  return segid === VmMemSeg.SYSMEM ? segid : segid + (VmMemSeg15.BOOTROM - 1);
}

/** The inverse for ids the kernel hands back (VM_MMAP_GETNEXT): 8..10 -> 1..3; sysmem domains 1..7 have no 13.1 id. */
export function segidFrom15(segid: number): number | null {
  if (segid === VmMemSeg15.SYSMEM) return segid;
  if (segid >= VmMemSeg15.BOOTROM && segid < VmMemSeg15.MEMSEG_END) return segid - (VmMemSeg15.BOOTROM - 1);
  return null;
}

/**
 * enum vm_suspend_how on amd64 15.0/main: VM_SUSPEND_DESTROY follows TRIPLEFAULT (5), LAST 6.
 * Inferred, not read: the official amd64 vmm.h with DESTROY was not in the index; the MI
 * vmm_dev.c calls vm_suspend(VM_SUSPEND_DESTROY) before destroy_dev, arm64 and riscv append
 * DESTROY after HALT, and a third-party amd64 binding gives 5 (docs/abi.md).
 */
export const VmSuspendHow15 = { NONE: 0, RESET: 1, POWEROFF: 2, HALT: 3, TRIPLEFAULT: 4, DESTROY: 5, LAST: 6 } as const;

/** Other vmm constants a translator needs (vmm.h / vmm_dev.h, 13.1 values). */
export const VmmConst = {
  /** vmm.h VM_MAXCPU as seen by 13.1 userland: bhyve sizes its per-vCPU arrays by it. */
  VM_MAXCPU_13: 16,
  /** vmm_dev.h MAX_VM_STATS: entries of vm_stats.statbuf. */
  MAX_VM_STATS: 64,
  /** vmm.h VM_MAX_SUFFIXLEN: vm_memseg.name is VM_MAX_SUFFIXLEN + 1 bytes. */
  VM_MAX_SUFFIXLEN: 15,
  /** vmm.h VM_MAX_NAMELEN (SPECNAMELEN 255 - prefix 10 - suffix 15 - 1). */
  VM_MAX_NAMELEN: 229,
  /** vmm.h VM_MIN_NAMELEN. */
  VM_MIN_NAMELEN: 6,
  /** vmm_dev.h vm_memmap.flags. */
  VM_MEMMAP_F_WIRED: 0x01,
  VM_MEMMAP_F_IOMMU: 0x02,
} as const;

function reverseName(table: Readonly<Record<string, number>>, value: number): string {
  for (const [name, v] of Object.entries(table)) {
    if (v === value && name !== 'LOWMEM') return name;
  }
  return `unknown(${value})`;
}

/** 'SPINUP_AP' for 10, 'unknown(99)' for a value outside enum vm_exitcode. */
export function exitcodeName(code: number): string {
  return reverseName(VmExitcode, code);
}
/** 'POWEROFF' for 2, 'unknown(n)' otherwise. */
export function suspendHowName(how: number): string {
  return reverseName(VmSuspendHow, how);
}
/** 'UNRESTRICTED_GUEST' for 3, 'unknown(n)' otherwise. */
export function capName(cap: number): string {
  return reverseName(VmCap, cap);
}
/** 'RIP' for 20, 'unknown(n)' otherwise (45 is 'LAST', the 13.1/14.0 end marker). */
export function regName(reg: number): string {
  return reverseName(VmReg, reg);
}
/** 'ACTIVE' for 0, 'unknown(n)' otherwise. */
export function cpusetWhichName(which: number): string {
  return reverseName(CpusetWhich, which);
}
/** 'SYSMEM' for 0, 'BOOTROM' for 1, ... (13.1/14.x numbering). */
export function memSegName(segid: number): string {
  return reverseName(VmMemSeg, segid);
}
