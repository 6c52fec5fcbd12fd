// What the daemon knows about each vmm.ko generation, as it affects a 13.1 bhyve
// (docs/design.md, "The problem"; facts in shared/reference/kernel-main-side.md).

export const KERNEL_VARIANTS = ['legacy13', 'window', 'fixed13', 'fixed14', 'main15'] as const;
export type KernelVariant = (typeof KERNEL_VARIANTS)[number];

export function isKernelVariant(value: string): value is KernelVariant {
  return (KERNEL_VARIANTS as readonly string[]).includes(value);
}

/** Wire codes of the compat protocol (docs/internals.md section 5). */
export const VARIANT_CODE: Readonly<Record<KernelVariant, number>> = {
  legacy13: 1,
  window: 2,
  fixed14: 3,
  main15: 4,
  fixed13: 5,
};

export interface VariantFacts {
  /** sizeof(cpuset_t) in the kernel: VM_GET_CPUS rejects a smaller buffer (vmm_dev.c, 14.0). */
  kernelCpusetBytes: number;
  /** Whether 13.1 bhyve needs its APs activated before the BSP runs. */
  eagerActivation: boolean;
  /** What to subtract from SPINUP_AP's vcpu: the window kernel reports CPU_FFS() (one-based). */
  spinupBias: number;
  summary: string;
}

export const VARIANT_FACTS: Readonly<Record<KernelVariant, VariantFacts>> = {
  legacy13: {
    kernelCpusetBytes: 32,
    eagerActivation: false,
    spinupBias: 0,
    summary:
      '13.0/13.1 kernel: per-vlapic boot states raise SPINUP_AP for inactive APs (vlapic.c, 13-era); 13.1 bhyve works unmodified',
  },
  window: {
    kernelCpusetBytes: 32,
    eagerActivation: true,
    spinupBias: 1,
    summary:
      'main 7c326ab5..b265a2e0: INIT/SIPI reach only active vCPUs and SPINUP_AP names vcpuid+1 (vlapic.c vm_handle_ipi); APs are pre-activated and parked',
  },
  fixed13: {
    kernelCpusetBytes: 32,
    eagerActivation: false,
    spinupBias: 0,
    summary:
      '13.2..13.5 (stable/13 with 577a666c, the cherry-pick of b265a2e0): the run-time compat path starts 13.1 bhyve APs; MAXCPU 256, so the cpuset stays 32 bytes and VM_RUN stays 144 bytes',
  },
  fixed14: {
    kernelCpusetBytes: 128,
    eagerActivation: false,
    spinupBias: 0,
    summary:
      'b265a2e0 and later (13.2+, 14.x): the run-time compat path starts 13.1 bhyve APs; VM_GET_CPUS needs the 128-byte cpuset (vmm_dev.c)',
  },
  main15: {
    kernelCpusetBytes: 128,
    eagerActivation: false,
    spinupBias: 0,
    summary:
      '15.0/main: the kernel starts 13.1 bhyve APs itself (vlapic.c compat path when ipi_exit is false, b265a2e0, under no kernel option), so no AP is pre-activated; the memory segment ids moved (guest NUMA, a4197ea47777) and the interposer translates them and VM_RUN as the kernel\'s answers at open require',
  },
};

/**
 * Identifies the kernel from kern.osreldate where that is reliable, and refuses to guess where
 * it is not: __FreeBSD_version bumps do not line up with 7c326ab5 or b265a2e0, so a 14-CURRENT
 * kernel older than 14.0-RELEASE (1400097) may be either `window` or `fixed14`.
 */
export type Identification = { variant: KernelVariant; why: string } | { variant: null; why: string };

export function identifyKernel(osreldate: number): Identification {
  if (!Number.isInteger(osreldate) || osreldate < 1300000) {
    return { variant: null, why: `kern.osreldate ${osreldate} is older than FreeBSD 13.0: not supported` };
  }
  if (osreldate < 1302000) {
    return { variant: 'legacy13', why: `kern.osreldate ${osreldate} is 13.0/13.1 (before 13.2 = 1302000)` };
  }
  if (osreldate < 1400000) {
    return {
      variant: 'fixed13',
      why: `kern.osreldate ${osreldate} is 13.2 or later on stable/13 (has b265a2e0 via 577a666c; MAXCPU 256, 32-byte cpuset)`,
    };
  }
  if (osreldate < 1400097) {
    return {
      variant: null,
      why:
        `kern.osreldate ${osreldate} is a 14-CURRENT build before 14.0-RELEASE: it may lie inside the ` +
        '7c326ab5..b265a2e0 window or after it; set kernel_variant ("window" or "fixed14") in the configuration',
    };
  }
  if (osreldate < 1500000) {
    return { variant: 'fixed14', why: `kern.osreldate ${osreldate} is 14.0-RELEASE or later on 14.x` };
  }
  if (osreldate < 1600000) return { variant: 'main15', why: `kern.osreldate ${osreldate} is 15.x (15.0-RELEASE is 1500068)` };
  return {
    variant: 'main15',
    why:
      `kern.osreldate ${osreldate} is main (16-CURRENT, 1600000 from 8b4e4c273730); treated as 15.0: ` +
      'changes after the last sources read (sys/dev/vmm/vmm_dev.c at 012895d5) are not known',
  };
}

/**
 * What kern.osreldate cannot tell about a kernel of this variant, and who finds out instead
 * (`vmm-compat probe` prints it).
 */
export function cannotTell(variant: KernelVariant): string[] {
  switch (variant) {
    case 'legacy13':
      return [];
    case 'window':
      return ['the exact commit: osreldate does not separate 7c326ab5..b265a2e0 from the kernels around it'];
    case 'fixed13':
      return ['whether hw.vmm.maxcpu was lowered below 16 (vmm-compat doctor reads it)'];
    case 'fixed14':
      return [
        'whether the kernel has COMPAT_FREEBSD13 (the interposer asks the kernel at open; doctor reads kern.conftxt)',
        "the kernel's VM_GET_CPUS size rule (the interposer tries 13.1's 32 bytes first and widens only on ERANGE)",
      ];
    case 'main15':
      return [
        'whether the kernel has COMPAT_FREEBSD13 and COMPAT_FREEBSD14 (the interposer asks the kernel at open; doctor reads kern.conftxt)',
        'whether the segment ids are the guest-NUMA ones (the interposer asks the kernel at open)',
        'changes on main after sys/dev/vmm/vmm_dev.c at 012895d5, the newest source read',
      ];
  }
}
