// The operator documentation against the code it describes: the sample configuration parses
// and its commented values are the defaults of src/config/config.ts, every key and every rc.conf
// knob is documented, and the pages keep the sections other documents point to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT } from './helpers';
import { defaultConfig, parseConfig } from '../../src/config/config';

const DOCS = path.join(REPO_ROOT, 'docs');
const read = (name: string): string => fs.readFileSync(path.join(DOCS, name), 'utf8');

function configKeys(): string[] {
  const source = fs.readFileSync(path.join(REPO_ROOT, 'src', 'config', 'config.ts'), 'utf8');
  const keys = [...source.matchAll(/^ {2}([a-z0-9_]+): \(c, v, w\) =>/gm)].map((m) => m[1]!);
  assert.ok(keys.length >= 12, `found only ${keys.length} keys in config.ts`);
  return keys;
}

test('the sample configuration parses, and uncommenting its values gives the defaults', () => {
  const sample = read('vmm-compat.conf.sample');
  const asShipped = parseConfig(sample, 'vmm-compat.conf.sample');
  assert.deepEqual(asShipped, defaultConfig(), 'the sample as shipped must change nothing');

  // Uncomment every "#key = value" line before the first jail section.
  const globalPart = sample.slice(0, sample.indexOf('#[jail'));
  const uncommented = globalPart.replace(/^#([a-z0-9_]+ =.*)$/gm, '$1');
  const set = [...uncommented.matchAll(/^([a-z0-9_]+) =/gm)].map((m) => m[1]!);
  assert.deepEqual([...set].sort(), [...configKeys()].sort(), 'the sample must show every key once');
  const parsed = parseConfig(uncommented, 'vmm-compat.conf.sample');
  // The sample shows the FreeBSD library; the built-in default follows the platform.
  assert.equal(parsed.syscallLibrary, 'libc.so.7');
  assert.deepEqual({ ...parsed, syscallLibrary: '' }, { ...defaultConfig(), syscallLibrary: '' });

  // The example jail sections parse too.
  const withJails = sample.replace(/^#(\[jail .*\]|socket_dir = .*|max_sessions(_before_hello)? = .*)$/gm, '$1');
  const jails = parseConfig(withJails, 'vmm-compat.conf.sample').jails;
  assert.deepEqual(jails, [
    { name: 'web', socketDir: '/var/run/vmm-compat/web', maxSessions: null, maxSessionsBeforeHello: null },
    { name: 'db', socketDir: '/var/run/vmm-compat-jails/db', maxSessions: 16, maxSessionsBeforeHello: 4 },
  ]);
});

test('configuration.md has a row for every key, with its default', () => {
  const doc = read('configuration.md');
  const defaults = defaultConfig();
  const expected: Record<string, string> = {
    kernel_variant: defaults.kernelVariant,
    compat_freebsd13: 'yes',
    failure_policy: defaults.failurePolicy,
    socket_dir: defaults.socketDir,
    device_dir: defaults.deviceDir,
    parker_boot_poll_us: String(defaults.parkerBootPollUs),
    parker_boot_window_ms: String(defaults.parkerBootWindowMs),
    parker_idle_poll_ms: String(defaults.parkerIdlePollMs),
    log_level: defaults.logLevel,
  };
  for (const key of configKeys()) {
    const row = doc.split('\n').find((l) => l.startsWith(`| \`${key}\` |`));
    assert.ok(row, `configuration.md has no table row for ${key}`);
    const want = expected[key];
    if (want !== undefined) assert.ok(row.split('|')[2]!.includes(`\`${want}\``), `${key}: default ${want} not in "${row}"`);
  }
});

test('install.md documents every rc.conf knob of rc.d/vmm_compatd and the rc.conf line', () => {
  const script = fs.readFileSync(path.join(REPO_ROOT, 'rc.d', 'vmm_compatd'), 'utf8');
  const knobs = [...script.matchAll(/^: "\$\{(vmm_compatd_[a-z_]+)[:=]/gm)].map((m) => m[1]!);
  assert.ok(knobs.length >= 10);
  const doc = read('install.md');
  for (const knob of knobs) {
    assert.ok(doc.split('\n').some((l) => l.startsWith(`| \`${knob}\` |`)), `install.md has no knob row for ${knob}`);
  }
  assert.match(doc, /^vmm_compatd_enable="YES"$/m);
  assert.match(doc, /\/usr\/local\/libexec\/vmm-compat\/bin\/vmm-compat/);
});

test('vm-bhyve.md gives the vm_env line with the wrapper directory first, and the pgrep pitfall', () => {
  const doc = read('vm-bhyve.md');
  assert.match(doc, /^vm_env="PATH=\/usr\/local\/libexec\/vmm-compat\/bin:/m);
  assert.match(doc, /pgrep -fx "bhyve: \$\{_name\}"/);
});

test('troubleshooting.md keeps the doctor checks section with all six checks', () => {
  const doc = read('troubleshooting.md');
  const start = doc.indexOf('## doctor checks');
  assert.ok(start >= 0, 'the "doctor checks" section is missing');
  const section = doc.slice(start, doc.indexOf('\n## ', start + 1));
  for (const check of [
    'kernel variant',
    'vmm loaded',
    'sockets reachable',
    'interposer present in each jail',
    'legacy bhyve dynamically linked and Capsicum-enabled',
    'daemon version matches interposer protocol version',
  ]) {
    const row = section.split('\n').find((l) => l.startsWith(`| **${check}** |`));
    assert.ok(row, `no row for "${check}"`);
    assert.equal(row.split('|').length, 6, `"${check}": the row needs what it checks, what FAIL means and the fix`);
  }
});

test('jails.md gives the devfs rules, allow.vmm and the nullfs mount line', () => {
  const doc = read('jails.md');
  for (const rule of ["add path 'vmm' unhide", "add path 'vmm/*' unhide", "add path 'vmm.io' unhide", "add path 'vmm.io/*' unhide", "add path 'nmdm*' unhide", "add path 'tap*' unhide"]) {
    assert.ok(doc.includes(rule), rule);
  }
  assert.match(doc, /^ {4}allow\.vmm;$/m);
  assert.ok(doc.includes('mount += "/var/run/vmm-compat/$name $path/var/run/vmm-compat nullfs rw 0 0";'));
  assert.doesNotMatch(doc.replace(/never use it/g, ''), /nullfs[^\n]*nounixbypass/);
});
