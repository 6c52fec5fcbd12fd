/*
 * bridge_conn.c: each calling thread's connection to the kernel model
 * (docs/internals.md section 2).  One connection per thread carries at most
 * one system call at a time, so a vCPU thread blocked in VM_RUN never holds
 * up another thread.  The connection is opened with raw system calls: it is
 * the kernel's own channel, not subject to the modelled capability mode, and
 * invisible to interposers.
 *
 * Nothing here allocates: frames are built and received in the caller's
 * stack buffers; COPYIN/COPYOUT data is streamed in fixed-size chunks.
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

#define	CHUNK	4096

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

static int
skip_all(int fd, size_t len)
{
	uint8_t sink[256];
	size_t n;

	while (len > 0) {
		n = len < sizeof(sink) ? len : sizeof(sink);
		if (recv_all(fd, sink, n) != 0)
			return (-1);
		len -= n;
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

/* COPYIN: read [addr, addr+len) of our memory for the model. */
static int
serve_copyin(int fd, uint64_t addr, uint64_t len)
{
	uint8_t head[FRAME_COPYIN_HEAD], chunk[CHUNK];
	uint64_t off;
	size_t n;
	int err;

	if (len > FRAME_MAX - 8) {
		frame_copyin_head(head, FBSD_EINVAL, 0);
		return (send_all(fd, head, sizeof(head)));
	}
	/* Check the whole range before committing to a length. */
	err = 0;
	for (off = 0; off < len && err == 0; off += n) {
		n = len - off < CHUNK ? (size_t)(len - off) : CHUNK;
		err = self_read(chunk, addr + off, n);
	}
	if (err != 0) {
		frame_copyin_head(head, FBSD_EFAULT, 0);
		return (send_all(fd, head, sizeof(head)));
	}
	frame_copyin_head(head, 0, (size_t)len);
	if (send_all(fd, head, sizeof(head)) != 0)
		return (-1);
	if (len <= CHUNK)
		return (send_all(fd, chunk, (size_t)len));
	for (off = 0; off < len; off += n) {
		n = len - off < CHUNK ? (size_t)(len - off) : CHUNK;
		if (self_read(chunk, addr + off, n) != 0)
			memset(chunk, 0, n);	/* unmapped meanwhile */
		if (send_all(fd, chunk, n) != 0)
			return (-1);
	}
	return (0);
}

/* COPYOUT: write the frame's data to our memory at addr. */
static int
serve_copyout(int fd, uint64_t addr, size_t len)
{
	uint8_t done[FRAME_HDR_LEN + 4], chunk[CHUNK];
	size_t off, n;
	int err;

	err = 0;
	for (off = 0; off < len; off += n) {
		n = len - off < CHUNK ? len - off : CHUNK;
		if (recv_all(fd, chunk, n) != 0)
			return (-1);
		if (err == 0)
			err = self_write(addr + off, chunk, n);
	}
	frame_copyout_done(done, err != 0 ? FBSD_EFAULT : 0);
	return (send_all(fd, done, sizeof(done)));
}

static int
conn_lost(const char *what)
{

	conn_drop();
	bridge_complain(what);
	errno = ENXIO;
	return (-1);
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
	uint8_t hdr[FRAME_HDR_LEN], body[16];
	uint32_t bodylen, type;
	size_t keep;
	int fd;

	fd = conn_get();
	if (fd < 0)
		return (-1);
	if (send_all(fd, req, reqlen) != 0 ||
	    (taillen > 0 && send_all(fd, tail, taillen) != 0))
		return (conn_lost("lost the connection to the kernel model"));
	for (;;) {
		if (recv_all(fd, hdr, sizeof(hdr)) != 0)
			return (conn_lost("lost the connection to the kernel "
			    "model"));
		if (frame_parse_header(hdr, &bodylen, &type) != 0)
			goto protocol;
		switch (type) {
		case FRAME_REPLY:
			if (bodylen < 4 || recv_all(fd, body, 4) != 0)
				goto protocol;
			*ret = (int32_t)get_u32(body);
			bodylen -= 4;
			keep = bodylen < paycap ? bodylen : paycap;
			if (keep > 0 && recv_all(fd, payload, keep) != 0)
				goto protocol;
			if (skip_all(fd, bodylen - keep) != 0)
				goto protocol;
			if (paylen != NULL)
				*paylen = bodylen;
			return (0);
		case FRAME_COPYIN:
			if (bodylen != 16 || recv_all(fd, body, 16) != 0)
				goto protocol;
			if (serve_copyin(fd, get_u64(body), get_u64(body + 8)))
				goto protocol;
			break;
		case FRAME_COPYOUT:
			if (bodylen < 8 || recv_all(fd, body, 8) != 0)
				goto protocol;
			if (serve_copyout(fd, get_u64(body), bodylen - 8) != 0)
				goto protocol;
			break;
		default:
			goto protocol;
		}
	}
protocol:
	conn_drop();
	bridge_complain("protocol error on the kernel model connection");
	errno = EIO;
	return (-1);
}
