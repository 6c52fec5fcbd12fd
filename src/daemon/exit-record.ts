// How the daemon last ended: one line in the file `vmm-compat daemon --exit-record FILE` names
// (rc.d/vmm_compatd passes /var/run/vmm_compatd.exit). daemon(8) restarts a daemon that died and
// records nothing of it, so this is what `service vmm_compatd status` and `start` show as the
// last exit:
//   pid=1234 status=2 at=2026-11-24T10:00:00.000Z reason=/usr/local/etc/vmm-compat.conf:7: ...
// A daemon killed by a signal it cannot catch (SIGKILL) writes nothing; the previous line stays,
// and its pid tells a reader that it is about another process.
import fs from 'node:fs';

export interface ExitRecord {
  pid: number;
  status: number;
  at: string;
  reason: string;
}

export function formatExitRecord(r: ExitRecord): string {
  return `pid=${r.pid} status=${r.status} at=${r.at} reason=${r.reason.replace(/\s*\n\s*/g, ' ')}\n`;
}

export function readExitRecord(file: string): ExitRecord | null {
  let line: string;
  try {
    line = fs.readFileSync(file, 'utf8').split('\n')[0] ?? '';
  } catch {
    return null;
  }
  const m = /^pid=(\d+) status=(\d+) at=(\S+) reason=(.*)$/.exec(line);
  return m ? { pid: Number(m[1]), status: Number(m[2]), at: m[3]!, reason: m[4]! } : null;
}

export interface ExitRecorder {
  /** The error that ends the daemon (start-up refused, configuration). */
  fatal(message: string): void;
  /** A signal that ends it cleanly. */
  stopped(signal: string): void;
}

/** Writes the record when this process exits, however it exits (except SIGKILL and the like). */
export function recordExitTo(file: string): ExitRecorder {
  let reason: string | null = null;
  process.on('uncaughtExceptionMonitor', (err: Error) => {
    reason ??= `uncaught exception: ${err.message}`;
  });
  process.on('exit', (code: number) => {
    const record = formatExitRecord({ pid: process.pid, status: code, at: new Date().toISOString(), reason: reason ?? 'exited' });
    try {
      fs.writeFileSync(`${file}.tmp`, record, { mode: 0o644 });
      fs.renameSync(`${file}.tmp`, file);
    } catch {
      // Nowhere to write it (a read-only /var/run): the log has the reason too.
    }
  });
  return {
    fatal(message: string) {
      reason = message;
    },
    stopped(signal: string) {
      reason ??= `stopped (${signal})`;
    },
  };
}
