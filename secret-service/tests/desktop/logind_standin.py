"""A stand-in for systemd-logind on a private system bus, for the lock policy tests on a host
without systemd (the VM test, vm/test.py, runs the real logind): it owns org.freedesktop.login1,
serves one session object of the given uid and type, and on each line read from stdin emits
what logind emits: `lock` (Session.Lock), `hint` (LockedHint turning true), `sleep`
(Manager.PrepareForSleep(true)), `wake` (PrepareForSleep(false)). Prints `ready` once it owns
the name."""

import sys
import threading

from gi.repository import Gio, GLib

XML = """
<node>
  <interface name="org.freedesktop.login1.Session">
    <property name="User" type="(uo)" access="read"/>
    <property name="Type" type="s" access="read"/>
    <property name="Id" type="s" access="read"/>
    <property name="Leader" type="u" access="read"/>
    <property name="LockedHint" type="b" access="read"/>
    <signal name="Lock"/>
  </interface>
</node>"""

address, uid, kind = sys.argv[1], int(sys.argv[2]), sys.argv[3]
SESSION = "/org/freedesktop/login1/session/_31"
state = {"hint": False}
loop = GLib.MainLoop()
conn = Gio.DBusConnection.new_for_address_sync(
    address, Gio.DBusConnectionFlags.AUTHENTICATION_CLIENT
    | Gio.DBusConnectionFlags.MESSAGE_BUS_CONNECTION, None, None)


def get_property(c, sender, path, iface, name):
    return {
        "User": GLib.Variant("(uo)", (uid, f"/org/freedesktop/login1/user/_{uid}")),
        "Type": GLib.Variant("s", kind),
        "Id": GLib.Variant("s", "1"),
        "Leader": GLib.Variant("u", 1),
        "LockedHint": GLib.Variant("b", state["hint"]),
    }[name]


node = Gio.DBusNodeInfo.new_for_xml(XML)
conn.register_object(SESSION, node.interfaces[0], None, get_property, None)
conn.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
               "RequestName", GLib.Variant("(su)", ("org.freedesktop.login1", 4)), None,
               Gio.DBusCallFlags.NONE, -1, None)


def emit(line):
    if line == "lock":
        conn.emit_signal(None, SESSION, "org.freedesktop.login1.Session", "Lock", None)
    elif line == "hint":
        state["hint"] = True
        conn.emit_signal(None, SESSION, "org.freedesktop.DBus.Properties", "PropertiesChanged",
                         GLib.Variant("(sa{sv}as)", ("org.freedesktop.login1.Session",
                                                     {"LockedHint": GLib.Variant("b", True)}, [])))
    elif line in ("sleep", "wake"):
        conn.emit_signal(None, "/org/freedesktop/login1", "org.freedesktop.login1.Manager",
                         "PrepareForSleep", GLib.Variant("(b)", (line == "sleep",)))
    conn.flush_sync(None)
    print("sent", line, flush=True)
    return False


def reader():
    for line in sys.stdin:
        GLib.idle_add(emit, line.strip())
    GLib.idle_add(loop.quit)


threading.Thread(target=reader, daemon=True).start()
print("ready", flush=True)
loop.run()
