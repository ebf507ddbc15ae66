"""The Dockerfile, checked without a Docker engine: a regular install, a data volume, a health check
that follows WIPSVC_PORT (run here, as the container would run it, against a live server)."""

from __future__ import annotations

import asyncio
import os
import re
import shlex
import sys
from pathlib import Path

from tests.support.live import LiveServer, make_settings
from tests.support.server_process import free_port

ROOT = Path(__file__).resolve().parents[2]


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments dropped."""
    text = (ROOT / "Dockerfile").read_text()
    lines = [line for line in text.splitlines() if not line.lstrip().startswith("#")]
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    result = []
    for line in joined.splitlines():
        if line.strip():
            keyword, _, rest = line.strip().partition(" ")
            result.append((keyword.upper(), " ".join(rest.split())))
    return result


def _final_stage() -> list[tuple[str, str]]:
    instructions = _instructions()
    last_from = max(i for i, (keyword, _) in enumerate(instructions) if keyword == "FROM")
    return instructions[last_from:]


def _env(stage: list[tuple[str, str]]) -> dict[str, str]:
    values: dict[str, str] = {}
    for keyword, rest in stage:
        if keyword == "ENV":
            values.update(part.split("=", 1) for part in shlex.split(rest))  # type: ignore[misc]
    return values


def _health_command() -> str:
    (rest,) = [rest for keyword, rest in _final_stage() if keyword == "HEALTHCHECK"]
    _, _, command = rest.partition(" CMD ")
    assert command, "HEALTHCHECK has no CMD"
    return command


def test_the_image_installs_the_package_not_the_source_tree() -> None:
    stage = _final_stage()
    installs = [rest for keyword, rest in stage if keyword == "RUN" and "pip install" in rest]
    assert installs, "the final stage installs nothing"
    for command in installs:
        words = shlex.split(command)
        assert "-e" not in words and "--editable" not in words, command
    copied = [rest for keyword, rest in stage if keyword == "COPY"]
    assert not any(" src" in rest or rest.startswith("src") for rest in copied), copied
    # What the build stage copies exists.
    for keyword, rest in _instructions():
        if keyword == "COPY" and not rest.startswith("--from"):
            assert (ROOT / rest.split()[0]).exists(), rest


def test_the_data_dir_is_a_volume() -> None:
    stage = _final_stage()
    data_dir = _env(stage)["WIPSVC_DATA_DIR"]
    volumes = [rest for keyword, rest in stage if keyword == "VOLUME"]
    assert any(data_dir in volume for volume in volumes), (data_dir, volumes)


async def _run_health_check(command: str, port: int | str) -> int:
    """The HEALTHCHECK's shell command with the container's only relevant setting, and `python` on PATH."""
    env = {
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "NO_PROXY": "*",
        "WIPSVC_PORT": str(port),
    }
    process = await asyncio.create_subprocess_exec(
        "sh", "-c", command, env=env, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL
    )
    return await asyncio.wait_for(process.wait(), 30)


async def test_the_health_check_follows_wipsvc_port(tmp_path: Path) -> None:
    command = _health_command()
    assert "WIPSVC_PORT" in command
    server = LiveServer(make_settings(f"sqlite+aiosqlite:///{tmp_path / 'wipsvc.db'}"))
    await server.start()
    try:
        healthy = await _run_health_check(command, server.url.rsplit(":", 1)[1])
        nobody = await _run_health_check(command, free_port())
    finally:
        await server.stop()
    assert healthy == 0
    assert nobody != 0
