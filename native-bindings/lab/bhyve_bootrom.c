/*
 * bhyve_bootrom.c: bootrom.c, the boot ROM region every bhyve from 13.1 to
 * 14.x sets up on every run.  main calls init_bootrom right after guest
 * memory, ROM or not: a 16 MB VM_BOOTROM device-memory segment "bootrom"
 * (/dev/vmm.io/NAME.bootrom), mapped into bhyve, nothing into the guest yet.
 * A ROM boot then has the LPC device load the ROM (bootrom_loadrom), which
 * bootrom_alloc maps at the top of the region: gpa 4 GB - size, segment
 * offset 16 MB - size.
 *
 * Read in FreeBSD's bootrom.c of 13.x (read_file id 2039319618: init_bootrom,
 * bootrom_alloc, bootrom_loadrom(ctx, romfile)) and of 14.0 (1d386b48, id
 * 148435975: the same, and bootrom_loadrom first checks the ROM and its
 * variables file together against the region); bhyverun.c calls
 * init_bootrom in 13.1 (ElyesH/freebsd-src 52ca8b68, id 46548892207),
 * stable/13 (0040b6857e93, id 8462281525) and 14.0 (id 164064629).  The
 * messages are theirs: warnx/warn ("bhyve: ...") and EPRINTLN.
 */
#define	_GNU_SOURCE
#define	LAB_FBSD_WEAK
#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "bhyve_common.h"

#define	PAGE_SIZE		4096UL
#define	PAGE_MASK		(PAGE_SIZE - 1)
#define	BOOTROM_SIZE		(16UL * 1024 * 1024)	/* bootrom.c */
#define	PROT_ALL_		(PROT_READ | PROT_WRITE | PROT_EXEC)

static char *romptr;		/* bhyve's mapping of the whole region */
static uint64_t gpa_base;	/* low end of the region */
static uint64_t gpa_allocbot;	/* low end of the free part */
static uint64_t gpa_alloctop;	/* high end (inclusive) of the free part */

/* bootrom.c: init_bootrom, on every run. */
void
init_bootrom(struct vmctx *ctx)
{

	romptr = vm_create_devmem(ctx, VM_BOOTROM, "bootrom", BOOTROM_SIZE);
	if (romptr == MAP_FAILED)
		err(4, "%s: vm_create_devmem", __func__);
	gpa_base = (1ULL << 32) - BOOTROM_SIZE;
	gpa_allocbot = gpa_base;
	gpa_alloctop = (1ULL << 32) - 1;
}

/*
 * bootrom.c: bootrom_alloc with BOOTROM_ALLOC_TOP, the LPC ROM's request
 * (the lab has no other user of the region).  A failed vm_mmap_memseg is
 * warned about and its errno returned; errno keeps it for main's "device
 * emulation initialization error".
 */
static int
bootrom_alloc_top(struct vmctx *ctx, size_t len, int prot, char **region_out)
{
	uint64_t gpa, segoff;
	int serrno;

	if (prot & ~PROT_ALL_) {
		warnx("bootrom_alloc: Invalid protection: %x",
		    prot & ~PROT_ALL_);
		return (EINVAL);
	}
	if (len == 0 || len > BOOTROM_SIZE) {
		warnx("ROM size %zu is invalid", len);
		return (EINVAL);
	}
	if (len & PAGE_MASK) {
		warnx("ROM size %zu is not a multiple of the page size", len);
		return (EINVAL);
	}
	if ((gpa_alloctop - len) + 1 < gpa_allocbot) {
		warnx("No room for %zu ROM in bootrom region", len);
		return (ENOMEM);
	}
	gpa = (gpa_alloctop - len) + 1;
	segoff = gpa - gpa_base;
	if (vm_mmap_memseg(ctx, gpa, VM_BOOTROM, segoff, len, prot) != 0) {
		serrno = errno;
		warn("bootrom_alloc: vm_mmap_mapseg");
		errno = serrno;
		return (serrno);
	}
	gpa_alloctop = gpa - 1;
	*region_out = romptr + segoff;
	return (0);
}

/*
 * bootrom.c: bootrom_loadrom: the ROM file into the top of the region, page
 * by page.  14.0 first refuses a ROM (plus variables file, none in the lab)
 * larger than the region with its own message; 13.x leaves that to
 * bootrom_alloc ("ROM size N is invalid").
 */
int
bootrom_loadrom(struct vmctx *ctx, const char *romfile)
{
	struct stat sbuf;
	ssize_t rlen;
	off_t rom_size;
	char *ptr = NULL;
	int fd, i, rv;

	rv = -1;
	fd = open(romfile, O_RDONLY);
	if (fd < 0) {
		fprintf(stderr, "Error opening bootrom \"%s\": %s\n", romfile,
		    strerror(errno));
		goto done;
	}
	if (fstat(fd, &sbuf) < 0) {
		fprintf(stderr, "Could not fstat bootrom file \"%s\": %s\n",
		    romfile, strerror(errno));
		goto done;
	}
	rom_size = sbuf.st_size;
	if (bhyve_release.bootrom_aggregate_check &&
	    (size_t)rom_size > BOOTROM_SIZE) {
		fprintf(stderr, "Invalid bootrom and variable aggregate size "
		    "%ld\n", (long)rom_size);
		goto done;
	}
	if (bootrom_alloc_top(ctx, (size_t)rom_size, PROT_READ | PROT_EXEC,
	    &ptr) != 0)
		goto done;
	for (i = 0; i < rom_size / (off_t)PAGE_SIZE; i++) {
		rlen = read(fd, ptr + (size_t)i * PAGE_SIZE, PAGE_SIZE);
		if (rlen != (ssize_t)PAGE_SIZE) {
			fprintf(stderr, "Incomplete read of page %d of bootrom "
			    "file %s: %ld bytes\n", i, romfile, (long)rlen);
			goto done;
		}
	}
	rv = 0;
done:
	if (fd >= 0)
		(void)close(fd);
	return (rv);
}
