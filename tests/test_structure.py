"""The package's structure: imports only go down the floors, and no two modules import each other in a loop.

Read from the source (every `import`, at module level or inside a function), so the test needs no TensorFlow.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

GATE = Path(__file__).resolve().parent.parent / "gate"

# Lowest first. A module may import modules of its own floor or below, never above.
FLOORS = (
    (
        "ground",
        (
            "errors",
            "escape",
            "keys",
            "files",
            "layout",
            "encoding",
            "results",
            "findings",
            "figures",
            "discover",
            "readback",
            "environment",
        ),
    ),
    ("inspection", ("inspection",)),
    ("tasks", ("tasks",)),
    ("frontends", ("frontends",)),
    ("quantization", ("quantization",)),
    ("targets", ("targets",)),
    ("policy", ("policy",)),
    ("measurement", ("measurement",)),
    ("gating", ("gating",)),
    ("reporting", ("reporting",)),
    ("scheduling", ("scheduling",)),
    ("ci", ("ci",)),
    ("commands", ("commands",)),
    ("cli", ("cli",)),
)
FLOOR_OF = {part: number for number, (_, parts) in enumerate(FLOORS) for part in parts}


def module_name(path: Path) -> str:
    parts = path.relative_to(GATE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The gate modules `path` imports; `from gate.x import y` counts as gate.x.y when that is a module."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module and node.module.startswith("gate"):
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & MODULES.keys()
            # `from gate.commands import options` imports the module options, not what the package defines.
            found |= submodules if len(submodules) == len(node.names) else {node.module, *submodules}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("gate")}
    return {name for name in found if name in MODULES}


MODULES = {module_name(path): path for path in GATE.rglob("*.py")}
GRAPH = {name: imports(path) - {name} for name, path in MODULES.items()}


def floor(module: str) -> int | None:
    """The floor of gate.<part>...; None for gate itself (its version only)."""
    parts = module.split(".")
    return FLOOR_OF[parts[1]] if len(parts) > 1 else None


def test_every_module_has_a_floor() -> None:
    unplaced = sorted({name.split(".")[1] for name in MODULES if "." in name} - set(FLOOR_OF))
    assert not unplaced, f"give these a floor in FLOORS: {unplaced}"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_only_go_down(module: str) -> None:
    here = floor(module)
    above = sorted(
        target for target in GRAPH[module] if here is not None and (there := floor(target)) is not None and there > here
    )
    assert not above, f"{module} (floor {FLOORS[here][0]}) imports from a higher floor: {above}"


def test_no_module_imports_itself_through_others() -> None:
    """No circle: a depth-first search finds no edge back to a module still on the path."""
    circles = []
    state: dict[str, str] = {}

    def visit(module: str, path: list[str]) -> None:
        state[module] = "open"
        for target in sorted(GRAPH[module]):
            if state.get(target) == "open":
                circles.append(" -> ".join([*path[path.index(target) :], target]))
            elif target not in state:
                visit(target, [*path, target])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert not circles, "import circles:\n" + "\n".join(circles)
