// Replaying a corpus: every input through a target once, as npm test does (replay.test.ts).
// TypeScript targets run in-process; C targets run their replay binary (native-bindings/fuzz/
// replay_main.c, built with $(CC) and ASan+UBSan by make asan).
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { nativeArtifact } from '../../src/native-paths';
import type { FuzzTarget } from './engine/fuzzer';
import { ALL_TARGET_NAMES, corpusDir } from './targets';
import { seedCorpus } from './seeds';

export interface ReplayFailure {
  input: string;
  error: string;
}

/** Every input of every target's corpus (committed files and fresh seeds), by a readable name. */
export function everyCorpusInput(): Map<string, Buffer> {
  const inputs = new Map<string, Buffer>();
  for (const target of ALL_TARGET_NAMES) {
    const dir = corpusDir(target);
    if (!fs.existsSync(dir)) continue;
    for (const name of fs.readdirSync(dir).sort()) inputs.set(`${target}/${name}`, fs.readFileSync(path.join(dir, name)));
  }
  for (const [target, seeds] of seedCorpus()) {
    for (const [name, data] of seeds) inputs.set(`${target}/${name} (fresh)`, data);
  }
  return inputs;
}

/** Runs each input through a TypeScript target; the inputs it threw on. */
export function replayTs(target: FuzzTarget, inputs: ReadonlyMap<string, Buffer>): ReplayFailure[] {
  const failures: ReplayFailure[] = [];
  for (const [name, data] of inputs) {
    try {
      target.run(data);
    } catch (err) {
      failures.push({ input: name, error: err instanceof Error ? `${err.name}: ${err.message}` : String(err) });
    }
  }
  return failures;
}

export interface CReplay {
  status: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
}

/** Writes the inputs to a scratch directory and runs a C target's sanitized replay binary over it. */
export function replayC(target: string, inputs: ReadonlyMap<string, Buffer>): CReplay {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `vmm-compat-replay-${target}-`));
  try {
    let i = 0;
    for (const [name, data] of inputs) fs.writeFileSync(path.join(dir, `${String(i++).padStart(5, '0')}-${name.replace(/[^A-Za-z0-9_.-]+/g, '_')}`), data);
    const r = spawnSync(nativeArtifact(`fuzz/replay-${target}`, 'asan'), [dir], {
      encoding: 'utf8',
      env: { ...process.env, ASAN_OPTIONS: 'detect_leaks=1:abort_on_error=0', UBSAN_OPTIONS: 'halt_on_error=1:print_stacktrace=1' },
      timeout: 120000,
    });
    return { status: r.status, signal: r.signal, stdout: r.stdout, stderr: r.stderr };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}
