// selftest's output: a table of the boots with what they show about this host, or (--json) the
// report as one JSON object (docs/man/vmm-compat.8 lists its fields).
import type { BootRecord } from './boot';
import { verdictText, type SelftestReport } from './selftest';

/** Columns padded to their widest cell; `right` ones aligned right (numbers); the last not padded. */
function pad(cells: string[][], right: ReadonlySet<number>): string[] {
  const widths = cells[0]!.map((_, i) => Math.max(...cells.map((row) => row[i]!.length)));
  return cells.map((row) =>
    row
      .map((c, i) => (i === row.length - 1 ? c : right.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd(),
  );
}

function counts(runs: BootRecord[]): string {
  const list = [...new Set(runs.map((r) => r.vcpus))];
  return `${list.join(', ')} vCPU${list.length === 1 && list[0] === 1 ? '' : 's'}`;
}

/** Per bhyve: what its boots without the shim show about this host, and what the shim did. */
function conclusions(report: SelftestReport): string[] {
  const lines: string[] = [];
  for (const b of report.host.bhyves) {
    const mine = report.runs.filter((r) => r.bhyvePath === b.path);
    if (mine.length === 0) continue;
    const without = mine.filter((r) => !r.shim);
    const bug = without.filter((r) => r.verdict === 'host-bug');
    const fine = without.filter((r) => r.verdict === 'works-without-shim');
    const withShim = mine.filter((r) => r.shim);
    const passed = withShim.filter((r) => r.verdict === 'pass');
    const failed = withShim.filter((r) => r.verdict === 'fail');
    lines.push(`bhyve ${b.label} (${b.path}${b.releaseFrom === 'abi-tag' ? `, ABI tag ${b.version}` : ''}):`);
    if (without.length > 0) {
      lines.push(
        bug.length === 0
          ? `  without the shim: every boot worked (${counts(fine)}): this host does not have the bug for this bhyve`
          : `  without the shim: the bug this host has, at ${counts(bug)}${fine.length > 0 ? ` (${counts(fine)}: boots)` : ''}: ${bug.at(-1)!.detail}`,
      );
    }
    lines.push(
      `  with the shim: ${passed.length} of ${withShim.length} boots started every AP and powered off` +
        (failed.length === 0 ? '' : `; failed at ${counts(failed)}: ${failed.at(-1)!.detail}`),
    );
  }
  return lines;
}

export function formatSelftest(report: SelftestReport): string {
  const h = report.host;
  const out: string[] = [];
  const variant = h.variant === null ? 'not identified' : `${h.variant} (by ${h.variantBy ?? 'unknown'}${h.variantFrom === 'daemon' ? ', vmm-compatd' : h.variantFrom === 'probe' ? ', vmm-compat probe' : ''})`;
  out.push(`${h.mode === 'lab' ? `lab (kernel model ${h.labKernel}): ` : ''}${h.kernel ?? 'kernel unknown'}`);
  out.push(
    `kern.osreldate ${h.osreldate ?? 'unknown'}, kernel variant ${variant}, hw.vmm.maxcpu ${h.maxcpu ?? 'none'}, ` +
      (h.daemon.running ? `vmm-compatd ${h.daemon.version} (pid ${h.daemon.pid})` : 'vmm-compatd not running'),
  );
  if (report.runs.length > 0) {
    out.push('');
    const rows = [['bhyve', 'vCPUs', 'shim', 'outcome', 'APs', 'exit', 'ms', 'verdict']];
    for (const r of report.runs) {
      const aps = `${r.apsStarted ?? '?'}/${r.apsExpected}`;
      const verdict = verdictText(r) + (r.shimMode !== null && r.shimMode !== 'daemon' ? ` (${r.shimMode})` : '') + (r.verdict === 'pass' || r.verdict === 'works-without-shim' ? '' : `: ${r.detail}`);
      rows.push([r.bhyve, String(r.vcpus), r.shim ? 'with' : 'without', r.outcome, aps, r.exitSignal ?? String(r.exitStatus ?? '-'), String(r.elapsedMs), verdict]);
    }
    out.push(...pad(rows, new Set([1, 4, 5, 6])));
    out.push('');
    out.push(...conclusions(report));
  }
  out.push('');
  if (report.refusal !== null) out.push(`result: REFUSED: ${report.refusal}`);
  else if (report.ok) out.push(`result: PASS: every boot through the shim started every AP and powered off (${report.summary.passed} boots)`);
  else if (report.runs.every((r) => !r.shim)) out.push('result: FAIL: no boot through the shim was run');
  else out.push(`result: FAIL: ${report.summary.failed} of ${report.summary.passed + report.summary.failed} boots through the shim did not start every AP and power off`);
  return out.join('\n') + '\n';
}
