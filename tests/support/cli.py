"""The `wipsvc` executable, run as a child process against a server, its output read as it comes."""

from __future__ import annotations

import asyncio
import csv
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

WIPSVC = Path(sys.executable).with_name("wipsvc")
UUID_LINE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.MULTILINE)


@dataclass
class Run:
    code: int
    out: str
    err: str


class Cli:
    """The `wipsvc` executable running against a server, its output read as it comes."""

    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process
        self.out = ""

    @classmethod
    async def start(cls, *args: str, url: str, api_key: str | None = None) -> Cli:
        env = {k: v for k, v in os.environ.items() if not k.startswith("WIPSVC_")}
        env |= {"WIPSVC_URL": url} | ({"WIPSVC_API_KEY": api_key} if api_key else {})
        env.pop("COLUMNS", None)  # rich's default width, 80, as in most logs
        process = await asyncio.create_subprocess_exec(
            str(WIPSVC), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
        )
        return cls(process)

    async def read_until(self, text: str, timeout: float = 30) -> None:
        assert self.process.stdout is not None
        async with asyncio.timeout(timeout):
            while text not in self.out:
                line = await self.process.stdout.readline()
                assert line, f"exited before printing {text!r}: {self.out}"
                self.out += line.decode()

    async def finish(self, timeout: float = 60) -> Run:
        try:
            async with asyncio.timeout(timeout):
                out, err = await self.process.communicate()
        finally:
            if self.process.returncode is None:
                self.process.kill()
                await self.process.wait()
        assert self.process.returncode is not None
        return Run(self.process.returncode, self.out + out.decode(), err.decode())


async def wipsvc(*args: str, url: str, api_key: str | None = None, timeout: float = 60) -> Run:
    return await (await Cli.start(*args, url=url, api_key=api_key)).finish(timeout)


def write_csv(path: Path, products: list[tuple[str, str]], *, header: bool) -> Path:
    with path.open("w", newline="") as file:
        writer = csv.writer(file)
        if header:
            writer.writerow(["sku", "url"])
        writer.writerows(products)
    return path


def job_id_in(output: str) -> str:
    match = UUID_LINE.search(output)
    assert match, output
    return match.group(0)


async def run_wipsvc(env: dict[str, str], cwd: Path, *args: str) -> tuple[int, str, str]:
    """``wipsvc *args`` with exactly ``env``, in ``cwd`` (the operator's commands that open the
    database themselves); its exit code, stdout and stderr."""
    process = await asyncio.create_subprocess_exec(
        str(WIPSVC), *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env, cwd=cwd
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
