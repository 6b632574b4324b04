"""Shared fixtures: a real PostgreSQL server and per-test databases.

``postgres_server_url`` (session) and ``postgres_db_url`` (per test) give
driverless ``postgresql://user@host:port/dbname`` URLs; where the server comes
from is explained in ``_postgres.py`` (``ADK_BACKPORT_POSTGRES_URL``).
``mysql_server_url`` and ``mysql_db_url`` do the same for MariaDB/MySQL
(``_mysql.py``, ``ADK_BACKPORT_MYSQL_URL``).

To run a test on every back end, take ``database``: it is parametrized by
``database_kind`` (ids ``sqlite`` and ``postgresql``, and ``mysql`` where
``ADK_BACKPORT_DATABASES`` asks for it) and its
``url("sync")`` / ``url("async")`` picks the SQLAlchemy driver the google-adk
release needs. The PostgreSQL server is started only if a test asks for it.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path
from typing import Iterator

import pytest

import _mysql
from _postgres import (
    URL_VARIABLE,
    Database,
    PostgresUnavailable,
    ThrowawayCluster,
    check_reachable,
    driverless,
    on_ci,
)
from devtools.databases import create_database, drop_database

# harness.py's shared assertions report their operands like a test's own (the
# test modules import it after this conftest).
pytest.register_assert_rewrite("harness")


@pytest.fixture(scope="session")
def postgres_server_url() -> Iterator[str]:
    """Driverless URL of a PostgreSQL maintenance database, for the session."""
    configured = os.environ.get(URL_VARIABLE, "").strip()
    if configured:
        url = driverless(configured)
        check_reachable(url)  # unreachable: an error, not a skip
        yield url
        return
    if on_ci():
        pytest.fail(f"{URL_VARIABLE} is not set on CI; .ci/run must set it")
    try:
        cluster = ThrowawayCluster.start()
    except PostgresUnavailable as exc:
        pytest.skip(str(exc))
    try:
        yield cluster.url
    finally:
        cluster.stop()


@pytest.fixture
def postgres_db_url(postgres_server_url: str) -> Iterator[str]:
    """A fresh, uniquely named database for one test, dropped afterwards."""
    url = create_database(postgres_server_url)
    try:
        yield url
    finally:
        drop_database(postgres_server_url, url)


@pytest.fixture(scope="session")
def mysql_server_url() -> Iterator[str]:
    """Driverless URL of a MariaDB/MySQL server, for the session (``_mysql.py``)."""
    try:
        yield from _mysql.server_url(on_ci())
    except _mysql.MysqlUnavailable as exc:
        pytest.skip(str(exc))


@pytest.fixture
def mysql_db_url(mysql_server_url: str) -> Iterator[str]:
    """A fresh, uniquely named database for one test, dropped afterwards."""
    url = _mysql.create_database(mysql_server_url)
    try:
        yield url
    finally:
        _mysql.drop_database(mysql_server_url, url)


# Which back ends the ``database`` fixture covers; tox adds ``mysql`` and
# ``sqlite_service`` (``SqliteSessionService``, 1.19+) on one release of each
# family (``ADK_BACKPORT_DATABASES=sqlite,postgresql,mysql,sqlite_service``).
DATABASES_VARIABLE = "ADK_BACKPORT_DATABASES"
DATABASE_KINDS = [
    kind.strip()
    for kind in os.environ.get(DATABASES_VARIABLE, "sqlite,postgresql").split(",")
    if kind.strip()
]


@pytest.fixture(params=DATABASE_KINDS)
def database_kind(request: pytest.FixtureRequest) -> str:
    """Which session-service back end a test runs against."""
    return str(request.param)


# The extra back ends run the tests that stage what the fix is about (races,
# leaks, whole workloads); fault injection and the rest stay on SQLite and
# PostgreSQL, to keep CI inside its time.
EXTRA_KINDS = ("mysql", "sqlite_service")
EXTRA_KIND_MODULES = (
    "test_race_awaited",
    "test_race_v1_16",
    "test_leak",
    "test_scenarios",
    "test_runner_writes",
    "test_token_threshold",
    "test_long_sessions",
    "test_revision_probe",
    "test_workflow_nodes",
    "test_sqlite_contention",
)


@pytest.fixture
def database(
    database_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Database:
    """A fresh database of ``database_kind``; see :class:`_postgres.Database`."""
    module = request.node.module.__name__.rsplit(".", 1)[-1]
    if database_kind in EXTRA_KINDS and module not in EXTRA_KIND_MODULES:
        pytest.skip(f"{database_kind} runs the race, leak and scenario tests only")
    if database_kind == "sqlite":
        return Database(kind="sqlite", raw=str(tmp_path / "sessions.db"))
    if database_kind == "mysql":
        return Database(kind="mysql", raw=request.getfixturevalue("mysql_db_url"))
    if database_kind == "sqlite_service":
        if (
            importlib.util.find_spec("google.adk.sessions.sqlite_session_service")
            is None
        ):
            pytest.skip("no SqliteSessionService before google-adk 1.19")
        return Database(kind="sqlite_service", raw=str(tmp_path / "sessions.db"))
    return Database(kind="postgresql", raw=request.getfixturevalue("postgres_db_url"))
