/*
 * floor_tailjump: the least an ioctl interposer can add, for the benchmark
 * only (bench/run.ts measures it beside libvmmcompat.so).  It forwards every
 * call to the next ioctl() with a tail jump: the caller's PLT jump lands
 * here, one load of the next function's address, one indirect jump.  Every
 * request libvmmcompat.so only passes through is measured against this.
 */
#define	_GNU_SOURCE
#include <dlfcn.h>

typedef int (*ioctl_fn)(int, unsigned long, void *);

static ioctl_fn next_ioctl;

__attribute__((constructor)) static void
floor_init(void)
{

	next_ioctl = (ioctl_fn)dlsym(RTLD_NEXT, "ioctl");
}

__attribute__((visibility("default"))) int
ioctl(int fd, unsigned long request, void *arg)
{

	return (next_ioctl(fd, request, arg));
}
