/*
 * passthrough: a tight loop of one vmm ioctl, for measuring what the
 * interposer adds to a call it only passes through.  Run under
 * VMMLAB_BRIDGE_MODE=loopback, where the lab bridge answers each vmm ioctl
 * after one real getppid(): the baseline is then a real system call, with
 * and without libvmmcompat.so preloaded in front of the bridge.
 *
 *	passthrough VMNAME run|getreg ITERATIONS
 *
 * Prints the nanoseconds per call (monotonic clock, whole loop / N).
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "vmm13.h"

static double
now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((double)ts.tv_sec * 1e9 + (double)ts.tv_nsec);
}

int
main(int argc, char **argv)
{
	struct vm_register reg;
	struct vm_run run;
	unsigned long request;
	char path[300];
	void *arg;
	double t0, t1;
	long i, n;
	int fd;

	if (argc != 4 || (strcmp(argv[2], "run") != 0 &&
	    strcmp(argv[2], "getreg") != 0)) {
		fprintf(stderr, "usage: passthrough VMNAME run|getreg ITERATIONS\n");
		return (2);
	}
	n = atol(argv[3]);
	snprintf(path, sizeof(path), "/dev/vmm/%s", argv[1]);
	fd = open(path, O_RDWR);
	if (fd < 0) {
		perror(path);
		return (1);
	}
	memset(&run, 0, sizeof(run));
	memset(&reg, 0, sizeof(reg));
	/* An AP's VM_RUN: the steady-state path of every vCPU thread. */
	run.cpuid = 1;
	reg.cpuid = 1;
	reg.regnum = VM_REG_GUEST_RIP;
	if (strcmp(argv[2], "run") == 0) {
		request = ABI13_VM_RUN;
		arg = &run;
	} else {
		request = ABI13_VM_GET_REGISTER;
		arg = &reg;
	}
	for (i = 0; i < n / 10; i++)		/* warm up */
		(void)ioctl(fd, request, arg);
	t0 = now_ns();
	for (i = 0; i < n; i++) {
		if (ioctl(fd, request, arg) != 0) {
			perror("ioctl");
			return (1);
		}
	}
	t1 = now_ns();
	printf("%.3f\n", (t1 - t0) / (double)n);
	return (0);
}
