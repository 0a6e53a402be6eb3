"""The package's shape: no import circle between its modules, and the README's package map
names every module."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "src" / "codit"


def module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Module -> the codit modules it imports anywhere in its code (also inside functions and
    under TYPE_CHECKING). A package itself (`codit`, `codit.tinyworld`) is left out: importing
    any submodule imports it, so it is no circle."""
    paths = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    packages = {module_name(path) for path in PACKAGE.rglob("__init__.py")}
    graph: dict[str, set[str]] = {}
    for name, path in paths.items():
        if name in packages:
            continue
        targets = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("codit"):
                for alias in node.names:
                    sub = f"{node.module}.{alias.name}"
                    targets.add(sub if sub in paths else node.module)
            elif isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names if alias.name.startswith("codit")}
        graph[name] = {target for target in targets - packages if target != name}
    return graph


def test_no_module_imports_one_that_imports_it_back():
    graph = import_graph()
    state: dict[str, str] = {}
    circles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = "open"
        for target in sorted(graph.get(node, ())):
            if state.get(target) == "open":
                circles.append([*trail[trail.index(target) :], target])
            elif target not in state:
                visit(target, [*trail, target])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert circles == []


def test_the_readme_package_map_names_every_module():
    readme = (REPO / "README.md").read_text()
    table = readme[readme.index("**Package map**") :]
    missing = [
        name
        for name in sorted(import_graph())
        if name.count(".") == 1
        and not name.endswith("__main__")  # `python -m codit`, the `codit` command
        and f"`{name.removeprefix('codit.')}`" not in table
    ]
    missing += [] if "`tinyworld/`" in table else ["codit.tinyworld"]
    assert missing == []
