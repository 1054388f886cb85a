# Packaging (issue 18), included from the top-level Makefile: docs/PACKAGING.md.
#
#   make man completions    man pages and bash/zsh/fish completions into $(PKG_GEN)
#   make install-extras     installs them (under $(DESTDIR)$(PREFIX)/share); part of `make install`
#   make uninstall          reverses `make install` (same PREFIX and DESTDIR)
#   make deb                $(DEB_FILE), built with dpkg-shlibdeps/dpkg-gencontrol/dpkg-deb
#   make package-tests      lintian, then install/enable/login/remove on this machine (root)

PKG_OUT   = $(TARGET)/packaging
PKG_GEN   = $(PKG_OUT)/gen
PKG_WHEEL = $(PKG_OUT)/wheel
DEB_ARCH     = $(shell dpkg --print-architecture 2>/dev/null || echo amd64)
DEB_VERSION  = $(shell dpkg-parsechangelog -l packaging/debian/changelog -SVersion 2>/dev/null)
DEB_FILE     = $(PKG_OUT)/keyringrs_$(DEB_VERSION)_$(DEB_ARCH).deb
# The hand-written pages' date: the packaging changelog's (reproducible, like the .deb).
PKG_DATE     = $(shell date -u -d @$$(dpkg-parsechangelog -l packaging/debian/changelog -STimestamp) +%F)

# Where `make install` puts man pages and completions. zsh looks in site-functions under
# /usr/local and in vendor-completions (Debian's directory for packages) under /usr.
MANDIR      = $(PREFIX)/share/man
BASHCOMPDIR = $(PREFIX)/share/bash-completion/completions
ZSHCOMPDIR  = $(PREFIX)/share/zsh/$(if $(filter /usr,$(PREFIX)),vendor-completions,site-functions)
FISHCOMPDIR = $(PREFIX)/share/fish/vendor_completions.d
# The pages written by hand (the CLI's, one per command, are generated).
HAND_PAGES  = packaging/man/keyringrs-secret-service.1 packaging/man/pam_keyringrs.8

# Needed to build the .deb: dpkg-dev (dpkg-shlibdeps, dpkg-gencontrol, dpkg-parsechangelog),
# binutils (strip), pip for the wheel, groff to check the man pages.
PACKAGING_PACKAGES    = dpkg-dev binutils python3-pip groff-base
# Needed by package-tests: lintian, man (man -w), the PAM test driver (gcc, libpam headers),
# pam-auth-update, useradd/chpasswd.
PACKAGE_TEST_PACKAGES = lintian man-db gcc libc6-dev libpam0g-dev libpam-runtime passwd

.PHONY: man completions packaging-deps packaging-gen install-extras uninstall deb packaging-wheel \
        package-tests

packaging-deps:
	$(call apt_install,$(PACKAGING_PACKAGES))

# The CLI's pages and completions come from its clap definition (xtask-gen); the hand-written
# pages get the version and date. Every page must render without a groff warning.
packaging-gen: packaging-deps
	rm -rf $(PKG_GEN)
	$(CARGO) run --release --locked -q -p keyringrs-gen -- $(PKG_GEN)
	for page in $(HAND_PAGES); do \
	  sed -e 's|@VERSION@|$(VERSION)|' -e 's|@DATE@|$(PKG_DATE)|' $$page > $(PKG_GEN)/man/$$(basename $$page); \
	done
	@for page in $(PKG_GEN)/man/*; do \
	  warnings=$$(groff -ww -man -Tutf8 $$page 2>&1 >/dev/null); \
	  if [ -n "$$warnings" ]; then echo "$$page: $$warnings" >&2; exit 1; fi; \
	done

man completions: packaging-gen

install-extras: packaging-gen
	for page in $(PKG_GEN)/man/*.[18]; do \
	  install -D -m 0644 $$page $(DESTDIR)$(MANDIR)/man$${page##*.}/$$(basename $$page); \
	done
	install -D -m 0644 $(PKG_GEN)/completions/keyringrs.bash $(DESTDIR)$(BASHCOMPDIR)/keyringrs
	install -D -m 0644 $(PKG_GEN)/completions/_keyringrs $(DESTDIR)$(ZSHCOMPDIR)/_keyringrs
	install -D -m 0644 $(PKG_GEN)/completions/keyringrs.fish $(DESTDIR)$(FISHCOMPDIR)/keyringrs.fish

# Everything `make install` (with install-extras) installs, in reverse. pam-auth-update takes
# the profile out of /etc/pam.d/common-* first, while the module still exists, so every PAM
# stack keeps working. If the module and profile belong to the Debian package (installed over
# by `make install`), they are the package's to remove: left alone. The generated pages are
# named keyringrs-<command>[-<subcommand>].1: the glob also catches those of commands that an
# older version had.
uninstall:
	@if [ -z "$(DESTDIR)" ] && dpkg-query -S $(PAMDIR)/pam_keyringrs.so >/dev/null 2>&1; then \
	  echo "uninstall: $(PAMDIR)/pam_keyringrs.so belongs to the keyringrs package: left to apt remove keyringrs"; \
	else \
	  if [ -z "$(DESTDIR)" ] && [ -e $(PAMCONFIGS)/keyringrs ] && command -v pam-auth-update >/dev/null; then \
	    echo "pam-auth-update --package --remove keyringrs"; \
	    DEBIAN_FRONTEND=noninteractive pam-auth-update --package --remove keyringrs || exit 1; \
	  fi; \
	  echo "rm -f $(DESTDIR)$(PAMDIR)/pam_keyringrs.so $(DESTDIR)$(PAMCONFIGS)/keyringrs"; \
	  rm -f $(DESTDIR)$(PAMDIR)/pam_keyringrs.so $(DESTDIR)$(PAMCONFIGS)/keyringrs; \
	fi
	rm -f $(BINDIR)/keyringrs $(BINDIR)/keyringrs-secret-service
	rm -f $(DESTDIR)$(LIBDIR)/libkeyringrs.so.0 $(DESTDIR)$(LIBDIR)/libkeyringrs.so \
	      $(DESTDIR)$(LIBDIR)/pkgconfig/keyringrs.pc $(DESTDIR)$(INCLUDEDIR)/keyringrs.h
	if [ -z "$(DESTDIR)" ]; then ldconfig; fi
	/usr/bin/python3 packaging/uninstall-python.py "$(DESTDIR)" "$(PREFIX)"
	rm -f $(DESTDIR)$(PREFIX)/share/dbus-1/services/org.freedesktop.secrets.service \
	      $(DESTDIR)$(PREFIX)/lib/systemd/user/keyringrs-secret-service.service \
	      $(DESTDIR)$(PREFIX)/share/doc/keyringrs/portals.conf
	-rmdir $(DESTDIR)$(PREFIX)/share/doc/keyringrs 2>/dev/null
	@if [ -z "$(DESTDIR)" ] && dpkg-query -S $(PORTALDIR)/keyringrs.portal >/dev/null 2>&1; then \
	  echo "uninstall: $(PORTALDIR)/keyringrs.portal belongs to the keyringrs package: left to apt remove keyringrs"; \
	else \
	  echo "rm -f $(DESTDIR)$(PORTALDIR)/keyringrs.portal"; rm -f $(DESTDIR)$(PORTALDIR)/keyringrs.portal; \
	fi
	rm -f $(DESTDIR)$(MANDIR)/man1/keyringrs.1 $(DESTDIR)$(MANDIR)/man1/keyringrs-*.1 \
	      $(DESTDIR)$(MANDIR)/man8/pam_keyringrs.8
	rm -f $(DESTDIR)$(BASHCOMPDIR)/keyringrs $(DESTDIR)$(ZSHCOMPDIR)/_keyringrs \
	      $(DESTDIR)$(FISHCOMPDIR)/keyringrs.fish

# The Python package as a wheel (pip builds it with maturin from PyPI), into cargo's target dir.
packaging-wheel: packaging-deps
	rm -rf $(PKG_WHEEL)
	PATH=$(dir $(CARGO)):$$PATH CARGO_TARGET_DIR=$(TARGET) \
	  /usr/bin/python3 -m pip wheel -q --no-deps -w $(PKG_WHEEL) ./python

deb: deps packaging-deps build packaging-gen packaging-wheel
	packaging/build-deb.sh $(TARGET) $(PKG_GEN) $(PKG_WHEEL) $(PKG_OUT) $(MULTIARCH)

# As root: lintian (no errors), then the package on this machine: install, enable the profile,
# log in through a stock stack, remove, log in again, /etc/pam.d byte-identical
# (packaging/tests/package-tests.sh). Also `make install`/`make uninstall` into a DESTDIR.
# The make program, named without $(MAKE) in the recipe: a line holding $(MAKE) runs even under
# `make -n`, and this one is a script, not a sub-make that would honour -n.
MAKE_PROGRAM := $(MAKE)
package-tests: deb
	$(call apt_install,$(PACKAGE_TEST_PACKAGES))
	packaging/tests/package-tests.sh $(DEB_FILE) $(TARGET)
	packaging/tests/uninstall-test.sh "$(MAKE_PROGRAM)" $(TARGET)
