"""One session, resolved once: which service, which storage, which lock backend.

A compaction touches its session many times (claim, lock, reads, the summary
write); each needs the service the runner holds, the service that really
stores the app's sessions (``_storage``: ``adk web``'s per-app router), where
that storage lives, and this process's cross-process lock backend for it.
``SessionIdentity.of`` resolves them once per turn; the lock backend on
first use only (most compactions never need it).
"""

from __future__ import annotations

from typing import Any, Hashable, List, Optional, Sequence, Tuple

from adk_compaction_backport._incremental_reads import read_session
from adk_compaction_backport._process_locks import lock_backend
from adk_compaction_backport._revision_probe import unmoved
from adk_compaction_backport._storage import place_of, storage_of

SessionKey = Tuple[Hashable, str, str, str]
"""Where the session is stored, its app, user and id: equal for every service
object on the same storage."""

_UNRESOLVED: Any = object()


def session_key(
    service: Any, app_name: str, user_id: str, session_id: str
) -> SessionKey:
    """The key of a session in ``service`` (the router resolved)."""
    return SessionIdentity(service, app_name, user_id, session_id).key


class SessionIdentity:
    """One session in one session service. Not changed after it is made."""

    __slots__ = (
        "_locks",
        "app_name",
        "place",
        "service",
        "session_id",
        "storage",
        "user_id",
    )

    def __init__(
        self, service: Any, app_name: str, user_id: str, session_id: str
    ) -> None:
        self.service = service
        """The service the runner holds: reads and writes go through it."""
        self.storage = storage_of(service, app_name)
        """The service that stores the app's sessions (the router resolved)."""
        self.place: Hashable = place_of(self.storage)
        self.app_name = app_name
        self.user_id = user_id
        self.session_id = session_id
        self._locks: Any = _UNRESOLVED

    @classmethod
    def of(cls, service: Any, session: Any) -> SessionIdentity:
        """The identity of ``session`` (a google-adk ``Session``) in ``service``."""
        return cls(service, session.app_name, session.user_id, session.id)

    @property
    def key(self) -> SessionKey:
        return (self.place, self.app_name, self.user_id, self.session_id)

    @property
    def names(self) -> Tuple[str, str, str]:
        """App name, user id, session id."""
        return (self.app_name, self.user_id, self.session_id)

    @property
    def locks(self) -> Any:
        """This process's cross-process lock backend for the storage, or None
        (turned off, or nothing shared between processes)."""
        if self._locks is _UNRESOLVED:
            self._locks = lock_backend(self.storage)
        return self._locks

    async def read(
        self,
        known: Sequence[Any],
        timestamps: Optional[List[float]] = None,
        seen: Optional[Any] = None,
    ) -> Optional[Any]:
        """The session as storage holds it now (None: deleted), reading only
        what is new since ``known`` (``_incremental_reads``; ``timestamps``:
        theirs, if already read).

        ``seen``: the ``Session`` whose events ``known`` are, as the turn read
        or wrote through it. When one read of the session's row shows storage
        still at its revision (``_revision_probe``), nothing was stored since:
        the answer is a copy of it, and no event is read.
        """
        if seen is not None and await unmoved(self.storage, self.names, seen):
            return seen.model_copy(
                update={"events": list(known), "state": dict(seen.state)}
            )
        return await read_session(self.service, *self.names, known, timestamps)
