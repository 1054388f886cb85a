#!/usr/bin/python3
"""The VM test's greetd greeter: greetd's JSON IPC on $GREETD_SOCK, as agreety or tuigreet speak it.

greetd starts it as its greeter user. It waits for a request in /run/keyringrs-vm/greetd/login
(a user name, a password and the session type to announce, one line each; an empty type
announces none), creates a session, answers the password prompt, and starts agent.sh with
XDG_SESSION_TYPE in the session's environment, as tuigreet and gtkgreet pass it. The
conversation goes to /run/keyringrs-vm/greetd/greeter.log; it exits once the session starts.
"""
import json
import os
import socket
import struct
import sys
import time

DIR = "/run/keyringrs-vm/greetd"
REQUEST = os.path.join(DIR, "login")


def log(text):
    with open(os.path.join(DIR, "greeter.log"), "a") as f:
        f.write(text + "\n")
    print("keyringrs-vm greeter: " + text, file=sys.stderr, flush=True)


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        if not chunk:
            raise EOFError("greetd closed the socket")
        data += chunk
    return data


def call(sock, msg):
    data = json.dumps(msg).encode()
    sock.sendall(struct.pack("=I", len(data)) + data)
    (n,) = struct.unpack("=I", recv_exact(sock, 4))
    reply = json.loads(recv_exact(sock, n))
    log(f"{msg['type']} -> {reply.get('type')} {reply.get('auth_message_type', '')} "
        f"{reply.get('auth_message', reply.get('description', ''))!r}")
    return reply


def login(sock, user, password, session_type):
    reply = call(sock, {"type": "create_session", "username": user})
    while reply["type"] == "auth_message":
        if reply["auth_message_type"] in ("secret", "visible"):
            response = password
        else:
            response = None
        reply = call(sock, {"type": "post_auth_message_response", "response": response})
    if reply["type"] != "success":
        call(sock, {"type": "cancel_session"})
        return False
    env = [f"XDG_SESSION_TYPE={session_type}"] if session_type else []
    reply = call(sock, {"type": "start_session",
                        "cmd": ["/usr/local/lib/keyringrs-vm/agent.sh", "greetd"], "env": env})
    return reply["type"] == "success"


def main():
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(os.environ["GREETD_SOCK"])
    log("connected to greetd")
    while True:
        try:
            with open(REQUEST) as f:
                user, password, session_type = (f.read().split("\n") + ["", ""])[:3]
        except FileNotFoundError:
            time.sleep(0.2)
            continue
        os.unlink(REQUEST)
        log(f"logging in {user} (XDG_SESSION_TYPE={session_type or 'unset'})")
        if login(sock, user, password, session_type):
            log("session started")
            return 0


if __name__ == "__main__":
    sys.exit(main())
