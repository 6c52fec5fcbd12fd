# vmm-compat: build the interposer for this host and install the package
# (docs/install.md). FreeBSD's make and GNU make both read this file: it uses
# plain assignments, explicit rules and shell, no conditionals or functions of
# either dialect.
#
#   make                       the interposer, native-bindings/build/libvmmcompat.so
#   make install               the installed layout under $(DESTDIR)$(PREFIX),
#                              with the standard guests' boot ROMs in
#                              share/vmm-compat/guests (dist/guests, which
#                              npm run build writes; made from dist/ if missing)
#   make uninstall             removes it again (keeps etc/vmm-compat.conf)
#   make node-modules          the production node_modules (npm ci --omit=dev):
#                              the only step that needs the network (or npm's cache)
#   make node-modules-archive  the same for FreeBSD amd64, packed as the port's
#                              second distfile (packaging/freebsd/Makefile)
#
# Input: a release tarball (npm pack), which carries dist/ and the generated C
# headers, or a checkout after "npm ci && npm run build". Nothing here runs tsc.
#
# Variables:
#   DESTDIR            staging root (the port's STAGEDIR)
#   PREFIX             /usr/local; paths in the installed scripts, JavaScript,
#                      man pages and samples follow it
#   LOCALBASE          where node is ($(LOCALBASE)/bin/node)
#   NODE_MODULES       a production node_modules tree to install (the port
#                      points it at its unpacked node-modules distfile);
#                      default: the one "make node-modules" makes
#   NPM_FLAGS          more npm ci options, e.g. --offline
#   INSTALL_RC_SCRIPT  "no" leaves etc/rc.d/vmm_compatd to the port (USE_RC_SUBR)

PREFIX?=		/usr/local
LOCALBASE?=		/usr/local
NODE?=			node
NPM?=			npm
NPM_FLAGS?=
NODE_MODULES?=		build/production/node_modules
INSTALL_RC_SCRIPT?=	yes

VC_PKGDIR=	$(PREFIX)/libexec/vmm-compat
VC_LIBDIR=	$(PREFIX)/lib/vmm-compat
VC_MAN8DIR=	$(PREFIX)/share/man/man8
VC_GUESTDIR=	$(PREFIX)/share/vmm-compat/guests
VC_GUEST_ROMS=	dist/guests/smp-boot.rom
VC_INTERPOSER=	native-bindings/build/libvmmcompat.so
VC_ABI_HEADER=	native-bindings/include/vmm_abi_gen.h
VC_PROTO_HEADER=	native-bindings/include/vmm_compat_proto_gen.h
VC_VERSION!=	sed -n 's/^  "version": "\([^"]*\)".*/\1/p' package.json

# The sources name the default layout (/usr/local); the installed copies name
# this PREFIX, and LOCALBASE for node. @NODE@ keeps the two apart.
VC_SED_PATHS=	-e 's|^\#!/usr/bin/env node$$|\#!@NODE@|' \
		-e 's|/usr/local/bin/node|@NODE@|g' \
		-e 's|/usr/local/|$(PREFIX)/|g' \
		-e 's|@NODE@|$(LOCALBASE)/bin/node|g'

VC_NO_DIST=	echo "make: dist/ is missing. In a source checkout run" \
		    "'npm ci && npm run build' first; a release tarball" \
		    "(npm pack) carries dist/." >&2; exit 1

.PHONY: all install uninstall node-modules node-modules-archive clean

all: $(VC_ABI_HEADER) $(VC_PROTO_HEADER)
	cd native-bindings && $(MAKE) -f shim/shim.mk NODE=$(NODE) \
	    build/libvmmcompat.so

# Generated from dist/ when missing (a release tarball has both).
$(VC_ABI_HEADER):
	@[ -f dist/src/abi/gen-c-header.js ] || { $(VC_NO_DIST); }
	$(NODE) dist/src/abi/gen-c-header.js $(VC_ABI_HEADER)

$(VC_PROTO_HEADER):
	@[ -f dist/src/daemon/gen-protocol-header.js ] || { $(VC_NO_DIST); }
	$(NODE) dist/src/daemon/gen-protocol-header.js $(VC_PROTO_HEADER)

# The standard guests' boot ROMs (vmm-compat guests --write), from dist/ when missing.
$(VC_GUEST_ROMS):
	@[ -f dist/src/cli/main.js ] || { $(VC_NO_DIST); }
	$(NODE) dist/src/cli/main.js guests --write dist/guests >/dev/null

node-modules: build/production/node_modules

# npm pack leaves package-lock.json out of a release tarball: there npm
# resolves package.json's ranges (the port uses its node-modules distfile).
build/production/node_modules: package.json
	rm -rf build/production
	mkdir -p build/production
	cp package.json build/production/
	if [ -f package-lock.json ]; then \
	    cp package-lock.json build/production/ && cd build/production && \
	    $(NPM) ci --omit=dev --ignore-scripts --no-audit --no-fund $(NPM_FLAGS); \
	else \
	    cd build/production && $(NPM) install --omit=dev --ignore-scripts \
	        --no-package-lock --no-audit --no-fund $(NPM_FLAGS); fi

# koffi loads its native part from the optional package for the platform it
# runs on; --os/--cpu make npm pick FreeBSD's whatever machine this runs on.
# The archive is the same bytes on every rebuild of a version (distinfo pins
# it): scripts/pack-node-modules.js sorts the names and fixes mtime
# ($SOURCE_DATE_EPOCH), owner (0:0, numeric) and modes.
node-modules-archive: package.json package-lock.json
	rm -rf build/freebsd-amd64
	mkdir -p build/freebsd-amd64
	cp package.json package-lock.json build/freebsd-amd64/
	cd build/freebsd-amd64 && $(NPM) ci --omit=dev --ignore-scripts \
	    --no-audit --no-fund --os=freebsd --cpu=x64 $(NPM_FLAGS)
	rm -rf build/freebsd-amd64/node_modules/.bin
	$(NODE) scripts/pack-node-modules.js build/freebsd-amd64 node_modules \
	    build/vmm-compat-node-modules-$(VC_VERSION).tar.gz
	@echo "build/vmm-compat-node-modules-$(VC_VERSION).tar.gz"

install: all $(NODE_MODULES) $(VC_GUEST_ROMS)
	@[ -f dist/src/cli/main.js ] || { $(VC_NO_DIST); }
	@[ -d $(NODE_MODULES)/koffi ] && [ ! -d $(NODE_MODULES)/typescript ] || { \
	    echo "make: $(NODE_MODULES) is not a production node_modules" \
	        "(koffi missing or development dependencies present):" \
	        "run 'make node-modules' or set NODE_MODULES" >&2; exit 1; }
	install -d -m 0755 $(DESTDIR)$(VC_PKGDIR)/bin \
	    $(DESTDIR)$(VC_PKGDIR)/legacy13 $(DESTDIR)$(VC_LIBDIR) \
	    $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/etc/newsyslog.conf.d \
	    $(DESTDIR)$(VC_MAN8DIR) $(DESTDIR)$(VC_GUESTDIR)
	install -m 0644 package.json $(DESTDIR)$(VC_PKGDIR)/package.json
	rm -rf $(DESTDIR)$(VC_PKGDIR)/dist $(DESTDIR)$(VC_PKGDIR)/node_modules
	cd dist && find src -type d | while read -r d; do \
	    install -d -m 0755 "$(DESTDIR)$(VC_PKGDIR)/dist/$$d" || exit 1; done
	cd dist && find src -type f -name '*.js' | while read -r f; do \
	    sed $(VC_SED_PATHS) "$$f" > "$(DESTDIR)$(VC_PKGDIR)/dist/$$f" && \
	    chmod 0644 "$(DESTDIR)$(VC_PKGDIR)/dist/$$f" || exit 1; done
	mkdir -p $(DESTDIR)$(VC_PKGDIR)/node_modules
	(cd $(NODE_MODULES) && tar -cf - .) | \
	    (cd $(DESTDIR)$(VC_PKGDIR)/node_modules && tar --no-same-owner -xf -)
	rm -rf $(DESTDIR)$(VC_PKGDIR)/node_modules/.bin
	find $(DESTDIR)$(VC_PKGDIR)/node_modules -type d -exec chmod 0755 {} +
	find $(DESTDIR)$(VC_PKGDIR)/node_modules -type f -exec chmod 0644 {} +
	sed $(VC_SED_PATHS) bin/vmm-compat > $(DESTDIR)$(VC_PKGDIR)/bin/vmm-compat
	chmod 0555 $(DESTDIR)$(VC_PKGDIR)/bin/vmm-compat
	sed $(VC_SED_PATHS) bin/bhyve-wrapper > $(DESTDIR)$(VC_PKGDIR)/bin/bhyve
	chmod 0555 $(DESTDIR)$(VC_PKGDIR)/bin/bhyve
	ln -sf ../libexec/vmm-compat/bin/vmm-compat $(DESTDIR)$(PREFIX)/bin/vmm-compat
	install -m 0444 $(VC_INTERPOSER) $(DESTDIR)$(VC_LIBDIR)/libvmmcompat.so
	for r in dist/guests/*.rom; do \
	    install -m 0644 "$$r" "$(DESTDIR)$(VC_GUESTDIR)/$${r##*/}" || exit 1; done
	@if [ "$(INSTALL_RC_SCRIPT)" != no ]; then \
	    echo "install rc.d/vmm_compatd -> $(DESTDIR)$(PREFIX)/etc/rc.d/vmm_compatd"; \
	    install -d -m 0755 $(DESTDIR)$(PREFIX)/etc/rc.d && \
	    sed $(VC_SED_PATHS) rc.d/vmm_compatd \
	        > $(DESTDIR)$(PREFIX)/etc/rc.d/vmm_compatd && \
	    chmod 0555 $(DESTDIR)$(PREFIX)/etc/rc.d/vmm_compatd; fi
	sed $(VC_SED_PATHS) docs/vmm-compat.conf.sample \
	    > $(DESTDIR)$(PREFIX)/etc/vmm-compat.conf.sample
	chmod 0644 $(DESTDIR)$(PREFIX)/etc/vmm-compat.conf.sample
	sed $(VC_SED_PATHS) docs/newsyslog.conf.sample \
	    > $(DESTDIR)$(PREFIX)/etc/newsyslog.conf.d/vmm-compat.conf.sample
	chmod 0644 $(DESTDIR)$(PREFIX)/etc/newsyslog.conf.d/vmm-compat.conf.sample
	for p in docs/man/*.8; do \
	    sed $(VC_SED_PATHS) "$$p" | gzip -9n \
	        > "$(DESTDIR)$(VC_MAN8DIR)/$${p##*/}.gz" && \
	    chmod 0444 "$(DESTDIR)$(VC_MAN8DIR)/$${p##*/}.gz" || exit 1; done
	@# Straight onto a host (no DESTDIR): what pkg's @sample does, a
	@# configuration from each sample unless one exists.
	@if [ -z "$(DESTDIR)" ]; then \
	    for s in $(PREFIX)/etc/vmm-compat.conf \
	        $(PREFIX)/etc/newsyslog.conf.d/vmm-compat.conf; do \
	        [ -e "$$s" ] || cp -p "$$s.sample" "$$s" || exit 1; done; fi

uninstall:
	rm -rf $(DESTDIR)$(VC_PKGDIR)/dist $(DESTDIR)$(VC_PKGDIR)/node_modules \
	    $(DESTDIR)$(VC_PKGDIR)/package.json $(DESTDIR)$(VC_PKGDIR)/bin \
	    $(DESTDIR)$(VC_LIBDIR)/libvmmcompat.so $(DESTDIR)$(PREFIX)/bin/vmm-compat \
	    $(DESTDIR)$(PREFIX)/etc/vmm-compat.conf.sample \
	    $(DESTDIR)$(PREFIX)/etc/newsyslog.conf.d/vmm-compat.conf.sample
	@if [ "$(INSTALL_RC_SCRIPT)" != no ]; then \
	    rm -f $(DESTDIR)$(PREFIX)/etc/rc.d/vmm_compatd; fi
	for p in docs/man/*.8; do rm -f "$(DESTDIR)$(VC_MAN8DIR)/$${p##*/}.gz"; done
	for r in dist/guests/*.rom; do rm -f "$(DESTDIR)$(VC_GUESTDIR)/$${r##*/}"; done
	-rmdir $(DESTDIR)$(VC_PKGDIR)/legacy13 $(DESTDIR)$(VC_PKGDIR) $(DESTDIR)$(VC_LIBDIR)
	-rmdir $(DESTDIR)$(VC_GUESTDIR) $(DESTDIR)$(PREFIX)/share/vmm-compat

# The port's copy of the rc.d script, with the port's substitutions.
packaging/freebsd/files/vmm_compatd.in: rc.d/vmm_compatd
	sed -e 's|/usr/local/bin/node|%%LOCALBASE%%/bin/node|g' \
	    -e 's|/usr/local/|%%PREFIX%%/|g' rc.d/vmm_compatd > $@

clean:
	rm -rf build
	rm -f $(VC_INTERPOSER)
