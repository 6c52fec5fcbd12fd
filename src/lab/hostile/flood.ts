// A hostile tenant as the daemon sees it: simulated interposers in one jail's socket directory
// that do everything a root user inside a jail with allow.vmm can do to vmm-compatd, at once and
// for as long as the flood runs. Frames come from the daemon's own encoder (protocol.ts), and
// the sessions that say HELLO hold a real VM open through the lab bridge, so the daemon's peer
// checks pass and its plans run real eager activations on the kernel model.
//
// Run inside the scale driver process (src/lab/scale/driver.ts, ops 'flood' / 'flood-stop');
// src/lab/hostile/run.ts measures a victim jail beside it (npm run bench -- --only hostile).
import net from 'node:net';
import path from 'node:path';
import { EventKind, FrameReader, MessageType, encode, type Message } from '../../daemon/protocol';
import { SOCKET_NAME } from '../../daemon/compat-server';

export interface FloodSpec {
  socketDir: string;
  /** VM names of this flood start with it (one driver process, one prefix). */
  vmPrefix: string;
  /** vCPUs of the flood's VMs (what their plans park). */
  vcpus: number;
  /** Connections opened and never spoken on; each one the daemon closes is opened again. */
  silentConnections: number;
  /** Sessions (each on its own VM) over which the plan storms are spread. */
  planSessions: number;
  /** PLAN_REQUESTs per storm, written back to back; a new storm starts when one is answered. */
  plansPerStorm: number;
  /** Loops that connect, send bytes that are no frame, and wait for the daemon to hang up. */
  garbageLoops: number;
  /** Sessions that write PLAN_REQUESTs whenever their socket takes them and never read. */
  slowReaders: number;
  /** Loops that connect, say HELLO and disconnect before the answer, as fast as they can. */
  churnLoops: number;
  /** Sessions that write EVENT frames whenever their socket takes them. */
  eventSessions: number;
  /**
   * Pause between two iterations of a loop (garbage, churn) and between two event batches, in
   * ms: the flood's own CPU stays below a core on a 2-core machine, so what is measured is the
   * daemon under the flood, not a machine with no CPU left for anyone.
   */
  paceMs: number;
}

export interface FloodStats {
  /** connect() calls made, and those that failed before a connection existed (backlog full). */
  connects: number;
  connectFailures: number;
  /** Connections the daemon closed: with ERROR first (by code), or without a word. */
  errorReplies: Record<string, number>;
  closedSilently: number;
  /** Silent connections the daemon closed (each reopened while the flood runs). */
  silentClosedByDaemon: number;
  /** The most silent connections open at one time. */
  silentOpenMax: number;
  /** Sessions that got WELCOME, and HELLOs answered with something else. */
  welcomed: number;
  helloRefused: number;
  storms: number;
  plansSent: number;
  plansAnswered: number;
  /** Plans that stayed unanswered when a storm's wait ended (session closed or 30 s passed). */
  plansUnanswered: number;
  stormMs: number[];
  garbageConnections: number;
  churnConnections: number;
  slowReaderBytesWritten: number;
  eventsWritten: number;
}

/** What the flood needs from its process: a VM created and held open, as bhyve holds it. */
export interface FloodVms {
  hold(name: string): void;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Resolves when a socket whose write returned false drains, or closes. */
function drainedOrClosed(socket: net.Socket): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      socket.off('drain', done);
      socket.off('close', done);
      resolve();
    };
    socket.once('drain', done);
    socket.once('close', done);
  });
}

/** A compat-protocol client, as the interposer's link is: frames in, frames out. */
class FloodClient {
  private readonly reader = new FrameReader();
  private readonly queued: Message[] = [];
  private waiter: ((m: Message | null) => void) | null = null;
  closed = false;
  errorCode: number | null = null;

  private constructor(
    readonly socket: net.Socket,
    private readonly onClose: (client: FloodClient) => void,
  ) {
    socket.on('data', (chunk: Buffer) => {
      let messages: Message[];
      try {
        messages = this.reader.push(chunk);
      } catch {
        socket.destroy();
        return;
      }
      for (const m of messages) {
        if (m.type === MessageType.ERROR) this.errorCode = m.code;
        const w = this.waiter;
        this.waiter = null;
        if (w) w(m);
        else this.queued.push(m);
      }
    });
    socket.on('error', () => socket.destroy());
    socket.on('close', () => {
      this.closed = true;
      const w = this.waiter;
      this.waiter = null;
      w?.(null);
      this.onClose(this);
    });
  }

  static connect(socketPath: string, onClose: (c: FloodClient) => void): Promise<FloodClient | null> {
    return new Promise((resolve) => {
      const socket = net.connect(socketPath);
      const fail = (): void => resolve(null);
      socket.once('error', fail);
      socket.once('connect', () => {
        socket.off('error', fail);
        resolve(new FloodClient(socket, onClose));
      });
    });
  }

  next(timeoutMs: number): Promise<Message | null> {
    const queued = this.queued.shift();
    if (queued) return Promise.resolve(queued);
    if (this.closed) return Promise.resolve(null);
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this.waiter = null;
        resolve(null);
      }, timeoutMs);
      this.waiter = (m) => {
        clearTimeout(timer);
        resolve(m);
      };
    });
  }

  /** Every frame received so far, without waiting. */
  drain(): Message[] {
    return this.queued.splice(0);
  }
}

export class Flood {
  private running = true;
  private readonly loops: Promise<void>[] = [];
  private readonly clients = new Set<FloodClient>();
  private silentOpen = 0;
  private readonly socketPath: string;
  readonly stats: FloodStats = {
    connects: 0,
    connectFailures: 0,
    errorReplies: {},
    closedSilently: 0,
    silentClosedByDaemon: 0,
    silentOpenMax: 0,
    welcomed: 0,
    helloRefused: 0,
    storms: 0,
    plansSent: 0,
    plansAnswered: 0,
    plansUnanswered: 0,
    stormMs: [],
    garbageConnections: 0,
    churnConnections: 0,
    slowReaderBytesWritten: 0,
    eventsWritten: 0,
  };
  private vmCount = 0;

  constructor(
    private readonly spec: FloodSpec,
    private readonly vms: FloodVms,
  ) {
    this.socketPath = path.join(spec.socketDir, SOCKET_NAME);
  }

  /** Starts every behaviour; resolves once the sessions that need a HELLO have had their answer. */
  async start(): Promise<void> {
    const s = this.spec;
    // The sessions that do work first, so that they are among the jail's sessions at all.
    const planners = await this.sessions(s.planSessions);
    const readers = await this.sessions(s.slowReaders);
    const emitters = await this.sessions(s.eventSessions);
    this.loops.push(this.planStorms(planners));
    for (const r of readers) this.loops.push(this.slowReader(r));
    for (const e of emitters) this.loops.push(this.eventSpam(e));
    for (let i = 0; i < s.garbageLoops; i++) this.loops.push(this.garbage(i));
    for (let i = 0; i < s.churnLoops; i++) this.loops.push(this.churn());
    this.loops.push(this.silent());
  }

  async stop(): Promise<FloodStats> {
    this.running = false;
    for (const c of this.clients) c.socket.destroy();
    await Promise.all(this.loops);
    return this.stats;
  }

  private async connect(onClose: (c: FloodClient) => void = () => {}): Promise<FloodClient | null> {
    this.stats.connects++;
    const client = await FloodClient.connect(this.socketPath, (c) => {
      this.clients.delete(c);
      if (c.errorCode !== null) {
        const key = String(c.errorCode);
        this.stats.errorReplies[key] = (this.stats.errorReplies[key] ?? 0) + 1;
      } else if (this.running) {
        this.stats.closedSilently++;
      }
      onClose(c);
    });
    if (!client) {
      this.stats.connectFailures++;
      return null;
    }
    this.clients.add(client);
    if (!this.running) client.socket.destroy();
    return client;
  }

  /** A new VM held open by this process, so that a HELLO naming it passes the peer checks. */
  private newVm(): string {
    const name = `${this.spec.vmPrefix}-${this.vmCount++}`;
    this.vms.hold(name);
    return name;
  }

  private hello(client: FloodClient, vm: string): void {
    client.socket.write(encode({ type: MessageType.HELLO, pid: process.pid, flags: 0, vm, bhyve: '13.1' }));
  }

  /** n sessions on n new VMs, HELLO answered; refused ones are left out. */
  private async sessions(n: number): Promise<FloodClient[]> {
    const out: FloodClient[] = [];
    for (let i = 0; i < n && this.running; i++) {
      const client = await this.connect();
      if (!client) continue;
      this.hello(client, this.newVm());
      const reply = await client.next(5000);
      if (reply?.type === MessageType.WELCOME) {
        this.stats.welcomed++;
        out.push(client);
      } else {
        this.stats.helloRefused++;
        client.socket.destroy();
      }
    }
    return out;
  }

  /** Storm after storm of plansPerStorm PLAN_REQUESTs spread over the sessions, back to back. */
  private async planStorms(sessions: FloodClient[]): Promise<void> {
    while (this.running) {
      const live = sessions.filter((c) => !c.closed);
      if (live.length === 0) return;
      const started = performance.now();
      const perSession = new Map<FloodClient, number>();
      for (let i = 0; i < this.spec.plansPerStorm; i++) {
        const c = live[i % live.length]!;
        c.socket.write(encode({ type: MessageType.PLAN_REQUEST, ncpus: this.spec.vcpus, boot: 0 }));
        perSession.set(c, (perSession.get(c) ?? 0) + 1);
        this.stats.plansSent++;
      }
      this.stats.storms++;
      await Promise.all(
        [...perSession].map(async ([c, want]) => {
          for (let got = 0; got < want; got++) {
            const m = await c.next(30000);
            if (m?.type === MessageType.PLAN) this.stats.plansAnswered++;
            else {
              this.stats.plansUnanswered += want - got;
              return;
            }
          }
        }),
      );
      this.stats.stormMs.push(Math.round(performance.now() - started));
      await sleep(this.spec.paceMs);
    }
  }

  /** Never reads: writes PLAN_REQUESTs while the socket takes them, then waits for it to drain. */
  private async slowReader(c: FloodClient): Promise<void> {
    c.socket.pause();
    const request = encode({ type: MessageType.PLAN_REQUEST, ncpus: this.spec.vcpus, boot: 0 });
    const batch = Buffer.concat(Array.from({ length: 64 }, () => request));
    while (this.running && !c.closed) {
      this.stats.slowReaderBytesWritten += batch.length;
      if (!c.socket.write(batch)) {
        await drainedOrClosed(c.socket);
        if (!this.running) return;
      }
      await sleep(this.spec.paceMs);
    }
  }

  /** spinup-duplicate events, 256 frames per write, as fast as the socket takes them. */
  private async eventSpam(c: FloodClient): Promise<void> {
    const event = encode({ type: MessageType.EVENT, kind: EventKind.SPINUP_DUPLICATE, vcpu: 1, arg: 0, monotonicNs: 0n });
    const batch = Buffer.concat(Array.from({ length: 256 }, () => event));
    while (this.running && !c.closed) {
      c.drain();
      if (c.socket.write(batch)) this.stats.eventsWritten += 256;
      else {
        this.stats.eventsWritten += 256;
        await drainedOrClosed(c.socket);
      }
      await sleep(this.spec.paceMs);
    }
  }

  /** Bytes that are no frame: a header of an unknown version, then noise. */
  private async garbage(i: number): Promise<void> {
    const noise = Buffer.alloc(64, 0xa5);
    noise.writeUInt32LE(i % 2 === 0 ? 0xffffffff : 16, 0); // a 4 GiB body, or a plain one
    noise.writeUInt16LE(i % 2 === 0 ? 2 : 0x7777, 4); // the current version, or none at all
    noise.writeUInt16LE(0x4242, 6); // no such message type
    while (this.running) {
      const c = await this.connect();
      if (c) {
        this.stats.garbageConnections++;
        c.socket.write(noise);
        await c.next(1000);
        c.socket.destroy();
      }
      await sleep(this.spec.paceMs);
    }
  }

  /** Connect, HELLO on a held VM, hang up without waiting: over and over. */
  private async churn(): Promise<void> {
    const vm = this.newVm();
    while (this.running) {
      const c = await this.connect();
      if (c) {
        this.stats.churnConnections++;
        this.hello(c, vm);
        c.socket.destroy();
      }
      await sleep(this.spec.paceMs);
    }
  }

  /** Keeps silentConnections connections open without a word; reopens each one that closes. */
  private async silent(): Promise<void> {
    let wanted = this.spec.silentConnections;
    const reopen = (): void => {
      this.silentOpen--;
      if (this.running) {
        this.stats.silentClosedByDaemon++;
        wanted++;
      }
    };
    while (this.running) {
      let opened = 0;
      while (wanted > 0 && this.running) {
        const c = await this.connect(reopen);
        if (!c) {
          // The listen backlog is full: the daemon is not accepting fast enough. Wait a little.
          await sleep(5);
          continue;
        }
        wanted--;
        this.silentOpen++;
        this.stats.silentOpenMax = Math.max(this.stats.silentOpenMax, this.silentOpen);
        // At first in batches (the connections beyond the limit pile up at once), then as
        // fast as the daemon closes them, a pause apart like every other loop.
        if (++opened % 50 === 0 || this.stats.silentClosedByDaemon > 0) await sleep(this.spec.paceMs);
      }
      await sleep(this.spec.paceMs);
    }
  }
}
