# twofactor — build, test and install.
#
#   make                 release build: daemon and CLI, then the PAM module on
#                        its own (so it links no zbus/tokio), and the man pages
#   make test            check and install what the tests need (scripts/need,
#                        scripts/deps), build everything, then run every test
#                        (what CI runs; as root this includes the Debian
#                        package test and one quick run of the benchmark)
#   make deb             Debian packages (dpkg-buildpackage -us -uc -b) into target/deb
#   make demo            try it locally without touching /etc or PAM (scripts/demo;
#                        first installs what it needs, scripts/need)
#   make lint            cargo fmt --check + clippy -D warnings + the daemon's
#                        layers (scripts/check-layers)
#   make bench           (as root) login benchmark against google-authenticator-libpam
#                        (bench/run; BENCH_ARGS="--quick" or "--users 500 --rounds 3")
#   make fuzz            each fuzz target of fuzz/ for a few seconds (scripts/fuzz-smoke;
#                        needs nightly, installs cargo-fuzz; FUZZ_SECONDS=60 for longer)
#   sudo make install    install the release build (run `make` first, as yourself)
#   sudo make uninstall  remove what install put there (keeps config and state)
#
# Install locations (override on the command line, e.g. `make install
# DESTDIR=/tmp/stage PREFIX=/usr/local`):
#   PREFIX=/usr           binaries under $(PREFIX)/sbin and $(PREFIX)/bin,
#                         D-Bus files under $(PREFIX)/share/dbus-1
#   LIBEXECDIR            $(PREFIX)/libexec: twofactor/twofactor-key, the
#                         security-key helper the PAM module runs
#   SYSCONFDIR=/etc       twofactor/twofactord.toml and pam.d/twofactor-reauth
#   LOCALSTATEDIR=/var    lib/twofactor (the database, 0700)
#   PAMDIR                where libpam looks for modules; not under PREFIX,
#                         because libpam only looks in its own directory
#                         (Debian: /lib/<multiarch>/security)
#   SYSTEMDUNITDIR=/lib/systemd/system
#   DESTDIR               staging root, prepended to every path (packaging)

SHELL := /bin/sh

CARGO ?= cargo
# --locked: build exactly the dependency versions in Cargo.lock.
CARGO_LOCKED := $(if $(wildcard Cargo.lock),--locked,)
# Where cargo puts its output; follows CARGO_TARGET_DIR like cargo does.
TARGET_DIR ?= $(if $(CARGO_TARGET_DIR),$(CARGO_TARGET_DIR),target)
RELEASE_DIR := $(TARGET_DIR)/release

PREFIX ?= /usr
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
LIBEXECDIR ?= $(PREFIX)/libexec
DATADIR ?= $(PREFIX)/share
DOCDIR ?= $(DATADIR)/doc/twofactor
DBUSSYSTEMDIR ?= $(DATADIR)/dbus-1/system.d
DBUSSERVICEDIR ?= $(DATADIR)/dbus-1/system-services
SYSCONFDIR ?= /etc
LOCALSTATEDIR ?= /var
STATEDIR ?= $(LOCALSTATEDIR)/lib/twofactor
SYSTEMDUNITDIR ?= /lib/systemd/system
MULTIARCH ?= $(shell dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch 2>/dev/null)
PAMDIR ?= $(if $(MULTIARCH),/lib/$(MULTIARCH)/security,/lib/security)

INSTALL ?= install

# Built files and where they go.
DAEMON_BIN := $(RELEASE_DIR)/twofactord
CTL_BIN := $(RELEASE_DIR)/twofactorctl
PAM_SO := $(RELEASE_DIR)/libpam_twofactor.so
KEY_HELPER := $(RELEASE_DIR)/twofactor-key
DOCS := README.md $(wildcard docs/*.md)

.PHONY: all build module key-helper man check-module need-test need-demo test deb deb-test lint demo bench bench-check fuzz install uninstall clean help

all: build

MANDIR ?= $(DATADIR)/man
BASHCOMPDIR ?= $(DATADIR)/bash-completion/completions
ZSHCOMPDIR ?= $(DATADIR)/zsh/vendor-completions
MAN_OUT := $(TARGET_DIR)/man

build: module key-helper man
	$(CARGO) build --release -p twofactord -p twofactorctl $(CARGO_LOCKED)

# The module on its own: built together with the workspace, proto's zbus
# feature would be on for it too and the .so that sshd loads would carry
# zbus and tokio.
module:
	$(CARGO) build --release -p pam-twofactor $(CARGO_LOCKED)
	scripts/check-module $(PAM_SO)

# The security-key helper the module runs (libfido2 stays out of the
# module): on its own too, so that no feature another member turns on (the
# tests' test-transport) reaches the shipped binary; checked.
key-helper: module
	$(CARGO) build --release -p twofactor-key $(CARGO_LOCKED)
	scripts/check-module $(PAM_SO) $(KEY_HELPER)

# Man pages: twofactorctl(1) and twofactord(8) from their clap definitions,
# pam_twofactor(8) and twofactord.toml(5) from scdoc sources; and the shell
# completions of twofactorctl.
man:
	$(CARGO) run --quiet --release -p twofactor-gendocs $(CARGO_LOCKED) -- $(MAN_OUT) >/dev/null
	for f in docs/man/*.scd; do \
	  scdoc < "$$f" > $(MAN_OUT)/$$(basename "$$f" .scd) || exit 1; \
	done

check-module:
	scripts/check-module $(PAM_SO) $(KEY_HELPER)

deb:
	scripts/build-deb

# The packages installed on this machine for real (root): builds them, then
# runs the one ignored test that installs, enables, logs in, removes,
# upgrades and purges. As any other user it only says it did not run.
deb-test:
	@if [ "$$(id -u)" -ne 0 ]; then \
	  if [ -n "$(TWOFACTOR_REQUIRE_ROOT)" ]; then echo "deb-test: needs root" >&2; exit 1; fi; \
	  echo "deb-test: skipped (needs root: it installs the packages)"; \
	else \
	  scripts/build-deb && \
	  $(CARGO) test -p twofactor-tests --test deb $(CARGO_LOCKED) -- --ignored --test-threads=1; \
	fi

# The behaviour suites run a second time against PostgreSQL (one suite, two
# stores): every test daemon gets a fresh database on one private server
# per test binary. The suites about the SQLite file itself (at_rest,
# robustness) and the slow sshd ones run once, against SQLite.
POSTGRESQL_SUITES := --test login --test backup_codes --test enrolment --test admin \
	--test policy --test concurrency --test email --test access --test identity --test pending

# The integration tests run the built binaries (twofactord, twofactorctl,
# pam_twofactor.so, pam-harness) from target/debug, so build all of them
# first; check that the shipped config is one the daemon accepts; run every
# test; run each fuzz target for a few seconds (make fuzz); and last run
# the demo on its own, so the README's first command keeps working.
# What a target needs, before anything is built: the Debian packages of
# scripts/deps (installed when missing, as root or through sudo; else the
# exact command is printed and make stops), and cargo.
need-test:
	scripts/need --nightly bootstrap build demo test package

need-demo:
	scripts/need bootstrap build demo

test: need-test
	$(CARGO) build --workspace --all-targets $(CARGO_LOCKED)
	$(TARGET_DIR)/debug/twofactord --check-config --config config/twofactord.toml
	$(CARGO) test --workspace $(CARGO_LOCKED)
	TWOFACTOR_TEST_STORE=postgresql $(CARGO) test -p twofactor-tests $(CARGO_LOCKED) $(POSTGRESQL_SUITES)
	$(MAKE) fuzz
	scripts/demo --non-interactive </dev/null
	$(MAKE) deb-test
	$(MAKE) bench-check

lint:
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets $(CARGO_LOCKED) -- -D warnings
	scripts/check-layers daemon/src

demo: need-demo
	scripts/demo

# The side-by-side login benchmark (docs/performance.md): the module on its
# own as in `build`, then the daemon, the CLI and the driver pam-bench; then
# bench/run, which needs root (it creates and removes test users).
BENCH_ARGS ?=
bench: module
	$(CARGO) build --release -p twofactord -p twofactorctl -p twofactor-bench $(CARGO_LOCKED)
	CARGO_TARGET_DIR=$(TARGET_DIR) bench/run $(BENCH_ARGS)

# The benchmark once in its quick mode (80 users, a few logins per run), so
# that it keeps working: it fails only if a login fails or the set-up does,
# never on a time. Root only, like the benchmark.
bench-check:
	@if [ "$$(id -u)" -ne 0 ]; then \
	  if [ -n "$(TWOFACTOR_REQUIRE_ROOT)" ]; then echo "bench-check: needs root" >&2; exit 1; fi; \
	  echo "bench-check: skipped (needs root: it creates users)"; \
	else \
	  $(MAKE) bench BENCH_ARGS=--quick; \
	fi

# The fuzz targets (fuzz/: the PAM module's D-Bus reader and bus
# connection), each for FUZZ_SECONDS (5) from its seeds; fails on a crash.
# Nightly only (sanitizers); its own target directory under TARGET_DIR.
fuzz:
	FUZZ_TARGET_DIR=$(TARGET_DIR)/fuzz scripts/fuzz-smoke

help:
	@sed -n '3,19p' Makefile

# install does not run cargo: `sudo make install` usually runs as root with a
# PATH that has no cargo, and should not rebuild as root. Build first.
install:
	@for f in $(DAEMON_BIN) $(CTL_BIN) $(PAM_SO) $(KEY_HELPER) $(MAN_OUT)/twofactorctl.1 $(MAN_OUT)/pam_twofactor.8; do \
	  if [ ! -f "$$f" ]; then \
	    echo "make install: $$f is missing; run 'make' first (as yourself, not root)" >&2; \
	    exit 1; \
	  fi; \
	done
	$(INSTALL) -d -m 0755 $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(PAMDIR) \
	  $(DESTDIR)$(LIBEXECDIR)/twofactor \
	  $(DESTDIR)$(DBUSSYSTEMDIR) $(DESTDIR)$(DBUSSERVICEDIR) $(DESTDIR)$(SYSTEMDUNITDIR) \
	  $(DESTDIR)$(SYSCONFDIR)/twofactor $(DESTDIR)$(SYSCONFDIR)/pam.d $(DESTDIR)$(DOCDIR)
	$(INSTALL) -m 0755 $(DAEMON_BIN) $(DESTDIR)$(SBINDIR)/twofactord
	$(INSTALL) -m 0755 $(CTL_BIN) $(DESTDIR)$(BINDIR)/twofactorctl
	$(INSTALL) -m 0644 $(PAM_SO) $(DESTDIR)$(PAMDIR)/pam_twofactor.so
	$(INSTALL) -m 0755 $(KEY_HELPER) $(DESTDIR)$(LIBEXECDIR)/twofactor/twofactor-key
	$(INSTALL) -m 0644 config/dbus/org.twofactor.Daemon1.conf $(DESTDIR)$(DBUSSYSTEMDIR)/org.twofactor.Daemon1.conf
	sed 's|/usr/sbin/twofactord|$(SBINDIR)/twofactord|g' config/dbus/org.twofactor.Daemon1.service \
	  > $(DESTDIR)$(DBUSSERVICEDIR)/org.twofactor.Daemon1.service
	chmod 0644 $(DESTDIR)$(DBUSSERVICEDIR)/org.twofactor.Daemon1.service
	sed -e 's|/usr/sbin/twofactord|$(SBINDIR)/twofactord|g' \
	    -e 's|/usr/share/doc/twofactor|$(DOCDIR)|g' config/systemd/twofactord.service \
	  > $(DESTDIR)$(SYSTEMDUNITDIR)/twofactord.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/twofactord.service
	sed -e 's|/usr/share/doc/twofactor|$(DOCDIR)|g' config/systemd/twofactord.socket \
	  > $(DESTDIR)$(SYSTEMDUNITDIR)/twofactord.socket
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/twofactord.socket
	$(INSTALL) -m 0644 $(DOCS) $(DESTDIR)$(DOCDIR)/
	$(INSTALL) -d -m 0755 $(DESTDIR)$(MANDIR)/man1 $(DESTDIR)$(MANDIR)/man5 $(DESTDIR)$(MANDIR)/man8 \
	  $(DESTDIR)$(BASHCOMPDIR) $(DESTDIR)$(ZSHCOMPDIR)
	$(INSTALL) -m 0644 $(MAN_OUT)/twofactorctl.1 $(DESTDIR)$(MANDIR)/man1/
	$(INSTALL) -m 0644 $(MAN_OUT)/twofactord.toml.5 $(DESTDIR)$(MANDIR)/man5/
	$(INSTALL) -m 0644 $(MAN_OUT)/twofactord.8 $(MAN_OUT)/pam_twofactor.8 $(DESTDIR)$(MANDIR)/man8/
	$(INSTALL) -m 0644 $(MAN_OUT)/twofactorctl.bash $(DESTDIR)$(BASHCOMPDIR)/twofactorctl
	$(INSTALL) -m 0644 $(MAN_OUT)/_twofactorctl $(DESTDIR)$(ZSHCOMPDIR)/_twofactorctl
# Files in SYSCONFDIR belong to the administrator once installed: never
# overwrite them (the package manager handles conffile upgrades).
	@for pair in config/twofactord.toml:$(SYSCONFDIR)/twofactor/twofactord.toml \
	             config/pam.d/twofactor-reauth:$(SYSCONFDIR)/pam.d/twofactor-reauth; do \
	  src=$${pair%%:*}; dst=$(DESTDIR)$${pair#*:}; \
	  if [ -e "$$dst" ]; then \
	    echo "keeping existing $$dst (the shipped version is $$src)"; \
	  else \
	    echo "$(INSTALL) -m 0644 $$src $$dst"; \
	    $(INSTALL) -m 0644 "$$src" "$$dst" || exit 1; \
	  fi; \
	done
	$(INSTALL) -d -m 0700 $(DESTDIR)$(STATEDIR)
	@echo
	@echo "Installed. Next: on a first installation run '$(SBINDIR)/twofactord --init' once (the key"
	@echo "file and the database), start the daemon (systemctl daemon-reload; systemctl enable --now"
	@echo "twofactord, or '$(SBINDIR)/twofactord --foreground' without systemd), reload the system bus"
	@echo "(systemctl reload dbus), then add pam_twofactor.so to a PAM service (auth AND account): see README.md."
	@echo "Keep a root shell open while you change PAM."

# uninstall keeps $(SYSCONFDIR)/twofactor (with the key file),
# $(SYSCONFDIR)/pam.d/twofactor-reauth and $(STATEDIR) (the enrolled secrets). It refuses while a PAM service still
# uses the module: libpam fails a stack whose module is missing, which would
# lock everyone out of that service. FORCE=1 overrides.
uninstall:
	@users=$$(grep -ls '^[^#]*pam_twofactor\.so' $(DESTDIR)$(SYSCONFDIR)/pam.d/* 2>/dev/null || true); \
	if [ -n "$$users" ] && [ "$(FORCE)" != 1 ]; then \
	  echo "make uninstall: these PAM services still use pam_twofactor.so:" >&2; \
	  echo "$$users" | sed 's/^/  /' >&2; \
	  echo "remove it from them first (or run with FORCE=1 to lock yourself out)" >&2; \
	  exit 1; \
	fi
	rm -f $(DESTDIR)$(SBINDIR)/twofactord $(DESTDIR)$(BINDIR)/twofactorctl \
	  $(DESTDIR)$(PAMDIR)/pam_twofactor.so \
	  $(DESTDIR)$(LIBEXECDIR)/twofactor/twofactor-key \
	  $(DESTDIR)$(DBUSSYSTEMDIR)/org.twofactor.Daemon1.conf \
	  $(DESTDIR)$(DBUSSERVICEDIR)/org.twofactor.Daemon1.service \
	  $(DESTDIR)$(SYSTEMDUNITDIR)/twofactord.service \
	  $(DESTDIR)$(SYSTEMDUNITDIR)/twofactord.socket \
	  $(DESTDIR)$(MANDIR)/man1/twofactorctl.1 $(DESTDIR)$(MANDIR)/man5/twofactord.toml.5 \
	  $(DESTDIR)$(MANDIR)/man8/twofactord.8 $(DESTDIR)$(MANDIR)/man8/pam_twofactor.8 \
	  $(DESTDIR)$(BASHCOMPDIR)/twofactorctl $(DESTDIR)$(ZSHCOMPDIR)/_twofactorctl
	rm -f $(addprefix $(DESTDIR)$(DOCDIR)/,$(notdir $(DOCS)))
	rmdir $(DESTDIR)$(DOCDIR) 2>/dev/null || true
	rmdir $(DESTDIR)$(LIBEXECDIR)/twofactor 2>/dev/null || true
	@echo "kept: $(DESTDIR)$(SYSCONFDIR)/twofactor, $(DESTDIR)$(SYSCONFDIR)/pam.d/twofactor-reauth, $(DESTDIR)$(STATEDIR)"

clean:
	$(CARGO) clean
