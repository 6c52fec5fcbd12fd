// Static checks of the shell scripts that run on FreeBSD: shellcheck as POSIX sh and a dash
// syntax check (FreeBSD's /bin/sh and dash are both ash descendants). SC1091 (/etc/rc.subr is
// not there to follow) and SC2034 (every rc.subr variable looks unused) are the two checks an
// rc.d script cannot satisfy; nothing else is excluded.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import path from 'node:path';
import { FIXTURES, REPO_ROOT, run, which } from './helpers';

const SCRIPTS = [path.join(REPO_ROOT, 'rc.d', 'vmm_compatd'), path.join(REPO_ROOT, 'bin', 'bhyve-wrapper')];

test('shellcheck -s sh -e SC1091,SC2034 passes on rc.d/vmm_compatd and bin/bhyve-wrapper', async () => {
  const shellcheck = which('shellcheck');
  assert.ok(shellcheck, 'shellcheck is not installed: apt-get install shellcheck (.ci/run installs it)');
  const r = await run(shellcheck, ['-s', 'sh', '-e', 'SC1091,SC2034', ...SCRIPTS]);
  assert.equal(r.code, 0, `shellcheck:\n${r.stdout}${r.stderr}`);
  assert.equal(r.stdout + r.stderr, '');
});

test('dash -n accepts the scripts and the test rc.subr stub', async () => {
  const dash = which('dash');
  assert.ok(dash, 'dash is not installed: apt-get install dash');
  for (const file of [...SCRIPTS, path.join(FIXTURES, 'rc.subr.stub')]) {
    const r = await run(dash, ['-n', file]);
    assert.equal(r.code, 0, `dash -n ${file}:\n${r.stderr}`);
    assert.equal(r.stderr, '');
  }
});

test('shellcheck itself fails on a broken script (the check can fail)', async () => {
  const shellcheck = which('shellcheck');
  assert.ok(shellcheck, 'shellcheck is not installed: apt-get install shellcheck (.ci/run installs it)');
  const r = await run(shellcheck, ['-s', 'sh', '-e', 'SC1091,SC2034', '-'], { input: '#!/bin/sh\nfor f in $(ls *.conf); do echo $f; done\n[[ -n "$x" ]]\n' });
  assert.notEqual(r.code, 0);
});

test('shellcheck passes on the CI entry point .ci/run (bash)', async () => {
  const shellcheck = which('shellcheck');
  assert.ok(shellcheck, 'shellcheck is not installed: apt-get install shellcheck (.ci/run installs it)');
  const r = await run(shellcheck, ['-s', 'bash', path.join(REPO_ROOT, '.ci', 'run')]);
  assert.equal(r.code, 0, `shellcheck .ci/run:\n${r.stdout}${r.stderr}`);
});

test('no file git tracks holds a merge-conflict marker', async () => {
  // A marker in .ci/run once stopped CI before any test ran: git grep sees every tracked file.
  const r = await run('git', ['-C', REPO_ROOT, 'grep', '-n', '-I', '-E', '^(<{7}|>{7})( |$)']);
  assert.equal(r.code, 1, `conflict markers left in:\n${r.stdout}`); // git grep: 1 = no match
});
