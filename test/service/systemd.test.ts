// systemd/vmm-compatd.service: systemd-analyze verify must be silent, the offline security
// exposure must stay at or below the measured level, and the node command line must survive
// MemoryDenyWriteExecute=yes.
//
// The unit names /usr/bin/node (Debian's nodejs and NodeSource both install it there).
// `systemd-analyze verify` fails when ExecStart's program is not executable on the machine
// running it, and CI machines may have node elsewhere; so each test checks a copy of the unit
// with /usr/bin/node replaced by the node running the tests. Nothing else is changed. The
// script path after it (/usr/local/libexec/vmm-compat/bin/vmm-compat) is an argument, which
// verify does not check.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { FIXTURES, REPO_ROOT, run, tempDir, which } from './helpers';

const UNIT = path.join(REPO_ROOT, 'systemd', 'vmm-compatd.service');
/** Measured 1.9 with systemd 252 (Debian 12); a weakened setting pushes it over. */
const MAX_EXPOSURE = 2.0;

function unitText(): string {
  return fs.readFileSync(UNIT, 'utf8');
}

/** `Key=value` settings of one section, in order (a key may repeat). */
function settings(section: string): [string, string][] {
  const out: [string, string][] = [];
  let current = '';
  for (const raw of unitText().split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      current = header[1]!;
      continue;
    }
    if (current !== section) continue;
    const eq = line.indexOf('=');
    out.push([line.slice(0, eq), line.slice(eq + 1)]);
  }
  return out;
}

function setting(key: string): string | undefined {
  const all = settings('Service').filter(([k]) => k === key);
  return all.length === 0 ? undefined : all[all.length - 1]![1];
}

function execStart(): string[] {
  const value = setting('ExecStart');
  assert.ok(value, 'ExecStart is missing');
  return value.split(/\s+/);
}

/** The unit, copied with /usr/bin/node replaced by this node, in a directory of its own. */
function unitCopy(edit: (text: string) => string = (t) => t): string {
  const dir = tempDir('systemd');
  const copy = path.join(dir, 'vmm-compatd.service');
  const text = unitText();
  assert.ok(text.includes('ExecStart=/usr/bin/node '), 'ExecStart must start with /usr/bin/node');
  fs.writeFileSync(copy, edit(text.replace('ExecStart=/usr/bin/node ', `ExecStart=${process.execPath} `)));
  return copy;
}

function systemdAnalyze(): string {
  const found = which('systemd-analyze');
  assert.ok(found, 'systemd-analyze is not installed: apt-get install systemd (.ci/run installs it)');
  return found;
}

test('systemd-analyze verify --man=no: exit 0 and nothing on stderr', async () => {
  const r = await run(systemdAnalyze(), ['verify', '--man=no', unitCopy()], { timeoutMs: 60000 });
  assert.equal(r.stderr, '', `systemd-analyze verify complained:\n${r.stderr}`);
  assert.equal(r.code, 0);
});

test('systemd-analyze verify does complain about a bad setting (the check can fail)', async () => {
  // verify exits 0 for unparseable values; only its stderr shows them.
  const r = await run(systemdAnalyze(), ['verify', '--man=no', unitCopy((t) => t.replace('Restart=on-failure', 'Restart=sometimes'))], {
    timeoutMs: 60000,
  });
  assert.match(r.stderr, /restart/i);
});

test(`systemd-analyze security --offline=yes: exposure at most ${MAX_EXPOSURE}`, async () => {
  const r = await run(systemdAnalyze(), ['security', '--offline=yes', '--no-pager', unitCopy()], { timeoutMs: 60000 });
  const m = /Overall exposure level for vmm-compatd\.service:\s*([0-9.]+)/.exec(r.stdout + r.stderr);
  assert.ok(m, `no exposure level in:\n${r.stdout}${r.stderr}`);
  const exposure = Number(m[1]);
  assert.ok(exposure <= MAX_EXPOSURE, `exposure ${exposure} > ${MAX_EXPOSURE}: a hardening setting regressed\n${r.stdout}`);
});

test('the unit runs the daemon with the documented configuration, reload, restart and runtime directory', () => {
  const words = execStart();
  assert.equal(words[0], '/usr/bin/node');
  const script = words.findIndex((w) => w.endsWith('/vmm-compat'));
  assert.equal(words[script], '/usr/local/libexec/vmm-compat/bin/vmm-compat');
  assert.deepEqual(words.slice(script + 1), ['daemon', '--config', '/etc/vmm-compat.conf']);
  assert.equal(setting('ExecReload'), '/bin/kill -HUP $MAINPID');
  assert.equal(setting('Restart'), 'on-failure');
  assert.match(setting('RestartSec') ?? '', /^[1-9][0-9]*s?$/);
  assert.equal(setting('RuntimeDirectory'), 'vmm-compat');
  assert.equal(setting('RuntimeDirectoryMode'), '0755');
  assert.equal(setting('NoNewPrivileges'), 'yes');
  assert.equal(setting('ProtectSystem'), 'strict');
  assert.equal(setting('RestrictAddressFamilies'), 'AF_UNIX AF_INET AF_INET6');
  assert.equal(setting('SystemCallArchitectures'), 'native');
  assert.equal(setting('CapabilityBoundingSet'), 'CAP_SYS_PTRACE');
  // MemoryDenyWriteExecute=yes and V8's JIT do not mix: the unit must run node --jitless.
  assert.equal(setting('MemoryDenyWriteExecute'), 'yes');
  assert.ok(words.slice(1, script).includes('--jitless'), 'MemoryDenyWriteExecute=yes needs node --jitless');
});

test('node with the unit\'s flags runs koffi, pino and a Unix socket under MemoryDenyWriteExecute rules', async (t) => {
  const cc = which('cc');
  assert.ok(cc, 'no C compiler (cc): the native build needs one too');
  const dir = tempDir('mdwe');
  const helper = path.join(dir, 'mdwe-exec');
  const built = await run(cc, ['-O2', '-Wall', '-Werror', '-o', helper, path.join(FIXTURES, 'mdwe-exec.c')], { timeoutMs: 60000 });
  assert.equal(built.code, 0, built.stderr);

  const words = execStart();
  const script = words.findIndex((w) => w.endsWith('/vmm-compat'));
  const nodeFlags = words.slice(1, script);
  const sock = path.join(dir, 's.sock');
  const workload = `
    const koffi = require(${JSON.stringify(path.join(REPO_ROOT, 'node_modules', 'koffi'))});
    const pino = require(${JSON.stringify(path.join(REPO_ROOT, 'node_modules', 'pino'))});
    const net = require('node:net');
    const libc = koffi.load(process.platform === 'freebsd' ? 'libc.so.7' : 'libc.so.6');
    const getpid = libc.func('int getpid()');
    if (getpid() !== process.pid) throw new Error('koffi getpid');
    let n = 0;
    for (let i = 0; i < 200000; i++) n += JSON.stringify({ i, s: 'x'.repeat(i % 7) }).length;
    pino(pino.destination('/dev/null')).info({ n }, 'logged');
    const server = net.createServer((c) => c.end('pong')).listen(${JSON.stringify(sock)}, () => {
      net.connect(${JSON.stringify(sock)}).on('data', (d) => {
        server.close();
        process.stdout.write(String(d) === 'pong' ? 'ok\\n' : 'bad\\n');
      });
    });`;

  const withFlags = await run(helper, [process.execPath, ...nodeFlags, '-e', workload], { timeoutMs: 60000 });
  if (withFlags.code === 125) {
    t.skip(`seccomp filters are not available here: ${withFlags.stderr.trim()}`);
    return;
  }
  assert.equal(withFlags.code, 0, `node ${nodeFlags.join(' ')} failed under the filter:\n${withFlags.stderr}`);
  assert.equal(withFlags.stdout, 'ok\n');

  // Without the unit's flags the JIT must trip over the same rules, or the check above proves nothing.
  const without = await run(helper, [process.execPath, '-e', workload], { timeoutMs: 60000 });
  assert.ok(without.code !== 0 || without.signal !== null, 'the filter did not stop the JIT; the emulation is broken');
  assert.notEqual(without.stdout, 'ok\n');
});
