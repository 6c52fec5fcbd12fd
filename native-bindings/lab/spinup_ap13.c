/*
 * spinup_ap13.c: 13.1 bhyve's AP start-up on VM_EXITCODE_SPINUP_AP
 * (usr.sbin/bhyve/spinup_ap.c, 12.x-13.1; legacy-13.1-side.md section 7):
 * reset the AP, give it the BSP's capabilities plus unrestricted guest,
 * point CS:IP at the SIPI vector in real mode, then activate it and start
 * its thread (fbsdrun_addcpu).  The AP becomes active only here.
 */
#include <assert.h>

#include "bhyve_common.h"
#include "bhyverun13.h"

/* spinup_ap.c: spinup_ap_realmode: CS base = vector << 12, IP 0. */
static void
spinup_ap_realmode(struct vmctx *ctx, int newcpu, uint64_t *rip)
{
	uint64_t desc_base;
	uint32_t desc_limit, desc_access;
	uint16_t cs;
	int error, vector;

	vector = (int)(*rip >> PAGE_SHIFT);
	*rip = 0;

	error = vm_set_register(ctx, newcpu, VM_REG_GUEST_RIP, *rip);
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

int
spinup_ap(struct vmctx *ctx, int vcpu, int newcpu, uint64_t rip)
{
	int error;

	assert(newcpu != 0);
	assert(newcpu < guest_ncpus);

	error = vcpu_reset(ctx, newcpu);
	assert(error == 0);

	fbsdrun_set_capabilities(ctx, newcpu);

	/*
	 * Unrestricted guest: the AP starts in power-on 16-bit mode with
	 * CS:IP at the SIPI vector's page.
	 */
	error = vm_set_capability(ctx, newcpu, VM_CAP_UNRESTRICTED_GUEST, 1);
	assert(error == 0);

	spinup_ap_realmode(ctx, newcpu, &rip);

	fbsdrun_addcpu(ctx, vcpu, newcpu, rip);

	return (newcpu);
}
