"""The package layout, which pyproject.toml cannot express on its own.

The migrations stay in the project's top-level ``alembic/`` folder and ship inside the wheel as
``wipsvc/migrations`` (``wipsvc.store.engine.alembic_dir`` finds them there with
``importlib.resources``). Everything else is declared in pyproject.toml.
"""

from setuptools import find_namespace_packages, setup

MIGRATIONS = {"wipsvc.migrations": "alembic", "wipsvc.migrations.versions": "alembic/versions"}

setup(
    packages=[*find_namespace_packages("src", include=["wipsvc*"]), *MIGRATIONS],
    package_dir={"": "src", **MIGRATIONS},
)
