/*
 * translate.c: 13.1 ABI in, kernel ABI out (docs/design.md, docs/abi.md).
 */
#include <errno.h>
#include <string.h>

#include "shim.h"

/*
 * VM_GET_CPUS with the size the kernel accepts.  13.1 libvmmapi passes
 * cpusetsize = 32.  Kernels differ: 13.x and stable/13 (13.2..13.5) take
 * exactly 32 up to CPU_MAXSIZE/NBBY = 32; 14.0-era kernels with MAXCPU 1024
 * want at least 128 (vmm_dev.c strict check, ERANGE); 15.0/main take any
 * size that holds the set (relaxed check).  So the caller's size goes first,
 * and only an ERANGE makes the interposer retry with the next larger size
 * (the daemon's kernel cpuset size, then the largest it handles); the size
 * that worked is kept for the session.  Without ERANGE nothing changes, so a
 * kernel that answers 13.1's request is never given another.
 */
int
cpus_adaptive(struct vm_session *vs, int fd, struct vm_cpuset *arg)
{
	uint8_t set[VMC_CPUSET_MAX_BYTES];
	struct vm_cpuset kernel_arg;
	int sizes[2], i, n, error, size, want;

	want = arg->cpusetsize;
	size = atomic_load(&vs->cpus_size);
	if (size == 0 || size == want) {
		error = shim_next_ioctl(fd, ABI13_VM_GET_CPUS, arg);
		if (error == 0 && size == 0)
			atomic_store(&vs->cpus_size, want);
		if (error == 0 || errno != ERANGE || want <= 0 ||
		    want >= VMC_CPUSET_MAX_BYTES)
			return (error);
		n = 0;
		if (vs->facts_known && vs->facts.cpuset_bytes > want)
			sizes[n++] = vs->facts.cpuset_bytes;
		if (n == 0 || sizes[0] != VMC_CPUSET_MAX_BYTES)
			sizes[n++] = VMC_CPUSET_MAX_BYTES;
	} else {
		sizes[0] = size;
		n = 1;
	}
	error = -1;
	errno = ERANGE;
	for (i = 0; i < n; i++) {
		if (sizes[i] <= want || sizes[i] > VMC_CPUSET_MAX_BYTES)
			continue;
		memset(set, 0, sizeof(set));
		kernel_arg = *arg;
		kernel_arg.cpusetsize = sizes[i];
		kernel_arg.cpus = set;
		error = shim_next_ioctl(fd, ABI13_VM_GET_CPUS, &kernel_arg);
		if (error == 0 || errno != ERANGE)
			break;
	}
	if (error != 0)
		return (error);
	/* A set bit beyond the caller's set cannot be reported: as the kernel. */
	for (size_t j = (size_t)want; j < (size_t)sizes[i]; j++) {
		if (set[j] != 0) {
			errno = ERANGE;
			return (-1);
		}
	}
	memcpy(arg->cpus, set, (size_t)want);
	atomic_store(&vs->cpus_size, sizes[i]);
	if (atomic_exchange(&vs->cpus_translated, 1) == 0)
		link_event(vs, VMC_EV_CPUS_TRANSLATED, -1, sizes[i]);
	return (0);
}

int
get_cpus(struct vm_session *vs, int fd, unsigned long request,
    struct vm_cpuset *arg)
{

	if (arg == NULL || arg->cpusetsize <= 0 || arg->cpus == NULL)
		return (shim_next_ioctl(fd, request, arg));
	return (cpus_adaptive(vs, fd, arg));
}

static size_t
add_request(unsigned long *out, size_t n, size_t outmax, unsigned long req,
    struct vm_session *vs, const char *why)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (out[i] == req)
			return (n);
	if (n >= outmax)
		return (n);
	out[n++] = req;
	shim_warn("VM %s: added 0x%lx to bhyve's capsicum ioctl list: %s",
	    vs->name, req, why);
	return (n);
}

/*
 * bhyve's capsicum allow-list plus exactly the request numbers a
 * translation needs, as the kernel's answers at open (kabi.c) require: the
 * 14.0 VM_RUN when it lacks the 144-byte one, the 15.0 VM_ALLOC/GET_MEMSEG
 * when it has the guest-NUMA segments but not the 32-byte requests.
 */
size_t
widen_ioctl_list(struct vm_session *vs, const unsigned long *cmds,
    size_t ncmds, unsigned long *out, size_t outmax)
{
	size_t n;

	n = ncmds < outmax ? ncmds : outmax;
	memcpy(out, cmds, n * sizeof(*out));
	if (!vs->kabi_probed)
		return (n);
	if (!vs->vmrun_native)
		n = add_request(out, n, outmax, ABI14_VM_RUN, vs,
		    "the 14.0 VM_RUN; the kernel has no COMPAT_FREEBSD13");
	if (vs->memseg15 && !vs->memseg_compat14) {
		n = add_request(out, n, outmax, ABI15_VM_ALLOC_MEMSEG, vs,
		    "the 15.0 VM_ALLOC_MEMSEG; the kernel has no "
		    "COMPAT_FREEBSD14");
		n = add_request(out, n, outmax, ABI15_VM_GET_MEMSEG, vs,
		    "the 15.0 VM_GET_MEMSEG; the kernel has no "
		    "COMPAT_FREEBSD14");
	}
	return (n);
}
