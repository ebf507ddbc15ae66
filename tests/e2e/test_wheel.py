"""A regular install works from anywhere: the wheel, installed (not editable) in a fresh virtualenv
from locally built wheels only, upgrades its database, serves, runs a job and the demo, in a
directory that is not the project's."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.server_process import free_port, serving
from wipsvc.demo.shop import DEMO_PAGES, SampleShop

ROOT = Path(__file__).resolve().parents[2]
# The dependencies' wheels, kept between runs in the test environment (pip fetches only what is
# missing, at the versions of constraints.txt).
WHEELHOUSE = Path(sys.prefix) / "wheelhouse"
BUILD_REQUIREMENTS = ["setuptools>=69", "wheel"]

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


def _pip(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pip", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=800,
        check=False,
    )


def _source(into: Path) -> Path:
    """What the wheel is built from, copied as the Dockerfile copies it (a build in the project's own
    folder would leave build/ there, and files deleted since would live on in build/lib)."""
    into.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, into / name)
    for name in ("src", "alembic"):
        shutil.copytree(ROOT / name, into / name, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    return into


def _wheels(source: Path, dist: Path) -> None:
    """wipsvc's wheel into ``dist``; its dependencies and build requirements into the wheelhouse."""
    common: list[str | Path] = ["wheel", "--quiet", "-c", ROOT / "constraints.txt", "--wheel-dir", WHEELHOUSE]
    offline: list[str | Path] = ["--no-index", "--find-links", WHEELHOUSE]
    requirements: list[str | Path] = [source, *BUILD_REQUIREMENTS]
    if _pip(*common, *offline, *requirements).returncode != 0:
        done = _pip(*common, *requirements)
        assert done.returncode == 0, done.stderr
    for stale in WHEELHOUSE.glob("wipsvc-*.whl"):  # the house keeps only the dependencies
        stale.unlink()
    built = _pip("wheel", "--quiet", "--no-deps", *offline, "--wheel-dir", dist, source)
    assert built.returncode == 0, built.stderr


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bin/ folder of a fresh virtualenv holding wipsvc from its wheel."""
    base = tmp_path_factory.mktemp("wheel")
    _wheels(_source(base / "source"), base / "dist")
    (wheel,) = (base / "dist").glob("wipsvc-*.whl")
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", venv], check=True, timeout=300)
    install = subprocess.run(
        [venv / "bin" / "pip", "install", "--quiet", "--no-index", "--find-links", WHEELHOUSE, wheel],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert install.returncode == 0, install.stderr
    return venv / "bin"


def _env(data_dir: Path, **settings: str) -> dict[str, str]:
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("WIPSVC_", "PYTHON", "VIRTUAL_ENV")) and "proxy" not in name.lower()
    }
    env.update(NO_PROXY="*", WIPSVC_DATA_DIR=str(data_dir))
    env.update({f"WIPSVC_{name.upper()}": value for name, value in settings.items()})
    return env


def _run(command: list[str | Path], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        list(map(str, command)), cwd=cwd, env=env, capture_output=True, text=True, timeout=300, check=False
    )


def test_the_wheel_upgrades_serves_runs_a_job_and_the_demo_from_anywhere(
    installed: Path, tmp_path: Path
) -> None:
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    data_dir = tmp_path / "data"
    env = _env(data_dir, scrape_allowed_hosts="127.0.0.1")

    located = _run([installed / "python", "-c", "import wipsvc; print(wipsvc.__file__)"], elsewhere, env)
    assert Path(located.stdout.strip()).is_relative_to(installed.parent), located
    assert not Path(located.stdout.strip()).is_relative_to(ROOT)

    upgraded = _run([installed / "wipsvc", "db", "upgrade"], elsewhere, env)
    assert upgraded.returncode == 0, upgraded.stderr
    assert f"database: {data_dir / 'wipsvc.db'}" in upgraded.stderr
    assert "schema is up to date" in upgraded.stdout

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command: list[str | Path] = [installed / "wipsvc", "serve", "--port", str(port)]
    with SampleShop() as shop, serving(command, cwd=elsewhere, env=env, url=url, log=tmp_path / "serve.log"):
        working = [page for page in DEMO_PAGES if page.markup != "none"][:2]
        products = elsewhere / "products.csv"
        products.write_text("sku,url\n" + "".join(f"{p.sku},{shop.url_for(p)}\n" for p in working))
        submitted = _run(
            [installed / "wipsvc", "submit", "wheel", products, "--watch", "--url", url], elsewhere, env
        )
        assert submitted.returncode == 0, submitted.stdout + submitted.stderr
        assert "2 succeeded" in submitted.stdout, submitted.stdout
    assert f"database: {data_dir / 'wipsvc.db'}" in (tmp_path / "serve.log").read_text()

    demo = _run([installed / "wipsvc", "demo"], elsewhere, env)
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "✓ job completed" in demo.stdout
    assert not (elsewhere / "data").exists(), "a command wrote a database into its working directory"
