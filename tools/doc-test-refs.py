#!/usr/bin/python3
"""Every test the docs name as `path/file.rs::test_name` (docs/*.md, README.md) is a function of
that file: a test that moved or was renamed fails `make lint` here instead of leaving a line
of THREAT-MODEL.md pointing at nothing. `--fix` rewrites a reference whose test now lives in
another file (when exactly one file has it).

    doc-test-refs.py [--fix]
"""
import glob
import re
import sys

REF = re.compile(r"\b((?:[a-z0-9_-]+/)*[a-z_0-9]+\.rs)::([a-z_0-9]+(?:\{[a-z_0-9,]+\}[a-z_0-9]*)*)")
# How the docs say what a reference is: `tests/x.rs::name`.
EXAMPLE = ("tests/x.rs", "name")


def expand(name):
    """`a_{b,c}_d` is `a_b_d` and `a_c_d`."""
    m = re.search(r"\{([^}]*)\}", name)
    if not m:
        return [name]
    return [n for alt in m.group(1).split(",") for n in expand(name[: m.start()] + alt + name[m.end() :])]


def functions(path, cache={}):
    if path not in cache:
        try:
            text = open(path, encoding="utf-8").read()
        except OSError:
            text = ""
        cache[path] = set(re.findall(r"\bfn ([a-z_0-9]+)", text))
        # tests made by a macro call name themselves in full
        cache[path] |= set(re.findall(r"\b([a-z_0-9]{12,})\b", text)) if "macro_rules!" in text else set()
    return cache[path]


def main(argv):
    fix = "--fix" in argv
    sources = [p for p in glob.glob("**/*.rs", recursive=True) if not p.startswith("target/")]
    docs = sorted(glob.glob("docs/*.md")) + ["README.md"]
    bad = checked = 0
    for doc in docs:
        text = open(doc, encoding="utf-8").read()

        def check(m):
            nonlocal bad, checked
            path, name = m.group(1), m.group(2)
            if (path, name) == EXAMPLE:
                return m.group(0)
            checked += 1
            if all(n in functions(path) for n in expand(name)):
                return m.group(0)
            homes = [p for p in sources if name in functions(p)]
            if fix and len(homes) == 1:
                return f"{homes[0]}::{name}"
            bad += 1
            where = f" (it is in {', '.join(homes)})" if homes else ""
            print(f"doc-test-refs: {doc}: {path}::{name} names no function of {path}{where}")
            return m.group(0)

        new = REF.sub(check, text)
        if fix and new != text:
            open(doc, "w", encoding="utf-8").write(new)
    if not bad:
        print(f"doc-test-refs: {checked} references to tests in the docs, each names its file")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
