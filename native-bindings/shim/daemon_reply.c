/*
 * daemon_reply.c: the interposer's reading of vmm-compatd's replies
 * (docs/internals.md section 5): the frame header, ERROR, WELCOME and PLAN.
 * It does no I/O itself: the bytes come through a reader, so the code that
 * reads the daemon's socket (daemon_link.c) is the code the fuzzer runs
 * (native-bindings/fuzz/fuzz_daemon_reply.c).  Offsets come from the
 * daemon's LAYOUT table (vmm_compat_proto_gen.h); no allocation.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "shim.h"

static uint32_t
get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);	/* amd64: host order is little-endian */
	return (v);
}

static uint64_t
get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return (v);
}

int
reply_read(reply_reader read, void *ctx, uint16_t want, uint8_t *body,
    size_t bodylen, char *why, size_t whylen, enum reply_verdict *verdict)
{
	uint8_t hdr[VMC_PROTO_HDR_BYTES], err[VMC_ERROR_BYTES];
	uint32_t code, len;
	uint16_t type, version;

	*verdict = REPLY_AWAY;
	if (read(ctx, hdr, sizeof(hdr)) != 0) {
		snprintf(why, whylen, "no reply: %s", strerror(errno));
		return (-1);
	}
	len = get32(hdr);
	memcpy(&version, hdr + 4, 2);
	memcpy(&type, hdr + 6, 2);
	if (type == VMC_T_ERROR && len == VMC_ERROR_BYTES) {
		if (read(ctx, err, sizeof(err)) != 0) {
			snprintf(why, whylen, "truncated error reply");
			return (-1);
		}
		err[VMC_ERROR_BYTES - 1] = '\0';
		snprintf(why, whylen, "%s", (const char *)err + VMC_ERROR_MESSAGE);
		/*
		 * Only EPERM is a verdict on this client (not its VM, not its
		 * jail).  Anything else (a protocol version mismatch, the
		 * daemon unable to open the VM, the daemon over a limit) is
		 * the daemon's trouble: act as if it were away.  Over a limit
		 * (EAGAIN) is told apart only so that the message says so.
		 */
		code = get32(err + VMC_ERROR_CODE);
		if (code == VMC_PROTO_REFUSAL_CODE)
			*verdict = REPLY_REFUSED;
		else if (code == VMC_PROTO_BUSY_CODE)
			*verdict = REPLY_BUSY;
		return (-1);
	}
	/*
	 * ERROR has one layout in every version (it is how the daemon says
	 * that it does not speak ours); any other reply must be in ours.
	 */
	if (type != want || len != bodylen || version != VMC_PROTO_VERSION) {
		snprintf(why, whylen, "unexpected reply type %u length %u "
		    "version %u", type, len, version);
		return (-1);
	}
	if (read(ctx, body, bodylen) != 0) {
		snprintf(why, whylen, "truncated reply: %s", strerror(errno));
		return (-1);
	}
	return (0);
}

/*
 * The variant code is checked against the interposer's own table by the
 * caller (facts_for_variant); the sizes are checked here.
 */
int
reply_welcome(const uint8_t *body, struct kernel_facts *facts,
    unsigned *session, char *why, size_t whylen)
{

	facts->variant = (int)get32(body + VMC_WELCOME_VARIANT);
	facts->cpuset_bytes = (int)get32(body + VMC_WELCOME_KERNEL_CPUSET_BYTES);
	facts->vmrun_abi = (int)get32(body + VMC_WELCOME_VMRUN_ABI);
	if (facts->cpuset_bytes < 32 || facts->cpuset_bytes > VMC_CPUSET_MAX_BYTES ||
	    (facts->vmrun_abi != 13 && facts->vmrun_abi != 14)) {
		snprintf(why, whylen, "daemon sent impossible kernel facts");
		return (-1);
	}
	*session = get32(body + VMC_WELCOME_SESSION);
	return (0);
}

int
reply_plan(const uint8_t *body, struct plan_reply *reply, char *why,
    size_t whylen)
{

	reply->action = get32(body + VMC_PLAN_ACTION);
	reply->spinup_bias = get32(body + VMC_PLAN_SPINUP_BIAS);
	set_from_bytes(&reply->parked, body + VMC_PLAN_PARKED_SET,
	    VMC_PLAN_PARKED_SET_SIZE);
	reply->boot = get32(body + VMC_PLAN_BOOT);
	memcpy(reply->reason, body + VMC_PLAN_REASON, sizeof(reply->reason));
	reply->reason[sizeof(reply->reason) - 1] = '\0';
	/*
	 * What plan_boot and spinup_ap_exit rely on: a bias of 0 or 1 (the
	 * window kernel's +1), and parked APs only in a PARK plan.
	 */
	if (reply->action != VMC_PLAN_ACTION_PASS_THROUGH &&
	    reply->action != VMC_PLAN_ACTION_PARK) {
		snprintf(why, whylen, "daemon sent an impossible plan "
		    "(action %u)", reply->action);
		return (-1);
	}
	if (reply->spinup_bias > 1) {
		snprintf(why, whylen, "daemon sent an impossible plan "
		    "(spinup bias %u)", reply->spinup_bias);
		return (-1);
	}
	if (reply->action == VMC_PLAN_ACTION_PASS_THROUGH &&
	    !set_empty(&reply->parked)) {
		snprintf(why, whylen, "daemon sent an impossible plan "
		    "(parked APs in a pass-through plan)");
		return (-1);
	}
	/* Version 2 keeps version 1's 64-bit mask: the low word of the set. */
	if (get64(body + VMC_PLAN_PARKED_MASK) != reply->parked.w[0]) {
		snprintf(why, whylen, "daemon sent an impossible plan "
		    "(parked mask and parked set differ)");
		return (-1);
	}
	return (0);
}
