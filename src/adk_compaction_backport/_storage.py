"""Which session service really stores an app's sessions, and where.

``adk web`` and ``adk api_server`` keep sessions by default (1.21+) in
``PerAgentDatabaseSessionService``: a router that gives each app a SQLite
file of its own, through a service it makes on first use. The runner holds
the router; the writes reach the per-app service. Both must name the same
storage, or a turn and its own writes would not coordinate (and the
cross-process lock would find no file to lock).

Services on one database coordinate, even as separate objects: ``place_of``
names where a service keeps its sessions, and both the coordinator's
bookkeeping and the cross-process locks (``_lock_backends``) go by it.
"""

from __future__ import annotations

import os
from typing import Any, Hashable

ROUTER_CLASS = "PerAgentDatabaseSessionService"
# The router's key for apps whose names start with "__" (its built-in ones).
BUILT_IN_KEY = "__adk_built_in_session_service__"


def storage_of(service: Any, app_name: str) -> Any:
    """The service that stores ``app_name``'s sessions for ``service``.

    ``service`` itself unless it is the per-app router (or a subclass) and
    has made that app's service already (it does at the app's first session
    read or creation, before any turn of it runs).
    """
    if not any(cls.__name__ == ROUTER_CLASS for cls in type(service).__mro__):
        return service
    services = getattr(service, "_services", None)
    if not isinstance(services, dict):
        return service
    # 1.19 - 1.20 key the services by app name; later releases map names to
    # agent folders and keep their built-in apps under one key.
    routes = getattr(service, "_app_name_to_dir", None) or {}
    key = routes.get(app_name, app_name)
    if app_name.startswith("__") and BUILT_IN_KEY in services:
        key = BUILT_IN_KEY
    return services.get(key, service)


def place_of(storage: Any) -> Hashable:
    """Where ``storage`` (a service that stores sessions itself) keeps them.

    ``("database", backend, URL)`` for ``DatabaseSessionService`` on a
    server, ``("file", real path)`` for a SQLite file (either service), else
    ``("memory", id)``: memory, ``:memory:`` SQLite and services we do not
    know share nothing with another object.
    """
    engine = getattr(storage, "db_engine", None)
    url = getattr(engine, "url", None)
    if url is not None and hasattr(url, "get_backend_name"):
        backend = url.get_backend_name()
        if backend != "sqlite":
            return ("database", backend, url.render_as_string(hide_password=False))
        database = url.database or ""
        if is_file(database) and url.query.get("mode") != "memory":
            return ("file", os.path.realpath(database))
        return ("memory", id(storage))
    path = getattr(storage, "_db_path", None)
    if isinstance(path, str) and is_file(path):
        return ("file", os.path.realpath(path))
    return ("memory", id(storage))


def is_file(path: str) -> bool:
    """Whether a SQLite path names a file (not memory)."""
    return bool(path) and path != ":memory:" and "mode=memory" not in path
