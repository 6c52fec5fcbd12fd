// cpuset_t as bytes (sys/sys/_cpuset.h, sys/sys/_bitset.h): an array of `long`, bit i of the
// set = vCPU i. On little-endian amd64 with 64-bit longs, bit i is bit (i & 7) of byte (i >> 3),
// so the byte view below is the same as the long view.

/** sizeof(cpuset_t) in 13.1 userland and kernel: CPU_MAXSIZE 256 bits (legacy-13.1-side.md 4.3). */
export const CPUSET_BYTES_13 = 32;
/** sizeof(cpuset_t) on 14.0: MAXCPU / userland CPU_MAXSIZE 1024 bits (kernel-main-side.md 4.1). */
export const CPUSET_BYTES_14 = 128;

/** A `size`-byte set with the bits of `ids` set. Throws if an id does not fit. */
export function cpusetToBytes(ids: Iterable<number>, size: number): Buffer {
  if (!Number.isInteger(size) || size < 0) {
    throw new RangeError(`cpusetToBytes: size must be a non-negative integer, got ${size}`);
  }
  const buf = Buffer.alloc(size);
  for (const id of ids) {
    if (!Number.isInteger(id) || id < 0 || id >= size * 8) {
      throw new RangeError(`cpusetToBytes: vCPU ${id} does not fit in a ${size}-byte cpuset (0..${size * 8 - 1})`);
    }
    buf[id >> 3] = (buf[id >> 3] ?? 0) | (1 << (id & 7));
  }
  return buf;
}

/** The vCPU ids whose bits are set, ascending. */
export function cpusetFromBytes(buf: Buffer): number[] {
  const ids: number[] = [];
  for (let byte = 0; byte < buf.length; byte++) {
    const bits = buf[byte] ?? 0;
    if (bits === 0) continue;
    for (let bit = 0; bit < 8; bit++) {
      if (bits & (1 << bit)) ids.push(byte * 8 + bit);
    }
  }
  return ids;
}

/** CPU_ISSET(id, set) on a byte view; false for an id beyond the buffer. */
export function cpusetHas(buf: Buffer, id: number): boolean {
  if (!Number.isInteger(id) || id < 0 || id >= buf.length * 8) return false;
  return ((buf[id >> 3] ?? 0) & (1 << (id & 7))) !== 0;
}

/**
 * Copies a set into a buffer of another size, as the kernel does for VM_GET_CPUS and the 13.1
 * VM_RUN IPI mask: the shorter length is copied, the rest zero-filled. `truncated` is true when a
 * set bit did not fit into the target.
 */
export function cpusetResize(buf: Buffer, size: number): { bytes: Buffer; truncated: boolean } {
  const bytes = Buffer.alloc(size);
  buf.copy(bytes, 0, 0, Math.min(size, buf.length));
  let truncated = false;
  for (let i = size; i < buf.length; i++) {
    if ((buf[i] ?? 0) !== 0) truncated = true;
  }
  return { bytes, truncated };
}
