/*
 * daemon_reply_test.c: what the interposer's reply reader (shim/daemon_reply.c)
 * accepts and refuses, including each input fuzzing found it taking unchecked
 * (test/fuzz/corpus/daemon-reply/regress-*).  Frames are built at the
 * offsets of the generated protocol header.
 */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "shim.h"
#include "check.h"

struct input {
	const uint8_t	*p;
	size_t		left;
};

static int
input_read(void *ctx, uint8_t *buf, size_t len)
{
	struct input *in = ctx;

	if (len > in->left) {
		errno = ECONNRESET;
		return (-1);
	}
	memcpy(buf, in->p, len);
	in->p += len;
	in->left -= len;
	return (0);
}

static void
put32(uint8_t *p, uint32_t v)
{

	memcpy(p, &v, 4);
}

static void
put16(uint8_t *p, uint16_t v)
{

	memcpy(p, &v, 2);
}

static size_t
frame(uint8_t *buf, uint16_t version, uint16_t type, uint32_t len)
{

	memset(buf, 0, VMC_PROTO_HDR_BYTES + len);
	put32(buf, len);
	put16(buf + 4, version);
	put16(buf + 6, type);
	return (VMC_PROTO_HDR_BYTES + len);
}

/* parked: APs below 64 (the mask and the set's low word); high: one more AP of the set, or 0. */
static size_t
plan_frame(uint8_t *buf, uint32_t action, uint32_t bias, uint64_t parked,
    int high)
{
	uint8_t *body = buf + VMC_PROTO_HDR_BYTES;
	size_t n;

	n = frame(buf, VMC_PROTO_VERSION, VMC_T_PLAN, VMC_PLAN_BYTES);
	put32(body + VMC_PLAN_ACTION, action);
	put32(body + VMC_PLAN_SPINUP_BIAS, bias);
	memcpy(body + VMC_PLAN_PARKED_MASK, &parked, 8);
	memcpy(body + VMC_PLAN_PARKED_SET, &parked, 8);
	if (high > 0)
		body[VMC_PLAN_PARKED_SET + high / 8] |= 1 << (high % 8);
	memcpy(body + VMC_PLAN_REASON, "park", 4);
	return (n);
}

/* reply_read then reply_plan, as link_plan does: 0 accepted, -1 refused. */
static int
read_plan(const uint8_t *buf, size_t n, struct plan_reply *reply, char *why,
    size_t whylen)
{
	uint8_t body[VMC_PLAN_BYTES];
	struct input in = { buf, n };
	enum reply_verdict verdict;

	if (reply_read(input_read, &in, VMC_T_PLAN, body, sizeof(body), why,
	    whylen, &verdict) != 0)
		return (-1);
	return (reply_plan(body, reply, why, whylen));
}

int
main(void)
{
	uint8_t buf[VMC_PROTO_HDR_BYTES + VMC_ERROR_BYTES + 64], body[VMC_PLAN_BYTES];
	struct plan_reply reply;
	struct kernel_facts facts;
	struct input in;
	unsigned session;
	char why[256];
	size_t n;
	enum reply_verdict verdict;

	/* A plan as the daemon sends it is read whole. */
	n = plan_frame(buf, VMC_PLAN_ACTION_PARK, 1, 0xe, 200);
	CHECK_EQ(read_plan(buf, n, &reply, why, sizeof(why)), 0);
	CHECK_EQ(reply.action, VMC_PLAN_ACTION_PARK);
	CHECK_EQ(reply.spinup_bias, 1);
	CHECK_EQ(set_count(&reply.parked), 4);
	CHECK(set_has(&reply.parked, 1) && set_has(&reply.parked, 3) &&
	    set_has(&reply.parked, 200));
	CHECK(strcmp(reply.reason, "park") == 0);

	/* Version 2 keeps version 1's mask: it must be the set's low word. */
	n = plan_frame(buf, VMC_PLAN_ACTION_PARK, 1, 0xe, 0);
	buf[VMC_PROTO_HDR_BYTES + VMC_PLAN_PARKED_MASK] = 0x6;
	CHECK_EQ(read_plan(buf, n, &reply, why, sizeof(why)), -1);
	CHECK(strstr(why, "parked mask and parked set differ") != NULL);

	/* Fuzzing: a bias of 0x65000001 went to spinup_ap_exit's subtraction. */
	n = plan_frame(buf, VMC_PLAN_ACTION_PARK, 0x65000001, 0xe, 0);
	CHECK_EQ(read_plan(buf, n, &reply, why, sizeof(why)), -1);
	CHECK(strstr(why, "spinup bias 1694498817") != NULL);

	/* Fuzzing: an action that is neither pass-through nor park. */
	n = plan_frame(buf, 0x0d000001, 1, 0xe, 0);
	CHECK_EQ(read_plan(buf, n, &reply, why, sizeof(why)), -1);
	CHECK(strstr(why, "action 218103809") != NULL);

	/* Parked APs the daemon says it did not activate. */
	n = plan_frame(buf, VMC_PLAN_ACTION_PASS_THROUGH, 0, 0, 130);
	CHECK_EQ(read_plan(buf, n, &reply, why, sizeof(why)), -1);
	CHECK(strstr(why, "pass-through") != NULL);
	n = plan_frame(buf, VMC_PLAN_ACTION_PASS_THROUGH, 0, 0, 0);
	CHECK_EQ(read_plan(buf, n, &reply, why, sizeof(why)), 0);

	/* Fuzzing: a WELCOME of version 0xffff was taken as ours. */
	n = frame(buf, 0xffff, VMC_T_WELCOME, VMC_WELCOME_BYTES);
	put32(buf + VMC_PROTO_HDR_BYTES + VMC_WELCOME_VARIANT, VMC_VARIANT_WINDOW);
	put32(buf + VMC_PROTO_HDR_BYTES + VMC_WELCOME_KERNEL_CPUSET_BYTES, 32);
	put32(buf + VMC_PROTO_HDR_BYTES + VMC_WELCOME_VMRUN_ABI, 13);
	in.p = buf;
	in.left = n;
	CHECK_EQ(reply_read(input_read, &in, VMC_T_WELCOME, body,
	    VMC_WELCOME_BYTES, why, sizeof(why), &verdict), -1);
	CHECK(strstr(why, "version 65535") != NULL);
	put16(buf + 4, VMC_PROTO_VERSION);
	in.p = buf;
	in.left = n;
	CHECK_EQ(reply_read(input_read, &in, VMC_T_WELCOME, body,
	    VMC_WELCOME_BYTES, why, sizeof(why), &verdict), 0);
	CHECK_EQ(reply_welcome(body, &facts, &session, why, sizeof(why)), 0);
	CHECK_EQ(facts.variant, VMC_VARIANT_WINDOW);
	put32(body + VMC_WELCOME_KERNEL_CPUSET_BYTES, 4096);
	CHECK_EQ(reply_welcome(body, &facts, &session, why, sizeof(why)), -1);

	/* ERROR in any version: how a daemon says it does not speak ours. */
	n = frame(buf, 0xffff, VMC_T_ERROR, VMC_ERROR_BYTES);
	put32(buf + VMC_PROTO_HDR_BYTES + VMC_ERROR_CODE, VMC_PROTO_REFUSAL_CODE);
	memset(buf + VMC_PROTO_HDR_BYTES + VMC_ERROR_MESSAGE, 'x',
	    VMC_ERROR_MESSAGE_SIZE);	/* no NUL: cut at the field's end */
	in.p = buf;
	in.left = n;
	CHECK_EQ(reply_read(input_read, &in, VMC_T_PLAN, body, VMC_PLAN_BYTES,
	    why, sizeof(why), &verdict), -1);
	CHECK_EQ(verdict, REPLY_REFUSED);
	CHECK_EQ(strlen(why), VMC_ERROR_MESSAGE_SIZE - 1);

	/*
	 * Over a limit (EAGAIN) and any other code: not a refusal, so the
	 * interposer follows its failure policy; EAGAIN is told apart only to
	 * say so (docs/internals.md section 5).
	 */
	n = frame(buf, VMC_PROTO_VERSION, VMC_T_ERROR, VMC_ERROR_BYTES);
	put32(buf + VMC_PROTO_HDR_BYTES + VMC_ERROR_CODE, VMC_PROTO_BUSY_CODE);
	strcpy((char *)buf + VMC_PROTO_HDR_BYTES + VMC_ERROR_MESSAGE, "busy");
	in.p = buf;
	in.left = n;
	CHECK_EQ(reply_read(input_read, &in, VMC_T_WELCOME, body,
	    VMC_WELCOME_BYTES, why, sizeof(why), &verdict), -1);
	CHECK_EQ(verdict, REPLY_BUSY);
	CHECK(strcmp(why, "busy") == 0);
	put32(buf + VMC_PROTO_HDR_BYTES + VMC_ERROR_CODE, 22);
	in.p = buf;
	in.left = n;
	CHECK_EQ(reply_read(input_read, &in, VMC_T_WELCOME, body,
	    VMC_WELCOME_BYTES, why, sizeof(why), &verdict), -1);
	CHECK_EQ(verdict, REPLY_AWAY);
	return (check_done("daemon_reply_test"));
}
