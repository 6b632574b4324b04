"""Shared fixtures: a real PostgreSQL server and per-test databases.

``postgres_server_url`` (session) and ``postgres_db_url`` (per test) give
driverless ``postgresql://user@host:port/dbname`` URLs; where the server comes
from is explained in ``_postgres.py`` (``ADK_BACKPORT_POSTGRES_URL``).

To run a test on both back ends, take ``database``: it is parametrized by
``database_kind`` (ids ``sqlite`` and ``postgresql``) and its
``url("sync")`` / ``url("async")`` picks the SQLAlchemy driver the google-adk
release needs. The PostgreSQL server is started only if a test asks for it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from _postgres import (
    URL_VARIABLE,
    Database,
    PostgresUnavailable,
    ThrowawayCluster,
    check_reachable,
    driverless,
    on_ci,
)
from adk_compaction_backport.verify.databases import create_database, drop_database


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


@pytest.fixture(params=["sqlite", "postgresql"])
def database_kind(request: pytest.FixtureRequest) -> str:
    """Which session-service back end a test runs against."""
    return str(request.param)


@pytest.fixture
def database(
    database_kind: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Database:
    """A fresh database of ``database_kind``; see :class:`_postgres.Database`."""
    if database_kind == "sqlite":
        return Database(kind="sqlite", raw=str(tmp_path / "sessions.db"))
    return Database(kind="postgresql", raw=request.getfixturevalue("postgres_db_url"))
