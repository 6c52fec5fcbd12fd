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

int
spinup_ap(struct vmctx *ctx, int newcpu, uint64_t rip)
{
	int error;

	error = vcpu_reset(ctx, newcpu);
	assert(error == 0);

	spinup_ap_realmode(ctx, newcpu, rip);	/* bhyve_spinup.c */

	vm_resume_cpu(ctx, newcpu);

	return (newcpu);
}
