"""A real MariaDB/MySQL server for the tests, and throwaway databases on it.

Where the server comes from, in order (as for PostgreSQL, ``_postgres.py``):

1. ``ADK_BACKPORT_MYSQL_URL``: a server URL with a user that may create
   databases, e.g. ``mysql://root@127.0.0.1:3306/test``. Unreachable is an
   error, never a skip.
2. On CI a missing variable is a failure.
3. Elsewhere, a throwaway MariaDB from Debian's ``mariadbd`` on loopback, on a
   free port, in a temporary directory (root may run it: ``--user=root``).
   Without the binaries the MySQL tests are skipped, saying why.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator
from urllib.parse import urlsplit, urlunsplit

from devtools.ports import free_port

URL_VARIABLE = "ADK_BACKPORT_MYSQL_URL"


class MysqlUnavailable(Exception):
    """No server was configured and none can be started here (tests skip)."""


def driverless(url: str) -> str:
    """``mysql+driver://`` or ``mariadb://`` -> ``mysql://``."""
    parts = urlsplit(url)
    if parts.scheme.split("+")[0] not in ("mysql", "mariadb"):
        raise ValueError(f"{URL_VARIABLE}: expected a mysql:// URL, got {url!r}")
    return urlunsplit(parts._replace(scheme="mysql"))


def _connect(url: str) -> object:
    import pymysql

    parts = urlsplit(url)
    return pymysql.connect(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 3306,
        user=parts.username or "root",
        password=parts.password or "",
        connect_timeout=10,
        autocommit=True,
    )


def execute(url: str, sql: str) -> None:
    connection = _connect(url)
    try:
        with connection.cursor() as cursor:
            cursor.execute(sql)
    finally:
        connection.close()


def check_reachable(url: str) -> None:
    """Raise with the server's own words if ``url`` does not answer."""
    try:
        execute(url, "SELECT 1")
    except Exception as exc:
        raise RuntimeError(f"MySQL/MariaDB at {url} is not reachable: {exc}") from exc


def create_database(server_url: str) -> str:
    """Create a uniquely named database; return its driverless URL."""
    name = f"adk_backport_{uuid.uuid4().hex[:12]}"
    execute(server_url, f"CREATE DATABASE `{name}` CHARACTER SET utf8mb4")
    return urlunsplit(urlsplit(server_url)._replace(path="/" + name))


def drop_database(server_url: str, db_url: str) -> None:
    name = urlsplit(db_url).path.lstrip("/")
    execute(server_url, f"DROP DATABASE IF EXISTS `{name}`")


@dataclass
class ThrowawayServer:
    """A private MariaDB server that lives for one test session."""

    root: Path
    port: int
    process: subprocess.Popen

    @property
    def url(self) -> str:
        return f"mysql://root@127.0.0.1:{self.port}/mysql"

    @classmethod
    def start(cls) -> ThrowawayServer:
        server = shutil.which("mariadbd") or "/usr/sbin/mariadbd"
        install = shutil.which("mariadb-install-db")
        if not os.path.exists(server) or install is None:
            raise MysqlUnavailable(
                f"{URL_VARIABLE} is not set and no mariadbd/mariadb-install-db was "
                f"found; set {URL_VARIABLE} to run the MySQL tests"
            )
        root = Path(tempfile.mkdtemp(prefix="adk-backport-mysql-"))
        common = ["--no-defaults", f"--datadir={root / 'data'}", "--user=root"]
        done = subprocess.run(
            [install, *common, "--auth-root-authentication-method=normal"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        if done.returncode != 0:
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"mariadb-install-db failed:\n{done.stderr}")
        port = free_port()
        with open(root / "server.log", "w") as log:  # the child keeps its copy
            process = subprocess.Popen(
                [
                    server,
                    *common,
                    f"--port={port}",
                    "--bind-address=127.0.0.1",
                    f"--socket={root / 'mysqld.sock'}",
                    f"--pid-file={root / 'mysqld.pid'}",
                    "--skip-log-bin",
                    "--innodb-flush-log-at-trx-commit=0",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        instance = cls(root=root, port=port, process=process)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if process.poll() is not None:
                break
            try:
                check_reachable(instance.url)
                return instance
            except RuntimeError:
                time.sleep(0.2)
        instance.stop()
        raise RuntimeError(
            "the throwaway MariaDB did not start:\n"
            + (root / "server.log").read_text(errors="replace")
        )

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        shutil.rmtree(self.root, ignore_errors=True)


def server_url(on_ci: bool) -> Iterator[str]:
    """Yield a server URL for the test session (see the module docstring)."""
    configured = os.environ.get(URL_VARIABLE, "").strip()
    if configured:
        url = driverless(configured)
        check_reachable(url)
        yield url
        return
    if on_ci:
        raise RuntimeError(f"{URL_VARIABLE} is not set on CI; .ci/run must set it")
    server = ThrowawayServer.start()
    try:
        yield server.url
    finally:
        server.stop()
