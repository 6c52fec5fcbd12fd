import path from 'node:path';
import { Command, Option } from 'commander';
import { runDaemon } from '../../daemon/daemon';
import { KERNEL_VARIANTS, type KernelVariant } from '../../daemon/kernel-variant';
import { DEFAULT_CONFIG_PATH, type Config } from '../../config/config';
import { usageError } from '../usage';
import { recordExitTo } from '../../daemon/exit-record';

function parseJail(value: string, previous: { name: string; socketDir: string }[] = []): { name: string; socketDir: string }[] {
  const m = /^([A-Za-z0-9_][A-Za-z0-9_.-]*)=(\/.+)$/.exec(value);
  if (!m) throw usageError(`--jail takes NAME=/absolute/socket/dir, not "${value}"`);
  return [...previous, { name: m[1]!, socketDir: m[2]! }];
}

interface DaemonCliOptions {
  config: string;
  kernel?: KernelVariant;
  probeCache?: string;
  socketDir?: string;
  jail?: { name: string; socketDir: string }[];
  syscallLibrary?: string;
  deviceDir?: string;
  logLevel?: Config['logLevel'];
  compatFreebsd13: boolean;
  exitRecord?: string;
}

export function registerDaemonCommand(program: Command): void {
  program
    .command('daemon')
    .description('run vmm-compatd in the foreground (rc.d runs it under daemon(8))')
    .option('-c, --config <file>', 'configuration file', DEFAULT_CONFIG_PATH)
    .addOption(new Option('--kernel <variant>', 'kernel variant (overrides kernel_variant; without it, and with kernel_variant = auto, a probe VM identifies the kernel)').choices([...KERNEL_VARIANTS]))
    .option('--probe-cache <file>', 'where the kernel probe\'s result is kept (overrides probe_cache)')
    .option('--socket-dir <dir>', "the host's socket directory (overrides socket_dir)")
    .option('--jail <name=dir>', 'serve a jail socket directory (repeatable; replaces [jail] sections)', parseJail)
    .option('--syscall-library <path>', 'library providing open/ioctl (libc.so.7, or the lab bridge)')
    .option('--device-dir <dir>', 'directory of the VM device nodes (default /dev/vmm)')
    .addOption(new Option('--log-level <level>').choices(['fatal', 'error', 'warn', 'info', 'debug', 'trace']))
    .option('--no-compat-freebsd13', 'the kernel lacks COMPAT_FREEBSD13: translate the 144-byte VM_RUN')
    .option('--exit-record <file>', 'write how the daemon ended (pid, status, time, reason) to this file when it exits')
    .action(async (opts: DaemonCliOptions, command: Command) => {
      const recorder = opts.exitRecord ? recordExitTo(opts.exitRecord) : null;
      if (recorder) for (const signal of ['SIGTERM', 'SIGINT'] as const) process.on(signal, () => recorder.stopped(signal));
      try {
        await runDaemon({
          configPath: opts.config,
          configMustExist: command.getOptionValueSource('config') === 'cli',
          overrides: {
            kernelVariant: opts.kernel,
            probeCache: opts.probeCache === undefined ? undefined : path.resolve(opts.probeCache),
            socketDir: opts.socketDir,
            jails: opts.jail ?? [],
            syscallLibrary: opts.syscallLibrary,
            deviceDir: opts.deviceDir,
            logLevel: opts.logLevel,
            compatFreebsd13: command.getOptionValueSource('compatFreebsd13') === 'cli' ? opts.compatFreebsd13 : undefined,
          },
        });
      } catch (err) {
        recorder?.fatal(err instanceof Error ? err.message : String(err));
        throw err;
      }
    });
}
