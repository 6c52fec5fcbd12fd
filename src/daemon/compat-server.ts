// The daemon's side of the compat protocol: one listener per socket directory (the host's and
// one per jail), one session per legacy bhyve process. It decides each boot's plan, performs the
// eager activation on its own fd, and records every compat event (docs/design.md).
import fs from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import type { Logger } from 'pino';
import {
  DEPRECATED_PROTOCOL_VERSIONS,
  FrameReader,
  MessageType,
  PlanAction,
  PROTOCOL_VERSION,
  ProtocolError,
  SUPPORTED_PROTOCOL_VERSIONS,
  encode,
  eventKindName,
  EventKind,
  type Message,
} from './protocol';
import { VARIANT_CODE, VARIANT_FACTS, type KernelVariant } from './kernel-variant';
import type { IdentifiedBy } from './kernel-identification';
import { formatVcpuList, maskOf, planForVm, LEGACY_MAX_VCPUS } from './plan';
import type { VmmDevice } from './vmm-device';
import { VmmError } from './vmm-device';
import type { PeerInspector } from './peer';
import { VmRegistry, type Counters, type VmRecord } from './registry';
import type { DaemonMetrics } from '../metrics/prometheus';
import { KernelClock } from './kernel-clock';
import { vmNameProblem } from './vm-name';
import { BEFORE_HELLO_PER_DIRECTORY, SessionCounts, deriveLimits, directoryPlanRate, refusalMessage, type DirectoryLimits, type Limits, type RefusalReason } from './limits';
import { defaultConfig } from '../config/config';
import { FairQueue } from './fair-queue';
import { TokenBucket } from './token-bucket';
import { BurstLog } from './burst-log';
import { bhyveOnKernel, generationOf, parseHelloTag, releaseName, FREEBSD_14 } from './bhyve-generation';
import type { BhyveRecord } from './registry';

export const SOCKET_NAME = 'vmm-compatd.sock';
/** Written beside each socket so that an interposer can act alone when the daemon is gone. */
export const VARIANT_CACHE_NAME = 'kernel-variant';

export interface SocketDirectory {
  /** "host" for the host's own directory, else the jail's name. */
  jail: string;
  path: string;
}

export interface CompatSettings {
  variant: KernelVariant;
  /** How the variant was identified (written beside the socket with it). */
  variantBy?: IdentifiedBy;
  /** Whether the kernel accepts the 144-byte VM_RUN (COMPAT_FREEBSD13, or a pre-e17eca32 kernel). */
  compatFreebsd13: boolean;
}

export interface CompatServerOptions extends CompatSettings {
  directories: SocketDirectory[];
  device: VmmDevice;
  peers: PeerInspector;
  logger: Logger;
  registry?: VmRegistry;
  /** Directory holding the VM device nodes, for the ownership check (default /dev/vmm). */
  deviceDir?: string;
  /** Prometheus metrics to count into (the daemon's; tests may leave it out). */
  metrics?: DaemonMetrics;
  /** What each directory may cost (src/daemon/limits.ts deriveLimits); default: the defaults. */
  limits?: Limits;
}

const EPERM = 1;
const EBUSY = 16;
/**
 * EAGAIN (FreeBSD sys/sys/errno.h: 35): the reply code of a connection refused over a limit. Not
 * EPERM, so every interposer, old ones included, treats it as an absent daemon and follows its
 * failure policy (docs/internals.md section 5); this release's interposer names it as such.
 */
export const BUSY_CODE = 35;
/**
 * Replies a session has not taken yet, in bytes, before the daemon stops reading it: each reply
 * answers a request, so a peer that does not read stops being served instead of being buffered
 * for. About 60 PLAN replies.
 */
export const WRITE_BUFFER_BOUND = 16 * 1024;
/**
 * A plan turn serves one plan of each jail with plans waiting (one round-robin round), unless
 * the turn has taken this long: then the rest of the round waits for the next turn, so that
 * `status` and new connections never wait for a whole round of many jails.
 */
export const PLAN_TURN_BUDGET_MS = 5;
/**
 * Refusals over max_sessions answered with ERROR, per jail and second (and at once); the rest of
 * a flood's are closed unanswered, at accept (setConnectionCap). An interposer follows the same
 * failure policy either way; the answer only says why.
 */
export const REFUSAL_REPLIES_PER_SECOND = 50;
/** A refused connection whose ERROR cannot be written at once is closed after this long anyway. */
const REFUSAL_WRITE_MS = 1000;

/**
 * Message handling in one turn of the event loop, across every session: past it the sessions
 * with messages left wait for the next turn, in order. A flood of events (each one logged)
 * then costs everybody else at most this much latency per turn, not one socket read's worth.
 */
export const MESSAGE_BUDGET_MS = 2;

type Waiting = 'plan' | 'tokens' | 'drain' | 'hello' | 'turn';

interface Session {
  id: number;
  jail: string;
  dirPath: string;
  socket: net.Socket;
  reader: FrameReader;
  pid: number | null;
  vm: VmRecord | null;
  /**
   * The message decoded but not handled yet: a plan waiting for its jail's turn, an event
   * waiting for tokens. Nothing behind it is decoded (or read from the socket) meanwhile.
   */
  held: Message | null;
  /** Why the session is not being read now; null: it is. */
  waiting: Waiting | null;
  /** No WELCOME yet: counted against max_sessions_before_hello. */
  beforeHello: boolean;
  /** Closes a connection that has sent no whole frame within hello_timeout_ms. */
  helloTimer: NodeJS.Timeout | null;
  /** Ends a wait for tokens. */
  wakeTimer: NodeJS.Timeout | null;
  events: TokenBucket;
  /** When the held plan request was read (performance.now()), for the plan's `waitedMs`. */
  planReadAt: number;
}

export class CompatServer {
  readonly registry: VmRegistry;
  private settings: CompatSettings;
  private readonly listeners = new Map<string, { server: net.Server; dir: SocketDirectory }>();
  private readonly sessions = new Set<Session>();
  /** Open sessions per VM record: whether a VM is still connected, without a scan of every session. */
  private readonly liveSessionsByVm = new Map<VmRecord, number>();
  /** Open connections per directory and in all, before HELLO and after (the limits). */
  private readonly counts: SessionCounts;
  /**
   * Sessions whose held message is a plan, per jail, served round-robin: a plan blocks in the
   * kernel's ioctls, so plans run in turns of the event loop (PLAN_TURN_BUDGET_MS), and a jail
   * with many plans waiting delays another jail's plan by one plan at most.
   */
  private readonly plans = new FairQueue<Session>();
  private planTurnScheduled = false;
  /** Each directory's events (limits.directoryEvents) and plans (directoryPlanRate). */
  private readonly jailEvents = new Map<string, TokenBucket>();
  private readonly jailPlans = new Map<string, TokenBucket>();
  /** Peer checks (HELLO) in flight, per jail: one at a time, each may take a while. */
  private readonly peerChecks = new Map<string, Promise<unknown>>();
  /** Refusals by jail and reason, since start-up (status). */
  private readonly refused = new Map<string, Map<RefusalReason, number>>();
  private readonly burstLog: BurstLog;
  /** When this turn's message handling began (null: none yet), and who waits for the next turn. */
  private budgetStart: number | null = null;
  private readonly nextTurn: Session[] = [];
  private readonly refusalFrames = new Map<string, Buffer>();
  /** Answered refusals per jail (REFUSAL_REPLIES_PER_SECOND), and the jails whose listeners drop. */
  private readonly refusalReplies = new Map<string, TokenBucket>();
  private readonly dropping = new Set<string>();
  private nextSession = 1;
  private readonly deviceDir: string;

  constructor(private options: CompatServerOptions) {
    this.registry = options.registry ?? new VmRegistry();
    this.settings = { variant: options.variant, variantBy: options.variantBy, compatFreebsd13: options.compatFreebsd13 };
    this.deviceDir = options.deviceDir ?? '/dev/vmm';
    this.counts = new SessionCounts(options.limits ?? deriveLimits(defaultConfig()));
    this.burstLog = new BurstLog(() => this.options.logger);
  }

  get limits(): Limits {
    return this.counts.current;
  }

  /** New limits (SIGHUP): new connections and events follow them; open sessions stay. */
  setLimits(limits: Limits): void {
    this.counts.setLimits(limits);
    for (const { server, dir } of this.listeners.values()) this.setConnectionCap(server, dir.jail);
    for (const bucket of this.jailEvents.values()) bucket.setRate(limits.directoryEvents.perSecond, limits.directoryEvents.burst);
    for (const [jail, bucket] of this.jailPlans) {
      const rate = directoryPlanRate(limits.directories.get(jail) ?? limits.directories.get('host')!);
      bucket.setRate(rate.perSecond, rate.burst);
    }
    for (const session of this.sessions) session.events.setRate(limits.sessionEvents.perSecond, limits.sessionEvents.burst);
  }

  /** Connections refused over a limit, by jail and reason, since start-up. */
  refusedSessions(): Record<string, Record<string, number>> {
    return Object.fromEntries([...this.refused].map(([jail, reasons]) => [jail, Object.fromEntries(reasons)]));
  }

  /** What the daemon holds for each open session now: unsent replies, undecoded bytes, and why it is not read. */
  sessionBuffers(): { jail: string; session: number; unsentBytes: number; undecodedBytes: number; waiting: string | null }[] {
    return [...this.sessions].map((s) => ({
      jail: s.jail,
      session: s.id,
      unsentBytes: s.socket.writableLength,
      undecodedBytes: s.reader.buffered,
      waiting: s.waiting,
    }));
  }

  /** Open connections now, in all and before their HELLO. */
  openTotals(): { open: number; beforeHello: number } {
    return this.counts.total;
  }

  get variant(): KernelVariant {
    return this.settings.variant;
  }

  /** Open interposer connections per socket directory's jail. */
  openSessionsByJail(): ReadonlyMap<string, number> {
    return this.counts.openByJail();
  }

  /** Counts into the status counters and the Prometheus counters alike. */
  private count(key: keyof Counters, jail: string, n = 1): void {
    this.registry.counters[key] += n;
    this.options.metrics?.count(key, jail, n);
  }

  async start(): Promise<void> {
    for (const dir of this.options.directories) await this.listen(dir);
  }

  /** A new logger (SIGHUP changed log_file); sessions log through it from now on. */
  setLogger(logger: Logger): void {
    this.options.logger = logger;
  }

  /** Applies settings that can change without a restart (SIGHUP). */
  update(settings: CompatSettings): void {
    this.settings = settings;
    for (const { dir } of this.listeners.values()) this.writeVariantCache(dir);
  }

  directories(): SocketDirectory[] {
    return [...this.listeners.values()].map((l) => l.dir);
  }

  async listen(dir: SocketDirectory): Promise<void> {
    const socketPath = path.join(dir.path, SOCKET_NAME);
    fs.mkdirSync(dir.path, { recursive: true, mode: 0o755 });
    await removeStaleSocket(socketPath);
    // Not read until admitted: a connection refused over a limit is written to and closed,
    // never read (no read buffer, no reset to report).
    const server = net.createServer({ pauseOnConnect: true }, (socket) => this.accept(dir, socket));
    this.setConnectionCap(server, dir.jail);
    // Past the cap Node closes a connection as it accepts it, before any socket object exists:
    // the cheapest refusal there is, for a jail that keeps connecting while it is full. It gets
    // no reply (the interposer reads the close as an absent daemon: the same failure policy).
    server.on('drop', () => {
      const mine = this.directoryLimits(dir.jail);
      // Full of sessions, or of sessions and refusals being answered (before HELLO).
      const full = (this.counts.openByJail().get(dir.jail) ?? 0) >= mine.maxSessions;
      const refused: RefusalReason = full ? 'max-sessions' : 'before-hello';
      const limit = full ? mine.maxSessions : mine.maxSessionsBeforeHello;
      this.noteRefused(dir.jail, refused, refusalMessage({ refused, limit, scope: `jail ${dir.jail}` }), limit);
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      // A short listen queue: the connections one event-loop turn accepts (and refuses, in a
      // flood) are at most this many per directory, so a flooding jail cannot make one turn
      // long for everybody. More than max_sessions_before_hello waiting would be refused anyway.
      server.listen({ path: socketPath, backlog: this.listenBacklog(dir.jail) }, () => {
        server.off('error', reject);
        resolve();
      });
    });
    // bhyve runs as root in its jail; nobody else needs the socket.
    fs.chmodSync(socketPath, 0o600);
    this.listeners.set(dir.path, { server, dir });
    this.options.metrics?.addJail(dir.jail);
    this.writeVariantCache(dir);
    this.options.logger.info({ jail: dir.jail, socket: socketPath }, 'listening');
  }

  private directoryLimits(jail: string): DirectoryLimits {
    const limits = this.counts.current;
    return limits.directories.get(jail) ?? limits.directories.get('host')!;
  }

  /**
   * Node's own cap on a listener's open connections: the directory's max_sessions and one more,
   * the connection being refused with ERROR (so each refusal in a flood is answered in turn,
   * and the ones that arrive meanwhile are dropped at accept).
   */
  private setConnectionCap(server: net.Server, jail: string): void {
    server.maxConnections = this.directoryLimits(jail).maxSessions + (this.dropping.has(jail) ? 0 : 1);
  }

  /**
   * A full jail that keeps connecting gets REFUSAL_REPLIES_PER_SECOND answered refusals a second;
   * past that its listener's cap drops to max_sessions, so Node closes its further connections
   * as it accepts them, until a reply token is back.
   */
  private refusalReplyAllowed(jail: string): boolean {
    let bucket = this.refusalReplies.get(jail);
    if (!bucket) {
      bucket = new TokenBucket(REFUSAL_REPLIES_PER_SECOND, REFUSAL_REPLIES_PER_SECOND);
      this.refusalReplies.set(jail, bucket);
    }
    const allowed = bucket.take();
    if (!bucket.has() && !this.dropping.has(jail)) {
      this.dropping.add(jail);
      this.capListenersOf(jail);
      const timer = setTimeout(() => {
        this.dropping.delete(jail);
        this.capListenersOf(jail);
      }, Math.max(1, bucket.waitMs()));
      timer.unref();
    }
    return allowed;
  }

  private capListenersOf(jail: string): void {
    for (const { server, dir } of this.listeners.values()) if (dir.jail === jail) this.setConnectionCap(server, jail);
  }

  private listenBacklog(jail: string): number {
    return Math.max(BEFORE_HELLO_PER_DIRECTORY, this.directoryLimits(jail).maxSessionsBeforeHello);
  }

  async unlisten(dirPath: string): Promise<void> {
    const entry = this.listeners.get(dirPath);
    if (!entry) return;
    this.listeners.delete(dirPath);
    for (const session of this.sessions) {
      if (session.dirPath === dirPath) session.socket.destroy();
    }
    await new Promise<void>((resolve) => entry.server.close(() => resolve()));
    fs.rmSync(path.join(dirPath, SOCKET_NAME), { force: true });
    this.options.logger.info({ jail: entry.dir.jail, socket: path.join(dirPath, SOCKET_NAME) }, 'stopped listening');
  }

  /** Closes listeners and sessions and unlinks the sockets. VMs are never touched. */
  async stop(): Promise<void> {
    // server.close() waits for open connections, so sessions go first.
    for (const session of this.sessions) session.socket.destroy();
    for (const session of [...this.sessions]) this.drop(session);
    for (const dirPath of [...this.listeners.keys()]) await this.unlisten(dirPath);
    this.burstLog.flush();
  }

  private writeVariantCache(dir: SocketDirectory): void {
    const file = path.join(dir.path, VARIANT_CACHE_NAME);
    const facts = VARIANT_FACTS[this.settings.variant];
    const text =
      `variant=${this.settings.variant}\n` +
      `cpuset_bytes=${facts.kernelCpusetBytes}\n` +
      `vmrun_abi=${this.vmrunAbi()}\n` +
      (this.settings.variantBy ? `identified_by=${this.settings.variantBy}\n` : '');
    fs.writeFileSync(`${file}.tmp`, text, { mode: 0o644 });
    fs.renameSync(`${file}.tmp`, file);
  }

  private vmrunAbi(): number {
    const { variant, compatFreebsd13 } = this.settings;
    if (variant === 'legacy13' || variant === 'window') return 13;
    return compatFreebsd13 ? 13 : 14;
  }

  private accept(dir: SocketDirectory, socket: net.Socket): void {
    const over = this.counts.admit(dir.jail);
    if (over) {
      this.refuseConnection(dir.jail, socket, over.refused, refusalMessage(over), over.limit);
      return;
    }
    const limits = this.counts.current;
    const session: Session = {
      id: this.nextSession++,
      jail: dir.jail,
      dirPath: dir.path,
      socket,
      reader: new FrameReader(SUPPORTED_PROTOCOL_VERSIONS),
      pid: null,
      vm: null,
      held: null,
      waiting: null,
      beforeHello: true,
      helloTimer: null,
      wakeTimer: null,
      events: new TokenBucket(limits.sessionEvents.perSecond, limits.sessionEvents.burst),
      planReadAt: 0,
    };
    session.helloTimer = setTimeout(() => this.silent(session), limits.helloTimeoutMs);
    this.sessions.add(session);
    this.count('sessions', dir.jail);
    socket.on('data', (chunk: Buffer) => this.receive(session, chunk));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.drop(session));
    socket.resume();
  }

  /** Counts and logs (once per burst) a connection refused over a limit. */
  private noteRefused(jail: string, reason: RefusalReason, message: string, limit: number): void {
    let reasons = this.refused.get(jail);
    if (!reasons) {
      reasons = new Map();
      this.refused.set(jail, reasons);
    }
    reasons.set(reason, (reasons.get(reason) ?? 0) + 1);
    this.options.metrics?.countRefusedSession(jail, reason);
    this.burstLog.note(`refused:${jail}:${reason}`, { jail, reason, limit, refused: message }, 'connection refused: over a limit');
  }

  /**
   * Over a limit: ERROR with BUSY_CODE, then the connection is closed at once (never waiting for
   * the peer). The interposer reads the ERROR as its answer to HELLO and follows its failure
   * policy: fallback boots the VM without the daemon, refuse stops bhyve with this message.
   */
  private refuseConnection(jail: string, socket: net.Socket, reason: RefusalReason, message: string, limit: number): void {
    this.noteRefused(jail, reason, message, limit);
    if (reason === 'max-sessions' && !this.refusalReplyAllowed(jail)) {
      socket.destroy();
      return;
    }
    socket.on('error', () => socket.destroy());
    const timer = setTimeout(() => socket.destroy(), REFUSAL_WRITE_MS);
    timer.unref();
    socket.write(this.refusalFrame(message), () => {
      clearTimeout(timer);
      socket.destroy();
    });
  }

  /**
   * The ERROR frame of a refusal, encoded once per message: in a flood the same few messages
   * go out thousands of times a second (one per jail and reason, and limit).
   */
  private refusalFrame(message: string): Buffer {
    let frame = this.refusalFrames.get(message);
    if (!frame) {
      if (this.refusalFrames.size >= 64) this.refusalFrames.clear();
      frame = encode({ type: MessageType.ERROR, code: BUSY_CODE, message });
      this.refusalFrames.set(message, frame);
    }
    return frame;
  }

  /** hello_timeout_ms passed without a whole frame: the connection goes. */
  private silent(session: Session): void {
    session.helloTimer = null;
    if (session.socket.destroyed || !session.beforeHello) return;
    const timeoutMs = this.counts.current.helloTimeoutMs;
    const message = refusalMessage({ refused: 'silent', limit: timeoutMs, scope: `jail ${session.jail}` });
    this.refuseConnection(session.jail, session.socket, 'silent', message, timeoutMs);
  }

  private drop(session: Session): void {
    if (!this.sessions.delete(session)) return;
    this.counts.closed(session.jail, session.beforeHello);
    if (session.helloTimer) clearTimeout(session.helloTimer);
    if (session.wakeTimer) clearTimeout(session.wakeTimer);
    session.helloTimer = session.wakeTimer = null;
    // A plan still queued is skipped when its turn comes (the socket is gone).
    session.held = null;
    const vm = session.vm;
    if (vm) {
      const live = (this.liveSessionsByVm.get(vm) ?? 1) - 1;
      if (live > 0) this.liveSessionsByVm.set(vm, live);
      else this.liveSessionsByVm.delete(vm);
      vm.connected = live > 0;
      this.registry.record(vm, session.id, 'session-end', null, null);
      this.options.logger.info({ vm: vm.name, jail: session.jail, session: session.id }, 'session ended');
    }
  }

  private receive(session: Session, chunk: Buffer): void {
    session.reader.append(chunk);
    this.pump(session);
  }

  /**
   * Handles the session's messages one at a time, as long as nothing makes it wait: a plan waits
   * for its jail's turn, an event for tokens, a HELLO for its peer check, and every message for
   * the peer to take the replies already written. While the session waits it is not read, so
   * what the daemon holds for it is one socket read and one decoded message at most.
   */
  private pump(session: Session): void {
    const socket = session.socket;
    while (session.waiting === null && !socket.destroyed) {
      if (this.budgetSpent()) {
        this.wait(session, 'turn');
        this.nextTurn.push(session);
        return;
      }
      let msg = session.held;
      if (!msg) {
        try {
          msg = session.reader.next();
        } catch (err) {
          this.fail(session, err instanceof ProtocolError ? err : new ProtocolError(String(err)));
          return;
        }
        if (!msg) break;
        session.held = msg;
        if (msg.type === MessageType.PLAN_REQUEST) session.planReadAt = performance.now();
        if (session.helloTimer) {
          clearTimeout(session.helloTimer);
          session.helloTimer = null;
        }
      }
      const wait = this.gate(session, msg);
      if (wait) {
        this.wait(session, wait);
        return;
      }
      session.held = null;
      const handled = this.dispatch(session, msg);
      if (handled === false) return;
      if (handled !== true) {
        this.wait(session, 'hello');
        handled.then(
          () => this.resume(session),
          (err: unknown) => {
            session.waiting = null;
            this.fail(session, err instanceof ProtocolError ? err : new ProtocolError(String(err)));
          },
        );
        return;
      }
      if (this.waitForDrain(session)) return;
    }
    if (!socket.destroyed && socket.isPaused()) socket.resume();
  }

  /** Replies beyond WRITE_BUFFER_BOUND not taken by the peer: the session waits for them to go. */
  private waitForDrain(session: Session): boolean {
    if (session.socket.writableLength <= WRITE_BUFFER_BOUND) return false;
    this.wait(session, 'drain');
    session.socket.once('drain', () => this.resume(session));
    return true;
  }

  /** Whether this turn's MESSAGE_BUDGET_MS is used up (starting the count at the first message). */
  private budgetSpent(): boolean {
    const now = performance.now();
    if (this.budgetStart === null) {
      this.budgetStart = now;
      setImmediate(() => {
        this.budgetStart = null;
        for (const s of this.nextTurn.splice(0)) if (s.waiting === 'turn') this.resume(s);
      });
      return false;
    }
    return now - this.budgetStart >= MESSAGE_BUDGET_MS;
  }

  private wait(session: Session, why: Waiting): void {
    session.waiting = why;
    session.socket.pause();
  }

  private resume(session: Session): void {
    session.waiting = null;
    this.pump(session);
  }

  /** What `msg` must wait for before it is handled, or null. */
  private gate(session: Session, msg: Message): Waiting | null {
    // Before HELLO every message but HELLO is a protocol error: handled at once.
    if (!session.vm) return null;
    if (msg.type === MessageType.PLAN_REQUEST) {
      const jailPlans = this.jailPlansOf(session.jail);
      if (!jailPlans.take()) return this.waitForTokens(session, jailPlans.waitMs());
      this.plans.push(session.jail, session);
      this.options.logger.debug({ jail: session.jail, session: session.id, vm: session.vm.name, jailPlansWaiting: this.plans.sizeOf(session.jail) }, 'plan queued');
      this.schedulePlanTurn();
      return 'plan';
    }
    if (msg.type === MessageType.EVENT) {
      const jailBucket = this.jailEventsOf(session.jail);
      if (session.events.has() && jailBucket.has()) {
        session.events.take();
        jailBucket.take();
        return null;
      }
      return this.waitForTokens(session, Math.max(session.events.waitMs(), jailBucket.waitMs()));
    }
    return null;
  }

  private waitForTokens(session: Session, waitMs: number): 'tokens' {
    session.wakeTimer = setTimeout(() => {
      session.wakeTimer = null;
      this.resume(session);
    }, Math.max(1, waitMs));
    return 'tokens';
  }

  private jailPlansOf(jail: string): TokenBucket {
    let bucket = this.jailPlans.get(jail);
    if (!bucket) {
      const limits = this.counts.current;
      const rate = directoryPlanRate(limits.directories.get(jail) ?? limits.directories.get('host')!);
      bucket = new TokenBucket(rate.perSecond, rate.burst);
      this.jailPlans.set(jail, bucket);
    }
    return bucket;
  }

  private jailEventsOf(jail: string): TokenBucket {
    let bucket = this.jailEvents.get(jail);
    if (!bucket) {
      const rate = this.counts.current.directoryEvents;
      bucket = new TokenBucket(rate.perSecond, rate.burst);
      this.jailEvents.set(jail, bucket);
    }
    return bucket;
  }

  /** Handles one message: true when done, false when it closed the session, a promise while a HELLO's peer check runs. */
  private dispatch(session: Session, msg: Message): boolean | Promise<void> {
    try {
      const pending = this.handle(session, msg);
      return pending ?? true;
    } catch (err) {
      if (err instanceof ProtocolError) {
        this.fail(session, err);
        return false;
      }
      throw err;
    }
  }

  private schedulePlanTurn(): void {
    if (this.planTurnScheduled) return;
    this.planTurnScheduled = true;
    setImmediate(() => this.planTurn());
  }

  /**
   * One round of the plan queue: the next plan of each jail with plans waiting, in round-robin
   * order, until the round is done or the turn has taken PLAN_TURN_BUDGET_MS. After its plan a
   * session is read on (its next plan joins the end of its jail's queue).
   */
  private planTurn(): void {
    this.planTurnScheduled = false;
    const started = performance.now();
    const round = this.plans.jailsWaiting;
    for (let served = 0; served < round; ) {
      const next = this.plans.shift();
      if (!next) break;
      const session = next.item;
      const msg = session.held;
      if (session.socket.destroyed || msg?.type !== MessageType.PLAN_REQUEST) continue;
      served++;
      session.held = null;
      session.waiting = null;
      if (this.dispatch(session, msg) === true && !this.waitForDrain(session)) this.pump(session);
      if (performance.now() - started >= PLAN_TURN_BUDGET_MS) break;
    }
    if (this.plans.size > 0) this.schedulePlanTurn();
  }

  private fail(session: Session, err: ProtocolError): void {
    this.count('protocolErrors', session.jail);
    this.burstLog.note(
      `protocol:${session.jail}`,
      { jail: session.jail, session: session.id, vm: session.vm?.name, err: err.message },
      'protocol error; closing the connection',
    );
    this.send(session, { type: MessageType.ERROR, code: err.code, message: err.message });
    session.socket.end();
    session.socket.destroySoon?.();
  }

  /**
   * A request refused (the VM is not the peer's, a bad name, ...): counted, logged once per
   * burst of its `kind` in the jail, and the ERROR goes back. A refusal never affects another
   * connection.
   */
  private refuse(session: Session, kind: string, code: number, message: string, vm?: string): never {
    this.count('refusals', session.jail);
    this.burstLog.note(`refused:${session.jail}:${kind}`, { jail: session.jail, session: session.id, vm, refused: message }, 'refused');
    throw new ProtocolError(message, code);
  }

  /** In the connection's own protocol version (an ERROR before any frame: the current one). */
  private send(session: Session, msg: Message): void {
    if (!session.socket.destroyed) session.socket.write(encode(msg, session.reader.version ?? PROTOCOL_VERSION));
  }

  private handle(session: Session, msg: Message): void | Promise<void> {
    switch (msg.type) {
      case MessageType.HELLO:
        return this.hello(session, msg.pid, msg.vm, msg.bhyve);
      case MessageType.PLAN_REQUEST:
        return this.plan(session, msg.ncpus, msg.boot);
      case MessageType.EVENT:
        return this.event(session, msg.kind, msg.vcpu, msg.arg);
      default:
        throw new ProtocolError(`message type ${msg.type} is sent by the daemon, not to it`);
    }
  }

  private hello(session: Session, pid: number, vmName: string, bhyve: string): void | Promise<void> {
    if (session.vm || !session.beforeHello) throw new ProtocolError('HELLO sent twice on one connection');
    const nameProblem = vmNameProblem(vmName);
    // A refusal (EPERM), as docs/design.md promises: the interposer fails the open and bhyve
    // exits 4 with this reason. Any other code would make it go on alone, unchecked.
    if (nameProblem) this.refuse(session, 'bad-name', EPERM, `bad VM name: ${nameProblem}`);
    const creds = this.options.peers.credentials(session.socket);
    if (!creds) this.refuse(session, 'no-credentials', EPERM, 'cannot read the peer credentials of this connection (not a local socket?)', vmName);
    if (creds.pid !== pid) {
      this.refuse(session, 'pid-mismatch', EPERM, `HELLO claims pid ${pid} but the connection belongs to pid ${creds.pid}; connect from the bhyve process itself`, vmName);
    }
    const holds = this.holdsVm(session, creds.pid, vmName);
    if (typeof holds === 'boolean') return this.welcome(session, creds.pid, vmName, bhyve, holds);
    return holds.then((held) => this.welcome(session, creds.pid, vmName, bhyve, held));
  }

  /**
   * The peer's open files, checked one connection at a time per jail: a check may take a while
   * (one look per descriptor of the peer, or a procstat run), and a jail that sends HELLO after
   * HELLO waits for its own checks; the others' go on beside it.
   */
  private holdsVm(session: Session, pid: number, vmName: string): boolean | Promise<boolean> {
    const jail = session.jail;
    // A peer that hung up while its check waited is not checked at all.
    const run = (): boolean | Promise<boolean> => (session.socket.destroyed ? false : this.options.peers.holdsVm(pid, vmName));
    const before = this.peerChecks.get(jail);
    const check = before ? before.then(run) : run();
    if (typeof check === 'boolean') return check;
    const settled = check.then(
      () => undefined,
      () => undefined,
    );
    this.peerChecks.set(jail, settled);
    void settled.then(() => {
      if (this.peerChecks.get(jail) === settled) this.peerChecks.delete(jail);
    });
    return check;
  }

  private welcome(session: Session, pid: number, vmName: string, bhyve: string, holdsVm: boolean): void {
    if (session.socket.destroyed) return;
    if (!holdsVm) {
      this.refuse(session, 'not-holder', EPERM, `process ${pid} does not hold /dev/vmm/${vmName} open; only the bhyve running that VM may ask for its plan`, vmName);
    }
    // A VM belongs to the jail that first used it, for as long as that VM exists: the device
    // node's identity tells a VM destroyed and created again under the same name from the same VM.
    const instance = this.deviceInstance(vmName);
    const existing = this.registry.find(vmName);
    if (existing && existing.jail !== session.jail && instance !== null && existing.instance === instance) {
      this.refuse(
        session,
        'other-jail',
        EPERM,
        `VM ${vmName} belongs to jail ${existing.jail}; this socket serves jail ${session.jail}: start it from jail ${existing.jail}, or destroy it there first`,
        vmName,
      );
    }
    const vm = this.registry.vm(vmName, session.jail, this.vmRecordsPerJail(session.jail));
    vm.jail = session.jail;
    vm.instance = instance;
    vm.connected = true;
    this.liveSessionsByVm.set(vm, (this.liveSessionsByVm.get(vm) ?? 0) + 1);
    this.registry.addSession(vm, session.id);
    session.vm = vm;
    session.pid = pid;
    vm.bhyve = this.bhyveFromHello(bhyve);
    session.beforeHello = false;
    this.counts.welcomed(session.jail);
    const protocol = session.reader.version ?? PROTOCOL_VERSION;
    const deprecated = DEPRECATED_PROTOCOL_VERSIONS.includes(protocol);
    this.registry.record(
      vm,
      session.id,
      'session',
      null,
      null,
      `pid ${pid}, bhyve ${vm.bhyve.release}${vm.bhyve.source === 'older-interposer' ? ` (an older interposer's tag "${bhyve}")` : ''}, protocol ${protocol}${deprecated ? ' (deprecated: an older libvmmcompat.so, which covers at most 16 vCPUs)' : ''}`,
    );
    this.options.logger.info(
      { vm: vm.name, jail: session.jail, session: session.id, pid, bhyve, protocol },
      'session started',
    );
    if (deprecated) {
      this.options.logger.warn(
        { vm: vm.name, jail: session.jail, session: session.id, protocol },
        `the interposer speaks protocol ${protocol} (deprecated); install libvmmcompat.so of this release (protocol ${PROTOCOL_VERSION}) and restart the VM`,
      );
    }
    this.send(session, {
      type: MessageType.WELCOME,
      session: session.id,
      variant: VARIANT_CODE[this.settings.variant],
      kernelCpusetBytes: VARIANT_FACTS[this.settings.variant].kernelCpusetBytes,
      vmrunAbi: this.vmrunAbi(),
      flags: 0,
    });
  }

  /**
   * VM records one jail keeps: its connected VMs (at most one per session) and as many again of
   * its disconnected ones, so that one jail's churn never pushes another jail's VMs out of
   * `status`.
   */
  private vmRecordsPerJail(jail: string): number {
    const limits = this.counts.current;
    return 2 * (limits.directories.get(jail) ?? limits.directories.get('host')!).maxSessions;
  }

  /** What the HELLO's bhyve field says about the bhyve (docs/internals.md section 5). */
  private bhyveFromHello(tag: string): BhyveRecord {
    const { version, fromOldInterposer } = parseHelloTag(tag);
    if (version !== null) {
      const verdict = bhyveOnKernel(version, this.settings.variant);
      return { version, release: releaseName(version), generation: generationOf(version), source: 'abi-tag', handling: verdict.handling, why: verdict.why };
    }
    if (fromOldInterposer) {
      return {
        version: null,
        release: 'unknown',
        generation: null,
        source: 'older-interposer',
        handling: null,
        why: 'the interposer predates bhyve generations (it reports every bhyve as "13.1"); install libvmmcompat.so of this release',
      };
    }
    return { version: null, release: 'unknown', generation: null, source: 'unknown', handling: null, why: 'the binary carries no FreeBSD ABI tag; its first requests will tell' };
  }

  /** Identity of the VM's device node (devfs gives a re-created VM a new inode), or null. */
  private deviceInstance(vmName: string): string | null {
    try {
      const st = fs.statSync(path.join(this.deviceDir, vmName), { bigint: true });
      return `${st.dev}:${st.ino}:${st.birthtimeNs || st.ctimeNs}`;
    } catch {
      return null;
    }
  }

  private plan(session: Session, ncpus: number, boot: number): void {
    const vm = session.vm;
    if (!vm) throw new ProtocolError('PLAN_REQUEST before HELLO');
    // A version 1 PLAN names at most 64 APs (its u64 mask); version 2 the 256 of 13.x's cpuset_t.
    const maxVcpus = session.reader.version === 1 ? 64 : LEGACY_MAX_VCPUS;
    if (ncpus < 1 || ncpus > maxVcpus) {
      throw new ProtocolError(`vCPU count ${ncpus} is outside 1..${maxVcpus} (13.x userland's CPU_SETSIZE${maxVcpus < LEGACY_MAX_VCPUS ? ` in protocol ${session.reader.version}` : ''})`);
    }
    const started = process.hrtime.bigint();
    // How long the request waited in the daemon (its jail's rate, its turn) before this plan.
    const waitedMs = performance.now() - session.planReadAt;
    const variant = this.settings.variant;
    const facts = VARIANT_FACTS[variant];
    const log = this.options.logger.child({ vm: vm.name, jail: session.jail, session: session.id });
    const parked: number[] = [];
    let reason: string;
    let failure: string | null = null;
    let spinupBias = 0;
    const kernel = new KernelClock();
    let handle;
    try {
      handle = kernel.timed(kernel.time(() => this.options.device.openVm(vm.name)));
    } catch (err) {
      const why = err instanceof VmmError ? err.message : String(err);
      this.refuse(session, 'cannot-open', EBUSY, `cannot open the VM for eager activation: ${why}; the interposer plans alone`, vm.name);
    }
    try {
      const activeAps = facts.eagerActivation ? handle.cpus('active', facts.kernelCpusetBytes).filter((v) => v !== 0) : [];
      const decision = planForVm(variant, ncpus, activeAps);
      reason = decision.reason;
      spinupBias = decision.spinupBias;
      for (const ap of decision.apsToPark) {
        try {
          handle.activateCpu(ap);
        } catch (err) {
          // Stop at the first failure: the APs activated so far are parked, the rest stay
          // inactive, so no active AP is left without a thread (never half-activated).
          const why = err instanceof VmmError ? err.code : String(err);
          failure = `stopped at AP ${ap} (${why})`;
          reason = `${reason}; ${failure}`;
          log.error({ vcpu: ap, err: String(err) }, 'eager activation failed');
          break;
        }
        parked.push(ap);
        try {
          handle.suspendCpu(ap);
        } catch (err) {
          // The parker debug-suspends its AP again before its first VM_RUN, so this is safe.
          log.warn({ vcpu: ap, err: String(err) }, 'VM_SUSPEND_CPU failed; the parker will retry');
        }
      }
    } finally {
      handle.close();
    }
    const elapsedMs = Number(process.hrtime.bigint() - started) / 1e6;
    const action = parked.length > 0 ? 'park' : 'pass-through';
    this.options.metrics?.observePlan({ jail: session.jail, kernelVariant: variant, action, totalSeconds: elapsedMs / 1000, kernelSeconds: kernel.seconds });
    vm.vcpus = ncpus;
    vm.boot = boot;
    vm.plan = { action, reason, spinupBias };
    vm.preActivated = parked;
    vm.parked = [...parked];
    vm.handedOver = [];
    if (parked.length > 0) {
      this.count('vmsShimmed', session.jail);
      this.count('apsActivated', session.jail, parked.length);
    }
    this.registry.record(vm, session.id, 'plan', null, ncpus, reason);
    log.info(
      { vcpus: ncpus, boot, parked: formatVcpuList(parked), spinupBias, planMs: Number(elapsedMs.toFixed(3)), kernelMs: Number((kernel.seconds * 1000).toFixed(3)), waitedMs: Number(waitedMs.toFixed(3)), reason },
      'plan',
    );
    const parkedSet = maskOf(parked);
    this.send(session, {
      type: MessageType.PLAN,
      action: parked.length > 0 ? PlanAction.PARK : PlanAction.PASS_THROUGH,
      spinupBias,
      parkedMask: parkedSet & 0xffffffffffffffffn,
      parkedSet,
      boot,
      // The wire field is short: what was done first, the variant summary stays in the log.
      reason: `${parked.length > 0 ? `parked APs ${formatVcpuList(parked)}` : 'pass-through'}${failure ? `; ${failure}` : ''}; ${reason}`,
    });
  }

  private event(session: Session, kind: number, vcpu: number, arg: number): void {
    const vm = session.vm;
    if (!vm) throw new ProtocolError('EVENT before HELLO');
    if (kind === EventKind.EVENTS_COALESCED) {
      this.registry.record(vm, session.id, eventKindName(kind), vcpu, arg, `${arg} ${eventKindName(vcpu)} events held back by the interposer`);
    } else {
      this.registry.recordWireEvent(vm, session.id, kind, vcpu, arg);
    }
    switch (kind) {
      case EventKind.HANDOVER:
        this.count('handovers', session.jail);
        vm.parked = vm.parked.filter((v) => v !== vcpu);
        if (!vm.handedOver.includes(vcpu)) vm.handedOver.push(vcpu);
        break;
      case EventKind.PARKER_EXIT:
        vm.parked = vm.parked.filter((v) => v !== vcpu);
        break;
      case EventKind.FALLBACK:
        this.count('fallbacks', session.jail);
        break;
      case EventKind.REINIT:
        vm.parked = [];
        vm.handedOver = [];
        break;
      case EventKind.BHYVE_GENERATION:
        // The tag came with HELLO; without one, the first VM_RUN's size tells the generation.
        if (vm.bhyve && vm.bhyve.version === null && (arg === 1300000 || arg === FREEBSD_14)) {
          vm.bhyve = {
            ...vm.bhyve,
            release: arg === FREEBSD_14 ? '14.0 or later' : '13.x',
            generation: arg === FREEBSD_14 ? '14.0+' : '13.x',
            source: 'request',
            handling: 'compat',
            why: arg === FREEBSD_14 ? 'it sent the 32-byte VM_RUN of 14.0 and later' : "it sent 13.x's 144-byte VM_RUN",
          };
        }
        break;
      case EventKind.BHYVE_NATIVE: {
        const reason = `no compat action: bhyve ${releaseName(arg)} is as new as the ${this.settings.variant} kernel (the interposer passes it through untouched)`;
        vm.plan = { action: 'pass-through', reason, spinupBias: 0 };
        if (vm.bhyve) vm.bhyve.handling = 'native';
        this.registry.record(vm, session.id, 'plan', null, null, reason);
        break;
      }
      case EventKind.BHYVE_REFUSED: {
        const reason = `refused: bhyve ${releaseName(arg)} is newer than the ${this.settings.variant} kernel (FreeBSD does not support a bhyve newer than its kernel)`;
        vm.plan = { action: 'pass-through', reason, spinupBias: 0 };
        if (vm.bhyve) vm.bhyve.handling = 'refused';
        this.count('refusals', session.jail);
        this.registry.record(vm, session.id, 'plan', null, null, reason);
        this.options.logger.warn({ vm: vm.name, jail: session.jail, session: session.id, reason }, 'bhyve refused');
        break;
      }
      case EventKind.NEW_PROTOCOL: {
        // 14.0 bhyverun.c fbsdrun_set_capabilities: VM_CAP_IPI_EXIT is not in 13.1's enum.
        const reason = 'no eager activation: bhyve enabled VM_CAP_IPI_EXIT (new-protocol bhyve starts its own APs)';
        vm.plan = { action: 'pass-through', reason, spinupBias: 0 };
        this.registry.record(vm, session.id, 'plan', null, null, reason);
        this.options.logger.info({ vm: vm.name, jail: session.jail, session: session.id, reason }, 'plan');
        break;
      }
      default:
        break;
    }
    this.options.logger.info(
      { vm: vm.name, jail: session.jail, session: session.id, vcpu, arg, event: eventKindName(kind) },
      'compat event',
    );
  }
}

/** A socket file left by a daemon that died is removed; one that answers is another daemon's. */
async function removeStaleSocket(socketPath: string): Promise<void> {
  let stat: fs.Stats;
  try {
    stat = fs.lstatSync(socketPath);
  } catch {
    return;
  }
  if (!stat.isSocket()) throw new Error(`${socketPath} exists and is not a socket; remove it or choose another directory`);
  const live = await new Promise<boolean>((resolve) => {
    const probe = net.connect(socketPath);
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live) {
    throw new Error(`another vmm-compatd is already listening on ${socketPath}; stop it first (service vmm_compatd stop)`);
  }
  fs.rmSync(socketPath, { force: true });
}
