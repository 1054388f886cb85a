#!/bin/bash
# The Debian package on this machine (root, no stdin; run by `make package-tests`):
#
#   1. lintian: no errors (warnings are listed; docs/PACKAGING.md explains each one);
#   2. dpkg -i; the files are there; man -w finds pam_keyringrs;
#   3. pam-auth-update --enable keyringrs puts the module into common-{auth,session,password};
#   4. a login of a throwaway user through a stock stack (/etc/pam.d/krt-pkg: common-auth,
#      common-account, pam_keyinit, common-session) succeeds and creates the user's store;
#   5. dpkg -r: the same login still succeeds, common-* no longer mention pam_keyringrs, and
#      /etc/pam.d is byte-identical to its state before the package was installed.
#
# Whatever happens, the exit trap removes the user, the service file and the package, and puts
# /etc/pam.d, the pam-auth-update state and the profile and module of an earlier `make install`
# (moved aside for the test) back as they were.
#
#   package-tests.sh DEB TARGET      (TARGET: where to build the PAM test driver)
set -euo pipefail

deb=$1 target=$2
src=$(cd "$(dirname "$0")/../.." && pwd)
multiarch=$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
module=/lib/$multiarch/security/pam_keyringrs.so
profile=/usr/share/pam-configs/keyringrs
service=/etc/pam.d/krt-pkg
export DEBIAN_FRONTEND=noninteractive
export PATH=/usr/sbin:/usr/bin:/sbin:/bin

say() { echo "package-tests: $*"; }

# /etc/pam.d/krt-* are the throwaway services of the test suites (ours is krt-pkg); other tests
# on this machine may add and remove theirs meanwhile, so they are not compared or restored.
same_pam_d() { diff -r -x 'krt-*' "$1" /etc/pam.d; }
restore_pam_d() {
    local f
    for f in /etc/pam.d/* "$1"/*; do
        case ${f##*/} in krt-*) continue ;; esac
        if [ -e "$1/${f##*/}" ]; then
            cmp -s "$1/${f##*/}" "/etc/pam.d/${f##*/}" || cp -a "$1/${f##*/}" /etc/pam.d/
        else
            rm -rf "$f"
        fi
    done
}
fail() { echo "package-tests: FAIL: $*" >&2; exit 1; }

if [ "$(id -u)" != 0 ]; then
    # As every test here that needs root (README): said loudly, not failed.
    echo "package-tests: SKIPPED (not root): installs the package, adds a user, changes /etc/pam.d"
    exit 0
fi
[ -f "$deb" ] || fail "no package $deb (make deb)"
if dpkg-query -W -f='${db:Status-Status}' keyringrs 2>/dev/null | grep -qv '^not-installed$'; then
    fail "the keyringrs package is installed on this machine already: remove it first (apt remove keyringrs)"
fi

tmp=$(mktemp -d /tmp/keyringrs-package-tests.XXXXXX)
user=krtpkg$$
password="krt-pkg-$$-$RANDOM$RANDOM"
state_saved=0

cleanup() {
    local rc=$?
    set +e
    userdel -r "$user" >/dev/null 2>&1
    rm -f "$service"
    if dpkg-query -W -f='${db:Status-Status}' keyringrs 2>/dev/null | grep -qv '^not-installed$'; then
        say "cleanup: purging the package"
        dpkg --purge keyringrs >/dev/null 2>&1
    fi
    if [ "$state_saved" = 1 ]; then
        # Everything as it was before the test: /etc/pam.d, pam-auth-update's state, and the
        # module and profile of an earlier `make install` (if there were any).
        if ! same_pam_d "$tmp/before/pam.d" >/dev/null 2>&1; then
            say "cleanup: restoring /etc/pam.d"
            restore_pam_d "$tmp/before/pam.d"
        fi
        rm -rf /var/lib/pam && cp -a "$tmp/before/var-lib-pam" /var/lib/pam
        [ -e "$tmp/before/module" ] && cp -a "$tmp/before/module" "$module"
        [ -e "$tmp/before/profile" ] && cp -a "$tmp/before/profile" "$profile"
    fi
    rm -rf "$tmp"
    if [ "$rc" = 0 ]; then say "PASS"; else say "FAILED (exit $rc)" >&2; fi
    exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM HUP

# --- 1. lintian --------------------------------------------------------------------------------
say "lintian $deb"
lintian_rc=0
lintian --fail-on error --tag-display-limit 0 "$deb" > "$tmp/lintian.txt" 2>&1 || lintian_rc=$?
sed 's/^/  /' "$tmp/lintian.txt"
grep -q '^E: ' "$tmp/lintian.txt" && fail "lintian reports errors"
[ "$lintian_rc" = 0 ] || fail "lintian exited $lintian_rc"
# Every warning must be one docs/PACKAGING.md explains (packaging/lintian-warnings).
unexplained=$(sed -n 's/^W: [^ ]* \([^ ]*\).*/\1/p' "$tmp/lintian.txt" | sort -u \
    | grep -vxF -f <(grep -v '^#' "$src/packaging/lintian-warnings") || true)
[ -z "$unexplained" ] || fail "lintian warnings not explained in docs/PACKAGING.md: $unexplained"
say "lintian: $(grep -c '^E: ' "$tmp/lintian.txt" || true) errors, $(grep -c '^W: ' "$tmp/lintian.txt" || true) warnings (all explained)"

# --- the machine's state before ----------------------------------------------------------------
mkdir -p "$tmp/before"
cp -a /etc/pam.d "$tmp/before/pam.d"
cp -a /var/lib/pam "$tmp/before/var-lib-pam"
cp -a /usr/share/pam-configs "$tmp/before/pam-configs"
[ -e "$module" ] && cp -a "$module" "$tmp/before/module"
[ -e "$profile" ] && cp -a "$profile" "$tmp/before/profile"
state_saved=1
if [ -e "$profile" ] || [ -e "$module" ]; then
    # An earlier `make install`: its profile (perhaps enabled) and module would hide whether the
    # package's own scripts do their job. Taken out for the test, put back by cleanup.
    say "moving the profile and module of an earlier make install aside"
    [ -e "$profile" ] && pam-auth-update --package --remove keyringrs
    rm -f "$module" "$profile"
fi
cp -a /etc/pam.d "$tmp/pam.d.snapshot"
cp -a /usr/share/pam-configs "$tmp/pam-configs.snapshot"
grep -q pam_keyringrs /etc/pam.d/common-* && fail "common-* mention pam_keyringrs before the test"

# --- the test user and the PAM application -----------------------------------------------------
gcc -O1 -Wall -Werror -o "$tmp/pam-driver" "$src/tests/pam/pam-driver.c" -lpam
useradd --create-home --shell /bin/bash "$user"
echo "$user:$password" | chpasswd
home=$(getent passwd "$user" | cut -d: -f6)
cat > "$service" <<'EOF'
# keyringrs package-tests: a login through the stock stacks, as /etc/pam.d/login has them.
@include common-auth
@include common-account
session optional pam_keyinit.so force revoke
@include common-session
EOF
hexpass=$(printf '%s' "$password" | od -An -tx1 | tr -d ' \n')

# One login: auth, open, a command as the user, close. The driver prints "@@ STEP RC TEXT".
login() {
    "$tmp/pam-driver" krt-pkg "$user" > "$tmp/login.txt" 2>&1 <<EOF || { cat "$tmp/login.txt"; fail "pam-driver failed"; }
env KEYRINGRS_KDF_MEMORY=1024
env KEYRINGRS_KDF_TIME=1
auth $hexpass
open
run id -un
close
end
EOF
    for step in auth open run close; do
        grep -q "^@@ $step 0 " "$tmp/login.txt" || { cat "$tmp/login.txt"; fail "login step $step did not succeed"; }
    done
}

# --- 2. install -------------------------------------------------------------------------------
# gnome-keyring ships the same D-Bus activation file: the package diverts it while installed.
activation=/usr/share/dbus-1/services/org.freedesktop.secrets.service
activation_before=$( [ -e "$activation" ] && md5sum < "$activation" || echo none)
say "dpkg -i $(basename "$deb")"
dpkg -i "$deb"
if [ "$activation_before" != none ]; then
    [ "$(md5sum < "$activation.distrib")" = "$activation_before" ] \
        || fail "the other provider's $activation was not diverted to $activation.distrib"
    say "$activation of $(dpkg-query -S "$activation" 2>/dev/null | grep -v "^diversion" | cut -d: -f1): diverted to .distrib while keyringrs is installed"
fi
for f in /usr/bin/keyringrs /usr/bin/keyringrs-secret-service "$module" "$profile" \
         /usr/lib/$multiarch/libkeyringrs.so.0 /usr/lib/$multiarch/libkeyringrs.so \
         /usr/lib/$multiarch/pkgconfig/keyringrs.pc /usr/include/keyringrs.h \
         /usr/share/dbus-1/services/org.freedesktop.secrets.service \
         /usr/lib/systemd/user/keyringrs-secret-service.service \
         /usr/share/xdg-desktop-portal/portals/keyringrs.portal \
         /usr/share/doc/keyringrs/examples/portals.conf \
         /usr/lib/python3/dist-packages/keyringrs/__init__.py \
         /usr/share/man/man1/keyringrs.1.gz /usr/share/man/man1/keyringrs-secret-service.1.gz \
         /usr/share/man/man8/pam_keyringrs.8.gz \
         /usr/share/bash-completion/completions/keyringrs /usr/share/zsh/vendor-completions/_keyringrs \
         /usr/share/fish/vendor_completions.d/keyringrs.fish \
         /usr/share/doc/keyringrs/copyright /usr/share/doc/keyringrs/changelog.Debian.gz; do
    [ -e "$f" ] || fail "$f is not installed"
done
grep -q '^Exec=/usr/bin/keyringrs-secret-service$' /usr/share/dbus-1/services/org.freedesktop.secrets.service \
    || fail "the D-Bus activation file does not start /usr/bin/keyringrs-secret-service"
grep -q '^ExecStart=/usr/bin/keyringrs-secret-service$' /usr/lib/systemd/user/keyringrs-secret-service.service \
    || fail "the systemd user unit does not start /usr/bin/keyringrs-secret-service"
grep -qx 'DBusName=org.freedesktop.secrets' /usr/share/xdg-desktop-portal/portals/keyringrs.portal \
    || fail "keyringrs.portal does not name org.freedesktop.secrets"
/usr/bin/keyringrs --version
/usr/bin/python3 -c 'import keyringrs; print("python3: keyringrs from", keyringrs.__file__)'
# The keyring backend needs python3-keyring (Recommends), which dpkg -i does not install.
if /usr/bin/python3 -c 'import keyring' 2>/dev/null; then
    /usr/bin/python3 -c 'import keyringrs.backend'
fi
ldconfig -p | grep -q 'libkeyringrs.so.0 ' || fail "ldconfig does not know libkeyringrs.so.0"
manpage=$(man -w pam_keyringrs) || fail "man -w pam_keyringrs finds nothing"
[ "$manpage" = /usr/share/man/man8/pam_keyringrs.8.gz ] || fail "man -w pam_keyringrs: $manpage"
for page in keyringrs keyringrs-secret-service pam_keyringrs; do
    warnings=$(man "$page" 2>&1 >/dev/null | head -5)
    [ -z "$warnings" ] || fail "man $page: $warnings"
done
say "files, man pages, library cache and python3 import: ok"

# --- 3. enable the profile ----------------------------------------------------------------------
pam-auth-update --enable keyringrs
for f in common-auth common-session common-password; do
    grep -q pam_keyringrs "/etc/pam.d/$f" || fail "pam-auth-update --enable: /etc/pam.d/$f has no pam_keyringrs"
done
grep -q pam_keyringrs /etc/pam.d/common-session-noninteractive \
    && fail "common-session-noninteractive mentions pam_keyringrs (Session-Interactive-Only)"
say "profile enabled: common-auth, common-session, common-password"

# --- 4. log in with the package's module ------------------------------------------------------
login
[ -f "$home/.local/share/keyringrs/header" ] || { cat "$tmp/login.txt"; fail "the login created no store"; }
[ "$(stat -c %U "$home/.local/share/keyringrs/header")" = "$user" ] || fail "the store is not the user's"
say "login through krt-pkg: ok, store $home/.local/share/keyringrs created"

# --- 5. remove ----------------------------------------------------------------------------------
say "dpkg -r keyringrs"
dpkg -r keyringrs
[ -e "$module" ] && fail "$module is still there after dpkg -r"
grep -l pam_keyringrs /etc/pam.d/common-* && fail "common-* still mention pam_keyringrs after dpkg -r"
login
say "login after removal: ok"
dpkg-divert --list keyringrs | grep -q . && fail "dpkg -r left diversions: $(dpkg-divert --list keyringrs)"
[ "$( [ -e "$activation" ] && md5sum < "$activation" || echo none)" = "$activation_before" ] \
    || fail "$activation is not as it was before the package (the diversion was not undone)"
rm -f "$service"
if ! same_pam_d "$tmp/pam.d.snapshot"; then
    fail "/etc/pam.d differs from its state before the package was installed (cleanup restores it)"
fi
say "/etc/pam.d is byte-identical to the snapshot"
dpkg --purge keyringrs >/dev/null
diff -r "$tmp/pam-configs.snapshot" /usr/share/pam-configs || fail "/usr/share/pam-configs changed"
