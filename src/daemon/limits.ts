// What one socket directory (a jail, or the host's own) may cost the daemon, and the decisions
// made on it: how many connections it may hold, how many of them before their HELLO, how long
// one may stay silent, how fast a session's events are taken. The defaults come from what a
// jail can really run (docs/configuration.md, "Limits"); the bounds of every queue, map and
// record the daemon keeps are listed in docs/design.md, "Security".
import os from 'node:os';
import type { Config } from '../config/config';

export interface DirectoryLimits {
  maxSessions: number;
  maxSessionsBeforeHello: number;
}

export interface EventRate {
  perSecond: number;
  burst: number;
}

export interface Limits {
  /** Every directory's connections together. */
  global: DirectoryLimits;
  /** By jail name ("host" for the host's own directory). */
  directories: ReadonlyMap<string, DirectoryLimits>;
  /** A connection that has not sent a whole HELLO this long after it was accepted is closed. */
  helloTimeoutMs: number;
  /** Each session's events. */
  sessionEvents: EventRate;
  /** A whole directory's events: JAIL_EVENT_SESSIONS sessions' worth. */
  directoryEvents: EventRate;
  /** Why each default is what it is, for the start-up log and `status`. */
  derivedFrom: { hostCpus: number; vmsPerDirectory: number; descriptorLimit: number | null; descriptorBudget: number | null };
}

/** A bhyve holds one session per vmm fd (one); a bhyveload on the same VM may hold a second. */
export const CONCURRENT_SESSIONS_PER_VM = 2;
/**
 * VMs one directory can run at once: each runs at least one vCPU thread, and past about four
 * busy vCPU threads per host CPU the guests starve one another, so 4 per host CPU; but at least
 * 32, because small hosts do run many small, mostly idle VMs.
 */
export const VMS_PER_HOST_CPU = 4;
export const MIN_VMS_PER_DIRECTORY = 32;
/**
 * At most this many connections of one directory wait for their HELLO to be answered. A
 * connection is there for one round trip (the interposer writes HELLO as soon as it has
 * connected), so this is how many of a jail's bhyves may open their VM in the same instant.
 */
export const BEFORE_HELLO_PER_DIRECTORY = 16;
/** A directory's events may flow at the rate of this many busy sessions. */
export const JAIL_EVENT_SESSIONS = 4;
/** Descriptors the daemon keeps for itself: kernel, control and metrics sockets, log, the VM fds of a plan, status clients. */
export const DAEMON_OWN_DESCRIPTORS = 256;

/**
 * A directory's plans: a burst of max_sessions (every VM it can hold booting at once), then one
 * a second per VM it can hold (max_sessions / 2: each of them rebooting every second, faster
 * than bhyve restarts). A plan past that waits for its token; the interposer holds the BSP for
 * at most 10 s (daemon_link.c PLAN_TIMEOUT_MS) and then plans alone.
 */
export function directoryPlanRate(d: DirectoryLimits): EventRate {
  return { perSecond: Math.max(1, d.maxSessions / CONCURRENT_SESSIONS_PER_VM), burst: d.maxSessions };
}

export function vmsPerDirectory(hostCpus: number): number {
  return Math.max(MIN_VMS_PER_DIRECTORY, VMS_PER_HOST_CPU * hostCpus);
}

/**
 * The limits in force for `config`: what it sets, and the derived defaults for what it leaves
 * out. `descriptorLimit` is the daemon's RLIMIT_NOFILE (soft), null when unknown; a default global
 * limit never exceeds it less DAEMON_OWN_DESCRIPTORS, so a flood cannot take the descriptors
 * that `status` and the kernel need.
 */
export function deriveLimits(config: Config, hostCpus = os.availableParallelism(), descriptorLimit: number | null = null): Limits {
  const vms = vmsPerDirectory(hostCpus);
  const defaultSessions = CONCURRENT_SESSIONS_PER_VM * vms;
  const directory = (maxSessions: number | null, beforeHello: number | null): DirectoryLimits => {
    const sessions = maxSessions ?? defaultSessions;
    return { maxSessions: sessions, maxSessionsBeforeHello: beforeHello ?? Math.min(sessions, BEFORE_HELLO_PER_DIRECTORY) };
  };
  const directories = new Map<string, DirectoryLimits>([['host', directory(config.hostMaxSessions, config.hostMaxSessionsBeforeHello)]]);
  for (const j of config.jails) directories.set(j.name, directory(j.maxSessions, j.maxSessionsBeforeHello));
  const all = [...directories.values()];
  const budget = descriptorLimit === null ? null : Math.max(1, descriptorLimit - DAEMON_OWN_DESCRIPTORS);
  // By default no directory's use can shut another one out: the global limit is the sum of
  // theirs, unless the descriptors run out first.
  const sum = all.reduce((a, d) => a + d.maxSessions, 0);
  const globalSessions = config.maxSessions ?? (budget === null ? sum : Math.min(sum, budget));
  const sumBeforeHello = all.reduce((a, d) => a + d.maxSessionsBeforeHello, 0);
  const globalBeforeHello = Math.min(config.maxSessionsBeforeHello ?? sumBeforeHello, globalSessions);
  const sessionEvents = { perSecond: config.sessionEventsPerSecond, burst: config.sessionEventBurst };
  return {
    global: { maxSessions: globalSessions, maxSessionsBeforeHello: globalBeforeHello },
    directories,
    helloTimeoutMs: config.helloTimeoutMs,
    sessionEvents,
    directoryEvents: { perSecond: sessionEvents.perSecond * JAIL_EVENT_SESSIONS, burst: sessionEvents.burst * JAIL_EVENT_SESSIONS },
    derivedFrom: { hostCpus, vmsPerDirectory: vms, descriptorLimit, descriptorBudget: budget },
  };
}

/** What the limits refuse, as the `reason` label of vmm_compat_refused_sessions_total. */
export const REFUSAL_REASONS = ['max-sessions', 'global-max-sessions', 'before-hello', 'global-before-hello', 'silent'] as const;
export type RefusalReason = (typeof REFUSAL_REASONS)[number];

/** Open connections, per directory and in all, and how many of them are still before HELLO. */
export class SessionCounts {
  private readonly open = new Map<string, number>();
  private readonly beforeHello = new Map<string, number>();
  private openTotal = 0;
  private beforeHelloTotal = 0;

  constructor(private limits: Limits) {}

  setLimits(limits: Limits): void {
    this.limits = limits;
  }

  get current(): Limits {
    return this.limits;
  }

  private limitsOf(jail: string): DirectoryLimits {
    // A directory added by a reload before the limits were updated: the derived default.
    return this.limits.directories.get(jail) ?? this.limits.directories.get('host')!;
  }

  /** Whether one more connection of `jail` may be accepted; on yes it is counted (before HELLO). */
  admit(jail: string): { refused: RefusalReason; limit: number; scope: string } | null {
    const mine = this.limitsOf(jail);
    const open = this.open.get(jail) ?? 0;
    const waiting = this.beforeHello.get(jail) ?? 0;
    if (open >= mine.maxSessions) return { refused: 'max-sessions', limit: mine.maxSessions, scope: `jail ${jail}` };
    if (this.openTotal >= this.limits.global.maxSessions) return { refused: 'global-max-sessions', limit: this.limits.global.maxSessions, scope: 'all jails together' };
    if (waiting >= mine.maxSessionsBeforeHello) return { refused: 'before-hello', limit: mine.maxSessionsBeforeHello, scope: `jail ${jail}` };
    if (this.beforeHelloTotal >= this.limits.global.maxSessionsBeforeHello) {
      return { refused: 'global-before-hello', limit: this.limits.global.maxSessionsBeforeHello, scope: 'all jails together' };
    }
    this.open.set(jail, open + 1);
    this.beforeHello.set(jail, waiting + 1);
    this.openTotal++;
    this.beforeHelloTotal++;
    return null;
  }

  /** The connection's HELLO was answered with WELCOME. */
  welcomed(jail: string): void {
    this.beforeHello.set(jail, (this.beforeHello.get(jail) ?? 1) - 1);
    this.beforeHelloTotal--;
  }

  /** An admitted connection closed (`wasBeforeHello`: without a WELCOME). */
  closed(jail: string, wasBeforeHello: boolean): void {
    this.open.set(jail, (this.open.get(jail) ?? 1) - 1);
    this.openTotal--;
    if (wasBeforeHello) {
      this.beforeHello.set(jail, (this.beforeHello.get(jail) ?? 1) - 1);
      this.beforeHelloTotal--;
    }
  }

  openByJail(): ReadonlyMap<string, number> {
    return this.open;
  }

  get total(): { open: number; beforeHello: number } {
    return { open: this.openTotal, beforeHello: this.beforeHelloTotal };
  }
}

/** The reply text of a refused connection: what was over which limit, and what happens now. */
export function refusalMessage(r: { refused: RefusalReason; limit: number; scope: string }): string {
  const what: Record<RefusalReason, string> = {
    'max-sessions': `${r.scope} has ${r.limit} sessions open (max_sessions)`,
    'global-max-sessions': `vmm-compatd has ${r.limit} sessions open for ${r.scope} (max_sessions)`,
    'before-hello': `${r.scope} has ${r.limit} connections waiting for their HELLO (max_sessions_before_hello)`,
    'global-before-hello': `vmm-compatd has ${r.limit} connections waiting for their HELLO (max_sessions_before_hello)`,
    silent: `no HELLO within ${r.limit} ms of connecting (hello_timeout_ms)`,
  };
  return `vmm-compatd is over a limit: ${what[r.refused]}; the interposer follows its failure policy`;
}
