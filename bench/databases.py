"""A fresh database per workload: a new SQLite file or a new PostgreSQL database.

Runs inside the worker interpreter. CREATE/DROP DATABASE go through psycopg2
when it is installed (the bench venvs and tox envs have it), else ``psql``.
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
    """``postgresql+asyncpg://...`` -> ``postgresql://...`` (the worker adds one)."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(scheme=parts.scheme.split("+")[0]))


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


def _execute(url: str, sql: str) -> None:
    """One statement outside a transaction (CREATE/DROP DATABASE need that)."""
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


@contextlib.contextmanager
def fresh_database(kind: str, postgres_url: str) -> Iterator[str]:
    """Yield a driverless URL of an empty database; remove it afterwards."""
    name = f"adk_bench_{uuid.uuid4().hex[:12]}"
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="adk-bench-") as tmp:
            yield f"sqlite:///{Path(tmp) / name}.db"
        return
    server = driverless(postgres_url)
    _execute(server, f'CREATE DATABASE "{name}"')
    try:
        yield _with_database(server, name)
    finally:
        _execute(server, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
