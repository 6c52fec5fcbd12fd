// V8's precise block coverage (the inspector's Profiler domain) as a fuzzer's feedback: which
// blocks of the decoder's own scripts ran since the last look. The code under test runs as
// shipped: no instrumentation pass, no copy.
import inspector from 'node:inspector';
import v8 from 'node:v8';

interface CoverageRange {
  startOffset: number;
  endOffset: number;
  count: number;
}
interface FunctionCoverage {
  functionName: string;
  ranges: CoverageRange[];
}
interface ScriptCoverage {
  url: string;
  functions: FunctionCoverage[];
}

/**
 * V8 reports a block only where its count differs from its enclosing range's: a function that
 * ran lists its blocks that did not run (count 0) and those that ran a different number of
 * times. So a block is known once some run missed it, and covered in a later look if its
 * function ran and no missed range of that look encloses it.
 */
export class BlockCoverage {
  private readonly session = new inspector.Session();
  /** Per function ("url#start-end"): its blocks that some run missed. */
  private readonly blocks = new Map<string, CoverageRange[]>();

  constructor(private readonly watched: (url: string) => boolean) {
    // Optimised code (Maglev, TurboFan) does not count function entries, so a hot function's
    // blocks would drop out of the report after a few thousand runs (measured on Node 20).
    // Process-wide: the fuzzer's process only.
    v8.setFlagsFromString('--no-opt');
    this.session.connect();
    this.post('Profiler.enable');
    // Block counts, reset by every takePreciseCoverage. (Binary mode reports a function once
    // and then leaves it out of later reports: no use for per-input feedback.)
    this.post('Profiler.startPreciseCoverage', { callCount: true, detailed: true });
  }

  // An in-process session answers synchronously: the callback has run when post returns.
  private post(method: string, params?: object): unknown {
    let failure: Error | null = null;
    let answer: unknown;
    this.session.post(method, params ?? {}, (err: Error | null, result?: object) => {
      failure = err;
      answer = result;
    });
    if (failure) throw failure;
    return answer;
  }

  /** The watched functions and blocks that ran since the previous call (keys "url#start-end"). */
  take(): string[] {
    const { result } = this.post('Profiler.takePreciseCoverage') as { result: ScriptCoverage[] };
    const ran: string[] = [];
    for (const script of result) {
      if (!this.watched(script.url)) continue;
      for (const fn of script.functions) {
        const [whole, ...inner] = fn.ranges;
        if (!whole) continue;
        const fnKey = `${script.url}#${whole.startOffset}-${whole.endOffset}`;
        let blocks = this.blocks.get(fnKey);
        if (!blocks) {
          blocks = [];
          this.blocks.set(fnKey, blocks);
        }
        const missed = inner.filter((r) => r.count === 0);
        for (const r of missed) {
          if (!blocks.some((b) => b.startOffset === r.startOffset && b.endOffset === r.endOffset)) blocks.push(r);
        }
        if (whole.count === 0) continue;
        ran.push(fnKey);
        for (const b of blocks) {
          const enclosed = missed.some((m) => m.startOffset <= b.startOffset && b.endOffset <= m.endOffset);
          if (!enclosed) ran.push(`${script.url}#${b.startOffset}-${b.endOffset}`);
        }
      }
    }
    return ran;
  }

  /** Functions and blocks known in the watched scripts (a block is known once a run missed it). */
  get knownBlocks(): number {
    let n = 0;
    for (const blocks of this.blocks.values()) n += 1 + blocks.length;
    return n;
  }

  close(): void {
    this.post('Profiler.stopPreciseCoverage');
    this.session.disconnect();
  }
}
