// The lab's boot ROM: what bhyve maps just below 4 GB with `-l bootrom,FILE` (bootrom.c) and
// what the BSP runs first after vcpu_reset, at the x86 reset vector (CS selector 0xF000, base
// 0xFFFF0000, IP 0xFFF0: linear 0xFFFFFFF0, the ROM's last 16 bytes). Like a firmware, it sets
// up the guest's start state of docs/internals.md section 4 (DS=ES=SS=0x1000, SP=0xFFF0, AX 0)
// and far-jumps to the guest image at 0x1000:0000, which bhyve placed at 0x10000 (the lab's
// stand-in for a boot disk, `-l guest,FILE`). The far jump is what leaves the reset CS base.
import { Assembler } from './asm';
import { GUEST_LOAD_ADDRESS } from './conventions';

/** bootrom.c: a ROM is at least one page and a whole number of pages. */
export const LAB_ROM_BYTES = 0x1000;
/** The reset vector's offset inside a ROM that ends at 4 GB: 0xFFFFFFF0 - (4 GB - size). */
export const RESET_VECTOR_OFFSET = LAB_ROM_BYTES - 0x10;
const ENTRY_OFFSET = LAB_ROM_BYTES - 0x40;
const GUEST_SELECTOR = GUEST_LOAD_ADDRESS >> 4;
const GUEST_STACK = 0xfff0;

/** The ROM image (LAB_ROM_BYTES bytes). IP values are offsets from the reset CS base 0xFFFF0000. */
export function buildLabRom(): Uint8Array {
  // Within CS base 0xFFFF0000 the ROM (at 4 GB - size) starts at IP 0x10000 - size.
  const asm = new Assembler(0x10000 - LAB_ROM_BYTES);
  asm.padTo(ENTRY_OFFSET);
  asm.label('entry');
  asm.movImm16('ax', GUEST_SELECTOR);
  asm.movToSegment('ds', 'ax');
  asm.movToSegment('es', 'ax');
  asm.movToSegment('ss', 'ax');
  asm.movImm16('sp', GUEST_STACK);
  asm.movImm16('ax', 0);
  asm.jmpFar(GUEST_SELECTOR, 0);
  asm.padTo(RESET_VECTOR_OFFSET);
  asm.jmpNear('entry'); // the reset vector
  asm.padTo(LAB_ROM_BYTES);
  return asm.bytes();
}
