/*
 * generation.c: which bhyve the interposer is in, and what that generation
 * needs on this kernel (the rule of src/daemon/bhyve-generation.ts, whose
 * table reaches C as VMC_BHYVE_REFUSED_FROM_* and VMC_BHYVE_NATIVE_FROM_*).
 *
 * Every FreeBSD program carries the release it was built for: crt1 links
 * lib/csu/common/crtbrand.S, a ".note.tag" section with one ELF note, name
 * "FreeBSD", type NT_FREEBSD_ABI_TAG (1, sys/sys/elf_common.h), a 4-byte
 * __FreeBSD_version.  The note is in a PT_NOTE segment of the loaded
 * program, so it is read from memory (dl_iterate_phdr: the main program is
 * the first object), with no file to open; the program may already be in
 * capability mode.
 */
#define	_GNU_SOURCE
#include <link.h>
#include <stdint.h>
#include <string.h>

#include "shim.h"

#ifdef __FreeBSD__
typedef Elf_Phdr	shim_phdr;
#else
typedef ElfW(Phdr)	shim_phdr;
#endif

#define	NOTE_FREEBSD_NAME	"FreeBSD"
#define	NT_FREEBSD_ABI_TAG_TYPE	1
#define	NOTE_ALIGN(n)		(((n) + 3u) & ~3u)

/* The ABI tag in one PT_NOTE segment's notes, or 0. */
static int
abi_tag_in_notes(const uint8_t *notes, size_t size)
{
	uint32_t namesz, descsz, type;
	int32_t version;
	size_t off, name, desc;

	for (off = 0; off + 12 <= size; off = desc + NOTE_ALIGN(descsz)) {
		memcpy(&namesz, notes + off, 4);
		memcpy(&descsz, notes + off + 4, 4);
		memcpy(&type, notes + off + 8, 4);
		name = off + 12;
		if (namesz > size || descsz > size)
			return (0);
		desc = name + NOTE_ALIGN(namesz);
		if (desc + descsz > size)
			return (0);
		if (type == NT_FREEBSD_ABI_TAG_TYPE &&
		    namesz == sizeof(NOTE_FREEBSD_NAME) && descsz == 4 &&
		    memcmp(notes + name, NOTE_FREEBSD_NAME,
		    sizeof(NOTE_FREEBSD_NAME)) == 0) {
			memcpy(&version, notes + desc, 4);
			return (version > 0 ? version : 0);
		}
	}
	return (0);
}

static int
main_program_tag(struct dl_phdr_info *info, size_t size, void *arg)
{
	const shim_phdr *ph;
	int *version = arg;
	int i;

	(void)size;
	for (i = 0; i < info->dlpi_phnum && *version == 0; i++) {
		ph = &info->dlpi_phdr[i];
		if (ph->p_type != PT_NOTE)
			continue;
		*version = abi_tag_in_notes(
		    (const uint8_t *)(info->dlpi_addr + ph->p_vaddr),
		    (size_t)ph->p_filesz);
	}
	return (1);	/* the first object is the program itself */
}

int
bhyve_abi_tag(void)
{
	int version;

	version = 0;
	(void)dl_iterate_phdr(main_program_tag, &version);
	return (version);
}

static const struct {
	int	variant;
	int	refused_from;
	int	native_from;
} bhyve_limits[] = {
	{ VMC_VARIANT_LEGACY13, VMC_BHYVE_REFUSED_FROM_LEGACY13,
	    VMC_BHYVE_NATIVE_FROM_LEGACY13 },
	{ VMC_VARIANT_WINDOW, VMC_BHYVE_REFUSED_FROM_WINDOW,
	    VMC_BHYVE_NATIVE_FROM_WINDOW },
	{ VMC_VARIANT_FIXED13, VMC_BHYVE_REFUSED_FROM_FIXED13,
	    VMC_BHYVE_NATIVE_FROM_FIXED13 },
	{ VMC_VARIANT_FIXED14, VMC_BHYVE_REFUSED_FROM_FIXED14,
	    VMC_BHYVE_NATIVE_FROM_FIXED14 },
	{ VMC_VARIANT_MAIN15, VMC_BHYVE_REFUSED_FROM_MAIN15,
	    VMC_BHYVE_NATIVE_FROM_MAIN15 },
};

/*
 * The kernel as far as the interposer knows it: the daemon's variant (or
 * the cached one), else what the kernel answered at open (only the 15.0
 * memory-segment request tells a generation by itself).
 */
static int
kernel_variant(const struct vm_session *vs)
{

	if (vs->facts_known)
		return (vs->facts.variant);
	if (vs->kabi_probed && vs->memseg15)
		return (VMC_VARIANT_MAIN15);
	return (VMC_VARIANT_UNKNOWN);
}

enum bhyve_handling
bhyve_handling(const struct vm_session *vs)
{
	size_t i;
	int variant, version;

	version = shim_config.bhyve_version;
	variant = kernel_variant(vs);
	if (version == 0 || variant == VMC_VARIANT_UNKNOWN)
		return (BHYVE_GENERIC);
	for (i = 0; i < sizeof(bhyve_limits) / sizeof(bhyve_limits[0]); i++) {
		if (bhyve_limits[i].variant != variant)
			continue;
		if (bhyve_limits[i].refused_from != 0 &&
		    version >= bhyve_limits[i].refused_from)
			return (BHYVE_REFUSED);
		if (bhyve_limits[i].native_from != 0 &&
		    version >= bhyve_limits[i].native_from)
			return (BHYVE_NATIVE);
		break;
	}
	if (version >= BHYVE_VERSION_14 && variant == VMC_VARIANT_MAIN15)
		return (BHYVE_14_ON_15);
	return (BHYVE_GENERIC);
}

/*
 * What the binary asks, when it carries no note: reported once, as the
 * generation's first release (docs/internals.md, event bhyve-generation).
 */
void
bhyve_learned(struct vm_session *vs, int version)
{

	if (atomic_load_explicit(&vs->generation_reported,
	    memory_order_relaxed) == 0 &&
	    atomic_exchange(&vs->generation_reported, 1) == 0)
		link_event(vs, VMC_EV_BHYVE_GENERATION, -1, version);
}
