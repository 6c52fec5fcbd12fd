// rc.d/vmm_compatd with the real daemon: the command line that `start` builds is run as it is by
// a daemon(8) stand-in (fixtures/daemon-standin.js, through rc.subr's ${name}_program), and
// `reload` and `stop` from the script then drive that process. Checks that the arguments the
// script passes are the ones `vmm-compat daemon` accepts, that HUP applies a new [jail] section
// at once, and that TERM closes and unlinks the sockets with exit status 0.
//
// daemon(8) is not available here: see rcd-supervision.test.ts for what the stand-in models.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { FIXTURES, REPO_ROOT, run, tempDir, which, writeExecutable } from './helpers';
import { readExitRecord } from '../../src/daemon/exit-record';

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
  const exitRecord = path.join(dir, 'vmm_compatd.exit');
  const syslog = path.join(dir, 'messages');
  const daemon = path.join(dir, 'sbin', 'daemon');
  writeExecutable(daemon, `#!/bin/sh\nexec '${process.execPath}' '${path.join(FIXTURES, 'daemon-standin.js')}' "$@"\n`);
  fs.writeFileSync(
    path.join(dir, 'rc.conf'),
    [
      'vmm_compatd_enable="YES"',
      `vmm_compatd_program="${daemon}"`,
      `vmm_compatd_config="${conf}"`,
      `vmm_compatd_node="${process.execPath}"`,
      `vmm_compatd_cli="${CLI}"`,
      `vmm_compatd_pidfile="${pidfile}"`,
      `vmm_compatd_child_pidfile="${childPidfile}"`,
      `vmm_compatd_exit_record="${exitRecord}"`,
      `vmm_compatd_syslog_file="${syslog}"`,
      'vmm_compatd_log_level="debug"',
      '',
    ].join('\n'),
  );
  const script = path.join(dir, 'vmm_compatd');
  fs.writeFileSync(script, fs.readFileSync(SCRIPT, 'utf8').replace('\n. /etc/rc.subr\n', `\n. ${path.join(FIXTURES, 'rc.subr.stub')}\n`));
  writeExecutable(path.join(dir, 'fakebin', 'install'), '#!/bin/sh\nwhile [ $# -gt 1 ]; do shift; done\nmkdir -p "$1" && chmod 0755 "$1"\n');
  const log = path.join(dir, 'stub.log');
  const env = {
    PATH: `${path.join(dir, 'fakebin')}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    RC_STUB_CONF: path.join(dir, 'rc.conf'),
    RC_STUB_LOG: log,
    RC_STUB_RUN: '1',
    DAEMON_STANDIN_SYSLOG: syslog,
  };
  const rc = (arg: string) => run(dash, [script, arg], { env, cwd: dir, timeoutMs: 30000 });
  const pids: number[] = [];
  try {
    const started = await rc('start');
    assert.equal(started.code, 0, started.stdout + started.stderr);
    const line = fs.readFileSync(log, 'utf8').split('\n').find((l) => l.startsWith(`RUN: ${daemon}`));
    assert.ok(line);
    const words = line.slice('RUN: '.length).split(/\s+/).filter((w) => w !== '');
    assert.deepEqual(words.slice(words.indexOf(process.execPath) + 1), [CLI, 'daemon', '--exit-record', exitRecord, '--config', conf, '--log-level', 'debug']);
    const child = Number(fs.readFileSync(childPidfile, 'utf8').trim());
    pids.push(child, Number(fs.readFileSync(pidfile, 'utf8').trim()));

    // start has waited for the daemon: every socket is there at once.
    const hostSock = path.join(run1, 'vmm-compatd.sock');
    const webSock = path.join(run1, 'web', 'vmm-compatd.sock');
    assert.ok(fs.existsSync(hostSock) && fs.existsSync(webSock));

    const status = await run(process.execPath, [CLI, 'status', '--socket-dir', run1, '--json'], { timeoutMs: 20000 });
    assert.equal(status.code, 0, status.stderr);
    const report = JSON.parse(status.stdout) as { pid: number; kernelVariant: string; socketDirectories: { jail: string }[] };
    assert.equal(report.pid, child);
    assert.equal(report.kernelVariant, 'window');
    assert.deepEqual(report.socketDirectories.map((d) => d.jail).sort(), ['host', 'web']);

    // reload: a new [jail db] section is served without a restart.
    fs.writeFileSync(conf, `${base}[jail db]\n`);
    const reloaded = await rc('reload');
    assert.equal(reloaded.code, 0, reloaded.stderr);
    const dbSock = path.join(run1, 'db', 'vmm-compatd.sock');
    await until('the db socket after reload', () => fs.existsSync(dbSock));
    await until('the reload log line', () => {
      const out = fs.existsSync(syslog) ? fs.readFileSync(syslog, 'utf8') : '';
      return /configuration reloaded/.test(out) && out.includes(`added socket directory ${path.join(run1, 'db')} (jail db)`);
    });
    assert.equal(Number(fs.readFileSync(childPidfile, 'utf8').trim()), child, 'HUP must not end the daemon');

    // stop: TERM, sockets unlinked, exit 0.
    const stopped = await rc('stop');
    assert.equal(stopped.code, 0, stopped.stderr);
    const record = readExitRecord(exitRecord);
    assert.deepEqual({ pid: record?.pid, status: record?.status, reason: record?.reason }, { pid: child, status: 0, reason: 'stopped (SIGTERM)' });
    for (const sock of [hostSock, webSock, dbSock]) assert.equal(fs.existsSync(sock), false, `${sock} left behind`);
    assert.match(fs.readFileSync(syslog, 'utf8'), /running VMs are untouched/);
  } finally {
    for (const pid of pids) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // stopped
      }
    }
  }
});
