"""A session's identity on its own: where its storage lives (one rule for the
coordinator's bookkeeping and the cross-process locks), resolved once.
Stand-in services (an engine, or a ``_db_path``), no google-adk."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
from sqlalchemy import create_engine

from adk_compaction_backport import _process_locks, _session_identity
from adk_compaction_backport._lock_backends import backend_for
from adk_compaction_backport._session_identity import SessionIdentity, session_key


def on_url(url: str) -> SimpleNamespace:
    """A stand-in ``DatabaseSessionService`` (no connection is made)."""
    return SimpleNamespace(db_engine=create_engine(url))


def test_services_on_one_sqlite_file_share_a_key(tmp_path: Path) -> None:
    path = tmp_path / "sessions.db"
    by_url = on_url(f"sqlite:///{path}")
    by_file = SimpleNamespace(_db_path=str(path))  # SqliteSessionService
    keys = {session_key(s, "app", "u", "s") for s in (by_url, by_file)}
    assert len(keys) == 1
    assert {backend_for(s)[0] for s in (by_url, by_file)} == {keys.pop()[0]}


def test_services_on_one_database_server_share_a_key() -> None:
    url = "postgresql+psycopg2://postgres@127.0.0.1:1/postgres"
    first, second = on_url(url), on_url(url)
    assert session_key(first, "a", "u", "s") == session_key(second, "a", "u", "s")
    assert backend_for(first)[0] == backend_for(second)[0]


def test_storage_in_memory_is_each_services_own() -> None:
    for make in (
        lambda: on_url("sqlite:///:memory:"),
        lambda: SimpleNamespace(_db_path=":memory:"),
        lambda: SimpleNamespace(),  # a service we do not know
    ):
        first, second = make(), make()
        assert session_key(first, "a", "u", "s") != session_key(second, "a", "u", "s")
        assert backend_for(first) is None


def test_the_lock_backend_is_resolved_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    calls = []

    def lock_backend(storage: object) -> object:
        calls.append(storage)
        return "backend"

    monkeypatch.setattr(_session_identity, "lock_backend", lock_backend)
    service = SimpleNamespace(_db_path=str(tmp_path / "sessions.db"))
    identity = SessionIdentity(service, "app", "u", "s")
    assert calls == []  # not before a lock is needed
    assert identity.locks == identity.locks == "backend"
    assert calls == [service]
    assert identity.names == ("app", "u", "s")


def test_turned_off_there_is_no_lock_backend(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv(_process_locks.CROSS_PROCESS_VARIABLE, "0")
    service = SimpleNamespace(_db_path=str(tmp_path / "sessions.db"))
    assert SessionIdentity(service, "app", "u", "s").locks is None
