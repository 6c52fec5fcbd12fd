// One lab run: the vmm.ko model, a real bhyve model on a fresh VM (optionally through the real
// daemon and `vmm-compat wrap`), and the model's ground truth about which APs ran guest code.
// LabBench is the reusable part: the fault tests drive it step by step.
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startKernelModel, type KernelModel } from './kernel/server';
import { KERNEL_MODEL_VARIANTS, type KernelVariant } from './kernel/variant';
import { standardGuest, standardGuestRom } from './guests';
import { buildGuestRom } from './guests/rom';
import { ARTIFACTS, requireArtifact } from '../native-paths';
import { wrapEnvironment } from '../cli/commands/wrap';
import { defaultConfig } from '../config/config';
import { formatVcpuList } from '../daemon/plan';
import { bhyveOnKernel, FREEBSD_14_0_RELEASE } from '../daemon/bhyve-generation';
import { queryControl, type StatusReport } from '../daemon/control-server';

/** The kernel model's variants (src/lab/kernel/variant.ts). */
export const LAB_KERNELS = KERNEL_MODEL_VARIANTS;
export type LabKernelName = KernelVariant;
/**
 * The bhyve models: 13.1 (VM_MAXCPU 16), 13.5 (13.2-13.5: the old AP protocol, maxcpus from the
 * kernel), 14.0, 14.3 (stable/14: 14.0's model with 14.3's ABI tag) and 14-current (main of early
 * 2023, the window kernel's own bhyve: the new AP protocol with the 144-byte VM_RUN).
 */
export const LAB_BHYVES = ['13.1', '13.5', '14.0', '14.3', '14-current'] as const;
export type LabBhyve = (typeof LAB_BHYVES)[number];

/**
 * The __FreeBSD_version each model's ELF ABI tag carries (native-bindings/Makefile TAG_*), the
 * value the interposer and `doctor --bhyve` read (src/daemon/bhyve-generation.ts).
 */
export const LAB_BHYVE_VERSION: Readonly<Record<LabBhyve, number>> = {
  '13.1': 1301000,
  '13.5': 1305000,
  '14.0': FREEBSD_14_0_RELEASE,
  '14.3': 1403000,
  '14-current': 1400076,
};

/**
 * Why the lab will not pair this bhyve with this kernel, or null. A bhyve newer than its kernel is
 * not a pairing FreeBSD supports: the interposer refuses it (bhyveOnKernel), and so does the lab
 * without the shim, with the same words. The 14-CURRENT model stands for the bhyve of the window
 * kernel's own time, so the lab runs it only there.
 */
export function labPairingRefusal(bhyve: LabBhyve, kernel: LabKernelName): string | null {
  if (bhyve === '14-current' && kernel !== 'window') {
    return `--bhyve 14-current is the bhyve of main in early 2023, the window kernel's own; the lab runs it only with --kernel window (on ${kernel} use --bhyve 14.0 or 14.3)`;
  }
  const verdict = bhyveOnKernel(LAB_BHYVE_VERSION[bhyve], kernel);
  if (verdict.handling !== 'refused') return null;
  return kernel === 'window' && bhyve !== '14-current'
    ? `${verdict.why}; the window kernel's own bhyve is --bhyve 14-current`
    : verdict.why;
}

/** A pairing labPairingRefusal refuses, asked for without the shim (or a lab-only limit). */
export class LabPairingError extends Error {}
export type Outcome = 'poweroff' | 'reset' | 'halt' | 'triplefault' | 'destroyed' | 'hang' | 'bhyve-error';

export interface BootResult {
  apsStarted: number[];
  outcome: Outcome;
  bhyveExit: { status: number | null; signal: string | null };
  /** What the guest printed, in order: bhyve's stdout, where the lab's debug port 0xE9 and COM1 (`-l com1,stdio`) write. */
  guestOutput: string;
  bhyveStderr: string;
  elapsedMs: number;
  /**
   * Why a vCPU triple-faulted during this boot (the kernel model's reason, e.g. an opcode outside
   * the lab's x86 subset), if one did. A hang with a fault is a VM stuck in its suspend.
   */
  guestFault?: string;
}

export interface LabResult extends BootResult {
  kernel: LabKernelName;
  bhyve: LabBhyve;
  vcpus: number;
  shim: boolean;
  /** Booted through a boot ROM at the reset vector (-l bootrom), not a loader (bhyveload13). */
  bootrom: boolean;
  apsExpected: number[];
  /** With the shim: the variant vmm-compatd served and how it identified it (its status). */
  daemonKernel?: { variant: string; by: string };
  boots?: BootResult[];
  daemonLog?: string;
}

/** One `compat event` line of the daemon's JSON log (src/daemon/compat-server.ts event()). */
export interface CompatEventLine {
  vm: string;
  jail: string;
  event: string;
  vcpu: number;
  arg: number;
}

/** The compat events in a daemon log, in order. */
export function compatEventsOf(log: string | undefined): CompatEventLine[] {
  return (log ?? '')
    .split('\n')
    .filter((line) => line.includes('"compat event"'))
    .map((line) => JSON.parse(line) as CompatEventLine);
}

/** guestStats().suspended, the model's record of how the VM was suspended. */
const SUSPEND_OUTCOME: Readonly<Record<string, Outcome>> = {
  reset: 'reset',
  poweroff: 'poweroff',
  halt: 'halt',
  triplefault: 'triplefault',
  destroy: 'destroyed',
};
/**
 * 13.1 bhyverun.c vmexit_suspend: exit(0) reset, 1 poweroff, 2 halt, 3 triple fault. A VM
 * destroyed under a running bhyve (15.0: VM_SUSPEND_DESTROY) ends with 4, as 15.0's own
 * vmexit_suspend ends it (13.1 alone would say "invalid reason" and exit 100).
 */
const EXPECTED_STATUS: Readonly<Record<string, number>> = { reset: 0, poweroff: 1, halt: 2, triplefault: 3, destroyed: 4 };

/** Signals a child started with `detached: true` and its whole process group (wrap, bhyve, threads). */
export function killTree(child: ChildProcess, signal: NodeJS.Signals = 'SIGKILL'): void {
  if (child.pid === undefined || child.exitCode !== null || child.signalCode !== null) return;
  try {
    process.kill(-child.pid, signal); // the whole process group: bhyve and its threads
  } catch {
    child.kill(signal);
  }
}

export function exited(child: ChildProcess): Promise<{ status: number | null; signal: string | null }> {
  if (child.exitCode !== null || child.signalCode !== null) {
    return Promise.resolve({ status: child.exitCode, signal: child.signalCode });
  }
  return new Promise((resolve) => child.once('exit', (status, signal) => resolve({ status, signal })));
}

/**
 * After the exit: closes bhyve's fd 0 and waits until its stdout and stderr have been read to the
 * end (the guest's last bytes can arrive after the exit event), at most `ms`.
 */
export function outputDrained(child: ChildProcess, ms = 2000): Promise<void> {
  child.stdin?.destroy();
  const open = [child.stdout, child.stderr].filter((s) => s !== null && !s.readableEnded && !s.destroyed);
  if (open.length === 0) return Promise.resolve();
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    let pending = open.length;
    for (const s of open) {
      s!.once('close', () => {
        if (--pending === 0) {
          clearTimeout(timer);
          resolve();
        }
      });
    }
  });
}

async function waitFor(check: () => boolean, timeoutMs: number, what: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`${what} did not happen within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

const BHYVE_ARTIFACT: Readonly<Record<LabBhyve, string>> = {
  '13.1': ARTIFACTS.bhyve13,
  '13.5': ARTIFACTS.bhyve135,
  '14.0': ARTIFACTS.bhyve14,
  '14.3': ARTIFACTS.bhyve143,
  '14-current': ARTIFACTS.bhyve14cur,
};

/** The models built without an ABI tag too (BhyveSpec.untagged). */
const UNTAGGED_BHYVE_ARTIFACT: Readonly<Partial<Record<LabBhyve, string>>> = {
  '13.1': ARTIFACTS.untaggedBhyve13,
  '14.3': ARTIFACTS.untaggedBhyve143,
  '14-current': ARTIFACTS.untaggedBhyve14cur,
};

/** The model binary of a release, with its ABI tag or (13.1, 14.3, 14-current) without. */
function bhyveBinaryOf(bhyve: LabBhyve, untagged: boolean, variant: 'normal' | 'asan'): string {
  if (!untagged) return requireArtifact(BHYVE_ARTIFACT[bhyve], variant);
  const artifact = UNTAGGED_BHYVE_ARTIFACT[bhyve];
  if (artifact === undefined || variant !== 'normal') throw new Error(`no untagged ${variant} build of the bhyve ${bhyve} model (13.1, 14.3 and 14-current have one)`);
  return requireArtifact(artifact);
}

/** A lab bhyve model's binary (native-bindings/build), with its ABI tag. */
export function labBhyveBinary(bhyve: LabBhyve): string {
  return bhyveBinaryOf(bhyve, false, 'normal');
}

/** The most vCPUs the lab runs: 13.x userland's cpuset_t (CPU_SETSIZE 256). */
export const LAB_MAX_VCPUS = 256;

export interface RomBootArgs {
  vcpus: number;
  /** bhyve -m (the lab's default 2M). */
  memory?: string;
  romFile: string;
  vmName: string;
  /** Add the framebuffer device in slot 29. */
  fbuf?: boolean;
}

/**
 * The bhyve command line of a ROM boot, as an operator (or vm-bhyve) gives it to a real bhyve:
 * x2APIC, HLT and PAUSE exits, ACPI tables, a host bridge, the LPC bridge with the boot ROM and
 * COM1 on stdio (bhyve reads fd 0 and writes the guest's output to fd 1). The lab's bhyve models
 * take exactly these arguments, and `vmm-compat selftest` gives them to a real bhyve.
 */
export function romBootArgs(spec: RomBootArgs): string[] {
  return [
    '-c', String(spec.vcpus),
    '-m', spec.memory ?? '2M',
    '-x', '-H', '-P', '-A',
    '-s', '0,hostbridge',
    ...(spec.fbuf ? ['-s', '29,fbuf,tcp=0.0.0.0:5900'] : []),
    '-s', '31,lpc',
    '-l', 'com1,stdio',
    '-l', `bootrom,${spec.romFile}`,
    spec.vmName,
  ];
}

export interface BhyveSpec {
  bhyve: LabBhyve;
  vcpus: number;
  vmName: string;
  guest?: Uint8Array;
  /** Run through `vmm-compat wrap` and the bench's daemon socket directory. */
  shim: boolean;
  timeoutMs: number;
  env?: Record<string, string>;
  /** Preload the ASan+UBSan builds of the interposer and the bridge. */
  sanitized?: boolean;
  /** `wrap --require-daemon`: refuse to boot without vmm-compatd. */
  requireDaemon?: boolean;
  /** With shim: set wrap's environment here instead of running `vmm-compat wrap` (benchmarks). */
  direct?: boolean;
  /** The socket directory bhyve is given (a jail's); default the bench's host directory. */
  socketDir?: string;
  /** With shim: this libvmmcompat.so instead of the one in native-bindings/build (an installed one). */
  interposer?: string;
  /** bhyve -m (default 2M, the lab's guests are small). */
  memory?: string;
  /**
   * Boot through a boot ROM (romBootArgs: the VM_BOOTROM segment, the reset vector, COM1);
   * default true. The ROM is `romFile` if given, else `guest` (or smp-boot printing on COM1)
   * wrapped into a self-contained ROM for `vcpus` vCPUs. false: bhyve runs what a loader
   * (loadGuest, the lab's bhyveload) left in the VM.
   */
  bootrom?: boolean;
  /** With bootrom: this ROM file, booted as it is. */
  romFile?: string;
  /** The framebuffer device (-s 29,fbuf): a VM_FRAMEBUFFER segment mapped at its BAR. */
  fbuf?: boolean;
  /** The model built without an ELF ABI tag (13.1, 14.3, 14-current): the interposer learns its generation otherwise. */
  untagged?: boolean;
}

/** The lab's loader (bhyveload13) ahead of a bhyve without a boot ROM. */
export interface LoaderSpec {
  vmName: string;
  guest?: Uint8Array;
  shim: boolean;
  timeoutMs: number;
  sanitized?: boolean;
  socketDir?: string;
  /** With shim: this libvmmcompat.so instead of the one in native-bindings/build. */
  interposer?: string;
  /** bhyveload -m (default 2M): the memory bhyve will be given too. */
  memory?: string;
}

export interface BhyveRun {
  child: ChildProcess;
  result: Promise<BootResult>;
  /** The guest's output so far (bhyve's stdout: the debug port and COM1). */
  stdout(): string;
}

export interface BenchOptions {
  kernel: LabKernelName;
  compatFreebsd13?: boolean;
  /** options COMPAT_FREEBSD14 (main15). Default true. */
  compatFreebsd14?: boolean;
  /** kern.osreldate the kernel model reports (default: the variant's). */
  osreldate?: number;
  /** The host CPU count hw.vmm.maxcpu derives from (default LAB_DEFAULT_HOST_CPUS). */
  hostCpus?: number;
  /** Refuse every VM creation with EPERM (the model's refuseVmCreate): no probe VM can be made. */
  refuseVmCreate?: 'EPERM';
  keep?: boolean;
}

/** A kernel model (and optionally a daemon) that bhyve models run against, one after another. */
export class LabBench {
  private daemonChild: ChildProcess | null = null;
  private guestCount = 0;
  readonly socketDir: string;
  private readonly daemonLogFile: string;

  private constructor(
    readonly model: KernelModel,
    readonly root: string,
    readonly env: NodeJS.ProcessEnv,
    private readonly options: BenchOptions,
  ) {
    this.socketDir = path.join(root, 'run');
    this.daemonLogFile = path.join(root, 'daemon.log');
  }

  static async start(options: BenchOptions): Promise<LabBench> {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-lab-'));
    const socketPath = path.join(root, 'kernel.sock');
    const model = await startKernelModel({
      socketPath,
      root,
      variant: options.kernel,
      compatFreebsd13: options.compatFreebsd13 ?? true,
      compatFreebsd14: options.compatFreebsd14 ?? true,
      ...(options.osreldate !== undefined ? { osreldate: options.osreldate } : {}),
      hostCpus: options.hostCpus,
      ...(options.refuseVmCreate !== undefined ? { refuseVmCreate: options.refuseVmCreate } : {}),
    });
    const env: NodeJS.ProcessEnv = { ...process.env, VMMLAB_KERNEL_SOCK: socketPath, VMMLAB_ROOT: root };
    delete env.LD_PRELOAD;
    return new LabBench(model, root, env, options);
  }

  get kernel(): LabKernelName {
    return this.options.kernel;
  }

  /**
   * Starts vmm-compatd over the lab bridge; resolves once it listens. By default the daemon
   * identifies the kernel itself (its probe VM, kern.osreldate corroborating), keeping the probe's
   * result in this bench's directory; opts.kernel forces a variant (--kernel). opts.logLevel null:
   * no --log-level (the file decides); opts.nodeFlags: for Node itself (the soak's
   * --heapsnapshot-signal).
   */
  async startDaemon(extraArgs: string[] = [], opts: { logLevel?: string | null; kernel?: LabKernelName; nodeFlags?: string[] } = {}): Promise<ChildProcess> {
    const config = path.join(this.root, 'vmm-compat.conf');
    if (!fs.existsSync(config)) fs.writeFileSync(config, '# lab: everything comes from the command line\n');
    const out = fs.openSync(this.daemonLogFile, 'a');
    const args = [
      ...(opts.nodeFlags ?? []),
      path.resolve(__dirname, '..', 'cli', 'main.js'),
      'daemon',
      '--config', config,
      ...(opts.kernel !== undefined ? ['--kernel', opts.kernel] : []),
      '--probe-cache', this.probeCachePath,
      '--socket-dir', this.socketDir,
      '--syscall-library', requireArtifact(ARTIFACTS.bridge),
      '--device-dir', path.join(this.root, 'dev', 'vmm'),
      ...(opts.logLevel === null ? [] : ['--log-level', opts.logLevel ?? 'debug']),
      ...extraArgs,
    ];
    if (this.options.compatFreebsd13 === false) args.push('--no-compat-freebsd13');
    const socket = path.join(this.socketDir, 'vmm-compatd.sock');
    fs.rmSync(socket, { force: true });
    const child = spawn(process.execPath, args, { env: this.env, stdio: ['ignore', out, out] });
    fs.closeSync(out);
    this.daemonChild = child;
    try {
      await waitFor(() => fs.existsSync(socket) || child.exitCode !== null, 10000, 'vmm-compatd listening');
      if (child.exitCode !== null) throw new Error(`exited with status ${child.exitCode}`);
    } catch (err) {
      child.kill('SIGKILL');
      throw new Error(`the lab daemon did not start: ${(err as Error).message}\n${this.daemonLog()}`);
    }
    return child;
  }

  /** Where the bench's daemon keeps its kernel probe's result (the lab's own directory). */
  get probeCachePath(): string {
    return path.join(this.root, 'kernel-probe.json');
  }

  /** The variant the running daemon serves and how it knows it (its status). */
  async daemonKernel(): Promise<{ variant: string; by: string }> {
    // The control socket follows the compat socket startDaemon waits for: ask until it answers.
    const deadline = Date.now() + 10000;
    let report: StatusReport;
    for (;;) {
      try {
        report = (await queryControl(this.socketDir, 'status')) as StatusReport;
        break;
      } catch (err) {
        if (Date.now() > deadline || this.daemonChild?.exitCode !== null) throw err;
        await new Promise((r) => setTimeout(r, 20));
      }
    }
    return { variant: report.kernel?.variant ?? report.kernelVariant, by: report.kernel?.by ?? 'unknown' };
  }

  /** The configuration file the bench's daemon and wrap read. */
  get configPath(): string {
    return path.join(this.root, 'vmm-compat.conf');
  }

  get daemon(): ChildProcess | null {
    return this.daemonChild;
  }

  async stopDaemon(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const child = this.daemonChild;
    if (!child) return;
    this.daemonChild = null;
    child.kill(signal);
    await exited(child);
  }

  daemonLog(): string {
    return fs.existsSync(this.daemonLogFile) ? fs.readFileSync(this.daemonLogFile, 'utf8') : '';
  }

  /** Resolves when a daemon log line matches (the fault tests sequence kills on these). */
  waitForDaemonLog(pattern: RegExp, timeoutMs = 10000): Promise<void> {
    return waitFor(() => this.daemonLog().split('\n').some((line) => pattern.test(line)), timeoutMs, `daemon log ${pattern}`);
  }

  private writeGuest(guest: Uint8Array | undefined): string {
    const guestFile = path.join(this.root, `guest-${this.guestCount++}.bin`);
    fs.writeFileSync(guestFile, guest ?? standardGuest('smp-boot'));
    return guestFile;
  }

  /** A boot ROM for a guest image (src/lab/guests/rom.ts): the guest, or smp-boot on COM1. */
  private writeRom(guest: Uint8Array | undefined, vcpus: number): string {
    const file = path.join(this.root, `bootrom-${this.guestCount++}.rom`);
    fs.writeFileSync(file, guest === undefined ? standardGuestRom('smp-boot', vcpus) : buildGuestRom(guest, { vcpus }));
    return file;
  }

  /**
   * The loader step of a boot without a ROM, as bhyveload(8) runs before bhyve: creates (or
   * reinitialises) the VM, sets up its memory, places the guest and sets the BSP's entry state.
   * With `shim` it runs through `vmm-compat wrap` too (its memory set-up needs the same
   * translations on a kernel without COMPAT_FREEBSD14).
   */
  async loadGuest(spec: LoaderSpec): Promise<{ status: number | null; signal: string | null; stderr: string }> {
    const variant = spec.sanitized ? 'asan' : 'normal';
    const loader = requireArtifact(ARTIFACTS.bhyveload13, variant);
    const loaderArgs = ['-m', spec.memory ?? '2M', '-d', this.writeGuest(spec.guest), spec.vmName];
    const env: NodeJS.ProcessEnv = { ...this.env };
    const bridge = requireArtifact(ARTIFACTS.bridge, variant);
    const sanitizerRuntime = spec.sanitized ? sanitizerRuntimes() : [];
    if (spec.sanitized) env.ASAN_OPTIONS = 'detect_leaks=0:abort_on_error=1';
    let command: string;
    let args: string[];
    if (spec.shim) {
      command = process.execPath;
      args = [
        path.resolve(__dirname, '..', 'cli', 'main.js'),
        'wrap',
        '--config', this.configPath,
        '--socket-dir', spec.socketDir ?? this.socketDir,
        '--interposer', spec.interposer ?? requireArtifact(ARTIFACTS.interposer, variant),
        ...sanitizerRuntime.flatMap((lib) => ['--preload-first', lib]),
        '--extra-preload', bridge,
        '--',
        loader,
        ...loaderArgs,
      ];
      if (!fs.existsSync(this.configPath)) fs.writeFileSync(this.configPath, '');
    } else {
      command = loader;
      args = loaderArgs;
      env.LD_PRELOAD = [...sanitizerRuntime, bridge].join(' ');
    }
    const child = spawn(command, args, { env, stdio: ['ignore', 'ignore', 'pipe'], detached: true });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => killTree(child), spec.timeoutMs);
    const exit = await exited(child);
    clearTimeout(timer);
    return { ...exit, stderr };
  }

  spawnBhyve(spec: BhyveSpec): BhyveRun {
    const variant = spec.sanitized ? 'asan' : 'normal';
    const bhyveBinary = bhyveBinaryOf(spec.bhyve, spec.untagged ?? false, 'normal');
    const romBoot = spec.bootrom ?? true;
    let bhyveArgs: string[];
    if (romBoot) {
      const romFile = spec.romFile ?? this.writeRom(spec.guest, spec.vcpus);
      bhyveArgs = romBootArgs({ vcpus: spec.vcpus, memory: spec.memory, romFile, vmName: spec.vmName, fbuf: spec.fbuf });
    } else {
      bhyveArgs = ['-c', String(spec.vcpus), '-x', '-m', spec.memory ?? '2M'];
      if (spec.fbuf === true) bhyveArgs.push('-s', '29,fbuf,tcp=0.0.0.0:5900');
      bhyveArgs.push(spec.vmName);
    }
    const env: NodeJS.ProcessEnv = { ...this.env, ...spec.env };
    const bridge = requireArtifact(ARTIFACTS.bridge, variant);
    const sanitizerRuntime = spec.sanitized ? sanitizerRuntimes() : [];
    if (spec.sanitized) {
      env.ASAN_OPTIONS = 'detect_leaks=0:abort_on_error=1';
      env.UBSAN_OPTIONS = 'halt_on_error=1:print_stacktrace=1';
    }
    const interposer = spec.interposer ?? (spec.shim ? requireArtifact(ARTIFACTS.interposer, variant) : '');
    let command: string;
    let args: string[];
    if (spec.shim && spec.direct) {
      command = bhyveBinary;
      args = bhyveArgs;
      Object.assign(
        env,
        wrapEnvironment(env, {
          socketDir: spec.socketDir ?? this.socketDir,
          interposer,
          preloadFirst: sanitizerRuntime,
          extraPreload: [bridge],
          requireDaemon: Boolean(spec.requireDaemon),
          config: defaultConfig(),
        }),
        spec.env,
      );
    } else if (spec.shim) {
      command = process.execPath;
      args = [
        path.resolve(__dirname, '..', 'cli', 'main.js'),
        'wrap',
        '--config', path.join(this.root, 'vmm-compat.conf'),
        '--socket-dir', spec.socketDir ?? this.socketDir,
        '--interposer', interposer,
        ...sanitizerRuntime.flatMap((lib) => ['--preload-first', lib]),
        ...(spec.requireDaemon ? ['--require-daemon'] : []),
        '--extra-preload', bridge,
        '--',
        bhyveBinary,
        ...bhyveArgs,
      ];
      if (!fs.existsSync(path.join(this.root, 'vmm-compat.conf'))) fs.writeFileSync(path.join(this.root, 'vmm-compat.conf'), '');
    } else {
      command = bhyveBinary;
      args = bhyveArgs;
      env.LD_PRELOAD = [...sanitizerRuntime, bridge].join(' ');
    }
    // An AP "started" in this boot ran guest code during it: on a VM that lives on from an earlier
    // boot (a reset, then bhyve again through VM_REINIT), only what it ran since counts.
    const before = this.model.guestStats(spec.vmName);
    const started = performance.now();
    // `-l com1,stdio`: bhyve reads COM1's input from fd 0 and writes its output to fd 1
    // (uart_emul.c uart_stdio_backend, since r346550), where the lab's debug port 0xE9 prints too.
    // fd 0 is a pipe kept open and silent for the whole run, as a terminal nobody types on.
    const child = spawn(command, args, { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
    let stdout = '';
    let stderr = '';
    child.stdout?.setEncoding('latin1').on('data', (s: string) => (stdout += s));
    child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    child.stdin?.on('error', () => {}); // EPIPE once bhyve is gone
    const result = (async (): Promise<BootResult> => {
      let timedOut = false;
      const timer = setTimeout(() => {
        timedOut = true;
        killTree(child);
      }, spec.timeoutMs);
      const exit = await exited(child);
      clearTimeout(timer);
      const elapsedMs = Math.round(performance.now() - started);
      killTree(child);
      await outputDrained(child);
      const stats = this.model.guestStats(spec.vmName);
      const earlier = before !== undefined && stats !== undefined && before.created === stats.created ? before.instructions : [];
      const apsStarted = (stats?.instructions ?? [])
        .map((count: number, vcpu: number) => ({ count: count - (earlier[vcpu] ?? 0), vcpu }))
        .filter(({ count, vcpu }) => vcpu > 0 && count > 0)
        .map(({ vcpu }) => vcpu);
      let outcome: Outcome;
      if (timedOut) outcome = 'hang';
      else {
        const suspended = stats?.suspended ? SUSPEND_OUTCOME[stats.suspended] : undefined;
        outcome = suspended && exit.status === EXPECTED_STATUS[suspended] ? suspended : 'bhyve-error';
      }
      const sameVm = before !== undefined && stats !== undefined && before.created === stats.created;
      const fault = stats?.lastFault ?? null;
      const guestFault = fault !== null && !(sameVm && before?.lastFault === fault) ? { guestFault: fault } : {};
      return { apsStarted, outcome, bhyveExit: exit, guestOutput: stdout, bhyveStderr: stderr, elapsedMs, ...guestFault };
    })();
    return { child, result, stdout: () => stdout };
  }

  /** Kills a bhyve run (and its threads) the way SIGKILL from an operator would. */
  kill(run: BhyveRun): void {
    killTree(run.child);
  }

  async close(): Promise<void> {
    await this.stopDaemon();
    await this.model.close();
    if (!this.options.keep) fs.rmSync(this.root, { recursive: true, force: true });
  }
}

/** The sanitizer runtimes an ASan-built library needs in front of it when preloaded. */
export function sanitizerRuntimes(): string[] {
  return ['libasan.so', 'libubsan.so'].map((lib) => execFileSync('gcc', [`-print-file-name=${lib}`], { encoding: 'utf8' }).trim());
}

export interface BootSpec {
  /** Guest image bytes (default: the standard smp-boot guest). */
  guest?: Uint8Array;
}

export interface LabOptions {
  kernel: LabKernelName;
  bhyve: LabBhyve;
  vcpus: number;
  shim: boolean;
  timeoutMs: number;
  /** Boot through a boot ROM (default false: the loader, bhyveload13, then bhyve). */
  bootrom?: boolean;
  /** Boot this ROM file (implies bootrom; `guest` and `boots[].guest` are then not used). */
  romFile?: string;
  /** Add the framebuffer device. */
  fbuf?: boolean;
  compatFreebsd14?: boolean;
  osreldate?: number;
  /** One bhyve process per entry, all on the same VM (a reset followed by a restart). */
  boots?: BootSpec[];
  guest?: Uint8Array;
  vmName?: string;
  compatFreebsd13?: boolean;
  /** The host CPU count hw.vmm.maxcpu derives from (default LAB_DEFAULT_HOST_CPUS). */
  hostCpus?: number;
  /** Extra environment for bhyve (e.g. VMM_COMPAT_REQUIRE_DAEMON). */
  bhyveEnv?: Record<string, string>;
  sanitized?: boolean;
  /** Called with one line per step, for progress output. */
  progress?: (line: string) => void;
  /** Include the daemon's log lines in the result. */
  collectDaemonLog?: boolean;
  /** Keep the lab directory (for debugging). */
  keep?: boolean;
  /** With shim: the libvmmcompat.so to preload (default: native-bindings/build's). */
  interposer?: string;
  /** The model without an ELF ABI tag (13.1, 14.3 and 14-current). */
  untagged?: boolean;
  /** With shim: force vmm-compatd's kernel variant (default: it identifies the kernel itself). */
  daemonKernel?: LabKernelName;
}

/**
 * Throws LabPairingError for a pairing labPairingRefusal names: always for the 14-CURRENT model
 * off the window kernel, and without the shim for a bhyve newer than its kernel (with the shim the
 * interposer refuses it, and that refusal is what the run shows).
 */
export function checkLabPairing(bhyve: LabBhyve, kernel: LabKernelName, shim: boolean): void {
  const refusal = labPairingRefusal(bhyve, kernel);
  if (refusal === null) return;
  if (shim && bhyve !== '14-current') return;
  throw new LabPairingError(refusal);
}

export async function runLab(opts: LabOptions): Promise<LabResult> {
  checkLabPairing(opts.bhyve, opts.kernel, opts.shim);
  const progress = opts.progress ?? (() => {});
  const bench = await LabBench.start({
    kernel: opts.kernel,
    compatFreebsd13: opts.compatFreebsd13,
    compatFreebsd14: opts.compatFreebsd14,
    osreldate: opts.osreldate,
    hostCpus: opts.hostCpus,
    keep: opts.keep,
  });
  const bootrom = (opts.bootrom ?? false) || opts.romFile !== undefined;
  const vmName = opts.vmName ?? `lab-${process.pid}-${Date.now() % 100000}`;
  const boots: BootResult[] = [];
  let daemonLog: string | undefined;
  let daemonKernel: { variant: string; by: string } | undefined;
  try {
    if (opts.shim) {
      progress(opts.daemonKernel ? `starting vmm-compatd (kernel variant forced: ${opts.daemonKernel})` : 'starting vmm-compatd (it identifies the kernel)');
      await bench.startDaemon([], opts.daemonKernel !== undefined ? { kernel: opts.daemonKernel } : {});
      daemonKernel = await bench.daemonKernel();
      progress(`  vmm-compatd serves ${daemonKernel.variant} (by ${daemonKernel.by})`);
    }
    const specs = opts.boots && opts.boots.length > 0 ? opts.boots : [{ guest: opts.guest }];
    for (const [index, spec] of specs.entries()) {
      progress(`boot ${index + 1}/${specs.length}: bhyve ${opts.bhyve} on ${opts.kernel}, ${opts.vcpus} vCPUs${opts.shim ? ', through the shim' : ''}${bootrom ? ', boot ROM' : ''}`);
      if (!bootrom) {
        progress('  loader (bhyveload): memory and the guest at its entry point');
        const loaded = await bench.loadGuest({
          vmName,
          guest: spec.guest,
          shim: opts.shim,
          timeoutMs: opts.timeoutMs,
          sanitized: opts.sanitized,
          interposer: opts.interposer,
        });
        if (loaded.status !== 0) {
          const failed: BootResult = {
            apsStarted: [],
            outcome: 'bhyve-error',
            bhyveExit: { status: loaded.status, signal: loaded.signal },
            guestOutput: '',
            bhyveStderr: `bhyveload: ${loaded.stderr}`,
            elapsedMs: 0,
          };
          progress(`  the loader failed (exit ${String(loaded.status ?? loaded.signal)}): ${loaded.stderr.trim()}`);
          boots.push(failed);
          break;
        }
      }
      const run = bench.spawnBhyve({
        bootrom,
        ...(opts.romFile !== undefined ? { romFile: opts.romFile } : {}),
        fbuf: opts.fbuf,
        bhyve: opts.bhyve,
        vcpus: opts.vcpus,
        vmName,
        guest: spec.guest,
        shim: opts.shim,
        timeoutMs: opts.timeoutMs,
        env: opts.bhyveEnv,
        sanitized: opts.sanitized,
        interposer: opts.interposer,
        untagged: opts.untagged,
      });
      const result = await run.result;
      progress(`  ${result.outcome} after ${result.elapsedMs} ms, APs started: ${formatVcpuList(result.apsStarted) || 'none'}`);
      boots.push(result);
      if (result.outcome === 'hang') break;
    }
  } finally {
    bench.model.destroyVm(vmName);
    await bench.stopDaemon();
    if (opts.collectDaemonLog) daemonLog = bench.daemonLog();
    await bench.close();
  }
  const last = boots[boots.length - 1]!;
  const result: LabResult = {
    kernel: opts.kernel,
    bhyve: opts.bhyve,
    vcpus: opts.vcpus,
    shim: opts.shim,
    bootrom,
    apsExpected: Array.from({ length: opts.vcpus - 1 }, (_, i) => i + 1),
    ...(daemonKernel !== undefined ? { daemonKernel } : {}),
    ...last,
  };
  if (boots.length > 1) result.boots = boots;
  if (daemonLog !== undefined) result.daemonLog = daemonLog;
  return result;
}

/** Exit status of `vmm-compat lab`: 0 iff every expected AP started and the guest powered off. */
export function labSucceeded(result: LabResult): boolean {
  return result.outcome === 'poweroff' && result.apsExpected.every((ap) => result.apsStarted.includes(ap));
}
