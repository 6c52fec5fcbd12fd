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
start_parkers(struct vm_session *vs, uint32_t mask)
{
	int vcpu;

	vs->plan_time_ns = monotonic_ns();
	for (vcpu = 1; vcpu < VMC_MAX_VCPUS; vcpu++) {
		if ((mask & (1u << vcpu)) == 0)
			continue;
		if (parker_start(vs, vcpu) != 0) {
			/*
			 * An active AP without a thread hangs the BSP at the
			 * next INIT rendezvous or suspend (vmm.c
			 * vm_handle_rendezvous, vm_handle_suspend): stop here.
			 */
			shim_warn("VM %s: cannot start the parker for AP %d: %s;"
			    " exiting", vs->name, vcpu, strerror(errno));
			exit(EX_UNAVAILABLE);
		}
	}
}

/* Eager activation without the daemon, from the cached kernel facts. */
static uint32_t
plan_alone(struct vm_session *vs, int ncpus, const char *why)
{
	uint32_t active, parked;
	int vcpu;

	if (!vs->facts_known) {
		shim_warn("VM %s: vmm-compatd unreachable (%s) and the kernel "
		    "variant is unknown: no compat actions; APs may not start",
		    vs->name, why);
		return (0);
	}
	if (vs->facts.variant != VMC_VARIANT_WINDOW)
		return (0);
	active = 0;
	if (kernel_cpus(vs, VM_ACTIVE_CPUS, &active) != 0)
		active = 0;
	active &= ~1u;
	if (shim_config.require_daemon && active == 0) {
		shim_warn("VM %s: vmm-compatd unreachable (%s) and "
		    "VMM_COMPAT_REQUIRE_DAEMON=1: refusing to boot; the VM is "
		    "untouched", vs->name, why);
		exit(EX_UNAVAILABLE);
	}
	parked = active;
	for (vcpu = 1; vcpu < ncpus; vcpu++) {
		if ((parked & (1u << vcpu)) != 0)
			continue;
		if (kernel_vcpu_op(vs, ABI13_VM_ACTIVATE_CPU, vcpu) != 0) {
			shim_warn("VM %s: VM_ACTIVATE_CPU(%d): %s; APs from %d "
			    "on stay inactive", vs->name, vcpu,
			    strerror(errno), vcpu);
			break;
		}
		parked |= 1u << vcpu;
		/* As the daemon does: never active and runnable without a thread. */
		(void)kernel_vcpu_op(vs, ABI13_VM_SUSPEND_CPU, vcpu);
	}
	shim_warn("VM %s: vmm-compatd unreachable (%s): FALLBACK, the "
	    "interposer activated and parks APs itself (mask 0x%x, %s kernel)",
	    vs->name, why, parked, variant_name(vs->facts.variant));
	pthread_mutex_lock(&vs->link_lock);
	vs->fallback_pending = 1;
	pthread_mutex_unlock(&vs->link_lock);
	return (parked);
}

void
plan_boot(struct vm_session *vs)
{
	struct plan_reply reply;
	enum link_result r;
	uint32_t parked;
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
	parked = 0;
	if (atomic_load(&vs->new_protocol)) {
		/* Its APs are its own: nothing to plan (on_set_capability). */
		atomic_store(&vs->spinup_bias, 0);
		goto planned;
	}
	r = link_plan(vs, &reply, why, sizeof(why));
	if (r == LINK_REFUSED) {
		shim_warn("VM %s: vmm-compatd refused the plan: %s; exiting",
		    vs->name, why);
		exit(EX_UNAVAILABLE);
	}
	if (r == LINK_OK) {
		parked = (uint32_t)reply.parked_mask &
		    (uint32_t)((1u << ncpus) - 1) & ~1u;
		atomic_store(&vs->spinup_bias, (int)reply.spinup_bias);
	} else {
		parked = plan_alone(vs, ncpus, why);
		atomic_store(&vs->spinup_bias,
		    vs->facts_known && vs->facts.variant == VMC_VARIANT_WINDOW ?
		    1 : 0);
	}
planned:
	atomic_store(&vs->parked_mask, parked);
	atomic_store(&vs->claimed_mask, 0);
	start_parkers(vs, parked);
	atomic_store(&vs->planned_boot, boot + 1);
	atomic_fetch_and(&vs->bsp_attention, ~BSP_NEEDS_PLAN);
	pthread_mutex_unlock(&vs->plan_lock);
	link_event(vs, VMC_EV_PLANNED, 0,
	    (int)((monotonic_ns() - held_since) / 1000));
}
