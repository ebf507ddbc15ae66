"""Layers only call downward: the core never imports the web or real-time layers."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import wipsvc

PACKAGE = Path(wipsvc.__file__).parent
CORE = ("jobs", "pipeline", "adapters", "store", "extraction", "notify")
WEB = (
    "fastapi",
    "starlette",
    "socketio",
    "engineio",
    "uvicorn",
    "wipsvc.api",
    "wipsvc.realtime",
    "wipsvc.app",
)
# What each core package may import from the project (besides itself and the leaf modules).
LEAVES = (
    "wipsvc.config",
    "wipsvc.collection",
    "wipsvc.credentials",
    "wipsvc.jobs.models",
    "wipsvc.limits",
    "wipsvc.logs",
    "wipsvc.text",
)
ALLOWED = {
    "store": ("wipsvc.store",),
    # The built-in extractor is a pure function of a page's HTML: it needs nothing of the project.
    "extraction": ("wipsvc.extraction",),
    "adapters": ("wipsvc.adapters", "wipsvc.store", "wipsvc.pipeline.extract", "wipsvc.extraction"),
    "pipeline": ("wipsvc.pipeline", "wipsvc.adapters", "wipsvc.store", "wipsvc.extraction"),
    "jobs": ("wipsvc.jobs", "wipsvc.pipeline", "wipsvc.store"),
    "notify": ("wipsvc.notify", "wipsvc.adapters", "wipsvc.store"),
}


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text())
    names: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


@pytest.mark.parametrize("layer", CORE)
def test_core_layers_import_only_downward(layer: str) -> None:
    for path in (PACKAGE / layer).rglob("*.py"):
        for name in _imports(path):
            assert not name.startswith(WEB), f"{path.relative_to(PACKAGE)} imports {name}"
            if name.startswith("wipsvc."):
                assert name.startswith(ALLOWED[layer] + LEAVES), f"{path.relative_to(PACKAGE)} imports {name}"
