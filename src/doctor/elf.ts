// Just enough ELF64 (little-endian) reading to tell whether a binary is dynamically linked and
// which symbols it imports: doctor's "legacy bhyve is dynamic and capsicum-enabled" check
// (deployment.md section 0: `readelf --dyn-syms bhyve | grep cap_enter`), without binutils.
import fs from 'node:fs';

export interface ElfFacts {
  dynamic: boolean;
  interpreter: string | null;
  needed: string[];
  importedSymbols: Set<string>;
  osabi: number;
  /**
   * The release the program was built for: the ELF note NT_FREEBSD_ABI_TAG (type 1, name
   * "FreeBSD", a 4-byte __FreeBSD_version) that crt1 links in (lib/csu/common/crtbrand.S,
   * section .note.tag); null without one.
   */
  freebsdAbiTag: number | null;
}

const PT_INTERP = 3;
const SHT_DYNSYM = 11;
const DT_NEEDED = 1;
const DT_STRTAB = 5;
const PT_DYNAMIC = 2;
const PT_LOAD = 1;
const PT_NOTE = 4;
const NT_FREEBSD_ABI_TAG = 1;

/** The FreeBSD ABI tag among the notes of one PT_NOTE segment, or null. */
function abiTagInNotes(buf: Buffer, start: number, size: number): number | null {
  const end = Math.min(start + size, buf.length);
  const align = (n: number): number => (n + 3) & ~3;
  for (let off = start; off + 12 <= end; ) {
    const namesz = buf.readUInt32LE(off);
    const descsz = buf.readUInt32LE(off + 4);
    const type = buf.readUInt32LE(off + 8);
    const desc = off + 12 + align(namesz);
    if (namesz > size || descsz > size || desc + descsz > end) return null;
    if (type === NT_FREEBSD_ABI_TAG && namesz === 8 && descsz === 4 && buf.toString('latin1', off + 12, off + 20) === 'FreeBSD\0') {
      return buf.readUInt32LE(desc);
    }
    off = desc + align(descsz);
  }
  return null;
}

export class ElfError extends Error {}

function cString(buf: Buffer, offset: number): string {
  const end = buf.indexOf(0, offset);
  return buf.toString('utf8', offset, end < 0 ? buf.length : end);
}

export function readElf(file: string): ElfFacts {
  const buf = fs.readFileSync(file);
  if (buf.length < 64 || buf.readUInt32BE(0) !== 0x7f454c46) throw new ElfError(`${file} is not an ELF file`);
  if (buf[4] !== 2 || buf[5] !== 1) throw new ElfError(`${file} is not a 64-bit little-endian ELF file`);
  const osabi = buf[7]!;
  const phoff = Number(buf.readBigUInt64LE(32));
  const shoff = Number(buf.readBigUInt64LE(40));
  const phentsize = buf.readUInt16LE(54);
  const phnum = buf.readUInt16LE(56);
  const shentsize = buf.readUInt16LE(58);
  const shnum = buf.readUInt16LE(60);
  let interpreter: string | null = null;
  let dynamicOffset = -1;
  let dynamicSize = 0;
  const loads: { vaddr: number; offset: number; filesz: number }[] = [];
  let freebsdAbiTag: number | null = null;
  for (let i = 0; i < phnum; i++) {
    const ph = phoff + i * phentsize;
    if (ph + 56 > buf.length) throw new ElfError(`${file}: truncated program headers`);
    const type = buf.readUInt32LE(ph);
    const offset = Number(buf.readBigUInt64LE(ph + 8));
    const vaddr = Number(buf.readBigUInt64LE(ph + 16));
    const filesz = Number(buf.readBigUInt64LE(ph + 32));
    if (type === PT_INTERP) interpreter = cString(buf, offset);
    if (type === PT_DYNAMIC) {
      dynamicOffset = offset;
      dynamicSize = filesz;
    }
    if (type === PT_LOAD) loads.push({ vaddr, offset, filesz });
    if (type === PT_NOTE && freebsdAbiTag === null) freebsdAbiTag = abiTagInNotes(buf, offset, filesz);
  }
  const toOffset = (vaddr: number): number => {
    const seg = loads.find((l) => vaddr >= l.vaddr && vaddr < l.vaddr + l.filesz);
    return seg ? vaddr - seg.vaddr + seg.offset : -1;
  };
  const needed: string[] = [];
  if (dynamicOffset >= 0) {
    const neededOffsets: number[] = [];
    let strtab = -1;
    for (let d = dynamicOffset; d + 16 <= dynamicOffset + dynamicSize && d + 16 <= buf.length; d += 16) {
      const tag = Number(buf.readBigInt64LE(d));
      const val = Number(buf.readBigUInt64LE(d + 8));
      if (tag === 0) break;
      if (tag === DT_NEEDED) neededOffsets.push(val);
      if (tag === DT_STRTAB) strtab = toOffset(val);
    }
    if (strtab >= 0) for (const off of neededOffsets) needed.push(cString(buf, strtab + off));
  }
  const importedSymbols = new Set<string>();
  for (let i = 0; i < shnum; i++) {
    const sh = shoff + i * shentsize;
    if (sh + 64 > buf.length) break;
    if (buf.readUInt32LE(sh + 4) !== SHT_DYNSYM) continue;
    const offset = Number(buf.readBigUInt64LE(sh + 24));
    const size = Number(buf.readBigUInt64LE(sh + 32));
    const link = buf.readUInt32LE(sh + 40);
    const entsize = Number(buf.readBigUInt64LE(sh + 56)) || 24;
    const strSh = shoff + link * shentsize;
    const strOffset = Number(buf.readBigUInt64LE(strSh + 24));
    for (let s = offset; s + entsize <= offset + size && s + entsize <= buf.length; s += entsize) {
      const name = buf.readUInt32LE(s);
      const shndx = buf.readUInt16LE(s + 6);
      if (name !== 0 && shndx === 0) importedSymbols.add(cString(buf, strOffset + name));
    }
  }
  return { dynamic: interpreter !== null || needed.length > 0, interpreter, needed, importedSymbols, osabi, freebsdAbiTag };
}
