/*
 * bridge_capmode.c: capability mode and capability rights as the lab models
 * them (capsicum(4); docs/lab-bridge.md).  cap_enter is process-wide and
 * irrevocable.  Afterwards, per open(2)/openat(2): a lookup relative to
 * AT_FDCWD fails with ECAPMODE, an absolute path or a ".." component
 * relative to a directory fd with ENOTCAPABLE.  Rights limits on a vmm fd
 * go to the model, which enforces them (ENOTCAPABLE) and only narrows them.
 */
#define	_GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "fbsd_compat.h"
#include "bridge.h"

static int capability_mode;

int
capmode_on(void)
{

	return (__atomic_load_n(&capability_mode, __ATOMIC_ACQUIRE));
}

static int
has_dotdot(const char *path)
{
	const char *p;

	for (p = path; (p = strstr(p, "..")) != NULL; p += 2) {
		if ((p == path || p[-1] == '/') && (p[2] == '\0' || p[2] == '/'))
			return (1);
	}
	return (0);
}

/* 0 if a capability-mode process may look path up, else the errno. */
int
capmode_check_path(int dirfd, const char *path)
{

	if (dirfd == AT_FDCWD)
		return (ECAPMODE);
	if (path[0] == '/' || has_dotdot(path))
		return (ENOTCAPABLE);
	return (0);
}

LAB_EXPORT int
cap_enter(void)
{

	__atomic_store_n(&capability_mode, 1, __ATOMIC_RELEASE);
	return (0);
}

LAB_EXPORT int
cap_getmode(unsigned int *modep)
{
	unsigned int mode;

	mode = (unsigned int)capmode_on();
	if (self_write((uintptr_t)modep, &mode, sizeof(mode)) != 0) {
		errno = EFAULT;
		return (-1);
	}
	return (0);
}

static int
fd_valid(int fd)
{

	return (fcntl(fd, F_GETFD) != -1);
}

static int
model_reply(const uint8_t *req, size_t n)
{
	int32_t ret;

	if (conn_call(req, n, NULL, 0, &ret, NULL, 0, NULL) != 0)
		return (-1);
	if (ret < 0) {
		errno = errno_from_freebsd(-ret);
		return (-1);
	}
	return (0);
}

/*
 * sys_capability.c: sys_cap_rights_limit copies in a version 00 rights set
 * (two words) and refuses an invalid one (cap_rights_is_valid) with EINVAL
 * before it looks at the descriptor's current rights.
 */
LAB_EXPORT int
cap_rights_limit(int fd, const cap_rights_t *rights)
{
	uint8_t req[FRAME_HDR_LEN + 24];
	cap_rights_t r;
	int file;

	if (!fd_valid(fd)) {
		errno = EBADF;
		return (-1);
	}
	if (self_read(&r, (uintptr_t)rights, sizeof(r)) != 0) {
		errno = EFAULT;
		return (-1);
	}
	if (!lab_cap_rights_is_valid(&r)) {
		errno = EINVAL;
		return (-1);
	}
	file = fdtab_lookup(fd);
	if (file < 0 || bridge_loopback()) {
		fdtab_record_rights(fd, r.cr_rights);
		return (0);
	}
	return (model_reply(req, frame_cap_rights(req, (uint32_t)file,
	    r.cr_rights)));
}

LAB_EXPORT int
cap_ioctls_limit(int fd, const cap_ioctl_t *cmds, size_t ncmds)
{
	uint8_t req[FRAME_HDR_LEN + 8 + 8 * LAB_CAP_IOCTLS_LIMIT_MAX];
	cap_ioctl_t list[LAB_CAP_IOCTLS_LIMIT_MAX];
	int file;

	if (!fd_valid(fd)) {
		errno = EBADF;
		return (-1);
	}
	/* kern/sys_capability.c: at most 256 commands. */
	if (ncmds > LAB_CAP_IOCTLS_LIMIT_MAX) {
		errno = EINVAL;
		return (-1);
	}
	if (self_read(list, (uintptr_t)cmds, ncmds * sizeof(list[0])) != 0) {
		errno = EFAULT;
		return (-1);
	}
	file = fdtab_lookup(fd);
	if (file < 0 || bridge_loopback()) {
		fdtab_record_ioctls(fd, ncmds);
		return (0);
	}
	return (model_reply(req, frame_cap_ioctls(req, sizeof(req),
	    (uint32_t)file, list, ncmds)));
}
