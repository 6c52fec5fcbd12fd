// bin/bhyve-wrapper, the `bhyve` vm-bhyve runs (docs/vm-bhyve.md), pointed at a fake legacy
// bhyve: a shell script named `bhyve` that prints the basename of its argv[0], its pid, the
// preload and socket directory it was given, and each argument in brackets.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, run, tempDir, which, writeExecutable } from './helpers';

const WRAPPER = path.join(REPO_ROOT, 'bin', 'bhyve-wrapper');

const FAKE_BHYVE = `#!/bin/sh
echo "argv0=\${0##*/}"
echo "pid=$$"
echo "preload=\${LD_PRELOAD-<unset>}"
echo "socket_dir=\${VMM_COMPAT_SOCKET_DIR-<unset>}"
echo "require_daemon=\${VMM_COMPAT_REQUIRE_DAEMON-<unset>}"
for a in "$@"; do echo "arg=[$a]"; done
case $1 in exit=*) exit "\${1#exit=}" ;; esac
exit 0
`;

interface Setup {
  dir: string;
  legacy: string;
  interposer: string;
  env: NodeJS.ProcessEnv;
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
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH ?? '/usr/bin:/bin',
    VMM_COMPAT_LEGACY_BHYVE: legacy,
    VMM_COMPAT_INTERPOSER: interposer,
  };
  return { dir, legacy, interposer, env };
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

test('LD_PRELOAD is set on the exec line only (no export, no other assignment)', () => {
  const code = fs
    .readFileSync(WRAPPER, 'utf8')
    .split('\n')
    .filter((l) => !/^\s*#/.test(l));
  const preload = code.filter((l) => l.includes('LD_PRELOAD'));
  assert.equal(preload.length, 1, preload.join('\n'));
  assert.match(preload[0]!, /^exec \/usr\/bin\/env LD_PRELOAD="\$\{interposer\}" VMM_COMPAT_SOCKET_DIR="\$\{socket_dir\}" "\$\{legacy_bhyve\}" "\$@"$/);
  assert.equal(code.filter((l) => /\bexport\b/.test(l)).length, 0);
  assert.equal(code.filter((l) => /^\s*exec\b/.test(l)).length, 1);
});

test('refuses, exit 1, naming the missing legacy bhyve and the fix', async () => {
  const s = setup();
  const missing = path.join(s.dir, 'nowhere', 'bhyve');
  const r = await run(WRAPPER, ['vm1'], { env: { ...s.env, VMM_COMPAT_LEGACY_BHYVE: missing } });
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.ok(r.stderr.includes(`legacy bhyve ${missing} not found`), r.stderr);
  assert.match(r.stderr, /VMM_COMPAT_LEGACY_BHYVE/);
});

test('refuses a legacy bhyve that is not executable', async () => {
  const s = setup();
  fs.chmodSync(s.legacy, 0o644);
  const r = await run(WRAPPER, ['vm1'], { env: s.env });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /is not executable: chmod 0555/);
});

test('refuses a legacy binary not named bhyve (vm-bhyve would think the guest is stopped)', async () => {
  const s = setup('bhyve13');
  const r = await run(WRAPPER, ['vm1'], { env: s.env });
  assert.equal(r.code, 1);
  assert.equal(r.stdout, '');
  assert.match(r.stderr, /must be named "bhyve", not "bhyve13"/);
  assert.match(r.stderr, /pgrep "bhyve: NAME"/);
});

test('refuses a relative legacy path', async () => {
  const s = setup();
  const r = await run(WRAPPER, ['vm1'], { env: { ...s.env, VMM_COMPAT_LEGACY_BHYVE: 'legacy13/bhyve' } });
  assert.equal(r.code, 1);
  assert.match(r.stderr, /must be an absolute path/);
});

test('refuses, exit 1, naming the missing interposer and the fix', async () => {
  const s = setup();
  const missing = path.join(s.dir, 'nolib', 'libvmmcompat.so');
  const r = await run(WRAPPER, ['vm1'], { env: { ...s.env, VMM_COMPAT_INTERPOSER: missing } });
  assert.equal(r.code, 1);
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
  assert.equal(r.code, 1);
  assert.match(r.stderr, /white space or ":"/);
});

test('the defaults are the installed layout', () => {
  const text = fs.readFileSync(WRAPPER, 'utf8');
  assert.match(text, /^legacy_bhyve=\$\{VMM_COMPAT_LEGACY_BHYVE:-\/usr\/local\/libexec\/vmm-compat\/legacy13\/bhyve\}$/m);
  assert.match(text, /^interposer=\$\{VMM_COMPAT_INTERPOSER:-\/usr\/local\/lib\/vmm-compat\/libvmmcompat\.so\}$/m);
  assert.match(text, /^socket_dir=\$\{VMM_COMPAT_SOCKET_DIR:-\/var\/run\/vmm-compat\}$/m);
  assert.ok((fs.statSync(WRAPPER).mode & 0o111) !== 0, 'bin/bhyve-wrapper must be executable');
});
