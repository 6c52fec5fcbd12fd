// Self-contained boot ROMs (src/lab/guests/rom.ts): the layout of docs/lab-guests.md ("Boot
// ROMs"), bootrom.c's whole-number-of-pages rule, and the reset code run from the x86 reset state
// (vmmapi.c vcpu_reset: CS selector 0xF000, base 0xFFFF0000, IP 0xFFF0): the copy through CS,
// the vCPU count at 0x0500, the IDT of limit 0, the x2APIC switch only where it is needed, and
// the guest's start state.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  DEFAULT_ROM_VCPUS,
  ENTRY_FROM_END,
  GUEST_ROM_LAYOUT,
  MAX_ROM_IMAGE_BYTES,
  RESET_VECTOR_FROM_END,
  ROM_PAGE_BYTES,
  buildGuestRom,
  guestRomBytes,
  patchGuestRomVcpus,
  readGuestRomHeader,
} from '../../src/lab/guests/rom';
import { standardGuest, standardGuestNames, standardGuestRom } from '../../src/lab/guests/index';
import { APIC_BASE_EXTD, CPUID_LEAF1_ECX_X2APIC, IA32_APIC_BASE_MSR } from '../../src/lab/guests/conventions';
import { CpuState, Gpr } from '../../src/lab/x86/cpu';
import { completeCpuid, completeRdmsr, run, type Exit } from '../../src/lab/x86/interpreter';
import { runMachine } from './lab-machine';

const PLATFORM = { tsc: (): bigint => 0n };
const FOUR_GB = 0x1_0000_0000;

function resetCpu(): CpuState {
  const cpu = new CpuState();
  cpu.cs.selector = 0xf000;
  cpu.cs.base = 0xffff0000;
  cpu.ip = 0xfff0;
  cpu.gpr[Gpr.EDX] = 0xf00;
  return cpu;
}

test('every standard ROM is two pages: header, the COM1 build of the guest at 0x40, the reset code and the reset vector', () => {
  for (const name of standardGuestNames()) {
    const rom = standardGuestRom(name);
    const image = standardGuest(name, 'com1');
    assert.equal(rom.length, 2 * ROM_PAGE_BYTES, name);
    assert.equal(rom.length % ROM_PAGE_BYTES, 0, 'bootrom.c: a whole number of pages');
    const view = Buffer.from(rom);
    assert.equal(view.toString('latin1', 0, 8), 'VMMC-ROM');
    assert.equal(view.readUInt16LE(GUEST_ROM_LAYOUT.format), 1);
    assert.equal(view.readUInt16LE(GUEST_ROM_LAYOUT.vcpuCount), DEFAULT_ROM_VCPUS);
    assert.equal(view.readUInt16LE(GUEST_ROM_LAYOUT.imageOffset), 0x40);
    assert.equal(view.readUInt16LE(GUEST_ROM_LAYOUT.imageLength), image.length);
    assert.equal(view.readUInt32LE(GUEST_ROM_LAYOUT.loadAddress), 0x10000);
    assert.equal(view.readUInt16LE(GUEST_ROM_LAYOUT.pages), 2);
    assert.equal(view.subarray(GUEST_ROM_LAYOUT.idt, GUEST_ROM_LAYOUT.idt + 6).toString('hex'), '000000000000', 'IDT limit 0, base 0');
    assert.deepEqual(view.subarray(0x40, 0x40 + image.length), Buffer.from(image));
    assert.deepEqual(readGuestRomHeader(rom), { vcpus: 4, imageOffset: 0x40, imageLength: image.length, loadAddress: 0x10000, pages: 2, name });
    // The reset vector (linear 0xFFFFFFF0) jumps back to the reset code at size - 0x100.
    const vector = rom.length - RESET_VECTOR_FROM_END;
    assert.equal(rom[vector], 0xe9, 'jmp rel16');
    assert.equal(vector + 3 + view.readInt16LE(vector + 1), rom.length - ENTRY_FROM_END);
  }
});

test('buildGuestRom rounds up to whole pages and refuses what does not fit 64 KiB of reset CS', () => {
  for (const length of [1, 4096 - 0x140, 4096 - 0x13f, 4190, MAX_ROM_IMAGE_BYTES]) {
    const rom = buildGuestRom(new Uint8Array(length).fill(0x90), { vcpus: 2 });
    assert.equal(rom.length, guestRomBytes(length));
    assert.equal(rom.length % ROM_PAGE_BYTES, 0);
    assert.ok(rom.length >= 0x40 + length + 0x100, `${length} bytes fit`);
    assert.ok(rom.length <= 0x10000);
  }
  assert.equal(guestRomBytes(4096 - 0x140), 4096);
  assert.equal(guestRomBytes(4096 - 0x13f), 8192);
  assert.throws(() => buildGuestRom(new Uint8Array(0)), /does not fit a boot ROM/);
  assert.throws(() => buildGuestRom(new Uint8Array(MAX_ROM_IMAGE_BYTES + 1)), /does not fit a boot ROM/);
  assert.throws(() => buildGuestRom(new Uint8Array(1), { vcpus: 0 }), /vCPU count must be 1\.\.256/);
  assert.throws(() => buildGuestRom(new Uint8Array(1), { vcpus: 257 }), /vCPU count must be 1\.\.256/);
  assert.throws(() => buildGuestRom(new Uint8Array(1), { name: 'x'.repeat(33) }), /at most 32 printable ASCII/);
});

test('patchGuestRomVcpus changes exactly the two bytes at 0x0A; readGuestRomHeader refuses what is not a ROM', () => {
  const rom = standardGuestRom('smp-boot');
  const patched = Uint8Array.from(rom);
  patchGuestRomVcpus(patched, 16);
  const changed = [...rom.keys()].filter((i) => rom[i] !== patched[i]);
  assert.deepEqual(changed, [GUEST_ROM_LAYOUT.vcpuCount]);
  assert.equal(readGuestRomHeader(patched).vcpus, 16);
  patchGuestRomVcpus(patched, 256);
  assert.deepEqual([...patched.subarray(0x0a, 0x0c)], [0x00, 0x01]);
  assert.throws(() => patchGuestRomVcpus(patched, 0), /1\.\.256/);
  assert.throws(() => readGuestRomHeader(new Uint8Array(4096)), /not a vmm-compat boot ROM/);
  assert.throws(() => readGuestRomHeader(rom.subarray(0, 4096)), /header says 2 pages, the file is 4096 bytes/);
});

/** Runs the reset code of `rom` on a bare interpreter, answering cpuid and the APIC base MSR. */
function resetToGuest(rom: Uint8Array, apic: { offered: boolean; base: bigint }): { cpu: CpuState; low: Uint8Array; exits: Exit[]; last: Exit } {
  const low = new Uint8Array(0x30000);
  const cpu = resetCpu();
  const exits: Exit[] = [];
  const mem = { bytes: low, high: { base: FOUR_GB - rom.length, bytes: rom } };
  for (let i = 0; i < 10; i++) {
    const exit = run(cpu, mem, PLATFORM, 10_000);
    exits.push(exit);
    if (exit.kind === 'cpuid') completeCpuid(cpu, [0x600, 0, apic.offered && exit.leaf === 1 ? CPUID_LEAF1_ECX_X2APIC : 0, 0x12345678]);
    else if (exit.kind === 'rdmsr') completeRdmsr(cpu, apic.base);
    else if (exit.kind !== 'wrmsr') return { cpu, low, exits, last: exit };
  }
  throw new Error('the reset code did not reach the guest');
}

test('from the reset state the ROM copies its image and vCPU count, loads IDT limit 0 and enters the guest in the documented state', () => {
  const image = Uint8Array.from([0xf4, 0x11, 0x22, 0x33]); // hlt, then data
  const rom = buildGuestRom(image, { vcpus: 7 });
  const { cpu, low, last } = resetToGuest(rom, { offered: false, base: 0xfee00900n });
  assert.equal(last.kind, 'hlt', JSON.stringify(last));
  assert.deepEqual([...low.subarray(0x10000, 0x10004)], [...image]);
  assert.equal(low[0x10004], 0, 'only the image is copied');
  assert.equal(low[0x500] | (low[0x501] << 8), 7);
  assert.deepEqual([cpu.cs.selector, cpu.cs.base, cpu.ds.base, cpu.es.base, cpu.ss.base], [0x1000, 0x10000, 0x10000, 0x10000, 0x10000]);
  assert.equal(cpu.ip, 1, 'past the hlt at 0x1000:0000');
  assert.equal(cpu.gpr[Gpr.ESP], 0xfff0);
  assert.deepEqual([Gpr.EAX, Gpr.EBX, Gpr.ECX, Gpr.ESI, Gpr.EDI, Gpr.EBP].map((r) => cpu.gpr[r]), [0, 0, 0, 0, 0, 0]);
  assert.equal(cpu.gpr[Gpr.EDX], 0xf00, 'EDX keeps its reset value (cpuid changed it on the way)');
  assert.deepEqual(cpu.idtr, { base: 0, limit: 0 });
});

test('the x2APIC switch: written only when CPUID offers x2APIC and the APIC is in xAPIC mode, with EXTD added to what was read', () => {
  const rom = buildGuestRom(Uint8Array.of(0xf4));
  const kinds = (exits: Exit[]): string[] => exits.map((e) => e.kind);
  const real = resetToGuest(rom, { offered: true, base: 0xfee00900n });
  assert.deepEqual(kinds(real.exits), ['cpuid', 'rdmsr', 'wrmsr', 'hlt']);
  const write = real.exits[2];
  assert.ok(write.kind === 'wrmsr');
  assert.equal(write.msr, IA32_APIC_BASE_MSR);
  assert.equal(write.value, 0xfee00900n | BigInt(APIC_BASE_EXTD));
  // bhyve -x: already x2APIC; a write would be refused (vlapic_set_apicbase), so none is made.
  assert.deepEqual(kinds(resetToGuest(rom, { offered: true, base: 0xfee00d00n }).exits), ['cpuid', 'rdmsr', 'hlt']);
  // bhyve without -x: CPUID does not offer x2APIC; the MSR is not even read.
  assert.deepEqual(kinds(resetToGuest(rom, { offered: false, base: 0xfee00900n }).exits), ['cpuid', 'hlt']);
});

test('smp-boot in its ROM prints online=N on COM1, waiting for THRE, on bhyve -x, a real CPU and bhyve without -x', () => {
  for (const vcpus of [1, 4, 16]) {
    const rom = standardGuestRom('smp-boot', vcpus);
    for (const apic of ['x2apic', 'xapic'] as const) {
      const r = runMachine({ vcpus, rom, apic, com1BusyReads: 3 });
      assert.equal(r.outcome, 'poweroff', `${apic} ${vcpus}: ${r.fault?.reason ?? ''}`);
      assert.equal(r.com1, `online=${vcpus}\n`);
      assert.equal(r.com1BusyPolls, 3 * `online=${vcpus}\n`.length, 'every byte waited for THRE');
      assert.equal(r.apicBaseWrites.length, apic === 'xapic' ? 1 : 0);
    }
    // Without x2APIC the ICR writes go nowhere: the bounded wait, then online=1.
    const none = runMachine({ vcpus, rom, apic: 'none' });
    assert.equal(none.com1, 'online=1\n');
    assert.deepEqual(none.ipis, [], 'no IPI was delivered');
  }
});

test('a ROM patched to another vCPU count boots that many', () => {
  const rom = Uint8Array.from(standardGuestRom('smp-boot'));
  patchGuestRomVcpus(rom, 9);
  assert.equal(runMachine({ vcpus: 9, rom }).com1, 'online=9\n');
  assert.equal(runMachine({ vcpus: 16, rom }).com1, 'online=9\n', 'the ROM\'s count decides, not the machine\'s');
});

test('a CS base that is not selector << 4 holds until a far jump: near jumps stay inside the ROM', () => {
  const rom = new Uint8Array(ROM_PAGE_BYTES);
  rom.set([0xeb, 0x00, 0xf4], ROM_PAGE_BYTES - RESET_VECTOR_FROM_END); // jmp +0; hlt
  const cpu = resetCpu();
  const exit = run(cpu, { bytes: new Uint8Array(0x20000), high: { base: FOUR_GB - ROM_PAGE_BYTES, bytes: rom } }, PLATFORM, 10);
  assert.equal(exit.kind, 'hlt');
  assert.equal(cpu.cs.base, 0xffff0000, 'the hidden base is kept (the selector says 0xF0000)');
  assert.equal(cpu.ip, 0xfff3);
});

test('without a ROM the reset vector is outside guest memory: a triple fault names it', () => {
  const cpu = resetCpu();
  const exit = run(cpu, { bytes: new Uint8Array(0x20000) }, PLATFORM, 10);
  assert.equal(exit.kind, 'fault');
  assert.match(exit.kind === 'fault' ? exit.reason : '', /triple fault at f000:fff0, opcode \(none\): instruction fetch at linear 0xfffffff0 outside guest memory/);
});
