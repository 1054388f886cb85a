#!/bin/sh
# What each client of the store reads, from the process that runs this (vm/vm.py compares the
# lines with what the scenario expects). One "name=value" line per client:
#   cli       exit status of `keyringrs get vm-test USER` (0 read, 3 locked; the secret itself
#             is compared as secret_ok)
#   unit      the same inside a transient unit of the user's own manager (systemd-run --user)
#   tool      secret-tool lookup over the user's session bus: "ok" (the secret) or "rc=N"
#   tool_store  (when tool=ok) secret-tool store of an item of its own, then lookup: "ok"
#   python    python's keyring (whichever backend it picks): "ok", "none" or the exception
#   daemon    the cgroup of the keyringrs-secret-service that answered, if one runs
# Usage: probe.sh SECRET [--no-bus]
secret=$1
user=$(id -un)
got=$(keyringrs get vm-test "$user" 2>/dev/null); rc=$?
echo "cli=$rc"
[ $rc -ne 0 ] || [ "$got" = "$secret" ] && echo "secret_ok=yes" || echo "secret_ok=no"
if [ -S "/run/user/$(id -u)/bus" ]; then
    export XDG_RUNTIME_DIR=/run/user/$(id -u) DBUS_SESSION_BUS_ADDRESS=unix:path=/run/user/$(id -u)/bus
    # (keyringrs get prints the secret without a newline when stdout is no tty)
    out=$(timeout 60 systemd-run --user --quiet --wait --pipe --collect \
          sh -c "v=\$(keyringrs get vm-test $user); rc=\$?; echo; echo rc=\$rc; \
                 [ \"\$v\" = '$secret' ] && echo unit_secret_ok=yes" 2>&1 </dev/null)
    echo "unit=$(echo "$out" | sed -n 's/^rc=//p' | tail -n1)"
    echo "$out" | grep -x "unit_secret_ok=yes"
    echo "unit_said=$(echo "$out" | grep -v '^rc=\|^unit_secret_ok=\|^$' | head -n2 | tr '\n' ' ')"
    got=$(timeout 60 secret-tool lookup service vm-test username "$user" 2>/dev/null); rc=$?
    if [ $rc -eq 0 ] && [ "$got" = "$secret" ]; then echo "tool=ok"; else echo "tool=rc=$rc"; fi
    if [ "$got" = "$secret" ]; then
        # An item of the Secret Service's own (no CLI entry behind it), stored and read back.
        printf %s "$secret-item" | timeout 60 secret-tool store --label="VM test item" \
            app vm-test-item 2>/dev/null
        [ "$(timeout 60 secret-tool lookup app vm-test-item 2>/dev/null)" = "$secret-item" ] \
            && echo "tool_store=ok" || echo "tool_store=failed"
    fi
    pid=$(pgrep -u "$user" -x keyringrs-secre | head -n1)
    [ -n "$pid" ] && echo "daemon=$(cut -d: -f3 /proc/$pid/cgroup)"
else
    echo "unit=nobus"
    echo "tool=nobus"
fi
timeout 60 python3 - "$user" "$secret" <<'PY'
import sys, keyring
try:
    got = keyring.get_password("vm-test", sys.argv[1])
    print("python=" + ("ok" if got == sys.argv[2] else "none" if got is None else "other"))
except Exception as e:
    print("python=" + type(e).__name__)
print("python_backend=" + type(keyring.get_keyring()).__module__)
PY
