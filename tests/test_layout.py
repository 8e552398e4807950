"""The package layout: no import cycles, arrows only down the layer table, public names.

The import graph is read from the source (every ``import`` and ``from ... import`` of
``descend``, inside functions too), so a lazy import that closes a cycle is caught as
well. The layers are those of the README's "Layout" section.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

import descend

PACKAGE = Path(descend.__file__).parent
README = PACKAGE.parents[1] / "README.md"

# Lowest first. A unit (a top-level module or package of descend) imports only units of
# lower layers.
LAYERS = [
    {"errors", "_version"},
    {"_tree", "_json", "_html"},
    {"rules", "calculus", "expr", "cache"},
    {"functions", "mgh", "optim"},
    {"losses", "models", "metrics", "callbacks"},
    {"data"},
    {"engine"},
    {"checkpoint"},
    {"distributed"},
    {"multistart", "sweeps"},
    {"minimization", "training"},
    {"plot", "sklearn"},
    {"web"},
    {"cli"},
    {"descend", "__main__"},  # the package itself
]
LAYER_OF = {unit: level for level, units in enumerate(LAYERS) for unit in units}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {_module_name(path): path for path in PACKAGE.rglob("*.py")}


def _resolve(name: str) -> str | None:
    """The module file that ``name`` (a module or a name in one) comes from."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
            found |= {_resolve(name) for name in names if name.startswith("descend")}
        elif isinstance(node, ast.ImportFrom) and (node.module or "").startswith("descend"):
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in MODULES else _resolve(node.module))
    return found - {None}


GRAPH = {module: _imports(path) - {module} for module, path in MODULES.items()}


def _unit(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "descend"


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for successor in sorted(graph[node]):
            if successor not in index:
                visit(successor)
                low[node] = min(low[node], low[successor])
            elif successor in on_stack:
                low[node] = min(low[node], index[successor])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_no_module_imports_a_module_that_imports_it_back():
    assert _cycles(GRAPH) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_every_unit_has_a_layer():
    assert {_unit(module) for module in MODULES} <= set(LAYER_OF)


def test_imports_point_down_the_layer_table():
    upward = sorted(
        f"{module} -> {target}"
        for module, targets in GRAPH.items()
        for target in targets
        if _unit(target) != _unit(module) and LAYER_OF[_unit(target)] >= LAYER_OF[_unit(module)]
    )
    assert upward == []


def test_no_module_is_named_like_the_function_it_exports():
    """``import descend.minimize`` must not shadow ``descend.minimize``, nor fit or compare."""
    for name in ("minimize", "fit", "compare", "race", "save", "load"):
        assert f"descend.{name}" not in MODULES
    assert callable(descend.minimize) and callable(descend.fit) and callable(descend.compare)


@pytest.mark.parametrize("name", descend.__all__)
def test_every_public_name_imports_from_the_package(name):
    # What "from descend import name" does: import the package, then read the name.
    module = __import__("descend", fromlist=[name])
    assert getattr(module, name) is getattr(descend, name)


def _readme_layout() -> dict[str, str]:
    """``{unit: what the README's Layout table says it imports}``."""
    text = README.read_text()
    section = text[text.index("## Layout") :]
    section = section[: section.index("\n## ", 1)]
    rows = re.findall(r"^\| `(\w+)/?` \| .* \| (.*) \|$", section, flags=re.MULTILINE)
    return dict(rows)


def test_the_readme_layout_names_every_unit_and_nothing_else():
    units = {_unit(module) for module in MODULES} - {"descend", "__main__", "_version"}
    assert set(_readme_layout()) == units


def test_the_readme_layout_says_what_each_unit_imports():
    imported: dict[str, set[str]] = {}
    for module, targets in GRAPH.items():
        imported.setdefault(_unit(module), set()).update(
            _unit(target) for target in targets if _unit(target) != _unit(module)
        )
    for unit, said in _readme_layout().items():
        if said == "everything above":
            continue
        named = set(re.findall(r"`(\w+)`", said))
        assert named == imported.get(unit, set()), unit
