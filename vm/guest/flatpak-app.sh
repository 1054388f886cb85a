#!/bin/bash
# A Flatpak-style sandboxed app in a login of the VM test (scenario 2), as the user: Debian's
# libsecret (secret-tool) in a bubblewrap sandbox with a /.flatpak-info, only its own
# ~/.var/app/APP of the home, and a session bus that is an xdg-dbus-proxy (in a sandbox of its
# own with the same /.flatpak-info, as flatpak runs it) letting it talk to org.freedesktop.portal.*
# only. So libsecret keeps the secret in the app's file keyring and asks the Secret portal for
# its key: xdg-desktop-portal, started by the user's bus, calls keyringrs-secret-service.
# Prints key=value lines (parsed like probe.sh's):
#   store=RC lookup=ok|<what it got> file=yes|no plaintext=no|yes portal_items=N
#     flatpak-app.sh SECRET
set -u
secret=$1
app=org.keyringrs.VmApp
d=$HOME/.var/app/$app
mkdir -p "$d/data" "$d/config" "$d/cache"
tmp=$(mktemp -d)
trap 'kill "$proxy" 2>/dev/null; rm -rf "$tmp"' EXIT
printf '[Application]\nname=%s\n' "$app" > "$tmp/flatpak-info"
bus=${DBUS_SESSION_BUS_ADDRESS#unix:path=}
mkdir "$tmp/app-bus"
sandbox=(bwrap --ro-bind /usr /usr --symlink usr/bin /bin --symlink usr/lib /lib
         --symlink usr/lib64 /lib64 --symlink usr/sbin /sbin --ro-bind /etc /etc
         --proc /proc --dev /dev --tmpfs /tmp --ro-bind "$tmp/flatpak-info" /.flatpak-info
         --unshare-pid --die-with-parent)
"${sandbox[@]}" --bind "$(dirname "$bus")" /run/host-bus --bind "$tmp/app-bus" /run/app-bus \
    -- xdg-dbus-proxy "unix:path=/run/host-bus/$(basename "$bus")" /run/app-bus/bus \
    --filter '--talk=org.freedesktop.portal.*' \
    '--broadcast=org.freedesktop.portal.*=@/org/freedesktop/portal/*' &
proxy=$!
i=0
while [ ! -S "$tmp/app-bus/bus" ] && [ $i -lt 100 ]; do sleep 0.1; i=$((i + 1)); done
run=/run/user/$(id -u)
app_run() {
    timeout 120 "${sandbox[@]}" --dir "$HOME" --bind "$d" "$d" --dir "$run" --ro-bind "$tmp/app-bus/bus" "$run/bus" \
        --clearenv --setenv PATH /usr/bin:/bin --setenv HOME "$HOME" \
        --setenv XDG_RUNTIME_DIR "$run" --setenv DBUS_SESSION_BUS_ADDRESS "unix:path=$run/bus" \
        --setenv XDG_DATA_HOME "$d/data" --setenv XDG_CONFIG_HOME "$d/config" \
        --setenv XDG_CACHE_HOME "$d/cache" --setenv FLATPAK_ID "$app" -- "$@"
}
printf %s "$secret" | app_run secret-tool store --label "$app secret" vm-flatpak yes 2> "$tmp/err"
echo "store=$?"
got=$(app_run secret-tool lookup vm-flatpak yes 2>> "$tmp/err")
if [ "$got" = "$secret" ]; then echo "lookup=ok"; else echo "lookup=$got $(tr '\n' ' ' < "$tmp/err")"; fi
f=$d/data/keyrings/default.keyring
if [ -s "$f" ]; then echo "file=yes"; else echo "file=no"; fi
if grep -qF "$secret" "$f" 2>/dev/null; then echo "plaintext=yes"; else echo "plaintext=no"; fi
echo "portal_items=$(keyringrs list 2>/dev/null | grep -c '^org.freedesktop.Secret.Item:org.freedesktop.portal.Secret	')"
