/*
 * bridge_net.c: connect/bind by path in capability mode, and connectat.
 * Built without _GNU_SOURCE so that the prototypes take a plain struct
 * sockaddr pointer.  FreeBSD: connect(2)/bind(2) of a path-named AF_UNIX
 * address fail with ECAPMODE in capability mode (r333120 also forbids
 * connectat/bindat with AT_FDCWD there); connectat(dirfd, ...) looks the
 * path up relative to dirfd, which Linux lacks: the bridge implements it
 * through /proc/self/fd/DIRFD/<sun_path>.
 *
 * The host's syslog socket, _PATH_LOG (/dev/log), is the lab's
 * $VMMLAB_ROOT/dev/log, as /dev/vmm/NAME is the model's file there: a
 * test binds a sink there to see what the interposer logs.
 */
#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <stdlib.h>
#include <sys/un.h>
#include <syslog.h>

#include "fbsd_compat.h"
#include "bridge.h"

/* A path-named AF_UNIX address (not unnamed, not Linux's abstract one). */
static int
is_unix_path(const struct sockaddr *addr, socklen_t len)
{
	const struct sockaddr_un *sun;

	if (addr == NULL || len <= offsetof(struct sockaddr_un, sun_path) ||
	    addr->sa_family != AF_UNIX)
		return (0);
	sun = (const struct sockaddr_un *)(const void *)addr;
	return (sun->sun_path[0] != '\0');
}

/* _PATH_LOG as the lab's $VMMLAB_ROOT/dev/log, or 0 for any other address. */
static int
lab_syslog_address(const struct sockaddr *addr, socklen_t len,
    struct sockaddr_un *lab)
{
	const struct sockaddr_un *sun;
	const char *root;
	int n;

	sun = (const struct sockaddr_un *)(const void *)addr;
	if (len < offsetof(struct sockaddr_un, sun_path) + sizeof(_PATH_LOG) ||
	    strcmp(sun->sun_path, _PATH_LOG) != 0)
		return (0);
	root = getenv("VMMLAB_ROOT");
	if (root == NULL || root[0] == '\0')
		return (0);
	memset(lab, 0, sizeof(*lab));
	lab->sun_family = AF_UNIX;
	n = snprintf(lab->sun_path, sizeof(lab->sun_path), "%s/dev/log", root);
	return (n > 0 && (size_t)n < sizeof(lab->sun_path));
}

LAB_EXPORT int
connect(int s, const struct sockaddr *addr, socklen_t len)
{
	struct sockaddr_un lab;

	if (capmode_on() && is_unix_path(addr, len)) {
		errno = ECAPMODE;
		return (-1);
	}
	if (is_unix_path(addr, len) && lab_syslog_address(addr, len, &lab))
		return (bridge_next()->connect(s, (const struct sockaddr *)&lab,
		    sizeof(lab)));
	return (bridge_next()->connect(s, addr, len));
}

LAB_EXPORT int
bind(int s, const struct sockaddr *addr, socklen_t len)
{

	if (capmode_on() && is_unix_path(addr, len)) {
		errno = ECAPMODE;
		return (-1);
	}
	return (bridge_next()->bind(s, addr, len));
}

LAB_EXPORT int
connectat(int dirfd, int s, const struct sockaddr *addr, socklen_t len)
{
	struct sockaddr_un sun, via;
	size_t plen;
	int error, n;

	if (addr == NULL) {
		errno = EFAULT;
		return (-1);
	}
	if (dirfd == AT_FDCWD) {
		if (capmode_on()) {
			errno = ECAPMODE;
			return (-1);
		}
		return (bridge_next()->connect(s, addr, len));
	}
	if (!is_unix_path(addr, len))
		return (bridge_next()->connect(s, addr, len));
	if (len > sizeof(sun))
		len = sizeof(sun);
	memset(&sun, 0, sizeof(sun));
	memcpy(&sun, addr, len);
	plen = strnlen(sun.sun_path, sizeof(sun.sun_path));
	if (plen == sizeof(sun.sun_path)) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	if (capmode_on()) {
		error = capmode_check_path(dirfd, sun.sun_path);
		if (error != 0) {
			errno = error;
			return (-1);
		}
	}
	if (sun.sun_path[0] == '/')
		return (bridge_next()->connect(s, &sun, sizeof(sun)));
	if (fcntl(dirfd, F_GETFD) == -1) {
		errno = EBADF;
		return (-1);
	}
	memset(&via, 0, sizeof(via));
	via.sun_family = AF_UNIX;
	n = snprintf(via.sun_path, sizeof(via.sun_path), "/proc/self/fd/%d/%s",
	    dirfd, sun.sun_path);
	if (n < 0 || (size_t)n >= sizeof(via.sun_path)) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	return (bridge_next()->connect(s, &via, sizeof(via)));
}
