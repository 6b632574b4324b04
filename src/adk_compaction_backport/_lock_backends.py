"""Cross-process locks from the database's own primitives, one job each.

* ``DatabaseLocks``: PostgreSQL session-level advisory locks
  (``pg_try_advisory_lock``) or MySQL/MariaDB named locks (``GET_LOCK``) on
  ONE dedicated connection per process and database, never one of the app's
  pool: a lock is held across a summarizer call (seconds), and a pooled
  connection held that long would starve turns. The server drops the
  connection's locks when the process dies.
* ``FileLocks``: a POSIX byte-range lock (``fcntl.lockf``) on a sidecar file
  next to a SQLite database, which the kernel drops when the process dies.

Every attempt is non-blocking (the caller polls), so a waiting compaction
never holds the shared connection. Nothing heavy is imported before the first
lock is needed: SQLAlchemy and ``fcntl`` are imported inside the methods.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
import weakref
from typing import Any, Dict, Optional, Tuple

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


class _Connection:
    """The dedicated connection of one event loop (async) or of the process."""

    __slots__ = ("connection", "generation", "guard")

    def __init__(self, guard: Any) -> None:
        self.connection: Any = None
        self.generation = 0
        # One statement at a time on the shared connection (asyncpg and
        # SQLAlchemy connections are not safe for concurrent use).
        self.guard = guard


class DatabaseLocks:
    """Advisory (PostgreSQL) or named (MySQL/MariaDB) locks on a dedicated connection.

    The connection is made from the service's engine URL with ``NullPool``
    (no pool of our own either) and the engine style the release uses: an
    async engine from 1.19, a sync one (statements in a thread) before.
    """

    reentrant = True  # a second try-lock on the connection counts once more

    def __init__(self, url: Any, dialect: str, is_async: bool) -> None:
        self.dialect = dialect
        self._url = url
        self._is_async = is_async
        self._engine: Any = None
        self._statements = _STATEMENTS[dialect]
        self._sync = _Connection(threading.Lock())
        self._per_loop: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

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

    async def close(self) -> None:
        """Close the connection of the running event loop and the sync one."""
        slot = self._per_loop.pop(asyncio.get_running_loop(), None)
        if slot is not None and slot.connection is not None:
            with contextlib.suppress(Exception):
                await slot.connection.close()
        with self._sync.guard:
            if self._sync.connection is not None:
                _close_quietly(self._sync.connection.close)
                self._sync.connection = None

    # -- the connection ------------------------------------------------------

    def _make_engine(self) -> Any:
        from sqlalchemy.pool import NullPool

        options = {"poolclass": NullPool, "isolation_level": "AUTOCOMMIT"}
        if self._is_async:
            from sqlalchemy.ext.asyncio import create_async_engine

            return create_async_engine(self._url, **options)
        from sqlalchemy import create_engine

        return create_engine(self._url, **options)

    async def _run(
        self, sql: str, key: Any, reconnect: bool, only: Optional[int] = None
    ) -> Tuple[bool, int]:
        """Run one lock statement; True if it answered yes, with the generation.

        ``reconnect``: a dropped connection (a database restart) is replaced
        and the statement tried once more. ``only``: run only on that
        generation of the connection (an unlock on a newer connection would
        release nothing: the lock died with the old one).
        """
        if self._engine is None:
            self._engine = self._make_engine()
        if self._is_async:
            return await self._run_async(sql, key, reconnect, only)
        return await asyncio.get_running_loop().run_in_executor(
            None, self._run_sync, sql, key, reconnect, only
        )

    def _run_sync(
        self, sql: str, key: Any, reconnect: bool, only: Optional[int]
    ) -> Tuple[bool, int]:
        from sqlalchemy import text

        slot = self._sync
        with slot.guard:
            for attempt in (1, 2):
                if only is not None and (
                    slot.generation != only or slot.connection is None
                ):
                    return False, slot.generation
                fresh = slot.connection is None
                if fresh:
                    slot.connection = self._engine.connect()
                    slot.generation += 1
                try:
                    answer = slot.connection.execute(text(sql), {"key": key}).scalar()
                    return bool(answer), slot.generation
                except Exception:
                    _close_quietly(slot.connection.close)
                    slot.connection = None
                    if fresh or not reconnect or attempt == 2:
                        raise
        raise AssertionError("unreachable")

    async def _run_async(
        self, sql: str, key: Any, reconnect: bool, only: Optional[int]
    ) -> Tuple[bool, int]:
        from sqlalchemy import text

        loop = asyncio.get_running_loop()
        slot = self._per_loop.get(loop)
        if slot is None:
            slot = self._per_loop[loop] = _Connection(asyncio.Lock())
        async with slot.guard:
            for attempt in (1, 2):
                if only is not None and (
                    slot.generation != only or slot.connection is None
                ):
                    return False, slot.generation
                fresh = slot.connection is None
                if fresh:
                    slot.connection = await self._engine.connect()
                    slot.generation += 1
                try:
                    result = await slot.connection.execute(text(sql), {"key": key})
                    return bool(result.scalar()), slot.generation
                except Exception:
                    connection, slot.connection = slot.connection, None
                    with contextlib.suppress(Exception):
                        await connection.invalidate()
                    if fresh or not reconnect or attempt == 2:
                        raise
        raise AssertionError("unreachable")


def _close_quietly(close: Any) -> None:
    with contextlib.suppress(Exception):
        close()


class FileLocks:
    """Byte-range locks on ``<database>.adk-compaction.lock`` (SQLite on one host).

    The file descriptor stays open for the life of the process: POSIX drops
    all of a process's locks on a file when ANY descriptor of it is closed.
    """

    reentrant = False  # locking a range twice is locking it once

    def __init__(self, database_path: str) -> None:
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
    SQLite) or the service is not one we know.
    """
    engine = getattr(service, "db_engine", None)
    url = getattr(engine, "url", None)
    if url is not None and hasattr(url, "get_backend_name"):
        return _database_backend(engine, url)
    path = getattr(service, "_db_path", None)
    if isinstance(path, str) and _is_file(path):
        real = os.path.realpath(path)
        return ("file", real), lambda: FileLocks(real)
    return None


def _database_backend(engine: Any, url: Any) -> Optional[Tuple[Any, Any]]:
    name = url.get_backend_name()
    if name == "sqlite":
        database = url.database or ""
        if not _is_file(database) or url.query.get("mode") == "memory":
            return None
        real = os.path.realpath(database)
        return ("file", real), lambda: FileLocks(real)
    dialect = {"postgresql": "postgresql", "mysql": "mysql", "mariadb": "mysql"}.get(
        name
    )
    if dialect is None:
        return None
    is_async = hasattr(engine, "sync_engine")
    identity = ("database", url.render_as_string(hide_password=False), is_async)
    return identity, lambda: DatabaseLocks(url, dialect, is_async)


def _is_file(path: str) -> bool:
    return bool(path) and path != ":memory:" and "mode=memory" not in path


_REGISTRY: Dict[Any, Any] = {}
_REGISTRY_GUARD = threading.Lock()


def locks_for(service: Any) -> Any:
    """This process's lock backend for ``service``'s storage (made once), or None."""
    found = backend_for(service)
    if found is None:
        return None
    identity, make = found
    # A forked child must not share its parent's connection or descriptor.
    key = (os.getpid(), identity)
    with _REGISTRY_GUARD:
        backend = _REGISTRY.get(key)
        if backend is None:
            backend = _REGISTRY[key] = make()
        return backend


async def close_connections() -> None:
    """Close this event loop's lock connections (and the sync ones): for tests
    and orderly shut-downs; a process that just exits loses them all the same."""
    with _REGISTRY_GUARD:
        backends = list(_REGISTRY.values())
    for backend in backends:
        if isinstance(backend, DatabaseLocks):
            await backend.close()
