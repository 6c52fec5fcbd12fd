// Capsicum limits of one open file (sys/kern/sys_capability.c): cap_rights_limit and
// cap_ioctls_limit may only narrow what the descriptor allows; kern_ioctl needs CAP_IOCTL and,
// when an ioctl list is set, the request in it (cap_ioctl_check); mmap needs CAP_MMAP_*.

import { Errno, fail } from './errno';

/** The rights bits of the CAP_RIGHTS frame (docs/internals.md section 2). */
export const CapRight = {
  IOCTL: 1n << 0n,
  MMAP_RW: 1n << 1n,
} as const;

/** sys_capability.c IOCTLS_MAX_COUNT: cap_ioctls_limit takes at most this many commands. */
export const IOCTLS_MAX_COUNT = 256;

export class CapabilityLimits {
  /** null: no limit yet (every right). */
  private rights: bigint | null = null;
  /** null: no ioctl list (every request, given CAP_IOCTL). */
  private ioctls: ReadonlySet<number> | null = null;

  /** kern_cap_rights_limit: ENOTCAPABLE unless the new rights are contained in the current ones. */
  limitRights(rights: bigint): void {
    if (this.rights !== null && (rights & ~this.rights) !== 0n) fail(Errno.ENOTCAPABLE, 'cap_rights_limit may not widen rights');
    this.rights = rights;
  }

  /** kern_cap_ioctls_limit (cap_ioctl_limit_check): a new list must be a subset of the old one. */
  limitIoctls(requests: readonly number[]): void {
    if (requests.length > IOCTLS_MAX_COUNT) fail(Errno.EINVAL, `${requests.length} ioctls > ${IOCTLS_MAX_COUNT}`);
    const current = this.ioctls;
    if (current !== null && requests.some((r) => !current.has(r))) fail(Errno.ENOTCAPABLE, 'cap_ioctls_limit may not widen the list');
    this.ioctls = new Set(requests);
  }

  /** kern_ioctl: fget with CAP_IOCTL, then cap_ioctl_check. */
  checkIoctl(request: number): void {
    if (this.rights !== null && (this.rights & CapRight.IOCTL) === 0n) fail(Errno.ENOTCAPABLE, 'no CAP_IOCTL');
    if (this.ioctls !== null && !this.ioctls.has(request)) fail(Errno.ENOTCAPABLE, 'ioctl not in the cap_ioctls_limit list');
  }

  /** kern_mmap: the descriptor needs CAP_MMAP_R/W for a shared read-write mapping. */
  checkMmap(): void {
    if (this.rights !== null && (this.rights & CapRight.MMAP_RW) === 0n) fail(Errno.ENOTCAPABLE, 'no CAP_MMAP_RW');
  }
}
