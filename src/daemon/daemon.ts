// vmm-compatd: start-up, configuration, signals. SIGTERM closes and unlinks the sockets and
// exits without touching any VM (interposers fall back on their own); SIGHUP re-reads the
// configuration, applies what can change live and says what it applied.
import pino, { type Logger } from 'pino';
import type net from 'node:net';
import type http from 'node:http';
import { DaemonMetrics, startMetricsServer } from '../metrics/prometheus';
import { VmRegistry } from './registry';
import { CompatServer, type SocketDirectory } from './compat-server';
import { startControlServer, statusReport } from './control-server';
import type { KernelVariant } from './kernel-variant';
import { decideKernelVariant } from './kernel-identification';
import { IdentificationError, identifyKernelAtStart, kernelStatus, type DaemonKernel } from './identify-kernel';
import { openVmmDevice, openVmmSyscalls, type VmmSyscalls } from './vmm-device';
import { platformPeerInspector, type PeerInspector } from './peer';
import { loadConfig, type Config } from '../config/config';
import { VERSION } from '../version';

export interface DaemonOverrides {
  kernelVariant?: KernelVariant;
  probeCache?: string;
  socketDir?: string;
  jails?: { name: string; socketDir: string }[];
  syscallLibrary?: string;
  deviceDir?: string;
  logLevel?: Config['logLevel'];
  compatFreebsd13?: boolean;
}

export interface DaemonOptions {
  configPath: string;
  configMustExist: boolean;
  overrides: DaemonOverrides;
  /** For tests: inject a peer inspector. */
  peers?: PeerInspector;
}

export function applyOverrides(config: Config, o: DaemonOverrides): Config {
  const merged: Config = { ...config, jails: [...config.jails] };
  if (o.kernelVariant) merged.kernelVariant = o.kernelVariant;
  if (o.probeCache) merged.probeCache = o.probeCache;
  if (o.socketDir) merged.socketDir = o.socketDir;
  if (o.jails && o.jails.length > 0) merged.jails = o.jails;
  if (o.syscallLibrary) merged.syscallLibrary = o.syscallLibrary;
  if (o.deviceDir) merged.deviceDir = o.deviceDir;
  if (o.logLevel) merged.logLevel = o.logLevel;
  if (o.compatFreebsd13 !== undefined) merged.compatFreebsd13 = o.compatFreebsd13;
  return merged;
}

function directoriesOf(config: Config): SocketDirectory[] {
  return [{ jail: 'host', path: config.socketDir }, ...config.jails.map((j) => ({ jail: j.name, path: j.socketDir }))];
}

type Destination = ReturnType<typeof pino.destination>;

function makeLogger(config: Config): { logger: Logger; destination: Destination } {
  const destination = config.logFile ? pino.destination({ dest: config.logFile, mkdir: true, sync: true }) : pino.destination({ dest: 2, sync: true });
  return { logger: pino({ name: 'vmm-compatd', level: config.logLevel, base: { pid: process.pid } }, destination), destination };
}

/**
 * The kernel variant the daemon serves and how it knows (identify-kernel.ts); fails with the
 * reason and the fix when neither the experiment nor kern.osreldate can tell and the
 * configuration does not say.
 */
export async function identifyKernelForDaemon(config: Config, sys: VmmSyscalls, logger: Logger): Promise<DaemonKernel> {
  let kernel: DaemonKernel;
  try {
    kernel = await identifyKernelAtStart(config, sys, logger);
  } catch (err) {
    if (err instanceof IdentificationError) throw new Error(err.message);
    throw err;
  }
  const e = kernel.experiment;
  logger.info(
    {
      kernelVariant: kernel.variant,
      by: kernel.by,
      why: kernel.why,
      osreldate: kernel.osreldate,
      evidence: kernel.evidence,
      experiment: e === null ? null : { cached: e.cached, probedAt: e.probedAt, elapsedMs: e.elapsedMs, cacheMiss: e.cacheMiss, vm: e.vmName ?? null },
    },
    'kernel identified',
  );
  if (kernel.disagreement !== null) logger.warn({ kernelVariant: kernel.variant, osreldate: kernel.osreldate }, kernel.disagreement);
  if (kernel.by === 'osreldate') {
    logger.warn({ kernelVariant: kernel.variant, why: kernel.experimentSkipped }, `the kernel variant comes from kern.osreldate alone: ${kernel.experimentSkipped}`);
  }
  return kernel;
}

export interface RunningDaemon {
  server: CompatServer;
  logger: Logger;
  stop(): Promise<void>;
  reload(): void;
}

export async function startDaemon(options: DaemonOptions): Promise<RunningDaemon> {
  let config = applyOverrides(loadConfig(options.configPath, { mustExist: options.configMustExist }), options.overrides);
  let { logger, destination } = makeLogger(config);
  const device = openVmmDevice(config.syscallLibrary);
  const syscalls = openVmmSyscalls(config.syscallLibrary);
  let kernel = await identifyKernelForDaemon(config, syscalls, logger);
  const { variant, why } = kernel;
  // The metrics exist (and count) even with metrics_listen off: a reload that turns the
  // listener on then serves totals since start-up, as a counter should.
  const registry = new VmRegistry();
  const daemonMetrics = new DaemonMetrics(registry);
  daemonMetrics.setKernelVariant(variant, kernel.by);
  const server = new CompatServer({
    variant,
    variantBy: kernel.by,
    compatFreebsd13: config.compatFreebsd13,
    directories: directoriesOf(config),
    device,
    peers: options.peers ?? platformPeerInspector(config.deviceDir),
    logger,
    deviceDir: config.deviceDir,
    registry,
    metrics: daemonMetrics,
  });
  daemonMetrics.openSessions = () => server.openSessionsByJail();
  await server.start();
  const startedAt = new Date();
  const control: net.Server = await startControlServer(config.socketDir, () => statusReport(server, startedAt, kernelStatus(kernel)));
  let metricsServer: http.Server | null = null;
  const startMetrics = async (c: Config): Promise<void> => {
    if (metricsServer) await new Promise<void>((resolve) => metricsServer!.close(() => resolve()));
    metricsServer = null;
    if (!c.metricsListen) return;
    try {
      metricsServer = await startMetricsServer(c.metricsListen.host, c.metricsListen.port, daemonMetrics);
      logger.info({ metrics: `http://${c.metricsListen.host}:${c.metricsListen.port}/metrics` }, 'metrics listening');
    } catch (err) {
      logger.error({ err: String(err), metricsListen: c.metricsListen }, 'cannot serve metrics; continuing without');
    }
  };
  await startMetrics(config);
  logger.info({ version: VERSION, kernelVariant: variant, by: kernel.by, why, syscallLibrary: config.syscallLibrary }, 'vmm-compatd started');

  /** A kernel identification replaces the one in use (SIGHUP changed kernel_variant). */
  const applyKernel = (next: DaemonKernel, compatFreebsd13: boolean): void => {
    kernel = next;
    server.update({ variant: next.variant, variantBy: next.by, compatFreebsd13 });
    daemonMetrics.setKernelVariant(next.variant, next.by);
  };

  const reload = (): void => {
    let next: Config;
    try {
      next = applyOverrides(loadConfig(options.configPath, { mustExist: options.configMustExist }), options.overrides);
    } catch (err) {
      logger.error({ err: err instanceof Error ? err.message : String(err) }, 'reload failed; keeping the running configuration');
      return;
    }
    const applied: string[] = [];
    if (next.logFile && next.logFile === config.logFile) {
      // newsyslog(8) rotated the file and sent HUP: write to a fresh file of the same name.
      destination.reopen();
      applied.push(`reopened ${next.logFile}`);
    }
    if (next.logLevel !== config.logLevel) {
      logger.level = next.logLevel;
      applied.push(`log_level=${next.logLevel}`);
    }
    if (next.logFile !== config.logFile) {
      ({ logger, destination } = makeLogger(next));
      server.setLogger(logger);
      applied.push(`log_file=${next.logFile ?? 'stderr'}`);
    }
    if (next.kernelVariant !== 'auto') {
      // An explicit kernel_variant wins at once.
      if (next.kernelVariant !== kernel.variant || kernel.by !== 'config' || next.compatFreebsd13 !== config.compatFreebsd13) {
        applyKernel({ ...kernel, ...decideKernelVariant({ configured: next.kernelVariant, osreldate: kernel.osreldate, experiment: null }), experiment: null }, next.compatFreebsd13);
        applied.push(`kernel_variant=${next.kernelVariant}`, `compat_freebsd13=${next.compatFreebsd13 ? 'yes' : 'no'}`);
      }
    } else if (kernel.by === 'config') {
      // From an explicit variant back to auto: identify the kernel now; the old variant serves
      // until the answer is in.
      const reloaded = next;
      void identifyKernelForDaemon(reloaded, syscalls, logger).then(
        (identified) => {
          applyKernel(identified, reloaded.compatFreebsd13);
          logger.info({ kernelVariant: identified.variant, by: identified.by }, 'configuration reloaded; kernel_variant = auto identified the kernel');
        },
        (err: unknown) => logger.error({ err: err instanceof Error ? err.message : String(err) }, `kernel_variant = auto cannot identify the kernel; keeping ${kernel.variant}`),
      );
      applied.push('kernel_variant=auto (identifying the kernel)');
    } else if (next.compatFreebsd13 !== config.compatFreebsd13) {
      server.update({ variant: kernel.variant, variantBy: kernel.by, compatFreebsd13: next.compatFreebsd13 });
      applied.push(`compat_freebsd13=${next.compatFreebsd13 ? 'yes' : 'no'}`);
    }
    const wanted = new Map(directoriesOf(next).map((d) => [d.path, d]));
    const current = new Set(server.directories().map((d) => d.path));
    for (const dirPath of current) {
      if (!wanted.has(dirPath)) {
        void server.unlisten(dirPath);
        applied.push(`removed socket directory ${dirPath}`);
      }
    }
    for (const [dirPath, dir] of wanted) {
      if (!current.has(dirPath)) {
        void server.listen(dir).catch((err: unknown) => logger.error({ dir: dirPath, err: String(err) }, 'cannot listen'));
        applied.push(`added socket directory ${dirPath} (jail ${dir.jail})`);
      }
    }
    if (JSON.stringify(next.metricsListen) !== JSON.stringify(config.metricsListen)) {
      void startMetrics(next);
      applied.push(`metrics_listen=${next.metricsListen ? `${next.metricsListen.host}:${next.metricsListen.port}` : 'off'}`);
    }
    const needsRestart: string[] = [];
    if (next.syscallLibrary !== config.syscallLibrary) needsRestart.push('syscall_library');
    if (next.probeCache !== config.probeCache) needsRestart.push('probe_cache');
    if (next.socketDir !== config.socketDir) needsRestart.push('socket_dir (control socket)');
    if (next.deviceDir !== config.deviceDir) needsRestart.push('device_dir');
    config = next;
    logger.info({ applied, needsRestart }, applied.length > 0 ? 'configuration reloaded' : 'configuration reloaded; nothing changed');
  };

  const stop = async (): Promise<void> => {
    await server.stop();
    await new Promise<void>((resolve) => control.close(() => resolve()));
    if (metricsServer) await new Promise<void>((resolve) => metricsServer!.close(() => resolve()));
    logger.info('vmm-compatd stopped; running VMs are untouched');
    logger.flush?.();
  };
  return { server, logger, stop, reload };
}

/** The `daemon` command's main loop: runs until SIGTERM/SIGINT. */
export async function runDaemon(options: DaemonOptions): Promise<void> {
  // Handlers first: a HUP or TERM that arrives while the sockets are being set up must not
  // kill the daemon with the default action; it is acted on once start-up is done.
  let daemon: RunningDaemon | null = null;
  let reloadPending = false;
  let stopPending: string | null = null;
  const shutdown = (signal: string): void => {
    if (!daemon) {
      stopPending = signal;
      return;
    }
    daemon.logger.info({ signal }, 'shutting down');
    void daemon.stop().then(() => process.exit(0));
  };
  process.on('SIGHUP', () => {
    if (daemon) daemon.reload();
    else reloadPending = true;
  });
  process.on('SIGTERM', () => shutdown('SIGTERM'));
  process.on('SIGINT', () => shutdown('SIGINT'));
  daemon = await startDaemon(options);
  if (stopPending) shutdown(stopPending);
  else if (reloadPending) daemon.reload();
}
