/*
 * bhyverun13.c: control-flow model of FreeBSD 13.x bhyve, the old AP
 * protocol (usr.sbin/bhyve/bhyverun.c, 13.x; legacy-13.1-side.md section 7;
 * kernel-main-side.md section 5.1).  With bhyverun131.c it is 13.1's
 * (bhyve13), with bhyverun135.c 13.2-13.5's (bhyve135): they differ in
 * num_vcpus_allowed and in how the per-vCPU state is sized.  The flow: do_open, num_vcpus_allowed,
 * fbsdrun_set_capabilities, memory and boot ROM, vcpu_reset, caph_enter,
 * fbsdrun_addcpu(BSP), and one vm_loop thread per active vCPU with the
 * 13.1 exit handler table.  It models the control flow, the ioctl
 * sequence, the asserts and the exit statuses, not bhyve's devices.  The
 * steps that 14.0 took over unchanged are in bhyve_run.c (do_open, the
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
#include "bhyve_exits13.h"
#include "bhyverun13.h"

#define	VM_EXITCODE_MAX	VM_EXITCODE_MAX13	/* 24: no IPI exit */
#define	IDT_GP		13

typedef int (*vmexit_handler_t)(struct vmctx *, struct vm_exit *, int *);

int guest_ncpus;
static int x2apic_mode;
static int destroy_on_poweroff;
static int vmexit_on_hlt, vmexit_on_pause;
static int strictmsr = 1;

/* bhyve's own set of running vCPU threads (not the kernel's): 256 bits. */
static cpuset13_t cpumask_bits;
static struct bhyve_cpumask cpumask = BHYVE_CPUMASK(cpumask_bits);

static void vm_loop(struct vmctx *ctx, int vcpu, uint64_t startrip);

/* bhyverun.c: fbsdrun_start_thread */
static void *
fbsdrun_start_thread(void *param)
{
	struct mt_vmm_info *mtp;
	char tname[16];
	int vcpu;

	mtp = param;
	vcpu = mtp->mt_vcpu;
	snprintf(tname, sizeof(tname), "vcpu %d", vcpu);
	pthread_setname_np(mtp->mt_thr, tname);

	vm_loop(mtp->mt_ctx, vcpu, vmexit[vcpu].rip);

	/* vm_loop returns only on a VM_RUN error. */
	exit(1);
	return (NULL);
}

/*
 * bhyverun.c: fbsdrun_addcpu: activation happens in the caller's thread
 * before the new thread exists; any error is fatal (EX_OSERR).
 */
void
fbsdrun_addcpu(struct vmctx *ctx, int fromcpu, int newcpu, uint64_t rip)
{
	int error;

	assert(fromcpu == BSP);

	error = vm_activate_cpu(ctx, newcpu);
	if (error != 0)
		err(EX_OSERR, "could not activate CPU %d", newcpu);

	bhyve_cpumask_set(&cpumask, newcpu);

	vmexit[newcpu].rip = rip;
	vmexit[newcpu].inst_length = 0;

	mt_vmm_info[newcpu].mt_ctx = ctx;
	mt_vmm_info[newcpu].mt_vcpu = newcpu;

	error = pthread_create(&mt_vmm_info[newcpu].mt_thr, NULL,
	    fbsdrun_start_thread, &mt_vmm_info[newcpu]);
	assert(error == 0);
}

static int
vmexit_inout(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu)
{

	return (bhyve_vmexit_inout(ctx, *pvcpu, vme));
}

/* bhyverun.c: vm_inject_gp via vm_inject_fault (restart the instruction). */
static void
inject_gp(struct vmctx *ctx, int vcpu)
{
	int error;

	error = vm_inject_exception(ctx, vcpu, IDT_GP, 1, 0, 1);
	assert(error == 0);
}

/* bhyverun.c: vmexit_rdmsr: no lab MSR in userland; strictmsr -> #GP. */
static int
vmexit_rdmsr(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu)
{
	int error;

	fprintf(stderr, "rdmsr to register %#x on vcpu %d\n",
	    vme->u.msr.code, *pvcpu);
	if (strictmsr) {
		inject_gp(ctx, *pvcpu);
		return (VMEXIT_CONTINUE);
	}
	error = vm_set_register(ctx, *pvcpu, VM_REG_GUEST_RAX, 0);
	assert(error == 0);
	error = vm_set_register(ctx, *pvcpu, VM_REG_GUEST_RDX, 0);
	assert(error == 0);
	return (VMEXIT_CONTINUE);
}

static int
vmexit_wrmsr(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu)
{

	fprintf(stderr, "wrmsr to register %#x(%#lx) on vcpu %d\n",
	    vme->u.msr.code, (unsigned long)vme->u.msr.wval, *pvcpu);
	if (strictmsr)
		inject_gp(ctx, *pvcpu);
	return (VMEXIT_CONTINUE);
}

static int
vmexit_vmx(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu)
{

	(void)ctx;
	fprintf(stderr, "vm exit[%d]\n", *pvcpu);
	fprintf(stderr, "\treason\t\tVMX\n");
	fprintf(stderr, "\trip\t\t0x%016lx\n", (unsigned long)vme->rip);
	fprintf(stderr, "\tinst_length\t%d\n", vme->inst_length);
	fprintf(stderr, "\tstatus\t\t%d\n", vme->u.vmx.status);
	fprintf(stderr, "\texit_reason\t%u\n", vme->u.vmx.exit_reason);
	return (VMEXIT_ABORT);
}

static int
vmexit_svm(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu)
{

	(void)ctx;
	fprintf(stderr, "vm exit[%d]\n", *pvcpu);
	fprintf(stderr, "\treason\t\tSVM\n");
	fprintf(stderr, "\trip\t\t0x%016lx\n", (unsigned long)vme->rip);
	fprintf(stderr, "\texitcode\t%#lx\n", (unsigned long)vme->u.svm.exitcode);
	return (VMEXIT_ABORT);
}

/* bhyverun.c: vmexit_bogus / vmexit_reqidle: nothing to do, re-enter. */
static int
vmexit_bogus(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu)
{

	(void)ctx;
	(void)pvcpu;
	assert(vme->inst_length == 0);
	return (VMEXIT_CONTINUE);
}

static int
vmexit_reqidle(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu)
{

	(void)ctx;
	(void)pvcpu;
	assert(vme->inst_length == 0);
	return (VMEXIT_CONTINUE);
}

/* bhyverun.c: vmexit_debug: gdb_cpu_suspend, a no-op without -G. */
static int
vmexit_debug(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu)
{

	(void)ctx;
	(void)vme;
	(void)pvcpu;
	return (VMEXIT_CONTINUE);
}

static int
vmexit_spinup_ap(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu)
{

	(void)spinup_ap(ctx, *pvcpu, vme->u.spinup_ap.vcpu,
	    vme->u.spinup_ap.rip);
	return (VMEXIT_CONTINUE);
}

/*
 * bhyverun.c: vmexit_suspend: every thread leaves cpumask
 * (fbsdrun_deletecpu); APs exit their thread, the BSP waits until cpumask
 * is empty and exits with the reason (bhyve_cpumask.c).
 */
static int
vmexit_suspend(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu)
{

	bhyve_vmexit_suspend(ctx, &cpumask, *pvcpu, vme->u.suspended.how,
	    destroy_on_poweroff);
}

/*
 * bhyverun.c: the 13.x handler table, indexed by exit code (the same rows
 * in 13.1 and at 0040b6857e93); HLT and PAUSE get theirs only with -H/-P
 * (fbsdrun_set_capabilities on the BSP).  The handlers the lab's guests
 * never reach are in bhyve_exits13.c.
 */
static vmexit_handler_t handler[VM_EXITCODE_MAX] = {
	[VM_EXITCODE_INOUT]	= vmexit_inout,
	[VM_EXITCODE_INOUT_STR]	= vmexit_inout,
	[VM_EXITCODE_VMX]	= vmexit_vmx,
	[VM_EXITCODE_SVM]	= vmexit_svm,
	[VM_EXITCODE_BOGUS]	= vmexit_bogus,
	[VM_EXITCODE_REQIDLE]	= vmexit_reqidle,
	[VM_EXITCODE_RDMSR]	= vmexit_rdmsr,
	[VM_EXITCODE_WRMSR]	= vmexit_wrmsr,
	[VM_EXITCODE_MTRAP]	= vmexit_mtrap,
	[VM_EXITCODE_INST_EMUL]	= vmexit_inst_emul,
	[VM_EXITCODE_SPINUP_AP]	= vmexit_spinup_ap,
	[VM_EXITCODE_SUSPENDED]	= vmexit_suspend,
	[VM_EXITCODE_TASK_SWITCH] = vmexit_task_switch,
	[VM_EXITCODE_DEBUG]	= vmexit_debug,
	[VM_EXITCODE_BPT]	= vmexit_breakpoint,
};

/*
 * bhyverun.c: vm_loop: the VM_GET_CPUS result is not checked, only the
 * assert that this vCPU is active; then RIP, then VM_RUN until an error.
 */
static void
vm_loop(struct vmctx *ctx, int vcpu, uint64_t startrip)
{
	cpuset13_t active_cpus;
	int error, rc, exitcode;

	memset(&active_cpus, 0, sizeof(active_cpus));
	error = vm_active_cpus(ctx, &active_cpus);
	assert(LAB_CPU_ISSET(vcpu, &active_cpus));

	error = vm_set_register(ctx, vcpu, VM_REG_GUEST_RIP, startrip);
	assert(error == 0);

	while (1) {
		error = vm_run(ctx, vcpu, &vmexit[vcpu]);
		if (error != 0)
			break;

		exitcode = vmexit[vcpu].exitcode;
		if (exitcode < 0 || exitcode >= VM_EXITCODE_MAX ||
		    handler[exitcode] == NULL) {
			fprintf(stderr, "vm_loop: unexpected exitcode 0x%x\n",
			    exitcode);
			exit(4);
		}

		rc = (*handler[exitcode])(ctx, &vmexit[vcpu], &vcpu);
		bhyve_vmexit_result(rc);
	}
	fprintf(stderr, "vm_run error %d, errno %d\n", error, errno);
}

/*
 * bhyverun.c: fbsdrun_set_capabilities: -H and -P ask for HLT and PAUSE
 * exits (a failing VM_GET_CAPABILITY exits 4; the BSP's call installs the
 * handler), then the x2APIC state and INVPCID (bhyve_run.c).
 */
void
fbsdrun_set_capabilities(struct vmctx *ctx, int cpu)
{
	int err, tmp;

	if (vmexit_on_hlt) {
		err = vm_get_capability(ctx, cpu, VM_CAP_HALT_EXIT, &tmp);
		if (err < 0) {
			fprintf(stderr, "VM exit on HLT not supported\n");
			exit(4);
		}
		vm_set_capability(ctx, cpu, VM_CAP_HALT_EXIT, 1);
		if (cpu == BSP)
			handler[VM_EXITCODE_HLT] = vmexit_hlt;
	}
	if (vmexit_on_pause) {
		err = vm_get_capability(ctx, cpu, VM_CAP_PAUSE_EXIT, &tmp);
		if (err < 0) {
			fprintf(stderr, "SMP mux requested, no pause support\n");
			exit(4);
		}
		vm_set_capability(ctx, cpu, VM_CAP_PAUSE_EXIT, 1);
		if (cpu == BSP)
			handler[VM_EXITCODE_PAUSE] = vmexit_pause;
	}
	bhyve_set_capabilities(ctx, cpu, x2apic_mode);
}

/*
 * bhyverun.c: do_open's sandboxing of the VM's fd (bhyve_do_open does the
 * rest): CAP_IOCTL and CAP_MMAP_RW, and libvmmapi's ioctl list as it is.
 */
static void
limit_rights(struct vmctx *ctx)
{
	const cap_ioctl_t *cmds;
	cap_rights_t rights;
	size_t ncmds;

	cap_rights_init(&rights, CAP_IOCTL, CAP_MMAP_RW);
	if (caph_rights_limit(vm_get_device_fd(ctx), &rights) == -1)
		errx(EX_OSERR, "Unable to apply rights for sandbox");
	vm_get_ioctls(&ncmds);
	cmds = vm_get_ioctls(NULL);
	if (cmds == NULL)
		errx(EX_OSERR, "out of memory");
	if (caph_ioctls_limit(vm_get_device_fd(ctx), cmds, ncmds) == -1)
		errx(EX_OSERR, "Unable to apply rights for sandbox");
	free((cap_ioctl_t *)cmds);
}

int
main(int argc, char *argv[])
{
	struct bhyve_opts opts;
	struct vmctx *ctx;
	uint64_t rip;
	int error, max_vcpus;

	bhyve_parse_args(argc, argv, &opts);
	guest_ncpus = opts.guest_ncpus;
	x2apic_mode = opts.x2apic_mode;
	destroy_on_poweroff = opts.destroy_on_poweroff;
	vmexit_on_hlt = opts.vmexit_on_hlt;
	vmexit_on_pause = opts.vmexit_on_pause;

	ctx = bhyve_do_open(&opts, limit_rights);

	max_vcpus = num_vcpus_allowed(ctx);
	if (guest_ncpus > max_vcpus) {
		fprintf(stderr, "%d vCPUs requested but only %d available\n",
		    guest_ncpus, max_vcpus);
		exit(4);
	}

	fbsdrun_set_capabilities(ctx, BSP);

	/*
	 * Memory, device initialisation (the lab's only device is the boot
	 * ROM), then for a ROM boot unrestricted guest and vcpu_reset(BSP).
	 */
	bhyve_setup_guest(ctx, &opts);

	error = vm_get_register(ctx, BSP, VM_REG_GUEST_RIP, &rip);
	assert(error == 0);

	/* setproctitle("%s", vmname) has no lab equivalent. */
	bhyve_limit_stdio();
	if (caph_enter() == -1)
		errx(EX_OSERR, "cap_enter() failed");

	/* 13.2+: "Allocate per-VCPU resources" (13.1's are static). */
	alloc_vcpu_state(guest_ncpus);

	/* Add CPU 0. */
	fbsdrun_addcpu(ctx, BSP, BSP, rip);

	/* mevent_dispatch(): the lab has no event sources; wait forever. */
	for (;;)
		pause();
	exit(4);
}
