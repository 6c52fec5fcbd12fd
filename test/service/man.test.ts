// The mdoc manual pages: mandoc's lint at warning level must be silent, and the pages must
// cover what they promise (every subcommand, the environment, the signals).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { REPO_ROOT, run, tempDir, which } from './helpers';
import { buildProgram } from '../../src/cli/main';
import { wrapEnvironment } from '../../src/cli/commands/wrap';
import { defaultConfig } from '../../src/config/config';

const MAN_DIR = path.join(REPO_ROOT, 'docs', 'man');
const PAGES = ['vmm-compat.8', 'vmm-compatd.8'].map((p) => path.join(MAN_DIR, p));

function mandoc(): string {
  const found = which('mandoc');
  assert.ok(found, 'mandoc is not installed: apt-get install mandoc (.ci/run installs it)');
  return found;
}

async function render(page: string): Promise<string> {
  const r = await run(mandoc(), ['-Tascii', page]);
  assert.equal(r.code, 0, r.stderr);
  // Drop overstrike (bold/underline) sequences.
  return r.stdout.replace(/.\x08/g, '');
}

function sections(source: string): string[] {
  return source
    .split('\n')
    .filter((l) => l.startsWith('.Sh '))
    .map((l) => l.slice(4).replace(/^"|"$/g, ''));
}

test('mandoc -Tlint -W warning: no output for either page', async () => {
  for (const page of PAGES) {
    const r = await run(mandoc(), ['-Tlint', '-W', 'warning', page]);
    assert.equal(r.stdout + r.stderr, '', `${path.basename(page)}:\n${r.stdout}${r.stderr}`);
    assert.equal(r.code, 0);
  }
});

test('mandoc lint does report a broken page (the check can fail)', async () => {
  const dir = tempDir('man');
  const broken = path.join(dir, 'broken.8');
  fs.writeFileSync(broken, '.Dd November 24, 2026\n.Dt BROKEN 8\n.Os\n.Sh NAME\n.Nm broken\n.Nd x\n.Sh DESCRIPTION\n.Bl -tag\n.It a\nb\n');
  const r = await run(mandoc(), ['-Tlint', '-W', 'warning', broken]);
  assert.notEqual(r.stdout + r.stderr, '');
});

test('vmm-compat(8) documents every subcommand, the environment and the conventional sections', async () => {
  const source = fs.readFileSync(PAGES[0]!, 'utf8');
  assert.deepEqual(sections(source), ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'ENVIRONMENT', 'FILES', 'EXIT STATUS', 'EXAMPLES', 'SEE ALSO', 'CAVEATS']);
  const text = await render(PAGES[0]!);
  for (const sub of ['daemon', 'wrap', 'status', 'doctor', 'probe', 'selftest', 'lab', 'guests', 'abi', 'jail-setup']) {
    assert.match(text, new RegExp(`^ {5}vmm-compat ${sub}\\b`, 'm'), `SYNOPSIS lacks ${sub}`);
    assert.match(source, new RegExp(`^\\.It Cm ${sub}\\b`, 'm'), `DESCRIPTION lacks ${sub}`);
  }
  for (const env of [
    'VMM_COMPAT_SOCKET_DIR',
    'VMM_COMPAT_REQUIRE_DAEMON',
    'VMM_COMPAT_KERNEL',
    'VMM_COMPAT_PARKER_BOOT_POLL_US',
    'VMM_COMPAT_PARKER_BOOT_WINDOW_MS',
    'VMM_COMPAT_PARKER_IDLE_POLL_MS',
  ]) {
    assert.match(source, new RegExp(`^\\.It Ev ${env}$`, 'm'), `ENVIRONMENT lacks ${env}`);
  }
  for (const xr of ['bhyve 8', 'vmm 4', 'jail 8', 'daemon 8', 'rc.conf 5', 'vmm-compatd 8']) {
    assert.ok(source.includes(`.Xr ${xr}`), `SEE ALSO lacks ${xr}`);
  }
});

test('vmm-compatd(8) documents signals, sockets, configuration and the security model', async () => {
  const source = fs.readFileSync(PAGES[1]!, 'utf8');
  assert.deepEqual(sections(source), ['NAME', 'SYNOPSIS', 'DESCRIPTION', 'FILES', 'EXIT STATUS', 'EXAMPLES', 'SEE ALSO', 'CAVEATS', 'SECURITY CONSIDERATIONS']);
  const text = await render(PAGES[1]!).then((t) => t.replace(/\s+/g, ' '));
  for (const phrase of [
    'SIGTERM, SIGINT Close the listeners and sessions, unlink the sockets and exit 0',
    'SIGHUP Re-read the configuration file',
    'vmm-compatd.sock',
    'control.sock',
    'A client may act only on a VM whose device its own process holds open, and only through the socket directory of its own jail',
  ]) {
    assert.ok(text.includes(phrase), `missing: ${phrase}`);
  }
  // Every configuration key of src/config/config.ts is named.
  const configSource = fs.readFileSync(path.join(REPO_ROOT, 'src', 'config', 'config.ts'), 'utf8');
  const keys = [...configSource.matchAll(/^ {2}([a-z0-9_]+): \(c, v, w\) =>/gm)].map((m) => m[1]!);
  assert.ok(keys.length >= 12, `found only ${keys.length} keys in config.ts`);
  for (const key of keys) assert.ok(source.includes(`.Ic ${key}`), `vmm-compatd(8) does not name ${key}`);
});

/** The option flags of a commander command: "--long" (or "-s" without a long form). */
function optionFlags(command: Command): { flag: string; short?: string }[] {
  return command.options
    .filter((o) => !o.hidden)
    .map((o) => ({ flag: o.long ?? o.short!, short: o.long ? o.short : undefined }));
}

/** Lines of the top-level DESCRIPTION entry `.It Cm NAME`, up to the next `.It Cm`. */
function describedIn(source: string, name: string): string {
  const lines = source.split('\n');
  const start = lines.findIndex((l) => new RegExp(`^\\.It Cm ${name}\\b`).test(l));
  assert.ok(start >= 0, `DESCRIPTION has no ".It Cm ${name}"`);
  const end = lines.findIndex((l, i) => i > start && /^\.It Cm [a-z]/.test(l) && !/^\.It Cm [a-z0-9]+ ,/.test(l));
  return lines.slice(start, end < 0 ? undefined : end).join('\n');
}

/** The flags one `.Nm` / `.Cm NAME` block of the SYNOPSIS names (`Fl -x` is --x, `Fl x` is -x). */
function synopsisFlags(source: string, name: string): string[] {
  const synopsis = source.slice(source.indexOf('.Sh SYNOPSIS'), source.indexOf('.Sh DESCRIPTION'));
  const blocks = synopsis.split(/^\.Nm\s*$/m).slice(1);
  const block = blocks.find((b) => new RegExp(`^\\.Cm ${name}\\s*$`, 'm').test(b.split('\n').find((l) => l.trim() !== '') ?? ''));
  assert.ok(block, `SYNOPSIS has no block for ${name}`);
  return [...block.matchAll(/\bFl\s+(\S+)/g)].map((m) => m[1]!).filter((t) => t !== '-').map((t) => (t.startsWith('-') ? `-${t}` : `-${t}`));
}

test('vmm-compat(8) names every option of every subcommand, in its SYNOPSIS and its DESCRIPTION, and no option the CLI lacks (from the commander definitions)', () => {
  const source = fs.readFileSync(PAGES[0]!, 'utf8');
  const program = buildProgram();
  const problems: string[] = [];
  for (const command of program.commands) {
    const name = command.name();
    const flags = optionFlags(command);
    const synopsis = synopsisFlags(source, name);
    const description = describedIn(source, name);
    for (const { flag, short } of flags) {
      if (!synopsis.includes(flag) && !(short && synopsis.includes(short))) problems.push(`${name} ${flag}: not in the SYNOPSIS`);
      // `Fl -long` (--long) or, for an option that has one, `Fl s` (-s).
      const mentioned = (f: string): boolean => new RegExp(`Fl ${f.slice(1).replace(/-/g, '\\-')}(\\s|$)`, 'm').test(description);
      if (!mentioned(flag) && !(short && mentioned(short))) problems.push(`${name} ${flag}: not in its DESCRIPTION entry`);
    }
    const known = new Set(flags.flatMap((f) => [f.flag, ...(f.short ? [f.short] : [])]));
    for (const f of synopsis) if (!known.has(f)) problems.push(`${name}: the SYNOPSIS names ${f}, which the CLI does not have`);
  }
  assert.deepEqual(problems, []);
});

test('the option check catches a page that misses one (it can fail)', () => {
  const source = fs.readFileSync(PAGES[0]!, 'utf8').replace(/^\.Op Fl -json\n/m, '');
  const program = buildProgram();
  const missing = program.commands.some((c) => optionFlags(c).some((o) => o.flag === '--json' && !synopsisFlags(source, c.name()).includes('--json')));
  assert.ok(missing);
});

test('--help shows no default rendered as a JavaScript value ("(default: {})", "(default: [])")', () => {
  const program = buildProgram();
  for (const command of program.commands) {
    const help = command.helpInformation();
    assert.doesNotMatch(help, /\(default: [[{]/, `${command.name()} --help:\n${help}`);
  }
});

test('vmm-compat(8) names every variable `wrap` sets in the program\'s environment (from wrapEnvironment)', () => {
  const source = fs.readFileSync(PAGES[0]!, 'utf8');
  const entry = describedIn(source, 'wrap');
  const config = { ...defaultConfig(), kernelVariant: 'window' as const };
  const env = wrapEnvironment({}, { socketDir: '/s', interposer: '/i.so', extraPreload: [], requireDaemon: true, config });
  for (const name of Object.keys(env)) assert.match(entry, new RegExp(`\\.Ev ${name}\\b`), `the wrap entry does not name ${name}`);
});
