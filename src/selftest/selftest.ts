// `vmm-compat selftest`: proves on this host, with its kernel and its legacy bhyves, that the bug
// is there and that the shim fixes it. Every boot is judged from what an operator sees (judge.ts);
// the same code runs against the lab's kernel model with --lab (host.ts).
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../config/config';
import { queryControl, type StatusReport } from '../daemon/control-server';
import { bhyveOnKernel, generationOf, releaseName } from '../daemon/bhyve-generation';
import { isKernelVariant, type KernelVariant } from '../daemon/kernel-variant';
import { processAlive, throwawayVms } from '../daemon/throwaway-vms';
import { checkVmmLoaded } from '../doctor/checks';
import { readElf } from '../doctor/elf';
import { LEGACY_BHYVE_DIR } from '../jails/jail-setup';
import { LAB_BHYVES, LAB_BHYVE_VERSION, labBhyveBinary, labPairingRefusal, type LabBench, type LabBhyve, type LabKernelName } from '../lab/run';
import { usageError } from '../cli/usage';
import { BootInterrupted, VmNameTaken, runBoot, vmExists, type BootRecord } from './boot';
import { labHost, realHost, type SelftestHost } from './host';
import { SELFTEST_VM_PREFIX, bhyveVcpuLimit, planBoots, vcpuCounts, type BhyveUnderTest } from './matrix';
import { findInstalledRom, openSelftestRom, type SelftestRom } from './rom';

/** The installed legacy bhyve (docs/install.md): what selftest boots unless told otherwise. */
export const DEFAULT_LEGACY_BHYVE = `${LEGACY_BHYVE_DIR}/bhyve`;
export const DEFAULT_TIMEOUT_MS = 30000;

export interface SelftestOptions {
  /** null: this FreeBSD host; else the lab's kernel variant. */
  lab: LabKernelName | null;
  /** --bhyve: paths on a host, lab model versions (13.1, 13.5, 14.0) with --lab; [] for the default. */
  bhyves: string[];
  maxVcpus: number;
  timeoutMs: number;
  /** --rom, or null for the installed smp-boot ROM. */
  rom: string | null;
  config: Config;
  configPath: string;
  configExplicit: boolean;
  interposer: string | null;
  /** --lab only: no lab vmm-compatd. */
  noDaemon: boolean;
  /** --lab only: the lab host's CPU count (hw.vmm.maxcpu). */
  hostCpus?: number;
  progress: (line: string) => void;
  signal?: AbortSignal;
  /** Tests: the <pid> of the VM names (default process.pid), and a lab bench already running. */
  pid?: number;
  labBench?: LabBench;
}

export type DaemonFacts =
  | { running: true; version: string; pid: number; socketDir: string }
  | { running: false; socketDir: string; why: string };

export interface HostFacts {
  mode: 'host' | 'lab';
  labKernel: LabKernelName | null;
  /** kern.version's first line. */
  kernel: string | null;
  osreldate: number | null;
  /** The kernel variant and how it was identified: by vmm-compatd (its status) or by `vmm-compat probe`. */
  variant: KernelVariant | null;
  variantBy: 'experiment' | 'osreldate' | 'config' | null;
  variantWhy: string;
  variantFrom: 'daemon' | 'probe' | null;
  /** hw.vmm.maxcpu, or null where the kernel has none (13.0/13.1). */
  maxcpu: number | null;
  vmmLoaded: boolean;
  vmmWhy: string;
  root: boolean;
  daemon: DaemonFacts;
  failurePolicy: Config['failurePolicy'];
  /** kernel_variant in the configuration (what the interposer falls back on without the daemon). */
  configuredVariant: Config['kernelVariant'];
  bhyves: BhyveUnderTest[];
  rom: { file: string; name: string } | null;
  maxVcpus: number;
  timeoutMs: number;
  /** VMs of an earlier selftest whose process is gone (a SIGKILL): left alone, named here. */
  leftoverVms: string[];
}

export interface SelftestSummary {
  boots: number;
  /** Through the shim: passed and failed. */
  passed: number;
  failed: number;
  /** Without the shim: the bug this host has, and boots that need no shim. */
  hostBug: number;
  worksWithoutShim: number;
}

export interface SelftestReport {
  host: HostFacts;
  runs: BootRecord[];
  summary: SelftestSummary;
  /** Why selftest did not boot (or stopped booting), or null. */
  refusal: string | null;
  /** Exit status 0: every boot through the shim started every AP and powered off. */
  ok: boolean;
}

export class SelftestInterrupted extends Error {}

/** What the refusals look at (a pure function of it: refusalFor). */
export interface Preflight {
  mode: 'host' | 'lab';
  platform: string;
  root: boolean;
  vmmLoaded: boolean;
  vmmWhy: string;
  bhyves: number;
  defaultBhyve: string;
  rom: { file: string } | { file: null; searched: string[] };
  takenNames: string[];
  daemonRunning: boolean;
  failurePolicy: Config['failurePolicy'];
}

/** Why selftest must not boot anything here, or null. The first reason that applies. */
export function refusalFor(p: Preflight): string | null {
  if (p.mode === 'host' && p.platform !== 'freebsd') {
    return `selftest boots VMs with bhyve on vmm.ko: run it on the FreeBSD host (here: ${p.platform}); without FreeBSD, --lab KERNEL runs it against the lab's kernel model`;
  }
  if (p.mode === 'host' && !p.root) return 'selftest must run as root: it creates and destroys VMs (bhyve, hw.vmm.create/destroy)';
  if (!p.vmmLoaded) return `vmm.ko is not loaded (${p.vmmWhy}): kldload vmm, and add vmm_load="YES" to /boot/loader.conf`;
  if (p.bhyves === 0) return `no legacy bhyve found: none at ${p.defaultBhyve} (docs/install.md); install one there or name it with --bhyve PATH`;
  if (p.rom.file === null) {
    return `no ROM found: the smp-boot guest's boot ROM is not at ${p.rom.searched.join(' nor ')}; reinstall vmm-compat, write one with "vmm-compat guests --write DIR" and pass --rom DIR/smp-boot.rom, or set VMM_COMPAT_GUESTS_DIR`;
  }
  if (p.takenNames.length > 0) {
    return `VM name${p.takenNames.length > 1 ? 's' : ''} taken: ${p.takenNames.join(', ')} exist${p.takenNames.length > 1 ? '' : 's'} already; selftest never touches a VM it did not create (if ${p.takenNames.length > 1 ? 'they are leftovers' : 'it is a leftover'}, destroy ${p.takenNames.length > 1 ? 'them' : 'it'} with bhyvectl --destroy --vm=NAME)`;
  }
  if (!p.daemonRunning && p.failurePolicy === 'refuse') {
    return 'vmm-compatd is not running and failure_policy = refuse: every boot through the shim would be refused; start it (service vmm_compatd start), or set failure_policy = fallback to test the interposer alone';
  }
  return null;
}

/** vmm-compat-selftest-<pid>-<n> VMs in deviceDir of a process that is gone (never ours). */
export function leftoverSelftestVms(deviceDir: string, ownPid: number): string[] {
  return throwawayVms(deviceDir, SELFTEST_VM_PREFIX)
    .filter(({ pid }) => pid !== ownPid && !processAlive(pid))
    .map(({ name }) => name)
    .sort();
}

/** A bhyve on a host: its release from the ELF ABI tag (doctor's reader) and what it needs here. */
function describeHostBhyve(file: string, variant: KernelVariant | null, maxcpu: number | null): BhyveUnderTest {
  let tag: number | null;
  try {
    tag = readElf(file).freebsdAbiTag;
  } catch (err) {
    throw usageError(`--bhyve ${file}: ${err instanceof Error ? err.message : String(err)}`);
  }
  const generation = tag === null ? null : generationOf(tag);
  const verdict = tag !== null && variant !== null ? bhyveOnKernel(tag, variant) : null;
  const limit = bhyveVcpuLimit(generation, maxcpu);
  return {
    path: file,
    label: tag === null ? `bhyve (release unknown)` : releaseName(tag),
    version: tag,
    release: tag === null ? null : releaseName(tag),
    releaseFrom: tag === null ? 'unknown' : 'abi-tag',
    generation,
    handling: verdict?.handling ?? null,
    needsShim: verdict?.needsShim ?? null,
    why: verdict?.why ?? (tag === null ? 'no FreeBSD ABI tag: its release is unknown; the interposer learns its generation from its first requests' : 'the kernel variant is unknown'),
    vcpuLimit: limit.limit,
    vcpuLimitWhy: limit.why,
  };
}

function describeLabBhyve(model: LabBhyve, kernel: LabKernelName, maxcpu: number | null): BhyveUnderTest {
  const version = LAB_BHYVE_VERSION[model];
  const generation = generationOf(version);
  const verdict = bhyveOnKernel(version, kernel);
  const limit = bhyveVcpuLimit(generation, maxcpu);
  return {
    path: labBhyveBinary(model),
    label: model,
    version,
    release: releaseName(version),
    releaseFrom: 'lab-model',
    generation,
    handling: verdict.handling,
    needsShim: verdict.needsShim,
    why: verdict.why,
    vcpuLimit: limit.limit,
    vcpuLimitWhy: limit.why,
  };
}

/** The explicit --bhyve paths: each must be an executable file (a usage error otherwise). */
function checkBhyvePaths(paths: string[]): string[] {
  return paths.map((p) => {
    const file = path.resolve(p);
    let stat: fs.Stats;
    try {
      stat = fs.statSync(file);
    } catch (err) {
      throw usageError(`--bhyve ${p}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    if (!stat.isFile()) throw usageError(`--bhyve ${p} is not a file`);
    try {
      fs.accessSync(file, fs.constants.X_OK);
    } catch {
      throw usageError(`--bhyve ${p} is not executable`);
    }
    return file;
  });
}

/** The kernel as `vmm-compat probe --json` identifies it (a probe VM of its own, then osreldate). */
function probeKernel(host: SelftestHost): Promise<{ variant: string | null; by: HostFacts['variantBy']; why: string }> {
  const cli = path.resolve(__dirname, '..', 'cli', 'main.js');
  // A configuration file named on probe's command line must exist; the default one may be absent.
  const config = fs.existsSync(host.configPath) ? ['--config', host.configPath] : [];
  const args = [cli, 'probe', '--json', ...config, '--syscall-library', host.syscallLibrary];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, args, { env: host.commandEnv(), stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
    child.on('close', () => {
      clearTimeout(timer);
      try {
        const r = JSON.parse(out) as { variant: string | null; by: HostFacts['variantBy']; why: string };
        resolve({ variant: r.variant, by: r.by, why: r.why });
      } catch {
        resolve({ variant: null, by: null, why: `vmm-compat probe gave no answer: ${err.trim().split('\n').at(-1) ?? ''}` });
      }
    });
  });
}

function summarize(runs: BootRecord[]): SelftestSummary {
  return {
    boots: runs.length,
    passed: runs.filter((r) => r.verdict === 'pass').length,
    failed: runs.filter((r) => r.verdict === 'fail').length,
    hostBug: runs.filter((r) => r.verdict === 'host-bug').length,
    worksWithoutShim: runs.filter((r) => r.verdict === 'works-without-shim').length,
  };
}

function describeFacts(f: HostFacts): string {
  const variant = f.variant === null ? 'kernel variant not identified' : `kernel variant ${f.variant} (by ${f.variantBy ?? 'unknown'}${f.variantFrom === 'daemon' ? ', vmm-compatd' : f.variantFrom === 'probe' ? ', vmm-compat probe' : ''})`;
  const daemon = f.daemon.running ? `vmm-compatd ${f.daemon.version} running (pid ${f.daemon.pid})` : 'vmm-compatd not running';
  return `${f.mode === 'lab' ? `lab kernel ${f.labKernel}: ` : ''}${f.kernel ?? 'kernel unknown'}, kern.osreldate ${f.osreldate ?? 'unknown'}, ${variant}, hw.vmm.maxcpu ${f.maxcpu ?? 'none'}, ${daemon}`;
}

export async function runSelftest(o: SelftestOptions): Promise<SelftestReport> {
  const say = o.progress;
  const pid = o.pid ?? process.pid;
  if (o.lab === null && o.noDaemon) throw usageError('--no-daemon needs --lab: on a host, selftest tests the vmm-compatd that runs (or its absence)');
  if (o.lab === null && o.hostCpus !== undefined) throw usageError('--host-cpus needs --lab');
  if (o.lab !== null) {
    for (const b of o.bhyves) {
      if (!(LAB_BHYVES as readonly string[]).includes(b)) throw usageError(`with --lab, --bhyve names a lab bhyve model (${LAB_BHYVES.join(', ')}), not "${b}"`);
    }
  }
  const explicitPaths = o.lab === null ? checkBhyvePaths(o.bhyves) : [];
  let romSource: { file: string } | { file: null; searched: string[] };
  if (o.rom !== null) {
    const file = path.resolve(o.rom);
    try {
      fs.accessSync(file, fs.constants.R_OK);
    } catch (err) {
      throw usageError(`cannot read --rom ${o.rom}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
    }
    romSource = { file };
  } else {
    romSource = findInstalledRom();
  }
  let rom: SelftestRom | null = null;
  if (romSource.file !== null) {
    try {
      rom = openSelftestRom(romSource.file);
    } catch (err) {
      const why = `${romSource.file}: ${err instanceof Error ? err.message : String(err)}`;
      if (o.rom !== null) throw usageError(`--rom ${why}`);
      romSource = { file: null, searched: [why] };
    }
  }

  if (o.lab !== null) say(`starting the lab: kernel model ${o.lab}${o.noDaemon ? ', no vmm-compatd' : ', its vmm-compatd (it identifies the kernel)'}`);
  let host: SelftestHost;
  try {
    host =
      o.lab === null
        ? realHost({ config: o.config, configPath: o.configPath, configExplicit: o.configExplicit, interposer: o.interposer })
        : await labHost({ kernel: o.lab, hostCpus: o.hostCpus, noDaemon: o.noDaemon, bench: o.labBench, config: o.config, interposer: o.interposer });
  } catch (err) {
    rom?.remove();
    throw err;
  }
  if (host.mode === 'lab') say(`lab directory ${path.dirname(host.socketDir)}`);
  const runs: BootRecord[] = [];
  try {
    const vmm = checkVmmLoaded(host.config);
    const osreldate = await host.calls.sysctlInt('kern.osreldate');
    const kernel = (await host.calls.sysctlString('kern.version'))?.split('\n')[0]?.trim() || null;
    const maxcpu = await host.calls.sysctlInt('hw.vmm.maxcpu');
    let daemon: DaemonFacts;
    let status: StatusReport | null = null;
    try {
      status = (await queryControl(host.socketDir, 'status')) as StatusReport;
      daemon = { running: true, version: status.version, pid: status.pid, socketDir: host.socketDir };
    } catch (err) {
      daemon = { running: false, socketDir: host.socketDir, why: err instanceof Error ? err.message : String(err) };
    }
    const root = typeof process.getuid === 'function' && process.getuid() === 0;
    const facts: HostFacts = {
      mode: host.mode,
      labKernel: host.labKernel,
      kernel,
      osreldate,
      variant: null,
      variantBy: null,
      variantWhy: '',
      variantFrom: null,
      maxcpu,
      vmmLoaded: vmm.status === 'pass',
      vmmWhy: vmm.detail,
      root,
      daemon,
      failurePolicy: host.config.failurePolicy,
      configuredVariant: host.config.kernelVariant,
      bhyves: [],
      rom: rom === null ? null : { file: rom.source, name: rom.name },
      maxVcpus: o.maxVcpus,
      timeoutMs: o.timeoutMs,
      leftoverVms: leftoverSelftestVms(host.deviceDir, pid),
    };
    const refuse = (why: string): SelftestReport => {
      say(`refused: ${why}`);
      return { host: facts, runs, summary: summarize(runs), refusal: why, ok: false };
    };
    const bootable = host.mode === 'lab' || (os.platform() === 'freebsd' && root && facts.vmmLoaded);
    // The kernel as the shim sees it: the daemon's identification, else the probe's.
    if (status !== null) {
      const variant = status.kernel?.variant ?? status.kernelVariant;
      facts.variant = isKernelVariant(variant) ? variant : null;
      facts.variantBy = status.kernel?.by ?? null;
      facts.variantWhy = status.kernel?.why ?? '';
      facts.variantFrom = 'daemon';
    } else if (bootable) {
      const probed = await probeKernel(host);
      facts.variant = probed.variant !== null && isKernelVariant(probed.variant) ? probed.variant : null;
      facts.variantBy = probed.by;
      facts.variantWhy = probed.why;
      facts.variantFrom = 'probe';
    }
    // The bhyves under test.
    if (host.mode === 'lab') {
      const kernel = host.labKernel!;
      // The models that need the shim on this kernel and that the lab pairs with it (the 14-CURRENT
      // model runs only on window, where it is native).
      const models = o.bhyves.length > 0 ? (o.bhyves as LabBhyve[]) : LAB_BHYVES.filter((m) => labPairingRefusal(m, kernel) === null && bhyveOnKernel(LAB_BHYVE_VERSION[m], kernel).handling === 'compat');
      facts.bhyves = models.map((m) => describeLabBhyve(m, kernel, maxcpu));
    } else {
      const paths = explicitPaths.length > 0 ? explicitPaths : fs.existsSync(DEFAULT_LEGACY_BHYVE) ? [DEFAULT_LEGACY_BHYVE] : [];
      facts.bhyves = paths.map((p) => describeHostBhyve(p, facts.variant, maxcpu));
    }
    const boots = planBoots(facts.bhyves, o.maxVcpus, pid);
    say(`host: ${describeFacts(facts)}`);
    if (facts.leftoverVms.length > 0) {
      say(`warning: VMs of an earlier selftest whose process is gone: ${facts.leftoverVms.join(', ')}; selftest leaves them alone: destroy each with bhyvectl --destroy --vm=NAME`);
    }
    if (!daemon.running && host.mode === 'host') {
      say(`vmm-compatd does not answer (${daemon.why}): the boots through the shim show the interposer's fallback, which acts on kernel_variant (${host.config.kernelVariant}) or the variant the daemon last cached; start vmm-compatd to test the way VMs normally boot`);
    }
    const refusal = refusalFor({
      mode: host.mode,
      platform: os.platform(),
      root,
      vmmLoaded: facts.vmmLoaded,
      vmmWhy: vmm.detail,
      bhyves: facts.bhyves.length,
      defaultBhyve: DEFAULT_LEGACY_BHYVE,
      rom: romSource,
      takenNames: bootable ? boots.filter((b) => vmExists(host, b.vmName)).map((b) => b.vmName) : [],
      daemonRunning: daemon.running,
      failurePolicy: host.config.failurePolicy,
    });
    if (refusal !== null) return refuse(refusal);
    for (const b of facts.bhyves) {
      say(`bhyve ${b.label} (${b.path}): ${b.releaseFrom === 'abi-tag' ? `ABI tag ${b.version}` : b.releaseFrom === 'lab-model' ? 'lab model' : 'no ABI tag'}; vCPU counts ${vcpuCounts(Math.min(o.maxVcpus, b.vcpuLimit)).join(', ')} (at most ${b.vcpuLimit}: ${b.vcpuLimitWhy})`);
    }
    say(`ROM ${rom!.source} (${rom!.name || 'unnamed'}), ${boots.length} boots, each within ${o.timeoutMs} ms`);
    for (const boot of boots) {
      if (o.signal?.aborted) throw new SelftestInterrupted('interrupted');
      say(`boot ${boot.n}/${boots.length}: bhyve ${boot.bhyve.label}, ${boot.vcpus} vCPU${boot.vcpus === 1 ? '' : 's'}, ${boot.shim ? 'through the shim' : 'without the shim'}: ${boot.vmName}`);
      let record: BootRecord;
      try {
        record = await runBoot(host, boot, { romFile: rom!.fileFor(boot.vcpus), timeoutMs: o.timeoutMs, signal: o.signal, progress: say });
      } catch (err) {
        if (err instanceof VmNameTaken) return refuse(err.message);
        if (err instanceof BootInterrupted) throw new SelftestInterrupted(err.message);
        throw err;
      }
      runs.push(record);
      say(`  ${record.outcome} (${record.exitSignal ?? `exit ${record.exitStatus}`}) in ${record.elapsedMs} ms: ${record.detail}: ${verdictText(record)}${record.shimMode !== null ? ` [${record.shimMode}]` : ''}`);
    }
    const summary = summarize(runs);
    const shimRuns = runs.filter((r) => r.shim);
    return { host: facts, runs, summary, refusal: null, ok: shimRuns.length > 0 && shimRuns.every((r) => r.verdict === 'pass') };
  } finally {
    rom?.remove();
    await host.close();
  }
}

export function verdictText(r: Pick<BootRecord, 'verdict'>): string {
  switch (r.verdict) {
    case 'pass':
      return 'PASS';
    case 'fail':
      return 'FAIL';
    case 'works-without-shim':
      return 'boots without the shim';
    case 'host-bug':
      return 'the bug this host has';
  }
}
