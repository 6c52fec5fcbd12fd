// A deterministic, single-threaded stand-in for the platform around the interpreter, just
// enough to prove a guest's logic: vCPUs run round-robin in fixed slices; a wrmsr to the x2APIC
// ICR is an INIT or STARTUP (INIT puts the target in wait-for-SIPI, STARTUP restarts a waiting
// target at CS = vector << 8, IP 0, as bhyve's spinup_ap does); the ports of the lab's guest
// conventions end the run; the TSC is virtual (instructions executed * nsPerInstruction), so
// timed waits cost a predictable number of instructions. It is not the kernel model: no
// rendezvous, no activation sets, no interrupts.
//
// A guest runs either as a flat image at 0x10000 (the BSP at the lab's start state, the vCPU
// count at 0x0500, as a loader boot leaves them) or from a boot ROM (`rom`: mapped to end at
// 4 GB, the BSP at the x86 reset vector with nothing in memory). COM1 is a 16550 whose LSR shows
// THRE (after `com1BusyReads` reads without it); CPUID leaf 1 and IA32_APIC_BASE follow `apic`.

import { CpuState, Flag, Gpr } from '../../src/lab/x86/cpu';
import { startApAtSipiVector, startLabBsp } from '../../src/lab/guests/boot-state';
import { completeCpuid, completeIn, completeRdmsr, Exit, GuestMemory, run } from '../../src/lab/x86/interpreter';
import {
  APIC_BASE_EXTD,
  COM1_LSR_PORT,
  COM1_THR_PORT,
  CONSOLE_PORT,
  CPUID_LEAF1_ECX_X2APIC,
  IA32_APIC_BASE_MSR,
  LSR_THRE,
  GUEST_LOAD_ADDRESS,
  ICR_DELIVERY_MODE_INIT,
  ICR_DELIVERY_MODE_STARTUP,
  PM1A_CONTROL_PORT,
  POWEROFF_VALUE,
  RESET_CONTROL_PORT,
  RESET_VALUE,
  VCPU_COUNT_ADDRESS,
  X2APIC_ICR_MSR,
  X2APIC_ID_MSR,
} from '../../src/lab/guests/conventions';

export interface Ipi {
  readonly from: number;
  readonly to: number;
  readonly mode: 'init' | 'startup' | 'other';
  readonly vector: number;
  /** Virtual TSC time of the wrmsr, in ns. */
  readonly atNs: number;
}

export interface PortWrite {
  readonly vcpu: number;
  readonly port: number;
  readonly bytes: number;
  readonly value: number;
}

/**
 * How the local APICs behave: 'x2apic' as bhyve -x (every vCPU starts in x2APIC mode, CPUID
 * offers it, a change of IA32_APIC_BASE is refused: a triple fault here, as bhyve's #GP through
 * an IDT of limit 0 would be); 'xapic' as a real CPU (starts in xAPIC mode, CPUID offers x2APIC,
 * the EXTD bit switches it; an x2APIC MSR in xAPIC mode is #GP, a triple fault here); 'none' as
 * bhyve without -x (xAPIC only, CPUID does not offer x2APIC, x2APIC MSR writes are ignored).
 */
export type ApicModel = 'x2apic' | 'xapic' | 'none';

export interface MachineOptions {
  readonly vcpus: number;
  /** A flat image at 0x10000, or */
  readonly image?: Uint8Array;
  /** a boot ROM that ends at 4 GB (the BSP starts at the reset vector). */
  readonly rom?: Uint8Array;
  /** Default 'x2apic'. */
  readonly apic?: ApicModel;
  /** COM1's LSR reads without THRE before each one with it (default 0). */
  readonly com1BusyReads?: number;
  readonly memoryBytes?: number;
  /** Whether the platform delivers this IPI (default: all). Dropping models a kernel that loses INIT/SIPI. */
  readonly deliver?: (ipi: Ipi) => boolean;
  readonly nsPerInstruction?: number;
  readonly sliceInstructions?: number;
  /** Bound on the whole run, in instructions over all vCPUs. */
  readonly maxInstructions?: number;
}

/** idle: every started vCPU halted with interrupts enabled, and nothing here ever interrupts. */
export type Outcome = 'poweroff' | 'reset' | 'halt' | 'triplefault' | 'idle' | 'instruction-limit';

export interface MachineResult {
  readonly outcome: Outcome;
  /** The debug port's bytes, then COM1's. */
  readonly console: string;
  readonly com1: string;
  /** Values written to IA32_APIC_BASE, by vCPU. */
  readonly apicBaseWrites: readonly { vcpu: number; value: bigint }[];
  /** LSR reads that found THRE clear. */
  readonly com1BusyPolls: number;
  readonly ipis: readonly Ipi[];
  readonly portWrites: readonly PortWrite[];
  readonly fault?: Extract<Exit, { kind: 'fault' }> & { vcpu: number };
  /** Times each vCPU began executing at a STARTUP (the BSP's own start is not counted). */
  readonly startups: readonly number[];
  readonly vcpuStates: readonly VcpuState[];
  readonly cpus: readonly CpuState[];
  readonly memory: Uint8Array;
  readonly elapsedNs: number;
}

export type VcpuState = 'wait-for-init' | 'wait-for-sipi' | 'running' | 'halted';

export function runMachine(options: MachineOptions): MachineResult {
  const nsPerInstruction = options.nsPerInstruction ?? 100;
  const slice = options.sliceInstructions ?? 64;
  const maxInstructions = options.maxInstructions ?? 20_000_000;
  const memory = new Uint8Array(options.memoryBytes ?? 0x20000);
  const apic = options.apic ?? 'x2apic';
  let mem: GuestMemory = { bytes: memory };
  const cpus = Array.from({ length: options.vcpus }, () => new CpuState());
  const bsp = cpus[0];
  if (options.rom !== undefined) {
    mem = { bytes: memory, high: { base: 2 ** 32 - options.rom.length, bytes: options.rom } };
    // vmmapi.c vcpu_reset: CS selector 0xF000, base 0xFFFF0000, IP 0xFFF0, RDX 0xF00.
    bsp.cs.selector = 0xf000;
    bsp.cs.base = 0xffff0000;
    bsp.ip = 0xfff0;
    bsp.gpr[Gpr.EDX] = 0xf00;
  } else if (options.image !== undefined) {
    memory.set(options.image, GUEST_LOAD_ADDRESS);
    memory[VCPU_COUNT_ADDRESS] = options.vcpus & 0xff;
    memory[VCPU_COUNT_ADDRESS + 1] = options.vcpus >> 8;
    startLabBsp(bsp);
  } else {
    throw new Error('runMachine: an image or a rom');
  }
  const x2apic = cpus.map(() => apic === 'x2apic');
  const states: VcpuState[] = cpus.map((_, id) => (id === 0 ? 'running' : 'wait-for-init'));
  const startups = cpus.map(() => 0);
  let com1 = '';
  let com1BusyPolls = 0;
  let busyLeft = options.com1BusyReads ?? 0;
  const apicBaseWrites: { vcpu: number; value: bigint }[] = [];
  const apicBase = (id: number): bigint => 0xfee00000n | 0x800n | (id === 0 ? 0x100n : 0n) | (x2apic[id] ? BigInt(APIC_BASE_EXTD) : 0n);

  let retired = 0; // instructions of finished slices, over all vCPUs (and earlier incarnations)
  let sliceCpu = bsp;
  let sliceStart = 0;
  const nowNs = (): number => (retired + sliceCpu.instructions - sliceStart) * nsPerInstruction;
  const platform = { tsc: (): bigint => BigInt(nowNs()) };

  let console = '';
  const ipis: Ipi[] = [];
  const portWrites: PortWrite[] = [];
  const finish = (outcome: Outcome, fault?: MachineResult['fault']): MachineResult => ({
    outcome, console: console + com1, com1, apicBaseWrites, com1BusyPolls, ipis, portWrites, fault, startups, vcpuStates: states, cpus, memory, elapsedNs: nowNs(),
  });
  const shutdown = (id: number, exit: Extract<Exit, { kind: 'wrmsr' | 'rdmsr' }>, why: string): MachineResult =>
    finish('triplefault', { kind: 'fault', rip: exit.rip, opcode: 0x0f00, reason: why, vcpu: id });

  const deliverIpi = (ipi: Ipi): void => {
    ipis.push(ipi);
    if (ipi.to === ipi.from || ipi.to >= cpus.length) return; // vlapic.c drops these too
    if (options.deliver !== undefined && !options.deliver(ipi)) return;
    if (ipi.mode === 'init') {
      states[ipi.to] = 'wait-for-sipi';
    } else if (ipi.mode === 'startup' && states[ipi.to] === 'wait-for-sipi') {
      startApAtSipiVector(cpus[ipi.to], ipi.vector);
      states[ipi.to] = 'running';
      startups[ipi.to]++;
    }
  };

  for (;;) {
    let anyRan = false;
    for (let id = 0; id < cpus.length; id++) {
      if (states[id] !== 'running') continue;
      anyRan = true;
      sliceCpu = cpus[id];
      sliceStart = sliceCpu.instructions;
      const exit = run(sliceCpu, mem, platform, slice);
      const ran = sliceCpu.instructions - sliceStart;
      if (exit.kind === 'fault') return finish('triplefault', { ...exit, vcpu: id });
      switch (exit.kind) {
        case 'budget':
          break;
        case 'hlt':
          // No interrupt source exists here, so a halted vCPU sleeps until an INIT.
          states[id] = 'halted';
          break;
        case 'out':
          portWrites.push({ vcpu: id, port: exit.port, bytes: exit.bytes, value: exit.value });
          if (exit.port === CONSOLE_PORT) console += String.fromCharCode(exit.value & 0xff);
          if (exit.port === COM1_THR_PORT && exit.bytes === 1) com1 += String.fromCharCode(exit.value & 0xff);
          if (exit.port === PM1A_CONTROL_PORT && exit.bytes === 2 && exit.value === POWEROFF_VALUE) return finish('poweroff');
          if (exit.port === RESET_CONTROL_PORT && exit.bytes === 1 && exit.value === RESET_VALUE) return finish('reset');
          break;
        case 'in': {
          let value = 0xff;
          if (exit.port === COM1_LSR_PORT) {
            if (busyLeft > 0) {
              busyLeft--;
              com1BusyPolls++;
              value = 0;
            } else {
              busyLeft = options.com1BusyReads ?? 0;
              value = LSR_THRE | 0x40; // THRE | TEMT
            }
          }
          completeIn(sliceCpu, exit.bytes, value);
          break;
        }
        case 'cpuid':
          completeCpuid(sliceCpu, exit.leaf === 1 ? [0x600, id << 24, apic === 'none' ? 0 : CPUID_LEAF1_ECX_X2APIC, 0] : [0, 0, 0, 0]);
          break;
        case 'wrmsr':
          if (exit.msr === IA32_APIC_BASE_MSR) {
            apicBaseWrites.push({ vcpu: id, value: exit.value });
            if (exit.value === apicBase(id)) break;
            const switching = apic === 'xapic' && exit.value === (apicBase(id) | BigInt(APIC_BASE_EXTD));
            if (!switching) return shutdown(id, exit, `IA32_APIC_BASE write 0x${exit.value.toString(16)} refused`);
            x2apic[id] = true;
            break;
          }
          if (exit.msr >= 0x800 && exit.msr <= 0x8ff && !x2apic[id]) {
            if (apic === 'xapic') return shutdown(id, exit, `x2APIC MSR 0x${exit.msr.toString(16)} written in xAPIC mode (#GP)`);
            break; // bhyve without -x: vlapic_write ignores it
          }
          if (exit.msr === X2APIC_ICR_MSR) {
            const low = Number(exit.value & 0xffffffffn);
            const deliveryMode = (low >> 8) & 7;
            const mode = deliveryMode === ICR_DELIVERY_MODE_INIT ? 'init' : deliveryMode === ICR_DELIVERY_MODE_STARTUP ? 'startup' : 'other';
            deliverIpi({ from: id, to: Number(exit.value >> 32n), mode, vector: low & 0xff, atNs: nowNs() });
          }
          break;
        case 'rdmsr':
          if (exit.msr === IA32_APIC_BASE_MSR) completeRdmsr(sliceCpu, apicBase(id));
          else completeRdmsr(sliceCpu, exit.msr === X2APIC_ID_MSR && x2apic[id] ? BigInt(id) : 0n);
          break;
      }
      retired += ran;
      sliceStart = sliceCpu.instructions;
      if (retired >= maxInstructions) return finish('instruction-limit');
    }
    // vm_handle_hlt: every started vCPU halted with interrupts disabled suspends the VM (HALT).
    if (!anyRan) {
      const started = cpus.filter((_, id) => states[id] === 'halted');
      return finish(started.every((cpu) => (cpu.flags & Flag.IF) === 0) ? 'halt' : 'idle');
    }
  }
}
