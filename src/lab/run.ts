// One lab run: the vmm.ko model, a real bhyve model on a fresh VM (optionally through the real
// daemon and `vmm-compat wrap`), and the model's ground truth about which APs ran guest code.
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startKernelModel, type KernelModel, type KernelVariant as LabKernel } from './kernel/server';
import { standardGuest } from './guests';
import { ARTIFACTS, requireArtifact } from '../native-paths';

export const LAB_KERNELS = ['legacy13', 'window', 'fixed14'] as const;
export type LabKernelName = (typeof LAB_KERNELS)[number];
export const LAB_BHYVES = ['13.1', '14.0'] as const;
export type LabBhyve = (typeof LAB_BHYVES)[number];
export type Outcome = 'poweroff' | 'reset' | 'halt' | 'triplefault' | 'hang' | 'bhyve-error';

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
  /** One bhyve process per entry, all on the same VM (a reset followed by a restart). */
  boots?: BootSpec[];
  guest?: Uint8Array;
  vmName?: string;
  compatFreebsd13?: boolean;
  /** Extra environment for bhyve (e.g. VMM_COMPAT_REQUIRE_DAEMON). */
  bhyveEnv?: Record<string, string>;
  /** Called with one line per step, for progress output. */
  progress?: (line: string) => void;
  /** Include the daemon's log lines in the result. */
  collectDaemonLog?: boolean;
  /** Keep the lab directory (for debugging). */
  keep?: boolean;
}

export interface BootResult {
  apsStarted: number[];
  outcome: Outcome;
  bhyveExit: { status: number | null; signal: string | null };
  guestOutput: string;
  bhyveStderr: string;
  elapsedMs: number;
}

export interface LabResult extends BootResult {
  kernel: LabKernelName;
  bhyve: LabBhyve;
  vcpus: number;
  shim: boolean;
  apsExpected: number[];
  boots?: BootResult[];
  daemonLog?: string;
}

/** guestStats().suspended, the model's record of how the VM was suspended. */
const SUSPEND_OUTCOME: Readonly<Record<string, Outcome>> = {
  reset: 'reset',
  poweroff: 'poweroff',
  halt: 'halt',
  triplefault: 'triplefault',
};
/** 13.1 bhyverun.c vmexit_suspend: exit(0) reset, 1 poweroff, 2 halt, 3 triple fault. */
const EXPECTED_STATUS: Readonly<Record<string, number>> = { reset: 0, poweroff: 1, halt: 2, triplefault: 3 };

function waitForExit(child: ChildProcess, timeoutMs: number): Promise<{ status: number | null; signal: string | null; timedOut: boolean }> {
  return new Promise((resolve) => {
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killTree(child);
    }, timeoutMs);
    child.once('exit', (status, signal) => {
      clearTimeout(timer);
      resolve({ status, signal, timedOut });
    });
  });
}

function killTree(child: ChildProcess): void {
  if (child.pid === undefined || child.exitCode !== null) return;
  try {
    process.kill(-child.pid, 'SIGKILL'); // the whole process group: bhyve and its threads
  } catch {
    child.kill('SIGKILL');
  }
}

async function waitForFile(file: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!fs.existsSync(file)) {
    if (Date.now() > deadline) throw new Error(`${file} did not appear within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

interface Daemon {
  child: ChildProcess;
  socketDir: string;
  log: () => string;
}

async function startLabDaemon(root: string, kernel: LabKernelName, compatFreebsd13: boolean, env: NodeJS.ProcessEnv): Promise<Daemon> {
  const socketDir = path.join(root, 'run');
  const config = path.join(root, 'vmm-compat.conf');
  fs.writeFileSync(config, '# lab: everything comes from the command line\n');
  const logFile = path.join(root, 'daemon.log');
  const out = fs.openSync(logFile, 'a');
  const args = [
    path.resolve(__dirname, '..', 'cli', 'main.js'),
    'daemon',
    '--config', config,
    '--kernel', kernel,
    '--socket-dir', socketDir,
    '--syscall-library', requireArtifact(ARTIFACTS.bridge),
    '--device-dir', path.join(root, 'dev', 'vmm'),
    '--log-level', 'debug',
  ];
  if (!compatFreebsd13) args.push('--no-compat-freebsd13');
  const child = spawn(process.execPath, args, { env, stdio: ['ignore', out, out] });
  fs.closeSync(out);
  const log = (): string => (fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8') : '');
  try {
    await waitForFile(path.join(socketDir, 'vmm-compatd.sock'), 10000);
  } catch (err) {
    child.kill('SIGKILL');
    throw new Error(`the lab daemon did not start: ${(err as Error).message}\n${log()}`);
  }
  return { child, socketDir, log };
}

async function runBoot(
  model: KernelModel,
  opts: LabOptions,
  vmName: string,
  guestFile: string,
  env: NodeJS.ProcessEnv,
  daemon: Daemon | null,
): Promise<BootResult> {
  const bhyveBinary = requireArtifact(opts.bhyve === '13.1' ? ARTIFACTS.bhyve13 : ARTIFACTS.bhyve14);
  const bhyveArgs = ['-c', String(opts.vcpus), '-x', '-m', '2M', '-l', `bootrom,${guestFile}`, vmName];
  let command: string;
  let args: string[];
  const childEnv: NodeJS.ProcessEnv = { ...env, ...opts.bhyveEnv };
  if (daemon) {
    command = process.execPath;
    args = [
      path.resolve(__dirname, '..', 'cli', 'main.js'),
      'wrap',
      '--socket-dir', daemon.socketDir,
      '--extra-preload', requireArtifact(ARTIFACTS.bridge),
      '--',
      bhyveBinary,
      ...bhyveArgs,
    ];
  } else {
    command = bhyveBinary;
    args = bhyveArgs;
    childEnv.LD_PRELOAD = requireArtifact(ARTIFACTS.bridge);
  }
  const started = performance.now();
  const child = spawn(command, args, { env: childEnv, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  child.stdout?.setEncoding('utf8').on('data', (s: string) => (stdout += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  const exit = await waitForExit(child, opts.timeoutMs);
  const elapsedMs = Math.round(performance.now() - started);
  killTree(child);
  const stats = model.guestStats(vmName);
  const apsStarted = (stats?.instructions ?? [])
    .map((count: number, vcpu: number) => ({ count, vcpu }))
    .filter(({ count, vcpu }) => vcpu > 0 && count > 0)
    .map(({ vcpu }) => vcpu);
  let outcome: Outcome;
  if (exit.timedOut) {
    outcome = 'hang';
  } else {
    const suspended = stats?.suspended ? SUSPEND_OUTCOME[stats.suspended] : undefined;
    outcome = suspended && exit.status === EXPECTED_STATUS[suspended] ? suspended : 'bhyve-error';
  }
  return {
    apsStarted,
    outcome,
    bhyveExit: { status: exit.status, signal: exit.signal },
    guestOutput: stdout,
    bhyveStderr: stderr,
    elapsedMs,
  };
}

export async function runLab(opts: LabOptions): Promise<LabResult> {
  const progress = opts.progress ?? (() => {});
  const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-lab-'));
  const vmName = opts.vmName ?? `lab-${process.pid}-${Date.now() % 100000}`;
  const socketPath = path.join(root, 'kernel.sock');
  const model = await startKernelModel({
    socketPath,
    root,
    variant: opts.kernel as LabKernel,
    compatFreebsd13: opts.compatFreebsd13 ?? true,
  });
  const env: NodeJS.ProcessEnv = { ...process.env, VMMLAB_KERNEL_SOCK: socketPath, VMMLAB_ROOT: root };
  delete env.LD_PRELOAD;
  if (opts.bhyve === '14.0') env.VMMLAB_VMRUN_ABI = opts.kernel === 'fixed14' ? '14' : '13';
  let daemon: Daemon | null = null;
  let daemonLog: string | undefined;
  const boots: BootResult[] = [];
  try {
    if (opts.shim) {
      progress('starting vmm-compatd');
      daemon = await startLabDaemon(root, opts.kernel, opts.compatFreebsd13 ?? true, env);
    }
    const specs = opts.boots && opts.boots.length > 0 ? opts.boots : [{ guest: opts.guest }];
    for (const [index, spec] of specs.entries()) {
      const guestFile = path.join(root, `guest-${index}.bin`);
      fs.writeFileSync(guestFile, spec.guest ?? standardGuest('smp-boot'));
      progress(`boot ${index + 1}/${specs.length}: bhyve ${opts.bhyve} on ${opts.kernel}, ${opts.vcpus} vCPUs${opts.shim ? ', through the shim' : ''}`);
      const result = await runBoot(model, opts, vmName, guestFile, env, daemon);
      progress(`  ${result.outcome} after ${result.elapsedMs} ms, APs started: ${result.apsStarted.join(',') || 'none'}`);
      boots.push(result);
      if (result.outcome === 'hang') break;
    }
  } finally {
    model.destroyVm(vmName);
    if (daemon && daemon.child.exitCode === null) {
      daemon.child.kill('SIGTERM');
      await waitForExit(daemon.child, 5000);
    }
    if (daemon && opts.collectDaemonLog) daemonLog = daemon.log();
    await model.close();
    if (!opts.keep) fs.rmSync(root, { recursive: true, force: true });
  }
  const last = boots[boots.length - 1]!;
  const result: LabResult = {
    kernel: opts.kernel,
    bhyve: opts.bhyve,
    vcpus: opts.vcpus,
    shim: opts.shim,
    apsExpected: Array.from({ length: opts.vcpus - 1 }, (_, i) => i + 1),
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
