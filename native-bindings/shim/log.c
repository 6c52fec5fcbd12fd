/*
 * log.c: what the interposer says goes to bhyve's standard error and to
 * syslog (tag "vmm-compat", facility daemon).
 *
 * vm-bhyve sends bhyve's stderr to /dev/null unless the guest has
 * debug="yes" (vm-bhyve lib/vm-run: `2> "${_logpath}"`), so a refusal on
 * stderr alone is lost.  bhyve enters capability mode before its vCPUs run,
 * and from then on connect(2) to a path fails (ECAPMODE), so the datagram
 * socket to syslogd is connected here, from the library's constructor, and
 * every later line is one send(2) on it, which capability mode allows (the
 * socket holds all rights: bhyve limits only the descriptors it opens).
 * FreeBSD's libc syslog(3) would do the same after openlog(LOG_NDELAY)
 * (lib/libc/gen/syslog.c: connectlog() once, then send()); the line here
 * has its format: "<PRI>", ctime_r()+4 as "%.15s ", "TAG[PID]: ", message.
 * The time zone is loaded (tzset) before capability mode too.
 *
 * If syslogd was not there at start-up the connection is tried again at each
 * line, which works until capability mode.  Not on any ioctl path.
 */
#define	_GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"

#define	LOG_TAG		"vmm-compat"

static int log_fd = -1;
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

/* Called with log_lock held. */
static void
log_connect_locked(void)
{
	struct sockaddr_un sun;
	int s;

	if (log_fd >= 0)
		return;
	s = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (s < 0)
		return;
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", _PATH_LOG);
	if (connect(s, (const struct sockaddr *)&sun, sizeof(sun)) != 0) {
		close(s);
		return;
	}
	log_fd = s;
}

void
shim_log_open(void)
{
	int saved;

	saved = errno;
	tzset();
	pthread_mutex_lock(&log_lock);
	log_connect_locked();
	pthread_mutex_unlock(&log_lock);
	errno = saved;
}

static void
shim_vlog(int priority, const char *fmt, va_list ap)
{
	char line[512], msg[400], when[32];
	time_t now;
	va_list copy;
	int n, saved;

	saved = errno;
	va_copy(copy, ap);
	vsnprintf(msg, sizeof(msg), fmt, copy);
	va_end(copy);

	/* stderr: one write, so that lines from parker threads do not interleave. */
	n = snprintf(line, sizeof(line), "vmm-compat[%d]: %s\n", (int)getpid(), msg);
	if (n > (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 1;
	if (n > 0)
		(void)write(STDERR_FILENO, line, (size_t)n);

	now = time(NULL);
	if (ctime_r(&now, when) == NULL)
		snprintf(when, sizeof(when), "%24s", "");
	n = snprintf(line, sizeof(line), "<%d>%.15s %s[%d]: %s",
	    LOG_DAEMON | priority, when + 4, LOG_TAG, (int)getpid(), msg);
	if (n > (int)sizeof(line) - 1)
		n = (int)sizeof(line) - 1;
	pthread_mutex_lock(&log_lock);
	log_connect_locked();
	if (log_fd >= 0 && n > 0)
		(void)send(log_fd, line, (size_t)n, 0);
	pthread_mutex_unlock(&log_lock);
	errno = saved;
}

void
shim_warn(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	shim_vlog(LOG_WARNING, fmt, ap);
	va_end(ap);
}

void
shim_error(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	shim_vlog(LOG_ERR, fmt, ap);
	va_end(ap);
}
