// The daemon's own descriptor limit (getrlimit RLIMIT_NOFILE, the soft limit): every session is
// one descriptor, and a daemon out of descriptors can serve nobody, `status` included. Node
// raises the soft limit to the hard one at start-up, so this is what the daemon really has.
import os from 'node:os';
import { koffi } from '../ffi/koffi';

/**
 * RLIMIT_NOFILE: 8 on FreeBSD (sys/sys/resource.h, read at 02e2c406a266), 7 on Linux (the lab).
 * struct rlimit is two 64-bit rlim_t on amd64 in both (quad_t rlim_cur, rlim_max).
 */
const RLIMIT_NOFILE = os.platform() === 'freebsd' ? 8 : 7;
const RLIM_INFINITY_FREEBSD = (1n << 63n) - 1n;
const RLIM_INFINITY_LINUX = (1n << 64n) - 1n;

type GetRlimit = (resource: number, rlim: { cur?: number | bigint }) => number;
let getrlimit: GetRlimit | null = null;

/** The soft descriptor limit, or null when it cannot be read or is unlimited. */
export function descriptorLimit(): number | null {
  try {
    if (!getrlimit) {
      const libc = koffi.load(os.platform() === 'freebsd' ? 'libc.so.7' : 'libc.so.6');
      const rlimit = koffi.struct('vmm_compat_rlimit', { cur: 'uint64_t', max: 'uint64_t' });
      getrlimit = libc.func('getrlimit', 'int', ['int', koffi.out(koffi.pointer(rlimit))]) as GetRlimit;
    }
    const rlim: { cur?: number | bigint } = {};
    if (getrlimit(RLIMIT_NOFILE, rlim) !== 0 || rlim.cur === undefined) return null;
    const soft = BigInt(rlim.cur);
    if (soft === RLIM_INFINITY_FREEBSD || soft === RLIM_INFINITY_LINUX || soft > BigInt(Number.MAX_SAFE_INTEGER)) return null;
    return Number(soft);
  } catch {
    return null;
  }
}
