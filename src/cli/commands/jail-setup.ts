import type { Command } from 'commander';
import { DEFAULT_CONFIG_PATH, loadConfig } from '../../config/config';
import { applyJailPlan, formatJailPlan, jailNameProblem, planJail } from '../../jails/jail-setup';
import { usageError } from '../usage';

export function registerJailSetupCommand(program: Command): void {
  program
    .command('jail-setup')
    .description('print what a jail needs to run legacy bhyve through vmm-compat; --apply also creates what it safely can')
    .argument('<jail>', 'the jail name')
    .option('-c, --config <file>', 'configuration file', DEFAULT_CONFIG_PATH)
    .option('--apply', 'after printing, create the socket directory and add the [jail] section and the devfs ruleset where missing (never jail.conf, no files into the jail)')
    .option('--devfs-rules <file>', 'devfs rules file to extend with --apply', '/etc/devfs.rules')
    .option('--jail-root <path>', 'the jail root, to create the mount points inside it with --apply')
    .action((jail: string, opts: { config: string; apply?: boolean; devfsRules: string; jailRoot?: string }) => {
      const problem = jailNameProblem(jail);
      if (problem) throw usageError(problem);
      const config = loadConfig(opts.config, { mustExist: false });
      const plan = planJail(config, jail);
      process.stdout.write(formatJailPlan(plan));
      if (!opts.apply) return;
      const result = applyJailPlan(plan, { configPath: opts.config, devfsRules: opts.devfsRules, jailRoot: opts.jailRoot });
      for (const line of result.done) process.stdout.write(`applied: ${line}\n`);
      for (const line of result.unchanged) process.stdout.write(`unchanged: ${line}\n`);
      process.stdout.write('next: merge the jail.conf lines above, then service vmm_compatd reload and service devfs restart\n');
    });
}
