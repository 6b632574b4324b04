"""Which session service really stores an app's sessions.

``adk web`` and ``adk api_server`` keep sessions by default (1.21+) in
``PerAgentDatabaseSessionService``: a router that gives each app a SQLite
file of its own, through a service it makes on first use. The runner holds
the router; the writes reach the per-app service. Both must name the same
storage, or a turn and its own writes would not coordinate (and the
cross-process lock would find no file to lock).
"""

from __future__ import annotations

from typing import Any

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
