// npm run soak: one VM rebooted 1,000 times the way vm-bhyve reboots a 13.1 UEFI guest (reset, bhyve
// exits 0, bhyve again on the same VM through VM_REINIT) under the interposer and one daemon, on
// the window kernel (eager activation, parkers, handovers) and on main15 through the boot ROM.
// Writes bench/results/<date>-<commit>-soak.json and the `soak` section of latest.json.
// Options: --boots N (default 1000), --vcpus N (default 4), --kernel window|main15 (default both),
// --quick (30 boots).
import { formatSoak, runSoak, type SoakResult } from '../src/lab/soak/run';
import { currentCommit, machineInfo, mergeSectionIntoLatest, writeDatedReport } from './results-file';
import type { LabKernelName } from '../src/lab/run';

const args = process.argv.slice(2);
const valueOf = (flag: string): string | undefined => args.find((_a, i) => args[i - 1] === flag);
const quick = args.includes('--quick');
const boots = Number(valueOf('--boots') ?? (quick ? 30 : 1000));
const vcpus = Number(valueOf('--vcpus') ?? 4);
const SOAK_KERNELS: readonly LabKernelName[] = ['window', 'main15'];
const kernelArg = valueOf('--kernel');

function say(line: string): void {
  process.stderr.write(`soak: ${line}\n`);
}

async function main(): Promise<void> {
  if (!Number.isInteger(boots) || boots < 2) throw new Error(`--boots must be a whole number of at least 2, not ${valueOf('--boots')}`);
  if (!Number.isInteger(vcpus) || vcpus < 2 || vcpus > 16) throw new Error(`--vcpus must be 2..16 (13.1 bhyve), not ${valueOf('--vcpus')}`);
  if (kernelArg !== undefined && !(SOAK_KERNELS as readonly string[]).includes(kernelArg)) {
    throw new Error(`--kernel must be one of ${SOAK_KERNELS.join(', ')}, not ${kernelArg}`);
  }
  const kernels = kernelArg === undefined ? SOAK_KERNELS : [kernelArg as LabKernelName];
  const date = new Date().toISOString();
  const commit = currentCommit();
  const results: Partial<Record<LabKernelName, SoakResult>> = {};
  for (const kernel of kernels) {
    say(`${kernel}: ${boots} reboots of one ${vcpus}-vCPU VM through the boot ROM, one daemon`);
    const r = await runSoak({ kernel, boots, vcpus, progress: say });
    results[kernel] = r;
    for (const line of formatSoak(r)) process.stdout.write(`${line}\n`);
  }
  const partial = quick || boots !== 1000 || kernelArg !== undefined;
  const file = writeDatedReport({ date, commit, quick: partial, machine: machineInfo(), soak: results }, '-soak');
  say(`report written to ${file}`);
  if (!partial) {
    mergeSectionIntoLatest('soak', { machine: machineInfo(), vcpus, boots, ...results }, { date, commit });
    say('the soak section of bench/results/latest.json updated');
  }
  if (Object.values(results).some((r) => !r.flat)) process.exitCode = 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`soak: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
