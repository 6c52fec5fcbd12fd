/*
 * bridge_vmm.c: the vmm device entry points.  open("/dev/vmm/NAME") asks
 * the model (OPEN) and opens the model's $VMMLAB_ROOT/dev/vmm/NAME for
 * real, so /proc/PID/fd shows who holds the VM; ioctl and mmap on such an
 * fd go to the model; every other fd goes to the next definition (libc)
 * untouched.  docs/internals.md section 2; docs/lab-bridge.md.
 */
#define	_GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "fbsd_compat.h"
#include "bridge.h"

#define	VMM_PREFIX	"/dev/vmm/"

enum open_kind { OPEN_PLAIN, OPEN_64, OPEN_AT, OPEN_AT64 };

static int ioctl_sign_warned;

static int
raw_openat(int dirfd, const char *path, int flags)
{

	return ((int)syscall(SYS_openat, dirfd, path, flags | O_CLOEXEC, 0));
}

static void
raw_close(int fd)
{

	(void)syscall(SYS_close, fd);
}

/* "/dev/vmm/NAME" -> NAME, anything else -> NULL. */
static const char *
vmm_name(const char *path)
{
	const char *name;

	if (strncmp(path, VMM_PREFIX, sizeof(VMM_PREFIX) - 1) != 0)
		return (NULL);
	name = path + sizeof(VMM_PREFIX) - 1;
	if (name[0] == '\0' || strchr(name, '/') != NULL)
		return (NULL);
	return (name);
}

/*
 * The other vmm device nodes: /dev/vmmctl (15.0) and a VM's device-memory
 * nodes /dev/vmm.io/NAME.SEG.  "dev/..." relative to the lab root, or NULL.
 */
static const char *
vmm_node(const char *path)
{
	static const char io[] = "/dev/vmm.io/";

	if (strcmp(path, "/dev/vmmctl") == 0)
		return (path + 1);
	if (strncmp(path, io, sizeof(io) - 1) == 0 &&
	    path[sizeof(io) - 1] != '\0' &&
	    strchr(path + sizeof(io) - 1, '/') == NULL)
		return (path + 1);
	return (NULL);
}

/* $VMMLAB_ROOT/rel, or rel itself when absolute. */
static int
root_path(char *buf, size_t cap, const char *rel)
{
	const char *root;
	int n;

	if (rel[0] == '/')
		n = snprintf(buf, cap, "%s", rel);
	else {
		root = getenv("VMMLAB_ROOT");
		if (root == NULL || root[0] == '\0') {
			bridge_complain("VMMLAB_ROOT is not set: cannot find "
			    "the model's device and memory files");
			return (-1);
		}
		n = snprintf(buf, cap, "%s/%s", root, rel);
	}
	return (n > 0 && (size_t)n < cap ? 0 : -1);
}

static void
model_close(uint32_t file)
{
	uint8_t req[FRAME_HDR_LEN + 4];
	int32_t ret;
	int saved;

	saved = errno;
	(void)conn_call(req, frame_close(req, file), NULL, 0, &ret, NULL, 0,
	    NULL);
	errno = saved;
}

/*
 * Opens a vmm node: asks the model (OPEN with a VM name, or with the node's
 * path and flags), then opens the model's file of the node for real.
 */
static int
vmm_open_node(const char *name, const char *node, int flags)
{
	uint8_t req[FRAME_HDR_LEN + 320];
	char rel[300], path[PATH_MAX];
	size_t n;
	int32_t ret;
	int fd, rflags, saved;

	rflags = flags & (O_ACCMODE | O_NONBLOCK);
	if (node != NULL)
		snprintf(rel, sizeof(rel), "%s", node);
	else
		snprintf(rel, sizeof(rel), "dev/vmm/%s", name);
	if (bridge_loopback()) {
		/* No model: the device file if the lab made one, else null. */
		fd = -1;
		if (root_path(path, sizeof(path), rel) == 0)
			fd = raw_openat(AT_FDCWD, path, rflags);
		if (fd < 0)
			fd = raw_openat(AT_FDCWD, "/dev/null", rflags);
		if (fd < 0)
			return (-1);
		if (fdtab_insert(fd, (uint32_t)fd) != 0) {
			raw_close(fd);
			errno = EMFILE;
			return (-1);
		}
		return (fd);
	}
	if (node != NULL)
		n = frame_open_path(req, sizeof(req), node - 1,
		    (uint32_t)(flags & O_ACCMODE));
	else
		n = frame_open(req, sizeof(req), name);
	if (n == 0) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	if (conn_call(req, n, NULL, 0, &ret, NULL, 0, NULL) != 0)
		return (-1);
	if (ret < 0) {
		errno = errno_from_freebsd(-ret);
		return (-1);
	}
	if (root_path(path, sizeof(path), rel) != 0) {
		model_close((uint32_t)ret);
		errno = ENXIO;
		return (-1);
	}
	fd = raw_openat(AT_FDCWD, path, rflags);
	if (fd < 0) {
		saved = errno;
		model_close((uint32_t)ret);
		errno = saved;
		return (-1);
	}
	if (fdtab_insert(fd, (uint32_t)ret) != 0) {
		raw_close(fd);
		model_close((uint32_t)ret);
		errno = EMFILE;
		return (-1);
	}
	return (fd);
}

static int
vmm_open(const char *name, int flags)
{

	return (vmm_open_node(name, NULL, flags));
}

static int
open_common(enum open_kind kind, int dirfd, const char *path, int flags,
    mode_t mode)
{
	const struct bridge_next *next;
	const char *name;
	int error;

	next = bridge_next();
	if (path != NULL) {
		if (capmode_on()) {
			error = capmode_check_path(
			    kind == OPEN_AT || kind == OPEN_AT64 ? dirfd :
			    AT_FDCWD, path);
			if (error != 0) {
				errno = error;
				return (-1);
			}
		}
		name = vmm_name(path);
		if (name != NULL)
			return (vmm_open(name, flags));
		name = vmm_node(path);
		if (name != NULL)
			return (vmm_open_node(NULL, name, flags));
	}
	switch (kind) {
	case OPEN_PLAIN:
		return (next->open(path, flags, mode));
	case OPEN_64:
		return (next->open64(path, flags, mode));
	case OPEN_AT:
		return (next->openat(dirfd, path, flags, mode));
	default:
		return (next->openat64(dirfd, path, flags, mode));
	}
}

static int
needs_mode(int flags)
{

	return ((flags & O_CREAT) != 0 || (flags & O_TMPFILE) == O_TMPFILE);
}

#define	OPEN_MODE(flags, last, mode) do {				\
	va_list ap_;							\
	(mode) = 0;							\
	if (needs_mode(flags)) {					\
		va_start(ap_, last);					\
		(mode) = (mode_t)va_arg(ap_, int);			\
		va_end(ap_);						\
	}								\
} while (0)

LAB_EXPORT int
open(const char *path, int flags, ...)
{
	mode_t mode;

	OPEN_MODE(flags, flags, mode);
	return (open_common(OPEN_PLAIN, AT_FDCWD, path, flags, mode));
}

LAB_EXPORT int
open64(const char *path, int flags, ...)
{
	mode_t mode;

	OPEN_MODE(flags, flags, mode);
	return (open_common(OPEN_64, AT_FDCWD, path, flags, mode));
}

LAB_EXPORT int
openat(int dirfd, const char *path, int flags, ...)
{
	mode_t mode;

	OPEN_MODE(flags, flags, mode);
	return (open_common(OPEN_AT, dirfd, path, flags, mode));
}

LAB_EXPORT int
openat64(int dirfd, const char *path, int flags, ...)
{
	mode_t mode;

	OPEN_MODE(flags, flags, mode);
	return (open_common(OPEN_AT64, dirfd, path, flags, mode));
}

LAB_EXPORT int
close(int fd)
{
	int file;

	fdtab_forget(fd);
	file = fdtab_remove(fd);
	if (file >= 0 && !bridge_loopback())
		model_close((uint32_t)file);
	return (bridge_next()->close(fd));
}

/*
 * An ioctl on a vmm fd, the way sys_generic.c: sys_ioctl prepares one: the
 * request is truncated to 32 bits, malformed encodings get ENOTTY, IOC_IN
 * data is copied in (EFAULT on a bad pointer), the handler runs (here: the
 * model), and on success IOC_OUT data is copied out of a kernel buffer that
 * held the copied-in data (IOC_INOUT) or zeroes (IOC_OUT).
 */
static int
vmm_ioctl(uint32_t file, unsigned long request, void *arg)
{
	uint8_t frame[FRAME_IOCTL_HEAD + BRIDGE_IOCPARM_MAX];
	uint8_t kbuf[BRIDGE_IOCPARM_MAX];
	unsigned long com;
	size_t size, inlen, n;
	int32_t ret;
	int intarg;

	com = request;
	if (com > 0xffffffffUL) {
		/* sys_generic.c: sys_ioctl warns and drops the high bits. */
		if (!__atomic_exchange_n(&ioctl_sign_warned, 1,
		    __ATOMIC_RELAXED))
			bridge_complain("ioctl sign-extension: request has bits "
			    "above 31 set; truncated to 32 bits");
		com &= 0xffffffffUL;
	}
	size = LAB_IOCPARM_LEN(com);
	if (size > BRIDGE_IOCPARM_MAX) {
		errno = EINVAL;
		return (-1);
	}
	if ((com & LAB_IOC_DIRMASK) == 0 ||
	    ((com & LAB_IOC_INOUT) != 0 && size == 0) ||
	    ((com & LAB_IOC_VOID) != 0 && size > 0 && size != sizeof(int))) {
		errno = ENOTTY;
		return (-1);
	}
	if (bridge_loopback()) {
		/* Benchmark baseline: one cheap real system call. */
		(void)getppid();
		if ((com & LAB_IOC_OUT) != 0 && arg != NULL)
			memset(arg, 0, size);
		return (0);
	}
	inlen = 0;
	if ((com & LAB_IOC_IN) != 0) {
		inlen = size;
		if (self_read(frame + FRAME_IOCTL_HEAD, (uintptr_t)arg,
		    size) != 0) {
			errno = EFAULT;
			return (-1);
		}
	} else if ((com & LAB_IOC_VOID) != 0 && size == sizeof(int)) {
		/* _IOWINT: the argument is the int value itself. */
		intarg = (int)(intptr_t)arg;
		memcpy(frame + FRAME_IOCTL_HEAD, &intarg, sizeof(intarg));
		inlen = sizeof(intarg);
	}
	n = frame_ioctl_head(frame, file, com, (uintptr_t)arg, inlen);
	if ((com & LAB_IOC_OUT) != 0) {
		if ((com & LAB_IOC_IN) != 0)
			memcpy(kbuf, frame + FRAME_IOCTL_HEAD, size);
		else
			memset(kbuf, 0, size);
	}
	if (conn_call(frame, n, NULL, 0, &ret, kbuf,
	    (com & LAB_IOC_OUT) != 0 ? size : 0, NULL) != 0)
		return (-1);
	if (ret < 0) {
		errno = errno_from_freebsd(-ret);
		return (-1);
	}
	if ((com & LAB_IOC_OUT) != 0 &&
	    self_write((uintptr_t)arg, kbuf, size) != 0) {
		errno = EFAULT;
		return (-1);
	}
	return (0);
}

LAB_EXPORT int
ioctl(int fd, unsigned long request, ...)
{
	va_list ap;
	void *arg;
	int file, ret;

	va_start(ap, request);
	arg = va_arg(ap, void *);
	va_end(ap);

	file = fdtab_lookup(fd);
	if (file < 0)
		return (bridge_next()->ioctl(fd, request, arg));
	ret = vmm_ioctl((uint32_t)file, request, arg);
	if (bridge_tracing())
		bridge_trace("ioctl", request, ret, errno);
	return (ret);
}

/*
 * mmap of a vmm fd: the model says which file and offset back the range
 * (MMAP), and the bridge maps that file with the caller's address, length,
 * protection and flags, as the device pager would map the guest's memory.
 */
static void *
vmm_mmap(uint32_t file, void *addr, size_t len, int prot, int flags,
    off_t off)
{
	uint8_t req[FRAME_HDR_LEN + 24], reply[8 + PATH_MAX];
	char rel[PATH_MAX], path[PATH_MAX];
	size_t paylen, plen;
	int32_t ret;
	void *p;
	int bfd, saved;

	if (bridge_loopback()) {
		errno = ENODEV;
		return (MAP_FAILED);
	}
	if (conn_call(req, frame_mmap(req, file, (uint32_t)prot,
	    (uint64_t)off, len), NULL, 0, &ret, reply, sizeof(reply),
	    &paylen) != 0)
		return (MAP_FAILED);
	if (ret < 0) {
		errno = errno_from_freebsd(-ret);
		return (MAP_FAILED);
	}
	if (paylen < 9 || paylen > sizeof(reply)) {
		bridge_complain("MMAP reply without a backing file");
		errno = EIO;
		return (MAP_FAILED);
	}
	plen = paylen - 8;
	memcpy(rel, reply + 8, plen);
	rel[plen] = '\0';
	if (root_path(path, sizeof(path), rel) != 0) {
		errno = ENXIO;
		return (MAP_FAILED);
	}
	bfd = raw_openat(AT_FDCWD, path,
	    (prot & PROT_WRITE) != 0 ? O_RDWR : O_RDONLY);
	if (bfd < 0)
		return (MAP_FAILED);
	p = bridge_next()->mmap(addr, len, prot, flags, bfd,
	    (off_t)get_u64(reply));
	saved = errno;
	raw_close(bfd);
	errno = saved;
	return (p);
}

LAB_EXPORT void *
mmap(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{
	int file;

	file = (flags & MAP_ANONYMOUS) != 0 ? -1 : fdtab_lookup(fd);
	if (file < 0)
		return (bridge_next()->mmap(addr, len, prot, flags, fd, off));
	return (vmm_mmap((uint32_t)file, addr, len, prot, flags, off));
}

LAB_EXPORT void *
mmap64(void *addr, size_t len, int prot, int flags, int fd, off_t off)
{

	return (mmap(addr, len, prot, flags, fd, off));
}

LAB_EXPORT int
munmap(void *addr, size_t len)
{

	return (bridge_next()->munmap(addr, len));
}
