"""Cross-process locks from the database's own primitives, one job each.

* ``DatabaseLocks``: PostgreSQL session-level advisory locks
  (``pg_try_advisory_lock``) or MySQL/MariaDB named locks (``GET_LOCK``) on
  ONE dedicated connection per event loop and database, never one of the
  app's pool: a lock is held across a summarizer call (seconds), and a pooled
  connection held that long would starve turns. The server drops the
  connection's locks when the process dies.
* ``FileLocks``: a POSIX byte-range lock (``fcntl.lockf``) on a sidecar file
  next to a SQLite database, which the kernel drops when the process dies.

Every attempt is non-blocking (the caller polls), so a waiting compaction
never holds the shared connection. Nothing heavy is imported before the first
lock is needed: SQLAlchemy and ``fcntl`` are imported inside the methods.

A lock connection lives and dies with its event loop and its service: it is
closed when its loop ends (``asyncio.run`` and sync ``Runner.run``, which makes
a loop per call, finalize async generators at the end: one is parked per
connection; a loop closed without ``shutdown_asyncgens()`` keeps it) and when
the service's engine is disposed (``close()`` of the service from 1.19;
``db_engine.dispose()`` before), and the lock engine is disposed with it.
The lock engine connects the way the service's engine does: same URL and the
same connection function (``connect_args``, ``creator`` or ``async_creator``,
SSL, ``server_settings`` and ``do_connect`` hooks).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import threading
import weakref
from typing import Any, AsyncIterator, Callable, Dict, Optional, Set, Tuple

from adk_compaction_backport._storage import place_of

SIDE_CAR_SUFFIX = ".adk-compaction.lock"
# Byte offsets in the sidecar file stay below 2**40: far apart for a hash, and
# within every platform's 64-bit ``off_t``.
OFFSET_RANGE = 1 << 40

# dialect -> (try-lock statement, unlock statement, held-by-another-connection
# statement); ``:key`` is bound. The last only reads: PostgreSQL's lock table
# (a bigint key shows as classid = high 32 bits, objid = low 32 bits,
# objsubid = 1), MySQL's owner of a named lock.
_STATEMENTS = {
    "postgresql": (
        "SELECT pg_try_advisory_lock(:key)",
        "SELECT pg_advisory_unlock(:key)",
        "SELECT EXISTS (SELECT 1 FROM pg_locks WHERE locktype = 'advisory'"
        " AND granted AND pid <> pg_backend_pid() AND objsubid = 1"
        " AND database = (SELECT oid FROM pg_database"
        " WHERE datname = current_database())"
        " AND classid = CAST((CAST(:key AS bigint) >> 32) & 4294967295 AS oid)"
        " AND objid = CAST(CAST(:key AS bigint) & 4294967295 AS oid))",
    ),
    "mysql": (
        "SELECT GET_LOCK(:key, 0)",
        "SELECT RELEASE_LOCK(:key)",
        "SELECT COALESCE(IS_USED_LOCK(:key) <> CONNECTION_ID(), 0)",
    ),
}

Token = Tuple[Any, int]
"""What ``try_lock`` returns on success: the lock's key and the generation of
the connection that holds it (a lock dies with its connection)."""


class LockBackend:
    """What this process holds through one backend (``_process_locks`` keeps it).

    ``held``: key -> [holders, token]: two sessions whose keys collide share
    the lock, taken once and released when the last holder leaves. ``claims``:
    the keys of turn claims held here (never asked about: the in-process queue
    already orders this process's own compactions). ``failing``: a failure was
    logged and nothing worked since. ``guard`` covers all three.
    """

    reentrant = False

    def __init__(self) -> None:
        self.guard = threading.Lock()
        self.held: Dict[Any, list] = {}
        self.claims: Set[Any] = set()
        self.failing = False


class _Link:
    """The dedicated connection of one event loop."""

    __slots__ = ("connection", "generation", "guard", "watch")

    def __init__(self) -> None:
        self.connection: Any = None
        self.generation = 0
        # One statement at a time on the connection (asyncpg and SQLAlchemy
        # connections are not safe for concurrent use).
        self.guard = asyncio.Lock()
        self.watch: Any = None  # the async generator the loop closes at its end


class DatabaseLocks(LockBackend):
    """Advisory (PostgreSQL) or named (MySQL/MariaDB) locks on a dedicated connection.

    The lock engine is made from the service's engine (``source``): its URL,
    its connection function, ``NullPool`` (no pool of our own either) and its
    style: async from 1.19, sync before (each call then runs in a worker
    thread; the retry loop is the same).
    """

    reentrant = True  # a second try-lock on the connection counts once more

    def __init__(self, source: Any, dialect: str) -> None:
        super().__init__()
        self.dialect = dialect
        # Not ``source`` itself: that would keep the service's engine (and the
        # connections of its pool) alive after the service is gone.
        self._url = source.url
        self._creator = _connection_function(source)
        self._is_async = hasattr(source, "sync_engine")
        self._engine: Any = None
        self._statements = _STATEMENTS[dialect]
        self._links: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
        self._links_guard = threading.Lock()
        self._closing: Set[Any] = set()  # tasks closing links (strong references)
        # Generations are unique across loops: a token of a closed loop's
        # connection never matches a later one's.
        self._generations = itertools.count(1)
        self._pid = os.getpid()

    def key_of(self, digest: bytes) -> Any:
        if self.dialect == "postgresql":
            return int.from_bytes(digest[:8], "big", signed=True)
        return "adk-compaction:" + digest[:20].hex()  # 55 characters (<= 64)

    async def try_lock(self, key: Any) -> Optional[Token]:
        got, generation = await self._run(self._statements[0], key, reconnect=True)
        return (key, generation) if got else None

    async def unlock(self, token: Token) -> None:
        key, generation = token
        await self._run(self._statements[1], key, reconnect=False, only=generation)

    async def held_elsewhere(self, key: Any) -> bool:
        """Whether another connection holds ``key`` (without touching it)."""
        held, _ = await self._run(self._statements[2], key, reconnect=True)
        return held

    def close(self) -> None:
        """Close every loop's connection (each on its own loop) and dispose the
        engine: the service's engine was disposed. Callable from any thread."""
        if os.getpid() != self._pid:  # a forked child: the parent's connections
            return
        with self._links_guard:
            links = list(self._links.items())
        for loop, link in links:
            with contextlib.suppress(RuntimeError):  # closed: its link went with it
                loop.call_soon_threadsafe(self._close_soon, link)
        with self._links_guard:
            engine, self._engine = self._engine, None
        if engine is not None:  # NullPool: nothing is pooled, no I/O here
            _quietly(getattr(engine, "sync_engine", engine).dispose)

    # -- the connection of this event loop ------------------------------------

    async def _run(
        self, sql: str, key: Any, reconnect: bool, only: Optional[int] = None
    ) -> Tuple[bool, int]:
        """Run one lock statement; True if it answered yes, with the generation.

        ``reconnect``: a dropped connection (a database restart) is replaced
        and the statement tried once more. ``only``: run only on that
        generation of the connection (an unlock on a newer connection would
        release nothing: the lock died with the old one).
        """
        from sqlalchemy import text

        link = await self._link()
        async with link.guard:
            for attempt in (1, 2):
                if only is not None and (
                    link.generation != only or link.connection is None
                ):
                    return False, link.generation
                fresh = link.connection is None
                if fresh:
                    link.connection = await self._call(self._engine_now().connect)
                    link.generation = next(self._generations)
                try:
                    result = await self._call(
                        link.connection.execute, text(sql), {"key": key}
                    )
                    return bool(result.scalar()), link.generation
                except Exception:
                    connection, link.connection = link.connection, None
                    with contextlib.suppress(Exception):
                        await self._call(connection.invalidate)
                    if fresh or not reconnect or attempt == 2:
                        raise
        raise AssertionError("unreachable")

    async def _call(self, method: Callable[..., Any], *args: Any) -> Any:
        """Call an engine or connection method: awaited on an async engine, in
        a worker thread on a sync one (the event loop never blocks on I/O)."""
        if self._is_async:
            return await method(*args)
        return await asyncio.get_running_loop().run_in_executor(None, method, *args)

    def _engine_now(self) -> Any:
        with self._links_guard:  # loops in several threads: one engine
            if self._engine is None:
                self._engine = self._make_engine()
            return self._engine

    def _make_engine(self) -> Any:
        """A ``NullPool``, autocommit engine that connects as the service's does."""
        from sqlalchemy.pool import NullPool

        options: Dict[str, Any] = {
            "poolclass": NullPool,
            "isolation_level": "AUTOCOMMIT",
        }
        if self._creator is not None:
            options["creator"] = self._creator
        if self._is_async:
            from sqlalchemy.ext.asyncio import create_async_engine

            return create_async_engine(self._url, **options)
        from sqlalchemy import create_engine

        return create_engine(self._url, **options)

    async def _link(self) -> _Link:
        loop = asyncio.get_running_loop()
        with self._links_guard:
            link = self._links.get(loop)
            if link is not None:
                return link
            link = self._links[loop] = _Link()
        link.watch = self._until_loop_ends(loop, link)
        await link.watch.asend(None)  # parked: the loop now finalizes it at its end
        return link

    async def _until_loop_ends(self, loop: Any, link: _Link) -> AsyncIterator[None]:
        """Closes ``link`` when closed: by the loop's ``shutdown_asyncgens()``
        at its end, or by ``close()``."""
        try:
            yield
        finally:
            with self._links_guard:
                if self._links.get(loop) is link:
                    del self._links[loop]
            async with link.guard:
                connection, link.connection = link.connection, None
                if connection is not None:
                    with contextlib.suppress(Exception):
                        await self._call(connection.close)

    def _close_soon(self, link: _Link) -> None:
        """On ``link``'s loop: close it in a task (kept until done)."""
        task = asyncio.ensure_future(link.watch.aclose())
        self._closing.add(task)
        task.add_done_callback(self._closed)

    def _closed(self, task: Any) -> None:
        self._closing.discard(task)
        if not task.cancelled():
            task.exception()  # retrieved: a failed close has nothing left to undo


def _connection_function(source: Any) -> Optional[Callable[..., Any]]:
    """The function ``source``'s pool opens its connections with, or None.

    ``create_engine`` builds it from the URL, ``connect_args`` and the
    dialect's ``do_connect`` hooks, or it is the ``creator``/``async_creator``
    the service was given; the URL alone would lose them (SSL, IAM tokens,
    Cloud SQL connectors, ``server_settings``). The one ``create_engine``
    builds holds no reference to the engine or its pool.
    """
    sync_source = getattr(source, "sync_engine", None) or source
    creator = getattr(getattr(sync_source, "pool", None), "_creator", None)
    return creator if callable(creator) else None


def _quietly(close: Callable[[], Any]) -> None:
    with contextlib.suppress(Exception):
        close()


class FileLocks(LockBackend):
    """Byte-range locks on ``<database>.adk-compaction.lock`` (SQLite on one host).

    The file descriptor stays open for the life of the process: POSIX drops
    all of a process's locks on a file when ANY descriptor of it is closed.
    """

    reentrant = False  # locking a range twice is locking it once

    def __init__(self, database_path: str) -> None:
        super().__init__()
        self.path = database_path + SIDE_CAR_SUFFIX
        self._fd: Optional[int] = None
        self._guard = threading.Lock()

    def key_of(self, digest: bytes) -> Any:
        return int.from_bytes(digest[:8], "big") % OFFSET_RANGE

    def _descriptor(self) -> int:
        with self._guard:
            if self._fd is None:
                self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
            return self._fd

    async def try_lock(self, key: Any) -> Optional[Token]:
        import fcntl

        try:
            fcntl.lockf(self._descriptor(), fcntl.LOCK_EX | fcntl.LOCK_NB, 1, key)
        except (BlockingIOError, PermissionError):  # EAGAIN / EACCES: held
            return None
        return (key, 0)

    async def unlock(self, token: Token) -> None:
        import fcntl

        fcntl.lockf(self._descriptor(), fcntl.LOCK_UN, 1, token[0])

    async def held_elsewhere(self, key: Any) -> bool:
        """Whether another process holds byte ``key`` (``F_GETLK``: only asks).

        False where the layout of ``struct flock`` is not known here (only
        64-bit Linux and macOS are).
        """
        import fcntl
        import struct
        import sys

        layout = _FLOCK_LAYOUTS.get(sys.platform)
        if layout is None or sys.maxsize < 2**32:  # 32-bit: another off_t
            return False
        fields = {"type": fcntl.F_WRLCK, "whence": os.SEEK_SET, "start": key}
        fields.update(length=1, pid=0)
        request = struct.pack(layout[0], *(fields[name] for name in layout[1]))
        answer = fcntl.fcntl(self._descriptor(), fcntl.F_GETLK, request)
        found = dict(zip(layout[1], struct.unpack(layout[0], answer)))
        return found["type"] != fcntl.F_UNLCK


# ``struct flock`` per platform: (struct format, field names in order).
_FLOCK_LAYOUTS = {
    "linux": ("@hhqqi4x", ("type", "whence", "start", "length", "pid")),
    "darwin": ("@qqihh", ("start", "length", "pid", "type", "whence")),
}


def backend_for(service: Any) -> Optional[Tuple[Any, Any]]:
    """(identity, a factory of its locks) for ``service``'s storage, or None.

    None where nothing is shared between processes (memory, ``:memory:``
    SQLite) or the database is not one we have locks for. The identity is
    ``_storage.place_of`` (and the engine's style: a backend connects as its
    engine does).
    """
    place = place_of(service)
    if place[0] == "file":
        return place, lambda: FileLocks(place[1])
    dialect = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}
    if place[0] != "database" or place[1] not in dialect:
        return None
    engine = service.db_engine
    is_async = hasattr(engine, "sync_engine")
    return (place, is_async), lambda: DatabaseLocks(engine, dialect[place[1]])


class _Registry:
    """This process's lock backends, one per storage; a database backend
    retires (connections closed, engine disposed) once the engines of all the
    services that use it are disposed."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._backends: Dict[Any, Any] = {}
        # key -> the (sync) engines of the services using that backend
        self._users: Dict[Any, weakref.WeakSet] = {}

    def locks_for(self, service: Any) -> Any:
        found = backend_for(service)
        if found is None:
            return None
        identity, make = found
        # A forked child must not share its parent's connection or descriptor.
        key = (os.getpid(), identity)
        with self._guard:
            backend = self._backends.get(key)
            if backend is None:
                backend = self._backends[key] = make()
                self._users[key] = weakref.WeakSet()
            if isinstance(backend, DatabaseLocks):
                self._serve(key, backend, service.db_engine)
            return backend

    def _serve(self, key: Any, backend: DatabaseLocks, engine: Any) -> None:
        """Retire ``backend`` when ``engine`` (and every other user) is disposed."""
        users = self._users[key]
        sync_engine = getattr(engine, "sync_engine", None) or engine
        if sync_engine in users:
            return
        from sqlalchemy import event

        users.add(sync_engine)
        registry = weakref.ref(self)

        def disposed(disposed_engine: Any) -> None:
            live = registry()
            if live is not None:
                live._disposed(key, backend, disposed_engine)

        event.listen(sync_engine, "engine_disposed", disposed)

    def _disposed(self, key: Any, backend: DatabaseLocks, engine: Any) -> None:
        with self._guard:
            users = self._users.get(key)
            if self._backends.get(key) is not backend or users is None:
                return  # retired already (a listener of an earlier backend)
            users.discard(engine)
            if users:
                return
            del self._backends[key], self._users[key]
        backend.close()


_REGISTRY = _Registry()


def locks_for(service: Any) -> Any:
    """This process's lock backend for ``service``'s storage (made once), or None."""
    return _REGISTRY.locks_for(service)
