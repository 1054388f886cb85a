#!/usr/bin/python3
"""The VM test's lightdm greeter: liblightdm's GObject API, the one GTK greeters use.

lightdm starts it on its X server as the user lightdm. It waits for a request in
/run/keyringrs-vm/lightdm/login (a user name and a password, one line each, written by the host's
driver as root), removes it, authenticates through lightdm's PAM conversation, answers the
password prompt, and starts the session keyringrs-vm (agent.sh). What PAM said (prompts,
messages, the result) goes to /run/keyringrs-vm/lightdm/greeter.log.
"""
import os
import sys

import gi

gi.require_version("LightDM", "1")
from gi.repository import GLib, LightDM  # noqa: E402

DIR = "/run/keyringrs-vm/lightdm"
REQUEST = os.path.join(DIR, "login")
pending = {}


def log(text):
    with open(os.path.join(DIR, "greeter.log"), "a") as f:
        f.write(text + "\n")
    print("keyringrs-vm greeter: " + text, file=sys.stderr, flush=True)


def on_prompt(greeter, text, kind):
    log(f"prompt {text!r}")
    greeter.respond(pending.pop("password", ""))


def on_message(greeter, text, kind):
    log(f"message {text!r}")


def on_complete(greeter):
    if not greeter.get_is_authenticated():
        log("authentication failed")
        GLib.timeout_add(200, poll)
        return
    log("authenticated; starting the session")
    try:
        greeter.start_session_sync("keyringrs-vm")
    except GLib.Error as e:
        log(f"session did not start: {e.message}")
        GLib.timeout_add(200, poll)


def poll():
    try:
        with open(REQUEST) as f:
            user, password = f.read().split("\n")[:2]
    except FileNotFoundError:
        return True
    os.unlink(REQUEST)
    pending["password"] = password
    log(f"authenticating {user}")
    greeter.authenticate(user)
    return False


greeter = LightDM.Greeter()
greeter.connect("show-prompt", on_prompt)
greeter.connect("show-message", on_message)
greeter.connect("authentication-complete", on_complete)
greeter.connect_to_daemon_sync()
log("connected to lightdm")
GLib.timeout_add(200, poll)
GLib.MainLoop().run()
