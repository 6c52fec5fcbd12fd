// vmm-compat command line: one module per subcommand under ./commands.
import { Command } from 'commander';
import { registerAbiCommand } from './commands/abi';
import { VERSION } from '../version';

export function buildProgram(): Command {
  const program = new Command();
  program
    .name('vmm-compat')
    .description('Boot legacy FreeBSD 13.1 bhyve guests with every vCPU on newer vmm.ko kernels')
    .version(VERSION)
    .showHelpAfterError()
    .exitOverride((err) => {
      // commander usage errors exit 2, like other BSD tools; help and version exit 0.
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version') process.exit(0);
      process.exit(err.exitCode === 0 ? 0 : 2);
    });
  registerAbiCommand(program);
  return program;
}

if (require.main === module) {
  buildProgram().parseAsync(process.argv).catch((err: unknown) => {
    process.stderr.write(`vmm-compat: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
