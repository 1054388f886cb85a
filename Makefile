# keyringrs: build, install and test. The whole set-up on a fresh Debian 12 machine is
#   sudo make install     (system packages via apt, release build, install)
#   make test             (test-only packages, then every test)
# Each part adds its packages to the lists below; nothing is assumed to be installed by hand.

PREFIX    ?= /usr/local
DESTDIR   ?=
CARGO     ?= $(shell command -v cargo 2>/dev/null || echo $(HOME)/.cargo/bin/cargo)
BINDIR     = $(DESTDIR)$(PREFIX)/bin

# Needed to build and run.
SYSTEM_PACKAGES = gcc pkg-config libc6-dev
# Needed only by the tests.
TEST_PACKAGES   = keyutils python3-nacl

# Install the packages of $(1) that are missing (apt-get update only when something is).
define apt_install
	@missing=""; for p in $(1); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing:$$missing"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	fi
endef

.PHONY: all build deps test-deps install test lint unit-tests format-check

all: build

deps:
	$(call apt_install,$(SYSTEM_PACKAGES))

test-deps: deps
	$(call apt_install,$(TEST_PACKAGES))

build:
	$(CARGO) build --release --workspace --locked

install: deps build
	install -D -m 0755 target/release/keyringrs $(BINDIR)/keyringrs

lint:
	$(CARGO) fmt --all -- --check
	$(CARGO) clippy --workspace --all-targets --locked -- -D warnings

# Binaries first: the end-to-end tests run the built `keyringrs`.
unit-tests:
	$(CARGO) build --workspace --locked
	$(CARGO) test --workspace --locked -- --test-threads=4

# docs/FORMAT.md is right if an independent reader built from it alone opens the test vector.
format-check:
	echo "correct horse battery staple" | /usr/bin/python3 docs/read-store.py tests/vectors/store-v1 \
	  | grep -q "'example.org' 'alice' 'alice@example.org' {} b'hunter2'"

test: test-deps lint unit-tests format-check
