/*
 * bridge_conn.c: each calling thread's connection to the kernel model
 * (docs/internals.md section 2).  One connection per thread carries at most
 * one system call at a time, so a vCPU thread blocked in VM_RUN never holds
 * up another thread.  The connection is opened with raw system calls: it is
 * the kernel's own channel, not subject to the modelled capability mode, and
 * invisible to interposers.
 *
 * Nothing here allocates: frames are built and received in the caller's
 * stack buffers; the answer is read by bridge_reply.c.
 */
#define	_GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "bridge.h"

static __thread int conn_fd = -1;
static pthread_key_t conn_key;
static int conn_key_ok;
static int loopback_mode;
static int trace_mode;
static int complained;

static void
raw_close(int fd)
{

	(void)syscall(SYS_close, fd);
}

/* pthread key destructor: the thread is exiting, close its connection. */
static void
conn_destroy(void *value)
{
	int fd;

	fd = (int)(intptr_t)value - 1;
	if (fd >= 0)
		raw_close(fd);
	conn_fd = -1;
}

void
conn_reset_after_fork(void)
{

	/* The child shares the parent's socket: drop our copy, reconnect. */
	if (conn_fd >= 0)
		raw_close(conn_fd);
	conn_fd = -1;
	if (conn_key_ok)
		(void)pthread_setspecific(conn_key, NULL);
	self_reset_pid();
}

__attribute__((constructor)) static void
bridge_init(void)
{
	const char *mode;

	conn_key_ok = pthread_key_create(&conn_key, conn_destroy) == 0;
	mode = getenv("VMMLAB_BRIDGE_MODE");
	loopback_mode = mode != NULL && strcmp(mode, "loopback") == 0;
	mode = getenv("VMMLAB_BRIDGE_TRACE");
	trace_mode = mode != NULL && mode[0] != '\0' && strcmp(mode, "0") != 0;
	(void)pthread_atfork(NULL, NULL, conn_reset_after_fork);
	self_reset_pid();
	(void)bridge_next();
}

int
bridge_loopback(void)
{

	return (loopback_mode);
}

int
bridge_tracing(void)
{

	return (trace_mode);
}

/* VMMLAB_BRIDGE_TRACE: one line per vmm system call on stderr. */
void
bridge_trace(const char *what, unsigned long arg, long ret, int err)
{
	char line[160];
	int n;

	n = snprintf(line, sizeof(line), "vmmlab bridge: [%d] %s %#lx -> %ld%s%s\n",
	    (int)syscall(SYS_gettid), what, arg, ret, ret < 0 ? " " : "",
	    ret < 0 ? strerror(err) : "");
	if (n > 0)
		(void)!write(2, line, (size_t)n < sizeof(line) ? (size_t)n :
		    sizeof(line) - 1);
}

/* One line on stderr, once per process: the bridge never aborts its host. */
void
bridge_complain(const char *what)
{
	char line[512];
	int n;

	if (__atomic_exchange_n(&complained, 1, __ATOMIC_RELAXED))
		return;
	n = snprintf(line, sizeof(line), "vmmlab bridge: %s\n", what);
	if (n > 0)
		(void)!write(2, line, (size_t)n < sizeof(line) ? (size_t)n :
		    sizeof(line) - 1);
}

static int
send_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p;
	ssize_t n;

	p = buf;
	while (len > 0) {
		n = send(fd, p, len, MSG_NOSIGNAL);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return (-1);
		}
		p += n;
		len -= (size_t)n;
	}
	return (0);
}

static int
recv_all(int fd, void *buf, size_t len)
{
	uint8_t *p;
	ssize_t n;

	p = buf;
	while (len > 0) {
		n = recv(fd, p, len, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return (-1);
		}
		if (n == 0)
			return (-1);
		p += n;
		len -= (size_t)n;
	}
	return (0);
}

int
conn_get(void)
{
	struct sockaddr_un sun;
	uint8_t hello[FRAME_HDR_LEN + 4];
	const char *path;
	char msg[400];
	size_t n;
	int fd;

	if (conn_fd >= 0)
		return (conn_fd);
	path = getenv("VMMLAB_KERNEL_SOCK");
	if (path == NULL || path[0] == '\0') {
		bridge_complain("VMMLAB_KERNEL_SOCK is not set: no kernel "
		    "model, vmm operations fail with ENXIO");
		errno = ENXIO;
		return (-1);
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		bridge_complain("VMMLAB_KERNEL_SOCK is too long for a "
		    "Unix socket path");
		errno = ENXIO;
		return (-1);
	}
	strcpy(sun.sun_path, path);
	fd = (int)syscall(SYS_socket, AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		errno = ENXIO;
		return (-1);
	}
	if (syscall(SYS_connect, fd, &sun, sizeof(sun)) != 0) {
		snprintf(msg, sizeof(msg), "cannot reach the kernel model at "
		    "%s (%s): vmm operations fail with ENXIO", path,
		    strerror(errno));
		bridge_complain(msg);
		raw_close(fd);
		errno = ENXIO;
		return (-1);
	}
	n = frame_hello(hello, (uint32_t)getpid());
	if (send_all(fd, hello, n) != 0) {
		raw_close(fd);
		bridge_complain("the kernel model closed the connection");
		errno = ENXIO;
		return (-1);
	}
	conn_fd = fd;
	if (conn_key_ok)
		(void)pthread_setspecific(conn_key, (void *)(intptr_t)(fd + 1));
	return (fd);
}

void
conn_drop(void)
{

	if (conn_fd >= 0)
		raw_close(conn_fd);
	conn_fd = -1;
	if (conn_key_ok)
		(void)pthread_setspecific(conn_key, NULL);
}

static int
conn_lost(const char *what)
{

	conn_drop();
	bridge_complain(what);
	errno = ENXIO;
	return (-1);
}

/* bridge_reply_read's transport: the thread's socket; memory: our own. */
static int
io_recv(void *ctx, void *buf, size_t len)
{

	return (recv_all(*(const int *)ctx, buf, len));
}

static int
io_send(void *ctx, const void *buf, size_t len)
{

	return (send_all(*(const int *)ctx, buf, len));
}

/*
 * One system call: send req (+ tail), serve COPYIN/COPYOUT until the REPLY,
 * store its ret and up to paycap payload bytes (the rest is skipped; the
 * full length goes to *paylen).  Returns 0 with a REPLY, -1 with errno set
 * (ENXIO: no model or connection lost; EIO: protocol violation).
 */
int
conn_call(const void *req, size_t reqlen, const void *tail, size_t taillen,
    int32_t *ret, void *payload, size_t paycap, size_t *paylen)
{
	struct bridge_io io = {
		.recv = io_recv,
		.send = io_send,
		.mem_read = self_read,
		.mem_write = self_write,
	};
	int fd;

	fd = conn_get();
	if (fd < 0)
		return (-1);
	io.ctx = &fd;
	if (send_all(fd, req, reqlen) != 0 ||
	    (taillen > 0 && send_all(fd, tail, taillen) != 0))
		return (conn_lost("lost the connection to the kernel model"));
	switch (bridge_reply_read(&io, ret, payload, paycap, paylen)) {
	case BRIDGE_REPLY_OK:
		return (0);
	case BRIDGE_REPLY_LOST:
		return (conn_lost("lost the connection to the kernel model"));
	default:
		break;
	}
	conn_drop();
	bridge_complain("protocol error on the kernel model connection");
	errno = EIO;
	return (-1);
}
