"""Layers only call downward: every module of the project sits on one layer and imports only
from its own layer or those below it. There are no exceptions: a new module must be placed here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import wipsvc

PACKAGE = Path(wipsvc.__file__).parent

# Lowest first. A name is a package (its modules) or a top-level module of `wipsvc`.
LAYERS: tuple[tuple[str, ...], ...] = (
    # The service's own words, and pure functions that need nothing of the project.
    ("domain", "text", "extraction", "tasks"),
    ("config", "collection", "credentials", "collection_access", "limits", "logs"),
    ("store",),
    # Real clients and built-in defaults, behind the contracts of adapters/base.py.
    ("adapters",),
    ("pipeline",),
    ("jobs", "notify"),
    # The edges: what people and other programs talk to.
    (
        "api",
        "realtime",
        "web",
        "client",
        "demo",
        "app",
        "cli",
        "__main__",
        "services",
        "serving",
        "server_options",
        "startup",
        "metrics",
        "auth",
        "check_config",
        "keys_cli",
        "collections_cli",
        "embedded",
    ),
)
LAYER_OF = {name: level for level, names in enumerate(LAYERS) for name in names}
# Only the edge speaks HTTP and Socket.IO.
WEB = ("fastapi", "starlette", "socketio", "engineio", "uvicorn")
EDGE = len(LAYERS) - 1


def _unit(path: Path) -> str:
    """The layer name of a module: its top-level package or module under `wipsvc`."""
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


MODULES = sorted(path for path in PACKAGE.rglob("*.py") if _unit(path) != "__init__")


def test_every_module_has_a_layer() -> None:
    unplaced = {_unit(path) for path in MODULES} - set(LAYER_OF)
    assert not unplaced, f"place these in LAYERS: {sorted(unplaced)}"


def _violations(unit: str, imports: list[str]) -> list[str]:
    """The imports of a module on ``unit``'s layer that reach above it (or the web, below the edge)."""
    level = LAYER_OF[unit]
    found = []
    for name in imports:
        if (level < EDGE and name.startswith(WEB)) or (
            name.startswith("wipsvc.") and LAYER_OF[name.split(".")[1]] > level
        ):
            found.append(name)
    return found


@pytest.mark.parametrize("path", MODULES, ids=lambda path: str(path.relative_to(PACKAGE)))
def test_imports_go_only_downward(path: Path) -> None:
    assert _violations(_unit(path), _imports(path)) == [], f"{path.relative_to(PACKAGE)} imports upward"


def test_the_check_catches_upward_and_web_imports(tmp_path: Path) -> None:
    module = tmp_path / "upward.py"
    module.write_text(
        "import fastapi\nfrom wipsvc.domain.statuses import JobStatus\n"
        "def later():\n    from wipsvc.jobs.runner import JobRunner\n"
    )
    assert _violations("store", _imports(module)) == ["fastapi", "wipsvc.jobs.runner"]
    assert _violations("api", _imports(module)) == []
