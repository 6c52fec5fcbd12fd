// The npm package: `npm pack` carries sources, dist/ and docs but no build output, and the tarball
// installed into an empty directory builds its C parts and runs `vmm-compat --help` and
// `vmm-compat lab --demo` from there.
//
// `npm pack --ignore-scripts`: npm test has just built dist/ and the generated headers, which is
// what pack's `prepare` would do again, rewriting files the other test files are running. The
// install uses npm's --prefer-offline: the packages come from the cache `npm ci` filled; only
// registry metadata that npm ci never needed (the tarball's dependencies are semver ranges) may be
// fetched, once.
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, run, tempDir, which, type RunResult } from '../service/helpers';

let packed: string[] = [];
let tarball = '';
let app = '';
let install: RunResult;

function describeRun(what: string, r: RunResult): string {
  return `${what} exited ${r.code ?? r.signal}\n${r.stdout.slice(-3000)}${r.stderr.slice(-3000)}`;
}

before(async () => {
  const out = tempDir('npm-pack');
  const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', out], { cwd: REPO_ROOT, timeoutMs: 60000 });
  assert.equal(pack.code, 0, describeRun('npm pack', pack));
  const result = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
  packed = result[0]!.files.map((f) => f.path).sort();
  tarball = path.join(out, result[0]!.filename);

  // An empty project that allows exactly the two install scripts it will meet (npm 11 lists any
  // other): vmm-compat's (the C parts) and koffi's (checks its prebuilt binary loads).
  app = path.join(out, 'app');
  fs.mkdirSync(app);
  fs.writeFileSync(path.join(app, 'package.json'), JSON.stringify({ name: 'try-vmm-compat', private: true, allowScripts: { [`file:${tarball}`]: true, koffi: true } }, null, 2) + '\n');
  // --foreground-scripts: npm shows an install script's output only when it fails, unless asked.
  install = await run('npm', ['install', '--prefer-offline', '--no-audit', '--no-fund', '--foreground-scripts', tarball], { cwd: app, timeoutMs: 300000 });
});

test('npm pack carries sources, dist/src and docs, and no build output', () => {
  const offending = packed.filter((p) => p.startsWith('native-bindings/build') || /\.(o|so|a|node)$/.test(p) || p.startsWith('dist/test/') || p.startsWith('dist/bench/') || p.startsWith('build/') || p.startsWith('node_modules/'));
  assert.deepEqual(offending, []);
  for (const wanted of [
    'package.json', 'Makefile', 'bin/vmm-compat', 'bin/bhyve-wrapper', 'rc.d/vmm_compatd', 'docs/install.md', 'docs/man/vmm-compat.8',
    'docs/vmm-compat.conf.sample', 'docs/newsyslog.conf.sample', 'dist/src/cli/main.js', 'src/cli/main.ts',
    'native-bindings/Makefile', 'native-bindings/shim/shim.mk', 'native-bindings/shim/interpose.c',
    // Generated from dist/ at build time; shipped so that building the C parts needs no node.
    'native-bindings/include/vmm_abi_gen.h', 'native-bindings/include/vmm_compat_proto_gen.h',
    'scripts/install-native.js',
    // The licence notice BSD-2-Clause requires (the port's LICENSE_FILE is ${WRKSRC}/LICENSE).
    'LICENSE',
    // The standard guests' boot ROMs (npm run build: vmm-compat guests --write dist/guests).
    'dist/guests/smp-boot.rom', 'dist/guests/smp-boot-halt.rom',
  ]) {
    assert.ok(packed.includes(wanted), `${wanted} is not in the package`);
  }
  // Every C source and header of the source tree is in it (new ones too).
  const cSources = (dir: string): string[] => fs.readdirSync(path.join(REPO_ROOT, dir), { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? (e.name === 'build' ? [] : cSources(path.join(dir, e.name))) : /\.[ch]$/.test(e.name) ? [path.join(dir, e.name)] : []);
  assert.deepEqual(cSources('native-bindings').filter((f) => !packed.includes(f)), []);
});

test('the tarball installs into an empty directory, building the C parts, with no install-script warning', () => {
  assert.equal(install.code, 0, describeRun('npm install <tarball>', install));
  const output = install.stdout + install.stderr;
  assert.doesNotMatch(output, /install-scripts|not yet covered/, 'npm warned about install scripts');
  assert.match(output, /vmm-compat: built the interposer and the lab/);
  const built = path.join(app, 'node_modules', 'vmm-compat', 'native-bindings', 'build');
  for (const name of ['libvmmcompat.so', 'libvmmlab_bridge.so', 'bhyve13', 'bhyveload13']) assert.ok(fs.existsSync(path.join(built, name)), name);
  // The development dependencies stay out.
  assert.ok(!fs.existsSync(path.join(app, 'node_modules', 'typescript')));
});

test('vmm-compat --help and vmm-compat lab --demo run from the installed package', async () => {
  const cli = path.join(app, 'node_modules', '.bin', 'vmm-compat');
  const help = await run(cli, ['--help'], { cwd: app });
  assert.equal(help.code, 0, describeRun('vmm-compat --help', help));
  for (const command of ['daemon', 'wrap', 'doctor', 'lab']) assert.match(help.stdout, new RegExp(`^\\s+${command}\\b`, 'm'));
  const demo = await run(cli, ['lab', '--demo'], { cwd: app, timeoutMs: 180000 });
  assert.equal(demo.code, 0, describeRun('vmm-compat lab --demo', demo));
  assert.match(demo.stdout, /with it every AP starts/);
});

test('without a C compiler the install step says what is missing and how to finish, and does not fail; so does the lab', async () => {
  const script = path.join(app, 'node_modules', 'vmm-compat', 'scripts', 'install-native.js');
  const r = await run(process.execPath, [script], { env: { ...process.env, CC: 'no-such-cc' } });
  assert.equal(r.code, 0, describeRun('install-native.js', r));
  assert.match(r.stderr, /a C compiler \(no-such-cc\) not found/);
  assert.match(r.stderr, /npm rebuild vmm-compat/);
  // npm shows that only with --foreground-scripts; the command that needs the parts says it too.
  const cli = path.join(app, 'node_modules', '.bin', 'vmm-compat');
  const lab = await run(cli, ['lab', '--json'], { cwd: app, env: { ...process.env, VMM_COMPAT_NATIVE_DIR: tempDir('no-parts') } });
  assert.notEqual(lab.code, 0);
  assert.match(lab.stderr, /is missing: build the C parts .*npm rebuild vmm-compat/);
});

test('a newcomer\'s npm install meets no unreviewed install script: allowScripts covers every dependency that has one', async () => {
  const r = await run('npm', ['install-scripts', 'ls'], { cwd: REPO_ROOT });
  assert.equal(r.code, 0, describeRun('npm install-scripts ls', r));
  assert.match(r.stdout, /No packages with unreviewed install scripts/);
});

test('the tarball builds and installs as the port does: FreeBSD\'s make, with neither node nor npm', async () => {
  const bmake = which('bmake');
  assert.ok(bmake, 'bmake (FreeBSD\'s make) is not installed: apt-get install bmake (.ci/run installs it)');
  const work = tempDir('port-work');
  const untar = await run('tar', ['-xzf', tarball, '-C', work]);
  assert.equal(untar.code, 0, describeRun('tar', untar));
  const wrksrc = path.join(work, 'package');
  // NODE and NPM that fail: the build must need only cc (the generated headers ship with the
  // tarball), the install only the node_modules it is given (the port's second distfile; here
  // the empty project's production tree).
  const noNode = ['NODE=/bin/false', 'NPM=/bin/false'];
  const build = await run(bmake, ['-C', wrksrc, ...noNode, 'all'], { timeoutMs: 120000 });
  assert.equal(build.code, 0, describeRun('bmake all', build));
  const stage = path.join(work, 'stage');
  const install = await run(bmake, ['-C', wrksrc, ...noNode, 'install', `DESTDIR=${stage}`, 'INSTALL_RC_SCRIPT=no', `NODE_MODULES=${path.join(app, 'node_modules')}`], { timeoutMs: 120000 });
  assert.equal(install.code, 0, describeRun('bmake install', install));
  for (const rel of ['lib/vmm-compat/libvmmcompat.so', 'libexec/vmm-compat/dist/src/cli/main.js', 'libexec/vmm-compat/node_modules/koffi/package.json', 'share/man/man8/vmm-compat.8.gz', 'share/vmm-compat/guests/smp-boot.rom']) {
    assert.ok(fs.existsSync(path.join(stage, 'usr', 'local', rel)), rel);
  }
});
