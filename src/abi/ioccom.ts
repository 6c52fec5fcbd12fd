// ioctl request encoding, as in sys/sys/ioccom.h.
//
// A request is an `unsigned long` on FreeBSD amd64 built as
//   dir | ((len & IOCPARM_MASK) << 16) | (group << 8) | num
// The value always fits in 32 bits and is zero-extended in a 64-bit register (bit 31 set does
// not sign-extend), so this module works with unsigned 32-bit numbers (every result is `>>> 0`).

/** sys/sys/ioccom.h: number of bits for the parameter length. */
export const IOCPARM_SHIFT = 13;
/** sys/sys/ioccom.h: (1 << IOCPARM_SHIFT) - 1. */
export const IOCPARM_MASK = 0x1fff;
/** sys/sys/ioccom.h: largest parameter length the encoding can carry. */
export const IOCPARM_MAX = IOCPARM_MASK + 1;
/** sys/sys/ioccom.h: no parameters (`_IO`). */
export const IOC_VOID = 0x20000000;
/** sys/sys/ioccom.h: copy parameters out (`_IOR`). */
export const IOC_OUT = 0x40000000;
/** sys/sys/ioccom.h: copy parameters in (`_IOW`). */
export const IOC_IN = 0x80000000;
/** sys/sys/ioccom.h: copy parameters in and out (`_IOWR`). */
export const IOC_INOUT = 0xc0000000;
/** sys/sys/ioccom.h: IOC_VOID | IOC_OUT | IOC_IN. */
export const IOC_DIRMASK = 0xe0000000;

/** The ioctl group of every vmm request: 'v' (sys/amd64/include/vmm_dev.h). */
export const VMM_IOC_GROUP = 0x76;

function checkByte(what: string, value: number): void {
  if (!Number.isInteger(value) || value < 0 || value > 0xff) {
    throw new RangeError(`ioc: ${what} must be an integer 0..255, got ${value}`);
  }
}

/**
 * `_IOC(dir, group, num, len)` from sys/sys/ioccom.h, as an unsigned 32-bit number.
 * Unlike the C macro, a length that does not fit in IOCPARM_MASK is an error here rather than
 * silently truncated: a table entry with such a length would be a bug.
 */
export function ioc(dir: number, group: number, num: number, len: number): number {
  if (dir !== IOC_VOID && dir !== IOC_OUT && dir !== IOC_IN && dir !== IOC_INOUT) {
    throw new RangeError(`ioc: dir must be IOC_VOID, IOC_OUT, IOC_IN or IOC_INOUT, got 0x${(dir >>> 0).toString(16)}`);
  }
  checkByte('group', group);
  checkByte('num', num);
  if (!Number.isInteger(len) || len < 0 || len > IOCPARM_MASK) {
    throw new RangeError(`ioc: len must be an integer 0..${IOCPARM_MASK}, got ${len}`);
  }
  return (dir | ((len & IOCPARM_MASK) << 16) | (group << 8) | num) >>> 0;
}

/** `_IO(g, n)`. */
export function io(group: number, num: number): number {
  return ioc(IOC_VOID, group, num, 0);
}
/** `_IOR(g, n, t)` with t of `len` bytes. */
export function ior(group: number, num: number, len: number): number {
  return ioc(IOC_OUT, group, num, len);
}
/** `_IOW(g, n, t)` with t of `len` bytes. */
export function iow(group: number, num: number, len: number): number {
  return ioc(IOC_IN, group, num, len);
}
/** `_IOWR(g, n, t)` with t of `len` bytes. */
export function iowr(group: number, num: number, len: number): number {
  return ioc(IOC_INOUT, group, num, len);
}

/** `IOCPARM_LEN(req)`: the parameter length. */
export function iocLen(req: number): number {
  return (req >>> 16) & IOCPARM_MASK;
}
/** The direction bits (`req & IOC_DIRMASK`), unsigned. */
export function iocDir(req: number): number {
  return (req & IOC_DIRMASK) >>> 0;
}
/** `IOCBASECMD` low byte: the command number within the group. */
export function iocNum(req: number): number {
  return req & 0xff;
}
/** `IOCGROUP(req)`. */
export function iocGroup(req: number): number {
  return (req >>> 8) & 0xff;
}

/** "0xC0907601": upper-case hex digits, always 8 of them. */
export function hexRequest(req: number): string {
  return `0x${(req >>> 0).toString(16).toUpperCase().padStart(8, '0')}`;
}

/**
 * A request number as carried in a 64-bit field (the lab's IOCTL frame, a C `unsigned long`):
 * checks that it is a zero-extended 32-bit value and returns it as a number.
 */
export function requestFromU64(value: bigint | number): number {
  const big = typeof value === 'bigint' ? value : BigInt(value);
  if (big < 0n || big > 0xffffffffn) {
    throw new RangeError(`ioctl request 0x${big.toString(16)} is not a zero-extended 32-bit value`);
  }
  return Number(big);
}
