/*
 * vmmapi14.c: the libvmmapi calls of the 14.x bhyve models.  VM_RUN in the
 * two ABIs of their releases (kernel-main-side.md section 4.1):
 *   14: struct vm_run_14 {cpuid; cpuset*; cpusetsize; vm_exit*} (e17eca32,
 *       14.0): the kernel copies the exit and, for VM_EXITCODE_IPI, the
 *       destination set (cpusetsize = sizeof(cpuset_t) = 128) out through
 *       the pointers (vmm_dev.c: VM_RUN).
 *   13: the 144-byte struct vm_run of early-2023 main: the exit is
 *       embedded, and an IPI exit carries its 256-bit dmask inside the
 *       union (u.ipi13).
 * Either way the caller gets the exit and the IPI set as a 14.0 cpuset_t.
 * Also vm_active_cpus with the release's cpuset_t size, and vm_limit_rights.
 */
#define	_GNU_SOURCE
#define	LAB_FBSD_WEAK
#include <errno.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vmmapi13.h"
#include "vmmapi_impl.h"

LAB_VMMAPI_EXPORT int
vm_run_14(struct vmctx *ctx, int vcpu, int abi, struct vm_exit *vme,
    cpuset14_t *ipi_cpus)
{
	struct vm_run_14 vmrun14;
	struct vm_run vmrun13;
	int error;

	if (abi == 14) {
		memset(&vmrun14, 0, sizeof(vmrun14));
		vmrun14.cpuid = vcpu;
		vmrun14.cpuset = ipi_cpus;
		vmrun14.cpusetsize = sizeof(*ipi_cpus);
		vmrun14.vm_exit = vme;
		return (ioctl(ctx->fd, ABI14_VM_RUN, &vmrun14));
	}
	memset(&vmrun13, 0, sizeof(vmrun13));
	vmrun13.cpuid = vcpu;
	error = ioctl(ctx->fd, ABI13_VM_RUN, &vmrun13);
	memcpy(vme, &vmrun13.vm_exit, sizeof(*vme));
	memset(ipi_cpus, 0, sizeof(*ipi_cpus));
	if (error == 0 && vme->exitcode == VM_EXITCODE_IPI)
		memcpy(ipi_cpus->bits, vme->u.ipi13.dmask,
		    sizeof(vme->u.ipi13.dmask));
	return (error);
}

/*
 * vmmapi.c: vm_active_cpus with the caller's userland cpuset_t: 128 bytes in
 * 14.0 (CPU_SETSIZE 1024), 32 in 13.x and early-2023 main (256).  The
 * kernel's VM_GET_CPUS size rule decides (ERANGE where it does not fit).
 */
LAB_VMMAPI_EXPORT int
vm_active_cpus_sized(struct vmctx *ctx, void *cpus, size_t cpusetsize)
{
	struct vm_cpuset vmcpuset;

	memset(&vmcpuset, 0, sizeof(vmcpuset));
	vmcpuset.which = VM_ACTIVE_CPUS;
	vmcpuset.cpusetsize = cpusetsize;
	vmcpuset.cpus = cpus;
	return (ioctl(ctx->fd, ABI13_VM_GET_CPUS, &vmcpuset));
}

/*
 * vmmapi.c (14.0): vm_limit_rights: CAP_IOCTL and CAP_MMAP_RW, then the
 * 14-era vm_ioctl_cmds[] (read in a copy that has vm_limit_rights, id
 * 11827324): 13.x's list plus VM_MUNMAP_MEMSEG, VM_SET/GET_KERNEMU_DEV,
 * VM_UNMAP_PPTDEV_MMIO, VM_PPTDEV_DISABLE_MSIX, VM_SNAPSHOT_REQ and
 * VM_RESTORE_TIME, in the 14.0 request numbers.  Its VM_RUN is the one the
 * library was built with: the 32-byte one (abi 14), or the 144-byte one of
 * early-2023 main (abi 13).
 */
static const cap_ioctl_t vm_ioctl_cmds_14[] = {
	ABI14_VM_RUN, ABI14_VM_SUSPEND, ABI14_VM_REINIT,
	ABI14_VM_ALLOC_MEMSEG, ABI14_VM_GET_MEMSEG, ABI14_VM_MMAP_MEMSEG,
	ABI14_VM_MMAP_MEMSEG,
	ABI14_VM_MMAP_GETNEXT, ABI14_VM_MUNMAP_MEMSEG, ABI14_VM_SET_REGISTER,
	ABI14_VM_GET_REGISTER,
	ABI14_VM_SET_SEGMENT_DESCRIPTOR, ABI14_VM_GET_SEGMENT_DESCRIPTOR,
	ABI14_VM_SET_REGISTER_SET, ABI14_VM_GET_REGISTER_SET,
	ABI14_VM_SET_KERNEMU_DEV, ABI14_VM_GET_KERNEMU_DEV,
	ABI14_VM_INJECT_EXCEPTION, ABI14_VM_LAPIC_IRQ,
	ABI14_VM_LAPIC_LOCAL_IRQ,
	ABI14_VM_LAPIC_MSI, ABI14_VM_IOAPIC_ASSERT_IRQ,
	ABI14_VM_IOAPIC_DEASSERT_IRQ,
	ABI14_VM_IOAPIC_PULSE_IRQ, ABI14_VM_IOAPIC_PINCOUNT,
	ABI14_VM_ISA_ASSERT_IRQ,
	ABI14_VM_ISA_DEASSERT_IRQ, ABI14_VM_ISA_PULSE_IRQ,
	ABI14_VM_ISA_SET_IRQ_TRIGGER,
	ABI14_VM_SET_CAPABILITY, ABI14_VM_GET_CAPABILITY, ABI14_VM_BIND_PPTDEV,
	ABI14_VM_UNBIND_PPTDEV, ABI14_VM_MAP_PPTDEV_MMIO, ABI14_VM_PPTDEV_MSI,
	ABI14_VM_PPTDEV_MSIX, ABI14_VM_UNMAP_PPTDEV_MMIO,
	ABI14_VM_PPTDEV_DISABLE_MSIX,
	ABI14_VM_INJECT_NMI, ABI14_VM_STATS, ABI14_VM_STAT_DESC,
	ABI14_VM_SET_X2APIC_STATE, ABI14_VM_GET_X2APIC_STATE,
	ABI14_VM_GET_HPET_CAPABILITIES, ABI14_VM_GET_GPA_PMAP,
	ABI14_VM_GLA2GPA,
	ABI14_VM_GLA2GPA_NOFAULT,
	ABI14_VM_ACTIVATE_CPU, ABI14_VM_GET_CPUS, ABI14_VM_SUSPEND_CPU,
	ABI14_VM_RESUME_CPU,
	ABI14_VM_SET_INTINFO, ABI14_VM_GET_INTINFO,
	ABI14_VM_RTC_WRITE, ABI14_VM_RTC_READ, ABI14_VM_RTC_SETTIME,
	ABI14_VM_RTC_GETTIME,
	ABI14_VM_RESTART_INSTRUCTION, ABI14_VM_SET_TOPOLOGY,
	ABI14_VM_GET_TOPOLOGY,
	ABI14_VM_SNAPSHOT_REQ, ABI14_VM_RESTORE_TIME,
};

LAB_VMMAPI_EXPORT int
vm_limit_rights_14(struct vmctx *ctx, int abi)
{
	cap_ioctl_t cmds[sizeof(vm_ioctl_cmds_14) / sizeof(vm_ioctl_cmds_14[0])];
	cap_rights_t rights;
	size_t i, ncmds;

	cap_rights_init(&rights, CAP_IOCTL, CAP_MMAP_RW);
	if (caph_rights_limit(ctx->fd, &rights) != 0)
		return (-1);
	ncmds = sizeof(cmds) / sizeof(cmds[0]);
	for (i = 0; i < ncmds; i++)
		cmds[i] = vm_ioctl_cmds_14[i] == ABI14_VM_RUN && abi == 13 ?
		    ABI13_VM_RUN : vm_ioctl_cmds_14[i];
	if (caph_ioctls_limit(ctx->fd, cmds, ncmds) != 0)
		return (-1);
	return (0);
}
