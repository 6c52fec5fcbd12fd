/*
 * session.c: one vm_session per open /dev/vmm/NAME, and the settings the
 * interposer reads from its environment (set only by `vmm-compat wrap`).
 */
#define	_GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "shim.h"


struct shim_config shim_config = {
	.dirfd = -1,
	.boot_poll_us = 1000,
	.boot_window_ms = 15000,
	.idle_poll_ms = 100,
};

static const struct {
	const char	*name;
	int		variant;
	int		cpuset_bytes;
	int		vmrun_abi;
} variant_table[] = {
	/* kernel-main-side.md section 4: cpuset_t 32 bytes before 14.0. */
	{ "legacy13", VMC_VARIANT_LEGACY13, 32, 13 },
	{ "window", VMC_VARIANT_WINDOW, 32, 13 },
	/* 13.2..13.5: MAXCPU 256, the 144-byte VM_RUN native. */
	{ "fixed13", VMC_VARIANT_FIXED13, 32, 13 },
	/* 14.0: MAXCPU 1024, VM_RUN_13 under COMPAT_FREEBSD13 (GENERIC). */
	{ "fixed14", VMC_VARIANT_FIXED14, 128, 13 },
	{ "main15", VMC_VARIANT_MAIN15, 128, 13 },
};

uint64_t
monotonic_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec);
}

/* "1-3,5,7-9": vCPU ids as ranges, cut with "..." when buf is full. */
void
format_vcpu_list(const struct vcpu_set *set, char *buf, size_t len)
{
	size_t used;
	int first, last, n;

	if (len == 0)
		return;
	buf[0] = '\0';
	used = 0;
	for (first = set_next(set, 0); first >= 0; first = set_next(set, last + 1)) {
		for (last = first; set_has(set, last + 1); last++)
			;
		n = last == first ?
		    snprintf(buf + used, len - used, "%s%d", used ? "," : "", first) :
		    snprintf(buf + used, len - used, "%s%d-%d", used ? "," : "",
		    first, last);
		if (n < 0 || (size_t)n >= len - used) {
			if (len >= 4)
				memcpy(buf + len - 4, "...", 4);
			return;
		}
		used += (size_t)n;
	}
	if (used == 0)
		snprintf(buf, len, "none");
}

const char *
variant_name(int variant)
{
	size_t i;

	for (i = 0; i < sizeof(variant_table) / sizeof(variant_table[0]); i++)
		if (variant_table[i].variant == variant)
			return (variant_table[i].name);
	return ("unknown");
}

int
facts_for_variant(int variant, struct kernel_facts *facts)
{
	size_t i;

	for (i = 0; i < sizeof(variant_table) / sizeof(variant_table[0]); i++) {
		if (variant_table[i].variant == variant) {
			facts->variant = variant;
			facts->cpuset_bytes = variant_table[i].cpuset_bytes;
			facts->vmrun_abi = variant_table[i].vmrun_abi;
			return (0);
		}
	}
	return (-1);
}

static int
variant_by_name(const char *name)
{
	size_t i;

	for (i = 0; i < sizeof(variant_table) / sizeof(variant_table[0]); i++)
		if (strcmp(variant_table[i].name, name) == 0)
			return (variant_table[i].variant);
	return (VMC_VARIANT_UNKNOWN);
}

static unsigned
env_uint(const char *name, unsigned dflt, unsigned min, unsigned max)
{
	const char *value;
	char *end;
	unsigned long n;

	value = getenv(name);
	if (value == NULL || *value == '\0')
		return (dflt);
	errno = 0;
	n = strtoul(value, &end, 10);
	if (errno != 0 || *end != '\0' || n < min || n > max) {
		shim_warn("ignoring %s=%s (not a number from %u to %u)", name,
		    value, min, max);
		return (dflt);
	}
	return ((unsigned)n);
}

/*
 * The daemon leaves "variant=…/cpuset_bytes=…/vmrun_abi=…" beside its socket
 * so that the interposer can follow the plan alone if the daemon is gone.
 * Read now: after cap_enter no path can be opened.
 */
static void
read_variant_cache(void)
{
	char buf[256], *line, *save, *eq;
	struct kernel_facts f;
	ssize_t n;
	int fd;

	fd = openat(shim_config.dirfd, VMC_VARIANT_CACHE_NAME, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return;
	buf[n] = '\0';
	memset(&f, 0, sizeof(f));
	for (line = strtok_r(buf, "\n", &save); line != NULL;
	    line = strtok_r(NULL, "\n", &save)) {
		if ((eq = strchr(line, '=')) == NULL)
			continue;
		*eq++ = '\0';
		if (strcmp(line, "variant") == 0)
			f.variant = variant_by_name(eq);
		else if (strcmp(line, "cpuset_bytes") == 0)
			f.cpuset_bytes = atoi(eq);
		else if (strcmp(line, "vmrun_abi") == 0)
			f.vmrun_abi = atoi(eq);
	}
	if (f.variant == VMC_VARIANT_UNKNOWN || f.cpuset_bytes < 32 ||
	    f.cpuset_bytes > VMC_CPUSET_MAX_BYTES ||
	    (f.vmrun_abi != 13 && f.vmrun_abi != 14))
		return;
	shim_config.cached = f;
	shim_config.cached_known = 1;
}

void shim_read_environment(void);

void
shim_read_environment(void)
{
	const char *dir, *kernel;
	int variant;

	shim_config.require_daemon =
	    env_uint("VMM_COMPAT_REQUIRE_DAEMON", 0, 0, 1);
	shim_config.boot_poll_us =
	    env_uint("VMM_COMPAT_PARKER_BOOT_POLL_US", 1000, 100, 100000);
	shim_config.boot_window_ms =
	    env_uint("VMM_COMPAT_PARKER_BOOT_WINDOW_MS", 15000, 0, 3600000);
	shim_config.idle_poll_ms =
	    env_uint("VMM_COMPAT_PARKER_IDLE_POLL_MS", 100, 1, 10000);
	dir = getenv("VMM_COMPAT_SOCKET_DIR");
	if (dir != NULL && *dir != '\0') {
		snprintf(shim_config.socket_dir, sizeof(shim_config.socket_dir),
		    "%s", dir);
		/* Kept open: connectat(dirfd) works in capability mode. */
		shim_config.dirfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (shim_config.dirfd < 0)
			shim_warn("cannot open socket directory %s: %s", dir,
			    strerror(errno));
		else
			read_variant_cache();
	}
	/*
	 * The bhyve's release: its ELF ABI tag; VMM_COMPAT_BHYVE_VERSION only
	 * for a binary without one (a foreign or stripped build).
	 */
	shim_config.bhyve_version = bhyve_abi_tag();
	if (shim_config.bhyve_version == 0) {
		shim_config.bhyve_version = (int)env_uint(
		    "VMM_COMPAT_BHYVE_VERSION", 0, 1000000, 9999999);
		shim_config.bhyve_version_from_env =
		    shim_config.bhyve_version != 0;
	}
	kernel = getenv("VMM_COMPAT_KERNEL");
	if (kernel != NULL && *kernel != '\0') {
		variant = variant_by_name(kernel);
		if (variant == VMC_VARIANT_UNKNOWN)
			shim_warn("ignoring VMM_COMPAT_KERNEL=%s (not legacy13, "
			    "window, fixed13, fixed14 or main15)", kernel);
		else if (!shim_config.cached_known ||
		    shim_config.cached.variant != variant) {
			facts_for_variant(variant, &shim_config.cached);
			shim_config.cached_known = 1;
		}
	}
}

void
session_set_facts(struct vm_session *vs, const struct kernel_facts *facts)
{

	vs->facts = *facts;
	/* The kernel's own answer at open (kabi.c) outranks the variant's. */
	if (!vs->kabi_probed)
		vs->vmrun_native = facts->vmrun_abi == 13;
	vs->facts_known = 1;
}

static int
session_init_facts(struct vm_session *vs, char *why, size_t whylen)
{
	enum link_result r;

	r = link_connect(vs, why, whylen);
	if (r == LINK_REFUSED) {
		shim_error("vmm-compatd refused VM %s: %s", vs->name, why);
		errno = EPERM;
		return (-1);
	}
	if (r == LINK_DOWN) {
		if (shim_config.require_daemon) {
			shim_error("cannot reach vmm-compatd (%s) and "
			    "VMM_COMPAT_REQUIRE_DAEMON=1: not starting VM %s",
			    why, vs->name);
			errno = ECONNREFUSED;
			return (-1);
		}
		if (shim_config.cached_known)
			session_set_facts(vs, &shim_config.cached);
		shim_warn("cannot reach vmm-compatd (%s); VM %s continues with "
		    "the %s kernel facts", why, vs->name, vs->facts_known ?
		    variant_name(vs->facts.variant) : "(unknown: pass-through)");
	}
	return (0);
}

/*
 * The bhyve's generation decides what its fd gets (generation.c): the
 * actions of its generation, nothing at all, or a refusal before the VM is
 * touched (bhyve's vm_open fails: exit 4).
 */
static int
session_publish(int fd, struct vm_session *vs)
{
	enum bhyve_handling how;
	int version;

	version = shim_config.bhyve_version;
	atomic_store(&vs->old_segids, version > 0 && version < BHYVE_VERSION_15);
	how = bhyve_handling(vs);
	if (version > 0) {
		atomic_store(&vs->generation_reported, 1);
		link_event(vs, VMC_EV_BHYVE_GENERATION, -1, version);
	}
	switch (how) {
	case BHYVE_REFUSED:
		shim_warn("refusing VM %s: this bhyve was built for "
		    "__FreeBSD_version %d, newer than the %s kernel; FreeBSD "
		    "does not support a bhyve newer than its kernel, and "
		    "vmm-compat cannot make one work: run the host release's "
		    "bhyve or an older one", vs->name, version,
		    variant_name(vs->facts_known ? vs->facts.variant :
		    VMC_VARIANT_MAIN15));
		link_event(vs, VMC_EV_BHYVE_REFUSED, -1, version);
		if (vs->link_fd >= 0)
			close(vs->link_fd);
		free(vs);
		errno = EOPNOTSUPP;
		return (-1);
	case BHYVE_NATIVE:
		link_event(vs, VMC_EV_BHYVE_NATIVE, -1, version);
		vmfd_publish_native(fd, vs);
		return (0);
	case BHYVE_14_ON_15:
	case BHYVE_GENERIC:
		break;
	}
	vmfd_publish(fd, vs, how);
	return (0);
}

int
session_attach(int fd, const char *name)
{
	struct vm_session *vs;
	char why[256];
	int i;

	if (strlen(name) > VMC_VM_NAME_MAX) {
		errno = ENAMETOOLONG;
		return (-1);
	}
	if ((unsigned)fd >= VMC_FD_TABLE) {
		shim_warn("fd %d for VM %s is beyond the interposer's table; "
		    "no compat actions for it", fd, name);
		return (0);
	}
	vs = calloc(1, sizeof(*vs));
	if (vs == NULL)
		return (-1);
	snprintf(vs->name, sizeof(vs->name), "%s", name);
	vs->fd = fd;
	vs->link_fd = -1;
	vs->vmrun_native = 1;	/* until kernel facts say otherwise */
	atomic_store(&vs->bsp_attention, BSP_NEEDS_PLAN);
	pthread_mutex_init(&vs->plan_lock, NULL);
	pthread_mutex_init(&vs->link_lock, NULL);
	pthread_mutex_init(&vs->park_lock, NULL);
	{
		pthread_condattr_t ca;

		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&vs->park_cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	for (i = 0; i < VMC_MAX_VCPUS; i++) {
		vs->parkers[i].vs = vs;
		vs->parkers[i].vcpu = i;
	}
	if (session_init_facts(vs, why, sizeof(why)) != 0) {
		if (vs->link_fd >= 0)
			close(vs->link_fd);
		free(vs);
		return (-1);
	}
	probe_kernel_abi(vs);
	return (session_publish(fd, vs));
}

/*
 * bhyve closes the vmm fd only after its vCPU threads are done (vm_destroy
 * on power-off); stop any parker first so none uses a closed fd.  The
 * session memory is kept: a late reader must never see freed memory.
 */
void
session_detach(int fd)
{
	struct vm_session *vs;

	vs = vmfd_take(fd);
	if (vs == NULL)
		return;
	parkers_stop_all(vs);
	pthread_mutex_lock(&vs->link_lock);
	if (vs->link_fd >= 0) {
		close(vs->link_fd);
		vs->link_fd = -1;
	}
	pthread_mutex_unlock(&vs->link_lock);
}
