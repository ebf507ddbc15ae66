"""The README's "Using it", followed literally after the demo: its commands run in a shell against
`wipsvc serve-demo` (what `make serve-demo` runs), only the ports changed to free ones."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server_process import free_port, serving

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent

pytestmark = pytest.mark.timeout(300)


def _using_it_blocks() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("\n## Using it\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```sh\n(.*?)```", section, re.DOTALL)


def _env(data_dir: Path, port: int) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("WIPSVC_", "VIRTUAL_ENV")) and "proxy" not in name.lower()
    }
    env.update(NO_PROXY="*", WIPSVC_DATA_DIR=str(data_dir), WIPSVC_PORT=str(port))
    # The CLI's address is the README's default, http://127.0.0.1:8000, moved to the free port.
    env["WIPSVC_URL"] = f"http://127.0.0.1:{port}"
    return env


def test_make_serve_demo_runs_the_command_the_readme_names() -> None:
    makefile = (ROOT / "Makefile").read_text()
    assert re.search(r"^serve-demo:.*\n\t\$\(BIN\)/wipsvc serve-demo\n", makefile, re.MULTILINE)
    first = _using_it_blocks()[0]
    assert first.startswith("make serve-demo")
    assert "127.0.0.1:8766" in first


def test_the_readme_commands_work_after_the_demo(tmp_path: Path) -> None:
    assert shutil.which("curl") and shutil.which("jq"), "the README's commands need curl and jq"
    port, shop_port = free_port(), free_port()
    env = _env(tmp_path / "data", port)
    cwd = tmp_path / "work"
    cwd.mkdir()

    demo = subprocess.run(
        [BIN / "wipsvc", "demo"], cwd=cwd, env=env, capture_output=True, text=True, timeout=180, check=False
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr

    script = _using_it_blocks()[1]
    script = script.replace("localhost:8000", f"localhost:{port}").replace(
        "127.0.0.1:8766", f"127.0.0.1:{shop_port}"
    )
    script = script.replace("source .venv/bin/activate", f"source {BIN / 'activate'}")
    command: list[str | Path] = [BIN / "wipsvc", "serve-demo", "--shop-port", str(shop_port)]
    with serving(command, cwd=cwd, env=env, url=env["WIPSVC_URL"], log=tmp_path / "serve.log"):
        followed = subprocess.run(
            ["bash", "-euo", "pipefail", "-c", script],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=180,
            check=False,
        )
    assert followed.returncode == 0, followed.stdout + followed.stderr
    created = json.loads((cwd / "products.json").read_text())
    assert created["success"] is True and len(created["wip_ids"]) == 2
    assert min(created["wip_ids"]) > 2, "the demo's products took the first ids"
    started = json.loads((cwd / "job.json").read_text())
    assert started["total_products"] == 2
    assert "2 succeeded" in followed.stdout, followed.stdout
