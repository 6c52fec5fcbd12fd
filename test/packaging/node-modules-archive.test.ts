// `make node-modules-archive`, the port's second distfile: rebuilt for the same version it must
// be the same bytes, or the port's distinfo (its SHA256 and size) no longer matches. The recipe is
// run twice in a copy of the build files with a stand-in npm that lays out a node_modules tree the
// way an extraction does: new modification times on every run, entries created in a different
// order each time, the caller's umask, a symbolic link and a path longer than a tar name field.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, run, tempDir, which, writeExecutable } from '../service/helpers';

const VERSION = (JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { version: string }).version;
const LONG = `${'deep/'.repeat(24)}file-past-the-100-byte-name-field.js`;

// Creates the tree in an order that changes with the run ($1) and leaves .bin, which the recipe
// removes. Arguments are npm's; only the working directory matters.
const FAKE_NPM = `#!/bin/sh
set -e
run=$(cat "$FAKE_NPM_RUN")
echo $((run + 1)) > "$FAKE_NPM_RUN"
mk() { mkdir -p "node_modules/$(dirname "$1")"; printf '%s\\n' "$2" > "node_modules/$1"; }
if [ $((run % 2)) -eq 0 ]; then
	mk zeta/index.js zeta; mk alpha/package.json '{"name":"alpha"}'; mk @scope/pkg/lib/a.js a
else
	mk @scope/pkg/lib/a.js a; mk alpha/package.json '{"name":"alpha"}'; mk zeta/index.js zeta
fi
mk "alpha/${LONG}" long
mk alpha/bin/cli.js cli
chmod 0755 node_modules/alpha/bin/cli.js
ln -s ../alpha/bin/cli.js node_modules/zeta/cli-link.js
mkdir -p node_modules/.bin && ln -s ../alpha/bin/cli.js node_modules/.bin/alpha
`;

async function buildOnce(work: string, fakeNpm: string, umask: string): Promise<Buffer> {
  const make = which('make');
  assert.ok(make);
  const r = await run('sh', ['-c', `umask ${umask} && exec "$0" -C "$1" node-modules-archive NPM="$2"`, make, work, fakeNpm], {
    env: { ...process.env, FAKE_NPM_RUN: path.join(work, 'npm-runs') },
    timeoutMs: 60000,
  });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  return fs.readFileSync(path.join(work, 'build', `vmm-compat-node-modules-${VERSION}.tar.gz`));
}

test('make node-modules-archive twice gives the same bytes: sorted names, one mtime, owner 0:0 (numeric), normalised modes', async () => {
  const work = tempDir('nm-archive');
  for (const f of ['Makefile', 'package.json', 'package-lock.json']) fs.copyFileSync(path.join(REPO_ROOT, f), path.join(work, f));
  fs.mkdirSync(path.join(work, 'scripts'));
  for (const f of fs.readdirSync(path.join(REPO_ROOT, 'scripts'))) fs.copyFileSync(path.join(REPO_ROOT, 'scripts', f), path.join(work, 'scripts', f));
  fs.writeFileSync(path.join(work, 'npm-runs'), '0\n');
  const fakeNpm = path.join(work, 'fake-npm');
  writeExecutable(fakeNpm, FAKE_NPM);

  const first = await buildOnce(work, fakeNpm, '022');
  await new Promise((r) => setTimeout(r, 1100)); // a later second in every mtime
  const second = await buildOnce(work, fakeNpm, '002');
  const sha = (b: Buffer): string => crypto.createHash('sha256').update(b).digest('hex');
  assert.equal(sha(second), sha(first), 'the archive changed between two builds of the same version');

  const listing = await run('tar', ['-tvzf', path.join(work, 'build', `vmm-compat-node-modules-${VERSION}.tar.gz`), '--numeric-owner']);
  assert.equal(listing.code, 0, listing.stderr);
  const lines = listing.stdout.trim().split('\n');
  const names = lines.map((l) => l.split(/\s+/).slice(5).join(' ').replace(/ -> .*$/, ''));
  assert.deepEqual(names, [...names].sort((a, b) => Buffer.compare(Buffer.from(a), Buffer.from(b))), 'entries in byte order of their names');
  assert.ok(names.includes(`node_modules/alpha/${LONG}`), 'the long path kept whole');
  assert.ok(!names.some((n) => n.startsWith('node_modules/.bin')), '.bin is left out');
  for (const l of lines) {
    const [mode, owner] = l.split(/\s+/);
    assert.equal(owner, '0/0', l);
    assert.match(mode!, /^(drwxr-xr-x|-rw-r--r--|-rwxr-xr-x|lrwxrwxrwx)$/, l);
  }
  assert.equal(new Set(lines.map((l) => l.split(/\s+/).slice(3, 5).join(' '))).size, 1, 'one modification time');
  assert.ok(lines.some((l) => /^lrwxrwxrwx .* node_modules\/zeta\/cli-link\.js -> \.\.\/alpha\/bin\/cli\.js$/.test(l)), 'the symbolic link kept as a link');
  assert.ok(lines.some((l) => /^-rwxr-xr-x .* node_modules\/alpha\/bin\/cli\.js$/.test(l)), 'an executable stays executable');

  // What extracts is what was there.
  const out = tempDir('nm-extract');
  const x = await run('tar', ['-xzf', path.join(work, 'build', `vmm-compat-node-modules-${VERSION}.tar.gz`), '-C', out]);
  assert.equal(x.code, 0, x.stderr);
  assert.equal(fs.readFileSync(path.join(out, 'node_modules', 'alpha', LONG), 'utf8'), 'long\n');
  assert.equal(fs.readlinkSync(path.join(out, 'node_modules', 'zeta', 'cli-link.js')), '../alpha/bin/cli.js');
});
