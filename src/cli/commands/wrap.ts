import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import type { Command } from 'commander';
import { DEFAULT_CONFIG_PATH, loadConfig, type Config } from '../../config/config';
import { defaultInterposer } from '../../native-paths';
import { usageError } from '../usage';
import { syslogError } from '../syslog';

/**
 * wrap's status when it refuses to start the program: 4, bhyve's "exited due to an error".
 * vm-bhyve takes 1 and 2 for a power-off and a halt (lib/vm-run vm::handle_exit).
 */
export const WRAP_REFUSED = 4;

export interface WrapOptions {
  socketDir: string;
  interposer: string;
  /** Libraries that must precede the interposer (sanitizer runtimes for its ASan build). */
  preloadFirst?: string[];
  extraPreload: string[];
  requireDaemon: boolean;
  config: Config;
}

/** The environment legacy bhyve runs with: the interposer first, so its ioctl wins lookup. */
export function wrapEnvironment(base: NodeJS.ProcessEnv, o: WrapOptions): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { ...base };
  env.LD_PRELOAD = [...(o.preloadFirst ?? []), o.interposer, ...o.extraPreload].join(' ');
  env.VMM_COMPAT_SOCKET_DIR = o.socketDir;
  // A stricter setting already in the environment is kept, never dropped.
  if (o.requireDaemon || base.VMM_COMPAT_REQUIRE_DAEMON === '1') env.VMM_COMPAT_REQUIRE_DAEMON = '1';
  else delete env.VMM_COMPAT_REQUIRE_DAEMON;
  env.VMM_COMPAT_PARKER_BOOT_POLL_US = String(o.config.parkerBootPollUs);
  env.VMM_COMPAT_PARKER_BOOT_WINDOW_MS = String(o.config.parkerBootWindowMs);
  env.VMM_COMPAT_PARKER_IDLE_POLL_MS = String(o.config.parkerIdlePollMs);
  if (o.config.kernelVariant !== 'auto') env.VMM_COMPAT_KERNEL = o.config.kernelVariant;
  return env;
}

type Execve = (file: string, args: string[], env: NodeJS.ProcessEnv) => never;

/** Ends wrap without starting the program: standard error, syslog, status 4. */
function refuse(message: string): never {
  process.stderr.write(`vmm-compat wrap: ${message}\n`);
  syslogError(`wrap: ${message}`);
  process.exit(WRAP_REFUSED);
}

/**
 * Replaces this process where Node can (process.execve, Node >= 23.11); otherwise supervises.
 * Either way the program's argv[0] is its basename, as when vm-bhyve runs it by name: vm-bhyve
 * finds a guest with pgrep -fx "bhyve[: ].* NAME" (lib/vm-rctl).
 */
function execOrSupervise(file: string, args: string[], env: NodeJS.ProcessEnv): void {
  const argv0 = path.basename(file);
  const execve = (process as unknown as { execve?: Execve }).execve;
  if (typeof execve === 'function') execve(file, [argv0, ...args], env);
  const child = spawn(file, args, { env, stdio: 'inherit', argv0 });
  // While supervising, this process's command line names the program and ends with the VM's
  // name, as the program's own does: vm-bhyve's `vm stop` (lib/vm-core) would find two pids
  // for a loader (pgrep -fl "grub-bhyve|bhyveload" | grep " NAME$") and its kill would fail.
  if (child.pid !== undefined) process.title = `vmm-compat wrap: supervising pid ${child.pid}`;
  const forward = (signal: NodeJS.Signals): void => {
    child.kill(signal);
  };
  const signals: NodeJS.Signals[] = ['SIGTERM', 'SIGINT', 'SIGHUP', 'SIGUSR1', 'SIGUSR2'];
  for (const s of signals) process.on(s, forward);
  child.on('error', (err) => {
    process.stderr.write(`vmm-compat wrap: cannot run ${file}: ${err.message}\n`);
    syslogError(`wrap: cannot run ${file}: ${err.message}`);
    process.exit(127);
  });
  child.on('exit', (status, signal) => {
    for (const s of signals) process.off(s, forward);
    if (signal) process.kill(process.pid, signal);
    process.exit(status ?? 1);
  });
}

export function registerWrapCommand(program: Command): void {
  program
    .command('wrap')
    // Its own usage errors are refusals too (commander has printed the message).
    .exitOverride((err) => {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.help' || err.code === 'commander.version') process.exit(0);
      syslogError(`wrap: ${err.message.replace(/^error: /, '')}`);
      process.exit(WRAP_REFUSED);
    })
    .description('run an older bhyve (13.x, or a 14.x jail\'s on 15.x), bhyveload or grub-bhyve with libvmmcompat.so preloaded: vmm-compat wrap -- /path/to/bhyve ARGS...')
    .option('-c, --config <file>', 'configuration file', DEFAULT_CONFIG_PATH)
    .option('--socket-dir <dir>', "the daemon's socket directory as seen from here (in a jail: its nullfs view)")
    .option('--interposer <lib>', 'path of libvmmcompat.so')
    // No default value: commander would print it as "(default: [])".
    .option('--preload-first <lib>', 'a library preloaded before the interposer (sanitizer runtime; repeatable)', (v: string, prev?: string[]) => [...(prev ?? []), v])
    .option('--extra-preload <lib>', 'another library preloaded after the interposer (the lab bridge; repeatable)', (v: string, prev?: string[]) => [...(prev ?? []), v])
    .option('--require-daemon', 'refuse to start the VM when vmm-compatd cannot be reached')
    .argument('<bhyve>', 'the legacy bhyve binary')
    .argument('[args...]', 'its arguments')
    .action((bhyve: string, args: string[], opts: { config: string; socketDir?: string; interposer?: string; preloadFirst?: string[]; extraPreload?: string[]; requireDaemon?: boolean }, command: Command) => {
      let env: NodeJS.ProcessEnv;
      try {
        const config = loadConfig(opts.config, { mustExist: command.getOptionValueSource('config') === 'cli' });
        const interposer = opts.interposer ?? defaultInterposer();
        if (!fs.existsSync(interposer)) throw usageError(`interposer ${interposer} not found; build it (npm run build) or pass --interposer`);
        if (!path.isAbsolute(bhyve) && !bhyve.includes('/')) {
          throw usageError(`give the legacy bhyve as a path (e.g. /usr/local/libexec/vmm-compat/legacy13/bhyve), not "${bhyve}"`);
        }
        if (!fs.existsSync(bhyve)) throw usageError(`legacy bhyve ${bhyve} not found`);
        env = wrapEnvironment(process.env, {
          socketDir: opts.socketDir ?? config.socketDir,
          interposer,
          preloadFirst: opts.preloadFirst ?? [],
          extraPreload: opts.extraPreload ?? [],
          requireDaemon: Boolean(opts.requireDaemon) || config.failurePolicy === 'refuse',
          config,
        });
      } catch (err) {
        refuse(err instanceof Error ? err.message : String(err));
      }
      execOrSupervise(bhyve, args, env);
    });
}
