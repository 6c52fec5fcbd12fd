/*
 * vmmapi14.c: the VM_RUN of the 14.0 bhyve model, in the two ABIs its
 * kernels speak (kernel-main-side.md section 4.1):
 *   14: struct vm_run_14 {cpuid; cpuset*; cpusetsize; vm_exit*} (e17eca32,
 *       14.0): the kernel copies the exit and, for VM_EXITCODE_IPI, the
 *       destination set (cpusetsize = sizeof(cpuset_t) = 128) out through
 *       the pointers (vmm_dev.c: VM_RUN).
 *   13: the 144-byte struct vm_run of early-2023 main: the exit is
 *       embedded, and an IPI exit carries its 256-bit dmask inside the
 *       union (u.ipi13).
 * Either way the caller gets the exit and the IPI set as a 14.0 cpuset_t.
 */
#define	_GNU_SOURCE
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmmapi13.h"
#include "vmmapi_impl.h"

LAB_VMMAPI_EXPORT int
vm_run_14(struct vmctx *ctx, int vcpu, int abi, struct vm_exit *vme,
    cpuset14_t *ipi_cpus)
{
	struct vm_run_14 vmrun14;
	struct vm_run vmrun13;
	int error;

	if (abi == 14) {
		memset(&vmrun14, 0, sizeof(vmrun14));
		vmrun14.cpuid = vcpu;
		vmrun14.cpuset = ipi_cpus;
		vmrun14.cpusetsize = sizeof(*ipi_cpus);
		vmrun14.vm_exit = vme;
		return (ioctl(ctx->fd, ABI14_VM_RUN, &vmrun14));
	}
	memset(&vmrun13, 0, sizeof(vmrun13));
	vmrun13.cpuid = vcpu;
	error = ioctl(ctx->fd, ABI13_VM_RUN, &vmrun13);
	memcpy(vme, &vmrun13.vm_exit, sizeof(*vme));
	memset(ipi_cpus, 0, sizeof(*ipi_cpus));
	if (error == 0 && vme->exitcode == VM_EXITCODE_IPI)
		memcpy(ipi_cpus->bits, vme->u.ipi13.dmask,
		    sizeof(vme->u.ipi13.dmask));
	return (error);
}
