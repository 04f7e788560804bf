"""Fixtures for the SQL tests: throwaway PostgreSQL and MariaDB servers, and seeded tables.

``postgres_server`` / ``mariadb_server`` (session)
    A running server (see tests/sql/dbservers.py), started on first use and shared with
    tests/executors/test_sql.py; missing binaries fail with the ``make system-deps`` hint.

``pg_db`` / ``maria_db`` (session)
    The same servers with the tables of :func:`sqltesting.seed` created (``items``, ``secrets``,
    ``scratch``). Tests that change rows must restore them (the executor tests re-seed per module).

``flytekit_python`` (session)
    flytekit's interpreter: ``$TASKBOX_FLYTEKIT_PYTHON`` or .venv-flytekit (``make flytekit-venv`` if
    missing), checked to import flytekit, pandas and pyarrow.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
import sqltesting


@pytest.fixture(scope="session")
def postgres_server():
    return sqltesting.server("postgres")


@pytest.fixture(scope="session")
def mariadb_server():
    return sqltesting.server("mariadb")


@pytest.fixture(scope="session")
def pg_db(postgres_server):
    sqltesting.seed(postgres_server)
    return postgres_server


@pytest.fixture(scope="session")
def maria_db(mariadb_server):
    sqltesting.seed(mariadb_server)
    return mariadb_server


@pytest.fixture(scope="session")
def flytekit_python() -> str:
    python = os.environ.get("TASKBOX_FLYTEKIT_PYTHON") or str(sqltesting.ROOT / ".venv-flytekit" / "bin" / "python")
    if not Path(python).exists():
        subprocess.run(["make", "flytekit-venv"], cwd=sqltesting.ROOT, check=True, timeout=900)
    probe = subprocess.run([python, "-c", "import flytekit, pandas, pyarrow"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.fail(f"{python} cannot import flytekit/pandas/pyarrow (run `make flytekit-venv`): {probe.stderr[-500:]}")
    return python
