# keyringrs: build, install and test. The whole set-up on a fresh Debian 12 machine is
#   sudo make install     (system packages via apt, release build, install)
#   make test             (test-only packages, then every test)
# Each part adds its packages to the lists below; nothing is assumed to be installed by hand.

PREFIX    ?= /usr/local
DESTDIR   ?=
CARGO     ?= $(shell command -v cargo 2>/dev/null || echo $(HOME)/.cargo/bin/cargo)
BINDIR     = $(DESTDIR)$(PREFIX)/bin
# PAM modules and pam-auth-update profiles go where libpam and pam-auth-update look, whatever
# PREFIX is.
MULTIARCH ?= $(shell gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
PAMDIR    ?= /lib/$(MULTIARCH)/security
PAMCONFIGS = /usr/share/pam-configs
# xdg-desktop-portal reads backends from its own datadir only, whatever PREFIX is.
PORTALDIR  = /usr/share/xdg-desktop-portal/portals
LIBDIR     = $(PREFIX)/lib
INCLUDEDIR = $(PREFIX)/include
VERSION    = $(shell sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)
# Where cargo builds (honours CARGO_TARGET_DIR).
TARGET    ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),$(CURDIR)/target)

# Needed to build and run.
SYSTEM_PACKAGES = gcc pkg-config libc6-dev
# The PAM module links libpam (and the PAM tests build a small libpam application).
SYSTEM_PACKAGES += libpam0g-dev
# The Python package is installed for Debian's python3 with its pip (PEP 668: into /usr/local,
# which is Debian's own default for a root pip, so no --prefix for PREFIX=/usr/local).
SYSTEM_PACKAGES += python3 python3-pip python3-venv
# The TPM2 keyslot (tpm2/): tss-esapi links Debian's tpm2-tss (libtss2-esys, -tctildr, -mu).
SYSTEM_PACKAGES += libtss2-dev
# Needed only by the tests.
TEST_PACKAGES   = keyutils python3-nacl
# The Secret Service tests: a private bus, libsecret's secret-tool, a venv for secretstorage/keyring.
TEST_PACKAGES  += dbus-daemon libsecret-tools python3-venv
# The import tests and the PAM first-login import: a real gnome-keyring-daemon writes the login
# keyrings (dbus-x11 first, so apt does not take dbus-user-session and libpam-systemd for its
# session bus), python3-dbus drives its ChangeWithMasterPassword.
TEST_PACKAGES  += dbus-x11 gnome-keyring python3-dbus
# tests/sshd.rs runs an OpenSSH sshd of its own, driven by sshpass; installed by sshd-test-deps so
# that the package never starts (or enables) the machine's own sshd.
SSHD_TEST_PACKAGES = openssh-server sshpass
TEST_PACKAGES  += $(SSHD_TEST_PACKAGES)
# The unlock prompt's desktop tests (secret-service/tests/desktop): an X server, the real dialogs
# (gcr's gcr-prompter, pinentry-gtk-2, -gnome3, -tty, -curses), xdotool and tmux to type into
# them, xwd and netpbm for their screenshots, libsecret's GObject API for Chromium's calls.
PROMPT_TEST_PACKAGES = xvfb xauth xdotool x11-apps netpbm gcr pinentry-gtk2 pinentry-gnome3 \
                       pinentry-tty pinentry-curses tmux gir1.2-secret-1 python3-gi
TEST_PACKAGES  += $(PROMPT_TEST_PACKAGES)
# The Secret portal's tests (secret-service/tests/portal): the real xdg-desktop-portal frontend,
# a Flatpak-style sandbox (bubblewrap, and xdg-dbus-proxy as flatpak runs it) for Debian's
# libsecret inside it.
PORTAL_TEST_PACKAGES = xdg-desktop-portal bubblewrap xdg-dbus-proxy libsecret-tools gir1.2-secret-1 \
                       python3-gi
TEST_PACKAGES  += $(PORTAL_TEST_PACKAGES)
# tests/network_home.rs mounts one store twice with sshfs (FUSE) through that sshd: a network home.
TEST_PACKAGES  += sshfs
# The TPM2 keyslot's tests (tpm2/tests, tests/tpm2.rs): swtpm as the TPM over its TCP TCTI, and
# tpm2-tools to change its PCRs from outside.
TEST_PACKAGES  += swtpm swtpm-tools tpm2-tools
# `make dry-run-test` watches `make -n` with strace: a dry run must start nothing.
TEST_PACKAGES  += strace
# Needed only by `make bench` (and its quick mode in `make test`): the peers it measures
# (gnome-keyring over D-Bus, keyctl, secret-tool), libdbus for the in-process D-Bus client, GNU time.
BENCH_PACKAGES  = keyutils gnome-keyring dbus-daemon dbus-x11 libsecret-tools libdbus-1-dev pkg-config time \
                  swtpm swtpm-tools tpm2-tools
# The in-process gnome-keyring client is built only where libdbus-1-dev is installed.
BENCH_FEATURES  = $(shell pkg-config --exists dbus-1 2>/dev/null && echo --features keyringrs-bench/secret-service)

# Install the packages of $(1) that are missing (apt-get update only when something is), never
# their Recommends: gnome-keyring's would bring libpam-gnome-keyring into /etc/pam.d.
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi
endef

# keyringrs.pc for libdir $(1) and includedir $(2), on stdout.
define pkgconfig
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(1)|' -e 's|@INCLUDEDIR@|$(2)|' \
	    -e 's|@VERSION@|$(VERSION)|' capi/keyringrs.pc.in
endef

.PHONY: all build deps test-deps install test dry-run-test stress vm-deps vm-check vm-test lint unit-tests format-check bench-deps bench bench-quick \
        secret-service-tests prompt-tests portal-tests python-tests py-package capi-header capi-header-check c-example

all: build

deps:
	$(call apt_install,$(SYSTEM_PACKAGES))

test-deps: deps sshd-test-deps
	$(call apt_install,$(TEST_PACKAGES))

# Installs SSHD_TEST_PACKAGES with a policy-rc.d that forbids starting services (exit 101), removed
# afterwards on every path, and only if this target created it (Docker images ship their own).
sshd-test-deps: deps
	@missing=""; for p in $(SSHD_TEST_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing (services not started)"; created=""; \
	  if [ ! -e /usr/sbin/policy-rc.d ]; then \
	    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && created=1; \
	  fi; \
	  trap 'if [ -n "$$created" ]; then rm -f /usr/sbin/policy-rc.d; fi' EXIT; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$missing; \
	fi

build:
	$(CARGO) build --release --workspace --locked

install: deps build
	install -D -m 0755 $(TARGET)/release/keyringrs $(BINDIR)/keyringrs
	install -D -m 0644 $(TARGET)/release/libpam_keyringrs.so $(DESTDIR)$(PAMDIR)/pam_keyringrs.so
	install -D -m 0644 etc/pam-configs/keyringrs $(DESTDIR)$(PAMCONFIGS)/keyringrs
	install -D -m 0644 $(TARGET)/release/libkeyringrs.so $(DESTDIR)$(LIBDIR)/libkeyringrs.so.0
	ln -sf libkeyringrs.so.0 $(DESTDIR)$(LIBDIR)/libkeyringrs.so
	install -D -m 0644 capi/include/keyringrs.h $(DESTDIR)$(INCLUDEDIR)/keyringrs.h
	$(call pkgconfig,$(LIBDIR),$(INCLUDEDIR)) | install -D -m 0644 /dev/stdin $(DESTDIR)$(LIBDIR)/pkgconfig/keyringrs.pc
	if [ -z "$(DESTDIR)" ]; then ldconfig; fi
	/usr/bin/python3 -m pip install -q --break-system-packages --no-warn-script-location \
	  $(if $(DESTDIR),--root $(DESTDIR)) $(if $(filter /usr/local,$(PREFIX)),,--prefix $(PREFIX)) ./python
	install -D -m 0755 $(TARGET)/release/keyringrs-secret-service $(BINDIR)/keyringrs-secret-service
	sed 's|/usr/local/bin/|$(PREFIX)/bin/|' etc/dbus-1/services/org.freedesktop.secrets.service \
	  | install -D -m 0644 /dev/stdin $(DESTDIR)$(PREFIX)/share/dbus-1/services/org.freedesktop.secrets.service
	sed 's|/usr/local/bin/|$(PREFIX)/bin/|' etc/systemd/user/keyringrs-secret-service.service \
	  | install -D -m 0644 /dev/stdin $(DESTDIR)$(PREFIX)/lib/systemd/user/keyringrs-secret-service.service
	install -D -m 0644 etc/xdg-desktop-portal/portals/keyringrs.portal $(DESTDIR)$(PORTALDIR)/keyringrs.portal
	install -D -m 0644 etc/xdg-desktop-portal/portals.conf $(DESTDIR)$(PREFIX)/share/doc/keyringrs/portals.conf
	$(MAKE) --no-print-directory install-extras
	@echo "PAM module installed; enable it with: sudo pam-auth-update --enable keyringrs (docs/PAM.md)"

# The crates' module graphs: no import cycle, libkeyring's layers kept (docs/ARCHITECTURE.md);
# every test the docs name is where they say.
MODULE_GRAPH_CRATES = libkeyring/src import/src cli/src pam_keyringrs/src secret-service/src capi/src python/src bench/src tests/src rigs/src tpm2/src

lint:
	tools/module-graph.py --self-test
	tools/module-graph.py $(MODULE_GRAPH_CRATES)
	tools/doc-test-refs.py
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings
	$(CARGO) clippy -p libkeyring --features keyring-core --all-targets --locked -- -D warnings

# Binaries first: the end-to-end tests run the built `keyringrs`.
unit-tests:
	$(CARGO) build --workspace --locked
	KEYRINGRS_REQUIRE_DBUS=1 $(CARGO) test --workspace --locked -- --test-threads=4
	$(CARGO) test --locked -p libkeyring --features keyring-core --test credential_store

# docs/FORMAT.md is right if an independent reader built from it alone opens the test vector.
format-check:
	echo "correct horse battery staple" | /usr/bin/python3 docs/read-store.py tests/vectors/store-v1 \
	  | grep -q "'example.org' 'alice' 'alice@example.org' {} b'hunter2'"
	out=$$(echo "correct horse battery staple" | /usr/bin/python3 docs/read-store.py tests/vectors/store-v2) \
	  && echo "$$out" | grep -qF "'app item' {'id': '1', 'xdg:schema': 'org.example.App'} b'\x00app' 'application/octet-stream'" \
	  && echo "$$out" | grep -qF "index: 4 items, every record authenticates, every entry's tokens present"

# Benchmark: libkeyring beside the raw kernel keyring and its peers; docs/PERFORMANCE.md.
# Writes bench/results/latest.{json,md}. A failed package install only turns rows into n/a.
bench-deps: deps
	-$(call apt_install,$(BENCH_PACKAGES))

bench: bench-deps py-package
	$(CARGO) build --release --locked -p keyringrs-cli -p pam_keyringrs -p keyringrs-secret-service
	PYTHON=$(PY_VENV)/bin/python $(CARGO) run --release --locked -p keyringrs-bench $(BENCH_FEATURES)

# The quick mode, so the benchmark cannot rot (few entries, few samples; results not kept).
bench-quick: bench-deps py-package
	$(CARGO) build --locked -p keyringrs-cli -p pam_keyringrs -p keyringrs-secret-service
	PYTHON=$(PY_VENV)/bin/python $(CARGO) run --locked -p keyringrs-bench $(BENCH_FEATURES) -- --quick

# Secret Service conformance: python-keyring's BackendBasicTests and secretstorage against the
# daemon on a private bus, in a session keyring of their own; then the 8 x 500 load test's numbers.
SS_VENV = target/ss-venv
$(SS_VENV)/bin/pytest: | test-deps
	/usr/bin/python3 -m venv $(SS_VENV)
	$(SS_VENV)/bin/pip install -q 'secretstorage>=3.3' 'keyring>=25' 'pytest>=8'

secret-service-tests: test-deps $(SS_VENV)/bin/pytest
	$(CARGO) build --locked -p keyringrs-cli -p keyringrs-secret-service
	KEYRINGRS_TARGET=$${CARGO_TARGET_DIR:-$(CURDIR)/target}/debug keyctl session - \
	  $(SS_VENV)/bin/pytest -v -p no:cacheprovider secret-service/tests/python
	KEYRINGRS_REQUIRE_DBUS=1 $(CARGO) test --locked -p keyringrs-secret-service --test secret_service \
	  load_8_clients -- --nocapture

# The unlock prompt through each real dialog under Xvfb and in tmux, typed into as a person
# would; screenshots and daemon logs in $(TARGET)/desktop (docs/TESTING.md).
prompt-tests: test-deps $(SS_VENV)/bin/pytest
	$(CARGO) build --locked -p keyringrs-cli -p keyringrs-secret-service
	KEYRINGRS_TARGET=$${CARGO_TARGET_DIR:-$(CURDIR)/target}/debug KEYRINGRS_DESKTOP_OUT=$(TARGET)/desktop \
	  keyctl session - \
	  $(SS_VENV)/bin/pytest -v -p no:cacheprovider secret-service/tests/desktop

# The Secret portal: xdg-desktop-portal with our backend (and with gnome-keyring's, then the
# switch), called by libsecret in a Flatpak-style sandbox (docs/TESTING.md).
portal-tests: test-deps $(SS_VENV)/bin/pytest
	$(CARGO) build --locked -p keyringrs-cli -p keyringrs-secret-service
	KEYRINGRS_TARGET=$${CARGO_TARGET_DIR:-$(CURDIR)/target}/debug keyctl session - \
	  $(SS_VENV)/bin/pytest -v -s -p no:cacheprovider secret-service/tests/portal

# The upstream Secret Service test suites, unmodified, from their sdists (cached in $(UPSTREAM)):
# SecretStorage's tests/ and python-keyring's tests/backends/test_SecretService.py, against
# gnome-keyring-daemon and against keyringrs-secret-service (debug build), each on a private bus
# in a session keyring of its own; fails when ours does not pass what gnome-keyring passes (but
# secret-service/tests/upstream/known-failures.txt, which may only shrink). gnome-keyring is
# installed without its Recommends (libpam-gnome-keyring would change /etc/pam.d), with dbus-x11
# for its session-bus dependency (dbus-user-session would bring libpam-systemd).
UPSTREAM          = $(TARGET)/upstream
UPSTREAM_SDISTS   = SecretStorage==3.5.0 keyring==25.7.0
UPSTREAM_PACKAGES = dbus-x11 gnome-keyring
UPSTREAM_SCRIPT   = secret-service/tests/upstream/upstream.py
.PHONY: upstream-secret-service-tests upstream-gnome-keyring
$(UPSTREAM)/ready: | test-deps
	rm -rf $(UPSTREAM) && mkdir -p $(UPSTREAM)
	/usr/bin/python3 -m venv $(UPSTREAM)/venv
	$(UPSTREAM)/venv/bin/pip download -q --no-binary :all: --no-deps -d $(UPSTREAM)/dl $(UPSTREAM_SDISTS)
	cd $(UPSTREAM) && for f in dl/*.tar.gz; do tar xzf $$f || exit 1; done
	$(UPSTREAM)/venv/bin/pip install -q $(UPSTREAM)/dl/*.tar.gz 'pytest>=6,!=8.1.*' pyfakefs
	touch $@

# (Our tests' own throwaway services, /etc/pam.d/krt-*, come and go meanwhile: not compared.)
PAM_D_SUMS = find /etc/pam.d -type f ! -name 'krt-*' | sort | xargs sha256sum
upstream-gnome-keyring:
	@$(PAM_D_SUMS) > $(UPSTREAM)/pam.d.before
	$(call apt_install,$(UPSTREAM_PACKAGES))
	@$(PAM_D_SUMS) | diff -u $(UPSTREAM)/pam.d.before - || \
	  { echo "installing $(UPSTREAM_PACKAGES) changed /etc/pam.d"; exit 1; }

upstream-secret-service-tests: test-deps $(UPSTREAM)/ready
	APT_CONFIG=$(CURDIR)/secret-service/tests/upstream/apt-no-recommends.conf \
	  $(MAKE) --no-print-directory upstream-gnome-keyring
	$(CARGO) build --locked -p keyringrs-cli -p keyringrs-secret-service
	rm -rf $(UPSTREAM)/results
	for p in gnome-keyring keyringrs; do \
	  UPSTREAM_SRC=$(UPSTREAM) KEYRINGRS_TARGET=$(TARGET)/debug keyctl session - \
	    $(UPSTREAM)/venv/bin/python $(UPSTREAM_SCRIPT) run $$p $(UPSTREAM)/results || exit 1; \
	done
	$(UPSTREAM)/venv/bin/python $(UPSTREAM_SCRIPT) compare $(UPSTREAM)/results \
	  secret-service/tests/upstream/known-failures.txt

# The C header is generated by cbindgen (installed here, not system-wide) and committed;
# capi-header-check fails when the code and the committed header disagree.
CBINDGEN = $(TARGET)/tools/bin/cbindgen
$(CBINDGEN):
	$(CARGO) install cbindgen --version 0.29.4 --locked --root $(TARGET)/tools

capi-header: $(CBINDGEN)
	$(CBINDGEN) --config capi/cbindgen.toml --crate keyringrs-capi --output capi/include/keyringrs.h capi

capi-header-check: $(CBINDGEN)
	$(CBINDGEN) --config capi/cbindgen.toml --crate keyringrs-capi --output $(TARGET)/keyringrs.h capi
	@diff -u capi/include/keyringrs.h $(TARGET)/keyringrs.h || \
	  { echo "capi/include/keyringrs.h drifted from capi/src/lib.rs: run make capi-header"; exit 1; }

# The C example, built with pkg-config against the build tree's library and run on a real store.
c-example: test-deps
	$(CARGO) build --locked -p keyringrs-capi -p keyringrs-cli
	ln -sf libkeyringrs.so $(TARGET)/debug/libkeyringrs.so.0
	mkdir -p $(TARGET)/pkgconfig
	$(call pkgconfig,$(TARGET)/debug,$(CURDIR)/capi/include) > $(TARGET)/pkgconfig/keyringrs.pc
	examples/c/check.sh $(TARGET)/pkgconfig $(TARGET)/debug/keyringrs $(TARGET)/c-example

# The Python package built from source by pip (maturin from PyPI) into a venv, then its tests:
# python-keyring's conformance suite, the API, the kernel wrapper. In a session keyring of their own.
PY_VENV = $(TARGET)/py-venv
$(PY_VENV)/bin/pytest: | test-deps
	/usr/bin/python3 -m venv $(PY_VENV)
	$(PY_VENV)/bin/pip install -q 'keyring>=25' 'pytest>=8'

# The package itself, rebuilt from ./python into the venv (for the tests and the benchmark).
py-package: $(PY_VENV)/bin/pytest
	$(PY_VENV)/bin/pip install -q --force-reinstall --no-deps ./python

python-tests: test-deps py-package
	$(CARGO) build --locked -p keyringrs-cli
	cd python/tests && KEYRINGRS_TARGET=$(TARGET)/debug keyctl session - \
	  $(PY_VENV)/bin/pytest -v -p no:cacheprovider -rs .

# Packaging: make deb, make uninstall, man pages and completions (packaging/package.mk).
include packaging/package.mk

# Every race and concurrency test N times (default 50), each one's failure count
# (tests/stress/stress.py; `make stress N=5 ONLY=killed` for a quick look at some).
N    ?= 50
ONLY ?=
stress: test-deps
	tests/stress/stress.py $(CARGO) $(TARGET) $(N) $(ONLY)

# The VM test (docs/TESTING.md): a Debian 12 image from packages (vm/image.sh, cached in
# $(VM_CACHE)), booted under qemu (TCG here) with this project's .deb installed inside by apt,
# the logins of docs/PAM.md run through real programs (agetty + login, lightdm, greetd, sshd) and
# checked from the host (vm/test.py). `make vm-test VM_ONLY=2,4` runs some scenarios, VM_KEEP=1
# leaves the VM running at the end. Report and logs: $(TARGET)/vm. qemu-utils comes from bookworm
# itself: a machine that has bookworm-backports' qemu-utils cannot install qemu-system-x86 beside it.
VM_CACHE ?= /var/cache/keyringrs-vm
VM_ONLY  ?=
VM_KEEP  ?=
VM_PACKAGES = qemu-system-x86 qemu-utils/bookworm mmdebstrap e2fsprogs sshpass openssh-client socat \
              swtpm swtpm-tools
vm-deps:
	@command -v qemu-system-x86_64 >/dev/null && command -v qemu-img >/dev/null && \
	  command -v mmdebstrap >/dev/null && command -v sshpass >/dev/null && command -v ssh >/dev/null && \
	  command -v socat >/dev/null && command -v swtpm >/dev/null || { \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	  --no-install-recommends --allow-downgrades $(VM_PACKAGES); }

vm-check: vm-deps
	mkdir -p $(TARGET)/vm && cd $(TARGET)/vm && $(CURDIR)/vm/vm.py check "$$($(CURDIR)/vm/image.sh $(VM_CACHE))"

vm-test: vm-deps deb
	mkdir -p $(TARGET)/vm
	vm/test.py "$$(vm/image.sh $(VM_CACHE))" $(DEB_FILE) $(TARGET)/vm \
	  $(if $(VM_ONLY),--only $(VM_ONLY)) $(if $(VM_KEEP),--keep)

# `make -n` prints commands and runs none (packaging/tests/dry-run-test.sh).
dry-run-test: test-deps
	packaging/tests/dry-run-test.sh $(CURDIR) test install uninstall deb stress

test: test-deps dry-run-test upstream-secret-service-tests lint capi-header-check c-example unit-tests python-tests format-check bench-quick secret-service-tests \
      prompt-tests portal-tests package-tests vm-test
