/*
 * kernel.c: ioctls the interposer issues itself on bhyve's vmm fd, past
 * its own ioctl() (straight to the next one), in the kernel's ABI.
 */
#include <errno.h>
#include <string.h>

#include "shim.h"

int
kernel_vcpu_op(struct vm_session *vs, unsigned long request, int vcpu)
{
	struct vm_activate_cpu ac;

	memset(&ac, 0, sizeof(ac));
	ac.vcpuid = vcpu;
	return (shim_next_ioctl(vs->fd, request, &ac));
}

/*
 * VM_RUN in the kernel's ABI.  The 144-byte 13.1 form is native before
 * e17eca32 and VM_RUN_13 under COMPAT_FREEBSD13 after it (vmm_dev.c); without
 * that option the exit is fetched through the 14.0 form, whose vm_exit is
 * the same 136 bytes (kernel-main-side.md section 4.1).  13.1 bhyve never
 * enables VM_CAP_IPI_EXIT, so the cpuset the 14.0 form returns stays unused.
 */
int
kernel_vm_run(struct vm_session *vs, struct vm_run *vr)
{
	uint8_t cpuset[VMC_CPUSET_MAX_BYTES];
	struct vm_run_14 vr14;

	if (vs->vmrun_native)
		return (shim_next_ioctl(vs->fd, ABI13_VM_RUN, vr));
	memset(&vr14, 0, sizeof(vr14));
	vr14.cpuid = vr->cpuid;
	vr14.cpuset = cpuset;
	vr14.cpusetsize = vs->facts_known ? (size_t)vs->facts.cpuset_bytes :
	    sizeof(cpuset);
	vr14.vm_exit = &vr->vm_exit;
	if (atomic_exchange(&vs->vmrun_translated, 1) == 0)
		link_event(vs, VMC_EV_VMRUN_TRANSLATED, vr->cpuid, 14);
	return (shim_next_ioctl(vs->fd, ABI14_VM_RUN, &vr14));
}

/*
 * VM_GET_CPUS with 13.1's size, widened only on ERANGE (translate.c);
 * vCPUs 0..VMC_MAX_VCPUS-1 into a set.
 */
int
kernel_cpus(struct vm_session *vs, int which, struct vcpu_set *out)
{
	uint8_t set[VMC_CPUSET_MAX_BYTES];
	struct vm_cpuset arg;
	int error;

	memset(set, 0, sizeof(set));
	memset(&arg, 0, sizeof(arg));
	arg.which = which;
	arg.cpusetsize = ABI13_CPUSET_BYTES;
	arg.cpus = set;
	error = cpus_adaptive(vs, vs->fd, &arg);
	if (error == 0)
		set_from_bytes(out, set, (size_t)arg.cpusetsize);
	return (error);
}
