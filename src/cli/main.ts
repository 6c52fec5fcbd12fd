// vmm-compat command line: one module per subcommand under ./commands.
import { Command } from 'commander';
import { registerAbiCommand } from './commands/abi';
import { registerDaemonCommand } from './commands/daemon';
import { registerStatusCommand } from './commands/status';
import { registerLabCommand } from './commands/lab';
import { registerWrapCommand } from './commands/wrap';
import { registerDoctorCommand } from './commands/doctor';
import { registerProbeCommand } from './commands/probe';
import { registerJailSetupCommand } from './commands/jail-setup';
import { registerGuestsCommand } from './commands/guests';
import { registerSelftestCommand } from './commands/selftest';
import { UsageError } from './usage';
import { ConfigError } from '../config/config';
import { VERSION } from '../version';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('vmm-compat')
    .description('Boot the bhyve of older FreeBSD releases (13.x, 14.x) with every vCPU on newer vmm.ko kernels')
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride((err) => {
      // commander usage errors exit 2, like other BSD tools; help and version exit 0.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') {
        process.exit(0);
      }
      process.exit(err.exitCode === 0 ? 0 : 2);
    });
  registerAbiCommand(program);
  registerDaemonCommand(program);
  registerStatusCommand(program);
  registerLabCommand(program);
  registerWrapCommand(program);
  registerDoctorCommand(program);
  registerProbeCommand(program);
  registerJailSetupCommand(program);
  registerGuestsCommand(program);
  registerSelftestCommand(program);
  return program;
}

/** Runs the CLI; errors become one clear line on stderr (usage and configuration errors exit 2). */
export async function main(argv: string[]): Promise<void> {
  // A reader that goes away (`| head`) is not an error of the command: later writes are dropped
  // and the command still finishes its own clean-up (VMs, lab daemons) and exits with its status.
  process.stdout.on('error', (err: NodeJS.ErrnoException) => {
    if (err.code !== 'EPIPE' && err.code !== 'ERR_STREAM_DESTROYED') throw err;
  });
  try {
    await buildProgram().parseAsync(argv);
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    process.stderr.write(`vmm-compat: ${message}\n`);
    process.exit(err instanceof UsageError || err instanceof ConfigError ? 2 : 1);
  }
}

if (require.main === module) void main(process.argv);
