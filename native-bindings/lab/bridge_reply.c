/*
 * bridge_reply.c: reading the kernel model's answer to one system call
 * (docs/internals.md section 2): COPYIN and COPYOUT requests, served until
 * the REPLY.  The transport and the caller's memory come through struct
 * bridge_io, so the code that reads the thread's socket (bridge_conn.c) is
 * the code the fuzzer runs (native-bindings/fuzz/fuzz_bridge_reply.c).
 *
 * Nothing here allocates: COPYIN/COPYOUT data is streamed in fixed-size
 * chunks through the caller's stack.
 */
#include <string.h>

#include "bridge.h"

#define	CHUNK	4096

static int
skip_all(const struct bridge_io *io, size_t len)
{
	uint8_t sink[256];
	size_t n;

	while (len > 0) {
		n = len < sizeof(sink) ? len : sizeof(sink);
		if (io->recv(io->ctx, sink, n) != 0)
			return (-1);
		len -= n;
	}
	return (0);
}

/* COPYIN: read [addr, addr+len) of the caller's memory for the model. */
static int
serve_copyin(const struct bridge_io *io, uint64_t addr, uint64_t len)
{
	uint8_t head[FRAME_COPYIN_HEAD], chunk[CHUNK];
	uint64_t off;
	size_t n;
	int err;

	if (len > FRAME_MAX - 8) {
		frame_copyin_head(head, FBSD_EINVAL, 0);
		return (io->send(io->ctx, head, sizeof(head)));
	}
	/* Check the whole range before committing to a length. */
	err = 0;
	for (off = 0; off < len && err == 0; off += n) {
		n = len - off < CHUNK ? (size_t)(len - off) : CHUNK;
		err = io->mem_read(chunk, addr + off, n);
	}
	if (err != 0) {
		frame_copyin_head(head, FBSD_EFAULT, 0);
		return (io->send(io->ctx, head, sizeof(head)));
	}
	frame_copyin_head(head, 0, (size_t)len);
	if (io->send(io->ctx, head, sizeof(head)) != 0)
		return (-1);
	if (len <= CHUNK)
		return (io->send(io->ctx, chunk, (size_t)len));
	for (off = 0; off < len; off += n) {
		n = len - off < CHUNK ? (size_t)(len - off) : CHUNK;
		if (io->mem_read(chunk, addr + off, n) != 0)
			memset(chunk, 0, n);	/* unmapped meanwhile */
		if (io->send(io->ctx, chunk, n) != 0)
			return (-1);
	}
	return (0);
}

/* COPYOUT: write the frame's data to the caller's memory at addr. */
static int
serve_copyout(const struct bridge_io *io, uint64_t addr, size_t len)
{
	uint8_t done[FRAME_HDR_LEN + 4], chunk[CHUNK];
	size_t off, n;
	int err;

	err = 0;
	for (off = 0; off < len; off += n) {
		n = len - off < CHUNK ? len - off : CHUNK;
		if (io->recv(io->ctx, chunk, n) != 0)
			return (-1);
		if (err == 0)
			err = io->mem_write(addr + off, chunk, n);
	}
	frame_copyout_done(done, err != 0 ? FBSD_EFAULT : 0);
	return (io->send(io->ctx, done, sizeof(done)));
}

int
bridge_reply_read(const struct bridge_io *io, int32_t *ret, void *payload,
    size_t paycap, size_t *paylen)
{
	uint8_t hdr[FRAME_HDR_LEN], body[16];
	uint32_t bodylen, type;
	size_t keep;

	for (;;) {
		if (io->recv(io->ctx, hdr, sizeof(hdr)) != 0)
			return (BRIDGE_REPLY_LOST);
		if (frame_parse_header(hdr, &bodylen, &type) != 0)
			return (BRIDGE_REPLY_PROTOCOL);
		switch (type) {
		case FRAME_REPLY:
			if (bodylen < 4 || io->recv(io->ctx, body, 4) != 0)
				return (BRIDGE_REPLY_PROTOCOL);
			*ret = (int32_t)get_u32(body);
			bodylen -= 4;
			keep = bodylen < paycap ? bodylen : paycap;
			if (keep > 0 && io->recv(io->ctx, payload, keep) != 0)
				return (BRIDGE_REPLY_PROTOCOL);
			if (skip_all(io, bodylen - keep) != 0)
				return (BRIDGE_REPLY_PROTOCOL);
			if (paylen != NULL)
				*paylen = bodylen;
			return (BRIDGE_REPLY_OK);
		case FRAME_COPYIN:
			if (bodylen != 16 || io->recv(io->ctx, body, 16) != 0)
				return (BRIDGE_REPLY_PROTOCOL);
			if (serve_copyin(io, get_u64(body), get_u64(body + 8)))
				return (BRIDGE_REPLY_PROTOCOL);
			break;
		case FRAME_COPYOUT:
			if (bodylen < 8 || io->recv(io->ctx, body, 8) != 0)
				return (BRIDGE_REPLY_PROTOCOL);
			if (serve_copyout(io, get_u64(body), bodylen - 8) != 0)
				return (BRIDGE_REPLY_PROTOCOL);
			break;
		default:
			return (BRIDGE_REPLY_PROTOCOL);
		}
	}
}
