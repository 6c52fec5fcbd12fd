// The probe runs once per kernel identity: boot time (kern.boottime, kern_tc.c), release
// (kern.osreldate, kern_mib.c) and build (kern.version, kern_mib.c/vers.c). Its conclusive
// result is kept in a small JSON file (probe_cache, default under /var/run) and used again
// while all three stay the same; any change, or an unreadable identity, means a new probe.
import fs from 'node:fs';
import path from 'node:path';
import { isKernelVariant, type KernelVariant } from './kernel-variant';
import type { VmmSyscalls } from './vmm-device';

export const DEFAULT_PROBE_CACHE = '/var/run/vmm-compat-kernel-probe.json';
const CACHE_FORMAT = 1;

export interface KernelIdentity {
  /** kern.boottime as seconds.microseconds. */
  bootTime: string;
  osreldate: number;
  /** kern.version, as the kernel says it. */
  version: string;
}

/** kern.version is a few hundred bytes; a longer one is cut (it only has to differ). */
const VERSION_MAX_BYTES = 4096;

/** The running kernel's identity, or null when any part cannot be read (no caching then). */
export function readKernelIdentity(sys: VmmSyscalls): KernelIdentity | null {
  const boot = sys.sysctlRead('kern.boottime', 16);
  const osreldate = sys.sysctlRead('kern.osreldate', 8);
  const version = sys.sysctlRead('kern.version', VERSION_MAX_BYTES);
  if (boot === null || boot.length < 16 || osreldate === null || osreldate.length < 4 || version === null) return null;
  const usec = boot.readBigInt64LE(8).toString().padStart(6, '0');
  return {
    bootTime: `${boot.readBigInt64LE(0)}.${usec}`,
    osreldate: osreldate.length >= 8 ? Number(osreldate.readBigInt64LE(0)) : osreldate.readInt32LE(0),
    version: version.toString('latin1').replace(/\0[\s\S]*$/, '').trim(),
  };
}

/** What a conclusive probe found, as kept for the next start on the same kernel. */
export interface CachedProbe {
  variant: KernelVariant;
  why: string;
  evidence: string[];
  /** Whether the kernel has the 144-byte VM_RUN. */
  vmrun144: boolean;
  probedAt: string;
  elapsedMs: number;
}

interface CacheFile {
  format: number;
  identity: KernelIdentity;
  probe: CachedProbe;
}

function sameIdentity(a: KernelIdentity, b: KernelIdentity): boolean {
  return a.bootTime === b.bootTime && a.osreldate === b.osreldate && a.version === b.version;
}

function isCachedProbe(value: unknown): value is CachedProbe {
  if (value === null || typeof value !== 'object') return false;
  const p = value as Record<string, unknown>;
  return (
    typeof p.variant === 'string' &&
    isKernelVariant(p.variant) &&
    typeof p.why === 'string' &&
    Array.isArray(p.evidence) &&
    p.evidence.every((e) => typeof e === 'string') &&
    typeof p.vmrun144 === 'boolean' &&
    typeof p.probedAt === 'string' &&
    typeof p.elapsedMs === 'number'
  );
}

/**
 * The cached result for this identity, or why there is none (no file, another kernel, a file
 * that is not ours): the caller probes again and says why.
 */
export function readProbeCache(file: string, identity: KernelIdentity): { probe: CachedProbe } | { miss: string } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return { miss: code === 'ENOENT' ? 'no earlier probe on this host' : `cannot read ${file}: ${code ?? String(err)}` };
  }
  let parsed: Partial<CacheFile>;
  try {
    parsed = JSON.parse(text) as Partial<CacheFile>;
  } catch {
    return { miss: `${file} is not JSON` };
  }
  const cachedIdentity = parsed.identity;
  if (
    parsed.format !== CACHE_FORMAT ||
    cachedIdentity === undefined ||
    typeof cachedIdentity.bootTime !== 'string' ||
    typeof cachedIdentity.osreldate !== 'number' ||
    typeof cachedIdentity.version !== 'string' ||
    !isCachedProbe(parsed.probe)
  ) {
    return { miss: `${file} is not a probe result of this version` };
  }
  if (!sameIdentity(cachedIdentity, identity)) {
    const changed = [
      cachedIdentity.bootTime !== identity.bootTime ? 'boot time' : null,
      cachedIdentity.osreldate !== identity.osreldate ? 'kern.osreldate' : null,
      cachedIdentity.version !== identity.version ? 'kern.version' : null,
    ].filter((x) => x !== null);
    return { miss: `the kernel changed since the last probe (${changed.join(', ')})` };
  }
  return { probe: parsed.probe };
}

/** Writes the cache atomically (mode 0644: it holds nothing secret). */
export function writeProbeCache(file: string, identity: KernelIdentity, probe: CachedProbe): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const body: CacheFile = { format: CACHE_FORMAT, identity, probe };
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(body, null, 2) + '\n', { mode: 0o644 });
  fs.renameSync(`${file}.tmp`, file);
}
