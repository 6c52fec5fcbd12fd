// rc.d/vmm_compatd with the real daemon: the command line that `start` builds for daemon(8)'s
// child is run as it is (here by the test, in place of daemon(8)), and `reload` and `stop` from
// the script then drive that process. Checks that the arguments the script passes are the
// ones `vmm-compat daemon` accepts, that HUP applies a new [jail] section at once, and that
// TERM closes and unlinks the sockets with exit status 0.
//
// daemon(8) is not available here, so its pid is stood in for by the Node.js process itself in
// both pidfiles; the supervisor/child split is covered by rcd.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { FIXTURES, REPO_ROOT, run, tempDir, which, writeExecutable } from './helpers';

const SCRIPT = path.join(REPO_ROOT, 'rc.d', 'vmm_compatd');
const CLI = path.join(REPO_ROOT, 'bin', 'vmm-compat');

async function until(what: string, check: () => boolean, timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

test('the real daemon started from the rc.d command line reloads on `reload` and stops cleanly on `stop`', async () => {
  const dash = which('dash');
  assert.ok(dash, 'dash is not installed: apt-get install dash');
  assert.ok(fs.existsSync(path.join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js')), 'build first (npm run build)');
  const dir = tempDir('rcd-daemon');
  const run1 = path.join(dir, 'run', 'vmm-compat');
  const conf = path.join(dir, 'vmm-compat.conf');
  // A Linux stand-in for the host: libc.so.6 for the daemon's system calls, the variant given
  // (kern.osreldate does not exist here), device nodes looked up under the temporary directory.
  const base = `kernel_variant = window\nsyscall_library = libc.so.6\ndevice_dir = ${dir}/dev/vmm\nsocket_dir = ${run1}\n[jail web]\n`;
  fs.writeFileSync(conf, base);
  const pidfile = path.join(dir, 'vmm_compatd.pid');
  const childPidfile = path.join(dir, 'vmm_compatd.child.pid');
  fs.writeFileSync(
    path.join(dir, 'rc.conf'),
    [
      'vmm_compatd_enable="YES"',
      `vmm_compatd_config="${conf}"`,
      `vmm_compatd_node="${process.execPath}"`,
      `vmm_compatd_cli="${CLI}"`,
      `vmm_compatd_pidfile="${pidfile}"`,
      `vmm_compatd_child_pidfile="${childPidfile}"`,
      'vmm_compatd_log_level="debug"',
      '',
    ].join('\n'),
  );
  const script = path.join(dir, 'vmm_compatd');
  fs.writeFileSync(script, fs.readFileSync(SCRIPT, 'utf8').replace('\n. /etc/rc.subr\n', `\n. ${path.join(FIXTURES, 'rc.subr.stub')}\n`));
  writeExecutable(path.join(dir, 'fakebin', 'install'), '#!/bin/sh\nwhile [ $# -gt 1 ]; do shift; done\nmkdir -p "$1" && chmod 0755 "$1"\n');
  const log = path.join(dir, 'stub.log');
  const env = { PATH: `${path.join(dir, 'fakebin')}:${process.env.PATH ?? '/usr/bin:/bin'}`, RC_STUB_CONF: path.join(dir, 'rc.conf'), RC_STUB_LOG: log };
  const rc = (arg: string) => run(dash, [script, arg], { env, cwd: dir, timeoutMs: 20000 });

  const started = await rc('start');
  assert.equal(started.code, 0, started.stderr);
  const line = fs.readFileSync(log, 'utf8').split('\n').find((l) => l.startsWith('RUN: /usr/sbin/daemon'));
  assert.ok(line);
  const words = line.slice('RUN: '.length).split(/\s+/).filter((w) => w !== '');
  const childStart = words.indexOf(process.execPath);
  assert.ok(childStart > 0);
  const argv = words.slice(childStart);
  assert.deepEqual(argv.slice(1), [CLI, 'daemon', '--config', conf, '--log-level', 'debug']);

  // What daemon(8) would do: run the child and record its pid.
  const daemon = spawn(argv[0]!, argv.slice(1), { stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  daemon.stderr.setEncoding('utf8').on('data', (s: string) => (output += s));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    daemon.on('exit', (code, signal) => resolve({ code, signal })),
  );
  try {
    fs.writeFileSync(pidfile, `${daemon.pid}\n`);
    fs.writeFileSync(childPidfile, `${daemon.pid}\n`);
    const hostSock = path.join(run1, 'vmm-compatd.sock');
    const webSock = path.join(run1, 'web', 'vmm-compatd.sock');
    await until(`the daemon's sockets (log so far:\n${output})`, () => fs.existsSync(hostSock) && fs.existsSync(webSock));

    const status = await run(process.execPath, [CLI, 'status', '--socket-dir', run1, '--json'], { timeoutMs: 20000 });
    assert.equal(status.code, 0, status.stderr);
    const report = JSON.parse(status.stdout) as { pid: number; kernelVariant: string; socketDirectories: { jail: string }[] };
    assert.equal(report.pid, daemon.pid);
    assert.equal(report.kernelVariant, 'window');
    assert.deepEqual(report.socketDirectories.map((d) => d.jail).sort(), ['host', 'web']);

    // reload: a new [jail db] section is served without a restart.
    fs.writeFileSync(conf, `${base}[jail db]\n`);
    const reloaded = await rc('reload');
    assert.equal(reloaded.code, 0, reloaded.stderr);
    const dbSock = path.join(run1, 'db', 'vmm-compatd.sock');
    await until('the db socket after reload', () => fs.existsSync(dbSock));
    await until('the reload log line', () => /configuration reloaded/.test(output) && output.includes(`added socket directory ${path.join(run1, 'db')} (jail db)`));
    assert.equal(daemon.exitCode, null, 'HUP must not end the daemon');

    // stop: TERM, sockets unlinked, exit 0.
    const stopped = await rc('stop');
    assert.equal(stopped.code, 0, stopped.stderr);
    const end = await exited;
    assert.deepEqual(end, { code: 0, signal: null });
    for (const sock of [hostSock, webSock, dbSock]) assert.equal(fs.existsSync(sock), false, `${sock} left behind`);
    assert.match(output, /running VMs are untouched/);
  } finally {
    if (daemon.exitCode === null && daemon.signalCode === null) daemon.kill('SIGKILL');
  }
});
