// VM names as the kernel accepts them: at most VM_MAX_NAMELEN (229) bytes (vmm.h; SPECNAMELEN
// 255 - VM_MAX_PREFIXLEN 10 - VM_MAX_SUFFIXLEN 15 - 1), and usable as a devfs path component
// (/dev/vmm/NAME). The daemon is stricter than the kernel about control characters.
import { VmmConst } from '../abi/enums';

const VM_MAX_NAMELEN = VmmConst.VM_MAX_NAMELEN;

export function vmNameProblem(name: string): string | null {
  const bytes = Buffer.byteLength(name, 'utf8');
  if (bytes === 0) return 'the VM name is empty';
  if (bytes > VM_MAX_NAMELEN) return `the VM name is ${bytes} bytes; the kernel allows at most ${VM_MAX_NAMELEN}`;
  if (name === '.' || name === '..') return `"${name}" is not a device name`;
  if (name.includes('/')) return 'the VM name contains "/"';
  // eslint-style explicit range check: C0 controls and DEL
  for (const ch of name) {
    const code = ch.codePointAt(0) ?? 0;
    if (code < 0x20 || code === 0x7f) return 'the VM name contains a control character';
  }
  return null;
}
