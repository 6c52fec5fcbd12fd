// vmm-compat selftest: boot the ROM guest with each legacy bhyve, without and with the shim, and
// report what this host does (src/selftest/).
import { Command, Option } from 'commander';
import { DEFAULT_CONFIG_PATH, loadConfig } from '../../config/config';
import { LAB_BHYVES, LAB_KERNELS, type LabKernelName } from '../../lab/run';
import { LAB_MAX_HOST_CPUS } from '../../lab/kernel/server';
import { DEFAULT_MAX_VCPUS, MAX_SELFTEST_VCPUS } from '../../selftest/matrix';
import { DEFAULT_LEGACY_BHYVE, DEFAULT_TIMEOUT_MS, SelftestInterrupted, runSelftest } from '../../selftest/selftest';
import { formatSelftest } from '../../selftest/report';
import { usageError } from '../usage';

interface SelftestCliOptions {
  bhyve?: string[];
  maxVcpus: string;
  timeoutMs: string;
  json?: boolean;
  rom?: string;
  config: string;
  interposer?: string;
  lab?: LabKernelName;
  daemon: boolean;
  hostCpus?: string;
}

function wholeNumber(value: string, flag: string, min: number, max: number): number {
  const n = Number(value);
  if (!/^\d+$/.test(value) || n < min || n > max) throw usageError(`${flag} must be a whole number from ${min} to ${max}, not "${value}"`);
  return n;
}

const SIGNAL_NUMBERS: Readonly<Record<string, number>> = { SIGINT: 2, SIGTERM: 15 };

export function registerSelftestCommand(program: Command): void {
  program
    .command('selftest')
    .description('prove the shim on this host: boot the ROM guest with each legacy bhyve at 1, 2, 4 and the most vCPUs, without and with the shim')
    .option('--bhyve <path>', `a legacy bhyve to test (repeatable; default ${DEFAULT_LEGACY_BHYVE}); with --lab a lab bhyve model: ${LAB_BHYVES.join(', ')}`, (v: string, prev?: string[]) => [...(prev ?? []), v])
    .option('--max-vcpus <n>', `the largest vCPU count tried (1..${MAX_SELFTEST_VCPUS}; also bounded by the bhyve and hw.vmm.maxcpu)`, String(DEFAULT_MAX_VCPUS))
    .option('--timeout-ms <n>', 'time each boot gets before bhyve is killed and its VM destroyed', String(DEFAULT_TIMEOUT_MS))
    .option('--json', 'print one JSON object: the host facts and every boot')
    .option('--rom <file>', 'boot this vmm-compat boot ROM (vmm-compat guests --write) instead of the installed smp-boot.rom')
    .option('-c, --config <file>', 'configuration file (passed on to vmm-compat wrap)', DEFAULT_CONFIG_PATH)
    .option('--interposer <lib>', 'the libvmmcompat.so vmm-compat wrap preloads (passed on to it)')
    .addOption(new Option('--lab <kernel>', "run the same boots against the lab's kernel model, its own vmm-compatd and the lab bridge").choices([...LAB_KERNELS]))
    .option('--no-daemon', "with --lab: start no vmm-compatd (the boots through the shim show the interposer's fallback)")
    .option('--host-cpus <n>', `with --lab: the lab host's CPU count, which hw.vmm.maxcpu follows (1..${LAB_MAX_HOST_CPUS})`)
    .action(async (opts: SelftestCliOptions, command: Command) => {
      const maxVcpus = wholeNumber(opts.maxVcpus, '--max-vcpus', 1, MAX_SELFTEST_VCPUS);
      const timeoutMs = wholeNumber(opts.timeoutMs, '--timeout-ms', 100, 3600000);
      const hostCpus = opts.hostCpus === undefined ? undefined : wholeNumber(opts.hostCpus, '--host-cpus', 1, LAB_MAX_HOST_CPUS);
      const configExplicit = command.getOptionValueSource('config') === 'cli';
      const config = loadConfig(opts.config, { mustExist: configExplicit });
      const aborter = new AbortController();
      let caught: NodeJS.Signals | null = null;
      const onSignal = (signal: NodeJS.Signals): void => {
        if (caught !== null) process.exit(128 + (SIGNAL_NUMBERS[signal] ?? 1)); // a second signal: now
        caught = signal;
        process.stderr.write(`selftest: ${signal}: stopping the boot in progress and destroying its VM\n`);
        aborter.abort();
      };
      process.on('SIGINT', onSignal);
      process.on('SIGTERM', onSignal);
      try {
        const report = await runSelftest({
          lab: opts.lab ?? null,
          bhyves: opts.bhyve ?? [],
          maxVcpus,
          timeoutMs,
          rom: opts.rom ?? null,
          config,
          configPath: opts.config,
          configExplicit,
          interposer: opts.interposer ?? null,
          noDaemon: !opts.daemon,
          hostCpus,
          progress: (line) => void process.stderr.write(`selftest: ${line}\n`),
          signal: aborter.signal,
        });
        process.stdout.write(opts.json ? JSON.stringify(report) + '\n' : formatSelftest(report));
        process.exitCode = caught !== null ? 128 + (SIGNAL_NUMBERS[caught] ?? 1) : report.ok ? 0 : 1;
      } catch (err) {
        if (err instanceof SelftestInterrupted && caught !== null) {
          process.stderr.write(`selftest: ${err.message}; stopped by ${caught}\n`);
          process.exit(128 + (SIGNAL_NUMBERS[caught] ?? 1));
        }
        throw err;
      } finally {
        process.off('SIGINT', onSignal);
        process.off('SIGTERM', onSignal);
      }
    });
}
