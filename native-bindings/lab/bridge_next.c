/*
 * bridge_next.c: the next definition of each interposed libc function
 * (dlsym(RTLD_NEXT)).  The bridge is preloaded after the product's
 * interposer, so the interposer's RTLD_NEXT lands here, and ours lands on
 * libc: the same chain as interposer -> libc on FreeBSD.
 */
#define	_GNU_SOURCE
#include <dlfcn.h>
#include <pthread.h>

#include "bridge.h"

static struct bridge_next next;
static pthread_once_t next_once = PTHREAD_ONCE_INIT;

static void *
sym(const char *name)
{

	return (dlsym(RTLD_NEXT, name));
}

static void
next_resolve(void)
{

	next.open = (int (*)(const char *, int, ...))sym("open");
	next.open64 = (int (*)(const char *, int, ...))sym("open64");
	next.openat = (int (*)(int, const char *, int, ...))sym("openat");
	next.openat64 = (int (*)(int, const char *, int, ...))sym("openat64");
	next.close = (int (*)(int))sym("close");
	next.ioctl = (int (*)(int, unsigned long, ...))sym("ioctl");
	next.mmap = (void *(*)(void *, size_t, int, int, int, off_t))sym("mmap");
	next.munmap = (int (*)(void *, size_t))sym("munmap");
	next.connect = (int (*)(int, const void *, unsigned int))sym("connect");
	next.bind = (int (*)(int, const void *, unsigned int))sym("bind");
	if (next.open64 == NULL)
		next.open64 = next.open;
	if (next.openat64 == NULL)
		next.openat64 = next.openat;
}

const struct bridge_next *
bridge_next(void)
{

	pthread_once(&next_once, next_resolve);
	return (&next);
}
