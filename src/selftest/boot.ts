// One selftest boot: the command line (the same for a real host and the lab), the run with its
// time limit, and the VM's destroy on every path (an exit, a hang, an interrupted selftest).
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { exited, killTree, outputDrained, romBootArgs } from '../lab/run';
import { queryControl, type StatusReport } from '../daemon/control-server';
import { judgeBoot, type BootOutcome, type BootVerdict } from './judge';
import type { PlannedBoot } from './matrix';
import type { SelftestHost } from './host';

/** The CLI that `vmm-compat wrap` runs from (this package's). */
const CLI_SCRIPT = path.resolve(__dirname, '..', 'cli', 'main.js');

export interface BootCommandLine {
  file: string;
  args: string[];
  /** As an operator types it: `vmm-compat wrap ... -- BHYVE ARGS`, or `BHYVE ARGS`. */
  display: string[];
}

/**
 * The command line of one boot: the bhyve's ROM boot arguments (romBootArgs, what an operator
 * gives a real bhyve), run directly or through `vmm-compat wrap` with the host's wrap options.
 */
export function bootCommandLine(spec: { bhyve: string; vcpus: number; vmName: string; romFile: string; shim: boolean }, wrapOptions: readonly string[]): BootCommandLine {
  const bhyveArgs = romBootArgs({ vcpus: spec.vcpus, romFile: spec.romFile, vmName: spec.vmName });
  if (!spec.shim) return { file: spec.bhyve, args: bhyveArgs, display: [spec.bhyve, ...bhyveArgs] };
  const wrap = ['wrap', ...wrapOptions, '--', spec.bhyve, ...bhyveArgs];
  return { file: process.execPath, args: [CLI_SCRIPT, ...wrap], display: ['vmm-compat', ...wrap] };
}

/**
 * How a boot through the shim was served: daemon (vmm-compatd recorded a session of the VM),
 * fallback (the interposer could not reach vmm-compatd and acted alone on the kernel facts it had,
 * docs/design.md), unconfirmed (neither: no sign the interposer was there at all).
 */
export type ShimMode = 'daemon' | 'fallback' | 'unconfirmed';

export interface BootRecord {
  n: number;
  /** The bhyve's label ("13.1") and path. */
  bhyve: string;
  bhyvePath: string;
  vcpus: number;
  shim: boolean;
  vmName: string;
  command: string[];
  outcome: BootOutcome;
  /** As the guest reports them: online=N gives N - 1; null when it printed no count. */
  apsStarted: number | null;
  apsExpected: number;
  exitStatus: number | null;
  exitSignal: string | null;
  elapsedMs: number;
  verdict: BootVerdict;
  detail: string;
  /** With the shim: how it was served; null without. */
  shimMode: ShimMode | null;
  guestOutput: string;
  /** The end of bhyve's (and the interposer's) stderr. */
  bhyveStderr: string;
  /** Whether the VM was there after the boot and was destroyed; destroyError when that failed. */
  vmDestroyed: boolean;
  destroyError: string | null;
}

export class VmNameTaken extends Error {
  constructor(readonly vmName: string) {
    super(`a VM named ${vmName} exists already; selftest never touches a VM it did not create (destroy it yourself if it is a leftover: bhyvectl --destroy --vm=${vmName})`);
  }
}

export class BootInterrupted extends Error {}

/** After SIGKILL, how long bhyve gets to exit before its VM is destroyed under it, and again after. */
const KILL_GRACE_MS = 5000;
const STDERR_KEPT = 4000;

export function vmExists(host: SelftestHost, vmName: string): boolean {
  return fs.existsSync(path.join(host.deviceDir, vmName));
}

function waitExit(child: ChildProcess, ms: number): Promise<boolean> {
  return Promise.race([exited(child).then(() => true), new Promise<boolean>((r) => setTimeout(() => r(false), ms).unref())]);
}

/** The daemon's record of a VM, from its status (null: no daemon, or no record). */
async function daemonRecorded(host: SelftestHost, vmName: string): Promise<boolean> {
  try {
    const report = (await queryControl(host.socketDir, 'status')) as StatusReport;
    return (report.vms as { name?: string; sessionsTotal?: number }[]).some((vm) => vm.name === vmName && (vm.sessionsTotal ?? 1) > 0);
  } catch {
    return false;
  }
}

export interface BootOptions {
  romFile: string;
  timeoutMs: number;
  signal?: AbortSignal;
  progress: (line: string) => void;
}

export async function runBoot(host: SelftestHost, boot: PlannedBoot, o: BootOptions): Promise<BootRecord> {
  if (vmExists(host, boot.vmName)) throw new VmNameTaken(boot.vmName);
  const line = bootCommandLine({ bhyve: boot.bhyve.path, vcpus: boot.vcpus, vmName: boot.vmName, romFile: o.romFile, shim: boot.shim }, host.wrapOptions());
  const started = performance.now();
  // fd 0: a pipe that stays open and silent (a terminal nobody types on); bhyve writes the guest's
  // COM1 output to fd 1 (uart_emul.c uart_stdio_backend). Its own process group, to kill it whole.
  const child = spawn(line.file, line.args, { env: host.bootEnv(boot.bhyve.path, boot.shim), stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  let stdout = '';
  let stderr = '';
  let spawnError: string | null = null;
  child.stdout?.setEncoding('latin1').on('data', (s: string) => (stdout += s));
  child.stderr?.setEncoding('utf8').on('data', (s: string) => (stderr += s));
  child.stdin?.on('error', () => {});
  child.on('error', (err) => (spawnError = err.message));
  let timedOut = false;
  let interrupted = false;
  const stop = (): void => {
    interrupted = true;
    killTree(child);
  };
  const timer = setTimeout(() => {
    timedOut = true;
    killTree(child);
  }, o.timeoutMs);
  o.signal?.addEventListener('abort', stop, { once: true });
  if (o.signal?.aborted) stop();
  let exitedInTime = await Promise.race([exited(child).then(() => true), new Promise<boolean>((r) => child.once('error', () => r(false)))]);
  clearTimeout(timer);
  o.signal?.removeEventListener('abort', stop);
  const elapsedMs = Math.round(performance.now() - started);
  killTree(child);
  if (!exitedInTime && spawnError === null) exitedInTime = await waitExit(child, KILL_GRACE_MS);
  // The VM: destroyed whatever happened. A bhyve that SIGKILL did not end gets its VM destroyed
  // under it (on 15.0 that ends its VM_RUN), then another grace period.
  let vmDestroyed = false;
  let destroyError: string | null = null;
  if (vmExists(host, boot.vmName)) {
    destroyError = await host.calls.destroyVm(boot.vmName).catch((err: Error) => err.message);
    vmDestroyed = destroyError === null;
    o.progress(vmDestroyed ? `  destroyed VM ${boot.vmName}` : `  could not destroy VM ${boot.vmName}: ${destroyError}`);
  }
  if (child.exitCode === null && child.signalCode === null && spawnError === null) {
    if (!(await waitExit(child, KILL_GRACE_MS))) o.progress(`  warning: bhyve (pid ${child.pid}) did not exit after SIGKILL and the VM's destroy`);
  }
  await outputDrained(child);
  if (interrupted && !timedOut) throw new BootInterrupted(`interrupted during boot ${boot.n} (${boot.vmName})`);
  const judged = judgeBoot(boot, {
    exitStatus: child.exitCode,
    exitSignal: child.signalCode,
    timedOut,
    timeoutMs: o.timeoutMs,
    guestOutput: stdout,
    bhyveStderr: spawnError !== null ? `cannot run ${line.file}: ${spawnError}` : stderr,
  });
  let shimMode: ShimMode | null = null;
  if (boot.shim) {
    if (/cannot reach vmm-compatd/.test(stderr)) shimMode = 'fallback';
    else shimMode = (await daemonRecorded(host, boot.vmName)) ? 'daemon' : 'unconfirmed';
  }
  return {
    n: boot.n,
    bhyve: boot.bhyve.label,
    bhyvePath: boot.bhyve.path,
    vcpus: boot.vcpus,
    shim: boot.shim,
    vmName: boot.vmName,
    command: line.display,
    outcome: judged.outcome,
    apsStarted: judged.apsStarted,
    apsExpected: boot.vcpus - 1,
    exitStatus: child.exitCode,
    exitSignal: child.signalCode,
    elapsedMs,
    verdict: judged.verdict,
    detail: judged.detail,
    shimMode,
    guestOutput: stdout,
    bhyveStderr: (spawnError !== null ? `cannot run ${line.file}: ${spawnError}\n` : '') + stderr.slice(-STDERR_KEPT),
    vmDestroyed,
    destroyError,
  };
}
