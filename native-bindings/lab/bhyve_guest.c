/*
 * bhyve_guest.c: the vCPU count a loader-booted lab guest reads, and the
 * stdio limits bhyve applies before capability mode.  Without a boot ROM,
 * bhyve writes the vCPU count as a 16-bit word at 0x0500 (the lab's
 * stand-in for the MP table and ACPI tables bhyve builds in guest memory,
 * which the lab's loader cannot know: it is not given -c).  With a boot ROM
 * bhyve writes nothing into guest memory: the ROM stores its own count
 * there (docs/internals.md section 4), so a ROM that does not is seen to
 * fail.
 */
#define	LAB_FBSD_WEAK
#include <err.h>
#include <stdio.h>
#include <string.h>

#include "bhyve_common.h"

int
bhyve_lpc_bootrom(const struct bhyve_opts *opts)
{

	return (opts->bootrom != NULL);
}

void
bhyve_write_vcpu_count(struct vmctx *ctx, const struct bhyve_opts *opts)
{
	uint8_t *dst;
	uint16_t ncpus;

	if (bhyve_lpc_bootrom(opts))
		return;
	dst = vm_map_gpa(ctx, LAB_GUEST_NCPUS_GPA, sizeof(ncpus));
	if (dst == NULL)
		errx(4, "guest memory does not cover 0x%lx",
		    LAB_GUEST_NCPUS_GPA);
	ncpus = (uint16_t)opts->guest_ncpus;
	memcpy(dst, &ncpus, sizeof(ncpus));
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
