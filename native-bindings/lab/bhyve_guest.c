/*
 * bhyve_guest.c: the lab's guest in memory and the stdio limits bhyve
 * applies before capability mode.  bhyve writes the vCPU count as a 16-bit
 * word at 0x0500 (the lab's stand-in for the MP table and ACPI tables bhyve
 * builds in guest memory); with -l guest,FILE it also places the guest
 * image at 0x10000, as firmware would load it from a disk (docs/internals.md
 * section 4).  The file is read during device initialisation, before
 * cap_enter.
 */
#define	LAB_FBSD_WEAK
#include <err.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bhyve_common.h"

int
bhyve_lpc_bootrom(const struct bhyve_opts *opts)
{

	return (opts->bootrom != NULL);
}

void
bhyve_load_guest(struct vmctx *ctx, const struct bhyve_opts *opts)
{
	struct stat sb;
	uint8_t *dst;
	uint16_t ncpus;
	ssize_t n;
	size_t off;
	int fd;

	dst = vm_map_gpa(ctx, LAB_GUEST_NCPUS_GPA, sizeof(ncpus));
	if (dst == NULL)
		errx(4, "guest memory does not cover 0x%lx",
		    LAB_GUEST_NCPUS_GPA);
	ncpus = (uint16_t)opts->guest_ncpus;
	memcpy(dst, &ncpus, sizeof(ncpus));
	if (opts->guest_image == NULL)
		return;
	fd = open(opts->guest_image, O_RDONLY);
	if (fd < 0)
		err(4, "Error opening guest image \"%s\"", opts->guest_image);
	if (fstat(fd, &sb) < 0)
		err(4, "Could not fstat guest image");
	if (sb.st_size <= 0)
		errx(4, "guest image \"%s\" is empty", opts->guest_image);
	dst = vm_map_gpa(ctx, LAB_GUEST_LOAD_GPA, (size_t)sb.st_size);
	if (dst == NULL)
		errx(4, "guest image \"%s\" (%jd bytes) does not fit in guest "
		    "memory above 0x%lx", opts->guest_image,
		    (intmax_t)sb.st_size, LAB_GUEST_LOAD_GPA);
	for (off = 0; off < (size_t)sb.st_size; off += (size_t)n) {
		n = read(fd, dst + off, (size_t)sb.st_size - off);
		if (n <= 0)
			err(4, "Could not read guest image \"%s\"",
			    opts->guest_image);
	}
	close(fd);
}

/*
 * capsicum_helpers.h: caph_limit_stdout/caph_limit_stderr, which bhyverun.c
 * calls just before caph_enter: write, fstat, fcntl and three tty ioctls.
 * The bridge records these limits on non-vmm fds.
 */
void
bhyve_limit_stdio(void)
{
	static const cap_ioctl_t cmds[] = {
		0x402c7413UL,	/* TIOCGETA */
		0x40087468UL,	/* TIOCGWINSZ */
		0x4004667aUL,	/* FIODTYPE */
	};
	cap_rights_t rights;
	int fd;

	cap_rights_init(&rights, CAP_WRITE, CAP_FSTAT, CAP_IOCTL);
	for (fd = 1; fd <= 2; fd++) {
		if (caph_rights_limit(fd, &rights) < 0 ||
		    caph_ioctls_limit(fd, cmds, 3) < 0)
			err(EX_OSERR, "Unable to apply rights for sandbox");
	}
}
