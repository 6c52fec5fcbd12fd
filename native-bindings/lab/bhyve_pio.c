/*
 * bhyve_pio.c: the lab's port I/O devices (docs/internals.md section 4),
 * handled the way bhyve's inout.c dispatches to its device handlers:
 *   0xE9   guest console: each byte written goes to stdout at once;
 *   0x404  ACPI PM1a control (pm.c: pm1_control_handler): SLP_EN with
 *          SLP_TYP 5 (S5, e.g. 0x3400) -> vm_suspend(POWEROFF);
 *   0xCF9  reset control (pm.c: reset_handler): RST_CPU (bit 2, e.g. 0x06)
 *          -> vm_suspend(RESET).
 * pm.c asserts that vm_suspend succeeded or found the VM already
 * suspending (EALREADY).  Reads of other ports return all ones and writes
 * are ignored (inout.c: default_inout, strictio off).
 */
#include <assert.h>
#include <errno.h>
#include <unistd.h>

#include "bhyve_common.h"

#define	CONSOLE_PORT	0xE9
#define	PM1A_CNT_ADDR	0x404
#define	RESET_PORT	0xCF9
#define	PM1_SLP_EN	0x2000
#define	PM1_SLP_TYP	0x1c00
#define	RST_CPU		0x04

static uint16_t pm1_control;
static uint8_t reset_control;

static void
suspend(struct vmctx *ctx, int how)
{
	int error;

	error = vm_suspend(ctx, how);
	assert(error == 0 || errno == EALREADY);
}

static uint32_t
port_out(struct vmctx *ctx, int port, int bytes, uint32_t val)
{
	uint8_t c;

	switch (port) {
	case CONSOLE_PORT:
		c = (uint8_t)val;
		(void)!write(STDOUT_FILENO, &c, 1);
		break;
	case PM1A_CNT_ADDR:
		if (bytes != 2)
			break;
		pm1_control = (uint16_t)(val & ~PM1_SLP_EN);
		if ((val & PM1_SLP_EN) != 0 &&
		    ((val & PM1_SLP_TYP) >> 10) == 5)
			suspend(ctx, VM_SUSPEND_POWEROFF);
		break;
	case RESET_PORT:
		if (bytes != 1)
			break;
		reset_control = (uint8_t)(val & ~RST_CPU);
		if ((val & RST_CPU) != 0)
			suspend(ctx, VM_SUSPEND_RESET);
		break;
	}
	return (0);
}

static uint32_t
port_in(int port, int bytes)
{

	if (port == PM1A_CNT_ADDR && bytes == 2)
		return (pm1_control);
	if (port == RESET_PORT && bytes == 1)
		return (reset_control);
	return (bytes == 1 ? 0xff : bytes == 2 ? 0xffff : 0xffffffff);
}

/* inout.c: emulate_inout: an IN result lands in the low bytes of RAX. */
int
bhyve_inout(struct vmctx *ctx, int vcpu, const struct vm_exit *vme)
{
	uint64_t rax, mask;
	uint32_t val;
	int bytes, error;

	bytes = vme->u.inout.bytes;
	if (vme->u.inout.string)
		return (VMEXIT_CONTINUE);	/* no string I/O device */
	if (!vme->u.inout.in) {
		port_out(ctx, vme->u.inout.port, bytes, vme->u.inout.eax);
		return (VMEXIT_CONTINUE);
	}
	val = port_in(vme->u.inout.port, bytes);
	error = vm_get_register(ctx, vcpu, VM_REG_GUEST_RAX, &rax);
	assert(error == 0);
	mask = bytes == 1 ? 0xff : bytes == 2 ? 0xffff : 0xffffffff;
	rax = (rax & ~mask) | (val & mask);
	error = vm_set_register(ctx, vcpu, VM_REG_GUEST_RAX, rax);
	assert(error == 0);
	return (VMEXIT_CONTINUE);
}
