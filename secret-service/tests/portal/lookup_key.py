#!/usr/bin/python3
"""Print the secret of the item with attribute app_id=APP_ID of the Secret Service on the
session bus, raw (libsecret through GObject introspection: secret-tool prints text only); with
--describe, what the item is instead (label, attributes, content type, secret length).

Usage: lookup_key.py APP_ID [--describe]"""

import sys

import gi

gi.require_version("Secret", "1")
from gi.repository import Secret  # noqa: E402

service = Secret.Service.get_sync(Secret.ServiceFlags.OPEN_SESSION | Secret.ServiceFlags.LOAD_COLLECTIONS, None)
items = service.search_sync(None, {"app_id": sys.argv[1]},
                            Secret.SearchFlags.ALL | Secret.SearchFlags.LOAD_SECRETS, None)
if not items:
    sys.exit(f"no item with app_id={sys.argv[1]}")
item = items[0]
value = item.get_secret()
if "--describe" in sys.argv:
    print(f"items: {len(items)}; label: {item.get_label()!r}; attributes: "
          f"{dict(sorted(item.get_attributes().items()))}; content type: "
          f"{value.get_content_type()!r}; secret: {len(value.get())} bytes")
else:
    sys.stdout.buffer.write(value.get())
