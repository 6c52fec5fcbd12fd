/*
 * daemon_link.c: the interposer's side of the compat protocol
 * (docs/internals.md section 5).  Fixed-layout little-endian frames built
 * with memcpy at documented offsets: no parser library, no allocation.
 *
 * The link is connected at open() of the vmm device, before bhyve's
 * cap_enter.  Reconnects use connectat(dirfd, ...), the only way to reach a
 * named socket in capability mode (capsicum(4); r333120).
 */
#define	_GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#ifndef __FreeBSD__
#include "fbsd_compat.h"
#endif

#include "shim.h"

#define	CONNECT_TIMEOUT_MS	2000
#define	PLAN_TIMEOUT_MS		10000
/* An answer already sent when HELLO could not be: it is in the socket, or never comes. */
#define	REFUSED_READ_MS		100
#define	RETRY_INTERVAL_NS	1000000000ULL

#ifndef MSG_NOSIGNAL
#define	MSG_NOSIGNAL		0
#endif

static void
put32(uint8_t *p, uint32_t v)
{

	memcpy(p, &v, 4);	/* amd64: host order is little-endian */
}

static void
put16(uint8_t *p, uint16_t v)
{

	memcpy(p, &v, 2);
}

static void
header(uint8_t *frame, uint16_t type, uint32_t len)
{

	put32(frame, len);
	put16(frame + 4, VMC_PROTO_VERSION);
	put16(frame + 6, type);
}

static int
send_all(int fd, const uint8_t *buf, size_t len, int flags)
{
	ssize_t n;

	while (len > 0) {
		n = send(fd, buf, len, MSG_NOSIGNAL | flags);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return (-1);
		}
		buf += n;
		len -= (size_t)n;
	}
	return (0);
}

static int
recv_all(int fd, uint8_t *buf, size_t len, int timeout_ms)
{
	struct pollfd pfd;
	ssize_t n;
	int r;

	while (len > 0) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		r = poll(&pfd, 1, timeout_ms);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0) {
			errno = r == 0 ? ETIMEDOUT : errno;
			return (-1);
		}
		n = recv(fd, buf, len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			errno = n == 0 ? ECONNRESET : errno;
			return (-1);
		}
		buf += n;
		len -= (size_t)n;
	}
	return (0);
}

/* reply_read's source: the link's socket, each read bounded by a timeout. */
struct link_source {
	int	fd;
	int	timeout_ms;
};

static int
link_source_read(void *ctx, uint8_t *buf, size_t len)
{
	const struct link_source *src = ctx;

	return (recv_all(src->fd, buf, len, src->timeout_ms));
}

/* Reads one reply (daemon_reply.c); ERROR bodies land in why. */
static int
recv_reply(int fd, uint16_t want, uint8_t *body, size_t bodylen,
    char *why, size_t whylen, int timeout_ms, enum reply_verdict *verdict)
{
	struct link_source src = { fd, timeout_ms };

	return (reply_read(link_source_read, &src, want, body, bodylen, why,
	    whylen, verdict));
}

static enum link_result
link_result_of(enum reply_verdict verdict)
{

	switch (verdict) {
	case REPLY_REFUSED:
		return (LINK_REFUSED);
	case REPLY_BUSY:
		return (LINK_BUSY);
	default:
		return (LINK_DOWN);
	}
}

typedef int (*connectat_fn)(int, int, const struct sockaddr *, socklen_t);

static int
connect_socket(char *why, size_t whylen)
{
	static connectat_fn connectat_p;
	struct sockaddr_un sun;
	int s, r;

	if (shim_config.dirfd < 0) {
		snprintf(why, whylen, "VMM_COMPAT_SOCKET_DIR is not set");
		return (-1);
	}
	s = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (s < 0) {
		snprintf(why, whylen, "socket: %s", strerror(errno));
		return (-1);
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (connectat_p == NULL)
		connectat_p = (connectat_fn)dlsym(RTLD_DEFAULT, "connectat");
	if (connectat_p != NULL) {
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", VMC_SOCKET_NAME);
		r = connectat_p(shim_config.dirfd, s,
		    (const struct sockaddr *)&sun, sizeof(sun));
	} else {
		/* No connectat (plain Linux): works until capability mode. */
		if (strlen(shim_config.socket_dir) + sizeof(VMC_SOCKET_NAME) + 1 >
		    sizeof(sun.sun_path)) {
			snprintf(why, whylen, "socket path too long");
			close(s);
			return (-1);
		}
		memcpy(sun.sun_path, shim_config.socket_dir,
		    strlen(shim_config.socket_dir));
		strcat(sun.sun_path, "/" VMC_SOCKET_NAME);
		r = connect(s, (const struct sockaddr *)&sun, sizeof(sun));
	}
	if (r != 0) {
		snprintf(why, whylen, "%s/%s: %s", shim_config.socket_dir,
		    VMC_SOCKET_NAME, strerror(errno));
		close(s);
		return (-1);
	}
	return (s);
}

/* Called with link_lock held. */
static enum link_result
connect_locked(struct vm_session *vs, char *why, size_t whylen)
{
	uint8_t hello[VMC_PROTO_HDR_BYTES + VMC_HELLO_BYTES], welcome[VMC_WELCOME_BYTES];
	struct kernel_facts f, known;
	enum reply_verdict verdict;
	unsigned session;
	int s;

	s = connect_socket(why, whylen);
	if (s < 0)
		return (LINK_DOWN);
	memset(hello, 0, sizeof(hello));
	header(hello, VMC_T_HELLO, VMC_HELLO_BYTES);
	put32(hello + VMC_PROTO_HDR_BYTES + VMC_HELLO_PID, (uint32_t)getpid());
	put32(hello + VMC_PROTO_HDR_BYTES + VMC_HELLO_FLAGS, 0);
	memcpy(hello + VMC_PROTO_HDR_BYTES + VMC_HELLO_VM, vs->name, strlen(vs->name));
	/*
	 * The bhyve's __FreeBSD_version ("1403000"), or "unknown".  Before
	 * generations this field was the fixed "13.1"; a daemon only records it.
	 */
	if (shim_config.bhyve_version > 0)
		snprintf((char *)hello + VMC_PROTO_HDR_BYTES + VMC_HELLO_BHYVE,
		    VMC_HELLO_BHYVE_SIZE, "%d", shim_config.bhyve_version);
	else
		memcpy(hello + VMC_PROTO_HDR_BYTES + VMC_HELLO_BHYVE, "unknown", 7);
	if (send_all(s, hello, sizeof(hello), 0) != 0) {
		/*
		 * A daemon over a limit answers at accept and closes at once,
		 * so HELLO may meet a closed socket: its ERROR is read anyway.
		 */
		int saved = errno;

		if (recv_reply(s, VMC_T_WELCOME, welcome, sizeof(welcome), why,
		    whylen, REFUSED_READ_MS, &verdict) != 0 &&
		    verdict != REPLY_AWAY) {
			close(s);
			return (link_result_of(verdict));
		}
		snprintf(why, whylen, "HELLO: %s", strerror(saved));
		close(s);
		return (LINK_DOWN);
	}
	if (recv_reply(s, VMC_T_WELCOME, welcome, sizeof(welcome), why, whylen,
	    CONNECT_TIMEOUT_MS, &verdict) != 0) {
		close(s);
		return (link_result_of(verdict));
	}
	memset(&f, 0, sizeof(f));
	if (reply_welcome(welcome, &f, &session, why, whylen) != 0) {
		close(s);
		return (LINK_DOWN);
	}
	if (facts_for_variant(f.variant, &known) != 0) {
		snprintf(why, whylen, "daemon named unknown variant %u",
		    (unsigned)f.variant);
		close(s);
		return (LINK_DOWN);
	}
	/*
	 * The facts of the first connection stay: vCPU threads read them
	 * without a lock, and a reconnect must not change the ABI mid-run.
	 */
	if (!vs->facts_known)
		session_set_facts(vs, &f);
	vs->link_session = session;
	vs->link_fd = s;
	return (LINK_OK);
}

enum link_result
link_connect(struct vm_session *vs, char *why, size_t whylen)
{
	enum link_result r;

	pthread_mutex_lock(&vs->link_lock);
	if (vs->link_fd >= 0) {
		pthread_mutex_unlock(&vs->link_lock);
		return (LINK_OK);
	}
	r = connect_locked(vs, why, whylen);
	pthread_mutex_unlock(&vs->link_lock);
	return (r);
}

static void
drop_locked(struct vm_session *vs)
{

	if (vs->link_fd >= 0) {
		close(vs->link_fd);
		vs->link_fd = -1;
	}
}

enum link_result
link_plan(struct vm_session *vs, struct plan_reply *reply, char *why,
    size_t whylen)
{
	uint8_t req[VMC_PROTO_HDR_BYTES + VMC_PLAN_REQUEST_BYTES], body[VMC_PLAN_BYTES];
	enum reply_verdict verdict;

	pthread_mutex_lock(&vs->link_lock);
	if (vs->link_fd < 0 && connect_locked(vs, why, whylen) != LINK_OK) {
		pthread_mutex_unlock(&vs->link_lock);
		return (LINK_DOWN);
	}
	header(req, VMC_T_PLAN_REQUEST, VMC_PLAN_REQUEST_BYTES);
	put32(req + VMC_PROTO_HDR_BYTES + VMC_PLAN_REQUEST_NCPUS,
	    (uint32_t)atomic_load(&vs->ncpus));
	put32(req + VMC_PROTO_HDR_BYTES + VMC_PLAN_REQUEST_BOOT, atomic_load(&vs->boot));
	if (send_all(vs->link_fd, req, sizeof(req), 0) != 0) {
		snprintf(why, whylen, "PLAN_REQUEST: %s", strerror(errno));
		drop_locked(vs);
		pthread_mutex_unlock(&vs->link_lock);
		return (LINK_DOWN);
	}
	if (recv_reply(vs->link_fd, VMC_T_PLAN, body, sizeof(body), why, whylen,
	    PLAN_TIMEOUT_MS, &verdict) != 0) {
		drop_locked(vs);
		pthread_mutex_unlock(&vs->link_lock);
		/* Busy at plan time is not a verdict either: plan alone. */
		return (verdict == REPLY_REFUSED ? LINK_REFUSED : LINK_DOWN);
	}
	/* A plan that cannot be right: the daemon is as good as away. */
	if (reply_plan(body, reply, why, whylen) != 0) {
		drop_locked(vs);
		pthread_mutex_unlock(&vs->link_lock);
		return (LINK_DOWN);
	}
	pthread_mutex_unlock(&vs->link_lock);
	return (LINK_OK);
}

/*
 * Events never block a vCPU thread: a full socket buffer drops the event,
 * a dead daemon is retried at most once a second.
 */
void
link_event(struct vm_session *vs, int kind, int vcpu, int arg)
{
	uint8_t ev[VMC_PROTO_HDR_BYTES + VMC_EVENT_BYTES];
	uint64_t now;
	char why[128];

	now = monotonic_ns();
	memset(ev, 0, sizeof(ev));
	header(ev, VMC_T_EVENT, VMC_EVENT_BYTES);
	put32(ev + VMC_PROTO_HDR_BYTES + VMC_EVENT_KIND, (uint32_t)kind);
	put32(ev + VMC_PROTO_HDR_BYTES + VMC_EVENT_VCPU, (uint32_t)vcpu);
	put32(ev + VMC_PROTO_HDR_BYTES + VMC_EVENT_ARG, (uint32_t)arg);
	memcpy(ev + VMC_PROTO_HDR_BYTES + VMC_EVENT_MONOTONIC_NS, &now, 8);
	pthread_mutex_lock(&vs->link_lock);
	if (vs->link_fd < 0 && now >= vs->link_retry_ns) {
		vs->link_retry_ns = now + RETRY_INTERVAL_NS;
		if (connect_locked(vs, why, sizeof(why)) == LINK_OK &&
		    vs->fallback_pending) {
			vs->fallback_pending = 0;
			uint8_t fb[VMC_PROTO_HDR_BYTES + VMC_EVENT_BYTES];

			memcpy(fb, ev, sizeof(fb));
			put32(fb + VMC_PROTO_HDR_BYTES + VMC_EVENT_KIND, VMC_EV_FALLBACK);
			put32(fb + VMC_PROTO_HDR_BYTES + VMC_EVENT_VCPU, (uint32_t)-1);
			(void)send_all(vs->link_fd, fb, sizeof(fb), MSG_DONTWAIT);
		}
	}
	if (vs->link_fd >= 0) {
		ssize_t n;

		n = send(vs->link_fd, ev, sizeof(ev), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n == (ssize_t)sizeof(ev)) {
			pthread_mutex_unlock(&vs->link_lock);
			return;
		}
		/* A partial frame would desynchronise the stream: drop it. */
		if (n > 0 || (errno != EAGAIN && errno != EWOULDBLOCK))
			drop_locked(vs);
	}
	vs->events_dropped++;
	pthread_mutex_unlock(&vs->link_lock);
}
