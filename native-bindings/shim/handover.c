/*
 * handover.c: compat sequence steps 4-7.  A SPINUP_AP exit names the AP the
 * guest started; before bhyve sees it, the AP's parker is stopped and the AP
 * resumed, so that bhyve's spinup_ap() finds it idle, resets it and runs it
 * on its own thread.
 */
#include <errno.h>
#include <string.h>

#include "shim.h"

static void
handover_ap(struct vm_session *vs, int vcpu)
{
	uint64_t started;

	started = monotonic_ns();
	parker_stop(vs, vcpu);
	/* EINVAL here only means it was not in debug_cpus (vmm.c vm_resume_cpu). */
	(void)kernel_vcpu_op(vs, ABI13_VM_RESUME_CPU, vcpu);
	aset_add(&vs->claimed, vcpu);
	atomic_store(&vs->last_handover, vcpu);
	link_event(vs, VMC_EV_HANDOVER, vcpu,
	    (int)((monotonic_ns() - started) / 1000));
}

static void *
kick_bsp_main(void *arg)
{
	struct vm_session *vs = arg;
	struct vm_register reg;

	/*
	 * Any per-vCPU ioctl on vCPU 0 freezes it (vmm_dev.c vcpu_lock_one):
	 * the kernel sets reqidle and the BSP's VM_RUN returns REQIDLE, after
	 * which bhyve calls VM_RUN again and finds the pending exit.  On its
	 * own thread: the AP that raised the exit must be free to service a
	 * rendezvous the BSP may be waiting in.
	 */
	memset(&reg, 0, sizeof(reg));
	reg.cpuid = 0;
	reg.regnum = VM_REG_GUEST_RIP;
	(void)shim_next_ioctl(vs->fd, ABI13_VM_GET_REGISTER, &reg);
	return (NULL);
}

static void
kick_bsp(struct vm_session *vs)
{
	pthread_attr_t attr;
	pthread_t thread;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&thread, &attr, kick_bsp_main, vs) != 0)
		shim_warn("VM %s: cannot start a thread to wake the BSP; the "
		    "rerouted SPINUP_AP waits for its next exit", vs->name);
	pthread_attr_destroy(&attr);
}

/*
 * The window kernel (7c326ab5) reports CPU_FFS(dmask), one more than the
 * vcpuid; the plan says how much to subtract.  An AP that bhyve already runs
 * (the guest INIT/SIPIs it again to re-online it) is not delivered: 13.1
 * bhyve would call VM_ACTIVATE_CPU again (EBUSY -> exit 71) and start a
 * second thread on the vCPU.  A 13.x kernel never reported it either
 * (vlapic.c BS_RUNNING), so the guest sees what it saw there: the AP keeps
 * running where it was, and the sender simply continues.
 *
 * On the new kernels any vCPU may send the SIPI and receive the exit
 * (vlapic.c vm_handle_ipi runs on the sender), but 13.1 bhyve asserts that
 * SPINUP_AP comes to the BSP (bhyverun.c fbsdrun_addcpu).  An exit raised on
 * an AP is therefore kept, the AP runs on, and the BSP is made to return to
 * userland so that its next VM_RUN delivers the exit there.
 */
enum spinup_verdict
spinup_ap_exit(struct vm_session *vs, int sender, struct vm_exit *vme)
{
	int ncpus, target;

	target = vme->u.spinup_ap.vcpu - atomic_load(&vs->spinup_bias);
	ncpus = atomic_load(&vs->ncpus);
	if (target >= 1 && ncpus > 0 && target >= ncpus) {
		/*
		 * A vCPU this VM does not have: the b265a2e0 compat path
		 * starts any id below the kernel's maxcpus, a 13.1 kernel any
		 * below VM_MAXCPU.  Hardware drops an IPI to an absent APIC
		 * ID; 13.1 bhyve would abort (spinup_ap.c: assert(newcpu <
		 * guest_ncpus)).  A guest may do it in a loop: coalesced.
		 */
		coalesce_event(vs, &vs->spinup_absent, VMC_EV_SPINUP_ABSENT,
		    target, sender);
		return (SPINUP_SWALLOW);
	}
	if (target < 1 || target >= VMC_MAX_VCPUS)
		return (SPINUP_DELIVER);
	if (aset_has(&vs->claimed, target) || aset_has(&vs->running, target)) {
		/* A guest may do this in a loop: coalesced (coalesce.c). */
		coalesce_event(vs, &vs->spinup_duplicates,
		    VMC_EV_SPINUP_DUPLICATE, target, sender);
		return (SPINUP_SWALLOW);
	}
	if (sender != 0) {
		pthread_mutex_lock(&vs->plan_lock);
		vs->pending_spinup_rip[target] = vme->u.spinup_ap.rip;
		aset_add(&vs->pending_spinup, target);
		atomic_fetch_or(&vs->bsp_attention, BSP_PENDING_SPINUP);
		pthread_mutex_unlock(&vs->plan_lock);
		link_event(vs, VMC_EV_SPINUP_REROUTED, target, sender);
		kick_bsp(vs);
		return (SPINUP_SWALLOW);
	}
	vme->u.spinup_ap.vcpu = target;
	if (aset_has(&vs->parked, target)) {
		pthread_mutex_lock(&vs->plan_lock);
		handover_ap(vs, target);
		pthread_mutex_unlock(&vs->plan_lock);
	}
	return (SPINUP_DELIVER);
}

/*
 * On the BSP's VM_RUN: turns one pending SPINUP_AP into this call's exit,
 * without entering the kernel (the guest's BSP state is untouched).
 */
int
take_pending_spinup(struct vm_session *vs, struct vm_exit *vme)
{
	struct vcpu_set pending;
	int target;

	if ((atomic_load(&vs->bsp_attention) & BSP_PENDING_SPINUP) == 0)
		return (0);
	pthread_mutex_lock(&vs->plan_lock);
	aset_load(&vs->pending_spinup, &pending);
	target = set_next(&pending, 0);
	if (target < 0) {
		atomic_fetch_and(&vs->bsp_attention, ~BSP_PENDING_SPINUP);
		pthread_mutex_unlock(&vs->plan_lock);
		return (0);
	}
	aset_del(&vs->pending_spinup, target);
	set_del(&pending, target);
	if (set_empty(&pending))
		atomic_fetch_and(&vs->bsp_attention, ~BSP_PENDING_SPINUP);
	memset(vme, 0, sizeof(*vme));
	vme->exitcode = VM_EXITCODE_SPINUP_AP;
	vme->u.spinup_ap.vcpu = target;
	vme->u.spinup_ap.rip = vs->pending_spinup_rip[target];
	if (aset_has(&vs->parked, target) && !aset_has(&vs->claimed, target))
		handover_ap(vs, target);
	pthread_mutex_unlock(&vs->plan_lock);
	return (1);
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
	int error, vcpu;

	vcpu = arg != NULL ? arg->vcpuid : -1;
	if (vcpu < 1 || vcpu >= VMC_MAX_VCPUS)
		return (shim_next_ioctl(fd, request, arg));
	if (aset_has(&vs->parked, vcpu)) {
		if (!aset_has(&vs->claimed, vcpu)) {
			pthread_mutex_lock(&vs->plan_lock);
			handover_ap(vs, vcpu);
			pthread_mutex_unlock(&vs->plan_lock);
		}
		aset_add(&vs->running, vcpu);
		link_event(vs, VMC_EV_ACTIVATE_HIDDEN, vcpu, 0);
		return (0);
	}
	error = shim_next_ioctl(fd, request, arg);
	if (error == 0)
		aset_add(&vs->running, vcpu);
	return (error);
}
