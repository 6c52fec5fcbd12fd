// The daemon's memory of every VM it has seen: sessions, plans and every compat event, for
// `vmm-compat status` and the metrics. Bounded: old events roll off per VM.
import { eventKindName } from './protocol';
import type { BhyveGeneration, BhyveHandling } from './bhyve-generation';

export interface VmEventRecord {
  time: string;
  kind: string;
  vcpu: number | null;
  arg: number | null;
  session: number;
  detail?: string;
}

/** The bhyve a VM runs, as its interposer reported it (src/daemon/bhyve-generation.ts). */
export interface BhyveRecord {
  /** __FreeBSD_version from the binary's ELF ABI tag; null when the tag is not known. */
  version: number | null;
  /** "14.3", or what is known without the tag ("14.0 or later", "unknown"). */
  release: string;
  generation: BhyveGeneration | '13.x' | '14.0+' | null;
  /** abi-tag: the ELF note; request: what the binary asked; older-interposer: a libvmmcompat.so that reports no generation. */
  source: 'abi-tag' | 'request' | 'older-interposer' | 'unknown';
  /** What the interposer does for it on this kernel; null until known. */
  handling: BhyveHandling | null;
  why: string;
}

export interface VmRecord {
  name: string;
  jail: string;
  /** The device node's identity when the owning jail first used it (VM instance). */
  instance: string | null;
  vcpus: number | null;
  boot: number;
  plan: { action: 'park' | 'pass-through'; reason: string; spinupBias: number } | null;
  preActivated: number[];
  parked: number[];
  handedOver: number[];
  /** The most recent sessions (at most SESSIONS_PER_VM), oldest first. */
  sessions: number[];
  /** Every session the VM ever had: `sessions` keeps only the latest. */
  sessionsTotal: number;
  connected: boolean;
  events: VmEventRecord[];
  /** The bhyve of the latest session (absent from records of daemons before generations). */
  bhyve?: BhyveRecord;
}

export interface Counters {
  sessions: number;
  vmsShimmed: number;
  apsActivated: number;
  handovers: number;
  fallbacks: number;
  refusals: number;
  protocolErrors: number;
}

/**
 * Events kept per VM: at least this many, and enough for a few boots of a large VM (a boot
 * records about three events per AP: parked, handover, activate-hidden), so that the plan and
 * the session of the current boot do not roll off a 256-vCPU VM's record.
 */
const EVENTS_PER_VM = 500;
/**
 * Session ids remembered per VM. A VM rebooted by vm-bhyve gets a new bhyve, hence a new session,
 * on every reset: unbounded, the list grew for as long as the VM kept rebooting (the reboot soak
 * found it).
 */
export const SESSIONS_PER_VM = 64;
/** The order of localeCompare, with one collator instead of one per comparison. */
const BY_NAME = new Intl.Collator();
const EVENTS_PER_VCPU = 8;

export function eventLimit(vcpus: number | null): number {
  return Math.max(EVENTS_PER_VM, (vcpus ?? 0) * EVENTS_PER_VCPU);
}
/** VMs remembered; past this the disconnected records the daemon first saw earliest are forgotten first. */
const MAX_VMS = 2000;

export class VmRegistry {
  private readonly vms = new Map<string, VmRecord>();
  readonly counters: Counters = {
    sessions: 0,
    vmsShimmed: 0,
    apsActivated: 0,
    handovers: 0,
    fallbacks: 0,
    refusals: 0,
    protocolErrors: 0,
  };

  /**
   * The record of VM `name`, created for `jail` if there is none. A new record beyond
   * `jailLimit` records of that jail makes the jail's disconnected record it first saw earliest go
   * first (not the one disconnected longest: records keep the order they were made in).
   */
  vm(name: string, jail: string, jailLimit = Infinity): VmRecord {
    let record = this.vms.get(name);
    if (!record) {
      record = {
        name,
        jail,
        instance: null,
        vcpus: null,
        boot: 0,
        plan: null,
        preActivated: [],
        parked: [],
        handedOver: [],
        sessions: [],
        sessionsTotal: 0,
        connected: false,
        events: [],
      };
      this.vms.set(name, record);
      this.forgetOldestOfJail(jail, jailLimit);
      this.forgetOldest();
    }
    return record;
  }

  private forgetOldestOfJail(jail: string, limit: number): void {
    if (!Number.isFinite(limit)) return;
    let count = 0;
    for (const vm of this.vms.values()) if (vm.jail === jail) count++;
    if (count <= limit) return;
    for (const [name, vm] of this.vms) {
      if (vm.jail === jail && !vm.connected) {
        this.vms.delete(name);
        if (--count <= limit) return;
      }
    }
  }

  private forgetOldest(): void {
    if (this.vms.size <= MAX_VMS) return;
    // Map iteration is insertion order: the first disconnected record is the oldest.
    for (const [name, vm] of this.vms) {
      if (!vm.connected) {
        this.vms.delete(name);
        if (this.vms.size <= MAX_VMS) return;
      }
    }
  }

  find(name: string): VmRecord | undefined {
    return this.vms.get(name);
  }

  /** A new session of the VM: remembered among the latest SESSIONS_PER_VM, and counted. */
  addSession(vm: VmRecord, session: number): void {
    vm.sessions.push(session);
    if (vm.sessions.length > SESSIONS_PER_VM) vm.sessions.splice(0, vm.sessions.length - SESSIONS_PER_VM);
    vm.sessionsTotal++;
  }

  record(vm: VmRecord, session: number, kind: string, vcpu: number | null, arg: number | null, detail?: string): VmEventRecord {
    const event: VmEventRecord = { time: new Date().toISOString(), kind, vcpu, arg, session };
    if (detail) event.detail = detail;
    vm.events.push(event);
    const limit = eventLimit(vm.vcpus);
    if (vm.events.length > limit) vm.events.splice(0, vm.events.length - limit);
    return event;
  }

  recordWireEvent(vm: VmRecord, session: number, kind: number, vcpu: number, arg: number): VmEventRecord {
    return this.record(vm, session, eventKindName(kind), vcpu, arg);
  }

  /** VMs with a live interposer session, per jail (the metrics' gauge). */
  connectedByJail(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const vm of this.vms.values()) {
      if (vm.connected) counts.set(vm.jail, (counts.get(vm.jail) ?? 0) + 1);
    }
    return counts;
  }

  all(): VmRecord[] {
    return [...this.vms.values()].sort((a, b) => BY_NAME.compare(a.name, b.name));
  }
}
