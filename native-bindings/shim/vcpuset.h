/*
 * vcpuset.h: sets of vCPU ids 0..VMC_MAX_VCPUS-1 laid out like bhyve's
 * cpuset_t (sys/_cpuset.h: an array of 64-bit words, bit k of the set is
 * bit k % 64 of word k / 64).  struct vcpu_set is a plain value (a plan, a
 * snapshot); struct vcpu_aset is shared between bhyve's vCPU threads and
 * the parkers and changes one bit at a time with atomic operations, so
 * that no lock is needed to test or claim an AP.
 */
#ifndef _VMMCOMPAT_VCPUSET_H_
#define _VMMCOMPAT_VCPUSET_H_

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "vmm_abi_gen.h"

/*
 * 13.x userland's CPU_SETSIZE (cpuset_t is 32 bytes): the most vCPUs a
 * legacy bhyve can keep in its own cpumask, so the most the interposer
 * ever has to cover.  What a VM really gets is decided by that bhyve
 * (13.1: VM_MAXCPU 16; 13.2-13.5: VM_GET_TOPOLOGY maxcpus) and the kernel.
 */
#define	VMC_MAX_VCPUS		(ABI13_CPUSET_BYTES * 8)
#define	VMC_SET_WORDS		(VMC_MAX_VCPUS / 64)

struct vcpu_set {
	uint64_t		w[VMC_SET_WORDS];
};

struct vcpu_aset {
	_Atomic uint64_t	w[VMC_SET_WORDS];
};

static inline int
vcpu_in_set_range(int vcpu)
{

	return (vcpu >= 0 && vcpu < VMC_MAX_VCPUS);
}

static inline uint64_t
vcpu_bit(int vcpu)
{

	return ((uint64_t)1 << (vcpu & 63));
}

/* ---- plain sets ------------------------------------------------------- */

static inline void
set_clear(struct vcpu_set *s)
{

	memset(s, 0, sizeof(*s));
}

static inline void
set_add(struct vcpu_set *s, int vcpu)
{

	if (vcpu_in_set_range(vcpu))
		s->w[vcpu >> 6] |= vcpu_bit(vcpu);
}

static inline void
set_del(struct vcpu_set *s, int vcpu)
{

	if (vcpu_in_set_range(vcpu))
		s->w[vcpu >> 6] &= ~vcpu_bit(vcpu);
}

static inline int
set_has(const struct vcpu_set *s, int vcpu)
{

	return (vcpu_in_set_range(vcpu) &&
	    (s->w[vcpu >> 6] & vcpu_bit(vcpu)) != 0);
}

static inline int
set_empty(const struct vcpu_set *s)
{
	int i;

	for (i = 0; i < VMC_SET_WORDS; i++)
		if (s->w[i] != 0)
			return (0);
	return (1);
}

static inline int
set_count(const struct vcpu_set *s)
{
	int i, n;

	n = 0;
	for (i = 0; i < VMC_SET_WORDS; i++)
		n += __builtin_popcountll(s->w[i]);
	return (n);
}

/* The lowest member >= from, or -1. */
static inline int
set_next(const struct vcpu_set *s, int from)
{
	uint64_t word;
	int i;

	if (from < 0)
		from = 0;
	for (i = from >> 6; i < VMC_SET_WORDS; i++) {
		word = s->w[i];
		if (i == from >> 6)
			word &= ~(uint64_t)0 << (from & 63);
		if (word != 0)
			return (i * 64 + __builtin_ctzll(word));
	}
	return (-1);
}

#define	SET_FOREACH(vcpu, s)						\
	for ((vcpu) = set_next((s), 0); (vcpu) >= 0;			\
	    (vcpu) = set_next((s), (vcpu) + 1))

/* Members below n only (vCPUs 0..n-1). */
static inline void
set_limit(struct vcpu_set *s, int n)
{
	int i;

	for (i = 0; i < VMC_SET_WORDS; i++) {
		if (n <= i * 64)
			s->w[i] = 0;
		else if (n < (i + 1) * 64)
			s->w[i] &= ((uint64_t)1 << (n - i * 64)) - 1;
	}
}

/* A little-endian cpuset_t of len bytes; bits beyond the set are dropped. */
static inline void
set_from_bytes(struct vcpu_set *s, const uint8_t *bytes, size_t len)
{

	set_clear(s);
	memcpy(s->w, bytes, len < sizeof(s->w) ? len : sizeof(s->w));
}

/* ---- shared sets ------------------------------------------------------ */

static inline int
aset_has(struct vcpu_aset *s, int vcpu)
{

	return (vcpu_in_set_range(vcpu) &&
	    (atomic_load(&s->w[vcpu >> 6]) & vcpu_bit(vcpu)) != 0);
}

static inline void
aset_add(struct vcpu_aset *s, int vcpu)
{

	if (vcpu_in_set_range(vcpu))
		atomic_fetch_or(&s->w[vcpu >> 6], vcpu_bit(vcpu));
}

static inline void
aset_del(struct vcpu_aset *s, int vcpu)
{

	if (vcpu_in_set_range(vcpu))
		atomic_fetch_and(&s->w[vcpu >> 6], ~vcpu_bit(vcpu));
}

static inline void
aset_clear(struct vcpu_aset *s)
{
	int i;

	for (i = 0; i < VMC_SET_WORDS; i++)
		atomic_store(&s->w[i], 0);
}

/* Word by word: callers that need one consistent view hold plan_lock. */
static inline void
aset_load(struct vcpu_aset *s, struct vcpu_set *out)
{
	int i;

	for (i = 0; i < VMC_SET_WORDS; i++)
		out->w[i] = atomic_load(&s->w[i]);
}

static inline void
aset_store(struct vcpu_aset *s, const struct vcpu_set *in)
{
	int i;

	for (i = 0; i < VMC_SET_WORDS; i++)
		atomic_store(&s->w[i], in->w[i]);
}

#endif /* !_VMMCOMPAT_VCPUSET_H_ */
