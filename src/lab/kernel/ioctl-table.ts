// The model's ioctl handlers in a table keyed by request number (the kernel's switch in
// vmmdev_ioctl, as bhyve's vmexit_handlers[] is keyed by exit code). The request numbers come
// from the ABI tables of src/abi; which of them a kernel generation accepts is decided here:
//
//   legacy13  the 13.1 table; VM_RUN is the 144-byte one.
//   window    the 14.0 table minus the 32-byte VM_RUN, which did not exist yet: early-2023
//             main's native VM_RUN is the 144-byte request (KH23 vmm_dev.h).
//   fixed13   as window (stable/13 keeps the 144-byte VM_RUN native).
//   fixed14   the 14.0 table; VM_RUN is the 32-byte one; VM_RUN_13 and VM_STATS_OLD only with
//             options COMPAT_FREEBSD13 (otherwise ENOTTY, as for any unknown request).
//   main15    the 15.0 table: the 56-byte VM_ALLOC/GET_MEMSEG natively, the 32-byte ones only as
//             VM_ALLOC/GET_MEMSEG_14 under COMPAT_FREEBSD14 (sys/dev/vmm/vmm_dev.c), VM_RUN_13 and
//             VM_STATS_13 under COMPAT_FREEBSD13. The /dev/vmmctl requests are not /dev/vmm/NAME's.
//
// Requests of other kernel options (COMPAT_FREEBSD12 memsegs, BHYVE_SNAPSHOT) are not accepted.

import { ioctlTable, type AbiName, type IoctlDef } from '../../abi/ioctls';
import { CPUSET_IOCTLS } from './ioctls-cpus';
import { MEMORY_IOCTLS } from './ioctls-memory';
import { runEmbeddedExit, runExitPointer } from './ioctls-run';
import { VCPU_STATE_IOCTLS } from './ioctls-vcpu';
import { VM_IOCTLS } from './ioctls-vm';
import type { IoctlHandler } from './ioctl-types';
import type { KernelConfig } from './variant';

const COMPAT_FREEBSD13 = 'COMPAT_FREEBSD13';
const COMPAT_FREEBSD14 = 'COMPAT_FREEBSD14';
/**
 * Rows of an ABI table served by a handler of another name: 15.0's VM_ALLOC/GET_MEMSEG are the
 * 56-byte guest-NUMA requests (the 32-byte handlers keep the old names), and its VM_STATS_13 is
 * 14.0's VM_STATS_OLD.
 */
const HANDLER_ALIASES: Readonly<Record<AbiName, Readonly<Record<string, string>>>> = {
  '13.1': {},
  '14.0': {},
  '15.0': { VM_ALLOC_MEMSEG: 'VM_ALLOC_MEMSEG_15', VM_GET_MEMSEG: 'VM_GET_MEMSEG_15', VM_STATS_13: 'VM_STATS_OLD' },
};

/** Handlers by FreeBSD ioctl name, VM_RUN excepted (it depends on the kernel's ABI). */
const HANDLERS_BY_NAME: Readonly<Record<string, IoctlHandler>> = {
  ...VCPU_STATE_IOCTLS,
  ...CPUSET_IOCTLS,
  ...VM_IOCTLS,
  ...MEMORY_IOCTLS,
};

export interface IoctlEntry {
  readonly def: IoctlDef;
  readonly handler: IoctlHandler;
}

function handlerFor(def: IoctlDef, config: KernelConfig): IoctlHandler | undefined {
  const embeddedRun = config.rules.vmRunAbi === 'embedded-exit';
  switch (def.name) {
    case 'VM_RUN':
      // On window the 14.0 table's 32-byte VM_RUN is from the future (e17eca32).
      if (config.rules.abi === '13.1') return runEmbeddedExit;
      return embeddedRun ? undefined : runExitPointer;
    case 'VM_RUN_13':
      if (embeddedRun) return runEmbeddedExit; // early-2023 main: this number is the native VM_RUN
      return config.compatFreebsd13 ? runEmbeddedExit : undefined;
    default: {
      if (def.device !== undefined) return undefined; // /dev/vmmctl (vmmctl.ts), not a VM's device
      const handler = HANDLERS_BY_NAME[HANDLER_ALIASES[config.rules.abi][def.name] ?? def.name];
      if (def.compat === COMPAT_FREEBSD13) return config.compatFreebsd13 ? handler : undefined;
      if (def.compat === COMPAT_FREEBSD14) return config.compatFreebsd14 ? handler : undefined;
      if (def.compat !== undefined) return undefined;
      return handler;
    }
  }
}

/** The request -> handler table of one kernel configuration. */
export function buildIoctlTable(config: KernelConfig): ReadonlyMap<number, IoctlEntry> {
  const table = new Map<number, IoctlEntry>();
  for (const def of ioctlTable(config.rules.abi)) {
    const handler = handlerFor(def, config);
    if (handler !== undefined) table.set(def.request, { def, handler });
  }
  return table;
}

/** Names of the ioctls the model accepts in a configuration (docs and tests). */
export function acceptedIoctlNames(config: KernelConfig): string[] {
  return [...buildIoctlTable(config).values()].map((e) => e.def.name);
}
