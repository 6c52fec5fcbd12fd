/*
 * bridge_fdtab.c: which descriptors are vmm devices, and for which model
 * file.  A fixed table indexed by fd, so the per-ioctl lookup is one relaxed
 * atomic load: no lock, no allocation (the pass-through path of every ioctl
 * on any fd goes through fdtab_lookup).
 *
 * Slots hold file id + 1 (0: not a vmm fd).  The table also records the
 * capsicum limits applied to other fds, which the lab does not enforce
 * (kern/sys_capability.c enforces them on FreeBSD; nothing in the lab
 * depends on them).
 */
#include "bridge.h"


static uint32_t	vmm_file[FDTAB_SIZE];
/* Word 0 of a valid rights set is never 0 (CAPRIGHT(0, 0) is bit 57): 0 means none. */
static uint64_t	fd_rights[FDTAB_SIZE][2];
static int32_t	fd_nioctls[FDTAB_SIZE];	/* 0: none recorded, else n + 1 */

static int
fd_ok(int fd)
{

	return (fd >= 0 && fd < FDTAB_SIZE);
}

int
fdtab_lookup(int fd)
{
	uint32_t v;

	if (!fd_ok(fd))
		return (-1);
	v = __atomic_load_n(&vmm_file[fd], __ATOMIC_ACQUIRE);
	return (v == 0 ? -1 : (int)(v - 1));
}

int
fdtab_insert(int fd, uint32_t file)
{

	if (!fd_ok(fd) || file >= 0x7fffffff)
		return (-1);
	__atomic_store_n(&vmm_file[fd], file + 1, __ATOMIC_RELEASE);
	return (0);
}

int
fdtab_remove(int fd)
{
	uint32_t v;

	if (!fd_ok(fd))
		return (-1);
	v = __atomic_exchange_n(&vmm_file[fd], 0, __ATOMIC_ACQ_REL);
	return (v == 0 ? -1 : (int)(v - 1));
}

void
fdtab_record_rights(int fd, const uint64_t rights[2])
{

	if (fd_ok(fd)) {
		__atomic_store_n(&fd_rights[fd][1], rights[1], __ATOMIC_RELAXED);
		__atomic_store_n(&fd_rights[fd][0], rights[0], __ATOMIC_RELAXED);
	}
}

void
fdtab_record_ioctls(int fd, size_t ncmds)
{

	if (fd_ok(fd))
		__atomic_store_n(&fd_nioctls[fd], (int32_t)ncmds + 1,
		    __ATOMIC_RELAXED);
}

/* Returns 1 if a limit was recorded for fd; -1 in *nioctls: all ioctls. */
int
fdtab_recorded(int fd, uint64_t rights[2], long *nioctls)
{
	int32_t n;

	if (!fd_ok(fd))
		return (0);
	rights[0] = __atomic_load_n(&fd_rights[fd][0], __ATOMIC_RELAXED);
	rights[1] = __atomic_load_n(&fd_rights[fd][1], __ATOMIC_RELAXED);
	n = __atomic_load_n(&fd_nioctls[fd], __ATOMIC_RELAXED);
	*nioctls = n == 0 ? -1 : n - 1;
	return (rights[0] != 0 || n != 0);
}

void
fdtab_forget(int fd)
{

	if (!fd_ok(fd))
		return;
	if (__atomic_load_n(&fd_rights[fd][0], __ATOMIC_RELAXED) != 0) {
		__atomic_store_n(&fd_rights[fd][0], 0, __ATOMIC_RELAXED);
		__atomic_store_n(&fd_rights[fd][1], 0, __ATOMIC_RELAXED);
	}
	if (__atomic_load_n(&fd_nioctls[fd], __ATOMIC_RELAXED) != 0)
		__atomic_store_n(&fd_nioctls[fd], 0, __ATOMIC_RELAXED);
}
