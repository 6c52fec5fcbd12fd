// Lab tests that act on a running VM (destroy it, kill bhyve, ask status) first wait until its
// BSP has run guest code: a spinning guest's instruction count, as the kernel model counts it.
import type { LabBench } from '../../src/lab/run';

export interface GuestRanOptions {
  /** Give up at this Date.now(). */
  deadline: number;
  /** vCPU 0's count to go past by `instructions` (default 0: counted from the VM's start). */
  from?: number;
  /** Default 1000. */
  instructions?: number;
  pollMs?: number;
  /** The error when the deadline passes (default "the guest never ran"). */
  failure?: () => string;
}

export async function waitUntilGuestRan(bench: LabBench, vmName: string, opts: GuestRanOptions): Promise<void> {
  const target = (opts.from ?? 0) + (opts.instructions ?? 1000);
  while ((bench.model.guestStats(vmName)?.instructions[0] ?? 0) < target) {
    if (Date.now() > opts.deadline) throw new Error(opts.failure?.() ?? 'the guest never ran');
    await new Promise((resolve) => setTimeout(resolve, opts.pollMs ?? 10));
  }
}
