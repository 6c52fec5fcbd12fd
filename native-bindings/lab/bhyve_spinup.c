/*
 * bhyve_spinup.c: spinup_ap.c: spinup_ap_realmode, the same in 13.1
 * (spinup_ap.c) and 14.0 (amd64/spinup_ap.c): the AP starts in real mode
 * at the SIPI vector's page, CS base = vector << 12, IP 0.
 */
#include <assert.h>

#include "bhyve_common.h"

void
spinup_ap_realmode(struct vmctx *ctx, int newcpu, uint64_t rip)
{
	uint64_t desc_base;
	uint32_t desc_limit, desc_access;
	uint16_t cs;
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

	cs = (uint16_t)(((uint64_t)vector << PAGE_SHIFT) >> 4);
	error = vm_set_register(ctx, newcpu, VM_REG_GUEST_CS, cs);
	assert(error == 0);
}
