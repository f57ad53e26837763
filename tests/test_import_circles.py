"""No import circles among the project's own modules.

A circle is two modules that each reach the other through imports. Python tolerates one (an import made
inside a function, or under `if TYPE_CHECKING:`), but a reader following the code goes round it, and a
module-level import added later turns it into an ImportError at start-up. So every import counts here:
module level, inside functions, and type-only ones. Read with `ast`, nothing is imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("bot", "charlm", "training")


def modules(root: Path = ROOT) -> dict[str, Path]:
    """Dotted module name -> file, for every .py file in the project's packages."""
    found = {}
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            if parts[-1] == "__init__":
                parts.pop()
            found[".".join(parts)] = path
    return found


def imports_of(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The project modules `name` imports, anywhere in the file (functions and TYPE_CHECKING blocks too)."""
    is_package = path.name == "__init__.py"
    package = name if is_package else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # `from pkg import sub` imports the module pkg.sub; `from mod import name` imports mod
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in known else source for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import charlm.text.x` -> the deepest module that exists
                target = target.rpartition(".")[0]
            if target and target != name:
                out.add(target)
    return out


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted."""
    index, low, on_stack, stack, found = {}, {}, set(), [], []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def import_graph(root: Path = ROOT) -> dict[str, set[str]]:
    known = modules(root)
    return {name: imports_of(name, path, known) for name, path in known.items()}


def test_the_finder_sees_a_type_only_circle_and_one_inside_a_function(tmp_path):
    pkg = tmp_path / "bot"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "app.py").write_text("from . import handlers\nclass Context: ...\n")
    (pkg / "handlers.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .app import Context\n")
    (pkg / "a.py").write_text("def f():\n    from bot.b import g\n")
    (pkg / "b.py").write_text("from .a import f\n")
    (pkg / "clean.py").write_text("import bot.app\n")
    for other in PACKAGES[1:]:
        (tmp_path / other).mkdir()
    assert sorted(circles(import_graph(tmp_path))) == [["bot.a", "bot.b"], ["bot.app", "bot.handlers"]]


def test_no_import_circles_among_the_projects_modules():
    graph = import_graph()
    assert "bot.handlers" in graph and "training.train" in graph  # the walk found the packages
    found = circles(graph)
    assert not found, "import circles (every import counts: in functions and under TYPE_CHECKING too): " + "; ".join(
        " <-> ".join(c) for c in found)
