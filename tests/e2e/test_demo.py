"""`make demo`: the whole service, in-process, against the sample shop."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from wipsvc.demo.run import run_demo


@pytest.fixture
def demo_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean working directory and database; no credentials that could reach the internet."""
    monkeypatch.chdir(tmp_path)
    database = tmp_path / "demo.db"
    monkeypatch.setenv("WIPSVC_DATABASE_URL", f"sqlite+aiosqlite:///{database}")
    for name in (
        "OPENAI_API_KEY",
        "WIPSVC_LLM_API_KEY",
        "WIPSVC_GOOGLE_CREDENTIALS_FILE",
        "WIPSVC_REDIS_URL",
    ):
        monkeypatch.delenv(name, raising=False)
    return database


async def test_demo_succeeds_and_can_run_again(demo_env: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert await run_demo() == 0
    first = capsys.readouterr().out
    assert "✓ job completed" in first and "✓ 8/8 products ready" in first
    assert "✓ the discontinued page (BB-1099) reported as failed" in first
    name = _collection(first)
    assert f"/api/collections/{name}/sheet.csv" in first
    assert demo_env.exists()

    # Re-running on the same database works: a fresh collection, generated extra products.
    assert await run_demo(extra_products=3) == 0
    second = capsys.readouterr().out
    assert "✓ 11/11 products ready" in second
    assert _collection(second) != name


def _collection(output: str) -> str:
    match = re.search(r"Collection (demo-\d{8}-\d{6}(?:-\d)?):", output)
    assert match, output
    return match.group(1)
