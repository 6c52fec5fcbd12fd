/*
 * bhyve_cpumask.c: bhyve's own set of vCPUs with a running thread
 * (bhyverun.c: cpumask, CPU_SET_ATOMIC/CPU_CLR_ATOMIC, fbsdrun_deletecpu)
 * and what a suspended VM does with it (bhyverun.c: vmexit_suspend,
 * resetcpu_mtx, resetcpu_cond): every vCPU thread leaves the set; an AP
 * wakes the BSP and ends its thread; the BSP waits until the set is empty
 * and exits with bhyve's status for the suspend reason.  13.1 and 14.0
 * bhyve are modelled alike here; each model owns the set's bits (a 13.1 or
 * a 14.0 cpuset_t).
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "bhyve_common.h"

static const int BSP = 0;

static pthread_mutex_t resetcpu_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t resetcpu_cond = PTHREAD_COND_INITIALIZER;

/* fbsdrun_addcpu: CPU_SET_ATOMIC(vcpu, &cpumask) */
void
bhyve_cpumask_set(struct bhyve_cpumask *mask, int vcpu)
{

	__atomic_fetch_or(&mask->bits[vcpu / 64], (uint64_t)1 << (vcpu % 64),
	    __ATOMIC_SEQ_CST);
}

static void
cpumask_clr(struct bhyve_cpumask *mask, int vcpu)
{

	__atomic_fetch_and(&mask->bits[vcpu / 64],
	    ~((uint64_t)1 << (vcpu % 64)), __ATOMIC_SEQ_CST);
}

static int
cpumask_isset(struct bhyve_cpumask *mask, int vcpu)
{

	return ((__atomic_load_n(&mask->bits[vcpu / 64], __ATOMIC_SEQ_CST) >>
	    (vcpu % 64)) & 1);
}

static int
cpumask_empty(struct bhyve_cpumask *mask)
{
	size_t i;

	for (i = 0; i < mask->nwords; i++)
		if (__atomic_load_n(&mask->bits[i], __ATOMIC_SEQ_CST) != 0)
			return (0);
	return (1);
}

/* bhyverun.c: fbsdrun_deletecpu */
int
fbsdrun_deletecpu(struct bhyve_cpumask *mask, int vcpu)
{

	if (!cpumask_isset(mask, vcpu)) {
		fprintf(stderr, "Attempting to delete unknown cpu %d\n", vcpu);
		exit(4);
	}
	cpumask_clr(mask, vcpu);
	return (cpumask_empty(mask));
}

/*
 * bhyverun.c: vmexit_suspend, from fbsdrun_deletecpu on: exit 0 for a
 * reset, 1 for a power-off (vm_destroy first with -D), 2 for a halt, 3 for
 * a triple fault, 100 for anything else.
 */
void
bhyve_vmexit_suspend(struct vmctx *ctx, struct bhyve_cpumask *mask, int vcpu,
    int how, int destroy_on_poweroff)
{

	fbsdrun_deletecpu(mask, vcpu);

	if (vcpu != BSP) {
		pthread_mutex_lock(&resetcpu_mtx);
		pthread_cond_signal(&resetcpu_cond);
		pthread_mutex_unlock(&resetcpu_mtx);
		pthread_exit(NULL);
	}

	pthread_mutex_lock(&resetcpu_mtx);
	while (!cpumask_empty(mask))
		pthread_cond_wait(&resetcpu_cond, &resetcpu_mtx);
	pthread_mutex_unlock(&resetcpu_mtx);

	switch (how) {
	case VM_SUSPEND_RESET:
		exit(0);
	case VM_SUSPEND_POWEROFF:
		if (destroy_on_poweroff)
			vm_destroy(ctx);
		exit(1);
	case VM_SUSPEND_HALT:
		exit(2);
	case VM_SUSPEND_TRIPLEFAULT:
		exit(3);
	default:
		fprintf(stderr, "vmexit_suspend: invalid reason %d\n", how);
		exit(100);
	}
}
