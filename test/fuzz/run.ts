// npm run fuzz: every decoder that reads another process's bytes, fuzzed for a set time each
// (docs/fuzzing.md). C targets under libFuzzer (clang), TypeScript targets under the V8-coverage
// fuzzer of test/fuzz/engine/. Prints a progress line per target every few seconds and writes
// test/fuzz/results/<date>-<commit>.json (and latest.json for a run of every target).
//
//   --seconds N     time per target (default 60)
//   --runs N        also stop a target after N runs
//   --only A,B      these targets only (daemon-reply, bridge-reply, daemon-frame, config-file)
//   --seed N        the mutation seed (default 1)
//   --merge         write each target's minimised corpus back to test/fuzz/corpus/<target>/
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { Fuzzer, LEAK_THRESHOLD_BYTES, readCorpus, sha1, sharedInput, type FuzzProgress, type FuzzReport } from './engine/fuzzer';
import type { WorkerInput } from './engine/worker';
import { ALL_TARGET_NAMES, C_TARGETS, CORPUS_ROOT, REPO_ROOT, TARGET_READS, TS_TARGETS, corpusDir, type CTarget } from './targets';
import { writeSeeds } from './seeds';

const USAGE = 'usage: npm run fuzz -- [--seconds N] [--runs N] [--only TARGET[,TARGET]] [--seed N] [--merge]';
/** The goal per target (docs/fuzzing.md). */
const TARGET_RUNS = 1_000_000;
/** An input running longer than this is a hang. */
const HANG_SECONDS = 10;

interface Options {
  seconds: number;
  runs: number;
  only: string[] | null;
  seed: number;
  merge: boolean;
}

function parseArgs(argv: readonly string[]): Options {
  const o: Options = { seconds: 60, runs: 0, only: null, seed: 1, merge: false };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const value = (): string => {
      const v = argv[++i];
      if (v === undefined) usage(`${arg} needs a value`);
      return v;
    };
    const count = (what: string, min: number): number => {
      const v = value();
      if (!/^\d+$/.test(v) || Number(v) < min) usage(`${what} must be a whole number of at least ${min}, not "${v}"`);
      return Number(v);
    };
    if (arg === '--seconds') o.seconds = count('--seconds', 1);
    else if (arg === '--runs') o.runs = count('--runs', 1);
    else if (arg === '--seed') o.seed = count('--seed', 1);
    else if (arg === '--merge') o.merge = true;
    else if (arg === '--only') {
      o.only = value().split(',');
      const unknown = o.only.filter((t) => !ALL_TARGET_NAMES.includes(t));
      if (unknown.length > 0) usage(`unknown target ${unknown.join(', ')}; targets are ${ALL_TARGET_NAMES.join(', ')}`);
    } else if (arg === '--help' || arg === '-h') {
      process.stdout.write(`${USAGE}\n`);
      process.exit(0);
    } else usage(`unknown option ${arg}`);
  }
  return o;
}

function usage(problem: string): never {
  process.stderr.write(`fuzz: ${problem}\n${USAGE}\n`);
  process.exit(2);
}

function say(line: string): void {
  process.stderr.write(`fuzz: ${line}\n`);
}

interface Coverage {
  /** regions: llvm-cov code regions of the C reader; blocks: V8 block ranges of the TypeScript decoder. */
  unit: 'regions' | 'blocks';
  covered: number;
  total: number;
  percent: number;
  /** C targets: both outcomes of each branch condition. */
  branchOutcomes?: { covered: number; total: number };
}

interface TargetResult {
  name: string;
  reads: string;
  engine: string;
  skipped: string | null;
  executions: number;
  seconds: number;
  executionsPerSecond: number;
  crashes: number;
  hangs: number;
  leaks: number;
  coverage: Coverage | null;
  corpus: { files: number; newInputs: number };
  findings: string[];
  /** Goal met: at least TARGET_RUNS executions, no crash, hang or leak. */
  met: boolean;
}

function coverageOf(unit: Coverage['unit'], covered: number, total: number): Coverage {
  return { unit, covered, total, percent: total === 0 ? 0 : Number(((100 * covered) / total).toFixed(1)) };
}

function progressLine(name: string, p: FuzzProgress, unit: string): string {
  return `${name}: ${p.runs.toLocaleString('en-US')} runs in ${p.seconds.toFixed(0)} s ` +
    `(${Math.round(p.runs / Math.max(p.seconds, 0.001)).toLocaleString('en-US')}/s), ` +
    `${p.blocksCovered} ${unit} covered, corpus ${p.corpus}, crashes ${p.crashes}`;
}

const workRoot = path.join(REPO_ROOT, 'native-bindings', 'build', 'fuzz-work');

function freshDir(dir: string): string {
  fs.rmSync(dir, { recursive: true, force: true });
  fs.mkdirSync(dir, { recursive: true });
  return dir;
}

/** Seeds and regressions keep their names; the rest of a corpus is what minimisation keeps. */
const isNamedInput = (name: string): boolean => name.startsWith('seed-') || name.startsWith('regress-');

function syncCorpus(target: string, kept: ReadonlyMap<string, Buffer>): number {
  const dir = corpusDir(target);
  const named = new Set<string>();
  for (const name of fs.readdirSync(dir)) {
    const data = fs.readFileSync(path.join(dir, name));
    if (isNamedInput(name)) named.add(sha1(data));
    else fs.rmSync(path.join(dir, name));
  }
  for (const data of kept.values()) {
    const key = sha1(data);
    if (!named.has(key)) fs.writeFileSync(path.join(dir, `cov-${key.slice(0, 16)}`), data);
  }
  return fs.readdirSync(dir).length;
}

// ---- C targets under libFuzzer ----------------------------------------------------------------

function clangVersion(): string | null {
  const r = spawnSync(process.env.FUZZ_CC ?? 'clang', ['--version'], { encoding: 'utf8' });
  return r.status === 0 ? (r.stdout.split('\n')[0] ?? 'clang') : null;
}

function buildCTargets(): string | null {
  const r = spawnSync('make', ['-s', '-C', path.join(REPO_ROOT, 'native-bindings'), 'fuzz'], { encoding: 'utf8' });
  return r.status === 0 ? null : `make fuzz failed: ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' / ')}`;
}

/** `name` or Debian's versioned `name-14`, whichever runs (llvm-profdata has no --version). */
function llvmTool(name: string): string | null {
  for (const candidate of [name, `${name}-14`]) {
    if (spawnSync(candidate, ['--help'], { stdio: 'ignore' }).error === undefined) return candidate;
  }
  return null;
}

interface LlvmFunction {
  name: string;
  filenames: string[];
  /** [lineStart, colStart, lineEnd, colEnd, count, fileId, expandedFileId, kind] */
  regions: number[][];
  /** [lineStart, colStart, lineEnd, colEnd, trueCount, falseCount, fileId, expandedFileId, kind] */
  branches?: number[][];
}

/**
 * Source-based coverage of the target's product code over the corpus: the replay main built with
 * clang's -fprofile-instr-generate runs every corpus input, llvm-cov reports regions and branch
 * outcomes per function. (libFuzzer's own edge count includes the sanitizers' error branches.)
 */
function sourceCoverage(t: CTarget, corpusDirs: readonly string[], scratch: string): Coverage | null {
  const profdata = llvmTool('llvm-profdata');
  const cov = llvmTool('llvm-cov');
  const binary = path.join(REPO_ROOT, 'native-bindings', 'build', 'fuzz', `coverage-${t.name}`);
  if (!profdata || !cov || !fs.existsSync(binary)) return null;
  const raw = path.join(scratch, 'replay.profraw');
  const merged = path.join(scratch, 'replay.profdata');
  const replay = spawnSync(binary, [...corpusDirs], { env: { ...process.env, LLVM_PROFILE_FILE: raw }, encoding: 'utf8' });
  if (replay.status !== 0) return null;
  if (spawnSync(profdata, ['merge', '-sparse', raw, '-o', merged]).status !== 0) return null;
  const exported = spawnSync(cov, ['export', binary, `-instr-profile=${merged}`], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (exported.status !== 0) return null;
  const functions = (JSON.parse(exported.stdout) as { data: { functions: LlvmFunction[] }[] }).data[0]!.functions;
  let covered = 0;
  let total = 0;
  let outcomesCovered = 0;
  let outcomes = 0;
  for (const fn of functions) {
    const bare = fn.name.replace(/^.*:/, '');
    const source = t.sources.find((s) => fn.filenames[0]?.endsWith(`/${s.file}`));
    if (!source || (source.functions && !source.functions.includes(bare))) continue;
    for (const r of fn.regions) {
      if (r[5] !== 0 || r[7] !== 0) continue; // code regions of the function's own file
      total++;
      if (r[4]! > 0) covered++;
    }
    for (const b of fn.branches ?? []) {
      outcomes += 2;
      outcomesCovered += Number(b[4]! > 0) + Number(b[5]! > 0);
    }
  }
  return { ...coverageOf('regions', covered, total), branchOutcomes: { covered: outcomesCovered, total: outcomes } };
}

async function runCTarget(t: CTarget, o: Options, engine: string): Promise<TargetResult> {
  const binary = path.join(REPO_ROOT, 'native-bindings', 'build', 'fuzz', t.name);
  const work = freshDir(path.join(workRoot, t.name, 'corpus'));
  const artifacts = freshDir(path.join(workRoot, t.name, 'artifacts'));
  const args = [
    `-max_total_time=${o.seconds}`, `-timeout=${HANG_SECONDS}`, '-rss_limit_mb=2048', `-seed=${o.seed}`,
    '-print_final_stats=1', `-artifact_prefix=${artifacts}/`,
    ...(o.runs > 0 ? [`-runs=${o.runs}`] : []), work, corpusDir(t.name),
  ];
  const started = Date.now();
  const child = spawn(binary, args, {
    env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1', UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  let lastProgress = 0;
  const onData = (chunk: Buffer): void => {
    output += chunk.toString('utf8');
    const now = Date.now();
    if (now - lastProgress < 2000) return;
    const lines = output.slice(-4000).split('\n');
    const last = [...lines].reverse().find((l) => /^#\d+\t/.test(l));
    if (!last) return;
    lastProgress = now;
    const runs = Number(/^#(\d+)/.exec(last)![1]);
    const cov = Number(/cov: (\d+)/.exec(last)?.[1] ?? 0);
    const corp = Number(/corp: (\d+)/.exec(last)?.[1] ?? 0);
    say(progressLine(t.name, { runs, seconds: (now - started) / 1000, corpus: corp, blocksCovered: cov, blocksKnown: 0, crashes: 0 }, 'edges (whole binary)'));
  };
  child.stdout.on('data', onData);
  child.stderr.on('data', onData);
  const status = await new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  const seconds = (Date.now() - started) / 1000;
  const stat = (name: string): number => Number(new RegExp(`stat::${name}:\\s+(\\d+)`).exec(output)?.[1] ?? 0);
  const executions = stat('number_of_executed_units');
  const found = fs.readdirSync(artifacts);
  const kinds = (prefix: string): string[] => found.filter((f) => f.startsWith(prefix)).map((f) => path.join(artifacts, f));
  const crashes = [...kinds('crash-'), ...kinds('oom-')];
  const hangs = kinds('timeout-');
  const leaks = kinds('leak-');
  if (status !== 0 && crashes.length + hangs.length + leaks.length === 0) {
    crashes.push(`libFuzzer exited with status ${status}: ${output.trim().split('\n').slice(-5).join(' / ')}`);
  }
  let files = fs.readdirSync(corpusDir(t.name)).length;
  if (o.merge && crashes.length + hangs.length + leaks.length === 0) {
    const merged = freshDir(path.join(workRoot, t.name, 'merged'));
    const r = spawnSync(binary, ['-merge=1', merged, corpusDir(t.name), work], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`${t.name}: libFuzzer -merge failed: ${r.stderr.slice(-500)}`);
    files = syncCorpus(t.name, readCorpus([merged]));
  }
  const findings = [...crashes, ...hangs, ...leaks];
  return {
    name: t.name,
    reads: t.reads,
    engine,
    skipped: null,
    executions,
    seconds: Number(seconds.toFixed(1)),
    executionsPerSecond: Math.round(executions / seconds),
    crashes: crashes.length,
    hangs: hangs.length,
    leaks: leaks.length,
    coverage: sourceCoverage(t, [corpusDir(t.name), work], path.join(workRoot, t.name)),
    corpus: { files, newInputs: fs.readdirSync(work).length },
    findings,
    met: executions >= TARGET_RUNS && findings.length === 0,
  };
}

// ---- TypeScript targets on a worker thread ------------------------------------------------------

async function runTsTarget(name: string, o: Options): Promise<TargetResult> {
  const target = TS_TARGETS.find((t) => t.name === name)!;
  const work = freshDir(path.join(workRoot, name, 'corpus'));
  const artifacts = freshDir(path.join(workRoot, name, 'artifacts'));
  const shared = sharedInput(target.maxLength);
  const input: WorkerInput = {
    target: name,
    shared,
    options: {
      seconds: o.seconds, maxRuns: o.runs, seed: o.seed, corpusDirs: [corpusDir(name)], workDir: work,
      artifactDir: artifacts, leakCheckRuns: 100_000,
    },
  };
  const started = Date.now();
  const worker = new Worker(path.join(__dirname, 'engine', 'worker.js'), { workerData: input });
  const hangs: string[] = [];
  let report: FuzzReport | null = null;
  let failure: string | null = null;
  await new Promise<void>((resolve) => {
    let beat = Atomics.load(shared.control, 0);
    let still = 0;
    const watchdog = setInterval(() => {
      const now = Atomics.load(shared.control, 0);
      still = now === beat ? still + 1 : 0;
      beat = now;
      if (still < HANG_SECONDS) return;
      // One input has run for HANG_SECONDS: keep it, stop the decoder.
      const data = Buffer.from(shared.data.subarray(0, Atomics.load(shared.control, 1)));
      const file = path.join(artifacts, `timeout-${sha1(data)}`);
      fs.writeFileSync(file, data);
      hangs.push(file);
      void worker.terminate();
    }, 1000);
    worker.on('message', (m: { kind: 'progress'; progress: FuzzProgress } | { kind: 'done'; report: FuzzReport }) => {
      if (m.kind === 'progress') say(progressLine(name, m.progress, 'blocks'));
      else report = m.report;
    });
    worker.on('error', (err) => {
      failure = `the fuzzer itself failed: ${err.stack ?? String(err)}`;
    });
    worker.on('exit', () => {
      clearInterval(watchdog);
      resolve();
    });
  });
  const r = report as FuzzReport | null;
  const seconds = (Date.now() - started) / 1000;
  const leaks = r && r.heapCheck.growthBytes > LEAK_THRESHOLD_BYTES
    ? [`heap grew by ${r.heapCheck.growthBytes} bytes over ${r.heapCheck.runs} runs of the corpus`] : [];
  const crashes = [...(r?.findings.map((f) => `${f.file}: ${f.message}`) ?? []), ...(failure ? [failure] : [])];
  if (!r && hangs.length === 0 && !failure) crashes.push('the worker ended without a report');
  let files = fs.readdirSync(corpusDir(name)).length;
  if (o.merge && r && crashes.length + hangs.length + leaks.length === 0) {
    const inputs = new Map<string, Buffer>();
    for (const dir of [corpusDir(name), work]) {
      for (const f of fs.readdirSync(dir)) inputs.set(dir === work ? `new-${f}` : f, fs.readFileSync(path.join(dir, f)));
    }
    files = syncCorpus(name, Fuzzer.minimise(target, inputs, isNamedInput));
  }
  const findings = [...crashes, ...hangs, ...leaks];
  return {
    name,
    reads: TARGET_READS[name]!,
    engine: 'V8 block coverage (test/fuzz/engine)',
    skipped: null,
    executions: r?.runs ?? Atomics.load(shared.control, 0),
    seconds: Number(seconds.toFixed(1)),
    executionsPerSecond: Math.round((r?.runs ?? Atomics.load(shared.control, 0)) / seconds),
    crashes: crashes.length,
    hangs: hangs.length,
    leaks: leaks.length,
    coverage: r ? coverageOf('blocks', r.blocksCovered, r.blocksKnown) : null,
    corpus: { files, newInputs: r?.newInputs ?? 0 },
    findings,
    met: (r?.runs ?? 0) >= TARGET_RUNS && findings.length === 0,
  };
}

function commitOf(): string {
  const r = spawnSync('git', ['-C', REPO_ROOT, 'rev-parse', '--short', 'HEAD'], { encoding: 'utf8' });
  if (r.status !== 0) return 'unknown';
  const dirty = spawnSync('git', ['-C', REPO_ROOT, 'status', '--porcelain', '--untracked-files=no', '--', 'src', 'native-bindings', 'test/fuzz/engine', 'test/fuzz/targets.ts'], { encoding: 'utf8' });
  return r.stdout.trim() + (dirty.stdout.trim() ? '-dirty' : '');
}

async function main(): Promise<void> {
  const o = parseArgs(process.argv.slice(2));
  const names = o.only ?? [...ALL_TARGET_NAMES];
  const seeds = writeSeeds(CORPUS_ROOT);
  say(`${seeds} seed inputs written from the protocol and configuration tables; ${o.seconds} s per target`);
  const clang = clangVersion();
  const cBuildProblem = names.some((n) => C_TARGETS.some((t) => t.name === n))
    ? (clang ? buildCTargets() : 'clang is not installed (apt-get install clang libclang-rt-14-dev)') : null;
  const results: TargetResult[] = [];
  for (const name of names) {
    const c = C_TARGETS.find((t) => t.name === name);
    say(`${name}: ${TARGET_READS[name]}`);
    if (c && cBuildProblem) {
      say(`${name}: skipped: ${cBuildProblem}`);
      results.push({
        name, reads: c.reads, engine: 'libFuzzer', skipped: cBuildProblem, executions: 0, seconds: 0, executionsPerSecond: 0,
        crashes: 0, hangs: 0, leaks: 0, coverage: null, corpus: { files: 0, newInputs: 0 }, findings: [], met: false,
      });
      continue;
    }
    const result = c ? await runCTarget(c, o, `libFuzzer (${clang})`) : await runTsTarget(name, o);
    results.push(result);
    const cov = result.coverage ? `${result.coverage.covered}/${result.coverage.total} ${result.coverage.unit} (${result.coverage.percent} %)` : 'no coverage';
    say(`${name}: ${result.executions.toLocaleString('en-US')} runs in ${result.seconds} s, ${result.crashes} crashes, ` +
      `${result.hangs} hangs, ${result.leaks} leaks, ${cov}, corpus ${result.corpus.files} files${result.met ? '' : ' (goal NOT met)'}`);
    for (const f of result.findings) say(`${name}: FINDING ${f}`);
  }
  const commit = commitOf();
  const summary = {
    commit,
    date: new Date().toISOString(),
    machine: { cpus: os.cpus().length, cpuModel: os.cpus()[0]?.model ?? 'unknown', node: process.version, platform: `${os.type()} ${os.release()}`, clang },
    secondsPerTarget: o.seconds,
    runsLimit: o.runs || null,
    goal: { executionsPerTarget: TARGET_RUNS, crashes: 0, hangs: 0, leaks: 0 },
    targets: results,
    allMet: results.every((r) => r.met),
  };
  const dir = path.join(REPO_ROOT, 'test', 'fuzz', 'results');
  fs.mkdirSync(dir, { recursive: true });
  const stamp = summary.date.slice(0, 19).replace(/[:T]/g, '-');
  const file = path.join(dir, `${stamp}-${commit}.json`);
  fs.writeFileSync(file, `${JSON.stringify(summary, null, 2)}\n`);
  if (o.only === null) fs.writeFileSync(path.join(dir, 'latest.json'), `${JSON.stringify(summary, null, 2)}\n`);
  say(`summary: ${path.relative(REPO_ROOT, file)}${o.only === null ? ' and latest.json' : ''}; goal ${summary.allMet ? 'met by every target' : 'NOT met'}`);
  process.exit(results.some((r) => r.crashes + r.hangs + r.leaks > 0) ? 1 : 0);
}

void main();
