// The vmm ioctl argument structs (LP64 amd64) as data, plus codecs for the vm_exit union.
//
// Field names are FreeBSD's. Where FreeBSD embeds a struct without tail padding the fields are
// flattened (vm_seg_desc.desc -> base/limit/access, vm_stats.tv -> tv_sec/tv_usec,
// vm_snapshot_meta.buffer -> buf_start/buf_size/buf/buf_rem); embedded objects with tail padding
// or unions stay `bytes` with their alignment (vm_exit.u, vm_run.vm_exit, vm_gla2gpa.paging).
// Sources: sys/amd64/include/vmm_dev.h (argument structs), sys/amd64/include/vmm.h (struct
// vm_exit, seg_desc, vm_guest_paging), sys/amd64/vmm/vmm_dev.c (the COMPAT_FREEBSD13 vm_run_13,
// vm_exit_13, vm_exit_ipi_13, vm_stats_old, vm_snapshot_meta_old). Sizes and offsets are checked
// against reference legacy-13.1-side.md section 4 and kernel-main-side.md section 4.1 in
// test/abi/structs.test.ts, and against gcc in test/abi/c-header.test.ts.

import type { AbiName } from './ioctls';
import { CPUSET_BYTES_13, cpusetFromBytes, cpusetToBytes } from './cpuset';
import {
  bytes,
  defineStruct,
  i32,
  i64,
  ptr,
  renameStruct,
  u16,
  u32,
  u64,
  u8,
  type StructLayout,
  type ValueOf,
} from './layout';

export type { FieldDef, FieldType, StructDef, StructLayout, StructValue, ValueOf } from './layout';
export { defineStruct, fieldOf, renameStruct } from './layout';
export { CPUSET_BYTES_13, CPUSET_BYTES_14 } from './cpuset';

/** sizeof(union u) inside struct vm_exit: 120 in 13.1 and 14.0 (vm_exit_13 hard-codes u[120/8]). */
export const VM_EXIT_U_BYTES = 120;

// ---------------------------------------------------------------------------------------------
// vm_exit and vm_run (vmm.h, vmm_dev.h; vmm_dev.c for the COMPAT_FREEBSD13 names)

/** struct vm_exit (vmm.h): 136 bytes in 13.1 and 14.0. */
export const VM_EXIT = defineStruct('vm_exit', [
  i32('exitcode'),
  i32('inst_length'),
  u64('rip'),
  bytes('u', VM_EXIT_U_BYTES, 8),
]);
export type VmExit = ValueOf<typeof VM_EXIT>;

/** 13.1 struct vm_run (vmm_dev.h): the exit is embedded. 144 bytes. */
export const VM_RUN_13 = defineStruct('vm_run', [i32('cpuid'), bytes('vm_exit', VM_EXIT.size, 8)]);
export type VmRun13 = ValueOf<typeof VM_RUN_13>;

/**
 * 14.0 struct vm_run: the exit and the IPI cpuset are reached through pointers (e17eca32,
 * "vmm: Avoid embedding cpuset_t ioctl ABIs"; layout from the field uses in vmm_dev.c). 32 bytes.
 */
export const VM_RUN_14 = defineStruct('vm_run', [
  i32('cpuid'),
  ptr('cpuset'),
  u64('cpusetsize'),
  ptr('vm_exit'),
]);
export type VmRun14 = ValueOf<typeof VM_RUN_14>;

/** The kernel's names for the 13.1 layouts under COMPAT_FREEBSD13 (vmm_dev.c). */
export const VM_EXIT_13_COMPAT = renameStruct(VM_EXIT, 'vm_exit_13');
export const VM_RUN_13_COMPAT = renameStruct(VM_RUN_13, 'vm_run_13');

// ---------------------------------------------------------------------------------------------
// vCPU control

/** struct vm_activate_cpu: VM_ACTIVATE_CPU, VM_SUSPEND_CPU, VM_RESUME_CPU. */
export const VM_ACTIVATE_CPU = defineStruct('vm_activate_cpu', [i32('vcpuid')]);
export type VmActivateCpu = ValueOf<typeof VM_ACTIVATE_CPU>;

/** struct vm_cpuset: VM_GET_CPUS; the kernel copies `cpusetsize` bytes out through `cpus`. */
export const VM_CPUSET = defineStruct('vm_cpuset', [i32('which'), i32('cpusetsize'), ptr('cpus')]);
export type VmCpuset = ValueOf<typeof VM_CPUSET>;

/** struct vm_capability. */
export const VM_CAPABILITY = defineStruct('vm_capability', [
  i32('cpuid'),
  i32('captype'),
  i32('capval'),
  i32('allcpus'),
]);
export type VmCapability = ValueOf<typeof VM_CAPABILITY>;

/** struct vm_register. */
export const VM_REGISTER = defineStruct('vm_register', [i32('cpuid'), i32('regnum'), u64('regval')]);
export type VmRegister = ValueOf<typeof VM_REGISTER>;

/** struct vm_seg_desc with its struct seg_desc {base, limit, access} flattened. */
export const VM_SEG_DESC = defineStruct('vm_seg_desc', [
  i32('cpuid'),
  i32('regnum'),
  u64('base'),
  u32('limit'),
  u32('access'),
]);
export type VmSegDesc = ValueOf<typeof VM_SEG_DESC>;

/** struct vm_register_set: two user pointers to `count` regnums (int) and regvals (uint64_t). */
export const VM_REGISTER_SET = defineStruct('vm_register_set', [
  i32('cpuid'),
  u32('count'),
  ptr('regnums'),
  ptr('regvals'),
]);
export type VmRegisterSet = ValueOf<typeof VM_REGISTER_SET>;

/** struct vm_cpu_topology. 13.1 bhyve passes maxcpus 0; 14.0 ignores it on SET. */
export const VM_CPU_TOPOLOGY = defineStruct('vm_cpu_topology', [
  u16('sockets'),
  u16('cores'),
  u16('threads'),
  u16('maxcpus'),
]);
export type VmCpuTopology = ValueOf<typeof VM_CPU_TOPOLOGY>;

/** struct vm_suspend {enum vm_suspend_how how}. */
export const VM_SUSPEND = defineStruct('vm_suspend', [i32('how')]);
export type VmSuspend = ValueOf<typeof VM_SUSPEND>;

/** struct vm_x2apic {cpuid, enum x2apic_state state}. */
export const VM_X2APIC = defineStruct('vm_x2apic', [i32('cpuid'), i32('state')]);
export type VmX2apic = ValueOf<typeof VM_X2APIC>;

/** struct vm_intinfo. */
export const VM_INTINFO = defineStruct('vm_intinfo', [i32('vcpuid'), u64('info1'), u64('info2')]);

/** struct vm_gla2gpa; `paging` is struct vm_guest_paging (24 bytes, tail-padded). */
export const VM_GLA2GPA = defineStruct('vm_gla2gpa', [
  i32('vcpuid'),
  i32('prot'),
  u64('gla'),
  bytes('paging', 24, 8),
  i32('fault'),
  u64('gpa'),
]);

/**
 * struct vm_readwrite_kernemu_device; `access_width` is the 32-bit word holding the bit-fields
 * access_width:3 and _unused:29 (vmm_dev.h static-asserts 24 bytes).
 */
export const VM_READWRITE_KERNEMU_DEVICE = defineStruct('vm_readwrite_kernemu_device', [
  i32('vcpuid'),
  u32('access_width'),
  u64('gpa'),
  u64('value'),
]);

// ---------------------------------------------------------------------------------------------
// Memory

/** struct vm_memseg: name is char[VM_MAX_SUFFIXLEN + 1]. 32 bytes (13.1 and 14.x). */
export const VM_MEMSEG = defineStruct('vm_memseg', [i32('segid'), u64('len'), bytes('name', 16)]);
export type VmMemseg = ValueOf<typeof VM_MEMSEG>;

/**
 * 15.0/main struct vm_memseg with the guest NUMA fields (a4197ea47777, D44565): the 32-byte
 * head of the 13.1/14.x struct, then `domainset_t *ds_mask`, `size_t ds_mask_size`,
 * `int ds_policy`. 56 bytes (0x8038760E / 0xC038760F). The field order is the riscv
 * vmm_dev.h's (kernel-15-side.md, HRV); sys/dev/vmm/vmm_dev.c (DEV15, read_file id 1049803204)
 * reads all three and skips the domain set when ds_policy is DOMAINSET_POLICY_INVALID or
 * ds_mask is NULL.
 */
export const VM_MEMSEG_15 = defineStruct('vm_memseg', [
  i32('segid'),
  u64('len'),
  bytes('name', 16),
  ptr('ds_mask'),
  u64('ds_mask_size'),
  i32('ds_policy'),
]);
export type VmMemseg15 = ValueOf<typeof VM_MEMSEG_15>;
/** The 32-byte layout under its 15.0 compat name (COMPAT_FREEBSD14, sys/dev/vmm/vmm_dev.c). */
export const VM_MEMSEG_14 = renameStruct(VM_MEMSEG, 'vm_memseg_14');

/**
 * sys/dev/vmm/vmm_dev.h (DEVH, kernel-15-side.md section 2): struct vmmctl_vm_create and
 * vmmctl_vm_destroy, `char name[VM_MAX_NAMELEN + 1]` then `int reserved[16]` (main after
 * bd16bac27e7e names the first word `uint32_t flags`). 296 bytes each.
 */
export const VMMCTL_VM_CREATE = defineStruct('vmmctl_vm_create', [bytes('name', 230), bytes('reserved', 64, 4)]);
export const VMMCTL_VM_DESTROY = defineStruct('vmmctl_vm_destroy', [bytes('name', 230), bytes('reserved', 64, 4)]);

/** struct vm_memseg_fbsd12 (COMPAT_FREEBSD12): name is char[64]. 80 bytes. */
export const VM_MEMSEG_FBSD12 = defineStruct('vm_memseg_fbsd12', [
  i32('segid'),
  u64('len'),
  bytes('name', 64),
]);

/** The 80-byte layout under its 15.0 compat name (COMPAT_FREEBSD12). */
export const VM_MEMSEG_12 = renameStruct(VM_MEMSEG_FBSD12, 'vm_memseg_12');

/** struct vm_memmap. */
export const VM_MEMMAP = defineStruct('vm_memmap', [
  u64('gpa'),
  i32('segid'),
  u64('segoff'),
  u64('len'),
  i32('prot'),
  i32('flags'),
]);
export type VmMemmap = ValueOf<typeof VM_MEMMAP>;

/** struct vm_munmap. */
export const VM_MUNMAP = defineStruct('vm_munmap', [u64('gpa'), u64('len')]);
export type VmMunmap = ValueOf<typeof VM_MUNMAP>;

/** struct vm_gpa_pte: pte is uint64_t[4]. */
export const VM_GPA_PTE = defineStruct('vm_gpa_pte', [u64('gpa'), bytes('pte', 32, 8), i32('ptenum')]);

// ---------------------------------------------------------------------------------------------
// Interrupts

export const VM_EXCEPTION = defineStruct('vm_exception', [
  i32('cpuid'),
  i32('vector'),
  u32('error_code'),
  i32('error_code_valid'),
  i32('restart_instruction'),
]);
export const VM_LAPIC_MSI = defineStruct('vm_lapic_msi', [u64('msg'), u64('addr')]);
export const VM_LAPIC_IRQ = defineStruct('vm_lapic_irq', [i32('cpuid'), i32('vector')]);
export const VM_IOAPIC_IRQ = defineStruct('vm_ioapic_irq', [i32('irq')]);
export const VM_ISA_IRQ = defineStruct('vm_isa_irq', [i32('atpic_irq'), i32('ioapic_irq')]);
export const VM_ISA_IRQ_TRIGGER = defineStruct('vm_isa_irq_trigger', [i32('atpic_irq'), i32('trigger')]);
export const VM_NMI = defineStruct('vm_nmi', [i32('cpuid')]);

// ---------------------------------------------------------------------------------------------
// PCI pass-through

export const VM_PPTDEV = defineStruct('vm_pptdev', [i32('bus'), i32('slot'), i32('func')]);
export const VM_PPTDEV_MMIO = defineStruct('vm_pptdev_mmio', [
  i32('bus'),
  i32('slot'),
  i32('func'),
  u64('gpa'),
  u64('hpa'),
  u64('len'),
]);
export const VM_PPTDEV_MSI = defineStruct('vm_pptdev_msi', [
  i32('vcpu'),
  i32('bus'),
  i32('slot'),
  i32('func'),
  i32('numvec'),
  u64('msg'),
  u64('addr'),
]);
export const VM_PPTDEV_MSIX = defineStruct('vm_pptdev_msix', [
  i32('vcpu'),
  i32('bus'),
  i32('slot'),
  i32('func'),
  i32('idx'),
  u64('msg'),
  u32('vector_control'),
  u64('addr'),
]);

// ---------------------------------------------------------------------------------------------
// Statistics, devices, RTC, snapshot

/** 13.1 struct vm_stats (no `index`): 536 bytes. statbuf is uint64_t[MAX_VM_STATS = 64]. */
export const VM_STATS_13 = defineStruct('vm_stats', [
  i32('cpuid'),
  i32('num_entries'),
  i64('tv_sec'),
  i64('tv_usec'),
  bytes('statbuf', 64 * 8, 8),
]);
export type VmStats13 = ValueOf<typeof VM_STATS_13>;

/** 13.2+/14.0 struct vm_stats (with `index`): 544 bytes. */
export const VM_STATS_14 = defineStruct('vm_stats', [
  i32('cpuid'),
  i32('index'),
  i32('num_entries'),
  i64('tv_sec'),
  i64('tv_usec'),
  bytes('statbuf', 64 * 8, 8),
]);
export type VmStats14 = ValueOf<typeof VM_STATS_14>;

/** The 13.1 layout under the kernel's COMPAT_FREEBSD13 name (vmm_dev.c). */
export const VM_STATS_OLD = renameStruct(VM_STATS_13, 'vm_stats_old');

export const VM_STAT_DESC = defineStruct('vm_stat_desc', [i32('index'), bytes('desc', 128)]);
export const VM_HPET_CAP = defineStruct('vm_hpet_cap', [u32('capabilities')]);
export const VM_RTC_TIME = defineStruct('vm_rtc_time', [i64('secs')]);
export const VM_RTC_DATA = defineStruct('vm_rtc_data', [i32('offset'), u8('value')]);

/**
 * 13.1 struct vm_snapshot_meta (BHYVE_SNAPSHOT builds): leading `ctx` pointer, then the
 * vm_snapshot_buffer {buf_start, buf_size, buf, buf_rem} flattened. 72 bytes.
 */
export const VM_SNAPSHOT_META_13 = defineStruct('vm_snapshot_meta', [
  ptr('ctx'),
  ptr('dev_data'),
  ptr('dev_name'),
  i32('dev_req'),
  ptr('buf_start'),
  u64('buf_size'),
  ptr('buf'),
  u64('buf_rem'),
  i32('op'),
]);
/** 14.0 struct vm_snapshot_meta: the `ctx` pointer is gone. 64 bytes. */
export const VM_SNAPSHOT_META_14 = defineStruct('vm_snapshot_meta', [
  ptr('dev_data'),
  ptr('dev_name'),
  i32('dev_req'),
  ptr('buf_start'),
  u64('buf_size'),
  ptr('buf'),
  u64('buf_rem'),
  i32('op'),
]);
/** The 13.1 layout under the kernel's COMPAT_FREEBSD13 name (vmm_dev.c). */
export const VM_SNAPSHOT_META_OLD = renameStruct(VM_SNAPSHOT_META_13, 'vm_snapshot_meta_old');

/** A bare `int` argument (VM_IOAPIC_PINCOUNT, VM_RESTART_INSTRUCTION, VM_RESTORE_TIME). */
export const INT_ARG = defineStruct('int', [i32('value')]);

// ---------------------------------------------------------------------------------------------
// Members of the vm_exit union `u` (vmm.h). Offsets are relative to `u` (vm_exit + 16).

/** u.inout: a uint16_t of bit-fields (bytes:3, in:1, string:1, rep:1), port, eax. */
export const VM_EXIT_INOUT = defineStruct('vm_exit_inout', [u16('flags'), u16('port'), u32('eax')]);
/** u.paging. */
export const VM_EXIT_PAGING = defineStruct('vm_exit_paging', [u64('gpa'), i32('fault_type')]);
/** u.vmx. */
export const VM_EXIT_VMX = defineStruct('vm_exit_vmx', [
  i32('status'),
  u32('exit_reason'),
  u64('exit_qualification'),
  i32('inst_type'),
  i32('inst_error'),
]);
/** u.svm. */
export const VM_EXIT_SVM = defineStruct('vm_exit_svm', [u64('exitcode'), u64('exitinfo1'), u64('exitinfo2')]);
/** u.bpt. */
export const VM_EXIT_BPT = defineStruct('vm_exit_bpt', [i32('inst_length')]);
/** u.msr: RDMSR/WRMSR. */
export const VM_EXIT_MSR = defineStruct('vm_exit_msr', [u32('code'), u64('wval')]);
/** u.spinup_ap: target vCPU and start address (SIPI vector << 12). */
export const VM_EXIT_SPINUP_AP = defineStruct('vm_exit_spinup_ap', [i32('vcpu'), u64('rip')]);
/** u.hlt. */
export const VM_EXIT_HLT = defineStruct('vm_exit_hlt', [u64('rflags'), u64('intr_status')]);
/** u.ioapic_eoi. */
export const VM_EXIT_IOAPIC_EOI = defineStruct('vm_exit_ioapic_eoi', [i32('vector')]);
/** u.suspended. */
export const VM_EXIT_SUSPENDED = defineStruct('vm_exit_suspended', [i32('how')]);
/**
 * u.ipi in 13.2 and early-2023 main, kept by 14.0's VM_RUN_13 as struct vm_exit_ipi_13:
 * the destination set is a 256-bit cpuset inside the union. 40 bytes. (13.1 has no IPI exit.)
 */
export const VM_EXIT_IPI_13 = defineStruct('vm_exit_ipi_13', [
  u32('mode'),
  u8('vector'),
  bytes('dmask', CPUSET_BYTES_13, 8),
]);
/** 14.0 u.ipi: the destination set is reached through vm_run.cpuset. 8 bytes. */
export const VM_EXIT_IPI_14 = defineStruct('vm_exit_ipi', [u32('mode'), u8('vector')]);

// ---------------------------------------------------------------------------------------------
// Union codecs. Each decoder takes the 120-byte `u` (or any buffer with the member at `offset`);
// each encoder returns a fresh 120-byte `u` with the rest zero.

function unionBuffer(): Buffer {
  return Buffer.alloc(VM_EXIT_U_BYTES);
}

export interface VmExitSpinupAp {
  vcpu: number;
  rip: bigint;
}
export function decodeSpinupAp(u: Buffer, offset = 0): VmExitSpinupAp {
  return VM_EXIT_SPINUP_AP.decode(u, offset);
}
export function encodeSpinupAp(value: VmExitSpinupAp): Buffer {
  return VM_EXIT_SPINUP_AP.encodeInto(unionBuffer(), value);
}

export interface VmExitSuspended {
  how: number;
}
export function decodeSuspended(u: Buffer, offset = 0): VmExitSuspended {
  return VM_EXIT_SUSPENDED.decode(u, offset);
}
export function encodeSuspended(value: VmExitSuspended): Buffer {
  return VM_EXIT_SUSPENDED.encodeInto(unionBuffer(), value);
}

/** u.inout with the bit-fields split out (amd64 allocates bit-fields from the low bit). */
export interface VmExitInout {
  /** Access size in bytes (1, 2 or 4): bits 0..2. */
  bytes: number;
  /** 1 for IN, 0 for OUT: bit 3. */
  in: number;
  /** 1 for INS/OUTS: bit 4. */
  string: number;
  /** 1 with a REP prefix: bit 5. */
  rep: number;
  port: number;
  eax: number;
}
/** Input for encodeInout: the 1-bit fields may be given as booleans. */
export interface VmExitInoutInput {
  bytes: number;
  in: number | boolean;
  string?: number | boolean;
  rep?: number | boolean;
  port: number;
  eax?: number;
}
export function decodeInout(u: Buffer, offset = 0): VmExitInout {
  const raw = VM_EXIT_INOUT.decode(u, offset);
  return {
    bytes: raw.flags & 0x7,
    in: (raw.flags >> 3) & 1,
    string: (raw.flags >> 4) & 1,
    rep: (raw.flags >> 5) & 1,
    port: raw.port,
    eax: raw.eax,
  };
}
function bit(name: string, v: number | boolean | undefined): number {
  if (v === undefined || v === false || v === 0) return 0;
  if (v === true || v === 1) return 1;
  throw new RangeError(`vm_exit_inout.${name}: ${String(v)} is not a 1-bit value`);
}
export function encodeInout(value: VmExitInoutInput): Buffer {
  if (!Number.isInteger(value.bytes) || value.bytes < 0 || value.bytes > 7) {
    throw new RangeError(`vm_exit_inout.bytes: ${value.bytes} is not a 3-bit value`);
  }
  const flags =
    value.bytes | (bit('in', value.in) << 3) | (bit('string', value.string) << 4) | (bit('rep', value.rep) << 5);
  return VM_EXIT_INOUT.encodeInto(unionBuffer(), { flags, port: value.port, eax: value.eax ?? 0 });
}

export interface VmExitMsr {
  code: number;
  wval: bigint;
}
export function decodeMsr(u: Buffer, offset = 0): VmExitMsr {
  return VM_EXIT_MSR.decode(u, offset);
}
export function encodeMsr(value: { code: number; wval?: bigint }): Buffer {
  return VM_EXIT_MSR.encodeInto(unionBuffer(), value);
}

export interface VmExitHlt {
  rflags: bigint;
  intr_status: bigint;
}
export function decodeHlt(u: Buffer, offset = 0): VmExitHlt {
  return VM_EXIT_HLT.decode(u, offset);
}
export function encodeHlt(value: Partial<VmExitHlt>): Buffer {
  return VM_EXIT_HLT.encodeInto(unionBuffer(), value);
}

export interface VmExitIpi13 {
  mode: number;
  vector: number;
  /** The 32-byte 256-bit destination set (see cpusetFromBytes). */
  dmask: Buffer;
}
export function decodeIpi13(u: Buffer, offset = 0): VmExitIpi13 {
  return VM_EXIT_IPI_13.decode(u, offset);
}
/** `dmask` as a 32-byte set or as the vCPU ids to set. */
export function encodeIpi13(value: { mode: number; vector: number; dmask: Buffer | Iterable<number> }): Buffer {
  const dmask = Buffer.isBuffer(value.dmask) ? value.dmask : cpusetToBytes(value.dmask, CPUSET_BYTES_13);
  return VM_EXIT_IPI_13.encodeInto(unionBuffer(), { mode: value.mode, vector: value.vector, dmask });
}
/** The vCPU ids of a 13.2-layout IPI exit. */
export function ipi13Targets(u: Buffer, offset = 0): number[] {
  return cpusetFromBytes(decodeIpi13(u, offset).dmask);
}

export interface VmExitIpi14 {
  mode: number;
  vector: number;
}
export function decodeIpi14(u: Buffer, offset = 0): VmExitIpi14 {
  return VM_EXIT_IPI_14.decode(u, offset);
}
export function encodeIpi14(value: VmExitIpi14): Buffer {
  return VM_EXIT_IPI_14.encodeInto(unionBuffer(), value);
}

// ---------------------------------------------------------------------------------------------
// Per-ABI struct lists: what the C header describes as ABI13_* / ABI14_*.

/** Union members present in both ABIs. */
const UNION_MEMBERS: readonly StructLayout[] = [
  VM_EXIT_INOUT,
  VM_EXIT_PAGING,
  VM_EXIT_VMX,
  VM_EXIT_SVM,
  VM_EXIT_BPT,
  VM_EXIT_MSR,
  VM_EXIT_SPINUP_AP,
  VM_EXIT_HLT,
  VM_EXIT_IOAPIC_EOI,
  VM_EXIT_SUSPENDED,
];

const COMMON_ARGS: readonly StructLayout[] = [
  VM_ACTIVATE_CPU,
  VM_CPUSET,
  VM_CAPABILITY,
  VM_REGISTER,
  VM_SEG_DESC,
  VM_REGISTER_SET,
  VM_CPU_TOPOLOGY,
  VM_SUSPEND,
  VM_X2APIC,
  VM_INTINFO,
  VM_GLA2GPA,
  VM_READWRITE_KERNEMU_DEVICE,
  VM_MEMSEG,
  VM_MEMSEG_FBSD12,
  VM_MEMMAP,
  VM_MUNMAP,
  VM_GPA_PTE,
  VM_EXCEPTION,
  VM_LAPIC_MSI,
  VM_LAPIC_IRQ,
  VM_IOAPIC_IRQ,
  VM_ISA_IRQ,
  VM_ISA_IRQ_TRIGGER,
  VM_NMI,
  VM_PPTDEV,
  VM_PPTDEV_MMIO,
  VM_PPTDEV_MSI,
  VM_PPTDEV_MSIX,
  VM_STAT_DESC,
  VM_HPET_CAP,
  VM_RTC_TIME,
  VM_RTC_DATA,
];

const STRUCTS_13: readonly StructLayout[] = Object.freeze([
  VM_EXIT,
  VM_RUN_13,
  ...COMMON_ARGS,
  VM_STATS_13,
  VM_SNAPSHOT_META_13,
  ...UNION_MEMBERS,
]);

const STRUCTS_14: readonly StructLayout[] = Object.freeze([
  VM_EXIT,
  VM_RUN_14,
  VM_EXIT_13_COMPAT,
  VM_RUN_13_COMPAT,
  ...COMMON_ARGS,
  VM_STATS_14,
  VM_STATS_OLD,
  VM_SNAPSHOT_META_14,
  VM_SNAPSHOT_META_OLD,
  ...UNION_MEMBERS,
  VM_EXIT_IPI_14,
  VM_EXIT_IPI_13,
]);

/** 15.0/main names the COMPAT_FREEBSD13 layouts *_13 (sys/amd64/vmm/vmm_dev_machdep.c, MD-A). */
export const VM_STATS_13_COMPAT = renameStruct(VM_STATS_13, 'vm_stats_13');
export const VM_SNAPSHOT_META_13_COMPAT = renameStruct(VM_SNAPSHOT_META_13, 'vm_snapshot_meta_13');

/** 15.0/main: the 14.0 set with the NUMA vm_memseg and its compat names (sys/dev/vmm/vmm_dev.c). */
const STRUCTS_15: readonly StructLayout[] = Object.freeze([
  ...STRUCTS_14.filter((st) => st !== VM_MEMSEG && st !== VM_MEMSEG_FBSD12 && st !== VM_STATS_OLD && st !== VM_SNAPSHOT_META_OLD),
  VM_MEMSEG_15,
  VM_MEMSEG_14,
  VM_MEMSEG_12,
  VM_STATS_13_COMPAT,
  VM_SNAPSHOT_META_13_COMPAT,
  VMMCTL_VM_CREATE,
  VMMCTL_VM_DESTROY,
]);

/** Every struct layout of an ABI, each FreeBSD name once (the bare `int` argument excluded). */
export function structTable(abi: AbiName): readonly StructLayout[] {
  return abi === '13.1' ? STRUCTS_13 : abi === '14.0' ? STRUCTS_14 : STRUCTS_15;
}

/** A struct layout of an ABI by FreeBSD name, or undefined. */
export function structByName(abi: AbiName, name: string): StructLayout | undefined {
  return structTable(abi).find((s) => s.name === name);
}
