/* bhyverun13.h: what spinup_ap13.c needs from bhyverun13.c (bhyverun.h). */
#ifndef _LAB_BHYVERUN13_H_
#define _LAB_BHYVERUN13_H_

#include <pthread.h>
#include <stdint.h>

#include "vmmapi13.h"

static const int BSP = 0;

extern int guest_ncpus;

/* bhyverun.c: the per-vCPU state of a vCPU thread. */
struct mt_vmm_info {
	pthread_t	mt_thr;
	struct vmctx	*mt_ctx;
	int		mt_vcpu;
};

/*
 * bhyverun131.c (13.1) or bhyverun135.c (13.2-13.5): the one model links
 * one of them (bhyve13, bhyve135), with its bhyve_release.
 */
extern struct vm_exit *vmexit;
extern struct mt_vmm_info *mt_vmm_info;
int	num_vcpus_allowed(struct vmctx *ctx);
void	alloc_vcpu_state(int ncpus);

void	fbsdrun_set_capabilities(struct vmctx *ctx, int cpu);
void	fbsdrun_addcpu(struct vmctx *ctx, int fromcpu, int newcpu,
	    uint64_t rip);
int	spinup_ap(struct vmctx *ctx, int vcpu, int newcpu, uint64_t rip);

#endif /* !_LAB_BHYVERUN13_H_ */
