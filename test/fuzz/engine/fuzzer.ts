// A coverage-guided fuzzer for the TypeScript decoders, on V8's block coverage (docs/fuzzing.md
// says why not Jazzer.js). The loop is libFuzzer's: pick a corpus input, mutate it, run it, keep
// it if it reached blocks no earlier input reached. Taking V8's coverage costs about as much as a
// few hundred runs, so inputs run in batches and only a batch that reached something new is run
// again one input at a time to find which input did.
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import vm from 'node:vm';
import v8 from 'node:v8';
import { BlockCoverage } from './coverage';
import { Random, mutate, type MutationContext } from './mutate';

export interface FuzzTarget {
  readonly name: string;
  /** The decoder's scripts: their blocks are the coverage. */
  watched(url: string): boolean;
  /** Runs the decoder on one input; throws on a finding (an unexpected error or a broken contract). */
  run(input: Buffer): void;
  /** Tokens of the format, from the product's own tables. */
  dictionary(): Buffer[];
  readonly maxLength: number;
}

/** Where the input being run is published for the watchdog (the main thread) to save on a hang. */
export interface SharedInput {
  /** [0]: runs so far (the heartbeat), [1]: length of data's current input. */
  readonly control: Int32Array;
  readonly data: Uint8Array;
}

export function sharedInput(maxLength: number): SharedInput {
  return {
    control: new Int32Array(new SharedArrayBuffer(8)),
    data: new Uint8Array(new SharedArrayBuffer(maxLength)),
  };
}

export interface FuzzOptions {
  readonly seconds: number;
  /** Stop after this many runs (0: only the time limit). */
  readonly maxRuns: number;
  readonly seed: number;
  /** Read-only corpus directories (the committed corpus). */
  readonly corpusDirs: readonly string[];
  /** New inputs that reached new blocks are written here. */
  readonly workDir: string;
  /** crash-<sha1> files. */
  readonly artifactDir: string;
  readonly shared: SharedInput | null;
  /** Runs over the corpus for the heap check at the end. */
  readonly leakCheckRuns: number;
  readonly onProgress?: (p: FuzzProgress) => void;
}

export interface FuzzProgress {
  runs: number;
  seconds: number;
  corpus: number;
  blocksCovered: number;
  blocksKnown: number;
  crashes: number;
}

export interface Finding {
  readonly signature: string;
  readonly file: string;
  readonly message: string;
}

export interface FuzzReport extends FuzzProgress {
  runsPerSecond: number;
  newInputs: number;
  findings: Finding[];
  /** The heap after a forced GC, before and after leakCheckRuns runs over the corpus. */
  heapCheck: { runs: number; heapBeforeBytes: number; heapAfterBytes: number; growthBytes: number };
}

export function readCorpus(dirs: readonly string[]): Map<string, Buffer> {
  const inputs = new Map<string, Buffer>();
  for (const dir of dirs) {
    if (!fs.existsSync(dir)) continue;
    for (const name of fs.readdirSync(dir).sort()) {
      const file = path.join(dir, name);
      if (name.startsWith('.') || !fs.statSync(file).isFile()) continue;
      const data = fs.readFileSync(file);
      const key = sha1(data);
      if (!inputs.has(key)) inputs.set(key, data);
    }
  }
  return inputs;
}

export function sha1(data: Buffer): string {
  return crypto.createHash('sha1').update(data).digest('hex');
}

function forcedGc(): () => void {
  v8.setFlagsFromString('--expose-gc');
  return vm.runInNewContext('gc') as () => void;
}

/** A growth of the heap past this over the heap check's runs counts as a leak (10 bytes a run at 100,000 runs). */
export const LEAK_THRESHOLD_BYTES = 1 << 20;

export class Fuzzer {
  private readonly coverage: BlockCoverage;
  private readonly seen = new Set<string>();
  private readonly corpus: Buffer[] = [];
  private readonly findings = new Map<string, Finding>();
  private readonly random: Random;
  private readonly mutation: MutationContext;
  private runs = 0;

  constructor(private readonly target: FuzzTarget, private readonly options: FuzzOptions) {
    this.coverage = new BlockCoverage((url) => target.watched(url));
    this.random = new Random(options.seed);
    const corpus = this.corpus;
    const random = this.random;
    this.mutation = {
      random,
      maxLength: target.maxLength,
      dictionary: target.dictionary(),
      other: () => corpus[random.below(corpus.length)] ?? Buffer.alloc(0),
    };
  }

  /** One run of the decoder; a throw is a finding, saved under its signature. */
  private runOne(input: Buffer): void {
    const shared = this.options.shared;
    if (shared) {
      shared.data.set(input.subarray(0, shared.data.length));
      Atomics.store(shared.control, 1, Math.min(input.length, shared.data.length));
      Atomics.add(shared.control, 0, 1);
    }
    this.runs++;
    try {
      this.target.run(input);
    } catch (err) {
      this.record(input, err);
    }
  }

  private record(input: Buffer, err: unknown): void {
    const e = err instanceof Error ? err : new Error(String(err));
    const message = `${e.name}: ${e.message}`;
    // One finding per kind of failure and place: the message without its numbers, the top frame.
    const frame = (e.stack ?? '').split('\n').find((line) => line.trim().startsWith('at ')) ?? '';
    const signature = `${message.replace(/\d+/g, 'N').slice(0, 160)} ${frame.trim()}`;
    if (this.findings.has(signature)) return;
    if (this.options.artifactDir === '') {
      this.findings.set(signature, { signature, file: '', message: message.slice(0, 500) });
      return;
    }
    fs.mkdirSync(this.options.artifactDir, { recursive: true });
    const file = path.join(this.options.artifactDir, `crash-${sha1(input)}`);
    fs.writeFileSync(file, input);
    this.findings.set(signature, { signature, file, message: message.slice(0, 500) });
  }

  /** Runs `input` alone; true (and the blocks marked seen) if it reached an unseen block. */
  private reachesNew(input: Buffer): boolean {
    this.coverage.take();
    this.runOne(input);
    let fresh = false;
    for (const key of this.coverage.take()) {
      if (!this.seen.has(key)) {
        this.seen.add(key);
        fresh = true;
      }
    }
    return fresh;
  }

  private progress(started: bigint): FuzzProgress {
    return {
      runs: this.runs,
      seconds: Number(process.hrtime.bigint() - started) / 1e9,
      corpus: this.corpus.length,
      blocksCovered: this.seen.size,
      blocksKnown: this.coverage.knownBlocks,
      crashes: this.findings.size,
    };
  }

  run(): FuzzReport {
    const started = process.hrtime.bigint();
    const deadline = started + BigInt(Math.round(this.options.seconds * 1e9));
    const initial = readCorpus(this.options.corpusDirs);
    for (const input of initial.values()) {
      this.reachesNew(input);
      this.corpus.push(input);
    }
    if (this.corpus.length === 0) this.corpus.push(Buffer.alloc(0));
    fs.mkdirSync(this.options.workDir, { recursive: true });
    let newInputs = 0;
    let batchSize = 64;
    let lastReport = started;
    const batch: Buffer[] = [];
    for (;;) {
      const now = process.hrtime.bigint();
      if (now >= deadline || (this.options.maxRuns > 0 && this.runs >= this.options.maxRuns)) break;
      if (this.options.onProgress && now - lastReport >= 2_000_000_000n) {
        lastReport = now;
        this.options.onProgress(this.progress(started));
      }
      batch.length = 0;
      this.coverage.take();
      for (let i = 0; i < batchSize; i++) {
        const parent = this.corpus[this.random.below(this.corpus.length)]!;
        const child = mutate(parent, this.mutation);
        batch.push(child);
        this.runOne(child);
      }
      const fresh = this.coverage.take().some((key) => !this.seen.has(key));
      if (!fresh) {
        batchSize = Math.min(1024, batchSize * 2);
        continue;
      }
      batchSize = 64;
      for (const child of batch) {
        if (!this.reachesNew(child)) continue;
        this.corpus.push(child);
        fs.writeFileSync(path.join(this.options.workDir, sha1(child)), child);
        newInputs++;
      }
    }
    const heapCheck = this.heapCheck();
    const last = this.progress(started);
    this.coverage.close();
    return {
      ...last,
      runsPerSecond: Math.round(last.runs / last.seconds),
      newInputs,
      findings: [...this.findings.values()],
      heapCheck,
    };
  }

  /** The decoders keep nothing between inputs: the heap must not grow over many runs. */
  private heapCheck(): FuzzReport['heapCheck'] {
    const gc = forcedGc();
    const runs = this.options.leakCheckRuns;
    // Warm up (lazy compilation, inline caches) before measuring.
    const quietly = (input: Buffer): void => {
      try {
        this.target.run(input);
      } catch {
        // Findings were recorded during the run; here only the heap counts.
      }
    };
    for (let i = 0; i < Math.min(runs, 10000); i++) quietly(this.corpus[i % this.corpus.length]!);
    gc();
    gc();
    const before = process.memoryUsage().heapUsed;
    for (let i = 0; i < runs; i++) quietly(this.corpus[i % this.corpus.length]!);
    gc();
    gc();
    const after = process.memoryUsage().heapUsed;
    return { runs, heapBeforeBytes: before, heapAfterBytes: after, growthBytes: after - before };
  }

  /**
   * The smallest inputs that together reach every block the corpus reaches; inputs whose name
   * `keep` accepts (seeds, regressions) stay whatever they add. Returns the kept inputs by name.
   */
  static minimise(target: FuzzTarget, inputs: ReadonlyMap<string, Buffer>, keep: (name: string) => boolean): Map<string, Buffer> {
    const fuzzer = new Fuzzer(target, {
      seconds: 0, maxRuns: 0, seed: 1, corpusDirs: [], workDir: '', artifactDir: '', shared: null, leakCheckRuns: 0,
    });
    const kept = new Map<string, Buffer>();
    const order = [...inputs.entries()].sort(([ka, a], [kb, b]) => Number(keep(kb)) - Number(keep(ka)) || a.length - b.length);
    for (const [name, input] of order) {
      if (fuzzer.reachesNew(input) || keep(name)) kept.set(name, input);
    }
    fuzzer.coverage.close();
    return kept;
  }
}
