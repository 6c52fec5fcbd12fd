// The vmm.ko generations the lab models, and the facts that differ between them.
// Everything here is data; the code that acts on it cites the FreeBSD function it models.
// Sources: shared/reference/kernel-main-side.md (K13, K13v, KBUG, KFIX, K14 tags),
// kernel-15-side.md (DEV15, MEMH, MEMC) and legacy-13.1-side.md sections 2-5.

import type { AbiName } from '../../abi/ioctls';
import { CPUSET_BYTES_13, CPUSET_BYTES_14 } from '../../abi/cpuset';
import { VM_CAP_MAX_13, VM_MAX_MEMMAPS_15, VM_MAX_MEMSEGS_15, VmmConst, VmSuspendHow, VmSuspendHow15 } from '../../abi/enums';

export const KERNEL_MODEL_VARIANTS = ['legacy13', 'window', 'fixed13', 'fixed14', 'main15'] as const;
export type KernelVariant = (typeof KERNEL_MODEL_VARIANTS)[number];

export function isKernelModelVariant(value: string): value is KernelVariant {
  return (KERNEL_MODEL_VARIANTS as readonly string[]).includes(value);
}

/** How the ICR handler treats INIT and STARTUP IPIs (vlapic.c vlapic_icrlo_write_handler). */
export type ApStartup =
  /** K13v: per-vlapic boot_state BS_INIT -> BS_SIPI -> BS_RUNNING, only vCPU 0 starts APs. */
  | 'boot-state'
  /** KBUG (7c326ab5): VM_EXITCODE_IPI carries the active-only dmask; SPINUP_AP vcpu = CPU_FFS. */
  | 'ipi-exit-7c326ab5'
  /** KFIX (b265a2e0): the compat path's ipimask; SPINUP_AP vcpu = CPU_FFS - 1. */
  | 'ipi-exit-b265a2e0';

/** Which struct vm_run the native VM_RUN request takes. */
export type VmRunAbi =
  /** 144 bytes, vm_exit embedded (13.1 and early-2023 main, KH13/KH23 vmm_dev.h). */
  | 'embedded-exit'
  /** 32 bytes, vm_exit and cpuset through pointers (e17eca32; 14.0), VM_RUN_13 under COMPAT_FREEBSD13. */
  | 'exit-pointer';

export interface VariantRules {
  readonly variant: KernelVariant;
  /** The ioctl table the kernel's request numbers come from. */
  readonly abi: AbiName;
  readonly vmRunAbi: VmRunAbi;
  /** vm_alloc_vcpu on first use (98568a005a19) instead of K13's static vcpu[VM_MAXCPU]. */
  readonly lazyVcpus: boolean;
  /** K13 vm_set_topology: EINVAL if maxcpus != 0. Newer kernels ignore maxcpus. */
  readonly topologyRejectsMaxcpus: boolean;
  /** VM_CAP_MAX: 8 in 13.1 (no IPI_EXIT), 9 once VM_CAP_IPI_EXIT exists (0bda8d3e9f7a). */
  readonly capMax: number;
  readonly apStartup: ApStartup;
  /**
   * hw.vmm.maxcpu exists (vmm_init with vm_maxcpu; K14, ee98f99d7a68): its default is the host's
   * CPU count (mp_ncpus). 13.1 has the compile-time VM_MAXCPU (16) only, whatever the host.
   */
  readonly maxcpuSysctl: boolean;
  /** vm->maxcpus fixed at compile time (legacy13: VM_MAXCPU 16); null where hw.vmm.maxcpu exists. */
  readonly compileTimeMaxcpu: number | null;
  /** sizeof(cpuset_t) in the kernel (MAXCPU / 8). */
  readonly defaultKernelCpusetBytes: number;
  /** CPU_MAXSIZE / NBBY: the VM_GET_CPUS upper bound (vmm_dev.c). */
  readonly cpuMaxsizeBytes: number;
  /** VM_MAX_MEMSEGS (vmm.c). */
  readonly maxMemsegs: number;
  /**
   * kern.osreldate (__FreeBSD_version) the lab reports: 13.1-RELEASE; a 14-CURRENT from the
   * 7c326ab5..b265a2e0 window (a representative value, not one read off that build); 14.0-RELEASE.
   */
  readonly osreldate: number;
  /**
   * The memory-segment ABI: '13' = 32-byte vm_memseg, segids 0 sysmem / 1 bootrom / 2
   * framebuffer (vmmapi.h); '15' = the guest-NUMA vm_memseg (56 bytes) with sysmem 0..7,
   * bootrom 8, framebuffer 9, pcirom 10, and the 32-byte form only as VM_ALLOC/GET_MEMSEG_14
   * under COMPAT_FREEBSD14 with adjust_segid (sys/dev/vmm/vmm_dev.c, vmm_mem.h; a4197ea47777).
   */
  readonly memsegAbi: '13' | '15';
  /** VM_MAX_MEMMAPS: 8 before the NUMA change, 2 * VM_MAX_MEMSEGS (22) after it (vmm_mem.h). */
  readonly maxMemmaps: number;
  /**
   * VM_GET_CPUS size rule: 'strict' = ERANGE if cpusetsize < sizeof(cpuset_t) or >
   * CPU_MAXSIZE/NBBY (KFIX/K14 vmm_dev.c); 'relaxed' = ERANGE only for size < 1, >
   * CPU_MAXSIZE/NBBY or a set bit beyond size (sys/dev/vmm/vmm_dev.c, DEV15).
   */
  readonly getCpusRule: 'strict' | 'relaxed';
  /** /dev/vmmctl with VMMCTL_VM_CREATE/DESTROY (a97f683fe3c4, D47028). */
  readonly vmmctl: boolean;
  /**
   * A destroy (hw.vmm.destroy, VMMCTL_VM_DESTROY) first calls vm_suspend(VM_SUSPEND_DESTROY)
   * (vmmdev_lookup_and_destroy, DEV15); the kernels before it tear the VM down under the vCPUs.
   */
  readonly suspendDestroy: boolean;
  /** enum vm_suspend_how's VM_SUSPEND_LAST: 5, or 6 once VM_SUSPEND_DESTROY (5 on amd64, inferred) exists. */
  readonly suspendLast: number;
}

/** 15.0-RELEASE's __FreeBSD_version (kernel-15-side.md section 8; not read off releng/15.0 param.h). */
export const OSRELDATE_15_0 = 1500068;
/** The first main (16-CURRENT) value after stable/15 branched (8b4e4c273730, porters handbook). */
export const OSRELDATE_16_CURRENT = 1600000;

/** The memory and destroy rules every kernel before the guest-NUMA change shares. */
const OLD_MEMORY = {
  memsegAbi: '13',
  maxMemmaps: 8,
  getCpusRule: 'strict',
  vmmctl: false,
  suspendDestroy: false,
  suspendLast: VmSuspendHow.LAST,
} as const;

const RULES: Readonly<Record<KernelVariant, VariantRules>> = {
  legacy13: {
    variant: 'legacy13',
    abi: '13.1',
    vmRunAbi: 'embedded-exit',
    lazyVcpus: false,
    topologyRejectsMaxcpus: true,
    capMax: VM_CAP_MAX_13,
    apStartup: 'boot-state',
    maxcpuSysctl: false,
    compileTimeMaxcpu: VmmConst.VM_MAXCPU_13,
    defaultKernelCpusetBytes: CPUSET_BYTES_13,
    cpuMaxsizeBytes: CPUSET_BYTES_13,
    maxMemsegs: 3,
    osreldate: 1301000,
    ...OLD_MEMORY,
  },
  window: {
    variant: 'window',
    abi: '14.0',
    vmRunAbi: 'embedded-exit',
    lazyVcpus: true,
    topologyRejectsMaxcpus: false,
    capMax: VM_CAP_MAX_13 + 1,
    apStartup: 'ipi-exit-7c326ab5',
    maxcpuSysctl: true,
    compileTimeMaxcpu: null,
    defaultKernelCpusetBytes: CPUSET_BYTES_13,
    cpuMaxsizeBytes: CPUSET_BYTES_13,
    maxMemsegs: 3,
    osreldate: 1400076,
    ...OLD_MEMORY,
  },
  // stable/13 from b265a2e0's cherry-pick 577a666c (13.2 .. 13.5): the November 2022 vmm series
  // (lazy vCPUs 98568a005a19, hw.vmm.maxcpu from 3e02f8809aec) and the AP start-up fix, but
  // the 144-byte VM_RUN stays native (e17eca32 is 14-only) and MAXCPU stays 256, so the
  // kernel's cpuset_t and CPU_MAXSIZE/NBBY are both 32 bytes: a 128-byte VM_GET_CPUS is ERANGE.
  fixed13: {
    variant: 'fixed13',
    abi: '14.0',
    vmRunAbi: 'embedded-exit',
    lazyVcpus: true,
    topologyRejectsMaxcpus: false,
    capMax: VM_CAP_MAX_13 + 1,
    apStartup: 'ipi-exit-b265a2e0',
    maxcpuSysctl: true,
    compileTimeMaxcpu: null,
    defaultKernelCpusetBytes: CPUSET_BYTES_13,
    cpuMaxsizeBytes: CPUSET_BYTES_13,
    maxMemsegs: 4,
    osreldate: 1305000,
    ...OLD_MEMORY,
  },
  fixed14: {
    variant: 'fixed14',
    abi: '14.0',
    vmRunAbi: 'exit-pointer',
    lazyVcpus: true,
    topologyRejectsMaxcpus: false,
    capMax: VM_CAP_MAX_13 + 1,
    apStartup: 'ipi-exit-b265a2e0',
    maxcpuSysctl: true,
    compileTimeMaxcpu: null,
    defaultKernelCpusetBytes: CPUSET_BYTES_14,
    cpuMaxsizeBytes: CPUSET_BYTES_14,
    maxMemsegs: 4,
    osreldate: 1400097,
    ...OLD_MEMORY,
  },
  // 15.0-RELEASE and main (16-CURRENT): sys/dev/vmm/vmm_dev.c at 3d39856d (DEV15), vmm_mem.[ch]
  // at 09fa9c6f (MEMH, MEMC). AP start-up as fixed14 (the compat path is not under any option).
  main15: {
    variant: 'main15',
    abi: '15.0',
    vmRunAbi: 'exit-pointer',
    lazyVcpus: true,
    topologyRejectsMaxcpus: false,
    capMax: VM_CAP_MAX_13 + 1,
    apStartup: 'ipi-exit-b265a2e0',
    maxcpuSysctl: true,
    compileTimeMaxcpu: null,
    defaultKernelCpusetBytes: CPUSET_BYTES_14,
    cpuMaxsizeBytes: CPUSET_BYTES_14,
    maxMemsegs: VM_MAX_MEMSEGS_15,
    osreldate: OSRELDATE_15_0,
    memsegAbi: '15',
    maxMemmaps: VM_MAX_MEMMAPS_15,
    getCpusRule: 'relaxed',
    vmmctl: true,
    suspendDestroy: true,
    suspendLast: VmSuspendHow15.LAST,
  },
};

export function variantRules(variant: KernelVariant): VariantRules {
  return RULES[variant];
}

/** The model's configuration once the start options are resolved. */
export interface KernelConfig {
  readonly rules: VariantRules;
  /** options COMPAT_FREEBSD13: VM_RUN_13 and VM_STATS_OLD on 14.0-ABI kernels. */
  readonly compatFreebsd13: boolean;
  /** options COMPAT_FREEBSD14: VM_ALLOC_MEMSEG_14 / VM_GET_MEMSEG_14 on main15. */
  readonly compatFreebsd14: boolean;
  /** kern.osreldate the model reports (rules.osreldate unless the lab sets another). */
  readonly osreldate: number;
  readonly kernelCpusetBytes: number;
  /** CPU_MAXSIZE / NBBY, never below kernelCpusetBytes. */
  readonly cpuMaxsizeBytes: number;
  /** The host's CPU count (mp_ncpus) the model stands for. */
  readonly hostCpus: number;
  /** hw.vmm.maxcpu (K14 vm_maxcpu) or K13's VM_MAXCPU: vm->maxcpus of every VM. */
  readonly maxcpu: number;
  /** Guest instructions per slice before the vCPU yields to the event loop. */
  readonly sliceInstructions: number;
  /**
   * Lab-only: every VM creation fails with this errno (EPERM: a caller without the privilege to
   * create VMs, vmm_dev.c vmm_priv_check), so that a test can take the probe VM away.
   */
  readonly refuseVmCreate: 'EPERM' | null;
}

/** vmm.h VM_MAXCPU in K14: MIN(0xffff - 1, CPU_SETSIZE); hw.vmm.maxcpu is clamped to it. */
export const VM_MAXCPU_LIMIT = 0xfffe;
