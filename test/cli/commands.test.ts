// status, doctor, jail-setup, probe, metrics and the lab's usage errors, through the real CLI
// against a lab daemon.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { LabBench } from '../../src/lab/run';
import { nativeArtifact, ARTIFACTS } from '../../src/native-paths';
import { PROTOCOL_VERSION } from '../../src/daemon/protocol';

const cli = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');
let bench: LabBench;

function run(args: string[], env: NodeJS.ProcessEnv = process.env): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8', env, timeout: 30000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

function getMetrics(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http.get({ host: '127.0.0.1', port, path: '/metrics' }, (res) => {
      let body = '';
      res.setEncoding('utf8').on('data', (c: string) => (body += c)).on('end', () => resolve(body));
    }).on('error', reject);
  });
}

const metricsPort = 19641 + (process.pid % 1000);

before(async () => {
  bench = await LabBench.start({ kernel: 'window' });
  fs.writeFileSync(bench.configPath, `kernel_variant = window\nmetrics_listen = 127.0.0.1:${metricsPort}\n`);
  await bench.startDaemon();
  const r = await bench.spawnBhyve({ bhyve: '13.1', vcpus: 4, vmName: 'cli-vm', shim: true, timeoutMs: 20000 }).result;
  assert.deepEqual(r.apsStarted, [1, 2, 3]);
});

after(async () => {
  await bench.close();
});

test('status --json reports the VM, its plan, pre-activated and handed-over APs, and events with times', () => {
  const r = run(['status', '--json', '--socket-dir', bench.socketDir, '--config', bench.configPath]);
  assert.equal(r.status, 0, r.stderr);
  const report = JSON.parse(r.stdout) as { kernelVariant: string; vms: { name: string; jail: string; vcpus: number; preActivated: number[]; handedOver: number[]; parked: number[]; events: { time: string; kind: string }[]; plan: { action: string } }[] };
  assert.equal(report.kernelVariant, 'window');
  const vm = report.vms.find((v) => v.name === 'cli-vm');
  assert.ok(vm);
  assert.equal(vm.jail, 'host');
  assert.equal(vm.vcpus, 4);
  assert.equal(vm.plan.action, 'park');
  assert.deepEqual(vm.preActivated, [1, 2, 3]);
  assert.deepEqual([...vm.handedOver].sort(), [1, 2, 3]);
  assert.deepEqual(vm.parked, []);
  assert.ok(vm.events.some((e) => e.kind === 'handover' && !Number.isNaN(Date.parse(e.time))));
});

test('status without --json is a table; without a daemon it names the fix', () => {
  const r = run(['status', '--socket-dir', bench.socketDir, '--config', bench.configPath]);
  assert.equal(r.status, 0);
  assert.match(r.stdout, /cli-vm\thost\t4\tpark\t1-3\t-\t1-3\t(yes|no)/);
  const missing = run(['status', '--socket-dir', path.join(bench.root, 'nowhere'), '--config', bench.configPath]);
  assert.equal(missing.status, 1);
  assert.match(missing.stderr, /cannot reach vmm-compatd .* is it running\? \(service vmm_compatd status\)/);
});

test('metrics: Prometheus counters by jail, the plan latency histograms and the process metrics on loopback', async () => {
  const body = await getMetrics(metricsPort);
  assert.match(body, /^vmm_compat_aps_activated_total\{jail="host"\} 3$/m);
  assert.match(body, /^vmm_compat_handovers_total\{jail="host"\} 3$/m);
  assert.match(body, /^vmm_compat_plan_latency_seconds_count\{jail="host",kernel_variant="window",action="park"\} 1$/m);
  assert.match(body, /^vmm_compat_plan_kernel_seconds_count\{jail="host",kernel_variant="window",action="park"\} 1$/m);
  assert.match(body, /# TYPE vmm_compat_plan_latency_seconds histogram/);
  assert.match(body, new RegExp(String.raw`^vmm_compat_info\{version="[^"]+",protocol_version="${PROTOCOL_VERSION}",kernel_variant="window"\} 1$`, 'm'));
  assert.match(body, /^process_resident_memory_bytes \d+/m);
  assert.match(body, /^nodejs_eventloop_lag_seconds /m);
});

test('doctor: every check passes on the lab host except the ones it cannot see, each failure with a fix', () => {
  const conf = path.join(bench.root, 'doctor.conf');
  fs.writeFileSync(
    conf,
    `kernel_variant = window\nsocket_dir = ${bench.socketDir}\ndevice_dir = ${path.join(bench.root, 'dev', 'vmm')}\n[jail ghost]\nsocket_dir = ${path.join(bench.root, 'run', 'ghost')}\n`,
  );
  const r = run(['doctor', '--json', '--config', conf, '--legacy-bhyve', nativeArtifact(ARTIFACTS.bhyve13), '--interposer', nativeArtifact(ARTIFACTS.interposer), '--jail-root', `ghost=${bench.root}`]);
  const results = JSON.parse(r.stdout) as { check: string; status: string; fix?: string }[];
  const by = new Map(results.map((x) => [x.check, x]));
  assert.equal(by.get('kernel variant')?.status, 'pass');
  assert.equal(by.get('vmm loaded')?.status, 'pass');
  assert.equal(by.get('daemon')?.status, 'pass');
  assert.equal(by.get('socket (host)')?.status, 'pass');
  assert.equal(by.get('protocol version')?.status, 'pass');
  assert.equal(by.get('legacy bhyve')?.status, 'pass');
  // Configured but not served by the running daemon, and no interposer inside the "jail".
  assert.equal(by.get('socket (ghost)')?.status, 'fail');
  assert.match(by.get('socket (ghost)')?.fix ?? '', /service vmm_compatd reload/);
  assert.equal(by.get('interposer in jail ghost')?.status, 'fail');
  assert.match(by.get('interposer in jail ghost')?.fix ?? '', /jail-setup ghost/);
  assert.equal(r.status, 1, 'a failing check makes doctor exit 1');
  for (const x of results) if (x.status !== 'pass') assert.ok(x.fix, `${x.check} has a fix`);
});

test('doctor on a static binary and a broken configuration', () => {
  const conf = path.join(bench.root, 'broken.conf');
  fs.writeFileSync(conf, 'kernel_variant = sometimes\n');
  const r = run(['doctor', '--config', conf]);
  assert.equal(r.status, 1);
  assert.match(r.stdout, /FAIL {2}configuration: .*broken\.conf:1: kernel_variant must be auto or one of legacy13, window, fixed13, fixed14, main15, not "sometimes"/);
  const staticBin = path.join(bench.root, 'static-bhyve');
  const cc = spawnSync('gcc', ['-static', '-x', 'c', '-o', staticBin, '-'], { input: 'int main(void){return 0;}\n' });
  if (cc.status !== 0) return; // no static libc here: the dynamic case is covered above
  const conf2 = path.join(bench.root, 'ok.conf');
  fs.writeFileSync(conf2, `kernel_variant = window\nsocket_dir = ${bench.socketDir}\n`);
  const s = run(['doctor', '--json', '--config', conf2, '--legacy-bhyve', staticBin]);
  const legacy = (JSON.parse(s.stdout) as { check: string; status: string; detail: string }[]).find((x) => x.check === 'legacy bhyve');
  assert.equal(legacy?.status, 'fail');
  assert.match(legacy?.detail ?? '', /statically linked/);
});

test('jail-setup prints the nullfs mount, devfs ruleset and allow.vmm; --apply installs idempotently', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'jail-setup-'));
  try {
    const conf = path.join(dir, 'vmm-compat.conf');
    fs.writeFileSync(conf, `socket_dir = ${path.join(dir, 'run')}\n`);
    const rules = path.join(dir, 'devfs.rules');
    const printed = run(['jail-setup', 'web1', '--config', conf]);
    assert.equal(printed.status, 0);
    for (const needle of ['allow.vmm;', `mount += "${path.join(dir, 'run', 'web1')} $path/var/run/vmm-compat nullfs rw 0 0";`, "add path 'vmm' unhide", "add path 'vmm/*' unhide", "add path 'vmm.io' unhide", "add path 'vmm.io/*' unhide", "add path 'nmdm*' unhide", "add path 'tap*' unhide", '/usr/local/lib/vmm-compat/libvmmcompat.so']) {
      assert.ok(printed.stdout.includes(needle), `missing ${needle}`);
    }
    assert.equal(fs.existsSync(path.join(dir, 'run', 'web1')), false, 'printing changes nothing');
    const root = path.join(dir, 'jailroot');
    const applied = run(['jail-setup', 'web1', '--config', conf, '--apply', '--devfs-rules', rules, '--jail-root', root]);
    assert.equal(applied.status, 0, applied.stderr);
    assert.ok(fs.statSync(path.join(dir, 'run', 'web1')).isDirectory());
    assert.match(fs.readFileSync(conf, 'utf8'), /\[jail web1\]\nsocket_dir = .*run\/web1/);
    assert.match(fs.readFileSync(rules, 'utf8'), /\[devfsrules_bhyve_jail=25\]/);
    assert.ok(fs.existsSync(path.join(root, 'var/run/vmm-compat')));
    const again = run(['jail-setup', 'web1', '--config', conf, '--apply', '--devfs-rules', rules, '--jail-root', root]);
    assert.doesNotMatch(again.stdout, /^applied:/m);
    assert.equal((fs.readFileSync(conf, 'utf8').match(/\[jail web1\]/g) ?? []).length, 1);
    // The result parses: the daemon would serve it.
    const status = run(['probe', '--osreldate', '1400097', '--config', conf]);
    assert.equal(status.status, 0);
    const bad = run(['jail-setup', 'web/1', '--config', conf]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr, /"web\/1" is not a jail name/);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('probe: identified variants exit 0, the ambiguous 14-CURRENT range exits 1 with the fix', () => {
  const ok = run(['probe', '--osreldate', '1301000', '--json']);
  assert.equal(ok.status, 0);
  assert.equal((JSON.parse(ok.stdout) as { variant: string }).variant, 'legacy13');
  const ambiguous = run(['probe', '--osreldate', '1400080']);
  assert.equal(ambiguous.status, 1);
  assert.match(ambiguous.stdout, /fix: set kernel_variant/);
  assert.equal(run(['probe', '--osreldate', 'soon']).status, 2);
});

test('lab usage errors exit 2 with a clear message', () => {
  const zero = run(['lab', '--vcpus', '0']);
  assert.equal(zero.status, 2);
  assert.match(zero.stderr, /--vcpus must be a whole number from 1 to 256, not "0"/);
  const hosts = run(['lab', '--host-cpus', '2000']);
  assert.equal(hosts.status, 2);
  assert.match(hosts.stderr, /--host-cpus must be a whole number from 1 to 1024, not "2000"/);
  const kernel = run(['lab', '--kernel', 'linux']);
  assert.equal(kernel.status, 2);
  assert.match(kernel.stderr, /Allowed choices are legacy13, window, fixed13, fixed14, main15/);
  const guest = run(['lab', '--guest', '/nonexistent/guest.bin']);
  assert.equal(guest.status, 2);
  assert.match(guest.stderr, /cannot read --guest \/nonexistent\/guest\.bin: ENOENT/);
  const name = run(['lab', '--guest-name', 'nope']);
  assert.equal(name.status, 2);
  assert.match(name.stderr, /unknown --guest-name nope; known: smp-boot/);
});
