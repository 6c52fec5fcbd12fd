/*
 * abi_tag.c: the ELF note every FreeBSD program carries, which says the
 * release it was built for (lib/csu/common/crtbrand.S, read id 26879302250:
 * section ".note.tag", an allocated note; name "FreeBSD", type
 * NT_FREEBSD_ABI_TAG 1, a 4-byte __FreeBSD_version).  Each bhyve model is
 * linked with one build of this file, ABI_TAG set to its release's value
 * (native-bindings/Makefile), so the interposer and `vmm-compat doctor
 * --bhyve` read the model's release as they read a real bhyve's; so is the
 * interposer's test program shim/tests/abi_tag_open.c (shim/shim.mk).  The
 * linker puts the note in a PT_NOTE segment of the program, where the
 * interposer finds it in memory (shim/generation.c).
 */
#ifndef ABI_TAG
#error "build with -DABI_TAG=<__FreeBSD_version>"
#endif

#define	STR(x)	#x
#define	XSTR(x)	STR(x)

__asm__(
	"	.section .note.tag,\"a\",@note\n"
	"	.p2align 2\n"
	"	.4byte 8\n"		/* namesz: "FreeBSD\0" */
	"	.4byte 4\n"		/* descsz */
	"	.4byte 1\n"		/* NT_FREEBSD_ABI_TAG */
	"	.asciz \"FreeBSD\"\n"
	"	.p2align 2\n"
	"	.4byte " XSTR(ABI_TAG) "\n"
	"	.previous\n");

/* ISO C forbids an empty translation unit. */
extern int lab_abi_tag_unit;
