"""A real PostgreSQL server for the tests, and throwaway databases on it.

Where the server comes from, in order:

1. ``ADK_BACKPORT_POSTGRES_URL`` (the one documented variable): the URL of a
   server's maintenance database, e.g.
   ``postgresql://postgres@127.0.0.1:5432/postgres``. An unreachable server is
   an error, never a skip: the user asked for it.
2. On CI (``CI`` is ``true`` or ``1``) a missing variable is a failure, so a
   broken CI set-up can never turn the PostgreSQL tests into skips.
3. Elsewhere, a throwaway cluster from Debian's PostgreSQL binaries
   (``/usr/lib/postgresql/*/bin``) on loopback, on a free port, in a temporary
   directory, with trust auth. PostgreSQL refuses to run as root, so as root
   the cluster runs as the ``postgres`` system user (or ``nobody``).
   Without binaries the PostgreSQL tests are skipped, saying why.
"""

from __future__ import annotations

import glob
import os
import pwd
import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import List, Optional, Sequence
from urllib.parse import urlsplit, urlunsplit

from devtools import databases
from devtools.databases import execute
from devtools.ports import free_port

URL_VARIABLE = "ADK_BACKPORT_POSTGRES_URL"
BINARY_GLOB = "/usr/lib/postgresql/*/bin"
SUPERUSER = "postgres"


class PostgresUnavailable(Exception):
    """No server was configured and none can be started here (tests skip)."""


def on_ci() -> bool:
    """True on CI, where a missing database must fail, not skip."""
    return os.environ.get("CI", "").strip().lower() in ("true", "1")


def driverless(url: str) -> str:
    """Normalize ``postgres://`` / ``postgresql+driver://`` to ``postgresql://``."""
    try:
        return databases.driverless(url)
    except ValueError as error:
        raise ValueError(f"{URL_VARIABLE}: {error}") from None


def with_driver(url: str, driver: str) -> str:
    """``postgresql://...`` -> ``postgresql+<driver>://...`` for SQLAlchemy."""
    return urlunsplit(urlsplit(url)._replace(scheme=f"postgresql+{driver}"))


def check_reachable(url: str) -> None:
    """Raise with the server's own words if ``url`` does not answer."""
    try:
        execute(url, "SELECT 1")
    except Exception as exc:
        raise RuntimeError(f"PostgreSQL at {url} is not reachable: {exc}") from exc


def find_bindir() -> Optional[Path]:
    """The newest Debian PostgreSQL ``bin`` directory with initdb and pg_ctl."""

    def major(path: Path) -> float:
        match = re.search(r"/(\d+(?:\.\d+)?)/bin$", str(path))
        return float(match.group(1)) if match else 0.0

    candidates = [
        p
        for p in map(Path, sorted(glob.glob(BINARY_GLOB)))
        if (p / "initdb").exists() and (p / "pg_ctl").exists()
    ]
    return max(candidates, key=major) if candidates else None


def _service_user() -> Optional[pwd.struct_passwd]:
    """Who runs the cluster: ourselves, or (as root) an unprivileged account."""
    if os.geteuid() != 0:
        return None
    for name in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(name)
        except KeyError:
            continue
    raise PostgresUnavailable("running as root and no postgres/nobody user exists")


def _as_user(user: Optional[pwd.struct_passwd], argv: Sequence[str]) -> List[str]:
    if user is None:
        return list(argv)
    if shutil.which("runuser"):
        return ["runuser", "-u", user.pw_name, "--", *argv]
    return [
        "setpriv",
        f"--reuid={user.pw_uid}",
        f"--regid={user.pw_gid}",
        "--init-groups",
        "--",
        *argv,
    ]


@dataclass
class ThrowawayCluster:
    """A private PostgreSQL cluster that lives for one test session."""

    bindir: Path
    root: Path
    port: int
    user: Optional[pwd.struct_passwd]

    @property
    def url(self) -> str:
        return f"postgresql://{SUPERUSER}@127.0.0.1:{self.port}/postgres"

    @classmethod
    def start(cls, bindir: Optional[Path] = None) -> ThrowawayCluster:
        bindir = bindir or find_bindir()
        if bindir is None:
            raise PostgresUnavailable(
                f"{URL_VARIABLE} is not set and no PostgreSQL binaries were found "
                f"in {BINARY_GLOB}; set {URL_VARIABLE} to run the PostgreSQL tests"
            )
        user = _service_user()
        root = Path(tempfile.mkdtemp(prefix="adk-backport-pg-"))
        if user is not None:
            os.chown(root, user.pw_uid, user.pw_gid)
        cluster = cls(bindir=bindir, root=root, port=0, user=user)
        try:
            cluster._initdb()
            for attempt in range(3):  # another process may grab the free port
                cluster.port = free_port()
                if cluster._pg_ctl_start(last=attempt == 2):
                    return cluster
        except BaseException:
            cluster.stop()
            raise
        raise AssertionError("unreachable")

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            _as_user(self.user, argv),
            cwd=self.root,
            capture_output=True,
            text=True,
            timeout=timeout,
            env={**os.environ, "LC_ALL": "C", "LANG": "C"},
        )

    def _initdb(self) -> None:
        done = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.root / "data"),
            "-U",
            SUPERUSER,
            "--auth=trust",
            "--encoding=UTF8",
            "--no-locale",
            "--no-sync",
        )
        if done.returncode != 0:
            raise RuntimeError(f"initdb failed:\n{done.stdout}\n{done.stderr}")

    def _pg_ctl(
        self, command: str, *options: str, timeout: float = 120
    ) -> subprocess.CompletedProcess:
        """``pg_ctl COMMAND`` on this cluster's data directory."""
        data = str(self.root / "data")
        argv = (str(self.bindir / "pg_ctl"), "-D", data, *options, command)
        return self._run(*argv, timeout=timeout)

    def _pg_ctl_start(self, last: bool) -> bool:
        options = (
            f"-p {self.port} -c listen_addresses=127.0.0.1"
            f" -c unix_socket_directories={self.root}"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        done = self._pg_ctl("start", *self._logged(), "-o", options, "-w", "-t", "60")
        if done.returncode == 0:
            return True
        if last:
            log = (self.root / "server.log").read_text(errors="replace")
            raise RuntimeError(f"pg_ctl start failed:\n{done.stderr}\n{log}")
        time.sleep(0.5)
        return False

    def _logged(self) -> Sequence[str]:
        """pg_ctl's option that sends the server's output to ``server.log``."""
        return ("-l", str(self.root / "server.log"))

    def restart(self) -> None:
        """Restart the server (fast shutdown): every client connection is dropped."""
        done = self._pg_ctl("restart", *self._logged(), "-m", "fast", "-w", "-t", "60")
        if done.returncode != 0:
            raise RuntimeError(f"pg_ctl restart failed:\n{done.stderr}")

    def stop(self) -> None:
        """Stop the server (fast, no checkpoint) and delete every file of it."""
        if (self.root / "data" / "postmaster.pid").exists():
            self._pg_ctl("stop", "-m", "immediate", "-w", timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)


@dataclass(frozen=True)
class Database:
    """One test's database, as SQLAlchemy URLs for either engine style.

    google-adk 1.16-1.18 use a sync engine (``sqlite:///``, psycopg2, pymysql);
    1.19 and later an async one (``sqlite+aiosqlite:///``, asyncpg, aiomysql).
    ``url("sync")`` or ``url("async")`` picks the driver; ``raw`` is the
    driverless form.
    """

    kind: str  # "sqlite", "sqlite_service", "postgresql" or "mysql"
    raw: str  # a SQLite file path, or a driverless postgresql:// or mysql:// URL

    def url(self, driver_style: str = "sync") -> str:
        if driver_style not in ("sync", "async"):
            raise ValueError(f"driver_style must be 'sync' or 'async': {driver_style}")
        if self.kind in ("sqlite", "sqlite_service"):
            scheme = "sqlite" if driver_style == "sync" else "sqlite+aiosqlite"
            return f"{scheme}:///{self.raw}"
        if self.kind == "mysql":
            driver = "pymysql" if driver_style == "sync" else "aiomysql"
            return urlunsplit(urlsplit(self.raw)._replace(scheme=f"mysql+{driver}"))
        driver = "psycopg2" if driver_style == "sync" else "asyncpg"
        return with_driver(self.raw, driver)
