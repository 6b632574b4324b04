"""Open the session service ``verify`` will use, once, before any scenario.

A missing driver, an unreachable or missing database or a malformed URL is a
setup problem, not a failure of the fix: it gets one line that says what to
install or fix (and ``verify`` exit status 2) instead of a table of crashes.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import re
import tempfile
import threading
import warnings
from typing import Any, List, Optional
from urllib.parse import urlsplit

from adk_compaction_backport.verify.services import verify_service
from adk_compaction_backport.verify.urls import uses_async_engine

OPEN_TIMEOUT = 30.0  # seconds; a database server that never answers

# What ``pip install`` brings a module the session service imports, where it
# is not the module's own name (greenlet, aiosqlite, asyncpg, aiomysql, ...).
PIP_NAMES = {
    "sqlalchemy": "sqlalchemy[asyncio]>=2",
    "psycopg2": "psycopg2-binary",
    "MySQLdb": "mysqlclient",
}


class SetupProblem(Exception):
    """The session service cannot be opened; the message says what to do."""


def open_once(db_url: Optional[str]) -> str:
    """Open the service once (one query); return its class name.

    Raises :class:`SetupProblem` with one line saying what to install or fix.
    google-adk's own log lines and warnings about the failure are silenced:
    that line says it once.
    """
    logging.disable(logging.CRITICAL)
    # aiosqlite's worker thread of a connection that failed may still try to
    # answer on the closed loop: not news, the line raised says it.
    excepthook, threading.excepthook = threading.excepthook, _quiet_closed_loop
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            with tempfile.TemporaryDirectory(prefix="adk-compaction-") as scratch:
                opened = _open_once(db_url, scratch)
                return asyncio.run(asyncio.wait_for(opened, OPEN_TIMEOUT))
    except Exception as error:
        raise SetupProblem(explain(error, db_url)) from error
    finally:
        _let_connection_threads_end()
        threading.excepthook = excepthook
        logging.disable(logging.NOTSET)


def _quiet_closed_loop(args: Any) -> None:
    error = args.exc_value
    if not (isinstance(error, RuntimeError) and "closed" in str(error)):
        threading.__excepthook__(args)


def _let_connection_threads_end() -> None:
    """aiosqlite's worker threads end soon after their loop: wait for them
    while the quiet hook is in place."""
    for thread in threading.enumerate():
        if "_connection_worker_thread" in thread.name:
            thread.join(timeout=5)


def service_name(db_url: Optional[str]) -> str:
    """What the user asked for, in words (the URL without its password)."""
    if db_url:
        return f"--db-url {redact(db_url)}"
    return "DatabaseSessionService on a temporary SQLite file"


async def _open_once(db_url: Optional[str], scratch: str) -> str:
    service = verify_service(db_url, scratch)
    try:
        await service.list_sessions(app_name="compaction_verify", user_id="user")
    finally:
        await _close(service)
    return type(service).__name__


async def _close(service: Any) -> None:
    """Release the service's connections (before its event loop closes)."""
    close = getattr(service, "close", None)
    engine = getattr(service, "db_engine", None)
    if callable(close):
        done = close()
    elif engine is not None and hasattr(engine, "dispose"):
        done = engine.dispose()
    else:
        return
    if inspect.isawaitable(done):
        await done


def redact(url: Optional[str]) -> str:
    """``url`` with its password replaced by ``***``."""
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url or "")


def _chain(error: BaseException) -> List[BaseException]:
    """``error`` and the errors it was raised from, each once."""
    seen: List[BaseException] = []
    current: Optional[BaseException] = error
    while current is not None and current not in seen:
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def _first_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return text[0] if text else type(error).__name__


def _summary(errors: List[BaseException], limit: int = 160) -> str:
    """The first line of each error in the chain, each distinct one once,
    until ``limit`` characters are reached."""
    lines: List[str] = []
    for error in errors:
        line = _first_line(error)
        if lines and len(" | ".join([*lines, line])) > limit:
            break
        if not any(line in seen or seen in line for seen in lines):
            lines.append(line)
    return " | ".join(lines)


def _host(db_url: Optional[str]) -> str:
    parts = urlsplit(db_url or "")
    try:
        port = parts.port
    except ValueError:  # not a number: the URL is malformed, said elsewhere
        port = None
    return f"{parts.hostname or 'localhost'}" + (f":{port}" if port else "")


def _missing_module(errors: List[BaseException]) -> Optional[str]:
    for error in errors:
        if isinstance(error, ModuleNotFoundError) and error.name:
            return error.name.split(".")[0]
    text = " ".join(str(error) for error in errors)
    if "greenlet" in text:
        return "greenlet"
    if re.search(r"'sqlalchemy(\[asyncio\])?' package is required", text):
        return "sqlalchemy"
    return None


def _install_hint(module: str, db_url: Optional[str]) -> str:
    package = PIP_NAMES.get(module, module)
    line = f"pip install '{package}'"
    if module == "sqlalchemy":
        line = f"pip install '{package}' greenlet aiosqlite"
        if uses_async_engine() and not (db_url or "").startswith("sqlite://"):
            line += ", or try SqliteSessionService: --db-url sqlite:///sessions.db"
    return line


def explain(error: BaseException, db_url: Optional[str]) -> str:
    """One line: what went wrong opening the service, and what to do."""
    errors = _chain(error)
    text = _summary(errors)
    where = service_name(db_url)
    host = _host(db_url)
    module = _missing_module(errors)
    if module is not None:
        return f"{where} needs {module}, which is not installed: " + _install_hint(
            module, db_url
        )
    if isinstance(error, asyncio.TimeoutError):
        return (
            f"{where}: no answer from the database server at {host} within "
            f"{OPEN_TIMEOUT:.0f} s; is the address right?"
        )
    missing_db = re.search(
        r"database \"?([^\"\s]+?)\"? does not exist|Unknown database '([^']+)'", text
    )
    if missing_db:
        name = missing_db.group(1) or missing_db.group(2)
        return (
            f"{where}: the database {name!r} does not exist on {host}; create it "
            f"(CREATE DATABASE {name}) or name one that exists"
        )
    if re.search(
        r"password authentication failed|Access denied|no password|"
        r"role \"[^\"]*\" does not exist",
        text,
    ):
        return f"{where}: the server at {host} refused the login ({text})"
    if re.search(r"unable to open database file", text):
        return (
            f"{where}: cannot open the SQLite file; does its folder exist, "
            "and may it be written?"
        )
    if any(isinstance(e, OSError) for e in errors) or re.search(
        r"[Cc]onnection refused|[Cc]an't connect|could not connect|"
        r"[Nn]ame or service not known|[Tt]emporary failure in name resolution",
        text,
    ):
        return (
            f"{where}: cannot reach the database server at {host} "
            f"({_first_line(errors[-1])}); is it running?"
        )
    if any(
        type(e).__name__ in ("ArgumentError", "NoSuchModuleError") or "URL" in str(e)
        for e in errors
    ):
        return (
            f"{where}: not a database URL this google-adk can use ({text}); "
            "e.g. sqlite:///sessions.db, postgresql://user@host/db, "
            "mysql://user@host/db"
        )
    return f"{where}: cannot open the session service: {text}"
