/*
 * bhyve_uart.c: the 16550 UART that bhyve's LPC device puts at COM1 (0x3F8)
 * and COM2 (0x2F8), as usr.sbin/bhyve/uart_emul.c models it (read at
 * freebsd-src 181fc50d, read_file id 3954739834) behind pci_lpc.c's
 * lpc_uart_io_handler (08b05de1, id 1220579157):
 *
 *   - a 1-byte access reads or writes the register at port - base; a 2-byte
 *     access is two, at offset and offset + 1; any other size is refused
 *     (-1, which bhyverun.c's vmexit_inout reports as unhandled);
 *   - with LCR.DLAB, offsets 0 and 1 are the divisor latch;
 *   - THR: in loopback mode (MCR bit 4) the byte goes to the receive FIFO
 *     (LSR.OE when it is full), else to the backend, else it is dropped;
 *   - LSR reads always show THRE and TEMT ("Transmitter is always ready for
 *     more data"), RXRDY while the receive FIFO holds a byte; OE is cleared
 *     by the read;
 *   - IIR: the highest pending reason among line status, received data,
 *     THRE (cleared by the read) and modem status, each only if enabled in
 *     IER; IER keeps its low four bits; MCR its low five;
 *   - FCR: switching the FIFO on or off resets the receive FIFO (16 bytes
 *     with the FIFO, else 1);
 *   - MSR: DCD and DSR asserted outside loopback, MCR's lines reflected in
 *     loopback, delta bits set on changes and cleared by a read.
 *
 * Backends (uart_set_backend -> uart_stdio_backend / uart_tty_backend):
 * "stdio", once per process, reads descriptor 0 and writes descriptor 1,
 * as every bhyve since r346550 (head, 2019; stable/12 r352720, 2019-09-25:
 * "Use separate descriptors in bhyve's stdio uart backend", review D19788)
 * does: struct ttyfd has rfd = STDIN_FILENO and wfd = STDOUT_FILENO (13.x
 * uart_emul.c, 14.x uart_backend.c, read ids 663256314, 1056407993; the
 * older one-descriptor form, 181fc50d id 3954739834, wrote to fd 0).  Both
 * are made non-blocking; only the read side is limited (CAP_EVENT,
 * CAP_IOCTL, CAP_READ and the ioctls TIOCGETA, TIOCSETA, TIOCGWINSZ) and
 * put in raw mode (ttyopen: cfmakeraw, CLOCAL; restored at exit).  Any
 * other name is a tty path opened O_RDWR | O_NONBLOCK, which must be a
 * terminal, read and written through one descriptor limited to CAP_EVENT,
 * CAP_IOCTL, CAP_READ, CAP_WRITE and those ioctls.  The lab writes, and
 * reads only where bhyve flushes unread input (rxfifo_reset, when software
 * switches the FIFO): bhyve's mevent reader of the backend (guest input)
 * and interrupts (vm_isa_pulse_irq) are not modelled, so the receive FIFO
 * fills only in loopback mode.  ttyopen here skips tcsetattr when
 * tcgetattr fails (not a terminal); bhyve calls it regardless.
 */
#define	LAB_FBSD_WEAK
#include <errno.h>
#include <err.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "bhyve_common.h"

/* dev/ic/ns16550.h: register offsets and bits. */
#define	REG_DATA	0
#define	REG_IER		1
#define	REG_IIR		2
#define	REG_FCR		2
#define	REG_LCR		3
#define	REG_MCR		4
#define	REG_LSR		5
#define	REG_MSR		6
#define	REG_SCR		7
#define	REG_DLL		0
#define	REG_DLH		1
#define	IER_ERXRDY	0x01
#define	IER_ETXRDY	0x02
#define	IER_ERLS	0x04
#define	IER_EMSC	0x08
#define	IIR_NOPEND	0x01
#define	IIR_TXRDY	0x02
#define	IIR_RLS		0x06
#define	IIR_RXTOUT	0x0c
#define	IIR_MLSC	0x00
#define	IIR_FIFO_MASK	0xc0
#define	FCR_ENABLE	0x01
#define	FCR_RCV_RST	0x02
#define	FCR_DMA		0x08
#define	FCR_RX_MASK	0xc0
#define	LCR_DLAB	0x80
#define	MCR_DTR		0x01
#define	MCR_RTS		0x02
#define	MCR_OUT1	0x04
#define	MCR_OUT2	0x08
#define	MCR_LOOPBACK	0x10
#define	LSR_RXRDY	0x01
#define	LSR_OE		0x02
#define	LSR_THRE	0x20
#define	LSR_TEMT	0x40
#define	MSR_DCTS	0x01
#define	MSR_DDSR	0x02
#define	MSR_TERI	0x04
#define	MSR_DDCD	0x08
#define	MSR_CTS		0x10
#define	MSR_DSR		0x20
#define	MSR_RI		0x40
#define	MSR_DCD		0x80
#define	MSR_DELTA_MASK	0x0f

/* uart_emul.c: FIFOSZ, DEFAULT_RCLK / DEFAULT_BAUD / 16. */
#define	FIFOSZ		16
#define	DEFAULT_DIVISOR	(1843200 / 9600 / 16)

/* FreeBSD's terminal ioctls (sys/ttycom.h), for cap_ioctls_limit. */
#define	FBSD_TIOCGETA	0x402c7413UL
#define	FBSD_TIOCSETA	0x802c7414UL
#define	FBSD_TIOCGWINSZ	0x40087468UL

struct rxfifo {
	uint8_t	buf[FIFOSZ];
	int	rindex, windex, num, size;
};

struct bhyve_uart {
	uint8_t	data, ier, lcr, mcr, lsr, msr, fcr, scr, dll, dlh;
	bool	thre_int_pending;
	struct rxfifo rx;
	int	rfd;		/* the backend's read side, or -1 */
	int	wfd;		/* its write side (== rfd but for stdio), or -1 */
};

static bool uart_stdio;		/* stdio is taken by one UART */
static struct termios stdio_orig;

/* uart_emul.c: rxfifo_reset, which also drops unread input of the backend. */
static void
rxfifo_reset(struct bhyve_uart *sc, int size)
{
	char flushbuf[32];

	memset(&sc->rx, 0, sizeof(sc->rx));
	sc->rx.size = size;
	if (sc->rfd >= 0) {
		while (read(sc->rfd, flushbuf, sizeof(flushbuf)) ==
		    (ssize_t)sizeof(flushbuf))
			;
	}
}

static int
rxfifo_putchar(struct bhyve_uart *sc, uint8_t ch)
{
	struct rxfifo *f = &sc->rx;

	if (f->num >= f->size)
		return (-1);
	f->buf[f->windex] = ch;
	f->windex = (f->windex + 1) % f->size;
	f->num++;
	return (0);
}

static int
rxfifo_getchar(struct bhyve_uart *sc)
{
	struct rxfifo *f = &sc->rx;
	int c;

	if (f->num == 0)
		return (-1);
	c = f->buf[f->rindex];
	f->rindex = (f->rindex + 1) % f->size;
	f->num--;
	return (c);
}

static uint8_t
modem_status(uint8_t mcr)
{
	uint8_t msr;

	if ((mcr & MCR_LOOPBACK) == 0)
		return (MSR_DCD | MSR_DSR);
	msr = 0;
	if (mcr & MCR_RTS)
		msr |= MSR_CTS;
	if (mcr & MCR_DTR)
		msr |= MSR_DSR;
	if (mcr & MCR_OUT1)
		msr |= MSR_RI;
	if (mcr & MCR_OUT2)
		msr |= MSR_DCD;
	return (msr);
}

static uint8_t
intr_reason(const struct bhyve_uart *sc)
{

	if ((sc->lsr & LSR_OE) != 0 && (sc->ier & IER_ERLS) != 0)
		return (IIR_RLS);
	if (sc->rx.num > 0 && (sc->ier & IER_ERXRDY) != 0)
		return (IIR_RXTOUT);
	if (sc->thre_int_pending && (sc->ier & IER_ETXRDY) != 0)
		return (IIR_TXRDY);
	if ((sc->msr & MSR_DELTA_MASK) != 0 && (sc->ier & IER_EMSC) != 0)
		return (IIR_MLSC);
	return (IIR_NOPEND);
}

struct bhyve_uart *
bhyve_uart_init(void)
{
	struct bhyve_uart *sc;

	sc = calloc(1, sizeof(*sc));
	if (sc == NULL)
		err(4, "uart");
	sc->rfd = sc->wfd = -1;
	sc->dll = DEFAULT_DIVISOR & 0xff;
	sc->dlh = DEFAULT_DIVISOR >> 8;
	sc->msr = modem_status(sc->mcr);
	rxfifo_reset(sc, 1);	/* no FIFO until enabled by software */
	return (sc);
}

static void
ttyclose(void)
{

	tcsetattr(STDIN_FILENO, TCSANOW, &stdio_orig);
}

static void
ttyopen(int fd)
{
	struct termios orig, raw;

	if (tcgetattr(fd, &orig) != 0)
		return;
	raw = orig;
	cfmakeraw(&raw);
	raw.c_cflag |= CLOCAL;
	tcsetattr(fd, TCSANOW, &raw);
	if (fd == STDIN_FILENO) {
		stdio_orig = orig;
		atexit(ttyclose);
	}
}

static const cap_ioctl_t tty_ioctls[] = {
	FBSD_TIOCGETA, FBSD_TIOCSETA, FBSD_TIOCGWINSZ,
};

static void
limit_backend(int fd, bool writable)
{
	cap_rights_t rights;

	if (writable)
		cap_rights_init(&rights, CAP_EVENT, CAP_IOCTL, CAP_READ,
		    CAP_WRITE);
	else
		cap_rights_init(&rights, CAP_EVENT, CAP_IOCTL, CAP_READ);
	if (cap_rights_limit(fd, &rights) == -1 && errno != ENOSYS)
		errx(EX_OSERR, "Unable to apply rights for sandbox");
	if (cap_ioctls_limit(fd, tty_ioctls,
	    sizeof(tty_ioctls) / sizeof(tty_ioctls[0])) == -1 &&
	    errno != ENOSYS)
		errx(EX_OSERR, "Unable to apply rights for sandbox");
}

/* uart_emul.c: uart_stdio_backend: read fd 0, write fd 1. */
static int
stdio_backend(struct bhyve_uart *sc)
{

	if (uart_stdio)
		return (-1);
	sc->rfd = STDIN_FILENO;
	sc->wfd = STDOUT_FILENO;
	if (fcntl(sc->rfd, F_SETFL, O_NONBLOCK) != 0)
		return (-1);
	if (fcntl(sc->wfd, F_SETFL, O_NONBLOCK) != 0)
		return (-1);
	limit_backend(sc->rfd, false);
	uart_stdio = true;
	return (0);
}

/* uart_emul.c: uart_tty_backend: one read-write descriptor, a terminal. */
static int
tty_backend(struct bhyve_uart *sc, const char *path)
{
	int fd;

	fd = open(path, O_RDWR | O_NONBLOCK);
	if (fd < 0)
		return (-1);
	if (!isatty(fd)) {
		close(fd);
		return (-1);
	}
	sc->rfd = sc->wfd = fd;
	limit_backend(fd, true);
	return (0);
}

/* uart_emul.c: uart_set_backend (uart_tty_open); -1 when it cannot be used. */
int
bhyve_uart_set_backend(struct bhyve_uart *sc, const char *backend)
{
	int error;

	if (backend == NULL)
		return (0);
	if (strcmp(backend, "stdio") == 0)
		error = stdio_backend(sc);
	else
		error = tty_backend(sc, backend);
	if (error != 0) {
		sc->rfd = sc->wfd = -1;
		return (-1);
	}
	ttyopen(sc->rfd);
	return (0);
}

/* uart_emul.c: uart_write */
static void
uart_write(struct bhyve_uart *sc, int offset, uint8_t value)
{
	uint8_t msr;

	if ((sc->lcr & LCR_DLAB) != 0 && offset == REG_DLL) {
		sc->dll = value;
		return;
	}
	if ((sc->lcr & LCR_DLAB) != 0 && offset == REG_DLH) {
		sc->dlh = value;
		return;
	}
	switch (offset) {
	case REG_DATA:
		if (sc->mcr & MCR_LOOPBACK) {
			if (rxfifo_putchar(sc, value) != 0)
				sc->lsr |= LSR_OE;
		} else if (sc->wfd >= 0) {
			(void)!write(sc->wfd, &value, 1);
		}
		sc->thre_int_pending = true;
		break;
	case REG_IER:
		/* THRE is always reported: re-enabling its interrupt raises it. */
		if ((sc->ier & IER_ETXRDY) == 0 && (value & IER_ETXRDY) != 0)
			sc->thre_int_pending = true;
		sc->ier = value & 0x0f;
		break;
	case REG_FCR:
		if ((sc->fcr & FCR_ENABLE) != (value & FCR_ENABLE))
			rxfifo_reset(sc, (value & FCR_ENABLE) ? FIFOSZ : 1);
		if ((value & FCR_ENABLE) == 0) {
			sc->fcr = 0;
		} else {
			if ((value & FCR_RCV_RST) != 0)
				rxfifo_reset(sc, FIFOSZ);
			sc->fcr = value & (FCR_ENABLE | FCR_DMA | FCR_RX_MASK);
		}
		break;
	case REG_LCR:
		sc->lcr = value;
		break;
	case REG_MCR:
		sc->mcr = value & 0x1f;
		msr = modem_status(sc->mcr);
		if ((msr & MSR_CTS) ^ (sc->msr & MSR_CTS))
			sc->msr |= MSR_DCTS;
		if ((msr & MSR_DSR) ^ (sc->msr & MSR_DSR))
			sc->msr |= MSR_DDSR;
		if ((msr & MSR_DCD) ^ (sc->msr & MSR_DCD))
			sc->msr |= MSR_DDCD;
		if ((sc->msr & MSR_RI) != 0 && (msr & MSR_RI) == 0)
			sc->msr |= MSR_TERI;
		sc->msr = (sc->msr & MSR_DELTA_MASK) | msr;
		break;
	case REG_SCR:
		sc->scr = value;
		break;
	default:	/* LSR and MSR are read-only */
		break;
	}
}

/* uart_emul.c: uart_read */
static uint8_t
uart_read(struct bhyve_uart *sc, int offset)
{
	uint8_t reason, reg;

	if ((sc->lcr & LCR_DLAB) != 0 && offset == REG_DLL)
		return (sc->dll);
	if ((sc->lcr & LCR_DLAB) != 0 && offset == REG_DLH)
		return (sc->dlh);
	switch (offset) {
	case REG_DATA:
		return ((uint8_t)rxfifo_getchar(sc));
	case REG_IER:
		return (sc->ier);
	case REG_IIR:
		reason = intr_reason(sc);
		if (reason == IIR_TXRDY)
			sc->thre_int_pending = false;
		return (((sc->fcr & FCR_ENABLE) ? IIR_FIFO_MASK : 0) | reason);
	case REG_LCR:
		return (sc->lcr);
	case REG_MCR:
		return (sc->mcr);
	case REG_LSR:
		sc->lsr |= LSR_TEMT | LSR_THRE;
		if (sc->rx.num > 0)
			sc->lsr |= LSR_RXRDY;
		else
			sc->lsr &= ~LSR_RXRDY;
		reg = sc->lsr;
		sc->lsr &= ~LSR_OE;
		return (reg);
	case REG_MSR:
		reg = sc->msr;
		sc->msr &= ~MSR_DELTA_MASK;
		return (reg);
	case REG_SCR:
		return (sc->scr);
	default:
		return (0xff);
	}
}

/* pci_lpc.c: lpc_uart_io_handler */
int
bhyve_uart_io(struct bhyve_uart *sc, int in, int offset, int bytes,
    uint32_t *eax)
{

	switch (bytes) {
	case 1:
		if (in)
			*eax = uart_read(sc, offset);
		else
			uart_write(sc, offset, (uint8_t)*eax);
		return (0);
	case 2:
		if (in) {
			*eax = uart_read(sc, offset);
			*eax |= (uint32_t)uart_read(sc, offset + 1) << 8;
		} else {
			uart_write(sc, offset, (uint8_t)*eax);
			uart_write(sc, offset + 1, (uint8_t)(*eax >> 8));
		}
		return (0);
	default:
		return (-1);
	}
}
