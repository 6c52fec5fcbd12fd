/*
 * abi_tag_open: a program that carries a FreeBSD ABI tag, as every FreeBSD
 * program does (lib/csu/common/crtbrand.S: section ".note.tag", name
 * "FreeBSD", type NT_FREEBSD_ABI_TAG 1, a 4-byte __FreeBSD_version), and
 * opens /dev/vmm/NAME: test/native/abi-tag.test.ts runs it under the
 * interposer, which reads the tag from the running program.  Built once per
 * ABI_TAG value, linked with the note of lab/abi_tag.c, as the bhyve models
 * are.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int
main(int argc, char **argv)
{
	char path[300];
	int fd;

	if (argc != 2)
		return (2);
	snprintf(path, sizeof(path), "/dev/vmm/%s", argv[1]);
	fd = open(path, O_RDWR);
	if (fd < 0) {
		printf("open -1 %d\n", errno);
		return (0);
	}
	printf("open 0\n");
	close(fd);
	return (0);
}
