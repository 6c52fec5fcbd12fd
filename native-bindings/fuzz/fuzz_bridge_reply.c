/*
 * fuzz_bridge_reply.c: fuzz target for the lab bridge's reading of the
 * kernel model's answers (lab/bridge_reply.c, called by bridge_conn.c).
 *
 * The input is what a model sends on one connection: the answers to
 * successive system calls (COPYIN and COPYOUT requests, then a REPLY), read
 * exactly as conn_call reads them, until the input ends or a frame is
 * refused.  The caller's memory is a small arena at a fixed fake address, so
 * COPYIN/COPYOUT reach only it (outside: EFAULT, as process_vm_readv says).
 * What the bridge writes back must be whole frames: a partial frame would
 * desynchronise the stream, so the harness aborts on one.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "bridge.h"

#define	ARENA_BASE	0x10000ULL
#define	ARENA_BYTES	8192

struct stream {
	const uint8_t	*p;
	size_t		left;
	uint64_t	frame_left;	/* bytes owed to the frame being sent */
};

static uint8_t arena[ARENA_BYTES];
/* One payload buffer per capacity the harness asks for: ASan sees overruns. */
static uint8_t payload_small[16], payload_page[4096];

static int
stream_recv(void *ctx, void *buf, size_t len)
{
	struct stream *s = ctx;

	if (len > s->left) {
		s->left = 0;
		return (-1);
	}
	memcpy(buf, s->p, len);
	s->p += len;
	s->left -= len;
	return (0);
}

/* Checks that the sent bytes are whole frames, header first. */
static int
stream_send(void *ctx, const void *buf, size_t len)
{
	struct stream *s = ctx;
	const uint8_t *p = buf;
	uint32_t bodylen, type;

	if (len == 0)
		return (0);	/* send_all sends nothing */
	if (s->frame_left == 0) {
		if (len < FRAME_HDR_LEN || frame_parse_header(p, &bodylen,
		    &type) != 0)
			abort();
		if (type != FRAME_COPYIN_DATA && type != FRAME_COPYOUT_DONE)
			abort();
		s->frame_left = FRAME_HDR_LEN + (uint64_t)bodylen;
	}
	if (len > s->frame_left)
		abort();
	s->frame_left -= len;
	return (0);
}

static int
arena_range(uint64_t addr, size_t len)
{

	return (addr >= ARENA_BASE && addr - ARENA_BASE <= ARENA_BYTES &&
	    len <= ARENA_BYTES - (addr - ARENA_BASE));
}

static int
arena_read(void *dst, uint64_t src, size_t len)
{

	if (len == 0)
		return (0);
	if (!arena_range(src, len))
		return (EFAULT);
	memcpy(dst, arena + (src - ARENA_BASE), len);
	return (0);
}

static int
arena_write(uint64_t dst, const void *src, size_t len)
{

	if (len == 0)
		return (0);
	if (!arena_range(dst, len))
		return (EFAULT);
	memcpy(arena + (dst - ARENA_BASE), src, len);
	return (0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct stream s = { data, size, 0 };
	struct bridge_io io = {
		.recv = stream_recv,
		.send = stream_send,
		.mem_read = arena_read,
		.mem_write = arena_write,
		.ctx = &s,
	};
	size_t paylen, cap;
	unsigned call;
	int32_t ret;
	void *payload;
	int r;

	/* Callers keep 0 (OPEN), a few (SYSCTL) or a page of payload (IOCTL). */
	for (call = 0; s.left > 0; call++) {
		switch (call % 3) {
		case 0:
			payload = payload_page;
			cap = sizeof(payload_page);
			break;
		case 1:
			payload = payload_small;
			cap = sizeof(payload_small);
			break;
		default:
			payload = NULL;
			cap = 0;
			break;
		}
		paylen = 0;
		/* Callers that keep no payload do not ask for its length either. */
		r = bridge_reply_read(&io, &ret, payload, cap,
		    cap == 0 ? NULL : &paylen);
		if (s.frame_left != 0)
			abort();
		if (r != BRIDGE_REPLY_OK)
			break;
	}
	return (0);
}
