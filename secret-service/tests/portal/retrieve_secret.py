#!/usr/bin/python3
"""A client of org.freedesktop.portal.Secret.RetrieveSecret, as libsecret's file backend calls
it: a pipe's write end passed to the portal, the Response signal of the request awaited, the
pipe read. Prints `response=N bytes=M` (never the bytes). Run on the host it is a caller without
an app id (xdg-desktop-portal gives the backend an empty one).

Usage: retrieve_secret.py [TIMEOUT_SECONDS]   (the session bus from the environment)
"""

import os
import sys

import gi

gi.require_version("Gio", "2.0")
from gi.repository import Gio, GLib  # noqa: E402

timeout = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
bus = Gio.bus_get_sync(Gio.BusType.SESSION, None)
sender = bus.get_unique_name()[1:].replace(".", "_")
token = f"keyringrs{os.getpid()}"
request_path = f"/org/freedesktop/portal/desktop/request/{sender}/{token}"
loop = GLib.MainLoop()
got = {}


def on_response(_conn, _sender, _path, _iface, _signal, params):
    got["response"] = params.unpack()[0]
    loop.quit()


bus.signal_subscribe("org.freedesktop.portal.Desktop", "org.freedesktop.portal.Request",
                     "Response", request_path, None, Gio.DBusSignalFlags.NO_MATCH_RULE,
                     on_response)
bus.call_sync("org.freedesktop.DBus", "/org/freedesktop/DBus", "org.freedesktop.DBus",
              "AddMatch", GLib.Variant("(s)", (f"type='signal',path='{request_path}'",)),
              None, Gio.DBusCallFlags.NONE, -1, None)
r, w = os.pipe()
fds = Gio.UnixFDList.new()
fds.append(w)
os.close(w)
bus.call_with_unix_fd_list_sync(
    "org.freedesktop.portal.Desktop", "/org/freedesktop/portal/desktop",
    "org.freedesktop.portal.Secret", "RetrieveSecret",
    GLib.Variant("(ha{sv})", (0, {"handle_token": GLib.Variant("s", token)})),
    None, Gio.DBusCallFlags.NONE, -1, fds, None)
GLib.timeout_add(int(timeout * 1000), loop.quit)
loop.run()
data = b""
os.set_blocking(r, False)
try:
    while chunk := os.read(r, 4096):
        data += chunk
except BlockingIOError:
    pass
print(f"response={got.get('response', 'none')} bytes={len(data)}")
