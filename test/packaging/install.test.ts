// `make install` into a temporary DESTDIR, as the FreeBSD port's stage runs it, checked against
// the port skeleton (packaging/freebsd): the staged files and their modes against pkg-plist, then
// the staged command itself: --version, doctor --json (which must fail here, off FreeBSD, and
// name a fix for each failure) and a lab boot through the staged command, daemon and interposer.
//
// The top-level Makefile is read by FreeBSD's make (bmake here: what the port's build runs) and
// by GNU make; each installs once. The production node_modules come from `make node-modules`
// with NPM_FLAGS=--offline: the `npm ci` that precedes `npm test` (README, .ci/run) has put every
// production package into npm's cache, so this needs no network.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, run, tempDir, which, type RunResult } from '../service/helpers';
import { parsePlist, portTreeDirs, postInstallListing, walkStage } from './plist';
import { standardGuestNames, standardGuestRom } from '../../src/lab/guests';
import { ARTIFACTS, requireArtifact } from '../../src/native-paths';

const PORT_DIR = path.join(REPO_ROOT, 'packaging', 'freebsd');
const PORT_MAKEFILE = fs.readFileSync(path.join(PORT_DIR, 'Makefile'), 'utf8');
const PLIST = parsePlist(fs.readFileSync(path.join(PORT_DIR, 'pkg-plist'), 'utf8'));
const TREE_DIRS = portTreeDirs(PORT_MAKEFILE);
/** Where node is, so that the staged scripts' #!LOCALBASE/bin/node runs here. */
const LOCALBASE = path.dirname(path.dirname(process.execPath));
const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;

/** The port's stage: FreeBSD's make, the port's MAKE_ARGS, PREFIX /usr/local. */
let portStage = '';
/** A user's `gmake install` with another PREFIX (and the rc.d script). */
let userStage = '';
const USER_PREFIX = '/opt/vmm-compat';

function makeArgs(destdir: string, prefix: string, extra: string[]): string[] {
  return ['install', `DESTDIR=${destdir}`, `PREFIX=${prefix}`, `LOCALBASE=${LOCALBASE}`, 'NPM_FLAGS=--offline', ...extra];
}

function describeRun(what: string, r: RunResult): string {
  return `${what} exited ${r.code ?? r.signal}\n${r.stdout.slice(-3000)}${r.stderr.slice(-3000)}`;
}

before(async () => {
  const bmake = which('bmake');
  assert.ok(bmake, 'bmake (FreeBSD\'s make) is not installed: apt-get install bmake (.ci/run installs it)');
  // The port's MAKE_ARGS leave etc/rc.d to USE_RC_SUBR; the stage below uses the same setting.
  assert.match(PORT_MAKEFILE, /^MAKE_ARGS=\s+INSTALL_RC_SCRIPT=no\b/m);
  portStage = tempDir('stage-port');
  const port = await run(bmake, ['-C', REPO_ROOT, ...makeArgs(portStage, '/usr/local', ['INSTALL_RC_SCRIPT=no'])], { timeoutMs: 120000 });
  assert.equal(port.code, 0, describeRun('bmake install', port));
  userStage = tempDir('stage-user');
  const user = await run('make', ['-C', REPO_ROOT, ...makeArgs(userStage, USER_PREFIX, [])], { timeoutMs: 120000 });
  assert.equal(user.code, 0, describeRun('make install', user));
});

const underTree = (p: string): boolean => TREE_DIRS.some((dir) => p.startsWith(`${dir}/`));

test('pkg-plist lists exactly what `make install DESTDIR=` stages, with the modes', () => {
  const staged = walkStage(path.join(portStage, 'usr', 'local'));
  const byPath = new Map(staged.map((e) => [e.path, e]));
  // Nothing outside PREFIX.
  assert.deepEqual(fs.readdirSync(portStage), ['usr']);
  assert.deepEqual(fs.readdirSync(path.join(portStage, 'usr')), ['local']);

  const listed = PLIST.filter((e) => e.kind !== 'dir').map((e) => e.path).sort();
  const stagedFiles = staged.filter((e) => e.kind !== 'dir' && !underTree(e.path)).map((e) => e.path).sort();
  assert.deepEqual(stagedFiles, listed, 'staged files (outside the trees post-install lists) against pkg-plist');
  for (const entry of PLIST.filter((e) => e.kind !== 'dir')) {
    assert.ok(!underTree(entry.path), `${entry.path} is listed twice: in pkg-plist and by post-install`);
  }

  // Modes: an @(,,MODE) entry must be staged with that mode; other files are data (0644,
  // ports' INSTALL_DATA); directories 0755.
  for (const entry of PLIST) {
    const got = byPath.get(entry.path);
    assert.ok(got, `${entry.path} (pkg-plist) is not staged`);
    if (entry.kind === 'dir') {
      assert.equal(got.kind, 'dir');
      assert.equal(fs.readdirSync(path.join(portStage, 'usr', 'local', entry.path)).length, 0, `@dir ${entry.path} must be empty`);
    } else if (got.kind === 'file') {
      const want = entry.mode ?? 0o644;
      assert.equal(got.mode.toString(8), want.toString(8), `mode of ${entry.path}`);
    }
  }
  const link = byPath.get('bin/vmm-compat');
  assert.deepEqual(link && { kind: link.kind, target: link.target }, { kind: 'symlink', target: '../libexec/vmm-compat/bin/vmm-compat' });

  // The trees post-install lists: data files in 0755 directories, and no empty directory
  // that no plist line would create.
  for (const dir of TREE_DIRS) {
    const files = staged.filter((e) => e.path.startsWith(`${dir}/`) && e.kind !== 'dir');
    assert.ok(files.length > 0, `${dir} is empty`);
    const odd = files.filter((e) => e.kind === 'dir' || (e.kind === 'file' && e.mode !== 0o644));
    assert.deepEqual(odd.map((e) => `${e.path} ${e.kind} ${e.mode.toString(8)}`), [], `${dir}: every entry a 0644 file (or a link)`);
  }
  const dirs = staged.filter((e) => e.kind === 'dir');
  assert.deepEqual(dirs.filter((e) => e.mode !== 0o755).map((e) => e.path), [], 'directories are 0755');
  const emptyDirs = dirs.filter((e) => fs.readdirSync(path.join(portStage, 'usr', 'local', e.path)).length === 0).map((e) => e.path);
  assert.deepEqual(emptyDirs, PLIST.filter((e) => e.kind === 'dir').map((e) => e.path), 'empty directories are exactly the @dir lines');

  // What the layout of docs/install.md promises inside the trees.
  assert.ok(byPath.has('libexec/vmm-compat/dist/src/cli/main.js'));
  for (const dep of ['commander', 'koffi', 'pino']) assert.ok(byPath.has(`libexec/vmm-compat/node_modules/${dep}/package.json`), dep);
  assert.ok(!byPath.has('libexec/vmm-compat/node_modules/typescript'), 'development dependencies are not installed');
  assert.ok(!staged.some((e) => e.path.startsWith('libexec/vmm-compat/dist/test/') || e.path.startsWith('libexec/vmm-compat/dist/bench/')));
  // The standard guests' boot ROMs, as vmm-compat guests --write makes them (4 vCPUs).
  for (const name of standardGuestNames()) {
    const rom = path.join(portStage, 'usr', 'local', 'share', 'vmm-compat', 'guests', `${name}.rom`);
    assert.deepEqual(fs.readFileSync(rom), Buffer.from(standardGuestRom(name)), name);
  }
  // USE_RC_SUBR installs the rc.d script, and pkg's @sample the configurations.
  assert.ok(!byPath.has('etc/rc.d/vmm_compatd') && !byPath.has('etc/vmm-compat.conf'));
});

test('staged text names no staging directory, and the interposer is an ELF shared object for this host', () => {
  for (const rel of ['libexec/vmm-compat/bin/vmm-compat', 'libexec/vmm-compat/bin/bhyve', 'libexec/vmm-compat/dist/src/native-paths.js', 'etc/vmm-compat.conf.sample']) {
    assert.ok(!fs.readFileSync(path.join(portStage, 'usr', 'local', rel), 'utf8').includes(portStage), rel);
  }
  const lib = fs.readFileSync(path.join(portStage, 'usr', 'local', 'lib', 'vmm-compat', 'libvmmcompat.so'));
  assert.equal(lib.subarray(0, 4).toString('latin1'), '\x7fELF');
  assert.equal(lib.readUInt16LE(16), 3, 'ET_DYN');
});

test('a PREFIX other than /usr/local reaches every installed path; GNU make installs the same list plus the rc.d script', () => {
  const prefixRoot = path.join(userStage, ...USER_PREFIX.split('/').filter(Boolean));
  const user = walkStage(prefixRoot).map((e) => `${e.kind} ${e.path}`);
  const port = walkStage(path.join(portStage, 'usr', 'local')).map((e) => `${e.kind} ${e.path}`);
  const extra = ['dir etc/rc.d', 'file etc/rc.d/vmm_compatd'];
  assert.deepEqual(user, [...port, ...extra].sort((a, b) => a.split(' ')[1]!.localeCompare(b.split(' ')[1]!)));

  const rc = path.join(prefixRoot, 'etc', 'rc.d', 'vmm_compatd');
  assert.equal((fs.statSync(rc).mode & 0o7777).toString(8), '555');
  // The port's rc.d script is the same file with the port's substitutions (make
  // packaging/freebsd/files/vmm_compatd.in regenerates it from rc.d/vmm_compatd).
  const portRc = fs.readFileSync(path.join(PORT_DIR, 'files', 'vmm_compatd.in'), 'utf8');
  const substituted = portRc.replaceAll('%%PREFIX%%', USER_PREFIX).replaceAll('%%LOCALBASE%%', LOCALBASE);
  assert.equal(fs.readFileSync(rc, 'utf8'), substituted, 'packaging/freebsd/files/vmm_compatd.in is out of date: make packaging/freebsd/files/vmm_compatd.in');

  for (const rel of ['etc/rc.d/vmm_compatd', 'libexec/vmm-compat/bin/bhyve', 'libexec/vmm-compat/dist/src/native-paths.js', 'libexec/vmm-compat/dist/src/config/config.js']) {
    const text = fs.readFileSync(path.join(prefixRoot, rel), 'utf8');
    assert.ok(!text.includes('/usr/local/'), `${rel} still names /usr/local/`);
    assert.ok(text.includes(`${USER_PREFIX}/`), `${rel} does not name ${USER_PREFIX}`);
  }
  assert.match(fs.readFileSync(path.join(prefixRoot, 'etc/rc.d/vmm_compatd'), 'utf8'), new RegExp(`vmm_compatd_node:=${LOCALBASE}/bin/node\\}`));
  assert.equal(fs.readFileSync(path.join(prefixRoot, 'libexec/vmm-compat/bin/vmm-compat'), 'utf8').split('\n')[0], `#!${LOCALBASE}/bin/node`);
});

function stagedCli(): string {
  return path.join(portStage, 'usr', 'local', 'bin', 'vmm-compat');
}

test('the staged vmm-compat (through its bin/ link) prints its version', async () => {
  const r = await run(stagedCli(), ['--version']);
  assert.equal(r.code, 0, describeRun('vmm-compat --version', r));
  assert.equal(r.stdout.trim(), VERSION);
});

test('the staged doctor --json fails off FreeBSD, each failure with its fix, and reads the staged sample', async () => {
  const sample = path.join(portStage, 'usr', 'local', 'etc', 'vmm-compat.conf.sample');
  const r = await run(stagedCli(), ['doctor', '--json', '--config', sample]);
  assert.equal(r.code, 1, describeRun('vmm-compat doctor --json', r));
  const results = JSON.parse(r.stdout) as { check: string; status: string; fix?: string }[];
  assert.equal(results.find((c) => c.check === 'configuration')?.status, 'pass', 'the staged sample configuration is valid');
  const failed = results.filter((c) => c.status === 'fail');
  assert.ok(failed.some((c) => c.check === 'vmm loaded'), 'no /dev/vmm here: the vmm check must fail');
  for (const c of failed) assert.ok(c.fix && c.fix.length > 0, `${c.check}: a failure without a fix`);
});

test('a lab boot through the staged command, daemon and interposer starts every AP on a window kernel, and none without it', async () => {
  // The lab's own parts (kernel bridge, libvmmapi, bhyve models) are not installed: take them from
  // the source tree's build, in a directory without its libvmmcompat.so, so that only the staged
  // interposer can be the one preloaded.
  const labDir = tempDir('lab-parts');
  for (const name of [ARTIFACTS.bridge, 'libvmmapi_lab.so', ARTIFACTS.bhyve13, ARTIFACTS.bhyve14, ARTIFACTS.bhyveload13]) {
    fs.copyFileSync(requireArtifact(name), path.join(labDir, name));
    fs.chmodSync(path.join(labDir, name), 0o755);
  }
  const env = { ...process.env, VMM_COMPAT_NATIVE_DIR: labDir };
  const interposer = path.join(portStage, 'usr', 'local', 'lib', 'vmm-compat', 'libvmmcompat.so');
  const lab = ['lab', '--kernel', 'window', '--vcpus', '4', '--json'];
  const withShim = await run(stagedCli(), [...lab, '--shim', '--interposer', interposer], { env, timeoutMs: 60000 });
  assert.equal(withShim.code, 0, describeRun('staged lab --shim', withShim));
  const fixed = JSON.parse(withShim.stdout) as { apsStarted: number[]; outcome: string };
  assert.deepEqual([fixed.apsStarted, fixed.outcome], [[1, 2, 3], 'poweroff']);

  const without = await run(stagedCli(), lab, { env, timeoutMs: 60000 });
  const bug = JSON.parse(without.stdout) as { apsStarted: number[] };
  assert.deepEqual(bug.apsStarted, [], describeRun('staged lab without the shim', without));
});

test('the port\'s post-install lists symbolic links in the trees too (a node_modules may carry them)', async () => {
  const bmake = which('bmake');
  assert.ok(bmake);
  // The production tree the stage above was made from, plus a link.
  const modules = path.join(tempDir('nm-link'), 'node_modules');
  await run('cp', ['-R', path.join(REPO_ROOT, 'build', 'production', 'node_modules'), modules]);
  fs.symlinkSync('package.json', path.join(modules, 'commander', 'package-link.json'));
  const stage = tempDir('stage-link');
  const r = await run(bmake, ['-C', REPO_ROOT, ...makeArgs(stage, '/usr/local', ['INSTALL_RC_SCRIPT=no', `NODE_MODULES=${modules}`])], { timeoutMs: 120000 });
  assert.equal(r.code, 0, describeRun('bmake install', r));
  // The port's own post-install line, run with the values the ports framework gives it.
  const plist = path.join(stage, 'tmpplist');
  const line = postInstallListing(PORT_MAKEFILE)
    .replaceAll('${STAGEDIR}${PREFIX}', path.join(stage, 'usr', 'local'))
    .replaceAll('${FIND}', 'find')
    .replaceAll('${SORT}', 'sort')
    .replaceAll('${TMPPLIST}', plist);
  const listed = await run('sh', ['-c', line]);
  assert.equal(listed.code, 0, listed.stderr);
  const entries = fs.readFileSync(plist, 'utf8').trim().split('\n');
  const staged = walkStage(path.join(stage, 'usr', 'local')).filter((e) => e.kind !== 'dir' && TREE_DIRS.some((d) => e.path.startsWith(`${d}/`)));
  assert.ok(staged.some((e) => e.kind === 'symlink'), 'the link was staged');
  assert.deepEqual(entries.sort(), staged.map((e) => e.path).sort(), 'every staged file and link is in the generated plist');
});

test('the installed newsyslog entry is the one docs/configuration.md shows', () => {
  const entry = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'newsyslog.conf.sample'), 'utf8').split('\n').filter((l) => l.trim() !== '' && !l.startsWith('#'));
  assert.equal(entry.length, 1);
  const doc = fs.readFileSync(path.join(REPO_ROOT, 'docs', 'configuration.md'), 'utf8');
  assert.ok(doc.split('\n').some((l) => l.trim() === entry[0]!.trim()), `configuration.md does not show: ${entry[0]}`);
});
