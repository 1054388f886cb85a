#!/usr/bin/python3
"""The import graph between the modules of each crate, read from the source: who names whom
(`use crate::x`, `crate::x::…`, `super::…` resolved), comments and doc lines skipped. Fails
(exit 1) on a cycle between modules, and on a libkeyring module that names a module of a
higher layer (docs/ARCHITECTURE.md: error, sys → crypto → format → kernel → store → api).

    module-graph.py [--print] CRATE_SRC_DIR...
"""
import os
import re
import sys

# libkeyring's layers, lowest first; a module may name its own layer and those below.
LAYERS = [
    {"error"},
    {"sys"},
    {"crypto", "recovery"},
    {"format"},
    {"kernel"},
    {"mapping"},
    {"store"},
    {"check", "repair", "credential_store", "portal"},
]


def modules(src):
    """{module path (tuple): file} for every .rs file below src."""
    out = {}
    for root, _, files in os.walk(src):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(root, f), src)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            out[tuple(parts)] = os.path.join(root, f)
    return out


def code_lines(path):
    in_tests = False
    for line in open(path, encoding="utf-8"):
        s = line.strip()
        if s.startswith("#[cfg(test)]"):
            in_tests = True  # unit tests may reach anywhere
        if in_tests or s.startswith("//"):
            continue
        yield line.split("//")[0]


def reexports(mods):
    """{name: module} for the crate root's `pub use module::{names}` (what `crate::Name` is)."""
    root = mods.get(())
    out = {}
    if not root:
        return out
    text = open(root, encoding="utf-8").read()
    for module, names in re.findall(r"pub use ([a-z_]+)(?:::[a-z_]+)*::\{?([^;}]*)\}?;", text):
        for n in re.findall(r"[A-Za-z_][A-Za-z0-9_]*", names):
            out[n] = module
    return out


def edges(mods):
    """{(from top-level module, to top-level module)} between distinct top-level modules."""
    tops = {m[0] for m in mods if m}
    names = reexports(mods)
    found = set()
    for m, path in mods.items():
        if not m:
            continue
        for line in ["\n".join(code_lines(path))]:
            targets = re.findall(r"\bcrate::([A-Za-z_][A-Za-z0-9_]*)", line)
            for group in re.findall(r"\bcrate::\{([^}]*)\}", line):
                targets += re.findall(r"\b([A-Za-z_][A-Za-z0-9_]*)", group)
            for target in targets:
                target = names.get(target, target)
                if target in tops and target != m[0]:
                    found.add((m[0], target))
            if len(m) == 1:
                for target in re.findall(r"\bsuper::([a-z_][a-z0-9_]*)", line):
                    if target in tops and target != m[0]:
                        found.add((m[0], target))
    return found


def inner_edges(mods):
    """{(a, b)} between the files of one directory module (store::read -> store::journal), as
    full dotted names: `super::x` in a file of the directory, `crate::dir::x` anywhere in it."""
    found = set()
    for m, path in mods.items():
        if len(m) != 2:
            continue
        text = "\n".join(code_lines(path))
        targets = re.findall(r"\bsuper::([a-z_][a-z0-9_]*)", text)
        targets += re.findall(r"\bcrate::%s::([a-z_][a-z0-9_]*)" % m[0], text)
        for group in re.findall(r"\bsuper::\{([^}]*)\}", text):
            targets += re.findall(r"\b([a-z_][a-z0-9_]*)\b", group)
        for t in targets:
            if (m[0], t) in mods and t != m[1]:
                found.add((".".join(m), f"{m[0]}.{t}"))
    return found


def cycle(nodes, found):
    graph = {n: sorted(t for f, t in found if f == n) for n in nodes}
    state, stack = {}, []

    def visit(n):
        state[n] = 1
        stack.append(n)
        for t in graph[n]:
            if state.get(t) == 1:
                return stack[stack.index(t):] + [t]
            if t not in state:
                c = visit(t)
                if c:
                    return c
        stack.pop()
        state[n] = 2
        return None

    for n in sorted(nodes):
        if n not in state:
            c = visit(n)
            if c:
                return c
    return None


def layer(name):
    for i, l in enumerate(LAYERS):
        if name in l:
            return i
    return None


def self_test():
    """The checks fail where they must: a cycle, a cycle inside a directory, a layer named from
    below (and a clean tree passes)."""
    import tempfile

    cases = {
        "clean": {"lib.rs": "mod a; mod b;", "a.rs": "use crate::b::X;", "b.rs": "pub struct X;"},
        "cycle": {"lib.rs": "", "a.rs": "use crate::b::X;", "b.rs": "use crate::{a::Y};"},
        "inner": {"lib.rs": "", "d/mod.rs": "", "d/x.rs": "use super::y::A;", "d/y.rs": "use super::{x};"},
        "layer": {"lib.rs": "", "format/mod.rs": "use crate::store::Store;", "store/mod.rs": ""},
    }
    for name, files in cases.items():
        with tempfile.TemporaryDirectory() as d:
            src = os.path.join(d, "libkeyring" if name == "layer" else "c", "src")
            for f, text in files.items():
                os.makedirs(os.path.dirname(os.path.join(src, f)), exist_ok=True)
                open(os.path.join(src, f), "w").write(text + "\n")
            import contextlib
            import io

            with contextlib.redirect_stdout(io.StringIO()):
                rc = main([src])
            if rc != (0 if name == "clean" else 1):
                print(f"module-graph: self-test {name}: exit {rc}")
                return 1
    return 0


def main(argv):
    if argv == ["--self-test"]:
        return self_test()
    show = "--print" in argv
    bad = 0
    for src in [a for a in argv if a != "--print"]:
        mods = modules(src)
        found = edges(mods)
        nodes = {m[0] for m in mods if m}
        if show:
            print(f"{src}:")
            for n in sorted(nodes):
                print(f"  {n} -> {', '.join(sorted(t for f, t in found if f == n)) or '-'}")
        inner = inner_edges(mods)
        if show:
            for f in sorted({f for f, _ in inner}):
                print(f"  {f} -> {', '.join(sorted(t for g, t in inner if g == f))}")
        c = cycle(nodes, found) or cycle({x for e in inner for x in e}, inner)
        if c:
            print(f"module-graph: {src}: import cycle {' -> '.join(c)}")
            bad += 1
        if os.path.basename(os.path.dirname(os.path.abspath(src))) == "libkeyring":
            for f, t in sorted(found):
                lf, lt = layer(f), layer(t)
                if lf is None or lt is None:
                    print(f"module-graph: libkeyring module {f if lf is None else t} has no layer")
                    bad += 1
                elif lt > lf:
                    print(f"module-graph: libkeyring: {f} (layer {lf}) names {t} (layer {lt})")
                    bad += 1
    if not bad:
        print(f"module-graph: {len(argv) - show} crates, no cycle, libkeyring's layers kept")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
