/*
 * bhyveload13: the lab's stand-in for bhyveload(8), the loader that runs
 * before a bhyve without a boot ROM (13.1 bhyve's do_open refuses to boot a
 * VM it created itself unless it has a ROM: "virtual machine cannot be
 * booted").  As bhyveload.c main: vm_create (EEXIST: reuse and reinit),
 * vm_open, vm_reinit, vm_setup_memory; then, where bhyveload runs the
 * FreeBSD loader and sets long-mode registers (vm_setup_freebsd_registers),
 * the lab copies the guest image to 0x10000 and sets the lab's real-mode
 * entry state on the BSP (docs/internals.md section 4): vcpu_reset, then
 * CS=DS=ES=SS=0x1000 (base 0x10000), IP 0, SP 0xFFF0, and unrestricted
 * guest, which real mode needs.
 *
 *   bhyveload13 [-m mem] -d <guest image> <vm>
 *
 * Exit status 0 on success, 1 on a VM error (as bhyveload), 64 for usage.
 */
#define	_GNU_SOURCE
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmmapi13.h"

#define	MB		(1024UL * 1024)
#define	ACC_DATA	0x0093
#define	EX_USAGE	64

static void
usage(void)
{

	fprintf(stderr, "usage: bhyveload13 [-m mem] -d <guest image> <vmname>\n");
	exit(EX_USAGE);
}

static void
load_image(struct vmctx *ctx, const char *image)
{
	struct stat sb;
	uint8_t *dst;
	size_t off;
	ssize_t n;
	int fd;

	fd = open(image, O_RDONLY);
	if (fd < 0)
		err(1, "%s", image);
	if (fstat(fd, &sb) < 0 || sb.st_size <= 0)
		errx(1, "%s: empty or unreadable", image);
	dst = vm_map_gpa(ctx, LAB_GUEST_LOAD_GPA, (size_t)sb.st_size);
	if (dst == NULL)
		errx(1, "%s (%jd bytes) does not fit in guest memory above "
		    "0x%lx", image, (intmax_t)sb.st_size, LAB_GUEST_LOAD_GPA);
	for (off = 0; off < (size_t)sb.st_size; off += (size_t)n) {
		n = read(fd, dst + off, (size_t)sb.st_size - off);
		if (n <= 0)
			err(1, "%s", image);
	}
	close(fd);
}

/* The lab's entry state: CS=DS=ES=SS=0x1000, IP 0, SP 0xFFF0. */
static int
set_entry_state(struct vmctx *ctx)
{
	static const int segs[] = {
		VM_REG_GUEST_CS, VM_REG_GUEST_DS, VM_REG_GUEST_ES,
		VM_REG_GUEST_SS,
	};
	unsigned int i;
	int error;

	if ((error = vcpu_reset(ctx, 0)) != 0)
		return (error);
	for (i = 0; i < sizeof(segs) / sizeof(segs[0]); i++) {
		if ((error = vm_set_desc(ctx, 0, segs[i],
		    (uint64_t)LAB_BOOT_SEL << 4, 0xffff, ACC_DATA)) != 0 ||
		    (error = vm_set_register(ctx, 0, segs[i], LAB_BOOT_SEL)) != 0)
			return (error);
	}
	if ((error = vm_set_register(ctx, 0, VM_REG_GUEST_RSP,
	    LAB_BOOT_SP)) != 0 ||
	    (error = vm_set_register(ctx, 0, VM_REG_GUEST_RIP, 0)) != 0)
		return (error);
	return (vm_set_capability(ctx, 0, VM_CAP_UNRESTRICTED_GUEST, 1));
}

int
main(int argc, char *argv[])
{
	const char *image, *vmname;
	struct vmctx *ctx;
	unsigned long long mem;
	char *end;
	int ch, error, need_reinit;

	image = NULL;
	mem = 2 * MB;
	while ((ch = getopt(argc, argv, "d:m:")) != -1) {
		switch (ch) {
		case 'd':
			image = optarg;
			break;
		case 'm':
			mem = strtoull(optarg, &end, 0);
			if (end == optarg)
				usage();
			if (*end == 'M' || *end == 'm')
				mem *= MB;
			else if (*end == 'K' || *end == 'k')
				mem *= 1024;
			else if (*end != '\0')
				usage();
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 1 || image == NULL || mem == 0)
		usage();
	vmname = argv[0];

	need_reinit = 0;
	error = vm_create(vmname);
	if (error) {
		if (errno != EEXIST) {
			perror("vm_create");
			exit(1);
		}
		need_reinit = 1;
	}
	ctx = vm_open(vmname);
	if (ctx == NULL) {
		perror("vm_open");
		exit(1);
	}
	if (need_reinit && vm_reinit(ctx) != 0) {
		perror("vm_reinit");
		exit(1);
	}
	if (vm_setup_memory(ctx, (size_t)mem, VM_MMAP_ALL) != 0) {
		perror("vm_setup_memory");
		exit(1);
	}
	load_image(ctx, image);
	if (set_entry_state(ctx) != 0) {
		perror("setting the entry registers");
		exit(1);
	}
	return (0);
}
