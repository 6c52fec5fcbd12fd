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
}

const EPERM = 1;
const EBUSY = 16;

interface Session {
  id: number;
  jail: string;
  dirPath: string;
  socket: net.Socket;
  reader: FrameReader;
  pid: number | null;
  vm: VmRecord | null;
  /** A plan and the messages that came after it, waiting for the plan's turn. */
  queued: Message[];
}

export class CompatServer {
  readonly registry: VmRegistry;
  private settings: CompatSettings;
  private readonly listeners = new Map<string, { server: net.Server; dir: SocketDirectory }>();
  private readonly sessions = new Set<Session>();
  /** Open sessions per VM record: whether a VM is still connected, without a scan of every session. */
  private readonly liveSessionsByVm = new Map<VmRecord, number>();
  /** Open sessions per jail, for the metrics. */
  private readonly openByJail = new Map<string, number>();
  /**
   * Sessions whose next message is a plan, in arrival order. One plan runs per turn of the
   * event loop: a plan blocks in the kernel's ioctls, and a storm of them handled in one
   * turn would keep `status`, new sessions and the other events waiting for all of them.
   */
  private readonly planTurns: Session[] = [];
  private planTurnScheduled = false;
  private nextSession = 1;
  private readonly deviceDir: string;

  constructor(private options: CompatServerOptions) {
    this.registry = options.registry ?? new VmRegistry();
    this.settings = { variant: options.variant, variantBy: options.variantBy, compatFreebsd13: options.compatFreebsd13 };
    this.deviceDir = options.deviceDir ?? '/dev/vmm';
  }

  get variant(): KernelVariant {
    return this.settings.variant;
  }

  /** Open interposer connections per socket directory's jail. */
  openSessionsByJail(): ReadonlyMap<string, number> {
    return this.openByJail;
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
    const server = net.createServer((socket) => this.accept(dir, socket));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
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
    this.sessions.clear();
    for (const dirPath of [...this.listeners.keys()]) await this.unlisten(dirPath);
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
    const session: Session = {
      id: this.nextSession++,
      jail: dir.jail,
      dirPath: dir.path,
      socket,
      reader: new FrameReader(SUPPORTED_PROTOCOL_VERSIONS),
      pid: null,
      vm: null,
      queued: [],
    };
    this.sessions.add(session);
    this.openByJail.set(dir.jail, (this.openByJail.get(dir.jail) ?? 0) + 1);
    this.count('sessions', dir.jail);
    socket.on('data', (chunk: Buffer) => this.receive(session, chunk));
    socket.on('error', () => socket.destroy());
    socket.on('close', () => this.drop(session));
  }

  private drop(session: Session): void {
    if (!this.sessions.delete(session)) return;
    this.openByJail.set(session.jail, (this.openByJail.get(session.jail) ?? 1) - 1);
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
    let messages: Message[];
    try {
      messages = session.reader.push(chunk);
    } catch (err) {
      this.fail(session, err instanceof ProtocolError ? err : new ProtocolError(String(err)));
      return;
    }
    for (const msg of messages) {
      if (session.socket.destroyed) return;
      if (session.queued.length > 0 || msg.type === MessageType.PLAN_REQUEST) {
        // A plan waits for its turn; whatever the session sends after it waits behind it.
        session.queued.push(msg);
        if (session.queued.length === 1) {
          this.planTurns.push(session);
          this.schedulePlanTurn();
        }
      } else if (!this.dispatch(session, msg)) {
        return;
      }
    }
  }

  /** Handles one message; false when it closed the session. */
  private dispatch(session: Session, msg: Message): boolean {
    try {
      this.handle(session, msg);
      return true;
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

  /** The oldest waiting plan, then the session's messages behind it up to its next plan. */
  private planTurn(): void {
    this.planTurnScheduled = false;
    const session = this.planTurns.shift();
    if (session) {
      while (session.queued.length > 0) {
        const msg = session.queued.shift()!;
        if (session.socket.destroyed || !this.dispatch(session, msg)) {
          session.queued.length = 0;
          break;
        }
        if (session.queued[0]?.type === MessageType.PLAN_REQUEST) {
          this.planTurns.push(session);
          break;
        }
      }
    }
    if (this.planTurns.length > 0) this.schedulePlanTurn();
  }

  private fail(session: Session, err: ProtocolError): void {
    this.count('protocolErrors', session.jail);
    this.options.logger.warn(
      { jail: session.jail, session: session.id, vm: session.vm?.name, err: err.message },
      'protocol error; closing the connection',
    );
    this.send(session, { type: MessageType.ERROR, code: err.code, message: err.message });
    session.socket.end();
    session.socket.destroySoon?.();
  }

  private refuse(session: Session, code: number, message: string, vm?: string): never {
    this.count('refusals', session.jail);
    this.options.logger.warn({ jail: session.jail, session: session.id, vm, refused: message }, 'refused');
    throw new ProtocolError(message, code);
  }

  /** In the connection's own protocol version (an ERROR before any frame: the current one). */
  private send(session: Session, msg: Message): void {
    if (!session.socket.destroyed) session.socket.write(encode(msg, session.reader.version ?? PROTOCOL_VERSION));
  }

  private handle(session: Session, msg: Message): void {
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

  private hello(session: Session, pid: number, vmName: string, bhyve: string): void {
    if (session.vm) throw new ProtocolError('HELLO sent twice on one connection');
    const nameProblem = vmNameProblem(vmName);
    // A refusal (EPERM), as docs/design.md promises: the interposer fails the open and bhyve
    // exits 4 with this reason. Any other code would make it go on alone, unchecked.
    if (nameProblem) this.refuse(session, EPERM, `bad VM name: ${nameProblem}`);
    const creds = this.options.peers.credentials(session.socket);
    if (!creds) this.refuse(session, EPERM, 'cannot read the peer credentials of this connection (not a local socket?)', vmName);
    if (creds.pid !== pid) {
      this.refuse(session, EPERM, `HELLO claims pid ${pid} but the connection belongs to pid ${creds.pid}; connect from the bhyve process itself`, vmName);
    }
    if (!this.options.peers.holdsVm(creds.pid, vmName)) {
      this.refuse(session, EPERM, `process ${creds.pid} does not hold /dev/vmm/${vmName} open; only the bhyve running that VM may ask for its plan`, vmName);
    }
    // A VM belongs to the jail that first used it, for as long as that VM exists: the device
    // node's identity tells a VM destroyed and created again under the same name from the same VM.
    const instance = this.deviceInstance(vmName);
    const existing = this.registry.find(vmName);
    if (existing && existing.jail !== session.jail && instance !== null && existing.instance === instance) {
      this.refuse(
        session,
        EPERM,
        `VM ${vmName} belongs to jail ${existing.jail}; this socket serves jail ${session.jail}: start it from jail ${existing.jail}, or destroy it there first`,
        vmName,
      );
    }
    const vm = this.registry.vm(vmName, session.jail);
    vm.jail = session.jail;
    vm.instance = instance;
    vm.connected = true;
    this.liveSessionsByVm.set(vm, (this.liveSessionsByVm.get(vm) ?? 0) + 1);
    this.registry.addSession(vm, session.id);
    session.vm = vm;
    session.pid = creds.pid;
    vm.bhyve = this.bhyveFromHello(bhyve);
    const protocol = session.reader.version ?? PROTOCOL_VERSION;
    const deprecated = DEPRECATED_PROTOCOL_VERSIONS.includes(protocol);
    this.registry.record(
      vm,
      session.id,
      'session',
      null,
      null,
      `pid ${creds.pid}, bhyve ${vm.bhyve.release}${vm.bhyve.source === 'older-interposer' ? ` (an older interposer's tag "${bhyve}")` : ''}, protocol ${protocol}${deprecated ? ' (deprecated: an older libvmmcompat.so, which covers at most 16 vCPUs)' : ''}`,
    );
    this.options.logger.info(
      { vm: vm.name, jail: session.jail, session: session.id, pid: creds.pid, bhyve, protocol },
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
      this.refuse(session, EBUSY, `cannot open the VM for eager activation: ${why}; the interposer plans alone`, vm.name);
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
    log.info({ vcpus: ncpus, boot, parked: formatVcpuList(parked), spinupBias, planMs: Number(elapsedMs.toFixed(3)), kernelMs: Number((kernel.seconds * 1000).toFixed(3)), reason }, 'plan');
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
    this.registry.recordWireEvent(vm, session.id, kind, vcpu, arg);
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
