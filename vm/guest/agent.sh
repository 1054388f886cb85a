#!/bin/sh
# A login's agent in the VM test: the program a real login runs (lightdm's X session, greetd's
# session, an ssh command), as the user, inside that login. It records the login's environment,
# then answers the host's requests until told to end, so that the host can look at the store
# from inside a login that stays open while other logins come and go:
#   $DIR/TAG.env            the login's environment, written at start (the host waits for it)
#   $DIR/TAG.probe          a request: probe.sh runs, its lines go to $DIR/TAG.probe.out
#   $DIR/TAG.app            an app of the login needs its secret: secret-tool lookup runs in the
#                           background (it may wait for the unlock prompt); its output and exit
#                           status go to $DIR/TAG.app.out
#   $DIR/TAG.flatpak        a Flatpak-style sandboxed app of the login stores and reads a secret
#                           through the Secret portal (flatpak-app.sh); its lines go to
#                           $DIR/TAG.flatpak.out
#   $DIR/TAG.end            the login ends (its program exits, the login closes)
# Bounded: an agent never asked to end exits after 30 minutes.
#     agent.sh TAG
set -u
DIR=/run/keyringrs-vm
tag=$1
secret=$(cat /etc/keyringrs-vm/secret)
here=$(dirname "$0")
echo "$(date +%T.%N) $tag: started, pid $$, session ${XDG_SESSION_ID:-?}" >> "$DIR/agents.log"
trap 'echo "$(date +%T.%N) $tag: exits, pid $$, session ${XDG_SESSION_ID:-?}" >> "$DIR/agents.log"' EXIT
env | sort > "$DIR/$tag.env.tmp"
mv "$DIR/$tag.env.tmp" "$DIR/$tag.env"
end=$(( $(date +%s) + 1800 ))
while [ "$(date +%s)" -lt "$end" ]; do
    if [ -e "$DIR/$tag.probe" ]; then
        rm "$DIR/$tag.probe" || exit 1   # a request it cannot take would run for ever
        "$here/probe.sh" "$secret" > "$DIR/$tag.probe.tmp" 2>&1
        mv "$DIR/$tag.probe.tmp" "$DIR/$tag.probe.out"
    fi
    if [ -e "$DIR/$tag.app" ]; then
        rm "$DIR/$tag.app" || exit 1
        ( timeout 300 secret-tool lookup service vm-test username "$(id -un)" > "$DIR/$tag.app.tmp" 2>&1
          echo "rc=$?" >> "$DIR/$tag.app.tmp"
          mv "$DIR/$tag.app.tmp" "$DIR/$tag.app.out" ) &
    fi
    if [ -e "$DIR/$tag.flatpak" ]; then
        rm "$DIR/$tag.flatpak" || exit 1
        "$here/flatpak-app.sh" "$secret-flatpak" > "$DIR/$tag.flatpak.tmp" 2>&1
        mv "$DIR/$tag.flatpak.tmp" "$DIR/$tag.flatpak.out"
    fi
    if [ -e "$DIR/$tag.end" ]; then
        rm "$DIR/$tag.end" || exit 1
        exit 0
    fi
    sleep 0.2
done
echo "agent $tag: never told to end, exiting" >&2
