// Logged once per burst: the first occurrence of a kind of trouble (a refused connection, a
// protocol error) is logged at once with its detail; the ones that follow are counted, and a
// summary line says how many there were when the burst ends (QUIET_MS without one) or, for a
// burst that goes on, once every SUMMARY_EVERY_MS. A flood then costs the log a few lines, not
// one line per connection (each a synchronous write).
import type { Logger } from 'pino';

export const QUIET_MS = 5000;
export const SUMMARY_EVERY_MS = 60000;

export interface BurstTiming {
  quietMs: number;
  summaryEveryMs: number;
}

interface Burst {
  first: number;
  count: number;
  /** Occurrences since the last line written. */
  unlogged: number;
  lastAt: number;
  lastLogged: number;
  timer: NodeJS.Timeout;
  fields: Record<string, unknown>;
  msg: string;
}

export class BurstLog {
  private readonly bursts = new Map<string, Burst>();

  constructor(
    private logger: () => Logger,
    private readonly timing: BurstTiming = { quietMs: QUIET_MS, summaryEveryMs: SUMMARY_EVERY_MS },
  ) {}

  /**
   * One occurrence. `key` names the kind (e.g. jail + reason); the first of a burst is logged
   * with `fields` and `msg` at warn.
   */
  note(key: string, fields: Record<string, unknown>, msg: string): void {
    const now = Date.now();
    const burst = this.bursts.get(key);
    if (!burst) {
      this.logger().warn(fields, msg);
      const b: Burst = { first: now, count: 1, unlogged: 0, lastAt: now, lastLogged: now, fields, msg, timer: this.quietTimer(key) };
      this.bursts.set(key, b);
      return;
    }
    burst.count++;
    burst.unlogged++;
    burst.lastAt = now;
    if (now - burst.lastLogged >= this.timing.summaryEveryMs) this.summary(burst, 'goes on');
  }

  private quietTimer(key: string): NodeJS.Timeout {
    const timer = setTimeout(() => this.checkQuiet(key), this.timing.quietMs);
    timer.unref();
    return timer;
  }

  private checkQuiet(key: string): void {
    const burst = this.bursts.get(key);
    if (!burst) return;
    const idle = Date.now() - burst.lastAt;
    if (idle < this.timing.quietMs) {
      burst.timer = setTimeout(() => this.checkQuiet(key), this.timing.quietMs - idle);
      burst.timer.unref();
      return;
    }
    this.bursts.delete(key);
    if (burst.unlogged > 0) this.summary(burst, 'ended');
  }

  private summary(burst: Burst, state: 'goes on' | 'ended'): void {
    const seconds = Number(((burst.lastAt - burst.first) / 1000).toFixed(1));
    this.logger().warn(
      { ...burst.fields, burst: { count: burst.count, sinceLastLine: burst.unlogged, seconds, state } },
      `${burst.msg}: ${burst.unlogged} more since the last line (${burst.count} in this burst over ${seconds} s; the burst ${state})`,
    );
    burst.unlogged = 0;
    burst.lastLogged = Date.now();
  }

  /** Writes the summaries of the bursts still open (the daemon stops). */
  flush(): void {
    for (const [key, burst] of this.bursts) {
      clearTimeout(burst.timer);
      this.bursts.delete(key);
      if (burst.unlogged > 0) this.summary(burst, 'ended');
    }
  }
}
