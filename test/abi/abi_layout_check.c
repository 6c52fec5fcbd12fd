/*
 * Independent check of the generated vmm_abi_gen.h: the vmm argument structs re-declared here
 * from the layout facts (reference legacy-13.1-side.md section 4, kernel-main-side.md section 4),
 * laid out by the C compiler (x86-64 SysV = FreeBSD amd64 rules), and every request number
 * rebuilt with the sys/sys/ioccom.h formula from sizeof(). Any disagreement with the header is a
 * compile error. Compiled by test/abi/c-header.test.ts with gcc -Wall -Wextra -Werror -std=c11.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "vmm_abi_gen.h"

#define	CHK_IOC(dir, n, len) \
	((unsigned long)((dir) | (((unsigned long)(len) & IOCPARM_MASK) << 16) | \
	    ((unsigned long)'v' << 8) | (unsigned long)(n)))
#define	CHK_IO(n)		CHK_IOC(IOC_VOID, (n), 0)
#define	CHK_IOR(n, t)		CHK_IOC(IOC_OUT, (n), sizeof(t))
#define	CHK_IOW(n, t)		CHK_IOC(IOC_IN, (n), sizeof(t))
#define	CHK_IOWR(n, t)		CHK_IOC(IOC_INOUT, (n), sizeof(t))

#define	SAME(a, b)	_Static_assert((a) == (b), #a " != " #b)
#define	SIZE(abi, t, NAME) \
	SAME(sizeof(struct t), abi##_SIZEOF_##NAME)
#define	OFF(abi, t, f, NAME, FIELD) \
	SAME(offsetof(struct t, f), abi##_OFFSETOF_##NAME##_##FIELD)

/* vm_exit: exitcode, inst_length, rip, then a 120-byte union aligned to 8. */
struct chk_vm_exit {
	int		exitcode;
	int		inst_length;
	uint64_t	rip;
	union {
		uint64_t	words[15];
		struct {
			int		vcpu;
			uint64_t	rip;
		} spinup_ap;
		struct {
			int		how;
		} suspended;
		struct {
			uint16_t	bytes:3, in:1, string:1, rep:1;
			uint16_t	port;
			uint32_t	eax;
		} inout;
		struct {
			uint32_t	code;
			uint64_t	wval;
		} msr;
		struct {
			uint32_t	mode;
			uint8_t		vector;
			unsigned long	dmask[256 / (8 * sizeof(long))];
		} ipi13;
	} u;
};
struct chk13_vm_run {
	int			cpuid;
	struct chk_vm_exit	vm_exit;
};
struct chk14_vm_run {
	int			cpuid;
	void			*cpuset;
	size_t			cpusetsize;
	struct chk_vm_exit	*vm_exit;
};
struct chk_vm_activate_cpu { int vcpuid; };
struct chk_vm_suspend { int how; };
struct chk_vm_cpuset { int which; int cpusetsize; void *cpus; };
struct chk_vm_capability { int cpuid; int captype; int capval; int allcpus; };
struct chk_vm_register { int cpuid; int regnum; uint64_t regval; };
struct chk_seg_desc { uint64_t base; uint32_t limit; uint32_t access; };
struct chk_vm_seg_desc { int cpuid; int regnum; struct chk_seg_desc desc; };
struct chk_vm_register_set { int cpuid; unsigned int count; const int *regnums; uint64_t *regvals; };
struct chk_vm_cpu_topology { uint16_t sockets, cores, threads, maxcpus; };
struct chk_vm_x2apic { int cpuid; int state; };
struct chk_vm_memseg { int segid; size_t len; char name[16]; };
struct chk_vm_memseg_fbsd12 { int segid; size_t len; char name[64]; };
struct chk_vm_memmap { uint64_t gpa; int segid; uint64_t segoff; size_t len; int prot; int flags; };
struct chk_vm_munmap { uint64_t gpa; size_t len; };
struct chk_vm_guest_paging { uint64_t cr3; int cpl; int cpu_mode; int paging_mode; };
struct chk_vm_gla2gpa {
	int vcpuid; int prot; uint64_t gla; struct chk_vm_guest_paging paging; int fault; uint64_t gpa;
};
struct chk_vm_gpa_pte { uint64_t gpa; uint64_t pte[4]; int ptenum; };
struct chk_vm_kernemu { int vcpuid; unsigned access_width:3; unsigned unused:29; uint64_t gpa; uint64_t value; };
struct chk_vm_intinfo { int vcpuid; uint64_t info1; uint64_t info2; };
struct chk_vm_exception { int cpuid; int vector; uint32_t error_code; int error_code_valid; int restart_instruction; };
struct chk_vm_lapic_irq { int cpuid; int vector; };
struct chk_vm_lapic_msi { uint64_t msg; uint64_t addr; };
struct chk_vm_nmi { int cpuid; };
struct chk_vm_ioapic_irq { int irq; };
struct chk_vm_isa_irq { int atpic_irq; int ioapic_irq; };
struct chk_vm_isa_irq_trigger { int atpic_irq; int trigger; };
struct chk_vm_pptdev { int bus; int slot; int func; };
struct chk_vm_pptdev_mmio { int bus; int slot; int func; uint64_t gpa; uint64_t hpa; size_t len; };
struct chk_vm_pptdev_msi { int vcpu; int bus; int slot; int func; int numvec; uint64_t msg; uint64_t addr; };
struct chk_vm_pptdev_msix {
	int vcpu; int bus; int slot; int func; int idx; uint64_t msg; uint32_t vector_control; uint64_t addr;
};
struct chk_timeval { int64_t tv_sec; long tv_usec; };
struct chk13_vm_stats { int cpuid; int num_entries; struct chk_timeval tv; uint64_t statbuf[64]; };
struct chk14_vm_stats { int cpuid; int index; int num_entries; struct chk_timeval tv; uint64_t statbuf[64]; };
struct chk_vm_stat_desc { int index; char desc[128]; };
struct chk_vm_hpet_cap { uint32_t capabilities; };
struct chk_vm_rtc_time { int64_t secs; };
struct chk_vm_rtc_data { int offset; uint8_t value; };
struct chk_snapshot_buffer { uint8_t *buf_start; size_t buf_size; uint8_t *buf; size_t buf_rem; };
struct chk13_vm_snapshot_meta {
	void *ctx; void *dev_data; const char *dev_name; int dev_req; struct chk_snapshot_buffer buffer; int op;
};
struct chk14_vm_snapshot_meta {
	void *dev_data; const char *dev_name; int dev_req; struct chk_snapshot_buffer buffer; int op;
};

/* Sizes. */
SIZE(ABI13, chk_vm_exit, VM_EXIT);
SIZE(ABI13, chk13_vm_run, VM_RUN);
SIZE(ABI14, chk14_vm_run, VM_RUN);
SIZE(ABI14, chk13_vm_run, VM_RUN_13);
SIZE(ABI14, chk_vm_exit, VM_EXIT_13);
SIZE(ABI13, chk_vm_activate_cpu, VM_ACTIVATE_CPU);
SIZE(ABI13, chk_vm_cpuset, VM_CPUSET);
SIZE(ABI13, chk_vm_capability, VM_CAPABILITY);
SIZE(ABI13, chk_vm_register, VM_REGISTER);
SIZE(ABI13, chk_vm_seg_desc, VM_SEG_DESC);
SIZE(ABI13, chk_vm_register_set, VM_REGISTER_SET);
SIZE(ABI13, chk_vm_cpu_topology, VM_CPU_TOPOLOGY);
SIZE(ABI13, chk_vm_suspend, VM_SUSPEND);
SIZE(ABI13, chk_vm_x2apic, VM_X2APIC);
SIZE(ABI13, chk_vm_memseg, VM_MEMSEG);
SIZE(ABI13, chk_vm_memseg_fbsd12, VM_MEMSEG_FBSD12);
SIZE(ABI13, chk_vm_memmap, VM_MEMMAP);
SIZE(ABI13, chk_vm_munmap, VM_MUNMAP);
SIZE(ABI13, chk_vm_gla2gpa, VM_GLA2GPA);
SIZE(ABI13, chk_vm_gpa_pte, VM_GPA_PTE);
SIZE(ABI13, chk_vm_kernemu, VM_READWRITE_KERNEMU_DEVICE);
SIZE(ABI13, chk_vm_intinfo, VM_INTINFO);
SIZE(ABI13, chk_vm_exception, VM_EXCEPTION);
SIZE(ABI13, chk_vm_pptdev_msix, VM_PPTDEV_MSIX);
SIZE(ABI13, chk13_vm_stats, VM_STATS);
SIZE(ABI14, chk14_vm_stats, VM_STATS);
SIZE(ABI14, chk13_vm_stats, VM_STATS_OLD);
SIZE(ABI13, chk13_vm_snapshot_meta, VM_SNAPSHOT_META);
SIZE(ABI14, chk14_vm_snapshot_meta, VM_SNAPSHOT_META);
SIZE(ABI14, chk13_vm_snapshot_meta, VM_SNAPSHOT_META_OLD);

/* Offsets. */
OFF(ABI13, chk_vm_exit, exitcode, VM_EXIT, EXITCODE);
OFF(ABI13, chk_vm_exit, inst_length, VM_EXIT, INST_LENGTH);
OFF(ABI13, chk_vm_exit, rip, VM_EXIT, RIP);
OFF(ABI13, chk_vm_exit, u, VM_EXIT, U);
OFF(ABI13, chk13_vm_run, cpuid, VM_RUN, CPUID);
OFF(ABI13, chk13_vm_run, vm_exit, VM_RUN, VM_EXIT);
OFF(ABI14, chk13_vm_run, vm_exit, VM_RUN_13, VM_EXIT);
OFF(ABI14, chk14_vm_run, cpuset, VM_RUN, CPUSET);
OFF(ABI14, chk14_vm_run, cpusetsize, VM_RUN, CPUSETSIZE);
OFF(ABI14, chk14_vm_run, vm_exit, VM_RUN, VM_EXIT);
OFF(ABI13, chk_vm_cpuset, cpus, VM_CPUSET, CPUS);
OFF(ABI13, chk_vm_register, regval, VM_REGISTER, REGVAL);
OFF(ABI13, chk_vm_seg_desc, desc.base, VM_SEG_DESC, BASE);
OFF(ABI13, chk_vm_seg_desc, desc.limit, VM_SEG_DESC, LIMIT);
OFF(ABI13, chk_vm_seg_desc, desc.access, VM_SEG_DESC, ACCESS);
OFF(ABI13, chk_vm_register_set, regvals, VM_REGISTER_SET, REGVALS);
OFF(ABI13, chk_vm_cpu_topology, maxcpus, VM_CPU_TOPOLOGY, MAXCPUS);
OFF(ABI13, chk_vm_memseg, name, VM_MEMSEG, NAME);
OFF(ABI13, chk_vm_memmap, segoff, VM_MEMMAP, SEGOFF);
OFF(ABI13, chk_vm_memmap, flags, VM_MEMMAP, FLAGS);
OFF(ABI13, chk_vm_gla2gpa, fault, VM_GLA2GPA, FAULT);
OFF(ABI13, chk_vm_gla2gpa, gpa, VM_GLA2GPA, GPA);
OFF(ABI13, chk_vm_pptdev_msix, addr, VM_PPTDEV_MSIX, ADDR);
OFF(ABI13, chk13_vm_stats, statbuf, VM_STATS, STATBUF);
OFF(ABI14, chk14_vm_stats, num_entries, VM_STATS, NUM_ENTRIES);
OFF(ABI14, chk14_vm_stats, tv.tv_sec, VM_STATS, TV_SEC);
OFF(ABI14, chk14_vm_stats, statbuf, VM_STATS, STATBUF);
OFF(ABI13, chk13_vm_snapshot_meta, buffer.buf_rem, VM_SNAPSHOT_META, BUF_REM);
OFF(ABI13, chk13_vm_snapshot_meta, op, VM_SNAPSHOT_META, OP);
OFF(ABI14, chk14_vm_snapshot_meta, op, VM_SNAPSHOT_META, OP);

/* Union members, relative to vm_exit.u. */
SAME(offsetof(struct chk_vm_exit, u.spinup_ap.vcpu) - offsetof(struct chk_vm_exit, u),
    ABI13_OFFSETOF_VM_EXIT_SPINUP_AP_VCPU);
SAME(offsetof(struct chk_vm_exit, u.spinup_ap.rip) - offsetof(struct chk_vm_exit, u),
    ABI13_OFFSETOF_VM_EXIT_SPINUP_AP_RIP);
SAME(offsetof(struct chk_vm_exit, u.inout.port) - offsetof(struct chk_vm_exit, u),
    ABI13_OFFSETOF_VM_EXIT_INOUT_PORT);
SAME(offsetof(struct chk_vm_exit, u.inout.eax) - offsetof(struct chk_vm_exit, u),
    ABI13_OFFSETOF_VM_EXIT_INOUT_EAX);
SAME(offsetof(struct chk_vm_exit, u.msr.wval) - offsetof(struct chk_vm_exit, u),
    ABI13_OFFSETOF_VM_EXIT_MSR_WVAL);
SAME(offsetof(struct chk_vm_exit, u.ipi13.dmask) - offsetof(struct chk_vm_exit, u),
    ABI14_OFFSETOF_VM_EXIT_IPI_13_DMASK);
SAME(sizeof(((struct chk_vm_exit *)0)->u.ipi13), ABI14_SIZEOF_VM_EXIT_IPI_13);
SAME(sizeof(((struct chk_vm_exit *)0)->u), ABI_VM_EXIT_U_BYTES);
SAME(sizeof(((struct chk_vm_exit *)0)->u.ipi13.dmask), ABI13_CPUSET_BYTES);

/* Request numbers, rebuilt the way vmm_dev.h defines them. */
SAME(CHK_IOWR(1, struct chk13_vm_run), ABI13_VM_RUN);
SAME(CHK_IOW(1, struct chk14_vm_run), ABI14_VM_RUN);	/* _IOW at e17eca32 */
SAME(CHK_IOWR(1, struct chk13_vm_run), ABI14_VM_RUN_13);
SAME(CHK_IOW(2, struct chk_vm_capability), ABI13_VM_SET_CAPABILITY);
SAME(CHK_IOWR(3, struct chk_vm_capability), ABI13_VM_GET_CAPABILITY);
SAME(CHK_IOW(4, struct chk_vm_suspend), ABI13_VM_SUSPEND);
SAME(CHK_IO(5), ABI13_VM_REINIT);
SAME(CHK_IOWR(12, struct chk_vm_gpa_pte), ABI13_VM_GET_GPA_PMAP);
SAME(CHK_IOWR(13, struct chk_vm_gla2gpa), ABI13_VM_GLA2GPA);
SAME(CHK_IOW(14, struct chk_vm_memseg), ABI13_VM_ALLOC_MEMSEG);
SAME(CHK_IOW(14, struct chk_vm_memseg_fbsd12), ABI13_VM_ALLOC_MEMSEG_FBSD12);
SAME(CHK_IOWR(15, struct chk_vm_memseg), ABI13_VM_GET_MEMSEG);
SAME(CHK_IOW(16, struct chk_vm_memmap), ABI13_VM_MMAP_MEMSEG);
SAME(CHK_IOWR(17, struct chk_vm_memmap), ABI13_VM_MMAP_GETNEXT);
SAME(CHK_IOW(19, struct chk_vm_munmap), ABI13_VM_MUNMAP_MEMSEG);
SAME(CHK_IOW(20, struct chk_vm_register), ABI13_VM_SET_REGISTER);
SAME(CHK_IOWR(21, struct chk_vm_register), ABI13_VM_GET_REGISTER);
SAME(CHK_IOW(22, struct chk_vm_seg_desc), ABI13_VM_SET_SEGMENT_DESCRIPTOR);
SAME(CHK_IOWR(23, struct chk_vm_seg_desc), ABI13_VM_GET_SEGMENT_DESCRIPTOR);
SAME(CHK_IOW(24, struct chk_vm_register_set), ABI13_VM_SET_REGISTER_SET);
SAME(CHK_IOWR(26, struct chk_vm_kernemu), ABI13_VM_GET_KERNEMU_DEV);
SAME(CHK_IOWR(28, struct chk_vm_intinfo), ABI13_VM_GET_INTINFO);
SAME(CHK_IOW(30, struct chk_vm_exception), ABI13_VM_INJECT_EXCEPTION);
SAME(CHK_IOW(31, struct chk_vm_lapic_irq), ABI13_VM_LAPIC_IRQ);
SAME(CHK_IOW(32, struct chk_vm_nmi), ABI13_VM_INJECT_NMI);
SAME(CHK_IOW(33, struct chk_vm_ioapic_irq), ABI13_VM_IOAPIC_ASSERT_IRQ);
SAME(CHK_IOW(36, struct chk_vm_lapic_msi), ABI13_VM_LAPIC_MSI);
SAME(CHK_IOR(38, int), ABI13_VM_IOAPIC_PINCOUNT);
SAME(CHK_IOW(39, int), ABI13_VM_RESTART_INSTRUCTION);
SAME(CHK_IOW(40, struct chk_vm_pptdev), ABI13_VM_BIND_PPTDEV);
SAME(CHK_IOW(42, struct chk_vm_pptdev_mmio), ABI13_VM_MAP_PPTDEV_MMIO);
SAME(CHK_IOW(43, struct chk_vm_pptdev_msi), ABI13_VM_PPTDEV_MSI);
SAME(CHK_IOW(44, struct chk_vm_pptdev_msix), ABI13_VM_PPTDEV_MSIX);
SAME(CHK_IOWR(50, struct chk13_vm_stats), ABI13_VM_STATS);
SAME(CHK_IOWR(50, struct chk14_vm_stats), ABI14_VM_STATS);
SAME(CHK_IOWR(50, struct chk13_vm_stats), ABI14_VM_STATS_OLD);
SAME(CHK_IOWR(51, struct chk_vm_stat_desc), ABI13_VM_STAT_DESC);
SAME(CHK_IOW(60, struct chk_vm_x2apic), ABI13_VM_SET_X2APIC_STATE);
SAME(CHK_IOWR(61, struct chk_vm_x2apic), ABI13_VM_GET_X2APIC_STATE);
SAME(CHK_IOR(62, struct chk_vm_hpet_cap), ABI13_VM_GET_HPET_CAPABILITIES);
SAME(CHK_IOW(63, struct chk_vm_cpu_topology), ABI13_VM_SET_TOPOLOGY);
SAME(CHK_IOR(64, struct chk_vm_cpu_topology), ABI13_VM_GET_TOPOLOGY);
SAME(CHK_IOW(80, struct chk_vm_isa_irq), ABI13_VM_ISA_ASSERT_IRQ);
SAME(CHK_IOW(83, struct chk_vm_isa_irq_trigger), ABI13_VM_ISA_SET_IRQ_TRIGGER);
SAME(CHK_IOW(90, struct chk_vm_activate_cpu), ABI13_VM_ACTIVATE_CPU);
SAME(CHK_IOW(91, struct chk_vm_cpuset), ABI13_VM_GET_CPUS);
SAME(CHK_IOW(91, struct chk_vm_cpuset), ABI14_VM_GET_CPUS);
SAME(CHK_IOW(92, struct chk_vm_activate_cpu), ABI13_VM_SUSPEND_CPU);
SAME(CHK_IOW(93, struct chk_vm_activate_cpu), ABI13_VM_RESUME_CPU);
SAME(CHK_IOWR(100, struct chk_vm_rtc_data), ABI13_VM_RTC_READ);
SAME(CHK_IOR(103, struct chk_vm_rtc_time), ABI13_VM_RTC_GETTIME);
SAME(CHK_IOWR(113, struct chk13_vm_snapshot_meta), ABI13_VM_SNAPSHOT_REQ);
SAME(CHK_IOWR(113, struct chk14_vm_snapshot_meta), ABI14_VM_SNAPSHOT_REQ);
SAME(CHK_IOWR(113, struct chk13_vm_snapshot_meta), ABI14_VM_SNAPSHOT_REQ_OLD);
SAME(CHK_IOWR(115, int), ABI13_VM_RESTORE_TIME);

/*
 * 15.0/main (sys/dev/vmm/vmm_dev.c at 012895d5, read_file id 3299502974: the _14 compat
 * ioctls; sys/dev/vmm/vmm_dev.h at 272c8c2b, id 31869710602: /dev/vmmctl, group 'V';
 * sys/dev/vmm/vmm_param.h: VM_MAX_NAMELEN = 255 - 10 - 15 - 1). The NUMA vm_memseg's field
 * order is the riscv vmm_dev.h's (id 11725438140): no amd64 header with it was in the index.
 */
#define	CHK_IOC_V(dir, n, len) \
	((unsigned long)((dir) | (((unsigned long)(len) & IOCPARM_MASK) << 16) | \
	    ((unsigned long)'V' << 8) | (unsigned long)(n)))
struct chk15_vm_memseg {
	int		segid;
	size_t		len;
	char		name[15 + 1];
	void		*ds_mask;
	size_t		ds_mask_size;
	int		ds_policy;
};
struct chk15_vmmctl_vm { char name[229 + 1]; int reserved[16]; };
SIZE(ABI15, chk15_vm_memseg, VM_MEMSEG);
OFF(ABI15, chk15_vm_memseg, name, VM_MEMSEG, NAME);
OFF(ABI15, chk15_vm_memseg, ds_mask, VM_MEMSEG, DS_MASK);
OFF(ABI15, chk15_vm_memseg, ds_mask_size, VM_MEMSEG, DS_MASK_SIZE);
OFF(ABI15, chk15_vm_memseg, ds_policy, VM_MEMSEG, DS_POLICY);
SIZE(ABI15, chk_vm_memseg, VM_MEMSEG_14);
SIZE(ABI15, chk_vm_memseg_fbsd12, VM_MEMSEG_12);
SIZE(ABI15, chk15_vmmctl_vm, VMMCTL_VM_CREATE);
SIZE(ABI15, chk15_vmmctl_vm, VMMCTL_VM_DESTROY);
OFF(ABI15, chk15_vmmctl_vm, reserved, VMMCTL_VM_CREATE, RESERVED);
SAME(sizeof(((struct chk15_vmmctl_vm *)0)->name), VM_MAX_NAMELEN + 1);
SAME(CHK_IOW(14, struct chk15_vm_memseg), ABI15_VM_ALLOC_MEMSEG);
SAME(CHK_IOWR(15, struct chk15_vm_memseg), ABI15_VM_GET_MEMSEG);
SAME(CHK_IOW(14, struct chk_vm_memseg), ABI15_VM_ALLOC_MEMSEG_14);
SAME(CHK_IOWR(15, struct chk_vm_memseg), ABI15_VM_GET_MEMSEG_14);
SAME(CHK_IOW(14, struct chk_vm_memseg_fbsd12), ABI15_VM_ALLOC_MEMSEG_12);
SAME(CHK_IOWR(15, struct chk_vm_memseg_fbsd12), ABI15_VM_GET_MEMSEG_12);
SAME(CHK_IOW(16, struct chk_vm_memmap), ABI15_VM_MMAP_MEMSEG);
SAME(CHK_IOWR(17, struct chk_vm_memmap), ABI15_VM_MMAP_GETNEXT);
SAME(CHK_IOW(1, struct chk14_vm_run), ABI15_VM_RUN);
SAME(CHK_IOWR(1, struct chk13_vm_run), ABI15_VM_RUN_13);
SAME(CHK_IOWR(50, struct chk13_vm_stats), ABI15_VM_STATS_13);
SAME(CHK_IOC_V(IOC_INOUT, 0, sizeof(struct chk15_vmmctl_vm)), ABI15_VMMCTL_VM_CREATE);
SAME(CHK_IOC_V(IOC_INOUT, 1, sizeof(struct chk15_vmmctl_vm)), ABI15_VMMCTL_VM_DESTROY);
/* sys/dev/vmm/vmm_mem.h at 09fa9c6f (id 2142784334). */
SAME(VM15_BOOTROM, 8);
SAME(VM15_MAX_MEMSEGS, 11);

/* A few enum values the C parts rely on. */
SAME(VM_EXITCODE_SPINUP_AP, 10);
SAME(VM_EXITCODE_SUSPENDED, 14);
SAME(VM_EXITCODE_MAX13, 24);
SAME(VM_REG_GUEST_RIP, 20);
SAME(VM_ACTIVE_CPUS, 0);

int
main(void)
{
	/* The inout bit-fields: OUT, 1 byte, through the C compiler's allocation. */
	struct chk_vm_exit e = { 0 };
	uint16_t raw;

	e.u.inout.bytes = 4;
	e.u.inout.in = 1;
	e.u.inout.rep = 1;
	raw = (uint16_t)(e.u.words[0] & 0xffff);
	printf("inout_flags %u\n", (unsigned)raw);
	return (0);
}
