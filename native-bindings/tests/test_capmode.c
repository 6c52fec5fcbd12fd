/*
 * test_capmode: capability mode as the bridge models it
 * (bridge_capmode.c, bridge_net.c, bridge_sysctl.c, bridge_vmm.c), with no
 * kernel model: path opens, connect/bind by path and non-vmm sysctls are
 * refused after cap_enter, connectat through a directory fd works, other
 * fds pass through, and vmm operations without a model fail with ENXIO.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "fbsd_compat.h"
#include "bridge.h"
#include "check.h"

static void
unix_addr(struct sockaddr_un *sun, const char *path)
{

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", path);
}

int
main(void)
{
	struct sockaddr_un sun;
	cap_rights_t rights;
	cap_ioctl_t many[LAB_CAP_IOCTLS_LIMIT_MAX + 1];
	char dir[] = "/tmp/labcap.XXXXXX", path[200], path2[200];
	unsigned int mode;
	uint64_t recorded[2];
	long nioctls;
	size_t len;
	int lfd, dfd, s, fd, pfd[2], avail, c;

	unsetenv("VMMLAB_KERNEL_SOCK");
	unsetenv("VMMLAB_BRIDGE_MODE");
	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/ctl.sock", dir);
	snprintf(path2, sizeof(path2), "%s/plain", dir);
	fd = open(path2, O_CREAT | O_WRONLY, 0600);
	CHECK(fd >= 0);
	close(fd);

	/* Before cap_enter: everything as usual. */
	CHECK_EQ(cap_getmode(&mode), 0);
	CHECK_EQ(mode, 0);
	CHECK_EQ(cap_getmode((unsigned int *)16), -1);
	CHECK_EQ(errno, EFAULT);
	fd = open("/dev/null", O_RDONLY);
	CHECK(fd >= 0);
	close(fd);
	lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	unix_addr(&sun, path);
	CHECK_EQ(bind(lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	CHECK_EQ(listen(lfd, 4), 0);
	dfd = open(dir, O_RDONLY | O_DIRECTORY);
	CHECK(dfd >= 0);
	CHECK_EQ(sysctlbyname("kern.ostype", NULL, &len, NULL, 0), -1);
	CHECK_EQ(errno, ENOENT);

	/* No model: vmm operations fail with ENXIO, never crash. */
	CHECK_EQ(open("/dev/vmm/nomodel", O_RDWR), -1);
	CHECK_EQ(errno, ENXIO);
	CHECK_EQ(sysctlbyname("hw.vmm.create", NULL, NULL, "x", 1), -1);
	CHECK_EQ(errno, ENXIO);
	/* Not a vmm device path: passed on to libc. */
	CHECK_EQ(open("/dev/vmm/", O_RDONLY), -1);
	CHECK_EQ(errno, ENOENT);

	/* Rights on other fds are recorded, not sent anywhere. */
	CHECK_EQ(pipe(pfd), 0);
	cap_rights_init(&rights, CAP_READ, CAP_EVENT);
	/* sys/capsicum.h: CAP_READ is word 0, CAP_EVENT word 1 (CAPRIGHT). */
	CHECK_EQ(rights.cr_rights[0], (1ULL << 57) | 0x1);
	CHECK_EQ(rights.cr_rights[1], (1ULL << 58) | 0x20);
	CHECK_EQ(cap_rights_limit(pfd[0], &rights), 0);
	CHECK_EQ(fdtab_recorded(pfd[0], recorded, &nioctls), 1);
	CHECK_EQ(recorded[0], CAP_READ);
	CHECK_EQ(recorded[1], CAP_EVENT);
	/* cap_rights_is_valid: a wrong version, index bit or unknown bit is EINVAL. */
	rights.cr_rights[0] |= 1ULL << 62;
	CHECK_EQ(cap_rights_limit(pfd[0], &rights), -1);
	CHECK_EQ(errno, EINVAL);
	rights.cr_rights[0] = CAP_READ;
	rights.cr_rights[1] = CAP_READ;	/* word 1 with word 0's index bit */
	CHECK_EQ(cap_rights_limit(pfd[0], &rights), -1);
	CHECK_EQ(errno, EINVAL);
	rights.cr_rights[1] = CAPRIGHT(1, 0x0000000000200000ULL);	/* unused */
	CHECK_EQ(cap_rights_limit(pfd[0], &rights), -1);
	CHECK_EQ(errno, EINVAL);
	cap_rights_init(&rights, CAP_READ, CAP_EVENT);
	CHECK_EQ(cap_ioctls_limit(pfd[0], many, 2), 0);
	CHECK_EQ(cap_ioctls_limit(pfd[0], many, LAB_CAP_IOCTLS_LIMIT_MAX + 1),
	    -1);
	CHECK_EQ(errno, EINVAL);
	CHECK_EQ(cap_ioctls_limit(pfd[0], (cap_ioctl_t *)16, 2), -1);
	CHECK_EQ(errno, EFAULT);
	CHECK_EQ(cap_rights_limit(9999, &rights), -1);
	CHECK_EQ(errno, EBADF);

	/* Enter capability mode. */
	CHECK_EQ(caph_enter(), 0);
	CHECK_EQ(cap_getmode(&mode), 0);
	CHECK_EQ(mode, 1);
	CHECK_EQ(cap_enter(), 0);	/* again: still on */

	CHECK_EQ(open("/dev/null", O_RDONLY), -1);
	CHECK_EQ(errno, ECAPMODE);
	CHECK_EQ(open("relative", O_RDONLY), -1);
	CHECK_EQ(errno, ECAPMODE);
	CHECK_EQ(openat(AT_FDCWD, "plain", O_RDONLY), -1);
	CHECK_EQ(errno, ECAPMODE);
	CHECK_EQ(open("/dev/vmm/anything", O_RDWR), -1);
	CHECK_EQ(errno, ECAPMODE);
	CHECK_EQ(openat(dfd, "/etc/passwd", O_RDONLY), -1);
	CHECK_EQ(errno, ENOTCAPABLE);
	CHECK_EQ(openat(dfd, "../plain", O_RDONLY), -1);
	CHECK_EQ(errno, ENOTCAPABLE);
	CHECK_EQ(openat(dfd, "a/../../x", O_RDONLY), -1);
	CHECK_EQ(errno, ENOTCAPABLE);
	fd = openat(dfd, "plain", O_RDONLY);
	CHECK(fd >= 0);
	close(fd);
	fd = openat(dfd, "..plain", O_RDONLY);	/* a name, not ".." */
	CHECK_EQ(fd, -1);
	CHECK_EQ(errno, ENOENT);

	s = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_EQ(connect(s, (struct sockaddr *)&sun, sizeof(sun)), -1);
	CHECK_EQ(errno, ECAPMODE);
	CHECK_EQ(bind(s, (struct sockaddr *)&sun, sizeof(sun)), -1);
	CHECK_EQ(errno, ECAPMODE);
	CHECK_EQ(connectat(AT_FDCWD, s, (struct sockaddr *)&sun, sizeof(sun)),
	    -1);
	CHECK_EQ(errno, ECAPMODE);
	/* connectat with an absolute path: not beneath the directory. */
	CHECK_EQ(connectat(dfd, s, (struct sockaddr *)&sun, sizeof(sun)), -1);
	CHECK_EQ(errno, ENOTCAPABLE);
	unix_addr(&sun, "ctl.sock");
	CHECK_EQ(connectat(dfd, s, (struct sockaddr *)&sun, sizeof(sun)), 0);
	c = accept(lfd, NULL, NULL);
	CHECK(c >= 0);
	CHECK_EQ(write(s, "hi", 2), 2);
	close(c);
	close(s);
	s = socket(AF_UNIX, SOCK_STREAM, 0);
	unix_addr(&sun, "missing.sock");
	CHECK_EQ(connectat(dfd, s, (struct sockaddr *)&sun, sizeof(sun)), -1);
	CHECK_EQ(errno, ENOENT);
	close(s);

	CHECK_EQ(sysctlbyname("kern.ostype", NULL, &len, NULL, 0), -1);
	CHECK_EQ(errno, ECAPMODE);

	/* Other fds keep working: ioctl passes through to libc. */
	CHECK_EQ(write(pfd[1], "abc", 3), 3);
	CHECK_EQ(ioctl(pfd[0], FIONREAD, &avail), 0);
	CHECK_EQ(avail, 3);
	CHECK_EQ(close(pfd[0]), 0);
	CHECK_EQ(fdtab_recorded(pfd[0], recorded, &nioctls), 0);
	close(pfd[1]);
	close(lfd);
	close(dfd);
	unlink(path);
	unlink(path2);
	rmdir(dir);	/* our real libc: not modelled as capability mode */
	return (check_done("test_capmode"));
}
