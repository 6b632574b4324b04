"""End to end: a real ``adk api_server`` in a subprocess, driven over HTTP.

The server is started as users start it (``python -m google.adk.cli
api_server``, the ``adk`` command), in the tox env where the package was
installed from its wheel: the ``.pth`` start-up hook applies the fix in the
server's interpreter exactly as it would for a user. Its agents directory is
written by the test (``verify.served_agent``: the fake models, an ``App`` with
``events_compaction_config`` exposed as ``app``, which every compacting
release's agent loader serves). Storage: (a) the server's default (in memory
up to 1.20, ``SqliteSessionService`` at ``<agent>/.adk/session.db`` from
1.21), (b) a PostgreSQL
``--session_service_uri``. Clients: sequential and eager (the next message at
the final reply, the stream still open).

Marked ``api_server``: tox runs these on one release per family only.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Iterator, List, Optional

import pytest
from packaging.version import Version

from adk_compaction_backport._activation import installed_adk_version
from adk_compaction_backport.verify.http_client import run_http_workload
from adk_compaction_backport.verify.scenario import Report, Workload
from adk_compaction_backport.verify.served_agent import write_agents_dir
from adk_compaction_backport.verify.urls import database_url
from devtools import api_server
from devtools.api_server import Server, stop
from devtools.databases import create_database, drop_database

ADK = Version(installed_adk_version() or "0")
AGENT = "served_compaction"
SESSIONS, TURNS, INTERVAL, OVERLAP = 2, 6, 2, 1
SUMMARIZER_DELAY = 0.2
REPLY_DELAY = 0.05
# get_fast_api_app keeps sessions in <agent>/.adk/session.db by default from
# 1.21.0 (read from the wheels: 1.20.0 still builds InMemorySessionService).
LOCAL_STORAGE_DEFAULT = Version("1.21.0") <= ADK
WORKLOAD = dict(
    sessions=SESSIONS,
    turns=TURNS,
    interval=INTERVAL,
    overlap=OVERLAP,
    summarizer_delay=SUMMARIZER_DELAY,
    reply_delay=REPLY_DELAY,
)
READY_TIMEOUT = 180.0
# The launcher's "something went wrong" lines, and a stale session error.
BAD_LOG = re.compile(api_server.BAD_LOG.pattern + "|stale", re.IGNORECASE)

pytestmark = [
    pytest.mark.api_server,
    pytest.mark.skipif(
        Version("1.16.0") > ADK, reason="no event compaction before 1.16.0"
    ),
]


def _start(
    tmp: Path, service_uri: Optional[str], log_name: str = "server.log"
) -> Server:
    agents_dir = tmp / "agents"
    write_agents_dir(
        agents_dir,
        AGENT,
        interval=INTERVAL,
        overlap=OVERLAP,
        summarizer_delay=SUMMARIZER_DELAY,
        reply_delay=REPLY_DELAY,
        calls_file=_calls_file(agents_dir),
    )
    return api_server.start(tmp, agents_dir, service_uri, READY_TIMEOUT, log_name)


def _calls_file(agents_dir: Path) -> Path:
    """The summarizer-calls file of the agents written beside it."""
    return agents_dir.parent / "summarizer_calls.txt"


@pytest.fixture(scope="module", params=["default", "postgresql"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One server per storage kind, shared by the tests of this module."""
    tmp = tmp_path_factory.mktemp(f"api_server_{request.param}")
    if request.param == "default":
        started = _start(tmp, None)
        try:
            yield started
        finally:
            stop(started)
        return
    server_url = request.getfixturevalue("postgres_server_url")
    db_url = create_database(server_url)
    try:
        started = _start(tmp, database_url(db_url))
        try:
            yield started
        finally:
            stop(started)
    finally:
        drop_database(server_url, db_url)


def _bad_lines(text: str) -> List[str]:
    return [line for line in text.splitlines() if BAD_LOG.search(line)]


def _run(server: Server, client: str, *others: Server) -> Report:
    return asyncio.run(
        run_http_workload(
            server.base_url,
            AGENT,
            Workload.from_mapping(WORKLOAD, client=client),
            calls_file=_calls_file(server.agents_dir),
            also=[other.base_url for other in others],
        )
    )


def _brief(report: Report) -> str:
    keys = ("turns_failed", "user_messages_lost", "summaries_expected")
    keys += ("summaries_stored", "summaries_unexpected", "summaries_duplicated")
    data = report.as_dict()
    return ", ".join(f"{k}={data[k]}" for k in (*keys, "summarizer_calls"))


@pytest.mark.parametrize("client", ["sequential", "eager"])
def test_real_server_keeps_every_turn_and_summary(server: Server, client: str):
    offset = server.log_size()
    report = _run(server, client)
    log = server.log_since(offset)
    assert report.errors == [], "\n".join(report.errors)
    assert report.turns == SESSIONS * TURNS
    assert report.turns_failed == 0, _brief(report)
    assert report.user_messages_stored == report.user_messages_expected, _brief(report)
    assert report.replies_stored == SESSIONS * TURNS, _brief(report)
    assert report.summaries_expected == SESSIONS * (TURNS // INTERVAL)
    assert report.summaries_stored == report.summaries_expected, _brief(report)
    assert report.summaries_unexpected == 0, _brief(report)
    assert report.summaries_duplicated == 0, _brief(report)
    assert report.summarizer_calls == report.summaries_expected, _brief(report)
    assert _bad_lines(log) == [], log[-4000:]
    assert server.process.poll() is None, "the server died"


def test_default_storage_is_what_the_release_says(server: Server):
    """Guards the test's premise: which session service the default run used."""
    if "--session_service_uri" in server.process.args:
        pytest.skip("only about the default storage")
    session_db = server.agents_dir / AGENT / ".adk" / "session.db"
    if LOCAL_STORAGE_DEFAULT:
        if not session_db.exists():  # this test ran alone
            _run(server, "sequential")
        assert session_db.is_file()
    else:
        assert not session_db.exists()


def test_verify_command_checks_a_running_server(server: Server):
    """``verify --server``: what a user runs against their own deployment."""
    if "--session_service_uri" not in server.process.args:
        pytest.skip("one storage kind is enough for the command's plumbing")
    env = dict(os.environ)
    env.pop("ADK_COMPACTION_BACKPORT_DISABLE", None)  # the client side is not patched
    args = [sys.executable, "-m", "adk_compaction_backport", "verify"]
    args += ["--server", server.base_url, "--agent", AGENT, "--client", "eager"]
    args += ["--sessions", "1", "--turns", "4", "--summarizer-delay", "0.2"]
    done = subprocess.run(
        args,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    table = dict(
        (line[:32].strip(), line[32:].strip())
        for line in done.stdout.splitlines()
        if line.startswith("  ") and line[32:].strip()
    )
    assert table["summaries expected"] == "2", done.stdout + done.stderr
    assert table["turns"] == "4"
    fixed = os.environ.get("ADK_COMPACTION_BACKPORT_DISABLE", "") in ("", "0")
    if fixed:
        assert done.returncode == 0, done.stdout + done.stderr
        assert table["summaries stored"] == "2"
        assert table["turns failed"] == "0"


@pytest.fixture(scope="module")
def two_servers(
    tmp_path_factory: pytest.TempPathFactory, postgres_server_url: str
) -> Iterator[List[Server]]:
    """Two ``adk api_server`` processes on one PostgreSQL database (one agents
    dir, so one summarizer-calls file): workers without session affinity."""
    tmp = tmp_path_factory.mktemp("api_server_pair")
    db_url = create_database(postgres_server_url)
    started: List[Server] = []
    try:
        for name in ("first.log", "second.log"):
            started.append(_start(tmp, database_url(db_url), name))
        yield started
    finally:
        for server in started:
            stop(server)
        drop_database(postgres_server_url, db_url)


@pytest.mark.parametrize("client", ["sequential", "eager"])
def test_two_servers_on_one_database_store_every_summary_once(
    two_servers: List[Server], client: str
) -> None:
    """Turns alternate between the servers: what one server would store, over
    the same ranges, whichever server's compaction takes the lock first."""
    first, second = two_servers
    offsets = [server.log_size() for server in two_servers]
    report = _run(first, client, second)
    assert report.errors == [], "\n".join(report.errors)
    assert report.turns_failed == 0, _brief(report)
    assert report.user_messages_stored == report.user_messages_expected, _brief(report)
    assert report.replies_stored == SESSIONS * TURNS, _brief(report)
    assert report.summaries_duplicated == 0, _brief(report)
    assert report.summarizer_calls == report.summaries_stored, _brief(report)
    assert report.summaries_stored == report.summaries_expected, _brief(report)
    assert report.summaries_unexpected == 0, _brief(report)
    assert report.summaries_missing == 0, _brief(report)
    for server, offset in zip(two_servers, offsets):
        log = server.log_since(offset)
        assert _bad_lines(log) == [], log[-4000:]
        assert server.process.poll() is None, "a server died"
