"""The `wipsvc` command starts without the server's libraries: they are imported by the commands
that use them, so that `wipsvc --help` or a client command does not wait for the web stack,
SQLAlchemy, the settings, the LLM and Google clients (seconds on a busy machine). Only what is loaded
is checked here, not how long it takes: bench/cli_startup.py measures that."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

HEAVY = (
    "fastapi",
    "starlette",
    "uvicorn",
    "socketio",
    "sqlalchemy",
    "alembic",
    "openai",
    "gspread",
    "gspread_asyncio",
    "lxml",
    "selectolax",
    "extruct",
    "trafilatura",
    "httpx",
    "pydantic_settings",  # the settings: read by the commands that serve or open the database
)


def _heavy_modules_after(code: str) -> list[str]:
    """The heavy top-level packages loaded once ``code`` has run in a fresh interpreter."""
    probe = f"{code}\nimport json, sys\nprint(json.dumps(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.strip().splitlines()[-1]))
    return sorted(loaded & set(HEAVY))


def test_importing_the_command_line_loads_none_of_the_server_libraries() -> None:
    assert _heavy_modules_after("import wipsvc.cli") == []


@pytest.mark.parametrize("argv", [["--help"], ["jobs", "show", "--help"], ["keys", "create", "--help"]])
def test_help_loads_none_of_the_server_libraries(argv: list[str]) -> None:
    code = (
        "import sys\n"
        "from wipsvc.cli import app\n"
        f"sys.argv = ['wipsvc', *{argv!r}]\n"
        "try:\n"
        "    app()\n"
        "except SystemExit as done:\n"
        "    assert done.code in (0, None), done.code\n"
    )
    assert _heavy_modules_after(code) == []
