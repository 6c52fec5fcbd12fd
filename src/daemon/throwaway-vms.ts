// The VMs vmm-compat makes for itself and destroys again (the daemon's probe VMs, selftest's
// boots), named <prefix><pid>-<n> after the process that made them: which of them exist, and
// whether that process is still there. Nothing but names of that form is ever looked at.
import fs from 'node:fs';

/** Whether a process `pid` exists (EPERM: it does, but is not ours to signal). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export interface ThrowawayVm {
  name: string;
  /** The process that made it. */
  pid: number;
}

/** The VMs in `deviceDir` named `${prefix}<pid>-<n>`, in directory order; none if it cannot be read. */
export function throwawayVms(deviceDir: string, prefix: string): ThrowawayVm[] {
  let names: string[];
  try {
    names = fs.readdirSync(deviceDir);
  } catch {
    return [];
  }
  const pattern = new RegExp(`^${prefix.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}(\\d+)-\\d+$`);
  return names.flatMap((name) => {
    const m = pattern.exec(name);
    return m === null ? [] : [{ name, pid: Number(m[1]) }];
  });
}
