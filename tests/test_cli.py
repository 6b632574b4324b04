"""The commands a user runs: ``doctor``, ``status`` and ``verify``, in fresh
interpreters; a setup problem is one line and exit status 2, not a failed fix."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import List, Optional

import pytest
from packaging.version import Version

from adk_compaction_backport import __version__
from adk_compaction_backport._activation import installed_adk_version
from adk_compaction_backport._guards import family_for
from devtools.ports import free_port

FAMILY = family_for(installed_adk_version())
CLAIMED = FAMILY is not None
ASYNC_ENGINE = Version(installed_adk_version()) >= Version("1.19.0")
SMALL = ["--client", "eager", "--sessions", "1", "--turns", "2"]


def run_module(
    *args: str, blocked: List[str] = (), pythonpath: Optional[Path] = None
) -> subprocess.CompletedProcess:
    """``python -m adk_compaction_backport ARGS`` in a fresh interpreter.

    ``blocked``: modules made unimportable in that interpreter (as if not
    installed); ``pythonpath``: a folder put first on the children's path too.
    """
    env = dict(os.environ)
    env.pop("ADK_COMPACTION_BACKPORT_DISABLE", None)
    if pythonpath is not None:
        env["PYTHONPATH"] = os.pathsep.join(
            [str(pythonpath), *filter(None, [env.get("PYTHONPATH")])]
        )
    command = [sys.executable, "-m", "adk_compaction_backport"]
    if blocked:
        command[1:] = [
            "-c",
            "import sys\n"
            f"for name in {list(blocked)!r}: sys.modules[name] = None\n"
            "from adk_compaction_backport.__main__ import main\n"
            "sys.exit(main(sys.argv[1:]))",
        ]
    return subprocess.run(
        [*command, *args],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )


def one_line_setup_problem(done: subprocess.CompletedProcess) -> str:
    """Exit status 2 and exactly one line (on stderr), no traceback, no table."""
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    return lines[0]


@pytest.mark.interpreters
def test_doctor_says_what_status_says():
    done = run_module("doctor")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"adk-compaction-backport {__version__}\n")
    assert f"google-adk installed: {installed_adk_version()}" in done.stdout
    assert ("fix applied:          yes" in done.stdout) == CLAIMED


def test_version_is_the_package_version():
    done = run_module("--version")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"adk-compaction-backport {__version__}"


@pytest.mark.interpreters
def test_status_names_the_release_its_family_and_the_waiting_wrappers():
    """A fresh interpreter has imported nothing of google-adk: every wrapper
    of a claimed release waits for its module."""
    done = run_module("status", "--json")
    assert done.returncode == 0, done.stderr
    state = json.loads(done.stdout)
    assert state["package"] == __version__
    assert state["adk_version"] == installed_adk_version()
    assert state["family"] == (FAMILY.name if CLAIMED else None)
    assert state["applied"] == CLAIMED
    assert state["patched"] == []
    assert bool(state["pending"]) == CLAIMED
    assert all(name.startswith("google.adk.") for name in state["pending"])
    words = run_module("status").stdout
    assert f"release family:       {FAMILY.name if CLAIMED else 'none'}" in words
    assert words.count("will wrap google.adk.") == len(state["pending"])


def test_help_documents_every_option_and_the_exit_codes():
    from adk_compaction_backport.__main__ import _parser

    parser = _parser()
    commands = next(a for a in parser._actions if a.choices and a.dest == "command")
    for name, command in commands.choices.items():
        for action in command._actions:
            assert action.help, f"{name} {action.option_strings} has no help text"
    verify_help = commands.choices["verify"].format_help()
    for line in ("0  ", "1  verify: the fix did not hold", "2  a setup problem"):
        assert line in verify_help
        assert line in parser.format_help()


@pytest.mark.parametrize(
    "option",
    [
        ["--sessions", "abc"],
        ["--turns", "0"],
        ["--summarizer-delay", "-1"],
        ["--client", "lazy"],
        ["--server", "127.0.0.1:8000"],
    ],
)
def test_a_bad_option_is_one_line_and_exit_status_2(option):
    line = one_line_setup_problem(run_module("verify", *option))
    assert option[0] in line


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
    # progress: a line per cell
    assert "[1/2] eager client, without the fix" in done.stderr
    assert "[2/2] eager client, with the fix" in done.stderr
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
    line = one_line_setup_problem(run_module("verify", *SMALL))
    assert line.startswith("nothing was verified: ")
    assert "not a release this package claims" in line


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
    port = free_port()  # nothing listens there
    done = run_module("verify", "--server", f"http://127.0.0.1:{port}")
    assert done.returncode == 2, done.stdout + done.stderr
    waiting, failed = done.stderr.strip().splitlines()
    assert waiting.startswith("waiting up to 10 s for an ADK server at http://")
    assert failed.startswith(f"cannot reach an ADK server at http://127.0.0.1:{port}")


claimed_only = pytest.mark.skipif(
    not CLAIMED, reason="an unclaimed release stops before opening anything"
)


@pytest.mark.interpreters
@claimed_only
def test_an_unreachable_database_is_a_setup_problem():
    url = f"postgresql://postgres:secret@127.0.0.1:{free_port()}/postgres"
    line = one_line_setup_problem(run_module("verify", "--db-url", url, *SMALL))
    assert "cannot reach the database server at 127.0.0.1" in line
    assert "secret" not in line  # the password is not printed
    assert "postgres:***@127.0.0.1" in line


@pytest.mark.interpreters
@claimed_only
def test_a_missing_database_is_a_setup_problem(postgres_server_url):
    from devtools.databases import with_database

    url = with_database(postgres_server_url, "no_such_database_here")
    line = one_line_setup_problem(run_module("verify", "--db-url", url, *SMALL))
    assert "the database 'no_such_database_here' does not exist" in line


@pytest.mark.interpreters
@claimed_only
@pytest.mark.parametrize(
    "url", ["postgresql://postgres@127.0.0.1:notaport/db", "not a url", "bogus://x"]
)
def test_a_malformed_url_is_a_setup_problem(url):
    line = one_line_setup_problem(run_module("verify", "--db-url", url, *SMALL))
    assert line.startswith(f"--db-url {url}: not a database URL")


@pytest.mark.interpreters
@claimed_only
@pytest.mark.parametrize(
    "blocked, db_url, install",
    [
        pytest.param(
            "sqlalchemy", None, "pip install 'sqlalchemy[asyncio]>=2'", id="sqlalchemy"
        ),
        pytest.param(
            "greenlet",
            None,
            "pip install 'greenlet'",
            id="greenlet",
            marks=pytest.mark.skipif(
                not ASYNC_ENGINE, reason="1.16-1.18: a synchronous engine"
            ),
        ),
        pytest.param(
            "asyncpg" if ASYNC_ENGINE else "psycopg2",
            f"postgresql://postgres@127.0.0.1:{free_port()}/db",
            f"pip install '{'asyncpg' if ASYNC_ENGINE else 'psycopg2-binary'}'",
            id="postgresql-driver",
        ),
    ],
)
def test_a_missing_driver_says_what_to_install(blocked, db_url, install):
    """As if not installed: the module is made unimportable in the interpreter."""
    args = ["verify", *SMALL] + (["--db-url", db_url] if db_url else [])
    line = one_line_setup_problem(run_module(*args, blocked=[blocked]))
    assert f"needs {blocked}, which is not installed: {install}" in line


@pytest.mark.interpreters
@claimed_only
@pytest.mark.skipif(not ASYNC_ENGINE, reason="SqliteSessionService is 1.19+")
def test_sqlite_session_service_runs_without_sqlalchemy(tmp_path):
    """SQLAlchemy made unimportable in every interpreter verify starts (a
    ``sitecustomize`` first on PYTHONPATH), as after a plain
    ``pip install google-adk`` on 2.x."""
    (tmp_path / "sitecustomize.py").write_text(
        "import sys\nsys.modules['sqlalchemy'] = None\n"
    )
    probe = subprocess.run(
        [sys.executable, "-c", "import sqlalchemy"],
        env={**os.environ, "PYTHONPATH": str(tmp_path)},
        capture_output=True,
        check=False,
    )
    assert probe.returncode != 0  # the blocker works
    done = run_module(
        "verify",
        "--db-url",
        f"sqlite:///{tmp_path / 'sessions.db'}",
        *SMALL,
        "--summarizer-delay",
        "0.05",
        "--reply-delay",
        "0",
        pythonpath=tmp_path,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "your database (SqliteSessionService)" in done.stdout


def test_a_sqlite_file_that_cannot_be_opened_is_a_setup_problem(tmp_path):
    """In-process: the check leaves the process's thread hook as it was."""
    import threading

    from adk_compaction_backport.verify.setup_check import SetupProblem, open_once

    hook = threading.excepthook
    url = f"sqlite:///{tmp_path / 'no_such_folder' / 'sessions.db'}"
    with pytest.raises(SetupProblem, match="cannot open the SQLite file"):
        open_once(url)
    assert threading.excepthook is hook


def test_a_refused_login_is_a_setup_problem(postgres_server_url):
    from urllib.parse import urlsplit, urlunsplit

    from adk_compaction_backport.verify.setup_check import SetupProblem, open_once

    server = urlsplit(postgres_server_url)
    netloc = f"no_such_role:hunter2@{server.hostname}:{server.port or 5432}"
    url = urlunsplit(server._replace(netloc=netloc))
    with pytest.raises(SetupProblem) as raised:
        open_once(url)
    line = str(raised.value)
    assert "refused the login" in line
    assert "hunter2" not in line
