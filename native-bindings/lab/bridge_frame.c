/*
 * bridge_frame.c: encoding of the bridge -> model frames and decoding of the
 * frame header (docs/internals.md section 2).  Every builder writes into a
 * caller's buffer and returns the total frame size, or 0 if it does not fit.
 */
#include <string.h>

#include "bridge.h"

static size_t
frame_finish(uint8_t *buf, uint32_t type, size_t total)
{

	put_u32(buf, (uint32_t)(total - 4));
	put_u32(buf + 4, type);
	return (total);
}

size_t
frame_hello(uint8_t *buf, uint32_t pid)
{

	put_u32(buf + FRAME_HDR_LEN, pid);
	return (frame_finish(buf, FRAME_HELLO, FRAME_HDR_LEN + 4));
}

size_t
frame_open(uint8_t *buf, size_t cap, const char *name)
{
	size_t n;

	n = strlen(name);
	if (FRAME_HDR_LEN + n > cap)
		return (0);
	memcpy(buf + FRAME_HDR_LEN, name, n);
	return (frame_finish(buf, FRAME_OPEN, FRAME_HDR_LEN + n));
}

/*
 * OPEN of another vmm node (/dev/vmmctl, /dev/vmm.io/NAME.SEG): the absolute
 * path, a NUL and the u32 open flags (docs/internals.md section 2).
 */
size_t
frame_open_path(uint8_t *buf, size_t cap, const char *path, uint32_t flags)
{
	size_t n;

	n = strlen(path);
	if (FRAME_HDR_LEN + n + 5 > cap)
		return (0);
	memcpy(buf + FRAME_HDR_LEN, path, n);
	buf[FRAME_HDR_LEN + n] = '\0';
	put_u32(buf + FRAME_HDR_LEN + n + 1, flags);
	return (frame_finish(buf, FRAME_OPEN, FRAME_HDR_LEN + n + 5));
}

size_t
frame_close(uint8_t *buf, uint32_t file)
{

	put_u32(buf + FRAME_HDR_LEN, file);
	return (frame_finish(buf, FRAME_CLOSE, FRAME_HDR_LEN + 4));
}

/*
 * IOCTL: u32 file, u32 pad, u64 request, u64 argAddr, then arglen bytes that
 * the caller places at buf + FRAME_IOCTL_HEAD.
 */
size_t
frame_ioctl_head(uint8_t *buf, uint32_t file, uint64_t request,
    uint64_t argaddr, size_t arglen)
{
	uint8_t *p;

	p = buf + FRAME_HDR_LEN;
	put_u32(p, file);
	put_u32(p + 4, 0);
	put_u64(p + 8, request);
	put_u64(p + 16, argaddr);
	return (frame_finish(buf, FRAME_IOCTL, FRAME_IOCTL_HEAD + arglen));
}

size_t
frame_mmap(uint8_t *buf, uint32_t file, uint32_t prot, uint64_t offset,
    uint64_t len)
{
	uint8_t *p;

	p = buf + FRAME_HDR_LEN;
	put_u32(p, file);
	put_u32(p + 4, prot);
	put_u64(p + 8, offset);
	put_u64(p + 16, len);
	return (frame_finish(buf, FRAME_MMAP, FRAME_HDR_LEN + 24));
}

/*
 * SYSCTL: u32 newlen, the name with its NUL, then newlen bytes of new value
 * that the caller sends after the returned head.  Returns the head's size;
 * the length field already counts the new value.
 */
size_t
frame_sysctl_head(uint8_t *buf, size_t cap, const char *name, size_t newlen)
{
	size_t n, head;

	n = strlen(name) + 1;
	head = FRAME_HDR_LEN + 4 + n;
	if (head > cap || newlen > FRAME_MAX - 8 - n)
		return (0);
	put_u32(buf + FRAME_HDR_LEN, (uint32_t)newlen);
	memcpy(buf + FRAME_HDR_LEN + 4, name, n);
	frame_finish(buf, FRAME_SYSCTL, head + newlen);
	return (head);
}

/* Both words of a version 00 cap_rights_t, as cap_rights_limit(2) passes them. */
size_t
frame_cap_rights(uint8_t *buf, uint32_t file, const uint64_t rights[2])
{
	uint8_t *p;

	p = buf + FRAME_HDR_LEN;
	put_u32(p, file);
	put_u32(p + 4, 0);
	put_u64(p + 8, rights[0]);
	put_u64(p + 16, rights[1]);
	return (frame_finish(buf, FRAME_CAP_RIGHTS, FRAME_HDR_LEN + 24));
}

size_t
frame_cap_ioctls(uint8_t *buf, size_t cap, uint32_t file,
    const unsigned long *cmds, size_t ncmds)
{
	uint8_t *p;
	size_t i, total;

	total = FRAME_HDR_LEN + 8 + ncmds * 8;
	if (total > cap)
		return (0);
	p = buf + FRAME_HDR_LEN;
	put_u32(p, file);
	put_u32(p + 4, (uint32_t)ncmds);
	for (i = 0; i < ncmds; i++)
		put_u64(p + 8 + i * 8, cmds[i]);
	return (frame_finish(buf, FRAME_CAP_IOCTLS, total));
}

/* COPYIN_DATA: i32 err, then datalen bytes sent after this head. */
size_t
frame_copyin_head(uint8_t *buf, int32_t err, size_t datalen)
{

	put_u32(buf + FRAME_HDR_LEN, (uint32_t)err);
	frame_finish(buf, FRAME_COPYIN_DATA, FRAME_COPYIN_HEAD + datalen);
	return (FRAME_COPYIN_HEAD);
}

size_t
frame_copyout_done(uint8_t *buf, int32_t err)
{

	put_u32(buf + FRAME_HDR_LEN, (uint32_t)err);
	return (frame_finish(buf, FRAME_COPYOUT_DONE, FRAME_HDR_LEN + 4));
}

/* Returns 0 and the body length (after the type) or -1 for a bad length. */
int
frame_parse_header(const uint8_t *hdr, uint32_t *bodylen, uint32_t *type)
{
	uint32_t len;

	len = get_u32(hdr);
	if (len < 4 || len > FRAME_MAX)
		return (-1);
	*bodylen = len - 4;
	*type = get_u32(hdr + 4);
	return (0);
}
