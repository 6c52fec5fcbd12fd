// Which generation of bhyve a VM runs, and what that generation needs on each kernel variant.
//
// A bhyve says which release it was built for in its ELF note NT_FREEBSD_ABI_TAG (type 1, name
// "FreeBSD", a 4-byte __FreeBSD_version), which every FreeBSD program carries: crt1 links
// lib/csu/common/crtbrand.S, whose ".note.tag" section holds the note (read at 10e31f09).
// The interposer reads it from its own process at start (dl_iterate_phdr), `vmm-compat doctor
// --bhyve` from the file (src/doctor/elf.ts). Without the note the interposer learns the
// generation from what the binary asks: the 144-byte VM_RUN is 13.x userland's, the 32-byte one
// 14.0's and later (sys/amd64/include/vmm_dev.h at e17eca32), a 32-byte memory-segment request
// 13.x/14.x's and the 56-byte one 15.0's (sys/dev/vmm/vmm_dev.c at 3d39856d).
import type { KernelVariant } from './kernel-variant';

/** The behaviour classes the interposer tells apart. */
export type BhyveGeneration = '13.1' | '13.2-13.5' | '14.x' | '15.0+';

/** __FreeBSD_version of the releases the boundaries are drawn at (sys/sys/param.h). */
export const FREEBSD_13_2 = 1302000;
export const FREEBSD_14 = 1400000;
/** 14.0-RELEASE: the value at the stable/14 branch, kept by releng/14.0. */
export const FREEBSD_14_0_RELEASE = 1400097;
export const FREEBSD_15 = 1500000;

/** 1403000 -> "14.3"; a -STABLE or -CURRENT value (1403503, 1400076) keeps its number visible. */
export function releaseName(version: number): string {
  const major = Math.floor(version / 100000);
  const minor = Math.floor((version % 100000) / 1000);
  if (version % 1000 === 0 || version === FREEBSD_14_0_RELEASE) return `${major}.${minor}`;
  if (major === 14 && version < FREEBSD_14_0_RELEASE) return `14-CURRENT (${version})`;
  return `${major}.${minor} (${version})`;
}

export function generationOf(version: number): BhyveGeneration {
  if (version < FREEBSD_13_2) return '13.1';
  if (version < FREEBSD_14) return '13.2-13.5';
  if (version < FREEBSD_15) return '14.x';
  return '15.0+';
}

/**
 * Per kernel variant: the first __FreeBSD_version it cannot serve (a bhyve from that release on
 * is newer than the kernel and refused: FreeBSD does not support a userland newer than its
 * kernel either), and the first that is as new as the kernel (passed through untouched; 0: none,
 * 13.x bhyves keep the daemon's plan there). The interposer gets the same numbers through the
 * generated header (VMC_BHYVE_LIMIT_*, VMC_BHYVE_NATIVE_FROM_*).
 *
 * - legacy13, fixed13: a 14.0 bhyve's 32-byte VM_RUN, 128-byte VM_GET_CPUS and vm_limit_rights
 *   list do not exist there.
 * - window (14-CURRENT, late 2022 - early 2023): a 14.0-RELEASE bhyve sends a 128-byte
 *   VM_GET_CPUS and the 32-byte VM_RUN, which came after it (e17eca32, May 2023); the 14-CURRENT
 *   bhyve of its own time is native.
 * - fixed14: 15.0's bhyve speaks the 56-byte memory-segment requests and the guest-NUMA ids.
 */
export const BHYVE_LIMITS: Readonly<Record<KernelVariant, { refusedFrom: number; nativeFrom: number }>> = {
  legacy13: { refusedFrom: FREEBSD_14, nativeFrom: 0 },
  fixed13: { refusedFrom: FREEBSD_14, nativeFrom: 0 },
  window: { refusedFrom: FREEBSD_14_0_RELEASE, nativeFrom: FREEBSD_14 },
  fixed14: { refusedFrom: FREEBSD_15, nativeFrom: FREEBSD_14 },
  main15: { refusedFrom: 0, nativeFrom: FREEBSD_15 },
};

export type BhyveHandling = 'compat' | 'native' | 'refused';

export interface BhyveVerdict {
  handling: BhyveHandling;
  /** Whether the bhyve must be started through the interposer on this kernel. */
  needsShim: boolean;
  why: string;
}

/**
 * What the interposer does for a bhyve of `version` on a kernel of `variant` (the same rule as
 * shim/generation.c), and why. `compat14` is whether the kernel has COMPAT_FREEBSD14 (main15
 * only; null unknown).
 */
export function bhyveOnKernel(version: number, variant: KernelVariant, compat14: boolean | null = null): BhyveVerdict {
  const name = releaseName(version);
  const { refusedFrom, nativeFrom } = BHYVE_LIMITS[variant];
  if (refusedFrom !== 0 && version >= refusedFrom) {
    return {
      handling: 'refused',
      needsShim: false,
      why: `bhyve ${name} is newer than the ${variant} kernel: FreeBSD does not support a bhyve newer than its kernel, and the interposer refuses to start it (run the host release's bhyve, or an older one)`,
    };
  }
  if (nativeFrom !== 0 && version >= nativeFrom) {
    return { handling: 'native', needsShim: false, why: `bhyve ${name} is as new as the ${variant} kernel: it needs nothing, and the interposer passes it through untouched` };
  }
  const generation = generationOf(version);
  if (generation === '14.x') {
    // Only main15 reaches here (fixed14 and window are native, the older kernels refuse).
    return {
      handling: 'compat',
      needsShim: true,
      why:
        `bhyve ${name} on a 15.0 kernel: its ROM (UEFI) boot maps the bootrom with 14.x's segment id 1, which 15.0 answers with EINVAL ` +
        '(bootrom_alloc: vm_mmap_mapseg), and a restart over the existing VM compares the ids VM_MMAP_GETNEXT returns; the interposer translates the ids both ways' +
        `${compat14 === false ? ', issues the 56-byte memory-segment requests (no COMPAT_FREEBSD14)' : ''}` +
        ' and ends bhyve with 4 when the VM is destroyed under it (14.x does not know VM_SUSPEND_DESTROY); no eager activation: 14.x starts its own APs',
    };
  }
  switch (variant) {
    case 'legacy13':
      return { handling: 'compat', needsShim: false, why: `bhyve ${name} on a 13.0/13.1 kernel: nothing to do (the daemon plans a pass-through)` };
    case 'fixed13':
      return { handling: 'compat', needsShim: false, why: `bhyve ${name} on a 13.2+ kernel: the kernel starts its APs and keeps 13.1's ABI (the daemon plans a pass-through)` };
    case 'window':
      return { handling: 'compat', needsShim: true, why: `bhyve ${name} on a window kernel: its APs never start without eager activation, parking and handover` };
    case 'fixed14':
      return {
        handling: 'compat',
        needsShim: true,
        why: `bhyve ${name} on a 14.x kernel: its 32-byte VM_GET_CPUS gets ERANGE (128-byte kernel cpuset) and it aborts; the interposer widens it (and translates VM_RUN without COMPAT_FREEBSD13)`,
      };
    case 'main15':
      return {
        handling: 'compat',
        needsShim: true,
        why: `bhyve ${name} on a 15.0 kernel: a ROM (UEFI) boot cannot map its bootrom (segment ids moved); the interposer translates the ids, VM_RUN and the memory-segment requests as the kernel requires`,
      };
  }
}

/** The HELLO `bhyve` field: "13.1" from interposers before generations (a fixed tag), else this. */
export const HELLO_TAG_UNKNOWN = 'unknown';

/** Parses the HELLO `bhyve` field: a __FreeBSD_version ("1403000"), "unknown", or an old interposer's "13.1". */
export function parseHelloTag(tag: string): { version: number | null; fromOldInterposer: boolean } {
  if (/^\d{7}$/.test(tag)) return { version: Number(tag), fromOldInterposer: false };
  if (tag === HELLO_TAG_UNKNOWN) return { version: null, fromOldInterposer: false };
  return { version: null, fromOldInterposer: true };
}
