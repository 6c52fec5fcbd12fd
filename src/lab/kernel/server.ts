// startKernelModel: the vmm.ko model as a Unix-socket server for the lab's device bridge
// (docs/internals.md section 2, docs/lab-kernel.md).

import fs from 'node:fs';
import net from 'node:net';
import { KernelConnection, type InternalErrorSink } from './connection';
import { VmmKernel, type GuestStats, type KernelTap, type VmSets } from './kernel';
import {
  VM_MAXCPU_LIMIT,
  isKernelModelVariant,
  variantRules,
  type KernelConfig,
  type KernelVariant,
} from './variant';

export type { KernelVariant } from './variant';
export type { GuestStats, VmSets, KernelTap, KernelTapEvent } from './kernel';

export interface KernelModelOptions {
  socketPath: string;
  /** $VMMLAB_ROOT: dev/vmm/ and mem/ are created under it. */
  root: string;
  variant: KernelVariant;
  /** options COMPAT_FREEBSD13 (VM_RUN_13, VM_STATS_OLD on fixed14 and main15). Default true. */
  compatFreebsd13?: boolean;
  /** options COMPAT_FREEBSD14 (VM_ALLOC_MEMSEG_14 / VM_GET_MEMSEG_14 on main15). Default true. */
  compatFreebsd14?: boolean;
  /** kern.osreldate the model reports; default the variant's (main15: 1500068, 15.0-RELEASE). */
  osreldate?: number;
  /** sizeof(cpuset_t) in the kernel. Default 32 for legacy13 and window, 128 for fixed14. */
  kernelCpusetBytes?: number;
  /**
   * The host's CPU count (mp_ncpus), which hw.vmm.maxcpu defaults to where it exists (vmm.c
   * vmm_init, ee98f99d7a68). Default LAB_DEFAULT_HOST_CPUS. Ignored by legacy13 (VM_MAXCPU 16).
   */
  hostCpus?: number;
  /** hw.vmm.maxcpu set as a loader tunable: overrides hostCpus. legacy13 has no such tunable. */
  maxcpu?: number;
  /** Guest instructions per slice between two yields to the event loop. Default 2000. */
  sliceInstructions?: number;
  /** Where unexpected model errors go (default: console.error). */
  onInternalError?: InternalErrorSink;
  /** Lab-only: refuse every VM creation with EPERM (a caller without the privilege). */
  refuseVmCreate?: 'EPERM';
}

export interface KernelModel {
  readonly socketPath: string;
  readonly root: string;
  readonly variant: KernelVariant;
  readonly config: KernelConfig;
  /** Stops every vCPU, closes connections, destroys every VM (device and memory files removed). */
  close(): Promise<void>;
  vmNames(): string[];
  /** The lab's ground truth; kept after destroy until the name is created again. */
  guestStats(vm: string): GuestStats | undefined;
  vmSets(vm: string): VmSets | undefined;
  /** hw.vmm.destroy from the harness: false when no such VM. */
  destroyVm(vm: string): boolean;
  /**
   * Lab-only: vm_activate_cpu from the harness, with no thread to run the vCPU (what a crashed
   * bhyve leaves): a rendezvous or suspend then waits for it. false when no such VM or vCPU.
   */
  activateVcpu(vm: string, vcpu: number): boolean;
  /**
   * Lab-only hook (fault injection): calls `listener` synchronously on every open of a VM
   * device and every ioctl on one, as it enters and as it leaves. Returns the remover.
   */
  tap(listener: KernelTap): () => void;
}

export const DEFAULT_SLICE_INSTRUCTIONS = 2000;
/** The lab's stand-in host: a 32-CPU machine unless --host-cpus says otherwise. */
export const LAB_DEFAULT_HOST_CPUS = 32;
/** The largest host the lab models (MAXCPU of amd64 GENERIC since UPDATING 20230803). */
export const LAB_MAX_HOST_CPUS = 1024;

function resolveConfig(opts: KernelModelOptions): KernelConfig {
  if (!isKernelModelVariant(opts.variant)) throw new Error(`unknown kernel variant ${JSON.stringify(opts.variant)}`);
  const rules = variantRules(opts.variant);
  const kernelCpusetBytes = opts.kernelCpusetBytes ?? rules.defaultKernelCpusetBytes;
  if (!Number.isInteger(kernelCpusetBytes) || kernelCpusetBytes < 8 || kernelCpusetBytes % 8 !== 0 || kernelCpusetBytes > 8192) {
    throw new Error(`kernelCpusetBytes must be a multiple of 8 between 8 and 8192, got ${kernelCpusetBytes}`);
  }
  const hostCpus = opts.hostCpus ?? LAB_DEFAULT_HOST_CPUS;
  if (!Number.isInteger(hostCpus) || hostCpus < 1 || hostCpus > LAB_MAX_HOST_CPUS) {
    throw new Error(`hostCpus must be an integer between 1 and ${LAB_MAX_HOST_CPUS}, got ${hostCpus}`);
  }
  if (opts.maxcpu !== undefined && rules.compileTimeMaxcpu !== null) {
    throw new Error(`the ${rules.variant} kernel has no hw.vmm.maxcpu tunable (VM_MAXCPU is ${rules.compileTimeMaxcpu})`);
  }
  // vmm.c vmm_init (K14; 15.0/main: vmm_dev.c vmm_handler MOD_LOAD, read_file id 3299502974):
  // vm_maxcpu = mp_ncpus unless the hw.vmm.maxcpu tunable is set, then clamped to VM_MAXCPU (the
  // lab refuses a larger value below instead). K13: the compile-time VM_MAXCPU.
  const maxcpu = opts.maxcpu ?? rules.compileTimeMaxcpu ?? Math.min(hostCpus, kernelCpusetBytes * 8);
  // vmm.h VM_MAXCPU = MIN(0xffff - 1, CPU_SETSIZE): a vCPU id must fit the kernel's cpuset_t.
  const maxcpuLimit = Math.min(VM_MAXCPU_LIMIT, kernelCpusetBytes * 8);
  if (!Number.isInteger(maxcpu) || maxcpu < 1 || maxcpu > maxcpuLimit) {
    throw new Error(`maxcpu must be an integer between 1 and ${maxcpuLimit}, got ${maxcpu}`);
  }
  const sliceInstructions = opts.sliceInstructions ?? DEFAULT_SLICE_INSTRUCTIONS;
  if (!Number.isInteger(sliceInstructions) || sliceInstructions < 1) {
    throw new Error(`sliceInstructions must be a positive integer, got ${sliceInstructions}`);
  }
  const osreldate = opts.osreldate ?? rules.osreldate;
  if (!Number.isInteger(osreldate) || osreldate < 1 || osreldate > 0x7fffffff) {
    throw new Error(`osreldate must be a positive 32-bit integer, got ${osreldate}`);
  }
  return {
    rules,
    compatFreebsd13: opts.compatFreebsd13 ?? true,
    compatFreebsd14: opts.compatFreebsd14 ?? true,
    osreldate,
    kernelCpusetBytes,
    cpuMaxsizeBytes: Math.max(rules.cpuMaxsizeBytes, kernelCpusetBytes),
    hostCpus,
    maxcpu,
    sliceInstructions,
    refuseVmCreate: opts.refuseVmCreate ?? null,
  };
}

export async function startKernelModel(opts: KernelModelOptions): Promise<KernelModel> {
  const config = resolveConfig(opts);
  const kernel = new VmmKernel(config, opts.root);
  const onInternalError: InternalErrorSink =
    opts.onInternalError ?? ((error) => console.error('vmm kernel model: internal error:', error));
  const connections = new Set<KernelConnection>();
  const server = net.createServer((socket) => {
    connections.add(new KernelConnection(socket, kernel, onInternalError, (c) => connections.delete(c)));
  });

  fs.rmSync(opts.socketPath, { force: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(opts.socketPath, () => {
      server.off('error', reject);
      resolve();
    });
  });

  let closing: Promise<void> | null = null;
  return {
    socketPath: opts.socketPath,
    root: opts.root,
    variant: opts.variant,
    config,
    close(): Promise<void> {
      if (closing !== null) return closing;
      closing = (async () => {
        const stopped = new Promise<void>((resolve) => server.close(() => resolve()));
        for (const connection of [...connections]) connection.close();
        kernel.shutdown();
        await stopped;
        fs.rmSync(opts.socketPath, { force: true });
      })();
      return closing;
    },
    vmNames: () => kernel.vmNames(),
    guestStats: (vm) => kernel.guestStats(vm),
    vmSets: (vm) => kernel.vmSets(vm),
    tap: (listener) => kernel.tap(listener),
    destroyVm(vm: string): boolean {
      if (kernel.vm(vm) === undefined) return false;
      void kernel.destroyVm(vm);
      return true;
    },
    activateVcpu(vm: string, vcpu: number): boolean {
      const target = kernel.vm(vm);
      const v = target?.allocVcpu(vcpu);
      if (target === undefined || v === undefined || target.active.has(vcpu)) return false;
      target.activateCpu(v);
      return true;
    },
  };
}
