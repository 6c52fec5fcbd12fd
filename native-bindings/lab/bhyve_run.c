/*
 * bhyve_run.c: the steps of bhyverun.c that read the same in 13.x and
 * 14.x: do_open around the sandboxing of the VM's fd (which differs), the
 * x2APIC and INVPCID part of fbsdrun_set_capabilities, main's memory, boot
 * ROM and BSP reset, and what vm_loop does with a handler's result.  The
 * ioctls go out in bhyve's order.
 */
#include <assert.h>
#include <err.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>

#include "bhyve_common.h"

static const int BSP = 0;

/*
 * bhyverun.c: do_open: create (EEXIST: reuse, with a boot ROM reinit),
 * open, sandbox the fd (limit_rights: the version's own), reinit, set the
 * topology.
 */
struct vmctx *
bhyve_do_open(const struct bhyve_opts *opts,
    void (*limit_rights)(struct vmctx *ctx))
{
	struct vmctx *ctx;
	int error, reinit, romboot;

	reinit = romboot = 0;
	if (bhyve_lpc_bootrom(opts))
		romboot = 1;

	error = vm_create(opts->vmname);
	if (error) {
		if (errno == EEXIST) {
			if (romboot)
				reinit = 1;
			/* else: the VM was set up by the loader */
		} else {
			perror("vm_create");
			exit(4);
		}
	} else {
		if (!romboot) {
			fprintf(stderr, "virtual machine cannot be booted\n");
			exit(4);
		}
	}

	ctx = vm_open(opts->vmname);
	if (ctx == NULL) {
		perror("vm_open");
		exit(4);
	}

	limit_rights(ctx);

	if (reinit) {
		error = vm_reinit(ctx);
		if (error) {
			perror("vm_reinit");
			exit(4);
		}
	}
	error = vm_set_topology(ctx, opts->sockets, opts->cores, opts->threads,
	    opts->maxcpus);
	if (error)
		errx(EX_OSERR, "vm_set_topology");
	return (ctx);
}

/*
 * bhyverun.c: fbsdrun_set_capabilities as 13.1 has it (no -H/-P in the
 * lab): the x2APIC state (an error exits 4), then INVPCID, whose result is
 * ignored.
 */
void
bhyve_set_capabilities(struct vmctx *ctx, int cpu, int x2apic_mode)
{
	int error;

	if (x2apic_mode)
		error = vm_set_x2apic_state(ctx, cpu, X2APIC_ENABLED);
	else
		error = vm_set_x2apic_state(ctx, cpu, X2APIC_DISABLED);
	if (error) {
		fprintf(stderr, "Unable to set x2apic state (%d)\n", error);
		exit(4);
	}

	vm_set_capability(ctx, cpu, VM_CAP_ENABLE_INVPCID, 1);
}

/*
 * bhyverun.c: main, from vm_setup_memory to the BSP's reset: guest memory,
 * the boot ROM region (init_bootrom, on every run, ROM or not: bootrom.c,
 * bhyve_bootrom.c), device initialisation (init_pci: the framebuffer, the
 * LPC bridge with the boot ROM and the COM ports; without a ROM the lab's
 * vCPU count word), then for a ROM boot unrestricted guest on the BSP and
 * vcpu_reset, which starts it at the reset vector.  Without a ROM the BSP
 * keeps the registers its loader (bhyveload) set.  13.1, 13.2-13.5 and 14.0
 * read alike here (ids 46548892207, 8462281525, 164064629).
 */
void
bhyve_setup_guest(struct vmctx *ctx, const struct bhyve_opts *opts)
{
	int error;

	error = vm_setup_memory(ctx, opts->memsize, VM_MMAP_ALL);
	if (error) {
		fprintf(stderr, "Unable to setup memory (%d)\n", errno);
		exit(4);
	}
	init_bootrom(ctx);

	/* bhyverun.c: "Exit if a device emulation finds an error". */
	if (bhyve_init_devices(ctx, opts) != 0) {
		perror("device emulation initialization error");
		exit(4);
	}
	bhyve_write_vcpu_count(ctx, opts);

	if (bhyve_lpc_bootrom(opts)) {
		if (vm_set_capability(ctx, BSP, VM_CAP_UNRESTRICTED_GUEST, 1)) {
			fprintf(stderr, "ROM boot failed: unrestricted guest "
			    "capability not available\n");
			exit(4);
		}
		error = vcpu_reset(ctx, BSP);
		assert(error == 0);
	}
}

/*
 * bhyverun.c: vm_loop, after an exit's handler: VMEXIT_CONTINUE re-enters
 * the guest, VMEXIT_ABORT aborts, anything else exits 4.
 */
void
bhyve_vmexit_result(int rc)
{

	switch (rc) {
	case VMEXIT_CONTINUE:
		break;
	case VMEXIT_ABORT:
		abort();
	default:
		exit(4);
	}
}
