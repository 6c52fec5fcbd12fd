// A set of vCPU ids (the kernel's cpuset_t: active_cpus, debug_cpus, suspended_cpus,
// startup_cpus, rendezvous_req_cpus, ...). A bigint bit mask: any maxcpu fits, and the
// comparisons the kernel makes with CPU_CMP are a single bigint compare.

import { cpusetToBytes } from '../../abi/cpuset';

export class CpuSet {
  private bits: bigint;

  constructor(bits = 0n) {
    this.bits = bits;
  }

  static of(ids: Iterable<number>): CpuSet {
    const set = new CpuSet();
    for (const id of ids) set.add(id);
    return set;
  }

  has(id: number): boolean {
    return ((this.bits >> BigInt(id)) & 1n) === 1n;
  }

  add(id: number): void {
    this.bits |= 1n << BigInt(id);
  }

  delete(id: number): void {
    this.bits &= ~(1n << BigInt(id));
  }

  clear(): void {
    this.bits = 0n;
  }

  isEmpty(): boolean {
    return this.bits === 0n;
  }

  /** CPU_CMP(a, b) == 0. */
  equals(other: CpuSet): boolean {
    return this.bits === other.bits;
  }

  /** CPU_AND into a new set. */
  and(other: CpuSet): CpuSet {
    return new CpuSet(this.bits & other.bits);
  }

  /** CPU_OR in place. */
  addAll(other: CpuSet): void {
    this.bits |= other.bits;
  }

  /** CPU_ANDNOT in place. */
  deleteAll(other: CpuSet): void {
    this.bits &= ~other.bits;
  }

  copy(): CpuSet {
    return new CpuSet(this.bits);
  }

  assign(other: CpuSet): void {
    this.bits = other.bits;
  }

  /** The ids in ascending order. */
  ids(): number[] {
    const out: number[] = [];
    let rest = this.bits;
    for (let id = 0; rest !== 0n; id++, rest >>= 1n) {
      if ((rest & 1n) === 1n) out.push(id);
    }
    return out;
  }

  /** CPU_FFS: the one-based index of the lowest set bit, 0 for an empty set. */
  ffs(): number {
    if (this.bits === 0n) return 0;
    let id = 0;
    while (((this.bits >> BigInt(id)) & 1n) === 0n) id++;
    return id + 1;
  }

  /**
   * The set as a `size`-byte cpuset_t (little-endian longs = bytes in order); bits that do not
   * fit are dropped, as copying a kernel set into a smaller user buffer drops them.
   */
  toBytes(size: number): Buffer {
    return cpusetToBytes(this.ids().filter((id) => id < size * 8), size);
  }
}
