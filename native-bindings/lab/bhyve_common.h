/*
 * bhyve_common.h: what the 13.x and 14.x bhyve models share: the command
 * line (bhyverun.c: main, topology_parse, calc_topolopgy, usage; pci_emul.c
 * pci_parse_slot; pci_lpc.c lpc_device_parse), the PCI slots the lab
 * emulates (hostbridge, lpc with its boot ROM and COM ports, fbuf), the
 * lab's port I/O devices, the steps of bhyverun.c that read the same in
 * both versions, bhyve's cpumask with the suspend rendezvous, and
 * spinup_ap.c's real-mode set-up.
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

/* pci_emul.c: MAXBUSES, MAXSLOTS, MAXFUNCS. */
#define	BHYVE_MAXBUSES		256
#define	BHYVE_MAXSLOTS		32
#define	BHYVE_MAXFUNCS		8
#define	BHYVE_MAX_SLOT_ARGS	(BHYVE_MAXSLOTS * 4)

/* The PCI emulations the lab knows; others are ignored with a note. */
enum bhyve_emul {
	EMUL_HOSTBRIDGE,	/* pci_hostbridge.c: config space only */
	EMUL_LPC,		/* pci_lpc.c: boot ROM, COM1, COM2 */
	EMUL_FBUF,		/* pci_fbuf.c: the framebuffer segment */
};

/* One -s B:S:F,EMUL[,CONFIG] (pci_emul.c pci_parse_slot). */
struct bhyve_slot {
	int		bus, slot, func;
	enum bhyve_emul	emul;
};

/* pci_lpc.c: the LPC UARTs the lab has, COM1 and COM2 (uart_emul.c). */
#define	BHYVE_LPC_UARTS		2

struct bhyve_opts {
	int		guest_ncpus;
	uint16_t	sockets, cores, threads, maxcpus;
	int		x2apic_mode;
	int		destroy_on_poweroff;
	int		vmexit_on_hlt;		/* -H */
	int		vmexit_on_pause;	/* -P */
	int		acpi_tables;		/* -A: accepted, no tables built */
	size_t		memsize;
	const char	*bootrom;	/* -l bootrom,FILE: a boot ROM image */
	/* -l comN,BACKEND: "stdio" or a tty path; NULL: no backend. */
	const char	*com_backend[BHYVE_LPC_UARTS];
	struct bhyve_slot slots[BHYVE_MAX_SLOT_ARGS];
	int		nslots;
	const char	*vmname;
};

/*
 * The FreeBSD release a model binary stands for (bhyverun131.c,
 * bhyverun135.c, bhyverun140.c, bhyverun143.c, bhyverun14cur.c: each model
 * links one).  What differs between releases in the steps the models share
 * is here; the ELF ABI tag of the release is abi_tag.c's, linked beside it.
 */
struct bhyve_release {
	const char	*name;		/* "13.1", "14.3", "14-CURRENT" */
	/* bootrom.c: 14.0's bootrom_loadrom checks ROM + variables first. */
	int		bootrom_aggregate_check;
	/* 14.x: the VM_RUN ABI (14: 32-byte, 13: early-2023 main's 144-byte). */
	int		vmrun_abi;
	/* 14.x: sizeof(cpuset_t) in its userland (VM_GET_CPUS, IPI exits). */
	size_t		cpuset_bytes;
};

extern const struct bhyve_release bhyve_release;

/* bhyve_args.c */
void	bhyve_parse_args(int argc, char **argv, struct bhyve_opts *opts);

/* bhyve_devices.c */
int	bhyve_init_devices(struct vmctx *ctx, const struct bhyve_opts *opts);

/* bhyve_bootrom.c: bootrom.c's 16 MB boot ROM region. */
void	init_bootrom(struct vmctx *ctx);
int	bootrom_loadrom(struct vmctx *ctx, const char *romfile);

/* bhyve_guest.c */
int	bhyve_lpc_bootrom(const struct bhyve_opts *opts);
void	bhyve_write_vcpu_count(struct vmctx *ctx, const struct bhyve_opts *opts);
void	bhyve_limit_stdio(void);

/* bhyve_uart.c: uart_emul.c's 16550 behind pci_lpc.c's port handler. */
struct bhyve_uart;
struct bhyve_uart *bhyve_uart_init(void);
int	bhyve_uart_set_backend(struct bhyve_uart *uart, const char *backend);
int	bhyve_uart_io(struct bhyve_uart *uart, int in, int offset, int bytes,
	    uint32_t *eax);

/* bhyve_pio.c: bhyverun.c vmexit_inout with inout.c and pm.c behind it. */
int	bhyve_vmexit_inout(struct vmctx *ctx, int vcpu, const struct vm_exit *vme);
/* inout.c register_inout, for the LPC's COM ports (pci_lpc.c lpc_init). */
void	bhyve_register_uart(int base, struct bhyve_uart *uart);

/* bhyve_run.c */
struct vmctx *bhyve_do_open(const struct bhyve_opts *opts,
	    void (*limit_rights)(struct vmctx *ctx));
void	bhyve_set_capabilities(struct vmctx *ctx, int cpu, int x2apic_mode);
void	bhyve_setup_guest(struct vmctx *ctx, const struct bhyve_opts *opts);
void	bhyve_vmexit_result(int rc);

/*
 * bhyverun.c: cpumask, bhyve's own set of vCPUs with a running thread (not
 * the kernel's active set).  It is a cpuset_t, whose size differs between
 * the versions, so each model owns the bits and hands them over with
 * BHYVE_CPUMASK(set).
 */
struct bhyve_cpumask {
	uint64_t	*bits;
	size_t		nwords;
};

#define	BHYVE_CPUMASK(set)						\
	{ (set).bits, sizeof((set).bits) / sizeof((set).bits[0]) }

/* bhyve_cpumask.c */
void	bhyve_cpumask_set(struct bhyve_cpumask *mask, int vcpu);
int	fbsdrun_deletecpu(struct bhyve_cpumask *mask, int vcpu);
void	bhyve_vmexit_suspend(struct vmctx *ctx, struct bhyve_cpumask *mask,
	    int vcpu, int how, int destroy_on_poweroff)
	    __attribute__((__noreturn__));

/* bhyve_spinup.c */
void	spinup_ap_realmode(struct vmctx *ctx, int newcpu, uint64_t rip);

#endif /* !_LAB_BHYVE_COMMON_H_ */
