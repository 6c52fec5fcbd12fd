import type { Command } from 'commander';
import { ConfigError, DEFAULT_CONFIG_PATH, loadConfig, type Config } from '../../config/config';
import { formatDoctor, jailRootFromJls, runDoctor } from '../../doctor/checks';
import { openVmmDevice, openVmmSyscalls, type VmmDevice, type VmmSyscalls } from '../../daemon/vmm-device';
import { defaultInterposer } from '../../native-paths';
import { INTERPOSER_DIR, LEGACY_BHYVE_DIR } from '../../jails/jail-setup';
import { usageError } from '../usage';

function parseJailRoot(value: string, previous: Map<string, string> = new Map()): Map<string, string> {
  const m = /^([^=]+)=(\/.*)$/.exec(value);
  if (!m) throw usageError(`--jail-root takes NAME=/absolute/path, not "${value}"`);
  return new Map([...previous, [m[1]!, m[2]!]]);
}

export function registerDoctorCommand(program: Command): void {
  program
    .command('doctor')
    .description('check this host (kernel, vmm, daemon, sockets, interposer, legacy bhyve); each failure names its fix')
    .option('-c, --config <file>', 'configuration file', DEFAULT_CONFIG_PATH)
    .option('--interposer <lib>', 'libvmmcompat.so to check')
    .option('--legacy-bhyve <path>', 'the 13.1 bhyve to check', `${LEGACY_BHYVE_DIR}/bhyve`)
    // No default values: commander would print them as "(default: [])" and "(default: {})".
    .option('--bhyve <path>', 'a bhyve binary to judge: its release (ELF ABI tag) and whether it needs vmm-compat on this kernel, and why (repeatable)', (v: string, prev?: string[]) => [...(prev ?? []), v])
    .option('--jail-root <name=path>', 'root of a jail (repeatable; default: from jls)', parseJailRoot)
    .option('--json', 'print the results as JSON')
    .action(async (opts: { config: string; interposer?: string; legacyBhyve: string; bhyve?: string[]; jailRoot?: Map<string, string>; json?: boolean }, command: Command) => {
      let config: Config | null = null;
      let configError: string | null = null;
      try {
        config = loadConfig(opts.config, { mustExist: command.getOptionValueSource('config') === 'cli' });
      } catch (err) {
        if (!(err instanceof ConfigError)) throw err;
        configError = err.message;
      }
      let device: VmmDevice | null = null;
      let syscalls: VmmSyscalls | null = null;
      if (config) {
        try {
          device = openVmmDevice(config.syscallLibrary);
          syscalls = openVmmSyscalls(config.syscallLibrary);
        } catch {
          device = null;
          syscalls = null;
        }
      }
      const jailRoots = new Map(opts.jailRoot ?? []);
      for (const jail of config?.jails ?? []) {
        if (!jailRoots.has(jail.name)) {
          const root = jailRootFromJls(jail.name);
          if (root) jailRoots.set(jail.name, root);
        }
      }
      const interposer = opts.interposer ?? defaultInterposer();
      const results = await runDoctor({
        config,
        configPath: opts.config,
        configError,
        interposer,
        legacyBhyve: opts.legacyBhyve,
        bhyves: opts.bhyve ?? [],
        jailRoots,
        interposerInJail: `${INTERPOSER_DIR}/libvmmcompat.so`,
        device,
        syscalls,
      });
      process.stdout.write(opts.json ? JSON.stringify(results, null, 2) + '\n' : formatDoctor(results));
      process.exitCode = results.some((r) => r.status === 'fail') ? 1 : 0;
    });
}
