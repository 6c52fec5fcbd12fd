// The VM names hw.vmm.create accepts (vmm_dev.c sysctl_vmm_create):
//   sysctl_handle_string into a VM_MAX_NAMELEN + 1 buffer: a longer value is EINVAL;
//   vm_create: EINVAL for a name of VM_MAX_NAMELEN + 1 bytes or more;
//   make_dev_p(MAKEDEV_CHECKNAME, "vmm/%s") -> kern_conf.c prep_devname: EINVAL for white
//   space or '"', an empty name (a trailing slash after "vmm/"), or a "." / ".." component.
// The lab also refuses '/', which devfs would turn into subdirectories of /dev/vmm.

import { VmmConst } from '../../abi/enums';
import { Errno, fail } from './errno';

/** isspace(3) in the C locale. */
const C_SPACE = /[ \t\n\v\f\r]/;

/** The name from a sysctl string value (up to the first NUL), or EINVAL. */
export function vmNameFromSysctl(value: Buffer): string {
  if (value.length > VmmConst.VM_MAX_NAMELEN) fail(Errno.EINVAL, `name of ${value.length} bytes > VM_MAX_NAMELEN`);
  const nul = value.indexOf(0);
  const name = value.subarray(0, nul < 0 ? value.length : nul).toString('latin1');
  checkVmName(name);
  return name;
}

export function checkVmName(name: string): void {
  if (Buffer.byteLength(name, 'latin1') > VmmConst.VM_MAX_NAMELEN) fail(Errno.EINVAL, 'name too long');
  if (name.length === 0) fail(Errno.EINVAL, 'empty name');
  if (C_SPACE.test(name) || name.includes('"')) fail(Errno.EINVAL, 'white space or " in the name');
  if (name === '.' || name === '..') fail(Errno.EINVAL, `"${name}" is not a device name`);
  if (name.includes('/')) fail(Errno.EINVAL, '"/" in the name (not supported by the lab)');
}
