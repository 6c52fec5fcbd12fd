/*
 * fbsd_compat.h: the small part of the FreeBSD userland interface that the
 * lab's C code uses and Linux lacks, so code written for FreeBSD compiles
 * here.  The functions are provided by libvmmlab_bridge.so (the lab's system
 * call layer, docs/lab-bridge.md).
 */
#ifndef _LAB_FBSD_COMPAT_H_
#define _LAB_FBSD_COMPAT_H_

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

/*
 * sys/errno.h (FreeBSD): capability errors.  Linux has no such numbers; the
 * lab uses FreeBSD's values (docs/internals.md section 1).  Note that on
 * Linux 93 and 94 are also EPROTONOSUPPORT and ESOCKTNOSUPPORT: compare
 * errno with these names, never print it with strerror() alone.
 */
#ifndef ENOTCAPABLE
#define	ENOTCAPABLE	93
#endif
#ifndef ECAPMODE
#define	ECAPMODE	94
#endif

/* sys/ioccom.h */
#define	LAB_IOCPARM_SHIFT	13
#define	LAB_IOCPARM_MASK	((1 << LAB_IOCPARM_SHIFT) - 1)
#define	LAB_IOCPARM_LEN(x)	(((x) >> 16) & LAB_IOCPARM_MASK)
#define	LAB_IOCPARM_MAX		(1 << LAB_IOCPARM_SHIFT)
#define	LAB_IOC_VOID		0x20000000UL
#define	LAB_IOC_OUT		0x40000000UL
#define	LAB_IOC_IN		0x80000000UL
#define	LAB_IOC_INOUT		(LAB_IOC_IN | LAB_IOC_OUT)
#define	LAB_IOC_DIRMASK		(LAB_IOC_VOID | LAB_IOC_OUT | LAB_IOC_IN)

/* sys/sysexits.h values bhyve uses (glibc has <sysexits.h> too). */
#ifndef EX_USAGE
#define	EX_USAGE	64
#endif
#ifndef EX_OSERR
#define	EX_OSERR	71
#endif

/*
 * sys/capsicum.h, reduced: a rights set is a plain mask.  Bit 0 and bit 1
 * are the two rights bhyve applies to the vmm fd; they are also the bits the
 * bridge sends in CAP_RIGHTS (docs/internals.md section 2).
 */
typedef unsigned long	cap_ioctl_t;

typedef struct {
	uint64_t	cr_rights;
} cap_rights_t;

#define	CAP_IOCTL		((uint64_t)1 << 0)
#define	CAP_MMAP_RW		((uint64_t)1 << 1)
#define	CAP_READ		((uint64_t)1 << 2)
#define	CAP_WRITE		((uint64_t)1 << 3)
#define	CAP_FSTAT		((uint64_t)1 << 4)
#define	CAP_EVENT		((uint64_t)1 << 5)
#define	CAP_CONNECTAT		((uint64_t)1 << 6)
#define	CAP_LOOKUP		((uint64_t)1 << 7)

/* sys/capsicum.h: CAP_IOCTLS_ALL; kern/sys_capability.c: at most 256 ioctls. */
#define	CAP_IOCTLS_ALL		SSIZE_MAX
#define	LAB_CAP_IOCTLS_LIMIT_MAX	256

static inline cap_rights_t *
lab_cap_rights_init(cap_rights_t *rights, ...)
{
	va_list ap;
	uint64_t right;

	rights->cr_rights = 0;
	va_start(ap, rights);
	while ((right = va_arg(ap, uint64_t)) != 0)
		rights->cr_rights |= right;
	va_end(ap);
	return (rights);
}

/* As FreeBSD's macro: a variadic list of rights, terminated for the callee. */
#define	cap_rights_init(rights, ...)	\
	lab_cap_rights_init((rights), __VA_ARGS__, (uint64_t)0)

#ifdef __cplusplus
extern "C" {
#endif

int	cap_enter(void);
int	cap_getmode(unsigned int *modep);
int	cap_rights_limit(int fd, const cap_rights_t *rights);
int	cap_ioctls_limit(int fd, const cap_ioctl_t *cmds, size_t ncmds);
int	connectat(int fd, int s, const struct sockaddr *name,
	    socklen_t namelen);
int	sysctlbyname(const char *name, void *oldp, size_t *oldlenp,
	    const void *newp, size_t newlen);

#ifdef __cplusplus
}
#endif

/*
 * Programs and libraries that reach these through their dynamic symbol
 * table (libvmmapi_lab.so, the bhyve models) define LAB_FBSD_WEAK before
 * including this file: the definitions come from the preloaded bridge, and
 * lab_fbsd_present() tells whether it is there.
 */
#ifdef LAB_FBSD_WEAK
#pragma weak cap_enter
#pragma weak cap_getmode
#pragma weak cap_rights_limit
#pragma weak cap_ioctls_limit
#pragma weak connectat
#pragma weak sysctlbyname

static inline int
lab_fbsd_present(void)
{

	return (cap_enter != NULL && sysctlbyname != NULL &&
	    cap_rights_limit != NULL && cap_ioctls_limit != NULL);
}
#endif

/*
 * capsicum_helpers.h (FreeBSD 12+): the caph_* wrappers are static inline
 * and treat ENOSYS (a kernel without capability mode) as success.
 */
static inline int
caph_enter(void)
{

	if (cap_enter() < 0 && errno != ENOSYS)
		return (-1);
	return (0);
}

static inline int
caph_rights_limit(int fd, const cap_rights_t *rights)
{

	if (cap_rights_limit(fd, rights) < 0 && errno != ENOSYS)
		return (-1);
	return (0);
}

static inline int
caph_ioctls_limit(int fd, const cap_ioctl_t *cmds, size_t ncmds)
{

	if (cap_ioctls_limit(fd, cmds, ncmds) < 0 && errno != ENOSYS)
		return (-1);
	return (0);
}

#endif /* !_LAB_FBSD_COMPAT_H_ */
