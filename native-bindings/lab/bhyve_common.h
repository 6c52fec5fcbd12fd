/*
 * bhyve_common.h: what the 13.1 and 14.0 bhyve models share: the command
 * line (bhyverun.c: main, topology_parse, calc_topolopgy, usage), the lab's
 * boot ROM (the guest image) and the lab's port I/O devices.
 */
#ifndef _LAB_BHYVE_COMMON_H_
#define _LAB_BHYVE_COMMON_H_

#include <stddef.h>
#include <stdint.h>

#include "vmmapi13.h"

/* bhyverun.h: vmexit handler results. */
#define	VMEXIT_CONTINUE		(0)
#define	VMEXIT_ABORT		(-1)

#define	PAGE_SHIFT		12

struct bhyve_opts {
	int		guest_ncpus;
	uint16_t	sockets, cores, threads, maxcpus;
	int		x2apic_mode;
	int		destroy_on_poweroff;
	size_t		memsize;
	const char	*bootrom;	/* -l bootrom,FILE */
	const char	*vmname;
};

/* bhyve_args.c */
void	bhyve_parse_args(int argc, char **argv, struct bhyve_opts *opts);

/* bhyve_guest.c */
int	bhyve_lpc_bootrom(const struct bhyve_opts *opts);
void	bhyve_load_guest(struct vmctx *ctx, const struct bhyve_opts *opts);
void	bhyve_limit_stdio(void);

/* bhyve_pio.c */
int	bhyve_inout(struct vmctx *ctx, int vcpu, const struct vm_exit *vme);

#endif /* !_LAB_BHYVE_COMMON_H_ */
