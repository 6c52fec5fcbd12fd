/*
 * kabi.c: which ioctl ABI the kernel speaks, as the kernel itself answers,
 * asked once per session at open (bhyve opens the VM before it limits the
 * fd's ioctls, bhyverun.c do_open).  An unknown request is ENOTTY
 * (sys/dev/vmm/vmm_dev.c vmmdev_ioctl: no table entry); every probe below
 * is refused before it touches the VM:
 *
 *   the 144-byte VM_RUN (VM_RUN_13 on 14.x/15) with cpuid -1: EINVAL from
 *   the vCPU lookup when the kernel has it (vm_alloc_vcpu / vcpu_lock_one
 *   reject -1 before anything runs), ENOTTY without COMPAT_FREEBSD13;
 *
 *   the 56-byte VM_GET_MEMSEG (0xC038760F) of segment 0: answered on 15.0
 *   and main (guest-NUMA segment ids), ENOTTY before;
 *
 *   on such a kernel the 32-byte VM_GET_MEMSEG (VM_GET_MEMSEG_14) of
 *   segment 0: ENOTTY without COMPAT_FREEBSD14.
 *
 * Only ENOTTY counts as "absent": any other answer leaves 13.1's request
 * in place, so the probes can never turn a working request into a
 * translated one.  The daemon's kernel facts decide only what cannot be
 * observed (eager activation, the SPINUP_AP correction).
 */
#include <errno.h>
#include <string.h>

#include "shim.h"

/* Returns 1 when the kernel has no such request (ENOTTY). */
static int
request_absent(struct vm_session *vs, unsigned long request, void *arg)
{
	int saved, absent;

	saved = errno;
	absent = shim_next_ioctl(vs->fd, request, arg) != 0 && errno == ENOTTY;
	errno = saved;
	return (absent);
}

void
probe_kernel_abi(struct vm_session *vs)
{
	struct vm_memseg_15 seg15;
	struct vm_memseg seg;
	struct vm_run run;
	int bits;

	memset(&run, 0, sizeof(run));
	run.cpuid = -1;
	vs->vmrun_native = !request_absent(vs, ABI13_VM_RUN, &run);
	memset(&seg15, 0, sizeof(seg15));
	vs->memseg15 = !request_absent(vs, ABI15_VM_GET_MEMSEG, &seg15);
	vs->memseg_compat14 = 1;
	if (vs->memseg15) {
		memset(&seg, 0, sizeof(seg));
		vs->memseg_compat14 = !request_absent(vs, ABI13_VM_GET_MEMSEG,
		    &seg);
	}
	vs->kabi_probed = 1;
	bits = (vs->vmrun_native ? 0 : 1) | (vs->memseg15 ? 2 : 0) |
	    (vs->memseg_compat14 ? 0 : 4);
	if (bits != 0)
		link_event(vs, VMC_EV_KERNEL_ABI, -1, bits);
}
