// One process of the `probe` benchmark: runs the daemon's kernel probe N times against the lab
// kernel model named by VMMLAB_KERNEL_SOCK and prints one JSON line per probe. The first probe
// of the process is the one a daemon's start pays (nothing warmed up); the others show the
// steady cost.
import { openVmmSyscalls } from '../src/daemon/vmm-device';
import { runKernelProbe } from '../src/daemon/kernel-probe';

async function main(): Promise<void> {
  const [library, countArg] = process.argv.slice(2);
  if (!library || !countArg) throw new Error('usage: probe-child.js LIBRARY COUNT');
  const sys = openVmmSyscalls(library);
  for (let i = 0; i < Number(countArg); i++) {
    const r = await runKernelProbe(sys, { library });
    const variant = r.kind === 'answered' ? r.classification.variant : null;
    process.stdout.write(JSON.stringify({ index: i, elapsedMs: r.elapsedMs, variant, why: r.kind === 'answered' ? r.classification.why : r.why }) + '\n');
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`probe-child: ${err instanceof Error ? err.stack ?? err.message : String(err)}\n`);
  process.exit(1);
});
