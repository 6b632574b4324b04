"""A fresh database per workload: a new SQLite file or a new PostgreSQL database.

Runs inside the worker interpreter, where the package (and with it the
database helpers the tests use too) is installed.
"""

from __future__ import annotations

import contextlib
import tempfile
from pathlib import Path
from typing import Iterator

from adk_compaction_backport.verify.databases import (
    create_database,
    driverless,
    drop_database,
)


@contextlib.contextmanager
def fresh_database(kind: str, postgres_url: str) -> Iterator[str]:
    """Yield a driverless URL of an empty database; remove it afterwards."""
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
