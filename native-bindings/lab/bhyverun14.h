/* bhyverun14.h: what spinup_ap14.c needs from bhyverun14.c. */
#ifndef _LAB_BHYVERUN14_H_
#define _LAB_BHYVERUN14_H_

#include <stdint.h>

#include "vmmapi13.h"

int	spinup_ap(struct vmctx *ctx, int newcpu, uint64_t rip);

#endif /* !_LAB_BHYVERUN14_H_ */
