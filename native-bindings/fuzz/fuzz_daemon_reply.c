/*
 * fuzz_daemon_reply.c: fuzz target for the interposer's reading of
 * vmm-compatd's replies (shim/daemon_reply.c, called by daemon_link.c).
 *
 * The input is what a daemon sends on one connection: the answer to HELLO
 * (WELCOME or ERROR), then the answers to successive PLAN_REQUESTs (PLAN or
 * ERROR), read exactly as daemon_link.c reads them, until the input ends or
 * a reply is refused.  After each accepted reply the decoder's contract
 * (docs/internals.md section 5) must hold; a breach aborts, which the fuzzer
 * counts as a crash like any sanitizer report.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "shim.h"

struct input {
	const uint8_t	*p;
	size_t		left;
};

/* reply_reader over the input: a short input is a connection reset. */
static int
input_read(void *ctx, uint8_t *buf, size_t len)
{
	struct input *in = ctx;

	if (len > in->left) {
		in->left = 0;
		errno = ECONNRESET;
		return (-1);
	}
	memcpy(buf, in->p, len);
	in->p += len;
	in->left -= len;
	return (0);
}

/* Every diagnostic is a terminated string, whatever the daemon sent. */
static void
check_why(const char *why, size_t whylen)
{

	if (memchr(why, '\0', whylen) == NULL)
		abort();
}

static void
check_welcome(const struct kernel_facts *f)
{

	if (f->cpuset_bytes < 32 || f->cpuset_bytes > VMC_CPUSET_MAX_BYTES)
		abort();
	if (f->vmrun_abi != 13 && f->vmrun_abi != 14)
		abort();
}

/* internals.md: action 0 (pass-through) or 1 (park), spinupBias 0 or 1. */
static void
check_plan(const struct plan_reply *r)
{

	if (r->action != VMC_PLAN_ACTION_PASS_THROUGH &&
	    r->action != VMC_PLAN_ACTION_PARK)
		abort();
	if (r->spinup_bias > 1)
		abort();
	if (r->action == VMC_PLAN_ACTION_PASS_THROUGH && !set_empty(&r->parked))
		abort();
	if (memchr(r->reason, '\0', sizeof(r->reason)) == NULL)
		abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t welcome[VMC_WELCOME_BYTES], plan[VMC_PLAN_BYTES];
	struct input in = { data, size };
	struct kernel_facts facts;
	struct plan_reply reply;
	unsigned session;
	char why[256];
	enum reply_verdict verdict;

	why[0] = '\0';
	if (reply_read(input_read, &in, VMC_T_WELCOME, welcome,
	    sizeof(welcome), why, sizeof(why), &verdict) != 0) {
		check_why(why, sizeof(why));
		return (0);
	}
	if (reply_welcome(welcome, &facts, &session, why, sizeof(why)) != 0) {
		check_why(why, sizeof(why));
		return (0);
	}
	check_welcome(&facts);
	while (in.left > 0) {
		if (reply_read(input_read, &in, VMC_T_PLAN, plan, sizeof(plan),
		    why, sizeof(why), &verdict) != 0 ||
		    reply_plan(plan, &reply, why, sizeof(why)) != 0) {
			check_why(why, sizeof(why));
			break;
		}
		check_plan(&reply);
	}
	return (0);
}
