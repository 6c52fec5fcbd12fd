// Plans served round-robin across jails: each jail's plans wait in their own FIFO, and the jails
// with plans waiting take turns, one plan each. A jail with 100 plans queued therefore delays
// another jail's single plan by at most one plan (docs/design.md, "Security").

export class FairQueue<T> {
  /** Per jail, in arrival order. */
  private readonly queues = new Map<string, T[]>();
  /** Jails with something queued, in the order they are served next. */
  private readonly ring: string[] = [];
  private count = 0;

  push(jail: string, item: T): void {
    let queue = this.queues.get(jail);
    if (!queue) {
      queue = [];
      this.queues.set(jail, queue);
    }
    queue.push(item);
    // A jail that had nothing queued joins at the end of the ring: behind every jail already
    // waiting, and so ahead of the jail just served, which went to the end before it.
    if (queue.length === 1) this.ring.push(jail);
    this.count++;
  }

  /** The first item of the jail whose turn it is; that jail goes to the end of the ring. */
  shift(): { jail: string; item: T } | undefined {
    const jail = this.ring.shift();
    if (jail === undefined) return undefined;
    const queue = this.queues.get(jail)!;
    const item = queue.shift()!;
    this.count--;
    if (queue.length > 0) this.ring.push(jail);
    else this.queues.delete(jail);
    return { jail, item };
  }

  /** Jails with something queued: one round of shift() serves each of them once. */
  get jailsWaiting(): number {
    return this.ring.length;
  }

  get size(): number {
    return this.count;
  }

  /** Queued items of one jail (the per-jail bound is its max_sessions: one plan per session). */
  sizeOf(jail: string): number {
    return this.queues.get(jail)?.length ?? 0;
  }
}
