// The kernel probe's cost (section `probe`): the daemon's start-up experiment (probe VM, ABI
// questions, the BSP's VM_RUN on a worker thread, destroy) against the lab's model of every
// kernel, in fresh processes: the first probe of each process is what a daemon's start pays,
// the later ones the steady cost. Target: median under 100 ms (issue: "under 100 ms in the lab").
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startKernelModel } from '../src/lab/kernel/server';
import type { LabKernelName } from '../src/lab/run';
import { ARTIFACTS, requireArtifact } from '../src/native-paths';
import { median, percentile } from '../src/lab/measure';

interface ProbeKernel {
  name: string;
  kernel: LabKernelName;
  compatFreebsd13?: boolean;
  compatFreebsd14?: boolean;
}

const KERNELS: readonly ProbeKernel[] = [
  { name: 'legacy13', kernel: 'legacy13' },
  { name: 'window', kernel: 'window' },
  { name: 'fixed13', kernel: 'fixed13' },
  { name: 'fixed14', kernel: 'fixed14' },
  { name: 'fixed14-no-compat13', kernel: 'fixed14', compatFreebsd13: false },
  { name: 'main15', kernel: 'main15' },
  { name: 'main15-no-compat', kernel: 'main15', compatFreebsd13: false, compatFreebsd14: false },
];

export interface ProbeBenchKernel {
  kernel: string;
  probes: number;
  identifiedAs: string[];
  medianMs: number;
  firstInProcessMedianMs: number;
  maxMs: number;
}

export interface ProbeBenchResult {
  processesPerKernel: number;
  probesPerProcess: number;
  kernels: ProbeBenchKernel[];
  /** Over every probe of every kernel. */
  medianMs: number;
  p90Ms: number;
  /** The first probe of each process: a daemon's start. */
  firstInProcessMedianMs: number;
  firstInProcessP90Ms: number;
  allIdentified: boolean;
  target: { medianMsBelow: number; met: boolean };
}

function runChild(socket: string, root: string, count: number): Promise<{ elapsedMs: number; variant: string | null }[]> {
  const script = path.join(__dirname, 'probe-child.js');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [script, requireArtifact(ARTIFACTS.bridge), String(count)], {
      env: { ...process.env, VMMLAB_KERNEL_SOCK: socket, VMMLAB_ROOT: root },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.on('exit', (status) => {
      if (status !== 0) reject(new Error(`probe-child exited ${status}`));
      else resolve(out.trim().split('\n').map((l) => JSON.parse(l) as { elapsedMs: number; variant: string | null }));
    });
  });
}

export async function benchProbe(quick: boolean, say: (line: string) => void): Promise<ProbeBenchResult> {
  const processes = quick ? 2 : 5;
  const perProcess = quick ? 3 : 5;
  const kernels: ProbeBenchKernel[] = [];
  const all: number[] = [];
  const firsts: number[] = [];
  let allIdentified = true;
  say(`probe: ${KERNELS.length} kernels x ${processes} processes x ${perProcess} probes (the first of each process cold)...`);
  for (const k of KERNELS) {
    const root = fs.mkdtempSync(path.join(os.tmpdir(), 'vmm-bench-probe-'));
    const socket = path.join(root, 'kernel.sock');
    const model = await startKernelModel({ socketPath: socket, root, variant: k.kernel, compatFreebsd13: k.compatFreebsd13, compatFreebsd14: k.compatFreebsd14 });
    try {
      const samples: number[] = [];
      const first: number[] = [];
      const seen = new Set<string>();
      for (let p = 0; p < processes; p++) {
        const lines = await runChild(socket, root, perProcess);
        lines.forEach((l, i) => {
          samples.push(l.elapsedMs);
          if (i === 0) first.push(l.elapsedMs);
          seen.add(l.variant ?? 'none');
        });
      }
      const left = model.vmNames();
      if (left.length > 0) throw new Error(`probe VMs left on ${k.name}: ${left.join(', ')}`);
      const identified = seen.size === 1 && seen.has(k.kernel);
      allIdentified &&= identified;
      const row: ProbeBenchKernel = {
        kernel: k.name,
        probes: samples.length,
        identifiedAs: [...seen],
        medianMs: Number(median(samples).toFixed(1)),
        firstInProcessMedianMs: Number(median(first).toFixed(1)),
        maxMs: Number(Math.max(...samples).toFixed(1)),
      };
      kernels.push(row);
      all.push(...samples);
      firsts.push(...first);
      say(`  ${k.name}: median ${row.medianMs} ms, first in a process ${row.firstInProcessMedianMs} ms, max ${row.maxMs} ms; identified as ${row.identifiedAs.join(',')}`);
    } finally {
      await model.close();
      fs.rmSync(root, { recursive: true, force: true });
    }
  }
  const result: ProbeBenchResult = {
    processesPerKernel: processes,
    probesPerProcess: perProcess,
    kernels,
    medianMs: Number(median(all).toFixed(1)),
    p90Ms: Number(percentile(all, 90).toFixed(1)),
    firstInProcessMedianMs: Number(median(firsts).toFixed(1)),
    firstInProcessP90Ms: Number(percentile(firsts, 90).toFixed(1)),
    allIdentified,
    target: { medianMsBelow: 100, met: median(all) < 100 },
  };
  say(
    `probe: median ${result.medianMs} ms (p90 ${result.p90Ms}), first probe of a process median ${result.firstInProcessMedianMs} ms (p90 ${result.firstInProcessP90Ms}); ` +
      `every kernel identified: ${allIdentified ? 'yes' : 'NO'}; target median < 100 ms: ${result.target.met ? 'met' : 'NOT met'}`,
  );
  return result;
}
