"""One ``adk api_server`` launcher for the tests and the benchmark.

A server is started as users start it (``python -m google.adk.cli
api_server``) on a free loopback port, in this interpreter's environment (so
the package's start-up hook applies there as it would for a user, and
``ADK_COMPACTION_BACKPORT_DISABLE`` reaches it), with its output in a log
file. Readiness is the package's own ``verify --server`` wait (``GET
/list-apps``), so the tests exercise the waiting users rely on.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from devtools.ports import free_port

# A server log line that means something went wrong. Warnings are allowed:
# google-adk logs some for experimental features.
BAD_LOG = re.compile(
    r"Traceback|Task exception was never retrieved|Task was destroyed"
    r"|\bERROR\b|\bCRITICAL\b|Exception in ASGI",
    re.IGNORECASE,
)
# Runtime detection that would turn google-adk's local storage off
# (service_factory).
CLOUD_MARKERS = ("K_SERVICE", "KUBERNETES_SERVICE_HOST", "ADK_DISABLE_LOCAL_STORAGE")


@dataclass
class Server:
    """A running ``adk api_server`` subprocess and where its output goes."""

    base_url: str
    agents_dir: Path
    log: Path
    process: subprocess.Popen

    def wait_until_ready(self, timeout: float) -> None:
        """Wait for ``GET /list-apps``; on failure raise with the log's tail."""
        from adk_compaction_backport.verify.http_client import (
            ServerNotReady,
            wait_until_ready,
        )

        try:
            wait_until_ready(self.base_url, timeout, self.process)
        except ServerNotReady as error:
            raise ServerNotReady(
                f"{error}; last lines of {self.log}:\n{self.log_tail()}"
            ) from None

    def log_size(self) -> int:
        return self.log.stat().st_size if self.log.exists() else 0

    def log_since(self, offset: int = 0) -> str:
        """The log from byte ``offset`` on (what one test or row wrote)."""
        if not self.log.exists():
            return ""
        with open(self.log, "rb") as log:
            log.seek(offset)
            return log.read().decode("utf-8", "replace")

    def log_tail(self, lines: int = 40) -> str:
        return "\n".join(self.log_since().splitlines()[-lines:])

    def bad_lines(self, offset: int = 0, pattern: re.Pattern = BAD_LOG) -> int:
        """How many log lines from ``offset`` on say something went wrong."""
        return sum(
            1 for line in self.log_since(offset).splitlines() if pattern.search(line)
        )


def launch(
    tmp: Path,
    agents_dir: Path,
    session_service_uri: Optional[str],
    log_name: str = "server.log",
) -> Server:
    """Start a server on ``agents_dir`` without waiting for it.

    ``tmp`` is its working directory and ``HOME``; ``session_service_uri``
    None keeps the release's default storage. Several servers may be launched
    before any is waited for: their imports then overlap.
    """
    port = free_port()
    args = [sys.executable, "-m", "google.adk.cli", "api_server"]
    args += ["--host", "127.0.0.1", "--port", str(port)]
    if session_service_uri:
        args += ["--session_service_uri", session_service_uri]
    args.append(str(agents_dir))
    env = dict(os.environ, PYTHONUNBUFFERED="1", HOME=str(tmp))
    for name in CLOUD_MARKERS:
        env.pop(name, None)
    log = tmp / log_name
    with open(log, "wb") as out:
        process = subprocess.Popen(
            args, cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT
        )
    return Server(f"http://127.0.0.1:{port}", agents_dir, log, process)


def start(
    tmp: Path,
    agents_dir: Path,
    session_service_uri: Optional[str],
    timeout: float,
    log_name: str = "server.log",
) -> Server:
    """:func:`launch` and wait until it answers; stopped again if it never does."""
    server = launch(tmp, agents_dir, session_service_uri, log_name)
    try:
        server.wait_until_ready(timeout)
    except BaseException:
        stop(server)
        raise
    return server


def stop(server: Server) -> None:
    """SIGINT (uvicorn shuts down cleanly), then kill after 30 s."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGINT)
        try:
            server.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait()
