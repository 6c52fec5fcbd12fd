// vmm-compat selftest through the real CLI against the lab's kernel models (--lab): the same
// command lines a FreeBSD host gets, the bug shown where each kernel has it, the JSON contract,
// the refusals, usage errors, a hanging guest and a selftest killed in the middle of a boot.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { buildGuestRom } from '../../src/lab/guests/rom';
import { LabBench } from '../../src/lab/run';
import { defaultConfig } from '../../src/config/config';
import { runSelftest, type SelftestReport } from '../../src/selftest/selftest';

const cli = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');

function selftest(args: string[], env: NodeJS.ProcessEnv = process.env): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, 'selftest', ...args], { encoding: 'utf8', timeout: 180000, env });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function json(args: string[], env?: NodeJS.ProcessEnv): { status: number | null; report: SelftestReport; stderr: string } {
  const r = selftest([...args, '--json'], env);
  let report: SelftestReport;
  try {
    report = JSON.parse(r.stdout) as SelftestReport;
  } catch {
    throw new Error(`no JSON (exit ${r.status}): ${r.stdout}\n${r.stderr}`);
  }
  return { status: r.status, report, stderr: r.stderr };
}

/** The `.Li` names of the selftest entry of vmm-compat(8), where its --json fields are listed. */
function manPageJsonNames(): Set<string> {
  const page = fs.readFileSync(path.resolve(__dirname, '..', '..', '..', 'docs', 'man', 'vmm-compat.8'), 'utf8');
  const entry = page.slice(page.indexOf('.It Cm selftest'), page.indexOf('.It Cm jail-setup'));
  const names = new Set<string>();
  for (const line of entry.split('\n').filter((l) => l.startsWith('.'))) {
    let literal = false; // the words after Li, up to the next macro, are literals
    for (const word of line.slice(1).split(/\s+/)) {
      if (word === 'Li') literal = true;
      else if (/^[A-Z][a-z]$/.test(word)) literal = false;
      else if (literal && /^[A-Za-z]+$/.test(word)) names.add(word);
    }
  }
  return names;
}

/** Every boot: bhyve/vCPUs/shim -> verdict, apsStarted. */
function digest(report: SelftestReport): string[] {
  return report.runs.map((r) => `${r.bhyve}/${r.vcpus}/${r.shim ? 'shim' : 'bare'}:${r.verdict}:${r.apsStarted ?? '?'}`);
}

test('selftest --lab window --json: exit 0; without the shim no AP ever starts (the host\'s bug), through the shim every AP at 1, 2, 4 and 16 vCPUs; the JSON contract', () => {
  const { status, report, stderr } = json(['--lab', 'window']);
  assert.equal(status, 0, stderr);
  assert.equal(report.ok, true);
  assert.equal(report.refusal, null);
  const h = report.host;
  assert.equal(h.mode, 'lab');
  assert.equal(h.labKernel, 'window');
  assert.match(h.kernel!, /lab kernel model window/);
  assert.equal(h.osreldate, 1400076);
  assert.equal(h.variant, 'window');
  assert.equal(h.variantBy, 'experiment', 'the lab daemon identified the kernel by its probe VM');
  assert.equal(h.variantFrom, 'daemon');
  assert.equal(h.maxcpu, 32);
  assert.equal(h.daemon.running, true);
  assert.deepEqual(h.bhyves.map((b) => [b.label, b.version, b.release, b.releaseFrom, b.vcpuLimit]), [
    ['13.1', 1301000, '13.1', 'lab-model', 16],
    ['13.5', 1305000, '13.5', 'lab-model', 32],
  ], 'the lab models the shim serves on window (14.0 is newer than that kernel)');
  assert.equal(h.rom!.name, 'smp-boot');
  const expected: string[] = [];
  for (const b of ['13.1', '13.5']) {
    for (const n of [1, 2, 4, 16]) {
      expected.push(`${b}/${n}/bare:${n === 1 ? 'works-without-shim' : 'host-bug'}:0`, `${b}/${n}/shim:pass:${n - 1}`);
    }
  }
  assert.deepEqual(digest(report), expected);
  for (const r of report.runs) {
    for (const key of ['bhyve', 'vcpus', 'shim', 'outcome', 'apsStarted', 'exitStatus', 'elapsedMs', 'verdict'] as const) assert.ok(key in r, `runs[].${key}`);
    assert.equal(r.outcome, 'poweroff');
    assert.equal(r.exitStatus, 1);
    assert.equal(r.guestOutput, `online=${r.shim ? r.vcpus : 1}\n`, 'read from bhyve\'s stdout, where -l com1,stdio writes');
    assert.equal(r.vmDestroyed, true, r.vmName);
    assert.equal(r.shimMode, r.shim ? 'daemon' : null);
    assert.match(r.vmName, new RegExp(`^vmm-compat-selftest-\\d+-${r.n}$`));
    const rom = r.command.at(-2)!;
    assert.match(rom, new RegExp(`^bootrom,.*/smp-boot-${r.vcpus}\\.rom$`));
    const bhyveArgs = ['-c', String(r.vcpus), '-m', '2M', '-x', '-H', '-P', '-A', '-s', '0,hostbridge', '-s', '31,lpc', '-l', 'com1,stdio', '-l', rom, r.vmName];
    assert.deepEqual(r.command.slice(-bhyveArgs.length - 1), [r.bhyvePath, ...bhyveArgs], 'the ROM boot command line an operator gives a real bhyve');
    if (r.shim) assert.deepEqual(r.command.slice(0, 2), ['vmm-compat', 'wrap']);
    else assert.equal(r.command[0], r.bhyvePath);
  }
  const bare = report.runs.filter((r) => !r.shim && r.vcpus > 1);
  assert.ok(bare.every((r) => r.detail === `no AP started: the guest says online=1 of ${r.vcpus}`));
  assert.deepEqual(report.summary, { boots: 16, passed: 8, failed: 0, hostBug: 6, worksWithoutShim: 2 });
  // vmm-compat(8) names every field of the JSON object, of its host facts, boots, bhyves, daemon and summary.
  const named = manPageJsonNames();
  const fields = [report, h, h.daemon, h.bhyves[0]!, report.runs[0]!, report.summary].flatMap((o) => Object.keys(o));
  assert.deepEqual(fields.filter((f) => !named.has(f)), [], 'fields vmm-compat(8) does not name in the selftest --json entry');
  assert.match(stderr, /selftest: boot 16\/16: bhyve 13\.5, 16 vCPUs, through the shim: vmm-compat-selftest-\d+-16\n/);
});

test('selftest --lab main15: exit 0, a table; without the shim the ROM boot exits 4 for every bhyve (13.1, 13.5, 14.0, 14.3), through it every AP', () => {
  const r = selftest(['--lab', 'main15']);
  assert.equal(r.status, 0, r.stderr);
  const rows = r.stdout.split('\n').filter((l) => /^1[34]\.\d\s/.test(l));
  assert.equal(rows.length, 32);
  for (const row of rows) {
    const [bhyve, vcpus, shim, outcome, aps, exit] = row.split(/\s+/);
    assert.ok(['13.1', '13.5', '14.0', '14.3'].includes(bhyve!), row);
    if (shim === 'without') {
      assert.deepEqual([outcome, aps, exit], ['bhyve-error', `?/${Number(vcpus) - 1}`, '4'], row);
      assert.match(row, /the bug this host has: bhyve exited 4 before the guest printed its count/);
    } else {
      assert.deepEqual([outcome, aps, exit], ['poweroff', `${Number(vcpus) - 1}/${Number(vcpus) - 1}`, '1'], row);
      assert.match(row, /PASS$/);
    }
  }
  assert.match(r.stdout, /^bhyve 14\.0 \(.*bhyve14\):\n  without the shim: the bug this host has, at 1, 2, 4, 16 vCPUs: bhyve exited 4/m);
  assert.match(r.stdout, /^  with the shim: 4 of 4 boots started every AP and powered off$/m);
  assert.match(r.stdout, /^result: PASS: every boot through the shim started every AP and powered off \(16 boots\)$/m);
});

for (const [kernel, bare] of [
  ['legacy13', 'works-without-shim'],
  ['fixed13', 'works-without-shim'],
  ['fixed14', 'host-bug'],
] as const) {
  test(`selftest --lab ${kernel}: exit 0; without the shim 13.1 bhyve ${bare === 'host-bug' ? 'aborts (VM_GET_CPUS ERANGE)' : 'boots'}, through it every AP`, () => {
    const { status, report, stderr } = json(['--lab', kernel, '--bhyve', '13.1', '--max-vcpus', '2']);
    assert.equal(status, 0, stderr);
    assert.equal(report.host.variant, kernel);
    assert.deepEqual(digest(report), [
      `13.1/1/bare:${bare}:${bare === 'host-bug' ? '?' : 0}`,
      '13.1/1/shim:pass:0',
      `13.1/2/bare:${bare}:${bare === 'host-bug' ? '?' : 1}`,
      '13.1/2/shim:pass:1',
    ]);
    if (bare === 'host-bug') assert.ok(report.runs.filter((r) => !r.shim).every((r) => r.exitSignal === 'SIGABRT'));
  });
}

test('the largest count follows hw.vmm.maxcpu (--host-cpus 8): 13.5 bhyve boots 1, 2, 4 and 8 vCPUs; 13.1 also stops at 8', () => {
  const { status, report, stderr } = json(['--lab', 'fixed13', '--host-cpus', '8', '--max-vcpus', '64']);
  assert.equal(status, 0, stderr);
  assert.equal(report.host.maxcpu, 8);
  assert.deepEqual(report.host.bhyves.map((b) => b.vcpuLimit), [8, 8]);
  assert.deepEqual([...new Set(report.runs.map((r) => r.vcpus))], [1, 2, 4, 8]);
});

test('selftest --lab window --no-daemon: the boots through the shim use the interposer\'s fallback and say so; still every AP', () => {
  const { status, report, stderr } = json(['--lab', 'window', '--no-daemon', '--bhyve', '13.1', '--max-vcpus', '2']);
  assert.equal(status, 0, stderr);
  assert.equal(report.host.daemon.running, false);
  assert.equal(report.host.variantFrom, 'probe', 'without a daemon, vmm-compat probe identifies the kernel');
  assert.equal(report.host.variant, 'window');
  assert.deepEqual(report.runs.map((r) => r.shimMode), [null, 'fallback', null, 'fallback']);
  assert.deepEqual(digest(report), ['13.1/1/bare:works-without-shim:0', '13.1/1/shim:pass:0', '13.1/2/bare:host-bug:0', '13.1/2/shim:pass:1']);
  assert.ok(report.runs[3]!.bhyveStderr.includes('cannot reach vmm-compatd'));
});

test('a guest that never ends: each boot is killed at --timeout-ms, reported as a hang, its VM destroyed; exit 1', () => {
  // 1500 ms: long enough for vmm-compat wrap (a Node start) to have bhyve make its VM on a busy machine.
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmmc-selftest-'));
  const rom = path.join(dir, 'spin.rom');
  fs.writeFileSync(rom, buildGuestRom(Uint8Array.from([0xeb, 0xfe]), { name: 'spin' })); // jmp $
  const { status, report } = json(['--lab', 'fixed13', '--bhyve', '13.1', '--max-vcpus', '1', '--timeout-ms', '1500', '--rom', rom]);
  assert.equal(status, 1);
  assert.equal(report.ok, false);
  assert.deepEqual(report.runs.map((r) => [r.outcome, r.verdict, r.exitSignal, r.vmDestroyed]), [
    ['hang', 'host-bug', 'SIGKILL', true],
    ['hang', 'fail', 'SIGKILL', true],
  ], JSON.stringify(report.runs.map((r) => [r.elapsedMs, r.bhyveStderr])));
  assert.ok(report.runs.every((r) => r.elapsedMs >= 1500 && r.detail === 'no end within 1500 ms: bhyve was killed'));
  fs.rmSync(dir, { recursive: true });
});

/** Processes whose command line mentions `needle` (bhyve models carry the VM name; daemons the lab dir). */
function processesMentioning(needle: string): string[] {
  return fs
    .readdirSync('/proc')
    .filter((p) => /^\d+$/.test(p))
    .flatMap((p) => {
      try {
        const cmd = fs.readFileSync(`/proc/${p}/cmdline`, 'latin1').replace(/\0/g, ' ');
        return cmd.includes(needle) ? [`${p}: ${cmd}`] : [];
      } catch {
        return [];
      }
    });
}

for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  test(`selftest killed with ${signal} in the middle of a boot: the boot's bhyve is killed, its VM destroyed, the lab stopped; exit ${signal === 'SIGTERM' ? 143 : 130}`, async () => {
    const child = spawn(process.execPath, [cli, 'selftest', '--lab', 'window', '--bhyve', '13.1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    // Boot 3 is 13.1 without the shim at 2 vCPUs: about a second of the guest waiting for its AP.
    const deadline = Date.now() + 60000;
    while (!/boot 3\/8: .*: (vmm-compat-selftest-\d+-3)\n/.test(stderr)) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`boot 3 never started:\n${stderr}`);
      await new Promise((r) => setTimeout(r, 20));
    }
    const vm = /boot 3\/8: .*: (vmm-compat-selftest-\d+-3)\n/.exec(stderr)![1]!;
    const labDir = /lab directory (\S+)\n/.exec(stderr)![1]!;
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(processesMentioning(vm).length > 0, 'the boot is running');
    child.kill(signal);
    const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
    assert.equal(code, signal === 'SIGTERM' ? 143 : 130, stderr);
    assert.match(stderr, new RegExp(`selftest: ${signal}: stopping the boot in progress and destroying its VM\\n`));
    assert.match(stderr, new RegExp(`selftest:   destroyed VM ${vm}\\n`));
    assert.match(stderr, new RegExp(`interrupted during boot 3 \\(${vm}\\); stopped by ${signal}\\n`));
    assert.doesNotMatch(stderr, /boot 4\/8/);
    assert.deepEqual(processesMentioning(vm), [], 'no bhyve of that VM is left');
    assert.deepEqual(processesMentioning(labDir), [], 'no lab vmm-compatd is left');
    assert.equal(fs.existsSync(labDir), false, 'the lab directory is removed');
  });
}

test('a VM name taken: refused before any boot, the existing VM untouched (never destroyed, never booted)', async () => {
  const pid = 910000 + (process.pid % 1000);
  const bench = await LabBench.start({ kernel: 'window' });
  try {
    const loaded = await bench.loadGuest({ vmName: `vmm-compat-selftest-${pid}-3`, shim: false, timeoutMs: 10000 });
    assert.equal(loaded.status, 0, loaded.stderr);
    const before = bench.model.guestStats(`vmm-compat-selftest-${pid}-3`);
    const lines: string[] = [];
    const report = await runSelftest({
      lab: 'window',
      bhyves: ['13.1'],
      maxVcpus: 4,
      timeoutMs: 10000,
      rom: null,
      config: defaultConfig(),
      configPath: '/nonexistent/vmm-compat.conf',
      configExplicit: false,
      interposer: null,
      noDaemon: false,
      progress: (l) => lines.push(l),
      pid,
      labBench: bench,
    });
    assert.equal(report.ok, false);
    assert.deepEqual(report.runs, []);
    assert.match(report.refusal!, new RegExp(`^VM name taken: vmm-compat-selftest-${pid}-3 exists already; selftest never touches a VM it did not create`));
    assert.ok(bench.model.vmNames().includes(`vmm-compat-selftest-${pid}-3`));
    assert.deepEqual(bench.model.guestStats(`vmm-compat-selftest-${pid}-3`), before, 'not run, not reset');
    assert.deepEqual(bench.model.vmNames(), [`vmm-compat-selftest-${pid}-3`], 'no other VM was made');
  } finally {
    await bench.close();
  }
});

test('refusals exit 1 with the reason (and --json still prints the report): not a FreeBSD host; no ROM found', () => {
  if (os.platform() !== 'freebsd') {
    const r = json([]);
    assert.equal(r.status, 1);
    assert.match(r.report.refusal!, /run it on the FreeBSD host \(here: linux\)/);
    assert.deepEqual(r.report.runs, []);
    assert.match(r.stderr, /selftest: refused: selftest boots VMs with bhyve on vmm\.ko/);
    const table = selftest([]);
    assert.equal(table.status, 1);
    assert.match(table.stdout, /^result: REFUSED: selftest boots VMs/m);
  }
  const empty = fs.mkdtempSync(path.join(os.tmpdir(), 'vmmc-noroms-'));
  const noRom = json(['--lab', 'fixed13', '--bhyve', '13.1'], { ...process.env, VMM_COMPAT_GUESTS_DIR: empty });
  assert.equal(noRom.status, 1, noRom.stderr);
  assert.match(noRom.report.refusal!, new RegExp(`^no ROM found: the smp-boot guest's boot ROM is not at ${empty}/smp-boot\\.rom`));
  assert.deepEqual(noRom.report.runs, []);
  fs.rmSync(empty, { recursive: true });
});

test('usage errors exit 2 and boot nothing', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vmmc-selftest-'));
  const notRom = path.join(dir, 'not.rom');
  fs.writeFileSync(notRom, Buffer.alloc(4096));
  const cases: [string[], RegExp][] = [
    [['--max-vcpus', '0'], /--max-vcpus must be a whole number from 1 to 256, not "0"/],
    [['--max-vcpus', '257'], /--max-vcpus must be a whole number from 1 to 256/],
    [['--max-vcpus', 'four'], /--max-vcpus must be a whole number/],
    [['--timeout-ms', '5'], /--timeout-ms must be a whole number from 100 to 3600000/],
    [['--lab', 'main16'], /argument 'main16' is invalid/],
    [['--no-daemon'], /--no-daemon needs --lab/],
    [['--host-cpus', '8'], /--host-cpus needs --lab/],
    [['--lab', 'window', '--bhyve', '13.7'], /with --lab, --bhyve names a lab bhyve model \(13\.1, 13\.5, 14\.0, 14\.3, 14-current\), not "13\.7"/],
    [['--bhyve', '/nonexistent/bhyve'], /--bhyve \/nonexistent\/bhyve: ENOENT/],
    [['--bhyve', dir], /is not a file/],
    [['--lab', 'window', '--rom', '/nonexistent.rom'], /cannot read --rom \/nonexistent\.rom: ENOENT/],
    [['--lab', 'window', '--rom', notRom], /not a vmm-compat boot ROM/],
    [['--bogus'], /unknown option '--bogus'/],
  ];
  for (const [args, message] of cases) {
    const r = selftest(args);
    assert.equal(r.status, 2, `${args.join(' ')}: ${r.stderr}`);
    assert.match(r.stderr, message, args.join(' '));
    assert.doesNotMatch(r.stderr, /boot 1\//);
  }
  fs.rmSync(dir, { recursive: true });
});
