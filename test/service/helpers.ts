// Shared by the service tests: where the repository is, running a program with a time limit,
// and fake processes that report the signals they receive.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

/** dist/test/service/*.test.js -> the repository root. */
export const REPO_ROOT = path.resolve(__dirname, '..', '..', '..');
export const FIXTURES = path.join(REPO_ROOT, 'test', 'service', 'fixtures');

export interface RunResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs a program asynchronously (so that this process keeps reaping its own children) and
 * kills it after `timeoutMs`.
 */
export function run(
  file: string,
  args: string[],
  options: { env?: NodeJS.ProcessEnv; cwd?: string; timeoutMs?: number; input?: string } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, {
      env: options.env ?? process.env,
      cwd: options.cwd,
      stdio: [options.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr!.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), options.timeoutMs ?? 20000);
    child.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    if (child.stdin) {
      child.stdin.on('error', () => {}); // the program may exit without reading its input
      child.stdin.end(options.input);
    }
  });
}

/** The absolute path of a program on PATH, or null. */
export function which(program: string): string | null {
  const r = spawnSync('sh', ['-c', `command -v ${program}`], { encoding: 'utf8' });
  const found = r.stdout.trim();
  return r.status === 0 && found.startsWith('/') ? found : null;
}

const tempDirs: string[] = [];
process.on('exit', () => {
  if (process.env.VMM_COMPAT_KEEP_TEST_DIRS) return;
  for (const dir of tempDirs) fs.rmSync(dir, { recursive: true, force: true });
});

/** A fresh directory, removed when the test file ends (VMM_COMPAT_KEEP_TEST_DIRS=1 keeps it). */
export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `vmm-compat-${prefix}-`));
  tempDirs.push(dir);
  return dir;
}

export function writeExecutable(file: string, text: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text, { mode: 0o755 });
  fs.chmodSync(file, 0o755);
}

/**
 * A process that prints one line per signal it receives (HUP, TERM, USR2) and exits on TERM.
 * `settle()` sends USR2 and waits for it: a signal sent to this process before the call has
 * been handled by then (a pending lower-numbered signal is delivered first, and the handlers
 * run in order), so `received` is then complete.
 */
export class SignalRecorder {
  readonly child: ChildProcess;
  readonly received: string[] = [];
  private buffer = '';
  private isReady = false;
  private waiters: { want: string; resolve: () => void }[] = [];
  readonly exited: Promise<void>;

  /** `title`: the process title (what ps(1) shows as its command), e.g. daemon(8)'s. */
  constructor(title?: string) {
    const script =
      (title ? `process.title = ${JSON.stringify(title)};` : '') +
      "for (const s of ['SIGHUP', 'SIGTERM', 'SIGUSR2']) process.on(s, () => {" +
      " process.stdout.write(s + '\\n'); if (s === 'SIGTERM') process.exit(0); });" +
      " setInterval(() => {}, 1 << 30); process.stdout.write('ready\\n');";
    this.child = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.exited = new Promise((resolve) => this.child.on('exit', () => resolve()));
    this.child.stdout!.setEncoding('utf8').on('data', (s: string) => {
      this.buffer += s;
      let nl: number;
      while ((nl = this.buffer.indexOf('\n')) >= 0) {
        const line = this.buffer.slice(0, nl);
        this.buffer = this.buffer.slice(nl + 1);
        if (line === 'ready') this.isReady = true;
        else if (line !== 'SIGUSR2') this.received.push(line);
        this.waiters = this.waiters.filter((w) => {
          if (w.want !== line) return true;
          w.resolve();
          return false;
        });
      }
    });
  }

  get pid(): number {
    return this.child.pid!;
  }

  /** Resolves once `line` has been printed (at once if it already was, except for USR2). */
  waitFor(line: string, timeoutMs = 5000): Promise<void> {
    if (this.received.includes(line)) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no "${line}" from pid ${this.pid} within ${timeoutMs} ms`)), timeoutMs);
      this.waiters.push({
        want: line,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  ready(): Promise<void> {
    return this.isReady ? Promise.resolve() : this.waitFor('ready');
  }

  async settle(): Promise<string[]> {
    const done = this.waitFor('SIGUSR2');
    this.child.kill('SIGUSR2');
    await done;
    return [...this.received];
  }

  stop(): void {
    if (this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

const builtFixtures = new Map<string, Promise<string>>();

/** Compiles test/service/fixtures/NAME.c with cc once per test process; resolves to the binary. */
export function buildFixture(name: string): Promise<string> {
  let built = builtFixtures.get(name);
  if (!built) {
    built = (async () => {
      const cc = which('cc');
      if (!cc) throw new Error('no C compiler (cc): the native build needs one too');
      const out = path.join(tempDir(`fixture-${name}`), name);
      const r = await run(cc, ['-O1', '-Wall', '-Wextra', '-Werror', '-o', out, path.join(FIXTURES, `${name}.c`)], { timeoutMs: 60000 });
      if (r.code !== 0) throw new Error(`cc ${name}.c failed:\n${r.stderr}`);
      return out;
    })();
    builtFixtures.set(name, built);
  }
  return built;
}

/**
 * A stand-in for syslogd's local socket (fixtures/syslog-sink.c) bound at `socketPath`: every
 * datagram received becomes one entry of `messages`.
 */
export class SyslogSink {
  readonly messages: string[] = [];
  private child: ChildProcess | null = null;

  constructor(readonly socketPath: string) {}

  async start(): Promise<this> {
    const binary = await buildFixture('syslog-sink');
    fs.mkdirSync(path.dirname(this.socketPath), { recursive: true });
    const child = spawn(binary, [this.socketPath], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.child = child;
    let buffer = '';
    await new Promise<void>((resolve, reject) => {
      child.once('error', reject);
      child.once('exit', (code) => reject(new Error(`syslog-sink exited ${code}`)));
      child.stdout!.setEncoding('utf8').on('data', (s: string) => {
        buffer += s;
        let nl: number;
        while ((nl = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, nl);
          buffer = buffer.slice(nl + 1);
          if (line === 'ready') resolve();
          else this.messages.push(line);
        }
      });
    });
    return this;
  }

  /** Resolves with the first message matching `pattern`, waiting up to `timeoutMs`. */
  async waitFor(pattern: RegExp, timeoutMs = 5000): Promise<string> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.messages.find((m) => pattern.test(m));
      if (found !== undefined) return found;
      if (Date.now() > deadline) throw new Error(`no syslog message matching ${pattern} within ${timeoutMs} ms; got:\n${this.messages.join('\n')}`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  stop(): void {
    if (this.child && this.child.exitCode === null && this.child.signalCode === null) this.child.kill('SIGKILL');
  }
}

/**
 * A daemon(8)-like supervisor and its child (fixtures/signal-pair.js): the supervisor has
 * daemon(8)'s title "daemon: TITLE[CHILD]" and is the child's parent; each records the signals
 * it receives.
 */
export class SupervisorPair {
  readonly process: ChildProcess;
  readonly received: string[] = [];
  supervisor = 0;
  child = 0;
  readonly exited: Promise<void>;
  private buffer = '';
  private readyWaiter: Promise<void>;

  constructor(title = 'vmm_compatd') {
    this.process = spawn(process.execPath, [path.join(FIXTURES, 'signal-pair.js'), title], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.exited = new Promise((resolve) => this.process.on('exit', () => resolve()));
    this.readyWaiter = new Promise((resolve) => {
      this.process.stdout!.setEncoding('utf8').on('data', (s: string) => {
        this.buffer += s;
        let nl: number;
        while ((nl = this.buffer.indexOf('\n')) >= 0) {
          const line = this.buffer.slice(0, nl);
          this.buffer = this.buffer.slice(nl + 1);
          const ready = /^ready (\d+) (\d+)$/.exec(line);
          if (ready) {
            this.supervisor = Number(ready[1]);
            this.child = Number(ready[2]);
            resolve();
          } else this.received.push(line);
        }
      });
    });
  }

  async ready(): Promise<this> {
    await this.readyWaiter;
    // The title is set right after the spawn; ps(1) must show it before a test relies on it.
    const deadline = Date.now() + 5000;
    for (;;) {
      const r = spawnSync('ps', ['-ww', '-o', 'command=', '-p', String(this.supervisor)], { encoding: 'utf8' });
      if (r.stdout.startsWith('daemon: ')) return this;
      if (Date.now() > deadline) throw new Error(`the supervisor's title is still ${r.stdout}`);
      await new Promise((res) => setTimeout(res, 20));
    }
  }

  /** Every signal handled so far, once both have answered SIGUSR2. */
  async settle(): Promise<string[]> {
    const before = this.received.length;
    const wanted = ['supervisor SIGUSR2', 'child SIGUSR2'];
    process.kill(this.supervisor, 'SIGUSR2');
    process.kill(this.child, 'SIGUSR2');
    const deadline = Date.now() + 5000;
    while (!wanted.every((w) => this.received.slice(before).includes(w))) {
      if (Date.now() > deadline) throw new Error(`no SIGUSR2 answer: ${this.received.join(', ')}`);
      await new Promise((res) => setTimeout(res, 20));
    }
    return this.received.filter((l) => !l.endsWith('SIGUSR2'));
  }

  stop(): void {
    for (const pid of [this.child, this.supervisor]) {
      try {
        if (pid) process.kill(pid, 'SIGKILL');
      } catch {
        // gone already
      }
    }
  }
}
