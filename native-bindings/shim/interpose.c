/*
 * interpose.c: the symbols libvmmcompat.so exports into legacy bhyve.
 *
 * ioctl() is the product's cost: for an fd that is not a vmm fd it is one
 * bounds check and one table load before the next ioctl(); for a vmm fd one
 * more table load (compat_actions[], indexed like bhyverun.c's
 * vmexit_handlers[]) decides whether the request is a compat event.  Nothing
 * on that path allocates, locks, logs or talks to the daemon.
 */
#define	_GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#ifdef __FreeBSD__
#include <sys/capsicum.h>
#else
#include "fbsd_compat.h"
#endif

#include "shim.h"

#define	VMM_DEV_PREFIX		"/dev/vmm/"
/* Everything else in the library is hidden (-fvisibility=hidden). */
#define	SHIM_EXPORT		__attribute__((visibility("default")))

static int resolve_then_ioctl(int, unsigned long, ...);

/* Until the constructor runs, the first call resolves (another library's
 * constructor may call ioctl before ours). */
ioctl_fn shim_next_ioctl = resolve_then_ioctl;

/* `vmm-compat doctor` reads this tag to compare protocol versions. */
#define	SHIM_STR(x)		#x
#define	SHIM_XSTR(x)		SHIM_STR(x)
SHIM_EXPORT const char vmm_compat_protocol[] =
    "vmm-compat-protocol=" SHIM_XSTR(VMC_PROTO_VERSION);

typedef int (*open_fn)(const char *, int, ...);
typedef int (*openat_fn)(int, const char *, int, ...);
typedef int (*close_fn)(int);
typedef int (*cap_ioctls_limit_fn)(int, const cap_ioctl_t *, size_t);
typedef int (*sysctlbyname_fn)(const char *, void *, size_t *, const void *,
    size_t);

static open_fn next_open;
static openat_fn next_openat;
static close_fn next_close;
static cap_ioctls_limit_fn next_cap_ioctls_limit;
static sysctlbyname_fn next_sysctlbyname;

/* fd -> session; written at open/close (before/after vCPU threads use it). */
static struct vm_session *_Atomic vmfd_table[VMC_FD_TABLE];
/*
 * A bhyve as new as its kernel: its fd never enters vmfd_table, so every
 * ioctl on it costs the table lookup and nothing else; this table is only
 * for close(), which ends its daemon link.
 */
static struct vm_session *_Atomic native_table[VMC_FD_TABLE];


static void
resolve_next(void)
{
	ioctl_fn next;

	next = (ioctl_fn)dlsym(RTLD_NEXT, "ioctl");
	if (next != NULL)
		shim_next_ioctl = next;
	next_open = (open_fn)dlsym(RTLD_NEXT, "open");
	next_openat = (openat_fn)dlsym(RTLD_NEXT, "openat");
	next_close = (close_fn)dlsym(RTLD_NEXT, "close");
	next_cap_ioctls_limit =
	    (cap_ioctls_limit_fn)dlsym(RTLD_NEXT, "cap_ioctls_limit");
	next_sysctlbyname = (sysctlbyname_fn)dlsym(RTLD_NEXT, "sysctlbyname");
}

/*
 * Another library's constructor may call in before ours ran: resolve lazily
 * then (a once-only cost, never on the steady-state path).
 */
static inline void
ensure_resolved(void)
{

	if (__builtin_expect(next_open == NULL, 0))
		resolve_next();
}

static int
resolve_then_ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	void *arg;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);
	resolve_next();
	if (shim_next_ioctl == resolve_then_ioctl) {
		errno = ENOSYS;
		return (-1);
	}
	return (shim_next_ioctl(fd, request, arg));
}

void shim_read_environment(void);

__attribute__((constructor)) static void
shim_init(void)
{

	resolve_next();
	shim_read_environment();
	/* Now, before bhyve's cap_enter: log.c. */
	shim_log_open();
}

/* ---- compat actions, indexed by IOCNUM (request & 0xff) ---------------- */

static int on_set_topology(struct vm_session *, int, unsigned long, void *);
static int on_vm_run(struct vm_session *, int, unsigned long, void *);
static int on_activate_cpu(struct vm_session *, int, unsigned long, void *);
static int on_get_cpus(struct vm_session *, int, unsigned long, void *);
static int on_suspend(struct vm_session *, int, unsigned long, void *);
static int on_reinit(struct vm_session *, int, unsigned long, void *);
static int on_set_capability(struct vm_session *, int, unsigned long, void *);
static int on_alloc_memseg(struct vm_session *, int, unsigned long, void *);
static int on_get_memseg(struct vm_session *, int, unsigned long, void *);
static int on_mmap_memseg(struct vm_session *, int, unsigned long, void *);
static int on_mmap_getnext(struct vm_session *, int, unsigned long, void *);
static int on_vm_run14(struct vm_session *, int, unsigned long, void *);

#define	IOCNUM(req)	((req) & 0xff)

/* Exit codes the interposer looks at after VM_RUN. */
#define	COMPAT_EXITS	((1u << VM_EXITCODE_SPINUP_AP) | \
			    (1u << VM_EXITCODE_SUSPENDED))

static int vm_run_slow(struct vm_session *, struct vm_run *, int);

/*
 * 13.x bhyve, and every bhyve whose release is not known.  The 144-byte
 * VM_RUN never reaches the table (ioctl() takes it first), so its slot holds
 * the 32-byte one: a bhyve of 14.0 or later without an ABI tag shows itself
 * there.
 */
static const struct compat_action compat_actions[VMC_ACTIONS] = {
	[IOCNUM(ABI14_VM_RUN)] = { ABI14_VM_RUN, on_vm_run14 },
	[IOCNUM(ABI13_VM_SUSPEND)] = { ABI13_VM_SUSPEND, on_suspend },
	[IOCNUM(ABI13_VM_REINIT)] = { ABI13_VM_REINIT, on_reinit },
	[IOCNUM(ABI13_VM_SET_TOPOLOGY)] = { ABI13_VM_SET_TOPOLOGY,
	    on_set_topology },
	[IOCNUM(ABI13_VM_ACTIVATE_CPU)] = { ABI13_VM_ACTIVATE_CPU,
	    on_activate_cpu },
	[IOCNUM(ABI13_VM_GET_CPUS)] = { ABI13_VM_GET_CPUS, on_get_cpus },
	[IOCNUM(ABI13_VM_SET_CAPABILITY)] = { ABI13_VM_SET_CAPABILITY,
	    on_set_capability },
	/* Memory segments: translated only on a 15.0 kernel (memseg.c). */
	[IOCNUM(ABI13_VM_ALLOC_MEMSEG)] = { ABI13_VM_ALLOC_MEMSEG,
	    on_alloc_memseg },
	[IOCNUM(ABI13_VM_GET_MEMSEG)] = { ABI13_VM_GET_MEMSEG, on_get_memseg },
	[IOCNUM(ABI13_VM_MMAP_MEMSEG)] = { ABI13_VM_MMAP_MEMSEG,
	    on_mmap_memseg },
	[IOCNUM(ABI13_VM_MMAP_GETNEXT)] = { ABI13_VM_MMAP_GETNEXT,
	    on_mmap_getnext },
};

/*
 * A 14.x bhyve on a 15.0 kernel: it starts its own APs (never a plan, never
 * eager activation) and speaks the 14.0 VM_RUN, 128-byte cpusets and the
 * 32-byte memory-segment requests with 14.x's segment ids.  What it needs:
 * the ids translated (in VM_MMAP_MEMSEG, out of VM_MMAP_GETNEXT, the 56-byte
 * requests without COMPAT_FREEBSD14), and a destroy ended the way 15.0's
 * bhyve ends it, with 4: 14.0's vmexit_suspend knows no VM_SUSPEND_DESTROY
 * ("invalid reason", exit 100; bhyverun.c of 14.0) and its vm_loop asserts
 * on VM_GET_CPUS, which ENXIO leaves unset.
 */
static const struct compat_action compat_actions_14_on_15[VMC_ACTIONS] = {
	[IOCNUM(ABI14_VM_RUN)] = { ABI14_VM_RUN, on_vm_run14 },
	[IOCNUM(ABI13_VM_GET_CPUS)] = { ABI13_VM_GET_CPUS, on_get_cpus },
	[IOCNUM(ABI13_VM_SET_CAPABILITY)] = { ABI13_VM_SET_CAPABILITY,
	    on_set_capability },
	[IOCNUM(ABI13_VM_ALLOC_MEMSEG)] = { ABI13_VM_ALLOC_MEMSEG,
	    on_alloc_memseg },
	[IOCNUM(ABI13_VM_GET_MEMSEG)] = { ABI13_VM_GET_MEMSEG, on_get_memseg },
	[IOCNUM(ABI13_VM_MMAP_MEMSEG)] = { ABI13_VM_MMAP_MEMSEG,
	    on_mmap_memseg },
	[IOCNUM(ABI13_VM_MMAP_GETNEXT)] = { ABI13_VM_MMAP_GETNEXT,
	    on_mmap_getnext },
};

/*
 * Defined with a fixed third argument: on amd64 a variadic caller passes it
 * in the same register (SysV ABI), and without va_start the compiler turns
 * the pass-through into a tail jump to the next ioctl().
 */
SHIM_EXPORT int
ioctl(int fd, unsigned long request, void *arg)
{
	const struct compat_action *action;
	struct vm_session *vs;

	if (__builtin_expect((unsigned)fd >= VMC_FD_TABLE, 0) ||
	    (vs = atomic_load_explicit(&vmfd_table[fd],
	    memory_order_acquire)) == NULL)
		return (shim_next_ioctl(fd, request, arg));
	/* The hottest vmm request skips the table: a direct tail call. */
	if (request == ABI13_VM_RUN)
		return (on_vm_run(vs, fd, request, arg));
	action = &vs->actions[IOCNUM(request)];
	if (action->request != request || action->handler == NULL)
		return (shim_next_ioctl(fd, request, arg));
	return (action->handler(vs, fd, request, arg));
}

/* ---- the compat events ----------------------------------------------- */

/*
 * bhyverun.c do_open: -c N gives sockets=N; the vCPU count is the product.
 * Kept as the kernel accepted it (vm_set_topology: at most vm->maxcpus):
 * what the interposer cannot cover is refused at plan time, never cut.
 */
static int
on_set_topology(struct vm_session *vs, int fd, unsigned long request,
    void *arg)
{
	const struct vm_cpu_topology *topo = arg;
	uint64_t n;
	int error;

	error = shim_next_ioctl(fd, request, arg);
	if (error == 0 && topo != NULL) {
		n = (uint64_t)topo->sockets * topo->cores * topo->threads;
		atomic_store(&vs->ncpus, n > INT32_MAX ? INT32_MAX : (int)n);
	}
	return (error);
}

/*
 * VM_RUN: the BSP's first run of a boot waits for the plan (compat sequence
 * step 3); a SPINUP_AP exit is corrected, handed over or swallowed
 * (steps 4, 5, 7) before bhyve sees it.  The common case (planned, native
 * ABI, an ordinary exit) is the first function; the rest is out of line.
 */
/*
 * 15.0's destroy (sys/dev/vmm/vmm_dev.c vmmdev_lookup_and_destroy) suspends
 * the VM with VM_SUSPEND_DESTROY before it takes the device away; 13.1's
 * vmexit_suspend does not know the reason ("invalid reason", exit 100).  A
 * 15.0 bhyve exits 4 (vmexit_suspend: VM_SUSPEND_DESTROY -> exit(4)), and so
 * does a 13.1 bhyve here, after telling the daemon.  13.1's own reasons stop
 * at TRIPLEFAULT (4), so 5 is never one of them.
 */
static __attribute__((noreturn)) void
exit_destroyed(struct vm_session *vs, int vcpu, int how, const char *request)
{
	static atomic_int exiting;

	/* Every vCPU thread sees the reason; exit(3) may run only once. */
	if (atomic_exchange(&exiting, 1) != 0)
		for (;;)
			pause();
	link_event(vs, VMC_EV_VM_DESTROYED, vcpu, how);
	if (how == VM15_SUSPEND_DESTROY)
		shim_error("VM %s was destroyed while running "
		    "(VM_SUSPEND_DESTROY); bhyve exits with status 4, as a "
		    "15.0 bhyve does", vs->name);
	else
		shim_error("VM %s was destroyed while running (%s: ENXIO, the "
		    "device is gone); bhyve exits with status 4, as a 15.0 "
		    "bhyve does", vs->name, request);
	exit(4);
}

/*
 * A vCPU thread that was not inside VM_RUN when the VM was destroyed finds
 * the device gone at its next VM_RUN: ENXIO (destroy_dev refuses new calls;
 * vmm_dev.c without a softc is ENXIO too).  15.0's bhyve ends there with 4
 * (fbsdrun_start_thread: "We get here if the VM was destroyed
 * asynchronously", exit(4)); 13.1's with 1, the power-off status, and which
 * of the two a destroy gives would depend on where each thread was.  An AP
 * thread that had just started asks VM_GET_CPUS first and asserts on the
 * answer (vm_loop), so a destroy there aborts bhyve.  On a kernel that
 * destroys with VM_SUSPEND_DESTROY (it answered the 15.0 VM_GET_MEMSEG at
 * open) the interposer ends both the way the destroy ends elsewhere: 4.
 */
static int
vm_destroyed_under_us(const struct vm_session *vs, int error)
{

	return (error != 0 && errno == ENXIO && vs->memseg15);
}

static __attribute__((noinline)) int
vm_run_slow(struct vm_session *vs, struct vm_run *vr, int error)
{

	for (;;) {
		if (vm_destroyed_under_us(vs, error))
			exit_destroyed(vs, vr->cpuid, -ENXIO, "VM_RUN");
		if (error == 0 && vr->vm_exit.exitcode == VM_EXITCODE_SPINUP_AP) {
			if (spinup_ap_exit(vs, vr->cpuid, &vr->vm_exit) ==
			    SPINUP_DELIVER)
				return (0);
			/* Swallowed: run the sender again. */
		} else {
			if (error == 0 &&
			    vr->vm_exit.exitcode == VM_EXITCODE_SUSPENDED &&
			    vr->vm_exit.u.suspended.how == VM15_SUSPEND_DESTROY)
				exit_destroyed(vs, vr->cpuid,
				    VM15_SUSPEND_DESTROY, "VM_RUN");
			if (error == 0 &&
			    vr->vm_exit.exitcode == VM_EXITCODE_SUSPENDED &&
			    atomic_exchange(&vs->suspend_reported, 1) == 0) {
				coalesce_flush(vs, &vs->spinup_duplicates,
				    VMC_EV_SPINUP_DUPLICATE);
				coalesce_flush(vs, &vs->spinup_absent,
				    VMC_EV_SPINUP_ABSENT);
				link_event(vs, VMC_EV_SUSPEND, vr->cpuid,
				    vr->vm_exit.u.suspended.how);
			}
			return (error);
		}
		error = kernel_vm_run(vs, vr);
	}
}

static __attribute__((noinline)) int
vm_run_first(struct vm_session *vs, struct vm_run *vr)
{

	/* The 144-byte VM_RUN is 13.x userland's (vmm_dev.h at e17eca32). */
	if (shim_config.bhyve_version == 0)
		bhyve_learned(vs, BHYVE_VERSION_13);
	if (vr->cpuid == 0 &&
	    (atomic_load(&vs->bsp_attention) & BSP_NEEDS_PLAN) != 0)
		plan_boot(vs);
	/* A SPINUP_AP an AP raised is delivered here, where 13.1 expects it. */
	if (vr->cpuid == 0 && take_pending_spinup(vs, &vr->vm_exit))
		return (0);
	return (vm_run_slow(vs, vr, kernel_vm_run(vs, vr)));
}

/*
 * VM_RUN, the one hot compat request: forward, then look at the error and
 * the exit code only.  The BSP before its plan, translations, errors,
 * SPINUP_AP and SUSPENDED exits are out of line.  Never inlined: ioctl()
 * reaches it by a tail jump, and inlined it would give ioctl() a stack frame
 * that every other request on a vmm fd then pays for (7 instructions, seen
 * once ioctl() became its only caller).
 */
static __attribute__((noinline)) int
on_vm_run(struct vm_session *vs, int fd, unsigned long request, void *arg)
{
	struct vm_run *vr = arg;
	unsigned exitcode;
	int error;

	/* Nothing to look at: the kernel answers EFAULT (vmm_dev.c copyin). */
	if (__builtin_expect(vr == NULL, 0))
		return (shim_next_ioctl(fd, request, arg));
	if (__builtin_expect(!vs->vmrun_native || (vr->cpuid == 0 &&
	    atomic_load_explicit(&vs->bsp_attention, memory_order_acquire)),
	    0))
		return (vm_run_first(vs, vr));
	error = shim_next_ioctl(fd, request, arg);
	exitcode = (unsigned)vr->vm_exit.exitcode;
	if (__builtin_expect(error != 0 || (exitcode < 32 &&
	    ((1u << exitcode) & COMPAT_EXITS) != 0), 0))
		return (vm_run_slow(vs, vr, error));
	return (error);
}

/*
 * The 32-byte VM_RUN of a bhyve of 14.0 or later (sys/amd64/include/vmm_dev.h
 * at e17eca32: cpuid, cpuset pointer and size, vm_exit pointer).  It starts
 * its own APs, so nothing here plans or hands over; on a 15.0 kernel a
 * destroy under it ends bhyve with 4 (exit_destroyed), as 15.0's bhyve ends.
 */
static int
on_vm_run14(struct vm_session *vs, int fd, unsigned long request, void *arg)
{
	struct vm_run_14 *vr = arg;
	int error, saved;

	error = shim_next_ioctl(fd, request, arg);
	if (__builtin_expect(shim_config.bhyve_version == 0 &&
	    !atomic_load_explicit(&vs->generation_reported,
	    memory_order_relaxed), 0)) {
		saved = errno;
		bhyve_learned(vs, BHYVE_VERSION_14);
		errno = saved;
	}
	if (vr == NULL || !vs->memseg15)
		return (error);
	if (vm_destroyed_under_us(vs, error))
		exit_destroyed(vs, vr->cpuid, -ENXIO, "VM_RUN");
	if (error == 0 && vr->vm_exit != NULL &&
	    vr->vm_exit->exitcode == VM_EXITCODE_SUSPENDED &&
	    vr->vm_exit->u.suspended.how == VM15_SUSPEND_DESTROY)
		exit_destroyed(vs, vr->cpuid, VM15_SUSPEND_DESTROY, "VM_RUN");
	return (error);
}

static int
on_activate_cpu(struct vm_session *vs, int fd, unsigned long request,
    void *arg)
{

	return (activate_cpu(vs, fd, request, arg));
}

static int
on_get_cpus(struct vm_session *vs, int fd, unsigned long request, void *arg)
{
	int error;

	error = get_cpus(vs, fd, request, arg);
	if (vm_destroyed_under_us(vs, error))
		exit_destroyed(vs, -1, -ENXIO, "VM_GET_CPUS");
	return (error);
}

/*
 * VM_CAP_IPI_EXIT does not exist in 13.1's vm_cap_type: a bhyve that enables
 * it speaks the new protocol (14.0 bhyverun.c fbsdrun_set_capabilities, before
 * any vCPU runs), activates its own APs, and is left alone.
 */
static int
on_set_capability(struct vm_session *vs, int fd, unsigned long request,
    void *arg)
{
	const struct vm_capability *cap = arg;
	int error;

	error = shim_next_ioctl(fd, request, arg);
	if (error == 0 && cap != NULL && cap->captype == VM_CAP_IPI_EXIT &&
	    cap->capval != 0 && atomic_exchange(&vs->new_protocol, 1) == 0)
		link_event(vs, VMC_EV_NEW_PROTOCOL, cap->cpuid, 0);
	return (error);
}

static int
on_alloc_memseg(struct vm_session *vs, int fd, unsigned long request,
    void *arg)
{

	return (memseg_alloc(vs, fd, request, arg));
}

static int
on_get_memseg(struct vm_session *vs, int fd, unsigned long request, void *arg)
{

	return (memseg_get(vs, fd, request, arg));
}

static int
on_mmap_memseg(struct vm_session *vs, int fd, unsigned long request, void *arg)
{

	return (memseg_mmap(vs, fd, request, arg));
}

static int
on_mmap_getnext(struct vm_session *vs, int fd, unsigned long request,
    void *arg)
{

	return (memseg_getnext(vs, fd, request, arg));
}

/* VM_SUSPEND (step 8): parked APs must reach VM_RUN now, not at next poll. */
static int
on_suspend(struct vm_session *vs, int fd, unsigned long request, void *arg)
{
	int error;

	error = shim_next_ioctl(fd, request, arg);
	parkers_wake(vs);
	return (error);
}

/*
 * VM_REINIT (step 9): on success the kernel cleared every active set
 * (vmm.c vm_reinit -> vm_init), so the plan starts over for the next boot.
 */
static int
on_reinit(struct vm_session *vs, int fd, unsigned long request, void *arg)
{
	int error;

	error = shim_next_ioctl(fd, request, arg);
	if (error != 0)
		return (error);
	pthread_mutex_lock(&vs->plan_lock);
	parkers_stop_all(vs);
	aset_clear(&vs->parked);
	aset_clear(&vs->claimed);
	aset_clear(&vs->running);
	atomic_store(&vs->suspend_reported, 0);
	atomic_fetch_add(&vs->boot, 1);
	aset_clear(&vs->pending_spinup);
	atomic_store(&vs->bsp_attention, BSP_NEEDS_PLAN);
	pthread_mutex_unlock(&vs->plan_lock);
	coalesce_flush(vs, &vs->spinup_duplicates, VMC_EV_SPINUP_DUPLICATE);
	coalesce_flush(vs, &vs->spinup_absent, VMC_EV_SPINUP_ABSENT);
	link_event(vs, VMC_EV_REINIT, -1, (int)atomic_load(&vs->boot));
	return (0);
}

/* ---- recognising vmm fds ------------------------------------------------ */

static const char *
vmm_name(const char *path)
{
	const char *name;

	if (path == NULL || strncmp(path, VMM_DEV_PREFIX,
	    sizeof(VMM_DEV_PREFIX) - 1) != 0)
		return (NULL);
	name = path + sizeof(VMM_DEV_PREFIX) - 1;
	if (*name == '\0' || strchr(name, '/') != NULL)
		return (NULL);
	return (name);
}

/*
 * Attaching connects to the daemon now, before bhyve's cap_enter (compat
 * sequence step 1).  A refusal fails the open, so bhyve stops before it has
 * touched the VM (vm_open -> exit 4).
 */
static int
attach_or_refuse(int fd, const char *name)
{
	int saved;

	if (session_attach(fd, name) == 0)
		return (fd);
	saved = errno;
	next_close(fd);
	refusal_note_open(name, saved);
	errno = saved;
	return (-1);
}

/* The mode argument exists only when the call creates a file. */
static int
creation_mode(int flags, va_list ap)
{

#ifdef O_TMPFILE
	if ((flags & O_TMPFILE) == O_TMPFILE)
		return (va_arg(ap, int));
#endif
	return ((flags & O_CREAT) != 0 ? va_arg(ap, int) : 0);
}

static int
attach_if_vmm(int fd, const char *path)
{
	const char *name;

	if (fd < 0 || (name = vmm_name(path)) == NULL)
		return (fd);
	return (attach_or_refuse(fd, name));
}

SHIM_EXPORT int
open(const char *path, int flags, ...)
{
	va_list ap;
	int mode;

	ensure_resolved();
	va_start(ap, flags);
	mode = creation_mode(flags, ap);
	va_end(ap);
	return (attach_if_vmm(next_open(path, flags, mode), path));
}

SHIM_EXPORT int
openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	int mode;

	ensure_resolved();
	va_start(ap, flags);
	mode = creation_mode(flags, ap);
	va_end(ap);
	return (attach_if_vmm(next_openat(dirfd, path, flags, mode), path));
}

#ifndef __FreeBSD__
/* glibc: large-file aliases, which the same callers may bind to. */
SHIM_EXPORT int open64(const char *, int, ...) __attribute__((alias("open")));
SHIM_EXPORT int openat64(int, const char *, int, ...) __attribute__((alias("openat")));
#endif

SHIM_EXPORT int
close(int fd)
{

	ensure_resolved();
	if ((unsigned)fd < VMC_FD_TABLE &&
	    (atomic_load_explicit(&vmfd_table[fd], memory_order_acquire) != NULL ||
	    atomic_load_explicit(&native_table[fd], memory_order_acquire) != NULL))
		session_detach(fd);
	return (next_close(fd));
}

/*
 * bhyverun.c do_open limits the vmm fd to libvmmapi's 13.1 ioctl list.  A
 * translation that needs another request number (the 14.0 VM_RUN) widens the
 * list by exactly that number; nothing else of the sandbox changes
 * (docs/design.md, "Security").
 */
SHIM_EXPORT int
cap_ioctls_limit(int fd, const cap_ioctl_t *cmds, size_t ncmds)
{
	unsigned long widened[VMC_CAP_IOCTLS_MAX];
	struct vm_session *vs;
	size_t n;

	ensure_resolved();
	if (next_cap_ioctls_limit == NULL) {
		errno = ENOSYS;
		return (-1);
	}
	if ((unsigned)fd >= VMC_FD_TABLE || cmds == NULL ||
	    (vs = atomic_load(&vmfd_table[fd])) == NULL)
		return (next_cap_ioctls_limit(fd, cmds, ncmds));
	n = widen_ioctl_list(vs, (const unsigned long *)cmds, ncmds, widened,
	    sizeof(widened) / sizeof(widened[0]));
	return (next_cap_ioctls_limit(fd, (const cap_ioctl_t *)widened, n));
}

/*
 * hw.vmm.create and hw.vmm.destroy, for refusal.c: a refused open must not
 * lead libvmmapi's vm_open to destroy the VM it was refused.
 */
SHIM_EXPORT int
sysctlbyname(const char *name, void *oldp, size_t *oldlenp, const void *newp,
    size_t newlen)
{
	int error;

	ensure_resolved();
	if (next_sysctlbyname == NULL) {
		errno = ENOENT;
		return (-1);
	}
	if (name != NULL && strcmp(name, "hw.vmm.destroy") == 0 &&
	    (error = refusal_blocks_destroy(newp, newlen)) != 0) {
		errno = error;
		return (-1);
	}
	error = next_sysctlbyname(name, oldp, oldlenp, newp, newlen);
	if (error == 0 && name != NULL && strcmp(name, "hw.vmm.create") == 0)
		refusal_note_create(newp, newlen);
	return (error);
}

/* session.c registers and unregisters through these. */
void
vmfd_publish(int fd, struct vm_session *vs, enum bhyve_handling how)
{

	if ((unsigned)fd >= VMC_FD_TABLE)
		return;
	memcpy(vs->actions, how == BHYVE_14_ON_15 ? compat_actions_14_on_15 :
	    compat_actions, sizeof(vs->actions));
	atomic_store_explicit(&vmfd_table[fd], vs, memory_order_release);
}

void
vmfd_publish_native(int fd, struct vm_session *vs)
{

	if ((unsigned)fd < VMC_FD_TABLE)
		atomic_store_explicit(&native_table[fd], vs,
		    memory_order_release);
}

struct vm_session *
vmfd_take(int fd)
{
	struct vm_session *vs;

	if ((unsigned)fd >= VMC_FD_TABLE)
		return (NULL);
	vs = atomic_exchange(&vmfd_table[fd], NULL);
	return (vs != NULL ? vs : atomic_exchange(&native_table[fd], NULL));
}
