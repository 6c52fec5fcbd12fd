// The vmm ioctl tables of the 13.1 and 14.0 ABIs (amd64), as data.
//
// Each entry names its IOCNUM (sys/amd64/include/vmm_dev.h), its direction (_IO/_IOR/_IOW/_IOWR)
// and its argument struct (./structs); the length and the request number are computed from
// those with the sys/sys/ioccom.h encoding, never typed in. The 14.0 table is the 13.1 table
// with the changes listed in ABI14_CHANGES (sys/amd64/vmm/vmm_dev.c COMPAT_FREEBSD13 entries;
// reference kernel-main-side.md section 4.2).

import { hexRequest, ioc, IOC_IN, IOC_INOUT, IOC_OUT, IOC_VOID, VMM_IOC_GROUP } from './ioccom';
import type { StructLayout } from './layout';
import {
  INT_ARG,
  VM_ACTIVATE_CPU,
  VM_CAPABILITY,
  VM_CPU_TOPOLOGY,
  VM_CPUSET,
  VM_EXCEPTION,
  VM_GLA2GPA,
  VM_GPA_PTE,
  VM_HPET_CAP,
  VM_INTINFO,
  VM_IOAPIC_IRQ,
  VM_ISA_IRQ,
  VM_ISA_IRQ_TRIGGER,
  VM_LAPIC_IRQ,
  VM_LAPIC_MSI,
  VM_MEMMAP,
  VM_MEMSEG,
  VM_MEMSEG_12,
  VM_MEMSEG_14,
  VM_MEMSEG_15,
  VM_MEMSEG_FBSD12,
  VM_MUNMAP,
  VM_NMI,
  VM_PPTDEV,
  VM_PPTDEV_MMIO,
  VM_PPTDEV_MSI,
  VM_PPTDEV_MSIX,
  VM_READWRITE_KERNEMU_DEVICE,
  VM_REGISTER,
  VM_REGISTER_SET,
  VM_RTC_DATA,
  VM_RTC_TIME,
  VM_RUN_13,
  VM_RUN_13_COMPAT,
  VM_RUN_14,
  VM_SEG_DESC,
  VM_SNAPSHOT_META_13,
  VM_SNAPSHOT_META_13_COMPAT,
  VM_SNAPSHOT_META_14,
  VM_SNAPSHOT_META_OLD,
  VM_STAT_DESC,
  VM_STATS_13,
  VM_STATS_13_COMPAT,
  VM_STATS_14,
  VM_STATS_OLD,
  VM_SUSPEND,
  VM_X2APIC,
  VMMCTL_VM_CREATE,
  VMMCTL_VM_DESTROY,
} from './structs';

export type AbiName = '13.1' | '14.0' | '15.0';
export type IoctlDir = 'void' | 'in' | 'out' | 'inout';

export interface IoctlDef {
  /** FreeBSD's macro name, e.g. 'VM_RUN', 'VM_RUN_13'. */
  readonly name: string;
  /** IOCNUM_* (vmm_dev.h). */
  readonly num: number;
  readonly dir: IoctlDir;
  /** FreeBSD's argument struct name ('vm_run', 'int'), '' for _IO. */
  readonly struct: string;
  /** IOCPARM_LEN: sizeof the argument. */
  readonly len: number;
  /** The full request number, unsigned 32-bit. */
  readonly request: number;
  /** Kernel option under which the kernel accepts this request, e.g. 'COMPAT_FREEBSD13'. */
  readonly compat?: string;
  readonly notes?: string;
  /** The device the request is for when it is not /dev/vmm/NAME (group 'V': /dev/vmmctl). */
  readonly device?: string;
}

/** ioccom group of /dev/vmmctl (sys/dev/vmm/vmm_dev.h, a97f683fe3c4). */
export const VMMCTL_IOC_GROUP = 'V'.charCodeAt(0);
/** The control device of 15.0 and main (vmm_dev.c vmmdev_init: make_dev_p(..., "vmmctl")). */
export const VMMCTL_DEVICE = '/dev/vmmctl';

export const ABI_NAMES: readonly AbiName[] = Object.freeze(['13.1', '14.0', '15.0'] as const);

export function isAbiName(value: string): value is AbiName {
  return (ABI_NAMES as readonly string[]).includes(value);
}

/** enum IOCNUM_* of sys/amd64/include/vmm_dev.h (unchanged from 13.1 to 14.0). */
export const IocNum = {
  ABIVERS: 0,
  RUN: 1,
  SET_CAPABILITY: 2,
  GET_CAPABILITY: 3,
  SUSPEND: 4,
  REINIT: 5,
  MAP_MEMORY: 10, // deprecated, no request macro
  GET_MEMORY_SEG: 11, // deprecated, no request macro
  GET_GPA_PMAP: 12,
  GLA2GPA: 13,
  ALLOC_MEMSEG: 14,
  GET_MEMSEG: 15,
  MMAP_MEMSEG: 16,
  MMAP_GETNEXT: 17,
  GLA2GPA_NOFAULT: 18,
  MUNMAP_MEMSEG: 19,
  SET_REGISTER: 20,
  GET_REGISTER: 21,
  SET_SEGMENT_DESCRIPTOR: 22,
  GET_SEGMENT_DESCRIPTOR: 23,
  SET_REGISTER_SET: 24,
  GET_REGISTER_SET: 25,
  GET_KERNEMU_DEV: 26,
  SET_KERNEMU_DEV: 27,
  GET_INTINFO: 28,
  SET_INTINFO: 29,
  INJECT_EXCEPTION: 30,
  LAPIC_IRQ: 31,
  INJECT_NMI: 32,
  IOAPIC_ASSERT_IRQ: 33,
  IOAPIC_DEASSERT_IRQ: 34,
  IOAPIC_PULSE_IRQ: 35,
  LAPIC_MSI: 36,
  LAPIC_LOCAL_IRQ: 37,
  IOAPIC_PINCOUNT: 38,
  RESTART_INSTRUCTION: 39,
  BIND_PPTDEV: 40,
  UNBIND_PPTDEV: 41,
  MAP_PPTDEV_MMIO: 42,
  PPTDEV_MSI: 43,
  PPTDEV_MSIX: 44,
  PPTDEV_DISABLE_MSIX: 45,
  UNMAP_PPTDEV_MMIO: 46,
  VM_STATS: 50,
  VM_STAT_DESC: 51,
  SET_X2APIC_STATE: 60,
  GET_X2APIC_STATE: 61,
  GET_HPET_CAPABILITIES: 62,
  SET_TOPOLOGY: 63,
  GET_TOPOLOGY: 64,
  ISA_ASSERT_IRQ: 80,
  ISA_DEASSERT_IRQ: 81,
  ISA_PULSE_IRQ: 82,
  ISA_SET_IRQ_TRIGGER: 83,
  ACTIVATE_CPU: 90,
  GET_CPUSET: 91,
  SUSPEND_CPU: 92,
  RESUME_CPU: 93,
  RTC_READ: 100,
  RTC_WRITE: 101,
  RTC_SETTIME: 102,
  RTC_GETTIME: 103,
  SNAPSHOT_REQ: 113,
  RESTORE_TIME: 115,
} as const;

const DIR_BITS: Readonly<Record<IoctlDir, number>> = {
  void: IOC_VOID,
  out: IOC_OUT,
  in: IOC_IN,
  inout: IOC_INOUT,
};

/** IOC_VOID / IOC_OUT / IOC_IN / IOC_INOUT for a direction name. */
export function ioctlDirBits(dir: IoctlDir): number {
  return DIR_BITS[dir];
}

/** The direction name of IOC_* bits, or undefined for another value. */
export function ioctlDirName(bits: number): IoctlDir | undefined {
  const entry = Object.entries(DIR_BITS).find(([, v]) => v === bits >>> 0);
  return entry === undefined ? undefined : (entry[0] as IoctlDir);
}

// ---------------------------------------------------------------------------------------------
// Specs: one row per request macro.

interface IoctlSpec<N extends string = string> {
  readonly name: N;
  readonly num: number;
  readonly dir: IoctlDir;
  /** null for _IO. */
  readonly struct: StructLayout | null;
  readonly compat?: string;
  readonly notes?: string;
  readonly device?: string;
}

function row<const N extends string>(
  name: N,
  num: number,
  dir: IoctlDir,
  struct: StructLayout | null,
  extra: { compat?: string; notes?: string; device?: string } = {},
): IoctlSpec<N> {
  return { name, num, dir, struct, ...extra };
}

const NUM = IocNum;

/** 13.1 (vmm_dev.h at the 13.0/13.1 revision; legacy-13.1-side.md sections 2 and 3). */
const SPECS_13 = [
  row('VM_RUN', NUM.RUN, 'inout', VM_RUN_13, { notes: 'struct vm_exit embedded (136 bytes at offset 8)' }),
  row('VM_SET_CAPABILITY', NUM.SET_CAPABILITY, 'in', VM_CAPABILITY),
  row('VM_GET_CAPABILITY', NUM.GET_CAPABILITY, 'inout', VM_CAPABILITY),
  row('VM_SUSPEND', NUM.SUSPEND, 'in', VM_SUSPEND),
  row('VM_REINIT', NUM.REINIT, 'void', null),
  row('VM_GET_GPA_PMAP', NUM.GET_GPA_PMAP, 'inout', VM_GPA_PTE),
  row('VM_GLA2GPA', NUM.GLA2GPA, 'inout', VM_GLA2GPA),
  row('VM_ALLOC_MEMSEG', NUM.ALLOC_MEMSEG, 'in', VM_MEMSEG),
  row('VM_ALLOC_MEMSEG_FBSD12', NUM.ALLOC_MEMSEG, 'in', VM_MEMSEG_FBSD12, { compat: 'COMPAT_FREEBSD12' }),
  row('VM_GET_MEMSEG', NUM.GET_MEMSEG, 'inout', VM_MEMSEG),
  row('VM_GET_MEMSEG_FBSD12', NUM.GET_MEMSEG, 'inout', VM_MEMSEG_FBSD12, { compat: 'COMPAT_FREEBSD12' }),
  row('VM_MMAP_MEMSEG', NUM.MMAP_MEMSEG, 'in', VM_MEMMAP),
  row('VM_MMAP_GETNEXT', NUM.MMAP_GETNEXT, 'inout', VM_MEMMAP),
  row('VM_GLA2GPA_NOFAULT', NUM.GLA2GPA_NOFAULT, 'inout', VM_GLA2GPA),
  row('VM_MUNMAP_MEMSEG', NUM.MUNMAP_MEMSEG, 'in', VM_MUNMAP),
  row('VM_SET_REGISTER', NUM.SET_REGISTER, 'in', VM_REGISTER),
  row('VM_GET_REGISTER', NUM.GET_REGISTER, 'inout', VM_REGISTER),
  row('VM_SET_SEGMENT_DESCRIPTOR', NUM.SET_SEGMENT_DESCRIPTOR, 'in', VM_SEG_DESC),
  row('VM_GET_SEGMENT_DESCRIPTOR', NUM.GET_SEGMENT_DESCRIPTOR, 'inout', VM_SEG_DESC),
  row('VM_SET_REGISTER_SET', NUM.SET_REGISTER_SET, 'in', VM_REGISTER_SET),
  row('VM_GET_REGISTER_SET', NUM.GET_REGISTER_SET, 'inout', VM_REGISTER_SET),
  row('VM_GET_KERNEMU_DEV', NUM.GET_KERNEMU_DEV, 'inout', VM_READWRITE_KERNEMU_DEVICE),
  row('VM_SET_KERNEMU_DEV', NUM.SET_KERNEMU_DEV, 'in', VM_READWRITE_KERNEMU_DEVICE),
  row('VM_GET_INTINFO', NUM.GET_INTINFO, 'inout', VM_INTINFO),
  row('VM_SET_INTINFO', NUM.SET_INTINFO, 'in', VM_INTINFO),
  row('VM_INJECT_EXCEPTION', NUM.INJECT_EXCEPTION, 'in', VM_EXCEPTION),
  row('VM_LAPIC_IRQ', NUM.LAPIC_IRQ, 'in', VM_LAPIC_IRQ),
  row('VM_INJECT_NMI', NUM.INJECT_NMI, 'in', VM_NMI),
  row('VM_IOAPIC_ASSERT_IRQ', NUM.IOAPIC_ASSERT_IRQ, 'in', VM_IOAPIC_IRQ),
  row('VM_IOAPIC_DEASSERT_IRQ', NUM.IOAPIC_DEASSERT_IRQ, 'in', VM_IOAPIC_IRQ),
  row('VM_IOAPIC_PULSE_IRQ', NUM.IOAPIC_PULSE_IRQ, 'in', VM_IOAPIC_IRQ),
  row('VM_LAPIC_MSI', NUM.LAPIC_MSI, 'in', VM_LAPIC_MSI),
  row('VM_LAPIC_LOCAL_IRQ', NUM.LAPIC_LOCAL_IRQ, 'in', VM_LAPIC_IRQ),
  row('VM_IOAPIC_PINCOUNT', NUM.IOAPIC_PINCOUNT, 'out', INT_ARG),
  row('VM_RESTART_INSTRUCTION', NUM.RESTART_INSTRUCTION, 'in', INT_ARG),
  row('VM_BIND_PPTDEV', NUM.BIND_PPTDEV, 'in', VM_PPTDEV),
  row('VM_UNBIND_PPTDEV', NUM.UNBIND_PPTDEV, 'in', VM_PPTDEV),
  row('VM_MAP_PPTDEV_MMIO', NUM.MAP_PPTDEV_MMIO, 'in', VM_PPTDEV_MMIO),
  row('VM_PPTDEV_MSI', NUM.PPTDEV_MSI, 'in', VM_PPTDEV_MSI),
  row('VM_PPTDEV_MSIX', NUM.PPTDEV_MSIX, 'in', VM_PPTDEV_MSIX),
  row('VM_PPTDEV_DISABLE_MSIX', NUM.PPTDEV_DISABLE_MSIX, 'in', VM_PPTDEV),
  row('VM_UNMAP_PPTDEV_MMIO', NUM.UNMAP_PPTDEV_MMIO, 'in', VM_PPTDEV_MMIO),
  row('VM_STATS', NUM.VM_STATS, 'inout', VM_STATS_13, { notes: 'struct vm_stats without index (536 bytes)' }),
  row('VM_STAT_DESC', NUM.VM_STAT_DESC, 'inout', VM_STAT_DESC),
  row('VM_SET_X2APIC_STATE', NUM.SET_X2APIC_STATE, 'in', VM_X2APIC),
  row('VM_GET_X2APIC_STATE', NUM.GET_X2APIC_STATE, 'inout', VM_X2APIC),
  row('VM_GET_HPET_CAPABILITIES', NUM.GET_HPET_CAPABILITIES, 'out', VM_HPET_CAP),
  row('VM_SET_TOPOLOGY', NUM.SET_TOPOLOGY, 'in', VM_CPU_TOPOLOGY),
  row('VM_GET_TOPOLOGY', NUM.GET_TOPOLOGY, 'out', VM_CPU_TOPOLOGY),
  row('VM_ISA_ASSERT_IRQ', NUM.ISA_ASSERT_IRQ, 'in', VM_ISA_IRQ),
  row('VM_ISA_DEASSERT_IRQ', NUM.ISA_DEASSERT_IRQ, 'in', VM_ISA_IRQ),
  row('VM_ISA_PULSE_IRQ', NUM.ISA_PULSE_IRQ, 'in', VM_ISA_IRQ),
  row('VM_ISA_SET_IRQ_TRIGGER', NUM.ISA_SET_IRQ_TRIGGER, 'in', VM_ISA_IRQ_TRIGGER),
  row('VM_ACTIVATE_CPU', NUM.ACTIVATE_CPU, 'in', VM_ACTIVATE_CPU),
  row('VM_GET_CPUS', NUM.GET_CPUSET, 'in', VM_CPUSET, {
    notes: '_IOW although the kernel writes the set through vm_cpuset.cpus; 13.1 passes cpusetsize 32',
  }),
  row('VM_SUSPEND_CPU', NUM.SUSPEND_CPU, 'in', VM_ACTIVATE_CPU),
  row('VM_RESUME_CPU', NUM.RESUME_CPU, 'in', VM_ACTIVATE_CPU),
  row('VM_RTC_READ', NUM.RTC_READ, 'inout', VM_RTC_DATA),
  row('VM_RTC_WRITE', NUM.RTC_WRITE, 'in', VM_RTC_DATA),
  row('VM_RTC_SETTIME', NUM.RTC_SETTIME, 'in', VM_RTC_TIME),
  row('VM_RTC_GETTIME', NUM.RTC_GETTIME, 'out', VM_RTC_TIME),
  row('VM_SNAPSHOT_REQ', NUM.SNAPSHOT_REQ, 'inout', VM_SNAPSHOT_META_13, {
    notes: 'BHYVE_SNAPSHOT kernels only; struct vm_snapshot_meta with the ctx pointer',
  }),
  row('VM_RESTORE_TIME', NUM.RESTORE_TIME, 'inout', INT_ARG),
] as const;

/** The ioctl names of the 13.1 ABI. */
export type Ioctl13Name = (typeof SPECS_13)[number]['name'];

/**
 * A change of an ABI relative to the one before it (`Base`: that ABI's names): a row replaced
 * (by a row of the same or a new name) or a row added after another.
 */
interface AbiChange<Base extends string = string> {
  readonly replaces?: Base;
  readonly after?: string;
  readonly spec: IoctlSpec;
}

/**
 * What 14.0 changed (sys/amd64/include/vmm_dev.h and sys/amd64/vmm/vmm_dev.c of the 14.0 code
 * base; kernel-main-side.md sections 1.3, 1.8 and 4). Everything else is identical.
 */
const ABI14_CHANGES = [
  {
    replaces: 'VM_RUN',
    // _IOW, not _IOWR: sys/amd64/include/vmm_dev.h at e17eca32 (read_file id 940066618). The
    // kernel writes the exit and the cpuset through the pointers, never the struct itself.
    spec: row('VM_RUN', NUM.RUN, 'in', VM_RUN_14, {
      notes: '_IOW; vm_exit and cpuset through pointers (e17eca32); IPI cpuset copied out only for VM_EXITCODE_IPI',
    }),
  },
  {
    after: 'VM_RUN',
    spec: row('VM_RUN_13', NUM.RUN, 'inout', VM_RUN_13_COMPAT, {
      compat: 'COMPAT_FREEBSD13',
      notes: 'the 13.1 VM_RUN; IPI dmask rebuilt as 256 bits inside the union',
    }),
  },
  {
    replaces: 'VM_STATS',
    spec: row('VM_STATS', NUM.VM_STATS, 'inout', VM_STATS_14, { notes: 'struct vm_stats with index (544 bytes)' }),
  },
  {
    after: 'VM_STATS',
    spec: row('VM_STATS_OLD', NUM.VM_STATS, 'inout', VM_STATS_OLD, {
      compat: 'COMPAT_FREEBSD13',
      notes: 'the 13.1 VM_STATS (named VM_STATS_13 in current main)',
    }),
  },
  {
    replaces: 'VM_GET_CPUS',
    spec: row('VM_GET_CPUS', NUM.GET_CPUSET, 'in', VM_CPUSET, {
      notes: 'same number as 13.1; ERANGE if cpusetsize < sizeof(cpuset_t) = 128 on 14.0-era kernels',
    }),
  },
  {
    replaces: 'VM_SNAPSHOT_REQ',
    spec: row('VM_SNAPSHOT_REQ', NUM.SNAPSHOT_REQ, 'inout', VM_SNAPSHOT_META_14, {
      notes: 'BHYVE_SNAPSHOT kernels only; struct vm_snapshot_meta without the ctx pointer',
    }),
  },
  {
    after: 'VM_SNAPSHOT_REQ',
    spec: row('VM_SNAPSHOT_REQ_OLD', NUM.SNAPSHOT_REQ, 'inout', VM_SNAPSHOT_META_OLD, {
      compat: 'COMPAT_FREEBSD13',
      notes: 'BHYVE_SNAPSHOT kernels only; the 13.1 VM_SNAPSHOT_REQ (VM_SNAPSHOT_REQ_13 in current main)',
    }),
  },
] as const satisfies readonly AbiChange<Ioctl13Name>[];

/** The ioctl names of the 14.0 ABI. */
export type Ioctl14Name = Ioctl13Name | (typeof ABI14_CHANGES)[number]['spec']['name'];

/**
 * What 15.0 and main changed relative to 14.0 (sys/dev/vmm/vmm_dev.c at 3d39856d, DEV15, read_file
 * id 1049803204; sys/amd64/vmm/vmm_dev_machdep.c, MD-A; sys/dev/vmm/vmm_dev.h, DEVH;
 * kernel-15-side.md sections 2 and 3). A `replaces` of a name that 14.0 has under another
 * compat name renames it (VM_STATS_OLD -> VM_STATS_13).
 */
const ABI15_CHANGES = [
  {
    replaces: 'VM_ALLOC_MEMSEG',
    spec: row('VM_ALLOC_MEMSEG', NUM.ALLOC_MEMSEG, 'in', VM_MEMSEG_15, {
      notes: 'guest NUMA vm_memseg (a4197ea47777): segids 0..7 sysmem, 8 bootrom, 9 framebuffer, 10 pcirom',
    }),
  },
  {
    after: 'VM_ALLOC_MEMSEG',
    spec: row('VM_ALLOC_MEMSEG_14', NUM.ALLOC_MEMSEG, 'in', VM_MEMSEG_14, {
      compat: 'COMPAT_FREEBSD14',
      notes: 'the 13.1/14.x VM_ALLOC_MEMSEG; adjust_segid adds 7 to every segid but VM_SYSMEM',
    }),
  },
  {
    replaces: 'VM_ALLOC_MEMSEG_FBSD12',
    spec: row('VM_ALLOC_MEMSEG_12', NUM.ALLOC_MEMSEG, 'in', VM_MEMSEG_12, { compat: 'COMPAT_FREEBSD12', notes: 'adjust_segid as _14' }),
  },
  {
    replaces: 'VM_GET_MEMSEG',
    spec: row('VM_GET_MEMSEG', NUM.GET_MEMSEG, 'inout', VM_MEMSEG_15, { notes: 'guest NUMA vm_memseg; the new segids' }),
  },
  {
    after: 'VM_GET_MEMSEG',
    spec: row('VM_GET_MEMSEG_14', NUM.GET_MEMSEG, 'inout', VM_MEMSEG_14, {
      compat: 'COMPAT_FREEBSD14',
      notes: 'the 13.1/14.x VM_GET_MEMSEG; adjust_segid, and the adjusted segid is copied back',
    }),
  },
  {
    replaces: 'VM_GET_MEMSEG_FBSD12',
    spec: row('VM_GET_MEMSEG_12', NUM.GET_MEMSEG, 'inout', VM_MEMSEG_12, { compat: 'COMPAT_FREEBSD12', notes: 'adjust_segid as _14' }),
  },
  {
    replaces: 'VM_MMAP_MEMSEG',
    spec: row('VM_MMAP_MEMSEG', NUM.MMAP_MEMSEG, 'in', VM_MEMMAP, { notes: 'takes the 15.0 segid: a 13.1 segid is NOT translated' }),
  },
  {
    replaces: 'VM_MMAP_GETNEXT',
    spec: row('VM_MMAP_GETNEXT', NUM.MMAP_GETNEXT, 'inout', VM_MEMMAP, { notes: 'returns the 15.0 segid' }),
  },
  {
    replaces: 'VM_GET_CPUS',
    spec: row('VM_GET_CPUS', NUM.GET_CPUSET, 'in', VM_CPUSET, {
      notes: 'relaxed size rule: ERANGE only for size < 1, > CPU_MAXSIZE/NBBY, or a set bit beyond size',
    }),
  },
  {
    replaces: 'VM_STATS_OLD',
    spec: row('VM_STATS_13', NUM.VM_STATS, 'inout', VM_STATS_13_COMPAT, { compat: 'COMPAT_FREEBSD13', notes: 'the 13.1 VM_STATS' }),
  },
  {
    replaces: 'VM_SNAPSHOT_REQ_OLD',
    spec: row('VM_SNAPSHOT_REQ_13', NUM.SNAPSHOT_REQ, 'inout', VM_SNAPSHOT_META_13_COMPAT, {
      compat: 'COMPAT_FREEBSD13',
      notes: 'BHYVE_SNAPSHOT kernels only; the 13.1 VM_SNAPSHOT_REQ',
    }),
  },
  {
    after: 'VM_RESTORE_TIME',
    spec: row('VMMCTL_VM_CREATE', 0, 'inout', VMMCTL_VM_CREATE, {
      device: VMMCTL_DEVICE,
      notes: "group 'V' on /dev/vmmctl (a97f683fe3c4); non-zero reserved words: EINVAL",
    }),
  },
  {
    after: 'VMMCTL_VM_CREATE',
    spec: row('VMMCTL_VM_DESTROY', 1, 'inout', VMMCTL_VM_DESTROY, {
      device: VMMCTL_DEVICE,
      notes: "group 'V' on /dev/vmmctl; sends VM_SUSPEND_DESTROY to the running vCPUs first",
    }),
  },
] as const satisfies readonly AbiChange<Ioctl14Name>[];

type Change15 = (typeof ABI15_CHANGES)[number];
/** The ioctl names of the 15.0 ABI: 14.0's, less the rows 15.0 renamed, plus its own. */
export type Ioctl15Name = Exclude<Ioctl14Name, Extract<Change15, { replaces: string }>['replaces']> | Change15['spec']['name'];

function applyChanges(base: readonly IoctlSpec[], changes: readonly AbiChange[]): IoctlSpec[] {
  const out: IoctlSpec[] = [];
  const place = (name: string): void => {
    for (const added of changes.filter((c) => c.after === name)) {
      out.push(added.spec);
      place(added.spec.name);
    }
  };
  for (const spec of base) {
    const replacement = changes.find((c) => c.replaces === spec.name);
    out.push(replacement ? replacement.spec : spec);
    place(spec.name);
  }
  return out;
}

function build14(): IoctlSpec[] {
  return applyChanges(SPECS_13, ABI14_CHANGES);
}

function build15(): IoctlSpec[] {
  return applyChanges(build14(), ABI15_CHANGES);
}

function toDef(spec: IoctlSpec): IoctlDef {
  const len = spec.struct === null ? 0 : spec.struct.size;
  const def: IoctlDef = {
    name: spec.name,
    num: spec.num,
    dir: spec.dir,
    struct: spec.struct === null ? '' : spec.struct.name,
    len,
    request: ioc(DIR_BITS[spec.dir], spec.device === undefined ? VMM_IOC_GROUP : VMMCTL_IOC_GROUP, spec.num, len),
    ...(spec.compat !== undefined ? { compat: spec.compat } : {}),
    ...(spec.notes !== undefined ? { notes: spec.notes } : {}),
    ...(spec.device !== undefined ? { device: spec.device } : {}),
  };
  return Object.freeze(def);
}

interface AbiTable {
  readonly defs: readonly IoctlDef[];
  readonly byRequest: ReadonlyMap<number, IoctlDef>;
  readonly byName: ReadonlyMap<string, IoctlDef>;
  readonly layouts: ReadonlyMap<string, StructLayout>;
}

function buildTable(abi: AbiName, specs: readonly IoctlSpec[]): AbiTable {
  const defs = Object.freeze(specs.map(toDef));
  const byRequest = new Map<number, IoctlDef>();
  const byName = new Map<string, IoctlDef>();
  const layouts = new Map<string, StructLayout>();
  specs.forEach((spec, i) => {
    const def = defs[i];
    if (def === undefined) return;
    const clash = byRequest.get(def.request);
    if (clash) throw new Error(`${abi}: ${def.name} and ${clash.name} share request ${hexRequest(def.request)}`);
    if (byName.has(def.name)) throw new Error(`${abi}: ioctl ${def.name} listed twice`);
    byRequest.set(def.request, def);
    byName.set(def.name, def);
    if (spec.struct !== null) layouts.set(spec.struct.name, spec.struct);
  });
  return { defs, byRequest, byName, layouts };
}

const TABLES: Readonly<Record<AbiName, AbiTable>> = {
  '13.1': buildTable('13.1', SPECS_13),
  '14.0': buildTable('14.0', build14()),
  '15.0': buildTable('15.0', build15()),
};

function tableOf(abi: AbiName): AbiTable {
  const table = TABLES[abi];
  if (table === undefined) {
    throw new Error(`unknown ABI ${JSON.stringify(abi)}: expected one of ${ABI_NAMES.join(', ')}`);
  }
  return table;
}

/** Every ioctl of an ABI in IOCNUM order (compat variants right after their native request). */
export function ioctlTable(abi: AbiName): readonly IoctlDef[] {
  return tableOf(abi).defs;
}

export function ioctlByRequest(abi: AbiName, request: number): IoctlDef | undefined {
  return tableOf(abi).byRequest.get(request >>> 0);
}

export function ioctlByName(abi: AbiName, name: string): IoctlDef | undefined {
  return tableOf(abi).byName.get(name);
}

/** The request number of a named ioctl; throws an Error naming the ABI and the ioctl if unknown. */
export function requestOf(abi: AbiName, name: string): number {
  const def = ioctlByName(abi, name);
  if (def === undefined) throw new Error(`no ioctl named ${name} in the ${abi} vmm ABI`);
  return def.request;
}

/** The argument layout an ioctl of this ABI uses (undefined for _IO and unknown names). */
export function argLayoutOf(abi: AbiName, name: string): StructLayout | undefined {
  const def = ioctlByName(abi, name);
  return def === undefined || def.struct === '' ? undefined : tableOf(abi).layouts.get(def.struct);
}

function requestMap<K extends string>(abi: AbiName): Readonly<Record<K, number>> {
  const out: Record<string, number> = {};
  for (const def of ioctlTable(abi)) out[def.name] = def.request;
  return Object.freeze(out) as Readonly<Record<K, number>>;
}

/** Every 13.1 request number by FreeBSD name: REQ13.VM_RUN === 0xC0907601. */
export const REQ13: Readonly<Record<Ioctl13Name, number>> = requestMap<Ioctl13Name>('13.1');
/** Every 14.0 request number by name: REQ14.VM_RUN === 0x80207601, REQ14.VM_RUN_13 === 0xC0907601. */
export const REQ14: Readonly<Record<Ioctl14Name, number>> = requestMap<Ioctl14Name>('14.0');

/** Every 15.0/main request number by name: REQ15.VM_ALLOC_MEMSEG === 0x8038760E. */
export const REQ15: Readonly<Record<Ioctl15Name, number>> = requestMap<Ioctl15Name>('15.0');

/** How a 14.0 entry relates to 13.1, for tables and diagnostics. */
export interface AbiComparison {
  /** True when 13.1 has no request with this name, or has it with another number. */
  readonly differsFrom13: boolean;
  /** The 13.1 request of the same name, when it exists and differs. */
  readonly request13?: number;
  /** The 13.1 ioctl with the same request number under another name (VM_RUN_13 -> VM_RUN). */
  readonly same13As?: string;
}

export function compareWith13(def: IoctlDef): AbiComparison {
  const old = ioctlByName('13.1', def.name);
  const sameNumber = ioctlByRequest('13.1', def.request);
  const differsFrom13 = old === undefined || old.request !== def.request;
  return {
    differsFrom13,
    ...(old !== undefined && old.request !== def.request ? { request13: old.request } : {}),
    ...(sameNumber !== undefined && sameNumber.name !== def.name ? { same13As: sameNumber.name } : {}),
  };
}
