/*
 * bhyverun13.c: control-flow model of FreeBSD 13.1 bhyve
 * (usr.sbin/bhyve/bhyverun.c, 13.x; legacy-13.1-side.md section 7;
 * kernel-main-side.md section 5.1): do_open, num_vcpus_allowed,
 * fbsdrun_set_capabilities, memory and boot ROM, vcpu_reset, caph_enter,
 * fbsdrun_addcpu(BSP), and one vm_loop thread per active vCPU with the
 * 13.1 exit handler table.  It models the control flow, the ioctl
 * sequence, the asserts and the exit statuses, not bhyve's devices.
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
#include "bhyverun13.h"

#define	VM_MAXCPU	ABI13_VM_MAXCPU		/* vmm.h (13.1): 16 */
#define	VM_EXITCODE_MAX	VM_EXITCODE_MAX13	/* 24: no IPI exit */
#define	IDT_GP		13

typedef int (*vmexit_handler_t)(struct vmctx *, struct vm_exit *, int *);

static const int BSP = 0;
int guest_ncpus;
static uint16_t cores, maxcpus, sockets, threads;
static int x2apic_mode;
static int destroy_on_poweroff;
static int strictmsr = 1;

/* bhyve's own set of running vCPU threads (not the kernel's). */
static cpuset13_t cpumask;

static struct vm_exit vmexit[VM_MAXCPU];

static struct mt_vmm_info {
	pthread_t	mt_thr;
	struct vmctx	*mt_ctx;
	int		mt_vcpu;
} mt_vmm_info[VM_MAXCPU];

static pthread_mutex_t resetcpu_mtx = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t resetcpu_cond = PTHREAD_COND_INITIALIZER;

static void vm_loop(struct vmctx *ctx, int vcpu, uint64_t startrip);

static void
cpumask_set(int vcpu)
{

	__atomic_fetch_or(&cpumask.bits[vcpu / 64], (uint64_t)1 << (vcpu % 64),
	    __ATOMIC_SEQ_CST);
}

static void
cpumask_clr(int vcpu)
{

	__atomic_fetch_and(&cpumask.bits[vcpu / 64],
	    ~((uint64_t)1 << (vcpu % 64)), __ATOMIC_SEQ_CST);
}

static int
cpumask_isset(int vcpu)
{

	return ((__atomic_load_n(&cpumask.bits[vcpu / 64], __ATOMIC_SEQ_CST) >>
	    (vcpu % 64)) & 1);
}

static int
cpumask_empty(void)
{
	unsigned int i;

	for (i = 0; i < 4; i++)
		if (__atomic_load_n(&cpumask.bits[i], __ATOMIC_SEQ_CST) != 0)
			return (0);
	return (1);
}

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

	cpumask_set(newcpu);

	vmexit[newcpu].rip = rip;
	vmexit[newcpu].inst_length = 0;

	mt_vmm_info[newcpu].mt_ctx = ctx;
	mt_vmm_info[newcpu].mt_vcpu = newcpu;

	error = pthread_create(&mt_vmm_info[newcpu].mt_thr, NULL,
	    fbsdrun_start_thread, &mt_vmm_info[newcpu]);
	assert(error == 0);
}

/* bhyverun.c: fbsdrun_deletecpu */
static int
fbsdrun_deletecpu(int vcpu)
{

	if (!cpumask_isset(vcpu)) {
		fprintf(stderr, "Attempting to delete unknown cpu %d\n", vcpu);
		exit(4);
	}
	cpumask_clr(vcpu);
	return (cpumask_empty());
}

static int
vmexit_inout(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu)
{

	return (bhyve_inout(ctx, *pvcpu, vme));
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
 * bhyverun.c: vmexit_suspend: every thread leaves cpumask; APs exit their
 * thread, the BSP waits until cpumask is empty and exits with the reason.
 */
static int
vmexit_suspend(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu)
{
	int how;

	how = vme->u.suspended.how;

	fbsdrun_deletecpu(*pvcpu);

	if (*pvcpu != BSP) {
		pthread_mutex_lock(&resetcpu_mtx);
		pthread_cond_signal(&resetcpu_cond);
		pthread_mutex_unlock(&resetcpu_mtx);
		pthread_exit(NULL);
	}

	pthread_mutex_lock(&resetcpu_mtx);
	while (!cpumask_empty())
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
	return (0);	/* NOTREACHED */
}

/* bhyverun.c: the 13.1 handler table, indexed by exit code. */
static vmexit_handler_t handler[VM_EXITCODE_MAX] = {
	[VM_EXITCODE_INOUT]	= vmexit_inout,
	[VM_EXITCODE_INOUT_STR]	= vmexit_inout,
	[VM_EXITCODE_VMX]	= vmexit_vmx,
	[VM_EXITCODE_SVM]	= vmexit_svm,
	[VM_EXITCODE_BOGUS]	= vmexit_bogus,
	[VM_EXITCODE_REQIDLE]	= vmexit_reqidle,
	[VM_EXITCODE_RDMSR]	= vmexit_rdmsr,
	[VM_EXITCODE_WRMSR]	= vmexit_wrmsr,
	[VM_EXITCODE_SPINUP_AP]	= vmexit_spinup_ap,
	[VM_EXITCODE_SUSPENDED]	= vmexit_suspend,
	[VM_EXITCODE_DEBUG]	= vmexit_debug,
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

		switch (rc) {
		case VMEXIT_CONTINUE:
			break;
		case VMEXIT_ABORT:
			abort();
		default:
			exit(4);
		}
	}
	fprintf(stderr, "vm_run error %d, errno %d\n", error, errno);
}

/* bhyverun.c: num_vcpus_allowed: 13.1 asks only for unrestricted guest. */
static int
num_vcpus_allowed(struct vmctx *ctx)
{
	int tmp, error;

	error = vm_get_capability(ctx, BSP, VM_CAP_UNRESTRICTED_GUEST, &tmp);
	if (error == 0)
		return (VM_MAXCPU);
	return (1);
}

/* bhyverun.c: fbsdrun_set_capabilities (no -H/-P in the lab). */
void
fbsdrun_set_capabilities(struct vmctx *ctx, int cpu)
{
	int error;

	if (x2apic_mode)
		error = vm_set_x2apic_state(ctx, cpu, X2APIC_ENABLED);
	else
		error = vm_set_x2apic_state(ctx, cpu, X2APIC_DISABLED);
	if (error) {
		fprintf(stderr, "Unable to set x2apic state (%d)\n", error);
		exit(4);
	}

	vm_set_capability(ctx, cpu, VM_CAP_ENABLE_INVPCID, 1);
}

/*
 * bhyverun.c: do_open: create (EEXIST: reuse, with a boot ROM reinit),
 * open, sandbox the fd, reinit, set the topology.
 */
static struct vmctx *
do_open(const struct bhyve_opts *opts)
{
	const cap_ioctl_t *cmds;
	cap_rights_t rights;
	struct vmctx *ctx;
	size_t ncmds;
	int error, reinit, romboot;

	reinit = romboot = 0;
	if (bhyve_lpc_bootrom(opts))
		romboot = 1;

	error = vm_create(opts->vmname);
	if (error) {
		if (errno == EEXIST) {
			if (romboot)
				reinit = 1;
			/* else: the VM was set up by the loader */
		} else {
			perror("vm_create");
			exit(4);
		}
	} else {
		if (!romboot) {
			fprintf(stderr, "virtual machine cannot be booted\n");
			exit(4);
		}
	}

	ctx = vm_open(opts->vmname);
	if (ctx == NULL) {
		perror("vm_open");
		exit(4);
	}

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

	if (reinit) {
		error = vm_reinit(ctx);
		if (error) {
			perror("vm_reinit");
			exit(4);
		}
	}
	error = vm_set_topology(ctx, sockets, cores, threads, maxcpus);
	if (error)
		errx(EX_OSERR, "vm_set_topology");
	return (ctx);
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
	sockets = opts.sockets;
	cores = opts.cores;
	threads = opts.threads;
	maxcpus = opts.maxcpus;
	x2apic_mode = opts.x2apic_mode;
	destroy_on_poweroff = opts.destroy_on_poweroff;

	ctx = do_open(&opts);

	max_vcpus = num_vcpus_allowed(ctx);
	if (guest_ncpus > max_vcpus) {
		fprintf(stderr, "%d vCPUs requested but only %d available\n",
		    guest_ncpus, max_vcpus);
		exit(4);
	}

	fbsdrun_set_capabilities(ctx, BSP);

	error = vm_setup_memory(ctx, opts.memsize, VM_MMAP_ALL);
	if (error) {
		fprintf(stderr, "Unable to setup memory (%d)\n", errno);
		exit(4);
	}

	/* Device initialisation: the lab's only device is the boot ROM. */
	bhyve_load_guest(ctx, &opts);

	if (bhyve_lpc_bootrom(&opts)) {
		if (vm_set_capability(ctx, BSP, VM_CAP_UNRESTRICTED_GUEST, 1)) {
			fprintf(stderr, "ROM boot failed: unrestricted guest "
			    "capability not available\n");
			exit(4);
		}
		error = vcpu_reset(ctx, BSP);
		assert(error == 0);
	}

	error = vm_get_register(ctx, BSP, VM_REG_GUEST_RIP, &rip);
	assert(error == 0);

	/* setproctitle("%s", vmname) has no lab equivalent. */
	bhyve_limit_stdio();
	if (caph_enter() == -1)
		errx(EX_OSERR, "cap_enter() failed");

	/* Add CPU 0. */
	fbsdrun_addcpu(ctx, BSP, BSP, rip);

	/* mevent_dispatch(): the lab has no event sources; wait forever. */
	for (;;)
		pause();
	exit(4);
}
