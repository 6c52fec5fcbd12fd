/*
 * vcpuset_test: the interposer's vCPU sets at their limits (vcpuset.h):
 * vCPU 0, 63/64 (word edges), 255 (the last of 13.x's CPU_SETSIZE), ids
 * beyond the set ignored, iteration, cuts and the cpuset_t byte order.
 * Prints "vcpuset: N checks passed" and exits 0, or names the failure.
 */
#include <stdio.h>
#include <stdlib.h>

#include "vcpuset.h"

static int checks;

#define	CHECK(cond) do {						\
	checks++;							\
	if (!(cond)) {							\
		fprintf(stderr, "%s:%d: %s\n", __FILE__, __LINE__, #cond);	\
		exit(1);						\
	}								\
} while (0)

int
main(void)
{
	struct vcpu_aset shared;
	struct vcpu_set s, t;
	uint8_t bytes[128];
	int i, n, vcpu;

	CHECK(VMC_MAX_VCPUS == 256);
	CHECK(sizeof(struct vcpu_set) == 32);	/* a 13.x cpuset_t */

	set_clear(&s);
	CHECK(set_empty(&s));
	CHECK(set_next(&s, 0) == -1);
	set_add(&s, 0);
	set_add(&s, 63);
	set_add(&s, 64);
	set_add(&s, 255);
	set_add(&s, 256);		/* beyond: ignored */
	set_add(&s, -1);		/* ignored */
	set_add(&s, 1 << 20);		/* ignored */
	CHECK(set_count(&s) == 4);
	CHECK(set_has(&s, 0) && set_has(&s, 63) && set_has(&s, 64));
	CHECK(set_has(&s, 255));
	CHECK(!set_has(&s, 256) && !set_has(&s, -1) && !set_has(&s, 1));
	CHECK(set_next(&s, 1) == 63);
	CHECK(set_next(&s, 64) == 64);
	CHECK(set_next(&s, 65) == 255);
	CHECK(set_next(&s, 256) == -1);
	n = 0;
	SET_FOREACH(vcpu, &s)
		n++;
	CHECK(n == 4);

	/* APs 1..255, then cut to a 40-vCPU VM. */
	set_clear(&s);
	for (i = 1; i < 256; i++)
		set_add(&s, i);
	CHECK(set_count(&s) == 255);
	t = s;
	set_limit(&t, 40);
	CHECK(set_count(&t) == 39 && set_has(&t, 39) && !set_has(&t, 40));
	t = s;
	set_limit(&t, 64);
	CHECK(set_count(&t) == 63 && !set_has(&t, 64));
	t = s;
	set_limit(&t, 65);
	CHECK(set_has(&t, 64) && !set_has(&t, 65));
	t = s;
	set_limit(&t, 256);
	CHECK(set_count(&t) == 255);
	t = s;
	set_limit(&t, 0);
	CHECK(set_empty(&t));
	set_del(&s, 128);
	CHECK(!set_has(&s, 128) && set_count(&s) == 254);

	/* cpuset_t bytes: bit k = bit k % 8 of byte k / 8; a kernel set of
	 * 128 bytes (14.x) keeps its first 256 bits. */
	for (i = 0; i < (int)sizeof(bytes); i++)
		bytes[i] = 0;
	bytes[0] = 0x02;		/* vCPU 1 */
	bytes[31] = 0x80;		/* vCPU 255 */
	bytes[32] = 0x01;		/* vCPU 256: not ours */
	set_from_bytes(&s, bytes, sizeof(bytes));
	CHECK(set_count(&s) == 2 && set_has(&s, 1) && set_has(&s, 255));
	set_from_bytes(&s, bytes, 1);	/* a short set: the rest is empty */
	CHECK(set_count(&s) == 1 && set_has(&s, 1));

	/* Shared sets. */
	aset_clear(&shared);
	aset_add(&shared, 255);
	aset_add(&shared, 64);
	aset_add(&shared, 256);
	CHECK(aset_has(&shared, 255) && aset_has(&shared, 64));
	CHECK(!aset_has(&shared, 256) && !aset_has(&shared, 63));
	aset_del(&shared, 64);
	aset_load(&shared, &s);
	CHECK(set_count(&s) == 1 && set_next(&s, 0) == 255);
	set_add(&s, 7);
	aset_store(&shared, &s);
	CHECK(aset_has(&shared, 7));
	aset_clear(&shared);
	aset_load(&shared, &s);
	CHECK(set_empty(&s));

	printf("vcpuset: %d checks passed\n", checks);
	return (0);
}
