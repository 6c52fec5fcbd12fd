/*
 * bhyverun143.c: the bhyve of stable/14 as 14.1 to 14.3 shipped it
 * (bhyve143).  No stable/14 copy of bhyverun.c, bootrom.c, vmexit.c,
 * spinup_ap.c or vmmapi.c was found to read (docs/lab-bridge.md lists the
 * repositories tried), so nothing shows 14.1-14.3 doing what the lab models
 * differently from 14.0: the model is 14.0's, and differs only in its ABI
 * tag, 1403000 (14.3-RELEASE; kernel-15-side.md section 8 infers it from the
 * -STABLE values 1403503 and up).
 */
#include "bhyve_common.h"

const struct bhyve_release bhyve_release = {
	.name = "14.3",
	.bootrom_aggregate_check = 1,
	.vmrun_abi = 14,
	.cpuset_bytes = ABI14_CPUSET_BYTES,
};
