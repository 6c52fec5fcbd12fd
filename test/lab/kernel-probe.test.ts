// The daemon's kernel probe against the lab's kernel model: every variant identified by
// experiment whatever kern.osreldate claims, every AP booted through the shim; a probe killed
// midway leaves no VM once the daemon is back; no other VM is touched; the result is kept per
// kernel; without a probe VM kern.osreldate decides.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { LabBench, runLab, type LabKernelName } from '../../src/lab/run';
import { connectKernel } from '../../src/lab/kernel/client';
import { buildSmpBoot } from '../../src/lab/guests/smp-boot';
import { REQ13, REQ14 } from '../../src/abi/ioctls';
import { ARTIFACTS, requireArtifact } from '../../src/native-paths';
import { PROBE_VM_PREFIX } from '../../src/daemon/kernel-probe';

/** The CLI as a child process, without blocking this process (it runs the kernel model). */
function runCli(args: string[], env: NodeJS.ProcessEnv): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const cli = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [cli, ...args], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (stdout += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (stderr += s));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
    child.on('exit', (status) => {
      clearTimeout(timer);
      resolve({ status, stdout, stderr });
    });
  });
}

interface KernelCase {
  name: string;
  kernel: LabKernelName;
  compatFreebsd13?: boolean;
  compatFreebsd14?: boolean;
  /** A kern.osreldate that names another variant. */
  misleading: number;
  /** What kern.osreldate would have said (identifyKernel). */
  misleadingSays: string;
}

// A window kernel claiming 14.0-RELEASE, a 15.0 kernel claiming 14.x, a 14.x kernel claiming
// 13.2, and the others claiming a neighbour.
const CASES: readonly KernelCase[] = [
  { name: 'legacy13', kernel: 'legacy13', misleading: 1500068, misleadingSays: 'main15' },
  { name: 'window', kernel: 'window', misleading: 1400097, misleadingSays: 'fixed14' },
  { name: 'fixed13', kernel: 'fixed13', misleading: 1301000, misleadingSays: 'legacy13' },
  { name: 'fixed14', kernel: 'fixed14', misleading: 1302000, misleadingSays: 'fixed13' },
  { name: 'fixed14 without COMPAT_FREEBSD13', kernel: 'fixed14', compatFreebsd13: false, misleading: 1500068, misleadingSays: 'main15' },
  { name: 'main15', kernel: 'main15', misleading: 1402000, misleadingSays: 'fixed14' },
  { name: 'main15 without COMPAT_FREEBSD13/14', kernel: 'main15', compatFreebsd13: false, compatFreebsd14: false, misleading: 1400097, misleadingSays: 'fixed14' },
];

for (const c of CASES) {
  test(`${c.name}: with its own kern.osreldate and with ${c.misleading}, the daemon identifies it by experiment and 13.1 bhyve boots every AP through the shim`, async () => {
    for (const osreldate of [undefined, c.misleading]) {
      const r = await runLab({
        kernel: c.kernel,
        bhyve: '13.1',
        vcpus: 4,
        shim: true,
        timeoutMs: 30000,
        compatFreebsd13: c.compatFreebsd13,
        compatFreebsd14: c.compatFreebsd14,
        ...(osreldate !== undefined ? { osreldate } : {}),
        collectDaemonLog: true,
      });
      const label = `${c.name}, osreldate ${osreldate ?? 'its own'}`;
      assert.deepEqual(r.daemonKernel, { variant: c.kernel, by: 'experiment' }, label);
      assert.deepEqual(r.apsStarted, [1, 2, 3], `${label}: ${r.bhyveStderr}`);
      assert.equal(r.outcome, 'poweroff', label);
      const warned = (r.daemonLog ?? '').split('\n').filter((line) => line.includes('"level":40') && line.includes('but the experiment found'));
      if (osreldate === undefined) assert.equal(warned.length, 0, `${label}: no disagreement`);
      else {
        assert.equal(warned.length, 1, `${label}: the disagreement is a warning`);
        assert.match(warned[0]!, new RegExp(`kern\\.osreldate ${osreldate} says ${c.misleadingSays}, but the experiment found ${c.kernel}`));
      }
    }
  });
}

test('`vmm-compat lab --kernel window --shim --json` says daemonKernel {window, experiment}; --daemon-kernel forces it (by config)', () => {
  const cli = path.resolve(__dirname, '..', '..', 'src', 'cli', 'main.js');
  const identified = spawnSync(process.execPath, [cli, 'lab', '--kernel', 'window', '--bhyve', '13.1', '--vcpus', '4', '--shim', '--json', '--osreldate', '1400097'], { encoding: 'utf8', timeout: 60000 });
  assert.equal(identified.status, 0, identified.stderr);
  const r = JSON.parse(identified.stdout) as { daemonKernel: unknown; apsStarted: number[] };
  assert.deepEqual(r.daemonKernel, { variant: 'window', by: 'experiment' });
  assert.deepEqual(r.apsStarted, [1, 2, 3]);
  const forced = spawnSync(process.execPath, [cli, 'lab', '--kernel', 'window', '--vcpus', '2', '--shim', '--json', '--daemon-kernel', 'window'], { encoding: 'utf8', timeout: 60000 });
  assert.equal(forced.status, 0, forced.stderr);
  assert.deepEqual((JSON.parse(forced.stdout) as { daemonKernel: unknown }).daemonKernel, { variant: 'window', by: 'config' });
  const usage = spawnSync(process.execPath, [cli, 'lab', '--daemon-kernel', 'window'], { encoding: 'utf8', timeout: 30000 });
  assert.equal(usage.status, 2);
  assert.match(usage.stderr, /--daemon-kernel needs --shim/);
});

for (const [kernel, request, what] of [
  ['window', REQ13.VM_RUN, 'in the BSP\'s VM_RUN (the worker thread)'],
  ['main15', REQ14.VM_RUN, 'in the BSP\'s 14.0 VM_RUN, the VM made through /dev/vmmctl'],
  ['fixed13', REQ13.VM_SET_REGISTER_SET, 'while it sets up the BSP (the main thread)'],
] as const) {
  test(`the daemon SIGKILLed ${what} on ${kernel}: once it has restarted, no probe VM is left`, async () => {
    const bench = await LabBench.start({ kernel, ...(kernel === 'main15' ? { compatFreebsd13: false } : {}) });
    try {
      let killed = false;
      const untap = bench.model.tap((e) => {
        // cpuid 0: the BSP's run or set-up, not the ABI questions (cpuid -1).
        if (!killed && e.phase === 'enter' && e.vm.startsWith(PROBE_VM_PREFIX) && e.request === request && e.arg?.readInt32LE(0) === 0) {
          killed = true;
          process.kill(e.pid, 'SIGKILL');
        }
      });
      await assert.rejects(bench.startDaemon(), /the lab daemon did not start/);
      untap();
      assert.ok(killed, 'the fault was injected');
      const left = bench.model.vmNames().filter((n) => n.startsWith(PROBE_VM_PREFIX));
      assert.equal(left.length, 1, 'the killed probe left its VM');
      await bench.startDaemon();
      await bench.waitForDaemonLog(/destroyed probe VMs an interrupted probe left behind/, 5000);
      assert.deepEqual(bench.model.vmNames().filter((n) => n.startsWith(PROBE_VM_PREFIX)), []);
      assert.deepEqual(await bench.daemonKernel(), { variant: kernel, by: 'experiment' });
      const r = await bench.spawnBhyve({ bhyve: '13.1', vcpus: 2, vmName: `after-kill-${kernel}`, shim: true, timeoutMs: 20000 }).result;
      assert.deepEqual(r.apsStarted, [1], r.bhyveStderr);
    } finally {
      await bench.close();
    }
  });
}

test('the probe never touches another VM: a running VM survives a daemon start; only a dead process\'s probe VM is swept', async () => {
  const bench = await LabBench.start({ kernel: 'legacy13' });
  try {
    // A VM booting while the daemon starts (the guest waits before it starts its APs).
    const run = bench.spawnBhyve({ bhyve: '13.1', vcpus: 4, vmName: 'running', shim: false, timeoutMs: 30000, guest: buildSmpBoot({ startDelayMs: 1500 }) });
    const thread = await connectKernel(bench.model.socketPath, { pid: process.pid });
    const dead = `${PROBE_VM_PREFIX}999999-1`;
    const alive = `${PROBE_VM_PREFIX}${process.pid}-7`;
    for (const name of [dead, alive, 'vmm-compat-probe-not-ours']) {
      assert.equal((await thread.sysctl('hw.vmm.create', name)).ret, 0, name);
    }
    thread.end();
    const touched = new Set<string>();
    const untap = bench.model.tap((e) => {
      if (e.pid === bench.daemon?.pid) touched.add(e.vm);
    });
    const daemon = await bench.startDaemon();
    const daemonPid = daemon.pid!;
    await bench.waitForDaemonLog(/"msg":"vmm-compatd started"/, 5000);
    untap();
    const r = await run.result;
    assert.deepEqual(r.apsStarted, [1, 2, 3], r.bhyveStderr);
    assert.equal(r.outcome, 'poweroff');
    assert.deepEqual([...touched].filter((vm) => !vm.startsWith(`${PROBE_VM_PREFIX}${daemonPid}-`)), [], 'the daemon opened or asked nothing of another VM');
    const names = bench.model.vmNames();
    assert.ok(!names.includes(dead), 'the probe VM of a process that is gone was swept');
    assert.ok(names.includes(alive), 'a probe VM whose process still runs is left alone');
    assert.ok(names.includes('vmm-compat-probe-not-ours'), 'a name of another form is never touched');
  } finally {
    await bench.close();
  }
});

test('the probe runs once per kernel: a restart on the same kernel uses the kept result; a changed kernel is probed again', async () => {
  const bench = await LabBench.start({ kernel: 'window' });
  try {
    let probeVms = 0;
    const untap = bench.model.tap((e) => {
      if (e.phase === 'open' && e.vm.startsWith(PROBE_VM_PREFIX)) probeVms++;
    });
    await bench.startDaemon();
    assert.equal(probeVms, 1);
    await bench.stopDaemon();
    await bench.startDaemon();
    assert.equal(probeVms, 1, 'no second probe on the same kernel');
    assert.match(bench.daemonLog(), /"experiment":\{"cached":true/);
    assert.deepEqual(await bench.daemonKernel(), { variant: 'window', by: 'experiment' });
    await bench.stopDaemon();
    // The same file after a reboot: another boot time.
    const cache = JSON.parse(fs.readFileSync(bench.probeCachePath, 'utf8')) as { identity: { bootTime: string } };
    cache.identity.bootTime = '1.000000';
    fs.writeFileSync(bench.probeCachePath, JSON.stringify(cache));
    await bench.startDaemon();
    assert.equal(probeVms, 2);
    assert.match(bench.daemonLog(), /"cacheMiss":"the kernel changed since the last probe \(boot time\)"/);
    untap();
  } finally {
    await bench.close();
  }
});

test('no probe VM can be made (no privilege): kern.osreldate decides and the log says why; a 14-CURRENT osreldate then needs kernel_variant', async () => {
  const ok = await LabBench.start({ kernel: 'fixed14', refuseVmCreate: 'EPERM' });
  try {
    await ok.startDaemon();
    assert.deepEqual(await ok.daemonKernel(), { variant: 'fixed14', by: 'osreldate' });
    assert.match(ok.daemonLog(), /no probe VM can be made; identifying the kernel from kern\.osreldate/);
    assert.match(ok.daemonLog(), /not allowed to create a VM \(EPERM\)/);
  } finally {
    await ok.close();
  }
  const ambiguous = await LabBench.start({ kernel: 'window', refuseVmCreate: 'EPERM' });
  try {
    await assert.rejects(ambiguous.startDaemon(), /cannot identify the kernel reliably: no probe VM can be made: not allowed to create a VM \(EPERM\).*kern\.osreldate 1400076 is a 14-CURRENT build.*set kernel_variant/);
    await ambiguous.startDaemon([], { kernel: 'window' });
    assert.deepEqual(await ambiguous.daemonKernel(), { variant: 'window', by: 'config' });
  } finally {
    await ambiguous.close();
  }
});

test('`vmm-compat probe` prints what it found and how; --json carries the answers; the daemon\'s kernel-variant file carries the identified variant', async () => {
  const bench = await LabBench.start({ kernel: 'window', osreldate: 1400097 });
  try {
    const conf = path.join(bench.root, 'probe.conf');
    fs.writeFileSync(conf, `device_dir = ${path.join(bench.root, 'dev', 'vmm')}\nprobe_cache = ${bench.probeCachePath}\n`);
    const args = ['probe', '--config', conf, '--syscall-library', requireArtifact(ARTIFACTS.bridge)];
    const text = await runCli(args, bench.env);
    assert.equal(text.status, 0, text.stderr);
    assert.match(text.stdout, /INIT\/SIPI to the inactive AP 1: no SPINUP_AP: the guest ran on to its I\/O exit/);
    assert.match(text.stdout, /^variant: window \(by experiment\)$/m);
    assert.match(text.stdout, /warning: kern\.osreldate 1400097 says fixed14, but the experiment found window/);
    const json = await runCli([...args, '--json'], bench.env);
    assert.equal(json.status, 0, json.stderr);
    const report = JSON.parse(json.stdout) as { variant: string; by: string; osreldateVariant: string; experiment: { kind: string; answers: { vmrun32: string; apStart: { kind: string } } } };
    assert.equal(report.variant, 'window');
    assert.equal(report.by, 'experiment');
    assert.equal(report.osreldateVariant, 'fixed14');
    assert.equal(report.experiment.answers.vmrun32, 'ENOTTY');
    assert.equal(report.experiment.answers.apStart.kind, 'none');
    assert.deepEqual(bench.model.vmNames(), [], 'the probe destroyed its VM');
    await bench.startDaemon();
    // The file follows the socket startDaemon waits for.
    await bench.waitForDaemonLog(/"msg":"vmm-compatd started"/, 5000);
    assert.match(fs.readFileSync(path.join(bench.socketDir, 'kernel-variant'), 'utf8'), /^variant=window\n[\s\S]*identified_by=experiment\n$/);
  } finally {
    await bench.close();
  }
});

test('a BSP VM_RUN that never returns is bounded: the probe VM is suspended and destroyed, the daemon says why and falls back to kern.osreldate', async () => {
  // AP 1 made active under the probe with no thread on it (what the probe itself never does):
  // the INIT rendezvous then blocks the BSP in VM_RUN (vmm.c vm_handle_rendezvous), and so does
  // the suspend (vm_handle_suspend waits for every active vCPU).
  const bench = await LabBench.start({ kernel: 'fixed14' });
  try {
    let blocked = false;
    const untap = bench.model.tap((e) => {
      if (!blocked && e.phase === 'enter' && e.vm.startsWith(PROBE_VM_PREFIX) && e.request === REQ13.VM_RUN && e.arg?.readInt32LE(0) === 0) {
        blocked = bench.model.activateVcpu(e.vm, 1);
      }
    });
    const started = Date.now();
    await bench.startDaemon();
    untap();
    assert.ok(blocked, 'AP 1 was activated under the probe');
    assert.ok(Date.now() - started >= 2000, 'the daemon waited for the bound');
    assert.deepEqual(await bench.daemonKernel(), { variant: 'fixed14', by: 'osreldate' });
    assert.match(bench.daemonLog(), /the experiment was inconclusive: the AP start-up experiment was inconclusive \(VM_RUN did not return within 2000 ms\)/);
    assert.deepEqual(bench.model.vmNames().filter((n) => n.startsWith(PROBE_VM_PREFIX)), [], 'the probe VM was destroyed under its vCPU');
  } finally {
    await bench.close();
  }
});
