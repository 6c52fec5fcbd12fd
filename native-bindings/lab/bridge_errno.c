/*
 * bridge_errno.c: FreeBSD errno numbers (sys/sys/errno.h) to the host's, as
 * a kernel's system-call layer hands them to its libc (docs/internals.md
 * section 1).  FreeBSD numbers with no Linux twin map to the closest host
 * meaning; ENOTCAPABLE and ECAPMODE keep FreeBSD's numbers (fbsd_compat.h).
 */
#include <errno.h>

#include "fbsd_compat.h"
#include "bridge.h"

static const short fbsd_to_host[] = {
	[0] = 0,
	[1] = EPERM,		[2] = ENOENT,		[3] = ESRCH,
	[4] = EINTR,		[5] = EIO,		[6] = ENXIO,
	[7] = E2BIG,		[8] = ENOEXEC,		[9] = EBADF,
	[10] = ECHILD,		[11] = EDEADLK,		[12] = ENOMEM,
	[13] = EACCES,		[14] = EFAULT,		[15] = ENOTBLK,
	[16] = EBUSY,		[17] = EEXIST,		[18] = EXDEV,
	[19] = ENODEV,		[20] = ENOTDIR,		[21] = EISDIR,
	[22] = EINVAL,		[23] = ENFILE,		[24] = EMFILE,
	[25] = ENOTTY,		[26] = ETXTBSY,		[27] = EFBIG,
	[28] = ENOSPC,		[29] = ESPIPE,		[30] = EROFS,
	[31] = EMLINK,		[32] = EPIPE,		[33] = EDOM,
	[34] = ERANGE,		[35] = EAGAIN,		[36] = EINPROGRESS,
	[37] = EALREADY,	[38] = ENOTSOCK,	[39] = EDESTADDRREQ,
	[40] = EMSGSIZE,	[41] = EPROTOTYPE,	[42] = ENOPROTOOPT,
	[43] = EPROTONOSUPPORT,	[44] = ESOCKTNOSUPPORT,	[45] = EOPNOTSUPP,
	[46] = EPFNOSUPPORT,	[47] = EAFNOSUPPORT,	[48] = EADDRINUSE,
	[49] = EADDRNOTAVAIL,	[50] = ENETDOWN,	[51] = ENETUNREACH,
	[52] = ENETRESET,	[53] = ECONNABORTED,	[54] = ECONNRESET,
	[55] = ENOBUFS,		[56] = EISCONN,		[57] = ENOTCONN,
	[58] = ESHUTDOWN,	[59] = ETOOMANYREFS,	[60] = ETIMEDOUT,
	[61] = ECONNREFUSED,	[62] = ELOOP,		[63] = ENAMETOOLONG,
	[64] = EHOSTDOWN,	[65] = EHOSTUNREACH,	[66] = ENOTEMPTY,
	[67] = EAGAIN,		/* EPROCLIM */
	[68] = EUSERS,		[69] = EDQUOT,		[70] = ESTALE,
	[71] = EREMOTE,
	[72] = EPROTO,		/* EBADRPC */
	[73] = EPROTO,		/* ERPCMISMATCH */
	[74] = EPROTO,		/* EPROGUNAVAIL */
	[75] = EPROTO,		/* EPROGMISMATCH */
	[76] = EPROTO,		/* EPROCUNAVAIL */
	[77] = ENOLCK,		[78] = ENOSYS,
	[79] = EINVAL,		/* EFTYPE */
	[80] = EACCES,		/* EAUTH */
	[81] = EACCES,		/* ENEEDAUTH */
	[82] = EIDRM,		[83] = ENOMSG,		[84] = EOVERFLOW,
	[85] = ECANCELED,	[86] = EILSEQ,
	[87] = ENODATA,		/* ENOATTR */
	[88] = EINVAL,		/* EDOOFUS */
	[89] = EBADMSG,		[90] = EMULTIHOP,	[91] = ENOLINK,
	[92] = EPROTO,
	[93] = ENOTCAPABLE,	[94] = ECAPMODE,
	[95] = ENOTRECOVERABLE,	[96] = EOWNERDEAD,
	[97] = EIO,		/* EINTEGRITY */
};

int
errno_from_freebsd(int fbsd_errno)
{

	if (fbsd_errno <= 0 ||
	    fbsd_errno >= (int)(sizeof(fbsd_to_host) / sizeof(fbsd_to_host[0])))
		return (EIO);
	return (fbsd_to_host[fbsd_errno]);
}
