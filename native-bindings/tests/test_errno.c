/* test_errno: FreeBSD errno -> host errno (bridge_errno.c). */
#include <errno.h>

#include "fbsd_compat.h"
#include "bridge.h"
#include "check.h"

int
main(void)
{

	/* The numbers docs/internals.md section 1 lists. */
	CHECK_EQ(errno_from_freebsd(1), EPERM);
	CHECK_EQ(errno_from_freebsd(2), ENOENT);
	CHECK_EQ(errno_from_freebsd(14), EFAULT);
	CHECK_EQ(errno_from_freebsd(16), EBUSY);
	CHECK_EQ(errno_from_freebsd(17), EEXIST);
	CHECK_EQ(errno_from_freebsd(22), EINVAL);
	CHECK_EQ(errno_from_freebsd(25), ENOTTY);
	CHECK_EQ(errno_from_freebsd(34), ERANGE);
	CHECK_EQ(errno_from_freebsd(37), EALREADY);
	CHECK_EQ(errno_from_freebsd(93), ENOTCAPABLE);
	CHECK_EQ(errno_from_freebsd(94), ECAPMODE);
	CHECK_EQ(ENOTCAPABLE, 93);
	CHECK_EQ(ECAPMODE, 94);
	/* Numbers that differ between FreeBSD and Linux. */
	CHECK_EQ(errno_from_freebsd(11), EDEADLK);
	CHECK_EQ(errno_from_freebsd(35), EAGAIN);
	CHECK_EQ(errno_from_freebsd(36), EINPROGRESS);
	CHECK_EQ(errno_from_freebsd(60), ETIMEDOUT);
	CHECK_EQ(errno_from_freebsd(61), ECONNREFUSED);
	CHECK_EQ(errno_from_freebsd(62), ELOOP);
	CHECK_EQ(errno_from_freebsd(63), ENAMETOOLONG);
	CHECK_EQ(errno_from_freebsd(78), ENOSYS);
	CHECK_EQ(errno_from_freebsd(84), EOVERFLOW);
	CHECK_EQ(errno_from_freebsd(87), ENODATA);
	/* Out of range: EIO, never 0 (a failure must stay a failure). */
	CHECK_EQ(errno_from_freebsd(0), EIO);
	CHECK_EQ(errno_from_freebsd(-5), EIO);
	CHECK_EQ(errno_from_freebsd(98), EIO);
	CHECK_EQ(errno_from_freebsd(100000), EIO);
	for (int e = 1; e <= 97; e++)
		CHECK(errno_from_freebsd(e) > 0);
	return (check_done("test_errno"));
}
