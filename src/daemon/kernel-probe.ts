// The kernel probe: a throwaway VM of the daemon's own (no bhyve) that asks the kernel what it
// does. Two vCPUs, one page of guest code, only the BSP active; the code sends INIT and SIPI to
// AP 1 through the x2APIC ICR and ends with an I/O exit. Whether VM_EXITCODE_SPINUP_AP arrives,
// and for which vCPU, tells the 7c326ab5..b265a2e0 window from every other kernel; which request
// numbers and sizes the kernel accepts tells the rest (kernel-identification.ts classifyProbe,
// docs/design.md "Identifying the kernel").
//
// The VM is named vmm-compat-probe-<pid>-<n>, destroyed on every path, and only such VMs whose
// process is gone are ever swept; no other VM is touched. The BSP's VM_RUN blocks, so it runs on
// a worker thread of its own (a synchronous koffi call, never the libuv pool), bounded: if it
// does not return, the VM is suspended and destroyed under it.
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { REQ13, REQ14, REQ15 } from '../abi/ioctls';
import { CpusetWhich, VmCap, VmExitcode, VmReg, VmSuspendHow, X2apicState, exitcodeName } from '../abi/enums';
import {
  VM_CAPABILITY,
  VM_CPU_TOPOLOGY,
  VM_CPUSET,
  VM_EXIT,
  VM_MEMMAP,
  VM_MEMSEG,
  VM_MEMSEG_15,
  VM_REGISTER_SET,
  VM_RUN_13,
  VM_RUN_14,
  VM_SEG_DESC,
  VM_SUSPEND,
  VM_X2APIC,
  VMMCTL_VM_CREATE,
  VMMCTL_VM_DESTROY,
  decodeInout,
  decodeSpinupAp,
  fieldOf,
} from '../abi/structs';
import { koffi } from '../ffi/koffi';
import { classifyProbe, type ApStartAnswer, type ProbeAnswers, type ProbeClassification } from './kernel-identification';
import type { VmmSyscalls } from './vmm-device';
import { processAlive, throwawayVms } from './throwaway-vms';

export const PROBE_VM_PREFIX = 'vmm-compat-probe-';

/** Guest memory: one system-memory segment at gpa 0 (page-aligned, vmm.c vm_alloc_memseg). */
const SYSMEM_BYTES = 0x10000;
/** The guest code's page; CS = CODE_GPA >> 4 in real mode, as bhyve's spinup_ap_realmode sets. */
const CODE_GPA = 0x1000;
/** The port of the code's final `out`: not emulated in the kernel (vmm_ioport.c ioport_handler). */
export const PROBE_PORT = 0x80;
/** The byte the code writes there: an exit with any other value is not the code's end. */
export const PROBE_MARKER = 0x5a;

/**
 * The probe's guest, 16-bit real mode (the lab's x86 subset, docs/lab-guests.md; a real CPU
 * runs it the same way). The ICR values are apicreg.h's: APIC_DELMODE_INIT 0x500 with
 * APIC_LEVEL_ASSERT 0x4000 (13-era vlapic ignores an INIT level-deassert; vlapic_is_icr_valid
 * accepts an edge INIT with the destination field), APIC_DELMODE_STARTUP 0x600 | vector;
 * physical destination, the x2APIC ID in EDX (vm_apicid2vcpuid is the identity).
 */
export const PROBE_GUEST = Uint8Array.from([
  0x66, 0xb9, 0x30, 0x08, 0x00, 0x00, //  mov ecx, 0x830        x2APIC ICR (MSR 0x830)
  0x66, 0xba, 0x01, 0x00, 0x00, 0x00, //  mov edx, 1            destination: APIC ID 1
  0x66, 0xb8, 0x00, 0x45, 0x00, 0x00, //  mov eax, 0x4500       INIT, level assert
  0x0f, 0x30, //                          wrmsr
  0x66, 0xb8, CODE_GPA >> 12, 0x06, 0x00, 0x00, // mov eax, 0x0601  STARTUP, vector 1 (gpa 0x1000)
  0x0f, 0x30, //                          wrmsr
  0x66, 0xb8, PROBE_MARKER, 0x00, 0x00, 0x00, // mov eax, PROBE_MARKER
  0xe6, PROBE_PORT, //                    out 0x80, al          the end: VM_EXITCODE_INOUT
  0xfa, //                                cli
  0xf4, //                                hlt                   never resumed; a halt with IF
  0xeb, 0xfd, //                          jmp hlt               clear suspends the VM (halt)
]);

/** How long the BSP's VM_RUN may take before the VM is suspended and destroyed under it. */
export const PROBE_RUN_TIMEOUT_MS = 2000;
/** After the suspend, how long the worker gets to come out of VM_RUN. */
const SUSPEND_GRACE_MS = 500;
/** Exits the worker follows before it gives up (SPINUP_AP, BOGUS, REQIDLE, then the I/O exit). */
const MAX_EXITS = 16;
/** 14.0 userland's cpuset_t (MAXCPU 1024): what the 32-byte VM_RUN copies an IPI set into. */
const RUN_CPUSET_BYTES = 128;
/** sys/sys/domainset.h DOMAINSET_POLICY_INVALID: no domain policy (the 56-byte vm_memseg). */
const DOMAINSET_POLICY_INVALID = 0;
/** vm_memmap.prot: VM_PROT_READ | VM_PROT_WRITE | VM_PROT_EXECUTE. */
const VM_PROT_ALL = 7;
const VM_CAP_IPI_EXIT = VmCap.IPI_EXIT;

// ---------------------------------------------------------------------------------------------
// The BSP's VM_RUN (the worker thread's part)

/** One exit the BSP's VM_RUN returned, as the probe records it. */
export interface ObservedExit {
  exitcode: number;
  rip: number;
  spinup?: { vcpu: number; rip: number };
  inout?: { port: number; eax: number; in: number; bytes: number };
}

export interface BspRunRequest {
  fd: number;
  /** Which VM_RUN the kernel has: the 144-byte one (13.x ABI, or COMPAT_FREEBSD13) or 14.0's. */
  abi: 'vmrun144' | 'vmrun32';
}

export interface BspRunResult {
  exits: ObservedExit[];
  /** The errno name VM_RUN failed with, or a reason the loop stopped early; null at the I/O exit. */
  error: string | null;
}

const VM_RUN_13_EXIT_OFFSET = fieldOf(VM_RUN_13, 'vm_exit').offset;

/**
 * Runs vCPU 0 until the guest's I/O exit: SPINUP_AP is recorded and the BSP run again (as 13.1
 * bhyve's BSP thread goes on after vmexit_spinup_ap); BOGUS and REQIDLE are run again (bhyve's
 * vmexit_bogus and vmexit_reqidle); anything else ends the run. Blocks in VM_RUN.
 */
export function runBsp(sys: VmmSyscalls, request: BspRunRequest): BspRunResult {
  const exits: ObservedExit[] = [];
  const exitBuf = Buffer.alloc(VM_EXIT.size);
  const cpuset = Buffer.alloc(RUN_CPUSET_BYTES);
  for (let i = 0; i < MAX_EXITS; i++) {
    let raw: Buffer;
    let error: string | null;
    if (request.abi === 'vmrun144') {
      const arg = VM_RUN_13.encode({ cpuid: 0 });
      error = sys.ioctl(request.fd, REQ13.VM_RUN, arg);
      raw = arg.subarray(VM_RUN_13_EXIT_OFFSET, VM_RUN_13_EXIT_OFFSET + VM_EXIT.size);
    } else {
      const arg = VM_RUN_14.encode({
        cpuid: 0,
        cpuset: BigInt(koffi.address(cpuset)),
        cpusetsize: BigInt(RUN_CPUSET_BYTES),
        vm_exit: BigInt(koffi.address(exitBuf)),
      });
      error = sys.ioctl(request.fd, REQ14.VM_RUN, arg);
      raw = exitBuf;
    }
    if (error !== null) return { exits, error: `VM_RUN: ${error}` };
    const exit = VM_EXIT.decode(raw);
    const observed: ObservedExit = { exitcode: exit.exitcode, rip: Number(exit.rip) };
    exits.push(observed);
    switch (exit.exitcode) {
      case VmExitcode.SPINUP_AP: {
        const s = decodeSpinupAp(exit.u);
        observed.spinup = { vcpu: s.vcpu, rip: Number(s.rip) };
        continue;
      }
      case VmExitcode.BOGUS:
      case VmExitcode.REQIDLE:
        continue;
      case VmExitcode.INOUT: {
        const io = decodeInout(exit.u);
        observed.inout = { port: io.port, eax: io.eax, in: io.in, bytes: io.bytes };
        return { exits, error: null };
      }
      default:
        return { exits, error: `an unexpected ${exitcodeName(exit.exitcode)} exit` };
    }
  }
  return { exits, error: `no I/O exit after ${MAX_EXITS} exits` };
}

/** What the exits say about INIT/SIPI to the inactive AP 1. */
export function apStartFromRun(run: BspRunResult): ApStartAnswer {
  const end = run.exits.at(-1);
  if (run.error !== null) return { kind: 'inconclusive', why: run.error };
  if (end?.inout === undefined || end.inout.port !== PROBE_PORT || end.inout.in !== 0 || (end.inout.eax & 0xff) !== PROBE_MARKER) {
    return { kind: 'inconclusive', why: `the run ended at an I/O exit that is not the code's own (${describeExit(end)})` };
  }
  const spinups = run.exits.filter((e) => e.spinup !== undefined);
  if (spinups.length === 0) return { kind: 'none' };
  if (spinups.length > 1) return { kind: 'inconclusive', why: `${spinups.length} SPINUP_AP exits for one SIPI` };
  const s = spinups[0]!.spinup!;
  return { kind: 'spinup', vcpu: s.vcpu, rip: s.rip };
}

export function describeExit(e: ObservedExit | undefined): string {
  if (e === undefined) return 'no exit';
  const name = exitcodeName(e.exitcode);
  if (e.spinup) return `${name} vcpu ${e.spinup.vcpu} rip 0x${e.spinup.rip.toString(16)}`;
  if (e.inout) return `${name} ${e.inout.in ? 'in' : 'out'} port 0x${e.inout.port.toString(16)} value 0x${(e.inout.eax & 0xff).toString(16)}`;
  return `${name} at rip 0x${e.rip.toString(16)}`;
}

// ---------------------------------------------------------------------------------------------
// Creating, finding and destroying probe VMs

const VMMCTL = '/dev/vmmctl';

/** The kernel's VM registry: /dev/vmmctl (15.0, a97f683fe3c4) where it opens, else hw.vmm.*. */
export class VmRegistryAccess {
  private ctlFd: number | null = null;
  readonly via: 'vmmctl' | 'sysctl';

  constructor(private readonly sys: VmmSyscalls) {
    const fd = sys.open(VMMCTL);
    if (typeof fd === 'number') {
      this.ctlFd = fd;
      this.via = 'vmmctl';
    } else {
      this.via = 'sysctl';
    }
  }

  private static nameArg(layout: typeof VMMCTL_VM_CREATE | typeof VMMCTL_VM_DESTROY, name: string): Buffer {
    const field = Buffer.alloc(fieldOf(layout, 'name').size);
    field.write(name, 'utf8');
    return layout.encode({ name: field });
  }

  /** null, or the errno name (vmm_dev.c sysctl_vmm_create / vmmctl_ioctl VMMCTL_VM_CREATE). */
  create(name: string): string | null {
    if (this.ctlFd !== null) return this.sys.ioctl(this.ctlFd, REQ15.VMMCTL_VM_CREATE, VmRegistryAccess.nameArg(VMMCTL_VM_CREATE, name));
    return this.sys.sysctlWriteString('hw.vmm.create', name);
  }

  destroy(name: string): string | null {
    if (this.ctlFd !== null) return this.sys.ioctl(this.ctlFd, REQ15.VMMCTL_VM_DESTROY, VmRegistryAccess.nameArg(VMMCTL_VM_DESTROY, name));
    return this.sys.sysctlWriteString('hw.vmm.destroy', name);
  }

  close(): void {
    if (this.ctlFd !== null) this.sys.close(this.ctlFd);
    this.ctlFd = null;
  }
}

export interface SweepResult {
  destroyed: string[];
  /** Probe VMs left alone: their process still runs (another probe in progress). */
  inUse: string[];
  failed: { name: string; error: string }[];
}

/**
 * Destroys the probe VMs a killed probe left behind: names vmm-compat-probe-<pid>-<n> in
 * deviceDir whose pid is no live process. Nothing else is ever touched.
 */
export function sweepProbeVms(sys: VmmSyscalls, deviceDir: string): SweepResult {
  const result: SweepResult = { destroyed: [], inUse: [], failed: [] };
  const leftovers = throwawayVms(deviceDir, PROBE_VM_PREFIX).flatMap(({ name, pid }) => {
    if (pid !== process.pid && processAlive(pid)) {
      result.inUse.push(name);
      return [];
    }
    return [name];
  });
  if (leftovers.length === 0) return result;
  const registry = new VmRegistryAccess(sys);
  try {
    for (const name of leftovers) {
      const error = registry.destroy(name);
      if (error === null) result.destroyed.push(name);
      else result.failed.push({ name, error });
    }
  } finally {
    registry.close();
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// The experiment

export type KernelProbeOutcome =
  | {
      kind: 'answered';
      vmName: string;
      answers: ProbeAnswers;
      classification: ProbeClassification;
      /** The BSP's exits, described. */
      exits: string[];
      /** How the VM was made and destroyed: 'vmmctl' or 'sysctl'. */
      registry: 'vmmctl' | 'sysctl';
      /** null, or the errno name the destroy of the probe VM failed with (it is swept later). */
      destroyError: string | null;
      elapsedMs: number;
    }
  | { kind: 'unavailable'; why: string; elapsedMs: number };

export interface KernelProbeOptions {
  /** The system-call library (libc.so.7, or the lab bridge). */
  library: string;
  /** Bound on the BSP's VM_RUN (default PROBE_RUN_TIMEOUT_MS). */
  runTimeoutMs?: number;
}

let probeSerial = 0;

/** Errors of VM creation that mean "no probe VM can be made here", with the reason to print. */
function unavailableBecause(error: string, via: 'vmmctl' | 'sysctl'): string {
  switch (error) {
    case 'ENOENT':
      return via === 'sysctl' ? 'vmm.ko is not loaded (no hw.vmm.create)' : `${VMMCTL}: ENOENT`;
    case 'EPERM':
    case 'EACCES':
      return `not allowed to create a VM (${error}): the probe needs root, or allow.vmm in a jail`;
    case 'ENXIO':
      return 'vmm.ko failed to initialise (ENXIO): no VT-x/AMD-V, or it is in use by another hypervisor';
    default:
      return `cannot create a probe VM (${error} from ${via === 'vmmctl' ? 'VMMCTL_VM_CREATE' : 'hw.vmm.create'})`;
  }
}

function workerScript(): string {
  return path.join(__dirname, 'kernel-probe-worker.js');
}

/** Starts the worker that will run the BSP; it binds the library while the VM is set up. */
function startBspWorker(library: string): { worker: Worker; result: Promise<BspRunResult> } {
  const worker = new Worker(workerScript(), { workerData: { library } });
  worker.unref();
  const result = new Promise<BspRunResult>((resolve) => {
    worker.once('message', (m: BspRunResult) => resolve(m));
    worker.once('error', (err) => resolve({ exits: [], error: `the probe's worker thread failed: ${err instanceof Error ? err.message : String(err)}` }));
    worker.once('exit', (code) => resolve({ exits: [], error: `the probe's worker thread exited (${code}) without an answer` }));
  });
  return { worker, result };
}

function timeout<T>(ms: number, value: T): { promise: Promise<T>; cancel(): void } {
  let timer: NodeJS.Timeout | undefined;
  const promise = new Promise<T>((resolve) => {
    timer = setTimeout(() => resolve(value), ms);
  });
  return { promise, cancel: () => clearTimeout(timer) };
}

/** The registers of libvmmapi's vcpu_reset ("Table 9-1. IA-32 Processor States Following
 * Power-up, Reset or INIT", lib/libvmmapi/vmmapi.c, read_file id 704690988; native-bindings/lab/
 * vcpu_reset.c lists them), with CS:IP at the code's page as bhyve's spinup_ap_realmode points
 * an AP at its SIPI page. */
const RESET_REGISTERS: readonly (readonly [number, bigint])[] = [
  [VmReg.RFLAGS, 0x2n],
  [VmReg.RIP, 0n],
  [VmReg.CR0, 0x20n], // CR0_NE
  [VmReg.CR3, 0n],
  [VmReg.CR4, 0n],
  [VmReg.CS, BigInt(CODE_GPA >> 4)],
  [VmReg.SS, 0n],
  [VmReg.DS, 0n],
  [VmReg.ES, 0n],
  [VmReg.FS, 0n],
  [VmReg.GS, 0n],
  [VmReg.RAX, 0n],
  [VmReg.RBX, 0n],
  [VmReg.RCX, 0n],
  [VmReg.RDX, 0xf00n], // the CPU signature
  [VmReg.RSI, 0n],
  [VmReg.RDI, 0n],
  [VmReg.RBP, 0n],
  [VmReg.RSP, 0n],
  [VmReg.TR, 0n],
  [VmReg.LDTR, 0n],
];
/** Descriptors: data segments base 0 limit 0xffff access 0x93, CS the same at the code's page. */
const RESET_DESCRIPTORS: readonly { reg: number; base: number; limit: number; access: number }[] = [
  { reg: VmReg.CS, base: CODE_GPA, limit: 0xffff, access: 0x93 },
  ...[VmReg.SS, VmReg.DS, VmReg.ES, VmReg.FS, VmReg.GS].map((reg) => ({ reg, base: 0, limit: 0xffff, access: 0x93 })),
  { reg: VmReg.GDTR, base: 0, limit: 0xffff, access: 0 },
  { reg: VmReg.IDTR, base: 0, limit: 0xffff, access: 0 },
  { reg: VmReg.TR, base: 0, limit: 0, access: 0x8b },
  { reg: VmReg.LDTR, base: 0, limit: 0xffff, access: 0x82 },
];

/** One step of the set-up: throws SetupFailure naming the request and the errno. */
class SetupFailure extends Error {}
function must(what: string, error: string | null): void {
  if (error !== null) throw new SetupFailure(`${what}: ${error}`);
}

/** The ABI questions: each refused before it touches the VM (kabi.c asks the first three too). */
function askAbi(sys: VmmSyscalls, fd: number): Omit<ProbeAnswers, 'vmmctl' | 'apStart'> {
  const cpus = (bytes: number): string | null => {
    const set = Buffer.alloc(bytes);
    const arg = VM_CPUSET.encode({ which: CpusetWhich.ACTIVE, cpusetsize: bytes, cpus: BigInt(koffi.address(set)) });
    return sys.ioctl(fd, REQ13.VM_GET_CPUS, arg);
  };
  const capArg = VM_CAPABILITY.encode({ cpuid: 0, captype: VM_CAP_IPI_EXIT });
  return {
    vmrun144: sys.ioctl(fd, REQ13.VM_RUN, VM_RUN_13.encode({ cpuid: -1 })),
    vmrun32: sys.ioctl(fd, REQ14.VM_RUN, VM_RUN_14.encode({ cpuid: -1 })),
    cpus32: cpus(32),
    cpus128: cpus(128),
    memseg56: sys.ioctl(fd, REQ15.VM_GET_MEMSEG, VM_MEMSEG_15.encode({ segid: 0 })),
    memseg32: sys.ioctl(fd, REQ13.VM_GET_MEMSEG, VM_MEMSEG.encode({ segid: 0 })),
    capIpiExit: sys.ioctl(fd, REQ13.VM_GET_CAPABILITY, capArg),
  };
}

/** Memory, vCPU 0 in real mode at the code, x2APIC, VM_ACTIVATE_CPU(0) only. */
function setUpVm(sys: VmmSyscalls, fd: number, abi: Omit<ProbeAnswers, 'vmmctl' | 'apStart'>): void {
  // Two vCPUs, as `bhyve -c 2` sets them; EINVAL when the kernel allows fewer (hw.vmm.maxcpu:
  // vmm.c vm_set_topology, docs/lab-kernel.md).
  const topology = sys.ioctl(fd, REQ13.VM_SET_TOPOLOGY, VM_CPU_TOPOLOGY.encode({ sockets: 2, cores: 1, threads: 1, maxcpus: 0 }));
  if (topology !== null) throw new SetupFailure(`VM_SET_TOPOLOGY for 2 vCPUs: ${topology} (hw.vmm.maxcpu below 2?)`);
  if (abi.memseg32 === null) {
    must('VM_ALLOC_MEMSEG', sys.ioctl(fd, REQ13.VM_ALLOC_MEMSEG, VM_MEMSEG.encode({ segid: 0, len: BigInt(SYSMEM_BYTES) })));
  } else if (abi.memseg56 === null) {
    must(
      'VM_ALLOC_MEMSEG (56 bytes)',
      sys.ioctl(fd, REQ15.VM_ALLOC_MEMSEG, VM_MEMSEG_15.encode({ segid: 0, len: BigInt(SYSMEM_BYTES), ds_policy: DOMAINSET_POLICY_INVALID })),
    );
  } else {
    throw new SetupFailure(`no VM_GET_MEMSEG answered (32 bytes: ${abi.memseg32}, 56 bytes: ${abi.memseg56})`);
  }
  must('VM_MMAP_MEMSEG', sys.ioctl(fd, REQ13.VM_MMAP_MEMSEG, VM_MEMMAP.encode({ gpa: 0n, segid: 0, segoff: 0n, len: BigInt(SYSMEM_BYTES), prot: VM_PROT_ALL, flags: 0 })));
  must('writing the guest code (mmap of the VM)', sys.writeShared(fd, 0, SYSMEM_BYTES, CODE_GPA, PROBE_GUEST));
  // Real mode needs unrestricted guest on Intel (bhyve: spinup_ap, bhyveload, bootrom boot).
  must('VM_SET_CAPABILITY(UNRESTRICTED_GUEST)', sys.ioctl(fd, REQ13.VM_SET_CAPABILITY, VM_CAPABILITY.encode({ cpuid: 0, captype: VmCap.UNRESTRICTED_GUEST, capval: 1 })));
  const regnums = Buffer.alloc(RESET_REGISTERS.length * 4);
  const regvals = Buffer.alloc(RESET_REGISTERS.length * 8);
  RESET_REGISTERS.forEach(([reg, value], i) => {
    regnums.writeInt32LE(reg, i * 4);
    regvals.writeBigUInt64LE(value, i * 8);
  });
  must(
    'VM_SET_REGISTER_SET',
    sys.ioctl(
      fd,
      REQ13.VM_SET_REGISTER_SET,
      VM_REGISTER_SET.encode({ cpuid: 0, count: RESET_REGISTERS.length, regnums: BigInt(koffi.address(regnums)), regvals: BigInt(koffi.address(regvals)) }),
    ),
  );
  for (const d of RESET_DESCRIPTORS) {
    must(
      `VM_SET_SEGMENT_DESCRIPTOR(${d.reg})`,
      sys.ioctl(fd, REQ13.VM_SET_SEGMENT_DESCRIPTOR, VM_SEG_DESC.encode({ cpuid: 0, regnum: d.reg, base: BigInt(d.base), limit: d.limit, access: d.access })),
    );
  }
  must('VM_SET_X2APIC_STATE', sys.ioctl(fd, REQ13.VM_SET_X2APIC_STATE, VM_X2APIC.encode({ cpuid: 0, state: X2apicState.ENABLED })));
  must('VM_ACTIVATE_CPU(0)', sys.ioctl(fd, REQ13.VM_ACTIVATE_CPU, Buffer.from([0, 0, 0, 0])));
}

/**
 * Runs the experiment once: creates the probe VM, asks, runs the BSP on a worker thread,
 * destroys the VM (on every path), and classifies the answers. 'unavailable' when no probe VM
 * can be made (vmm.ko missing, no privileges).
 */
export async function runKernelProbe(sys: VmmSyscalls, options: KernelProbeOptions): Promise<KernelProbeOutcome> {
  const started = performance.now();
  const elapsed = (): number => Number((performance.now() - started).toFixed(2));
  // The worker starts first: it binds the library while the VM is made and set up, and a
  // worker that cannot start leaves no VM behind.
  const bsp = startBspWorker(options.library);
  const registry = new VmRegistryAccess(sys);
  let vmName = '';
  let createError: string | null = 'EEXIST';
  for (let attempt = 0; attempt < 3 && createError === 'EEXIST'; attempt++) {
    vmName = `${PROBE_VM_PREFIX}${process.pid}-${probeSerial++}`;
    createError = registry.create(vmName);
  }
  if (createError !== null) {
    registry.close();
    void bsp.worker.terminate();
    return { kind: 'unavailable', why: unavailableBecause(createError, registry.via), elapsedMs: elapsed() };
  }
  let fd: number | null = null;
  let abi: Omit<ProbeAnswers, 'vmmctl' | 'apStart'> | null = null;
  let apStart: ApStartAnswer;
  let run: BspRunResult | null = null;
  let destroyError: string | null = null;
  try {
    const opened = sys.open(`/dev/vmm/${vmName}`);
    if (typeof opened !== 'number') {
      return { kind: 'unavailable', why: `cannot open /dev/vmm/${vmName}: ${opened}`, elapsedMs: elapsed() };
    }
    fd = opened;
    abi = askAbi(sys, fd);
    try {
      setUpVm(sys, fd, abi);
      bsp.worker.postMessage({ fd, abi: abi.vmrun144 !== 'ENOTTY' ? 'vmrun144' : 'vmrun32' } satisfies BspRunRequest);
      const bound = timeout(options.runTimeoutMs ?? PROBE_RUN_TIMEOUT_MS, null);
      run = await Promise.race([bsp.result, bound.promise]);
      bound.cancel();
      if (run === null) {
        // VM_RUN did not return: suspend the VM so that it does (vm_handle_suspend), then destroy.
        sys.ioctl(fd, REQ13.VM_SUSPEND, VM_SUSPEND.encode({ how: VmSuspendHow.POWEROFF }));
        const grace = timeout(SUSPEND_GRACE_MS, null);
        await Promise.race([bsp.result, grace.promise]);
        grace.cancel();
        apStart = { kind: 'inconclusive', why: `VM_RUN did not return within ${options.runTimeoutMs ?? PROBE_RUN_TIMEOUT_MS} ms` };
      } else {
        apStart = apStartFromRun(run);
      }
    } catch (err) {
      if (!(err instanceof SetupFailure)) throw err;
      apStart = { kind: 'inconclusive', why: `setting up the probe VM failed: ${err.message}` };
    }
  } finally {
    void bsp.worker.terminate();
    if (fd !== null) sys.close(fd);
    destroyError = registry.destroy(vmName);
    registry.close();
  }
  const answers: ProbeAnswers = { ...abi!, vmmctl: registry.via === 'vmmctl', apStart };
  return {
    kind: 'answered',
    vmName,
    answers,
    classification: classifyProbe(answers),
    exits: (run?.exits ?? []).map(describeExit),
    registry: registry.via,
    destroyError,
    elapsedMs: elapsed(),
  };
}
