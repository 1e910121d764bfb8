"""The package's shape: no import cycle among its modules (every import counts, lazy and TYPE_CHECKING ones too), and
nothing in it imports the tests' support code, which lives under tests/ and is not shipped."""

from __future__ import annotations

import ast
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "facemac"


def _modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name → file, for every module of the package (``pkg/__init__.py`` is ``pkg``)."""
    out = {}
    for path in package.rglob("*.py"):
        parts = path.relative_to(package.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imported(tree: ast.AST, module: str, is_package: bool) -> list[tuple[str, ...]]:
    """What each import statement anywhere in ``tree`` names, as absolute candidates in order of preference
    (``from a import b``: the module a.b if there is one, else a)."""
    names = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [(a.name,) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")[: len(module.split(".")) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            names += [(f"{base}.{a.name}", base) for a in node.names]
    return names


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module → the package modules it imports (for ``import a.b.c``, the deepest of those that is a module)."""
    modules = _modules(package)
    graph = {}
    for name, path in modules.items():
        deps = set()
        for candidates in _imported(ast.parse(path.read_text()), name, path.name == "__init__.py"):
            target = next((c for c in candidates if c in modules), candidates[-1])
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name and target != "facemac":  # the root only re-exports facemac.errors
                deps.add(target)
        graph[name] = deps
    return graph


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert {"facemac.analysis.counts", "facemac.analysis.arrays"} <= graph["facemac.analysis.bootstrap"]
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as e:
        raise AssertionError(f"import cycle: {' -> '.join(e.args[1])}") from None


def test_the_cycle_check_finds_a_cycle_made_through_a_type_checking_import(tmp_path):
    pkg = tmp_path / "facemac"
    (pkg / "sub").mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "sub" / "__init__.py").write_text("")
    (pkg / "sub" / "a.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .b import B\n")
    (pkg / "sub" / "b.py").write_text("def f():\n    from facemac.sub import a\n")
    graph = import_graph(pkg)
    assert graph["facemac.sub.a"] == {"facemac.sub.b"} and graph["facemac.sub.b"] == {"facemac.sub.a"}
    try:
        TopologicalSorter(graph).prepare()
    except CycleError:
        return
    raise AssertionError("the cycle a -> b -> a was not found")


def test_nothing_in_the_package_imports_the_test_support():
    offenders = {name: sorted(c[-1] for c in _imported(ast.parse(path.read_text()), name, path.name == "__init__.py")
                              if c[-1].split(".")[0] == "tests")
                 for name, path in _modules().items()}
    assert not {k: v for k, v in offenders.items() if v}
