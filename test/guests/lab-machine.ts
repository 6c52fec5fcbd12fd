// A deterministic, single-threaded stand-in for the platform around the interpreter, just
// enough to prove a guest's logic: vCPUs run round-robin in fixed slices; a wrmsr to the x2APIC
// ICR is an INIT or STARTUP (INIT puts the target in wait-for-SIPI, STARTUP restarts a waiting
// target at CS = vector << 8, IP 0, as bhyve's spinup_ap does); the ports of the lab's guest
// conventions end the run; the TSC is virtual (instructions executed * nsPerInstruction), so
// timed waits cost a predictable number of instructions. It is not the kernel model: no
// rendezvous, no activation sets, no interrupts.

import { CpuState, Flag } from '../../src/lab/x86/cpu';
import { startApAtSipiVector, startLabBsp } from '../../src/lab/guests/boot-state';
import { completeRdmsr, Exit, run } from '../../src/lab/x86/interpreter';
import {
  CONSOLE_PORT,
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

export interface MachineOptions {
  readonly vcpus: number;
  readonly image: Uint8Array;
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
  readonly console: string;
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
  memory.set(options.image, GUEST_LOAD_ADDRESS);
  memory[VCPU_COUNT_ADDRESS] = options.vcpus & 0xff;
  memory[VCPU_COUNT_ADDRESS + 1] = options.vcpus >> 8;
  const mem = { bytes: memory };

  const cpus = Array.from({ length: options.vcpus }, () => new CpuState());
  const states: VcpuState[] = cpus.map((_, id) => (id === 0 ? 'running' : 'wait-for-init'));
  const startups = cpus.map(() => 0);
  const bsp = cpus[0];
  startLabBsp(bsp);

  let retired = 0; // instructions of finished slices, over all vCPUs (and earlier incarnations)
  let sliceCpu = bsp;
  let sliceStart = 0;
  const nowNs = (): number => (retired + sliceCpu.instructions - sliceStart) * nsPerInstruction;
  const platform = { tsc: (): bigint => BigInt(nowNs()) };

  let console = '';
  const ipis: Ipi[] = [];
  const portWrites: PortWrite[] = [];
  const finish = (outcome: Outcome, fault?: MachineResult['fault']): MachineResult => ({
    outcome, console, ipis, portWrites, fault, startups, vcpuStates: states, cpus, memory, elapsedNs: nowNs(),
  });

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
          if (exit.port === PM1A_CONTROL_PORT && exit.bytes === 2 && exit.value === POWEROFF_VALUE) return finish('poweroff');
          if (exit.port === RESET_CONTROL_PORT && exit.bytes === 1 && exit.value === RESET_VALUE) return finish('reset');
          break;
        case 'wrmsr':
          if (exit.msr === X2APIC_ICR_MSR) {
            const low = Number(exit.value & 0xffffffffn);
            const deliveryMode = (low >> 8) & 7;
            const mode = deliveryMode === ICR_DELIVERY_MODE_INIT ? 'init' : deliveryMode === ICR_DELIVERY_MODE_STARTUP ? 'startup' : 'other';
            deliverIpi({ from: id, to: Number(exit.value >> 32n), mode, vector: low & 0xff, atNs: nowNs() });
          }
          break;
        case 'rdmsr':
          completeRdmsr(sliceCpu, exit.msr === X2APIC_ID_MSR ? BigInt(id) : 0n);
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
