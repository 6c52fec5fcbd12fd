/*
 * vcpu_reset.c: registers at reset.  13.1's vcpu_reset (lib/libvmmapi/
 * vmmapi.c) loads the x86 reset state with a sequence of VM_SET_REGISTER
 * and VM_SET_SEGMENT_DESCRIPTOR calls: RFLAGS 0x2, real mode (CR0 ET|NE),
 * data segments with base 0 and limit 0xffff, GDTR/IDTR limit 0xffff, LDTR
 * and TR present, RDX the CPU signature, and CS:IP at the reset vector.
 *
 * The lab's boot ROM is the guest image at 0x10000 (docs/internals.md
 * section 4): the reset vector is CS=0x1000 (base 0x10000), IP 0.  The BSP
 * also starts with DS=ES=SS=0x1000 and SP 0xFFF0 (the image's own segment,
 * as the lab's ROM leaves them); an AP's data segments stay 0, and
 * spinup_ap sets its CS from the SIPI vector.
 */
#define	_GNU_SOURCE
#include <errno.h>

#include "vmmapi13.h"

#define	CR0_ET		0x00000010
#define	CR0_NE		0x00000020
#define	ACC_DATA	0x0093		/* present, read/write, accessed */
#define	ACC_LDT		0x0082
#define	ACC_TSS		0x008b
#define	CPU_SIGNATURE	0xf00

#define	TRY(expr) do {							\
	if ((error = (expr)) != 0)					\
		return (error);						\
} while (0)

LAB_VMMAPI_EXPORT int
vcpu_reset(struct vmctx *vmctx, int vcpu)
{
	static const int data_segs[] = {
		VM_REG_GUEST_DS, VM_REG_GUEST_ES, VM_REG_GUEST_SS,
		VM_REG_GUEST_FS, VM_REG_GUEST_GS,
	};
	uint64_t boot_base, sel;
	unsigned int i;
	int error, seg;

	boot_base = (uint64_t)LAB_BOOT_SEL << 4;
	TRY(vm_set_register(vmctx, vcpu, VM_REG_GUEST_RFLAGS, 0x2));
	TRY(vm_set_register(vmctx, vcpu, VM_REG_GUEST_RIP, 0));
	TRY(vm_set_register(vmctx, vcpu, VM_REG_GUEST_CR0, CR0_ET | CR0_NE));
	TRY(vm_set_register(vmctx, vcpu, VM_REG_GUEST_CR3, 0));
	TRY(vm_set_register(vmctx, vcpu, VM_REG_GUEST_CR4, 0));

	TRY(vm_set_desc(vmctx, vcpu, VM_REG_GUEST_CS, boot_base, 0xffff,
	    ACC_DATA));
	TRY(vm_set_register(vmctx, vcpu, VM_REG_GUEST_CS, LAB_BOOT_SEL));

	for (i = 0; i < sizeof(data_segs) / sizeof(data_segs[0]); i++) {
		seg = data_segs[i];
		sel = 0;
		if (vcpu == 0 && (seg == VM_REG_GUEST_DS ||
		    seg == VM_REG_GUEST_ES || seg == VM_REG_GUEST_SS))
			sel = LAB_BOOT_SEL;
		TRY(vm_set_desc(vmctx, vcpu, seg, sel << 4, 0xffff, ACC_DATA));
		TRY(vm_set_register(vmctx, vcpu, seg, sel));
	}

	TRY(vm_set_register(vmctx, vcpu, VM_REG_GUEST_RDX, CPU_SIGNATURE));
	TRY(vm_set_register(vmctx, vcpu, VM_REG_GUEST_RSP,
	    vcpu == 0 ? LAB_BOOT_SP : 0));
	TRY(vm_set_desc(vmctx, vcpu, VM_REG_GUEST_GDTR, 0, 0xffff, 0));
	TRY(vm_set_desc(vmctx, vcpu, VM_REG_GUEST_IDTR, 0, 0xffff, 0));
	TRY(vm_set_desc(vmctx, vcpu, VM_REG_GUEST_LDTR, 0, 0xffff, ACC_LDT));
	TRY(vm_set_register(vmctx, vcpu, VM_REG_GUEST_LDTR, 0));
	TRY(vm_set_desc(vmctx, vcpu, VM_REG_GUEST_TR, 0, 0, ACC_TSS));
	TRY(vm_set_register(vmctx, vcpu, VM_REG_GUEST_TR, 0));
	return (0);
}
