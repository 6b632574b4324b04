"""Lock connections live and die with their event loop and their service, and
connect the way the service's own engine does.

Counted on the server: PostgreSQL's ``pg_stat_activity`` and MariaDB's
``information_schema.PROCESSLIST``, for the test's own database only (the
counting connection is on another one). The service's engine uses ``NullPool``
here, so between turns every connection the test's database has is a lock
connection.
"""

from __future__ import annotations

import asyncio
import inspect
import time
import uuid
from typing import Any, Callable, Dict, Iterator, List

import pytest
from google.adk.runners import Runner
from google.adk.sessions.database_session_service import DatabaseSessionService
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.pool import NullPool

from _mysql import execute as mysql_execute
from adk_compaction_backport import drain
from adk_compaction_backport._process_locks import session_lock
from adk_compaction_backport._session_identity import SessionIdentity
from adk_compaction_backport.verify.fake_model import SummarizerControl, make_app
from adk_compaction_backport.verify.scenario import USER_ID, message
from adk_compaction_backport.verify.urls import uses_async_engine
from conftest import DATABASE_KINDS
from harness import BACKPORT_ONLY, CLAIMED_ONLY

pytestmark = [CLAIMED_ONLY, BACKPORT_ONLY]

SYNC_RUNS = 50
DRIVERS = {
    "postgresql": ("postgresql+psycopg2", "postgresql+asyncpg"),
    "mysql": ("mysql+pymysql", "mysql+aiomysql"),
}
COUNT_SQL = {
    "postgresql": "SELECT count(*) FROM pg_stat_activity WHERE datname = :db",
    "mysql": "SELECT COUNT(*) FROM information_schema.PROCESSLIST WHERE DB = :db",
}


class Server:
    """The test's database on its server, and a counter of its connections."""

    def __init__(self, kind: str, server_url: str, db_url: str) -> None:
        self.kind = kind
        self.db_url = make_url(db_url)
        self._counter = create_engine(
            make_url(server_url).set(drivername=DRIVERS[kind][0]), poolclass=NullPool
        )

    def url(self, **changes: Any) -> Any:
        """The database's URL with the driver this google-adk release uses."""
        driver = DRIVERS[self.kind][1 if uses_async_engine() else 0]
        return self.db_url.set(drivername=driver, **changes)

    def query(self, sql: str, **params: Any) -> List[Any]:
        with self._counter.connect() as connection:
            return list(connection.execute(text(sql), params))

    def connections(self) -> int:
        return int(self.query(COUNT_SQL[self.kind], db=self.db_url.database)[0][0])

    async def settled_connections(self, expected: int) -> int:
        """The count once it reaches ``expected``, or the last after 30 s (a
        server notices a closed connection a moment after the client closes it;
        the event loop closes its own connections meanwhile)."""
        deadline = time.monotonic() + 30
        while True:
            count = self.connections()
            if count == expected or time.monotonic() > deadline:
                return count
            await asyncio.sleep(0.05)

    def dispose(self) -> None:
        self._counter.dispose()


def _server(request: pytest.FixtureRequest, kind: str) -> Iterator[Server]:
    if kind == "mysql" and kind not in DATABASE_KINDS:
        # MariaDB runs on one release per family (tox's ADK_BACKPORT_DATABASES):
        # released 1.17.0 cannot even store an event there (pymysql: "'tuple'
        # object cannot be interpreted as an integer"), with the package or not.
        pytest.skip("MariaDB/MySQL runs where ADK_BACKPORT_DATABASES names it")
    prefix = "postgres" if kind == "postgresql" else "mysql"
    server_url = request.getfixturevalue(f"{prefix}_server_url")
    found = Server(kind, server_url, request.getfixturevalue(f"{prefix}_db_url"))
    yield found
    found.dispose()


@pytest.fixture(params=["postgresql", "mysql"])
def server(request: pytest.FixtureRequest) -> Iterator[Server]:
    yield from _server(request, str(request.param))


@pytest.fixture
def postgresql(request: pytest.FixtureRequest) -> Iterator[Server]:
    yield from _server(request, "postgresql")


@pytest.fixture
def mysql(request: pytest.FixtureRequest) -> Iterator[Server]:
    yield from _server(request, "mysql")


class CountingControl(SummarizerControl):
    """Counts the database's connections while the summarizer runs (the
    session's lock is held then)."""

    def __init__(self, count: Callable[[], int]) -> None:
        super().__init__()
        self.counts: List[int] = []
        self._count = count

    async def enter(self) -> int:
        self.counts.append(self._count())
        return await super().enter()


def new_runner(server: Server, control: SummarizerControl) -> Runner:
    service = DatabaseSessionService(str_url(server.url()), poolclass=NullPool)
    return Runner(app=make_app(control), session_service=service)


def str_url(url: Any) -> str:
    return url.render_as_string(hide_password=False)


async def create_session(runner: Runner, session_id: str) -> None:
    await runner.session_service.create_session(
        app_name=runner.app_name, user_id=USER_ID, session_id=session_id
    )


def test_sync_runs_leave_no_lock_connection_behind(server: Server) -> None:
    control = CountingControl(server.connections)
    runner = new_runner(server, control)
    asyncio.run(create_session(runner, "sync-runs"))
    before = asyncio.run(server.settled_connections(0))
    for turn in range(1, SYNC_RUNS + 1):
        events = runner.run(
            user_id=USER_ID, session_id="sync-runs", new_message=message(0, turn)
        )
        assert list(events)
    assert control.calls >= SYNC_RUNS // 2 - 1  # compactions ran, under the lock
    assert max(control.counts) > before  # a lock connection was open meanwhile
    assert asyncio.run(server.settled_connections(before)) == before


def test_closing_the_service_closes_its_lock_connection(server: Server) -> None:
    control = SummarizerControl()
    runner = new_runner(server, control)

    async def turns_then_close() -> Dict[str, int]:
        await create_session(runner, "closed")
        before = await server.settled_connections(0)
        for turn in (1, 2):
            async for _ in runner.run_async(
                user_id=USER_ID, session_id="closed", new_message=message(0, turn)
            ):
                pass
        await asyncio.sleep(0)  # 1.16-1.18 compact after the stream ends
        await drain()
        while_open = server.connections()  # the loop is still running
        close = getattr(runner.session_service, "close", None)
        if close is not None:  # 1.22+
            await close()
        else:  # 1.16-1.21: dispose the engine (awaited where it is async)
            disposed = runner.session_service.db_engine.dispose()
            if inspect.isawaitable(disposed):
                await disposed
        after = await server.settled_connections(before)
        return {"before": before, "open": while_open, "after": after}

    counts = asyncio.run(turns_then_close())
    assert control.calls == 1
    assert counts["open"] == counts["before"] + 1
    assert counts["after"] == counts["before"]


def read_while_locked(service: Any, server: Server, sql: str, **params: Any) -> Any:
    """Rows of ``sql`` (``:db`` is the test's database) read while ``service``
    holds a session's lock."""

    async def locked() -> List[Any]:
        identity = SessionIdentity(service, "app", "user", "s")
        async with session_lock(identity, 5.0) as held:
            assert held is True
            return server.query(sql, db=server.db_url.database, **params)

    return asyncio.run(locked())


def test_postgresql_lock_connections_connect_as_the_service_does(
    postgresql: Server,
) -> None:
    name = f"adk-lock-{uuid.uuid4().hex[:8]}"
    if uses_async_engine():  # asyncpg
        arguments: Dict[str, Any] = {"server_settings": {"application_name": name}}
    else:  # psycopg2
        arguments = {"application_name": name}
    service = DatabaseSessionService(str_url(postgresql.url()), connect_args=arguments)
    holders = read_while_locked(
        service,
        postgresql,
        "SELECT a.application_name FROM pg_locks l JOIN pg_stat_activity a"
        " ON a.pid = l.pid WHERE l.locktype = 'advisory' AND a.datname = :db",
    )
    assert [row[0] for row in holders] == [name]


def test_the_lock_connection_comes_from_the_services_creator(
    postgresql: Server,
) -> None:
    """``creator`` (sync engines) or ``async_creator`` (async ones) opens it."""
    dsn = str_url(postgresql.db_url)  # libpq's and asyncpg's own URL form
    opened: List[str] = []
    if uses_async_engine():
        import asyncpg

        async def async_creator() -> Any:
            opened.append(dsn)
            return await asyncpg.connect(dsn)

        arguments: Dict[str, Any] = {"async_creator": async_creator}
    else:
        import psycopg2

        def creator() -> Any:
            opened.append(dsn)
            return psycopg2.connect(dsn)

        arguments = {"creator": creator}
    url = postgresql.url(host="unused.invalid")  # only the creator can connect
    service = DatabaseSessionService(str_url(url), poolclass=NullPool, **arguments)
    before = len(opened)
    read_while_locked(service, postgresql, "SELECT 1")
    assert len(opened) == before + 1


@pytest.fixture
def mysql_user(mysql_server_url: str, mysql_db_url: str) -> Iterator[Dict[str, str]]:
    """A user of the test's database who must give a password.

    Made for 'localhost' too: a server made by ``mysql_install_db`` (the
    throwaway one the suite starts) has an anonymous ''@'localhost', which
    would otherwise win over 'user'@'%' for a connection from loopback.
    """
    user = {"name": f"adk_{uuid.uuid4().hex[:10]}", "password": uuid.uuid4().hex}
    database = make_url(mysql_db_url).database
    hosts = ("%", "localhost")
    for host in hosts:
        mysql_execute(
            mysql_server_url,
            f"CREATE USER '{user['name']}'@'{host}' IDENTIFIED BY '{user['password']}'",
        )
        mysql_execute(
            mysql_server_url,
            f"GRANT ALL ON `{database}`.* TO '{user['name']}'@'{host}'",
        )
    yield user
    for host in hosts:
        mysql_execute(mysql_server_url, f"DROP USER '{user['name']}'@'{host}'")


def test_mysql_lock_connections_connect_as_the_service_does(
    mysql: Server, mysql_user: Dict[str, str]
) -> None:
    """The password is given only in ``connect_args``: the URL alone would be
    refused by the server."""
    service = DatabaseSessionService(
        str_url(mysql.url(username=mysql_user["name"])),
        connect_args={"password": mysql_user["password"]},
        poolclass=NullPool,  # the user's only connection is the lock's
    )
    users = read_while_locked(
        service,
        mysql,
        "SELECT USER FROM information_schema.PROCESSLIST"
        " WHERE DB = :db AND USER = :user",
        user=mysql_user["name"],
    )
    assert len(users) == 1
