#!/usr/bin/python3
"""Decrypt a keyringrs store by hand, from docs/FORMAT.md alone (no keyringrs code).

usage: read-store.py STORE_DIR < password-line
Prints one line per entry: service, username, label, secret (as Python reprs).
Needs PyNaCl (Debian: python3-nacl) for Argon2id and XChaCha20-Poly1305.
"""
import hashlib
import hmac
import os
import struct
import sys

from nacl.bindings import crypto_aead_xchacha20poly1305_ietf_decrypt as xchacha_open
from nacl.bindings import crypto_pwhash_alg, crypto_pwhash_ALG_ARGON2ID13


def hkdf_sha256(ikm, salt, info, length=32):
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([i]), hashlib.sha256).digest()
        out += block
        i += 1
    return out[:length]


def main(store, password):
    header = open(os.path.join(store, "header"), "rb").read()
    assert header[:16] == b"keyringrs-store\n", "bad magic"
    (version,) = struct.unpack_from("<H", header, 16)
    assert version == 1, f"unknown version {version}"
    body, mac, checksum = header[:-64], header[-64:-32], header[-32:]
    assert hashlib.sha256(header[:-32]).digest() == checksum, "header checksum"
    prefix, store_id, nslots = header[:36], header[20:36], header[36]
    master = None
    for i in range(nslots):
        slot = header[37 + 102 * i : 37 + 102 * (i + 1)]
        kind, kdf, mem, time, lanes = struct.unpack_from("<BBIII", slot, 0)
        assert (kind, kdf, lanes) == (1, 1, 1)
        salt, nonce, wrapped = slot[14:30], slot[30:54], slot[54:102]
        kek = crypto_pwhash_alg(32, password, salt, time, mem * 1024, crypto_pwhash_ALG_ARGON2ID13)
        aad = prefix + bytes([i]) + slot[:30]
        try:
            master = xchacha_open(wrapped, aad, nonce, kek)
            break
        except Exception:
            continue
    if master is None:
        sys.exit("wrong password")
    mac_key = hkdf_sha256(master, store_id, b"keyringrs v1 header-mac")
    assert hmac.compare_digest(hmac.new(mac_key, body, hashlib.sha256).digest(), mac), "header MAC"
    seal_key = hkdf_sha256(master, store_id, b"keyringrs v1 entry-seal")
    name_key = hkdf_sha256(master, store_id, b"keyringrs v1 entry-name")
    entries = os.path.join(store, "entries")
    for name in sorted(os.listdir(entries)):
        if len(name) != 64:
            continue
        data = open(os.path.join(entries, name), "rb").read()
        assert data[:16] == b"keyringrs-entry\n" and data[16:18] == b"\x01\x00"
        nonce, ct = data[18:42], data[42:]
        aad = data[:18] + store_id + bytes.fromhex(name)
        pt = xchacha_open(ct, aad, nonce, seal_key)
        pos = 0

        def field():
            nonlocal pos
            (n,) = struct.unpack_from("<I", pt, pos)
            v = pt[pos + 4 : pos + 4 + n]
            pos += 4 + n
            return v

        service, username, label = field(), field(), field()
        (nattr,) = struct.unpack_from("<I", pt, pos)
        pos += 4
        attrs = {field().decode(): field().decode() for _ in range(nattr)}
        created, modified = struct.unpack_from("<qq", pt, pos)
        pos += 16
        secret = field()
        assert pos == len(pt)
        ident = struct.pack("<I", len(service)) + service + struct.pack("<I", len(username)) + username
        assert hmac.new(name_key, ident, hashlib.sha256).hexdigest() == name, "entry name"
        print(repr(service.decode()), repr(username.decode()), repr(label.decode()), attrs, repr(secret))


if __name__ == "__main__":
    main(sys.argv[1], sys.stdin.buffer.readline().rstrip(b"\n"))
