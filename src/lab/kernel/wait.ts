// Sleeping and waking inside the model: the event-loop form of the kernel's msleep()/wakeup().
//
// A kernel thread that waits ("vmstat", "vmrndv", "vmsusp", "vmidle", "vmhalt") re-checks its
// condition in a loop after every wakeup; the model does the same, so one broadcast channel per
// VM is enough (spurious wakeups are harmless, lost ones are not). A call's AbortSignal plays
// the part of thread_check_susp(): when the caller's connection goes away, the sleeper unwinds.

import { CallAborted } from './errno';

/**
 * The largest copyin/copyout the model performs in one piece: a COPYOUT frame must fit in the
 * protocol's 1 MiB frame. Larger requests fail with EFAULT (no vmm ioctl needs them).
 */
export const MAX_COPY_BYTES = (1 << 20) - 64;

/** What an ioctl handler gets from the thread that made the call. */
export interface CallContext {
  /** Aborted when the calling thread is gone (connection closed, model shutting down). */
  readonly signal: AbortSignal;
  /** copyin(9): reads the caller's memory; a bad address is EFAULT. */
  copyin(addr: bigint, len: number): Promise<Buffer>;
  /** copyout(9): writes the caller's memory; a bad address is EFAULT. */
  copyout(addr: bigint, data: Buffer): Promise<void>;
}

interface Sleeper {
  wake(): void;
}

export class WaitChannel {
  private readonly sleepers = new Set<Sleeper>();

  /** Resolves at the next wakeup(); rejects with CallAborted when `signal` aborts first. */
  sleep(signal: AbortSignal): Promise<void> {
    if (signal.aborted) return Promise.reject(new CallAborted());
    return new Promise<void>((resolve, reject) => {
      const onAbort = (): void => {
        this.sleepers.delete(sleeper);
        reject(new CallAborted());
      };
      const sleeper: Sleeper = {
        wake: () => {
          signal.removeEventListener('abort', onAbort);
          resolve();
        },
      };
      this.sleepers.add(sleeper);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  /** wakeup(9): every sleeper resumes and re-checks its condition. */
  wakeup(): void {
    if (this.sleepers.size === 0) return;
    const woken = [...this.sleepers];
    this.sleepers.clear();
    for (const sleeper of woken) sleeper.wake();
  }
}

/** Throws CallAborted if the calling thread is gone. */
export function checkAlive(signal: AbortSignal): void {
  if (signal.aborted) throw new CallAborted();
}
