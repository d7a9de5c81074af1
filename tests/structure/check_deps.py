#!/usr/bin/env python3
"""check_deps.py - the library's parts and their dependencies, read from the object files.

Usage: check_deps.py --src SRC_DIR OBJ_ROOT... [--print]

OBJ_ROOT holds one object file per source file under src/ (a CMake object folder, e.g.
build/CMakeFiles/eplb_objs.dir/src and build/CMakeFiles/libeplb_mpi.dir/src); an object whose
source is no longer in SRC_DIR (left in a build folder after a file moved) is passed over. For every object,
`nm` lists the symbols it defines and those it uses; file A depends on file B when A uses a
symbol B defines. Checks two rules of src/README.md:
  1. no cycle between files (a file never depends, through others, on one that depends on it);
  2. a part (the folder under src/: core, io, collect, plan, move, report, rebalance, mpi) uses
     only the parts ALLOWED names for it.
Prints each violation on one line and exits 1; with --print also the file graph.
"""
import os
import subprocess
import sys

# What each part may use (besides itself). Keep in step with src/README.md.
ALLOWED = {
    "core": set(),
    "io": {"core"},
    "collect": {"core", "io"},
    "plan": {"core"},
    "move": {"core"},
    "report": {"core", "plan"},
    "rebalance": {"core", "io", "collect", "plan", "move", "report"},
    "mpi": {"core", "io", "collect", "move"},
}


def objects(root):
    for d, _, files in os.walk(root):
        for f in files:
            if f.endswith(".o"):
                yield os.path.join(d, f)


def symbols(path):
    out = subprocess.run(["nm", "-g", path], check=True, capture_output=True, text=True).stdout
    defined, used = set(), set()
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 2 and parts[-2] == "U":
            used.add(parts[-1])
        elif len(parts) == 3 and parts[1] in "TDBRC":
            defined.add(parts[2])
    return defined, used


def name_of(path, roots):
    for r in roots:
        if path.startswith(r):
            rel = os.path.relpath(path, r)
            return rel[: -len(".c.o")] + ".c" if rel.endswith(".c.o") else rel
    return path


def main(argv):
    args = argv[1:]
    src = None
    if "--src" in args:
        i = args.index("--src")
        src = os.path.abspath(args[i + 1])
        del args[i : i + 2]
    roots = [os.path.abspath(a) for a in args if not a.startswith("--")]
    if not roots or not src:
        print(__doc__, file=sys.stderr)
        return 2
    files, defs = {}, {}
    for r in roots:
        for o in objects(r):
            name = name_of(o, roots)
            if not os.path.exists(os.path.join(src, name)):
                continue
            d, u = symbols(o)
            files[name] = u
            for s in d:
                defs[s] = name
    graph = {f: sorted({defs[s] for s in u if s in defs and defs[s] != f}) for f, u in files.items()}
    bad = 0
    for f, deps in sorted(graph.items()):
        pf = f.split("/")[0]
        for g in deps:
            pg = g.split("/")[0]
            if pg != pf and pg not in ALLOWED.get(pf, set()):
                print(f"part rule: {f} uses {g} ({pf} may not use {pg})")
                bad += 1
    # Cycles: Tarjan's strongly connected components.
    index, low, stack, on, comps = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, []):
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
            if len(comp) > 1:
                comps.append(sorted(comp))

    sys.setrecursionlimit(10000)
    for v in sorted(graph):
        if v not in index:
            visit(v)
    for c in comps:
        print("cycle: " + " <-> ".join(c))
        bad += 1
    if "--print" in argv:
        for f, deps in sorted(graph.items()):
            print(f"{f}: {' '.join(deps)}")
    print(f"check_deps: {len(files)} files, {sum(len(d) for d in graph.values())} dependencies, "
          f"{len(comps)} cycles, {bad} violations")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
