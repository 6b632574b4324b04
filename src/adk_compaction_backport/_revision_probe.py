"""Whether storage still holds a session at the revision a turn last saw.

Before the summarizer call and before a summary's write the package must know
what storage holds now. Most of the time nothing was stored since the turn's
last write (a sequential client waits for the stream), and one primary-key
read of the session's row says so: its revision is still the one the turn's
``Session`` carries. That costs the same at 40 and at 4,000 events, where the
incremental read (``_incremental_reads``) still runs the service's events
query, whose cost grows with the session on ``SqliteSessionService`` (its SQL
scans the session's rows: no index on the event time).

Only where the revision is exact and moves with every write, as upstream's own
stale check uses it:

* ``SqliteSessionService`` (1.19+): the ``update_time`` column, set to the
  event's timestamp by every append; a REAL that round-trips the float the
  ``Session`` holds bit for bit. Upstream rejects a write when storage's is
  later; equality is stricter (a summary stored with an older timestamp moves
  it back, and counts as a move here).
* ``DatabaseSessionService`` from 1.28: the revision marker
  (``StorageSession.get_update_marker()``, the ``Session``'s
  ``_storage_update_marker``), which upstream compares for equality itself.

Anywhere else (``DatabaseSessionService`` before 1.28, whose appends did not
all move ``update_time`` before 1.20 and whose times round-trip through time
zones; a subclass; a service we do not know) the answer is "moved", and the
incremental read decides, as before. So is any failure of the probe itself.
"""

from __future__ import annotations

import logging
from typing import Any, Optional, Tuple

logger = logging.getLogger("adk_compaction_backport")

_SESSIONS_MODULE = "google.adk.sessions."
# Where a loaded ``Session`` keeps the storage revision it was read at:
# the update time (every release) and the exact revision marker (1.28+).
REVISION_ATTRIBUTES = ("last_update_time", "_storage_update_marker")


def _upstream_class(storage: Any) -> Optional[str]:
    """The name of ``storage``'s class if it is google-adk's own, else None
    (a subclass may store otherwise)."""
    cls = type(storage)
    return cls.__name__ if cls.__module__.startswith(_SESSIONS_MODULE) else None


def revision_of(session: Any) -> Tuple[Any, ...]:
    """The revision a ``Session`` carries (``REVISION_ATTRIBUTES``): equal for
    two sessions read or written at the same revision of storage."""
    return tuple(getattr(session, name, None) for name in REVISION_ATTRIBUTES)


def worth_probing(seen: Optional[Any], current: Optional[Any]) -> Optional[Any]:
    """``seen`` (the turn's ``Session``) to probe with, or None when this
    process knows storage moved since: ``current``, its current reference to
    the session (``_session_writes``), carries a later revision (a newer turn
    here wrote or read after it, an eager client's): the probe would only add
    a lookup."""
    if seen is None or (
        current is not None and revision_of(current) != revision_of(seen)
    ):
        return None
    return seen


async def _sqlite_service_revision(
    storage: Any, names: Tuple[str, str, str], newest_event: str
) -> Any:
    async with storage._get_db_connection() as db:
        cursor = await db.execute(
            "SELECT update_time FROM sessions WHERE app_name=? AND user_id=? AND id=?"
            " AND EXISTS (SELECT 1 FROM events WHERE app_name=? AND user_id=?"
            " AND session_id=? AND id=?)",
            (*names, *names, newest_event),
        )
        row = await cursor.fetchone()
        await cursor.close()
    return None if row is None else row[0]


async def _database_marker(
    storage: Any, names: Tuple[str, str, str], newest_event: str
) -> Any:
    from sqlalchemy import exists, select
    from sqlalchemy.orm import load_only

    schema = storage._get_schema_classes()
    row, event = schema.StorageSession, schema.StorageEvent
    app_name, user_id, session_id = names
    statement = (
        select(row)
        .where(row.app_name == app_name, row.user_id == user_id, row.id == session_id)
        .where(
            exists().where(
                event.app_name == app_name,
                event.user_id == user_id,
                event.session_id == session_id,
                event.id == newest_event,
            )
        )
        .options(load_only(row.update_time))
    )
    async with storage.database_session_factory() as sql_session:
        found = (await sql_session.execute(statement)).scalars().first()
        # Read while the row is attached: the marker reads the dialect.
        return None if found is None else found.get_update_marker()


async def unmoved(storage: Any, names: Tuple[str, str, str], seen: Any) -> bool:
    """True only when one read of the session's row shows storage at the
    revision ``seen`` (a ``Session`` the turn read or wrote through) carries,
    and storage still holds ``seen``'s newest event (a session deleted and
    created again under the same id, whose newest event has the same time,
    has other event ids). Both are primary-key lookups.

    ``storage``: the service that stores the session (``_storage.storage_of``);
    ``names``: app name, user id, session id.
    """
    kind = _upstream_class(storage)
    events = getattr(seen, "events", None)
    if not events:
        return False  # nothing of the turn's to find again: the read decides
    newest_event = events[-1].id
    try:
        if kind == "SqliteSessionService":
            revision = await _sqlite_service_revision(storage, names, newest_event)
            return revision is not None and revision == seen.last_update_time
        marker = revision_of(seen)[1]
        if kind == "DatabaseSessionService" and isinstance(marker, str):
            stored = await _database_marker(storage, names, newest_event)
            return stored is not None and stored == marker
    except Exception:
        logger.debug("the revision probe of session %s failed", names[2], exc_info=True)
    return False
