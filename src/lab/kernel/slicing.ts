// How many guest instructions a vCPU runs before it yields to the event loop.
//
// Every vCPU inside VM_RUN takes one slice per event-loop turn, so a turn lasts about
// (vCPUs in VM_RUN) x (slice) instructions, and every request (a parked AP's VM_RUN, an
// ioctl from bhyve) waits for about one turn. The slice therefore shrinks as more vCPUs run:
// the whole model aims at TURN_INSTRUCTIONS per turn, never more than `sliceInstructions` per
// vCPU and never less than MIN_SLICE (below that the per-slice overhead dominates).

/** Guest instructions per event-loop turn, all vCPUs together (a few milliseconds). */
export const TURN_INSTRUCTIONS = 100_000;
export const MIN_SLICE = 200;

export class SliceBudget {
  private inGuest = 0;

  constructor(private readonly maxSlice: number) {}

  /** A vCPU entered vm_run's loop. */
  enter(): void {
    this.inGuest++;
  }

  /** ... and left it. */
  leave(): void {
    this.inGuest--;
  }

  private nextTurn: Promise<void> | null = null;

  /**
   * Resolves in the next event-loop turn. All vCPUs that yield in one turn share one
   * setImmediate: the turn's cost is the slices, not hundreds of timers and promises.
   */
  yieldTurn(): Promise<void> {
    if (this.nextTurn === null) {
      this.nextTurn = new Promise<void>((resolve) =>
        setImmediate(() => {
          this.nextTurn = null;
          resolve();
        }),
      );
    }
    return this.nextTurn;
  }

  /** The current slice. */
  slice(): number {
    const share = Math.floor(TURN_INSTRUCTIONS / Math.max(1, this.inGuest));
    return Math.min(this.maxSlice, Math.max(MIN_SLICE, share));
  }
}
