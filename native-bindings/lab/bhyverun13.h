/* bhyverun13.h: what spinup_ap13.c needs from bhyverun13.c (bhyverun.h). */
#ifndef _LAB_BHYVERUN13_H_
#define _LAB_BHYVERUN13_H_

#include <stdint.h>

#include "vmmapi13.h"

extern int guest_ncpus;

void	fbsdrun_set_capabilities(struct vmctx *ctx, int cpu);
void	fbsdrun_addcpu(struct vmctx *ctx, int fromcpu, int newcpu,
	    uint64_t rip);
int	spinup_ap(struct vmctx *ctx, int vcpu, int newcpu, uint64_t rip);

#endif /* !_LAB_BHYVERUN13_H_ */
