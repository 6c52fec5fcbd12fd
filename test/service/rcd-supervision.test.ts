// rc.d/vmm_compatd and what is behind its pidfiles: the real daemon (vmm-compat daemon, on Linux
// with the variant given), run by a daemon(8) stand-in (fixtures/daemon-standin.js) through the
// script's own command line, under the stub rc.subr (fixtures/rc.subr.stub, RC_STUB_RUN=1),
// which matches pidfile processes by procname as FreeBSD's rc.subr at 0227451304a7 does.
//
//   start  waits, bounded, until the daemon accepts connections on its control socket, and
//          fails with the daemon's last exit and log lines when it does not come;
//   status tells a running daemon from a supervisor whose daemon keeps dying;
//   stop   ends within a bound whatever daemon(8) does with SIGTERM, signalling only this
//          service's supervisor and its child;
//   a pidfile that names another process (pid reuse after a kill -9) is not this service's.
//
// Nothing here runs FreeBSD's rc.subr or daemon(8): see docs/install.md, "What was checked".
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { FIXTURES, REPO_ROOT, SupervisorPair, run, tempDir, which, writeExecutable, type RunResult } from './helpers';

const SCRIPT = path.join(REPO_ROOT, 'rc.d', 'vmm_compatd');
const CLI = path.join(REPO_ROOT, 'bin', 'vmm-compat');

type StandinMode = 'sigaction' | 'kqueue' | 'deaf';

interface Rig {
  dir: string;
  sockDir: string;
  pidfile: string;
  childPidfile: string;
  exitRecord: string;
  syslog: string;
  rc(arg: string): Promise<RunResult & { ms: number }>;
}

/** A Linux stand-in for the host in the configuration: the variant given, libc.so.6, device nodes under dir. */
function workingConfig(dir: string): string {
  return `kernel_variant = window\nsyscall_library = libc.so.6\ndevice_dir = ${dir}/dev/vmm\nsocket_dir = ${dir}/run/vmm-compat\n`;
}

function makeRig(opts: { config?: (dir: string) => string; mode?: StandinMode; knobs?: Record<string, string> } = {}): Rig {
  const dash = which('dash');
  assert.ok(dash, 'dash is not installed: apt-get install dash');
  assert.ok(fs.existsSync(path.join(REPO_ROOT, 'dist', 'src', 'cli', 'main.js')), 'build first (npm run build)');
  const dir = tempDir('rcd-sup');
  const conf = path.join(dir, 'vmm-compat.conf');
  fs.writeFileSync(conf, (opts.config ?? workingConfig)(dir));
  const script = path.join(dir, 'vmm_compatd');
  fs.writeFileSync(script, fs.readFileSync(SCRIPT, 'utf8').replace('\n. /etc/rc.subr\n', `\n. ${path.join(FIXTURES, 'rc.subr.stub')}\n`));
  const fakebin = path.join(dir, 'fakebin');
  writeExecutable(path.join(fakebin, 'install'), '#!/bin/sh\nwhile [ $# -gt 1 ]; do shift; done\nmkdir -p "$1" && chmod 0755 "$1"\n');
  const daemon = path.join(dir, 'sbin', 'daemon');
  writeExecutable(daemon, `#!/bin/sh\nexec '${process.execPath}' '${path.join(FIXTURES, 'daemon-standin.js')}' "$@"\n`);
  const pidfile = path.join(dir, 'vmm_compatd.pid');
  const childPidfile = path.join(dir, 'vmm_compatd.child.pid');
  const exitRecord = path.join(dir, 'vmm_compatd.exit');
  const syslog = path.join(dir, 'messages');
  const knobs: Record<string, string> = {
    vmm_compatd_enable: 'YES',
    vmm_compatd_program: daemon,
    vmm_compatd_config: conf,
    vmm_compatd_node: process.execPath,
    vmm_compatd_cli: CLI,
    vmm_compatd_pidfile: pidfile,
    vmm_compatd_child_pidfile: childPidfile,
    vmm_compatd_exit_record: exitRecord,
    vmm_compatd_syslog_file: syslog,
    vmm_compatd_restart_delay: '1',
    ...opts.knobs,
  };
  const rcConf = path.join(dir, 'rc.conf');
  fs.writeFileSync(rcConf, Object.entries(knobs).map(([k, v]) => `${k}="${v}"\n`).join(''));
  const env: NodeJS.ProcessEnv = {
    PATH: `${fakebin}:${process.env.PATH ?? '/usr/bin:/bin'}`,
    RC_STUB_CONF: rcConf,
    RC_STUB_LOG: path.join(dir, 'stub.log'),
    RC_STUB_RUN: '1',
    DAEMON_STANDIN_MODE: opts.mode ?? 'sigaction',
    DAEMON_STANDIN_SYSLOG: syslog,
  };
  return {
    dir,
    sockDir: path.join(dir, 'run', 'vmm-compat'),
    pidfile,
    childPidfile,
    exitRecord,
    syslog,
    async rc(arg: string) {
      const t0 = Date.now();
      const r = await run(dash, [script, arg], { env, cwd: dir, timeoutMs: 60000 });
      return { ...r, ms: Date.now() - t0 };
    },
  };
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
  } catch {
    return false;
  }
  const stat = `/proc/${pid}/stat`;
  return !(fs.existsSync(stat) && /\) [ZX]/.test(fs.readFileSync(stat, 'utf8')));
}

function readPid(file: string): number {
  return Number(fs.readFileSync(file, 'utf8').trim());
}

function connects(socketPath: string): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect(socketPath);
    s.once('connect', () => {
      s.destroy();
      resolve(true);
    });
    s.once('error', () => resolve(false));
  });
}

async function until(what: string, check: () => boolean, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Kills whatever this rig started, so that a failed test leaves nothing running: the pidfiles'
 * processes, every process whose command line names the rig's directory (the daemon), and the
 * daemon(8) stand-in that is its parent.
 */
function cleanup(rig: Rig): void {
  const pids = new Set<number>();
  for (const file of [rig.childPidfile, rig.pidfile]) {
    if (fs.existsSync(file)) pids.add(readPid(file));
  }
  for (const entry of fs.readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (!fs.readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(rig.dir)) continue;
      pids.add(Number(entry));
      const ppid = Number(/\) \S+ (\d+)/.exec(fs.readFileSync(`/proc/${entry}/stat`, 'utf8'))?.[1]);
      if (fs.readFileSync(`/proc/${ppid}/cmdline`, 'utf8').startsWith('daemon: vmm_compatd[')) pids.add(ppid);
    } catch {
      // gone meanwhile
    }
  }
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // gone
    }
  }
}

test('start returns only once the daemon accepts connections; status says running; stop ends it and its socket', async () => {
  const rig = makeRig();
  try {
    const started = await rig.rc('start');
    assert.equal(started.code, 0, started.stdout + started.stderr);
    assert.match(started.stdout, /Starting vmm_compatd\./);
    // At once, not eventually: what rc.d/vm (BEFORE: vm) and a REQUIRE_DAEMON bhyve rely on.
    assert.equal(await connects(path.join(rig.sockDir, 'control.sock')), true, 'the control socket accepts connections when start returns');
    assert.ok(fs.existsSync(path.join(rig.sockDir, 'vmm-compatd.sock')));
    assert.ok(fs.existsSync(path.join(rig.sockDir, 'kernel-variant')), 'the cache cleanvar removed at boot is back');

    const status = await rig.rc('status');
    assert.equal(status.code, 0, status.stdout + status.stderr);
    assert.equal(status.stdout.trim(), `vmm_compatd is running as pid ${readPid(rig.pidfile)}.`);

    const supervisor = readPid(rig.pidfile);
    const child = readPid(rig.childPidfile);
    const stopped = await rig.rc('stop');
    assert.equal(stopped.code, 0, stopped.stdout + stopped.stderr);
    assert.match(stopped.stdout, /Stopping vmm_compatd\./);
    assert.equal(alive(supervisor) || alive(child), false);
    assert.equal(fs.existsSync(path.join(rig.sockDir, 'vmm-compatd.sock')), false);
  } finally {
    cleanup(rig);
  }
});

test('a daemon that dies at once: start fails within vmm_compatd_start_timeout with its last exit and log lines; status tells the restart loop apart', async () => {
  const rig = makeRig({
    config: (dir) => `${workingConfig(dir)}log_level = verbose\n`,
    knobs: { vmm_compatd_start_timeout: '3', vmm_compatd_restart_delay: '3' },
  });
  try {
    const started = await rig.rc('start');
    const said = started.stdout + started.stderr;
    assert.notEqual(started.code, 0, said);
    assert.ok(started.ms < 8000, `start took ${started.ms} ms`);
    assert.match(said, /not listening on .*control\.sock after 3 s/);
    assert.match(said, /last exit: status 2 at \S+: .*vmm-compat\.conf:5: log_level must be one of/);
    assert.match(said, /vmm_compatd\[\d+\]: vmm-compat: .*log_level must be one of/, 'the last log lines, from the syslog file');

    const supervisor = readPid(rig.pidfile);
    assert.ok(alive(supervisor), 'daemon(8) keeps restarting it');
    // Between two attempts (3 s apart), as most of the time in such a loop.
    await until('the daemon to die again', () => !alive(readPid(rig.childPidfile)));
    const status = await rig.rc('status');
    assert.notEqual(status.code, 0);
    assert.match(status.stdout, new RegExp(`^vmm_compatd: supervisor up \\(pid ${supervisor}\\), daemon restarting \\(last exit: status 2 at \\S+: .*log_level must be one of`, 'm'));

    const stopped = await rig.rc('stop');
    assert.equal(stopped.code, 0, stopped.stdout + stopped.stderr);
    assert.equal(alive(supervisor), false);
  } finally {
    cleanup(rig);
  }
});

for (const mode of ['kqueue', 'deaf'] as const) {
  test(`stop ends within vmm_compatd_stop_timeout with a ${mode === 'kqueue' ? 'daemon(8) that loses SIGTERM while it sleeps before a restart (kqueue daemon.c)' : 'supervisor that ignores SIGTERM'}, and signals no other process`, async () => {
    const rig = makeRig({
      mode,
      config: mode === 'kqueue' ? (dir) => `${workingConfig(dir)}log_level = verbose\n` : workingConfig,
      knobs: { vmm_compatd_start_timeout: '2', vmm_compatd_stop_timeout: '4', vmm_compatd_restart_delay: '2' },
    });
    const bystander = await new SupervisorPair('othersvc').ready();
    try {
      await rig.rc('start');
      await until('the pidfiles', () => fs.existsSync(rig.pidfile) && fs.existsSync(rig.childPidfile));
      const supervisor = readPid(rig.pidfile);
      assert.ok(alive(supervisor));
      if (mode === 'kqueue') {
        // Catch it asleep: the child has died and the next start is 2 s away.
        await until('the child to die', () => !alive(readPid(rig.childPidfile)));
      }
      const child = readPid(rig.childPidfile);
      const stopped = await rig.rc('stop');
      assert.equal(stopped.code, 0, stopped.stdout + stopped.stderr);
      assert.ok(stopped.ms < 4000 + 3000, `stop took ${stopped.ms} ms`);
      assert.equal(alive(supervisor), false, 'the supervisor is gone');
      assert.equal(alive(child), false, 'the daemon is gone');
      assert.equal(fs.existsSync(rig.pidfile), false, 'no pidfile left to mislead the next start');
      if (mode === 'deaf') assert.match(stopped.stderr, /did not stop within 4 s/);
      assert.deepEqual(await bystander.settle(), [], 'another service\'s daemon(8) got nothing');
    } finally {
      bystander.stop();
      cleanup(rig);
    }
  });
}

test('a pidfile naming another service\'s daemon(8) supervisor (pid reuse): not running, start is not refused, stop signals nothing', async () => {
  const rig = makeRig();
  const other = await new SupervisorPair('othersvc').ready();
  try {
    fs.writeFileSync(rig.pidfile, `${other.supervisor}\n`);
    const status = await rig.rc('status');
    assert.equal(status.code, 1, status.stdout + status.stderr);
    assert.match(status.stdout, /vmm_compatd is not running\./);
    assert.match(status.stderr, new RegExp(`${rig.pidfile.replace(/[.]/g, '\\.')} names pid ${other.supervisor}, which is not vmm_compatd's daemon\\(8\\)`));

    fs.writeFileSync(rig.pidfile, `${other.supervisor}\n`);
    const stopped = await rig.rc('stop');
    assert.notEqual(stopped.code, 0);
    assert.match(stopped.stderr, /vmm_compatd not running\?/);

    fs.writeFileSync(rig.pidfile, `${other.supervisor}\n`);
    const started = await rig.rc('start');
    assert.equal(started.code, 0, started.stdout + started.stderr);
    assert.doesNotMatch(started.stderr, /already running/);
    assert.notEqual(readPid(rig.pidfile), other.supervisor);
    await rig.rc('stop');
    assert.deepEqual(await other.settle(), [], 'the other service\'s supervisor and child got no signal');
  } finally {
    other.stop();
    cleanup(rig);
  }
});
