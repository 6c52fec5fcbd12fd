// bin/bhyve-wrapper, the `bhyve` vm-bhyve runs (docs/vm-bhyve.md), pointed at a fake legacy
// bhyve: a shell script named `bhyve` that prints the basename of its argv[0], its pid, the
// preload and socket directory it was given, and each argument in brackets; and, where the
// process list matters, a compiled one (fixtures/fake-bhyve.c), because the kernel hands a
// script's interpreter the script's path, not the argv[0] it was executed with.
//
// vm-bhyve's own commands are quoted from its sources: lib/vm-rctl (freebsd/vm-bhyve at 5253ba4b)
// `pgrep -fx "bhyve[: ].* ${_name}"`; lib/vm-core core::stop (freebsd/vm-bhyve at 050a1be8)
// `pgrep -fl "grub-bhyve|bhyveload" | grep " ${_name}\$" | cut -d' ' -f1` then `kill "${_loadpid}"`.
// FreeBSD's pgrep -fl prints the pid and the full argument list; procps' pgrep -fa does here.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, buildFixture, run, tempDir, which, writeExecutable } from './helpers';
import { parseConfig } from '../../src/config/config';

const WRAPPER = path.join(REPO_ROOT, 'bin', 'bhyve-wrapper');

const FAKE_BHYVE = `#!/bin/sh
echo "argv0=\${0##*/}"
echo "pid=$$"
echo "preload=\${LD_PRELOAD-<unset>}"
echo "socket_dir=\${VMM_COMPAT_SOCKET_DIR-<unset>}"
echo "require_daemon=\${VMM_COMPAT_REQUIRE_DAEMON-<unset>}"
echo "kernel=\${VMM_COMPAT_KERNEL-<unset>}"
echo "boot_poll_us=\${VMM_COMPAT_PARKER_BOOT_POLL_US-<unset>}"
echo "boot_window_ms=\${VMM_COMPAT_PARKER_BOOT_WINDOW_MS-<unset>}"
echo "idle_poll_ms=\${VMM_COMPAT_PARKER_IDLE_POLL_MS-<unset>}"
for a in "$@"; do echo "arg=[$a]"; done
case $1 in exit=*) exit "\${1#exit=}" ;; esac
exit 0
`;

interface Setup {
  dir: string;
  legacy: string;
  interposer: string;
  env: NodeJS.ProcessEnv;
  /** The logger stand-in's record. */
  syslog: string;
}

function setup(legacyName = 'bhyve'): Setup {
  const dir = tempDir('wrapper');
  const legacy = path.join(dir, 'legacy13', legacyName);
  writeExecutable(legacy, FAKE_BHYVE);
  // Not a real shared object: the dynamic linker of the fake's /bin/sh says it cannot preload
  // it and carries on. Only the variable's value matters here.
  const interposer = path.join(dir, 'lib', 'libvmmcompat.so');
  fs.mkdirSync(path.dirname(interposer), { recursive: true });
  fs.writeFileSync(interposer, '');
  // logger(1) stand-in: records its arguments, one per line, then a separator.
  const syslog = path.join(dir, 'logger.out');
  writeExecutable(path.join(dir, 'fakebin', 'logger'), `#!/bin/sh\nfor a in "$@"; do printf '%s\\n' "$a"; done >> '${syslog}'\necho --- >> '${syslog}'\n`);
  const env: NodeJS.ProcessEnv = {
    PATH: `${path.join(dir, 'fakebin')}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    VMM_COMPAT_LEGACY_BHYVE: legacy,
    VMM_COMPAT_INTERPOSER: interposer,
    // No configuration file unless a test writes one.
    VMM_COMPAT_CONFIG: path.join(dir, 'vmm-compat.conf'),
  };
  return { dir, legacy, interposer, env, syslog };
}

/** What the logger stand-in was called with: one argument list per call. */
function loggerCalls(s: Setup): string[][] {
  if (!fs.existsSync(s.syslog)) return [];
  return fs
    .readFileSync(s.syslog, 'utf8')
    .split('---\n')
    .filter((c) => c !== '')
    .map((c) => c.replace(/\n$/, '').split('\n'));
}

/** Replaces the fake legacy program with the compiled one. */
async function compiledLegacy(file: string): Promise<void> {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.copyFileSync(await buildFixture('fake-bhyve'), file);
  fs.chmodSync(file, 0o755);
}

/** Starts the wrapper (as `file`) in the background; resolves once the fake printed its pid. */
async function startBackground(
  file: string,
  args: string[],
  env: NodeJS.ProcessEnv,
): Promise<{ child: ChildProcess; out: () => string; pid: number; exited: Promise<NodeJS.Signals | null> }> {
  const child = spawn(file, args, { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const exited = new Promise<NodeJS.Signals | null>((resolve) => child.once('exit', (_code, signal) => resolve(signal)));
  let out = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (out += d));
  let err = '';
  child.stderr!.setEncoding('utf8').on('data', (d: string) => (err += d));
  const deadline = Date.now() + 10000;
  while (!/^pid=\d+$/m.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) throw new Error(`the fake never started (exit ${child.exitCode}):\n${out}${err}`);
    await new Promise((r) => setTimeout(r, 20));
  }
  return { child, out: () => out, pid: Number(/^pid=(\d+)$/m.exec(out)![1]), exited };
}

function fields(stdout: string): { values: Map<string, string>; args: string[] } {
  const values = new Map<string, string>();
  const args: string[] = [];
  for (const line of stdout.split('\n')) {
    const arg = /^arg=\[(.*)\]$/s.exec(line);
    if (arg) args.push(arg[1]!);
    else if (line.includes('=')) values.set(line.slice(0, line.indexOf('=')), line.slice(line.indexOf('=') + 1));
  }
  return { values, args };
}

/** The wrapper run by dash (as FreeBSD's sh would run it) and directly through its #! line. */
function invocations(): { file: string; prefix: string[] }[] {
  const dash = which('dash');
  assert.ok(dash, 'dash is not installed: apt-get install dash');
  return [
    { file: dash, prefix: [WRAPPER] },
    { file: WRAPPER, prefix: [] },
  ];
}

test('the wrapper execs the legacy bhyve as "bhyve", with the preload and socket directory, arguments unchanged', async () => {
  const s = setup();
  const args = ['-c', '2', '-m', '512M', '-s', '0,hostbridge', '-l', 'com1,/dev/nmdm-vm 1A', '', 'a  b', 'q"uote', "it's", '$HOME', '*', 'vm1'];
  for (const how of invocations()) {
    const r = await run(how.file, [...how.prefix, ...args], { env: s.env });
    assert.equal(r.code, 0, `${how.file}: ${r.stderr}`);
    const { values, args: seen } = fields(r.stdout);
    assert.equal(values.get('argv0'), 'bhyve', 'vm-bhyve finds guests by pgrep "bhyve: NAME"');
    assert.equal(values.get('preload'), s.interposer);
    assert.equal(values.get('socket_dir'), '/var/run/vmm-compat');
    assert.deepEqual(seen, args);
  }
});

test('the wrapper replaces itself: the legacy bhyve runs with the pid the caller started', async () => {
  const s = setup();
  const child = spawn(WRAPPER, ['vm1'], { env: s.env, stdio: ['ignore', 'pipe', 'ignore'] });
  let out = '';
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const code = await new Promise<number | null>((resolve) => child.on('close', (c) => resolve(c)));
  assert.equal(code, 0);
  assert.equal(fields(out).values.get('pid'), String(child.pid), 'exec, not a child process');
});

test('exit status and environment pass through; the caller\'s LD_PRELOAD is replaced', async () => {
  const s = setup();
  const r = await run(WRAPPER, ['exit=3'], {
    env: { ...s.env, LD_PRELOAD: '/nonexistent/caller.so', VMM_COMPAT_SOCKET_DIR: '/jail/view', VMM_COMPAT_REQUIRE_DAEMON: '1' },
  });
  assert.equal(r.code, 3);
  const { values } = fields(r.stdout);
  assert.equal(values.get('preload'), s.interposer);
  assert.equal(values.get('socket_dir'), '/jail/view');
  assert.equal(values.get('require_daemon'), '1');
});

test('LD_PRELOAD is set on the exec line only; the program is found by its bare name in the legacy directory', () => {
  const code = fs
    .readFileSync(WRAPPER, 'utf8')
    .replace(/\\\n\s*/g, '')
    .split('\n')
    .filter((l) => !/^\s*#/.test(l));
  const preload = code.filter((l) => l.includes('LD_PRELOAD'));
  assert.equal(preload.length, 1, preload.join('\n'));
  assert.match(preload[0]!, /^exec \/usr\/bin\/env LD_PRELOAD="\$\{interposer\}" VMM_COMPAT_SOCKET_DIR="\$\{socket_dir\}" PATH="\$\{legacy_dir\}:\$\{PATH\}" "\$\{prog\}" "\$@"$/);
  assert.equal(code.filter((l) => /\bexport\b.*LD_PRELOAD/.test(l)).length, 0, 'LD_PRELOAD is never exported');
  assert.equal(code.filter((l) => /^\s*exec\b/.test(l)).length, 1);
});

test('vm-bhyve\'s own pgrep finds the guest before bhyve sets its title: argv[0] is "bhyve", as when vm-bhyve runs bhyve itself', async () => {
  const pgrep = which('pgrep');
  assert.ok(pgrep, 'pgrep is not installed (procps)');
  const s = setup();
  await compiledLegacy(s.legacy);
  const name = `rctl-${process.pid}`;
  const bg = await startBackground(WRAPPER, ['-c', '2', '-m', '1G', '-A', '-H', '-P', 'sleep=10', name], s.env);
  try {
    assert.equal(fields(bg.out()).values.get('argv0'), 'bhyve');
    // lib/vm-rctl, once the guest started (the fake never sets a title, as a bhyve still in
    // fbuf "wait" or wiring -S memory has not yet).
    const r = await run(pgrep, ['-fx', `bhyve[: ].* ${name}`]);
    assert.equal(r.stdout.trim(), String(bg.pid), `pgrep -fx "bhyve[: ].* ${name}" must name the guest's process`);
    assert.equal(bg.pid, bg.child.pid, 'the wrapper replaced itself');
  } finally {
    bg.child.kill('SIGKILL');
  }
});

test('every refusal exits 4 (bhyve\'s "exited due to an error"), never 1 or 2 (vm-bhyve\'s power-off and halt), and goes to syslog', async () => {
  // lib/vm-run vm::handle_exit (freebsd/vm-bhyve at 0c93a8fb): 0 restart, 1 and 2 shutdown,
  // anything else on_fault; and bhyve's stderr goes to /dev/null unless debug="yes".
  const s = setup();
  const missing = path.join(s.dir, 'nowhere', 'bhyve');
  const r = await run(WRAPPER, ['-c', '2', 'guest7'], { env: { ...s.env, VMM_COMPAT_LEGACY_BHYVE: missing } });
  assert.equal(r.code, 4);
  assert.equal(r.stdout, '');
  assert.ok(r.stderr.includes(`legacy bhyve ${missing} not found`), r.stderr);
  const calls = loggerCalls(s);
  assert.equal(calls.length, 1, JSON.stringify(calls));
  const [args] = calls;
  assert.deepEqual(args!.slice(0, 5), ['-t', 'vmm-compat', '-p', 'daemon.err', '--']);
  assert.match(args![5]!, /^bhyve for VM guest7: legacy bhyve .* not found/);
});

test('refuses, exit 4, naming the missing legacy bhyve and the fix', async () => {
  const s = setup();
  const missing = path.join(s.dir, 'nowhere', 'bhyve');
  const r = await run(WRAPPER, ['vm1'], { env: { ...s.env, VMM_COMPAT_LEGACY_BHYVE: missing } });
  assert.equal(r.code, 4);
  assert.equal(r.stdout, '');
  assert.ok(r.stderr.includes(`legacy bhyve ${missing} not found`), r.stderr);
  assert.match(r.stderr, /VMM_COMPAT_LEGACY_BHYVE/);
});

test('refuses a legacy bhyve that is not executable', async () => {
  const s = setup();
  fs.chmodSync(s.legacy, 0o644);
  const r = await run(WRAPPER, ['vm1'], { env: s.env });
  assert.equal(r.code, 4);
  assert.match(r.stderr, /is not executable: chmod 0555/);
});

test('refuses a legacy binary not named bhyve (vm-bhyve would think the guest is stopped)', async () => {
  const s = setup('bhyve13');
  const r = await run(WRAPPER, ['vm1'], { env: s.env });
  assert.equal(r.code, 4);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /must be named "bhyve", not "bhyve13"/);
  assert.match(r.stderr, /pgrep/);
});

test('refuses a relative legacy path, and one whose directory PATH would split', async () => {
  const s = setup();
  let r = await run(WRAPPER, ['vm1'], { env: { ...s.env, VMM_COMPAT_LEGACY_BHYVE: 'legacy13/bhyve' } });
  assert.equal(r.code, 4);
  assert.match(r.stderr, /must be an absolute path/);
  const colon = path.join(s.dir, 'a:b', 'bhyve');
  writeExecutable(colon, FAKE_BHYVE);
  r = await run(WRAPPER, ['vm1'], { env: { ...s.env, VMM_COMPAT_LEGACY_BHYVE: colon } });
  assert.equal(r.code, 4);
  assert.match(r.stderr, /contains ":"/);
});

test('refuses, exit 4, naming the missing interposer and the fix', async () => {
  const s = setup();
  const missing = path.join(s.dir, 'nolib', 'libvmmcompat.so');
  const r = await run(WRAPPER, ['vm1'], { env: { ...s.env, VMM_COMPAT_INTERPOSER: missing } });
  assert.equal(r.code, 4);
  assert.equal(r.stdout, '');
  assert.ok(r.stderr.includes(`interposer ${missing} not found`), r.stderr);
  assert.match(r.stderr, /VMM_COMPAT_INTERPOSER/);
});

test('refuses an interposer path LD_PRELOAD would split', async () => {
  const s = setup();
  const spaced = path.join(s.dir, 'my lib', 'libvmmcompat.so');
  fs.mkdirSync(path.dirname(spaced), { recursive: true });
  fs.writeFileSync(spaced, '');
  const r = await run(WRAPPER, ['vm1'], { env: { ...s.env, VMM_COMPAT_INTERPOSER: spaced } });
  assert.equal(r.code, 4);
  assert.match(r.stderr, /white space or ":"/);
});

/** The wrapper installed under another name, as `ln -s bhyve NAME` in its directory does. */
function linkedAs(s: Setup, name: string): string {
  const link = path.join(s.dir, 'bin', name);
  fs.mkdirSync(path.dirname(link), { recursive: true });
  fs.symlinkSync(WRAPPER, link);
  return link;
}

for (const loader of [
  { name: 'bhyveload', variable: 'VMM_COMPAT_LEGACY_BHYVELOAD' },
  { name: 'grub-bhyve', variable: 'VMM_COMPAT_LEGACY_GRUB_BHYVE' },
]) {
  test(`linked as ${loader.name}: execs the legacy ${loader.name} (exec only, argv[0] "${loader.name}", preloaded); vm-bhyve's vm stop finds one pid and kills it`, async () => {
    const s = setup();
    const legacy = path.join(s.dir, 'legacy13', loader.name);
    await compiledLegacy(legacy);
    const name = `ld-${process.pid}`;
    const env = { ...s.env, [loader.variable]: legacy };
    const bg = await startBackground(linkedAs(s, loader.name), ['-c', '/dev/nmdm-x.1A', '-m', '1G', 'sleep=10', name], env);
    try {
      const values = fields(bg.out()).values;
      assert.equal(values.get('argv0'), loader.name);
      assert.equal(values.get('LD_PRELOAD'), s.interposer);
      assert.equal(bg.pid, bg.child.pid, 'exec, not a child process');
      const lookup = await run('sh', ['-c', `pgrep -fa "grub-bhyve|bhyveload" | grep " ${name}$" | cut -d' ' -f1`]);
      assert.equal(lookup.stdout.trim(), String(bg.pid), 'exactly one process: the loader');
      const killed = await run('sh', ['-c', `kill "${lookup.stdout.trim()}"`]);
      assert.equal(killed.code, 0, killed.stderr);
      assert.equal(await bg.exited, 'SIGTERM');
    } finally {
      bg.child.kill('SIGKILL');
    }
  });
}

test('run under any other name, the wrapper refuses (exit 4) rather than guess', async () => {
  const s = setup();
  const r = await run(linkedAs(s, 'bhyvectl'), ['--vm=x', '--destroy'], { env: s.env });
  assert.equal(r.code, 4);
  assert.match(r.stderr, /install this wrapper as bhyve, bhyveload or grub-bhyve/);
});

/** The environment the fake saw, with the configuration file `text`. */
async function withConfig(text: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<{ r: Awaited<ReturnType<typeof run>>; values: Map<string, string>; s: Setup }> {
  const s = setup();
  fs.writeFileSync(s.env.VMM_COMPAT_CONFIG!, text);
  const r = await run(WRAPPER, ['vm1'], { env: { ...s.env, ...extraEnv } });
  return { r, values: fields(r.stdout).values, s };
}

test('the configuration file sets what must survive tmux: failure_policy, kernel_variant, parker_* and socket_dir, read as config.ts reads them', async () => {
  const texts = [
    'failure_policy = refuse\n',
    '# c\nfailure_policy=fallback\r\nkernel_variant = "window"   # comment\nparker_boot_poll_us = 500\nparker_boot_window_ms=0\nparker_idle_poll_ms = 7\nsocket_dir = /run/x\n[jail web]\nsocket_dir = /run/web\n',
    'kernel_variant = auto\n\tfailure_policy\t=\trefuse\n',
    'socket_dir = /var/run/vmm-compat/\n',
    '',
  ];
  for (const text of texts) {
    const { r, values } = await withConfig(text);
    assert.equal(r.code, 0, `${text}\n${r.stderr}`);
    const want = parseConfig(text, 'vmm-compat.conf');
    const inFile = (key: string): boolean => new RegExp(`^\\s*${key}\\s*=`, 'm').test(text.split(/^\s*\[/m)[0]!);
    assert.equal(values.get('require_daemon'), want.failurePolicy === 'refuse' ? '1' : '<unset>', text);
    assert.equal(values.get('kernel'), want.kernelVariant === 'auto' ? '<unset>' : want.kernelVariant, text);
    assert.equal(values.get('boot_poll_us'), inFile('parker_boot_poll_us') ? String(want.parkerBootPollUs) : '<unset>', text);
    assert.equal(values.get('boot_window_ms'), inFile('parker_boot_window_ms') ? String(want.parkerBootWindowMs) : '<unset>', text);
    assert.equal(values.get('idle_poll_ms'), inFile('parker_idle_poll_ms') ? String(want.parkerIdlePollMs) : '<unset>', text);
    const normal = (d: string): string => path.normalize(d).replace(/(.)\/$/, '$1');
    assert.equal(normal(values.get('socket_dir')!), normal(want.socketDir), text);
  }
});

test('the file wins over the interposer variables in the environment, except that VMM_COMPAT_REQUIRE_DAEMON=1 is kept; VMM_COMPAT_SOCKET_DIR wins over socket_dir', async () => {
  const { values } = await withConfig('failure_policy = fallback\nparker_idle_poll_ms = 9\nsocket_dir = /from/file\n', {
    VMM_COMPAT_REQUIRE_DAEMON: '1',
    VMM_COMPAT_PARKER_IDLE_POLL_MS: '50',
    VMM_COMPAT_PARKER_BOOT_POLL_US: '2000',
    VMM_COMPAT_SOCKET_DIR: '/from/env',
  });
  assert.equal(values.get('require_daemon'), '1');
  assert.equal(values.get('idle_poll_ms'), '9');
  assert.equal(values.get('boot_poll_us'), '2000', 'a key the file does not set leaves the environment\'s value');
  assert.equal(values.get('socket_dir'), '/from/env');
});

test('a failure_policy the daemon would refuse stops the wrapper too: exit 4, file and line named, syslog', async () => {
  const { r, s } = await withConfig('# x\nfailure_policy = refused\n');
  assert.equal(r.code, 4);
  assert.match(r.stderr, /vmm-compat\.conf:2: failure_policy must be fallback or refuse, not "refused"/);
  assert.equal(loggerCalls(s).length, 1);
});

test('tmux console mode: a variable from vm_env does not reach the guest\'s process; the file\'s failure_policy does', async () => {
  // vm-bhyve (lib/vm-core core::__start at 050a1be8) runs `tmux new -ds NAME $0 _run ...`: the
  // new session's processes get the tmux server's environment, not the client's (tmux 3.3a
  // here keeps the client's PATH, nothing else that vm_env sets).
  const tmux = which('tmux');
  assert.ok(tmux, 'tmux is not installed (apt-get install tmux)');
  const s = setup();
  const sock = path.join(s.dir, 'tmux.sock');
  // The server's environment: what the wrapper finds on a host without vm_env (here the test's
  // paths stand for the installed defaults).
  const server = { ...s.env, HOME: s.dir, TERM: 'xterm' };
  const started = await run(tmux, ['-S', sock, 'new-session', '-d', '-s', 'first', 'sleep 60'], { env: server });
  assert.equal(started.code, 0, started.stderr);
  try {
    const runIn = async (session: string): Promise<Map<string, string>> => {
      const out = path.join(s.dir, `${session}.out`);
      // The client: vm-bhyve started by rc.d/vm with vm_env="... VMM_COMPAT_REQUIRE_DAEMON=1".
      const client = { ...server, VMM_COMPAT_REQUIRE_DAEMON: '1' };
      const r = await run(tmux, ['-S', sock, 'new-session', '-d', '-s', session, `${WRAPPER} vm1 > ${out} 2>&1`], { env: client });
      assert.equal(r.code, 0, r.stderr);
      const deadline = Date.now() + 10000;
      while (!fs.existsSync(out) || !/^arg=\[vm1\]$/m.test(fs.readFileSync(out, 'utf8'))) {
        if (Date.now() > deadline) throw new Error(`no output from the tmux session ${session}: ${fs.existsSync(out) ? fs.readFileSync(out, 'utf8') : ''}`);
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      return fields(fs.readFileSync(out, 'utf8')).values;
    };
    const lost = await runIn('second');
    assert.equal(lost.get('require_daemon'), '<unset>', 'tmux dropped VMM_COMPAT_REQUIRE_DAEMON');
    fs.writeFileSync(s.env.VMM_COMPAT_CONFIG!, 'failure_policy = refuse\n');
    const kept = await runIn('third');
    assert.equal(kept.get('require_daemon'), '1', 'the file\'s failure_policy = refuse reached the interposer\'s environment');
  } finally {
    await run(tmux, ['-S', sock, 'kill-server'], { env: server });
  }
});

test('the defaults are the installed layout', () => {
  const text = fs.readFileSync(WRAPPER, 'utf8');
  assert.match(text, /\$\{VMM_COMPAT_LEGACY_BHYVE:-\/usr\/local\/libexec\/vmm-compat\/legacy13\/bhyve\}/);
  assert.match(text, /\$\{VMM_COMPAT_LEGACY_BHYVELOAD:-\/usr\/local\/libexec\/vmm-compat\/legacy13\/bhyveload\}/);
  assert.match(text, /\$\{VMM_COMPAT_LEGACY_GRUB_BHYVE:-\/usr\/local\/libexec\/vmm-compat\/legacy13\/grub-bhyve\}/);
  assert.match(text, /^interposer=\$\{VMM_COMPAT_INTERPOSER:-\/usr\/local\/lib\/vmm-compat\/libvmmcompat\.so\}$/m);
  assert.match(text, /^config=\$\{VMM_COMPAT_CONFIG:-\/usr\/local\/etc\/vmm-compat\.conf\}$/m);
  assert.match(text, /\/var\/run\/vmm-compat\}/);
  assert.ok((fs.statSync(WRAPPER).mode & 0o111) !== 0, 'bin/bhyve-wrapper must be executable');
});
