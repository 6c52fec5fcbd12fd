/*
 * bhyverun14.c: control-flow model of FreeBSD 14.0 bhyve
 * (usr.sbin/bhyve/bhyverun.c and amd64/vmexit.c, 14.0; kernel-main-side.md
 * section 5.2): every vCPU gets its capabilities (VM_CAP_IPI_EXIT, x2APIC)
 * and is activated, debug-suspended and given a thread at start-up; after
 * cap_enter the BSP is resumed.  Parked APs spin on VM_EXITCODE_DEBUG with
 * a 1 ms sleep (D39174); INIT IPI exits debug-suspend their targets,
 * STARTUP IPI exits reset and resume them (spinup_ap14.c).
 *
 * VM_RUN speaks the ABI of the kernel it runs on (VMMLAB_VMRUN_ABI):
 *   14 (default): struct vm_run_14, exit and cpuset behind pointers,
 *                 cpusetsize 128 (14.0);
 *   13:           the 144-byte struct vm_run with the IPI mask inside the
 *                 exit (early-2023 main, before e17eca32).
 *
 * The steps 14.0 kept from 13.1 are in bhyve_run.c (do_open, the
 * x2APIC/INVPCID capabilities, memory and boot ROM, a handler's result)
 * and bhyve_cpumask.c (cpumask, fbsdrun_deletecpu, vmexit_suspend's end).
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
#include "bhyverun14.h"

#define	VM_EXITCODE_MAX	VM_EXITCODE_MAX14
#define	LAB_MAXCPU	(ABI14_CPUSET_BYTES * 8)
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
static int strictmsr = 1;
static int vmrun_abi = 14;

/* bhyve's own set of running vCPU threads (not the kernel's): 1024 bits. */
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
	fprintf(stderr, "%s to register %#x on vcpu %d\n",
	    vme->exitcode == VM_EXITCODE_RDMSR ? "rdmsr" : "wrmsr",
	    vme->u.msr.code, vi->vcpuid);
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
 * amd64/vmexit.c (14.0): vmexit_debug: gdb_cpu_suspend (a no-op without
 * -G), then a 1 ms sleep so that parked APs do not spin (D39174).
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
 * amd64/vmexit.c (14.0): vmexit_ipi: INIT debug-suspends every vCPU in the
 * exit's cpuset (the kernel has already reset their local APICs); STARTUP
 * starts each at the vector's page.
 */
static int
vmexit_ipi(struct vmctx *ctx, struct vcpu_info *vi, struct vm_exit *vme,
    const cpuset14_t *cpuset)
{
	int error, i;

	(void)vi;
	switch (vme->u.ipi.mode) {
	case APIC_DELMODE_INIT:
		for (i = 0; i < guest_ncpus; i++) {
			if (!LAB_CPU_ISSET(i, cpuset))
				continue;
			error = vm_suspend_cpu(ctx, i);
			if (error) {
				warnx("vmexit_ipi: failed to suspend cpu %d",
				    i);
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
		break;
	default:
		break;
	}
	return (VMEXIT_CONTINUE);
}

/*
 * amd64/vmexit.c (14.0): vmexit_suspend, modelled as 13.1's: the vCPU
 * leaves cpumask (fbsdrun_deletecpu), APs exit their thread, the BSP waits
 * until cpumask is empty and exits with the reason (bhyve_cpumask.c).
 */
static int
vmexit_suspend(struct vmctx *ctx, struct vcpu_info *vi, struct vm_exit *vme,
    const cpuset14_t *cpuset)
{

	(void)cpuset;
	bhyve_vmexit_suspend(ctx, &cpumask, vi->vcpuid, vme->u.suspended.how,
	    destroy_on_poweroff);
}

/* amd64/vmexit.c (14.0): the handler table; no SPINUP_AP any more. */
static vmexit_handler_t vmexit_handlers[VM_EXITCODE_MAX] = {
	[VM_EXITCODE_INOUT]	= vmexit_inout,
	[VM_EXITCODE_INOUT_STR]	= vmexit_inout,
	[VM_EXITCODE_VMX]	= vmexit_abort,
	[VM_EXITCODE_SVM]	= vmexit_abort,
	[VM_EXITCODE_BOGUS]	= vmexit_continue,
	[VM_EXITCODE_REQIDLE]	= vmexit_continue,
	[VM_EXITCODE_RDMSR]	= vmexit_msr,
	[VM_EXITCODE_WRMSR]	= vmexit_msr,
	[VM_EXITCODE_SUSPENDED]	= vmexit_suspend,
	[VM_EXITCODE_DEBUG]	= vmexit_debug,
	[VM_EXITCODE_IPI]	= vmexit_ipi,
};

/* bhyverun.c (14.0): vm_loop: no RIP set-up, no active-set assert. */
static void
vm_loop(struct vcpu_info *vi)
{
	struct vm_exit vme;
	cpuset14_t cpuset;
	int error, rc, exitcode;

	while (1) {
		memset(&vme, 0, sizeof(vme));
		error = vm_run_14(vi->ctx, vi->vcpuid, vmrun_abi, &vme,
		    &cpuset);
		if (error != 0)
			break;

		exitcode = vme.exitcode;
		if (exitcode < 0 || exitcode >= VM_EXITCODE_MAX ||
		    vmexit_handlers[exitcode] == NULL) {
			warnx("vm_loop: unexpected exitcode 0x%x", exitcode);
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
 * bhyverun.c (14.0): fbsdrun_set_capabilities: 13.1's x2APIC state and
 * INVPCID (bhyve_run.c), then VM_CAP_IPI_EXIT.
 */
static void
fbsdrun_set_capabilities(struct vmctx *ctx, int cpu)
{
	int error;

	bhyve_set_capabilities(ctx, cpu, x2apic_mode);

	error = vm_set_capability(ctx, cpu, VM_CAP_IPI_EXIT, 1);
	assert(error == 0);
}

/* bhyverun.c (14.0): spinup_vcpu */
static void
spinup_vcpu(struct vcpu_info *vi, int bsp)
{
	int error;

	fbsdrun_set_capabilities(vi->ctx, vi->vcpuid);

	/* APs may start in power-on 16-bit mode. */
	if (!bsp) {
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

	if (vm_limit_rights_14(ctx, vmrun_abi) != 0)
		err(EX_OSERR, "vm_limit_rights");
}

int
main(int argc, char *argv[])
{
	struct bhyve_opts opts;
	struct vmctx *ctx;
	const char *abi;
	int max_vcpus, vcpuid;

	bhyve_parse_args(argc, argv, &opts);
	guest_ncpus = opts.guest_ncpus;
	x2apic_mode = opts.x2apic_mode;
	destroy_on_poweroff = opts.destroy_on_poweroff;
	abi = getenv("VMMLAB_VMRUN_ABI");
	if (abi != NULL && abi[0] != '\0') {
		if (strcmp(abi, "13") == 0)
			vmrun_abi = 13;
		else if (strcmp(abi, "14") == 0)
			vmrun_abi = 14;
		else
			errx(EX_USAGE, "VMMLAB_VMRUN_ABI must be 13 or 14, "
			    "not '%s'", abi);
	}

	ctx = bhyve_do_open(&opts, limit_rights);

	max_vcpus = num_vcpus_allowed(ctx);
	if (guest_ncpus > max_vcpus || guest_ncpus > LAB_MAXCPU) {
		fprintf(stderr, "%d vCPUs requested but only %d available\n",
		    guest_ncpus, max_vcpus);
		exit(4);
	}

	vcpu_info = calloc((size_t)guest_ncpus, sizeof(*vcpu_info));
	if (vcpu_info == NULL)
		err(4, "calloc");
	for (vcpuid = 0; vcpuid < guest_ncpus; vcpuid++) {
		vcpu_info[vcpuid].ctx = ctx;
		vcpu_info[vcpuid].vcpuid = vcpuid;
	}

	/* Memory, the boot ROM, unrestricted guest and vcpu_reset(BSP). */
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
