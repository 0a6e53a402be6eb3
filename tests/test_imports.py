"""The package's shape: no import circle between its modules nor between its stage packages,
and the package map of docs/development.md names every module."""

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


def circles_of(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every circle a depth-first walk of `graph` finds (none in an acyclic graph)."""
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
    return circles


def stage_package(module: str) -> str:
    """`codit.judged.mtbench` -> `judged`; a top-level module (`codit.cli`) is its own."""
    return module.split(".")[1]


def test_no_module_imports_one_that_imports_it_back():
    assert circles_of(import_graph()) == []


def test_no_stage_package_imports_one_that_imports_it_back():
    packages: dict[str, set[str]] = {}
    for module, targets in import_graph().items():
        mine = stage_package(module)
        packages.setdefault(mine, set())
        packages[mine] |= {stage_package(t) for t in targets} - {mine}
    assert circles_of(packages) == []
    # every module lives in a stage package but the command itself
    top_level = sorted(m for m in import_graph() if m.count(".") == 1)
    assert top_level == ["codit.__main__", "codit.cli"]


def test_the_package_map_names_every_module():
    text = (REPO / "docs/development.md").read_text()
    table = text[text.index("## Package map") :]
    missing = [
        name
        for name in sorted(import_graph())
        if name.count(".") == 2 and f"`{name.removeprefix('codit.')}`" not in table
    ]
    assert missing == []


def test_every_command_is_served_by_the_module_the_cli_names():
    """The CLI's map imports each stage's module only when the stage runs; each serves it."""
    from codit import cli

    for stage in cli.stages():
        module = cli.stage_module(stage)
        assert callable(module.add_arguments) and callable(module.run), stage
