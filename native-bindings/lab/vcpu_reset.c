/*
 * vcpu_reset.c: registers at reset, as 13.1's vcpu_reset (lib/libvmmapi/
 * vmmapi.c, "Table 9-1. IA-32 Processor States Following Power-up, Reset
 * or INIT"; read_file id 704690988) loads them with VM_SET_REGISTER and
 * VM_SET_SEGMENT_DESCRIPTOR: RFLAGS 0x2, RIP 0xfff0, CR0 CR0_NE (0x20),
 * CR3 and CR4 0; CS base 0xffff0000, limit 0xffff, access 0x93, selector
 * 0xf000; SS, DS, ES, FS, GS base 0, limit 0xffff, access 0x93, selector 0;
 * RAX, RBX, RCX, RSI, RDI, RBP, RSP 0 and RDX 0xf00 (the CPU signature);
 * GDTR and IDTR base 0 limit 0xffff; TR access 0x8b, LDTR limit 0xffff
 * access 0x82, both selector 0.  CS:IP is the reset vector 0xfffffff0,
 * where a boot ROM mapped just below 4 GB takes over (bhyve_devices.c);
 * without one, a loader (bhyveload13) sets the guest's own entry point.
 */
#define	_GNU_SOURCE
#include <errno.h>

#include "vmmapi13.h"

#define	CR0_NE		0x00000020
#define	ACC_DATA	0x0093		/* present, read/write, accessed */
#define	ACC_LDT		0x0082
#define	ACC_TSS		0x008b
#define	CPU_SIGNATURE	0xf00
#define	RESET_CS_BASE	0xffff0000UL
#define	RESET_CS_SEL	0xf000
#define	RESET_RIP	0xfff0

#define	TRY(expr) do {							\
	if ((error = (expr)) != 0)					\
		return (error);						\
} while (0)

LAB_VMMAPI_EXPORT int
vcpu_reset(struct vmctx *vmctx, int vcpu)
{
	static const int data_segs[] = {
		VM_REG_GUEST_SS, VM_REG_GUEST_DS, VM_REG_GUEST_ES,
		VM_REG_GUEST_FS, VM_REG_GUEST_GS,
	};
	static const int zero_regs[] = {
		VM_REG_GUEST_RAX, VM_REG_GUEST_RBX, VM_REG_GUEST_RCX,
	};
	static const int zero_regs2[] = {
		VM_REG_GUEST_RSI, VM_REG_GUEST_RDI, VM_REG_GUEST_RBP,
		VM_REG_GUEST_RSP,
	};
	unsigned int i;
	int error;

	TRY(vm_set_register(vmctx, vcpu, VM_REG_GUEST_RFLAGS, 0x2));
	TRY(vm_set_register(vmctx, vcpu, VM_REG_GUEST_RIP, RESET_RIP));
	TRY(vm_set_register(vmctx, vcpu, VM_REG_GUEST_CR0, CR0_NE));
	TRY(vm_set_register(vmctx, vcpu, VM_REG_GUEST_CR3, 0));
	TRY(vm_set_register(vmctx, vcpu, VM_REG_GUEST_CR4, 0));

	/* CS: present, r/w, accessed, 16-bit, byte granularity, usable. */
	TRY(vm_set_desc(vmctx, vcpu, VM_REG_GUEST_CS, RESET_CS_BASE, 0xffff,
	    ACC_DATA));
	TRY(vm_set_register(vmctx, vcpu, VM_REG_GUEST_CS, RESET_CS_SEL));

	for (i = 0; i < sizeof(data_segs) / sizeof(data_segs[0]); i++)
		TRY(vm_set_desc(vmctx, vcpu, data_segs[i], 0, 0xffff,
		    ACC_DATA));
	for (i = 0; i < sizeof(data_segs) / sizeof(data_segs[0]); i++)
		TRY(vm_set_register(vmctx, vcpu, data_segs[i], 0));

	/* General purpose registers. */
	for (i = 0; i < sizeof(zero_regs) / sizeof(zero_regs[0]); i++)
		TRY(vm_set_register(vmctx, vcpu, zero_regs[i], 0));
	TRY(vm_set_register(vmctx, vcpu, VM_REG_GUEST_RDX, CPU_SIGNATURE));
	for (i = 0; i < sizeof(zero_regs2) / sizeof(zero_regs2[0]); i++)
		TRY(vm_set_register(vmctx, vcpu, zero_regs2[i], 0));

	TRY(vm_set_desc(vmctx, vcpu, VM_REG_GUEST_GDTR, 0, 0xffff, 0));
	TRY(vm_set_desc(vmctx, vcpu, VM_REG_GUEST_IDTR, 0, 0xffff, 0));
	TRY(vm_set_desc(vmctx, vcpu, VM_REG_GUEST_TR, 0, 0, ACC_TSS));
	TRY(vm_set_register(vmctx, vcpu, VM_REG_GUEST_TR, 0));
	TRY(vm_set_desc(vmctx, vcpu, VM_REG_GUEST_LDTR, 0, 0xffff, ACC_LDT));
	TRY(vm_set_register(vmctx, vcpu, VM_REG_GUEST_LDTR, 0));
	return (0);
}
