/*
 * refusal.c: what an open the interposer refused must not set off.
 *
 * 13.x libvmmapi's vm_open ends in vm_destroy when the device cannot be
 * opened (lib/libvmmapi/vmmapi.c: "err: vm_destroy(vm)"), and vm_destroy
 * is the hw.vmm.destroy sysctl.  So a refused open (the VM belongs to
 * another jail, the daemon says no, VMM_COMPAT_REQUIRE_DAEMON without a
 * daemon) would make bhyve destroy the very VM it was refused, which may
 * be another jail's running VM or one bhyveload prepared.  The interposer
 * therefore fails that one hw.vmm.destroy, on the thread whose open it
 * refused, with the open's errno (bhyve then prints it as "vm_open: ..." and
 * exits 4 as before); the VM stays untouched.  A VM this
 * very process created a moment earlier (hw.vmm.create) is its own to
 * clean up and is destroyed as usual.  Not on any ioctl path.
 */
#include <errno.h>
#include <string.h>

#include "shim.h"

#define	VM_NAME_BYTES	(VMC_VM_NAME_MAX + 1)

/* vm_open and its vm_destroy run on one thread, one after the other. */
static __thread char refused_vm[VM_NAME_BYTES];
static __thread int refused_errno;
static __thread char created_vm[VM_NAME_BYTES];

static int
name_is(const char *saved, const void *value, size_t len)
{

	return (saved[0] != '\0' && value != NULL && len < VM_NAME_BYTES &&
	    strlen(saved) == len && memcmp(saved, value, len) == 0);
}

void
refusal_note_open(const char *name, int error)
{

	if (strlen(name) < VM_NAME_BYTES) {
		strcpy(refused_vm, name);
		refused_errno = error;
	}
}

void
refusal_note_create(const void *name, size_t len)
{

	created_vm[0] = '\0';
	if (name != NULL && len < VM_NAME_BYTES) {
		memcpy(created_vm, name, len);
		created_vm[len] = '\0';
	}
}

/*
 * The errno to fail this hw.vmm.destroy with (the refused open's, so that
 * bhyve's perror("vm_open") names the refusal), or 0 to pass it on.
 */
int
refusal_blocks_destroy(const void *name, size_t len)
{
	int block;

	if (!name_is(refused_vm, name, len))
		return (0);
	block = !name_is(created_vm, name, len);
	refused_vm[0] = '\0';
	if (block)
		shim_warn("not destroying VM %.*s: its open was refused, and "
		    "libvmmapi's vm_open destroys the VM it could not open",
		    (int)len, (const char *)name);
	return (block ? refused_errno : 0);
}
