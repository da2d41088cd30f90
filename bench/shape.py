"""The shape of the Lambda code: how many modules, how big, how deep the imports go.

    python -m bench.shape        prints module count and sizes, the deepest import chain and
                                 the functions over 60 lines (chalicelib/ and app.py)

Why these figures: a deep import chain means a change to a leaf (config, the clock) is felt
by everything above it and that the layers leak (issue 17 measured 11 modules deep); long
functions are where business rules hide. The figures come from the sources' AST, so nothing
is imported (no environment, no AWS clients, no side effects). The chain follows only the
imports that run at import time (module level); imports inside functions are counted as
dependencies by tests/test_layers.py, not as part of the chain.
"""

from __future__ import annotations

import ast
import functools
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = "chalicelib"
LONG_FUNCTION = 60  # lines, decorators and docstring included


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted name -> source file for ``app`` and every module under chalicelib/."""
    found = {"app": root / "app.py"}
    for path in sorted((root / PACKAGE).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = path
    return found


def _targets(node: ast.Import | ast.ImportFrom, here: str, known: set[str]) -> set[str]:
    """The project modules one import statement loads (``from chalicelib import a`` loads
    ``chalicelib.a`` when that is a module, else the package itself)."""
    if isinstance(node, ast.Import):
        return {alias.name for alias in node.names if alias.name in known}
    base = node.module or ""
    if node.level:  # relative: resolved against the importing module's package
        package = here.split(".")[: -node.level] if not here.endswith("__init__") else here.split(".")
        base = ".".join([*package, *([base] if base else [])])
    found = set()
    for alias in node.names:
        if f"{base}.{alias.name}" in known:
            found.add(f"{base}.{alias.name}")
        elif base in known:
            found.add(base)
    return found


def imports(path: Path, here: str, known: set[str], module_level_only: bool) -> set[str]:
    """Project modules ``path`` imports; ``module_level_only`` skips imports inside functions
    and ``if TYPE_CHECKING:`` blocks (they do not run when the module is imported)."""
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()

    def visit(node: ast.AST, top: bool) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.Import | ast.ImportFrom):
                if top or not module_level_only:
                    found.update(_targets(child, here, known))
            elif isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.Lambda) or (
                    isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test)):
                visit(child, False)
            else:
                visit(child, top)

    visit(tree, True)
    found.discard(here)
    return found


def graph(module_level_only: bool = True, root: Path = ROOT) -> dict[str, set[str]]:
    """Module -> the project modules it imports."""
    found = modules(root)
    known = set(found)
    return {name: imports(path, name, known, module_level_only) for name, path in found.items()}


def deepest_chain(edges: dict[str, set[str]], start: str = PACKAGE) -> list[str]:
    """The longest import path between modules whose names start with ``start`` (the graph
    has no cycles at import time; a cycle would fail the import, so it is not guarded)."""

    @functools.cache
    def longest(name: str) -> tuple[str, ...]:
        below = [longest(dep) for dep in sorted(edges[name]) if dep.startswith(start)]
        return (name, *max(below, key=len, default=()))

    return list(max((longest(name) for name in sorted(edges) if name.startswith(start)), key=len))


def packages_as_one(edges: dict[str, set[str]]) -> dict[str, set[str]]:
    """The graph with each subpackage of chalicelib (the store) folded into one node: the chain
    between layers, without a package's own files importing each other."""

    def node(name: str) -> str:
        parts = name.split(".")
        return ".".join(parts[:2]) if len(parts) > 2 and parts[0] == PACKAGE else name

    folded: dict[str, set[str]] = {}
    for name, targets in edges.items():
        folded.setdefault(node(name), set()).update(node(t) for t in targets)
    for name, targets in folded.items():
        targets.discard(name)
    return folded


def long_functions(limit: int = LONG_FUNCTION, root: Path = ROOT) -> list[tuple[str, str, int]]:
    """(module, qualified function name, lines) for every function longer than ``limit``."""
    found = []
    for name, path in modules(root).items():
        tree = ast.parse(path.read_text(encoding="utf-8"))

        def visit(node: ast.AST, prefix: str, module: str = name) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                    start = min([child.lineno, *(d.lineno for d in child.decorator_list)])
                    size = (child.end_lineno or child.lineno) - start + 1
                    if size > limit:
                        found.append((module, prefix + child.name, size))
                    visit(child, f"{prefix}{child.name}.")
                elif isinstance(child, ast.ClassDef):
                    visit(child, f"{prefix}{child.name}.")

        visit(tree, "")
    return sorted(found, key=lambda row: -row[2])


def main() -> int:
    found = modules()
    sizes = {name: len(path.read_text(encoding="utf-8").splitlines()) for name, path in found.items()}
    package = {name: lines for name, lines in sizes.items() if name.startswith(PACKAGE)}
    ordered = sorted(package.values())
    print(f"chalicelib: {len(package)} modules, {sum(ordered)} lines "
          f"(median {ordered[len(ordered) // 2]}, largest {ordered[-1]}); app.py {sizes['app']} lines")
    for name, lines in sorted(package.items(), key=lambda row: -row[1]):
        print(f"  {lines:>5}  {name}")
    chain = deepest_chain(graph())
    print(f"deepest import chain in chalicelib ({len(chain)} modules): "
          + " -> ".join(name.removeprefix(f"{PACKAGE}.") for name in chain))
    folded = deepest_chain(packages_as_one(graph()))
    print(f"  the same with chalicelib.store as one module ({len(folded)}): "
          + " -> ".join(name.removeprefix(f"{PACKAGE}.") for name in folded))
    long = long_functions()
    print(f"functions over {LONG_FUNCTION} lines: {len(long)}")
    for module, function, lines in long:
        print(f"  {lines:>5}  {module}.{function}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
