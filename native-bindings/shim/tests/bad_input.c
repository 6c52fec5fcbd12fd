/*
 * bad_input: ioctls a buggy or hostile caller could make on a vmm fd, for
 * the interposer to pass on without touching memory it was not given.
 * Exits 0 when every call returned (whatever the kernel said).
 */
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm13.h"

int
main(void)
{
	static const unsigned long requests[] = {
		0, ABI13_VM_RUN, ABI13_VM_ACTIVATE_CPU, ABI13_VM_GET_CPUS,
		ABI13_VM_SET_TOPOLOGY, ABI13_VM_SUSPEND, ABI13_VM_REINIT,
		ABI13_VM_ALLOC_MEMSEG, ABI13_VM_GET_MEMSEG, ABI13_VM_MMAP_MEMSEG,
		ABI13_VM_MMAP_GETNEXT,
		0xffffffffUL, 0xC0907600UL,
	};
	static const int odd_vcpus[] = { 63, 64, 255, 256, 257, 1023, 1024,
		INT_MAX, INT_MIN };
	struct vm_activate_cpu ac;
	struct vm_cpuset cs;
	size_t i;
	int fd;

	fd = open("/dev/vmm/bad-input", O_RDWR);
	if (fd < 0) {
		perror("open");
		return (1);
	}
	for (i = 0; i < sizeof(requests) / sizeof(requests[0]); i++)
		(void)ioctl(fd, requests[i], NULL);
	/* Out-of-range vCPU ids (around the 256 of the interposer's sets) and a
	 * zero-sized cpuset. */
	memset(&ac, 0, sizeof(ac));
	for (ac.vcpuid = -5; ac.vcpuid < 40; ac.vcpuid += 7)
		(void)ioctl(fd, ABI13_VM_ACTIVATE_CPU, &ac);
	for (i = 0; i < sizeof(odd_vcpus) / sizeof(odd_vcpus[0]); i++) {
		ac.vcpuid = odd_vcpus[i];
		(void)ioctl(fd, ABI13_VM_ACTIVATE_CPU, &ac);
	}
	memset(&cs, 0, sizeof(cs));
	cs.cpusetsize = 0;
	(void)ioctl(fd, ABI13_VM_GET_CPUS, &cs);
	cs.cpusetsize = -1;
	(void)ioctl(fd, ABI13_VM_GET_CPUS, &cs);
	/* Not vmm fds: beyond the table and negative. */
	(void)ioctl(-1, ABI13_VM_RUN, NULL);
	(void)ioctl(1 << 20, ABI13_VM_RUN, NULL);
	close(fd);
	puts("ok");
	return (0);
}
