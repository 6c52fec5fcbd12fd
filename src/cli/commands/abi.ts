// `vmm-compat abi`: prints the ioctl table of one ABI (src/abi/ioctls.ts) as an aligned table or
// as JSON. For 14.0 each entry says whether it differs from 13.1.
import { Command, Option } from 'commander';
import { VM_MAX_MEMMAPS_15, VM_MAX_MEMSEGS_15, VM_MAXSYSMEM_15, VmMemSeg, VmMemSeg15 } from '../../abi/enums';
import { ABI_NAMES, compareWith13, ioctlTable, isAbiName, type AbiName, type IoctlDef } from '../../abi/ioctls';
import { hexRequest } from '../../abi/ioccom';

/** One ioctl as printed by `abi --json`. */
export interface AbiJsonEntry {
  name: string;
  request: string;
  len: number;
  dir: IoctlDef['dir'];
  num: number;
  struct: string;
  compat?: string;
  notes?: string;
  /** 14.0 only. */
  differsFrom13?: boolean;
  /** 14.0 only: the 13.1 request of the same name, when it differs. */
  request13?: string;
  /** 14.0 only: the 13.1 ioctl that has this request number under another name. */
  same13As?: string;
  /** The device node the request is for when it is not /dev/vmm/NAME (15.0: /dev/vmmctl). */
  device?: string;
}

export function abiJson(abi: AbiName): AbiJsonEntry[] {
  return ioctlTable(abi).map((def) => {
    const entry: AbiJsonEntry = {
      name: def.name,
      request: hexRequest(def.request),
      len: def.len,
      dir: def.dir,
      num: def.num,
      struct: def.struct,
    };
    if (def.compat !== undefined) entry.compat = def.compat;
    if (def.notes !== undefined) entry.notes = def.notes;
    if (def.device !== undefined) entry.device = def.device;
    if (abi !== '13.1') {
      const cmp = compareWith13(def);
      entry.differsFrom13 = cmp.differsFrom13;
      if (cmp.request13 !== undefined) entry.request13 = hexRequest(cmp.request13);
      if (cmp.same13As !== undefined) entry.same13As = cmp.same13As;
    }
    return entry;
  });
}

/**
 * The memory segment ids of an ABI: lib/libvmmapi/vmmapi.h for 13.1 and 14.x, sys/dev/vmm/vmm_mem.h
 * for 15.0/main (guest NUMA: sysmem 0..7). VM_MAX_MEMSEGS follows the lab's kernel models
 * (docs/lab-kernel.md) for 13.1/14.0 and vmm_mem.h for 15.0.
 */
export function memSegIds(abi: AbiName): Record<string, number> {
  if (abi === '15.0') {
    return {
      VM_SYSMEM: VmMemSeg15.SYSMEM,
      VM_MAXSYSMEM: VM_MAXSYSMEM_15,
      VM_BOOTROM: VmMemSeg15.BOOTROM,
      VM_FRAMEBUFFER: VmMemSeg15.FRAMEBUFFER,
      VM_PCIROM: VmMemSeg15.PCIROM,
      VM_MAX_MEMSEGS: VM_MAX_MEMSEGS_15,
      VM_MAX_MEMMAPS: VM_MAX_MEMMAPS_15,
    };
  }
  return { VM_SYSMEM: VmMemSeg.SYSMEM, VM_BOOTROM: VmMemSeg.BOOTROM, VM_FRAMEBUFFER: VmMemSeg.FRAMEBUFFER, VM_PCIROM: VmMemSeg.PCIROM };
}

export function abiText(abi: AbiName): string {
  const header = ['NAME', 'REQUEST', 'DIR', 'NUM', 'LEN', 'STRUCT', 'NOTES'];
  const rows = abiJson(abi).map((e) => {
    const notes: string[] = [];
    if (e.compat !== undefined) notes.push(e.compat);
    if (e.request13 !== undefined) notes.push(`13.1: ${e.request13}`);
    if (e.same13As !== undefined) notes.push(`= 13.1 ${e.same13As}`);
    if (e.differsFrom13 === true && e.request13 === undefined && e.same13As === undefined) notes.push('not in 13.1');
    return [e.name, e.request, e.dir, String(e.num), String(e.len), e.struct === '' ? '-' : e.struct, notes.join('; ')];
  });
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const format = (cells: readonly string[]): string =>
    cells
      .map((c, i) => (i === 3 || i === 4 ? c.padStart(widths[i] ?? 0) : c.padEnd(widths[i] ?? 0)))
      .join('  ')
      .trimEnd();
  const title = `vmm ioctl ABI ${abi} (amd64, group 'v'${abi === '15.0' ? "; VMMCTL_* are group 'V' on /dev/vmmctl" : ''})`;
  const segids = Object.entries(memSegIds(abi)).map(([k, v]) => `${k}=${v}`).join(' ');
  return [title, '', format(header), ...rows.map(format), '', `memory segment ids: ${segids}`, ''].join('\n');
}

export function registerAbiCommand(program: Command): void {
  program
    .command('abi')
    .description('print the vmm ioctl table of a FreeBSD ABI (request numbers, sizes, structs)')
    .addOption(new Option('--abi <abi>', `ABI to print (${ABI_NAMES.join(' or ')})`).default('13.1'))
    .option('--json', 'print a JSON array, one object per ioctl')
    .option('--segids', 'print the memory segment ids of the ABI instead (VM_SYSMEM, VM_BOOTROM, ...)')
    .action((opts: { abi: string; json?: boolean; segids?: boolean }) => {
      if (!isAbiName(opts.abi)) {
        process.stderr.write(
          `vmm-compat abi: unknown ABI ${JSON.stringify(opts.abi)}; accepted values: ${ABI_NAMES.join(', ')}\n`,
        );
        process.exitCode = 2;
        return;
      }
      if (opts.segids === true) {
        const ids = memSegIds(opts.abi);
        if (opts.json === true) process.stdout.write(`${JSON.stringify(ids, null, 2)}\n`);
        else process.stdout.write(Object.entries(ids).map(([k, v]) => `${k.padEnd(16)} ${v}`).join('\n') + '\n');
        return;
      }
      if (opts.json === true) process.stdout.write(`${JSON.stringify(abiJson(opts.abi), null, 2)}\n`);
      else process.stdout.write(abiText(opts.abi));
    });
}
