/*
 * bridge.h: internals of libvmmlab_bridge.so, the lab's system-call layer
 * (docs/lab-bridge.md; protocol in docs/internals.md section 2).
 */
#ifndef _LAB_BRIDGE_H_
#define _LAB_BRIDGE_H_

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define	LAB_EXPORT	__attribute__((visibility("default")))

/* Frame types (docs/internals.md section 2). */
enum frame_type {
	FRAME_HELLO		= 1,
	FRAME_OPEN		= 2,
	FRAME_CLOSE		= 3,
	FRAME_IOCTL		= 4,
	FRAME_MMAP		= 5,
	FRAME_SYSCTL		= 6,
	FRAME_CAP_RIGHTS	= 7,
	FRAME_CAP_IOCTLS	= 8,
	FRAME_COPYIN_DATA	= 9,
	FRAME_COPYOUT_DONE	= 10,
	FRAME_REPLY		= 100,
	FRAME_COPYIN		= 101,
	FRAME_COPYOUT		= 102,
};

#define	FRAME_HDR_LEN		8	/* u32 length, u32 type */
#define	FRAME_MAX		(1u << 20)	/* bytes after the length field */
#define	FRAME_IOCTL_HEAD	(FRAME_HDR_LEN + 4 + 4 + 8 + 8)
#define	FRAME_COPYIN_HEAD	(FRAME_HDR_LEN + 4)

/* FreeBSD errno numbers the bridge itself sends (sys/errno.h). */
#define	FBSD_EFAULT		14
#define	FBSD_EINVAL		22

/* The request's argument size limit (sys/ioccom.h: IOCPARM_MAX). */
#define	BRIDGE_IOCPARM_MAX	8192

/* bridge_frame.c: little-endian encoding, pure functions. */
static inline void
put_u32(uint8_t *p, uint32_t v)
{

	p[0] = v;
	p[1] = v >> 8;
	p[2] = v >> 16;
	p[3] = v >> 24;
}

static inline void
put_u64(uint8_t *p, uint64_t v)
{

	put_u32(p, (uint32_t)v);
	put_u32(p + 4, (uint32_t)(v >> 32));
}

static inline uint32_t
get_u32(const uint8_t *p)
{

	return ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	    (uint32_t)p[3] << 24);
}

static inline uint64_t
get_u64(const uint8_t *p)
{

	return ((uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32);
}

size_t	frame_hello(uint8_t *buf, uint32_t pid);
size_t	frame_open(uint8_t *buf, size_t cap, const char *name);
size_t	frame_open_path(uint8_t *buf, size_t cap, const char *path,
	    uint32_t flags);
size_t	frame_close(uint8_t *buf, uint32_t file);
size_t	frame_ioctl_head(uint8_t *buf, uint32_t file, uint64_t request,
	    uint64_t argaddr, size_t arglen);
size_t	frame_mmap(uint8_t *buf, uint32_t file, uint32_t prot,
	    uint64_t offset, uint64_t len);
size_t	frame_sysctl_head(uint8_t *buf, size_t cap, const char *name,
	    size_t newlen);
size_t	frame_cap_rights(uint8_t *buf, uint32_t file, const uint64_t rights[2]);
size_t	frame_cap_ioctls(uint8_t *buf, size_t cap, uint32_t file,
	    const unsigned long *cmds, size_t ncmds);
size_t	frame_copyin_head(uint8_t *buf, int32_t err, size_t datalen);
size_t	frame_copyout_done(uint8_t *buf, int32_t err);
int	frame_parse_header(const uint8_t *hdr, uint32_t *bodylen,
	    uint32_t *type);

/* bridge_errno.c */
int	errno_from_freebsd(int fbsd_errno);

/* bridge_fdtab.c: fd -> model file id, indexed by fd, lock-free lookups. */
#define	FDTAB_SIZE	4096
int	fdtab_lookup(int fd);
int	fdtab_insert(int fd, uint32_t file);
int	fdtab_remove(int fd);
void	fdtab_record_rights(int fd, const uint64_t rights[2]);
void	fdtab_record_ioctls(int fd, size_t ncmds);
int	fdtab_recorded(int fd, uint64_t rights[2], long *nioctls);
void	fdtab_forget(int fd);

/* bridge_memory.c: copyin/copyout on the bridge's own process. */
int	self_read(void *dst, uint64_t src, size_t len);
int	self_write(uint64_t dst, const void *src, size_t len);
void	self_reset_pid(void);

/* bridge_next.c: the next definition of an interposed function. */
struct bridge_next {
	int	(*open)(const char *, int, ...);
	int	(*open64)(const char *, int, ...);
	int	(*openat)(int, const char *, int, ...);
	int	(*openat64)(int, const char *, int, ...);
	int	(*close)(int);
	int	(*ioctl)(int, unsigned long, ...);
	void	*(*mmap)(void *, size_t, int, int, int, off_t);
	int	(*munmap)(void *, size_t);
	int	(*connect)(int, const void *, unsigned int);
	int	(*bind)(int, const void *, unsigned int);
};
const struct bridge_next *bridge_next(void);

/*
 * bridge_reply.c: the model's answer to one system call.  recv and send move
 * exactly len bytes or fail (-1); mem_read and mem_write reach the caller's
 * memory and return 0 or an errno (EFAULT).
 */
struct bridge_io {
	int	(*recv)(void *ctx, void *buf, size_t len);
	int	(*send)(void *ctx, const void *buf, size_t len);
	int	(*mem_read)(void *dst, uint64_t src, size_t len);
	int	(*mem_write)(uint64_t dst, const void *src, size_t len);
	void	*ctx;
};
enum bridge_reply_result {
	BRIDGE_REPLY_OK = 0,
	BRIDGE_REPLY_LOST = -1,		/* no frame header: connection gone */
	BRIDGE_REPLY_PROTOCOL = -2,	/* a frame the protocol does not allow */
};
int	bridge_reply_read(const struct bridge_io *io, int32_t *ret,
	    void *payload, size_t paycap, size_t *paylen);

/* bridge_conn.c: the calling thread's connection to the kernel model. */
int	conn_get(void);
void	conn_drop(void);
void	conn_reset_after_fork(void);
int	conn_call(const void *req, size_t reqlen, const void *tail,
	    size_t taillen, int32_t *ret, void *payload, size_t paycap,
	    size_t *paylen);
int	bridge_loopback(void);
int	bridge_tracing(void);
void	bridge_trace(const char *what, unsigned long arg, long ret, int err);
void	bridge_complain(const char *what);

/* bridge_capmode.c */
int	capmode_on(void);
int	capmode_check_path(int dirfd, const char *path);

#endif /* !_LAB_BRIDGE_H_ */
