/*
 * coalesce.c: events that a guest can make the interposer send without end
 * (a spinup-duplicate for every INIT+SIPI it sends an AP that already runs)
 * reach the daemon a bounded number of times.  Of each boot's events of one
 * kind, the first COALESCE_FIRST go out as they come, then only the one whose
 * number in the boot is a power of two, preceded by an events-coalesced event
 * that says how many were held back since the last one sent; the rest are
 * only counted.  A boot that ends (suspend, VM_REINIT, close) sends the count
 * still held back.  So a guest that re-sends SIPIs forever costs the daemon
 * about 2 * log2(n) + COALESCE_FIRST events per boot, and the daemon's totals
 * stay exact: the events received plus the counts coalesced.
 *
 * The path of a held-back event is one atomic increment: no lock, no
 * allocation, no system call (docs/design.md, "Security").
 */
#include "shim.h"

/* Events of one kind per boot that are always sent: a few re-onlined CPUs. */
#define	COALESCE_FIRST	8

void
coalesce_event(struct vm_session *vs, struct coalesced_kind *c, int kind,
    int vcpu, int arg)
{
	unsigned n, held;

	n = atomic_fetch_add(&c->count, 1) + 1;
	if (n > COALESCE_FIRST && (n & (n - 1)) != 0)
		return;
	/* The ones since the last event sent (n - 1 of them counted so far). */
	held = n - 1 - atomic_exchange(&c->sent_at, n);
	if (held > 0 && held < n)
		link_event(vs, VMC_EV_EVENTS_COALESCED, kind, (int)held);
	link_event(vs, kind, vcpu, arg);
}

/* The boot ends: the count still held back goes out, and the next boot starts at 0. */
void
coalesce_flush(struct vm_session *vs, struct coalesced_kind *c, int kind)
{
	unsigned n, sent;

	n = atomic_exchange(&c->count, 0);
	sent = atomic_exchange(&c->sent_at, 0);
	if (n > sent)
		link_event(vs, VMC_EV_EVENTS_COALESCED, kind, (int)(n - sent));
}
