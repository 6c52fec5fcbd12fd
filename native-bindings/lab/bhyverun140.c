/*
 * bhyverun140.c: FreeBSD 14.0's bhyve (bhyve14): the 32-byte VM_RUN of
 * e17eca32 and a 128-byte cpuset_t (MAXCPU and CPU_SETSIZE 1024, UPDATING
 * 20230803), and bootrom.c's aggregate size check (14.0 bootrom.c at
 * 1d386b48).  Its ABI tag is 1400097, the value at the stable/14 branch
 * (porters handbook), linked from abi_tag.c.
 */
#include "bhyve_common.h"

const struct bhyve_release bhyve_release = {
	.name = "14.0",
	.bootrom_aggregate_check = 1,
	.vmrun_abi = 14,
	.cpuset_bytes = ABI14_CPUSET_BYTES,
};
