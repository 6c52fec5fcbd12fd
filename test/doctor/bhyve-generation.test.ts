// `vmm-compat doctor --bhyve PATH`: the release a bhyve was built for (its ELF ABI tag) and
// whether it needs vmm-compat on this kernel, and why (the interposer's own rule).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { checkBhyveGeneration } from '../../src/doctor/checks';
import { bhyveOnKernel, releaseName, parseHelloTag } from '../../src/daemon/bhyve-generation';
import { requireArtifact } from '../../src/native-paths';

const bhyve143 = () => requireArtifact('shim-tests/abi_tag_open_1403000');
const bhyve131 = () => requireArtifact('shim-tests/abi_tag_open_1301000');

test('a 14.3 bhyve on each kernel: refused where it is newer, translated on 15.0, untouched on 14.x', () => {
  assert.equal(checkBhyveGeneration(bhyve143(), 'main15').status, 'pass');
  assert.match(checkBhyveGeneration(bhyve143(), 'main15').detail, /bhyve 14\.3 \(14\.x, __FreeBSD_version 1403000\) on main15: needs vmm-compat .*segment id 1.*EINVAL/);
  assert.match(checkBhyveGeneration(bhyve143(), 'fixed14').detail, /does not need vmm-compat; bhyve 14\.3 is as new as the fixed14 kernel/);
  for (const kernel of ['legacy13', 'fixed13', 'window'] as const) {
    const r = checkBhyveGeneration(bhyve143(), kernel);
    assert.equal(r.status, 'fail', kernel);
    assert.match(r.detail, /newer than the \w+ kernel/);
    assert.ok(r.fix);
  }
  assert.equal(checkBhyveGeneration(bhyve143(), null).status, 'warn');
});

test('a 13.1 bhyve: needs vmm-compat on window, 14.x and 15.0, not on 13.x kernels', () => {
  assert.match(checkBhyveGeneration(bhyve131(), 'window').detail, /needs vmm-compat.*eager activation/);
  assert.match(checkBhyveGeneration(bhyve131(), 'fixed14').detail, /needs vmm-compat.*ERANGE/);
  assert.match(checkBhyveGeneration(bhyve131(), 'main15').detail, /needs vmm-compat.*bootrom/);
  assert.match(checkBhyveGeneration(bhyve131(), 'legacy13').detail, /does not need vmm-compat/);
  assert.match(checkBhyveGeneration(bhyve131(), 'fixed13').detail, /does not need vmm-compat/);
});

test('a binary without the tag, a missing one, and a file that is not ELF', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'doctor-bhyve-'));
  try {
    const text = path.join(dir, 'bhyve');
    fs.writeFileSync(text, '#!/bin/sh\n');
    assert.equal(checkBhyveGeneration(text, 'main15').status, 'fail');
    assert.equal(checkBhyveGeneration(path.join(dir, 'none'), 'main15').status, 'fail');
    assert.equal(checkBhyveGeneration('/bin/sh', 'main15').status, 'warn', 'a Linux binary has no FreeBSD tag');
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('doctor --bhyve is repeatable on the command line and judges each binary', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'doctor-cli-'));
  try {
    const conf = path.join(dir, 'vmm-compat.conf');
    fs.writeFileSync(conf, 'kernel_variant = main15\n');
    let out = '';
    try {
      out = execFileSync(process.execPath, ['bin/vmm-compat', 'doctor', '-c', conf, '--json', '--bhyve', bhyve143(), '--bhyve', bhyve131()], { encoding: 'utf8' });
    } catch (err) {
      out = String((err as { stdout?: string }).stdout ?? '');
    }
    const results = JSON.parse(out) as { check: string; status: string; detail: string }[];
    const judged = results.filter((r) => r.check.startsWith('bhyve /'));
    assert.equal(judged.length, 2, out);
    assert.match(judged[0]!.detail, /14\.3.*needs vmm-compat/);
    assert.match(judged[1]!.detail, /13\.1.*needs vmm-compat/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('release names and the HELLO tag of old and new interposers', () => {
  assert.equal(releaseName(1403000), '14.3');
  assert.equal(releaseName(1400097), '14.0');
  assert.equal(releaseName(1400076), '14-CURRENT (1400076)');
  assert.equal(releaseName(1500068), '15.0 (1500068)');
  assert.deepEqual(parseHelloTag('1403000'), { version: 1403000, fromOldInterposer: false });
  assert.deepEqual(parseHelloTag('13.1'), { version: null, fromOldInterposer: true });
  assert.deepEqual(parseHelloTag('unknown'), { version: null, fromOldInterposer: false });
  assert.equal(bhyveOnKernel(1400076, 'window').handling, 'native');
  assert.equal(bhyveOnKernel(1400097, 'window').handling, 'refused');
  assert.equal(bhyveOnKernel(1500068, 'main15').handling, 'native');
  assert.equal(bhyveOnKernel(1600000, 'fixed14').handling, 'refused');
});

test('the lab\'s bhyve models carry their releases\' ABI tags, which doctor reads from the file (untagged builds have none)', () => {
  for (const [artifact, release, version] of [
    ['bhyve13', '13.1', 1301000],
    ['bhyve135', '13.5', 1305000],
    ['bhyve14', '14.0', 1400097],
    ['bhyve143', '14.3', 1403000],
    ['bhyve14cur', '14-CURRENT (1400076)', 1400076],
  ] as const) {
    const r = checkBhyveGeneration(requireArtifact(artifact), 'main15');
    assert.match(r.detail, new RegExp(`^bhyve ${release.replace(/[.()]/g, '\\$&')} \\(.*__FreeBSD_version ${version}\\)`), artifact);
  }
  for (const artifact of ['untagged/bhyve13', 'untagged/bhyve143', 'untagged/bhyve14cur']) {
    assert.match(checkBhyveGeneration(requireArtifact(artifact), 'main15').detail, /no FreeBSD ABI tag|without .*tag|has no/i, artifact);
  }
});
