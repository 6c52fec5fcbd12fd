/*
 * handover.c: compat sequence steps 4-7.  A SPINUP_AP exit names the AP the
 * guest started; before bhyve sees it, the AP's parker is stopped and the AP
 * resumed, so that bhyve's spinup_ap() finds it idle, resets it and runs it
 * on its own thread.
 */
#include <errno.h>

#include "shim.h"

static void
handover_ap(struct vm_session *vs, int vcpu)
{
	uint64_t started;

	started = monotonic_ns();
	parker_stop(vs, vcpu);
	/* EINVAL here only means it was not in debug_cpus (vmm.c vm_resume_cpu). */
	(void)kernel_vcpu_op(vs, ABI13_VM_RESUME_CPU, vcpu);
	atomic_fetch_or(&vs->claimed_mask, 1u << vcpu);
	link_event(vs, VMC_EV_HANDOVER, vcpu,
	    (int)((monotonic_ns() - started) / 1000));
}

/*
 * The window kernel (7c326ab5) reports CPU_FFS(dmask), one more than the
 * vcpuid; the plan says how much to subtract.  An AP that bhyve already runs
 * (the guest INIT/SIPIs it again to re-online it) is not delivered: 13.1
 * bhyve would call VM_ACTIVATE_CPU again (EBUSY -> exit 71) and start a
 * second thread on the vCPU.  A 13.x kernel never reported it either
 * (vlapic.c BS_RUNNING), so the guest sees what it saw there: the AP keeps
 * running where it was, and the sender simply continues.
 */
enum spinup_verdict
spinup_ap_exit(struct vm_session *vs, struct vm_exit *vme)
{
	uint32_t bit, parked, mine;
	int target;

	target = vme->u.spinup_ap.vcpu - atomic_load(&vs->spinup_bias);
	if (target < 1 || target >= VMC_MAX_VCPUS)
		return (SPINUP_DELIVER);
	bit = 1u << target;
	mine = atomic_load(&vs->claimed_mask) | atomic_load(&vs->running_mask);
	if ((mine & bit) != 0) {
		link_event(vs, VMC_EV_SPINUP_DUPLICATE, target, 0);
		return (SPINUP_SWALLOW);
	}
	vme->u.spinup_ap.vcpu = target;
	parked = atomic_load(&vs->parked_mask);
	if ((parked & bit) != 0) {
		pthread_mutex_lock(&vs->plan_lock);
		handover_ap(vs, target);
		pthread_mutex_unlock(&vs->plan_lock);
	}
	return (SPINUP_DELIVER);
}

/*
 * Step 6: bhyve's fbsdrun_addcpu activates the AP it was handed; the kernel
 * would say EBUSY (vmm.c vm_activate_cpu) and bhyve would exit 71, so a
 * pre-activated AP is answered 0 without asking the kernel.
 */
int
activate_cpu(struct vm_session *vs, int fd, unsigned long request,
    struct vm_activate_cpu *arg)
{
	uint32_t bit;
	int error, vcpu;

	vcpu = arg != NULL ? arg->vcpuid : -1;
	if (vcpu < 1 || vcpu >= VMC_MAX_VCPUS)
		return (shim_next_ioctl(fd, request, arg));
	bit = 1u << vcpu;
	if ((atomic_load(&vs->parked_mask) & bit) != 0) {
		if ((atomic_load(&vs->claimed_mask) & bit) == 0) {
			pthread_mutex_lock(&vs->plan_lock);
			handover_ap(vs, vcpu);
			pthread_mutex_unlock(&vs->plan_lock);
		}
		atomic_fetch_or(&vs->running_mask, bit);
		link_event(vs, VMC_EV_ACTIVATE_HIDDEN, vcpu, 0);
		return (0);
	}
	error = shim_next_ioctl(fd, request, arg);
	if (error == 0)
		atomic_fetch_or(&vs->running_mask, bit);
	return (error);
}
