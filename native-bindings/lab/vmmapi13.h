/*
 * vmmapi13.h: a 13.1-style libvmmapi for the lab (lib/libvmmapi/vmmapi.h,
 * legacy-13.1-side.md section 6), plus the 14.0 calls that the 14.0 bhyve
 * model needs (vmmapi14.c).  libvmmapi_lab.so reaches the kernel through
 * ioctl/open/mmap/sysctlbyname/cap_* in its dynamic symbol table, as
 * libvmmapi.so.5 does on FreeBSD, so preloaded libraries see every call.
 */
#ifndef _LAB_VMMAPI13_H_
#define _LAB_VMMAPI13_H_

#include <stddef.h>
#include <stdint.h>

#include "vmm13.h"
#include "fbsd_compat.h"

#define	LAB_VMMAPI_EXPORT	__attribute__((visibility("default")))

struct vmctx;

/* vmmapi.h: enum vm_mmap_style */
enum vm_mmap_style {
	VM_MMAP_NONE,
	VM_MMAP_ALL,
	VM_MMAP_SPARSE,
};

/* The lab's guest conventions (docs/internals.md section 4). */
#define	LAB_GUEST_LOAD_GPA	0x10000UL
#define	LAB_GUEST_NCPUS_GPA	0x0500UL
#define	LAB_BOOT_SEL		0x1000
#define	LAB_BOOT_SP		0xFFF0

int	vm_create(const char *name);
struct vmctx *vm_open(const char *name);
void	vm_destroy(struct vmctx *ctx);
const char *vm_get_name(struct vmctx *ctx);
int	vm_get_device_fd(struct vmctx *ctx);
const cap_ioctl_t *vm_get_ioctls(size_t *len);

int	vm_run(struct vmctx *ctx, int vcpu, struct vm_exit *ret_vmexit);
int	vm_suspend(struct vmctx *ctx, int how);
int	vm_reinit(struct vmctx *ctx);
int	vm_activate_cpu(struct vmctx *ctx, int vcpu);
int	vm_suspend_cpu(struct vmctx *ctx, int vcpu);
int	vm_resume_cpu(struct vmctx *ctx, int vcpu);
int	vm_active_cpus(struct vmctx *ctx, cpuset13_t *cpus);
int	vm_suspended_cpus(struct vmctx *ctx, cpuset13_t *cpus);
int	vm_debug_cpus(struct vmctx *ctx, cpuset13_t *cpus);

int	vm_set_topology(struct vmctx *ctx, uint16_t sockets, uint16_t cores,
	    uint16_t threads, uint16_t maxcpus);
int	vm_get_topology(struct vmctx *ctx, uint16_t *sockets, uint16_t *cores,
	    uint16_t *threads, uint16_t *maxcpus);

int	vm_set_register(struct vmctx *ctx, int vcpu, int reg, uint64_t val);
int	vm_get_register(struct vmctx *ctx, int vcpu, int reg, uint64_t *retval);
int	vm_set_desc(struct vmctx *ctx, int vcpu, int reg, uint64_t base,
	    uint32_t limit, uint32_t access);
int	vm_get_desc(struct vmctx *ctx, int vcpu, int reg, uint64_t *base,
	    uint32_t *limit, uint32_t *access);
int	vm_set_capability(struct vmctx *ctx, int vcpu, int cap, int val);
int	vm_get_capability(struct vmctx *ctx, int vcpu, int cap, int *retval);
int	vm_set_x2apic_state(struct vmctx *ctx, int vcpu, int state);
int	vm_inject_exception(struct vmctx *ctx, int vcpu, int vector,
	    int errcode_valid, uint32_t errcode, int restart_instruction);

int	vm_setup_memory(struct vmctx *ctx, size_t len, enum vm_mmap_style s);
int	vm_mmap_memseg(struct vmctx *ctx, uint64_t gpa, int segid, uint64_t off,
	    size_t len, int prot);
void	*vm_create_devmem(struct vmctx *ctx, int segid, const char *name,
	    size_t len);
void	*vm_map_gpa(struct vmctx *ctx, uint64_t gaddr, size_t len);
size_t	vm_get_lowmem_size(struct vmctx *ctx);
size_t	vm_get_highmem_size(struct vmctx *ctx);

/* vcpu_reset: the x86 reset state (CS:IP F000:FFF0, base 0xffff0000). */
int	vcpu_reset(struct vmctx *ctx, int vcpu);

/*
 * 14.0 calls (vmmapi14.c).  vm_run_abi: 14 = struct vm_run_14 with the exit
 * and the IPI cpuset behind pointers (cpusetsize 128); 13 = the 144-byte
 * struct vm_run of early-2023 main, the IPI mask inside the exit (ipi13).
 * The cpuset filled on a VM_EXITCODE_IPI exit is returned in *ipi_cpus.
 */
int	vm_limit_rights_14(struct vmctx *ctx, int abi);
int	vm_active_cpus_sized(struct vmctx *ctx, void *cpus, size_t cpusetsize);
int	vm_run_14(struct vmctx *ctx, int vcpu, int abi, struct vm_exit *vme,
	    cpuset14_t *ipi_cpus);

#endif /* !_LAB_VMMAPI13_H_ */
