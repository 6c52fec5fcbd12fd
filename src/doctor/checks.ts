// `vmm-compat doctor`: each check says PASS/WARN/FAIL, what it saw, and the fix
// (docs/troubleshooting.md explains every failure).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Config } from '../config/config';
import { SOCKET_NAME } from '../daemon/compat-server';
import { queryControl, type StatusReport } from '../daemon/control-server';
import type { VmmDevice, VmmSyscalls } from '../daemon/vmm-device';
import { readKernelIdentity, readProbeCache } from '../daemon/kernel-probe-cache';
import { COMPAT_PROTOCOL_VERSION, COMPAT_PROTOCOL_VERSIONS_ACCEPTED, VERSION } from '../version';
import { readElf } from './elf';
import { bhyveOnKernel, generationOf, releaseName } from '../daemon/bhyve-generation';
import { identifyKernel, isKernelVariant, type KernelVariant } from '../daemon/kernel-variant';
import { LEGACY_BHYVE_DIR } from '../jails/jail-setup';

export type CheckStatus = 'pass' | 'warn' | 'fail';

export interface CheckResult {
  check: string;
  status: CheckStatus;
  detail: string;
  fix?: string;
}

export interface DoctorInputs {
  config: Config | null;
  configPath: string;
  configError: string | null;
  interposer: string;
  legacyBhyve: string;
  /** More bhyve binaries to judge (`doctor --bhyve`): does each need the interposer on this kernel. */
  bhyves?: string[];
  /** Where each jail's root is (jls on FreeBSD, or given on the command line). */
  jailRoots: Map<string, string>;
  /** The interposer's path inside a jail. */
  interposerInJail: string;
  device: VmmDevice | null;
  /** For the kernel identity under which the probe's result is kept (null: not readable). */
  syscalls?: VmmSyscalls | null;
  /** kern.conftxt (default: read with sysctl(8) on FreeBSD); null when unknown. */
  conftxt?: string | null;
}

const pass = (check: string, detail: string): CheckResult => ({ check, status: 'pass', detail });
const warn = (check: string, detail: string, fix: string): CheckResult => ({ check, status: 'warn', detail, fix });
const fail = (check: string, detail: string, fix: string): CheckResult => ({ check, status: 'fail', detail, fix });

/**
 * The kernel variant and how it is known: the running daemon's identification (status), else
 * this kernel's cached probe result (probe_cache), else kern.osreldate, which cannot tell a
 * 14-CURRENT of the 7c326ab5..b265a2e0 window from one after it.
 */
export function checkKernelVariant(
  config: Config,
  report: StatusReport | null,
  syscalls: VmmSyscalls | null,
  device: VmmDevice | null,
): { result: CheckResult; variant: string | null } {
  const name = 'kernel variant';
  const known = (variant: string, result: CheckResult) => ({ result, variant });
  const unknown = (result: CheckResult) => ({ result, variant: null });
  const k = report?.kernel;
  if (k) {
    const detail = `${k.variant} (by ${k.by}, the running vmm-compatd): ${k.why}`;
    if (k.disagreement) return known(k.variant, warn(name, `${detail}; ${k.disagreement}`, 'nothing to do if the experiment is right; otherwise set kernel_variant and report the kernel'));
    if (k.by === 'osreldate' && k.experimentSkipped) {
      return known(k.variant, warn(name, `${detail}; no experiment decided: ${k.experimentSkipped}`, 'run vmm-compat probe as root to see why the probe VM cannot be made, or set kernel_variant'));
    }
    return known(k.variant, pass(name, detail));
  }
  if (report) return known(report.kernelVariant, pass(name, `${report.kernelVariant} (the running vmm-compatd, which does not say how it knows)`));
  if (config.kernelVariant !== 'auto') return known(config.kernelVariant, pass(name, `${config.kernelVariant} (by config: kernel_variant)`));
  const identity = syscalls === null ? null : readKernelIdentity(syscalls);
  if (identity !== null) {
    const cached = readProbeCache(config.probeCache, identity);
    if ('probe' in cached) return known(cached.probe.variant, pass(name, `${cached.probe.variant} (by experiment, probed ${cached.probe.probedAt}: ${cached.probe.why})`));
  }
  const osreldate = device?.sysctlInt('kern.osreldate') ?? null;
  if (osreldate === null) {
    return unknown(fail(name, 'kernel_variant = auto, no probe has run on this kernel and kern.osreldate cannot be read', 'start vmm-compatd (it identifies the kernel with a probe VM and keeps the result), or set kernel_variant'));
  }
  const id = identifyKernel(osreldate);
  if (id.variant === null) return unknown(fail(name, `no probe has run on this kernel, and ${id.why}`, 'start vmm-compatd (it identifies the kernel with a probe VM; vmm-compat probe shows what it finds)'));
  return known(id.variant, pass(name, `${id.variant} (by osreldate: ${id.why}; no probe has run on this kernel yet: vmm-compatd runs one at start)`));
}

/** 13.1's VM_MAXCPU: a 13.1 bhyve may run this many vCPUs. */
const LEGACY_VCPUS = 16;

/**
 * hw.vmm.maxcpu (vmm.c vmm_init, ee98f99d7a68): the host's CPU count unless the loader tunable
 * says otherwise. Below 16, a legacy bhyve with more vCPUs fails: 13.1's VM_SET_TOPOLOGY gets
 * EINVAL (vm_set_topology: sockets*cores*threads > maxcpus; bhyve exits 71), and a 13.2+ bhyve
 * stops with "N vCPUs requested but only M available" (exit 4). 13.0/13.1 kernels have no such
 * sysctl (VM_MAXCPU 16).
 */
export function checkMaxcpu(device: VmmDevice | null): CheckResult {
  const name = 'hw.vmm.maxcpu';
  const maxcpu = device?.sysctlInt('hw.vmm.maxcpu') ?? null;
  if (maxcpu === null) return pass(name, 'no hw.vmm.maxcpu (a 13.0/13.1 kernel: VM_MAXCPU 16) or vmm.ko not loaded');
  if (maxcpu >= LEGACY_VCPUS) return pass(name, `${maxcpu}: a 13.1 bhyve may run its 16 vCPUs`);
  return warn(
    name,
    `${maxcpu} (the host's CPU count unless tuned): a legacy bhyve with more than ${maxcpu} vCPUs fails ` +
      `(13.1: VM_SET_TOPOLOGY EINVAL, exit 71; 13.2+: "N vCPUs requested but only ${maxcpu} available", exit 4)`,
    'add hw.vmm.maxcpu=16 to /boot/loader.conf and reboot (or reload vmm.ko)',
  );
}

/** Bits of the interposer's kernel-abi event (native-bindings/shim/kabi.c). */
const KABI_NO_COMPAT13 = 1;
const KABI_MEMSEG15 = 2;
const KABI_NO_COMPAT14 = 4;

/**
 * Whether the kernel has COMPAT_FREEBSD13 (the 144-byte VM_RUN, VM_STATS_13) and, on 15.0/main,
 * COMPAT_FREEBSD14 (the 32-byte VM_ALLOC/GET_MEMSEG). Told by the kernel configuration embedded
 * in GENERIC-style kernels (options INCLUDE_CONFIG_FILE: kern.conftxt), or by what the
 * interposers saw at open (kernel-abi events the daemon recorded); otherwise the doctor says it
 * cannot tell. Without the options a 13.1 bhyve (and bhyveload) needs the interposer for every
 * start, which translates for it.
 */
export function checkCompatOptions(variant: string | null, conftxt: string | null, report: StatusReport | null): CheckResult {
  const name = 'COMPAT_FREEBSD13/14';
  if (variant === 'legacy13' || variant === 'window' || variant === 'fixed13') {
    return pass(name, `not needed on ${variant}: the 13.1 VM_RUN and memseg requests are native there`);
  }
  const needs14 = variant === 'main15';
  let has13: boolean | null = null;
  let has14: boolean | null = null;
  let source = '';
  if (conftxt !== null && conftxt.trim() !== '') {
    has13 = /^\s*options\s+COMPAT_FREEBSD13\b/m.test(conftxt);
    has14 = /^\s*options\s+COMPAT_FREEBSD14\b/m.test(conftxt);
    source = 'kern.conftxt';
  } else if (report !== null) {
    const seen = (report.vms as { events?: { kind: string; arg: number | null }[] }[])
      .flatMap((vm) => vm.events ?? [])
      .filter((e) => e.kind === 'kernel-abi' && e.arg !== null)
      .map((e) => e.arg as number);
    const last = seen.at(-1);
    if (last !== undefined) {
      has13 = (last & KABI_NO_COMPAT13) === 0;
      has14 = (last & KABI_MEMSEG15) === 0 || (last & KABI_NO_COMPAT14) === 0;
      source = "the interposer's kernel-abi event";
    }
  }
  if (has13 === null) {
    return pass(name, 'cannot tell (no kern.conftxt, no VM seen yet); the interposer asks the kernel at every open and translates what is missing');
  }
  const missing = [...(has13 ? [] : ['COMPAT_FREEBSD13']), ...(needs14 && has14 === false ? ['COMPAT_FREEBSD14'] : [])];
  if (missing.length === 0) return pass(name, `present (${source})`);
  return warn(
    name,
    `the kernel has no ${missing.join(' and ')} (${source}): a 13.1 bhyve${needs14 && missing.includes('COMPAT_FREEBSD14') ? ' and bhyveload' : ''} fail without the interposer ` +
      `(${missing.includes('COMPAT_FREEBSD13') ? 'VM_RUN: ENOTTY' : ''}${missing.length === 2 ? '; ' : ''}${missing.includes('COMPAT_FREEBSD14') ? 'memory set-up: ENOTTY' : ''})`,
    `add ${missing.map((m) => `options ${m}`).join(' and ')} to the kernel configuration, or start every legacy bhyve${missing.includes('COMPAT_FREEBSD14') ? ' and bhyveload' : ''} through vmm-compat wrap`,
  );
}

/** kern.conftxt on FreeBSD (the kernel's own configuration file), or null. */
export function kernelConftxt(): string | null {
  if (os.platform() !== 'freebsd') return null;
  try {
    return execFileSync('sysctl', ['-n', 'kern.conftxt'], { encoding: 'utf8', timeout: 3000, maxBuffer: 4 << 20 });
  } catch {
    return null;
  }
}

export function checkVmmLoaded(config: Config): CheckResult {
  const name = 'vmm loaded';
  if (os.platform() === 'freebsd') {
    try {
      execFileSync('kldstat', ['-q', '-m', 'vmm'], { stdio: 'ignore', timeout: 3000 });
      return pass(name, 'vmm.ko is loaded');
    } catch {
      return fail(name, 'vmm.ko is not loaded', 'kldload vmm, and add vmm_load="YES" to /boot/loader.conf');
    }
  }
  if (fs.existsSync(config.deviceDir)) return pass(name, `${config.deviceDir} exists`);
  return fail(name, `${config.deviceDir} does not exist`, 'load vmm.ko (on the lab: start the kernel model, or fix device_dir)');
}

function connectable(socketPath: string, timeoutMs = 2000): Promise<string | null> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    const timer = setTimeout(() => {
      s.destroy();
      resolve('no answer');
    }, timeoutMs);
    s.once('connect', () => {
      clearTimeout(timer);
      s.destroy();
      resolve(null);
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      resolve(err.code ?? err.message);
    });
  });
}

/**
 * An older interposer that this CLI's daemon (or the running one, which lists what it serves in
 * protocolVersionsAccepted) still answers.
 */
function protocolServedDeprecated(protocol: number, report: StatusReport | null | undefined): boolean {
  if (protocol === COMPAT_PROTOCOL_VERSION) return false;
  const accepted = report ? (report.protocolVersionsAccepted ?? [report.protocolVersion]) : COMPAT_PROTOCOL_VERSIONS_ACCEPTED;
  return accepted.includes(protocol) && (!report || report.protocolVersion === COMPAT_PROTOCOL_VERSION);
}

/** The protocol version compiled into libvmmcompat.so (interpose.c vmm_compat_protocol). */
export function interposerProtocol(file: string): number | null {
  const m = /vmm-compat-protocol=(\d+)/.exec(fs.readFileSync(file).toString('latin1'));
  return m ? Number(m[1]) : null;
}

export async function runDoctor(inputs: DoctorInputs): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  if (!inputs.config) {
    results.push(fail('configuration', inputs.configError ?? 'unreadable', `fix ${inputs.configPath} as the message says`));
    return results;
  }
  const config = inputs.config;
  results.push(pass('configuration', `${inputs.configPath}: ${inputs.configError ?? 'valid'}`));
  let report: StatusReport | null = null;
  let daemonCheck: CheckResult;
  try {
    report = (await queryControl(config.socketDir, 'status')) as StatusReport;
    const by = report.kernel ? ` (by ${report.kernel.by})` : '';
    daemonCheck = pass('daemon', `vmm-compatd ${report.version} (pid ${report.pid}), kernel variant ${report.kernelVariant}${by}`);
  } catch (err) {
    daemonCheck = fail('daemon', err instanceof Error ? err.message : String(err), 'service vmm_compatd start (and check its log)');
  }
  const kernel = checkKernelVariant(config, report, inputs.syscalls ?? null, inputs.device);
  results.push(kernel.result);
  results.push(checkVmmLoaded(config));
  results.push(checkMaxcpu(inputs.device));
  results.push(daemonCheck);
  const variant = kernel.variant;
  results.push(checkCompatOptions(variant, inputs.conftxt === undefined ? kernelConftxt() : inputs.conftxt, report));

  const dirs = [{ jail: 'host', dir: config.socketDir }, ...config.jails.map((j) => ({ jail: j.name, dir: j.socketDir }))];
  for (const { jail, dir } of dirs) {
    const socketPath = path.join(dir, SOCKET_NAME);
    const problem = await connectable(socketPath);
    results.push(
      problem === null
        ? pass(`socket (${jail})`, `${socketPath} accepts connections`)
        : fail(`socket (${jail})`, `${socketPath}: ${problem}`, 'start vmm-compatd, or reload it after adding the [jail] section (service vmm_compatd reload)'),
    );
  }

  if (!fs.existsSync(inputs.interposer)) {
    results.push(fail('interposer', `${inputs.interposer} is missing`, 'install the vmm-compat package (or npm run build in a source tree)'));
  } else {
    const protocol = interposerProtocol(inputs.interposer);
    if (protocol === null) {
      results.push(fail('protocol version', `${inputs.interposer} carries no protocol tag`, 'reinstall libvmmcompat.so from the same vmm-compat release'));
    } else if (protocolServedDeprecated(protocol, report)) {
      results.push(
        warn(
          'protocol version',
          `interposer speaks ${protocol} (deprecated), the daemon ${report?.protocolVersion ?? COMPAT_PROTOCOL_VERSION} and still serves it: VMs boot, but that libvmmcompat.so covers at most 16 vCPUs per VM`,
          'install libvmmcompat.so from the same release as vmm-compatd, then restart the VMs',
        ),
      );
    } else if (protocol !== COMPAT_PROTOCOL_VERSION || (report && report.protocolVersion !== protocol)) {
      results.push(
        fail(
          'protocol version',
          `interposer speaks ${protocol}, this CLI ${COMPAT_PROTOCOL_VERSION}${report ? `, the daemon ${report.protocolVersion}` : ''}`,
          'install libvmmcompat.so and vmm-compatd from the same release, then restart the daemon and the VMs',
        ),
      );
    } else {
      results.push(pass('protocol version', `interposer, CLI ${VERSION}${report ? ' and daemon' : ''} speak protocol ${protocol}`));
    }
  }

  for (const jail of config.jails) {
    const root = inputs.jailRoots.get(jail.name);
    if (!root) {
      results.push(warn(`interposer in jail ${jail.name}`, 'cannot find the jail root', `run doctor with --jail-root ${jail.name}=/path/to/jail (or start the jail so jls knows it)`));
      continue;
    }
    const inside = path.join(root, inputs.interposerInJail);
    results.push(
      fs.existsSync(inside)
        ? pass(`interposer in jail ${jail.name}`, `${inside} present`)
        : fail(`interposer in jail ${jail.name}`, `${inside} is missing`, `vmm-compat jail-setup ${jail.name} (nullfs-mount ${path.dirname(inputs.interposer)} read-only into the jail)`),
    );
  }

  const name = 'legacy bhyve';
  if (!fs.existsSync(inputs.legacyBhyve)) {
    results.push(fail(name, `${inputs.legacyBhyve} is missing`, 'install the 13.1 bhyve (basename bhyve) or pass --legacy-bhyve'));
  } else {
    try {
      const elf = readElf(inputs.legacyBhyve);
      if (!elf.dynamic) {
        results.push(fail(name, `${inputs.legacyBhyve} is statically linked: LD_PRELOAD cannot reach its ioctl calls`, 'use the stock dynamically linked 13.1 bhyve'));
      } else if (!elf.importedSymbols.has('cap_enter')) {
        results.push(warn(name, `${inputs.legacyBhyve} is dynamic but does not import cap_enter (built WITHOUT_CAPSICUM?)`, 'nothing to do; the interposer works either way'));
      } else {
        results.push(pass(name, `${inputs.legacyBhyve} is dynamically linked (${elf.needed.join(', ') || 'no DT_NEEDED'}) and capsicum-enabled`));
      }
    } catch (err) {
      results.push(fail(name, err instanceof Error ? err.message : String(err), 'point --legacy-bhyve at the 13.1 bhyve binary'));
    }
  }
  // Judged against the variant the kernel check identified (the daemon's experiment, the kept
  // probe result, the configuration or kern.osreldate).
  results.push(...bhyveGenerations(inputs, variant !== null && isKernelVariant(variant) ? variant : null));
  return results;
}

/**
 * One bhyve binary: the release its ELF ABI tag names, and whether it needs the interposer on
 * this kernel and why (the interposer's own rule, src/daemon/bhyve-generation.ts).
 */
export function checkBhyveGeneration(file: string, variant: KernelVariant | null, label = file): CheckResult {
  const name = `bhyve ${label}`;
  if (!fs.existsSync(file)) return fail(name, `${file} is missing`, 'check the path');
  let tag: number | null;
  try {
    tag = readElf(file).freebsdAbiTag;
  } catch (err) {
    return fail(name, err instanceof Error ? err.message : String(err), 'point --bhyve at a bhyve binary');
  }
  if (tag === null) {
    return warn(
      name,
      `${file} carries no FreeBSD ABI tag (NT_FREEBSD_ABI_TAG): its release is unknown here; the interposer learns its generation from its first VM_RUN`,
      'use a stock FreeBSD bhyve, or set VMM_COMPAT_BHYVE_VERSION for this binary',
    );
  }
  const release = `bhyve ${releaseName(tag)} (${generationOf(tag)}, __FreeBSD_version ${tag})`;
  if (variant === null) return warn(name, `${release}; the kernel variant is unknown, so whether it needs vmm-compat cannot be told`, 'set kernel_variant in the configuration');
  const verdict = bhyveOnKernel(tag, variant);
  if (verdict.handling === 'refused') return fail(name, `${release} on ${variant}: ${verdict.why}`, "run the host release's bhyve (or an older one) in this jail");
  return pass(name, `${release} on ${variant}: ${verdict.needsShim ? 'needs vmm-compat (start it through vmm-compat wrap or the bhyve wrapper)' : 'does not need vmm-compat'}; ${verdict.why}`);
}

/**
 * Every bhyve doctor can find: --bhyve, the legacy bhyve, and in each configured jail its own
 * /usr/sbin/bhyve and the legacy bhyve installed there (jail-setup's layout).
 */
function bhyveGenerations(inputs: DoctorInputs, variant: KernelVariant | null): CheckResult[] {
  const results: CheckResult[] = [];
  for (const file of inputs.bhyves ?? []) results.push(checkBhyveGeneration(file, variant));
  if (fs.existsSync(inputs.legacyBhyve)) results.push(checkBhyveGeneration(inputs.legacyBhyve, variant));
  for (const jail of inputs.config?.jails ?? []) {
    const root = inputs.jailRoots.get(jail.name);
    if (!root) continue;
    for (const inside of ['/usr/sbin/bhyve', `${LEGACY_BHYVE_DIR}/bhyve`]) {
      const file = path.join(root, inside);
      if (fs.existsSync(file)) results.push(checkBhyveGeneration(file, variant, `${inside} in jail ${jail.name}`));
    }
  }
  return results;
}

export function formatDoctor(results: CheckResult[]): string {
  return (
    results
      .map((r) => `${r.status.toUpperCase().padEnd(4)}  ${r.check}: ${r.detail}${r.fix ? `\n      fix: ${r.fix}` : ''}`)
      .join('\n') + '\n'
  );
}

/** jls(8): the root path of a running jail, or null. */
export function jailRootFromJls(name: string): string | null {
  if (os.platform() !== 'freebsd') return null;
  try {
    return execFileSync('jls', ['-j', name, 'path'], { encoding: 'utf8', timeout: 3000 }).trim() || null;
  } catch {
    return null;
  }
}
