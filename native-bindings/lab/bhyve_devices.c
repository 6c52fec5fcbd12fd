/*
 * bhyve_devices.c: init_pci (pci_emul.c) for the PCI slots the lab
 * emulates, in bus, slot, function order (device emulation initialisation,
 * before cap_enter): the host bridge (config space only, nothing here), the
 * LPC bridge (pci_lpc.c: pci_lpc_init -> lpc_init: at most one, on bus 0;
 * it loads the boot ROM, then sets up COM1 at 0x3F8 and COM2 at 0x2F8 with
 * their backends, bhyve_uart.c) and the framebuffer.  So, as in bhyve, a
 * boot ROM and the COM ports exist only with an LPC slot (-s 31,lpc).  The
 * two devices that own guest device memory:
 *
 *   the framebuffer (pci_fbuf.c: pci_fbuf_init, pci_fbuf_baraddr): a
 *   VM_FRAMEBUFFER segment "framebuffer" of FB_SIZE through
 *   vm_create_devmem, mapped read/write at its BAR; a failed mapping only
 *   prints "pci_fbuf: mmap_memseg failed" and the device stays unmapped;
 *
 *   the LPC boot ROM (pci_lpc.c: lpc_init -> bootrom.c bootrom_loadrom,
 *   bhyve_bootrom.c): the ROM file mapped read/execute at the top of the
 *   16 MB region init_bootrom set up, so that it ends at 4 GB.
 *
 * Either failure is init_pci's error: "device emulation initialization
 * error", exit 4 (bhyve_run.c).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "bhyve_common.h"

#define	FB_SIZE			(16UL * 1024 * 1024)	/* pci_fbuf.c */
/*
 * The framebuffer's BAR 1: 13.1 allocates 32-bit BARs upwards from the
 * lowmem limit (3 GB, pci_emul.c pci_emul_membase32) aligned to their size;
 * BAR 0 (the small register window) comes first, so the 16 MB BAR lands at
 * 3 GB + 16 MB.  Inferred from pci_emul_alloc_resource, not traced.
 */
#define	FB_BAR_GPA		(0xC0000000UL + FB_SIZE)

/* pci_fbuf.c: pci_fbuf_init, then pci_fbuf_baraddr(enabled = 1). */
static int
fbuf_init(struct vmctx *ctx)
{
	void *fb;

	fb = vm_create_devmem(ctx, VM_FRAMEBUFFER, "framebuffer", FB_SIZE);
	if (fb == MAP_FAILED)
		return (-1);
	if (vm_mmap_memseg(ctx, FB_BAR_GPA, VM_FRAMEBUFFER, 0, FB_SIZE,
	    PROT_READ | PROT_WRITE) != 0)
		fprintf(stderr, "pci_fbuf: mmap_memseg failed\n");
	return (0);
}

/* uart_emul.c: uart_lres, the legacy COM ports. */
static const struct {
	const char	*name;
	int		base;
} lpc_uarts[BHYVE_LPC_UARTS] = {
	{ "com1", 0x3f8 },
	{ "com2", 0x2f8 },
};

/* pci_lpc.c: lpc_init: the boot ROM, then the COM ports. */
static int
lpc_init(struct vmctx *ctx, const struct bhyve_opts *opts)
{
	struct bhyve_uart *uart;
	int unit;

	if (opts->bootrom != NULL && bootrom_loadrom(ctx, opts->bootrom) != 0)
		return (-1);
	for (unit = 0; unit < BHYVE_LPC_UARTS; unit++) {
		uart = bhyve_uart_init();
		if (bhyve_uart_set_backend(uart, opts->com_backend[unit]) != 0) {
			fprintf(stderr, "Unable to initialize backend '%s' for "
			    "LPC device %s\n", opts->com_backend[unit],
			    lpc_uarts[unit].name);
			return (-1);
		}
		bhyve_register_uart(lpc_uarts[unit].base, uart);
	}
	return (0);
}

static int
slot_order(const void *a, const void *b)
{
	const struct bhyve_slot *x = a, *y = b;

	if (x->bus != y->bus)
		return (x->bus - y->bus);
	if (x->slot != y->slot)
		return (x->slot - y->slot);
	return (x->func - y->func);
}

/* init_pci: each slot's emulation, in bus, slot, function order. */
int
bhyve_init_devices(struct vmctx *ctx, const struct bhyve_opts *opts)
{
	struct bhyve_slot slots[BHYVE_MAX_SLOT_ARGS];
	int i, lpc;

	memcpy(slots, opts->slots, sizeof(slots[0]) * (size_t)opts->nslots);
	qsort(slots, (size_t)opts->nslots, sizeof(slots[0]), slot_order);
	lpc = 0;
	for (i = 0; i < opts->nslots; i++) {
		switch (slots[i].emul) {
		case EMUL_HOSTBRIDGE:
			break;
		case EMUL_FBUF:
			if (fbuf_init(ctx) != 0)
				return (-1);
			break;
		case EMUL_LPC:
			/* pci_lpc.c: pci_lpc_init */
			if (lpc) {
				fprintf(stderr, "Only one LPC bridge is "
				    "allowed.\n");
				return (-1);
			}
			if (slots[i].bus != 0) {
				fprintf(stderr, "LPC bridge can be present "
				    "only on bus 0.\n");
				return (-1);
			}
			if (lpc_init(ctx, opts) != 0)
				return (-1);
			lpc = 1;
			break;
		}
	}
	if (opts->bootrom != NULL && !lpc)
		fprintf(stderr, "bhyve (lab): -l bootrom without an LPC slot "
		    "(-s 31,lpc): the ROM is not loaded, as in bhyve\n");
	return (0);
}
