/*
 * bhyve_exits13.c: the 13.x exit handlers that the lab's guests never
 * reach (they run real-mode code, take no breakpoints and touch no device
 * memory), each ending as 13.1 bhyve ends it, so that a kernel handing
 * bhyve such an exit gets 13.1's outcome: MTRAP and BPT (gdb.c), INST_EMUL
 * (bhyverun.c vmexit_inst_emul + mem.c), TASK_SWITCH (task_switch.c), HLT
 * and PAUSE (-H/-P).  Sources read: bhyverun.c at 0040b6857e93 (id
 * 8462281525), gdb.c of 13.x (ids 28322144334, 26922195641), task_switch.c
 * of stable/13 (opnsense/src 2ef8a0887ee2, id 5578993482).
 */
#include <assert.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "bhyve_common.h"
#include "bhyve_exits13.h"

#define	IDT_TS		10
#define	IDT_GP		13
#define	SEL_LDT		0x4
#define	ISLDT(sel)	(((sel) & SEL_LDT) == SEL_LDT)
#define	IDXSEL(sel)	(((sel) >> 3) & 0x1fff)
#define	SEL_LIMIT(sel)	((sel) | 0x7)

/*
 * gdb.c keeps its state (ctx, vcpu_state[]) only once init_gdb() ran, i.e.
 * with -G, which the lab does not have.  Without it gdb_cpu_mtrap reads
 * vcpu_state[vcpu] and gdb_cpu_breakpoint passes ctx to
 * vm_get_register_set(): both dereference NULL and bhyve dies of SIGSEGV.
 * The lab ends the same way, explicitly (the default action, past any
 * sanitizer's handler).
 */
static void __attribute__((__noreturn__))
gdb_state_missing(void)
{

	signal(SIGSEGV, SIG_DFL);
	raise(SIGSEGV);
	abort();
}

/* bhyverun.c: vmexit_mtrap -> gdb.c gdb_cpu_mtrap. */
int
vmexit_mtrap(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu)
{

	(void)ctx;
	(void)pvcpu;
	assert(vme->inst_length == 0);
	gdb_state_missing();
}

/* bhyverun.c: vmexit_breakpoint -> gdb.c gdb_cpu_breakpoint. */
int
vmexit_breakpoint(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu)
{

	(void)ctx;
	(void)vme;
	(void)pvcpu;
	gdb_state_missing();
}

/* bhyverun.c: vmexit_hlt (with -H): "friendly with the host scheduler". */
int
vmexit_hlt(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu)
{

	(void)ctx;
	(void)vme;
	(void)pvcpu;
	return (VMEXIT_CONTINUE);
}

/* bhyverun.c: vmexit_pause (with -P). */
int
vmexit_pause(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu)
{

	(void)ctx;
	(void)vme;
	(void)pvcpu;
	return (VMEXIT_CONTINUE);
}

/*
 * bhyverun.c: vmexit_inst_emul.  An instruction the kernel did not decode
 * goes to libvmmapi's copy of the same decoder, which fails on it too (the
 * lab has no decoder in userland); a decoded one goes to mem.c
 * emulate_mem, which finds no memory range for the address (the lab
 * registers no MMIO device) and says ESRCH.  Either way: the instruction
 * bytes and ABORT.
 */
int
vmexit_inst_emul(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu)
{
	struct vie *vie;
	int i;

	(void)ctx;
	(void)pvcpu;
	vie = &vme->u.inst_emul.vie;
	if (vie->decoded)
		fprintf(stderr, "Unhandled memory access to 0x%lx\n",
		    (unsigned long)vme->u.inst_emul.gpa);
	fprintf(stderr, "Failed to emulate instruction sequence [ ");
	for (i = 0; i < vie->num_valid && i < (int)sizeof(vie->inst); i++)
		fprintf(stderr, "%02x", vie->inst[i]);
	fprintf(stderr, " ] at 0x%lx\n", (unsigned long)vme->rip);
	return (VMEXIT_ABORT);
}

/* task_switch.c: sel_exception through vm_inject_fault (restart). */
static void
sel_exception(struct vmctx *ctx, int vcpu, int vector, uint16_t sel, int ext)
{
	int error;

	sel &= ~0x3;
	if (ext)
		sel |= 0x1;
	error = vm_inject_exception(ctx, vcpu, vector, 1, sel, 1);
	assert(error == 0);
}

/*
 * task_switch.c: vmexit_task_switch, up to the new TSS descriptor:
 * protected mode only (an assert), the selector must name the GDT and not
 * be NULL (asserts), and must lie within the GDT's limit.  Beyond the
 * limit, read_tss_descriptor injects #TS (IRET) or #GP with the selector as
 * error code and returns 1, which CHKERR's assert(error == 0 || error ==
 * EFAULT) turns into an abort: 13.x bhyve dies there (stable/13 as read).
 * Reading and switching to a TSS inside the GDT is not in the lab's model:
 * no lab guest ever leaves real mode.
 */
int
vmexit_task_switch(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu)
{
	uint64_t base;
	uint32_t limit, access;
	uint16_t sel;
	int error, vcpu;

	vcpu = *pvcpu;
	assert(vme->u.task_switch.paging.cpu_mode == CPU_MODE_PROTECTED);
	sel = vme->u.task_switch.tsssel;
	assert(!ISLDT(sel));
	assert(IDXSEL(sel) != 0);
	error = vm_get_desc(ctx, vcpu, VM_REG_GUEST_GDTR, &base, &limit,
	    &access);
	assert(error == 0);
	if (limit < SEL_LIMIT(sel)) {
		sel_exception(ctx, vcpu, vme->u.task_switch.reason == TSR_IRET ?
		    IDT_TS : IDT_GP, sel, vme->u.task_switch.ext);
		error = 1;
		assert(error == 0 || error == EFAULT);	/* CHKERR */
	}
	fprintf(stderr, "lab: a task switch through a TSS inside the GDT is "
	    "not modelled\n");
	return (VMEXIT_ABORT);
}
