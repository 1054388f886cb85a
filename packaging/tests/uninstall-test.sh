#!/bin/bash
# `make uninstall` reverses `make install` (with install-extras) exactly: both into a scratch
# DESTDIR, then no file or symlink may be left. Run by `make package-tests`.
#
#   uninstall-test.sh MAKE TARGET
set -euo pipefail

make=$1 target=$2
src=$(cd "$(dirname "$0")/../.." && pwd)
dest=$(mktemp -d /tmp/keyringrs-uninstall-test.XXXXXX)
trap 'rm -rf "$dest" "$dest.log"' EXIT

run_make() {
    CARGO_TARGET_DIR=$target $make --no-print-directory -C "$src" TARGET="$target" DESTDIR="$dest" "$@"
}

for prefix in /usr/local /usr; do
    echo "uninstall-test: make install install-extras DESTDIR=$dest PREFIX=$prefix"
    run_make PREFIX=$prefix install install-extras > "$dest.log" 2>&1 || { cat "$dest.log"; exit 1; }
    installed=$(cd "$dest" && find . \( -type f -o -type l \) | sort)
    for f in "$prefix/bin/keyringrs" "$prefix/share/man/man8/pam_keyringrs.8" \
             "$prefix/share/bash-completion/completions/keyringrs" \
             /usr/share/pam-configs/keyringrs; do
        [ -e "$dest$f" ] || { echo "uninstall-test: FAIL: make install did not install $f" >&2; exit 1; }
    done
    grep -q keyringrs/__init__.py <<< "$installed" \
        || { echo "uninstall-test: FAIL: no Python package installed" >&2; exit 1; }
    echo "uninstall-test: $(wc -l <<< "$installed") files installed; make uninstall"
    run_make PREFIX=$prefix uninstall > "$dest.log" 2>&1 || { cat "$dest.log"; exit 1; }
    left=$(cd "$dest" && find . \( -type f -o -type l \) | sort)
    if [ -n "$left" ]; then
        echo "uninstall-test: FAIL: make uninstall PREFIX=$prefix left:" >&2
        echo "$left" >&2
        exit 1
    fi
    rm -rf "$dest" "$dest.log" && mkdir "$dest"
done
echo "uninstall-test: PASS"
