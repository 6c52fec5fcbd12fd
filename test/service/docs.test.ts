// The operator documentation against the code it describes: the sample configuration parses
// and its commented values are the defaults of src/config/config.ts, every key and every rc.conf
// knob is documented, and the pages keep the sections other documents point to.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import { REPO_ROOT, tempDir } from './helpers';
import { runDoctor } from '../../src/doctor/checks';
import { defaultConfig, parseConfig } from '../../src/config/config';
import { BODY_BYTES, EventKind, MessageType, eventKindName } from '../../src/daemon/protocol';
import { VARIANT_CODE } from '../../src/daemon/kernel-variant';

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

/** Every check name doctor can print, with jails and the host folded into JAIL and NAME. */
async function doctorCheckNames(): Promise<Set<string>> {
  const dir = tempDir('doctor-names');
  const config = parseConfig(`socket_dir = ${dir}/run\nkernel_variant = window\n[jail j1]\n[jail j2]\n`, 'x.conf');
  const names = new Set<string>();
  const interposer = path.join(dir, 'libvmmcompat.so');
  for (const present of [false, true]) {
    if (present) fs.writeFileSync(interposer, 'vmm-compat-protocol=2');
    const results = await runDoctor({
      config,
      configPath: 'x.conf',
      configError: null,
      interposer,
      legacyBhyve: path.join(dir, 'bhyve'),
      jailRoots: new Map([['j1', dir]]),
      interposerInJail: '/usr/local/lib/vmm-compat/libvmmcompat.so',
      device: null,
      conftxt: null,
      bhyves: [interposer],
    });
    for (const r of results) {
      names.add(
        r.check
          .replace(/^socket \((host|j1|j2)\)$/, 'socket (JAIL)')
          .replace(/^interposer in jail j[12]$/, 'interposer in jail NAME')
          .replace(/^bhyve \/.*$/, 'bhyve PATH'),
      );
    }
  }
  const broken = await runDoctor({ config: null, configPath: 'x.conf', configError: 'x.conf:1: bad', interposer, legacyBhyve: '', jailRoots: new Map(), interposerInJail: '', device: null });
  for (const r of broken) names.add(r.check);
  return names;
}

test('troubleshooting.md has a row for every check doctor makes (from the command), and explains WARN', async () => {
  const doc = read('troubleshooting.md');
  const start = doc.indexOf('## doctor checks');
  assert.ok(start >= 0, 'the "doctor checks" section is missing');
  const section = doc.slice(start, doc.indexOf('\n## ', start + 1));
  const rows = section.split('\n').filter((l) => l.startsWith('| **'));
  const documented = rows.map((r) => /^\| \*\*(.+?)\*\* \|/.exec(r)![1]!);
  const names = await doctorCheckNames();
  assert.deepEqual([...names].sort(), [...documented].sort(), 'one row per check doctor prints, and no other');
  for (const row of rows) assert.equal(row.split('|').length, 6, `${row}: what it checks, what FAIL/WARN means and the fix`);
  assert.match(section, /PASS, WARN\s+or FAIL/);
  // The jail row says what the code looks at, and that it is not the mount.
  const jailRow = rows.find((r) => r.startsWith('| **interposer in jail NAME**'))!;
  assert.match(jailRow, /does not look at the jail's mounts/);
});

test('the docs name no file the repository does not have (ARCHITECTURE.md is not in it)', () => {
  for (const name of fs.readdirSync(DOCS).filter((f) => f.endsWith('.md'))) {
    assert.doesNotMatch(read(name), /ARCHITECTURE\.md/, `${name} cites ARCHITECTURE.md`);
  }
  assert.doesNotMatch(fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8'), /ARCHITECTURE\.md/);
});

test('the sample configuration and configuration.md agree with the daemon on log_file and device_dir', () => {
  const sample = read('vmm-compat.conf.sample');
  // SIGHUP with the same log_file reopens it (src/daemon/daemon.ts reload: destination.reopen()).
  assert.doesNotMatch(sample, /not\s+reopened/);
  assert.match(sample, /reopened on SIGHUP/);
  // Every variant a kernel_variant may name.
  for (const v of ['auto', 'legacy13', 'window', 'fixed13', 'fixed14', 'main15']) assert.match(sample.split('#kernel_variant')[0]!, new RegExp(`\\b${v}\\b`), v);
  const conf = read('configuration.md');
  const deviceRow = conf.split('\n').find((l) => l.startsWith('| `device_dir` |'))!;
  assert.doesNotMatch(deviceRow, /not reported/);
  assert.match(deviceRow, /logged as such/);
});

test('vmm-compatd(8) lists metrics_listen and device_dir with what SIGHUP does; jail-setup --apply is described as it behaves', () => {
  const man = fs.readFileSync(path.join(DOCS, 'man', 'vmm-compatd.8'), 'utf8');
  const sighup = man.slice(man.indexOf('.It Dv SIGHUP'), man.indexOf('.El', man.indexOf('.It Dv SIGHUP')));
  assert.match(sighup, /\.Ic metrics_listen/);
  assert.match(sighup, /\.Ic device_dir/);
  const page = fs.readFileSync(path.join(DOCS, 'man', 'vmm-compat.8'), 'utf8');
  assert.doesNotMatch(page, /instead of printing/);
  assert.doesNotMatch(read('jails.md'), /--apply` installs/);
});

test('README\'s descriptor figure is the one bench/results/latest.json holds', () => {
  const text = fs.readFileSync(path.join(REPO_ROOT, 'bench', 'results', 'latest.json'), 'utf8');
  const ms = /"releasedWithinMs": (\d+)/.exec(text);
  assert.ok(ms, 'latest.json has no releasedWithinMs');
  const readme = fs.readFileSync(path.join(REPO_ROOT, 'README.md'), 'utf8');
  assert.ok(readme.includes(`within ${ms[1]} ms of the sessions ending`), `README does not say "within ${ms[1]} ms of the sessions ending"`);
});

test('install.md lists every production dependency in the layout', () => {
  const pkg = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
  const row = read('install.md').split('\n').find((l) => l.startsWith('| `/usr/local/libexec/vmm-compat/` |'))!;
  for (const dep of Object.keys(pkg.dependencies)) assert.ok(row.includes(dep), `${dep} is not in: ${row}`);
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

test('internals.md section 5 names every message type with its body size, every event kind and every variant code of src/daemon/protocol.ts', () => {
  const doc = read('internals.md');
  const start = doc.indexOf('## 5. Interposer <-> daemon protocol');
  assert.ok(start >= 0, 'section 5 is missing');
  const section = doc.slice(start).replace(/\s+/g, ' ');
  for (const [name, code] of Object.entries(MessageType)) {
    const row = new RegExp(`\\| ${code} \\| [CD]->[CD] \\| ${name} \\| .*? \\| ${BODY_BYTES[code]} \\|`);
    assert.match(section, row, `no table row "${code} ... ${name} ... ${BODY_BYTES[code]}"`);
  }
  for (const code of Object.values(EventKind)) {
    const name = eventKindName(code);
    assert.ok(section.includes(`${code} ${name} `) || section.includes(`${code} ${name},`), `EVENT kind "${code} ${name}" is not named`);
  }
  const variants = /Variant codes: ([^.]*)\./.exec(section);
  assert.ok(variants, 'no "Variant codes:" sentence');
  const listed = Object.fromEntries(variants[1]!.split(', ').map((pair) => pair.split(' ')).map(([code, name]) => [name!, Number(code)]));
  assert.deepEqual(listed, { ...VARIANT_CODE });
});
