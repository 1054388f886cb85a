#!/usr/bin/python3
"""Remove the keyringrs Python package that `make install` put under DESTDIR+PREFIX with pip.

    uninstall-python.py DESTDIR PREFIX

pip itself cannot do this: `pip uninstall` knows neither --root nor --prefix, and would pick
whichever keyringrs comes first on sys.path (perhaps the Debian package's). So: every
lib/python3*/{dist,site}-packages/keyringrs-*.dist-info under DESTDIR+PREFIX, the files its
RECORD lists (pip records the .pyc files it compiled too), then the directories left empty,
up to the *-packages directory. Nothing installed: nothing to do.

Debian's pip puts `--prefix P` installs into P/local/lib/python3.X/dist-packages (so
`make install PREFIX=/usr` lands in /usr/local, as PREFIX=/usr/local does): both places are
searched. Only what pip installed (INSTALLER "pip") is removed, never the Debian package's
/usr/lib/python3/dist-packages/keyringrs.
"""
import glob
import os
import sys


def main(destdir: str, prefix: str) -> int:
    infos = []
    for base in (destdir + prefix, destdir + prefix.rstrip("/") + "/local"):
        pattern = os.path.join(base, "lib", "python3*", "*-packages", "keyringrs-*.dist-info")
        infos += sorted(glob.glob(pattern))
    for info in infos:
        site = os.path.dirname(info)
        try:
            with open(os.path.join(info, "INSTALLER"), encoding="utf-8") as f:
                installer = f.read().strip()
        except OSError:
            installer = ""
        if installer != "pip":
            print(f"uninstall-python: {info} was not installed by pip: left alone")
            continue
        record = os.path.join(info, "RECORD")
        if not os.path.isfile(record):
            print(f"uninstall-python: {info} has no RECORD: left alone", file=sys.stderr)
            return 1
        with open(record, encoding="utf-8") as f:
            paths = [line.rsplit(",", 2)[0] for line in f if line.strip()]
        dirs = set()
        for rel in paths:
            path = os.path.normpath(os.path.join(site, rel))
            if os.path.lexists(path):
                os.remove(path)
                print(f"removed {path}")
            dirs.add(os.path.dirname(path))
        # Deepest first; only directories inside site-packages that are now empty.
        for d in sorted(dirs, key=len, reverse=True):
            while d.startswith(site + os.sep) and os.path.isdir(d) and not os.listdir(d):
                os.rmdir(d)
                d = os.path.dirname(d)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: uninstall-python.py DESTDIR PREFIX")
    sys.exit(main(sys.argv[1], sys.argv[2]))
