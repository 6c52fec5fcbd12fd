/*
 * plan.c: compat sequence step 3.  The BSP's first VM_RUN of a boot waits
 * here while the daemon activates and debug-suspends the APs on its own fd;
 * then one parker per AP starts and the BSP runs.  Without a daemon the
 * interposer performs the same plan itself on bhyve's fd (VM_ACTIVATE_CPU and
 * VM_SUSPEND_CPU are on 13.1's capsicum list), so a VM is never left with an
 * active AP that no thread runs.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"

#define	EX_UNAVAILABLE	69	/* sysexits.h */

static void
start_parkers(struct vm_session *vs, const struct vcpu_set *parked)
{
	int vcpu;

	vs->plan_time_ns = monotonic_ns();
	SET_FOREACH(vcpu, parked) {
		if (vcpu == 0)
			continue;
		if (parker_start(vs, vcpu) != 0) {
			/*
			 * An active AP without a thread hangs the BSP at the
			 * next INIT rendezvous or suspend (vmm.c
			 * vm_handle_rendezvous, vm_handle_suspend): stop here.
			 */
			shim_error("VM %s: cannot start the parker for AP %d: %s;"
			    " exiting", vs->name, vcpu, strerror(errno));
			exit(EX_UNAVAILABLE);
		}
	}
}

/* Eager activation without the daemon, from the cached kernel facts. */
static void
plan_alone(struct vm_session *vs, int ncpus, const char *why,
    struct vcpu_set *parked)
{
	struct vcpu_set active;
	char list[64];
	int vcpu;

	set_clear(parked);
	if (!vs->facts_known) {
		shim_warn("VM %s: vmm-compatd unreachable (%s) and the kernel "
		    "variant is unknown: no compat actions; APs may not start",
		    vs->name, why);
		return;
	}
	if (vs->facts.variant != VMC_VARIANT_WINDOW)
		return;
	if (kernel_cpus(vs, VM_ACTIVE_CPUS, &active) != 0)
		set_clear(&active);
	set_del(&active, 0);
	if (shim_config.require_daemon && set_empty(&active)) {
		shim_error("VM %s: vmm-compatd unreachable (%s) and "
		    "VMM_COMPAT_REQUIRE_DAEMON=1: refusing to boot; the VM is "
		    "untouched", vs->name, why);
		exit(EX_UNAVAILABLE);
	}
	*parked = active;
	for (vcpu = 1; vcpu < ncpus; vcpu++) {
		if (set_has(parked, vcpu))
			continue;
		if (kernel_vcpu_op(vs, ABI13_VM_ACTIVATE_CPU, vcpu) != 0) {
			shim_warn("VM %s: VM_ACTIVATE_CPU(%d): %s; APs from %d "
			    "on stay inactive", vs->name, vcpu,
			    strerror(errno), vcpu);
			break;
		}
		set_add(parked, vcpu);
		/* As the daemon does: never active and runnable without a thread. */
		(void)kernel_vcpu_op(vs, ABI13_VM_SUSPEND_CPU, vcpu);
	}
	format_vcpu_list(parked, list, sizeof(list));
	shim_warn("VM %s: vmm-compatd unreachable (%s): FALLBACK, the "
	    "interposer activated and parks APs itself (APs %s, %s kernel)",
	    vs->name, why, list, variant_name(vs->facts.variant));
	pthread_mutex_lock(&vs->link_lock);
	vs->fallback_pending = 1;
	pthread_mutex_unlock(&vs->link_lock);
}

/*
 * More vCPUs than 13.x's cpuset_t holds (a 13.2+ bhyve on a kernel whose
 * maxcpus is larger): nothing the interposer keeps can name them.  Where
 * the kernel starts APs by itself that is harmless and the VM passes
 * through; where the APs need eager activation and parkers, the VM would
 * boot with CPUs missing, so it is refused now, before the BSP runs and
 * before anything was activated.
 */
static void
check_coverage(struct vm_session *vs, int ncpus)
{

	if (ncpus <= VMC_MAX_VCPUS)
		return;
	if (!vs->facts_known || vs->facts.variant != VMC_VARIANT_WINDOW) {
		shim_warn("VM %s: %d vCPUs, more than the %d the interposer "
		    "covers; the %s kernel needs no eager activation: passing "
		    "through", vs->name, ncpus, VMC_MAX_VCPUS, vs->facts_known ?
		    variant_name(vs->facts.variant) : "unidentified");
		return;
	}
	shim_error("VM %s: %d vCPUs, but the interposer can park and hand over "
	    "at most %d (13.x userland's CPU_SETSIZE) and the %s kernel needs "
	    "every AP parked: refusing to boot a VM whose APs %d..%d could "
	    "never start; nothing was activated (use -c %d or fewer)",
	    vs->name, ncpus, VMC_MAX_VCPUS, variant_name(vs->facts.variant),
	    VMC_MAX_VCPUS, ncpus - 1, VMC_MAX_VCPUS);
	exit(EX_UNAVAILABLE);
}

void
plan_boot(struct vm_session *vs)
{
	struct plan_reply reply;
	struct vcpu_set parked;
	enum link_result r;
	char why[256];
	uint64_t held_since;
	unsigned boot;
	int ncpus;

	held_since = monotonic_ns();
	pthread_mutex_lock(&vs->plan_lock);
	boot = atomic_load(&vs->boot);
	if (atomic_load(&vs->planned_boot) == boot + 1) {
		atomic_fetch_and(&vs->bsp_attention, ~BSP_NEEDS_PLAN);
		pthread_mutex_unlock(&vs->plan_lock);
		return;
	}
	ncpus = atomic_load(&vs->ncpus);
	if (ncpus < 1)
		ncpus = 1;
	set_clear(&parked);
	if (atomic_load(&vs->new_protocol)) {
		/* Its APs are its own: nothing to plan (on_set_capability). */
		atomic_store(&vs->spinup_bias, 0);
		goto planned;
	}
	check_coverage(vs, ncpus);
	if (ncpus > VMC_MAX_VCPUS) {
		atomic_store(&vs->spinup_bias, 0);
		goto planned;
	}
	r = link_plan(vs, &reply, why, sizeof(why));
	if (r == LINK_REFUSED) {
		shim_error("VM %s: vmm-compatd refused the plan: %s; exiting",
		    vs->name, why);
		exit(EX_UNAVAILABLE);
	}
	if (r == LINK_OK) {
		parked = reply.parked;
		set_limit(&parked, ncpus);
		set_del(&parked, 0);
		atomic_store(&vs->spinup_bias, (int)reply.spinup_bias);
	} else {
		plan_alone(vs, ncpus, why, &parked);
		atomic_store(&vs->spinup_bias,
		    vs->facts_known && vs->facts.variant == VMC_VARIANT_WINDOW ?
		    1 : 0);
	}
planned:
	aset_store(&vs->parked, &parked);
	aset_clear(&vs->claimed);
	atomic_store(&vs->last_handover, 0);
	start_parkers(vs, &parked);
	atomic_store(&vs->planned_boot, boot + 1);
	atomic_fetch_and(&vs->bsp_attention, ~BSP_NEEDS_PLAN);
	pthread_mutex_unlock(&vs->plan_lock);
	link_event(vs, VMC_EV_PLANNED, 0,
	    (int)((monotonic_ns() - held_since) / 1000));
}
