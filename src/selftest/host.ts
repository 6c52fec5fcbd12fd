// Where selftest boots: a FreeBSD host (its vmm.ko, its bhyves, the running vmm-compatd), or the
// lab (`--lab KERNEL`: the lab's kernel model, its own vmm-compatd, the lab bridge preloaded).
// Both give the same command lines (boot.ts); what differs is only here: which bhyves, the
// system-call library, the environment bhyve gets and the options wrap needs to reach the lab.
import fs from 'node:fs';
import path from 'node:path';
import { ARTIFACTS, requireArtifact } from '../native-paths';
import { LAB_BHYVES, LabBench, labBhyveBinary, type LabBhyve, type LabKernelName } from '../lab/run';
import { HostCalls } from './host-calls';
import type { Config } from '../config/config';

export interface SelftestHost {
  readonly mode: 'host' | 'lab';
  /** The lab kernel variant (null on a real host). */
  readonly labKernel: LabKernelName | null;
  readonly config: Config;
  readonly configPath: string;
  /** Where the kernel's VM devices are (/dev/vmm): a VM of name X exists iff DIR/X does. */
  readonly deviceDir: string;
  /** The host's vmm-compatd socket directory (its control socket answers status). */
  readonly socketDir: string;
  /** sysctl reads and VM destroys through the system-call library. */
  readonly calls: HostCalls;
  /** The system-call library the host's own tools use (`probe --syscall-library`). */
  readonly syscallLibrary: string;
  /** The environment a boot runs with; without the shim nothing is preloaded but what the host needs. */
  bootEnv(bhyvePath: string, shim: boolean): NodeJS.ProcessEnv;
  /** The environment of the CLI commands selftest runs (probe). */
  commandEnv(): NodeJS.ProcessEnv;
  /** Options of `vmm-compat wrap` before `--`, beyond what an operator types on this host. */
  wrapOptions(): string[];
  close(): Promise<void>;
}

/** The environment bhyve gets without the shim on a real host: the caller's, with no preload. */
function withoutPreload(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  const copy = { ...env };
  delete copy.LD_PRELOAD;
  return copy;
}

export interface RealHostOptions {
  config: Config;
  configPath: string;
  /** Passed to wrap as --config when the operator gave one. */
  configExplicit: boolean;
  /** --interposer, passed to wrap. */
  interposer: string | null;
}

export function realHost(o: RealHostOptions): SelftestHost {
  const calls = new HostCalls(o.config.syscallLibrary);
  return {
    mode: 'host',
    labKernel: null,
    config: o.config,
    configPath: o.configPath,
    deviceDir: o.config.deviceDir,
    socketDir: o.config.socketDir,
    calls,
    syscallLibrary: o.config.syscallLibrary,
    bootEnv: (_bhyve, shim) => (shim ? { ...process.env } : withoutPreload(process.env)),
    commandEnv: () => ({ ...process.env }),
    wrapOptions: () => [...(o.configExplicit ? ['--config', o.configPath] : []), ...(o.interposer !== null ? ['--interposer', o.interposer] : [])],
    close: () => calls.close(),
  };
}

export interface LabHostOptions {
  kernel: LabKernelName;
  /** hw.vmm.maxcpu's source in the lab (--host-cpus). */
  hostCpus?: number;
  /** Do not start the lab's vmm-compatd: the shim's boots use the interposer's fallback. */
  noDaemon: boolean;
  /** A bench already started (tests): used as it is and left running. */
  bench?: LabBench;
  config: Config;
  /** --interposer, passed to wrap. */
  interposer: string | null;
}

export interface LabHost extends SelftestHost {
  readonly bench: LabBench;
  /** The lab's bhyve models by version. */
  bhyveModel(path: string): LabBhyve | null;
}

/**
 * The lab: its kernel model (this process), its vmm-compatd (identifying the kernel itself) and
 * its configuration. Without a daemon the configuration names the kernel variant, as an
 * operator's must for the interposer's fallback to have facts to act on.
 */
export async function labHost(o: LabHostOptions): Promise<LabHost> {
  const owned = o.bench === undefined;
  const bench = o.bench ?? (await LabBench.start({ kernel: o.kernel, hostCpus: o.hostCpus }));
  try {
    if (o.noDaemon) {
      fs.writeFileSync(bench.configPath, `# selftest --lab ${o.kernel} --no-daemon: the interposer's fallback needs the variant\nkernel_variant = ${o.kernel}\n`);
    } else if (bench.daemon === null) {
      await bench.startDaemon([], { logLevel: 'info' });
    }
  } catch (err) {
    if (owned) await bench.close();
    throw err;
  }
  if (!fs.existsSync(bench.configPath)) fs.writeFileSync(bench.configPath, '# lab: everything comes from the command line\n');
  const bridge = requireArtifact(ARTIFACTS.bridge);
  // The host-calls thread reaches the kernel model through the bridge, which finds it here.
  process.env.VMMLAB_KERNEL_SOCK = bench.env.VMMLAB_KERNEL_SOCK;
  process.env.VMMLAB_ROOT = bench.env.VMMLAB_ROOT;
  const calls = new HostCalls(bridge);
  const models = new Map(LAB_BHYVES.map((b) => [labBhyveBinary(b), b] as const));
  const config: Config = { ...o.config, socketDir: bench.socketDir, deviceDir: path.join(bench.root, 'dev', 'vmm'), syscallLibrary: bridge };
  return {
    mode: 'lab',
    labKernel: o.kernel,
    bench,
    config,
    configPath: bench.configPath,
    deviceDir: config.deviceDir,
    socketDir: bench.socketDir,
    calls,
    syscallLibrary: bridge,
    bhyveModel: (p) => models.get(p) ?? null,
    bootEnv(_bhyve, shim) {
      // Each model speaks its release's VM_RUN; the bridge and the kernel model are all it needs.
      const env: NodeJS.ProcessEnv = { ...bench.env };
      // Without the shim only the bridge (the lab's /dev/vmm); with it wrap preloads both.
      if (shim) delete env.LD_PRELOAD;
      else env.LD_PRELOAD = bridge;
      return env;
    },
    commandEnv: () => ({ ...bench.env }),
    wrapOptions: () => [
      '--config', bench.configPath,
      '--socket-dir', bench.socketDir,
      ...(o.interposer !== null ? ['--interposer', o.interposer] : []),
      '--extra-preload', bridge,
    ],
    async close() {
      await calls.close();
      if (owned) await bench.close();
    },
  };
}
