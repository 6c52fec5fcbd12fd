// rc.d/vmm_compatd under dash with a stub rc.subr (test/service/fixtures/rc.subr.stub): the
// real script, copied to a temporary directory with its `. /etc/rc.subr` line pointed at the
// stub. The stub logs the command line that start would run instead of running it (start's own
// wait for the daemon is off: vmm_compatd_start_timeout=0), and the script really signals the
// pids in the pidfiles, which belong to a daemon(8)-like pair of processes that record what they
// receive (fixtures/signal-pair.js). Starting, stopping and status with a running daemon behind
// a daemon(8) stand-in are in rcd-supervision.test.ts.
// Nothing here runs FreeBSD's rc.subr, daemon(8) or install(8): see docs/install.md.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { FIXTURES, REPO_ROOT, SupervisorPair, run, tempDir, which, writeExecutable, type RunResult } from './helpers';
import { parseConfig } from '../../src/config/config';

const SCRIPT = path.join(REPO_ROOT, 'rc.d', 'vmm_compatd');
const STUB = path.join(FIXTURES, 'rc.subr.stub');

function requireDash(): string {
  const dash = which('dash');
  assert.ok(dash, 'dash is not installed: apt-get install dash (FreeBSD sh and dash are both ash descendants)');
  return dash;
}

// A fake install(1): logs its arguments and creates the directory with the requested mode
// (-o/-g are logged but not applied: the test may not run as root, and Linux has no wheel).
const FAKE_INSTALL = `#!/bin/sh
echo "install $*" >> "$RC_STUB_LOG"
mode=0755
while [ $# -gt 1 ]; do
	case $1 in
	-m) mode=$2; shift 2 ;;
	-o|-g) shift 2 ;;
	-d) shift ;;
	*) break ;;
	esac
done
mkdir -p "$1" && chmod "$mode" "$1"
`;

interface Rig {
  dir: string;
  conf: string;
  cli: string;
  pidfile: string;
  childPidfile: string;
  exitRecord: string;
  /** Runs `dash vmm_compatd ARG`. */
  rc(arg: string): Promise<RunResult & { log: string[] }>;
}

interface RigOptions {
  config?: string | null;
  knobs?: Record<string, string>;
  kldstatStatus?: number;
}

function makeRig(options: RigOptions = {}): Rig {
  const dash = requireDash();
  const dir = tempDir('rcd');
  const original = fs.readFileSync(SCRIPT, 'utf8');
  const sourceLines = original.split('\n').filter((l) => l === '. /etc/rc.subr');
  assert.equal(sourceLines.length, 1, 'rc.d/vmm_compatd must source /etc/rc.subr exactly once');
  const script = path.join(dir, 'vmm_compatd');
  fs.writeFileSync(script, original.replace('\n. /etc/rc.subr\n', `\n. ${STUB}\n`), { mode: 0o755 });

  const fakebin = path.join(dir, 'fakebin');
  writeExecutable(path.join(fakebin, 'install'), FAKE_INSTALL);
  if (options.kldstatStatus !== undefined) {
    writeExecutable(path.join(fakebin, 'kldstat'), `#!/bin/sh\necho "kldstat $*" >> "$RC_STUB_LOG"\nexit ${options.kldstatStatus}\n`);
  }
  const cli = path.join(dir, 'libexec', 'vmm-compat');
  fs.mkdirSync(path.dirname(cli), { recursive: true });
  fs.writeFileSync(cli, "#!/usr/bin/env node\n// stands in for bin/vmm-compat\n");
  const conf = path.join(dir, 'vmm-compat.conf');
  const config = options.config === undefined ? `socket_dir = ${dir}/run/vmm-compat\n` : options.config;
  if (config !== null) fs.writeFileSync(conf, config.replaceAll('@DIR@', dir));
  const pidfile = path.join(dir, 'var-run', 'vmm_compatd.pid');
  const childPidfile = path.join(dir, 'var-run', 'vmm_compatd.child.pid');
  fs.mkdirSync(path.dirname(pidfile), { recursive: true });
  const knobs: Record<string, string> = {
    vmm_compatd_enable: 'YES',
    vmm_compatd_config: conf,
    vmm_compatd_node: process.execPath,
    vmm_compatd_cli: cli,
    vmm_compatd_pidfile: pidfile,
    vmm_compatd_child_pidfile: childPidfile,
    vmm_compatd_exit_record: path.join(dir, 'var-run', 'vmm_compatd.exit'),
    vmm_compatd_start_timeout: '0',
    ...options.knobs,
  };
  const rcConf = path.join(dir, 'rc.conf');
  fs.writeFileSync(
    rcConf,
    Object.entries(knobs)
      .map(([k, v]) => `${k}="${v.replaceAll('@DIR@', dir)}"\n`)
      .join(''),
  );
  const logFile = path.join(dir, 'stub.log');
  return {
    dir,
    conf,
    cli,
    pidfile,
    childPidfile,
    exitRecord: path.join(dir, 'var-run', 'vmm_compatd.exit'),
    async rc(arg: string) {
      fs.rmSync(logFile, { force: true });
      const result = await run(dash, [script, arg], {
        env: { PATH: `${fakebin}:${process.env.PATH ?? '/usr/bin:/bin'}`, RC_STUB_CONF: rcConf, RC_STUB_LOG: logFile },
        cwd: dir,
        timeoutMs: 20000,
      });
      const log = fs.existsSync(logFile) ? fs.readFileSync(logFile, 'utf8').split('\n').filter((l) => l !== '') : [];
      return { ...result, log };
    },
  };
}

interface DaemonCommand {
  options: Map<string, string | true>;
  flags: string[];
  child: string[];
}

const DAEMON_OPTIONS_WITH_VALUE = new Set(['-P', '-p', '-t', '-T', '-l', '-s', '-R', '-C', '-u', '-m', '-o']);

/** Splits a logged `/usr/sbin/daemon ... node cli daemon ...` line into daemon(8)'s part and the child's. */
function parseDaemonLine(line: string): DaemonCommand {
  const words = line.replace(/^RUN: /, '').split(/\s+/).filter((w) => w !== '');
  assert.equal(words[0], '/usr/sbin/daemon', `start must run daemon(8): ${line}`);
  const options = new Map<string, string | true>();
  const flags: string[] = [];
  let i = 1;
  while (i < words.length && words[i]!.startsWith('-')) {
    const w = words[i]!;
    flags.push(w);
    if (DAEMON_OPTIONS_WITH_VALUE.has(w)) {
      assert.ok(i + 1 < words.length, `${w} needs a value`);
      assert.ok(!options.has(w), `${w} given twice`);
      options.set(w, words[i + 1]!);
      i += 2;
    } else {
      options.set(w, true);
      i += 1;
    }
  }
  return { options, flags, child: words.slice(i) };
}

function startLine(log: string[]): string {
  const lines = log.filter((l) => l.startsWith('RUN: /usr/sbin/daemon'));
  assert.equal(lines.length, 1, `expected one daemon(8) command line, got:\n${log.join('\n')}`);
  return lines[0]!;
}

function mode(p: string): number {
  return fs.statSync(p).mode & 0o7777;
}

test('header: PROVIDE vmm_compatd, REQUIRE LOGIN, BEFORE vm, KEYWORD shutdown, never nojail', () => {
  const text = fs.readFileSync(SCRIPT, 'utf8');
  const header = (key: string): string[] =>
    text
      .split('\n')
      .filter((l) => l.startsWith(`# ${key}:`))
      .map((l) => l.slice(`# ${key}:`.length).trim());
  assert.deepEqual(header('PROVIDE'), ['vmm_compatd']);
  assert.deepEqual(header('REQUIRE'), ['LOGIN']);
  const before = header('BEFORE');
  assert.equal(before.length, 1);
  assert.ok(before[0]!.split(/\s+/).includes('vm'), `BEFORE must name vm (vm-bhyve): ${before[0]}`);
  const keywords = header('KEYWORD');
  assert.equal(keywords.length, 1);
  assert.ok(keywords[0]!.split(/\s+/).includes('shutdown'));
  assert.doesNotMatch(text, /^#\s*KEYWORD:.*\bnojail/m, 'nojail would stop the script from running in jails');
  assert.match(text, /^#!\/bin\/sh\n/);
  // rc.subr conventions: defaults come after load_rc_config, run_rc_command is last.
  const lines = text.split('\n');
  const load = lines.indexOf('load_rc_config "$name"');
  const firstDefault = lines.findIndex((l) => l.startsWith(': "${vmm_compatd_'));
  assert.ok(load > 0 && firstDefault > load, 'defaults must be set after load_rc_config');
  assert.equal(lines.filter((l) => l.trim() !== '').pop(), 'run_rc_command "$1"');
  assert.match(text, /^name="vmm_compatd"$/m);
  assert.match(text, /^rcvar="vmm_compatd_enable"$/m);
  assert.match(text, /^: "\$\{vmm_compatd_enable:=NO\}"$/m);
});

test('start: daemon(8) supervises node with -P pidfile, -p child pidfile, -r -R 5, -t and -T', async () => {
  const rig = makeRig();
  const r = await rig.rc('start');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /Starting vmm_compatd\./);
  const cmd = parseDaemonLine(startLine(r.log));
  assert.equal(cmd.options.get('-P'), rig.pidfile, '-P must be the pidfile rc.subr checks and stops');
  assert.equal(cmd.options.get('-r'), true, 'restart with -r');
  assert.equal(cmd.options.get('-R'), '5');
  const child = cmd.options.get('-p');
  assert.equal(child, rig.childPidfile);
  assert.notEqual(child, rig.pidfile, '-p and -P must be different files');
  assert.equal(cmd.options.get('-T'), 'vmm_compatd', 'syslog tag');
  assert.equal(cmd.options.get('-t'), 'vmm_compatd', 'process title');
  assert.equal(cmd.options.get('-f'), true, 'stdin to /dev/null');
  assert.equal(cmd.options.get('-l'), 'daemon');
  assert.equal(cmd.options.get('-s'), 'notice');
  assert.deepEqual(cmd.child, [process.execPath, rig.cli, 'daemon', '--exit-record', rig.exitRecord, '--config', rig.conf]);
  // precmd: the socket directory, root:wheel 0755.
  const sockDir = path.join(rig.dir, 'run', 'vmm-compat');
  assert.ok(r.log.includes(`install -d -o root -g wheel -m 0755 ${sockDir}`), r.log.join('\n'));
  assert.ok(fs.statSync(sockDir).isDirectory());
  assert.equal(mode(sockDir), 0o755);
  // The pidfiles are daemon(8)'s to write.
  assert.equal(fs.existsSync(rig.pidfile), false);
});

test('start: knobs for socket directory, log level and extra arguments reach the child, in that order', async () => {
  const rig = makeRig({
    knobs: {
      vmm_compatd_socket_dir: '@DIR@/elsewhere',
      vmm_compatd_log_level: 'debug',
      vmm_compatd_args: '--kernel window --no-compat-freebsd13',
      vmm_compatd_restart_delay: '30',
      vmm_compatd_syslog_facility: 'local3',
    },
    config: 'socket_dir = @DIR@/run/vmm-compat\n[jail web]\n',
  });
  const r = await rig.rc('start');
  assert.equal(r.code, 0, r.stderr);
  const cmd = parseDaemonLine(startLine(r.log));
  assert.deepEqual(cmd.child, [
    process.execPath,
    rig.cli,
    'daemon',
    '--exit-record',
    rig.exitRecord,
    '--config',
    rig.conf,
    '--socket-dir',
    path.join(rig.dir, 'elsewhere'),
    '--log-level',
    'debug',
    '--kernel',
    'window',
    '--no-compat-freebsd13',
  ]);
  assert.equal(cmd.options.get('-R'), '30');
  assert.equal(cmd.options.get('-l'), 'local3');
  // The host directory moves; a jail's default directory stays under the file's socket_dir,
  // as src/config/config.ts computes it before --socket-dir applies.
  assert.equal(mode(path.join(rig.dir, 'elsewhere')), 0o755);
  assert.equal(mode(path.join(rig.dir, 'run', 'vmm-compat', 'web')), 0o755);
});

test('start: precmd creates one directory per [jail] section, exactly the ones config.ts reads', async () => {
  // Every configuration names socket_dir under the temporary directory: with the built-in
  // default the script would create /var/run/vmm-compat on this machine.
  const configs = [
    '# host\nsocket_dir = "@DIR@/run/vmm-compat"   # trailing comment\nlog_level = debug\n\n[jail web]\n[ jail db ]\nsocket_dir = @DIR@/jails/db\n',
    'kernel_variant=window\r\nsocket_dir=@DIR@/run/\r\n[jail a_1]\r\n  socket_dir=@DIR@/x/a # comment\r\n[jail b-2.c]\r\n',
    '\tsocket_dir\t=\t@DIR@/s#not-a-comment\n[jail only]\n',
    'socket_dir = @DIR@/plain\n',
  ];
  for (const text of configs) {
    const rig = makeRig({ config: text });
    const r = await rig.rc('start');
    assert.equal(r.code, 0, r.stderr);
    const expected = parseConfig(text.replaceAll('@DIR@', rig.dir), rig.conf);
    const normal = (d: string): string => path.normalize(d).replace(/(.)\/$/, '$1');
    const wanted = [expected.socketDir, ...expected.jails.map((j) => j.socketDir)].map(normal);
    const created = r.log.filter((l) => l.startsWith('install -d ')).map((l) => normal(l.split(' ').pop()!));
    assert.deepEqual(created, wanted, `config:\n${text}`);
    for (const d of wanted) assert.equal(mode(d), 0o755, d);
  }
});

test('start: a [jail] name that is not a jail name creates nothing outside the socket directory', async () => {
  const rig = makeRig({ config: 'socket_dir = @DIR@/run/vmm-compat\n[jail ../../escape]\n[jail -x]\n' });
  const r = await rig.rc('start');
  assert.match(r.stderr, /invalid name/);
  const created = r.log.filter((l) => l.startsWith('install -d ')).map((l) => l.split(' ').pop());
  assert.deepEqual(created, [path.join(rig.dir, 'run', 'vmm-compat')]);
  assert.equal(fs.existsSync(path.join(rig.dir, 'escape')), false);
});

test('start: an existing socket directory is left alone, with a warning when others may write to it', async () => {
  const rig = makeRig({ config: 'socket_dir = @DIR@/run/vmm-compat\n[jail web]\n' });
  const host = path.join(rig.dir, 'run', 'vmm-compat');
  fs.mkdirSync(path.join(host, 'web'), { recursive: true });
  fs.chmodSync(host, 0o755);
  fs.chmodSync(path.join(host, 'web'), 0o777);
  const r = await rig.rc('start');
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stderr, new RegExp(`${path.join(host, 'web')} is not owned by root or is writable by group or others`));
  assert.equal(r.log.filter((l) => l.startsWith('install ')).length, 0);
  assert.equal(mode(path.join(host, 'web')), 0o777, 'precmd must not chmod a directory it did not create');
});

test('start: a socket directory that is a symbolic link or a file is refused', async () => {
  for (const kind of ['symlink', 'file'] as const) {
    const rig = makeRig();
    const host = path.join(rig.dir, 'run', 'vmm-compat');
    fs.mkdirSync(path.dirname(host), { recursive: true });
    if (kind === 'symlink') {
      fs.mkdirSync(path.join(rig.dir, 'target'));
      fs.symlinkSync(path.join(rig.dir, 'target'), host);
    } else {
      fs.writeFileSync(host, '');
    }
    const r = await rig.rc('start');
    assert.notEqual(r.code, 0, `${kind}: start must fail`);
    assert.match(r.stderr, kind === 'symlink' ? /is a symbolic link/ : /is not a directory/);
    assert.equal(r.log.filter((l) => l.startsWith('RUN: /usr/sbin/daemon')).length, 0);
  }
});

test('start: a relative socket_dir is refused before anything runs', async () => {
  const rig = makeRig({ config: 'socket_dir = run/vmm-compat\n' });
  const r = await rig.rc('start');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /socket directory "run\/vmm-compat" is not an absolute path; fix socket_dir in /);
  assert.equal(r.log.filter((l) => l.startsWith('RUN:') || l.startsWith('install')).length, 0);
});

test('start: refuses without the configuration file (required_files), naming it', async () => {
  const rig = makeRig({ config: null });
  const r = await rig.rc('start');
  assert.notEqual(r.code, 0);
  assert.ok(r.stderr.includes(rig.conf), r.stderr);
  assert.equal(r.log.length, 0, 'nothing may run, not even precmd');
});

test('start: vmm_compatd_config="" runs without a file and without --config', async () => {
  const rig = makeRig({ config: null, knobs: { vmm_compatd_config: '' } });
  const r = await rig.rc('start');
  assert.equal(r.code, 0, r.stderr);
  const cmd = parseDaemonLine(startLine(r.log));
  assert.deepEqual(cmd.child, [process.execPath, rig.cli, 'daemon', '--exit-record', rig.exitRecord]);
});

test('start: refuses when node or the vmm-compat command is missing, naming the knob', async () => {
  const noNode = makeRig({ knobs: { vmm_compatd_node: '@DIR@/no/node' } });
  let r = await noNode.rc('start');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /Node\.js is not at .*no\/node: install www\/node or set vmm_compatd_node/);
  assert.equal(r.log.filter((l) => l.startsWith('RUN:')).length, 0);
  const noCli = makeRig({ knobs: { vmm_compatd_cli: '@DIR@/no/vmm-compat' } });
  r = await noCli.rc('start');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /set vmm_compatd_cli/);
});

test('start: warns when vmm.ko is not loaded (kldstat -q -m vmm), and not when it is', async () => {
  const unloaded = makeRig({ kldstatStatus: 1 });
  let r = await unloaded.rc('start');
  assert.equal(r.code, 0, r.stderr);
  assert.ok(r.log.includes('kldstat -q -m vmm'), r.log.join('\n'));
  assert.match(r.stderr, /vmm\.ko is not loaded/);
  const loaded = makeRig({ kldstatStatus: 0 });
  r = await loaded.rc('start');
  assert.doesNotMatch(r.stderr, /vmm\.ko/);
});

test('start: vmm_compatd_enable=NO refuses start; onestart still works', async () => {
  const rig = makeRig({ knobs: { vmm_compatd_enable: 'NO' } });
  let r = await rig.rc('start');
  assert.match(r.stdout, /Set vmm_compatd_enable to YES/);
  assert.equal(r.log.length, 0);
  r = await rig.rc('onestart');
  assert.equal(r.code, 0, r.stderr);
  startLine(r.log);
});

async function withProcesses(rig: Rig, body: (pair: SupervisorPair) => Promise<void>): Promise<void> {
  const pair = await new SupervisorPair('vmm_compatd').ready();
  try {
    fs.writeFileSync(rig.pidfile, `${pair.supervisor}\n`);
    fs.writeFileSync(rig.childPidfile, `${pair.child}\n`);
    await body(pair);
  } finally {
    pair.stop();
  }
}

test('stop: TERM goes to the supervisor pid (-P), which passes it on; the script does not signal the child itself', async () => {
  const rig = makeRig();
  await withProcesses(rig, async (pair) => {
    const r = await rig.rc('stop');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Stopping vmm_compatd\./);
    await pair.exited;
    assert.deepEqual(pair.received, ['supervisor SIGTERM', 'child SIGTERM'], 'one TERM each: the script\'s to the supervisor, the supervisor\'s to the child');
  });
});

test('reload: HUP goes to the child pid from the -p file, not to the supervisor', async () => {
  const rig = makeRig();
  await withProcesses(rig, async (pair) => {
    const r = await rig.rc('reload');
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /Reloading vmm_compatd configuration\./);
    assert.deepEqual(await pair.settle(), ['child SIGHUP']);
  });
});

test('reload: refuses clearly when the daemon is not running or the child pidfile names a process that is not daemon(8)\'s child', async () => {
  const rig = makeRig();
  let r = await rig.rc('reload');
  assert.notEqual(r.code, 0);
  assert.match(r.stderr, /vmm_compatd not running\? \(check .*vmm_compatd\.pid\)/);
  await withProcesses(rig, async (pair) => {
    fs.writeFileSync(rig.childPidfile, '999999999\n');
    r = await rig.rc('reload');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /no running daemon in .*child\.pid; try: service vmm_compatd restart/);
    // A live process, but not the supervisor's child: this test process.
    fs.writeFileSync(rig.childPidfile, `${process.pid}\n`);
    r = await rig.rc('reload');
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /no running daemon in/);
    assert.deepEqual(await pair.settle(), []);
  });
});

test('status: reads the supervisor pidfile; a supervisor whose daemon does not accept connections is not "running"', async () => {
  const rig = makeRig();
  let r = await rig.rc('status');
  assert.equal(r.code, 1);
  assert.match(r.stdout, /vmm_compatd is not running\./);
  await withProcesses(rig, async (pair) => {
    r = await rig.rc('status');
    assert.equal(r.code, 1);
    assert.match(r.stdout, new RegExp(`^vmm_compatd: supervisor up \\(pid ${pair.supervisor}\\), daemon starting \\(pid ${pair.child}, not yet accepting connections on .*control\\.sock`));
  });
});

test('rcvar and unknown commands', async () => {
  const rig = makeRig();
  let r = await rig.rc('rcvar');
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^vmm_compatd_enable="YES"$/m);
  r = await rig.rc('frobnicate');
  assert.notEqual(r.code, 0);
});
