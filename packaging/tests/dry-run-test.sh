#!/bin/bash
# `make -n` prints commands and runs none: every program started under `make -n TARGETS` (strace
# -f, execve) must be make itself, a shell for a $(shell ...) at parse time, or one of the
# read-only queries the Makefile makes while parsing. A recipe line that runs anyway (a line
# holding $(MAKE) is executed under -n) shows up as its program. Run by `make test`.
#
#   dry-run-test.sh SRC TARGET...
set -euo pipefail
src=$1; shift
trace=$(mktemp); out=$(mktemp)
trap 'rm -f "$trace" "$out"' EXIT

# The parse-time queries of Makefile and packaging/package.mk (version, architecture, pkg-config).
allowed='^(/usr/bin/make|/bin/sh|/usr/bin/sed|/usr/bin/head|/usr/bin/date|/usr/bin/dpkg|/usr/bin/dpkg-parsechangelog|/usr/bin/pkg-config|/usr/bin/gcc)$'
for t in "$@"; do
    strace -f -qq -e trace=execve -o "$trace" make --no-print-directory -n -C "$src" "$t" > "$out" 2>&1 \
        || { cat "$out"; echo "dry-run-test: FAIL: make -n $t exited non-zero" >&2; exit 1; }
    ran=$(grep -o 'execve("[^"]*"' "$trace" | sed 's/^execve("//; s/"$//' | sort -u | grep -Ev "$allowed" || true)
    if [ -n "$ran" ]; then
        echo "dry-run-test: FAIL: make -n $t ran:" >&2
        echo "$ran" | sed 's/^/  /' >&2
        grep -F -f <(echo "$ran") "$trace" | head -5 >&2
        exit 1
    fi
    echo "dry-run-test: make -n $t: $(wc -l < "$out") commands printed, none run"
done
