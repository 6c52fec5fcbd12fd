// Capsicum limits of one open file (sys/kern/sys_capability.c): cap_rights_limit and
// cap_ioctls_limit may only narrow what the descriptor allows; kern_ioctl needs CAP_IOCTL and,
// when an ioctl list is set, the request in it (cap_ioctl_check); mmap needs CAP_MMAP_*.
//
// Rights are FreeBSD's version 00 cap_rights_t (sys/caprights.h, sys/capsicum.h at
// 032c239e83ef): two 64-bit words, a right is CAPRIGHT(idx, bit) = (1 << (57 + idx)) | bit, so
// bit 57 marks word 0 and bit 58 word 1, and bits 62-63 of word 0 hold the version. A rights
// set contains another when each word contains the other's word (cap_rights_contains).

import { Errno, fail } from './errno';

/** A version 00 cap_rights_t: cr_rights[0], cr_rights[1]. */
export type CapRights = readonly [bigint, bigint];

/** sys/capsicum.h CAPRIGHT(idx, bit). */
export function capright(idx: 0 | 1, bit: bigint): bigint {
  return (1n << (57n + BigInt(idx))) | bit;
}

const SEEK = capright(0, 0x4n) | 0x8n;
const MMAP = capright(0, 0x10n);

/** The rights the lab's callers use, with sys/capsicum.h's values. */
export const CapRight = {
  READ: capright(0, 0x1n),
  WRITE: capright(0, 0x2n),
  SEEK,
  MMAP,
  MMAP_R: MMAP | SEEK | capright(0, 0x1n),
  MMAP_W: MMAP | SEEK | capright(0, 0x2n),
  MMAP_X: MMAP | SEEK | 0x20n,
  MMAP_RW: MMAP | SEEK | capright(0, 0x1n) | 0x2n,
  FSTAT: capright(0, 0x80000n),
  EVENT: capright(1, 0x20n),
  IOCTL: capright(1, 0x80n),
} as const;

/** sys/capsicum.h CAP_ALL0 / CAP_ALL1: every right that exists. */
const ALL: CapRights = [capright(0, 0x000007ffffffffffn), capright(1, 0x00000000001fffffn)];
const VERSION_BITS = 3n << 62n;

/** subr_capability.c right_to_index: the word a right (or a word) belongs to, -1 if none. */
function rightToIndex(right: bigint): number {
  const idxbit = Number((right >> 57n) & 0x1fn);
  return idxbit === 1 ? 0 : idxbit === 2 ? 1 : -1;
}

/** __cap_rights_init: CAP_NONE, then each right ORed into its word. */
export function capRights(...rights: bigint[]): CapRights {
  const words: [bigint, bigint] = [capright(0, 0n), capright(1, 0n)];
  for (const right of rights) {
    const i = rightToIndex(right);
    if (i < 0) throw new RangeError(`0x${right.toString(16)} is not a capability right`);
    words[i] = words[i]! | right;
  }
  return words;
}

/** subr_capability.c cap_rights_is_valid: version 00, only known bits, word i marked as word i. */
export function capRightsValid(r: CapRights): boolean {
  if (r[0] >> 62n !== 0n) return false;
  if ((r[0] & ~ALL[0] & ~VERSION_BITS) !== 0n || (r[1] & ~ALL[1]) !== 0n) return false;
  return rightToIndex(r[0]) === 0 && rightToIndex(r[1]) === 1 && r[1] >> 62n === 0n;
}

/** cap_rights_contains(big, little). */
function contains(big: CapRights, little: CapRights): boolean {
  return (big[0] & little[0]) === little[0] && (big[1] & little[1]) === little[1];
}

/** sys_capability.c IOCTLS_MAX_COUNT: cap_ioctls_limit takes at most this many commands. */
export const IOCTLS_MAX_COUNT = 256;

const PROT_READ = 0x1;
const PROT_WRITE = 0x2;
const PROT_EXEC = 0x4;

export class CapabilityLimits {
  /** null: no limit yet (every right). */
  private rights: CapRights | null = null;
  /** null: no ioctl list (every request, given CAP_IOCTL). */
  private ioctls: ReadonlySet<number> | null = null;

  /**
   * sys_cap_rights_limit / kern_cap_rights_limit: EINVAL for a set that is not a valid version 00
   * set, ENOTCAPABLE unless the new rights are contained in the current ones.
   */
  limitRights(rights: CapRights): void {
    if (!capRightsValid(rights)) fail(Errno.EINVAL, 'not a valid version 00 cap_rights_t');
    if (this.rights !== null && !contains(this.rights, rights)) fail(Errno.ENOTCAPABLE, 'cap_rights_limit may not widen rights');
    this.rights = rights;
  }

  /** kern_cap_ioctls_limit (cap_ioctl_limit_check): a new list must be a subset of the old one. */
  limitIoctls(requests: readonly number[]): void {
    if (requests.length > IOCTLS_MAX_COUNT) fail(Errno.EINVAL, `${requests.length} ioctls > ${IOCTLS_MAX_COUNT}`);
    const current = this.ioctls;
    if (current !== null && requests.some((r) => !current.has(r))) fail(Errno.ENOTCAPABLE, 'cap_ioctls_limit may not widen the list');
    this.ioctls = new Set(requests);
  }

  /** kern_ioctl: fget with CAP_IOCTL (cap_ioctl_rights), then cap_ioctl_check. */
  checkIoctl(request: number): void {
    if (this.rights !== null && !contains(this.rights, capRights(CapRight.IOCTL))) fail(Errno.ENOTCAPABLE, 'no CAP_IOCTL');
    if (this.ioctls !== null && !this.ioctls.has(request)) fail(Errno.ENOTCAPABLE, 'ioctl not in the cap_ioctls_limit list');
  }

  /**
   * vm_mmap.c kern_mmap: CAP_MMAP, plus CAP_MMAP_R for PROT_READ, CAP_MMAP_W for a shared
   * PROT_WRITE mapping (the device's mappings are MAP_SHARED), CAP_MMAP_X for PROT_EXEC.
   */
  checkMmap(prot: number): void {
    if (this.rights === null) return;
    const need = [CapRight.MMAP];
    if ((prot & PROT_READ) !== 0) need.push(CapRight.MMAP_R);
    if ((prot & PROT_WRITE) !== 0) need.push(CapRight.MMAP_W);
    if ((prot & PROT_EXEC) !== 0) need.push(CapRight.MMAP_X);
    if (!contains(this.rights, capRights(...need))) fail(Errno.ENOTCAPABLE, 'no CAP_MMAP_R/W for this mapping');
  }
}
