/*
 * bhyverun14.c: control-flow model of FreeBSD 14.x bhyve, the new AP
 * protocol (usr.sbin/bhyve/bhyverun.c of the 14.0 era, read_file id
 * 164064629; kernel-main-side.md section 5.2): every vCPU gets its
 * capabilities (VM_CAP_IPI_EXIT, x2APIC) and is activated, debug-suspended
 * and given a thread at start-up; after cap_enter the BSP is resumed.
 * Parked APs spin on VM_EXITCODE_DEBUG with a 1 ms sleep (D39174); INIT IPI
 * exits debug-suspend their targets, STARTUP IPI exits reset and resume
 * them (spinup_ap14.c).
 *
 * One source, three releases (bhyve_release, linked beside it):
 *   14.0 (bhyverun140.c) and 14.3 (bhyverun143.c): the 32-byte VM_RUN with
 *   the exit and the IPI cpuset behind pointers (e17eca32), a 128-byte
 *   cpuset_t;
 *   14-CURRENT of early 2023 (bhyverun14cur.c), the window kernel's own
 *   bhyve: the 144-byte VM_RUN with the IPI mask inside the exit, a 32-byte
 *   cpuset_t.
 *
 * The steps 14.x kept from 13.x are in bhyve_run.c (do_open, the
 * x2APIC/INVPCID capabilities, memory, the boot ROM region and the ROM, a
 * handler's result) and bhyve_cpumask.c (cpumask, fbsdrun_deletecpu,
 * vmexit_suspend's end).
 */
#define	_GNU_SOURCE
#define	LAB_FBSD_WEAK
#include <assert.h>
#include <err.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bhyve_common.h"
#include "bhyve_exits13.h"
#include "bhyverun14.h"

#define	VM_EXITCODE_MAX	VM_EXITCODE_MAX14
#define	IDT_GP		13

struct vcpu_info {
	struct vmctx	*ctx;
	int		vcpuid;
	pthread_t	thr;
};

typedef int (*vmexit_handler_t)(struct vmctx *, struct vcpu_info *,
    struct vm_exit *, const cpuset14_t *);

static const int BSP = 0;
static int guest_ncpus;
static int x2apic_mode;
static int destroy_on_poweroff;
static int vmexit_on_hlt, vmexit_on_pause;
static int strictmsr = 1;

/*
 * bhyve's own set of running vCPU threads (not the kernel's): a cpuset_t,
 * 1024 bits in 14.0; the release's cpuset_bytes bound the vCPUs used.
 */
static cpuset14_t cpumask_bits;
static struct bhyve_cpumask cpumask = BHYVE_CPUMASK(cpumask_bits);
static struct vcpu_info *vcpu_info;

static void vm_loop(struct vcpu_info *vi);

static void *
fbsdrun_start_thread(void *param)
{
	struct vcpu_info *vi;
	char tname[16];

	vi = param;
	snprintf(tname, sizeof(tname), "vcpu %d", vi->vcpuid);
	pthread_setname_np(pthread_self(), tname);

	vm_loop(vi);

	/* vm_loop returns only on a VM_RUN error. */
	exit(1);
	return (NULL);
}

/*
 * bhyverun.c (14.0): fbsdrun_addcpu: activate, join cpumask, park the vCPU
 * with a debug suspend, start its thread.
 */
static void
fbsdrun_addcpu(struct vcpu_info *vi)
{
	int error;

	error = vm_activate_cpu(vi->ctx, vi->vcpuid);
	if (error != 0)
		err(EX_OSERR, "could not activate CPU %d", vi->vcpuid);

	bhyve_cpumask_set(&cpumask, vi->vcpuid);

	vm_suspend_cpu(vi->ctx, vi->vcpuid);

	error = pthread_create(&vi->thr, NULL, fbsdrun_start_thread, vi);
	assert(error == 0);
}

static int
vmexit_inout(struct vmctx *ctx, struct vcpu_info *vi, struct vm_exit *vme,
    const cpuset14_t *cpuset)
{

	(void)cpuset;
	return (bhyve_vmexit_inout(ctx, vi->vcpuid, vme));
}

static int
vmexit_msr(struct vmctx *ctx, struct vcpu_info *vi, struct vm_exit *vme,
    const cpuset14_t *cpuset)
{
	int error;

	(void)cpuset;
	if (vme->exitcode == VM_EXITCODE_RDMSR)
		fprintf(stderr, "rdmsr to register %#x on vcpu %d\n",
		    vme->u.msr.code, vi->vcpuid);
	else
		fprintf(stderr, "wrmsr to register %#x(%#lx) on vcpu %d\n",
		    vme->u.msr.code, (unsigned long)vme->u.msr.wval,
		    vi->vcpuid);
	if (strictmsr) {
		error = vm_inject_exception(ctx, vi->vcpuid, IDT_GP, 1, 0, 1);
		assert(error == 0);
	}
	return (VMEXIT_CONTINUE);
}

static int
vmexit_abort(struct vmctx *ctx, struct vcpu_info *vi, struct vm_exit *vme,
    const cpuset14_t *cpuset)
{

	(void)ctx;
	(void)cpuset;
	fprintf(stderr, "vm exit[%d]\n\treason\t\t%s\n\trip\t\t0x%016lx\n",
	    vi->vcpuid, vme->exitcode == VM_EXITCODE_VMX ? "VMX" : "SVM",
	    (unsigned long)vme->rip);
	return (VMEXIT_ABORT);
}

/* bhyverun.c (14.0): vmexit_bogus, vmexit_reqidle. */
static int
vmexit_continue(struct vmctx *ctx, struct vcpu_info *vi, struct vm_exit *vme,
    const cpuset14_t *cpuset)
{

	(void)ctx;
	(void)vi;
	(void)cpuset;
	assert(vme->inst_length == 0);
	return (VMEXIT_CONTINUE);
}

/*
 * bhyverun.c (14.0): vmexit_hlt and vmexit_pause, in the table whatever -H
 * and -P say: "friendly with the host scheduler", nothing to do.
 */
static int
vmexit_hlt_pause(struct vmctx *ctx, struct vcpu_info *vi, struct vm_exit *vme,
    const cpuset14_t *cpuset)
{

	(void)ctx;
	(void)vi;
	(void)vme;
	(void)cpuset;
	return (VMEXIT_CONTINUE);
}

/*
 * bhyverun.c (14.0): vmexit_inst_emul: the same end as 13.x's for what the
 * lab can reach (no userland decoder, no MMIO device): bhyve_exits13.c.
 */
static int
vmexit_inst_emul14(struct vmctx *ctx, struct vcpu_info *vi, struct vm_exit *vme,
    const cpuset14_t *cpuset)
{
	int vcpu;

	(void)cpuset;
	vcpu = vi->vcpuid;
	return (vmexit_inst_emul(ctx, vme, &vcpu));
}

/*
 * bhyverun.c (14.0): vmexit_debug: gdb_cpu_suspend (a no-op without -G),
 * then a 1 ms sleep so that parked APs do not spin (D39174).
 */
static int
vmexit_debug(struct vmctx *ctx, struct vcpu_info *vi, struct vm_exit *vme,
    const cpuset14_t *cpuset)
{

	(void)ctx;
	(void)vi;
	(void)vme;
	(void)cpuset;
	usleep(1000);
	return (VMEXIT_CONTINUE);
}

/*
 * bhyverun.c (14.0): vmexit_ipi.  The result starts as -1: INIT sets it
 * only through vm_suspend_cpu for each vCPU in the exit's cpuset (the
 * kernel has already reset their local APICs), STARTUP sets 0 after
 * starting each at the vector's page.  So an INIT with an empty set, a
 * failed suspend, or another delivery mode returns -1, VMEXIT_ABORT, and
 * vm_loop aborts.  (The kernel sends only active vCPUs, all of which have a
 * vcpu_info; the lab stops at guest_ncpus rather than index past it.)
 */
static int
vmexit_ipi(struct vmctx *ctx, struct vcpu_info *vi, struct vm_exit *vme,
    const cpuset14_t *cpuset)
{
	int error, i;

	(void)vi;
	error = -1;
	switch (vme->u.ipi.mode) {
	case APIC_DELMODE_INIT:
		for (i = 0; i < guest_ncpus; i++) {
			if (!LAB_CPU_ISSET(i, cpuset))
				continue;
			error = vm_suspend_cpu(ctx, i);
			if (error) {
				warnx("%s: failed to suspend cpu %d\n",
				    __func__, i);
				break;
			}
		}
		break;
	case APIC_DELMODE_STARTUP:
		for (i = 0; i < guest_ncpus; i++) {
			if (LAB_CPU_ISSET(i, cpuset))
				spinup_ap(ctx, i,
				    (uint64_t)vme->u.ipi.vector << PAGE_SHIFT);
		}
		error = 0;
		break;
	default:
		break;
	}
	return (error);
}

/*
 * bhyverun.c (14.0): vmexit_suspend, modelled as 13.1's: the vCPU leaves
 * cpumask (fbsdrun_deletecpu), APs exit their thread, the BSP waits until
 * cpumask is empty and exits with the reason (bhyve_cpumask.c).
 */
static int
vmexit_suspend(struct vmctx *ctx, struct vcpu_info *vi, struct vm_exit *vme,
    const cpuset14_t *cpuset)
{

	(void)cpuset;
	bhyve_vmexit_suspend(ctx, &cpumask, vi->vcpuid, vme->u.suspended.how,
	    destroy_on_poweroff);
}

/*
 * bhyverun.c (14.0): the handler table; no SPINUP_AP any more.  Not
 * modelled: MTRAP and BPT (gdb.c of 14.x was not read), TASK_SWITCH (14.x
 * task_switch.c was not read): such an exit ends as an unknown one.
 */
static vmexit_handler_t vmexit_handlers[VM_EXITCODE_MAX] = {
	[VM_EXITCODE_INOUT]	= vmexit_inout,
	[VM_EXITCODE_INOUT_STR]	= vmexit_inout,
	[VM_EXITCODE_VMX]	= vmexit_abort,
	[VM_EXITCODE_SVM]	= vmexit_abort,
	[VM_EXITCODE_BOGUS]	= vmexit_continue,
	[VM_EXITCODE_REQIDLE]	= vmexit_continue,
	[VM_EXITCODE_RDMSR]	= vmexit_msr,
	[VM_EXITCODE_WRMSR]	= vmexit_msr,
	[VM_EXITCODE_INST_EMUL]	= vmexit_inst_emul14,
	[VM_EXITCODE_SUSPENDED]	= vmexit_suspend,
	[VM_EXITCODE_DEBUG]	= vmexit_debug,
	[VM_EXITCODE_IPI]	= vmexit_ipi,
	[VM_EXITCODE_HLT]	= vmexit_hlt_pause,
	[VM_EXITCODE_PAUSE]	= vmexit_hlt_pause,
};

/*
 * bhyverun.c (14.0): vm_loop: VM_GET_CPUS(ACTIVE) with the userland
 * cpuset_t (its result unchecked) and the assert that this vCPU is active,
 * then VM_RUN until an error.  A 128-byte set on a kernel whose cpuset_t
 * and CPU_MAXSIZE are 256 bits gets ERANGE, the set stays empty and the
 * assert aborts bhyve: a 14.0 bhyve on a window or 13.x kernel.
 */
static void
vm_loop(struct vcpu_info *vi)
{
	struct vm_exit vme;
	cpuset14_t active_cpus, cpuset;
	int error, rc, exitcode;

	memset(&active_cpus, 0, sizeof(active_cpus));
	error = vm_active_cpus_sized(vi->ctx, &active_cpus,
	    bhyve_release.cpuset_bytes);
	assert(LAB_CPU_ISSET(vi->vcpuid, &active_cpus));

	while (1) {
		memset(&vme, 0, sizeof(vme));
		error = vm_run_14(vi->ctx, vi->vcpuid, bhyve_release.vmrun_abi,
		    &vme, &cpuset);
		if (error != 0)
			break;

		exitcode = vme.exitcode;
		if (exitcode < 0 || exitcode >= VM_EXITCODE_MAX ||
		    vmexit_handlers[exitcode] == NULL) {
			fprintf(stderr, "vm_loop: unexpected exitcode 0x%x\n",
			    exitcode);
			exit(4);
		}

		rc = (*vmexit_handlers[exitcode])(vi->ctx, vi, &vme, &cpuset);
		bhyve_vmexit_result(rc);
	}
	fprintf(stderr, "vm_run error %d, errno %d\n", error, errno);
}

/*
 * bhyverun.c (14.0): num_vcpus_allowed: unrestricted guest, then the
 * kernel's maxcpus from VM_GET_TOPOLOGY (no compile-time 16).
 */
static int
num_vcpus_allowed(struct vmctx *ctx)
{
	uint16_t s, c, t, m;
	int tmp, error;

	error = vm_get_capability(ctx, BSP, VM_CAP_UNRESTRICTED_GUEST, &tmp);
	if (error != 0)
		return (1);
	error = vm_get_topology(ctx, &s, &c, &t, &m);
	if (error == 0)
		return (m);
	return (1);
}

/*
 * bhyverun.c (14.0): fbsdrun_set_capabilities: -H and -P ask for HLT and
 * PAUSE exits (a failing VM_GET_CAPABILITY exits 4), 13.x's x2APIC state
 * and INVPCID (bhyve_run.c), then VM_CAP_IPI_EXIT, which must work.
 */
static void
fbsdrun_set_capabilities(struct vmctx *ctx, int cpu)
{
	int error, tmp;

	if (vmexit_on_hlt) {
		error = vm_get_capability(ctx, cpu, VM_CAP_HALT_EXIT, &tmp);
		if (error < 0) {
			fprintf(stderr, "VM exit on HLT not supported\n");
			exit(4);
		}
		vm_set_capability(ctx, cpu, VM_CAP_HALT_EXIT, 1);
	}
	if (vmexit_on_pause) {
		error = vm_get_capability(ctx, cpu, VM_CAP_PAUSE_EXIT, &tmp);
		if (error < 0) {
			fprintf(stderr, "SMP mux requested, no pause support\n");
			exit(4);
		}
		vm_set_capability(ctx, cpu, VM_CAP_PAUSE_EXIT, 1);
	}

	bhyve_set_capabilities(ctx, cpu, x2apic_mode);

	error = vm_set_capability(ctx, cpu, VM_CAP_IPI_EXIT, 1);
	assert(error == 0);
}

/*
 * bhyverun.c (14.0): spinup_vcpu: the BSP's capabilities were set before
 * guest memory (main); an AP gets them here, with unrestricted guest ("APs
 * startup in power-on 16-bit mode"); then every vCPU is added.
 */
static void
spinup_vcpu(struct vcpu_info *vi, int bsp)
{
	int error;

	if (!bsp) {
		fbsdrun_set_capabilities(vi->ctx, vi->vcpuid);
		error = vm_set_capability(vi->ctx, vi->vcpuid,
		    VM_CAP_UNRESTRICTED_GUEST, 1);
		assert(error == 0);
	}

	fbsdrun_addcpu(vi);
}

/* bhyverun.c (14.0) do_open: vm_limit_rights (vmmapi14.c), which err()s on failure. */
static void
limit_rights(struct vmctx *ctx)
{

	if (vm_limit_rights_14(ctx, bhyve_release.vmrun_abi) != 0)
		err(EX_OSERR, "vm_limit_rights");
}

int
main(int argc, char *argv[])
{
	struct bhyve_opts opts;
	struct vmctx *ctx;
	int max_vcpus, vcpuid;

	bhyve_parse_args(argc, argv, &opts);
	guest_ncpus = opts.guest_ncpus;
	x2apic_mode = opts.x2apic_mode;
	destroy_on_poweroff = opts.destroy_on_poweroff;
	vmexit_on_hlt = opts.vmexit_on_hlt;
	vmexit_on_pause = opts.vmexit_on_pause;

	ctx = bhyve_do_open(&opts, limit_rights);

	max_vcpus = num_vcpus_allowed(ctx);
	if (guest_ncpus > max_vcpus ||
	    (size_t)guest_ncpus > bhyve_release.cpuset_bytes * 8) {
		fprintf(stderr, "%d vCPUs requested but only %d available\n",
		    guest_ncpus, max_vcpus);
		exit(4);
	}

	/* 14.0 main: the BSP's capabilities come before guest memory. */
	fbsdrun_set_capabilities(ctx, BSP);

	vcpu_info = calloc((size_t)guest_ncpus, sizeof(*vcpu_info));
	if (vcpu_info == NULL)
		err(4, "calloc");
	for (vcpuid = 0; vcpuid < guest_ncpus; vcpuid++) {
		vcpu_info[vcpuid].ctx = ctx;
		vcpu_info[vcpuid].vcpuid = vcpuid;
	}

	/*
	 * Memory, the boot ROM region, devices (the ROM), unrestricted guest
	 * and vcpu_reset(BSP).
	 */
	bhyve_setup_guest(ctx, &opts);

	/* Add all vCPUs: activated, parked, each with its thread. */
	for (vcpuid = 0; vcpuid < guest_ncpus; vcpuid++)
		spinup_vcpu(&vcpu_info[vcpuid], vcpuid == BSP);

	bhyve_limit_stdio();
	if (caph_enter() == -1)
		errx(EX_OSERR, "cap_enter() failed");

	/* Release the BSP. */
	vm_resume_cpu(ctx, BSP);

	for (;;)
		pause();
	exit(4);
}
