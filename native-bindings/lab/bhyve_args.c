/*
 * bhyve_args.c: the bhyve models' command line, a subset of 13.x bhyve's
 * (bhyverun.c: main, usage, topology_parse, calc_topolopgy;
 * vmmapi.c: vm_parse_memsize; pci_lpc.c: lpc_device_parse;
 * pci_emul.c: pci_parse_slot):
 *
 *   -c [[cpus=]N][,sockets=S][,cores=C][,threads=T]   topology
 *   -x          x2APIC mode          -D   destroy the VM on power-off
 *   -H          VM exit on HLT       -P   VM exit on PAUSE
 *   -A          ACPI tables (accepted; the lab builds none)
 *   -m SIZE     memory (plain numbers below 1M are MB; k/m/g suffixes)
 *   -l bootrom,FILE[,VARS]   boot ROM, loaded by the LPC device
 *               (bootrom.c; a variables file is ignored with a note)
 *   -l comN[,BACKEND]        COM1/COM2 of the LPC device; BACKEND stdio or
 *               a tty path (uart_emul.c)
 *   -l help, -s help         the devices the lab knows
 *   -s [B:]S[:F],EMUL[,CONFIG]  a PCI slot: hostbridge, lpc, fbuf; any
 *               other emulation is ignored with a note on stderr (bhyve
 *               itself exits 4: "unknown device")
 *   -h          help
 *
 * Exit statuses as in bhyve: usage errors 1 (usage(1)), -h and help 0, a
 * malformed -c/-m/-l value EX_USAGE (64), a malformed -s value or an
 * impossible topology 4.
 */
#define	_GNU_SOURCE
#include <ctype.h>
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "bhyve_common.h"

#define	MB	(1024UL * 1024)
#define	DEFAULT_MEMSIZE	(2 * MB)	/* the lab's guests are small */

static const char *progname;

static void
usage(int code)
{

	fprintf(stderr,
	    "Usage: %s [-hxADHP] [-c [[cpus=]numcpus][,sockets=n][,cores=n]"
	    "[,threads=n]]\n"
	    "       %*s [-l <lpc>] [-s <pci>] [-m mem] <vm>\n"
	    "       -A: create ACPI tables (accepted; the lab builds none)\n"
	    "       -c: number of cpus and/or topology specification\n"
	    "       -D: destroy on power-off\n"
	    "       -H: vmexit from the guest on HLT\n"
	    "       -h: help\n"
	    "       -l: LPC device configuration (bootrom,FILE; com1,stdio)\n"
	    "       -s: <slot,driver,configinfo> PCI slot config "
	    "(hostbridge, lpc, fbuf)\n"
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
 * pci_lpc.c: lpc_device_parse (device names are case-insensitive): bootrom
 * with its file (and an optional variables file, which the lab does not
 * model), or a COM port with an optional backend.
 */
static const char *const lpc_uart_names[BHYVE_LPC_UARTS] = { "com1", "com2" };

static bool
lpc_parse(const char *opt, struct bhyve_opts *o)
{
	const char *comma, *rest;
	size_t namelen;
	int unit;

	comma = strchr(opt, ',');
	namelen = comma != NULL ? (size_t)(comma - opt) : strlen(opt);
	rest = comma != NULL ? comma + 1 : NULL;
	if (namelen == 7 && strncasecmp(opt, "bootrom", 7) == 0) {
		if (rest == NULL)
			errx(4, "invalid bootrom option \"%s\"", opt);
		if (strchr(rest, ',') != NULL) {
			fprintf(stderr, "bhyve (lab): the bootrom variables "
			    "file in \"%s\" is not modelled; ignored\n", opt);
			o->bootrom = strndup(rest, (size_t)(strchr(rest, ',') -
			    rest));
		} else
			o->bootrom = rest;
		return (o->bootrom != NULL);
	}
	for (unit = 0; unit < BHYVE_LPC_UARTS; unit++) {
		if (namelen == strlen(lpc_uart_names[unit]) &&
		    strncasecmp(opt, lpc_uart_names[unit], namelen) == 0) {
			o->com_backend[unit] = rest;
			return (true);
		}
	}
	return (false);
}

static void
lpc_print_supported_devices(void)
{
	int unit;

	printf("bootrom\n");
	for (unit = 0; unit < BHYVE_LPC_UARTS; unit++)
		printf("%s\n", lpc_uart_names[unit]);
}

static const struct {
	const char	*name;
	enum bhyve_emul	emul;
} pci_emuls[] = {
	{ "hostbridge",	EMUL_HOSTBRIDGE },
	{ "lpc",	EMUL_LPC },
	{ "fbuf",	EMUL_FBUF },
};

/*
 * pci_emul.c: pci_parse_slot: "<bus>:<slot>:<func>", "<slot>:<func>" or
 * "<slot>", a comma, the emulation, optionally a comma and its
 * configuration (which the lab does not read).  A slot given twice is
 * refused.  An emulation the lab does not have is noted and ignored where
 * bhyve would refuse it as an unknown device.
 */
static bool
slot_parse(const char *opt, struct bhyve_opts *o)
{
	char *str, *emul, *cp;
	int bnum, snum, fnum, i;
	size_t e;

	str = strdup(opt);
	if (str == NULL)
		return (false);
	bnum = snum = fnum = 0;
	if ((cp = strchr(str, ',')) == NULL)
		goto usage;
	*cp = '\0';
	emul = cp + 1;
	if ((cp = strchr(emul, ',')) != NULL)
		*cp = '\0';
	if (sscanf(str, "%d:%d:%d", &bnum, &snum, &fnum) != 3) {
		bnum = 0;
		if (sscanf(str, "%d:%d", &snum, &fnum) != 2) {
			fnum = 0;
			if (sscanf(str, "%d", &snum) != 1)
				snum = -1;
		}
	}
	if (bnum < 0 || bnum >= BHYVE_MAXBUSES || snum < 0 ||
	    snum >= BHYVE_MAXSLOTS || fnum < 0 || fnum >= BHYVE_MAXFUNCS)
		goto usage;
	for (i = 0; i < o->nslots; i++) {
		if (o->slots[i].bus == bnum && o->slots[i].slot == snum &&
		    o->slots[i].func == fnum) {
			fprintf(stderr, "pci slot %d:%d:%d already occupied!\n",
			    bnum, snum, fnum);
			free(str);
			return (false);
		}
	}
	for (e = 0; e < sizeof(pci_emuls) / sizeof(pci_emuls[0]); e++)
		if (strcmp(emul, pci_emuls[e].name) == 0)
			break;
	if (e == sizeof(pci_emuls) / sizeof(pci_emuls[0])) {
		fprintf(stderr, "bhyve (lab): pci slot %d:%d:%d: device \"%s\" "
		    "is not modelled; ignored\n", bnum, snum, fnum, emul);
		free(str);
		return (true);
	}
	if (o->nslots == BHYVE_MAX_SLOT_ARGS) {
		fprintf(stderr, "bhyve (lab): too many -s options\n");
		free(str);
		return (false);
	}
	o->slots[o->nslots++] = (struct bhyve_slot){ bnum, snum, fnum,
	    pci_emuls[e].emul };
	free(str);
	return (true);
usage:
	fprintf(stderr, "Invalid PCI slot info field \"%s\"\n", opt);
	free(str);
	return (false);
}

static void
pci_print_supported_devices(void)
{
	size_t e;

	for (e = 0; e < sizeof(pci_emuls) / sizeof(pci_emuls[0]); e++)
		printf("%s\n", pci_emuls[e].name);
}

void
bhyve_parse_args(int argc, char **argv, struct bhyve_opts *o)
{
	int ch;

	progname = argv[0];
	/*
	 * err(3), warn(3) and assert(3) name the program as FreeBSD's does:
	 * getprogname() of /usr/sbin/bhyve, whatever the model's file name.
	 */
	program_invocation_short_name = (char *)"bhyve";
	memset(o, 0, sizeof(*o));
	o->guest_ncpus = 1;
	o->sockets = o->cores = o->threads = 1;
	o->maxcpus = 0;		/* bhyverun.c: never assigned */
	o->memsize = DEFAULT_MEMSIZE;
	while ((ch = getopt(argc, argv, "Ac:DHhl:m:Ps:x")) != -1) {
		switch (ch) {
		case 'A':
			o->acpi_tables = 1;
			break;
		case 'c':
			if (!topology_parse(optarg, o))
				errx(EX_USAGE, "invalid cpu topology '%s'",
				    optarg);
			break;
		case 'D':
			o->destroy_on_poweroff = 1;
			break;
		case 'l':
			if (strncmp(optarg, "help", strlen(optarg)) == 0) {
				lpc_print_supported_devices();
				exit(0);
			} else if (!lpc_parse(optarg, o))
				errx(EX_USAGE, "invalid lpc device "
				    "configuration '%s'", optarg);
			break;
		case 's':
			if (strncmp(optarg, "help", strlen(optarg)) == 0) {
				pci_print_supported_devices();
				exit(0);
			} else if (!slot_parse(optarg, o))
				exit(4);
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
