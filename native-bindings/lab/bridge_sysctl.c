/*
 * bridge_sysctl.c: sysctlbyname for the nodes the lab models (vmm_dev.c:
 * hw.vmm.create, hw.vmm.destroy; vmm.c: hw.vmm.maxcpu; kern_mib.c:
 * kern.osreldate and kern.version, kern_tc.c: kern.boottime, by which
 * vmm-compatd corroborates and caches its identification of the kernel).
 * They go to the model (SYSCTL); other names do not exist here (ENOENT),
 * and in capability mode fail with ECAPMODE.  Old-value semantics follow
 * sysctl(3): a NULL oldp asks for the size, a short buffer gets what fits
 * and ENOMEM.
 */
#define	_GNU_SOURCE
#include <errno.h>
#include <string.h>

#include "fbsd_compat.h"
#include "bridge.h"

#define	SYSCTL_VALUE_MAX	4096

static int
vmm_sysctl(const char *name)
{

	return (strcmp(name, "hw.vmm.create") == 0 ||
	    strcmp(name, "hw.vmm.destroy") == 0 ||
	    strcmp(name, "hw.vmm.maxcpu") == 0 ||
	    strcmp(name, "kern.osreldate") == 0 ||
	    strcmp(name, "kern.version") == 0 ||
	    strcmp(name, "kern.boottime") == 0);
}

LAB_EXPORT int
sysctlbyname(const char *name, void *oldp, size_t *oldlenp, const void *newp,
    size_t newlen)
{
	uint8_t head[FRAME_HDR_LEN + 4 + 64];
	uint8_t newval[SYSCTL_VALUE_MAX], oldval[SYSCTL_VALUE_MAX];
	size_t n, paylen, avail, copy;
	int32_t ret;

	if (name == NULL) {
		errno = EFAULT;
		return (-1);
	}
	if (!vmm_sysctl(name)) {
		errno = capmode_on() ? ECAPMODE : ENOENT;
		return (-1);
	}
	if (newp == NULL)
		newlen = 0;
	if (newlen > SYSCTL_VALUE_MAX) {
		errno = EINVAL;
		return (-1);
	}
	if (self_read(newval, (uintptr_t)newp, newlen) != 0) {
		errno = EFAULT;
		return (-1);
	}
	if (bridge_loopback()) {
		ret = 0;
		paylen = 0;
	} else {
		n = frame_sysctl_head(head, sizeof(head), name, newlen);
		if (conn_call(head, n, newval, newlen, &ret, oldval,
		    sizeof(oldval), &paylen) != 0)
			return (-1);
		if (ret < 0) {
			errno = errno_from_freebsd(-ret);
			return (-1);
		}
		if (paylen > sizeof(oldval))
			paylen = sizeof(oldval);
	}
	if (oldlenp == NULL)
		return (0);
	if (oldp == NULL) {
		if (self_write((uintptr_t)oldlenp, &paylen, sizeof(paylen))) {
			errno = EFAULT;
			return (-1);
		}
		return (0);
	}
	if (self_read(&avail, (uintptr_t)oldlenp, sizeof(avail)) != 0) {
		errno = EFAULT;
		return (-1);
	}
	copy = paylen < avail ? paylen : avail;
	if (self_write((uintptr_t)oldp, oldval, copy) != 0 ||
	    self_write((uintptr_t)oldlenp, &copy, sizeof(copy)) != 0) {
		errno = EFAULT;
		return (-1);
	}
	if (paylen > avail) {
		errno = ENOMEM;
		return (-1);
	}
	return (0);
}
