"""Throwaway databases, for the tests and the benchmark alike.

CREATE and DROP DATABASE run outside a transaction: through psycopg2 when it
is installed, else through ``psql``.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit


def driverless(url: str) -> str:
    """Normalize ``postgres://`` / ``postgresql+driver://`` to ``postgresql://``."""
    parts = urlsplit(url)
    if parts.scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise ValueError(f"expected a postgresql:// URL, got {url!r}")
    return urlunsplit(parts._replace(scheme="postgresql"))


def with_database(url: str, name: str) -> str:
    """The same server URL pointing at another database."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


def execute(url: str, sql: str) -> None:
    """Run one statement outside a transaction."""
    try:
        import psycopg2
    except ImportError:
        psql = shutil.which("psql")
        if psql is None:
            raise RuntimeError("neither psycopg2 nor psql is available") from None
        subprocess.run(
            [psql, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
            check=True,
            capture_output=True,
            text=True,
            timeout=60,
        )
        return
    conn = psycopg2.connect(url, connect_timeout=10)
    try:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(sql)
    finally:
        conn.close()


def create_database(server_url: str, prefix: str = "adk_backport_") -> str:
    """Create a uniquely named database; return its driverless URL."""
    name = f"{prefix}{uuid.uuid4().hex[:12]}"
    execute(server_url, f'CREATE DATABASE "{name}"')
    return with_database(server_url, name)


def drop_database(server_url: str, db_url: str) -> None:
    """Drop a database made by :func:`create_database`, kicking out clients."""
    name = urlsplit(db_url).path.lstrip("/")
    execute(server_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def fresh_database(kind: str, postgres_url: str) -> Iterator[str]:
    """Yield a driverless URL of an empty database, ``sqlite`` (a new file) or
    ``postgresql`` (a new database on ``postgres_url``'s server); remove it
    afterwards."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="adk-bench-") as tmp:
            yield f"sqlite:///{Path(tmp) / 'sessions.db'}"
        return
    server = driverless(postgres_url)
    url = create_database(server, prefix="adk_bench_")
    try:
        yield url
    finally:
        drop_database(server, url)
