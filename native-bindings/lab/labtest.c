/*
 * labtest: a driver for the bridge's end-to-end tests (test/native/).  It
 * runs a script of steps given on the command line, each a word and a fixed
 * number of arguments, through the dynamic symbol table (so the preloaded
 * libvmmlab_bridge.so serves them), and prints one line per step:
 *   "<step> ok [data]"  or  "<step> err <ERRNO-NAME> <number>".
 *
 *   open NAME              open("/dev/vmm/NAME", O_RDWR): the current fd
 *   openpath PATH          open(PATH, O_RDONLY), closed again
 *   opendir PATH           a directory fd for connectat
 *   ioctl REQ HEX          ioctl(fd, REQ, buf): buf holds HEX ('-': none),
 *                          zero-padded to IOCPARM_LEN(REQ); prints buf
 *   ioctlbad REQ           ioctl(fd, REQ, (void *)16)
 *   ioctlnull REQ          ioctl(fd, REQ, NULL)
 *   getcpus WHICH SIZE     VM_GET_CPUS into a SIZE-byte buffer of 0xee
 *   getcpusbad WHICH SIZE  VM_GET_CPUS with cpus = (void *)16
 *   mmap LEN OFF           mmap(NULL, LEN, RW, MAP_SHARED, fd, OFF)
 *   poke OFF HEX / peek OFF LEN   access the last mapping
 *   sysctl NAME VALUE      sysctlbyname(NAME, buf[64], &len, VALUE|NULL)
 *   capenter / capgetmode
 *   caprights W0:W1        cap_rights_limit(fd, {W0, W1}) (cap_rights_t words)
 *   capioctls REQ,REQ,..   cap_ioctls_limit(fd, list)
 *   connect PATH           connect() an AF_UNIX stream socket to PATH
 *   connectat NAME         connectat(dirfd, s, NAME)
 *   close                  close(fd)
 *   threads N REQ HEX      N threads issue the same ioctl at once
 *   sleep MS
 */
#define	_GNU_SOURCE
#define	LAB_FBSD_WEAK
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm13.h"
#include "fbsd_compat.h"

static int vmfd = -1, dirfd_ = -1;
static uint8_t *mapping;
static size_t mapping_len;

static const char *
errname(int e)
{
	static const struct { int e; const char *n; } names[] = {
		{ EPERM, "EPERM" }, { ENOENT, "ENOENT" }, { EIO, "EIO" },
		{ ENXIO, "ENXIO" }, { EBADF, "EBADF" }, { ENOMEM, "ENOMEM" },
		{ EACCES, "EACCES" }, { EFAULT, "EFAULT" }, { EBUSY, "EBUSY" },
		{ EEXIST, "EEXIST" }, { ENODEV, "ENODEV" }, { EINVAL, "EINVAL" },
		{ EMFILE, "EMFILE" }, { ENOTTY, "ENOTTY" }, { ERANGE, "ERANGE" },
		{ EAGAIN, "EAGAIN" }, { EALREADY, "EALREADY" },
		{ ENOTCAPABLE, "ENOTCAPABLE" }, { ECAPMODE, "ECAPMODE" },
		{ ENOSYS, "ENOSYS" }, { ENAMETOOLONG, "ENAMETOOLONG" },
		{ ECONNREFUSED, "ECONNREFUSED" },
	};
	size_t i;

	for (i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].e == e)
			return (names[i].n);
	return ("E?");
}

static void
fail(const char *step)
{
	int e;

	e = errno;
	printf("%s err %s %d\n", step, errname(e), e);
}

static void
hexdump(const uint8_t *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		printf("%02x", p[i]);
}

static size_t
unhex(const char *hex, uint8_t *out, size_t cap)
{
	size_t n;
	unsigned int byte;

	if (strcmp(hex, "-") == 0)
		return (0);
	for (n = 0; n < cap && hex[2 * n] != '\0' && hex[2 * n + 1] != '\0';
	    n++) {
		if (sscanf(hex + 2 * n, "%2x", &byte) != 1)
			break;
		out[n] = (uint8_t)byte;
	}
	return (n);
}

static unsigned long
num(const char *s)
{

	return (strtoul(s, NULL, 0));
}

/* "W0:W1": the two words of a cap_rights_t, as numbers. */
static void
parse_rights(const char *s, cap_rights_t *rights)
{
	char *end;

	rights->cr_rights[0] = strtoull(s, &end, 0);
	rights->cr_rights[1] = *end == ':' ? strtoull(end + 1, NULL, 0) : 0;
}

struct thread_arg {
	unsigned long	req;
	uint8_t		buf[256];
	int		ret, err;
};

static void *
ioctl_thread(void *p)
{
	struct thread_arg *a = p;

	a->ret = ioctl(vmfd, a->req, a->buf);
	a->err = errno;
	return (NULL);
}

static void
step_ioctl(unsigned long req, const char *hex)
{
	uint8_t buf[8192];
	size_t len;

	memset(buf, 0, sizeof(buf));
	len = unhex(hex, buf, sizeof(buf));
	if (LAB_IOCPARM_LEN(req) > len)
		len = LAB_IOCPARM_LEN(req);
	if (ioctl(vmfd, req, buf) != 0) {
		fail("ioctl");
		return;
	}
	printf("ioctl ok ");
	hexdump(buf, len);
	printf("\n");
}

static void
step_getcpus(int which, size_t size, int bad)
{
	struct vm_cpuset cs;
	uint8_t buf[1024];

	memset(buf, 0xee, sizeof(buf));
	memset(&cs, 0, sizeof(cs));
	cs.which = which;
	cs.cpusetsize = (int)size;
	cs.cpus = bad ? (void *)16 : buf;
	if (ioctl(vmfd, ABI13_VM_GET_CPUS, &cs) != 0) {
		fail(bad ? "getcpusbad" : "getcpus");
		return;
	}
	printf("%s ok ", bad ? "getcpusbad" : "getcpus");
	hexdump(buf, size < sizeof(buf) ? size : sizeof(buf));
	printf("\n");
}

static void
step_threads(int n, unsigned long req, const char *hex)
{
	struct thread_arg args[32];
	pthread_t t[32];
	int i, ok;

	if (n > 32)
		n = 32;
	for (i = 0; i < n; i++) {
		memset(&args[i], 0, sizeof(args[i]));
		args[i].req = req;
		unhex(hex, args[i].buf, sizeof(args[i].buf));
		pthread_create(&t[i], NULL, ioctl_thread, &args[i]);
	}
	ok = 0;
	for (i = 0; i < n; i++) {
		pthread_join(t[i], NULL);
		if (args[i].ret == 0)
			ok++;
	}
	printf("threads ok %d\n", ok);
}

static int
unix_socket_addr(struct sockaddr_un *sun, const char *path)
{

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	snprintf(sun->sun_path, sizeof(sun->sun_path), "%s", path);
	return (socket(AF_UNIX, SOCK_STREAM, 0));
}

int
main(int argc, char **argv)
{
	struct sockaddr_un sun;
	cap_rights_t rights;
	cap_ioctl_t cmds[256];
	uint8_t buf[4096];
	char path[300], *list, *tok;
	unsigned int mode;
	size_t len, n;
	void *p;
	int i, fd, s;

	setvbuf(stdout, NULL, _IOLBF, 0);
	if (!lab_fbsd_present()) {
		fprintf(stderr, "labtest: preload libvmmlab_bridge.so\n");
		return (2);
	}
	for (i = 1; i < argc; i++) {
		const char *w = argv[i];
#define	NEED(k) do {							\
	if (i + (k) >= argc) {						\
		fprintf(stderr, "labtest: %s needs %d argument(s)\n", w, k); \
		return (2);						\
	}								\
} while (0)
		if (strcmp(w, "open") == 0) {
			NEED(1);
			snprintf(path, sizeof(path), "/dev/vmm/%s", argv[++i]);
			fd = open(path, O_RDWR);
			if (fd < 0)
				fail(w);
			else {
				vmfd = fd;
				printf("open ok %d\n", fd);
			}
		} else if (strcmp(w, "openpath") == 0) {
			NEED(1);
			fd = open(argv[++i], O_RDONLY);
			if (fd < 0)
				fail(w);
			else {
				close(fd);
				printf("openpath ok\n");
			}
		} else if (strcmp(w, "opendir") == 0) {
			NEED(1);
			dirfd_ = open(argv[++i], O_RDONLY | O_DIRECTORY);
			if (dirfd_ < 0)
				fail(w);
			else
				printf("opendir ok\n");
		} else if (strcmp(w, "ioctl") == 0) {
			NEED(2);
			step_ioctl(num(argv[i + 1]), argv[i + 2]);
			i += 2;
		} else if (strcmp(w, "ioctlbad") == 0 ||
		    strcmp(w, "ioctlnull") == 0) {
			NEED(1);
			p = strcmp(w, "ioctlbad") == 0 ? (void *)16 : NULL;
			if (ioctl(vmfd, num(argv[++i]), p) != 0)
				fail(w);
			else
				printf("%s ok\n", w);
		} else if (strcmp(w, "getcpus") == 0 ||
		    strcmp(w, "getcpusbad") == 0) {
			NEED(2);
			step_getcpus((int)num(argv[i + 1]),
			    (size_t)num(argv[i + 2]),
			    strcmp(w, "getcpusbad") == 0);
			i += 2;
		} else if (strcmp(w, "mmap") == 0) {
			NEED(2);
			mapping_len = (size_t)num(argv[i + 1]);
			p = mmap(NULL, mapping_len, PROT_READ | PROT_WRITE,
			    MAP_SHARED, vmfd, (off_t)num(argv[i + 2]));
			i += 2;
			if (p == MAP_FAILED)
				fail(w);
			else {
				mapping = p;
				printf("mmap ok ");
				hexdump(mapping, mapping_len < 16 ?
				    mapping_len : 16);
				printf("\n");
			}
		} else if (strcmp(w, "poke") == 0) {
			NEED(2);
			n = unhex(argv[i + 2], buf, sizeof(buf));
			memcpy(mapping + num(argv[i + 1]), buf, n);
			i += 2;
			printf("poke ok\n");
		} else if (strcmp(w, "peek") == 0) {
			NEED(2);
			printf("peek ok ");
			hexdump(mapping + num(argv[i + 1]),
			    (size_t)num(argv[i + 2]));
			printf("\n");
			i += 2;
		} else if (strcmp(w, "sysctl") == 0) {
			NEED(2);
			len = 64;
			memset(buf, 0, 64);
			if (sysctlbyname(argv[i + 1], buf, &len,
			    strcmp(argv[i + 2], "-") == 0 ? NULL : argv[i + 2],
			    strcmp(argv[i + 2], "-") == 0 ? 0 :
			    strlen(argv[i + 2])) != 0)
				fail(w);
			else {
				printf("sysctl ok %zu%s", len, len > 0 ? " " : "");
				hexdump(buf, len);
				printf("\n");
			}
			i += 2;
		} else if (strcmp(w, "capenter") == 0) {
			if (cap_enter() != 0)
				fail(w);
			else
				printf("capenter ok\n");
		} else if (strcmp(w, "capgetmode") == 0) {
			if (cap_getmode(&mode) != 0)
				fail(w);
			else
				printf("capgetmode ok %u\n", mode);
		} else if (strcmp(w, "caprights") == 0) {
			NEED(1);
			/* WORD0:WORD1, the two words of a cap_rights_t. */
			parse_rights(argv[++i], &rights);
			if (cap_rights_limit(vmfd, &rights) != 0)
				fail(w);
			else
				printf("caprights ok\n");
		} else if (strcmp(w, "capioctls") == 0) {
			NEED(1);
			list = strdup(argv[++i]);
			n = 0;
			for (tok = strtok(list, ","); tok != NULL && n < 256;
			    tok = strtok(NULL, ","))
				cmds[n++] = num(tok);
			free(list);
			if (cap_ioctls_limit(vmfd, cmds, n) != 0)
				fail(w);
			else
				printf("capioctls ok\n");
		} else if (strcmp(w, "connect") == 0) {
			NEED(1);
			s = unix_socket_addr(&sun, argv[++i]);
			if (connect(s, (struct sockaddr *)&sun,
			    sizeof(sun)) != 0)
				fail(w);
			else
				printf("connect ok\n");
			close(s);
		} else if (strcmp(w, "connectat") == 0) {
			NEED(1);
			s = unix_socket_addr(&sun, argv[++i]);
			if (connectat(dirfd_, s, (struct sockaddr *)&sun,
			    sizeof(sun)) != 0)
				fail(w);
			else
				printf("connectat ok\n");
			close(s);
		} else if (strcmp(w, "close") == 0) {
			if (close(vmfd) != 0)
				fail(w);
			else
				printf("close ok\n");
			vmfd = -1;
		} else if (strcmp(w, "threads") == 0) {
			NEED(3);
			step_threads((int)num(argv[i + 1]), num(argv[i + 2]),
			    argv[i + 3]);
			i += 3;
		} else if (strcmp(w, "sleep") == 0) {
			NEED(1);
			usleep((useconds_t)num(argv[++i]) * 1000);
			printf("sleep ok\n");
		} else {
			fprintf(stderr, "labtest: unknown step '%s'\n", w);
			return (2);
		}
	}
	return (0);
}
