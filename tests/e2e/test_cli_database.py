"""Every command that opens the database uses the same one, from any directory, and says which."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

WIPSVC = Path(sys.executable).with_name("wipsvc")


def _run(args: list[str], cwd: Path, data_dir: Path) -> subprocess.CompletedProcess[str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("WIPSVC_")}
    env["WIPSVC_DATA_DIR"] = str(data_dir)
    return subprocess.run(
        [str(WIPSVC), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120, check=False
    )


def test_commands_run_from_different_directories_share_the_data_dir_database(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    places = [tmp_path / name for name in ("one", "two", "three", "four")]
    for place in places:
        place.mkdir()
    database_line = f"database: {data_dir / 'wipsvc.db'}"

    upgraded = _run(["db", "upgrade"], places[0], data_dir)
    assert upgraded.returncode == 0, upgraded.stderr
    assert database_line in upgraded.stderr.splitlines()
    assert (data_dir / "wipsvc.db").is_file()

    created = _run(["keys", "create", "--all", "--label", "ops"], places[1], data_dir)
    assert created.returncode == 0, created.stderr
    assert database_line in created.stderr.splitlines()

    listed = _run(["keys", "list", "--json"], places[2], data_dir)
    assert listed.returncode == 0, listed.stderr
    assert database_line in listed.stderr.splitlines()
    keys = json.loads(listed.stdout)["keys"]
    assert [key["label"] for key in keys] == ["ops"]

    checked = _run(["check-config"], places[3], data_dir)
    assert database_line in checked.stderr.splitlines()
    assert "does not exist" not in checked.stdout
    # No command left a database behind in its working directory.
    assert not any(place.joinpath("data").exists() for place in places)
