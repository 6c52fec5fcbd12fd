/*
 * spinup_ap14.c: 14.0 bhyve's AP start-up on a STARTUP IPI exit
 * (usr.sbin/bhyve/amd64/spinup_ap.c, 14.0; kernel-main-side.md section
 * 5.2 step 6): the AP is already active, debug-suspended and looping in
 * VM_RUN on its own thread; reset it, point CS:IP at the SIPI vector and
 * resume it.
 */
#include <assert.h>

#include "bhyve_common.h"
#include "bhyverun14.h"

static void
spinup_ap_realmode(struct vmctx *ctx, int newcpu, uint64_t rip)
{
	uint64_t desc_base;
	uint32_t desc_limit, desc_access;
	int error, vector;

	vector = (int)(rip >> PAGE_SHIFT);

	error = vm_set_register(ctx, newcpu, VM_REG_GUEST_RIP, 0);
	assert(error == 0);

	error = vm_get_desc(ctx, newcpu, VM_REG_GUEST_CS, &desc_base,
	    &desc_limit, &desc_access);
	assert(error == 0);

	desc_base = (uint64_t)vector << PAGE_SHIFT;
	error = vm_set_desc(ctx, newcpu, VM_REG_GUEST_CS, desc_base,
	    desc_limit, desc_access);
	assert(error == 0);

	error = vm_set_register(ctx, newcpu, VM_REG_GUEST_CS,
	    ((uint64_t)vector << PAGE_SHIFT) >> 4);
	assert(error == 0);
}

int
spinup_ap(struct vmctx *ctx, int newcpu, uint64_t rip)
{
	int error;

	error = vcpu_reset(ctx, newcpu);
	assert(error == 0);

	spinup_ap_realmode(ctx, newcpu, rip);

	vm_resume_cpu(ctx, newcpu);

	return (newcpu);
}
