"""Fixtures for the SQL tests: throwaway PostgreSQL and MariaDB servers, and seeded tables.

``postgres_server`` / ``mariadb_server`` (session)
    A running server (see tests/sql/dbservers.py), started on first use and shared with
    tests/executors/test_sql.py; missing binaries fail with the ``make system-deps`` hint.

``pg_db`` / ``maria_db`` (session)
    The same servers with the tables of :func:`sqltesting.seed` created (``items``, ``secrets``,
    ``scratch``). Tests that change rows must restore them (the executor tests re-seed per module).
"""

from __future__ import annotations

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
