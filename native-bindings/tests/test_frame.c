/*
 * test_frame: frame encoding/decoding (bridge_frame.c) and one conn_call
 * exchange against an in-process fake model thread, including COPYIN and
 * COPYOUT with good and bad addresses (bridge_conn.c, bridge_memory.c).
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "bridge.h"
#include "fbsd_compat.h"
#include "check.h"

static void
test_encode(void)
{
	uint8_t b[256];
	unsigned long cmds[2] = { 0xC0907601UL, 0x8004765AUL };
	cap_rights_t rights;
	uint32_t len, type;
	size_t n;

	cap_rights_init(&rights, CAP_IOCTL, CAP_MMAP_RW);

	n = frame_hello(b, 1234);
	CHECK_EQ(n, 12);
	CHECK_EQ(get_u32(b), 8);
	CHECK_EQ(get_u32(b + 4), FRAME_HELLO);
	CHECK_EQ(get_u32(b + 8), 1234);

	n = frame_open(b, sizeof(b), "vm1");
	CHECK_EQ(n, 11);
	CHECK_EQ(get_u32(b), 7);
	CHECK_EQ(get_u32(b + 4), FRAME_OPEN);
	CHECK(memcmp(b + 8, "vm1", 3) == 0);
	CHECK_EQ(frame_open(b, 10, "too-long-name"), 0);

	n = frame_close(b, 9);
	CHECK_EQ(n, 12);
	CHECK_EQ(get_u32(b + 4), FRAME_CLOSE);
	CHECK_EQ(get_u32(b + 8), 9);

	n = frame_ioctl_head(b, 3, 0xC0907601UL, 0x7fff12345678ULL, 144);
	CHECK_EQ(n, FRAME_IOCTL_HEAD + 144);
	CHECK_EQ(get_u32(b), 4 + 24 + 144);
	CHECK_EQ(get_u32(b + 4), FRAME_IOCTL);
	CHECK_EQ(get_u32(b + 8), 3);
	CHECK_EQ(get_u32(b + 12), 0);
	CHECK_EQ(get_u64(b + 16), 0xC0907601ULL);
	CHECK_EQ(get_u64(b + 24), 0x7fff12345678ULL);

	n = frame_mmap(b, 2, 3, 0x10000, 0x200000);
	CHECK_EQ(n, 32);
	CHECK_EQ(get_u32(b + 4), FRAME_MMAP);
	CHECK_EQ(get_u32(b + 12), 3);
	CHECK_EQ(get_u64(b + 16), 0x10000);
	CHECK_EQ(get_u64(b + 24), 0x200000);

	n = frame_sysctl_head(b, sizeof(b), "hw.vmm.create", 5);
	CHECK_EQ(n, 8 + 4 + 14);
	CHECK_EQ(get_u32(b), 4 + 4 + 14 + 5);
	CHECK_EQ(get_u32(b + 4), FRAME_SYSCTL);
	CHECK_EQ(get_u32(b + 8), 5);
	CHECK(strcmp((char *)b + 12, "hw.vmm.create") == 0);

	n = frame_cap_rights(b, 4, rights.cr_rights);
	CHECK_EQ(n, 32);
	CHECK_EQ(get_u32(b + 4), FRAME_CAP_RIGHTS);
	/* sys/capsicum.h: CAP_MMAP_RW is word 0, CAP_IOCTL word 1. */
	CHECK_EQ(get_u64(b + 16), (1ULL << 57) | 0x1f);
	CHECK_EQ(get_u64(b + 24), (1ULL << 58) | 0x80);

	n = frame_cap_ioctls(b, sizeof(b), 4, cmds, 2);
	CHECK_EQ(n, 8 + 8 + 16);
	CHECK_EQ(get_u32(b + 12), 2);
	CHECK_EQ(get_u64(b + 16), 0xC0907601ULL);
	CHECK_EQ(get_u64(b + 24), 0x8004765AULL);
	CHECK_EQ(frame_cap_ioctls(b, 20, 4, cmds, 2), 0);

	n = frame_copyin_head(b, 0, 32);
	CHECK_EQ(n, 12);
	CHECK_EQ(get_u32(b), 4 + 4 + 32);
	CHECK_EQ(get_u32(b + 4), FRAME_COPYIN_DATA);

	n = frame_copyout_done(b, FBSD_EFAULT);
	CHECK_EQ(n, 12);
	CHECK_EQ(get_u32(b + 4), FRAME_COPYOUT_DONE);
	CHECK_EQ((int32_t)get_u32(b + 8), 14);

	put_u32(b, 4);
	put_u32(b + 4, FRAME_REPLY);
	CHECK_EQ(frame_parse_header(b, &len, &type), 0);
	CHECK_EQ(len, 0);
	CHECK_EQ(type, FRAME_REPLY);
	put_u32(b, 3);
	CHECK_EQ(frame_parse_header(b, &len, &type), -1);
	put_u32(b, FRAME_MAX + 1);
	CHECK_EQ(frame_parse_header(b, &len, &type), -1);
	put_u64(b, 0x0102030405060708ULL);
	CHECK_EQ(b[0], 8);
	CHECK_EQ(b[7], 1);
}

/* The fake model: one connection, a scripted exchange. */
struct fake {
	int		listener;
	uint64_t	good;		/* a valid address in our memory */
	int		copyout_err_good, copyout_err_bad;
	int		copyin_err_bad;
	uint8_t		copied_in[8];
	uint32_t	hello_pid;
	int		ok;
};

static int
rd(int fd, void *p, size_t n)
{
	uint8_t *b = p;
	ssize_t r;

	while (n > 0) {
		r = read(fd, b, n);
		if (r <= 0)
			return (-1);
		b += r;
		n -= (size_t)r;
	}
	return (0);
}

static int
rd_frame(int fd, uint8_t *buf, size_t cap, uint32_t *type)
{
	uint8_t hdr[8];
	uint32_t len;

	if (rd(fd, hdr, 8) != 0 || frame_parse_header(hdr, &len, type) != 0 ||
	    len > cap)
		return (-1);
	return (rd(fd, buf, len) == 0 ? (int)len : -1);
}

static void *
fake_model(void *arg)
{
	struct fake *f = arg;
	uint8_t b[512];
	uint32_t type;
	int fd, n;

	fd = accept(f->listener, NULL, NULL);
	if (fd < 0)
		return (NULL);
	n = rd_frame(fd, b, sizeof(b), &type);
	if (n != 4 || type != FRAME_HELLO)
		goto out;
	f->hello_pid = get_u32(b);
	n = rd_frame(fd, b, sizeof(b), &type);
	if (n != 24 || type != FRAME_IOCTL)
		goto out;
	/* COPYOUT 8 bytes to a good address, then to address 16. */
	put_u32(b, 4 + 8 + 8);
	put_u32(b + 4, FRAME_COPYOUT);
	put_u64(b + 8, f->good);
	memcpy(b + 16, "ABCDEFGH", 8);
	write(fd, b, 24);
	if (rd_frame(fd, b, sizeof(b), &type) != 4 || type != FRAME_COPYOUT_DONE)
		goto out;
	f->copyout_err_good = (int32_t)get_u32(b);
	put_u32(b, 4 + 8 + 8);
	put_u32(b + 4, FRAME_COPYOUT);
	put_u64(b + 8, 16);
	memcpy(b + 16, "ABCDEFGH", 8);
	write(fd, b, 24);
	if (rd_frame(fd, b, sizeof(b), &type) != 4 || type != FRAME_COPYOUT_DONE)
		goto out;
	f->copyout_err_bad = (int32_t)get_u32(b);
	/* COPYIN from the good address, then from address 16. */
	put_u32(b, 4 + 16);
	put_u32(b + 4, FRAME_COPYIN);
	put_u64(b + 8, f->good);
	put_u64(b + 16, 8);
	write(fd, b, 24);
	if (rd_frame(fd, b, sizeof(b), &type) != 12 || type != FRAME_COPYIN_DATA ||
	    get_u32(b) != 0)
		goto out;
	memcpy(f->copied_in, b + 4, 8);
	put_u32(b, 4 + 16);
	put_u32(b + 4, FRAME_COPYIN);
	put_u64(b + 8, 16);
	put_u64(b + 16, 8);
	write(fd, b, 24);
	if (rd_frame(fd, b, sizeof(b), &type) != 4 || type != FRAME_COPYIN_DATA)
		goto out;
	f->copyin_err_bad = (int32_t)get_u32(b);
	/* REPLY -37 with 6 payload bytes (the caller keeps 4). */
	put_u32(b, 4 + 4 + 6);
	put_u32(b + 4, FRAME_REPLY);
	put_u32(b + 8, (uint32_t)-37);
	memcpy(b + 12, "xyzwuv", 6);
	write(fd, b, 18);
	/* Next call: CLOSE, answered with a frame of an unknown type. */
	if (rd_frame(fd, b, sizeof(b), &type) != 4 || type != FRAME_CLOSE)
		goto out;
	put_u32(b, 4);
	put_u32(b + 4, 55);
	write(fd, b, 8);
	f->ok = 1;
out:
	sleep(1);
	close(fd);
	return (NULL);
}

static void
test_exchange(void)
{
	struct sockaddr_un sun;
	struct fake f;
	pthread_t t;
	uint8_t req[FRAME_IOCTL_HEAD], payload[4];
	char dir[] = "/tmp/labframe.XXXXXX", path[128];
	uint64_t target;
	size_t paylen;
	int32_t ret;

	CHECK(mkdtemp(dir) != NULL);
	snprintf(path, sizeof(path), "%s/k.sock", dir);
	memset(&f, 0, sizeof(f));
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	strcpy(sun.sun_path, path);
	f.listener = socket(AF_UNIX, SOCK_STREAM, 0);
	CHECK_EQ(bind(f.listener, (struct sockaddr *)&sun, sizeof(sun)), 0);
	CHECK_EQ(listen(f.listener, 1), 0);
	memcpy(&target, "12345678", 8);
	f.good = (uintptr_t)&target;
	setenv("VMMLAB_KERNEL_SOCK", path, 1);
	CHECK_EQ(pthread_create(&t, NULL, fake_model, &f), 0);

	ret = 0;
	paylen = 0;
	CHECK_EQ(conn_call(req, frame_ioctl_head(req, 1, 0x8004765AUL, 0, 0),
	    NULL, 0, &ret, payload, sizeof(payload), &paylen), 0);
	CHECK_EQ(ret, -37);
	CHECK_EQ(paylen, 6);
	CHECK(memcmp(payload, "xyzw", 4) == 0);
	CHECK_EQ(f.hello_pid, (uint32_t)getpid());
	CHECK_EQ(f.copyout_err_good, 0);
	CHECK(memcmp(&target, "ABCDEFGH", 8) == 0);
	CHECK_EQ(f.copyout_err_bad, FBSD_EFAULT);
	CHECK(memcmp(f.copied_in, "ABCDEFGH", 8) == 0);
	CHECK_EQ(f.copyin_err_bad, FBSD_EFAULT);

	/* A frame of unknown type is a protocol error: EIO, connection gone. */
	CHECK_EQ(conn_call(req, frame_close(req, 1), NULL, 0, &ret, NULL, 0,
	    NULL), -1);
	CHECK_EQ(errno, EIO);
	pthread_join(t, NULL);
	CHECK_EQ(f.ok, 1);
	close(f.listener);
	unlink(path);
	rmdir(dir);

	/* Nobody listening any more: ENXIO, no crash. */
	CHECK_EQ(conn_call(req, frame_close(req, 1), NULL, 0, &ret, NULL, 0,
	    NULL), -1);
	CHECK_EQ(errno, ENXIO);
}

int
main(void)
{

	test_encode();
	test_exchange();
	return (check_done("test_frame"));
}
