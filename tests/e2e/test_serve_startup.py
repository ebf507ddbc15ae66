"""`wipsvc serve` as it is run: start-up failures end in one line and an exit code that names
their kind, and the served app has the edge the settings describe."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from tests.support.server_process import ServerProcess, free_port, server_env

WIPSVC = Path(sys.executable).with_name("wipsvc")
BAD_SETTINGS, DATABASE_UNUSABLE = 2, 3


def serve(cwd: Path, **settings: object) -> tuple[int, str, str]:
    # A port of its own unless the test sets WIPSVC_PORT (--port would override it).
    port = [] if "port" in settings else ["--port", str(free_port())]
    result = subprocess.run(
        [str(WIPSVC), "serve", *port],
        cwd=cwd,
        env=server_env(**settings),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return result.returncode, result.stdout, result.stderr


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"port": "abc"}, "WIPSVC_PORT"),
        ({"port": "70000"}, "WIPSVC_PORT"),
        ({"max_batch": "0"}, "WIPSVC_MAX_BATCH"),
        ({"log_level": "loud"}, "WIPSVC_LOG_LEVEL"),
        ({"llm_api_key": "sk-secret-value", "port": "abc"}, "WIPSVC_PORT"),
    ],
)
def test_bad_settings_exit_2_with_one_line(tmp_path: Path, settings: dict[str, str], named: str) -> None:
    code, out, err = serve(tmp_path, database_url=f"sqlite+aiosqlite:///{tmp_path / 'w.db'}", **settings)
    assert code == BAD_SETTINGS, err
    line = one_line(err)
    assert named in line and "bad setting" in line
    assert "sk-secret-value" not in line and out == ""


def _not_a_database(tmp_path: Path) -> str:
    path = tmp_path / "notes.db"
    path.write_text("these are notes, not a database\n" * 100)
    return f"sqlite+aiosqlite:///{path}"


def _uncreatable(tmp_path: Path) -> str:
    (tmp_path / "a-file").write_text("x")
    return f"sqlite+aiosqlite:///{tmp_path / 'a-file' / 'data' / 'wipsvc.db'}"


def _read_only(tmp_path: Path) -> str:
    # Opened read-only by SQLite itself: file permissions would not stop root, who runs CI.
    path = tmp_path / "wipsvc.db"
    sqlite3.connect(path).close()
    return f"sqlite+aiosqlite:///file:{path}?mode=ro&uri=true"


@pytest.mark.parametrize(
    ("database", "cause"),
    [
        (_not_a_database, "file is not a database"),
        (_uncreatable, "Not a directory"),
        (_read_only, "readonly database"),
    ],
)
def test_an_unusable_database_exits_3_with_one_line(tmp_path: Path, database: object, cause: str) -> None:
    assert callable(database)
    code, out, err = serve(tmp_path, database_url=database(tmp_path))
    assert code == DATABASE_UNUSABLE, err
    line = one_line(err)
    assert "database" in line and cause in line
    assert "[SQL:" not in line and out == ""


def test_an_unreachable_postgresql_exits_3_without_its_password(tmp_path: Path) -> None:
    # Port 9 of loopback (discard) has no PostgreSQL: the connection is refused at once.
    code, _, err = serve(tmp_path, database_url="postgresql+asyncpg://wipsvc:hunter2@127.0.0.1:9/wipsvc")
    assert code == DATABASE_UNUSABLE, err
    line = one_line(err)
    assert "127.0.0.1:9" in line and "hunter2" not in line


async def test_the_served_app_has_the_configured_edge(tmp_path: Path) -> None:
    env = server_env(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'wipsvc.db'}",
        max_header_bytes=16_384,
        allowed_hosts="wipsvc.example.com",
    )
    with ServerProcess(env, port=free_port(), cwd=tmp_path, log_path=tmp_path / "server.log") as server:
        server.wait_ready()
        async with httpx.AsyncClient(base_url=server.url, trust_env=False, timeout=10) as client:
            assert (await client.get("/healthz", headers={"Host": "wipsvc.example.com"})).status_code == 200
            refused = await client.get("/api/collections", headers={"Host": "attacker.example"})
            assert refused.status_code == 400 and refused.json()["error"]["code"] == "host_not_allowed"
            big = await client.get("/healthz", headers={"X-Filler": "x" * 20_000})
            assert big.status_code == 431 and big.json()["error"]["code"] == "headers_too_large"
            assert (await client.get("/healthz", headers={"X-Filler": "x" * 8_000})).status_code == 200
            # The docs come from this service only.
            docs = await client.get("/docs")
            assert docs.status_code == 200 and "/static/vendor/swagger-ui-bundle.js" in docs.text
            assert "cdn" not in docs.text.lower()
            assert "script-src 'self';" in docs.headers["content-security-policy"]
            assert (await client.get("/static/vendor/redoc.standalone.js")).status_code == 200
