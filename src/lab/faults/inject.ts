// One case of the fault matrix: a fresh kernel model and daemon, the case's boot sequence with a
// real 13.1 bhyve model through `vmm-compat wrap`, and the fault injected at the moment the
// kernel model sees the case's compat event (its tap: an open or an ioctl entering or leaving),
// never after a sleep. Then the checks of the failure policy (docs/design.md) against the
// model's ground truth.

import { VmExitcode, VmMemSeg15, VmSuspendHow15 } from '../../abi/enums';
import { REQ13, REQ14 } from '../../abi/ioctls';
import { VM_MEMMAP, decodeSpinupAp, decodeSuspended } from '../../abi/structs';
import { queryControl, type StatusReport } from '../../daemon/control-server';
import { VARIANT_FACTS } from '../../daemon/kernel-variant';
import { AP_STARTS_AP_STARTED, buildApStartsAp } from '../guests/ap-starts-ap';
import { buildSmpBoot } from '../guests/smp-boot';
import type { KernelTapEvent } from '../kernel/server';
import { LabBench, compatEventsOf, type BhyveRun, type BootResult, type Outcome } from '../run';
import { DAEMON_STOP_MS, EVENT_SPECS, type FaultCase, type FaultKernel, type Scenario } from './matrix';

/** How a case ended when every check passed, or `failed`. */
export const FAULT_OUTCOMES = ['booted', 'exited-with-message', 'killed-then-rebooted', 'failed'] as const;
export type FaultOutcome = (typeof FAULT_OUTCOMES)[number];

export interface FaultCaseResult {
  id: string;
  kernel: string;
  vcpus: number;
  event: string;
  point: number;
  fault: string;
  outcome: FaultOutcome;
  /** Every check that failed (empty unless outcome is `failed`). */
  problems: string[];
  /** The interposer planned alone (FALLBACK on bhyve's stderr) in some boot of the case. */
  interposerFellBack: boolean;
  /** The boots of the case, in order (after a killed bhyve: the one started after the destroy). */
  boots: { outcome: Outcome; status: number | null; signal: string | null; apsStarted: number[]; elapsedMs: number }[];
  elapsedMs: number;
}

export interface FaultCaseOptions {
  /** Bound on each bhyve run: past it the run is a hang. Default 30 s. */
  bootTimeoutMs?: number;
  /** Keep the lab directory (debugging). */
  keep?: boolean;
}

type Who = 'daemon' | 'bhyve';
type Trigger = (event: KernelTapEvent, who: Who) => boolean;

const ERANGE = 34;
const ENXIO = 6;

function vcpuArg(e: KernelTapEvent): number | null {
  return e.arg !== null && e.arg.length >= 4 ? e.arg.readInt32LE(0) : null;
}

function isRun(e: KernelTapEvent): boolean {
  return e.request === REQ13.VM_RUN || e.request === REQ14.VM_RUN;
}

function spinupTarget(e: KernelTapEvent): number | null {
  if (e.phase !== 'leave' || !isRun(e) || e.exit?.exitcode !== VmExitcode.SPINUP_AP) return null;
  return decodeSpinupAp(e.exit.u).vcpu;
}

/** The moment of the case's event (matrix.ts EVENT_SPECS[...].moment), as a tap predicate. */
function triggerFor(c: FaultCase): Trigger {
  const lastAp = c.vcpus - 1;
  const bias = VARIANT_FACTS[c.kernel.kernel].spinupBias;
  switch (c.event) {
    case 'kernel-abi':
      return (e, who) => who === 'bhyve' && e.phase === 'enter' && e.request === REQ13.VM_RUN && vcpuArg(e) === -1;
    case 'plan':
      return (e, who) => who === 'daemon' && e.phase === 'open';
    case 'eager-activation':
      return (e, who) => who === 'daemon' && e.phase === 'enter' && e.request === REQ13.VM_ACTIVATE_CPU && vcpuArg(e) === 1;
    case 'park':
      return (e, who) => who === 'bhyve' && e.phase === 'enter' && e.request === REQ13.VM_SUSPEND_CPU && vcpuArg(e) === lastAp;
    case 'handover':
      return (e, who) => who === 'bhyve' && e.phase === 'enter' && e.request === REQ13.VM_RESUME_CPU && vcpuArg(e) === c.point;
    case 'spinup-correction': {
      // smp-boot starts AP 1 first: a first SPINUP_AP on the BSP naming another vCPU needs the
      // correction (window: CPU_FFS is one-based, so it names 2).
      let first = true;
      return (e, who) => {
        if (who !== 'bhyve' || vcpuArg(e) !== 0) return false;
        const target = spinupTarget(e);
        if (target === null || !first) return false;
        first = false;
        return target !== 1;
      };
    }
    case 'spinup-duplicate': {
      const started = new Set<number>();
      return (e, who) => {
        const raw = who === 'bhyve' ? spinupTarget(e) : null;
        if (raw === null) return false;
        const target = raw - bias;
        if (started.has(target)) return true;
        started.add(target);
        return false;
      };
    }
    case 'spinup-rerouted':
      return (e, who) => who === 'bhyve' && (vcpuArg(e) ?? 0) > 0 && spinupTarget(e) !== null;
    case 'cpus-translated':
      return (e, who) => who === 'bhyve' && e.phase === 'leave' && e.request === REQ13.VM_GET_CPUS && e.errno === ERANGE;
    case 'vmrun-translated':
      return (e, who) => who === 'bhyve' && e.phase === 'enter' && e.request === REQ14.VM_RUN;
    case 'memseg-translated':
      return (e, who) =>
        who === 'bhyve' && e.phase === 'enter' && e.request === REQ13.VM_MMAP_MEMSEG && e.arg !== null && VM_MEMMAP.decode(e.arg).segid === VmMemSeg15.BOOTROM;
    case 'suspend':
      return (e, who) => who === 'bhyve' && e.phase === 'enter' && e.request === REQ13.VM_SUSPEND;
    case 'reinit':
      return (e, who) => who === 'bhyve' && e.phase === 'enter' && e.request === REQ13.VM_REINIT;
    case 'vm-destroyed':
      // Inside VM_RUN: the VM_SUSPEND_DESTROY exit; a thread in userland: ENXIO at its next VM_RUN.
      return (e, who) =>
        who === 'bhyve' &&
        e.phase === 'leave' &&
        isRun(e) &&
        (e.errno === ENXIO || (e.exit?.exitcode === VmExitcode.SUSPENDED && decodeSuspended(e.exit.u).how === VmSuspendHow15.DESTROY));
  }
}

interface BootSpec {
  /** A flat image printing on COM1: bhyve boots it through a boot ROM (LabBench.spawnBhyve). */
  guest: Uint8Array;
  /** How this boot ends by itself. */
  expect: Outcome;
  /** APs the guest starts (null: not checked). */
  aps: number[] | null;
  /** What the guest prints, its own count of the CPUs that checked in (null: not checked). */
  output: string | null;
}

function allAps(vcpus: number): number[] {
  return Array.from({ length: vcpus - 1 }, (_, i) => i + 1);
}

/** The guest's bounded waits end as soon as every AP checked in; long bounds absorb a loaded machine. */
const AP_WAIT_MS = 4000;

/** The smp-boot guest powering off (or resetting) after every AP checked in. */
function smpBoot(vcpus: number, finalAction: 'poweroff' | 'reset' = 'poweroff'): BootSpec {
  return { guest: buildSmpBoot({ apWaitMs: AP_WAIT_MS, finalAction, console: 'com1' }), expect: finalAction, aps: allAps(vcpus), output: `online=${vcpus}\n` };
}

function bootsFor(scenario: Scenario, vcpus: number): BootSpec[] {
  switch (scenario) {
    case 'boot':
      return [smpBoot(vcpus)];
    case 'ap-starts-ap':
      return [{ guest: buildApStartsAp('com1'), expect: 'poweroff', aps: [...AP_STARTS_AP_STARTED], output: `online=${AP_STARTS_AP_STARTED.length + 1}\n` }];
    case 'restart-ap':
      // The wait for a re-run that never comes (the swallowed SIPI) is the whole apWaitMs.
      return [{ guest: buildSmpBoot({ apWaitMs: 1000, restartAp: 1, console: 'com1' }), expect: 'poweroff', aps: allAps(vcpus), output: `online=${vcpus}\nrestart=0\n` }];
    case 'reset-then-boot':
      return [smpBoot(vcpus, 'reset'), smpBoot(vcpus)];
    case 'destroy-while-running':
      return [{ guest: buildSmpBoot({ apWaitMs: AP_WAIT_MS, console: 'com1' }), expect: 'destroyed', aps: null, output: null }];
  }
}

/**
 * The VM goes away while every vCPU is inside VM_RUN (the BSP waiting for the last check-in, the
 * other APs halted): a destroy of a running VM. The destroy is synchronous, as the last vCPU's
 * VM_RUN enters, so that call finds the VM suspended. (A destroy that lands while bhyve is still
 * starting an AP thread fails that thread's register writes, which 13.1's and 15.0's bhyve alike
 * assert on: bhyve's own behaviour, outside what the interposer sees.)
 */
function destroyWhenEveryVcpuRuns(bench: LabBench, vm: string, vcpus: number): Trigger {
  const inRun = new Map<number, number>();
  let done = false;
  return (e, who) => {
    const vcpu = vcpuArg(e);
    if (done || who !== 'bhyve' || !isRun(e) || vcpu === null || vcpu < 0 || e.phase === 'open') return false;
    inRun.set(vcpu, (inRun.get(vcpu) ?? 0) + (e.phase === 'enter' ? 1 : -1));
    if ([...inRun.values()].filter((n) => n > 0).length < vcpus) return false;
    done = true;
    bench.model.destroyVm(vm);
    return true;
  };
}

async function until(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  return true;
}

function countLines(log: string, vm: string, msg: string): number {
  return log.split('\n').filter((line) => line.includes(`"vm":"${vm}"`) && line.includes(`"msg":"${msg}"`)).length;
}

let caseSerial = 0;

export async function runFaultCase(c: FaultCase, options: FaultCaseOptions = {}): Promise<FaultCaseResult> {
  const started = Date.now();
  const bootTimeoutMs = options.bootTimeoutMs ?? 30000;
  const problems: string[] = [];
  const boots: BootResult[] = [];
  const vm = `fault-${process.pid}-${caseSerial++}`;
  const bench = await LabBench.start({
    kernel: c.kernel.kernel,
    compatFreebsd13: c.kernel.compatFreebsd13,
    compatFreebsd14: c.kernel.compatFreebsd14,
    keep: options.keep,
  });
  let resumed: Promise<void> = Promise.resolve();
  try {
    const daemon = await bench.startDaemon(['--log-level', 'info']);
    const daemonPid = daemon.pid!;
    const trigger = triggerFor(c);
    const scenario = EVENT_SPECS[c.event].scenario;
    let injected = false;
    const destroyer = destroyWhenEveryVcpuRuns(bench, vm, c.vcpus);
    let current: BhyveRun | null = null;

    const inject = (): void => {
      injected = true;
      switch (c.fault) {
        case 'daemon-sigkill':
          process.kill(daemonPid, 'SIGKILL');
          break;
        case 'daemon-sigstop':
          process.kill(daemonPid, 'SIGSTOP');
          resumed = new Promise((resolve) =>
            setTimeout(() => {
              process.kill(daemonPid, 'SIGCONT');
              resolve();
            }, DAEMON_STOP_MS),
          );
          break;
        case 'bhyve-sigkill':
          if (current !== null) bench.kill(current);
          break;
      }
    };

    const untap = bench.model.tap((e) => {
      if (e.vm !== vm) return;
      const who: Who = e.pid === daemonPid ? 'daemon' : 'bhyve';
      // Ground truth at every suspend: no active vCPU without a thread (vmm.c vm_handle_suspend
      // would wait for it forever).
      if (who === 'bhyve' && e.phase === 'enter' && e.request === REQ13.VM_SUSPEND) {
        const orphans = bench.model.vmSets(vm)?.withoutThread ?? [];
        if (orphans.length > 0) problems.push(`at VM_SUSPEND, active vCPUs without a thread: ${orphans.join(',')}`);
      }
      if (scenario === 'destroy-while-running') destroyer(e, who);
      if (!injected && trigger(e, who)) inject();
    });

    try {
      for (const spec of bootsFor(scenario, c.vcpus)) {
        current = bench.spawnBhyve({ bhyve: '13.1', vcpus: c.vcpus, vmName: vm, shim: true, timeoutMs: bootTimeoutMs, guest: spec.guest });
        const r = await current.result;
        boots.push(r);
        if (r.outcome === 'hang') {
          problems.push(`bhyve hung (no exit within ${bootTimeoutMs} ms): ${r.bhyveStderr.trim().slice(-300)}`);
          break;
        }
        if (c.fault === 'bhyve-sigkill' && injected) {
          if (r.bhyveExit.signal !== 'SIGKILL') problems.push(`bhyve was to be killed but exited ${r.bhyveExit.status ?? r.bhyveExit.signal}`);
          break;
        }
        checkEnded(bench, vm, spec, r, problems);
      }
      await resumed;
      if (!injected) problems.push(`the event never occurred (${EVENT_SPECS[c.event].moment})`);

      if (c.fault === 'bhyve-sigkill' && injected && boots.at(-1)?.outcome !== 'hang') {
        await afterKilledBhyve(bench, vm, c, bootTimeoutMs, boots, problems);
      }
      if (c.fault === 'daemon-sigstop') await checkDaemonServes(bench, vm, problems);
      if (c.fault === 'daemon-sigkill' && injected && daemon.signalCode === null && daemon.exitCode === null) {
        if (!(await until(() => daemon.signalCode !== null, 2000))) problems.push('the SIGKILLed daemon is still running');
      }
      // Destroyable: a VM still there goes with hw.vmm.destroy and leaves nothing behind.
      if (bench.model.vmNames().includes(vm)) {
        if (!bench.model.destroyVm(vm)) problems.push('hw.vmm.destroy refused the VM');
        if (!(await until(() => !bench.model.vmNames().includes(vm), 5000))) problems.push('the VM is still there after hw.vmm.destroy');
      }
    } finally {
      untap();
    }
  } catch (error) {
    problems.push(`the case itself failed: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    await resumed;
    await bench.close();
  }
  const outcome: FaultOutcome =
    problems.length > 0
      ? 'failed'
      : c.fault === 'bhyve-sigkill'
        ? 'killed-then-rebooted'
        : EVENT_SPECS[c.event].scenario === 'destroy-while-running'
          ? 'exited-with-message'
          : 'booted';
  return {
    id: c.id,
    kernel: c.kernel.name,
    vcpus: c.vcpus,
    event: c.event,
    point: c.point,
    fault: c.fault,
    outcome,
    problems,
    interposerFellBack: boots.some((b) => /FALLBACK/.test(b.bhyveStderr)),
    boots: boots.map((b) => ({ outcome: b.outcome, status: b.bhyveExit.status, signal: b.bhyveExit.signal, apsStarted: b.apsStarted, elapsedMs: b.elapsedMs })),
    elapsedMs: Date.now() - started,
  };
}

/** A boot that ended by itself: the expected way, every AP, and no half-suspended VM left. */
function checkEnded(bench: LabBench, vm: string, spec: BootSpec, r: BootResult, problems: string[]): void {
  const stderr = r.bhyveStderr.trim().slice(-400);
  if (r.outcome !== spec.expect) {
    problems.push(`expected ${spec.expect}, got ${r.outcome} (exit ${r.bhyveExit.status ?? r.bhyveExit.signal}): ${stderr}`);
    return;
  }
  if (spec.expect === 'destroyed' && !/was destroyed while running/.test(r.bhyveStderr)) {
    problems.push(`bhyve exited 4 without saying why: ${stderr}`);
  }
  if (spec.aps !== null && r.apsStarted.join(',') !== spec.aps.join(',')) {
    problems.push(`APs started ${r.apsStarted.join(',') || 'none'}, expected ${spec.aps.join(',')}`);
  }
  if (spec.output !== null && r.guestOutput !== spec.output) {
    problems.push(`the guest printed ${JSON.stringify(r.guestOutput)}, expected ${JSON.stringify(spec.output)}`);
  }
  const sets = bench.model.vmSets(vm);
  if (sets !== undefined) {
    const outside = sets.active.filter((v) => !sets.suspended.includes(v));
    if (outside.length > 0) problems.push(`after the ${r.outcome}, active vCPUs ${outside.join(',')} never joined the suspend`);
  }
}

/**
 * A killed 13.1 bhyve leaves its VM active and unsuspended (docs/design.md): the daemon must
 * drop the session, the VM must go with a destroy, and a new bhyve on the name must boot.
 */
async function afterKilledBhyve(bench: LabBench, vm: string, c: FaultCase, bootTimeoutMs: number, boots: BootResult[], problems: string[]): Promise<void> {
  const daemon = bench.daemon;
  if (daemon === null || daemon.exitCode !== null || daemon.signalCode !== null) {
    problems.push('the daemon did not survive the killed bhyve');
    return;
  }
  const dropped = await until(() => {
    const log = bench.daemonLog();
    return countLines(log, vm, 'session ended') >= countLines(log, vm, 'session started');
  }, 10000);
  if (!dropped) problems.push('the daemon did not drop the killed bhyve\'s session');
  if (bench.model.vmNames().includes(vm) && !bench.model.destroyVm(vm)) problems.push('hw.vmm.destroy refused the killed bhyve\'s VM');
  if (!(await until(() => !bench.model.vmNames().includes(vm), 5000))) {
    problems.push('the killed bhyve\'s VM is still there after hw.vmm.destroy');
    return;
  }
  const spec = smpBoot(c.vcpus);
  const again = await bench.spawnBhyve({ bhyve: '13.1', vcpus: c.vcpus, vmName: vm, shim: true, timeoutMs: bootTimeoutMs, guest: spec.guest }).result;
  boots.push(again);
  if (again.outcome === 'hang') problems.push(`the new bhyve hung: ${again.bhyveStderr.trim().slice(-300)}`);
  else checkEnded(bench, vm, spec, again, problems);
}

/** A daemon that was stopped and continued still serves: status answers and names the VM. */
async function checkDaemonServes(bench: LabBench, vm: string, problems: string[]): Promise<void> {
  const daemon = bench.daemon;
  if (daemon === null || daemon.exitCode !== null || daemon.signalCode !== null) {
    problems.push(`the daemon did not survive SIGSTOP/SIGCONT (${daemon?.exitCode ?? daemon?.signalCode})`);
    return;
  }
  try {
    const report = (await queryControl(bench.socketDir, 'status', 5000)) as StatusReport;
    if (!report.vms.some((v) => (v as { name?: unknown }).name === vm)) problems.push('after SIGCONT the daemon\'s status does not know the VM');
  } catch (error) {
    problems.push(`after SIGCONT the daemon does not answer status: ${error instanceof Error ? error.message : String(error)}`);
  }
}

/**
 * A fault-free run of one scenario: what the daemon recorded (its compat events, and
 * 'a plan with spinupBias > 0'). The fault matrix confirms its skipped combinations with it: the
 * product never had the skipped event to handle there. Only a hang or a run that could not
 * start counts as a problem: the scenario's guest may well not boot where the event cannot
 * occur (an AP starting an AP on a 13.1 kernel).
 */
export async function observeEvents(
  k: FaultKernel,
  vcpus: number,
  scenario: Scenario,
  options: FaultCaseOptions = {},
): Promise<{ recorded: Set<string>; problems: string[] }> {
  const recorded = new Set<string>();
  const problems: string[] = [];
  const vm = `observe-${process.pid}-${caseSerial++}`;
  const bench = await LabBench.start({ kernel: k.kernel, compatFreebsd13: k.compatFreebsd13, compatFreebsd14: k.compatFreebsd14, keep: options.keep });
  try {
    const daemon = await bench.startDaemon(['--log-level', 'info']);
    const destroyer = destroyWhenEveryVcpuRuns(bench, vm, vcpus);
    const untap = bench.model.tap((e) => {
      if (e.vm === vm && scenario === 'destroy-while-running') destroyer(e, e.pid === daemon.pid ? 'daemon' : 'bhyve');
    });
    try {
      for (const spec of bootsFor(scenario, vcpus)) {
        const r = await bench.spawnBhyve({ bhyve: '13.1', vcpus, vmName: vm, shim: true, timeoutMs: options.bootTimeoutMs ?? 30000, guest: spec.guest }).result;
        if (r.outcome === 'hang') problems.push(`bhyve hung: ${r.bhyveStderr.trim().slice(-300)}`);
      }
    } finally {
      untap();
    }
    // Events are sent without waiting: every session's end means every event was read.
    await until(() => {
      const log = bench.daemonLog();
      return countLines(log, vm, 'session ended') >= countLines(log, vm, 'session started');
    }, 10000);
    await bench.stopDaemon();
    const log = bench.daemonLog();
    for (const e of compatEventsOf(log)) if (e.vm === vm) recorded.add(e.event);
    if (log.split('\n').some((line) => line.includes('"msg":"plan"') && /"spinupBias":[1-9]/.test(line))) recorded.add('a plan with spinupBias > 0');
  } catch (error) {
    problems.push(`the run itself failed: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    await bench.close();
  }
  return { recorded, problems };
}
