"""The ``verify`` workload over HTTP, against a running ``adk api_server``.

Sessions are created through the REST API, each turn is a ``POST /run_sse``,
and what the server stored is read back with ``GET .../sessions/{id}``. The
two clients are the in-process scenario's: ``sequential`` reads every stream
to its end before the next message; ``eager`` sends the next message as soon
as the final reply arrives and reads the rest of that stream meanwhile.

Works with any agent: only the user messages and the summaries' invocation
ranges are checked (``interval`` and ``overlap`` must be the agent's
``EventsCompactionConfig``). Uses ``httpx`` (google-genai, hence every
google-adk release, depends on it).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Dict, List, Optional, Sequence

from adk_compaction_backport.verify.analysis import expected_ranges, inspect_session
from adk_compaction_backport.verify.scenario import Report, Workload, _inspect

USER_ID = "user"


class ServerNotReady(RuntimeError):
    """The server did not answer in time (or exited)."""


def wait_until_ready(
    base_url: str, timeout: float = 120.0, process: Any = None
) -> None:
    """Poll ``GET /list-apps`` until it answers 200; no fixed sleeps.

    ``process``: a ``subprocess.Popen`` whose early exit ends the wait.
    """
    import httpx

    deadline = time.monotonic() + timeout
    last: object = None
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise ServerNotReady(f"the server exited with code {process.returncode}")
        try:
            if httpx.get(f"{base_url}/list-apps", timeout=2.0).status_code == 200:
                return
            last = "not 200"
        except httpx.HTTPError as error:
            last = error
        time.sleep(0.1)  # a poll interval, not a wait for something to happen
    raise ServerNotReady(f"{base_url} not ready after {timeout:.0f} s ({last!r})")


def served_apps(base_url: str) -> List[str]:
    """The agents (apps) the server serves: ``GET /list-apps``."""
    import httpx

    try:
        answer = httpx.get(f"{base_url}/list-apps", timeout=10.0)
        answer.raise_for_status()
        return [str(name) for name in answer.json()]
    except (httpx.HTTPError, ValueError) as error:
        raise ServerNotReady(f"GET /list-apps failed: {error!r}") from error


def _event_view(data: Dict[str, Any]) -> SimpleNamespace:
    """What ``analysis.inspect_session`` reads of an event, from its JSON.

    Plain namespaces, not google-adk models: the server may run another
    release than this client.
    """
    content = data.get("content") or {}
    parts = [SimpleNamespace(text=p.get("text")) for p in content.get("parts") or []]
    compaction = (data.get("actions") or {}).get("compaction")
    if compaction is not None:
        compaction = {
            "start_timestamp": compaction.get(
                "startTimestamp", compaction.get("start_timestamp")
            ),
            "end_timestamp": compaction.get(
                "endTimestamp", compaction.get("end_timestamp")
            ),
        }
    return SimpleNamespace(
        author=data.get("author"),
        invocation_id=data.get("invocationId", data.get("invocation_id")),
        timestamp=data.get("timestamp", 0.0),
        content=SimpleNamespace(parts=parts) if content else None,
        actions=SimpleNamespace(compaction=compaction),
    )


def session_view(data: Dict[str, Any]) -> SimpleNamespace:
    """A session's JSON (``GET .../sessions/{id}``) as ``inspect_session`` reads it."""
    return SimpleNamespace(
        id=data.get("id"), events=[_event_view(e) for e in data.get("events") or []]
    )


def _error_of(data: Dict[str, Any]) -> Optional[str]:
    """The error an SSE event reports (releases differ in the shape), if any."""
    for key, value in data.items():
        if key.lower().startswith("error") and value:
            return f"{key}: {value}"
    return None


def _is_final_reply(data: Dict[str, Any]) -> bool:
    """A complete text reply of the agent (``Event.is_final_response``, for JSON)."""
    if data.get("author") in (None, "user") or data.get("partial"):
        return False
    if (data.get("actions") or {}).get("compaction"):
        return False
    parts = (data.get("content") or {}).get("parts") or []
    if any("functionCall" in p or "function_call" in p for p in parts):
        return False
    return any(p.get("text") for p in parts)


class _Turn:
    """One ``/run_sse`` stream: the final reply is signalled, errors collected."""

    def __init__(self, label: str) -> None:
        self.label = label
        self.final_reply = asyncio.Event()
        self.errors: List[str] = []
        self.sent = time.perf_counter()
        self.replied_after: Optional[float] = None
        self.ended_after: Optional[float] = None

    async def run(self, client: Any, body: Dict[str, Any]) -> None:
        try:
            async with client.stream("POST", "/run_sse", json=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    self.errors.append(
                        f"HTTP {response.status_code}: {response.text[:200]}"
                    )
                    return
                async for line in response.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = json.loads(line[5:].strip())
                    error = _error_of(data)
                    if error:
                        self.errors.append(error)
                    elif _is_final_reply(data) and not self.final_reply.is_set():
                        self.replied_after = time.perf_counter() - self.sent
                        self.final_reply.set()
            self.ended_after = time.perf_counter() - self.sent
        except Exception as error:  # a broken connection fails the turn
            self.errors.append(repr(error))
        finally:
            self.final_reply.set()  # an eager client must never wait forever


async def drive_session(
    clients: List[Any],
    app_name: str,
    user_id: str,
    session_id: str,
    session_no: int,
    workload: Workload,
    report: Report,
) -> None:
    tails: List[asyncio.Task] = []
    turns: List[_Turn] = []
    for turn_no in range(1, workload.turns + 1):
        report.turns += 1
        turn = _Turn(f"turn {turn_no} of session {session_no}")
        turns.append(turn)
        body = {
            "appName": app_name,
            "userId": user_id,
            "sessionId": session_id,
            "newMessage": {
                "role": "user",
                "parts": [{"text": f"s{session_no} turn {turn_no}"}],
            },
            "streaming": False,
        }
        # Several servers (workers behind a load balancer without affinity):
        # each turn goes to the next one.
        client = clients[(turn_no - 1 + session_no) % len(clients)]
        stream = asyncio.ensure_future(turn.run(client, body))
        if workload.client == "eager":
            tails.append(stream)
            await turn.final_reply.wait()
        else:
            await stream
        if turn.replied_after is not None:
            report.turn_latencies.append(turn.replied_after)
    await asyncio.gather(*tails)
    for turn in turns:
        if turn.ended_after is not None:
            report.stream_latencies.append(turn.ended_after)
        if turn.errors:
            report.turns_failed += 1
            report.errors.append(f"{turn.label}: {turn.errors[0]}"[:300])


async def _read_settled(client: Any, url: str, workload: Workload) -> SimpleNamespace:
    """Read a session back once its summaries are in, or after a grace period.

    1.19+ ends a stream after its compaction; 1.16 - 1.18 compact in a
    background task, so the last summary may land just after the last stream
    ends. The grace period bounds how long a missing summary is waited for.
    """
    due = len(expected_ranges(workload.turns, workload.interval, workload.overlap))
    deadline = time.monotonic() + 2.0 + 3 * workload.summarizer_delay
    while True:
        stored = await client.get(url)
        stored.raise_for_status()
        session = session_view(stored.json())
        if (
            len(inspect_session(session).summary_ranges) >= due
            or time.monotonic() > deadline
        ):
            return session
        await asyncio.sleep(0.1)  # a poll interval


async def run_http_workload(
    base_url: str,
    app_name: str,
    workload: Workload,
    *,
    user_id: str = USER_ID,
    calls_file: Optional[Path] = None,
    also: Sequence[str] = (),
) -> Report:
    """Run ``workload`` against the server; inspect what it stored.

    ``workload.api`` is ignored (the server decides). The summarizer runs in
    the server: its calls are counted only when ``calls_file`` is given (see
    ``served_agent.write_agents_dir``); otherwise ``summarizer_calls`` is -1.
    ``also``: more servers on the same storage; the turns of each session go
    round-robin over all of them.
    """
    import httpx

    from adk_compaction_backport.verify.served_agent import count_calls

    report = Report(workload=asdict(workload))
    calls_before = count_calls(calls_file) if calls_file else 0
    sessions_url = f"/apps/{app_name}/users/{user_id}/sessions"
    timeout = httpx.Timeout(30.0 + 4 * workload.summarizer_delay * workload.turns)
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=url, timeout=timeout)
            )
            for url in (base_url, *also)
        ]
        client = clients[0]
        ids = []
        for _ in range(workload.sessions):
            created = await client.post(sessions_url)
            created.raise_for_status()
            ids.append(created.json()["id"])
        await asyncio.gather(
            *(
                drive_session(clients, app_name, user_id, sid, n, workload, report)
                for n, sid in enumerate(ids)
            )
        )
        sessions = [
            await _read_settled(client, f"{sessions_url}/{sid}", workload)
            for sid in ids
        ]
    _inspect(report, workload, sessions)
    report.summarizer_calls = (
        count_calls(calls_file) - calls_before if calls_file else -1
    )
    return report
