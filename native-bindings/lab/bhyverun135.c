/*
 * bhyverun135.c: what the bhyverun.c of 13.2 to 13.5 does differently from
 * 13.1's, read at 0040b6857e93 (stable/13 after the November 2022 vmm
 * series; read_file id 8462281525).  It still speaks the old AP protocol
 * (SPINUP_AP, spinup_ap.c, no VM_CAP_IPI_EXIT), but VM_MAXCPU is gone:
 *
 * - num_vcpus_allowed asks the kernel: unrestricted guest, then
 *   VM_GET_TOPOLOGY's maxcpus (vm->maxcpus: hw.vmm.maxcpu, by default the
 *   host's CPU count on 14.x/15, ee98f99d7a68); an error gives 1;
 * - vmexit[] and mt_vmm_info[] are calloc'd for guest_ncpus in main, right
 *   before the BSP is added ("Allocate per-VCPU resources").
 *
 * bhyve's own cpumask stays a cpuset_t, 256 bits in 13.x userland, so such
 * a bhyve runs at most 256 vCPUs whatever the kernel allows.
 */
#include <err.h>
#include <stdlib.h>

#include "bhyve_common.h"
#include "bhyverun13.h"

const struct bhyve_release bhyve_release = {
	.name = "13.5",
	.bootrom_aggregate_check = 0,
	.vmrun_abi = 13,
	.cpuset_bytes = ABI13_CPUSET_BYTES,
};

struct vm_exit *vmexit;
struct mt_vmm_info *mt_vmm_info;

int
num_vcpus_allowed(struct vmctx *ctx)
{
	uint16_t sockets, cores, threads, maxcpus;
	int tmp, error;

	error = vm_get_capability(ctx, BSP, VM_CAP_UNRESTRICTED_GUEST, &tmp);
	if (error != 0)
		return (1);
	error = vm_get_topology(ctx, &sockets, &cores, &threads, &maxcpus);
	if (error == 0)
		return (maxcpus);
	return (1);
}

/* bhyverun.c main: calloc without a check, as read. */
void
alloc_vcpu_state(int ncpus)
{

	vmexit = calloc(ncpus, sizeof(*vmexit));
	mt_vmm_info = calloc(ncpus, sizeof(*mt_vmm_info));
}
