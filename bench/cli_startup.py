"""How long the `wipsvc` command takes to start: wall time of a few commands that do no work
(`--help`, `--version`), the median of several runs taken in turns, against a bare interpreter and
against the command line with the server's libraries imported up front, as it once did.

    .venv/bin/python bench/cli_startup.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

WIPSVC = str(Path(sys.executable).with_name("wipsvc"))
# What `import wipsvc.cli` loaded before the commands imported them where used.
EAGER = (
    "import wipsvc.cli, openai, sqlalchemy, httpx, pydantic_settings, wipsvc.store, "
    "wipsvc.adapters.google_sheets, wipsvc.adapters.llm_client"
)

CASES: dict[str, list[str]] = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "import wipsvc.cli": [sys.executable, "-c", "import wipsvc.cli"],
    "import wipsvc.cli + server libraries": [sys.executable, "-c", EAGER],
    "wipsvc --help": [WIPSVC, "--help"],
    "wipsvc --version": [WIPSVC, "--version"],
    "wipsvc jobs show --help": [WIPSVC, "jobs", "show", "--help"],
}


def _wall(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    times: dict[str, list[float]] = {name: [] for name in CASES}
    for _ in range(args.runs):  # in turns, so that a busy moment weighs on every case alike
        for name, command in CASES.items():
            times[name].append(_wall(command))
    median = {name: statistics.median(found) for name, found in times.items()}
    bare = median["python -c pass"]
    print(f"median of {args.runs} runs each (wall time, s; ratio to a bare interpreter)")
    for name, value in median.items():
        print(f"  {name:<40} {value:6.3f}  x{value / bare:5.1f}")
    lazy, eager = median["import wipsvc.cli"], median["import wipsvc.cli + server libraries"]
    print(f"import wipsvc.cli / with the server libraries: {lazy / eager:.2f}")


if __name__ == "__main__":
    main()
