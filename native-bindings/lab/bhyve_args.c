/*
 * bhyve_args.c: the bhyve models' command line, a subset of 13.1 bhyve's
 * (bhyverun.c: main, usage, topology_parse, calc_topolopgy;
 * vmmapi.c: vm_parse_memsize; pci_lpc.c: lpc_device_parse):
 *
 *   -c [[cpus=]N][,sockets=S][,cores=C][,threads=T]   topology
 *   -x          x2APIC mode          -D   destroy the VM on power-off
 *   -H          VM exit on HLT       -P   VM exit on PAUSE
 *   -m SIZE     memory (plain numbers below 1M are MB; k/m/g suffixes)
 *   -l bootrom,FILE   boot ROM (pci_lpc.c, bootrom.c)
 *   -l guest,FILE     the lab's boot disk: a guest image that the firmware
 *               (or, without a ROM, a loader) places at 0x10000
 *   -s SLOT,fbuf[,...]  the framebuffer device (pci_fbuf.c); its options
 *               are accepted and ignored
 *   -h          help
 *
 * Exit statuses as in bhyve: usage errors 1 (usage(1)), -h 0, a malformed
 * -c/-m/-l value EX_USAGE (64), an impossible topology 4.
 */
#include <ctype.h>
#include <err.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bhyve_common.h"

#define	MB	(1024UL * 1024)
#define	DEFAULT_MEMSIZE	(2 * MB)	/* the lab's guests are small */

static const char *progname;

static void
usage(int code)
{

	fprintf(stderr,
	    "Usage: %s [-hxDHP] [-c [[cpus=]numcpus][,sockets=n][,cores=n]"
	    "[,threads=n]]\n"
	    "       %*s [-l bootrom,<rom>] [-l guest,<image>] [-s slot,fbuf]"
	    " [-m mem] <vm>\n"
	    "       -c: number of cpus and/or topology specification\n"
	    "       -D: destroy on power-off\n"
	    "       -H: vmexit from the guest on HLT\n"
	    "       -h: help\n"
	    "       -l: LPC device configuration (bootrom,FILE; guest,FILE)\n"
	    "       -s: <slot,driver,configinfo> PCI slot config (fbuf)\n"
	    "       -m: memory size (default 2M)\n"
	    "       -P: vmexit from the guest on pause\n"
	    "       -x: local apic is in x2APIC mode\n",
	    progname, (int)strlen(progname), "");
	exit(code);
}

/*
 * bhyverun.c: topology_parse (syntax) and calc_topolopgy (values): cpus
 * defaults to 1, sockets to cpus when only cpus is given, the product must
 * fit 16 bits and equal an explicit cpus.
 */
static bool
topology_parse(const char *opt, struct bhyve_opts *o)
{
	char *str, *cp, *tofree;
	int tmp, chk, n, s, c, t;
	bool ns, scts;
	uint64_t ncpus;

	n = 1; s = 1; c = 1; t = 1;
	ns = scts = false;
	tofree = str = strdup(opt);
	if (str == NULL)
		return (false);
	while ((cp = strsep(&str, ",")) != NULL) {
		chk = 0;
		if (sscanf(cp, "%i%n", &tmp, &chk) == 1) {
			n = tmp;
			ns = true;
		} else if (sscanf(cp, "cpus=%i%n", &tmp, &chk) == 1) {
			n = tmp;
			ns = true;
		} else if (sscanf(cp, "sockets=%i%n", &tmp, &chk) == 1) {
			s = tmp;
			scts = true;
		} else if (sscanf(cp, "cores=%i%n", &tmp, &chk) == 1) {
			c = tmp;
			scts = true;
		} else if (sscanf(cp, "threads=%i%n", &tmp, &chk) == 1) {
			t = tmp;
			scts = true;
		} else if (cp[0] == '\0')
			continue;
		else {
			free(tofree);
			return (false);
		}
		if (cp[chk] != '\0') {
			free(tofree);
			return (false);
		}
	}
	free(tofree);
	if (n < 1 || s < 1 || c < 1 || t < 1 || n > UINT16_MAX ||
	    s > UINT16_MAX || c > UINT16_MAX || t > UINT16_MAX)
		errx(4, "Invalid topology: cpus=%d sockets=%d cores=%d "
		    "threads=%d", n, s, c, t);
	if (!scts)
		s = n;
	ncpus = (uint64_t)s * c * t;
	if (ncpus > UINT16_MAX)
		errx(4, "Computed number of vCPUs too big: %ju",
		    (uintmax_t)ncpus);
	if (ns && (uint64_t)n != ncpus)
		errx(4, "Topology (sockets=%d cores=%d threads=%d) does not "
		    "match cpus=%d", s, c, t, n);
	o->guest_ncpus = (int)ncpus;
	o->sockets = (uint16_t)s;
	o->cores = (uint16_t)c;
	o->threads = (uint16_t)t;
	return (true);
}

/* vmmapi.c: vm_parse_memsize; libutil expand_number for suffixes. */
static bool
parse_memsize(const char *opt, size_t *ret)
{
	unsigned long long v;
	char *end;

	v = strtoull(opt, &end, 0);
	if (opt[0] == '\0' || end == opt)
		return (false);
	if (*end == '\0') {
		if (v < MB)
			v *= MB;
	} else {
		switch (tolower((unsigned char)*end)) {
		case 'k': v <<= 10; break;
		case 'm': v <<= 20; break;
		case 'g': v <<= 30; break;
		default: return (false);
		}
		if (end[1] != '\0' && !(tolower((unsigned char)end[1]) == 'b'
		    && end[2] == '\0'))
			return (false);
	}
	if (v == 0)
		return (false);
	*ret = (size_t)v;
	return (true);
}

/*
 * pci_lpc.c: lpc_device_parse; the lab knows "bootrom" and its own "guest"
 * (the stand-in for a boot disk).
 */
static bool
lpc_parse(const char *opt, struct bhyve_opts *o)
{

	if (strncmp(opt, "bootrom,", 8) == 0 && opt[8] != '\0') {
		o->bootrom = opt + 8;
		return (true);
	}
	if (strncmp(opt, "guest,", 6) == 0 && opt[6] != '\0') {
		o->guest_image = opt + 6;
		return (true);
	}
	return (false);
}

/* pci_emul.c: pci_parse_slot, for the one emulation the lab has: fbuf. */
static bool
slot_parse(const char *opt, struct bhyve_opts *o)
{
	const char *emul;
	char *end;
	long slot;

	slot = strtol(opt, &end, 10);
	if (end == opt || *end != ',' || slot < 0 || slot > 31)
		return (false);
	emul = end + 1;
	if (strncmp(emul, "fbuf", 4) != 0 || (emul[4] != '\0' &&
	    emul[4] != ','))
		return (false);
	o->fbuf = 1;
	return (true);
}

void
bhyve_parse_args(int argc, char **argv, struct bhyve_opts *o)
{
	int ch;

	progname = argv[0];
	memset(o, 0, sizeof(*o));
	o->guest_ncpus = 1;
	o->sockets = o->cores = o->threads = 1;
	o->maxcpus = 0;		/* bhyverun.c: never assigned */
	o->memsize = DEFAULT_MEMSIZE;
	while ((ch = getopt(argc, argv, "c:DHhl:m:Ps:x")) != -1) {
		switch (ch) {
		case 'c':
			if (!topology_parse(optarg, o))
				errx(EX_USAGE, "invalid cpu topology '%s'",
				    optarg);
			break;
		case 'D':
			o->destroy_on_poweroff = 1;
			break;
		case 'l':
			if (!lpc_parse(optarg, o))
				errx(EX_USAGE, "invalid lpc device "
				    "configuration '%s'", optarg);
			break;
		case 's':
			if (!slot_parse(optarg, o))
				errx(EX_USAGE, "invalid slot configuration '%s'",
				    optarg);
			break;
		case 'm':
			if (!parse_memsize(optarg, &o->memsize))
				errx(EX_USAGE, "invalid memsize '%s'", optarg);
			break;
		case 'x':
			o->x2apic_mode = 1;
			break;
		case 'H':
			o->vmexit_on_hlt = 1;
			break;
		case 'P':
			o->vmexit_on_pause = 1;
			break;
		case 'h':
			usage(0);
			break;
		default:
			usage(1);
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 1)
		usage(1);
	o->vmname = argv[0];
}
