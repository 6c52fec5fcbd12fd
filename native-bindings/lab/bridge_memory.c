/*
 * bridge_memory.c: the kernel's copyin/copyout, played on the bridge's own
 * process.  process_vm_readv/process_vm_writev check the addresses the way
 * the kernel's copyin(9) does: an unmapped or (for writes) read-only range
 * fails with EFAULT instead of faulting the caller.
 */
#define	_GNU_SOURCE
#include <errno.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bridge.h"

static pid_t self_pid;

void
self_reset_pid(void)
{

	__atomic_store_n(&self_pid, getpid(), __ATOMIC_RELAXED);
}

static pid_t
self(void)
{
	pid_t pid;

	pid = __atomic_load_n(&self_pid, __ATOMIC_RELAXED);
	if (pid == 0) {
		pid = getpid();
		__atomic_store_n(&self_pid, pid, __ATOMIC_RELAXED);
	}
	return (pid);
}

/* Returns 0 or EFAULT. */
int
self_read(void *dst, uint64_t src, size_t len)
{
	struct iovec local, remote;
	ssize_t n;

	if (len == 0)
		return (0);
	if (src == 0 || src + len < src)
		return (EFAULT);
	local.iov_base = dst;
	local.iov_len = len;
	remote.iov_base = (void *)(uintptr_t)src;
	remote.iov_len = len;
	do {
		n = process_vm_readv(self(), &local, 1, &remote, 1, 0);
	} while (n < 0 && errno == EINTR);
	return (n == (ssize_t)len ? 0 : EFAULT);
}

int
self_write(uint64_t dst, const void *src, size_t len)
{
	struct iovec local, remote;
	ssize_t n;

	if (len == 0)
		return (0);
	if (dst == 0 || dst + len < dst)
		return (EFAULT);
	local.iov_base = (void *)(uintptr_t)src;
	local.iov_len = len;
	remote.iov_base = (void *)(uintptr_t)dst;
	remote.iov_len = len;
	do {
		n = process_vm_writev(self(), &local, 1, &remote, 1, 0);
	} while (n < 0 && errno == EINTR);
	return (n == (ssize_t)len ? 0 : EFAULT);
}
