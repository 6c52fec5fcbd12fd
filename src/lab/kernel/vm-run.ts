// vmm.c vm_run with the event checks of vmx.c vmx_run, and the exits the kernel handles itself.
//
// Before every guest entry, in this order (vmx_run):
//   1. suspended         -> vm_handle_suspend, then VM_EXITCODE_SUSPENDED to userland
//   2. rendezvous pending -> vm_handle_rendezvous, then continue
//   3. reqidle           -> VM_EXITCODE_REQIDLE to userland (vm_handle_reqidle clears the flag)
//   4. debug_cpus        -> VM_EXITCODE_DEBUG to userland, without entering the guest
// (vcpu_should_yield / VM_EXITCODE_BOGUS is the model's slice boundary: yield and continue.)
//
// The guest runs in slices (slicing.ts: at most `sliceInstructions`, less when many vCPUs run);
// between slices the vCPU yields to the event loop so that other vCPUs and requests progress. Exits: `out` and `in` ->
// VM_EXITCODE_INOUT to userland (in = 1 for an IN; bhyve writes the result to RAX); `cpuid` ->
// x86_emulate_cpuid in the kernel (cpuid.ts); `hlt` -> vm_handle_hlt; `rdmsr`/`wrmsr` -> the lapic
// MSRs (the ICR write may become VM_EXITCODE_IPI -> vm_handle_ipi, or SPINUP_AP, or a WRMSR exit;
// an IA32_APIC_BASE write that changes the value is a WRMSR exit, vlapic_set_apicbase); a fault
// outside the x86 subset -> vm_suspend(TRIPLEFAULT) (as vm_entry_intinfo does for a triple fault).

import { VmExitcode, VmSuspendHow } from '../../abi/enums';
import { Flag, Gpr } from '../x86/cpu';
import { completeCpuid, completeRdmsr, run, type Exit, type Platform } from '../x86/interpreter';
import { emulateCpuid } from './cpuid';
import { Errno, KernelError, fail } from './errno';
import { inoutExit, ipiExit, plainExit, spinupApExit, suspendedExit, wrmsrExit } from './exit';
import { handleIpi } from './ipi';
import { handleRendezvous } from './rendezvous';
import { handleSuspend } from './suspend';
import { MSR_APICBASE, MSR_X2APIC_ICR, readLapicMsr, setApicBase, writeIcr } from './vlapic';
import type { Vcpu } from './vcpu';
import type { Vm } from './vm';
import { checkAlive, type CallContext } from './wait';

/** The guest's TSC: 1 GHz of host monotonic time (docs/internals.md section 4). */
const PLATFORM: Platform = { tsc: () => process.hrtime.bigint() };

/**
 * In-kernel exits (rdmsr, wrmsr, hlt wake-ups) a slice may take before the vCPU yields even if
 * its instruction budget is not used up: a guest looping on rdmsr must not starve the others.
 */
const KERNEL_EXITS_PER_SLICE = 64;

/**
 * vm_run for a vCPU the caller has frozen. On return vcpu.exit holds the exit for userland;
 * errors are KernelError (EINVAL preconditions, ENXIO on destroy) or CallAborted.
 */
export async function vmRun(vm: Vm, vcpu: Vcpu, ctx: CallContext): Promise<void> {
  if (!vm.active.has(vcpu.id)) fail(Errno.EINVAL, `vCPU ${vcpu.id} is not active`);
  if (vm.suspended.has(vcpu.id)) fail(Errno.EINVAL, `vCPU ${vcpu.id} is suspended`);
  vcpu.runner = ctx.signal;
  // vmmops_run enters the guest at vcpu->nextrip, which becomes the RIP register.
  vcpu.exitRip = null;
  const slicing = vm.slicing;
  slicing.enter();
  try {
    await runLoop(vm, vcpu, ctx);
  } finally {
    slicing.leave();
  }
}

/** The event checks of vmx_run and the guest slices, until an exit goes to userland. */
async function runLoop(vm: Vm, vcpu: Vcpu, ctx: CallContext): Promise<void> {
  let budget = vm.slicing.slice();
  let kernelExits = 0;
  for (;;) {
    checkAlive(ctx.signal);
    vm.checkAlive();
    const cpu = vcpu.cpu;
    if (vm.suspendHow !== VmSuspendHow.NONE) {
      vcpu.exit = suspendedExit(cpu.ip, vm.suspendHow);
      await handleSuspend(vm, vcpu, ctx);
      return stopAtExit(vcpu);
    }
    if (vm.rendezvousPending(vcpu)) {
      await handleRendezvous(vm, vcpu, ctx);
      continue;
    }
    if (vcpu.reqidle) {
      vcpu.reqidle = false;
      vcpu.exit = plainExit(VmExitcode.REQIDLE, cpu.ip);
      return stopAtExit(vcpu);
    }
    if (vm.debug.has(vcpu.id)) {
      vcpu.exit = plainExit(VmExitcode.DEBUG, cpu.ip);
      return stopAtExit(vcpu);
    }
    if (budget <= 0 || kernelExits >= KERNEL_EXITS_PER_SLICE) {
      await vm.slicing.yieldTurn();
      budget = vm.slicing.slice();
      kernelExits = 0;
      continue;
    }
    const before = cpu.instructions;
    vcpu.state = 'running';
    const exit = run(cpu, { bytes: vm.memory.lowmem(), high: vm.memory.highRegion() }, PLATFORM, budget);
    vcpu.state = 'frozen';
    budget -= cpu.instructions - before;
    if (exit.kind === 'budget') {
      budget = 0;
      continue;
    }
    kernelExits++;
    if (await handleExit(vm, vcpu, exit, ctx)) return stopAtExit(vcpu);
  }
}

/** While stopped at an exit, the RIP register is the exit's rip (nextrip = rip + inst_length). */
function stopAtExit(vcpu: Vcpu): void {
  vcpu.exitRip = Number(vcpu.exit.rip);
}

/** Handles one exit in the kernel; true when it goes to userland (`retu`). */
async function handleExit(vm: Vm, vcpu: Vcpu, exit: Exclude<Exit, { kind: 'budget' }>, ctx: CallContext): Promise<boolean> {
  switch (exit.kind) {
    case 'out':
      // No port the lab's guests use is emulated in the kernel: bhyve handles them (vm_handle_inout).
      vcpu.exit = inoutExit(exit.rip, exit.instLength, exit.port, exit.bytes, exit.value);
      return true;
    case 'in':
      vcpu.exit = inoutExit(exit.rip, exit.instLength, exit.port, exit.bytes, vcpu.cpu.gpr[Gpr.EAX], 'in');
      return true;
    case 'cpuid':
      completeCpuid(vcpu.cpu, emulateCpuid(vm, vcpu, exit.leaf));
      return false;
    case 'hlt':
      await handleHlt(vm, vcpu, (vcpu.cpu.flags & Flag.IF) === 0, ctx);
      return false;
    case 'rdmsr':
      completeRdmsr(vcpu.cpu, readLapicMsr(vcpu, exit.msr));
      return false;
    case 'wrmsr':
      if (exit.msr === MSR_X2APIC_ICR) return handleIcrWrite(vm, vcpu, exit, ctx);
      if (exit.msr === MSR_APICBASE && !setApicBase(vcpu, exit.value)) {
        // emulate_wrmsr failed: vmx.c hands the write to userland as VM_EXITCODE_WRMSR.
        vcpu.exit = wrmsrExit(exit.rip, exit.instLength, exit.msr, exit.value);
        return true;
      }
      return false;
    case 'fault':
      vm.lastFault = exit.reason;
      suspendQuietly(vm, VmSuspendHow.TRIPLEFAULT);
      return false;
  }
}

async function handleIcrWrite(vm: Vm, vcpu: Vcpu, exit: Extract<Exit, { kind: 'wrmsr' }>, ctx: CallContext): Promise<boolean> {
  const outcome = writeIcr(vm, vcpu, exit.value);
  switch (outcome.kind) {
    case 'continue':
      return false;
    case 'userland':
      vcpu.exit = wrmsrExit(exit.rip, exit.instLength, exit.msr, exit.value);
      return true;
    case 'spinup':
      vcpu.exit = spinupApExit(exit.rip, exit.instLength, outcome.vcpu, outcome.rip);
      return true;
    case 'ipi':
      vcpu.exit = ipiExit(exit.rip, exit.instLength, outcome.mode, outcome.vector);
      vcpu.exitCpuset.assign(outcome.targets);
      return handleIpi(vm, vcpu, outcome.mode, outcome.vector, ctx);
  }
}

/** vm_suspend from inside the kernel (halt detection, triple fault): EALREADY is fine. */
function suspendQuietly(vm: Vm, how: number): void {
  try {
    vm.suspend(how);
  } catch (error) {
    if (!(error instanceof KernelError) || error.errno !== Errno.EALREADY) throw error;
  }
}

/**
 * vmm.c vm_handle_hlt: sleep ("vmidle" / "vmhalt") until a rendezvous for this vCPU, a VM
 * suspend, reqidle or a debug suspend. With interrupts disabled the vCPU joins halted_cpus, and
 * when halted_cpus == active_cpus the VM is suspended with VM_SUSPEND_HALT (halt detection): an
 * active vCPU that never runs, or is parked, prevents it. The lab has no interrupt sources, so
 * an interrupt never ends the sleep.
 */
async function handleHlt(vm: Vm, vcpu: Vcpu, intrDisabled: boolean, ctx: CallContext): Promise<void> {
  let halted = false;
  let vmHalted = false;
  try {
    for (;;) {
      if (vm.rendezvousPending(vcpu) || vm.suspendHow !== VmSuspendHow.NONE || vcpu.reqidle) break;
      if (vm.debug.has(vcpu.id)) break;
      if (intrDisabled) {
        if (!halted) {
          halted = true;
          vm.halted.add(vcpu.id);
        }
        if (vm.halted.equals(vm.active)) {
          vmHalted = true;
          break;
        }
      }
      vcpu.state = 'sleeping';
      try {
        await vm.sleep(ctx);
      } finally {
        vcpu.state = 'frozen';
      }
    }
  } finally {
    if (halted) vm.halted.delete(vcpu.id);
  }
  if (vmHalted) suspendQuietly(vm, VmSuspendHow.HALT);
}
