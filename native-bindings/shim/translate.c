/*
 * translate.c: 13.1 ABI in, kernel ABI out (ARCHITECTURE.md section 5).
 */
#include <errno.h>
#include <string.h>

#include "shim.h"

/*
 * VM_GET_CPUS: 13.1 libvmmapi passes cpusetsize = 32; a 14.0 kernel whose
 * cpuset_t is 128 bytes answers ERANGE (vmm_dev.c, VM_GET_CPUS size check)
 * and 13.1 bhyve's vm_loop then fails its assert.  Ask with the kernel's
 * size and copy back what the caller asked for.
 */
int
get_cpus(struct vm_session *vs, int fd, unsigned long request,
    struct vm_cpuset *arg)
{
	uint8_t set[VMC_CPUSET_MAX_BYTES];
	struct vm_cpuset kernel_arg;
	size_t want;
	int error;

	if (arg == NULL || !vs->facts_known || arg->cpusetsize <= 0 ||
	    arg->cpusetsize >= vs->facts.cpuset_bytes)
		return (shim_next_ioctl(fd, request, arg));
	memset(set, 0, sizeof(set));
	kernel_arg = *arg;
	kernel_arg.cpusetsize = vs->facts.cpuset_bytes;
	kernel_arg.cpus = set;
	error = shim_next_ioctl(fd, request, &kernel_arg);
	if (error != 0)
		return (error);
	want = (size_t)arg->cpusetsize;
	/* A set bit beyond the caller's set cannot be reported: as the kernel. */
	for (size_t i = want; i < (size_t)vs->facts.cpuset_bytes; i++) {
		if (set[i] != 0) {
			errno = ERANGE;
			return (-1);
		}
	}
	memcpy(arg->cpus, set, want);
	if (atomic_exchange(&vs->cpus_translated, 1) == 0)
		link_event(vs, VMC_EV_CPUS_TRANSLATED, -1,
		    vs->facts.cpuset_bytes);
	return (0);
}

/*
 * bhyve's capsicum allow-list plus exactly the request numbers a
 * translation needs: the 14.0 VM_RUN when the kernel lacks the 144-byte one.
 */
size_t
widen_ioctl_list(struct vm_session *vs, const unsigned long *cmds,
    size_t ncmds, unsigned long *out, size_t outmax)
{
	size_t i, n;
	int have;

	n = ncmds < outmax ? ncmds : outmax;
	memcpy(out, cmds, n * sizeof(*out));
	if (!vs->facts_known || vs->facts.vmrun_abi != 14 || n >= outmax)
		return (n);
	have = 0;
	for (i = 0; i < n; i++)
		if (out[i] == ABI14_VM_RUN)
			have = 1;
	if (!have) {
		out[n++] = ABI14_VM_RUN;
		shim_warn("VM %s: added the 14.0 VM_RUN (0x%lx) to bhyve's "
		    "capsicum ioctl list; the kernel has no COMPAT_FREEBSD13",
		    vs->name, (unsigned long)ABI14_VM_RUN);
	}
	return (n);
}
