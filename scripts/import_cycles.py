"""List the import cycles among laptop_agents modules (a review aid; it changes nothing).

Reads every module under ``src/laptop_agents`` with :mod:`ast` (nothing is
imported or run) and prints each strongly connected group of modules that
import each other, shortest loop first. Three views, because they answer
different questions:

- ``top``: imports at module level, outside ``if TYPE_CHECKING:`` -- the ones
  that can break at import time;
- ``all``: every import, also those inside functions and under
  ``TYPE_CHECKING`` -- the layering a reader (and import-linter) sees;
- ``packages``: ``all`` folded to the first folder under ``laptop_agents``
  (``report``, ``backtest``, ...) -- cycles between layers.

``from pkg import name`` counts as an import of ``pkg.name`` when that is a
module, otherwise of ``pkg`` (its ``__init__``).

    python scripts/import_cycles.py [--view top|all|packages] [--src src]
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = "laptop_agents"


def modules(src: Path) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file of the package."""
    out: dict[str, Path] = {}
    for path in sorted((src / ROOT).rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module, top_only: bool) -> Iterator[ast.Import | ast.ImportFrom]:
    """The import statements of a module; with ``top_only`` only those run at import time."""
    if not top_only:
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                yield node
        return
    stack: list[ast.stmt] = list(tree.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.Import, ast.ImportFrom)):
            yield node
        elif isinstance(node, ast.If) and not _is_type_checking(node.test):
            stack.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            stack.extend(node.body + node.orelse + node.finalbody + [s for h in node.handlers for s in h.body])


def graph(src: Path, top_only: bool) -> dict[str, set[str]]:
    mods = modules(src)
    edges: dict[str, set[str]] = {m: set() for m in mods}
    for name, path in mods.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        for node in _imports(tree, top_only):
            targets: list[str] = []
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            else:
                base = node.module or ""
                if node.level:
                    pkg = name.split(".") if is_pkg else name.split(".")[:-1]
                    pkg = pkg[: len(pkg) - (node.level - 1)]
                    base = ".".join(pkg + ([base] if base else []))
                for alias in node.names:
                    sub = f"{base}.{alias.name}"
                    targets.append(sub if sub in mods else base)
            for t in targets:
                while t and t not in mods:  # "a.b.c" where c is a name: the closest module
                    t = t.rpartition(".")[0]
                if t and t != name and (t == ROOT or t.startswith(ROOT + ".")):
                    edges[name].add(t)
    return edges


def fold(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """Modules folded to their first folder (``laptop_agents.report.build`` -> ``report``)."""

    def top(m: str) -> str:
        parts = m.split(".")
        return parts[1] if len(parts) > 1 else parts[0]

    out: dict[str, set[str]] = {}
    for a, targets in edges.items():
        out.setdefault(top(a), set())
        for b in targets:
            if top(b) != top(a):
                out[top(a)].add(top(b))
    return out


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one node (Tarjan), each sorted, sorted by size."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    groups: list[list[str]] = []
    counter = 0
    sys.setrecursionlimit(10_000)

    def visit(v: str) -> None:
        nonlocal counter
        index[v] = low[v] = counter
        counter += 1
        stack.append(v)
        on.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(groups, key=lambda g: (len(g), g))


def shortest_loop(edges: dict[str, set[str]], group: list[str]) -> list[str]:
    """One shortest loop through the group's first member (breadth first), for reading."""
    members = set(group)
    start = group[0]
    paths = {start: [start]}
    queue = [start]
    while queue:
        v = queue.pop(0)
        for w in sorted(edges.get(v, ())):
            if w == start:
                return paths[v] + [start]
            if w in members and w not in paths:
                paths[w] = paths[v] + [w]
                queue.append(w)
    return group


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--view", choices=("top", "all", "packages"), default="all")
    ap.add_argument("--src", type=Path, default=Path(__file__).resolve().parent.parent / "src")
    args = ap.parse_args()
    edges = graph(args.src, top_only=args.view == "top")
    if args.view == "packages":
        edges = fold(edges)
    found = cycles(edges)
    short = (lambda m: m.removeprefix(ROOT + ".")) if args.view != "packages" else (lambda m: m)
    print(f"{len(found)} cycle group(s) ({args.view} imports)")
    for group in found:
        loop = shortest_loop(edges, group)
        extra = f"  [group of {len(group)}: {', '.join(short(m) for m in group)}]" if len(group) > len(loop) - 1 else ""
        print("  " + " -> ".join(short(m) for m in loop) + extra)
    return 0


if __name__ == "__main__":
    sys.exit(main())
