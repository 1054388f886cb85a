# Timed inside one interpreter by keyringrs-bench: prints one line per row,
# "ok<TAB>name<TAB>ns,ns,..." or "na<TAB>name<TAB>why". argv: samples raw-desc service user.
import ctypes, sys, time

samples, raw_desc, service, user = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]


def timed(name, fn):
    try:
        for _ in range(max(10, samples // 20)):
            fn()
        out = []
        for _ in range(samples):
            t = time.perf_counter_ns()
            fn()
            out.append(time.perf_counter_ns() - t)
        print("ok\t%s\t%s" % (name, ",".join(map(str, out))), flush=True)
    except Exception as e:  # report, never crash the bench
        print("na\t%s\t%s: %s" % (name, type(e).__name__, str(e).splitlines()[0] if str(e) else ""), flush=True)


libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
SYS_keyctl, KEYCTL_SEARCH, KEYCTL_READ, KEY_SPEC_SESSION_KEYRING = 250, 10, 11, -3
buf = ctypes.create_string_buffer(64)
desc = raw_desc.encode()


def raw():
    serial = libc.syscall(SYS_keyctl, KEYCTL_SEARCH, ctypes.c_long(KEY_SPEC_SESSION_KEYRING), b"user", desc, 0)
    if serial < 0:
        raise OSError(ctypes.get_errno(), "keyctl search")
    n = libc.syscall(SYS_keyctl, KEYCTL_READ, ctypes.c_long(serial), buf, ctypes.c_long(64), 0)
    if n < 0:
        raise OSError(ctypes.get_errno(), "keyctl read")
    return buf.raw[:n]


timed("ctypes raw keyctl search + read", raw)

try:
    import keyringrs
except Exception as e:
    why = "not built yet: python package keyringrs not importable (issue 5): %s" % e
    print("na\tkeyringrs.Store.get\t%s" % why)
    print("na\tkeyring.get_password (keyringrs backend)\t%s" % why)
    sys.exit(0)

store = keyringrs.Store()
timed("keyringrs.Store.get", lambda: store.get(service, user))

try:
    import keyring
    from keyringrs.backend import KeyringrsBackend

    keyring.set_keyring(KeyringrsBackend())
except Exception as e:
    print("na\tkeyring.get_password (keyringrs backend)\tpython-keyring or the backend missing: %s" % e)
    sys.exit(0)
timed("keyring.get_password (keyringrs backend)", lambda: keyring.get_password(service, user))
