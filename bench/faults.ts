// npm run faults: the whole fault matrix (src/lab/faults/matrix.ts): vmm-compatd SIGKILLed or
// SIGSTOPped for 5 s, or bhyve SIGKILLed, at every compat event on every kernel with 2, 4 and
// 16 vCPUs; every skipped combination confirmed by a fault-free run. Writes
// bench/results/<date>-<commit>-faults.json and the `faults` section of latest.json.
// Options: --quick (the npm test slice instead of the whole table), --concurrency N (default 2),
// --kernel NAME (one kernel of the table), --event NAME (one event kind).
import { faultMatrix, representativeSlice } from '../src/lab/faults/matrix';
import { formatFaultReport, runFaultMatrix } from '../src/lab/faults/run';
import { currentCommit, machineInfo, mergeSectionIntoLatest, writeDatedReport } from './results-file';

const args = process.argv.slice(2);
const valueOf = (flag: string): string | undefined => args.find((_a, i) => args[i - 1] === flag);
const quick = args.includes('--quick');
const concurrency = Number(valueOf('--concurrency') ?? 2);
const kernel = valueOf('--kernel');
const event = valueOf('--event');

function say(line: string): void {
  process.stderr.write(`faults: ${line}\n`);
}

async function main(): Promise<void> {
  if (!Number.isInteger(concurrency) || concurrency < 1 || concurrency > 8) throw new Error(`--concurrency must be 1..8, not ${valueOf('--concurrency')}`);
  const matrix = faultMatrix();
  const keep = (c: { kernel: { name: string } | string; event: string }): boolean =>
    (kernel === undefined || (typeof c.kernel === 'string' ? c.kernel : c.kernel.name) === kernel) && (event === undefined || c.event === event);
  const cases = (quick ? representativeSlice(matrix) : matrix.cases).filter(keep);
  const skipped = matrix.skipped.filter(keep);
  if (cases.length === 0) throw new Error(`no case matches --kernel ${kernel ?? '*'} --event ${event ?? '*'}`);
  const date = new Date().toISOString();
  const commit = currentCommit();
  const report = await runFaultMatrix({ cases, skipped: quick ? [] : skipped, concurrency, confirmSkips: !quick, progress: say });
  for (const line of formatFaultReport(report)) process.stdout.write(`${line}\n`);
  const partial = quick || kernel !== undefined || event !== undefined;
  const file = writeDatedReport({ date, commit, quick: partial, machine: machineInfo(), faults: report }, '-faults');
  say(`report written to ${file}`);
  if (!partial) {
    const { cases: _perCase, ...summary } = report;
    mergeSectionIntoLatest('faults', { machine: machineInfo(), ...summary }, { date, commit });
    say('the faults section of bench/results/latest.json updated');
  }
  if (report.failures.length > 0 || report.skipped.unconfirmed.length > 0) process.exitCode = 1;
}

main().catch((err: unknown) => {
  process.stderr.write(`faults: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
