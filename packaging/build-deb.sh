#!/bin/bash
# Build keyringrs_<version>_<arch>.deb from a release build, with Debian's own tools
# (dpkg-shlibdeps, dpkg-gencontrol, dpkg-deb) and the files in packaging/debian/.
# Called by `make deb` (packaging/package.mk), which builds the inputs first:
#
#   build-deb.sh TARGET GENDIR WHEELDIR OUTDIR MULTIARCH
#
#   TARGET     cargo's target dir (release/ holds the binaries and libraries)
#   GENDIR     man/ and completions/ made by `make man completions`
#   WHEELDIR   the Python wheel built from ./python
#   OUTDIR     where the .deb goes (and the staging tree, OUTDIR/deb)
set -euo pipefail

target=$1 gen=$2 wheels=$3 out=$4 multiarch=$5
src=$(cd "$(dirname "$0")/.." && pwd)
deb=$src/packaging/debian
upstream=$(sed -n 's/^version = "\(.*\)"/\1/p' "$src/Cargo.toml" | head -1)
version=$(dpkg-parsechangelog -l "$deb/changelog" -SVersion)
arch=$(dpkg --print-architecture)
# Reproducible: every mtime and the man pages' dates come from the changelog entry.
SOURCE_DATE_EPOCH=$(dpkg-parsechangelog -l "$deb/changelog" -STimestamp)
export SOURCE_DATE_EPOCH

if [ "${version%-*}" != "$upstream" ]; then
    echo "build-deb: packaging/debian/changelog is at $version but Cargo.toml at $upstream:" \
         "add a changelog entry (dch -v $upstream-1)" >&2
    exit 1
fi

# dpkg-shlibdeps and dpkg-gencontrol work in a source-package-shaped directory.
work=$out/deb
root=$work/debian/keyringrs
umask 022
rm -rf "$work"
mkdir -p "$work/debian" "$root/DEBIAN"
cp "$deb/control" "$deb/changelog" "$work/debian/"

rel=$target/release
bin=$root/usr/bin
lib=$root/usr/lib/$multiarch
doc=$root/usr/share/doc/keyringrs

# Programs and libraries, stripped as dh_strip would.
install -D -m 0755 "$rel/keyringrs" "$bin/keyringrs"
install -D -m 0755 "$rel/keyringrs-secret-service" "$bin/keyringrs-secret-service"
install -D -m 0644 "$rel/libkeyringrs.so" "$lib/libkeyringrs.so.0"
ln -s libkeyringrs.so.0 "$lib/libkeyringrs.so"
install -D -m 0644 "$rel/libpam_keyringrs.so" "$root/lib/$multiarch/security/pam_keyringrs.so"
strip --remove-section=.comment --remove-section=.note "$bin/keyringrs" "$bin/keyringrs-secret-service"
strip --remove-section=.comment --remove-section=.note --strip-unneeded \
    "$lib/libkeyringrs.so.0" "$root/lib/$multiarch/security/pam_keyringrs.so"

# C development files.
install -D -m 0644 "$src/capi/include/keyringrs.h" "$root/usr/include/keyringrs.h"
mkdir -p "$lib/pkgconfig"
sed -e 's|@PREFIX@|/usr|' -e "s|@LIBDIR@|/usr/lib/$multiarch|" -e 's|@INCLUDEDIR@|/usr/include|' \
    -e "s|@VERSION@|$upstream|" "$src/capi/keyringrs.pc.in" > "$lib/pkgconfig/keyringrs.pc"
chmod 0644 "$lib/pkgconfig/keyringrs.pc"

# PAM profile, D-Bus activation and the systemd user unit (programs in /usr/bin).
install -D -m 0644 "$src/etc/pam-configs/keyringrs" "$root/usr/share/pam-configs/keyringrs"
install -D -m 0644 "$src/etc/xdg-desktop-portal/portals/keyringrs.portal" \
    "$root/usr/share/xdg-desktop-portal/portals/keyringrs.portal"
install -D -m 0644 "$src/etc/xdg-desktop-portal/portals.conf" "$doc/examples/portals.conf"
mkdir -p "$root/usr/share/dbus-1/services" "$root/usr/lib/systemd/user"
sed 's|/usr/local/bin/|/usr/bin/|' "$src/etc/dbus-1/services/org.freedesktop.secrets.service" \
    > "$root/usr/share/dbus-1/services/org.freedesktop.secrets.service"
sed 's|/usr/local/bin/|/usr/bin/|' "$src/etc/systemd/user/keyringrs-secret-service.service" \
    > "$root/usr/lib/systemd/user/keyringrs-secret-service.service"

# The Python package: the wheel unpacked for Debian's python3 (abi3, so one build for every
# python3 >= 3.10), as dh_python3 would leave it: no RECORD (dpkg owns the files), INSTALLER
# "debian".
wheel=$(ls "$wheels"/keyringrs-*.whl)
dist=$root/usr/lib/python3/dist-packages
mkdir -p "$dist"
/usr/bin/python3 - "$wheel" "$dist" <<'PY'
import sys, zipfile
wheel, dist = sys.argv[1:]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        first = name.split("/")[0]
        if first.endswith(".data"):
            sys.exit(f"build-deb: unexpected {name} in the wheel (scripts or data: install them)")
    z.extractall(dist)
PY
info=$(ls -d "$dist"/keyringrs-*.dist-info)
rm -f "$info/RECORD"
echo debian > "$info/INSTALLER"
find "$dist" -name '*.so' -exec strip --remove-section=.comment --remove-section=.note --strip-unneeded {} +
find "$dist" -type d -exec chmod 0755 {} + -o -type f -exec chmod 0644 {} +

# Man pages (gzip -9n: no name or time stamp in the gzip header) and completions.
for page in "$gen"/man/*.[18]; do
    section=${page##*.}
    install -D -m 0644 "$page" "$root/usr/share/man/man$section/$(basename "$page")"
    gzip -9n "$root/usr/share/man/man$section/$(basename "$page")"
done
install -D -m 0644 "$gen/completions/keyringrs.bash" "$root/usr/share/bash-completion/completions/keyringrs"
install -D -m 0644 "$gen/completions/_keyringrs" "$root/usr/share/zsh/vendor-completions/_keyringrs"
install -D -m 0644 "$gen/completions/keyringrs.fish" "$root/usr/share/fish/vendor_completions.d/keyringrs.fish"

# Documentation.
install -D -m 0644 "$deb/copyright" "$doc/copyright"
install -m 0644 "$deb/changelog" "$doc/changelog.Debian"
gzip -9n "$doc/changelog.Debian"

# Control area: maintainer scripts, ldconfig trigger, shlibs, then control and md5sums.
for f in preinst postinst prerm postrm; do
    install -m 0755 "$deb/$f" "$root/DEBIAN/$f"
done
install -m 0644 "$deb/triggers" "$root/DEBIAN/triggers"
sed "s|@VERSION@|$upstream|" "$deb/shlibs" > "$root/DEBIAN/shlibs"
chmod 0644 "$root/DEBIAN/shlibs"

cd "$work"
# Depends on the libraries the ELF files link (libc6 (>= the newest symbol version used),
# libpam0g, libgcc-s1); our own libkeyringrs is linked by nothing here.
dpkg-shlibdeps -Tdebian/keyringrs.substvars \
    debian/keyringrs/usr/bin/keyringrs debian/keyringrs/usr/bin/keyringrs-secret-service \
    "debian/keyringrs/usr/lib/$multiarch/libkeyringrs.so.0" \
    "debian/keyringrs/lib/$multiarch/security/pam_keyringrs.so" \
    $(find debian/keyringrs/usr/lib/python3 -name '*.so')
echo "misc:Depends=" >> debian/keyringrs.substvars
dpkg-gencontrol -pkeyringrs -Pdebian/keyringrs -Tdebian/keyringrs.substvars -fdebian/files
(cd debian/keyringrs && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | LC_ALL=C sort -z \
    | xargs -0 md5sum > DEBIAN/md5sums)
chmod 0644 debian/keyringrs/DEBIAN/md5sums debian/keyringrs/DEBIAN/control

file=$out/keyringrs_${version}_$arch.deb
dpkg-deb --root-owner-group -Zxz --build debian/keyringrs "$file" >/dev/null
echo "built $file"
