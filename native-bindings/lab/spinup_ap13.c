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

	/*
	 * spinup_ap_realmode (bhyve_spinup.c) points CS at the vector's page
	 * with IP 0; 13.1's takes rip by pointer and zeroes it there, so the
	 * AP's thread starts at CS:0.
	 */
	spinup_ap_realmode(ctx, newcpu, rip);
	rip = 0;

	fbsdrun_addcpu(ctx, vcpu, newcpu, rip);

	return (newcpu);
}
