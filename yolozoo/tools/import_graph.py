"""Fail on an import circle inside the yolozoo package: ``python -m yolozoo.tools.import_graph``.

Every ``import``/``from ... import`` of a yolozoo module counts, at module level or inside a
function: a circle hidden behind a function-level import is still two modules that need each
other. ``--top-level`` counts module-level imports only (what Python needs at import time).
Prints each circle as ``a -> b -> a`` and exits 1; exits 0 when there is none.
"""

from __future__ import annotations

import argparse
import ast
import sys
from pathlib import Path

PACKAGE = "yolozoo"


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _resolve(module: str, level: int, current: str, is_package: bool) -> str:
    if level == 0:
        return module
    base = current.split(".")
    base = base if is_package else base[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def imports_of(path: Path, current: str, modules: set[str], top_level: bool = False) -> set[str]:
    """The yolozoo modules ``path`` imports (``from pkg import mod`` counts ``pkg.mod`` if it is a module)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
    nodes = tree.body if top_level else list(ast.walk(tree))
    is_package = path.name == "__init__.py"
    out = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            target = _resolve(node.module or "", node.level, current, is_package)
            names = [f"{target}.{a.name}" if f"{target}.{a.name}" in modules else target for a in node.names]
        else:
            continue
        for name in names:
            while name and name not in modules:  # yolozoo.models.layers.ConvBNAct -> yolozoo.models.layers
                name = name.rpartition(".")[0]
            if name and name != current and name.startswith(PACKAGE):
                out.add(name)
    return out


def graph(root: Path, top_level: bool = False) -> dict[str, set[str]]:
    files = {module_name(p, root.parent): p for p in sorted(root.rglob("*.py"))}
    modules = set(files)
    edges = {m: imports_of(p, m, modules, top_level) for m, p in files.items()}
    # importing a submodule runs its package's __init__; a package importing its own submodules is not a circle
    return {m: {t for t in ts if not m.startswith(t + ".")} for m, ts in edges.items()}


def circles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each as a sorted list."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(edges.get(v, ())):
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
                out.append(sorted(comp))

    sys.setrecursionlimit(max(10000, sys.getrecursionlimit()))
    for v in sorted(edges):
        if v not in index:
            visit(v)
    return sorted(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--top-level", action="store_true", help="count module-level imports only")
    args = parser.parse_args(argv)
    root = Path(__file__).resolve().parents[1]
    found = circles(graph(root, args.top_level))
    for comp in found:
        print("import circle: " + " <-> ".join(comp))
    print(f"{len(found)} import circle(s) in {PACKAGE}" + (" (module-level imports)" if args.top_level else ""))
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
