import type { Command } from 'commander';
import { DEFAULT_CONFIG_PATH, loadConfig } from '../../config/config';
import { cannotTell, identifyKernel, VARIANT_FACTS } from '../../daemon/kernel-variant';
import { openVmmDevice } from '../../daemon/vmm-device';
import { usageError } from '../usage';

export function registerProbeCommand(program: Command): void {
  program
    .command('probe')
    .description('identify the kernel variant from kern.osreldate and print what it means for 13.1 bhyve')
    .option('-c, --config <file>', 'configuration file', DEFAULT_CONFIG_PATH)
    .option('--syscall-library <path>', 'library providing sysctlbyname (default from the configuration)')
    .option('--osreldate <n>', 'identify this kern.osreldate instead of the running kernel')
    .option('--json', 'print JSON')
    .action((opts: { config: string; syscallLibrary?: string; osreldate?: string; json?: boolean }, command: Command) => {
      let osreldate: number | null;
      if (opts.osreldate !== undefined) {
        if (!/^\d+$/.test(opts.osreldate)) throw usageError(`--osreldate takes a number such as 1400097, not "${opts.osreldate}"`);
        osreldate = Number(opts.osreldate);
      } else {
        const config = loadConfig(opts.config, { mustExist: command.getOptionValueSource('config') === 'cli' });
        osreldate = openVmmDevice(opts.syscallLibrary ?? config.syscallLibrary).sysctlInt('kern.osreldate');
      }
      const id = osreldate === null ? { variant: null, why: 'kern.osreldate cannot be read here (not FreeBSD?)' } : identifyKernel(osreldate);
      const facts = id.variant ? VARIANT_FACTS[id.variant] : null;
      const unknowns = id.variant ? cannotTell(id.variant) : [];
      const report = { osreldate, variant: id.variant, why: id.why, facts, cannotTell: unknowns };
      if (opts.json) process.stdout.write(JSON.stringify(report, null, 2) + '\n');
      else {
        process.stdout.write(`kern.osreldate: ${osreldate ?? 'unknown'}\nvariant: ${id.variant ?? 'not identified'}\nwhy: ${id.why}\n`);
        if (facts) {
          process.stdout.write(
            `kernel cpuset_t: ${facts.kernelCpusetBytes} bytes\neager activation: ${facts.eagerActivation ? 'yes' : 'no'}\nSPINUP_AP correction: ${facts.spinupBias}\n${facts.summary}\n`,
          );
          for (const u of unknowns) process.stdout.write(`not told by kern.osreldate: ${u}\n`);
        } else {
          process.stdout.write('fix: set kernel_variant in the configuration\n');
        }
      }
      process.exitCode = id.variant ? 0 : 1;
    });
}
