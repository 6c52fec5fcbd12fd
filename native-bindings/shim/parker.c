/*
 * parker.c: one thread per eagerly activated AP, looping on VM_RUN while the
 * AP is debug-suspended, as 14.0 bhyve parks its own APs (bhyverun.c
 * vmexit_debug with the 1 ms sleep of D39174).  vmx_run checks suspend and
 * rendezvous before the debug check, so a parked AP takes part in the INIT
 * rendezvous and in every VM suspend and never enters the guest.
 */
#include <errno.h>
#include <string.h>
#include <time.h>

#include "shim.h"

/*
 * While the guest boots, a parked AP must reach VM_RUN soon after the guest
 * INITs it: the INIT rendezvous holds the sender's VM_RUN until then
 * (vmm.c vm_handle_rendezvous).  Guests start APs in ascending order
 * (Linux, FreeBSD), so the few parked APs just above the last one handed
 * over poll every boot_poll (about 1 ms, as 14.0 bhyve's parked APs do);
 * the others poll WARM_FACTOR times less often, which is what an AP started
 * out of order waits at most.  255 parked APs thus cost some 20,000 polls a
 * second during the boot window instead of 255,000.
 */
#define	HOT_APS		4
#define	WARM_FACTOR	16

static int
parker_is_hot(struct vm_session *vs, int vcpu)
{
	int ncpus, next, distance;

	ncpus = atomic_load(&vs->ncpus);
	if (ncpus <= 1 + HOT_APS)
		return (1);
	next = atomic_load(&vs->last_handover) + 1;
	/* Distance on the ring of AP ids 1..ncpus-1. */
	distance = (vcpu - next + (ncpus - 1)) % (ncpus - 1);
	return (distance < HOT_APS);
}

/* ~1 ms polls while the guest boots, then doubling up to the idle poll. */
static uint64_t
poll_interval_ns(struct parker *p, uint64_t *backoff_ns)
{
	struct vm_session *vs = p->vs;
	uint64_t boot_poll, idle_poll;

	boot_poll = (uint64_t)shim_config.boot_poll_us * 1000;
	idle_poll = (uint64_t)shim_config.idle_poll_ms * 1000000;
	if (monotonic_ns() - vs->plan_time_ns <
	    (uint64_t)shim_config.boot_window_ms * 1000000)
		return (parker_is_hot(vs, p->vcpu) ? boot_poll :
		    boot_poll * WARM_FACTOR);
	if (*backoff_ns < boot_poll)
		*backoff_ns = boot_poll;
	else if (*backoff_ns < idle_poll)
		*backoff_ns *= 2;
	if (*backoff_ns > idle_poll)
		*backoff_ns = idle_poll;
	return (*backoff_ns);
}

static void
parker_sleep(struct parker *p, uint64_t ns)
{
	struct vm_session *vs = p->vs;
	struct timespec deadline;
	uint64_t until;

	until = monotonic_ns() + ns;
	deadline.tv_sec = (time_t)(until / 1000000000ULL);
	deadline.tv_nsec = (long)(until % 1000000000ULL);
	pthread_mutex_lock(&vs->park_lock);
	if (!atomic_load(&p->stop))
		(void)pthread_cond_timedwait(&vs->park_cond, &vs->park_lock,
		    &deadline);
	pthread_mutex_unlock(&vs->park_lock);
}

static void *
parker_main(void *arg)
{
	struct parker *p = arg;
	struct vm_session *vs = p->vs;
	uint64_t backoff_ns;
	struct vm_run vr;
	int reason;

	/* Idempotent: the daemon's VM_SUSPEND_CPU may have failed. */
	(void)kernel_vcpu_op(vs, ABI13_VM_SUSPEND_CPU, p->vcpu);
	link_event(vs, VMC_EV_PARKED, p->vcpu, 0);
	backoff_ns = 0;
	reason = 0;
	while (!atomic_load(&p->stop)) {
		memset(&vr, 0, sizeof(vr));
		vr.cpuid = p->vcpu;
		if (kernel_vm_run(vs, &vr) != 0) {
			if (errno == EINTR)
				continue;
			/* vmm.c vm_run: EINVAL once inactive or suspended. */
			reason = errno;
			break;
		}
		switch (vr.vm_exit.exitcode) {
		case VM_EXITCODE_DEBUG:
			parker_sleep(p, poll_interval_ns(p, &backoff_ns));
			break;
		case VM_EXITCODE_SUSPENDED:
			/* vm_handle_suspend: the whole VM is suspended. */
			reason = -vr.vm_exit.u.suspended.how;
			goto out;
		case VM_EXITCODE_REQIDLE:
		case VM_EXITCODE_BOGUS:
		case VM_EXITCODE_RENDEZVOUS:
			break;
		default:
			/* Not debug-suspended after all: never run guest code. */
			(void)kernel_vcpu_op(vs, ABI13_VM_SUSPEND_CPU, p->vcpu);
			break;
		}
	}
out:
	if (!atomic_load(&p->stop))
		link_event(vs, VMC_EV_PARKER_EXIT, p->vcpu, reason);
	return (NULL);
}

/*
 * A parker needs a few KiB of stack (one struct vm_run and a frame to the
 * daemon); 255 of them at the default 8 MiB would reserve 2 GiB of bhyve's
 * address space for nothing.
 */
#define	PARKER_STACK_BYTES	(256 * 1024)

int
parker_start(struct vm_session *vs, int vcpu)
{
	struct parker *p = &vs->parkers[vcpu];
	pthread_attr_t attr;
	int error;

	atomic_store(&p->stop, 0);
	pthread_attr_init(&attr);
	(void)pthread_attr_setstacksize(&attr, PARKER_STACK_BYTES);
	error = pthread_create(&p->thread, &attr, parker_main, p);
	pthread_attr_destroy(&attr);
	if (error != 0) {
		errno = error;
		return (-1);
	}
	atomic_store(&p->running, 1);
	return (0);
}

void
parkers_wake(struct vm_session *vs)
{

	pthread_mutex_lock(&vs->park_lock);
	pthread_cond_broadcast(&vs->park_cond);
	pthread_mutex_unlock(&vs->park_lock);
}

/*
 * Returns once the parker is out of VM_RUN for good.  A debug-suspended AP's
 * VM_RUN returns at once (DEBUG), so the wait is one poll at most.
 */
void
parker_stop(struct vm_session *vs, int vcpu)
{
	struct parker *p = &vs->parkers[vcpu];

	if (atomic_exchange(&p->running, 0) == 0)
		return;
	pthread_mutex_lock(&vs->park_lock);
	atomic_store(&p->stop, 1);
	pthread_cond_broadcast(&vs->park_cond);
	pthread_mutex_unlock(&vs->park_lock);
	pthread_join(p->thread, NULL);
}

void
parkers_stop_all(struct vm_session *vs)
{
	int vcpu;

	for (vcpu = 1; vcpu < VMC_MAX_VCPUS; vcpu++)
		parker_stop(vs, vcpu);
}
