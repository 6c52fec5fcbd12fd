/*
 * vmm13.h: the C layouts of the vmm ioctl arguments that the lab's bhyve
 * models, libvmmapi and bridge exchange, FreeBSD 13.1 ABI plus the 14.0
 * struct vm_run.  Self-contained: no FreeBSD header is needed.
 *
 * Every size and field offset is checked at compile time against the numbers
 * generated from the TypeScript ABI tables (vmm_abi_gen.h, docs/internals.md
 * section 3), which are in turn tested against the reference numbers in
 * legacy-13.1-side.md section 4 and kernel-main-side.md section 4.1.
 */
#ifndef _LAB_VMM13_H_
#define _LAB_VMM13_H_

#include <stddef.h>
#include <stdint.h>

#include "vmm_abi_gen.h"

/*
 * Constants the generated header does not carry (FreeBSD names and values):
 * apicreg.h APIC_DELMODE_INIT / APIC_DELMODE_STARTUP, the values vlapic.c
 * stores in u.ipi.mode.
 */
#ifndef APIC_DELMODE_INIT
#define	APIC_DELMODE_INIT	0x00000500
#endif
#ifndef APIC_DELMODE_STARTUP
#define	APIC_DELMODE_STARTUP	0x00000600
#endif

/* sys/_cpuset.h: CPU_MAXSIZE 256 on 13.x (32 bytes), 1024 on 14.0 (128). */
typedef struct {
	uint64_t	bits[4];
} cpuset13_t;

typedef struct {
	uint64_t	bits[16];
} cpuset14_t;

#define	LAB_CPU_ISSET(n, set)	\
	(((set)->bits[(n) / 64] >> ((n) % 64)) & 1)
#define	LAB_CPU_SET(n, set)	\
	((set)->bits[(n) / 64] |= (uint64_t)1 << ((n) % 64))
#define	LAB_CPU_CLR(n, set)	\
	((set)->bits[(n) / 64] &= ~((uint64_t)1 << ((n) % 64)))

/* vmm.h: struct vm_inout, bit-fields in one uint16_t. */
struct vm_inout {
	uint16_t	bytes:3;	/* 1 or 2 or 4 */
	uint16_t	in:1;
	uint16_t	string:1;
	uint16_t	rep:1;
	uint16_t	port;
	uint32_t	eax;		/* valid for out */
};

/*
 * vmm.h: struct vm_guest_paging (24 bytes) and vmm_instruction_emul.h:
 * struct vie (64 bytes, VIE_INST_SIZE 15), as far as bhyve's exit handlers
 * read them (legacy-13.1-side.md section 4.1).
 */
struct vm_guest_paging {
	uint64_t	cr3;
	int		cpl;
	int		cpu_mode;	/* enum vm_cpu_mode */
	int		paging_mode;	/* enum vm_paging_mode */
};

struct vie {
	uint8_t		inst[15];
	uint8_t		num_valid;
	uint8_t		num_processed;
	uint8_t		decode_state[39];	/* prefixes, ModRM, operands */
	uint8_t		decoded;
	uint8_t		_sparebyte;
	uint8_t		op[6];			/* struct vie_op */
};

/* vmm.h: enum vm_cpu_mode, enum task_switch_reason (13.x). */
#define	CPU_MODE_REAL		0
#define	CPU_MODE_PROTECTED	1
#define	TSR_CALL		0
#define	TSR_IRET		1
#define	TSR_JMP			2
#define	TSR_IDT_GATE		3

/*
 * vmm.h: struct vm_exit, 136 bytes on every version read.  The union is 120
 * bytes in 13.1 (its largest member, inst_emul, is not modelled: raw[15]
 * keeps the size).  ipi13 is the early-2023 main layout (cpuset_t dmask
 * inside the exit, 256 bits); ipi is the 14.0 layout (mask outside).
 */
struct vm_exit {
	int		exitcode;
	int		inst_length;
	uint64_t	rip;
	union {
		struct vm_inout	inout;
		struct {
			int		vcpu;
			uint64_t	rip;
		} spinup_ap;
		struct {
			int		how;
		} suspended;
		struct {
			uint32_t	mode;
			uint8_t		vector;
			uint64_t	dmask[4];
		} ipi13;
		struct {
			uint32_t	mode;
			uint8_t		vector;
		} ipi;
		struct {
			uint64_t	rflags;
			uint64_t	intr_status;
		} hlt;
		struct {
			uint32_t	code;
			uint64_t	wval;
		} msr;
		struct {
			int		status;
			uint32_t	exit_reason;
			uint64_t	exit_qualification;
			int		inst_type;
			int		inst_error;
		} vmx;
		struct {
			uint64_t	exitcode;
			uint64_t	exitinfo1;
			uint64_t	exitinfo2;
		} svm;
		struct {
			int		inst_length;
		} bpt;
		struct {
			uint64_t	gpa;
			uint64_t	gla;
			uint64_t	cs_base;
			int		cs_d;
			struct vm_guest_paging paging;
			struct vie	vie;
		} inst_emul;
		struct {
			uint16_t	tsssel;
			int		ext;
			uint32_t	errcode;
			int		errcode_valid;
			int		reason;	/* enum task_switch_reason */
			struct vm_guest_paging paging;
		} task_switch;
		uint64_t	raw[15];
	} u;
};

/* vmm_dev.h (13.1, early-2023 main): the exit is embedded. */
struct vm_run {
	int		cpuid;
	struct vm_exit	vm_exit;
};

/* vmm_dev.h (14.0, after e17eca32): pointers to the exit and the IPI set. */
struct vm_run_14 {
	int		cpuid;
	void		*cpuset;
	size_t		cpusetsize;
	struct vm_exit	*vm_exit;
};

struct vm_activate_cpu {
	int		vcpuid;
};

struct vm_cpuset {
	int		which;
	int		cpusetsize;
	void		*cpus;
};

struct vm_capability {
	int		cpuid;
	int		captype;
	int		capval;
	int		allcpus;
};

struct vm_register {
	int		cpuid;
	int		regnum;
	uint64_t	regval;
};

struct seg_desc {
	uint64_t	base;
	uint32_t	limit;
	uint32_t	access;
};

struct vm_seg_desc {
	int		cpuid;
	int		regnum;
	struct seg_desc	desc;
};

struct vm_register_set {
	int		cpuid;
	unsigned int	count;
	const int	*regnums;
	uint64_t	*regvals;
};

struct vm_cpu_topology {
	uint16_t	sockets;
	uint16_t	cores;
	uint16_t	threads;
	uint16_t	maxcpus;
};

struct vm_suspend {
	int		how;
};

struct vm_memseg {
	int		segid;
	size_t		len;
	char		name[VM_MAX_SUFFIXLEN + 1];
};

/*
 * 15.0/main (guest NUMA, a4197ea47777): the 13.1 head, then the domain set.
 * sys/dev/vmm/vmm_dev.c ignores the set when ds_policy is
 * DOMAINSET_POLICY_INVALID (0) or ds_mask is NULL.
 */
struct vm_memseg_15 {
	int		segid;
	size_t		len;
	char		name[VM_MAX_SUFFIXLEN + 1];
	void		*ds_mask;
	size_t		ds_mask_size;
	int		ds_policy;
};
#define	DOMAINSET_POLICY_INVALID	0

struct vm_memmap {
	uint64_t	gpa;
	int		segid;
	uint64_t	segoff;
	size_t		len;
	int		prot;
	int		flags;
};

struct vm_munmap {
	uint64_t	gpa;
	size_t		len;
};

struct vm_x2apic {
	int		cpuid;
	int		state;
};

struct vm_exception {
	int		cpuid;
	int		vector;
	uint32_t	error_code;
	int		error_code_valid;
	int		restart_instruction;
};

/*
 * Layout checks against the generated tables.  A failure here means the C
 * declaration and src/abi disagree: fix whichever contradicts the reference.
 */
#define	LAB_ASSERT_SIZE(abi, tag, type)					\
	_Static_assert(sizeof(type) == abi##_SIZEOF_##tag,		\
	    #type " size differs from " #abi "_SIZEOF_" #tag)
#define	LAB_ASSERT_OFF(abi, tag, FIELD, type, field)			\
	_Static_assert(offsetof(type, field) == abi##_OFFSETOF_##tag##_##FIELD, \
	    #type "." #field " offset differs from " #abi "_OFFSETOF_" #tag "_" #FIELD)

LAB_ASSERT_SIZE(ABI13, VM_EXIT, struct vm_exit);
LAB_ASSERT_OFF(ABI13, VM_EXIT, EXITCODE, struct vm_exit, exitcode);
LAB_ASSERT_OFF(ABI13, VM_EXIT, INST_LENGTH, struct vm_exit, inst_length);
LAB_ASSERT_OFF(ABI13, VM_EXIT, RIP, struct vm_exit, rip);
LAB_ASSERT_OFF(ABI13, VM_EXIT, U, struct vm_exit, u);
LAB_ASSERT_SIZE(ABI14, VM_EXIT, struct vm_exit);
LAB_ASSERT_SIZE(ABI14, VM_EXIT_13, struct vm_exit);

/* Union members: the generated VM_EXIT_<member> offsets are relative to u. */
#define	LAB_ASSERT_U(abi, MEMBER, FIELD, member, field)			\
	_Static_assert(offsetof(struct vm_exit, u.member.field) -	\
	    offsetof(struct vm_exit, u) ==				\
	    abi##_OFFSETOF_VM_EXIT_##MEMBER##_##FIELD,			\
	    "vm_exit.u." #member "." #field " differs from " #abi)
_Static_assert(sizeof(((struct vm_exit *)0)->u) == ABI_VM_EXIT_U_BYTES, "vm_exit.u size");
_Static_assert(sizeof(struct vm_inout) == ABI13_SIZEOF_VM_EXIT_INOUT, "vm_inout size");
LAB_ASSERT_U(ABI13, INOUT, PORT, inout, port);
LAB_ASSERT_U(ABI13, INOUT, EAX, inout, eax);
LAB_ASSERT_U(ABI13, SPINUP_AP, VCPU, spinup_ap, vcpu);
LAB_ASSERT_U(ABI13, SPINUP_AP, RIP, spinup_ap, rip);
LAB_ASSERT_U(ABI13, SUSPENDED, HOW, suspended, how);
LAB_ASSERT_U(ABI13, MSR, CODE, msr, code);
LAB_ASSERT_U(ABI13, MSR, WVAL, msr, wval);
LAB_ASSERT_U(ABI13, HLT, RFLAGS, hlt, rflags);
LAB_ASSERT_U(ABI13, HLT, INTR_STATUS, hlt, intr_status);
LAB_ASSERT_U(ABI13, VMX, EXIT_REASON, vmx, exit_reason);
LAB_ASSERT_U(ABI13, VMX, EXIT_QUALIFICATION, vmx, exit_qualification);
LAB_ASSERT_U(ABI13, VMX, INST_ERROR, vmx, inst_error);
LAB_ASSERT_U(ABI13, SVM, EXITINFO2, svm, exitinfo2);
LAB_ASSERT_U(ABI14, IPI, MODE, ipi, mode);
LAB_ASSERT_U(ABI14, IPI, VECTOR, ipi, vector);
LAB_ASSERT_U(ABI14, IPI_13, MODE, ipi13, mode);
LAB_ASSERT_U(ABI14, IPI_13, VECTOR, ipi13, vector);
LAB_ASSERT_U(ABI14, IPI_13, DMASK, ipi13, dmask);
_Static_assert(sizeof(((struct vm_exit *)0)->u.ipi13) == ABI14_SIZEOF_VM_EXIT_IPI_13, "ipi13 size");
_Static_assert(sizeof(((struct vm_exit *)0)->u.bpt) == ABI13_SIZEOF_VM_EXIT_BPT, "bpt size");
LAB_ASSERT_U(ABI13, BPT, INST_LENGTH, bpt, inst_length);
/* legacy-13.1-side.md 4.1: the numbers the ABI tables do not carry. */
_Static_assert(sizeof(struct vm_guest_paging) == 24, "vm_guest_paging size");
_Static_assert(sizeof(struct vie) == 64, "vie size");
_Static_assert(offsetof(struct vie, decoded) == 56, "vie.decoded");
_Static_assert(offsetof(struct vm_exit, u.inst_emul.cs_d) - offsetof(struct vm_exit, u) == 24, "inst_emul.cs_d");
_Static_assert(offsetof(struct vm_exit, u.inst_emul.paging) - offsetof(struct vm_exit, u) == 32, "inst_emul.paging");
_Static_assert(offsetof(struct vm_exit, u.inst_emul.vie) - offsetof(struct vm_exit, u) == 56, "inst_emul.vie");
_Static_assert(sizeof(((struct vm_exit *)0)->u.inst_emul) == 120, "inst_emul: the union's largest member");
_Static_assert(sizeof(((struct vm_exit *)0)->u.task_switch) == 48, "vm_task_switch size");
_Static_assert(offsetof(struct vm_exit, u.task_switch.reason) - offsetof(struct vm_exit, u) == 16, "task_switch.reason");
_Static_assert(offsetof(struct vm_exit, u.task_switch.paging) - offsetof(struct vm_exit, u) == 24, "task_switch.paging");

LAB_ASSERT_SIZE(ABI13, VM_RUN, struct vm_run);
LAB_ASSERT_OFF(ABI13, VM_RUN, CPUID, struct vm_run, cpuid);
LAB_ASSERT_OFF(ABI13, VM_RUN, VM_EXIT, struct vm_run, vm_exit);
LAB_ASSERT_SIZE(ABI14, VM_RUN_13, struct vm_run);
LAB_ASSERT_OFF(ABI14, VM_RUN_13, VM_EXIT, struct vm_run, vm_exit);
LAB_ASSERT_SIZE(ABI14, VM_RUN, struct vm_run_14);
LAB_ASSERT_OFF(ABI14, VM_RUN, CPUID, struct vm_run_14, cpuid);
LAB_ASSERT_OFF(ABI14, VM_RUN, CPUSET, struct vm_run_14, cpuset);
LAB_ASSERT_OFF(ABI14, VM_RUN, CPUSETSIZE, struct vm_run_14, cpusetsize);
LAB_ASSERT_OFF(ABI14, VM_RUN, VM_EXIT, struct vm_run_14, vm_exit);

/* cpuset_t: 32 bytes on 13.x, 128 on 14.0 (kernel-main-side.md 4.1). */
_Static_assert(sizeof(cpuset13_t) == ABI13_CPUSET_BYTES, "13.1 cpuset_t size");
_Static_assert(sizeof(cpuset14_t) == ABI14_CPUSET_BYTES, "14.0 cpuset_t size");

LAB_ASSERT_SIZE(ABI13, VM_ACTIVATE_CPU, struct vm_activate_cpu);
LAB_ASSERT_SIZE(ABI14, VM_ACTIVATE_CPU, struct vm_activate_cpu);
LAB_ASSERT_OFF(ABI13, VM_ACTIVATE_CPU, VCPUID, struct vm_activate_cpu, vcpuid);
LAB_ASSERT_OFF(ABI14, VM_ACTIVATE_CPU, VCPUID, struct vm_activate_cpu, vcpuid);

LAB_ASSERT_SIZE(ABI13, VM_CPUSET, struct vm_cpuset);
LAB_ASSERT_SIZE(ABI14, VM_CPUSET, struct vm_cpuset);
LAB_ASSERT_OFF(ABI13, VM_CPUSET, WHICH, struct vm_cpuset, which);
LAB_ASSERT_OFF(ABI14, VM_CPUSET, WHICH, struct vm_cpuset, which);
LAB_ASSERT_OFF(ABI13, VM_CPUSET, CPUSETSIZE, struct vm_cpuset, cpusetsize);
LAB_ASSERT_OFF(ABI14, VM_CPUSET, CPUSETSIZE, struct vm_cpuset, cpusetsize);
LAB_ASSERT_OFF(ABI13, VM_CPUSET, CPUS, struct vm_cpuset, cpus);
LAB_ASSERT_OFF(ABI14, VM_CPUSET, CPUS, struct vm_cpuset, cpus);

LAB_ASSERT_SIZE(ABI13, VM_CAPABILITY, struct vm_capability);
LAB_ASSERT_SIZE(ABI14, VM_CAPABILITY, struct vm_capability);
LAB_ASSERT_OFF(ABI13, VM_CAPABILITY, CPUID, struct vm_capability, cpuid);
LAB_ASSERT_OFF(ABI14, VM_CAPABILITY, CPUID, struct vm_capability, cpuid);
LAB_ASSERT_OFF(ABI13, VM_CAPABILITY, CAPTYPE, struct vm_capability, captype);
LAB_ASSERT_OFF(ABI14, VM_CAPABILITY, CAPTYPE, struct vm_capability, captype);
LAB_ASSERT_OFF(ABI13, VM_CAPABILITY, CAPVAL, struct vm_capability, capval);
LAB_ASSERT_OFF(ABI14, VM_CAPABILITY, CAPVAL, struct vm_capability, capval);
LAB_ASSERT_OFF(ABI13, VM_CAPABILITY, ALLCPUS, struct vm_capability, allcpus);
LAB_ASSERT_OFF(ABI14, VM_CAPABILITY, ALLCPUS, struct vm_capability, allcpus);

LAB_ASSERT_SIZE(ABI13, VM_REGISTER, struct vm_register);
LAB_ASSERT_SIZE(ABI14, VM_REGISTER, struct vm_register);
LAB_ASSERT_OFF(ABI13, VM_REGISTER, CPUID, struct vm_register, cpuid);
LAB_ASSERT_OFF(ABI14, VM_REGISTER, CPUID, struct vm_register, cpuid);
LAB_ASSERT_OFF(ABI13, VM_REGISTER, REGNUM, struct vm_register, regnum);
LAB_ASSERT_OFF(ABI14, VM_REGISTER, REGNUM, struct vm_register, regnum);
LAB_ASSERT_OFF(ABI13, VM_REGISTER, REGVAL, struct vm_register, regval);
LAB_ASSERT_OFF(ABI14, VM_REGISTER, REGVAL, struct vm_register, regval);

/* The generated table flattens vm_seg_desc.desc into base/limit/access. */
_Static_assert(sizeof(struct seg_desc) == 16, "seg_desc is 16 bytes");
LAB_ASSERT_SIZE(ABI13, VM_SEG_DESC, struct vm_seg_desc);
LAB_ASSERT_SIZE(ABI14, VM_SEG_DESC, struct vm_seg_desc);
LAB_ASSERT_OFF(ABI13, VM_SEG_DESC, CPUID, struct vm_seg_desc, cpuid);
LAB_ASSERT_OFF(ABI14, VM_SEG_DESC, CPUID, struct vm_seg_desc, cpuid);
LAB_ASSERT_OFF(ABI13, VM_SEG_DESC, REGNUM, struct vm_seg_desc, regnum);
LAB_ASSERT_OFF(ABI14, VM_SEG_DESC, REGNUM, struct vm_seg_desc, regnum);
LAB_ASSERT_OFF(ABI13, VM_SEG_DESC, BASE, struct vm_seg_desc, desc.base);
LAB_ASSERT_OFF(ABI14, VM_SEG_DESC, BASE, struct vm_seg_desc, desc.base);
LAB_ASSERT_OFF(ABI13, VM_SEG_DESC, LIMIT, struct vm_seg_desc, desc.limit);
LAB_ASSERT_OFF(ABI14, VM_SEG_DESC, LIMIT, struct vm_seg_desc, desc.limit);
LAB_ASSERT_OFF(ABI13, VM_SEG_DESC, ACCESS, struct vm_seg_desc, desc.access);
LAB_ASSERT_OFF(ABI14, VM_SEG_DESC, ACCESS, struct vm_seg_desc, desc.access);

LAB_ASSERT_SIZE(ABI13, VM_REGISTER_SET, struct vm_register_set);
LAB_ASSERT_SIZE(ABI14, VM_REGISTER_SET, struct vm_register_set);
LAB_ASSERT_OFF(ABI13, VM_REGISTER_SET, CPUID, struct vm_register_set, cpuid);
LAB_ASSERT_OFF(ABI14, VM_REGISTER_SET, CPUID, struct vm_register_set, cpuid);
LAB_ASSERT_OFF(ABI13, VM_REGISTER_SET, COUNT, struct vm_register_set, count);
LAB_ASSERT_OFF(ABI14, VM_REGISTER_SET, COUNT, struct vm_register_set, count);
LAB_ASSERT_OFF(ABI13, VM_REGISTER_SET, REGNUMS, struct vm_register_set, regnums);
LAB_ASSERT_OFF(ABI14, VM_REGISTER_SET, REGNUMS, struct vm_register_set, regnums);
LAB_ASSERT_OFF(ABI13, VM_REGISTER_SET, REGVALS, struct vm_register_set, regvals);
LAB_ASSERT_OFF(ABI14, VM_REGISTER_SET, REGVALS, struct vm_register_set, regvals);

LAB_ASSERT_SIZE(ABI13, VM_CPU_TOPOLOGY, struct vm_cpu_topology);
LAB_ASSERT_SIZE(ABI14, VM_CPU_TOPOLOGY, struct vm_cpu_topology);
LAB_ASSERT_OFF(ABI13, VM_CPU_TOPOLOGY, SOCKETS, struct vm_cpu_topology, sockets);
LAB_ASSERT_OFF(ABI14, VM_CPU_TOPOLOGY, SOCKETS, struct vm_cpu_topology, sockets);
LAB_ASSERT_OFF(ABI13, VM_CPU_TOPOLOGY, CORES, struct vm_cpu_topology, cores);
LAB_ASSERT_OFF(ABI14, VM_CPU_TOPOLOGY, CORES, struct vm_cpu_topology, cores);
LAB_ASSERT_OFF(ABI13, VM_CPU_TOPOLOGY, THREADS, struct vm_cpu_topology, threads);
LAB_ASSERT_OFF(ABI14, VM_CPU_TOPOLOGY, THREADS, struct vm_cpu_topology, threads);
LAB_ASSERT_OFF(ABI13, VM_CPU_TOPOLOGY, MAXCPUS, struct vm_cpu_topology, maxcpus);
LAB_ASSERT_OFF(ABI14, VM_CPU_TOPOLOGY, MAXCPUS, struct vm_cpu_topology, maxcpus);

LAB_ASSERT_SIZE(ABI13, VM_SUSPEND, struct vm_suspend);
LAB_ASSERT_SIZE(ABI14, VM_SUSPEND, struct vm_suspend);
LAB_ASSERT_OFF(ABI13, VM_SUSPEND, HOW, struct vm_suspend, how);
LAB_ASSERT_OFF(ABI14, VM_SUSPEND, HOW, struct vm_suspend, how);

LAB_ASSERT_SIZE(ABI13, VM_MEMSEG, struct vm_memseg);
LAB_ASSERT_SIZE(ABI14, VM_MEMSEG, struct vm_memseg);
LAB_ASSERT_OFF(ABI13, VM_MEMSEG, SEGID, struct vm_memseg, segid);
LAB_ASSERT_OFF(ABI14, VM_MEMSEG, SEGID, struct vm_memseg, segid);
LAB_ASSERT_OFF(ABI13, VM_MEMSEG, LEN, struct vm_memseg, len);
LAB_ASSERT_OFF(ABI14, VM_MEMSEG, LEN, struct vm_memseg, len);
LAB_ASSERT_OFF(ABI13, VM_MEMSEG, NAME, struct vm_memseg, name);
LAB_ASSERT_OFF(ABI14, VM_MEMSEG, NAME, struct vm_memseg, name);

LAB_ASSERT_SIZE(ABI15, VM_MEMSEG, struct vm_memseg_15);
LAB_ASSERT_OFF(ABI15, VM_MEMSEG, SEGID, struct vm_memseg_15, segid);
LAB_ASSERT_OFF(ABI15, VM_MEMSEG, LEN, struct vm_memseg_15, len);
LAB_ASSERT_OFF(ABI15, VM_MEMSEG, NAME, struct vm_memseg_15, name);
LAB_ASSERT_OFF(ABI15, VM_MEMSEG, DS_MASK, struct vm_memseg_15, ds_mask);
LAB_ASSERT_OFF(ABI15, VM_MEMSEG, DS_MASK_SIZE, struct vm_memseg_15, ds_mask_size);
LAB_ASSERT_OFF(ABI15, VM_MEMSEG, DS_POLICY, struct vm_memseg_15, ds_policy);
LAB_ASSERT_SIZE(ABI15, VM_MEMSEG_14, struct vm_memseg);

LAB_ASSERT_SIZE(ABI13, VM_MEMMAP, struct vm_memmap);
LAB_ASSERT_SIZE(ABI14, VM_MEMMAP, struct vm_memmap);
LAB_ASSERT_OFF(ABI13, VM_MEMMAP, GPA, struct vm_memmap, gpa);
LAB_ASSERT_OFF(ABI14, VM_MEMMAP, GPA, struct vm_memmap, gpa);
LAB_ASSERT_OFF(ABI13, VM_MEMMAP, SEGID, struct vm_memmap, segid);
LAB_ASSERT_OFF(ABI14, VM_MEMMAP, SEGID, struct vm_memmap, segid);
LAB_ASSERT_OFF(ABI13, VM_MEMMAP, SEGOFF, struct vm_memmap, segoff);
LAB_ASSERT_OFF(ABI14, VM_MEMMAP, SEGOFF, struct vm_memmap, segoff);
LAB_ASSERT_OFF(ABI13, VM_MEMMAP, LEN, struct vm_memmap, len);
LAB_ASSERT_OFF(ABI14, VM_MEMMAP, LEN, struct vm_memmap, len);
LAB_ASSERT_OFF(ABI13, VM_MEMMAP, PROT, struct vm_memmap, prot);
LAB_ASSERT_OFF(ABI14, VM_MEMMAP, PROT, struct vm_memmap, prot);
LAB_ASSERT_OFF(ABI13, VM_MEMMAP, FLAGS, struct vm_memmap, flags);
LAB_ASSERT_OFF(ABI14, VM_MEMMAP, FLAGS, struct vm_memmap, flags);

LAB_ASSERT_SIZE(ABI13, VM_MUNMAP, struct vm_munmap);
LAB_ASSERT_SIZE(ABI14, VM_MUNMAP, struct vm_munmap);
LAB_ASSERT_OFF(ABI13, VM_MUNMAP, GPA, struct vm_munmap, gpa);
LAB_ASSERT_OFF(ABI14, VM_MUNMAP, GPA, struct vm_munmap, gpa);
LAB_ASSERT_OFF(ABI13, VM_MUNMAP, LEN, struct vm_munmap, len);
LAB_ASSERT_OFF(ABI14, VM_MUNMAP, LEN, struct vm_munmap, len);

LAB_ASSERT_SIZE(ABI13, VM_X2APIC, struct vm_x2apic);
LAB_ASSERT_SIZE(ABI14, VM_X2APIC, struct vm_x2apic);
LAB_ASSERT_OFF(ABI13, VM_X2APIC, CPUID, struct vm_x2apic, cpuid);
LAB_ASSERT_OFF(ABI14, VM_X2APIC, CPUID, struct vm_x2apic, cpuid);
LAB_ASSERT_OFF(ABI13, VM_X2APIC, STATE, struct vm_x2apic, state);
LAB_ASSERT_OFF(ABI14, VM_X2APIC, STATE, struct vm_x2apic, state);

LAB_ASSERT_SIZE(ABI13, VM_EXCEPTION, struct vm_exception);
LAB_ASSERT_SIZE(ABI14, VM_EXCEPTION, struct vm_exception);
LAB_ASSERT_OFF(ABI13, VM_EXCEPTION, CPUID, struct vm_exception, cpuid);
LAB_ASSERT_OFF(ABI14, VM_EXCEPTION, CPUID, struct vm_exception, cpuid);
LAB_ASSERT_OFF(ABI13, VM_EXCEPTION, VECTOR, struct vm_exception, vector);
LAB_ASSERT_OFF(ABI14, VM_EXCEPTION, VECTOR, struct vm_exception, vector);
LAB_ASSERT_OFF(ABI13, VM_EXCEPTION, ERROR_CODE, struct vm_exception, error_code);
LAB_ASSERT_OFF(ABI14, VM_EXCEPTION, ERROR_CODE, struct vm_exception, error_code);
LAB_ASSERT_OFF(ABI13, VM_EXCEPTION, ERROR_CODE_VALID, struct vm_exception, error_code_valid);
LAB_ASSERT_OFF(ABI14, VM_EXCEPTION, ERROR_CODE_VALID, struct vm_exception, error_code_valid);
LAB_ASSERT_OFF(ABI13, VM_EXCEPTION, RESTART_INSTRUCTION, struct vm_exception, restart_instruction);
LAB_ASSERT_OFF(ABI14, VM_EXCEPTION, RESTART_INSTRUCTION, struct vm_exception, restart_instruction);

/* The request numbers encode the sizes: spot-check the ones the lab uses. */
_Static_assert(((ABI13_VM_RUN >> 16) & 0x1fff) == sizeof(struct vm_run), "VM_RUN 13 length");
_Static_assert(((ABI14_VM_RUN >> 16) & 0x1fff) == sizeof(struct vm_run_14), "VM_RUN 14 length");
_Static_assert(((ABI13_VM_GET_CPUS >> 16) & 0x1fff) == sizeof(struct vm_cpuset), "VM_GET_CPUS length");

#endif /* !_LAB_VMM13_H_ */
