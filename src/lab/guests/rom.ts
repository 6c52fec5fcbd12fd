// Self-contained boot ROMs: a flat guest image (docs/internals.md section 4) with the code that a
// CPU runs first after reset, in one file that bhyve maps just below 4 GB (`-l bootrom,FILE`,
// bootrom.c) and QEMU takes as its BIOS (`-bios`). Nothing else has to place anything in guest
// memory: from the x86 reset state (CS selector 0xF000, base 0xFFFF0000, IP 0xFFF0, the ROM's
// last 16 bytes) the ROM
//
//   1. loads an IDT of limit 0, so that any exception shuts a real CPU down as a triple fault,
//      as the lab's interpreter treats every exception;
//   2. copies its vCPU count to guest-physical 0x0500 and the guest image to 0x10000, reading
//      itself through CS (a real-mode CPU reaches the ROM at 4 GB only through the reset CS base);
//   3. switches the BSP's local APIC to x2APIC when CPUID offers x2APIC and IA32_APIC_BASE says
//      xAPIC (a real CPU starts in xAPIC mode; bhyve -x starts it in x2APIC mode and refuses any
//      change of IA32_APIC_BASE, so the ROM writes only when it must);
//   4. sets the guest's start state (CS=DS=ES=SS=0x1000, SP 0xFFF0, registers 0 but EDX, which
//      keeps its reset value) and far-jumps to 0x1000:0000.
//
// The layout is a contract (docs/lab-guests.md, "Boot ROMs"): GUEST_ROM_LAYOUT.vcpuCount is where
// `vmm-compat guests --vcpus N` (or anyone) patches the vCPU count into a built ROM.

import { Assembler } from './asm';
import { APIC_BASE_EXTD, CPUID_LEAF1_ECX_X2APIC, GUEST_LOAD_ADDRESS, IA32_APIC_BASE_MSR, VCPU_COUNT_ADDRESS } from './conventions';

/** bootrom.c: a ROM is a whole number of pages (and at most 16 MB). */
export const ROM_PAGE_BYTES = 0x1000;
/** Real mode reaches the ROM through CS base 0xFFFF0000, limit 0xFFFF: the top 64 KiB of 4 GB. */
export const MAX_GUEST_ROM_BYTES = 0x10000;
/** x86: the reset vector, linear 0xFFFFFFF0, is the ROM's 16th byte from the end. */
export const RESET_VECTOR_FROM_END = 0x10;
/** The reset code sits this far from the end of the ROM, behind the image. */
export const ENTRY_FROM_END = 0x100;
export const GUEST_ROM_SIGNATURE = 'VMMC-ROM';
export const GUEST_ROM_FORMAT = 1;
export const DEFAULT_ROM_VCPUS = 4;
/** The vCPU counts a ROM can carry: a 16-bit field; smp-boot starts APs 1..255. */
export const MAX_ROM_VCPUS = 256;

/** Offsets from the ROM file's first byte. */
export const GUEST_ROM_LAYOUT = {
  /** 8 ASCII bytes GUEST_ROM_SIGNATURE. */
  signature: 0x00,
  /** u16: GUEST_ROM_FORMAT. */
  format: 0x08,
  /** u16: the vCPU count the reset code copies to guest-physical 0x0500 (the patch offset). */
  vcpuCount: 0x0a,
  /** u16: where the guest image starts in the ROM (0x0040). */
  imageOffset: 0x0c,
  /** u16: the guest image's length in bytes. */
  imageLength: 0x0e,
  /** u32: where the reset code copies the image (0x10000). */
  loadAddress: 0x10,
  /** u16: the ROM's size in pages. */
  pages: 0x14,
  /** 6 bytes: the pseudo-descriptor the reset code loads with lidt: limit 0, base 0. */
  idt: 0x18,
  /** 32 bytes: the guest's name, ASCII, NUL-padded. */
  name: 0x20,
  /** The flat guest image. */
  image: 0x40,
} as const;

const L = GUEST_ROM_LAYOUT;
const NAME_BYTES = 32;
/** The largest image that fits between the header and the reset code of a 64 KiB ROM. */
export const MAX_ROM_IMAGE_BYTES = MAX_GUEST_ROM_BYTES - L.image - ENTRY_FROM_END;
const GUEST_SELECTOR = GUEST_LOAD_ADDRESS >> 4;
const GUEST_STACK = 0xfff0;

export interface GuestRomOptions {
  /** The vCPU count the ROM stores at 0x0500 (default DEFAULT_ROM_VCPUS). */
  vcpus?: number;
  /** Recorded in the header (at most 32 ASCII characters). */
  name?: string;
}

export interface GuestRomHeader {
  readonly vcpus: number;
  readonly imageOffset: number;
  readonly imageLength: number;
  readonly loadAddress: number;
  readonly pages: number;
  readonly name: string;
}

function checkVcpus(vcpus: number): void {
  if (!Number.isInteger(vcpus) || vcpus < 1 || vcpus > MAX_ROM_VCPUS) {
    throw new RangeError(`a boot ROM's vCPU count must be 1..${MAX_ROM_VCPUS}, not ${vcpus}`);
  }
}

/** The ROM's size for an image: header, image and reset code, rounded up to whole pages. */
export function guestRomBytes(imageLength: number): number {
  return Math.ceil((L.image + imageLength + ENTRY_FROM_END) / ROM_PAGE_BYTES) * ROM_PAGE_BYTES;
}

/** The reset code (ROM offset size - ENTRY_FROM_END) and the reset vector's jump to it. */
function emitResetCode(asm: Assembler, size: number, imageLength: number): void {
  asm.padTo(size - ENTRY_FROM_END).label('entry');
  asm.lidt('idt', { cs: true });
  asm.movReg('ebp', 'edx'); // the reset EDX (the CPU signature), for the guest
  // The vCPU count to 0000:0500, the image to 1000:0000.
  asm.aluReg('xor', 'ax', 'ax').movToSegment('es', 'ax');
  asm.movImm16('si', asm.addressOf('vcpuCount')).movImm16('di', VCPU_COUNT_ADDRESS).movsw({ cs: true });
  asm.movImm16('ax', GUEST_SELECTOR).movToSegment('es', 'ax');
  asm.movImm16('si', asm.addressOf('image')).aluReg('xor', 'di', 'di').movImm16('cx', imageLength).movsb({ cs: true, rep: true });
  // x2APIC: only if CPUID offers it and the APIC is still in xAPIC mode.
  asm.movImm32('eax', 1).cpuid();
  asm.aluImm('and', 'ecx', CPUID_LEAF1_ECX_X2APIC).je('guest');
  asm.movImm32('ecx', IA32_APIC_BASE_MSR).rdmsr();
  asm.movReg('ebx', 'eax').aluImm('and', 'ebx', APIC_BASE_EXTD).jne('guest');
  asm.aluImm('or', 'eax', APIC_BASE_EXTD).wrmsr();
  // The guest's start state (docs/internals.md section 4).
  asm.label('guest');
  asm.movImm16('ax', GUEST_SELECTOR).movToSegment('ds', 'ax').movToSegment('es', 'ax').movToSegment('ss', 'ax');
  asm.movImm16('sp', GUEST_STACK);
  for (const reg of ['eax', 'ebx', 'ecx', 'esi', 'edi'] as const) asm.aluReg('xor', reg, reg);
  asm.movReg('edx', 'ebp').aluReg('xor', 'ebp', 'ebp');
  asm.jmpFar(GUEST_SELECTOR, 0);
  if (asm.position > size - RESET_VECTOR_FROM_END) throw new Error('boot ROM: the reset code overlaps the reset vector');
  asm.padTo(size - RESET_VECTOR_FROM_END).jmpNear('entry');
  asm.padTo(size);
}

/**
 * Wraps a flat guest image (loaded at 0x10000, docs/internals.md section 4) into a boot ROM that
 * needs nothing else: see the top of this file.
 */
export function buildGuestRom(image: Uint8Array, options: GuestRomOptions = {}): Uint8Array {
  const vcpus = options.vcpus ?? DEFAULT_ROM_VCPUS;
  checkVcpus(vcpus);
  const name = options.name ?? '';
  if (name.length > NAME_BYTES || !/^[\x20-\x7e]*$/.test(name)) throw new RangeError(`boot ROM name '${name}' is not at most ${NAME_BYTES} printable ASCII characters`);
  if (image.length === 0 || image.length > MAX_ROM_IMAGE_BYTES) {
    throw new RangeError(`a guest image of ${image.length} bytes does not fit a boot ROM (1..${MAX_ROM_IMAGE_BYTES} bytes)`);
  }
  const size = guestRomBytes(image.length);
  // IP values are offsets from the reset CS base 0xFFFF0000: the ROM starts at IP 0x10000 - size.
  const asm = new Assembler(MAX_GUEST_ROM_BYTES - size);
  for (const char of GUEST_ROM_SIGNATURE) asm.db(char.charCodeAt(0));
  asm.padTo(L.format).dw(GUEST_ROM_FORMAT);
  asm.padTo(L.vcpuCount).label('vcpuCount').dw(vcpus);
  asm.padTo(L.imageOffset).dw(L.image);
  asm.padTo(L.imageLength).dw(image.length);
  asm.padTo(L.loadAddress).dd(GUEST_LOAD_ADDRESS);
  asm.padTo(L.pages).dw(size / ROM_PAGE_BYTES);
  asm.padTo(L.idt).label('idt').dw(0).dd(0);
  asm.padTo(L.name);
  for (const char of name) asm.db(char.charCodeAt(0));
  asm.padTo(L.image).label('image');
  for (const byte of image) asm.db(byte);
  emitResetCode(asm, size, image.length);
  return asm.bytes();
}

/** Reads and checks a boot ROM's header; throws a clear error for anything that is not one. */
export function readGuestRomHeader(rom: Uint8Array): GuestRomHeader {
  const view = Buffer.from(rom.buffer, rom.byteOffset, rom.byteLength);
  if (rom.length < ROM_PAGE_BYTES || view.toString('latin1', 0, 8) !== GUEST_ROM_SIGNATURE) {
    throw new Error(`not a vmm-compat boot ROM (no '${GUEST_ROM_SIGNATURE}' signature)`);
  }
  const format = view.readUInt16LE(L.format);
  if (format !== GUEST_ROM_FORMAT) throw new Error(`boot ROM format ${format} is not ${GUEST_ROM_FORMAT}`);
  const header = {
    vcpus: view.readUInt16LE(L.vcpuCount),
    imageOffset: view.readUInt16LE(L.imageOffset),
    imageLength: view.readUInt16LE(L.imageLength),
    loadAddress: view.readUInt32LE(L.loadAddress),
    pages: view.readUInt16LE(L.pages),
    name: view.toString('latin1', L.name, L.name + NAME_BYTES).replace(/\0+$/, ''),
  };
  if (header.pages * ROM_PAGE_BYTES !== rom.length) throw new Error(`boot ROM header says ${header.pages} pages, the file is ${rom.length} bytes`);
  return header;
}

/** Sets the vCPU count of a built ROM in place (GUEST_ROM_LAYOUT.vcpuCount). */
export function patchGuestRomVcpus(rom: Uint8Array, vcpus: number): void {
  readGuestRomHeader(rom);
  checkVcpus(vcpus);
  rom[L.vcpuCount] = vcpus & 0xff;
  rom[L.vcpuCount + 1] = vcpus >> 8;
}
