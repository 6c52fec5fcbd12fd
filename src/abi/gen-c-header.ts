// Writes native-bindings/include/vmm_abi_gen.h from the tables in src/abi, so that the C parts
// and the TypeScript parts cannot disagree on a request number, a size, an offset or an enum
// value. Run as `node dist/src/abi/gen-c-header.js <out.h>` (scripts/build-native.js does);
// `-` writes to stdout. The names are fixed by docs/internals.md section 3.

import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  CpusetWhich,
  VM_BOOTROM_MAIN15,
  VM_MAX_MEMSEGS_15,
  VM_MAXSYSMEM_15,
  VmMemSeg15,
  VmSuspendHow15,
  VM_CAP_MAX_13,
  VM_EXITCODE_MAX_13,
  VM_EXITCODE_MAX_14,
  VmCap,
  VmExitcode,
  VmIntrTrigger,
  VmMemSeg,
  VmmConst,
  VmReg,
  VmSuspendHow,
  X2apicState,
} from './enums';
import { CPUSET_BYTES_13, CPUSET_BYTES_14 } from './cpuset';
import { IOC_DIRMASK, IOC_IN, IOC_INOUT, IOC_OUT, IOC_VOID, IOCPARM_MASK, IOCPARM_SHIFT, hexRequest } from './ioccom';
import { ABI_NAMES, ioctlTable, type AbiName } from './ioctls';
import { structTable, VM_EXIT_U_BYTES } from './structs';

/** One #define of the header. */
export interface CDefine {
  readonly name: string;
  /** The C replacement text, e.g. '0xC0907601UL' or '144'. */
  readonly text: string;
  /** The value the C compiler must see (for tests). */
  readonly value: number;
  /** Wrapped in #ifndef (names that system headers may already define). */
  readonly ifndef?: boolean;
}

/** A titled group of defines, optionally under a feature guard. */
export interface CDefineGroup {
  readonly title: string;
  readonly guard?: string;
  readonly defines: readonly CDefine[];
}

/** Guard that leaves out the FreeBSD-named enum constants, for C files that include machine/vmm.h. */
export const ENUM_GUARD = 'VMM_ABI_GEN_NO_FREEBSD_NAMES';

function abiPrefix(abi: AbiName): string {
  return abi === '13.1' ? 'ABI13' : abi === '14.0' ? 'ABI14' : 'ABI15';
}

function cIdent(name: string): string {
  return name.toUpperCase().replace(/[^A-Z0-9_]/g, '_');
}

function num(name: string, value: number): CDefine {
  return { name, text: String(value), value };
}

function enumDefines(prefix: string, table: Readonly<Record<string, number>>, rename?: (key: string) => string): CDefine[] {
  return Object.entries(table).map(([key, value]) => num(rename ? rename(key) : `${prefix}${key}`, value));
}

/** Every group of the header, in order. */
export function headerDefines(): CDefineGroup[] {
  const groups: CDefineGroup[] = [];
  groups.push({
    title: 'ioctl encoding (sys/sys/ioccom.h)',
    defines: [
      { ...num('IOCPARM_SHIFT', IOCPARM_SHIFT), ifndef: true },
      { name: 'IOCPARM_MASK', text: '0x1fff', value: IOCPARM_MASK, ifndef: true },
      { name: 'IOC_VOID', text: `${hexRequest(IOC_VOID)}UL`, value: IOC_VOID, ifndef: true },
      { name: 'IOC_OUT', text: `${hexRequest(IOC_OUT)}UL`, value: IOC_OUT, ifndef: true },
      { name: 'IOC_IN', text: `${hexRequest(IOC_IN)}UL`, value: IOC_IN, ifndef: true },
      { name: 'IOC_INOUT', text: `${hexRequest(IOC_INOUT)}UL`, value: IOC_INOUT, ifndef: true },
      { name: 'IOC_DIRMASK', text: `${hexRequest(IOC_DIRMASK)}UL`, value: IOC_DIRMASK, ifndef: true },
    ],
  });
  for (const abi of ABI_NAMES) {
    const p = abiPrefix(abi);
    groups.push({
      title: `${abi} request numbers (sys/amd64/include/vmm_dev.h${abi === '14.0' ? '; COMPAT_FREEBSD13 entries from sys/amd64/vmm/vmm_dev.c' : abi === '15.0' ? ', sys/dev/vmm/vmm_dev.[ch], sys/amd64/vmm/vmm_dev_machdep.c' : ''})`,
      defines: ioctlTable(abi).map((def) => ({
        name: `${p}_${def.name}`,
        text: `${hexRequest(def.request)}UL`,
        value: def.request,
      })),
    });
    const layout: CDefine[] = [];
    for (const s of structTable(abi)) {
      const sname = cIdent(s.name);
      layout.push(num(`${p}_SIZEOF_${sname}`, s.size));
      for (const f of s.fields) layout.push(num(`${p}_OFFSETOF_${sname}_${cIdent(f.name)}`, f.offset));
    }
    groups.push({
      title: `${abi} struct sizes and field offsets (LP64 amd64; VM_EXIT_<member> offsets are relative to vm_exit.u)`,
      defines: layout,
    });
  }
  groups.push({
    title: 'sizes and limits',
    defines: [
      num('ABI13_CPUSET_BYTES', CPUSET_BYTES_13),
      num('ABI14_CPUSET_BYTES', CPUSET_BYTES_14),
      num('ABI13_VM_MAXCPU', VmmConst.VM_MAXCPU_13),
      num('ABI_VM_EXIT_U_BYTES', VM_EXIT_U_BYTES),
    ],
  });
  groups.push({
    title: 'enums and constants with FreeBSD names (sys/amd64/include/vmm.h, vmm_dev.h, lib/libvmmapi/vmmapi.h)',
    guard: ENUM_GUARD,
    defines: [
      ...enumDefines('VM_EXITCODE_', VmExitcode),
      num('VM_EXITCODE_MAX13', VM_EXITCODE_MAX_13),
      num('VM_EXITCODE_MAX14', VM_EXITCODE_MAX_14),
      ...enumDefines('VM_SUSPEND_', VmSuspendHow),
      ...enumDefines('VM_CAP_', VmCap),
      num('VM_CAP_MAX13', VM_CAP_MAX_13),
      ...enumDefines('VM_REG_GUEST_', VmReg, (key) => (key === 'LAST' ? 'VM_REG_LAST' : `VM_REG_GUEST_${key}`)),
      num('VM_ACTIVE_CPUS', CpusetWhich.ACTIVE),
      num('VM_SUSPENDED_CPUS', CpusetWhich.SUSPENDED),
      num('VM_DEBUG_CPUS', CpusetWhich.DEBUG),
      ...enumDefines('X2APIC_', X2apicState),
      ...enumDefines('', VmIntrTrigger, (key) => `${key}_TRIGGER`),
      num('VM_SYSMEM', VmMemSeg.SYSMEM),
      num('VM_BOOTROM', VmMemSeg.BOOTROM),
      num('VM_FRAMEBUFFER', VmMemSeg.FRAMEBUFFER),
      num('VM_PCIROM', VmMemSeg.PCIROM),
      num('VM_BOOTROM_MAIN15', VM_BOOTROM_MAIN15),
      num('VM15_SYSMEM', VmMemSeg15.SYSMEM),
      num('VM15_MAXSYSMEM', VM_MAXSYSMEM_15),
      num('VM15_BOOTROM', VmMemSeg15.BOOTROM),
      num('VM15_FRAMEBUFFER', VmMemSeg15.FRAMEBUFFER),
      num('VM15_PCIROM', VmMemSeg15.PCIROM),
      num('VM15_MAX_MEMSEGS', VM_MAX_MEMSEGS_15),
      num('VM15_SUSPEND_DESTROY', VmSuspendHow15.DESTROY),
      num('MAX_VM_STATS', VmmConst.MAX_VM_STATS),
      num('VM_MAX_SUFFIXLEN', VmmConst.VM_MAX_SUFFIXLEN),
      num('VM_MAX_NAMELEN', VmmConst.VM_MAX_NAMELEN),
      num('VM_MIN_NAMELEN', VmmConst.VM_MIN_NAMELEN),
      { name: 'VM_MEMMAP_F_WIRED', text: '0x01', value: VmmConst.VM_MEMMAP_F_WIRED },
      { name: 'VM_MEMMAP_F_IOMMU', text: '0x02', value: VmmConst.VM_MEMMAP_F_IOMMU },
    ],
  });
  return groups;
}

/** Every define of the header, flattened. */
export function allHeaderDefines(): CDefine[] {
  return headerDefines().flatMap((g) => [...g.defines]);
}

/** The header text. */
export function renderCHeader(): string {
  const groups = headerDefines();
  const seen = new Set<string>();
  const lines: string[] = [
    '/*',
    ' * vmm_abi_gen.h: the vmm ioctl ABI of FreeBSD 13.1 and 14.0 (amd64) as C constants.',
    ' *',
    ' * Generated by src/abi/gen-c-header.ts from the tables in src/abi/; do not edit.',
    ' * See docs/abi.md. ABI13_* are the 13.1 numbers, ABI14_* the 14.0 ones; struct offsets are',
    ` * in bytes. Define ${ENUM_GUARD} before including this file in C code that`,
    ' * also includes <machine/vmm.h> or <machine/vmm_dev.h>: the enum names below are FreeBSD\'s.',
    ' */',
    '#ifndef VMM_ABI_GEN_H',
    '#define VMM_ABI_GEN_H',
  ];
  for (const group of groups) {
    lines.push('', `/* ${group.title} */`);
    if (group.guard) lines.push(`#ifndef ${group.guard}`);
    for (const d of group.defines) {
      if (seen.has(d.name)) throw new Error(`gen-c-header: ${d.name} defined twice`);
      seen.add(d.name);
      if (d.ifndef) lines.push(`#ifndef ${d.name}`, `#define ${d.name} ${d.text}`, '#endif');
      else lines.push(`#define ${d.name} ${d.text}`);
    }
    if (group.guard) lines.push(`#endif /* !${group.guard} */`);
  }
  lines.push('', '#endif /* !VMM_ABI_GEN_H */', '');
  return lines.join('\n');
}

/** Writes the header atomically (temporary file + rename); creates the directory. */
export function writeCHeader(outPath: string): void {
  const text = renderCHeader();
  fs.mkdirSync(path.dirname(outPath), { recursive: true });
  const tmp = `${outPath}.${process.pid}.tmp`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, outPath);
}

function main(argv: readonly string[]): number {
  const out = argv[0];
  if (out === undefined || argv.length > 1) {
    process.stderr.write('usage: gen-c-header <out.h | ->\n');
    return 2;
  }
  if (out === '-') process.stdout.write(renderCHeader());
  else writeCHeader(out);
  return 0;
}

if (require.main === module) {
  process.exitCode = main(process.argv.slice(2));
}
