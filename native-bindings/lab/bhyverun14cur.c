/*
 * bhyverun14cur.c: the bhyve of main (14-CURRENT) in early 2023, the window
 * kernel's own (bhyve14cur): the new AP protocol of 7c326ab5
 * (VM_CAP_IPI_EXIT, vmexit_ipi) with the 144-byte VM_RUN of its time, whose
 * IPI exit carries a 256-bit mask inside the exit (before e17eca32), and
 * userland's 32-byte cpuset_t (CPU_MAXSIZE 256 before the 1024-CPU change
 * of August 2023).  Everything else is 14.0's: the lab has no bhyverun.c of
 * that date, and 13.1 and 14.0 agree on what the model covers (init_bootrom,
 * the capabilities before memory, vm_loop's active-set assert).  Its ABI
 * tag, 1400076, is the lab's window kernel's kern.osreldate, a 14-CURRENT
 * value between 7c326ab5 and b265a2e0 (kernel-15-side.md section 8).
 */
#include "bhyve_common.h"

const struct bhyve_release bhyve_release = {
	.name = "14-CURRENT",
	.bootrom_aggregate_check = 1,
	.vmrun_abi = 13,
	.cpuset_bytes = ABI13_CPUSET_BYTES,
};
