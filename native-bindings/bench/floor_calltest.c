/*
 * floor_calltest: the least an interposer that inspects VM_RUN's exit can
 * add, for the benchmark only.  It must see the exit before the caller does,
 * so it cannot tail-jump: it calls the next ioctl() (a call frame and a
 * return), then tests the request, the error and the exit code, and acts
 * (out of line) only on a SPINUP_AP exit.  libvmmcompat.so's VM_RUN path is
 * measured against this.
 */
#define	_GNU_SOURCE
#include <dlfcn.h>

#include "vmm13.h"

typedef int (*ioctl_fn)(int, unsigned long, void *);

static ioctl_fn next_ioctl;
/* What the out-of-line action does here: count, so the test cannot be dropped. */
static volatile unsigned long spinup_exits;

__attribute__((constructor)) static void
floor_init(void)
{

	next_ioctl = (ioctl_fn)dlsym(RTLD_NEXT, "ioctl");
}

static __attribute__((noinline)) void
on_spinup_exit(void)
{

	spinup_exits++;
}

__attribute__((visibility("default"))) int
ioctl(int fd, unsigned long request, void *arg)
{
	int error;

	error = next_ioctl(fd, request, arg);
	if (__builtin_expect(request == ABI13_VM_RUN && error == 0 &&
	    ((struct vm_run *)arg)->vm_exit.exitcode == VM_EXITCODE_SPINUP_AP,
	    0))
		on_spinup_exit();
	return (error);
}
