"""The session service ``adk web --session_service_uri URL`` would use.

Each release decides with its own code, and this module calls that code
rather than re-deciding: from the release that has it,
``google.adk.cli.utils.service_factory.create_session_service_from_options``
(what ``get_fast_api_app`` calls from 1.21; in 1.19 and 1.20 it is the
registry lookup and fallback below, which that function does the same way for
a URL); before, the service registry
(``google.adk.cli.service_registry``, from 1.18) with ``get_fast_api_app``'s
fallback to ``DatabaseSessionService`` for a scheme the registry does not know;
1.16 and 1.17 hand every URL but ``agentengine://`` to
``DatabaseSessionService``. So
``sqlite:///x.db`` is ``SqliteSessionService`` where the release maps it so
(1.19+) and ``DatabaseSessionService`` before.

``verify_service`` is what ``verify`` runs on: this, or without a URL a
``DatabaseSessionService`` on a temporary SQLite file.

One kindness on top: a driverless ``postgresql://`` or ``mysql://`` URL gets
the driver the release's engine needs (1.19+ refuses a synchronous driver,
and ADK before 2.x does not add one itself). It stays a
``DatabaseSessionService``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Optional, Union

from adk_compaction_backport.verify.urls import database_url


def _adk_url(url: str) -> str:
    scheme = url.partition("://")[0]
    return database_url(url) if scheme in ("postgresql", "mysql") else url


def session_service_for(url: str, agents_dir: Union[str, Path]) -> Any:
    """Build the session service for ``url`` as the installed release's CLI does.

    ``agents_dir`` is where the CLI's ``agents_dir`` would be (some factories
    resolve relative paths or per-agent storage against it).
    """
    url = _adk_url(url)
    try:
        from google.adk.cli.utils.service_factory import (
            create_session_service_from_options,
        )
    except ImportError:
        create_session_service_from_options = None
    if create_session_service_from_options is not None:
        return create_session_service_from_options(
            base_dir=agents_dir, session_service_uri=url
        )
    try:
        from google.adk.cli.service_registry import get_service_registry
    except ImportError:  # 1.16, 1.17: every URL but agentengine:// is a database
        get_service_registry = None
    if get_service_registry is not None:
        service = get_service_registry().create_session_service(
            url, agents_dir=str(agents_dir)
        )
        if service is not None:
            return service
    from google.adk.sessions.database_session_service import DatabaseSessionService

    return DatabaseSessionService(db_url=url)


def verify_service(db_url: Optional[str], scratch_dir: str) -> Any:
    """The session service ``verify`` runs on (built, not yet used).

    ``db_url``: as ``adk web --session_service_uri`` takes it; ``None``: a
    ``DatabaseSessionService`` on a SQLite file in ``scratch_dir``.
    """
    if db_url:
        return session_service_for(db_url, Path.cwd())
    from google.adk.sessions.database_session_service import DatabaseSessionService

    return DatabaseSessionService(db_url=default_url(scratch_dir))


def default_url(scratch_dir: str) -> str:
    """The temporary SQLite database of a ``verify`` without ``--db-url``."""
    return database_url(f"sqlite:///{Path(scratch_dir) / 'sessions.db'}")
