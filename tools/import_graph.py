"""Print the import graph between streamtsm's packages and fail if it has a cycle.

A "package" is a top-level part of streamtsm: a sub-package (``backends``, ``models``, …) or a
top-level module (``card``, ``session``, …). Edges come from the source text (``ast``), so
nothing is executed: module-level imports are the dependency graph; imports inside functions
are listed separately (they are how the runtime reaches the optional torch side, and must not
exist only to hide a cycle). Exit code 1 if the module-level graph has a cycle.

    python tools/import_graph.py            # the graph, one line per package
    python tools/import_graph.py --dot      # Graphviz
"""

from __future__ import annotations

import argparse
import ast
import sys
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "streamtsm"


def _part(module: str) -> str | None:
    """``streamtsm.backends.base`` -> ``backends``; ``streamtsm`` itself -> ``__init__``."""
    parts = module.split(".")
    if parts[0] != "streamtsm":
        return None
    return parts[1] if len(parts) > 1 else "__init__"


def _module_name(path: Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _resolve(node: ast.ImportFrom, module: str, is_package: bool) -> list[str]:
    if node.level == 0:
        base = node.module or ""
    else:
        pkg = module.split(".") if is_package else module.split(".")[:-1]
        pkg = pkg[: len(pkg) - (node.level - 1)]
        base = ".".join(pkg + ([node.module] if node.module else []))
    if node.module is None:  # from . import a, b: submodules, or names defined in the package itself
        folder = PACKAGE.parent.joinpath(*base.split("."))
        return [f"{base}.{a.name}" if (folder / a.name).is_dir() or (folder / f"{a.name}.py").is_file() else base
                for a in node.names]
    return [base]


def imports_of(path: Path) -> tuple[set[str], set[str]]:
    """(module-level imports, function-level imports) of one file, as absolute module names."""
    module = _module_name(path)
    is_package = path.name == "__init__.py"
    tree = ast.parse(path.read_text(encoding="utf-8"))
    top: set[str] = set()
    nested: set[str] = set()

    def visit(node: ast.AST, inside_function: bool, under_type_checking: bool) -> None:
        for child in ast.iter_child_nodes(node):
            in_func = inside_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef))
            guarded = under_type_checking or (
                isinstance(child, ast.If) and isinstance(child.test, ast.Name) and child.test.id == "TYPE_CHECKING"
            )
            names: list[str] = []
            if isinstance(child, ast.Import):
                names = [a.name for a in child.names]
            elif isinstance(child, ast.ImportFrom):
                names = _resolve(child, module, is_package)
            if names and not guarded:
                (nested if in_func else top).update(names)
            visit(child, in_func, guarded)

    visit(tree, False, False)
    return top, nested


def graph() -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    top_edges: dict[str, set[str]] = defaultdict(set)
    nested_edges: dict[str, set[str]] = defaultdict(set)
    for path in sorted(PACKAGE.rglob("*.py")):
        src = _part(_module_name(path))
        top, nested = imports_of(path)
        for edges, names in ((top_edges, top), (nested_edges, nested)):
            for name in names:
                dst = _part(name)
                if dst is not None and dst != src and src is not None:
                    edges[src].add(dst)
        top_edges.setdefault(src, set())
    return dict(top_edges), dict(nested_edges)


def find_cycle(edges: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt == "__init__":
                continue  # the package root re-exports lazily; importing it is not a dependency
            if state.get(nxt) == 1:
                return stack[stack.index(nxt):] + [nxt]
            if state.get(nxt) is None and (cycle := dfs(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(edges):
        if state.get(node) is None and (cycle := dfs(node)):
            return cycle
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dot", action="store_true", help="print Graphviz dot instead of text")
    args = parser.parse_args(argv)
    top, nested = graph()
    if args.dot:
        print("digraph streamtsm {")
        for src in sorted(top):
            for dst in sorted(top[src]):
                print(f'  "{src}" -> "{dst}";')
            for dst in sorted(nested.get(src, set()) - top[src]):
                print(f'  "{src}" -> "{dst}" [style=dashed];')
        print("}")
    else:
        width = max(map(len, top))
        for src in sorted(top):
            line = f"{src:<{width}} -> {', '.join(sorted(top[src])) or '-'}"
            lazy = sorted(nested.get(src, set()) - top[src])
            print(line + (f"   (inside functions: {', '.join(lazy)})" if lazy else ""))
    cycle = find_cycle(top)
    if cycle:
        print("cycle: " + " -> ".join(cycle), file=sys.stderr)
        return 1
    print("no cycle", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
