/*
 * bhyve_pio.c: the lab's port I/O devices (docs/internals.md section 4),
 * dispatched the way bhyve's inout.c emulate_inout does (13.x, read id
 * 1046860995), with pm.c's handlers (13.x, id 297524762):
 *   0xE9   the lab's debug console (no bhyve device: the console of
 *          loader-booted lab guests): each byte written goes to stdout;
 *   0x3F8-0x3FF, 0x2F8-0x2FF  COM1 and COM2 when the LPC device registered
 *          them (pci_lpc.c lpc_init -> register_inout; bhyve_uart.c);
 *   0x404  ACPI PM1a control (pm.c: pm1_control_handler): 16-bit only;
 *          SLP_EN with SLP_TYP 5 (S5, e.g. 0x3400) -> vm_suspend(POWEROFF);
 *   0xCF9  reset control (pm.c: reset_handler): 8-bit only; RST_CPU
 *          (bit 2, e.g. 0x06) -> vm_suspend(RESET).
 * A handler refuses an access of the wrong size (-1), and bhyverun.c
 * vmexit_inout then prints "Unhandled ..." and aborts bhyve.  pm.c asserts
 * that vm_suspend succeeded or found the VM already suspending (EALREADY).
 * Other ports read all ones and ignore writes (inout.c: default_inout,
 * strictio off).
 */
#include <assert.h>
#include <errno.h>
#include <stdio.h>
#include <unistd.h>

#include "bhyve_common.h"

#define	CONSOLE_PORT	0xE9
#define	PM1A_CNT_ADDR	0x404
#define	RESET_PORT	0xCF9
#define	GUEST_NIO_PORT	0x488	/* bhyverun.c: guest upcalls */
#define	PM1_SCI_EN	0x0001
#define	PM1_SLP_TYP	0x1c00
#define	PM1_SLP_EN	0x2000
#define	PM1_ALWAYS_ZERO	0xc003

typedef int (*inout_func_t)(struct vmctx *ctx, int in, int port, int bytes,
    uint32_t *eax);

static uint16_t pm1_control;
static uint8_t reset_control;

/* uart_emul.c UART_IO_BAR_SIZE: eight registers per COM port. */
#define	UART_IO_BAR_SIZE	8

static struct {
	int		base;
	struct bhyve_uart *uart;
} uart_ports[BHYVE_LPC_UARTS];
static int nuart_ports;

void
bhyve_register_uart(int base, struct bhyve_uart *uart)
{

	assert(nuart_ports < BHYVE_LPC_UARTS);
	uart_ports[nuart_ports].base = base;
	uart_ports[nuart_ports].uart = uart;
	nuart_ports++;
}

/* The COM port whose registers include `port`, or NULL. */
static struct bhyve_uart *
uart_at(int port, int *offset)
{
	int i;

	for (i = 0; i < nuart_ports; i++) {
		if (port >= uart_ports[i].base &&
		    port < uart_ports[i].base + UART_IO_BAR_SIZE) {
			*offset = port - uart_ports[i].base;
			return (uart_ports[i].uart);
		}
	}
	return (NULL);
}

static void
suspend(struct vmctx *ctx, int how)
{
	int error;

	error = vm_suspend(ctx, how);
	assert(error == 0 || errno == EALREADY);
}

static int
console_handler(struct vmctx *ctx, int in, int port, int bytes, uint32_t *eax)
{
	uint8_t c;

	(void)ctx;
	(void)port;
	(void)bytes;
	if (in) {
		*eax = 0xffffffff;
		return (0);
	}
	c = (uint8_t)*eax;
	(void)!write(STDOUT_FILENO, &c, 1);
	return (0);
}

/* pm.c: pm1_control_handler */
static int
pm1_control_handler(struct vmctx *ctx, int in, int port, int bytes,
    uint32_t *eax)
{

	(void)port;
	if (bytes != 2)
		return (-1);
	if (in)
		*eax = pm1_control;
	else {
		pm1_control = (pm1_control & PM1_SCI_EN) |
		    (*eax & ~(PM1_SLP_EN | PM1_ALWAYS_ZERO));
		if ((*eax & PM1_SLP_EN) != 0 &&
		    ((pm1_control & PM1_SLP_TYP) >> 10) == 5)
			suspend(ctx, VM_SUSPEND_POWEROFF);
	}
	return (0);
}

/* pm.c: reset_handler */
static int
reset_handler(struct vmctx *ctx, int in, int port, int bytes, uint32_t *eax)
{

	(void)port;
	if (bytes != 1)
		return (-1);
	if (in)
		*eax = reset_control;
	else {
		reset_control = (uint8_t)*eax;
		if ((reset_control & 0x4) != 0)
			suspend(ctx, VM_SUSPEND_RESET);
	}
	return (0);
}

/* inout.c: default_inout */
static int
default_inout(struct vmctx *ctx, int in, int port, int bytes, uint32_t *eax)
{

	(void)ctx;
	(void)port;
	if (in)
		*eax = bytes == 1 ? 0xff : bytes == 2 ? 0xffff : 0xffffffff;
	return (0);
}

static inout_func_t
port_handler(int port)
{

	switch (port) {
	case CONSOLE_PORT:
		return (console_handler);
	case PM1A_CNT_ADDR:
		return (pm1_control_handler);
	case RESET_PORT:
		return (reset_handler);
	default:
		return (default_inout);
	}
}

static uint32_t
size2mask(int bytes)
{

	return (bytes == 1 ? 0xff : bytes == 2 ? 0xffff : 0xffffffff);
}

/*
 * inout.c: emulate_inout for a non-string access: the handler sees the
 * low bytes of the exit's eax; an IN result replaces them and goes to RAX
 * (vm_set_register with the 32-bit eax).  String I/O: no lab device does
 * it (the lab's x86 subset has no ins/outs), so it is skipped.
 */
static int
emulate_inout(struct vmctx *ctx, int vcpu, const struct vm_exit *vme)
{
	struct bhyve_uart *uart;
	uint32_t eax, val;
	int bytes, error, in, offset, retval;

	bytes = vme->u.inout.bytes;
	in = vme->u.inout.in;
	assert(bytes == 1 || bytes == 2 || bytes == 4);
	if (vme->u.inout.string)
		return (0);
	eax = vme->u.inout.eax;
	val = eax & size2mask(bytes);
	uart = uart_at(vme->u.inout.port, &offset);
	if (uart != NULL)
		retval = bhyve_uart_io(uart, in, offset, bytes, &val);
	else
		retval = port_handler(vme->u.inout.port)(ctx, in,
		    vme->u.inout.port, bytes, &val);
	if (retval == 0 && in) {
		eax &= ~size2mask(bytes);
		eax |= val & size2mask(bytes);
		error = vm_set_register(ctx, vcpu, VM_REG_GUEST_RAX, eax);
		assert(error == 0);
	}
	return (retval);
}

/*
 * bhyverun.c: vmexit_inout (13.x and 14.0 alike): an OUT to the notify
 * port is ignored; a handler error prints the access and aborts bhyve.
 */
int
bhyve_vmexit_inout(struct vmctx *ctx, int vcpu, const struct vm_exit *vme)
{
	int bytes, in;

	bytes = vme->u.inout.bytes;
	in = vme->u.inout.in;
	if (!in && vme->u.inout.port == GUEST_NIO_PORT)
		return (VMEXIT_CONTINUE);	/* vmexit_handle_notify */
	if (emulate_inout(ctx, vcpu, vme) != 0) {
		fprintf(stderr, "Unhandled %s%c 0x%04x at 0x%lx\n",
		    in ? "in" : "out",
		    bytes == 1 ? 'b' : (bytes == 2 ? 'w' : 'l'),
		    vme->u.inout.port, (unsigned long)vme->rip);
		return (VMEXIT_ABORT);
	}
	return (VMEXIT_CONTINUE);
}
