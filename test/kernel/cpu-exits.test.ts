// What the kernel model does with the instructions a boot ROM runs: cpuid answered in the kernel
// (x86.c x86_emulate_cpuid), IA32_APIC_BASE read and written as vmm_lapic.c and vlapic.c do (a
// change is refused: VM_EXITCODE_WRMSR to userland, as vmx.c does when emulate_wrmsr fails), an
// IN as VM_EXITCODE_INOUT with in = 1 whose result userland writes to RAX (vmx.c
// EXIT_REASON_INOUT, bhyve inout.c), and lidt's IDTR behind VM_GET/SET_SEGMENT_DESCRIPTOR.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { VmExitcode, VmReg, X2apicState } from '../../src/abi/enums';
import { VM_SEG_DESC, decodeInout, decodeMsr } from '../../src/abi/structs';
import { Assembler } from '../../src/lab/guests/asm';
import { BHYVE_CPUID_SIGNATURE, CPUID_VM_HIGH, clampCpuidLeaf } from '../../src/lab/kernel/cpuid';
import { createVm, setRealMode, startLab, type RunResult, type VmThread } from './harness';

const OPTS = { timeout: 5_000 };
const MARK_PORT = 0x80;

/** Runs the BSP to its next exit, which must be `out MARK_PORT` (the guest's "look now"). */
async function toMark(t: VmThread): Promise<RunResult> {
  const r = await t.run(0);
  assert.equal(r.ret, 0);
  assert.equal(r.exit?.exitcode, VmExitcode.INOUT, `exit code ${r.exit?.exitcode}`);
  assert.equal(decodeInout(r.exit!.u).port, MARK_PORT);
  return r;
}

async function registers(t: VmThread): Promise<number[]> {
  const out: number[] = [];
  for (const reg of [VmReg.RAX, VmReg.RBX, VmReg.RCX, VmReg.RDX]) out.push(Number((await t.getRegister(0, reg)).value));
  return out;
}

/** cpuid for each leaf, each followed by an out to MARK_PORT. */
function cpuidGuest(leaves: number[]): Uint8Array {
  const asm = new Assembler(0);
  for (const leaf of leaves) asm.movImm32('eax', leaf).movImm32('ecx', 0).cpuid().outImmAl(MARK_PORT);
  return asm.hlt().bytes();
}

async function vmWith(guest: Uint8Array, x2apic: boolean, name: string): Promise<VmThread> {
  const lab = await startLab('fixed14');
  const t = await createVm(lab, name, guest);
  await setRealMode(t, 0, 0x1000, x2apic);
  assert.equal(await t.activate(0), 0);
  return t;
}

function ascii(...dwords: number[]): string {
  const b = Buffer.alloc(dwords.length * 4);
  dwords.forEach((d, i) => b.writeUInt32LE(d >>> 0, i * 4));
  return b.toString('latin1');
}

test('x86.c x86_emulate_cpuid leaf 1: APIC ID = vcpuid, threads * cores, HV set, VMX hidden, x2APIC iff the vCPU\'s x2APIC state is enabled', OPTS, async () => {
  for (const x2apic of [true, false]) {
    const t = await vmWith(cpuidGuest([1]), x2apic, `cpuid1-${x2apic}`);
    assert.equal(await t.setTopology(1, 2, 2, 0), 0);
    await toMark(t);
    const [eax, ebx, ecx, edx] = await registers(t);
    assert.equal(eax, 0x600, 'the lab host\'s signature');
    assert.equal(ebx >>> 24, 0, 'vCPU 0');
    assert.equal((ebx >>> 16) & 0xff, 4, 'threads * cores');
    assert.equal((ecx >>> 21) & 1, x2apic ? 1 : 0, 'CPUID2_X2APIC follows vm_get_x2apic_state');
    assert.equal(ecx >>> 31, 1, 'CPUID2_HV');
    assert.equal(ecx & 0x20, 0, 'CPUID2_VMX hidden');
    assert.equal(ecx & 0x08000000, 0, 'OSXSAVE: CR4.XSAVE is clear');
    assert.equal(ecx & 0x04000000, 0x04000000, 'XSAVE kept: the host has OSXSAVE');
    assert.equal(edx & 0x10000000, 0x10000000, 'CPUID_HTT');
    assert.equal(edx & 0x00400000, 0, 'CPUID_ACPI hidden');
    assert.equal(edx & 0x4080, 0x4080, 'MCA and MCE advertised');
    t.end();
  }
});

test('x86.c: leaf 0x40000000 is "bhyve bhyve "; leaves beyond each range are clamped to its highest', OPTS, async () => {
  const t = await vmWith(cpuidGuest([0x4000_0000, 0x4000_0007, 0, 7, 0x8000_0008]), true, 'cpuidhv');
  await toMark(t);
  const [eax, ebx, ecx, edx] = await registers(t);
  assert.equal(eax, CPUID_VM_HIGH);
  assert.equal(ascii(ebx!, ecx!, edx!), BHYVE_CPUID_SIGNATURE);
  await toMark(t);
  assert.deepEqual(await registers(t), [eax, ebx, ecx, edx], '0x40000007 -> 0x40000000');
  await toMark(t);
  const leaf0 = await registers(t);
  assert.equal(leaf0[0], 1, 'the lab host\'s highest basic leaf');
  assert.equal(ascii(leaf0[1]!, leaf0[3]!, leaf0[2]!), 'GenuineIntel');
  await toMark(t);
  assert.equal((await registers(t))[0], 0x600, 'leaf 7 -> leaf 1');
  await toMark(t);
  assert.deepEqual(await registers(t), [0x8000_0000, 0, 0, 0], '0x80000008 -> the highest extended leaf');
  assert.equal(clampCpuidLeaf(0xffff_ffff), 0x8000_0000);
  assert.equal(clampCpuidLeaf(0x7fff_ffff), CPUID_VM_HIGH);
  t.end();
});

test('vlapic.c: IA32_APIC_BASE reads 0xFEE00000 | EN | BSP (| EXTD in x2APIC mode); writing it unchanged continues, a change is VM_EXITCODE_WRMSR', OPTS, async () => {
  for (const x2apic of [true, false]) {
    const base = x2apic ? 0xfee00d00 : 0xfee00900;
    const asm = new Assembler(0);
    asm.movImm32('ecx', 0x1b).rdmsr().outImmAl(MARK_PORT); // read
    asm.wrmsr().outImmAl(MARK_PORT); // the same value back
    asm.aluImm('xor', 'eax', 0x400).wrmsr(); // flip EXTD
    asm.hlt();
    const t = await vmWith(asm.bytes(), x2apic, `apicbase-${x2apic}`);
    await toMark(t);
    const [eax, , , edx] = await registers(t);
    assert.equal(eax, base);
    assert.equal(edx, 0);
    await toMark(t);
    const r = await t.run(0);
    assert.equal(r.exit?.exitcode, VmExitcode.WRMSR, 'vlapic_set_apicbase: "Changing APIC_BASE MSR ... not supported"');
    assert.deepEqual(decodeMsr(r.exit!.u), { code: 0x1b, wval: BigInt((base ^ 0x400) >>> 0) });
    assert.equal((await t.getRegister(0, VmReg.RIP)).value, 0x14n, 'rip of the wrmsr (6 + 2 + 2 + 2 + 2 + 6 bytes in)');
    t.end();
  }
});

test('vmx.c EXIT_REASON_INOUT: in al, dx is VM_EXITCODE_INOUT with in = 1 and the guest\'s EAX; the RAX userland sets is what the guest sees', OPTS, async () => {
  const asm = new Assembler(0);
  asm.movImm32('eax', 0x1234_5678).movImm16('dx', 0x3fd).inAlDx().outImmAl(MARK_PORT).hlt();
  const t = await vmWith(asm.bytes(), true, 'inal');
  const r = await t.run(0);
  assert.equal(r.exit?.exitcode, VmExitcode.INOUT);
  const io = decodeInout(r.exit!.u);
  assert.deepEqual({ in: io.in, port: io.port, bytes: io.bytes, eax: io.eax, string: io.string }, { in: 1, port: 0x3fd, bytes: 1, eax: 0x1234_5678, string: 0 });
  assert.equal(r.exit!.inst_length, 1);
  // bhyve inout.c: the handler's byte merged into eax, then VM_SET_REGISTER(RAX).
  assert.equal(await t.setRegister(0, VmReg.RAX, 0x1234_5660), 0);
  const mark = await toMark(t);
  assert.equal(decodeInout(mark.exit!.u).eax & 0xff, 0x60);
  t.end();
});

test('lidt loads the IDTR that VM_GET_SEGMENT_DESCRIPTOR(IDTR) reports; VM_SET_SEGMENT_DESCRIPTOR(IDTR) (vcpu_reset) sets it', OPTS, async () => {
  const asm = new Assembler(0);
  asm.lidt('idt').outImmAl(MARK_PORT).hlt();
  asm.label('idt').dw(0).dd(0);
  const t = await vmWith(asm.bytes(), true, 'lidtvm');
  assert.equal(await t.setDesc(0, VmReg.IDTR, 0, 0xffff, 0), 0);
  const before = await t.ioctl('VM_GET_SEGMENT_DESCRIPTOR', VM_SEG_DESC.encode({ cpuid: 0, regnum: VmReg.IDTR }));
  assert.deepEqual(VM_SEG_DESC.decode(before.out), { cpuid: 0, regnum: VmReg.IDTR, base: 0n, limit: 0xffff, access: 0 });
  await toMark(t);
  const after = await t.ioctl('VM_GET_SEGMENT_DESCRIPTOR', VM_SEG_DESC.encode({ cpuid: 0, regnum: VmReg.IDTR }));
  assert.deepEqual(VM_SEG_DESC.decode(after.out), { cpuid: 0, regnum: VmReg.IDTR, base: 0n, limit: 0, access: 0 });
  assert.equal(X2apicState.ENABLED, 1);
  t.end();
});
