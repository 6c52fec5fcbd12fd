/* vmmapi_impl.h: struct vmctx, private to libvmmapi_lab.so (vmmapi.c). */
#ifndef _LAB_VMMAPI_IMPL_H_
#define _LAB_VMMAPI_IMPL_H_

#include <stddef.h>
#include <stdint.h>

struct vmctx {
	int		fd;
	uint32_t	lowmem_limit;
	int		memflags;
	size_t		lowmem;
	size_t		highmem;	/* above 4 GB (vm_setup_memory) */
	char		*baseaddr;
	char		*name;
};

#endif /* !_LAB_VMMAPI_IMPL_H_ */
