// /usr/local/etc/vmm-compat.conf: one file for the daemon, `wrap` and `doctor`.
// Format: `key = value` lines, `#` comments, and `[jail NAME]` sections (docs/configuration.md).
// Every problem names the file, the line, the key and the fix; unknown keys are errors.
import fs from 'node:fs';
import path from 'node:path';
import { KERNEL_VARIANTS, isKernelVariant, type KernelVariant } from '../daemon/kernel-variant';
import { DEFAULT_PROBE_CACHE } from '../daemon/kernel-probe-cache';

export const DEFAULT_CONFIG_PATH = '/usr/local/etc/vmm-compat.conf';
export const DEFAULT_SOCKET_DIR = '/var/run/vmm-compat';

export type LogLevel = 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace';
const LOG_LEVELS: readonly LogLevel[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace'];

export interface JailConfig {
  name: string;
  socketDir: string;
}

export interface Config {
  /**
   * 'auto': the daemon's probe VM decides (docs/design.md, "Identifying the kernel"), with
   * kern.osreldate as corroboration and as the fallback where no probe VM can be made.
   */
  kernelVariant: KernelVariant | 'auto';
  /** Where the probe's result is kept for the next start on the same kernel. */
  probeCache: string;
  compatFreebsd13: boolean;
  failurePolicy: 'fallback' | 'refuse';
  socketDir: string;
  deviceDir: string;
  syscallLibrary: string;
  parkerBootPollUs: number;
  parkerBootWindowMs: number;
  parkerIdlePollMs: number;
  logLevel: LogLevel;
  logFile: string | null;
  metricsListen: { host: string; port: number } | null;
  jails: JailConfig[];
}

export function defaultConfig(): Config {
  return {
    kernelVariant: 'auto',
    probeCache: DEFAULT_PROBE_CACHE,
    compatFreebsd13: true,
    failurePolicy: 'fallback',
    socketDir: DEFAULT_SOCKET_DIR,
    deviceDir: '/dev/vmm',
    syscallLibrary: process.platform === 'freebsd' ? 'libc.so.7' : 'libc.so.6',
    parkerBootPollUs: 1000,
    parkerBootWindowMs: 15000,
    parkerIdlePollMs: 100,
    logLevel: 'info',
    logFile: null,
    metricsListen: null,
    jails: [],
  };
}

export class ConfigError extends Error {}

type Setter = (config: Config, value: string, where: string) => void;

function yesNo(value: string, where: string, key: string): boolean {
  if (/^(yes|true|on|1)$/i.test(value)) return true;
  if (/^(no|false|off|0)$/i.test(value)) return false;
  throw new ConfigError(`${where}: ${key} must be yes or no, not "${value}"`);
}

function integer(value: string, where: string, key: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) {
    throw new ConfigError(`${where}: ${key} must be a whole number from ${min} to ${max}, not "${value}"`);
  }
  return n;
}

function absolutePath(value: string, where: string, key: string): string {
  if (!path.isAbsolute(value)) throw new ConfigError(`${where}: ${key} must be an absolute path, not "${value}"`);
  return path.normalize(value);
}

const GLOBAL_KEYS: Readonly<Record<string, Setter>> = {
  kernel_variant: (c, v, w) => {
    if (v !== 'auto' && !isKernelVariant(v)) {
      throw new ConfigError(`${w}: kernel_variant must be auto or one of ${KERNEL_VARIANTS.join(', ')}, not "${v}"`);
    }
    c.kernelVariant = v;
  },
  probe_cache: (c, v, w) => {
    c.probeCache = absolutePath(v, w, 'probe_cache');
  },
  compat_freebsd13: (c, v, w) => {
    c.compatFreebsd13 = yesNo(v, w, 'compat_freebsd13');
  },
  failure_policy: (c, v, w) => {
    if (v !== 'fallback' && v !== 'refuse') {
      throw new ConfigError(`${w}: failure_policy must be "fallback" (act without the daemon) or "refuse", not "${v}"`);
    }
    c.failurePolicy = v;
  },
  socket_dir: (c, v, w) => {
    c.socketDir = absolutePath(v, w, 'socket_dir');
  },
  device_dir: (c, v, w) => {
    c.deviceDir = absolutePath(v, w, 'device_dir');
  },
  syscall_library: (c, v, w) => {
    if (v === '') throw new ConfigError(`${w}: syscall_library must name a shared library, e.g. libc.so.7`);
    c.syscallLibrary = v;
  },
  parker_boot_poll_us: (c, v, w) => {
    c.parkerBootPollUs = integer(v, w, 'parker_boot_poll_us', 100, 100000);
  },
  parker_boot_window_ms: (c, v, w) => {
    c.parkerBootWindowMs = integer(v, w, 'parker_boot_window_ms', 0, 3600000);
  },
  parker_idle_poll_ms: (c, v, w) => {
    c.parkerIdlePollMs = integer(v, w, 'parker_idle_poll_ms', 1, 10000);
  },
  log_level: (c, v, w) => {
    if (!(LOG_LEVELS as readonly string[]).includes(v)) {
      throw new ConfigError(`${w}: log_level must be one of ${LOG_LEVELS.join(', ')}, not "${v}"`);
    }
    c.logLevel = v as LogLevel;
  },
  log_file: (c, v, w) => {
    c.logFile = v === '' ? null : absolutePath(v, w, 'log_file');
  },
  metrics_listen: (c, v, w) => {
    if (v === '') {
      c.metricsListen = null;
      return;
    }
    const m = /^(127\.\d+\.\d+\.\d+|localhost|\[::1\]):(\d+)$/.exec(v);
    if (!m) {
      throw new ConfigError(`${w}: metrics_listen must be a loopback HOST:PORT such as 127.0.0.1:9641 (or empty to disable), not "${v}"`);
    }
    c.metricsListen = { host: m[1]!.replace(/^\[|\]$/g, ''), port: integer(m[2]!, w, 'metrics_listen port', 1, 65535) };
  },
};

/** Every key of the global section (the fuzzer's dictionary and seeds follow it). */
export const CONFIG_KEYS: readonly string[] = Object.keys(GLOBAL_KEYS);

const JAIL_NAME = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}$/;
/** Names a jail's default socket directory (socket_dir/NAME) must not take. */
export const RESERVED_JAIL_NAMES: readonly string[] = ['host', 'vmm-compatd.sock', 'control.sock', 'kernel-variant', 'kernel-variant.tmp'];

export function parseConfig(text: string, file = DEFAULT_CONFIG_PATH): Config {
  const config = defaultConfig();
  let jail: JailConfig | null = null;
  const seen = new Set<string>();
  text.split(/\r?\n/).forEach((raw, index) => {
    const where = `${file}:${index + 1}`;
    const line = raw.replace(/(^|\s)#.*$/, '').trim();
    if (line === '') return;
    const section = /^\[\s*jail\s+([^\]\s]+)\s*\]$/.exec(line);
    if (section) {
      const name = section[1]!;
      if (!JAIL_NAME.test(name)) throw new ConfigError(`${where}: jail name "${name}" is not a valid jail name`);
      if (config.jails.some((j) => j.name === name)) throw new ConfigError(`${where}: jail ${name} is configured twice`);
      if (RESERVED_JAIL_NAMES.includes(name)) {
        throw new ConfigError(`${where}: "${name}" is reserved (the host's own directory or a file in it); rename the jail section`);
      }
      jail = { name, socketDir: '' };
      config.jails.push(jail);
      return;
    }
    if (line.startsWith('[')) throw new ConfigError(`${where}: unknown section ${line}; sections are [jail NAME]`);
    const kv = /^([A-Za-z0-9_]+)\s*=\s*(.*)$/.exec(line);
    if (!kv) throw new ConfigError(`${where}: expected "key = value", got "${line}"`);
    const key = kv[1]!;
    const value = kv[2]!.replace(/^"(.*)"$/, '$1');
    if (jail) {
      if (key !== 'socket_dir') throw new ConfigError(`${where}: unknown key ${key} in [jail ${jail.name}]; the only key there is socket_dir`);
      jail.socketDir = absolutePath(value, where, 'socket_dir');
      return;
    }
    // Own keys only: "constructor = x" must not find Object.prototype.constructor.
    const setter = Object.hasOwn(GLOBAL_KEYS, key) ? GLOBAL_KEYS[key] : undefined;
    if (!setter) {
      throw new ConfigError(`${where}: unknown key ${key}; known keys are ${Object.keys(GLOBAL_KEYS).join(', ')}`);
    }
    if (seen.has(key)) throw new ConfigError(`${where}: ${key} is set twice`);
    seen.add(key);
    setter(config, value, where);
  });
  for (const j of config.jails) {
    if (j.socketDir === '') j.socketDir = path.join(config.socketDir, j.name);
  }
  const dirs = new Map<string, string>([[config.socketDir, 'host']]);
  for (const j of config.jails) {
    const other = dirs.get(j.socketDir);
    if (other) throw new ConfigError(`${file}: jail ${j.name} and ${other} share the socket directory ${j.socketDir}; each needs its own`);
    dirs.set(j.socketDir, j.name);
  }
  return config;
}

export function loadConfig(file: string, { mustExist }: { mustExist: boolean }): Config {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' && !mustExist) return defaultConfig();
    throw new ConfigError(`cannot read ${file}: ${code ?? String(err)}`);
  }
  return parseConfig(text, file);
}
