"""The commands a user runs: ``doctor`` and ``verify``, in fresh interpreters."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest

from adk_compaction_backport._activation import installed_adk_version
from adk_compaction_backport._guards import family_for

CLAIMED = family_for(installed_adk_version()) is not None


def run_module(*args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.pop("ADK_COMPACTION_BACKPORT_DISABLE", None)
    return subprocess.run(
        [sys.executable, "-m", "adk_compaction_backport", *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


@pytest.mark.interpreters
def test_doctor_says_what_status_says():
    done = run_module("doctor")
    assert done.returncode == 0, done.stderr
    assert f"google-adk installed: {installed_adk_version()}" in done.stdout
    assert ("fix applied:          yes" in done.stdout) == CLAIMED


@pytest.mark.interpreters
@pytest.mark.skipif(not CLAIMED, reason="nothing to verify on an unclaimed release")
def test_verify_shows_the_race_and_the_fix(tmp_path):
    done = run_module(
        "verify",
        "--client",
        "eager",
        "--sessions",
        "2",
        "--turns",
        "4",
        "--summarizer-delay",
        "0.2",
        "--reply-delay",
        "0.05",
    )
    assert done.returncode == 0, done.stdout + done.stderr
    table = dict(
        (line[:32].strip(), line[32:].split())
        for line in done.stdout.splitlines()
        if line.startswith("  ") and len(line[32:].split()) == 2
    )
    assert table["summaries expected"] == ["4", "4"]
    assert table["summaries stored"][1] == "4"
    assert table["turns failed"][1] == "0"
    assert "every summary stored once" in done.stdout


@pytest.mark.skipif(CLAIMED, reason="only an unclaimed release has nothing to verify")
def test_verify_says_so_when_the_fix_does_not_apply():
    done = run_module("verify", "--client", "eager", "--sessions", "1", "--turns", "2")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "nothing was verified" in done.stdout


def _adk_maps_sqlite_to_its_own_service() -> bool:
    """1.19+ registers ``sqlite://`` for ``SqliteSessionService`` (adk-facts)."""
    from packaging.version import Version

    return Version(installed_adk_version()) >= Version("1.19.0")


def test_db_url_picks_the_service_adk_web_would(tmp_path, postgres_db_url):
    """``sqlite:///x.db`` is SqliteSessionService where ADK maps it so."""
    from adk_compaction_backport.verify.services import session_service_for

    sqlite = session_service_for(f"sqlite:///{tmp_path / 'x.db'}", tmp_path)
    expected = (
        "SqliteSessionService"
        if _adk_maps_sqlite_to_its_own_service()
        else "DatabaseSessionService"
    )
    assert type(sqlite).__name__ == expected
    explicit = session_service_for(
        f"sqlite+aiosqlite:///{tmp_path / 'y.db'}"
        if _adk_maps_sqlite_to_its_own_service()
        else f"sqlite:///{tmp_path / 'y.db'}",
        tmp_path,
    )
    assert type(explicit).__name__ == "DatabaseSessionService"
    postgres = session_service_for(postgres_db_url, tmp_path)
    assert type(postgres).__name__ == "DatabaseSessionService"


@pytest.mark.interpreters
@pytest.mark.skipif(not CLAIMED, reason="nothing to verify on an unclaimed release")
def test_verify_names_the_session_service_it_used(tmp_path):
    done = run_module(
        "verify",
        "--db-url",
        f"sqlite:///{tmp_path / 'x.db'}",
        "--client",
        "sequential",
        "--sessions",
        "1",
        "--turns",
        "2",
        "--summarizer-delay",
        "0.05",
        "--reply-delay",
        "0",
    )
    service = (
        "SqliteSessionService"
        if _adk_maps_sqlite_to_its_own_service()
        else "DatabaseSessionService"
    )
    assert f"your database ({service})" in done.stdout, done.stdout + done.stderr


def test_verify_writes_an_agent_a_server_can_load(tmp_path):
    done = run_module("verify", "--write-agent", str(tmp_path), "--agent", "mine")
    assert done.returncode == 0, done.stderr
    agent_py = tmp_path / "mine" / "agent.py"
    assert agent_py.is_file()
    compile(agent_py.read_text(), str(agent_py), "exec")
    assert "adk api_server" in done.stdout


@pytest.mark.interpreters
def test_verify_server_says_when_nothing_answers():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again before the command runs
    done = run_module("verify", "--server", f"http://127.0.0.1:{port}")
    assert done.returncode == 2, done.stdout + done.stderr
    assert "cannot reach" in done.stdout
