#!/usr/bin/env python3
"""The layer check `make test` runs first: each C file in common/, collector/
and sink/ may include only headers of its own layer or a layer below it
(common <- collector, common <- sink; collector and sink never include each
other), and no header includes lead round in a cycle. tests/ may include
anything and is not checked. Exit 1, naming each file and line, otherwise 0."""

import os
import re
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Each layer and the layers it may include (its own included).
MAY_INCLUDE = {
    "common": {"common"},
    "collector": {"collector", "common"},
    "sink": {"sink", "common"},
}
SEARCH = ["common", "collector", "sink"]  # the Makefile's -I order
INCLUDE = re.compile(r'^\s*#\s*include\s*"([^"]+)"', re.M)


def layer_of(rel):
    top = rel.split(os.sep, 1)[0]
    return top if top in MAY_INCLUDE else None


def sources(root):
    for layer in MAY_INCLUDE:
        for d, _, files in os.walk(os.path.join(root, layer)):
            for f in sorted(files):
                if f.endswith((".c", ".h")):
                    yield os.path.relpath(os.path.join(d, f), root)


def resolve(root, rel, name):
    """The path (from ROOT) the compiler would open for #include "name" in rel,
    or None when it is outside the tree (a generated or system header)."""
    for d in [os.path.dirname(rel)] + SEARCH:
        p = os.path.normpath(os.path.join(d, name))
        if os.path.isfile(os.path.join(root, p)):
            return p
    return None


def find_cycles(graph):
    """Each include cycle once, as a list of files (Tarjan's strongly
    connected components; a component of more than one file, or a file
    including itself, holds a cycle)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1 or v in graph.get(v, ()):
                out.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def check(root=ROOT):
    """Every problem in the tree at root, one line each."""
    problems, graph = [], {}
    for rel in sources(root):
        mine = layer_of(rel)
        with open(os.path.join(root, rel), encoding="utf-8", errors="replace") as f:
            text = f.read()
        for m in INCLUDE.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            target = resolve(root, rel, m.group(1))
            if target is None:
                continue
            theirs = layer_of(target)
            if theirs is None:
                problems.append(f"{rel}:{line}: includes {m.group(1)}, outside common/, "
                                f"collector/ and sink/")
            elif theirs not in MAY_INCLUDE[mine]:
                problems.append(f"{rel}:{line}: {mine}/ includes {target}: {mine} may include "
                                f"only {' and '.join(sorted(MAY_INCLUDE[mine]))}")
            graph.setdefault(rel, set()).add(target)
    for cycle in find_cycles(graph):
        problems.append("include cycle: " + " -> ".join(cycle + cycle[:1]))
    return problems


def main():
    problems = check()
    for p in problems:
        print(p, file=sys.stderr)
    if problems:
        print(f"layer check: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    print("layer check: ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
