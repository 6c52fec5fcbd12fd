// A token bucket: `burst` events at once, then `perSecond` a second. The daemon takes a
// session's events through one of these and its directory's through another; when either is
// empty it stops reading that session until the tokens are back (back-pressure: the socket
// buffers fill and the interposer drops events, never a vCPU thread waiting on the daemon).

export class TokenBucket {
  private tokens: number;
  private last: number;

  constructor(
    private perSecond: number,
    private burst: number,
    now = performance.now(),
  ) {
    this.tokens = burst;
    this.last = now;
  }

  /** New rates (SIGHUP); the tokens held stay, up to the new burst. */
  setRate(perSecond: number, burst: number): void {
    this.perSecond = perSecond;
    this.burst = burst;
    this.tokens = Math.min(this.tokens, burst);
  }

  private refill(now: number): void {
    if (now > this.last) {
      this.tokens = Math.min(this.burst, this.tokens + ((now - this.last) * this.perSecond) / 1000);
      this.last = now;
    }
  }

  /** Whether one token is there now (not taken). */
  has(now = performance.now()): boolean {
    this.refill(now);
    return this.tokens >= 1;
  }

  take(now = performance.now()): boolean {
    this.refill(now);
    if (this.tokens < 1) return false;
    this.tokens -= 1;
    return true;
  }

  /** Milliseconds until one token is there (0: now). */
  waitMs(now = performance.now()): number {
    this.refill(now);
    return this.tokens >= 1 ? 0 : Math.ceil(((1 - this.tokens) * 1000) / this.perSecond);
  }
}
