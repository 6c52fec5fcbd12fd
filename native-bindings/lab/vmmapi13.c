/*
 * vmmapi13.c: the 13.1 libvmmapi calls the lab's bhyve models use, with the
 * behaviour legacy-13.1-side.md section 6 records (lib/libvmmapi/vmmapi.c,
 * 13.x).  Every kernel entry goes through ioctl/open/mmap/sysctlbyname/
 * cap_* in the dynamic symbol table (PLT), as libvmmapi.so.5 does on
 * FreeBSD; libvmmapi_lab.so therefore needs the lab bridge preloaded.
 */
#define	_GNU_SOURCE
#define	LAB_FBSD_WEAK
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "vmmapi13.h"
#include "vmmapi_impl.h"

#define	MB			(1024UL * 1024)
#define	GB			(1024UL * MB)
#define	VM_MMAP_GUARD_SIZE	(4 * MB)	/* vmmapi.c */
#define	PROT_RW			(PROT_READ | PROT_WRITE)
#define	PROT_ALL		(PROT_READ | PROT_WRITE | PROT_EXEC)

static int
bridge_missing(void)
{

	if (lab_fbsd_present())
		return (0);
	fprintf(stderr, "libvmmapi_lab: sysctlbyname/cap_* are missing: "
	    "preload libvmmlab_bridge.so (LD_PRELOAD)\n");
	errno = ENOSYS;
	return (1);
}

/*
 * vmmapi.c: vm_create.  13.1 first loads vmm.ko (modfind/kldload); the lab's
 * kernel is always there.  Creation is a sysctl, not an ioctl.
 */
LAB_VMMAPI_EXPORT int
vm_create(const char *name)
{

	if (bridge_missing())
		return (-1);
	return (sysctlbyname("hw.vmm.create", NULL, NULL, name,
	    strlen(name)));
}

/*
 * vmmapi.c: vm_open: no ioctl.  When the device cannot be opened, vm_open
 * goes through vm_destroy, so the VM itself is destroyed (hw.vmm.destroy)
 * before NULL is returned: the 13.x vm_open (lib/libvmmapi/vmmapi.c, read
 * in the 2020/21 main and later stable/13 copies) has "goto err; ...
 * err: vm_destroy(vm)".  errno is whatever the open, then the destroy,
 * left in it.
 */
LAB_VMMAPI_EXPORT struct vmctx *
vm_open(const char *name)
{
	struct vmctx *vm;
	char path[300];

	vm = calloc(1, sizeof(*vm) + strlen(name) + 1);
	if (vm == NULL)
		return (NULL);
	vm->fd = -1;
	vm->memflags = 0;
	vm->lowmem_limit = 3 * GB;
	vm->name = (char *)(vm + 1);
	strcpy(vm->name, name);
	snprintf(path, sizeof(path), "/dev/vmm/%s", name);
	if ((vm->fd = open(path, O_RDWR)) < 0)
		goto err;
	return (vm);
err:
	vm_destroy(vm);
	return (NULL);
}

/* vmmapi.c: vm_destroy: close, then the destroy sysctl, then free. */
LAB_VMMAPI_EXPORT void
vm_destroy(struct vmctx *vm)
{

	if (vm->fd >= 0)
		close(vm->fd);
	if (!bridge_missing())
		(void)sysctlbyname("hw.vmm.destroy", NULL, NULL, vm->name,
		    strlen(vm->name));
	free(vm);
}

LAB_VMMAPI_EXPORT const char *
vm_get_name(struct vmctx *ctx)
{

	return (ctx->name);
}

LAB_VMMAPI_EXPORT int
vm_get_device_fd(struct vmctx *ctx)
{

	return (ctx->fd);
}

/*
 * vmmapi.c: vm_get_ioctls: with len, the number of commands (returns NULL);
 * without, a malloc'd copy of the list.  The list is 13.x libvmmapi's own,
 * entry for entry (lib/libvmmapi/vmmapi.c vm_ioctl_cmds[], identical in the
 * 2020/21 main copy, read id 704690988, and the later stable/13 copy at
 * opnsense/src 2ef8a0887ee2, id 28266825035), in the 13.1 request numbers:
 * VM_MMAP_MEMSEG twice, and no VM_MUNMAP_MEMSEG, VM_SET/GET_KERNEMU_DEV,
 * VM_UNMAP_PPTDEV_MMIO or VM_PPTDEV_DISABLE_MSIX (14.0's list has them).
 */
static const cap_ioctl_t vm_ioctl_cmds[] = {
	ABI13_VM_RUN, ABI13_VM_SUSPEND, ABI13_VM_REINIT,
	ABI13_VM_ALLOC_MEMSEG, ABI13_VM_GET_MEMSEG, ABI13_VM_MMAP_MEMSEG,
	ABI13_VM_MMAP_MEMSEG,
	ABI13_VM_MMAP_GETNEXT, ABI13_VM_SET_REGISTER, ABI13_VM_GET_REGISTER,
	ABI13_VM_SET_SEGMENT_DESCRIPTOR, ABI13_VM_GET_SEGMENT_DESCRIPTOR,
	ABI13_VM_SET_REGISTER_SET, ABI13_VM_GET_REGISTER_SET,
	ABI13_VM_INJECT_EXCEPTION, ABI13_VM_LAPIC_IRQ,
	ABI13_VM_LAPIC_LOCAL_IRQ,
	ABI13_VM_LAPIC_MSI, ABI13_VM_IOAPIC_ASSERT_IRQ,
	ABI13_VM_IOAPIC_DEASSERT_IRQ,
	ABI13_VM_IOAPIC_PULSE_IRQ, ABI13_VM_IOAPIC_PINCOUNT,
	ABI13_VM_ISA_ASSERT_IRQ,
	ABI13_VM_ISA_DEASSERT_IRQ, ABI13_VM_ISA_PULSE_IRQ,
	ABI13_VM_ISA_SET_IRQ_TRIGGER,
	ABI13_VM_SET_CAPABILITY, ABI13_VM_GET_CAPABILITY,
	ABI13_VM_BIND_PPTDEV,
	ABI13_VM_UNBIND_PPTDEV, ABI13_VM_MAP_PPTDEV_MMIO, ABI13_VM_PPTDEV_MSI,
	ABI13_VM_PPTDEV_MSIX, ABI13_VM_INJECT_NMI, ABI13_VM_STATS,
	ABI13_VM_STAT_DESC,
	ABI13_VM_SET_X2APIC_STATE, ABI13_VM_GET_X2APIC_STATE,
	ABI13_VM_GET_HPET_CAPABILITIES, ABI13_VM_GET_GPA_PMAP,
	ABI13_VM_GLA2GPA,
	ABI13_VM_GLA2GPA_NOFAULT,
	ABI13_VM_ACTIVATE_CPU, ABI13_VM_GET_CPUS, ABI13_VM_SUSPEND_CPU,
	ABI13_VM_RESUME_CPU,
	ABI13_VM_SET_INTINFO, ABI13_VM_GET_INTINFO,
	ABI13_VM_RTC_WRITE, ABI13_VM_RTC_READ, ABI13_VM_RTC_SETTIME,
	ABI13_VM_RTC_GETTIME,
	ABI13_VM_RESTART_INSTRUCTION, ABI13_VM_SET_TOPOLOGY,
	ABI13_VM_GET_TOPOLOGY,
};

LAB_VMMAPI_EXPORT const cap_ioctl_t *
vm_get_ioctls(size_t *len)
{
	cap_ioctl_t *cmds;

	if (len == NULL) {
		cmds = malloc(sizeof(vm_ioctl_cmds));
		if (cmds == NULL)
			return (NULL);
		memcpy(cmds, vm_ioctl_cmds, sizeof(vm_ioctl_cmds));
		return (cmds);
	}
	*len = sizeof(vm_ioctl_cmds) / sizeof(vm_ioctl_cmds[0]);
	return (NULL);
}

/*
 * vmmapi.c: vm_run: a zeroed 144-byte struct vm_run; the embedded exit is
 * copied back to the caller even when the ioctl failed.
 */
LAB_VMMAPI_EXPORT int
vm_run(struct vmctx *ctx, int vcpu, struct vm_exit *vmexit)
{
	struct vm_run vmrun;
	int error;

	memset(&vmrun, 0, sizeof(vmrun));
	vmrun.cpuid = vcpu;
	error = ioctl(ctx->fd, ABI13_VM_RUN, &vmrun);
	memcpy(vmexit, &vmrun.vm_exit, sizeof(struct vm_exit));
	return (error);
}

LAB_VMMAPI_EXPORT int
vm_suspend(struct vmctx *ctx, int how)
{
	struct vm_suspend vmsuspend;

	memset(&vmsuspend, 0, sizeof(vmsuspend));
	vmsuspend.how = how;
	return (ioctl(ctx->fd, ABI13_VM_SUSPEND, &vmsuspend));
}

LAB_VMMAPI_EXPORT int
vm_reinit(struct vmctx *ctx)
{

	return (ioctl(ctx->fd, ABI13_VM_REINIT, 0));
}

static int
vcpu_ioctl(struct vmctx *ctx, unsigned long request, int vcpu)
{
	struct vm_activate_cpu ac;

	memset(&ac, 0, sizeof(ac));
	ac.vcpuid = vcpu;
	return (ioctl(ctx->fd, request, &ac));
}

LAB_VMMAPI_EXPORT int
vm_activate_cpu(struct vmctx *ctx, int vcpu)
{

	return (vcpu_ioctl(ctx, ABI13_VM_ACTIVATE_CPU, vcpu));
}

/* vcpu -1: all vCPUs (gdb.c and snapshot.c use it so). */
LAB_VMMAPI_EXPORT int
vm_suspend_cpu(struct vmctx *ctx, int vcpu)
{

	return (vcpu_ioctl(ctx, ABI13_VM_SUSPEND_CPU, vcpu));
}

LAB_VMMAPI_EXPORT int
vm_resume_cpu(struct vmctx *ctx, int vcpu)
{

	return (vcpu_ioctl(ctx, ABI13_VM_RESUME_CPU, vcpu));
}

/* vmmapi.c: vm_get_cpus: cpusetsize is the 13.1 userland cpuset_t, 32. */
static int
vm_get_cpus(struct vmctx *ctx, int which, cpuset13_t *cpus)
{
	struct vm_cpuset vmcpuset;

	memset(&vmcpuset, 0, sizeof(vmcpuset));
	vmcpuset.which = which;
	vmcpuset.cpusetsize = sizeof(cpuset13_t);
	vmcpuset.cpus = cpus;
	return (ioctl(ctx->fd, ABI13_VM_GET_CPUS, &vmcpuset));
}

LAB_VMMAPI_EXPORT int
vm_active_cpus(struct vmctx *ctx, cpuset13_t *cpus)
{

	return (vm_get_cpus(ctx, VM_ACTIVE_CPUS, cpus));
}

LAB_VMMAPI_EXPORT int
vm_suspended_cpus(struct vmctx *ctx, cpuset13_t *cpus)
{

	return (vm_get_cpus(ctx, VM_SUSPENDED_CPUS, cpus));
}

LAB_VMMAPI_EXPORT int
vm_debug_cpus(struct vmctx *ctx, cpuset13_t *cpus)
{

	return (vm_get_cpus(ctx, VM_DEBUG_CPUS, cpus));
}

LAB_VMMAPI_EXPORT int
vm_set_topology(struct vmctx *ctx, uint16_t sockets, uint16_t cores,
    uint16_t threads, uint16_t maxcpus)
{
	struct vm_cpu_topology topology;

	memset(&topology, 0, sizeof(topology));
	topology.sockets = sockets;
	topology.cores = cores;
	topology.threads = threads;
	topology.maxcpus = maxcpus;
	return (ioctl(ctx->fd, ABI13_VM_SET_TOPOLOGY, &topology));
}

/* vmmapi.c: vm_get_topology copies the values out only on success. */
LAB_VMMAPI_EXPORT int
vm_get_topology(struct vmctx *ctx, uint16_t *sockets, uint16_t *cores,
    uint16_t *threads, uint16_t *maxcpus)
{
	struct vm_cpu_topology topology;
	int error;

	memset(&topology, 0, sizeof(topology));
	error = ioctl(ctx->fd, ABI13_VM_GET_TOPOLOGY, &topology);
	if (error == 0) {
		*sockets = topology.sockets;
		*cores = topology.cores;
		*threads = topology.threads;
		*maxcpus = topology.maxcpus;
	}
	return (error);
}

LAB_VMMAPI_EXPORT int
vm_set_register(struct vmctx *ctx, int vcpu, int reg, uint64_t val)
{
	struct vm_register vmreg;

	memset(&vmreg, 0, sizeof(vmreg));
	vmreg.cpuid = vcpu;
	vmreg.regnum = reg;
	vmreg.regval = val;
	return (ioctl(ctx->fd, ABI13_VM_SET_REGISTER, &vmreg));
}

/* vmmapi.c: the value is copied out even on error. */
LAB_VMMAPI_EXPORT int
vm_get_register(struct vmctx *ctx, int vcpu, int reg, uint64_t *ret_val)
{
	struct vm_register vmreg;
	int error;

	memset(&vmreg, 0, sizeof(vmreg));
	vmreg.cpuid = vcpu;
	vmreg.regnum = reg;
	error = ioctl(ctx->fd, ABI13_VM_GET_REGISTER, &vmreg);
	*ret_val = vmreg.regval;
	return (error);
}

LAB_VMMAPI_EXPORT int
vm_set_desc(struct vmctx *ctx, int vcpu, int reg, uint64_t base,
    uint32_t limit, uint32_t access)
{
	struct vm_seg_desc vmsegdesc;

	memset(&vmsegdesc, 0, sizeof(vmsegdesc));
	vmsegdesc.cpuid = vcpu;
	vmsegdesc.regnum = reg;
	vmsegdesc.desc.base = base;
	vmsegdesc.desc.limit = limit;
	vmsegdesc.desc.access = access;
	return (ioctl(ctx->fd, ABI13_VM_SET_SEGMENT_DESCRIPTOR, &vmsegdesc));
}

LAB_VMMAPI_EXPORT int
vm_get_desc(struct vmctx *ctx, int vcpu, int reg, uint64_t *base,
    uint32_t *limit, uint32_t *access)
{
	struct vm_seg_desc vmsegdesc;
	int error;

	memset(&vmsegdesc, 0, sizeof(vmsegdesc));
	vmsegdesc.cpuid = vcpu;
	vmsegdesc.regnum = reg;
	error = ioctl(ctx->fd, ABI13_VM_GET_SEGMENT_DESCRIPTOR, &vmsegdesc);
	if (error == 0) {
		*base = vmsegdesc.desc.base;
		*limit = vmsegdesc.desc.limit;
		*access = vmsegdesc.desc.access;
	}
	return (error);
}

LAB_VMMAPI_EXPORT int
vm_set_capability(struct vmctx *ctx, int vcpu, int cap, int val)
{
	struct vm_capability vmcap;

	memset(&vmcap, 0, sizeof(vmcap));
	vmcap.cpuid = vcpu;
	vmcap.captype = cap;
	vmcap.capval = val;
	return (ioctl(ctx->fd, ABI13_VM_SET_CAPABILITY, &vmcap));
}

/* vmmapi.c: the value is copied out even on error. */
LAB_VMMAPI_EXPORT int
vm_get_capability(struct vmctx *ctx, int vcpu, int cap, int *retval)
{
	struct vm_capability vmcap;
	int error;

	memset(&vmcap, 0, sizeof(vmcap));
	vmcap.cpuid = vcpu;
	vmcap.captype = cap;
	error = ioctl(ctx->fd, ABI13_VM_GET_CAPABILITY, &vmcap);
	*retval = vmcap.capval;
	return (error);
}

LAB_VMMAPI_EXPORT int
vm_set_x2apic_state(struct vmctx *ctx, int vcpu, int state)
{
	struct vm_x2apic x2apic;

	memset(&x2apic, 0, sizeof(x2apic));
	x2apic.cpuid = vcpu;
	x2apic.state = state;
	return (ioctl(ctx->fd, ABI13_VM_SET_X2APIC_STATE, &x2apic));
}

LAB_VMMAPI_EXPORT int
vm_inject_exception(struct vmctx *ctx, int vcpu, int vector,
    int errcode_valid, uint32_t errcode, int restart_instruction)
{
	struct vm_exception exc;

	memset(&exc, 0, sizeof(exc));
	exc.cpuid = vcpu;
	exc.vector = vector;
	exc.error_code = errcode;
	exc.error_code_valid = errcode_valid;
	exc.restart_instruction = restart_instruction;
	return (ioctl(ctx->fd, ABI13_VM_INJECT_EXCEPTION, &exc));
}

/* vmmapi.c: vm_get_memseg: a zero length means "not allocated". */
static int
vm_get_memseg(struct vmctx *ctx, int segid, size_t *lenp, char *name,
    size_t namesiz)
{
	struct vm_memseg memseg;
	int error;

	memset(&memseg, 0, sizeof(memseg));
	memseg.segid = segid;
	error = ioctl(ctx->fd, ABI13_VM_GET_MEMSEG, &memseg);
	if (error == 0) {
		*lenp = memseg.len;
		if (name != NULL && namesiz > 0)
			snprintf(name, namesiz, "%.*s",
			    (int)sizeof(memseg.name), memseg.name);
	}
	return (error);
}

/*
 * vmmapi.c: vm_alloc_memseg: an existing segment of the same size (and
 * name) is reused, a different one is EINVAL; otherwise VM_ALLOC_MEMSEG.
 */
static int
vm_alloc_memseg(struct vmctx *ctx, int segid, size_t len, const char *name)
{
	struct vm_memseg memseg;
	char curname[sizeof(memseg.name)];
	size_t curlen;
	int error;

	curlen = 0;
	error = vm_get_memseg(ctx, segid, &curlen, curname, sizeof(curname));
	if (error != 0)
		return (error);
	if (curlen != 0) {
		if (curlen == len && (name == NULL ? curname[0] == '\0' :
		    strcmp(name, curname) == 0))
			return (0);
		errno = EINVAL;
		return (-1);
	}
	memset(&memseg, 0, sizeof(memseg));
	memseg.segid = segid;
	memseg.len = len;
	if (name != NULL)
		snprintf(memseg.name, sizeof(memseg.name), "%s", name);
	return (ioctl(ctx->fd, ABI13_VM_ALLOC_MEMSEG, &memseg));
}

/*
 * vmmapi.c: vm_mmap_memseg: an identical existing mapping (found with
 * VM_MMAP_GETNEXT) is kept, a different one is EEXIST.
 */
LAB_VMMAPI_EXPORT int
vm_mmap_memseg(struct vmctx *ctx, uint64_t gpa, int segid, uint64_t off,
    size_t len, int prot)
{
	struct vm_memmap memmap;
	int error, flags;

	flags = 0;
	memset(&memmap, 0, sizeof(memmap));
	memmap.gpa = gpa;
	error = ioctl(ctx->fd, ABI13_VM_MMAP_GETNEXT, &memmap);
	if (error == 0 && memmap.gpa == gpa) {
		if (memmap.segid != segid || memmap.segoff != off ||
		    memmap.prot != prot || memmap.flags != flags) {
			errno = EEXIST;
			return (-1);
		}
		return (0);
	}
	memset(&memmap, 0, sizeof(memmap));
	memmap.gpa = gpa;
	memmap.segid = segid;
	memmap.segoff = off;
	memmap.len = len;
	memmap.prot = prot;
	memmap.flags = flags;
	return (ioctl(ctx->fd, ABI13_VM_MMAP_MEMSEG, &memmap));
}

/*
 * vmmapi.c: vm_create_devmem: the segment (VM_ALLOC_MEMSEG with a name, an
 * existing identical one reused), then open("/dev/vmm.io/VM.NAME") and map
 * it read/write between guard areas; MAP_FAILED with errno on any failure.
 */
LAB_VMMAPI_EXPORT void *
vm_create_devmem(struct vmctx *ctx, int segid, const char *name, size_t len)
{
	char pathname[512];
	char *base, *ptr;
	size_t len2;
	int fd, saved;

	fd = -1;
	ptr = MAP_FAILED;
	if (name == NULL || strlen(name) == 0) {
		errno = EINVAL;
		goto done;
	}
	if (vm_alloc_memseg(ctx, segid, len, name) != 0)
		goto done;
	snprintf(pathname, sizeof(pathname), "/dev/vmm.io/%s.%s", ctx->name,
	    name);
	fd = open(pathname, O_RDWR);
	if (fd < 0)
		goto done;
	len2 = VM_MMAP_GUARD_SIZE + len + VM_MMAP_GUARD_SIZE;
	base = mmap(NULL, len2, PROT_NONE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (base == MAP_FAILED)
		goto done;
	ptr = mmap(base + VM_MMAP_GUARD_SIZE, len, PROT_RW,
	    MAP_SHARED | MAP_FIXED, fd, 0);
done:
	if (fd >= 0) {
		saved = errno;
		close(fd);
		errno = saved;
	}
	return (ptr);
}

static int
setup_memory_segment(struct vmctx *ctx, uint64_t gpa, size_t len,
    char *base)
{
	char *ptr;
	int error;

	error = vm_mmap_memseg(ctx, gpa, VM_SYSMEM, gpa, len, PROT_ALL);
	if (error != 0)
		return (error);
	ptr = mmap(base + gpa, len, PROT_RW, MAP_SHARED | MAP_FIXED, ctx->fd,
	    (off_t)gpa);
	if (ptr == MAP_FAILED)
		return (-1);
	return (0);
}

/*
 * vmmapi.c: vm_setup_memory: one system-memory segment.  Memory beyond
 * lowmem_limit (3 GB) makes it 4 GB + the rest: the first 3 GB are mapped
 * at gpa 0 (lowmem), the rest at gpa 4 GB (highmem), leaving the hole
 * below 4 GB for device memory.  The segment is mapped into our address
 * space inside a reserved range with guard areas on both sides (MAP_GUARD
 * on FreeBSD), highmem first.
 */
LAB_VMMAPI_EXPORT int
vm_setup_memory(struct vmctx *ctx, size_t memsize, enum vm_mmap_style vms)
{
	size_t objsize, len;
	char *ptr;
	int error;

	if (vms != VM_MMAP_ALL) {	/* vmmapi.c asserts this */
		errno = EINVAL;
		return (-1);
	}
	if (memsize > ctx->lowmem_limit) {
		ctx->lowmem = ctx->lowmem_limit;
		ctx->highmem = memsize - ctx->lowmem_limit;
		objsize = 4 * GB + ctx->highmem;
	} else {
		ctx->lowmem = memsize;
		ctx->highmem = 0;
		objsize = ctx->lowmem;
	}
	error = vm_alloc_memseg(ctx, VM_SYSMEM, objsize, NULL);
	if (error != 0)
		return (error);
	len = VM_MMAP_GUARD_SIZE + objsize + VM_MMAP_GUARD_SIZE;
	ptr = mmap(NULL, len, PROT_NONE,
	    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (ptr == MAP_FAILED)
		return (-1);
	if (ctx->highmem > 0) {
		error = setup_memory_segment(ctx, 4 * GB, ctx->highmem,
		    ptr + VM_MMAP_GUARD_SIZE);
		if (error != 0)
			return (error);
	}
	if (ctx->lowmem > 0) {
		error = setup_memory_segment(ctx, 0, ctx->lowmem,
		    ptr + VM_MMAP_GUARD_SIZE);
		if (error != 0)
			return (error);
	}
	ctx->baseaddr = ptr + VM_MMAP_GUARD_SIZE;
	return (0);
}

/* vmmapi.c: a pointer only for a range inside lowmem or inside highmem. */
LAB_VMMAPI_EXPORT void *
vm_map_gpa(struct vmctx *ctx, uint64_t gaddr, size_t len)
{

	if (ctx->baseaddr == NULL)
		return (NULL);
	if (ctx->lowmem > 0 && gaddr < ctx->lowmem && len <= ctx->lowmem &&
	    gaddr + len <= ctx->lowmem)
		return (ctx->baseaddr + gaddr);
	if (ctx->highmem > 0 && gaddr >= 4 * GB &&
	    gaddr < 4 * GB + ctx->highmem && len <= ctx->highmem &&
	    gaddr + len <= 4 * GB + ctx->highmem)
		return (ctx->baseaddr + gaddr);
	return (NULL);
}

LAB_VMMAPI_EXPORT size_t
vm_get_highmem_size(struct vmctx *ctx)
{

	return (ctx->highmem);
}

LAB_VMMAPI_EXPORT size_t
vm_get_lowmem_size(struct vmctx *ctx)
{

	return (ctx->lowmem);
}
