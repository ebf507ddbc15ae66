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


def test_database_commands_print_one_json_object(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    upgraded = _run(["db", "upgrade", "--json"], tmp_path, data_dir)
    assert upgraded.returncode == 0, upgraded.stderr
    assert json.loads(upgraded.stdout) == {"success": True, "message": "schema is up to date"}

    created = _run(["keys", "create", "--collections", "sinks", "--json"], tmp_path, data_dir)
    assert created.returncode == 0, created.stderr
    body = json.loads(created.stdout)
    assert body["success"] is True and body["api_key"].startswith("wip_")
    assert body["key"]["collections"] == ["sinks"] and body["key"]["revoked_at"] is None

    revoked = _run(["keys", "revoke", str(body["key"]["id"]), "--json"], tmp_path, data_dir)
    assert revoked.returncode == 0, revoked.stderr
    assert json.loads(revoked.stdout)["key"]["revoked_at"] is not None

    config = tmp_path / "sinks.json"
    config.write_text(json.dumps({"sheet": {"worksheet": "Products"}}))
    stored = _run(["collections", "set", "sinks", str(config), "--json"], tmp_path, data_dir)
    assert stored.returncode == 0, stored.stderr
    assert json.loads(stored.stdout) == {"success": True, "collection_name": "sinks"}
    assert f"database: {data_dir / 'wipsvc.db'}" in stored.stderr.splitlines()

    refused = _run(["keys", "create", "--json"], tmp_path, data_dir)
    assert refused.returncode == 2
    assert json.loads(refused.stdout)["error"]["code"] == "usage_error"


def test_an_unusable_database_is_one_line_and_exit_3(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "wipsvc.db").write_text("not a database\n" * 100)
    config = tmp_path / "sinks.json"
    config.write_text("{}")
    for command in (
        ["db", "upgrade"],
        ["keys", "list"],
        ["keys", "create", "--all"],
        ["keys", "revoke", "1"],
        ["collections", "set", "sinks", str(config)],
        ["demo"],
    ):
        run = _run(command, tmp_path, data_dir)
        assert run.returncode == 3, (command, run.stderr)
        *named, error = run.stderr.splitlines()
        # The demo names its database once its server runs; the error line names it anyway.
        assert named == ([] if command == ["demo"] else [f"database: {data_dir / 'wipsvc.db'}"]), command
        assert error.startswith("error: database ") and "not a database" in error, command
        assert "Traceback" not in run.stderr and run.stdout == ""
    run = _run(["keys", "list", "--json"], tmp_path, data_dir)
    assert run.returncode == 3
    assert json.loads(run.stdout)["error"]["code"] == "database_unusable"
