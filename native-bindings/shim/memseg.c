/*
 * memseg.c: a 13.1 bhyve's memory-segment requests on a 15.0/main kernel
 * (kabi.c found the guest-NUMA VM_GET_MEMSEG).  sys/dev/vmm/vmm_mem.h
 * renumbered the segments (VM_SYSMEM 0..7, VM_BOOTROM 8, VM_FRAMEBUFFER 9,
 * VM_PCIROM 10; 13.1: 0, 1, 2, 3) and sys/dev/vmm/vmm_dev.c translates old
 * ids (adjust_segid: +7 for all but VM_SYSMEM) only inside
 * VM_ALLOC_MEMSEG_14 / VM_GET_MEMSEG_14, under COMPAT_FREEBSD14.  So:
 *
 *   VM_MMAP_MEMSEG   in: the id translated (the kernel takes 15.0 ids);
 *   VM_MMAP_GETNEXT  out: 8..10 back to 1..3 (the kernel returns 15.0 ids);
 *   VM_ALLOC_MEMSEG, VM_GET_MEMSEG: passed through while the kernel has
 *     COMPAT_FREEBSD14 (GET's copyout of the adjusted id is undone); without
 *     it, reissued as the 56-byte request with the id translated, no domain
 *     policy (DOMAINSET_POLICY_INVALID) and a NULL mask.
 *
 * Only a bhyve that speaks the old ids is translated: one whose ABI tag is
 * older than 15.0, or that sent a 32-byte memory-segment request (13.x and
 * 14.x libvmmapi's vm_alloc_memseg asks VM_GET_MEMSEG before anything is
 * mapped; 15.0's sends the 56-byte requests, with 15.0's ids).
 *
 * The translation is adjust_segid's own arithmetic, so a bad id fails the
 * way the kernel's compat path would fail it.  The caller's struct is never
 * passed on modified: each request goes out from a copy.
 */
#include <errno.h>
#include <string.h>

#include "shim.h"

#define	SEGID_SHIFT	(VM15_BOOTROM - VM_BOOTROM)	/* adjust_segid: 7 */

int
segid_to_15(int segid)
{

	return (segid == VM_SYSMEM ? segid : segid + SEGID_SHIFT);
}

int
segid_from_15(int segid)
{

	if (segid >= VM15_BOOTROM && segid < VM15_MAX_MEMSEGS)
		return (segid - SEGID_SHIFT);
	return (segid);
}

static void
note_translated(struct vm_session *vs, unsigned long request)
{

	if (atomic_fetch_or(&vs->memseg_translated,
	    1 << (request & 0x1f)) & (1 << (request & 0x1f)))
		return;
	link_event(vs, VMC_EV_MEMSEG_TRANSLATED, -1, (int)(request & 0xff));
}

int
memseg_alloc(struct vm_session *vs, int fd, unsigned long request,
    struct vm_memseg *arg)
{
	struct vm_memseg_15 m;
	int error;

	atomic_store_explicit(&vs->old_segids, 1, memory_order_relaxed);
	if (!vs->memseg15 || vs->memseg_compat14 || arg == NULL)
		return (shim_next_ioctl(fd, request, arg));
	memset(&m, 0, sizeof(m));
	m.segid = segid_to_15(arg->segid);
	m.len = arg->len;
	memcpy(m.name, arg->name, sizeof(m.name));
	m.ds_mask = NULL;
	m.ds_policy = DOMAINSET_POLICY_INVALID;
	error = shim_next_ioctl(fd, ABI15_VM_ALLOC_MEMSEG, &m);
	note_translated(vs, request);
	return (error);
}

int
memseg_get(struct vm_session *vs, int fd, unsigned long request,
    struct vm_memseg *arg)
{
	struct vm_memseg_15 m;
	struct vm_memseg copy;
	int error;

	atomic_store_explicit(&vs->old_segids, 1, memory_order_relaxed);
	if (!vs->memseg15 || arg == NULL)
		return (shim_next_ioctl(fd, request, arg));
	if (vs->memseg_compat14) {
		/* VM_GET_MEMSEG_14 writes the adjusted id back: restore 13.1's. */
		copy = *arg;
		error = shim_next_ioctl(fd, request, &copy);
		if (error == 0) {
			arg->len = copy.len;
			memcpy(arg->name, copy.name, sizeof(arg->name));
		}
		return (error);
	}
	memset(&m, 0, sizeof(m));
	m.segid = segid_to_15(arg->segid);
	error = shim_next_ioctl(fd, ABI15_VM_GET_MEMSEG, &m);
	if (error == 0) {
		arg->len = m.len;
		memcpy(arg->name, m.name, sizeof(arg->name));
	}
	note_translated(vs, request);
	return (error);
}

int
memseg_mmap(struct vm_session *vs, int fd, unsigned long request,
    struct vm_memmap *arg)
{
	struct vm_memmap m;

	if (!vs->memseg15 || arg == NULL || arg->segid == VM_SYSMEM ||
	    !atomic_load_explicit(&vs->old_segids, memory_order_relaxed))
		return (shim_next_ioctl(fd, request, arg));
	m = *arg;
	m.segid = segid_to_15(arg->segid);
	note_translated(vs, request);
	return (shim_next_ioctl(fd, request, &m));
}

int
memseg_getnext(struct vm_session *vs, int fd, unsigned long request,
    struct vm_memmap *arg)
{
	int error;

	if (!vs->memseg15 || arg == NULL ||
	    !atomic_load_explicit(&vs->old_segids, memory_order_relaxed))
		return (shim_next_ioctl(fd, request, arg));
	error = shim_next_ioctl(fd, request, arg);
	if (error == 0 && arg->segid != segid_from_15(arg->segid)) {
		arg->segid = segid_from_15(arg->segid);
		note_translated(vs, request);
	}
	return (error);
}
