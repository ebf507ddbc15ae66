"""`wipsvc serve` as a child process: started, killed with SIGKILL, restarted, stopped.

Only a separate process can be killed the way a crash or an OOM kill ends a server: no
`finally`, no lease given back, a transaction cut wherever it was. The server is bound
to 127.0.0.1 and every external service it is configured with must be a fake on
loopback too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import TracebackType
from typing import IO, Self

import httpx

# Variables that would point the child at real services or at the developer's settings.
_INHERITED_PREFIXES = ("WIPSVC_",)
_DROPPED = frozenset({"OPENAI_API_KEY", "OPENAI_BASE_URL", "GOOGLE_APPLICATION_CREDENTIALS"})
# The job statuses a job ends in, as the API spells them.
TERMINAL = ("completed", "failed", "cancelled")


def free_port() -> int:
    """A port that was free on 127.0.0.1 a moment ago (the child binds it again, with SO_REUSEADDR)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def server_env(**settings: object) -> dict[str, str]:
    """This process's environment without wipsvc or vendor settings, plus ``WIPSVC_<NAME>`` for each."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(_INHERITED_PREFIXES) and name not in _DROPPED
    }
    # The test session's data folder (tests/conftest.py), never the user's.
    if "WIPSVC_DATA_DIR" in os.environ:
        env["WIPSVC_DATA_DIR"] = os.environ["WIPSVC_DATA_DIR"]
    # No proxy may carry the child's loopback traffic elsewhere.
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        env.pop(name, None)
    env["NO_PROXY"] = env["no_proxy"] = "*"
    env["PYTHONUNBUFFERED"] = "1"
    for name, value in settings.items():
        env[f"WIPSVC_{name.upper()}"] = str(value)
    return env


@contextlib.contextmanager
def serving(
    command: Sequence[str | Path], *, cwd: Path, env: Mapping[str, str], url: str, log: Path
) -> Iterator[None]:
    """A serving command (`wipsvc serve`, `serve-demo`, an installed copy's) as a child process,
    from the moment ``url``/healthz answers 200 until it is stopped with SIGTERM on leaving."""
    name = f"{Path(command[0]).name} {command[1]}"
    with log.open("wb") as output:
        server = subprocess.Popen(
            [str(part) for part in command],
            cwd=cwd,
            env=dict(env),
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        with httpx.Client(timeout=2, trust_env=False) as client:
            while True:
                assert server.poll() is None, f"{name} exited:\n{log.read_text()}"
                with contextlib.suppress(httpx.TransportError):
                    if client.get(f"{url}/healthz").status_code == 200:
                        break
                assert time.monotonic() < deadline, f"{name} not ready:\n{log.read_text()}"
                time.sleep(0.1)
        yield
    finally:
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(10)


class ServerProcess:
    """One `wipsvc serve` at a time on a fixed port; every start appends to the same log file."""

    def __init__(self, env: Mapping[str, str], *, port: int, cwd: Path, log_path: Path) -> None:
        self.env = dict(env)
        self.port = port
        self.cwd = cwd  # no .env file there: the child reads only the environment given
        self.log_path = log_path
        self.url = f"http://127.0.0.1:{port}"
        self.starts = 0
        self._process: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._paused = False

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("server not started")
        return self._process.pid

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self) -> None:
        if self._process is not None:
            raise RuntimeError("server already started")
        self.starts += 1
        self._log = self.log_path.open("ab")
        self._log.write(f"\n===== start {self.starts} =====\n".encode())
        self._log.flush()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "wipsvc", "serve", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=self.cwd,
            env=self.env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, timeout: float = 60.0) -> None:
        """Return once ``/healthz`` answers 200; fail with the log's tail if the child dies first."""
        deadline = time.monotonic() + timeout
        with httpx.Client(base_url=self.url, timeout=2.0, trust_env=False) as client:
            while True:
                if not self.running:
                    raise RuntimeError(f"wipsvc serve exited before it was ready:\n{self.log_tail()}")
                with contextlib.suppress(httpx.TransportError):
                    if client.get("/healthz").status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise TimeoutError(f"wipsvc serve not ready after {timeout} s:\n{self.log_tail()}")
                time.sleep(0.05)

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """SIGSTOP: the process freezes mid-whatever, like a long GC pause or a frozen VM; its
        sockets stay open and what it had sent stays sent."""
        if self._process is None:
            raise RuntimeError("server not started")
        self._process.send_signal(signal.SIGSTOP)
        self._paused = True

    def resume(self) -> None:
        """SIGCONT: the process carries on from where it was frozen."""
        if self._process is not None and self._paused:
            self._process.send_signal(signal.SIGCONT)
        self._paused = False

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up, like a crash or the OOM killer."""
        self._end(signal.SIGKILL, timeout=10.0)

    def stop(self, timeout: float = 15.0) -> None:
        """A graceful stop (SIGTERM), falling back to SIGKILL."""
        self._end(signal.SIGTERM, timeout=timeout)

    def _end(self, sig: signal.Signals, *, timeout: float) -> None:
        process = self._process
        if process is None:
            return
        self.resume()  # a stopped process would not act on SIGTERM
        if process.poll() is None:
            process.send_signal(sig)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10.0)
        self._process = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log_tail(self, lines: int = 60) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
