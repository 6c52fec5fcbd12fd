/*
 * bhyverun131.c: what 13.1's bhyverun.c has and 13.2-13.5's does not: the
 * compile-time VM_MAXCPU.  num_vcpus_allowed answers 16 whenever the
 * kernel has unrestricted guest, whatever the kernel allows, and the
 * per-vCPU state is static arrays of VM_MAXCPU entries
 * (legacy-13.1-side.md section 7).
 */
#include "bhyve_common.h"
#include "bhyverun13.h"

#define	VM_MAXCPU	ABI13_VM_MAXCPU		/* vmm.h (13.1): 16 */

/* 13.x bootrom.c has no aggregate check; 13.x userland: 144-byte VM_RUN, 32-byte cpuset_t. */
const struct bhyve_release bhyve_release = {
	.name = "13.1",
	.bootrom_aggregate_check = 0,
	.vmrun_abi = 13,
	.cpuset_bytes = ABI13_CPUSET_BYTES,
};

static struct vm_exit vmexit_static[VM_MAXCPU];
static struct mt_vmm_info mt_vmm_info_static[VM_MAXCPU];

struct vm_exit *vmexit = vmexit_static;
struct mt_vmm_info *mt_vmm_info = mt_vmm_info_static;

/* bhyverun.c: num_vcpus_allowed: 13.1 asks only for unrestricted guest. */
int
num_vcpus_allowed(struct vmctx *ctx)
{
	int tmp, error;

	error = vm_get_capability(ctx, BSP, VM_CAP_UNRESTRICTED_GUEST, &tmp);
	if (error == 0)
		return (VM_MAXCPU);
	return (1);
}

/* Static in 13.1: nothing to allocate. */
void
alloc_vcpu_state(int ncpus)
{

	(void)ncpus;
}
