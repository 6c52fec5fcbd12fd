// Where benchmark reports go: bench/results/<date>-<commit>[-section].json for every run, and
// bench/results/latest.json, the file the README quotes. latest.json is one object of sections;
// a run replaces the sections it measured and keeps every other one (`npm run faults` and
// `npm run soak` add theirs beside the full `npm run bench` sections, and a full bench run keeps
// theirs).
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** Top-level keys of a report that describe the run, not a section. */
const RUN_KEYS = new Set(['date', 'commit', 'quick', 'machine']);

export function resultsDir(): string {
  // dist/bench/results-file.js -> <repo>/bench/results
  return path.resolve(__dirname, '..', '..', 'bench', 'results');
}

export function currentCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', '--short', 'HEAD'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return 'unknown';
  }
}

export function machineInfo(): { cpus: number; model: string; node: string; platform: string } {
  return { cpus: os.cpus().length, model: os.cpus()[0]?.model ?? 'unknown', node: process.version, platform: `${os.platform()} ${os.release()}` };
}

/** Writes the dated report; returns its path. */
export function writeDatedReport(report: Record<string, unknown>, suffix = ''): string {
  const dir = resultsDir();
  fs.mkdirSync(dir, { recursive: true });
  const file = path.join(dir, `${String(report.date)}-${String(report.commit)}${suffix}.json`.replace(/:/g, '-'));
  fs.writeFileSync(file, JSON.stringify(report, null, 2) + '\n');
  return file;
}

function readLatest(): Record<string, unknown> {
  const file = path.join(resultsDir(), 'latest.json');
  try {
    const parsed: unknown = JSON.parse(fs.readFileSync(file, 'utf8'));
    return parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed) ? (parsed as Record<string, unknown>) : {};
  } catch {
    return {};
  }
}

function writeLatest(report: Record<string, unknown>): void {
  const file = path.join(resultsDir(), 'latest.json');
  fs.writeFileSync(`${file}.tmp`, JSON.stringify(report, null, 2) + '\n');
  fs.renameSync(`${file}.tmp`, file);
}

/**
 * A full `npm run bench` report replaces latest.json, keeping the sections it did not measure
 * (each such section carries its own date and commit).
 */
export function replaceLatestKeepingOthers(report: Record<string, unknown>): void {
  const previous = readLatest();
  const merged: Record<string, unknown> = { ...report };
  for (const [key, value] of Object.entries(previous)) {
    if (!RUN_KEYS.has(key) && !(key in merged)) merged[key] = value;
  }
  writeLatest(merged);
}

/** One section measured by its own script, stamped with its own date and commit, into latest.json. */
export function mergeSectionIntoLatest(section: string, value: Record<string, unknown>, stamp: { date: string; commit: string }): void {
  const latest = readLatest();
  latest[section] = { date: stamp.date, commit: stamp.commit, ...value };
  writeLatest(latest);
}
