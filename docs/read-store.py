#!/usr/bin/python3
"""Decrypt a keyringrs store by hand, from docs/FORMAT.md alone (no keyringrs code).

usage: read-store.py STORE_DIR < password-line
Prints one line per entry: service, username, label, attributes, secret (as Python reprs), and
for format version 2 entries the content type; then, for a version 2 store, checks the blind
index (every record authenticates, every entry's attribute tokens are in it) and says so.
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
    assert version in (1, 2), f"unknown version {version}"
    body, mac, checksum = header[:-64], header[-64:-32], header[-32:]
    assert hashlib.sha256(header[:-32]).digest() == checksum, "header checksum"
    store_id, nslots = header[20:36], header[36]
    # Keyslots bind the prefix with the version field always 1 (slots survive the migration).
    prefix = header[:16] + b"\x01\x00" + header[18:36]
    master = None
    for i in range(nslots):
        slot = header[37 + 102 * i : 37 + 102 * (i + 1)]
        kind, kdf, mem, time, lanes = struct.unpack_from("<BBIII", slot, 0)
        if kind == 5:
            # A TPM2 keyslot: its key is in the TPM, not derived from a password.
            assert kdf == 2, "TPM2 keyslot with another key source"
            continue
        assert kdf == 1 and kind in (1, 2, 3, 4)
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
    token_key = hkdf_sha256(master, store_id, b"keyringrs v1 index-token")
    index_mac_key = hkdf_sha256(master, store_id, b"keyringrs v1 index-mac")
    tokens_wanted = {}
    entries = os.path.join(store, "entries")
    sealed = {n: None for n in os.listdir(entries) if len(n) == 64}
    # The journal's records supersede the entry files (a deleted entry: None).
    journal = os.path.join(store, "journal")
    if version == 2 and os.path.exists(journal):
        journal_mac = hkdf_sha256(master, store_id, b"keyringrs v1 journal-mac")
        for name, value in read_journal(journal, journal_mac).items():
            sealed[name] = value
    for name in sorted(sealed):
        data = sealed[name]
        if data is False:
            continue
        if data is None:
            data = open(os.path.join(entries, name), "rb").read()
        assert data[:16] == b"keyringrs-entry\n"
        (entry_version,) = struct.unpack_from("<H", data, 16)
        assert entry_version in (1, 2), f"unknown entry version {entry_version}"
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
        content_type = field() if entry_version == 2 else None
        (nattr,) = struct.unpack_from("<I", pt, pos)
        pos += 4
        attrs = {field().decode(): field().decode() for _ in range(nattr)}
        created, modified = struct.unpack_from("<qq", pt, pos)
        pos += 16
        secret = field()
        assert pos == len(pt)
        ident = struct.pack("<I", len(service)) + service + struct.pack("<I", len(username)) + username
        assert hmac.new(name_key, ident, hashlib.sha256).hexdigest() == name, "entry name"
        line = [repr(service.decode()), repr(username.decode()), repr(label.decode()), str(attrs), repr(secret)]
        if content_type is not None:
            line.append(repr(content_type.decode()))
        print(*line)
        # The item's attributes: the stored ones, plus service and username unless synthetic.
        item = dict(attrs)
        if not service.startswith(b"org.freedesktop.Secret.Item:"):
            item["service"], item["username"] = service.decode(), username.decode()
        tokens_wanted[name] = {token(token_key, k, v) for k, v in item.items()}
    if version == 2:
        check_index(os.path.join(store, "index"), index_mac_key, tokens_wanted)


def read_journal(path, mac_key):
    """name -> sealed entry bytes, or False (deleted), for the journal's valid records."""
    data = open(path, "rb").read()
    assert len(data) == 16 * 1024, "journal size"
    assert data[:16] == b"keyringrs-journ\n" and data[16:18] == b"\x01\x00", "journal magic"
    epoch, pos, out = data[18:34], 4096, {}
    while pos + 37 <= len(data):
        (n,) = struct.unpack_from("<I", data, pos)
        kind = data[pos + 4]
        if not ((kind == 1 and n > 0) or (kind == 2 and n == 0)) or pos + 37 + n + 16 > len(data):
            break
        body, tag = data[pos : pos + 37 + n], data[pos + 37 + n : pos + 53 + n]
        want = hmac.new(mac_key, epoch + struct.pack("<Q", pos) + body, hashlib.sha256).digest()[:16]
        if not hmac.compare_digest(want, tag):
            break  # the end: a torn, zeroed or older epoch's record
        out[body[5:37].hex()] = body[37:] if kind == 1 else False
        pos += 53 + n
    return out


def token(key, name, value):
    name, value = name.encode(), value.encode()
    msg = struct.pack("<I", len(name)) + name + struct.pack("<I", len(value)) + value
    return hmac.new(key, msg, hashlib.sha256).digest()[:16]


def check_index(path, mac_key, tokens_wanted):
    data = open(path, "rb").read()
    assert data[:16] == b"keyringrs-index\n" and data[16:18] == b"\x01\x00", "index magic"
    index_id, pos, have = data[18:34], 34, {}
    while pos < len(data):
        kind = data[pos]
        name = data[pos + 1 : pos + 33].hex()
        (n,) = struct.unpack_from("<H", data, pos + 33)
        body = data[pos : pos + 35 + 16 * n]
        tag = data[pos + 35 + 16 * n : pos + 51 + 16 * n]
        want = hmac.new(mac_key, index_id + struct.pack("<Q", pos) + body, hashlib.sha256).digest()[:16]
        assert hmac.compare_digest(want, tag), f"index record at {pos}"
        if kind == 1:
            have.setdefault(name, set()).update(body[35 + 16 * i : 51 + 16 * i] for i in range(n))
        else:
            assert kind == 2 and n == 0, f"index record kind {kind}"
            have.pop(name, None)
        pos += 51 + 16 * n
    for name, tokens in tokens_wanted.items():
        assert tokens <= have.get(name, set()), f"entry {name} lacks index tokens"
    print(f"index: {len(have)} items, every record authenticates, every entry's tokens present")


if __name__ == "__main__":
    main(sys.argv[1], sys.stdin.buffer.readline().rstrip(b"\n"))
