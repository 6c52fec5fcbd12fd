// Which boots selftest runs: for each bhyve under test, the ROM guest at 1, 2 and 4 vCPUs and at
// the largest count that bhyve and the kernel allow (at most --max-vcpus), each without and then
// with the shim, on VMs of names no one else uses.
import type { BhyveGeneration, BhyveHandling } from '../daemon/bhyve-generation';
import { MAX_ROM_VCPUS } from '../lab/guests/rom';

/** Every selftest VM is named vmm-compat-selftest-<pid>-<n>: never an operator's VM. */
export const SELFTEST_VM_PREFIX = 'vmm-compat-selftest-';

export function selftestVmName(pid: number, n: number): string {
  return `${SELFTEST_VM_PREFIX}${pid}-${n}`;
}

export const BASE_VCPU_COUNTS: readonly number[] = [1, 2, 4];
export const DEFAULT_MAX_VCPUS = 16;
/** The most --max-vcpus takes: what a boot ROM carries and 13.x userland's cpuset_t holds. */
export const MAX_SELFTEST_VCPUS = MAX_ROM_VCPUS;
/** 13.1's VM_MAXCPU (vmm.h): a 13.1 bhyve's limit, and the kernel's on 13.0/13.1 (no hw.vmm.maxcpu). */
export const VM_MAXCPU_13_1 = 16;

/** A bhyve binary selftest boots, with what is known of its release. */
export interface BhyveUnderTest {
  /** The binary as given (a path; in the lab, the model's binary). */
  path: string;
  /** How it is named in progress lines and the table: "13.1", "lab 13.5". */
  label: string;
  /** __FreeBSD_version, or null when unknown. */
  version: number | null;
  /** "13.1", "14.3", "14-CURRENT (1400076)"; null when unknown. */
  release: string | null;
  /** abi-tag: its ELF NT_FREEBSD_ABI_TAG; lab-model: the lab bhyve model it is; unknown: no tag. */
  releaseFrom: 'abi-tag' | 'lab-model' | 'unknown';
  generation: BhyveGeneration | null;
  /** What the interposer does for it on the identified kernel (null: the kernel is unknown). */
  handling: BhyveHandling | null;
  needsShim: boolean | null;
  why: string;
  /** The most vCPUs this bhyve runs here, and why. */
  vcpuLimit: number;
  vcpuLimitWhy: string;
}

/**
 * The most vCPUs a bhyve of `generation` can give a VM on this kernel. 13.1 bhyve: its
 * compile-time VM_MAXCPU, 16 (bhyverun.c num_vcpus_allowed). 13.2 and later: the kernel's
 * VM_GET_TOPOLOGY maxcpus, which is vm->maxcpus, set from hw.vmm.maxcpu at vm_create (vmm.c,
 * ee98f99d7a68); a 13.0/13.1 kernel has no hw.vmm.maxcpu and a fixed VM_MAXCPU of 16. An unknown
 * bhyve is taken to be the most limited, 13.1.
 */
export function bhyveVcpuLimit(generation: BhyveGeneration | null, hostMaxcpu: number | null): { limit: number; why: string } {
  const kernel = hostMaxcpu ?? VM_MAXCPU_13_1;
  const kernelWhy = hostMaxcpu === null ? 'the kernel has no hw.vmm.maxcpu (13.0/13.1: VM_MAXCPU 16)' : `hw.vmm.maxcpu ${hostMaxcpu}`;
  if (generation === null || generation === '13.1') {
    const who = generation === null ? 'a bhyve of unknown release is taken as 13.1' : '13.1 bhyve';
    if (kernel < VM_MAXCPU_13_1) return { limit: kernel, why: `${kernelWhy} (${who} would take 16)` };
    return { limit: VM_MAXCPU_13_1, why: `${who}: VM_MAXCPU 16` };
  }
  return { limit: kernel, why: `the kernel's VM_GET_TOPOLOGY maxcpus: ${kernelWhy}` };
}

/** 1, 2, 4 and the largest, each at most `largest`, ascending, once each. */
export function vcpuCounts(largest: number): number[] {
  return [...new Set([...BASE_VCPU_COUNTS, largest])].filter((n) => n >= 1 && n <= largest).sort((a, b) => a - b);
}

export interface PlannedBoot {
  /** 1-based position in the run, also the VM name's <n>. */
  n: number;
  bhyve: BhyveUnderTest;
  vcpus: number;
  shim: boolean;
  vmName: string;
}

/** Every boot, in order: per bhyve, per count, without the shim, then with it. */
export function planBoots(bhyves: readonly BhyveUnderTest[], maxVcpus: number, pid: number): PlannedBoot[] {
  const boots: PlannedBoot[] = [];
  for (const bhyve of bhyves) {
    for (const vcpus of vcpuCounts(Math.min(maxVcpus, bhyve.vcpuLimit, MAX_SELFTEST_VCPUS))) {
      for (const shim of [false, true]) {
        const n = boots.length + 1;
        boots.push({ n, bhyve, vcpus, shim, vmName: selftestVmName(pid, n) });
      }
    }
  }
  return boots;
}
