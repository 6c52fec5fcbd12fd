// One line to syslog through logger(1) (FreeBSD base, util-linux elsewhere): tag vmm-compat,
// facility daemon, as the interposer's own lines (native-bindings/shim/log.c). For refusals that
// vm-bhyve would otherwise lose: it sends bhyve's standard error to /dev/null unless debug="yes".
import { spawnSync } from 'node:child_process';

export function syslogError(message: string): void {
  // No logger, or no syslogd: the line on standard error is all there is; never fail for it.
  spawnSync('logger', ['-t', 'vmm-compat', '-p', 'daemon.err', '--', message], { stdio: 'ignore', timeout: 5000 });
}
