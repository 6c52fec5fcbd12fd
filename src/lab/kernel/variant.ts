// The three vmm.ko generations the lab models, and the facts that differ between them.
// Everything here is data; the code that acts on it cites the FreeBSD function it models.
// Sources: shared/reference/kernel-main-side.md (K13, K13v, KBUG, KFIX, K14 tags) and
// legacy-13.1-side.md sections 2-5.

import type { AbiName } from '../../abi/ioctls';
import { CPUSET_BYTES_13, CPUSET_BYTES_14 } from '../../abi/cpuset';
import { VM_CAP_MAX_13, VmmConst } from '../../abi/enums';

export const KERNEL_MODEL_VARIANTS = ['legacy13', 'window', 'fixed14'] as const;
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
}

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
  readonly kernelCpusetBytes: number;
  /** CPU_MAXSIZE / NBBY, never below kernelCpusetBytes. */
  readonly cpuMaxsizeBytes: number;
  /** The host's CPU count (mp_ncpus) the model stands for. */
  readonly hostCpus: number;
  /** hw.vmm.maxcpu (K14 vm_maxcpu) or K13's VM_MAXCPU: vm->maxcpus of every VM. */
  readonly maxcpu: number;
  /** Guest instructions per slice before the vCPU yields to the event loop. */
  readonly sliceInstructions: number;
}

/** vmm.h VM_MAXCPU in K14: MIN(0xffff - 1, CPU_SETSIZE); hw.vmm.maxcpu is clamped to it. */
export const VM_MAXCPU_LIMIT = 0xfffe;
