/*
 * libvmmcompat.so: internal interfaces.  The interposer sits in a legacy
 * FreeBSD 13.1 bhyve (LD_PRELOAD) and acts only on the compat events of
 * docs/design.md ("The compat sequence on a window kernel"); every other
 * ioctl goes straight to the next ioctl() (interpose.c).
 */
#ifndef _VMMCOMPAT_SHIM_H_
#define _VMMCOMPAT_SHIM_H_

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmm13.h"
#include "vmm_compat_proto_gen.h"
#include "vcpuset.h"	/* VMC_MAX_VCPUS: 13.x userland's CPU_SETSIZE, 256 */
/* Size of the fd -> session table: fds above it are never vmm fds here. */
#define	VMC_FD_TABLE		4096
/* vmm.h VM_MAX_NAMELEN */
#define	VMC_VM_NAME_MAX		VM_MAX_NAMELEN
/* Largest kernel cpuset_t handled (CPU_MAXSIZE 1024 bits on 14.x). */
#define	VMC_CPUSET_MAX_BYTES	ABI14_CPUSET_BYTES

/*
 * Kernel variant codes (VMC_VARIANT_*), event kinds (VMC_EV_*) and the frame
 * layout come from the daemon's tables (vmm_compat_proto_gen.h).
 */
#define	VMC_VARIANT_UNKNOWN	0

/* bsp_attention bits. */
#define	BSP_NEEDS_PLAN		0x1
#define	BSP_PENDING_SPINUP	0x2

struct kernel_facts {
	int		variant;	/* VMC_VARIANT_* */
	int		cpuset_bytes;	/* sizeof(kernel cpuset_t) */
	int		vmrun_abi;	/* 13: 144-byte VM_RUN works; 14: translate */
};

struct vm_session;

/* Per-request compat actions, indexed by IOCNUM (interpose.c). */
typedef int (*compat_handler)(struct vm_session *, int, unsigned long, void *);
struct compat_action {
	unsigned long	request;
	compat_handler	handler;
};
#define	VMC_ACTIONS		256

/*
 * What the bhyve's generation needs on this kernel (generation.c):
 * GENERIC is the 13.x set of actions (and every bhyve whose release is not
 * known), 14_ON_15 a 14.x bhyve on a 15.0 kernel (segment ids, the destroy),
 * NATIVE no action at all, REFUSED a bhyve newer than its kernel.
 */
enum bhyve_handling {
	BHYVE_GENERIC,
	BHYVE_14_ON_15,
	BHYVE_NATIVE,
	BHYVE_REFUSED,
};
/* __FreeBSD_version of the generations' first releases (sys/sys/param.h). */
#define	BHYVE_VERSION_13	1300000
#define	BHYVE_VERSION_14	1400000
#define	BHYVE_VERSION_15	1500000

struct parker {
	pthread_t		thread;
	struct vm_session	*vs;
	int			vcpu;
	atomic_int		running;	/* thread started and not joined */
	atomic_int		stop;		/* handover or shutdown asked */
};

struct vm_session {
	/*
	 * The actions of this bhyve's generation (interpose.c), first: the
	 * ioctl path indexes it from the session pointer it already holds.
	 */
	struct compat_action	actions[VMC_ACTIONS];
	char			name[VMC_VM_NAME_MAX + 1];
	int			fd;
	struct kernel_facts	facts;
	int			facts_known;
	/* 1: the kernel takes the 144-byte VM_RUN as is (no translation). */
	int			vmrun_native;

	/* Topology (VM_SET_TOPOLOGY, never clamped) and the current boot's plan. */
	atomic_int		ncpus;
	atomic_uint		boot;		/* +1 per successful VM_REINIT */
	atomic_uint		planned_boot;	/* boot + 1 once planned */
	atomic_int		bsp_attention;	/* BSP_* work before the BSP's next VM_RUN */
	/* The bhyve enabled VM_CAP_IPI_EXIT: it starts its own APs (14.0 protocol). */
	atomic_int		new_protocol;
	/* SPINUP_AP exits raised on an AP, waiting to be delivered on the BSP. */
	struct vcpu_aset	pending_spinup;
	uint64_t		pending_spinup_rip[VMC_MAX_VCPUS];
	atomic_int		spinup_bias;
	atomic_int		last_handover;	/* AP handed over last (0: none yet) */
	struct vcpu_aset	parked;		/* APs pre-activated for bhyve */
	struct vcpu_aset	claimed;	/* ... and handed over to it */
	struct vcpu_aset	running;	/* APs that bhyve runs itself */
	atomic_int		suspend_reported;
	atomic_int		cpus_translated;
	atomic_int		vmrun_translated;
	/*
	 * What the kernel answered at open (kabi.c), before bhyve's capsicum
	 * limits: memseg15 = the 15.0 guest-NUMA VM_GET_MEMSEG exists;
	 * memseg_compat14 = the 32-byte one still works (COMPAT_FREEBSD14).
	 */
	int			kabi_probed;
	int			memseg15;
	int			memseg_compat14;
	/* VM_GET_CPUS: the cpusetsize that worked (0: the caller's). */
	atomic_int		cpus_size;
	atomic_int		memseg_translated;
	/*
	 * The bhyve speaks 13.x/14.x segment ids: its ABI tag says so, or it
	 * sent a 32-byte memory-segment request (15.0's bhyve sends 56 bytes,
	 * with 15.0's ids, which must not be translated).
	 */
	atomic_int		old_segids;
	atomic_int		generation_reported;
	pthread_mutex_t		plan_lock;	/* plan, handover, reinit */

	/* Parkers sleep on park_cond between VM_RUN polls. */
	struct parker		parkers[VMC_MAX_VCPUS];
	pthread_mutex_t		park_lock;
	pthread_cond_t		park_cond;
	uint64_t		plan_time_ns;	/* start of the boot window */

	/* The daemon link (daemon_link.c). */
	pthread_mutex_t		link_lock;
	int			link_fd;	/* -1: not connected */
	unsigned		link_session;
	uint64_t		link_retry_ns;
	unsigned		events_dropped;
	int			fallback_pending;
};

/* Process-wide settings read from the environment by the constructor. */
struct shim_config {
	int		dirfd;			/* socket directory, -1 if none */
	char		socket_dir[512];
	int		require_daemon;
	unsigned	boot_poll_us;
	unsigned	boot_window_ms;
	unsigned	idle_poll_ms;
	struct kernel_facts cached;		/* from kernel-variant file/env */
	int		cached_known;
	/* The bhyve's __FreeBSD_version (ELF ABI tag), 0 unknown. */
	int		bhyve_version;
	int		bhyve_version_from_env;
};

extern struct shim_config shim_config;

/* interpose.c: the next implementation of each interposed call. */
typedef int (*ioctl_fn)(int, unsigned long, ...);
extern ioctl_fn shim_next_ioctl;

/* session.c */
int	session_attach(int fd, const char *name);
void	session_detach(int fd);
uint64_t monotonic_ns(void);
int	facts_for_variant(int variant, struct kernel_facts *facts);
void	session_set_facts(struct vm_session *vs, const struct kernel_facts *facts);
const char *variant_name(int variant);
void	format_vcpu_list(const struct vcpu_set *set, char *buf, size_t len);

/* log.c: stderr and syslog; shim_error for what ends or refuses a VM. */
void	shim_log_open(void);
void	shim_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void	shim_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* daemon_link.c */
struct plan_reply {
	uint32_t	action;		/* 0 pass-through, 1 park */
	uint32_t	spinup_bias;
	struct vcpu_set	parked;
	uint32_t	boot;
	char		reason[VMC_PLAN_REASON_SIZE];
};
enum link_result { LINK_OK, LINK_DOWN, LINK_REFUSED };
/* daemon_reply.c: decoding of the daemon's replies, no I/O of its own. */
typedef int (*reply_reader)(void *ctx, uint8_t *buf, size_t len);
int	reply_read(reply_reader read, void *ctx, uint16_t want, uint8_t *body,
	    size_t bodylen, char *why, size_t whylen, int *refused);
int	reply_welcome(const uint8_t *body, struct kernel_facts *facts,
	    unsigned *session, char *why, size_t whylen);
int	reply_plan(const uint8_t *body, struct plan_reply *reply, char *why,
	    size_t whylen);

enum link_result link_connect(struct vm_session *vs, char *why, size_t whylen);
enum link_result link_plan(struct vm_session *vs, struct plan_reply *reply,
	    char *why, size_t whylen);
void	link_event(struct vm_session *vs, int kind, int vcpu, int arg);

/* kernel.c: the session's own ioctls, on bhyve's fd, past the interposer. */
int	kernel_vcpu_op(struct vm_session *vs, unsigned long request, int vcpu);
int	kernel_vm_run(struct vm_session *vs, struct vm_run *vr);
int	kernel_cpus(struct vm_session *vs, int which, struct vcpu_set *set);

/* plan.c */
void	plan_boot(struct vm_session *vs);

/* parker.c */
int	parker_start(struct vm_session *vs, int vcpu);
void	parker_stop(struct vm_session *vs, int vcpu);
void	parkers_stop_all(struct vm_session *vs);
void	parkers_wake(struct vm_session *vs);

/* handover.c */
enum spinup_verdict { SPINUP_DELIVER, SPINUP_SWALLOW };
enum spinup_verdict spinup_ap_exit(struct vm_session *vs, int sender,
	    struct vm_exit *vme);
int	take_pending_spinup(struct vm_session *vs, struct vm_exit *vme);
int	activate_cpu(struct vm_session *vs, int fd, unsigned long request,
	    struct vm_activate_cpu *arg);

/* translate.c */
int	get_cpus(struct vm_session *vs, int fd, unsigned long request,
	    struct vm_cpuset *arg);
int	cpus_adaptive(struct vm_session *vs, int fd, struct vm_cpuset *arg);

/* kabi.c: the kernel's ABI as its answers show it, probed at open. */
void	probe_kernel_abi(struct vm_session *vs);

/* memseg.c: 13.1 memory-segment requests on a 15.0 kernel. */
int	memseg_alloc(struct vm_session *vs, int fd, unsigned long request,
	    struct vm_memseg *arg);
int	memseg_get(struct vm_session *vs, int fd, unsigned long request,
	    struct vm_memseg *arg);
int	memseg_mmap(struct vm_session *vs, int fd, unsigned long request,
	    struct vm_memmap *arg);
int	memseg_getnext(struct vm_session *vs, int fd, unsigned long request,
	    struct vm_memmap *arg);
int	segid_to_15(int segid);
int	segid_from_15(int segid);
size_t	widen_ioctl_list(struct vm_session *vs, const unsigned long *cmds,
	    size_t ncmds, unsigned long *out, size_t outmax);

/* kern/sys_capability.c: at most 256 ioctls in a capsicum limit. */
#define	VMC_CAP_IOCTLS_MAX	256

/* refusal.c */
void	refusal_note_open(const char *name, int error);
void	refusal_note_create(const void *name, size_t len);
int	refusal_blocks_destroy(const void *name, size_t len);

/* generation.c */
int	bhyve_abi_tag(void);
enum bhyve_handling bhyve_handling(const struct vm_session *vs);
void	bhyve_learned(struct vm_session *vs, int version);

/* interpose.c */
void	vmfd_publish(int fd, struct vm_session *vs, enum bhyve_handling how);
void	vmfd_publish_native(int fd, struct vm_session *vs);
struct vm_session *vmfd_take(int fd);

#endif /* !_VMMCOMPAT_SHIM_H_ */
