"""The package's shape: no import cycle among `src/deepprune` modules, and no module over 450 lines.

Imports are read with `ast`, never executed. An import counts for cycles when it runs as the module loads (module
level, class bodies, `try`/`if` blocks there), not under `if TYPE_CHECKING:`. Imports inside functions are how
the project defers heavy dependencies and breaks a dependency that would otherwise loop, so they are reported
(`python -m pytest tests/test_architecture.py -s` prints the cycles they close) but never fail the test.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"
PACKAGE = "deepprune"
MAX_LINES = 450


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(tree: ast.Module) -> tuple[list[ast.stmt], list[ast.stmt]]:
    """(imports run at load time, imports inside functions); `if TYPE_CHECKING:` bodies are neither."""
    eager: list[ast.stmt] = []
    lazy: list[ast.stmt] = []

    def visit(nodes: list[ast.stmt], in_function: bool) -> None:
        for node in nodes:
            if isinstance(node, ast.Import | ast.ImportFrom):
                (lazy if in_function else eager).append(node)
            elif isinstance(node, ast.If) and _is_type_checking(node.test):
                visit(node.orelse, in_function)
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                visit(node.body, True)
            else:
                for field in ("body", "orelse", "finalbody", "handlers", "cases"):
                    children = getattr(node, field, None)
                    if isinstance(children, list):
                        for child in children:
                            # except handlers and match cases hold their statements one level down
                            visit(child.body if hasattr(child, "pattern") or isinstance(child, ast.excepthandler)
                                  else [child], in_function)  # fmt: skip

    visit(tree.body, False)
    return eager, lazy


def _targets(node: ast.stmt, importer: str, is_package: bool, modules: set[str]) -> set[str]:
    """The package modules an import statement loads (the most specific module each name resolves to)."""
    if isinstance(node, ast.Import):
        names = [alias.name for alias in node.names]
    else:
        base = node.module or ""
        if node.level:  # relative: from the importer's package, one level up per extra dot
            package = importer.split(".") if is_package else importer.split(".")[:-1]
            package = package[: len(package) - (node.level - 1)]
            base = ".".join([*package, base] if base else package)
        names = [f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names]
    found = set()
    for name in names:
        while name and name not in modules:  # `import a.b.c` of a non-module attribute: its module
            name = name.rpartition(".")[0]
        if name and name != importer:
            found.add(name)
    return found


def import_graph(root: Path, package: str = PACKAGE) -> tuple[dict[str, set[str]], dict[str, set[str]]]:
    """(load-time edges, function-level edges) between the modules of `root/package`."""
    files = {module_name(p, root): p for p in sorted((root / package).rglob("*.py"))}
    modules = set(files)
    eager: dict[str, set[str]] = {}
    lazy: dict[str, set[str]] = {}
    for name, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        now, later = _imports(tree)
        is_package = path.name == "__init__.py"
        eager[name] = set().union(*(_targets(n, name, is_package, modules) for n in now))
        lazy[name] = set().union(*(_targets(n, name, is_package, modules) for n in later)) - eager[name]
    return eager, lazy


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan), each sorted, largest first."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                connect(w)
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
            connect(v)
    return sorted(found, key=lambda c: (-len(c), c))


def _describe(component: list[str], graph: dict[str, set[str]]) -> str:
    inside = set(component)
    edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a] & inside)]
    return f"{len(component)} modules: " + "; ".join(edges)


def test_no_import_cycle_at_load_time():
    eager, lazy = import_graph(SRC)
    assert len(eager) > 50 and "deepprune.judge.siamese" in eager["deepprune.judge.export"]  # the walker sees
    found = cycles(eager)
    assert not found, "import cycles among module-level imports:\n" + "\n".join(_describe(c, eager) for c in found)
    both = {m: eager[m] | lazy[m] for m in eager}
    for component in cycles(both):  # reported, not failed: function-level imports defer the load
        print("closed only by function-level imports:", _describe(component, both))


def test_no_module_over_450_lines():
    sizes = {p.relative_to(SRC).as_posix(): len(p.read_text().splitlines()) for p in (SRC / PACKAGE).rglob("*.py")}
    offenders = {path: n for path, n in sorted(sizes.items(), key=lambda kv: -kv[1]) if n > MAX_LINES}
    assert not offenders, f"modules over {MAX_LINES} lines (split them by responsibility): {offenders}"


def test_the_walker_finds_cycles_and_skips_lazy_and_type_checking_imports(tmp_path):
    """The checks above are only as good as the import reader: a synthetic package with known edges."""
    pkg = tmp_path / "pkg"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "__init__.py": "",
        "a.py": "from pkg import b\n",
        "b.py": "import pkg.c\ntry:\n    from . import d\nexcept ImportError:\n    d = None\n",
        "c.py": "from pkg.a import something\n",  # a name inside pkg.a: the edge is to pkg.a
        "d.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg import a\n",
        "e.py": "def f():\n    from pkg import a\n\nclass K:\n    from pkg.sub import x\n",
        "sub/__init__.py": "from .x import y\n",
        "sub/x.py": "from ..d import z\n",
    }
    for name, text in files.items():
        (pkg / name).write_text(text)
    eager, lazy = import_graph(tmp_path, "pkg")
    assert eager == {
        "pkg": set(),
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg.c", "pkg.d"},
        "pkg.c": {"pkg.a"},
        "pkg.d": set(),
        "pkg.e": {"pkg.sub.x"},
        "pkg.sub": {"pkg.sub.x"},
        "pkg.sub.x": {"pkg.d"},
    }
    assert lazy["pkg.e"] == {"pkg.a"} and not lazy["pkg.d"]
    assert cycles(eager) == [["pkg.a", "pkg.b", "pkg.c"]]
    (pkg / "d.py").write_text("def g():\n    from pkg import b\n")
    eager, lazy = import_graph(tmp_path, "pkg")
    assert cycles(eager) == [["pkg.a", "pkg.b", "pkg.c"]]  # the function-level import adds no load-time edge
    assert cycles({m: eager[m] | lazy[m] for m in eager}) == [["pkg.a", "pkg.b", "pkg.c", "pkg.d"]]


@pytest.mark.parametrize(
    ("importer", "is_package", "statement", "expected"),
    [
        ("pkg.sub.x", False, "from .. import a", {"pkg.a"}),
        ("pkg.sub", True, "from . import x", {"pkg.sub.x"}),
        ("pkg.sub.x", False, "from . import y", {"pkg.sub"}),  # a name, not a module: its package
        ("pkg.a", False, "import os, pkg.sub.x", {"pkg.sub.x"}),
    ],
)
def test_relative_and_plain_imports_resolve(importer, is_package, statement, expected):
    modules = {"pkg", "pkg.a", "pkg.sub", "pkg.sub.x"}
    node = ast.parse(statement).body[0]
    assert _targets(node, importer, is_package, modules) == expected
