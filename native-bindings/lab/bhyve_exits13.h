/* bhyve_exits13.h: the 13.x exit handlers of bhyve_exits13.c. */
#ifndef _LAB_BHYVE_EXITS13_H_
#define _LAB_BHYVE_EXITS13_H_

#include "vmmapi13.h"

int	vmexit_mtrap(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu);
int	vmexit_breakpoint(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu);
int	vmexit_hlt(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu);
int	vmexit_pause(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu);
int	vmexit_inst_emul(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu);
int	vmexit_task_switch(struct vmctx *ctx, struct vm_exit *vme, int *pvcpu);

#endif /* !_LAB_BHYVE_EXITS13_H_ */
