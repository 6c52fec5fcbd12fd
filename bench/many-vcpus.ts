// Large VMs: how long a boot of 32, 64 and 256 vCPUs through the shim takes on the lab's window
// kernel (13.2-13.5 bhyve: maxcpus from the kernel), and what 255 parked APs cost, during the
// boot window and after the back-off. Called by run.ts (section `vcpus`).
import { LabBench, runLab } from '../src/lab/run';
import { buildSmpBoot } from '../src/lab/guests/smp-boot';
import { median, processCpuNs as threadsCpuNs } from '../src/lab/measure';

export interface ManyVcpusResult {
  bootMs: { vcpus: number; runs: number; median: number; allApsStarted: boolean }[];
  parked: {
    parkedAps: number;
    windowMs: number;
    phase: 'boot-window' | 'after-back-off';
    bhyveCorePercent: number;
    perApCorePercent: number;
    kernelModelCorePercent: number;
  }[];
}

const round = (x: number, digits = 3): number => Number(x.toFixed(digits));

async function parkedCost(phase: 'boot-window' | 'after-back-off', windowMs: number): Promise<ManyVcpusResult['parked'][number]> {
  const vcpus = 256;
  const bench = await LabBench.start({ kernel: 'window', hostCpus: vcpus });
  try {
    await bench.startDaemon(['--log-level', 'info']);
    // The guest starts no AP and halts: 255 APs stay parked until the VM is killed.
    const bootWindowMs = phase === 'boot-window' ? windowMs + 60000 : 500;
    const run = bench.spawnBhyve({
      bhyve: '13.5',
      vcpus,
      vmName: `bench-parked-${phase}`,
      shim: true,
      direct: true,
      timeoutMs: windowMs + 90000,
      guest: buildSmpBoot({ apWaitMs: 10, startMask: 0, finalAction: 'halt' }),
      env: { VMM_COMPAT_PARKER_BOOT_WINDOW_MS: String(bootWindowMs) },
    });
    await bench.waitForDaemonLog(/"event":"planned"/, 60000);
    // Let every parker start; after the window, let the back-off reach the idle poll.
    await new Promise((r) => setTimeout(r, phase === 'boot-window' ? 1000 : 3000));
    const pid = run.child.pid!;
    const before = threadsCpuNs(pid);
    const model = process.cpuUsage();
    await new Promise((r) => setTimeout(r, windowMs));
    const bhyveNs = threadsCpuNs(pid) - before;
    const used = process.cpuUsage(model);
    bench.kill(run);
    await run.result;
    const bhyveCorePercent = (bhyveNs / 1e6 / windowMs) * 100;
    return {
      parkedAps: vcpus - 1,
      windowMs,
      phase,
      bhyveCorePercent: round(bhyveCorePercent),
      perApCorePercent: round(bhyveCorePercent / (vcpus - 1), 4),
      kernelModelCorePercent: round(((used.user + used.system) / 1e3 / windowMs) * 100),
    };
  } finally {
    await bench.close();
  }
}

export async function benchManyVcpus(quick: boolean, say: (line: string) => void): Promise<ManyVcpusResult> {
  const bootMs: ManyVcpusResult['bootMs'] = [];
  for (const vcpus of [32, 64, 256]) {
    const runs = quick ? 1 : 3;
    const times: number[] = [];
    let allApsStarted = true;
    for (let i = 0; i < runs; i++) {
      const r = await runLab({ kernel: 'window', bhyve: '13.5', vcpus, hostCpus: vcpus, shim: true, timeoutMs: 300000, guest: buildSmpBoot({ apWaitMs: 2000 }) });
      times.push(r.elapsedMs);
      allApsStarted &&= r.apsStarted.length === vcpus - 1 && r.outcome === 'poweroff';
    }
    bootMs.push({ vcpus, runs, median: median(times), allApsStarted });
    say(`${vcpus} vCPUs through the shim (window, 13.5 bhyve): boot median ${median(times)} ms over ${runs} run(s), every AP started: ${allApsStarted}`);
  }
  const windowMs = quick ? 2000 : 5000;
  const parked = [await parkedCost('boot-window', windowMs), await parkedCost('after-back-off', windowMs)];
  for (const p of parked) {
    say(`255 parked APs, ${p.phase}: bhyve ${p.bhyveCorePercent}% of a core (${p.perApCorePercent}% per AP), kernel model ${p.kernelModelCorePercent}%`);
  }
  return { bootMs, parked };
}
