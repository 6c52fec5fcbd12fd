// `vmm-compat wrap` as vm-bhyve would meet it in place of bhyve or a loader, with a compiled fake
// legacy program (test/service/fixtures/fake-bhyve.c): the argv[0] it gets, what vm-bhyve's own
// process lookups find while it runs, its refusals (exit status and syslog) and the environment
// it builds. vm-bhyve's commands are quoted from its sources, as in test/service/bhyve-wrapper.test.ts.
// Node 20 has no process.execve, so here `wrap` supervises the program as a child: the case where
// two processes exist.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { buildFixture, run, tempDir, which, writeExecutable } from '../service/helpers';
import { nativeArtifact, ARTIFACTS } from '../../src/native-paths';

const CLI = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');

interface Rig {
  dir: string;
  env: NodeJS.ProcessEnv;
  interposer: string;
  config: string;
  syslog: string;
  legacy(name: string): Promise<string>;
}

function rig(): Rig {
  const dir = tempDir('wrap');
  const syslog = path.join(dir, 'logger.out');
  writeExecutable(path.join(dir, 'fakebin', 'logger'), `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a"; done >> '${syslog}'\necho --- >> '${syslog}'\n`);
  const interposer = nativeArtifact(ARTIFACTS.interposer);
  assert.ok(fs.existsSync(interposer), 'build first (npm run build)');
  const config = path.join(dir, 'vmm-compat.conf');
  fs.writeFileSync(config, '');
  return {
    dir,
    interposer,
    config,
    syslog,
    env: { PATH: `${path.join(dir, 'fakebin')}:${process.env.PATH ?? '/usr/bin:/bin'}` },
    async legacy(name: string) {
      const file = path.join(dir, 'legacy13', name);
      fs.mkdirSync(path.dirname(file), { recursive: true });
      fs.copyFileSync(await buildFixture('fake-bhyve'), file);
      fs.chmodSync(file, 0o755);
      return file;
    },
  };
}

function wrapArgs(r: Rig, program: string, args: string[], extra: string[] = []): string[] {
  // The interposer is a real one; /dev/vmm is never opened by the fake, so it only loads.
  return [CLI, 'wrap', '--config', r.config, '--socket-dir', path.join(r.dir, 'run'), '--interposer', r.interposer, ...extra, '--', program, ...args];
}

function values(stdout: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of stdout.split('\n')) if (line.includes('=') && !line.startsWith('arg=')) m.set(line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1));
  return m;
}

async function background(r: Rig, program: string, args: string[]) {
  const child = spawn(process.execPath, wrapArgs(r, program, args), { env: r.env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  let out = '';
  let err = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  child.stderr.setEncoding('utf8').on('data', (d: string) => (err += d));
  const deadline = Date.now() + 15000;
  while (!/^pid=\d+$/m.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the program never started:\n${out}${err}`);
    await new Promise((res) => setTimeout(res, 20));
  }
  // The title of a supervising wrap is set right after the spawn; give it a moment.
  await new Promise((res) => setTimeout(res, 200));
  return { child, exited, out: () => out, pid: Number(/^pid=(\d+)$/m.exec(out)![1]) };
}

test('wrap runs the legacy bhyve with argv[0] "bhyve" (its basename), as vm-bhyve runs bhyve; vm-rctl\'s pgrep finds only it', async () => {
  const pgrep = which('pgrep');
  assert.ok(pgrep, 'pgrep is not installed (procps)');
  const r = rig();
  const bhyve = await r.legacy('bhyve');
  const name = `wrap-rctl-${process.pid}`;
  const bg = await background(r, bhyve, ['-c', '2', '-m', '1G', 'sleep=10', name]);
  try {
    assert.equal(values(bg.out()).get('argv0'), 'bhyve');
    const found = await run(pgrep, ['-fx', `bhyve[: ].* ${name}`]);
    assert.equal(found.stdout.trim(), String(bg.pid));
  } finally {
    bg.child.kill('SIGTERM');
    await bg.exited;
  }
});

test('a loader under wrap: vm-bhyve\'s vm stop finds exactly one pid, the loader\'s, and its kill ends wrap with the loader\'s signal', async () => {
  const r = rig();
  const loader = await r.legacy('bhyveload');
  const name = `wrap-ld-${process.pid}`;
  const bg = await background(r, loader, ['-c', '/dev/nmdm-x.1A', '-m', '1G', 'sleep=10', name]);
  try {
    assert.equal(values(bg.out()).get('argv0'), 'bhyveload');
    // lib/vm-core core::stop: pgrep -fl "grub-bhyve|bhyveload" | grep " ${_name}$" | cut -d' ' -f1
    const lookup = await run('sh', ['-c', `pgrep -fa "grub-bhyve|bhyveload" | grep " ${name}$" | cut -d' ' -f1`]);
    assert.equal(lookup.stdout.trim(), String(bg.pid), 'one pid: the loader, not the supervising wrap');
    const killed = await run('sh', ['-c', `kill "${lookup.stdout.trim()}"`]);
    assert.equal(killed.code, 0, killed.stderr);
    assert.deepEqual(await bg.exited, { code: null, signal: 'SIGTERM' });
  } finally {
    bg.child.kill('SIGKILL');
  }
});

function loggerCalls(r: Rig): string[][] {
  if (!fs.existsSync(r.syslog)) return [];
  return fs
    .readFileSync(r.syslog, 'utf8')
    .split('---\n')
    .filter((c) => c !== '')
    .map((c) => c.replace(/\n$/, '').split('\n'));
}

test('wrap\'s refusals exit 4 (never 1 or 2, vm-bhyve\'s power-off and halt) and go to syslog (vmm-compat, daemon.err)', async () => {
  const r = rig();
  const cases: { args: string[]; message: RegExp }[] = [
    { args: wrapArgs(r, path.join(r.dir, 'nowhere', 'bhyve'), ['guest1']), message: /legacy bhyve .*nowhere\/bhyve not found/ },
    { args: wrapArgs(r, 'bhyve', ['guest1']), message: /give the legacy bhyve as a path/ },
    { args: [CLI, 'wrap', '--config', path.join(r.dir, 'missing.conf'), '--', path.join(r.dir, 'x'), 'guest1'], message: /missing\.conf/ },
    { args: [CLI, 'wrap', '--bogus-option', '--', '/x', 'guest1'], message: /unknown option/ },
  ];
  fs.writeFileSync(path.join(r.dir, 'bad.conf'), 'failure_policy = refused\n');
  cases.push({ args: wrapArgs(r, '/x', ['guest1']).map((a) => (a === r.config ? path.join(r.dir, 'bad.conf') : a)), message: /bad\.conf:1: failure_policy/ });
  for (const c of cases) {
    fs.rmSync(r.syslog, { force: true });
    const out = await run(process.execPath, c.args, { env: r.env });
    assert.equal(out.code, 4, `${c.args.join(' ')}\n${out.stderr}`);
    assert.match(out.stderr, c.message);
    const calls = loggerCalls(r);
    assert.equal(calls.length, 1, `${c.args.join(' ')}: ${JSON.stringify(calls)}`);
    assert.deepEqual(calls[0]!.slice(0, 5), ['-t', 'vmm-compat', '-p', 'daemon.err', '--']);
    assert.match(calls[0]![5]!, c.message);
  }
});

test('wrap\'s environment: the configuration\'s parker settings and variant; VMM_COMPAT_REQUIRE_DAEMON=1 from the environment is kept', async () => {
  const r = rig();
  const bhyve = await r.legacy('bhyve');
  fs.writeFileSync(r.config, 'kernel_variant = window\nparker_idle_poll_ms = 9\n');
  const env = { ...r.env, VMM_COMPAT_REQUIRE_DAEMON: '1', VMM_COMPAT_PARKER_IDLE_POLL_MS: '50' };
  const out = await run(process.execPath, wrapArgs(r, bhyve, ['guest1']), { env });
  assert.equal(out.code, 0, out.stderr);
  const v = values(out.stdout);
  assert.equal(v.get('VMM_COMPAT_REQUIRE_DAEMON'), '1', 'a stricter setting in the environment is never dropped');
  assert.equal(v.get('VMM_COMPAT_KERNEL'), 'window');
  assert.equal(v.get('VMM_COMPAT_PARKER_IDLE_POLL_MS'), '9', 'the file wins over the environment');
  assert.equal(v.get('VMM_COMPAT_PARKER_BOOT_POLL_US'), '1000', 'a key the file leaves out: its default');
  assert.equal(v.get('VMM_COMPAT_SOCKET_DIR'), path.join(r.dir, 'run'));
  const plain = await run(process.execPath, wrapArgs(r, bhyve, ['guest1']), { env: r.env });
  assert.equal(values(plain.stdout).get('VMM_COMPAT_REQUIRE_DAEMON'), '<unset>');
  const refuse = await run(process.execPath, wrapArgs(r, bhyve, ['guest1'], ['--require-daemon']), { env: r.env });
  assert.equal(values(refuse.stdout).get('VMM_COMPAT_REQUIRE_DAEMON'), '1');
});
