/*
 * memseg_input: a 13.1 caller's memory-segment requests through the
 * interposer on a 15.0 kernel model, good and bad: one line per request,
 * "name ret errno [segid]".  test/native/memseg.test.ts reads the lines.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm13.h"

static int fd;

static void
report(const char *what, int ret, int segid)
{

	printf("%s %d %d %d\n", what, ret, ret == 0 ? 0 : errno, segid);
}

static void
alloc(const char *what, int segid, size_t len, const char *name, int nul)
{
	struct vm_memseg m;

	memset(&m, 0, sizeof(m));
	m.segid = segid;
	m.len = len;
	if (nul)
		snprintf(m.name, sizeof(m.name), "%s", name);
	else
		memset(m.name, 'A', sizeof(m.name));
	report(what, ioctl(fd, ABI13_VM_ALLOC_MEMSEG, &m), m.segid);
}

static void
get(const char *what, int segid)
{
	struct vm_memseg m;
	int ret;

	memset(&m, 0, sizeof(m));
	m.segid = segid;
	ret = ioctl(fd, ABI13_VM_GET_MEMSEG, &m);
	printf("%s %d %d %d %zu %.16s\n", what, ret, ret == 0 ? 0 : errno,
	    m.segid, m.len, m.name);
}

static void
map(const char *what, uint64_t gpa, int segid, size_t len, int prot)
{
	struct vm_memmap mm;

	memset(&mm, 0, sizeof(mm));
	mm.gpa = gpa;
	mm.segid = segid;
	mm.len = len;
	mm.prot = prot;
	report(what, ioctl(fd, ABI13_VM_MMAP_MEMSEG, &mm), mm.segid);
}

static void
getnext(const char *what, uint64_t gpa)
{
	struct vm_memmap mm;
	int ret;

	memset(&mm, 0, sizeof(mm));
	mm.gpa = gpa;
	ret = ioctl(fd, ABI13_VM_MMAP_GETNEXT, &mm);
	printf("%s %d %d %d 0x%llx\n", what, ret, ret == 0 ? 0 : errno,
	    mm.segid, (unsigned long long)mm.gpa);
}

int
main(int argc, char **argv)
{
	char path[300];

	if (argc != 2)
		return (2);
	snprintf(path, sizeof(path), "/dev/vmm/%s", argv[1]);
	fd = open(path, O_RDWR);
	if (fd < 0) {
		perror("open");
		return (1);
	}
	alloc("alloc-sysmem", 0, 0x100000, "", 1);
	map("map-sysmem", 0, 0, 0x100000, 7);
	alloc("alloc-bootrom", 1, 0x1000, "bootrom", 1);
	get("get-bootrom", 1);
	map("map-bootrom", 0x100000000ULL - 0x1000, 1, 0x1000, 5);
	getnext("getnext-rom", 0x100000);
	getnext("getnext-past-last", 0x100000000ULL);
	alloc("alloc-segid-out-of-range", 4, 0x1000, "x", 1);
	alloc("alloc-name-without-nul", 2, 0x1000, NULL, 0);
	get("get-segid-out-of-range", 4);
	map("map-segid-out-of-range", 0x200000, 11, 0x1000, 3);
	map("map-segid-negative", 0x200000, -1, 0x1000, 3);
	(void)ioctl(fd, ABI13_VM_ALLOC_MEMSEG, NULL);
	(void)ioctl(fd, ABI13_VM_GET_MEMSEG, NULL);
	(void)ioctl(fd, ABI13_VM_MMAP_MEMSEG, NULL);
	(void)ioctl(fd, ABI13_VM_MMAP_GETNEXT, NULL);
	printf("ok\n");
	return (0);
}
