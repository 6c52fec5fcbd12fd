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
 * sys/caprights.h and sys/capsicum.h (read at 032c239e83ef, id 53226974580):
 * a rights set is versioned, CAP_RIGHTS_VERSION + 2 64-bit words.  A right
 * is CAPRIGHT(idx, bit): bit 57 + idx says which word it belongs to (word 0
 * carries bit 57, word 1 bit 58), the version lives in bits 62-63 of word
 * 0.  So CAP_IOCTL (word 1) and CAP_READ (word 0) never share a bit even
 * though both are bit-valued 0x1-ish constants.
 */
typedef unsigned long	cap_ioctl_t;

#define	CAP_RIGHTS_VERSION_00	0
#define	CAP_RIGHTS_VERSION	CAP_RIGHTS_VERSION_00

typedef struct cap_rights {
	uint64_t	cr_rights[CAP_RIGHTS_VERSION + 2];
} cap_rights_t;

#define	CAPRIGHT(idx, bit)	((1ULL << (57 + (idx))) | (bit))

/* Index 0 */
#define	CAP_READ		CAPRIGHT(0, 0x0000000000000001ULL)
#define	CAP_WRITE		CAPRIGHT(0, 0x0000000000000002ULL)
#define	CAP_SEEK_TELL		CAPRIGHT(0, 0x0000000000000004ULL)
#define	CAP_SEEK		(CAP_SEEK_TELL | 0x0000000000000008ULL)
#define	CAP_MMAP		CAPRIGHT(0, 0x0000000000000010ULL)
#define	CAP_MMAP_R		(CAP_MMAP | CAP_SEEK | CAP_READ)
#define	CAP_MMAP_W		(CAP_MMAP | CAP_SEEK | CAP_WRITE)
#define	CAP_MMAP_X		(CAP_MMAP | CAP_SEEK | 0x0000000000000020ULL)
#define	CAP_MMAP_RW		(CAP_MMAP_R | CAP_MMAP_W)
#define	CAP_LOOKUP		CAPRIGHT(0, 0x0000000000000400ULL)
#define	CAP_FCNTL		CAPRIGHT(0, 0x0000000000008000ULL)
#define	CAP_FSTAT		CAPRIGHT(0, 0x0000000000080000ULL)
#define	CAP_ACCEPT		CAPRIGHT(0, 0x0000000020000000ULL)
#define	CAP_BIND		CAPRIGHT(0, 0x0000000040000000ULL)
#define	CAP_CONNECT		CAPRIGHT(0, 0x0000000080000000ULL)
#define	CAP_SETSOCKOPT		CAPRIGHT(0, 0x0000002000000000ULL)
#define	CAP_CONNECTAT		(CAP_LOOKUP | 0x0000010000000000ULL)
#define	CAP_ALL0		CAPRIGHT(0, 0x000007FFFFFFFFFFULL)
/* Index 1 */
#define	CAP_EVENT		CAPRIGHT(1, 0x0000000000000020ULL)
#define	CAP_IOCTL		CAPRIGHT(1, 0x0000000000000080ULL)
#define	CAP_ALL1		CAPRIGHT(1, 0x00000000001FFFFFULL)

#define	CAPRVER(right)		((int)((right) >> 62))
#define	CAPVER(rights)		CAPRVER((rights)->cr_rights[0])
#define	CAPARSIZE(rights)	(CAPVER(rights) + 2)
#define	CAPIDXBIT(right)	((int)(((right) >> 57) & 0x1F))

/* subr_capability.c: right_to_index (bit2idx: index bit 1 -> word 0, 2 -> 1). */
static inline int
lab_cap_right_to_index(uint64_t right)
{

	switch (CAPIDXBIT(right)) {
	case 1:
		return (0);
	case 2:
		return (1);
	default:
		return (-1);
	}
}

/*
 * subr_capability.c: __cap_rights_init: CAP_NONE (the version and each
 * word's index bit), then each right ORed into its word; a right that names
 * no word of this version is a programming error (libc asserts).
 */
static inline cap_rights_t *
lab_cap_rights_init(int version, cap_rights_t *rights, ...)
{
	va_list ap;
	uint64_t right;
	int i;

	rights->cr_rights[0] = ((uint64_t)version << 62) | CAPRIGHT(0, 0ULL);
	rights->cr_rights[1] = CAPRIGHT(1, 0ULL);
	va_start(ap, rights);
	while ((right = (uint64_t)va_arg(ap, unsigned long long)) != 0) {
		i = lab_cap_right_to_index(right);
		if (i < 0 || CAPRVER(right) != 0)
			__builtin_trap();
		rights->cr_rights[i] |= right;
	}
	va_end(ap);
	return (rights);
}

#define	cap_rights_init(...)						\
	lab_cap_rights_init(CAP_RIGHTS_VERSION, __VA_ARGS__, 0ULL)

/*
 * subr_capability.c: cap_rights_is_valid: version 00, no unknown bit,
 * and word i carries index bit i only.
 */
static inline int
lab_cap_rights_is_valid(const cap_rights_t *rights)
{

	if (CAPVER(rights) != CAP_RIGHTS_VERSION_00)
		return (0);
	if ((rights->cr_rights[0] & ~CAP_ALL0 & ~(3ULL << 62)) != 0 ||
	    (rights->cr_rights[1] & ~CAP_ALL1) != 0)
		return (0);
	return (lab_cap_right_to_index(rights->cr_rights[0]) == 0 &&
	    lab_cap_right_to_index(rights->cr_rights[1]) == 1 &&
	    CAPRVER(rights->cr_rights[1]) == 0);
}

/* sys/capsicum.h: CAP_IOCTLS_ALL; kern/sys_capability.c: at most 256 ioctls. */
#define	CAP_IOCTLS_ALL		SSIZE_MAX
#define	LAB_CAP_IOCTLS_LIMIT_MAX	256

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
