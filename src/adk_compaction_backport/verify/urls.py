"""Database URLs in the driver flavour the installed google-adk expects."""

from __future__ import annotations

from importlib import metadata

from packaging.version import Version

# 1.16-1.18 use a synchronous SQLAlchemy engine; 1.19 moved to an async one.
_SYNC_DRIVERS = {
    "sqlite": "sqlite",
    "postgresql": "postgresql+psycopg2",
    "mysql": "mysql+pymysql",
}
_ASYNC_DRIVERS = {
    "sqlite": "sqlite+aiosqlite",
    "postgresql": "postgresql+asyncpg",
    "mysql": "mysql+aiomysql",
}


def uses_async_engine() -> bool:
    return Version(metadata.version("google-adk")) >= Version("1.19.0")


def database_url(url: str) -> str:
    """Add the right driver to a driverless ``sqlite://``, ``postgresql://`` or
    ``mysql://`` URL."""
    scheme, sep, rest = url.partition("://")
    if "+" in scheme or scheme not in _SYNC_DRIVERS:
        return url
    drivers = _ASYNC_DRIVERS if uses_async_engine() else _SYNC_DRIVERS
    return f"{drivers[scheme]}{sep}{rest}"
